//! The Git source against real repositories: a bare repository as the remote and
//! the user's own work clone to commit and push from, with the `git` command as a
//! user has it.

use std::path::PathBuf;
use std::time::Duration;

use agentmesh::config::{DEFAULT_GIT_TIMEOUT, GitSettings};
use agentmesh::source::git;
use agentmesh::source::{Snapshot, SourceUpdate};
use agentmesh::source_status::SourceStatus;
use tempfile::TempDir;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::support::git;

/// The longest any expected update may take; tests finish far sooner.
const WAIT: Duration = Duration::from_secs(10);
/// An interval no test waits for: only a nudge fetches again.
const NEVER: Duration = Duration::from_secs(3600);

/// A bare repository as the remote, the user's work clone of it, and a state
/// folder for the controller's own clone, all in one temporary folder.
struct Remote {
    dir: TempDir,
}

impl Remote {
    fn new() -> Self {
        let remote = Remote::at(tempfile::tempdir().expect("temp dir"));
        remote.create();
        remote
    }

    /// Paths in `dir`, with nothing created yet.
    fn at(dir: TempDir) -> Self {
        std::fs::create_dir(dir.path().join("state")).expect("create state folder");
        Remote { dir }
    }

    fn create(&self) {
        git(self.dir.path(), &["init", "--quiet", "--bare", "-b", "main", "remote.git"]);
        git(self.dir.path(), &["init", "--quiet", "-b", "main", "work"]);
        let work = self.work();
        git(&work, &["config", "user.name", "Test User"]);
        git(&work, &["config", "user.email", "test@example.invalid"]);
        git(&work, &["remote", "add", "origin", &self.url()]);
    }

    fn url(&self) -> String {
        self.dir.path().join("remote.git").display().to_string()
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    fn clone_dir(&self) -> PathBuf {
        self.dir.path().join("state").join("git")
    }

    /// Writes (or, for `None`, deletes) files in the work clone, commits them
    /// and pushes; returns the commit id.
    fn push(&self, files: &[(&str, Option<&str>)]) -> String {
        let work = self.work();
        for (path, text) in files {
            let path = work.join(path);
            match text {
                Some(text) => {
                    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
                    std::fs::write(&path, text).expect("write file");
                }
                None => std::fs::remove_file(&path).expect("remove file"),
            }
        }
        git(&work, &["add", "--all"]);
        git(&work, &["commit", "--quiet", "-m", "change manifests"]);
        git(&work, &["push", "--quiet", "--force", "origin", "main"]);
        git(&work, &["rev-parse", "HEAD"])
    }

    fn settings(&self, interval: Duration) -> GitSettings {
        GitSettings {
            remote: self.url(),
            branch: "main".into(),
            path: "manifests".into(),
            interval,
            timeout: DEFAULT_GIT_TIMEOUT,
        }
    }
}

/// A running Git source and its channels.
struct Source {
    updates: mpsc::Receiver<SourceUpdate>,
    nudges: mpsc::Sender<()>,
    task: JoinHandle<()>,
    /// What the source writes for `status`.
    status: watch::Receiver<SourceStatus>,
}

fn start(settings: GitSettings, clone_dir: PathBuf) -> Source {
    let (updates_tx, updates) = mpsc::channel(16);
    let (nudges, nudges_rx) = mpsc::channel(4);
    let (status, status_rx) = watch::channel(SourceStatus::git(&settings));
    let task = tokio::spawn(git::run(settings, clone_dir, updates_tx, nudges_rx, status));
    Source { updates, nudges, task, status: status_rx }
}

impl Source {
    async fn next(&mut self) -> SourceUpdate {
        tokio::time::timeout(WAIT, self.updates.recv())
            .await
            .expect("an update in time")
            .expect("the source is running")
    }

    async fn snapshot(&mut self) -> Snapshot {
        match self.next().await {
            SourceUpdate::Snapshot(snapshot) => snapshot,
            other => panic!("expected a snapshot, got {other:?}"),
        }
    }

    async fn unavailable(&mut self) -> String {
        match self.next().await {
            SourceUpdate::Unavailable { message, .. } => message,
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }

    async fn notice(&mut self) -> String {
        match self.next().await {
            SourceUpdate::Notice { message, .. } => message,
            other => panic!("expected a notice, got {other:?}"),
        }
    }

    async fn nudge(&self) {
        self.nudges.send(()).await.expect("the source takes nudges");
    }

    /// Fails if any update arrives within `span`.
    async fn quiet_for(&mut self, span: Duration) {
        if let Ok(update) = tokio::time::timeout(span, self.updates.recv()).await {
            panic!("expected no update, got {update:?}");
        }
    }
}

fn paths(snapshot: &Snapshot) -> Vec<&str> {
    snapshot.files.iter().map(|file| &*file.path).collect()
}

fn text<'a>(snapshot: &'a Snapshot, path: &str) -> &'a str {
    let file = snapshot.files.iter().find(|file| &*file.path == path);
    &file.unwrap_or_else(|| panic!("{path} in the snapshot")).text
}

