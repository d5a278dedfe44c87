//! The watched manifests folder: a snapshot at start and after every change,
//! debounced, only when the content changed.

use std::path::PathBuf;
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio::sync::mpsc;

use super::{Snapshot, SourceUpdate, folder_revision};
use crate::manifest::loader;

/// How long the folder must be quiet before it is read: an editor's save is
/// several events.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// Watches the folder while it is alive.
pub struct FolderSource {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
}

/// Starts watching `dir`, sending a snapshot now and after each change.
pub fn watch(dir: PathBuf, updates: mpsc::Sender<SourceUpdate>) -> notify::Result<FolderSource> {
    let (changed, mut changes) = mpsc::channel::<()>(1);
    let mut debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| {
        if result.is_ok_and(|events| !events.is_empty()) {
            // A full channel already holds a pending re-read.
            let _ = changed.try_send(());
        }
    })?;
    debouncer.watch(&dir, RecursiveMode::Recursive)?;
    tokio::spawn(async move {
        let mut last_revision = None;
        loop {
            let read_dir = dir.clone();
            let update = tokio::task::spawn_blocking(move || read(&read_dir)).await;
            let update = match update {
                Ok(update) => update,
                Err(error) => SourceUpdate::Unavailable { origin: origin(&dir), message: error.to_string() },
            };
            let fresh = match &update {
                SourceUpdate::Snapshot(snapshot) => last_revision.as_ref() != Some(&snapshot.revision),
                _ => true,
            };
            if fresh {
                if let SourceUpdate::Snapshot(snapshot) = &update {
                    last_revision = Some(snapshot.revision.clone());
                }
                if updates.send(update).await.is_err() {
                    return;
                }
            }
            if changes.recv().await.is_none() {
                return;
            }
        }
    });
    Ok(FolderSource { _debouncer: debouncer })
}

/// Reads the folder once.
pub fn read(dir: &std::path::Path) -> SourceUpdate {
    match loader::load_dir(dir) {
        Ok((files, problems)) => {
            let (revision, _) = folder_revision(dir, &files);
            SourceUpdate::Snapshot(Snapshot { revision, files, problems, origin: origin(dir) })
        }
        Err(error) => SourceUpdate::Unavailable { origin: origin(dir), message: error.to_string() },
    }
}

fn origin(dir: &std::path::Path) -> String {
    format!("folder {}", dir.display())
}
