//! Conversation folders on this node: `<SyncFolder path>/<sessionsDir>/<id>/`,
//! the hash of one's content that source and target compare at the handoff
//! barrier, and the Syncthing conflict copies in it, which status reports.
//!
//! The hash covers what the agent wrote: every regular file's relative path and
//! bytes, in path order. Syncthing's own files (its marker, ignores, temporary
//! and conflict copies) and agentmesh's markers are left out, so two nodes
//! holding the same conversation agree whatever Syncthing is doing.

use std::io;
use std::path::{Path, PathBuf};

use crate::manifest::ManifestSet;

/// The prefix of the files agentmesh itself keeps in a conversation (the
/// freeze marker, stale writes set aside).
pub const MARKER_PREFIX: &str = ".agentmesh-";

/// Where one HandoffPolicy keeps its conversations on `node`: the policy's
/// name and the folder, with `~` expanded against `home`. None when the
/// policy's SyncFolder does not name `node`.
pub fn sessions_root(set: &ManifestSet, policy: &str, node: &str, home: &Path) -> Option<PathBuf> {
    let spec = &set.handoff_policies.get(policy)?.spec;
    let folder = set.sync_folders.get(&spec.sync_folder.value)?;
    let path = folder.spec.paths.iter().find(|(name, _)| name.value == node).map(|(_, path)| &path.value)?;
    let base = crate::config::expand_home_in(Path::new(path), Some(home.to_owned()));
    Some(base.join(&spec.sessions_dir.value))
}

/// The conversations under `root`: its sub-folders, by name, hidden ones left
/// out. A root that does not exist yet holds none.
pub fn conversations(root: &Path) -> io::Result<Vec<String>> {
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && entry.file_type()?.is_dir() {
            ids.push(name);
        }
    }
    ids.sort();
    Ok(ids)
}

/// Whether `id` can name a conversation folder: one path component, not
/// hidden (ids come from the peer, and become paths here).
pub fn is_conversation_id(id: &str) -> bool {
    !id.is_empty() && !id.starts_with('.') && !id.contains(['/', '\\', '\0'])
}

/// What a conversation folder holds, as the barrier compares it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Content {
    /// 40 hex digits over every counted file's relative path and bytes.
    pub hash: String,
    pub files: usize,
    pub bytes: u64,
    /// Syncthing's conflict copies (`*.sync-conflict-*`), relative paths.
    pub conflicts: Vec<String>,
}

/// Reads the conversation folder `dir` and hashes what the agent wrote.
pub fn content(dir: &Path) -> io::Result<Content> {
    let mut files = Vec::new();
    let mut conflicts = Vec::new();
    walk(dir, dir, &mut files, &mut conflicts)?;
    files.sort();
    conflicts.sort();
    let mut listing = Vec::new();
    let mut bytes = 0;
    for relative in &files {
        let data = std::fs::read(dir.join(relative))?;
        bytes += data.len() as u64;
        let blob = git2::Oid::hash_object(git2::ObjectType::Blob, &data).map_err(io::Error::other)?;
        listing.extend_from_slice(relative.as_bytes());
        listing.push(0);
        listing.extend_from_slice(blob.as_bytes());
    }
    let hash = git2::Oid::hash_object(git2::ObjectType::Blob, &listing).map_err(io::Error::other)?;
    Ok(Content { hash: hash.to_string(), files: files.len(), bytes, conflicts })
}

/// A cheap summary of the folder's files (relative path, size, modification
/// time), to tell when [`content`] must be read again: the same fingerprint
/// means the same content, short of a rewrite that keeps size and time.
pub fn fingerprint(dir: &Path) -> io::Result<u64> {
    use std::hash::{Hash, Hasher};
    let mut entries = Vec::new();
    stat_walk(dir, dir, &mut entries)?;
    entries.sort();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    entries.hash(&mut hasher);
    Ok(hasher.finish())
}

fn stat_walk(root: &Path, dir: &Path, entries: &mut Vec<(String, u64, i64, i64)>) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            stat_walk(root, &path, entries)?;
        } else if kind.is_file() {
            let meta = entry.metadata()?;
            let relative = path.strip_prefix(root).map_err(io::Error::other)?.to_string_lossy().into_owned();
            entries.push((relative, meta.len(), meta.mtime(), meta.mtime_nsec()));
        }
    }
    Ok(())
}

fn walk(root: &Path, dir: &Path, files: &mut Vec<String>, conflicts: &mut Vec<String>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(root, &path, files, conflicts)?;
            continue;
        }
        if !kind.is_file() || left_out(&name) {
            continue;
        }
        let relative = path.strip_prefix(root).map_err(io::Error::other)?.to_string_lossy().replace('\\', "/");
        if name.contains(".sync-conflict-") {
            conflicts.push(relative);
        } else {
            files.push(relative);
        }
    }
    Ok(())
}

