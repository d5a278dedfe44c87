//! Conversation folders on this node: `<SyncFolder path>/<sessionsDir>/<id>/`,
//! the hash of one's content that source and target compare at the handoff
//! barrier, and the Syncthing conflict copies in it, which status reports.
//!
//! The hash covers what the agent wrote: every regular file's relative path and
//! bytes, in path order (stale writes set aside included). Syncthing's own files (its marker, ignores, temporary
//! and conflict copies) and agentmesh's markers are left out, so two nodes
//! holding the same conversation agree whatever Syncthing is doing.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::git::blob::{blob_hex, blob_id};
use crate::manifest::ManifestSet;

/// The prefix of the files agentmesh itself keeps in a conversation (the
/// freeze marker, a restored file on its way in). Stale writes set aside are
/// the conversation's, not agentmesh's: they are named after their file.
pub(crate) const MARKER_PREFIX: &str = ".agentmesh-";

/// Where one HandoffPolicy keeps its conversations on `node`: the policy's
/// name and the folder, with `~` expanded against `home`. None when the
/// policy's SyncFolder does not name `node`.
pub(crate) fn sessions_root(set: &ManifestSet, policy: &str, node: &str, home: &Path) -> Option<PathBuf> {
    let spec = &set.handoff_policies.get(policy)?.spec;
    let folder = set.sync_folders.get(&spec.sync_folder.value)?;
    let path = folder.spec.paths.iter().find(|(name, _)| name.value == node).map(|(_, path)| &path.value)?;
    let base = crate::config::expand_home_in(Path::new(path), Some(home.to_owned()));
    Some(base.join(&spec.sessions_dir.value))
}

/// The user's home folder, which `~` in a SyncFolder's path names.
pub(crate) fn home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default()
}

/// The other nodes of the policy's SyncFolder, by name.
pub(crate) fn others_of(set: &ManifestSet, policy: &str, me: &str) -> Vec<String> {
    let Some(spec) = set.handoff_policies.get(policy).map(|policy| &policy.spec) else { return Vec::new() };
    let Some(folder) = set.sync_folders.get(&spec.sync_folder.value) else { return Vec::new() };
    folder.spec.paths.keys().map(|node| node.value.clone()).filter(|node| node != me).collect()
}

/// The longest conversation id, in bytes.
pub(crate) const MAX_CONVERSATION_ID: usize = 128;

/// The sub-folders of a sessions root, by name: the conversations, and the
/// visible folders whose name is not a conversation id (never claimed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Listing {
    pub ids: Vec<String>,
    pub ignored: Vec<String>,
}

/// The conversations under `root`: its sub-folders, by name, hidden ones left
/// out. A root that does not exist yet holds none.
pub(crate) fn conversations(root: &Path) -> io::Result<Listing> {
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Listing::default()),
        Err(error) => return Err(error),
    };
    let mut listing = Listing::default();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !entry.file_type()?.is_dir() {
            continue;
        }
        match check_conversation_id(&name) {
            Ok(()) => listing.ids.push(name),
            Err(_) => listing.ignored.push(name),
        }
    }
    listing.ids.sort();
    listing.ignored.sort();
    Ok(listing)
}

/// Whether `id` can name a conversation: 1 to 128 bytes of `[A-Za-z0-9._-]`,
/// not starting with a dot. Ids come from users and from the peer and become
/// file and folder names here, so one rule, checked where they enter, keeps
/// them one visible, portable path component. The error says what is wrong.
pub(crate) fn check_conversation_id(id: &str) -> Result<(), String> {
    check_id("conversation id", id)
}

/// [`check_conversation_id`]'s rule for any id named `what` (a handoff id,
/// `<node>-<millis>`, keeps it too).
pub(crate) fn check_id(what: &str, id: &str) -> Result<(), String> {
    let shown = || format!("{:?}", id.chars().take(40).collect::<String>());
    if id.is_empty() {
        return Err(format!("a {what} cannot be empty"));
    }
    if id.len() > MAX_CONVERSATION_ID {
        return Err(format!("{what} {}… is {} bytes; at most {MAX_CONVERSATION_ID} are allowed", shown(), id.len()));
    }
    if id.starts_with('.') {
        return Err(format!("{what} {} starts with a dot", shown()));
    }
    if let Some(bad) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(format!("{what} {} holds {bad:?}; only A-Z, a-z, 0-9, '.', '_' and '-' are allowed", shown()));
    }
    Ok(())
}

