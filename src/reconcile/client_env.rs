//! `client.env` in the state folder, which the Capability reconciler renders
//! and every capability's reconcile may write.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The client env's file name in the state folder.
pub(crate) const CLIENT_ENV_FILE: &str = "client.env";

/// `client.env` in the state folder. Cheap to clone; clones share the lock
/// that keeps two capabilities' reconciles from writing it at once.
#[derive(Clone, Debug)]
pub(crate) struct ClientEnvFile {
    path: PathBuf,
    lock: Arc<Mutex<()>>,
}

impl ClientEnvFile {
    /// The file of the state folder `state_dir`.
    pub(crate) fn in_state_dir(state_dir: &Path) -> Self {
        ClientEnvFile { path: state_dir.join(CLIENT_ENV_FILE), lock: Arc::default() }
    }

    pub(crate) fn path(&self) -> &Path {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_file_is_rendered_and_written_off_the_runtimes_thread_and_only_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = ClientEnvFile::in_state_dir(dir.path());
        let runtime_thread = std::thread::current().id();
        let (rendered_on, told) = std::sync::mpsc::channel();
        let render = move || {
            rendered_on.send(std::thread::current().id()).unwrap();
            "LLM_NODE=mini\n".to_owned()
        };
        assert!(file.write(render).await.unwrap(), "a new file is written");
        assert_ne!(told.recv().unwrap(), runtime_thread, "rendered and written on a blocking thread");
        assert_eq!(std::fs::read_to_string(dir.path().join(CLIENT_ENV_FILE)).unwrap(), "LLM_NODE=mini\n");
        assert!(!file.write(|| "LLM_NODE=mini\n".to_owned()).await.unwrap(), "the same text is not written again");
    }
}
