//! The user's own checkout that the manifests folder lies in, when it is a
//! clone of `MESH_GIT_REMOTE`: `git push` from it moves its remote-tracking ref
//! of the branch (`refs/remotes/origin/main`, a loose file or a line of
//! `packed-refs`), and each move nudges the Git source to fetch at once. So a
//! push from this machine applies in about a second instead of at the next
//! interval. Only the repository's ref files are watched (with notify); its
//! work tree is never read.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, Event, EventKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::config::GitSettings;
use crate::git::Git;

/// Each local `git` call here answers in milliseconds.
const LOCAL_TIMEOUT: Duration = Duration::from_secs(10);

/// A checkout of the followed remote, and its ref that a push moves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkout {
    /// Where its refs live (a worktree's common Git folder).
    pub git_dir: PathBuf,
    /// `refs/remotes/<remote>/<branch>`.
    pub tracking_ref: String,
}

/// The checkout `manifests` lies in, when one of its remotes is
/// `settings.remote`. Blocking (two `git` calls); None when `manifests` is not
/// in a Git work tree or the work tree follows other remotes.
pub fn find(manifests: &Path, settings: &GitSettings) -> Option<Checkout> {
    let git = Git::new(manifests, LOCAL_TIMEOUT);
    // Relative to `manifests` when it is inside the Git folder's parent.
    let git_dir = manifests.join(git.run(&["rev-parse", "--git-common-dir"]).ok()?.trim_end());
    let remotes = git.run(&["config", "--get-regexp", r"^remote\..*\.url$"]).ok()?;
    let name = remote_named(&remotes, &settings.remote)?;
    Some(Checkout {
        git_dir: git_dir.canonicalize().ok()?,
        tracking_ref: format!("refs/remotes/{name}/{}", settings.branch),
    })
}

/// Watches a checkout's refs while it is alive.
pub struct CheckoutWatch {
    _watcher: RecommendedWatcher,
}

/// Nudges the Git source through `nudge` each time `checkout`'s tracking ref
/// is written.
pub fn watch(checkout: Checkout, nudge: mpsc::Sender<()>) -> notify::Result<CheckoutWatch> {
    let git_dir = checkout.git_dir.clone();
    let mut watcher = notify::recommended_watcher(move |result: notify::Result<Event>| {
        let Ok(event) = result else { return };
        if is_write(&event.kind) && event.paths.iter().any(|path| moves_ref(&checkout, path)) {
            // A full channel already holds a pending fetch.
            let _ = nudge.try_send(());
        }
    })?;
    // `packed-refs` sits in the Git folder itself; loose refs below `refs/remotes`.
    watcher.watch(&git_dir, RecursiveMode::NonRecursive)?;
    let remotes = git_dir.join("refs/remotes");
    let refs = if remotes.is_dir() { remotes } else { git_dir.join("refs") };
    watcher.watch(&refs, RecursiveMode::Recursive)?;
    Ok(CheckoutWatch { _watcher: watcher })
}

/// Whether a change of `path` may have moved the checkout's tracking ref: the
/// loose ref itself (written as `<ref>.lock`, then renamed) or `packed-refs`.
fn moves_ref(checkout: &Checkout, path: &Path) -> bool {
    path == checkout.git_dir.join(&checkout.tracking_ref) || path == checkout.git_dir.join("packed-refs")
}

/// Reading a file is not writing it.
fn is_write(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// The remote whose URL is `remote`, from `git config --get-regexp` lines
/// (`remote.origin.url /srv/mesh.git`).
fn remote_named<'a>(listed: &'a str, remote: &str) -> Option<&'a str> {
    listed.lines().find_map(|line| {
        let (key, url) = line.split_once(' ')?;
        let name = key.strip_prefix("remote.")?.strip_suffix(".url")?;
        same_remote(url.trim(), remote).then_some(name)
    })
}

/// Whether two remote URLs name the same repository as Git would reach it:
/// `file://` or not, with or without a trailing `/` or `.git`.
fn same_remote(a: &str, b: &str) -> bool {
    let plain = |url: &str| {
        let url = url.strip_prefix("file://").unwrap_or(url).trim_end_matches('/');
        url.strip_suffix(".git").unwrap_or(url).to_owned()
    };
    plain(a) == plain(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checkouts_remote_is_found_by_its_url_written_either_way() {
        let listed = "remote.upstream.url https://example.com/other.git\nremote.origin.url /srv/mesh.git\n";
        let cases = [
            ("/srv/mesh.git", Some("origin")),
            ("file:///srv/mesh.git", Some("origin")),
            ("/srv/mesh", Some("origin")),
            ("/srv/mesh.git/", Some("origin")),
            ("https://example.com/other", Some("upstream")),
            ("/srv/mesh2.git", None),
        ];
        for (remote, expected) in cases {
            assert_eq!(remote_named(listed, remote), expected, "{remote}");
        }
        assert_eq!(remote_named("", "/srv/mesh.git"), None);
    }

    #[test]
    fn only_writes_of_the_tracking_ref_or_packed_refs_nudge() {
        let checkout = Checkout { git_dir: "/w/.git".into(), tracking_ref: "refs/remotes/origin/main".into() };
        let cases = [
            ("/w/.git/refs/remotes/origin/main", true),
            ("/w/.git/packed-refs", true),
            ("/w/.git/refs/remotes/origin/main.lock", false),
            ("/w/.git/refs/remotes/origin/other", false),
            ("/w/.git/refs/heads/main", false),
            ("/w/.git/index", false),
        ];
        for (path, expected) in cases {
            assert_eq!(moves_ref(&checkout, Path::new(path)), expected, "{path}");
        }
        assert!(is_write(&EventKind::Create(notify::event::CreateKind::File)));
        assert!(is_write(&EventKind::Access(AccessKind::Close(AccessMode::Write))));
        assert!(!is_write(&EventKind::Access(AccessKind::Open(AccessMode::Any))));
    }
}
