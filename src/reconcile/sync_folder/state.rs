//! What the SyncFolder reconciler keeps: the Syncthing folders and devices it
//! created (only those are ever removed), the peers' devices it learned over
//! the mesh (so an offline peer stays paired), and the task that follows
//! Syncthing's events. The record is written atomically to the state dir.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex as SyncMutex;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, MutexGuard, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::plan::PeerDevice;
use crate::atomic_file::write_atomic;
use crate::syncthing::Client;
use crate::syncthing::events::{self, Notice};

const RECORD_FILE: &str = "syncthing.json";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Record {
    pub managed_folders: BTreeSet<String>,
    pub managed_devices: BTreeSet<String>,
    /// By node name.
    pub peer_devices: BTreeMap<String, PeerDevice>,
}

/// Shared by every SyncFolder reconcile of this controller.
pub(crate) struct SyncState {
    path: PathBuf,
    /// Held for a whole pass: passes share the record and Syncthing's config.
    record: Mutex<Record>,
    /// When each peer was last asked for its device.
    asked: SyncMutex<HashMap<String, Instant>>,
    /// (folder, device) pairs this controller has seen or made shared, so that
    /// one coming back is told apart from one shared for the first time.
    shared: SyncMutex<HashSet<(String, String)>>,
    /// Since when each peer device waits for the peer to dial first.
    deferred: SyncMutex<HashMap<String, Instant>>,
    /// When each (folder, peer node) was last seen in sync, for the message
    /// of a folder whose peer is offline.
    last_in_sync: SyncMutex<HashMap<(String, String), SystemTime>>,
    /// The task following the events of the Syncthing at this URL.
    follower: SyncMutex<Option<(String, JoinHandle<()>)>>,
    notices: mpsc::Sender<Notice>,
}

impl SyncState {
    /// The state kept in `state_dir`; Syncthing's events are told on `notices`.
    pub(crate) fn load(state_dir: &Path, notices: mpsc::Sender<Notice>) -> SyncState {
        let path = state_dir.join(RECORD_FILE);
        let record = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).unwrap_or_else(|error| {
                // Forgetting what we created only means never removing it: safe.
                tracing::warn!("ignoring unreadable {}: {error}", path.display());
                let _ = std::fs::rename(&path, path.with_extension("json.broken"));
                Record::default()
            }),
            Err(_) => Record::default(),
        };
        SyncState {
            path,
            record: Mutex::new(record),
            asked: SyncMutex::default(),
            deferred: SyncMutex::default(),
            last_in_sync: SyncMutex::default(),
            shared: SyncMutex::default(),
            follower: SyncMutex::default(),
            notices,
        }
    }

    pub(crate) async fn lock(&self) -> MutexGuard<'_, Record> {
        self.record.lock().await
    }

    pub(crate) fn save(&self, record: &Record) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
        write_atomic(&self.path, &bytes)
    }

    /// Follows `client`'s events, replacing a follower of another Syncthing.
    pub(crate) fn follow(&self, client: &Client) {
        let mut follower = self.follower.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if follower.as_ref().is_some_and(|(url, task)| url == client.api_url() && !task.is_finished()) {
            return;
        }
        if let Some((_, task)) = follower.take() {
            task.abort();
        }
        let task = tokio::spawn(events::follow(client.clone(), self.notices.clone()));
        *follower = Some((client.api_url().to_owned(), task));
    }

    /// Stops following Syncthing's events (the controller stops).
    pub(crate) fn stop_following(&self) {
        let follower = self.follower.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some((_, task)) = follower {
            task.abort();
        }
    }

    /// Whether `node` was last asked for its device more than `after` ago.
    pub(crate) fn due_to_ask(&self, node: &str, after: Duration) -> bool {
        let asked = self.asked.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        asked.get(node).is_none_or(|at| at.elapsed() >= after)
    }

    /// Whether adding `device_id` is still put off, `wait` after it first was.
    pub(crate) fn still_deferring(&self, device_id: &str, wait: Duration) -> bool {
        let mut deferred = self.deferred.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        deferred.entry(device_id.to_owned()).or_insert_with(Instant::now).elapsed() < wait
    }

    /// Notes that `folder` is shared with `devices`.
    pub(crate) fn shared(&self, folder: &str, devices: impl IntoIterator<Item = String>) {
        let mut shared = self.shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        shared.extend(devices.into_iter().map(|device| (folder.to_owned(), device)));
    }

    /// Whether `folder` was ever seen shared with `device`.
    pub(crate) fn was_shared(&self, folder: &str, device: &str) -> bool {
        let shared = self.shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        shared.contains(&(folder.to_owned(), device.to_owned()))
    }

    /// Notes that `folder` was in sync with `node` at `at`.
    pub(crate) fn saw_in_sync(&self, folder: &str, node: &str, at: SystemTime) {
        let mut seen = self.last_in_sync.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        seen.insert((folder.to_owned(), node.to_owned()), at);
    }

    /// When `folder` was last seen in sync with `node`, by this daemon.
    pub(crate) fn last_in_sync(&self, folder: &str, node: &str) -> Option<SystemTime> {
        let seen = self.last_in_sync.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        seen.get(&(folder.to_owned(), node.to_owned())).copied()
    }

    pub(crate) fn asked(&self, node: &str) {
        self.asked.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(node.to_owned(), Instant::now());
    }
}

impl Drop for SyncState {
    fn drop(&mut self) {
        self.stop_following();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_round_trips_and_a_broken_one_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let (notices, _) = mpsc::channel(1);
        let record = Record {
            managed_folders: ["agent-data".to_owned()].into(),
            managed_devices: ["AAAA-BBBB".to_owned()].into(),
            peer_devices: [(
                "mini".to_owned(),
                PeerDevice { device_id: "AAAA-BBBB".into(), address: "dynamic".into() },
            )]
            .into(),
        };
        let state = SyncState::load(dir.path(), notices.clone());
        state.save(&record).unwrap();
        let again = SyncState::load(dir.path(), notices.clone());
        assert_eq!(again.record.try_lock().unwrap().clone(), record);

        std::fs::write(dir.path().join(RECORD_FILE), "{not json").unwrap();
        let broken = SyncState::load(dir.path(), notices);
        assert_eq!(broken.record.try_lock().unwrap().clone(), Record::default());
        assert!(dir.path().join("syncthing.json.broken").exists());
    }
}