/// What a conversation folder holds, as the barrier compares it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Content {
    /// 40 hex digits over every counted file's relative path and bytes.
    pub hash: String,
    pub files: usize,
    pub bytes: u64,
    /// Syncthing's conflict copies (`*.sync-conflict-*`), relative paths.
    pub conflicts: Vec<String>,
    /// Stale writes the owner kept aside (`<file>.stale-<epoch>`), relative
    /// paths. They are hashed like any file: both nodes hold them.
    pub stale: Vec<String>,
}

/// Reads the conversation folder `dir` and hashes what the agent wrote.
pub(crate) fn content(dir: &Path) -> io::Result<Content> {
    let (conflicts, files): (Vec<String>, Vec<String>) =
        files(dir)?.into_keys().partition(|relative| conflict_base(relative).is_some());
    let mut listing = Vec::new();
    let mut bytes = 0;
    for relative in &files {
        let data = std::fs::read(dir.join(relative))?;
        bytes += data.len() as u64;
        listing.extend_from_slice(relative.as_bytes());
        listing.push(0);
        listing.extend_from_slice(&blob_id(&data));
    }
    let hash = blob_hex(&listing);
    let stale = files.iter().filter(|relative| is_stale_copy(relative)).cloned().collect();
    Ok(Content { hash, files: files.len(), bytes, conflicts, stale })
}

/// A file's size and modification time: what tells a changed file from an
/// unchanged one without reading it (and what Syncthing records of it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Stat {
    pub size: u64,
    /// Nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
}

impl Stat {
    pub(crate) fn of(meta: &std::fs::Metadata) -> Stat {
        use std::os::unix::fs::MetadataExt as _;
        Stat { size: meta.len(), mtime_ns: meta.mtime().saturating_mul(1_000_000_000) + meta.mtime_nsec() }
    }
}

/// Every file of the conversation folder `dir` (conflict copies included,
/// Syncthing's and agentmesh's own files left out) by relative path, with its
/// [`Stat`].
pub(crate) fn files(dir: &Path) -> io::Result<BTreeMap<String, Stat>> {
    let mut found = BTreeMap::new();
    stat_walk(dir, dir, &mut found)?;
    Ok(found)
}

/// [`files`], or none when the folder itself is not there.
pub(crate) fn files_if_any(dir: &Path) -> io::Result<BTreeMap<String, Stat>> {
    match files(dir) {
        Err(error) if error.kind() == io::ErrorKind::NotFound && !dir.exists() => Ok(BTreeMap::new()),
        result => result,
    }
}

/// A cheap summary of the folder's files (relative path, size, modification
/// time), to tell when [`content`] must be read again: the same fingerprint
/// means the same content, short of a rewrite that keeps size and time.
pub(crate) fn fingerprint(dir: &Path) -> io::Result<u64> {
    Ok(fingerprint_of(&files(dir)?))
}

/// The fingerprint of files already listed by [`files`].
pub(crate) fn fingerprint_of(files: &BTreeMap<String, Stat>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    files.hash(&mut hasher);
    hasher.finish()
}

/// The name a stale write to `path` is kept aside under: `<path>.stale-<epoch>`,
/// or `<path>.stale-<epoch>-<n>` when that is taken.
pub(crate) fn stale_copy_name(path: &str, epoch: u64, taken: impl Fn(&str) -> bool) -> String {
    let first = format!("{path}.stale-{epoch}");
    if !taken(&first) {
        return first;
    }
    (2..).map(|n| format!("{first}-{n}")).find(|name| !taken(name)).expect("some number is free")
}

/// Whether `path` is a stale write kept aside ([`stale_copy_name`]).
pub(crate) fn is_stale_copy(path: &str) -> bool {
    path.rsplit_once(".stale-").is_some_and(|(_, tag)| {
        !tag.is_empty() && tag.split('-').all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
    })
}

fn stat_walk(root: &Path, dir: &Path, found: &mut BTreeMap<String, Stat>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            stat_walk(root, &path, found)?;
        } else if kind.is_file() && !left_out(&entry.file_name().to_string_lossy()) {
            let relative = path.strip_prefix(root).map_err(io::Error::other)?.to_string_lossy().replace('\\', "/");
            found.insert(relative, Stat::of(&entry.metadata()?));
        }
    }
    Ok(())
}

