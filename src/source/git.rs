//! The Git source: the controller's own clone of `MESH_GIT_REMOTE` under the state
//! folder, fetched and fast-forwarded on an interval and when nudged. The user's
//! working copy is never touched.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;

use super::SourceUpdate;

/// `MESH_GIT_*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitSettings {
    pub remote: String,
    pub branch: String,
    /// The manifests folder inside the repository.
    pub path: String,
    pub interval: Duration,
}

/// Keeps the clone in `clone_dir` at the remote branch's head and sends a
/// snapshot of `settings.path` for every new commit, until `updates` closes.
/// Fetches at start, every `interval`, and on each nudge.
pub async fn run(
    settings: GitSettings,
    clone_dir: PathBuf,
    updates: mpsc::Sender<SourceUpdate>,
    nudges: mpsc::Receiver<()>,
) {
    let _ = (settings, clone_dir, updates, nudges);
    unimplemented!("the Git source")
}
