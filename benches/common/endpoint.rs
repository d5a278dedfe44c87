//! A capability's endpoint that says who it is: every request, whatever its
//! method and path, gets `200 {"node": NAME, "version": …, "models": []}`, so
//! it stands in for an HTTP capability and for Ollama's `/api/version` and
//! `/api/tags` alike, and a caller knows which node's endpoint answered.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the accept loop looks for a connection and for a stop.
const POLL: Duration = Duration::from_millis(5);

/// A running endpoint; it stops serving (its threads joined) when dropped.
pub(crate) struct NamedEndpoint {
    stopping: Arc<AtomicBool>,
    server: Option<JoinHandle<()>>,
}

impl NamedEndpoint {
    /// Serves `node`'s answer on `listener`.
    pub(crate) fn serve(listener: TcpListener, node: &str) -> NamedEndpoint {
        let stopping = Arc::new(AtomicBool::new(false));
        let answer = serde_json::json!({"node": node, "version": "0.0.0", "models": []}).to_string();
        // Polled, so a stop is seen even when nothing can connect to wake it
        // (a namespace whose link is down).
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let stop = stopping.clone();
        let server = std::thread::spawn(move || {
            std::thread::scope(|scope| {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let answer = &answer;
                            scope.spawn(move || answer_one(stream, answer));
                        }
                        Err(_) => std::thread::sleep(POLL),
                    }
                }
            });
        });
        NamedEndpoint { stopping, server: Some(server) }
    }
}

/// Reads one request (its head, then the body its `Content-Length` says) and
/// answers it; a client that stalls is dropped after a few seconds.
fn answer_one(stream: TcpStream, answer: &str) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(&stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line.trim().is_empty() {
            break;
        }
        match line.split_once(':') {
            Some((name, value)) if name.eq_ignore_ascii_case("content-length") => {
                length = value.trim().parse().unwrap_or(0);
            }
            _ => {}
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let _ = write!(
        &stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    );
}

impl Drop for NamedEndpoint {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
    }
}