/// The file a Syncthing conflict copy is a copy of:
/// `notes.sync-conflict-20261128-142704-LW3TOQJ.md` is one of `notes.md`.
pub(crate) fn conflict_base(path: &str) -> Option<String> {
    let (stem, rest) = path.rsplit_once(".sync-conflict-")?;
    // `<date>-<time>-<short device id>`, then the extension if any.
    let tag_len = "20261128-142704-LW3TOQJ".len();
    let tag = rest.get(..tag_len)?;
    let well_formed = tag.bytes().enumerate().all(|(i, byte)| match i {
        8 | 15 => byte == b'-',
        0..=14 => byte.is_ascii_digit(),
        _ => byte.is_ascii_alphanumeric(),
    });
    well_formed.then(|| format!("{stem}{}", &rest[tag_len..]))
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
        // Nodes of different versions compare it: pinned from `git hash-object`
        // over the listing of paths and blob ids.
        assert_eq!(content_a.hash, "612389cd26b1a25ee890df7c630751baa92d3937");

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
    fn a_conversation_id_is_up_to_128_bytes_of_a_portable_charset_not_starting_with_a_dot() {
        let longest = "a".repeat(128);
        let too_long = "a".repeat(129);
        let cases: &[(&str, Option<&str>)] = &[
            ("c-1", None),
            ("a.b-c_d", None),
            ("2026-11-28T10.15", None),
            ("a..b", None),
            (&longest, None),
            ("", Some("cannot be empty")),
            (&too_long, Some("is 129 bytes; at most 128")),
            (".hidden", Some("starts with a dot")),
            (".", Some("starts with a dot")),
            ("..", Some("starts with a dot")),
            ("a/b", Some("holds '/'")),
            ("../x", Some("starts with a dot")),
            ("a\\b", Some("holds '\\\\'")),
            ("2026-11-28 chat", Some("holds ' '")),
            ("café", Some("holds 'é'")),
            ("a\0b", Some("holds '\\0'")),
            ("tab\there", Some("holds '\\t'")),
        ];
        for (id, problem) in cases {
            match (check_conversation_id(id), problem) {
                (Ok(()), None) => {}
                (Err(error), Some(expected)) => assert!(error.contains(expected), "{id:?}: {error}"),
                (got, _) => panic!("{id:?}: {got:?}, expected {problem:?}"),
            }
        }
    }

    #[test]
    fn folders_whose_name_is_not_an_id_are_listed_apart_and_hidden_ones_left_out() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["c-1", "b.2", "with space", ".stversions", "x".repeat(129).as_str()] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
        }
        write(dir.path(), "README.md", "not a conversation");
        let listing = conversations(dir.path()).unwrap();
        assert_eq!(listing.ids, ["b.2", "c-1"]);
        assert_eq!(listing.ignored, ["with space".to_owned(), "x".repeat(129)]);
        assert_eq!(conversations(&dir.path().join("none")).unwrap(), Listing::default());
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
    fn a_conflict_copy_names_the_file_it_copies() {
        let cases = [
            ("m.sync-conflict-20261128-142704-LW3TOQJ.jsonl", Some("m.jsonl")),
            ("a/notes.sync-conflict-20261128-142704-LW3TOQJ", Some("a/notes")),
            ("x.tar.sync-conflict-20261128-142704-LW3TOQJ.gz", Some("x.tar.gz")),
            ("m.jsonl", None),
            ("m.sync-conflict-yesterday.jsonl", None),
        ];
        for (path, base) in cases {
            assert_eq!(conflict_base(path).as_deref(), base, "{path}");
        }
    }

    #[test]
    fn a_stale_copy_is_named_by_epoch_and_numbered_when_taken() {
        let taken = ["m.jsonl.stale-2", "m.jsonl.stale-2-2"];
        assert_eq!(stale_copy_name("m.jsonl", 3, |name| taken.contains(&name)), "m.jsonl.stale-3");
        assert_eq!(stale_copy_name("m.jsonl", 2, |name| taken.contains(&name)), "m.jsonl.stale-2-3");
        for name in ["m.jsonl.stale-2", "m.jsonl.stale-2-3", "a/b.md.stale-10"] {
            assert!(is_stale_copy(name), "{name}");
        }
        for name in ["m.jsonl", "m.stale-", "m.stale-x", "m.stale-2-", "stale-notes.md"] {
            assert!(!is_stale_copy(name), "{name}");
        }
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
