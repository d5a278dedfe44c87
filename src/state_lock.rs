//! One daemon per state folder: an exclusive `flock` on `<folder>.lock`, a file
//! beside the state folder (not in it, so that deleting the folder cannot free
//! the lock), held for the daemon's whole life; and the folder created again
//! when it disappears while the daemon runs.

use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The lock of one state folder, held until dropped (or the process ends: the
/// kernel releases it then, so a crash never leaves a stale lock).
pub(crate) struct StateLock {
    /// Open with `O_CLOEXEC` (std's default), so no Service inherits the lock.
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum LockError {
    #[error(
        "the state folder {folder} is in use by another meshctl daemon ({holder}, which holds {lock}); \
         stop it, or give this one its own MESH_STATE_DIR"
    )]
    Held { folder: PathBuf, lock: PathBuf, holder: Holder },
    #[error("cannot lock the state folder {folder} with {lock}: {source}")]
    Io { folder: PathBuf, lock: PathBuf, source: io::Error },
}

/// The daemon holding a lock, as its lock file names it.
#[derive(Debug)]
pub(crate) struct Holder(Option<u32>);

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(pid) => write!(f, "pid {pid}"),
            None => f.write_str("pid not yet written"),
        }
    }
}

/// Locks `state_dir` for this process and creates it if needed, or says which
/// daemon holds it (touching nothing then). Returns at once either way.
pub(crate) fn acquire(state_dir: &Path) -> Result<(StateLock, StateFolder), LockError> {
    let folder = resolve(state_dir).map_err(|source| LockError::Io {
        folder: state_dir.to_owned(),
        lock: lock_path(state_dir),
        source,
    })?;
    let lock = lock_path(&folder);
    let io_error = |source| LockError::Io { folder: folder.clone(), lock: lock.clone(), source };
    let mut file = {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o644).open(&lock)
    }
    .map_err(io_error)?;
    if let Err(error) = crate::sys::try_lock_exclusive(&file) {
        if error.kind() == io::ErrorKind::WouldBlock {
            let mut text = String::new();
            let pid = file.read_to_string(&mut text).ok().and_then(|_| text.trim().parse().ok());
            return Err(LockError::Held { folder, lock, holder: Holder(pid) });
        }
        return Err(io_error(error));
    }
    file.set_len(0).and_then(|()| writeln!(file, "{}", std::process::id())).map_err(io_error)?;
    std::fs::create_dir_all(&folder).map_err(io_error)?;
    let identity = identity(&folder).map_err(io_error)?;
    Ok((StateLock { _file: file }, StateFolder { path: folder, identity }))
}

/// The folder with symlinks resolved, so that two spellings of one folder meet
/// at one lock; a folder not yet made is resolved through its parent (which
/// is created).
fn resolve(state_dir: &Path) -> io::Result<PathBuf> {
    match std::fs::canonicalize(state_dir) {
        Ok(folder) => Ok(folder),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let absolute = std::path::absolute(state_dir)?;
            let (Some(parent), Some(name)) = (absolute.parent(), absolute.file_name()) else {
                return Err(error);
            };
            std::fs::create_dir_all(parent)?;
            Ok(std::fs::canonicalize(parent)?.join(name))
        }
        Err(error) => Err(error),
    }
}

/// `<folder>.lock` beside `folder` (`/var/lib/agentmesh.lock` for
/// `/var/lib/agentmesh`).
pub(crate) fn lock_path(folder: &Path) -> PathBuf {
    let mut name = folder.file_name().unwrap_or(folder.as_os_str()).to_owned();
    name.push(".lock");
    folder.with_file_name(name)
}

/// The state folder as the daemon created it, to notice when it is deleted.
pub(crate) struct StateFolder {
    path: PathBuf,
    identity: Identity,
}

/// Device, inode and (where the file system records it) creation time: a
/// folder deleted and made again (by the daemon's own next state write, say)
/// is another folder, even when it gets the freed inode number back.
type Identity = (u64, u64, Option<SystemTime>);

/// What became of the state folder since it was last looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FolderChange {
    Unchanged,
    /// Gone: it must be created again.
    Missing,
    /// Deleted, and already made again by a state write.
    Replaced,
}