#[tokio::test]
async fn the_first_snapshot_is_the_remote_head_with_the_manifests_under_the_path() {
    let remote = Remote::new();
    let commit = remote.push(&[
        ("manifests/node.yaml", Some("kind: Node\n")),
        ("manifests/more/llm.yml", Some("kind: Capability\n")),
        ("README.md", Some("not a manifest\n")),
    ]);
    let mut source = start(remote.settings(NEVER), remote.clone_dir());

    let snapshot = source.snapshot().await;
    assert_eq!(snapshot.revision, commit);
    assert_eq!(snapshot.revision.len(), 40);
    assert_eq!(paths(&snapshot), ["manifests/more/llm.yml", "manifests/node.yaml"]);
    assert_eq!(text(&snapshot, "manifests/node.yaml"), "kind: Node\n");
    assert!(snapshot.problems.is_empty());
    assert_eq!(snapshot.origin, format!("git {} main", remote.url()));
    assert!(remote.clone_dir().join(".git").is_dir());
}

#[tokio::test]
async fn a_nudge_fetches_a_pushed_commit_and_its_new_files_at_once() {
    let remote = Remote::new();
    remote.push(&[("manifests/node.yaml", Some("kind: Node\n"))]);
    let mut source = start(remote.settings(NEVER), remote.clone_dir());
    source.snapshot().await;

    let commit = remote.push(&[
        ("manifests/node.yaml", Some("kind: Node # changed\n")),
        ("manifests/new/service.yaml", Some("kind: Service\n")),
    ]);
    source.nudge().await;
    let snapshot = source.snapshot().await;
    assert_eq!(snapshot.revision, commit);
    assert_eq!(paths(&snapshot), ["manifests/new/service.yaml", "manifests/node.yaml"]);
    assert_eq!(text(&snapshot, "manifests/new/service.yaml"), "kind: Service\n");
    assert_eq!(text(&snapshot, "manifests/node.yaml"), "kind: Node # changed\n");
    // A checkout that moved the branch before the tree leaves new files out.
    assert!(remote.clone_dir().join("manifests/new/service.yaml").is_file());

    let commit = remote.push(&[("manifests/new/service.yaml", None)]);
    source.nudge().await;
    let snapshot = source.snapshot().await;
    assert_eq!(snapshot.revision, commit);
    assert_eq!(paths(&snapshot), ["manifests/node.yaml"]);
}

#[tokio::test]
async fn a_pushed_commit_arrives_within_the_interval_without_a_nudge() {
    let remote = Remote::new();
    remote.push(&[("manifests/node.yaml", Some("kind: Node\n"))]);
    let mut source = start(remote.settings(Duration::from_millis(200)), remote.clone_dir());
    source.snapshot().await;

    let commit = remote.push(&[("manifests/mesh.yaml", Some("kind: Mesh\n"))]);
    assert_eq!(source.snapshot().await.revision, commit);
}

#[tokio::test]
async fn nothing_is_sent_while_the_remote_is_unchanged() {
    let remote = Remote::new();
    remote.push(&[("manifests/node.yaml", Some("kind: Node\n"))]);
    let mut source = start(remote.settings(Duration::from_millis(100)), remote.clone_dir());
    source.snapshot().await;

    for _ in 0..3 {
        source.nudge().await;
    }
    // Several fetches run in this span, by the interval and the nudges.
    source.quiet_for(Duration::from_millis(700)).await;
    let commit = remote.push(&[("manifests/mesh.yaml", Some("kind: Mesh\n"))]);
    source.nudge().await;
    assert_eq!(source.snapshot().await.revision, commit);
}

