//! `client.env` in the state folder, which the Capability reconciler renders
//! and every capability's reconcile may write.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The client env's file name in the state folder.
pub const CLIENT_ENV_FILE: &str = "client.env";

/// `client.env` in the state folder. Cheap to clone; clones share the lock
/// that keeps two capabilities' reconciles from writing it at once.
#[derive(Clone, Debug)]
pub struct ClientEnvFile {
    path: PathBuf,
    lock: Arc<Mutex<()>>,
}

impl ClientEnvFile {
    /// The file of the state folder `state_dir`.
    pub fn in_state_dir(state_dir: &Path) -> Self {
        ClientEnvFile { path: state_dir.join(CLIENT_ENV_FILE), lock: Arc::default() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes what `render` returns, called under the lock, when it differs
    /// from the file (atomically, with an fsync: on a blocking thread, off the
    /// runtime's). Rendering under the lock means the last writer always wrote
    /// the newest table.
    pub(super) async fn write(&self, render: impl FnOnce() -> String + Send + 'static) -> std::io::Result<bool> {
        let file = self.clone();
        tokio::task::spawn_blocking(move || file.write_blocking(render)).await.map_err(std::io::Error::other)?
    }

    fn write_blocking(&self, render: impl FnOnce() -> String) -> std::io::Result<bool> {
        let _guard = self.lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let text = render();
        if std::fs::read_to_string(&self.path).is_ok_and(|old| old == text) {
            return Ok(false);
        }
        crate::atomic_file::write_atomic(&self.path, text.as_bytes())?;
        Ok(true)
    }
}
