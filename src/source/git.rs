//! The Git source: the controller's own clone of `MESH_GIT_REMOTE` under the state
//! folder, fetched and fast-forwarded on an interval and when nudged. The user's
//! working copy is never touched.
//!
//! Each round runs on a blocking thread, as git2 blocks: open (or create) the
//! clone, fetch the branch, move the clone's work tree to the fetched commit, and
//! read the manifests when that commit has not been sent yet. The async loop
//! around it decides what to tell the controller, once, and when to fetch again.

use std::collections::VecDeque;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Once};
use std::time::Duration;

use git2::build::CheckoutBuilder;
use git2::{
    AutotagOption, ConfigLevel, Cred, CredentialType, FetchOptions, Oid, ProxyOptions, RemoteCallbacks, Repository,
};
use tokio::sync::mpsc;

use super::{Snapshot, SourceUpdate};
use crate::controller::queue::Backoff;
use crate::diagnostic::Diagnostic;
use crate::manifest::SourceFile;
use crate::manifest::loader::{self, LoadError};

/// `MESH_GIT_*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitSettings {
    pub remote: String,
    pub branch: String,
    /// The manifests folder inside the repository.
    pub path: String,
    pub interval: Duration,
}

/// The first retry after a failed fetch; each further failure doubles it, up to
/// the interval and never more than [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(5 * 60);

/// A zero interval would fetch without pause.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// Set in the clone's own config when this source creates it: only a clone that
/// says so is ever removed.
const MANAGED_KEY: &str = "agentmesh.managed";

/// libgit2 waits forever on a silent server by default; a fetch must not hang.
const CONNECT_TIMEOUT_MS: i32 = 30_000;
const SERVER_TIMEOUT_MS: i32 = 60_000;

/// libgit2 asks for credentials again after each rejected one: past this many
/// requests in one fetch, the fetch fails.
const MAX_CREDENTIAL_REQUESTS: usize = 6;