#[tokio::test]
async fn a_force_pushed_branch_resets_the_clone_with_a_notice() {
    let remote = Remote::new();
    let first = remote.push(&[("manifests/node.yaml", Some("kind: Node\n"))]);
    let dropped = remote.push(&[("manifests/dropped.yaml", Some("kind: Service\n"))]);
    let mut source = start(remote.settings(NEVER), remote.clone_dir());
    assert_eq!(source.snapshot().await.revision, dropped);

    git(&remote.work(), &["reset", "--quiet", "--hard", &first]);
    let rewritten = remote.push(&[("manifests/other.yaml", Some("kind: Capability\n"))]);
    source.nudge().await;

    let notice = source.notice().await;
    assert_eq!(
        notice,
        format!(
            "remote {} branch main was rewritten (force-pushed): the clone was reset from {} to {}",
            remote.url(),
            &dropped[..8],
            &rewritten[..8]
        )
    );
    let snapshot = source.snapshot().await;
    assert_eq!(snapshot.revision, rewritten);
    assert_eq!(paths(&snapshot), ["manifests/node.yaml", "manifests/other.yaml"]);
    assert!(!remote.clone_dir().join("manifests/dropped.yaml").exists());
}

#[tokio::test]
async fn an_unreachable_remote_is_reported_once_and_recovers_when_it_appears() {
    let remote = Remote::at(tempfile::tempdir().expect("temp dir"));
    let mut source = start(remote.settings(Duration::from_millis(200)), remote.clone_dir());

    let message = source.unavailable().await;
    assert!(message.starts_with("cannot fetch: "), "{message}");
    let failing = source.status.borrow().clone();
    assert_eq!((failing.last_fetch_error, failing.revision, failing.last_fetched), (Some(message), None, None));
    // Retries run every 200 ms here; none of them says it again.
    source.quiet_for(Duration::from_millis(1000)).await;

    remote.create();
    let commit = remote.push(&[("manifests/node.yaml", Some("kind: Node\n"))]);
    let notice = source.notice().await;
    assert!(notice.starts_with("remote reachable again"), "{notice}");
    assert_eq!(source.snapshot().await.revision, commit);
    let fetched = source.status.borrow().clone();
    assert_eq!((fetched.last_fetch_error, fetched.revision), (None, Some(commit)));
    assert!(fetched.last_fetched.is_some_and(|at| at.ends_with('Z')));
}

#[tokio::test]
async fn a_missing_manifests_folder_is_unavailable_until_a_commit_adds_it() {
    let remote = Remote::new();
    let commit = remote.push(&[("README.md", Some("no manifests yet\n"))]);
    let mut source = start(remote.settings(NEVER), remote.clone_dir());

    let message = source.unavailable().await;
    assert_eq!(message, format!("commit {} has no folder manifests (MESH_GIT_PATH)", &commit[..8]));
    source.nudge().await;
    let commit = remote.push(&[("manifests/node.yaml", Some("kind: Node\n"))]);
    source.nudge().await;
    let snapshot = source.snapshot().await;
    assert_eq!(snapshot.revision, commit);
    assert_eq!(paths(&snapshot), ["manifests/node.yaml"]);
}

#[tokio::test]
async fn a_branch_the_remote_does_not_have_is_unavailable() {
    let remote = Remote::new();
    remote.push(&[("manifests/node.yaml", Some("kind: Node\n"))]);
    let settings = GitSettings { branch: "release".into(), ..remote.settings(NEVER) };
    let mut source = start(settings, remote.clone_dir());
    assert_eq!(source.unavailable().await, "the remote has no branch release");

    git(&remote.work(), &["push", "--quiet", "origin", "main:release"]);
    source.nudge().await;
    assert!(source.notice().await.starts_with("remote reachable again"));
    source.snapshot().await;

    // Deleted on the remote: not mistaken for unchanged.
    git(&remote.work(), &["push", "--quiet", "origin", "--delete", "release"]);
    source.nudge().await;
    assert_eq!(source.unavailable().await, "the remote has no branch release");
}

#[tokio::test]
async fn files_left_in_the_clone_do_not_break_the_checkout() {
    let remote = Remote::new();
    remote.push(&[("manifests/node.yaml", Some("kind: Node\n"))]);
    let mut source = start(remote.settings(NEVER), remote.clone_dir());
    source.snapshot().await;

    let manifests = remote.clone_dir().join("manifests");
    std::fs::write(manifests.join("node.yaml"), "edited in the clone\n").expect("write");
    std::fs::write(manifests.join("stray.yaml"), "kind: Stray\n").expect("write");
    std::fs::write(manifests.join("incoming.yaml"), "in the way\n").expect("write");
    let commit = remote.push(&[("manifests/incoming.yaml", Some("kind: Service\n"))]);
    source.nudge().await;

    let snapshot = source.snapshot().await;
    assert_eq!(snapshot.revision, commit);
    assert_eq!(paths(&snapshot), ["manifests/incoming.yaml", "manifests/node.yaml"]);
    assert_eq!(text(&snapshot, "manifests/incoming.yaml"), "kind: Service\n");
    assert_eq!(text(&snapshot, "manifests/node.yaml"), "kind: Node\n");
}

