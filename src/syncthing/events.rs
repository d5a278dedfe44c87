//! Following one Syncthing's event stream: a long poll of `/rest/events` with
//! the kinds of event that may change what a reconcile finds, telling the
//! controller when one arrives. Event ids are per subscription and start again
//! at 1 when Syncthing restarts, so a change of `startTime` resets `since`.

use std::time::Duration;

use tokio::sync::mpsc;

use super::Client;
use crate::backoff::{Backoff, Jitter, Policy};

/// The events that can make a SyncFolder's state or config differ from the
/// last reconcile: a config change (the GUI included), folder state and
/// completion, peers coming and going or dialling in unknown, folder errors.
const FOLDER_EVENTS: &[&str] = &[
    "ConfigSaved",
    "StateChanged",
    "FolderCompletion",
    "DeviceConnected",
    "DeviceDisconnected",
    "PendingDevicesChanged",
    "FolderErrors",
];

/// The events of files changing: a scan found local changes, or a file
/// came in from a peer. A conversation's owner looks at once, so that it has
/// its own write in its shadow before a stale one can come in.
const FILE_EVENTS: &[&str] = &["LocalIndexUpdated", "ItemFinished"];

/// How long one poll waits for an event.
const POLL: Duration = Duration::from_secs(30);
/// Events that come together are told as one, after this pause.
const SETTLE: Duration = Duration::from_millis(300);
/// While Syncthing cannot be reached: retries from 1 s, doubling up to 30 s.
const RETRY: Policy = Policy::new(Duration::from_secs(1), Duration::from_secs(30));

/// What the controller hears.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// One or more events of a folder's config or state arrived.
    Changed,
    /// Files changed (and no folder's config or state).
    Files,
    /// Syncthing answers again after it could not be reached, or restarted.
    Back,
}

/// Follows `client`'s events until `notices` is closed. Never fails: while
/// Syncthing is down it retries with backoff, and says so once.
pub async fn follow(client: Client, notices: mpsc::Sender<Notice>) {
    let mut since = 0;
    let mut started: Option<String> = None;
    let mut retry = Backoff::new(RETRY, Jitter::random());
    let mut down = false;
    while !notices.is_closed() {
        let status = match client.system_status().await {
            Ok(status) => status,
            Err(error) => {
                if !down {
                    tracing::debug!(%error, "not following Syncthing's events while it cannot be reached");
                    down = true;
                }
                tokio::time::sleep(retry.failed()).await;
                continue;
            }
        };
        let restarted = started.as_ref().is_some_and(|s| *s != status.start_time);
        if restarted || started.is_none() {
            since = 0;
            started = Some(status.start_time);
        }
        if down || restarted {
            down = false;
            retry.succeeded();
            if notices.send(Notice::Back).await.is_err() {
                return;
            }
        }
        let watched: Vec<&str> = FOLDER_EVENTS.iter().chain(FILE_EVENTS).copied().collect();
        match client.events(since, POLL, Some(&watched)).await {
            Ok(events) if events.is_empty() => {}
            Ok(events) => {
                since = events.iter().map(|event| event.id).max().unwrap_or(since);
                let folders = events.iter().any(|event| FOLDER_EVENTS.contains(&event.event_type.as_str()));
                tokio::time::sleep(SETTLE).await;
                let notice = if folders { Notice::Changed } else { Notice::Files };
                if notices.send(notice).await.is_err() {
                    return;
                }
            }
            // Down, or restarting: the status call above tells which.
            Err(_) => tokio::time::sleep(RETRY.delay(1)).await,
        }
    }
}
