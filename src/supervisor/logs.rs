//! A process's output, read line by line from its pipes into a bounded ring
//! buffer per unit and handed to the [`LogSink`] as it comes, so a chatty or
//! newline-less process cannot grow the daemon's memory nor hold up its
//! control loop.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{ChildStderr, ChildStdout};
use tokio::task::JoinHandle;

use super::status::LogLine;
use super::sync::lock;

/// How many lines each unit keeps.
const KEPT_LINES: usize = 500;

/// Longer lines are cut to this many bytes.
const MAX_LINE: usize = 8 * 1024;

/// How long the last lines of an exited process may take to arrive. Pipes
/// close when the group is gone; only a process that left the group (and kept
/// the pipe) makes this run out.
const DRAIN: Duration = Duration::from_secs(1);

/// Where output lines go as they are read (the controller's status stream).
/// `send` must not wait: a burst of output is the sink's to drop, never the
/// reader's to queue.
pub trait LogSink: Send + Sync {
    fn send(&self, line: LogLine);
}

/// One unit's output: the ring `describe` reads and the sink the stream gets.
pub(super) struct UnitLog {
    service: String,
    ring: Mutex<LogRing>,
    sink: Arc<dyn LogSink>,
}

impl UnitLog {
    pub(super) fn new(service: String, sink: Arc<dyn LogSink>) -> UnitLog {
        UnitLog { service, ring: Mutex::new(LogRing::default()), sink }
    }

    /// Keeps one line, logs it (once: at debug level) and passes it on.
    fn push(&self, stream: &'static str, line: String) {
        tracing::debug!(service = %self.service, stream, "{line}");
        let line = LogLine { service: self.service.clone(), stream, line };
        lock(&self.ring).push(line.clone());
        self.sink.send(line);
    }

    /// The newest `limit` lines, oldest first.
    pub(super) fn last(&self, limit: usize) -> Vec<LogLine> {
        lock(&self.ring).last(limit)
    }
}

/// The last [`KEPT_LINES`] lines of a unit, oldest first.
#[derive(Default)]
struct LogRing {
    lines: VecDeque<LogLine>,
}

impl LogRing {
    fn push(&mut self, line: LogLine) {
        if self.lines.len() == KEPT_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    /// The newest `limit` lines, oldest first.
    fn last(&self, limit: usize) -> Vec<LogLine> {
        let skip = self.lines.len().saturating_sub(limit);
        self.lines.iter().skip(skip).cloned().collect()
    }
}

/// The tasks reading one process's stdout and stderr. Dropping it stops them.
pub(super) struct Capture {
    readers: [JoinHandle<()>; 2],
}

impl Capture {
    pub(super) fn start(stdout: ChildStdout, stderr: ChildStderr, log: Arc<UnitLog>) -> Capture {
        Capture {
            readers: [
                tokio::spawn(read_lines(stdout, "stdout", log.clone())),
                tokio::spawn(read_lines(stderr, "stderr", log)),
            ],
        }
    }

    /// Waits (briefly) for the last lines once the process has exited: they
    /// often say why it did.
    pub(super) async fn finish(mut self) {
        let _ = tokio::time::timeout(DRAIN, async {
            for reader in &mut self.readers {
                let _ = reader.await;
            }
        })
        .await;
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        for reader in &self.readers {
            reader.abort();
        }
    }
}

async fn read_lines(stream: impl AsyncRead + Unpin, name: &'static str, log: Arc<UnitLog>) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    // A read error ends the capture as the end of the stream does.
    while let Ok(true) = next_line(&mut reader, &mut line).await {
        log.push(name, String::from_utf8_lossy(&line).into_owned());
    }
}

/// Reads the next line into `line`, without its line ending and cut to
/// [`MAX_LINE`] bytes (the rest of it is skipped). False at the end of the
/// stream.
async fn next_line(reader: &mut (impl AsyncBufRead + Unpin), line: &mut Vec<u8>) -> io::Result<bool> {
    line.clear();
    let mut read_any = false;
    loop {
        let buffer = reader.fill_buf().await?;
        if buffer.is_empty() {
            return Ok(read_any);
        }
        read_any = true;
        let (chunk, complete) = match buffer.iter().position(|byte| *byte == b'\n') {
            Some(end) => (&buffer[..end], true),
            None => (buffer, false),
        };
        let room = MAX_LINE.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = chunk.len() + usize::from(complete);
        reader.consume(used);
        if complete {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> LogLine {
        LogLine { service: "web".into(), stream: "stdout", line: text.into() }
    }

    #[test]
    fn the_ring_keeps_the_newest_lines() {
        let mut ring = LogRing::default();
        for i in 0..KEPT_LINES + 10 {
            ring.push(line(&i.to_string()));
        }
        let all = ring.last(usize::MAX);
        assert_eq!(all.len(), KEPT_LINES);
        assert_eq!(all[0].line, "10");
        let last = ring.last(2);
        assert_eq!(last, [line(&(KEPT_LINES + 8).to_string()), line(&(KEPT_LINES + 9).to_string())]);
    }

    async fn lines_of(input: &[u8]) -> Vec<String> {
        let mut reader = BufReader::with_capacity(16, input);
        let mut line = Vec::new();
        let mut lines = Vec::new();
        while next_line(&mut reader, &mut line).await.unwrap() {
            lines.push(String::from_utf8_lossy(&line).into_owned());
        }
        lines
    }

    #[tokio::test]
    async fn lines_lose_their_endings_and_a_last_line_needs_no_newline() {
        let lines = lines_of(b"one\r\ntwo\n\nthree and more than sixteen bytes\nlast").await;
        assert_eq!(lines, ["one", "two", "", "three and more than sixteen bytes", "last"]);
        assert!(lines_of(b"").await.is_empty());
    }

    #[tokio::test]
    async fn a_long_line_is_cut_and_the_next_one_kept() {
        let mut input = vec![b'x'; MAX_LINE * 3];
        input.extend_from_slice(b"\nnext\n");
        let lines = lines_of(&input).await;
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), MAX_LINE);
        assert_eq!(lines[1], "next");
    }
}
