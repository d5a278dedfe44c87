//! The Git source: the controller's own clone of `MESH_GIT_REMOTE` under the state
//! folder, fetched with the system's `git` on an interval and when nudged, and
//! the manifests read from the fetched commit's objects. The user's working copy
//! is never touched, and the clone's work tree, kept at the commit for people to
//! look at, is never read.
//!
//! Each round runs on a blocking thread, as `git` calls block: open (or create)
//! the clone, ask the remote for the branch's commit and fetch it when new, move
//! the clone's branch and work tree to it, and read the manifests when that
//! commit has not been sent yet. The async loop around it decides what to tell
//! the controller, once, and when to fetch again.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};

use super::{Snapshot, SourceUpdate};
use crate::backoff::{Backoff, Jitter, Policy};
use crate::config::GitSettings;
use crate::diagnostic::Diagnostic;
use crate::git::tree::{self, FileKind};
use crate::git::{Git, GitError};
use crate::manifest::Pos;
use crate::manifest::{SourceFile, loader};
use crate::source_status::{SourceStatus, without_credentials};

/// The first retry after a failed fetch; each further failure doubles it, up to
/// the interval and never more than [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(5 * 60);

/// A zero interval would fetch without pause.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// Set in the clone's own config when this source creates it: only a clone that
/// says so is ever removed. Clones made by earlier versions (with a Git
/// library, not the `git` command) say so too, and are used as they are.
const MANAGED_KEY: &str = "agentmesh.managed";

