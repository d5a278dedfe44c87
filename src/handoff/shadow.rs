//! The owner's shadow of a conversation: a copy of every file as the owner
//! last had it, so that a stale write from the other node (`stale.rs`) never
//! costs the owner its version. Kept on the owner only, in
//! `<state dir>/handoff-shadow/<policy>/<id>/`: `index.json` (the epoch it was
//! taken at, each file's [`Stat`]) and the copies under `files/`. It is taken
//! afresh whenever this node becomes the owner at a new epoch (from what it
//! accepted), and dropped when it no longer owns the conversation.
//!
//! Copies are made with `std::fs::copy`, which clones the file where the file
//! system can (APFS, Btrfs), so a large conversation costs little.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::folder::{self, MARKER_PREFIX, Stat};
use super::stale::{Action, Source};

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    epoch: u64,
    files: BTreeMap<String, Stat>,
}

/// One conversation's shadow.
#[derive(Debug)]
pub(crate) struct Shadow {
    dir: PathBuf,
    pub epoch: u64,
    /// Each file's [`Stat`] when it was copied: the conversation's file with
    /// another `Stat` has changed since.
    pub files: BTreeMap<String, Stat>,
}

impl Shadow {
    /// The shadow kept in `dir`, if there is a readable one.
    pub(crate) fn load(dir: &Path) -> Option<Shadow> {
        let bytes = std::fs::read(dir.join("index.json")).ok()?;
        let index: Index = serde_json::from_slice(&bytes).ok()?;
        Some(Shadow { dir: dir.to_owned(), epoch: index.epoch, files: index.files })
    }

    /// The shadow in `dir` at `epoch`: the one there, or a fresh copy of the
    /// conversation folder `conversation` when the one there is of another
    /// epoch (or missing). The flag says whether it was taken now.
    pub(crate) fn at_epoch(dir: &Path, conversation: &Path, epoch: u64) -> io::Result<(Shadow, bool)> {
        if let Some(shadow) = Shadow::load(dir).filter(|shadow| shadow.epoch == epoch) {
            return Ok((shadow, false));
        }
        // Hidden, so no conversation id can name it.
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        let fresh = dir.with_file_name(format!(".{name}.new"));
        remove_dir(&fresh)?;
        let mut shadow = Shadow { dir: fresh.clone(), epoch, files: BTreeMap::new() };
        for path in folder::files_if_any(conversation)?.keys() {
            shadow.adopt(conversation, path)?;
        }
        shadow.save()?;
        remove_dir(dir)?;
        std::fs::rename(&fresh, dir)?;
        shadow.dir = dir.to_owned();
        Ok((shadow, true))
    }

    /// Drops the shadow in `dir`, if any.
    pub(crate) fn remove(dir: &Path) -> io::Result<()> {
        remove_dir(dir)
    }

    fn copy(&self, path: &str) -> PathBuf {
        self.dir.join("files").join(path)
    }

    /// Copies the conversation's `path` into the shadow. A file that changes
    /// while it is copied is left for the next pass.
    pub(crate) fn adopt(&mut self, conversation: &Path, path: &str) -> io::Result<()> {
        let source = conversation.join(path);
        let before = Stat::of(&std::fs::metadata(&source)?);
        let copy = self.copy(path);
        if let Some(parent) = copy.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(&source, &copy)?;
        if Stat::of(&std::fs::metadata(&source)?) == before {
            self.files.insert(path.to_owned(), before);
        }
        Ok(())
    }

    /// Saves the index (atomically): what is copied is known after a restart.
    pub(crate) fn save(&self) -> io::Result<()> {
        let index = Index { epoch: self.epoch, files: self.files.clone() };
        let bytes = serde_json::to_vec_pretty(&index).map_err(io::Error::other)?;
        crate::atomic_file::write_atomic(&self.dir.join("index.json"), &bytes)
    }

    /// Carries out a `stale::plan`'s actions on the conversation folder, in
    /// order, up to the first that fails. A file set aside whose owner's
    /// version then cannot come back is put back in its place: set aside and
    /// missing, it would read as a deletion by the owner on the next pass.
    pub(crate) fn apply_all(&mut self, conversation: &Path, actions: &[Action]) -> io::Result<()> {
        for (index, action) in actions.iter().enumerate() {
            let Err(error) = self.apply(conversation, action) else { continue };
            let previous = index.checked_sub(1).map(|before| &actions[before]);
            if let (Action::Restore { path, .. }, Some(Action::SetAside { path: aside, to, .. })) = (action, previous)
                && aside == path
            {
                let _ = std::fs::rename(conversation.join(to), conversation.join(path));
            }
            return Err(error);
        }
        Ok(())
    }