/// Keeps the clone in `clone_dir` at the remote branch's head and sends a
/// snapshot of `settings.path` for every new commit, until `updates` closes.
/// Fetches at start, every `interval`, and on each nudge (nudges that arrive
/// together fetch once).
///
/// A failing round (remote unreachable, branch missing, authentication refused)
/// is retried with capped exponential backoff; it is reported as `Unavailable`
/// once per streak, and its end as a `Notice`. A branch rewritten on the remote
/// resets the clone to it, with a `Notice`. Returns when `updates` or `nudges`
/// closes.
pub async fn run(
    settings: GitSettings,
    clone_dir: PathBuf,
    updates: mpsc::Sender<SourceUpdate>,
    mut nudges: mpsc::Receiver<()>,
) {
    set_network_timeouts();
    let mut reporter = Reporter::new(&settings);
    let interval = settings.interval.max(MIN_INTERVAL);
    let mut backoff = Backoff::new(FIRST_RETRY, interval.min(MAX_RETRY));
    loop {
        let known = reporter.sent;
        let round = {
            let (settings, clone_dir) = (settings.clone(), clone_dir.clone());
            tokio::task::spawn_blocking(move || sync(&settings, &clone_dir, known))
                .await
                .unwrap_or_else(|error| Err(SyncError(format!("the Git task failed: {error}"))))
        };
        let wait = match &round {
            Ok(_) => {
                backoff.succeeded(&());
                interval
            }
            Err(_) => backoff.failed(()),
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

/// What one round found: the branch's commit, now checked out in the clone.
#[derive(Debug)]
struct Round {
    commit: Oid,
    /// The clone was made anew because it followed this other remote.
    recloned_from: Option<String>,
    /// The branch was rewritten on the remote: the commit the clone left.
    rewritten_from: Option<Oid>,
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
    sent: Option<Oid>,
    /// A commit whose manifests could not be read, and why.
    unreadable: Option<(Oid, String)>,
    /// Rounds have been failing since the last success; the controller was told.
    failing: bool,
}

impl Reporter {
    fn new(settings: &GitSettings) -> Self {
        Reporter {
            origin: format!("git {} {}", settings.remote, settings.branch),
            remote: settings.remote.clone(),
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
            notice(format!("remote reachable again, at {}", short(commit)));
        }
        if let Some(previous) = round.recloned_from {
            notice(format!("the clone followed {previous}; it was removed and cloned again from {}", self.remote));
        }
        if let Some(old) = round.rewritten_from {
            notice(format!(
                "remote {} branch {} was rewritten (force-pushed): the clone was reset from {} to {}",
                self.remote,
                self.branch,
                short(old),
                short(commit)
            ));
        }
        match round.manifests {
            None => {}
            Some(Ok((files, problems))) => {
                tracing::info!(%origin, %commit, files = files.len(), "Git source: new commit");
                self.sent = Some(commit);
                self.unreadable = None;
                out.push(SourceUpdate::Snapshot(Snapshot {
                    revision: commit.to_string(),
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
fn sync(settings: &GitSettings, clone_dir: &Path, known: Option<Oid>) -> Result<Round, SyncError> {
    let (repo, recloned_from) = open_clone(clone_dir, &settings.remote)?;
    let commit = fetch(&repo, &settings.branch)?;
    let rewritten_from = check_out(&repo, &settings.branch, commit)?;
    let manifests = (known != Some(commit)).then(|| read_manifests(clone_dir, &settings.path, commit));
    Ok(Round { commit, recloned_from, rewritten_from, manifests })
}

/// The clone in `clone_dir`, created when there is none. A clone of ours that
/// follows another remote is removed and made again; the old URL is returned.
/// Anything else found there is left alone and reported.
fn open_clone(clone_dir: &Path, remote: &str) -> Result<(Repository, Option<String>), SyncError> {
    let shown = clone_dir.display();
    let repo = match Repository::open(clone_dir) {
        Ok(repo) => repo,
        Err(_) if is_missing_or_empty(clone_dir) => {
            return Ok((create_clone(clone_dir, remote)?, None));
        }
        Err(error) => {
            return Err(SyncError(format!(
                "{shown} holds files but no Git repository ({}); remove it so the Git source can clone there",
                error.message()
            )));
        }
    };
    let managed = repo.config().and_then(|config| config.get_bool(MANAGED_KEY));
    if repo.is_bare() || !matches!(managed, Ok(true)) {
        return Err(SyncError(format!(
            "{shown} is a Git repository that agentmesh did not create; it is left alone (remove it or choose another state folder)"
        )));
    }
    let followed = repo.find_remote("origin").ok().and_then(|origin| origin.url().ok().map(str::to_owned));
    if followed.as_deref() == Some(remote) {
        return Ok((repo, None));
    }
    drop(repo);
    std::fs::remove_dir_all(clone_dir)
        .map_err(|error| SyncError(format!("cannot remove the old clone {shown}: {error}")))?;
    let repo = create_clone(clone_dir, remote)?;
    Ok((repo, Some(followed.unwrap_or_else(|| "no remote".into()))))
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
fn create_clone(clone_dir: &Path, remote: &str) -> Result<Repository, SyncError> {
    let failed = |error: git2::Error| {
        SyncError(format!("cannot create the clone in {}: {}", clone_dir.display(), error.message()))
    };
    std::fs::create_dir_all(clone_dir)
        .map_err(|error| SyncError(format!("cannot create the clone folder {}: {error}", clone_dir.display())))?;
    let repo = Repository::init(clone_dir).map_err(failed)?;
    repo.config()
        .and_then(|config| config.open_level(ConfigLevel::Local))
        .and_then(|mut local| local.set_bool(MANAGED_KEY, true))
        .map_err(failed)?;
    repo.remote("origin", remote).map_err(failed)?;
    Ok(repo)
}

/// Fetches the branch into `refs/remotes/origin/<branch>` and returns its commit.
fn fetch(repo: &Repository, branch: &str) -> Result<Oid, SyncError> {
    let failed = |error: git2::Error| SyncError(format!("cannot fetch: {}", error.message()));
    let tracking = format!("refs/remotes/origin/{branch}");
    // A fetch leaves the ref alone when the remote has no such branch: start
    // without it, so a deleted branch is seen as missing and not as unchanged.
    if let Ok(mut stale) = repo.find_reference(&tracking) {
        stale.delete().map_err(failed)?;
    }
    let mut credentials = Credentials::new(
        repo.config().map_err(failed)?,
        std::env::var_os("HOME").map(PathBuf::from),
        std::env::var_os("SSH_AUTH_SOCK").is_some(),
    );
    let mut callbacks = RemoteCallbacks::new();
    callbacks.credentials(move |url, username, allowed| credentials.next(url, username, allowed));
    let mut proxy = ProxyOptions::new();
    proxy.auto();
    let mut options = FetchOptions::new();
    options.remote_callbacks(callbacks).proxy_options(proxy).download_tags(AutotagOption::None);
    let refspec = format!("+refs/heads/{branch}:{tracking}");
    repo.find_remote("origin")
        .and_then(|mut origin| origin.fetch(&[refspec], Some(&mut options), None))
        .map_err(failed)?;
    repo.refname_to_id(&tracking).map_err(|_| SyncError(format!("the remote has no branch {branch}")))
}

/// Moves the clone's branch and work tree to `commit`. Returns the commit the
/// branch was on when `commit` does not descend from it (a rewritten branch).
///
/// The work tree is checked out first, then the branch moved and HEAD set:
/// moving the branch first and then checking out HEAD leaves new files out. The
/// checkout is forced and removes untracked files: the clone is ours, and must
/// hold exactly the commit. For a rewritten branch this is what a hard reset does.
fn check_out(repo: &Repository, branch: &str, commit: Oid) -> Result<Option<Oid>, SyncError> {
    let failed =
        |error: git2::Error| SyncError(format!("cannot check out {} in the clone: {}", short(commit), error.message()));
    let local = format!("refs/heads/{branch}");
    let on_branch =
        repo.find_reference("HEAD").is_ok_and(|head| head.symbolic_target_bytes() == Some(local.as_bytes()));
    // None on the first checkout of the branch (a new clone, another branch).
    let previous = on_branch.then(|| repo.refname_to_id(&local).ok()).flatten();
    if previous == Some(commit) {
        return Ok(None);
    }
    let rewritten_from = previous.filter(|&old| !repo.graph_descendant_of(commit, old).unwrap_or(false));
    let target = repo.find_commit(commit).map_err(failed)?;
    let mut checkout = CheckoutBuilder::new();
    checkout.force().remove_untracked(true).remove_ignored(true);
    repo.checkout_tree(target.as_object(), Some(&mut checkout)).map_err(failed)?;
    repo.reference(&local, commit, true, "agentmesh: follow the remote branch").map_err(failed)?;
    repo.set_head(&local).map_err(failed)?;
    Ok(rewritten_from)
}

/// The manifests under `path` in the clone, their paths shown relative to the
/// repository (`manifests/llm.yaml`) as the user knows them.
fn read_manifests(clone_dir: &Path, path: &str, commit: Oid) -> Manifests {
    let inside = Path::new(path).components().all(|part| matches!(part, Component::Normal(_) | Component::CurDir));
    if !inside {
        return Err(format!("MESH_GIT_PATH {path} must be a folder inside the repository"));
    }
    let (mut files, mut problems) = loader::load_dir(&clone_dir.join(path)).map_err(|error| match error {
        LoadError::NotFound(_) => format!("commit {} has no folder {path} (MESH_GIT_PATH)", short(commit)),
        LoadError::NotAFolder(_) => format!("{path} is not a folder in commit {} (MESH_GIT_PATH)", short(commit)),
        other => other.to_string(),
    })?;
    let root = clone_dir.display().to_string();
    for file in &mut files {
        file.path = relative(&file.path, &root);
    }
    for problem in &mut problems {
        problem.file = relative(&problem.file, &root);
    }
    Ok((files, problems))
}

fn relative(shown: &Arc<str>, root: &str) -> Arc<str> {
    match shown.strip_prefix(root) {
        Some(rest) => rest.trim_start_matches(std::path::MAIN_SEPARATOR).into(),
        None => shown.clone(),
    }
}

/// The first 8 hex digits, as events show a commit.
fn short(commit: Oid) -> String {
    commit.to_string()[..8].to_owned()
}

/// Answers libgit2's credential requests during one fetch, each way once, in
/// order: the SSH agent, `~/.ssh/id_ed25519`, `~/.ssh/id_rsa`, then the Git
/// credential helper (https). libgit2 asks again after each rejection, so the
/// answers run out and the fetch fails instead of looping.
struct Credentials {
    config: git2::Config,
    ssh: VecDeque<SshKey>,
    helper_tried: bool,
    requests: usize,
    tried: Vec<String>,
}

enum SshKey {
    Agent,
    File(PathBuf),
}

impl Credentials {
    fn new(config: git2::Config, home: Option<PathBuf>, agent: bool) -> Self {
        let mut ssh = VecDeque::new();
        if agent {
            ssh.push_back(SshKey::Agent);
        }
        if let Some(home) = home {
            for name in ["id_ed25519", "id_rsa"] {
                let key = home.join(".ssh").join(name);
                if key.is_file() {
                    ssh.push_back(SshKey::File(key));
                }
            }
        }
        Credentials { config, ssh, helper_tried: false, requests: 0, tried: Vec::new() }
    }

    fn next(&mut self, url: &str, username: Option<&str>, allowed: CredentialType) -> Result<Cred, git2::Error> {
        self.requests += 1;
        if self.requests <= MAX_CREDENTIAL_REQUESTS {
            let user = username.unwrap_or("git");
            if allowed.contains(CredentialType::USERNAME) {
                return Cred::username(user);
            }
            if allowed.contains(CredentialType::SSH_KEY) {
                while let Some(key) = self.ssh.pop_front() {
                    let cred = match &key {
                        SshKey::Agent => {
                            self.tried.push("the SSH agent".into());
                            Cred::ssh_key_from_agent(user)
                        }
                        SshKey::File(path) => {
                            self.tried.push(path.display().to_string());
                            let public = path.with_extension("pub");
                            let public = public.is_file().then_some(public.as_path());
                            Cred::ssh_key(user, public, path, None)
                        }
                    };
                    if cred.is_ok() {
                        return cred;
                    }
                }
            }
            if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) && !self.helper_tried {
                self.helper_tried = true;
                self.tried.push("the Git credential helper".into());
                if let Ok(cred) = Cred::credential_helper(&self.config, url, username) {
                    return Ok(cred);
                }
            }
        }
        let tried = match self.tried.is_empty() {
            true => "no credentials were found".to_owned(),
            false => format!("tried {}", self.tried.join(", ")),
        };
        Err(git2::Error::from_str(&format!("authentication to {url} failed: {tried}")))
    }
}

/// Sets libgit2's network timeouts, once per process.
fn set_network_timeouts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: libgit2 keeps these in plain globals, read only when it opens a
        // connection. They are written once, here, before this source's first
        // fetch; the Git source is the only code that fetches, and the other git2
        // users (local repository reads) never read them.
        unsafe {
            let connect = git2::opts::set_server_connect_timeout_in_milliseconds(CONNECT_TIMEOUT_MS);
            let server = git2::opts::set_server_timeout_in_milliseconds(SERVER_TIMEOUT_MS);
            if let Err(error) = connect.and(server) {
                tracing::warn!(%error, "cannot set Git network timeouts");
            }
        }
    });
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
        }
    }

    fn commit(digit: char) -> Oid {
        Oid::from_str(&digit.to_string().repeat(40)).expect("an oid")
    }

    fn round(commit: Oid, manifests: Option<Manifests>) -> Round {
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
    fn credentials_run_out_instead_of_looping() {
        let home = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(home.path().join(".ssh")).expect("create .ssh");
        std::fs::write(home.path().join(".ssh/id_rsa"), "key").expect("write key");
        let config = git2::Config::new().expect("an empty config");
        let mut credentials = Credentials::new(config, Some(home.path().to_owned()), false);
        let url = "ssh://git@example.invalid/mesh.git";
        assert!(credentials.next(url, Some("git"), CredentialType::SSH_KEY).is_ok(), "the key file");
        let error = credentials.next(url, Some("git"), CredentialType::SSH_KEY).err().expect("no more keys");
        assert!(error.message().contains("id_rsa"), "{}", error.message());
        for _ in 0..MAX_CREDENTIAL_REQUESTS {
            let _ = credentials.next(url, None, CredentialType::USERNAME);
        }
        assert!(credentials.next(url, None, CredentialType::USERNAME).is_err());
    }

    #[test]
    fn paths_are_shown_relative_to_the_repository() {
        let root = Path::new("/state/git").display().to_string();
        let inside: Arc<str> = Path::new("/state/git/manifests/llm.yaml").display().to_string().into();
        assert_eq!(&*relative(&inside, &root), Path::new("manifests/llm.yaml").display().to_string());
    }
}