#[tokio::test]
async fn the_users_work_clone_is_never_touched() {
    let remote = Remote::new();
    let commit = remote.push(&[("manifests/node.yaml", Some("kind: Node\n"))]);
    let work = remote.work();
    std::fs::write(work.join("manifests/draft.yaml"), "kind: Draft\n").expect("write");
    std::fs::write(work.join("manifests/node.yaml"), "kind: Node # editing\n").expect("write");
    let status = git(&work, &["status", "--porcelain"]);
    let mut source = start(remote.settings(NEVER), remote.clone_dir());

    assert_eq!(source.snapshot().await.revision, commit);
    let pushed = remote.clone_dir().join("manifests/node.yaml");
    assert_eq!(std::fs::read_to_string(pushed).expect("read"), "kind: Node\n");
    assert_eq!(git(&work, &["status", "--porcelain"]), status);
    assert_eq!(git(&work, &["rev-parse", "HEAD"]), commit);
    assert_eq!(std::fs::read_to_string(work.join("manifests/node.yaml")).expect("read"), "kind: Node # editing\n");
}

#[tokio::test]
async fn a_repository_agentmesh_did_not_create_is_left_alone() {
    let remote = Remote::new();
    let commit = remote.push(&[("manifests/node.yaml", Some("kind: Node\n"))]);
    let other = Remote::new();
    other.push(&[("manifests/other.yaml", Some("kind: Node\n"))]);
    // Pointed at the user's work clone, of another remote, by mistake.
    let mut source = start(remote.settings(NEVER), other.work());

    let message = source.unavailable().await;
    assert!(message.contains("agentmesh did not create"), "{message}");
    assert!(other.work().join("manifests/other.yaml").is_file());
    assert_ne!(git(&other.work(), &["rev-parse", "HEAD"]), commit);
}

#[tokio::test]
async fn a_clone_of_another_remote_is_cloned_again_with_a_notice() {
    let first = Remote::new();
    first.push(&[("manifests/node.yaml", Some("kind: Node\n"))]);
    let clone_dir = first.clone_dir();
    let mut source = start(first.settings(NEVER), clone_dir.clone());
    source.snapshot().await;
    drop(source.updates);
    tokio::time::timeout(WAIT, source.task)
        .await
        .expect("the source stops when its updates close")
        .expect("the source ran to its end");

    let second = Remote::new();
    let commit = second.push(&[("manifests/mesh.yaml", Some("kind: Mesh\n"))]);
    let settings = GitSettings { remote: format!("file://{}", second.url()), ..second.settings(NEVER) };
    let mut source = start(settings, clone_dir);
    let notice = source.notice().await;
    assert_eq!(
        notice,
        format!("the clone followed {}; it was removed and cloned again from file://{}", first.url(), second.url())
    );
    let snapshot = source.snapshot().await;
    assert_eq!(snapshot.revision, commit);
    assert_eq!(paths(&snapshot), ["manifests/mesh.yaml"]);
}

#[tokio::test]
async fn the_source_stops_when_nudges_close() {
    let remote = Remote::new();
    remote.push(&[("manifests/node.yaml", Some("kind: Node\n"))]);
    let mut source = start(remote.settings(NEVER), remote.clone_dir());
    source.snapshot().await;
    drop(source.nudges);
    tokio::time::timeout(WAIT, source.task)
        .await
        .expect("the source stops when its nudges close")
        .expect("the source ran to its end");
}

/// Accepts connections on a loopback port and answers each with `reply`
/// (`None`: never answers, holding the connection open), until the test ends.
fn loopback_server(reply: Option<&'static str>) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut stream in listener.incoming().flatten() {
            match reply {
                None => held.push(stream),
                Some(reply) => {
                    let mut request = Vec::new();
                    let mut byte = [0u8; 1];
                    while !request.ends_with(b"\r\n\r\n")
                        && std::io::Read::read(&mut stream, &mut byte).unwrap_or(0) == 1
                    {
                        request.push(byte[0]);
                    }
                    let _ = std::io::Write::write_all(&mut stream, reply.as_bytes());
                }
            }
        }
    });
    port
}

#[tokio::test]
async fn a_missing_local_remote_names_gits_own_cause_and_the_command() {
    let remote = Remote::at(tempfile::tempdir().expect("temp dir"));
    let mut source = start(remote.settings(NEVER), remote.clone_dir());

    let message = source.unavailable().await;
    assert_eq!(
        message,
        format!(
            "cannot fetch: `git ls-remote origin refs/heads/main` failed (exit status: 128): fatal: '{}' does not appear to be a git repository",
            remote.url()
        )
    );
}