/// Keeps the clone in `clone_dir` at the remote branch's head and sends a
/// snapshot of `settings.path` for every new commit, until `updates` closes.
/// Fetches at start, every `interval`, and on each nudge (nudges that arrive
/// together fetch once).
///
/// A failing round (remote unreachable, branch missing, authentication refused)
/// is retried with capped exponential backoff; it is reported as `Unavailable`
/// once per streak, and its end as a `Notice`. A branch rewritten on the remote
/// resets the clone to it, with a `Notice`. Every round is written to
/// `status` (the commit and when, or why it failed). Returns when `updates` or
/// `nudges` closes.
pub async fn run(
    settings: GitSettings,
    clone_dir: PathBuf,
    updates: mpsc::Sender<SourceUpdate>,
    mut nudges: mpsc::Receiver<()>,
    status: watch::Sender<SourceStatus>,
) {
    let mut reporter = Reporter::new(&settings);
    let interval = settings.interval.max(MIN_INTERVAL);
    let most = interval.min(MAX_RETRY);
    let mut backoff = Backoff::new(Policy::new(FIRST_RETRY.min(most), most), Jitter::random());
    loop {
        let known = reporter.sent.clone();
        let round = {
            let (settings, clone_dir) = (settings.clone(), clone_dir.clone());
            tokio::task::spawn_blocking(move || sync(&settings, &clone_dir, known.as_deref()))
                .await
                .unwrap_or_else(|error| Err(SyncError(format!("the Git task failed: {error}"))))
        };
        // What goes on (status, events) is served to the mesh, and Git's words
        // may quote the URL: a password or token in it is hidden here, once.
        let round = round.map_err(|SyncError(message)| {
            SyncError(message.replace(&settings.remote, &without_credentials(&settings.remote)))
        });
        let wait = match &round {
            Ok(round) => {
                status.send_modify(|status| status.fetched(Some(round.commit.clone()), SystemTime::now()));
                backoff.succeeded();
                interval
            }
            Err(SyncError(message)) => {
                status.send_modify(|status| status.failed(message.clone()));
                backoff.failed()
            }
        };
        for update in reporter.report(round) {
            if updates.send(update).await.is_err() {
                return;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = updates.closed() => return,
            nudge = nudges.recv() => {
                if nudge.is_none() {
                    return;
                }
                // Several nudges while waiting ask for one fetch.
                while nudges.try_recv().is_ok() {}
            }
        }
    }
}

/// What one round found: the branch's commit (its id in hex), now checked out
/// in the clone.
#[derive(Debug)]
struct Round {
    commit: String,
    /// The clone was made anew because it followed this other remote.
    recloned_from: Option<String>,
    /// The branch was rewritten on the remote: the commit the clone left.
    rewritten_from: Option<String>,
    /// The manifests at `commit`; `None` when `commit` was sent already.
    manifests: Option<Manifests>,
}

/// The manifest files read at one commit and the problems reading them, or why
/// the manifests folder could not be read at all.
type Manifests = Result<(Vec<SourceFile>, Vec<Diagnostic>), String>;

/// Why a round could not reach the remote's commit, in words for the user.
#[derive(Debug)]
struct SyncError(String);

/// Turns rounds into updates, saying each thing once: a failure once per streak
/// and its end, a commit once, a commit that cannot be read once.
struct Reporter {
    origin: String,
    remote: String,
    branch: String,
    /// The commit of the last snapshot sent.
    sent: Option<String>,
    /// A commit whose manifests could not be read, and why.
    unreadable: Option<(String, String)>,
    /// Rounds have been failing since the last success; the controller was told.
    failing: bool,
}

impl Reporter {
    fn new(settings: &GitSettings) -> Self {
        let remote = without_credentials(&settings.remote);
        Reporter {
            origin: format!("git {remote} {}", settings.branch),
            remote,
            branch: settings.branch.clone(),
            sent: None,
            unreadable: None,
            failing: false,
        }
    }

    fn report(&mut self, round: Result<Round, SyncError>) -> Vec<SourceUpdate> {
        let origin = &self.origin;
        let mut out = Vec::new();
        let round = match round {
            Ok(round) => round,
            Err(SyncError(message)) if self.failing => {
                tracing::debug!(%origin, %message, "Git source still failing");
                return out;
            }
            Err(SyncError(message)) => {
                tracing::warn!(%origin, %message, "Git source unavailable; retrying with backoff");
                self.failing = true;
                out.push(SourceUpdate::Unavailable { origin: origin.clone(), message });
                return out;
            }
        };
        let mut notice = |message: String| {
            tracing::info!(%origin, %message, "Git source");
            out.push(SourceUpdate::Notice { origin: origin.clone(), message });
        };
        let commit = round.commit;
        if std::mem::take(&mut self.failing) {
            notice(format!("remote reachable again, at {}", short(&commit)));
        }
        if let Some(previous) = round.recloned_from {
            notice(format!("the clone followed {previous}; it was removed and cloned again from {}", self.remote));
        }
        if let Some(old) = round.rewritten_from {
            notice(format!(
                "remote {} branch {} was rewritten (force-pushed): the clone was reset from {} to {}",
                self.remote,
                self.branch,
                short(&old),
                short(&commit)
            ));
        }
        match round.manifests {
            None => {}
            Some(Ok((files, problems))) => {
                tracing::info!(%origin, %commit, files = files.len(), "Git source: new commit");
                self.sent = Some(commit.clone());
                self.unreadable = None;
                out.push(SourceUpdate::Snapshot(Snapshot {
                    revision: commit,
                    files,
                    problems,
                    origin: origin.clone(),
                }));
            }
            Some(Err(message)) => {
                let seen = (commit, message);
                if self.unreadable.as_ref() != Some(&seen) {
                    tracing::warn!(%origin, message = %seen.1, "Git source: manifests unreadable");
                    out.push(SourceUpdate::Unavailable { origin: origin.clone(), message: seen.1.clone() });
                    self.unreadable = Some(seen);
                }
            }
        }
        out
    }
}

/// One round, blocking: the clone at the remote branch's commit, and its
/// manifests unless that commit is `known` (sent already).
fn sync(settings: &GitSettings, clone_dir: &Path, known: Option<&str>) -> Result<Round, SyncError> {
    let (clone, recloned_from) = open_clone(clone_dir, &settings.remote, settings.timeout)?;
    let commit = fetch(&clone, &settings.branch)?;
    let rewritten_from = check_out(&clone, &settings.branch, &commit)?;
    let manifests = (known != Some(commit.as_str())).then(|| read_manifests(&clone, &settings.path, &commit));
    Ok(Round { commit, recloned_from, rewritten_from, manifests })
}

/// The commit the clone in `clone_dir` last fetched of the branch, and its
/// manifests as the source read them: what the node follows, for `doctor`.
/// Blocking; never creates, fetches or changes the clone.
pub fn read_fetched(clone_dir: &Path, settings: &GitSettings) -> Result<(String, Vec<SourceFile>), String> {
    let shown = clone_dir.display();
    let clone = Git::new(clone_dir, settings.timeout).here_only();
    let unreadable = |error: GitError| format!("cannot read the daemon's clone {shown}: {error}");
    let followed = clone.config("remote.origin.url").map_err(unreadable)?;
    if followed.as_deref() != Some(settings.remote.as_str()) {
        return Err(format!("the daemon's clone {shown} does not follow {} yet", settings.remote));
    }
    let tracking = format!("refs/remotes/origin/{}", settings.branch);
    let commit = resolve(&clone, &tracking)
        .map_err(unreadable)?
        .ok_or_else(|| format!("the daemon has not fetched branch {} yet", settings.branch))?;
    let (files, _problems) = read_manifests(&clone, &settings.path, &commit)?;
    Ok((commit, files))
}

/// The clone in `clone_dir`, created when there is none. A clone of ours that
/// follows another remote is removed and made again; the old URL is returned.
/// Anything else found there is left alone and reported.
fn open_clone(clone_dir: &Path, remote: &str, timeout: Duration) -> Result<(Git, Option<String>), SyncError> {
    let shown = clone_dir.display();
    let git = Git::new(clone_dir, timeout).here_only();
    if is_missing_or_empty(clone_dir) {
        return Ok((create_clone(git, remote)?, None));
    }
    let cannot_open = |error: GitError| SyncError(format!("cannot open the clone {shown}: {error}"));
    let git_dir = match git.run(&["rev-parse", "--absolute-git-dir"]) {
        Ok(dir) => PathBuf::from(dir.trim_end()),
        // Git's own words say which: no repository, or one it refuses (owned
        // by another user, say).
        Err(error) if error.exited_with(128) => {
            return Err(SyncError(format!(
                "{shown} holds files but no Git repository it can open ({error}); remove it so the Git source can clone there"
            )));
        }
        Err(error) => return Err(cannot_open(error)),
    };
    // A bare repository, or one whose work tree is elsewhere, is not ours.
    let own_layout = same_file(&git_dir, &clone_dir.join(".git"));
    let managed = git.config(MANAGED_KEY).map_err(cannot_open)?;
    if !own_layout || !managed.is_some_and(|value| value.eq_ignore_ascii_case("true")) {
        return Err(SyncError(format!(
            "{shown} is a Git repository that agentmesh did not create; it is left alone (remove it or choose another state folder)"
        )));
    }
    let followed = git.config("remote.origin.url").map_err(cannot_open)?;
    if followed.as_deref() == Some(remote) {
        return Ok((git, None));
    }
    std::fs::remove_dir_all(clone_dir)
        .map_err(|error| SyncError(format!("cannot remove the old clone {shown}: {error}")))?;
    let git = create_clone(git, remote)?;
    Ok((git, Some(followed.unwrap_or_else(|| "no remote".into()))))
}

fn same_file(a: &Path, b: &Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

fn is_missing_or_empty(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(error) => error.kind() == std::io::ErrorKind::NotFound,
    }
}

/// An empty repository with `origin` set; the first fetch fills it. Made this
/// way rather than by a clone, a remote that is down at the first start leaves
/// a clone that the next round simply fetches into.
fn create_clone(git: Git, remote: &str) -> Result<Git, SyncError> {
    let shown = git.dir().display().to_string();
    let failed = |error: GitError| SyncError(format!("cannot create the clone in {shown}: {error}"));
    std::fs::create_dir_all(git.dir())
        .map_err(|error| SyncError(format!("cannot create the clone folder {shown}: {error}")))?;
    git.run(&["init", "--quiet"]).map_err(failed)?;
    git.run(&["config", MANAGED_KEY, "true"]).map_err(failed)?;
    git.run(&["remote", "add", "origin", remote]).map_err(failed)?;
    Ok(git)
}

/// Asks the remote for the branch's commit (`git ls-remote`, the cheap check),
/// fetches it into `refs/remotes/origin/<branch>` when the clone lacks it, and
/// returns it.
fn fetch(clone: &Git, branch: &str) -> Result<String, SyncError> {
    let failed = |error: GitError| SyncError(format!("cannot fetch: {error}"));
    let remote = clone.clone().for_remote().map_err(failed)?;
    let head = format!("refs/heads/{branch}");
    let listed = remote.run(&["ls-remote", "origin", &head]).map_err(failed)?;
    let Some(remote_commit) = listed_commit(&listed, &head) else {
        return Err(SyncError(format!("the remote has no branch {branch}")));
    };
    let tracking = format!("refs/remotes/origin/{branch}");
    let resolve = || resolve(clone, &tracking).map_err(failed);
    if resolve()?.as_deref() == Some(remote_commit) {
        return Ok(remote_commit.to_owned());
    }
    let refspec = format!("+{head}:{tracking}");
    remote.run(&["fetch", "--quiet", "--no-tags", "origin", &refspec]).map_err(failed)?;
    resolve()?.ok_or_else(|| SyncError(format!("the remote has no branch {branch}")))
}

/// The commit `git ls-remote` lists for exactly `refname` (its patterns also
/// match longer names that end the same).
pub(crate) fn listed_commit<'a>(listed: &'a str, refname: &str) -> Option<&'a str> {
    listed.lines().find_map(|line| line.split_once('\t').filter(|(_, name)| *name == refname).map(|(id, _)| id))
}

