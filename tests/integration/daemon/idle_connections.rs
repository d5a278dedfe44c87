//! Idle connections cannot starve the API: a daemon started with systemd's
//! soft limit of 1,024 descriptors answers `/mesh/health` while 3,000 idle
//! connections are open, and closes every one of them within 30 s; its
//! Services still get the soft limit it was started with.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::support::{Daemon, eventually, http_get, service};

/// systemd's default soft limit on open descriptors.
const SOFT_LIMIT: u64 = 1024;
const IDLE_CONNECTIONS: usize = 3000;
/// How soon the server must close an idle connection.
const IDLE_LIMIT: Duration = Duration::from_secs(30);
/// How long connecting, or an answer on a keep-alive connection, may take.
const CONNECT_LIMIT: Duration = Duration::from_secs(5);
/// How soon `/mesh/health` must answer while the idle connections are open.
const HEALTH_LIMIT: Duration = Duration::from_secs(2);

/// Raises this process's soft descriptor limit to its hard one: the test holds
/// thousands of sockets.
fn raise_own_descriptor_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read or write only `limit`.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    limit.rlim_max
}

/// The soft and hard "Max open files" of `/proc/PID/limits`.
fn open_files_limit(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("read /proc/PID/limits");
    let line = limits.lines().find(|line| line.starts_with("Max open files")).expect("a Max open files line");
    let numbers: Vec<u64> = line.split_whitespace().filter_map(|field| field.parse().ok()).collect();
    (numbers[0], numbers[1])
}

/// Makes a request on `stream` and reads its whole answer, leaving the
/// connection open (HTTP/1.1 keep-alive).
fn request_and_keep_open(stream: &mut TcpStream) {
    stream.write_all(b"GET /mesh/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").expect("send a request");
    let mut answer = Vec::new();
    let mut buffer = [0; 1024];
    loop {
        let read = stream.read(&mut buffer).expect("read the answer");
        assert!(read > 0, "the server closed a keep-alive connection at once");
        answer.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&answer);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length:").map(str::to_owned))
                .and_then(|length| length.trim().parse::<usize>().ok())
                .expect("a Content-Length");
            if body.len() >= length {
                assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                return;
            }
        }
    }
}

/// Whether the server has closed `stream` (end of file, or reset); it must not
/// have sent anything else.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buffer = [0; 1024];
    match stream.read(&mut buffer) {
        Ok(0) => true,
        // A request timed out mid-line may get an error answer before the close.
        Ok(_) => false,
        Err(error) if error.kind() == ErrorKind::WouldBlock => false,
        Err(error) if error.kind() == ErrorKind::ConnectionReset => true,
        Err(error) => panic!("reading an idle connection: {error}"),
    }
}

#[test]
fn health_answers_while_thousands_of_idle_connections_are_open_and_the_server_closes_them() {
    let hard = raise_own_descriptor_limit();
    assert!(hard > 2 * IDLE_CONNECTIONS as u64, "the hard descriptor limit {hard} is too low for this test");
    let limit_file = "ulimit-n.txt";
    let ulimit = service("ulimit", &["sh", "-c", &format!("ulimit -n > {limit_file}; exec sleep 1000")], "");
    let daemon = Daemon::builder().file("manifests/ulimit.yaml", &ulimit).soft_descriptor_limit(SOFT_LIMIT).start();

    // Three kinds of idle: silent, half a request line, and keep-alive after
    // an answer.
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, daemon.port()));
    let opened = Instant::now();
    let mut idle: Vec<TcpStream> = (0..IDLE_CONNECTIONS)
        .map(|n| {
            let mut stream = TcpStream::connect_timeout(&address, CONNECT_LIMIT).expect("connect to the API");
            stream.set_read_timeout(Some(CONNECT_LIMIT)).expect("a read timeout");
            match n % 3 {
                0 => {}
                1 => stream.write_all(b"GET /mesh/hea").expect("send half a request line"),
                _ => request_and_keep_open(&mut stream),
            }
            stream
        })
        .collect();

    let asked = Instant::now();
    assert_eq!(http_get(daemon.port(), "/mesh/health"), Some(200), "health answers beside the idle connections");
    assert!(asked.elapsed() < HEALTH_LIMIT, "health took {:?}", asked.elapsed());

    for stream in &idle {
        stream.set_nonblocking(true).expect("nonblocking");
    }
    while !idle.is_empty() {
        idle.retain_mut(|stream| !closed_by_server(stream));
        assert!(
            opened.elapsed() < IDLE_LIMIT,
            "{} of {IDLE_CONNECTIONS} idle connections still open after {IDLE_LIMIT:?}",
            idle.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(http_get(daemon.port(), "/mesh/health"), Some(200));

    // The daemon raised its own soft limit; the Service has the original.
    assert_eq!(open_files_limit(daemon.pid()), (hard, hard));
    let service_pid = daemon.wait_until_ready("ulimit");
    assert_eq!(open_files_limit(service_pid).0, SOFT_LIMIT);
    let written = eventually("the Service writes its limit", || {
        std::fs::read_to_string(daemon.path().join(limit_file)).ok().filter(|text| text.ends_with('\n'))
    });
    assert_eq!(written.trim(), SOFT_LIMIT.to_string());
}
