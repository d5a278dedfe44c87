//! The daemon's event stream as the commands read it: one message at a time,
//! past the recent ones sent first, and, for `-w`, "something changed" (an
//! event and the rest of its burst) or time to look again anyway.

use std::time::Duration;

use anyhow::Context as _;
use futures_util::StreamExt as _;
use tokio_tungstenite::tungstenite::Message;

use crate::api::wire::StreamMessage;
use crate::client::EventStream;

/// How long the events of one change (a reconcile's several) are let gather
/// before a watcher looks again: one look per change.
const SETTLE: Duration = Duration::from_millis(300);

/// One message of the stream, and its text as the daemon sent it.
pub(super) struct Received {
    pub(super) message: StreamMessage,
    pub(super) text: String,
}

/// The next message; None once the stream ended. Frames that are not text
/// (pings) are passed over.
pub(super) async fn next(stream: &mut EventStream) -> anyhow::Result<Option<Received>> {
    while let Some(frame) = stream.next().await {
        let Message::Text(text) = frame.context("the event stream broke")? else { continue };
        let message =
            serde_json::from_str(&text).with_context(|| format!("unexpected message on the event stream: {text}"))?;
        return Ok(Some(Received { message, text: text.to_string() }));
    }
    Ok(None)
}

/// Reads the recent events the stream sends first, up to its `live` marker:
/// they are older than what the caller prints next.
pub(super) async fn past_recent_events(stream: &mut EventStream) -> anyhow::Result<()> {
    while let Some(received) = next(stream).await? {
        if received.message == StreamMessage::Live {
            return Ok(());
        }
    }
    anyhow::bail!("the daemon closed the event stream")
}

/// Waits until it is time to look again: after the next change and the rest
/// of its burst, or after `resync` without one (a peer's own changes and a
/// condition that settles later come with no event here). False when the
/// stream ended.
pub(super) async fn next_look(stream: &mut EventStream, resync: Duration) -> anyhow::Result<bool> {
    match tokio::time::timeout(resync, next_change(stream)).await {
        Ok(open) => open,
        Err(_) => Ok(true),
    }
}

/// Waits for the next message that tells of a change (not a Service's output
/// line), then for the rest of its burst. False when the stream ended.
async fn next_change(stream: &mut EventStream) -> anyhow::Result<bool> {
    loop {
        match next(stream).await? {
            None => return Ok(false),
            Some(received) if tells_of_a_change(&received.message) => break,
            Some(_) => {}
        }
    }
    let settled = tokio::time::sleep(SETTLE);
    tokio::pin!(settled);
    loop {
        tokio::select! {
            () = &mut settled => return Ok(true),
            received = next(stream) => if received?.is_none() { return Ok(true) },
        }
    }
}

/// An event, or messages dropped (which may have been events).
fn tells_of_a_change(message: &StreamMessage) -> bool {
    matches!(message, StreamMessage::Event { .. } | StreamMessage::Lagged { .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_events_and_dropped_messages_tell_of_a_change() {
        let log = StreamMessage::Log { service: "ollama".into(), stream: "stdout".into(), line: "hi".into() };
        assert!(!tells_of_a_change(&log));
        assert!(!tells_of_a_change(&StreamMessage::Live));
        assert!(tells_of_a_change(&StreamMessage::Lagged { skipped: 3 }));
    }
}
