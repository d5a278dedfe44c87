//! The watched manifests folder: a snapshot at start and after every change,
//! debounced, only when the content changed. A file that became empty, shrank
//! or vanished is held at its last sent text until it settles (`settle`), and
//! the folder is read again when it has. The debounce and the settle time are
//! timers in the reading task, so a quiet folder costs no wakeups at all.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, Event, EventKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch as watch_channel};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::settle::{Decision, Settle};
use super::{Snapshot, SourceUpdate, content_revision, folder_revision};
use crate::manifest::loader;

/// How long the folder must be quiet before it is read: an editor's save is
/// several events.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// Watches the folder while it is alive; dropping it stops the reading task,
/// even one waiting to hand over a snapshot.
pub struct FolderSource {
    _watcher: RecommendedWatcher,
    /// Asks the reading task for a fresh read, as a change does.
    changed: mpsc::Sender<()>,
    reading: JoinHandle<()>,
}

impl Drop for FolderSource {
    fn drop(&mut self) {
        self.reading.abort();
    }
}

impl FolderSource {
    /// Reads the folder again now (SIGHUP); a snapshot follows only when the
    /// content differs from the last one sent.
    pub fn rescan(&self) {
        let _ = self.changed.try_send(());
    }
}

/// Starts watching `dir`, sending a snapshot now and after each change.
/// `settle_time` is the Mesh in force's `reconcile.settleTime`.
pub fn watch(
    dir: PathBuf,
    updates: mpsc::Sender<SourceUpdate>,
    settle_time: watch_channel::Receiver<Duration>,
) -> notify::Result<FolderSource> {
    let (changed, mut changes) = mpsc::channel::<()>(1);
    let on_change = changed.clone();
    let mut watcher = notify::recommended_watcher(move |result: notify::Result<Event>| {
        if result.is_ok_and(|event| is_change(&event)) {
            // A full channel already holds a pending re-read.
            let _ = on_change.try_send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::Recursive)?;
    let reading = tokio::spawn(async move {
        let mut last_revision = None;
        let mut settle = Settle::default();
        loop {
            let read_dir = dir.clone();
            let update = tokio::task::spawn_blocking(move || read(&read_dir)).await;
            let update = match update {
                Ok(update) => update,
                Err(error) => SourceUpdate::Unavailable { origin: origin(&dir), message: error.to_string() },
            };
            let mut look_again = None;
            let update = match update {
                SourceUpdate::Snapshot(snapshot) => {
                    let decision = settle.step(&snapshot.files, Instant::now(), *settle_time.borrow());
                    look_again = decision.look_again;
                    settled(snapshot, decision, &dir).map(SourceUpdate::Snapshot)
                }
                other => Some(other),
            };
            let fresh = match &update {
                Some(SourceUpdate::Snapshot(snapshot)) => last_revision.as_ref() != Some(&snapshot.revision),
                Some(_) => true,
                None => false,
            };
            if let Some(update) = update.filter(|_| fresh) {
                if let SourceUpdate::Snapshot(snapshot) = &update {
                    last_revision = Some(snapshot.revision.clone());
                }
                if updates.send(update).await.is_err() {
                    return;
                }
            }
            match next_wake(&mut changes, look_again).await {
                Wake::Changed => {}
                Wake::Settled => continue,
                Wake::Closed => return,
            }
            // Read once the events have stopped for DEBOUNCE.
            loop {
                match tokio::time::timeout(DEBOUNCE, changes.recv()).await {
                    Ok(Some(())) => {}
                    Ok(None) => return,
                    Err(_quiet) => break,
                }
            }
        }
    });
    Ok(FolderSource { _watcher: watcher, changed, reading })
}

/// Reads the folder once.
pub fn read(dir: &Path) -> SourceUpdate {
    match loader::load_dir(dir) {
        Ok((files, problems)) => {
            let (revision, _) = folder_revision(dir, &files);
            SourceUpdate::Snapshot(Snapshot { revision, files, problems, origin: origin(dir) })
        }
        Err(error) => SourceUpdate::Unavailable { origin: origin(dir), message: error.to_string() },
    }
}

/// What ends the reading task's wait.
enum Wake {
    /// The folder changed: read it once the events stop.
    Changed,
    /// A held file has settled: read the folder again now.
    Settled,
    /// The `FolderSource` is gone.
    Closed,
}

/// Waits for a change, or until `look_again` when a file is held.
async fn next_wake(changes: &mut mpsc::Receiver<()>, look_again: Option<Instant>) -> Wake {
    let change = match look_again {
        Some(at) => match tokio::time::timeout_at(at, changes.recv()).await {
            Ok(change) => change,
            Err(_settled) => return Wake::Settled,
        },
        None => changes.recv().await,
    };
    if change.is_some() { Wake::Changed } else { Wake::Closed }
}

/// The snapshot to send once `decision` is taken: as read when nothing is
/// held; else with each held file's last sent text (and without the problem
/// of one that could not be read), named by its content. None when that is
/// what was sent last.
fn settled(mut snapshot: Snapshot, decision: Decision, dir: &Path) -> Option<Snapshot> {
    if decision.held.is_empty() {
        return Some(snapshot);
    }
    tracing::info!(files = ?decision.held, "a file shrank: what it declares is held until it settles");
    if decision.unchanged {
        return None;
    }
    snapshot.revision = content_revision(dir, &decision.files);
    snapshot.problems.retain(|problem| !decision.held.contains(&problem.file));
    snapshot.files = decision.files;
    Some(snapshot)
}

fn origin(dir: &Path) -> String {
    format!("folder {}", dir.display())
}

/// Whether `event` may mean that the folder's content changed. Opening and
/// reading files is reported too (inotify's open): acting on it would re-read
/// the folder because the folder was read, over and over.
fn is_change(event: &Event) -> bool {
    !matches!(event.kind, EventKind::Access(kind) if kind != AccessKind::Close(AccessMode::Write))
}

#[cfg(test)]
mod tests {
    use notify::event::{CreateKind, DataChange, ModifyKind, RemoveKind};

    use super::*;

    #[test]
    fn reading_the_folder_is_no_change_and_writing_it_is() {
        let table = [
            (EventKind::Access(AccessKind::Open(AccessMode::Any)), false),
            (EventKind::Access(AccessKind::Read), false),
            (EventKind::Access(AccessKind::Close(AccessMode::Read)), false),
            (EventKind::Access(AccessKind::Close(AccessMode::Write)), true),
            (EventKind::Create(CreateKind::File), true),
            (EventKind::Modify(ModifyKind::Data(DataChange::Any)), true),
            (EventKind::Remove(RemoveKind::File), true),
            (EventKind::Other, true),
        ];
        for (kind, change) in table {
            assert_eq!(is_change(&Event::new(kind)), change, "{kind:?}");
        }
    }

    #[tokio::test]
    async fn dropping_the_source_stops_a_reading_task_waiting_to_hand_over_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), "kind: Node\n").unwrap();
        let (updates, mut received) = mpsc::channel(1);
        let (_settle_time, settle_time) = watch_channel::channel(Duration::ZERO);
        let source = watch(dir.path().to_owned(), updates, settle_time).unwrap();
        // The first snapshot fills the channel; the next waits to be taken.
        let first = tokio::time::timeout(Duration::from_secs(5), received.recv()).await.unwrap();
        assert!(matches!(first, Some(SourceUpdate::Snapshot(_))), "{first:?}");
        std::fs::write(dir.path().join("b.yaml"), "kind: Node\n").unwrap();
        source.rescan();
        tokio::time::timeout(Duration::from_secs(5), async {
            while received.capacity() > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("a second snapshot fills the channel");
        std::fs::write(dir.path().join("c.yaml"), "kind: Node\n").unwrap();
        source.rescan();
        // The task now reads c.yaml and waits for room; nothing takes it.
        tokio::time::sleep(DEBOUNCE * 3).await;

        drop(source);
        // Without taking anything: taking would let the task finish on its own.
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            while !received.is_closed() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(closed.is_ok(), "the reading task, and the sender it held, are gone");
    }
}