/// The commit `refname` points to, `None` when there is no such ref.
fn resolve(git: &Git, refname: &str) -> Result<Option<String>, GitError> {
    match git.run(&["rev-parse", "--quiet", "--verify", &format!("{refname}^{{commit}}")]) {
        Ok(commit) => Ok(Some(commit.trim_end().to_owned())),
        Err(error) if error.exited_with(1) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Moves the clone's branch and work tree to `commit`. Returns the commit the
/// branch was on when `commit` does not descend from it (a rewritten branch).
///
/// The checkout is forced and untracked files are removed: the clone is ours,
/// and its work tree shows exactly the commit (the manifests are read from the
/// commit, not from there). The user's own hooks do not run in it.
fn check_out(clone: &Git, branch: &str, commit: &str) -> Result<Option<String>, SyncError> {
    let failed = |error: GitError| SyncError(format!("cannot check out {} in the clone: {error}", short(commit)));
    let local = format!("refs/heads/{branch}");
    let on_branch = clone.run(&["symbolic-ref", "--quiet", "HEAD"]).is_ok_and(|head| head.trim_end() == local);
    // None on the first checkout of the branch (a new clone, another branch).
    let previous = if on_branch { resolve(clone, &local).map_err(failed)? } else { None };
    if previous.as_deref() == Some(commit) {
        return Ok(None);
    }
    let rewritten_from = previous.filter(|old| clone.run(&["merge-base", "--is-ancestor", old, commit]).is_err());
    clone
        .run(&["-c", "core.hooksPath=/dev/null", "checkout", "--quiet", "--force", "-B", branch, commit])
        .map_err(failed)?;
    clone.run(&["clean", "--quiet", "-ffdx"]).map_err(failed)?;
    Ok(rewritten_from)
}

/// The manifests under `path` in `commit`, read from the clone's objects with
/// the folder loader's rules (`*.yaml` and `*.yml`, hidden files and folders
/// skipped, the same size limit, UTF-8 text), paths shown relative to the
/// repository (`manifests/llm.yaml`) as the user knows them. Symbolic links are
/// not followed: each is reported.
fn read_manifests(clone: &Git, path: &str, commit: &str) -> Manifests {
    let folder = folder_in_repository(path)?;
    let failed = |error: GitError| format!("cannot read commit {}: {error}", short(commit));
    match tree::object_type(clone, commit, &folder).map_err(failed)?.as_deref() {
        None => return Err(format!("commit {} has no folder {path} (MESH_GIT_PATH)", short(commit))),
        Some("tree") => {}
        Some(_) => return Err(format!("{path} is not a folder in commit {} (MESH_GIT_PATH)", short(commit))),
    }
    let mut problems = Vec::new();
    let mut wanted = Vec::new();
    for file in tree::files(clone, commit, &folder).map_err(failed)? {
        let below = file.path.strip_prefix(&folder).unwrap_or(&file.path).trim_start_matches('/');
        if below.split('/').any(|part| part.starts_with('.')) || !loader::is_yaml(Path::new(&file.path)) {
            continue;
        }
        let shown: Arc<str> = file.path.as_str().into();
        let refused = |message: String| Diagnostic::error(&shown, Pos::default(), "file", message);
        match file.kind {
            FileKind::Symlink => problems.push(Diagnostic::warning(
                &shown,
                Pos::default(),
                "file",
                "a symbolic link in the repository; the Git source does not follow links, so it was not read",
            )),
            FileKind::Regular => match loader::too_large(file.size) {
                Some(message) => problems.push(refused(message)),
                None => wanted.push((shown, file.blob)),
            },
        }
    }
    let blobs: Vec<&str> = wanted.iter().map(|(_, blob)| blob.as_str()).collect();
    let contents = tree::read_blobs(clone, &blobs).map_err(failed)?;
    let mut files = Vec::with_capacity(wanted.len());
    for ((shown, _), bytes) in wanted.into_iter().zip(contents) {
        match String::from_utf8(bytes) {
            Ok(text) => files.push(SourceFile { path: shown, text }),
            Err(_) => problems.push(Diagnostic::error(&shown, Pos::default(), "file", "file is not UTF-8 text")),
        }
    }
    // The folder loader's order: by path, folder by folder.
    files.sort_by(|a, b| Path::new(&*a.path).cmp(Path::new(&*b.path)));
    Ok((files, problems))
}

/// `MESH_GIT_PATH` as a path from the repository's root, `/`-separated, empty
/// for the root itself.
fn folder_in_repository(path: &str) -> Result<String, String> {
    let mut parts = Vec::new();
    for part in Path::new(path).components() {
        match part {
            Component::Normal(name) => parts.push(name.to_string_lossy()),
            Component::CurDir => {}
            _ => return Err(format!("MESH_GIT_PATH {path} must be a folder inside the repository")),
        }
    }
    Ok(parts.join("/"))
}

/// The first 8 hex digits, as events show a commit.
fn short(commit: &str) -> &str {
    commit.get(..8).unwrap_or(commit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> GitSettings {
        GitSettings {
            remote: "file:///srv/mesh.git".into(),
            branch: "main".into(),
            path: "manifests".into(),
            interval: Duration::from_secs(30),
            timeout: crate::config::DEFAULT_GIT_TIMEOUT,
        }
    }

    fn commit(digit: char) -> String {
        digit.to_string().repeat(40)
    }

    #[test]
    fn events_name_the_remote_without_its_credentials() {
        let remote = "https://me:s3cret@git.example/mesh.git".to_owned();
        let reporter = Reporter::new(&GitSettings { remote, ..settings() });
        assert!(!reporter.origin.contains("s3cret") && !reporter.remote.contains("s3cret"), "{}", reporter.origin);
        assert!(reporter.origin.contains("git.example/mesh.git"), "{}", reporter.origin);
    }

    fn round(commit: String, manifests: Option<Manifests>) -> Round {
        Round { commit, recloned_from: None, rewritten_from: None, manifests }
    }

    fn read() -> Option<Manifests> {
        Some(Ok((Vec::new(), Vec::new())))
    }

    fn kinds(updates: &[SourceUpdate]) -> Vec<String> {
        updates
            .iter()
            .map(|update| match update {
                SourceUpdate::Snapshot(snapshot) => format!("snapshot {}", &snapshot.revision[..8]),
                SourceUpdate::Unavailable { message, .. } => format!("unavailable: {message}"),
                SourceUpdate::Notice { message, .. } => format!("notice: {message}"),
            })
            .collect()
    }

    #[test]
    fn a_failure_streak_is_reported_once_and_its_end_once() {
        let mut reporter = Reporter::new(&settings());
        let down = || Err(SyncError("cannot fetch: no route to host".into()));
        assert_eq!(kinds(&reporter.report(down())), ["unavailable: cannot fetch: no route to host"]);
        assert!(reporter.report(down()).is_empty());
        assert!(reporter.report(down()).is_empty());
        assert_eq!(
            kinds(&reporter.report(Ok(round(commit('a'), read())))),
            ["notice: remote reachable again, at aaaaaaaa", "snapshot aaaaaaaa"]
        );
        assert_eq!(kinds(&reporter.report(down())).len(), 1, "a new streak is reported again");
    }

    #[test]
    fn a_rewritten_branch_is_noticed_before_its_snapshot() {
        let mut reporter = Reporter::new(&settings());
        let mut rewritten = round(commit('b'), read());
        rewritten.rewritten_from = Some(commit('a'));
        assert_eq!(
            kinds(&reporter.report(Ok(rewritten))),
            [
                "notice: remote file:///srv/mesh.git branch main was rewritten (force-pushed): the clone was reset from aaaaaaaa to bbbbbbbb",
                "snapshot bbbbbbbb"
            ]
        );
        assert_eq!(reporter.sent, Some(commit('b')));
        assert_eq!(reporter.origin, "git file:///srv/mesh.git main");
    }

    #[test]
    fn an_unreadable_commit_is_reported_once() {
        let mut reporter = Reporter::new(&settings());
        let missing = || Some(Err("commit aaaaaaaa has no folder manifests (MESH_GIT_PATH)".into()));
        assert_eq!(reporter.report(Ok(round(commit('a'), missing()))).len(), 1);
        assert!(reporter.report(Ok(round(commit('a'), missing()))).is_empty());
        assert_eq!(kinds(&reporter.report(Ok(round(commit('b'), read())))), ["snapshot bbbbbbbb"]);
        assert!(reporter.report(Ok(round(commit('b'), None))).is_empty());
    }

    #[test]
    fn the_path_is_a_folder_from_the_repositorys_root() {
        let cases = [
            ("manifests", Ok("manifests")),
            ("./deploy/manifests/", Ok("deploy/manifests")),
            (".", Ok("")),
            ("../manifests", Err(())),
            ("/etc", Err(())),
        ];
        for (path, expected) in cases {
            assert_eq!(folder_in_repository(path).as_deref().map_err(|_| ()), expected, "{path}");
        }
    }

    #[test]
    fn ls_remote_is_read_for_the_exact_branch() {
        let listed = "1111111111111111111111111111111111111111\trefs/heads/team/refs/heads/main\n\
                      2222222222222222222222222222222222222222\trefs/heads/main\n";
        assert_eq!(listed_commit(listed, "refs/heads/main"), Some("2".repeat(40).as_str()));
        assert_eq!(listed_commit("", "refs/heads/main"), None);
        assert_eq!(listed_commit(listed, "refs/heads/mai"), None);
    }
}