#[tokio::test]
async fn a_fetch_from_a_server_that_never_answers_is_killed_after_the_timeout() {
    let port = loopback_server(None);
    let remote = Remote::new();
    let settings = GitSettings {
        remote: format!("git://127.0.0.1:{port}/mesh.git"),
        timeout: Duration::from_secs(1),
        ..remote.settings(NEVER)
    };
    let started = std::time::Instant::now();
    let mut source = start(settings, remote.clone_dir());

    let message = source.unavailable().await;
    assert_eq!(message, "cannot fetch: `git ls-remote origin refs/heads/main` was killed after 1s without finishing");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_remote_that_asks_for_a_password_fails_without_prompting() {
    let port = loopback_server(Some(
        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"mesh\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    ));
    let remote = Remote::new();
    let settings = GitSettings { remote: format!("http://127.0.0.1:{port}/mesh.git"), ..remote.settings(NEVER) };
    let started = std::time::Instant::now();
    let mut source = start(settings, remote.clone_dir());

    let message = source.unavailable().await;
    assert!(message.ends_with("terminal prompts disabled"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_clone_an_earlier_version_left_is_used_as_it_is() {
    let remote = Remote::new();
    let first = remote.push(&[("manifests/node.yaml", Some("kind: Node\n"))]);
    // What the earlier, library-based source left: a work tree clone marked as ours,
    // following `origin`, on the branch.
    let clone = remote.clone_dir();
    std::fs::create_dir(&clone).expect("mkdir");
    git(&clone, &["init", "--quiet"]);
    git(&clone, &["config", "agentmesh.managed", "true"]);
    git(&clone, &["config", "test.kept", "yes"]);
    git(&clone, &["remote", "add", "origin", &remote.url()]);
    git(&clone, &["fetch", "--quiet", "origin", "+refs/heads/main:refs/remotes/origin/main"]);
    git(&clone, &["checkout", "--quiet", "-B", "main", &first]);
    let commit = remote.push(&[("manifests/mesh.yaml", Some("kind: Mesh\n"))]);
    let mut source = start(remote.settings(NEVER), clone.clone());

    let snapshot = source.snapshot().await;
    assert_eq!(snapshot.revision, commit);
    assert_eq!(paths(&snapshot), ["manifests/mesh.yaml", "manifests/node.yaml"]);
    assert_eq!(git(&clone, &["config", "test.kept"]), "yes", "the same clone, not a new one");
    assert_eq!(git(&clone, &["rev-parse", "HEAD"]), commit);
}

#[tokio::test]
async fn manifests_are_read_from_the_commit_and_links_are_not_followed() {
    let remote = Remote::new();
    std::fs::create_dir_all(remote.work().join("manifests")).expect("mkdir");
    std::os::unix::fs::symlink("../outside.yaml", remote.work().join("manifests/link.yaml")).expect("symlink");
    let commit = remote.push(&[
        ("manifests/node.yaml", Some("kind: Node\n")),
        ("outside.yaml", Some("kind: Outside\n")),
        ("manifests/.hidden/skip.yaml", Some("kind: Hidden\n")),
        ("manifests/notes.txt", Some("not yaml\n")),
    ]);
    let mut source = start(remote.settings(NEVER), remote.clone_dir());

    let snapshot = source.snapshot().await;
    assert_eq!(snapshot.revision, commit);
    assert_eq!(paths(&snapshot), ["manifests/node.yaml"]);
    let problems: Vec<String> = snapshot.problems.iter().map(|problem| problem.file.to_string()).collect();
    assert_eq!(problems, ["manifests/link.yaml"]);
    assert!(!snapshot.problems[0].is_error(), "a warning: {:?}", snapshot.problems[0]);
}

#[tokio::test]
async fn a_clone_folder_holding_other_files_is_left_alone_with_gits_reason() {
    let remote = Remote::new();
    remote.push(&[("manifests/node.yaml", Some("kind: Node\n"))]);
    std::fs::create_dir(remote.clone_dir()).expect("mkdir");
    std::fs::write(remote.clone_dir().join("notes.txt"), "mine\n").expect("write");
    let mut source = start(remote.settings(NEVER), remote.clone_dir());

    let message = source.unavailable().await;
    assert!(message.contains("holds files but no Git repository it can open"), "{message}");
    assert!(message.contains("fatal: not a git repository"), "{message}");
    assert!(remote.clone_dir().join("notes.txt").is_file());
}