    /// Carries out one action of a `stale::plan` on the conversation folder.
    fn apply(&mut self, conversation: &Path, action: &Action) -> io::Result<()> {
        match action {
            Action::Adopt(path) => self.adopt(conversation, path),
            Action::Forget(path) => {
                let _ = std::fs::remove_file(self.copy(path));
                self.files.remove(path);
                Ok(())
            }
            Action::SetAside { path, to, .. } => std::fs::rename(conversation.join(path), conversation.join(to)),
            Action::Restore { path, from: Source::ConflictCopy(copy) } => {
                std::fs::rename(conversation.join(copy), conversation.join(path))
            }
            Action::Restore { path, from: Source::Shadow } => {
                let target = conversation.join(path);
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                // Copied next to it, then renamed over: the agent never reads half a file.
                let temporary = target.with_file_name(format!("{MARKER_PREFIX}restore.tmp"));
                std::fs::copy(self.copy(path), &temporary)?;
                std::fs::rename(&temporary, &target)?;
                // The same content as the copy: only its Stat is new.
                self.files.insert(path.clone(), Stat::of(&std::fs::metadata(&target)?));
                Ok(())
            }
        }
    }
}

fn remove_dir(dir: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, path: &str, text: &str) {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn read(dir: &Path, path: &str) -> String {
        std::fs::read_to_string(dir.join(path)).unwrap()
    }

    #[test]
    fn a_shadow_is_taken_once_per_epoch_and_survives_a_restart() {
        let (state, chat) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        write(chat.path(), "m.jsonl", "one\n");
        write(chat.path(), "attachments/a.md", "# a\n");
        write(chat.path(), ".agentmesh-frozen", "h1\n");
        let dir = state.path().join("chats/c1");
        let (shadow, taken) = Shadow::at_epoch(&dir, chat.path(), 2).unwrap();
        assert!(taken);
        assert_eq!(shadow.files.keys().collect::<Vec<_>>(), ["attachments/a.md", "m.jsonl"]);
        assert_eq!(read(&dir, "files/attachments/a.md"), "# a\n");

        write(chat.path(), "m.jsonl", "one\ntwo\n");
        let (again, taken) = Shadow::at_epoch(&dir, chat.path(), 2).unwrap();
        assert!(!taken, "the same epoch keeps the shadow");
        assert_eq!(read(&dir, "files/m.jsonl"), "one\n");
        assert_eq!(again.files, shadow.files);

        let (_, taken) = Shadow::at_epoch(&dir, chat.path(), 3).unwrap();
        assert!(taken, "a new epoch takes it afresh");
        assert_eq!(read(&dir, "files/m.jsonl"), "one\ntwo\n");
        Shadow::remove(&dir).unwrap();
        assert!(Shadow::load(&dir).is_none());
    }

    #[test]
    fn a_stale_write_is_set_aside_and_the_owners_version_put_back() {
        let (state, chat) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        write(chat.path(), "m.jsonl", "owner\n");
        let dir = state.path().join("chats/c1");
        let (mut shadow, _) = Shadow::at_epoch(&dir, chat.path(), 2).unwrap();
        write(chat.path(), "m.jsonl", "owner\nstale line\n");
        let actions = [
            Action::SetAside { path: "m.jsonl".into(), to: "m.jsonl.stale-2".into(), by: "PEER777".into() },
            Action::Restore { path: "m.jsonl".into(), from: Source::Shadow },
        ];
        shadow.apply_all(chat.path(), &actions).unwrap();
        assert_eq!(read(chat.path(), "m.jsonl"), "owner\n");
        assert_eq!(read(chat.path(), "m.jsonl.stale-2"), "owner\nstale line\n");
        assert_eq!(folder::files(chat.path()).unwrap()["m.jsonl"], shadow.files["m.jsonl"]);
        assert!(!chat.path().join(".agentmesh-restore.tmp").exists());
    }

    #[test]
    fn a_file_set_aside_whose_owners_version_cannot_come_back_returns_to_its_place() {
        let (state, chat) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        write(chat.path(), "m.jsonl", "owner\n");
        let dir = state.path().join("chats/c1");
        let (mut shadow, _) = Shadow::at_epoch(&dir, chat.path(), 2).unwrap();
        write(chat.path(), "m.jsonl", "stale\n");
        std::fs::remove_file(dir.join("files/m.jsonl")).unwrap();
        let actions = [
            Action::SetAside { path: "m.jsonl".into(), to: "m.jsonl.stale-2".into(), by: "PEER777".into() },
            Action::Restore { path: "m.jsonl".into(), from: Source::Shadow },
        ];
        assert!(shadow.apply_all(chat.path(), &actions).is_err());
        assert_eq!(read(chat.path(), "m.jsonl"), "stale\n");
        assert!(!chat.path().join("m.jsonl.stale-2").exists());
    }
}