/// Files that are Syncthing's or agentmesh's, not the conversation's.
fn left_out(name: &str) -> bool {
    name == ".stfolder"
        || name == ".stignore"
        || name.starts_with(".syncthing.") && name.ends_with(".tmp")
        || name.starts_with("~syncthing~") && name.ends_with(".tmp")
        || name.starts_with(MARKER_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, relative: &str, text: &str) {
        let path = dir.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn the_hash_is_the_conversations_content_and_nothing_else() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        for dir in [a.path(), b.path()] {
            write(dir, "messages.jsonl", "{\"role\":\"user\"}\n");
            write(dir, "attachments/notes.md", "# notes\n");
        }
        // Syncthing's and agentmesh's own files differ between the nodes.
        write(a.path(), ".syncthing.messages.jsonl.tmp", "partial");
        write(b.path(), "attachments/~syncthing~notes.md.tmp", "partial");
        write(a.path(), ".agentmesh-frozen", "epoch 3");
        let (content_a, content_b) = (content(a.path()).unwrap(), content(b.path()).unwrap());
        assert_eq!(content_a, content_b);
        assert_eq!((content_a.files, content_a.bytes), (2, 24));

        let cases = [
            ("a byte changed", "messages.jsonl", "{\"role\":\"usex\"}\n"),
            ("a file added", "attachments/more.md", ""),
            ("a file renamed", "attachments/notes2.md", "# notes\n"),
        ];
        for (case, relative, text) in cases {
            let c = tempfile::tempdir().unwrap();
            write(c.path(), "messages.jsonl", "{\"role\":\"user\"}\n");
            write(c.path(), "attachments/notes.md", "# notes\n");
            write(c.path(), relative, text);
            if case == "a file renamed" {
                std::fs::remove_file(c.path().join("attachments/notes.md")).unwrap();
            }
            assert_ne!(content(c.path()).unwrap().hash, content_a.hash, "{case}");
        }
    }

    #[test]
    fn the_fingerprint_changes_with_a_file_and_not_without() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "messages.jsonl", "x");
        let first = fingerprint(dir.path()).unwrap();
        assert_eq!(fingerprint(dir.path()).unwrap(), first);
        write(dir.path(), "messages.jsonl", "xy");
        let second = fingerprint(dir.path()).unwrap();
        assert_ne!(second, first);
        write(dir.path(), "attachments/a.md", "");
        assert_ne!(fingerprint(dir.path()).unwrap(), second);
    }

    #[test]
    fn a_conversation_id_is_one_visible_path_component() {
        for id in ["c-1", "2026-11-28 chat", "a.b"] {
            assert!(is_conversation_id(id), "{id}");
        }
        for id in ["", ".", "..", "../x", "a/b", ".hidden", "a\\b"] {
            assert!(!is_conversation_id(id), "{id}");
        }
    }

    #[test]
    fn conflict_copies_are_reported_not_hashed() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "messages.jsonl", "x");
        let clean = content(dir.path()).unwrap();
        write(dir.path(), "messages.sync-conflict-20261128-101500-ABCDEFG.jsonl", "y");
        let with_conflict = content(dir.path()).unwrap();
        assert_eq!(with_conflict.hash, clean.hash);
        assert_eq!(with_conflict.conflicts, ["messages.sync-conflict-20261128-101500-ABCDEFG.jsonl"]);
    }

    #[test]
    fn conversations_are_the_visible_sub_folders_of_the_sessions_folder() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(conversations(&root.path().join("not-yet")).unwrap(), Vec::<String>::new());
        for name in ["b-2", "a-1", ".stversions"] {
            std::fs::create_dir(root.path().join(name)).unwrap();
        }
        write(root.path(), "README.md", "not a conversation");
        assert_eq!(conversations(root.path()).unwrap(), ["a-1", "b-2"]);
    }

    #[test]
    fn a_policy_keeps_its_conversations_under_its_folder_on_each_node() {
        let text = "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: a}\nspec: {role: primary, address: a}\n---\n\
                    apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: b}\nspec: {role: satellite, address: b}\n---\n\
                    apiVersion: agentmesh/v1alpha1\nkind: SyncFolder\nmetadata: {name: data}\n\
                    spec: {paths: {a: ~/agent_data, b: /srv/agent}}\n---\n\
                    apiVersion: agentmesh/v1alpha1\nkind: HandoffPolicy\nmetadata: {name: chats}\n\
                    spec: {syncFolder: data, sessionsDir: sessions}\n";
        let validation = crate::manifest::validate(
            &[crate::manifest::SourceFile { path: "m.yaml".into(), text: text.into() }],
            Vec::new(),
        );
        assert!(validation.is_valid(), "{:?}", validation.diagnostics);
        let home = Path::new("/home/me");
        let set = &validation.set;
        assert_eq!(sessions_root(set, "chats", "a", home), Some(PathBuf::from("/home/me/agent_data/sessions")));
        assert_eq!(sessions_root(set, "chats", "b", home), Some(PathBuf::from("/srv/agent/sessions")));
        assert_eq!(sessions_root(set, "chats", "c", home), None);
        assert_eq!(sessions_root(set, "other", "a", home), None);
    }
}
