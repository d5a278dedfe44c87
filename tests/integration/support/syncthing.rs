//! A real Syncthing (the installed `syncthing`) in a temporary home, reachable
//! only on loopback: no discovery, relays, NAT, usage reports or upgrades.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use tempfile::TempDir;

use super::wait::eventually_within;

/// How long a start may take: 1.19 measures hashing speed for about 2 s first.
const START_PATIENCE: Duration = Duration::from_secs(60);

/// One Syncthing process and its home. Dropping it kills the process.
pub(crate) struct Syncthing {
    name: String,
    dir: TempDir,
    gui_port: u16,
    listen_port: u16,
    key: String,
    device_id: String,
    child: Option<Child>,
}

impl Syncthing {
    /// Generates a home (identity, config made loopback-only), starts
    /// Syncthing on two free loopback ports and returns once its API answers.
    pub(crate) fn start(name: &str) -> Syncthing {
        let dir = tempfile::Builder::new().prefix(&format!("syncthing-{name}-")).tempdir().expect("temp dir");
        let home = dir.path().join("home");
        let mut generate = Command::new("syncthing");
        generate.arg("generate").arg(format!("--home={}", home.display()));
        if major_version() >= 2 {
            generate.arg("--no-port-probing");
        } else {
            generate.args(["--no-default-folder", "--skip-port-probing"]);
        }
        let output = generate.env("STNODEFAULTFOLDER", "1").output().expect("syncthing generate runs");
        assert!(output.status.success(), "syncthing generate failed: {}", String::from_utf8_lossy(&output.stderr));

        let (gui_port, listen_port) = (free_port(), free_port());
        let key = random_key();
        let config = home.join("config.xml");
        let xml = fs::read_to_string(&config).expect("read config.xml");
        fs::write(&config, loopback_only(&xml, listen_port, gui_port, &key)).expect("write config.xml");

        let mut syncthing =
            Syncthing { name: name.to_owned(), dir, gui_port, listen_port, key, device_id: String::new(), child: None };
        syncthing.start_again();
        syncthing
    }

    /// Starts the process again on the same home, ports and key (after
    /// [`Syncthing::kill`]); returns once its API answers.
    pub(crate) fn start_again(&mut self) {
        assert!(self.child.is_none(), "{} still runs", self.name);
        let log = OpenOptions::new().create(true).append(true).open(self.log()).expect("open the log");
        let mut command = Command::new("syncthing");
        command
            .arg("serve")
            .arg(format!("--home={}", self.home().display()))
            .args(["--no-browser", "--no-upgrade", "--no-restart"])
            .arg(format!("--gui-address=http://127.0.0.1:{}", self.gui_port))
            .arg(format!("--gui-apikey={}", self.key))
            .env("STNODEFAULTFOLDER", "1")
            // `serve` otherwise forks a monitor and runs the real Syncthing as
            // its child in a process group of its own, even with
            // --no-restart: killing the monitor would leave it running.
            // This is the variable the monitor sets for its child.
            .env("STMONITORED", "yes")
            .env_remove("STGUIADDRESS")
            .env_remove("STGUIAPIKEY")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log"))
            .stderr(log);
        #[cfg(target_os = "linux")]
        kill_with_parent(&mut command);
        self.child = Some(command.spawn().expect("syncthing serve starts"));
        self.device_id = self.wait_for_api();
    }

    /// Kills the process (SIGKILL) and what it started, and reaps it.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            for pid in descendants(child.id()) {
                // SAFETY: kill takes plain integers and touches no memory.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `http://127.0.0.1:PORT`, the GUI and REST API.
    pub(crate) fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.gui_port)
    }

    pub(crate) fn api_key(&self) -> &str {
        &self.key
    }

    pub(crate) fn device_id(&self) -> &str {
        &self.device_id
    }

    /// `tcp://127.0.0.1:PORT`, where peers dial this device.
    pub(crate) fn device_address(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.listen_port)
    }

    pub(crate) fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// The process's output, kept across restarts.
    pub(crate) fn log(&self) -> PathBuf {
        self.dir.path().join("syncthing.log")
    }

    /// A folder in the temporary directory for data, not yet created.
    pub(crate) fn data(&self, name: &str) -> PathBuf {
        self.dir.path().join("data").join(name)
    }

    /// Polls `/rest/system/ping` with the key until it answers 200; returns
    /// the device ID from its `X-Syncthing-Id` header.
    fn wait_for_api(&mut self) -> String {
        let what = format!("{}'s API answers", self.name);
        eventually_within(START_PATIENCE, &what, || {
            if let Some(id) = ping(self.gui_port, &self.key) {
                return Ok(id);
            }
            let child = self.child.as_mut().expect("started");
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                panic!("{} exited ({status}) before its API answered:\n{}", self.name, self.log_text());
            }
            Err(format!("its log:\n{}", self.log_text()))
        })
    }

    fn log_text(&self) -> String {
        fs::read_to_string(self.log()).unwrap_or_default()
    }
}