impl StateFolder {
    /// Looks at the folder (blocking: a `stat`), creates it again when it is
    /// gone, and logs either. Anything but `Unchanged` means the files the
    /// daemon keeps there are lost and should be written again.
    pub(crate) fn ensure(&mut self) -> io::Result<FolderChange> {
        let current = match identity(&self.path) {
            Ok(current) => Some(current),
            Err(error) if error.kind() == io::ErrorKind::NotFound => None,
            Err(error) => return Err(error),
        };
        let change = compare(self.identity, current);
        match change {
            FolderChange::Unchanged => return Ok(change),
            FolderChange::Missing => {
                std::fs::create_dir_all(&self.path)?;
                tracing::warn!(folder = %self.path.display(), "the state folder was deleted while the daemon ran: created it again");
            }
            FolderChange::Replaced => tracing::warn!(
                folder = %self.path.display(),
                "the state folder was deleted while the daemon ran (a state write has created it again)"
            ),
        }
        self.identity = identity(&self.path)?;
        Ok(change)
    }
}

/// The folder known as `known` is now `current` (None: gone).
fn compare(known: Identity, current: Option<Identity>) -> FolderChange {
    match current {
        None => FolderChange::Missing,
        Some(current) if current == known => FolderChange::Unchanged,
        Some(_) => FolderChange::Replaced,
    }
}

fn identity(folder: &Path) -> io::Result<Identity> {
    let metadata = std::fs::metadata(folder)?;
    Ok((metadata.dev(), metadata.ino(), metadata.created().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_file_sits_beside_the_folder() {
        assert_eq!(lock_path(Path::new("/var/lib/agentmesh")), Path::new("/var/lib/agentmesh.lock"));
        assert_eq!(
            lock_path(Path::new("/home/me/.local/state/agentmesh/")),
            Path::new("/home/me/.local/state/agentmesh.lock")
        );
    }

    #[test]
    fn a_folder_is_told_apart_from_one_made_again() {
        let (then, later) = (Some(SystemTime::UNIX_EPOCH), Some(SystemTime::now()));
        let cases = [
            ((1, 10, then), Some((1, 10, then)), FolderChange::Unchanged),
            ((1, 10, None), Some((1, 10, None)), FolderChange::Unchanged),
            ((1, 10, then), None, FolderChange::Missing),
            ((1, 10, then), Some((1, 11, then)), FolderChange::Replaced),
            ((1, 10, then), Some((2, 10, then)), FolderChange::Replaced),
            ((1, 10, then), Some((1, 10, later)), FolderChange::Replaced),
        ];
        for (known, current, expected) in cases {
            assert_eq!(compare(known, current), expected, "{known:?} now {current:?}");
        }
    }

    #[test]
    fn a_second_lock_on_the_folder_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let (_held, _) = acquire(&state).unwrap();
        let lock = lock_path(&std::fs::canonicalize(&state).unwrap());
        assert_eq!(std::fs::read_to_string(&lock).unwrap(), format!("{}\n", std::process::id()));
        // flock locks belong to the open file description: a second open in
        // this process conflicts as another process's would.
        match acquire(&state) {
            Err(LockError::Held { holder: Holder(pid), .. }) => assert_eq!(pid, Some(std::process::id())),
            Err(error) => panic!("{error}"),
            Ok(_) => panic!("the folder was locked twice"),
        }
    }

    #[test]
    fn a_deleted_folder_is_created_again_and_its_lock_stays() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let (_held, mut folder) = acquire(&state).unwrap();
        assert_eq!(folder.ensure().unwrap(), FolderChange::Unchanged);
        std::fs::remove_dir_all(&state).unwrap();
        assert_eq!(folder.ensure().unwrap(), FolderChange::Missing);
        assert!(state.is_dir());
        assert_eq!(folder.ensure().unwrap(), FolderChange::Unchanged);
        // A second daemon finds the folder gone and is refused, leaving it gone.
        std::fs::remove_dir_all(&state).unwrap();
        assert!(matches!(acquire(&state), Err(LockError::Held { .. })));
        assert!(!state.exists());
        // The daemon's own state write made it again before it looked.
        std::fs::create_dir(&state).unwrap();
        assert_eq!(folder.ensure().unwrap(), FolderChange::Replaced);
        assert_eq!(folder.ensure().unwrap(), FolderChange::Unchanged);
    }
}