impl Drop for Syncthing {
    fn drop(&mut self) {
        self.kill();
    }
}

/// config.xml with every outward-facing feature off, listening for peers on
/// `tcp://127.0.0.1:listen_port` only, and the GUI address and key the process
/// is started with (so tools that read config.xml find the same).
fn loopback_only(xml: &str, listen_port: u16, gui_port: u16, key: &str) -> String {
    let listen = format!("tcp://127.0.0.1:{listen_port}");
    let mut xml = xml.to_owned();
    for (element, value) in [
        ("listenAddress", listen.as_str()),
        ("globalAnnounceEnabled", "false"),
        ("localAnnounceEnabled", "false"),
        ("relaysEnabled", "false"),
        ("natEnabled", "false"),
        ("urAccepted", "-1"),
        ("autoUpgradeIntervalH", "0"),
        ("startBrowser", "false"),
        ("crashReportingEnabled", "false"),
        ("apikey", key),
    ] {
        xml = set_element(&xml, element, value, 0);
    }
    let gui = xml.find("<gui").expect("config.xml has a <gui> section");
    set_element(&xml, "address", &format!("127.0.0.1:{gui_port}"), gui)
}

/// Replaces the text of the first `<element>` at or after `from`, which must exist.
fn set_element(xml: &str, element: &str, value: &str, from: usize) -> String {
    let (open, close) = (format!("<{element}>"), format!("</{element}>"));
    let start = from + xml[from..].find(&open).unwrap_or_else(|| panic!("config.xml has no {open}")) + open.len();
    let end = start + xml[start..].find(&close).unwrap_or_else(|| panic!("config.xml has no {close}"));
    format!("{}{value}{}", &xml[..start], &xml[end..])
}

/// The installed Syncthing's major version, from `syncthing --version`
/// (`syncthing v1.19.2-ds1 "Fermium Flea" …`).
fn major_version() -> u32 {
    static MAJOR: OnceLock<u32> = OnceLock::new();
    *MAJOR.get_or_init(|| {
        let output = Command::new("syncthing").arg("--version").output().expect("syncthing --version runs");
        let text = String::from_utf8_lossy(&output.stdout);
        let version = text.split_whitespace().nth(1).unwrap_or_default();
        version.trim_start_matches('v').split('.').next().and_then(|major| major.parse().ok()).unwrap_or_else(|| {
            panic!("cannot read a version in {text:?}");
        })
    })
}

/// The `X-Syncthing-Id` of a 200 answer to `GET /rest/system/ping` with `key`;
/// None when nothing answers, or not with 200.
fn ping(port: u16, key: &str) -> Option<String> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!("GET /rest/system/ping HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nX-API-Key: {key}\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let head = answer.split("\r\n\r\n").next()?;
    let mut lines = head.lines();
    lines.next()?.split_whitespace().nth(1).filter(|code| *code == "200")?;
    lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("X-Syncthing-Id").then(|| value.trim().to_owned())
    })
}

/// A loopback port nothing listens on (the listener is closed before it is
/// handed out).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port").local_addr().expect("an address").port()
}

/// 32 letters and digits from the kernel's random source.
fn random_key() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut bytes = [0u8; 32];
    File::open("/dev/urandom").and_then(|mut random| random.read_exact(&mut bytes)).expect("read /dev/urandom");
    bytes.iter().map(|byte| ALPHABET[usize::from(*byte) % ALPHABET.len()] as char).collect()
}

/// Every process below `pid`, deepest last, from `/proc/*/stat`.
fn descendants(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let child: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(entry.path().join("stat")).ok()?;
            // The name, in parentheses, may hold spaces: the ppid is the
            // second field after its closing parenthesis.
            let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
            Some((child, ppid))
        })
        .collect();
    let mut found = vec![pid];
    let mut next = 0;
    while next < found.len() {
        let parent = found[next];
        found.extend(parents.iter().filter(|(_, ppid)| *ppid == parent).map(|(child, _)| *child));
        next += 1;
    }
    found.remove(0);
    found
}

/// Has the kernel kill the process when the thread that started it ends (a
/// test that is itself killed), as Drop would not run then. Linux only.
#[cfg(target_os = "linux")]
fn kill_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}
