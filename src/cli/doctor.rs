//! `meshctl doctor`: one line per check of this node's setup, each `pass`,
//! `warn` or `fail` with the fix in plain words; exit 1 on any fail.
//!
//! Each check is a small function returning a [`Check`]. What a check found is
//! gathered at the edges (files, sockets, HTTP with a short timeout, the
//! network checks run concurrently); deciding pass / warn / fail from it is
//! pure and table-tested below.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::platform::{Platform, path_owner, service_path};
use super::{Outcome, Output};
use crate::api::wire::{API_VERSION, Health};
use crate::client::{ApiClient, ClientError};
use crate::config::{GitSettings, client_addr, default_listen, resolve_secret};
use crate::controller::status::{ConditionType, NodeStatus};
use crate::diagnostic::Diagnostic;
use crate::git::Git;
use crate::identity::{NODE_ID, NodeEnv};
use crate::manifest::kinds::{EnvValue, NodeSyncthing};
use crate::manifest::{self, ManifestSet, SecretRef, SourceFile, loader};
use crate::net::{self, host_port, root_cause};
use crate::reconcile::capability::{HealthCheck, health_check, health_url, health_url_by_node};
use crate::source;
use crate::source::compare::{self, Differences};
use crate::source_status::{SourceStatus, without_credentials};
use crate::supervisor::program;
use crate::syncthing::{self, SyncthingError};
use crate::tailscale::{TailnetStatus, TailscaleClient};

/// How long any one network check waits.
const TIMEOUT: Duration = Duration::from_secs(2);

/// A key shorter than this is easy to guess.
const MIN_KEY_LEN: usize = 32;

/// Clock skew with a peer above which a check warns, and fails.
const SKEW_WARN: Duration = Duration::from_secs(5);
const SKEW_FAIL: Duration = Duration::from_secs(60);

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Print one line per check, or the checks as a JSON or YAML list.
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Status {
    Pass,
    Warn,
    Fail,
}

/// One check's verdict; `-o json|yaml` prints a list of these.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(super) struct Check {
    #[serde(rename = "check")]
    pub name: String,
    pub status: Status,
    pub message: String,
    pub fix: Option<String>,
}

impl Check {
    fn pass(name: &str, message: impl Into<String>) -> Check {
        Check { name: name.into(), status: Status::Pass, message: message.into(), fix: None }
    }

    fn warn(name: &str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { name: name.into(), status: Status::Warn, message: message.into(), fix: Some(fix.into()) }
    }

    fn fail(name: &str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { name: name.into(), status: Status::Fail, message: message.into(), fix: Some(fix.into()) }
    }
}

pub(super) fn run(args: Args, env_file: Option<&Path>) -> anyhow::Result<Outcome> {
    let checks = super::runtime()?.block_on(all_checks(env_file));
    super::output::print(args.output, &checks, || render(&checks))?;
    Ok(if checks.iter().any(|c| c.status == Status::Fail) { Outcome::Failure } else { Outcome::Success })
}

/// One line per check: status, name, message, and the fix when there is one.
fn render(checks: &[Check]) -> String {
    let width = checks.iter().map(|c| c.name.len() + 1).max().unwrap_or(0).max(14);
    let mut out = String::new();
    for check in checks {
        let status = match check.status {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        };
        let fix = check.fix.as_deref().map(|fix| format!(" — fix: {fix}")).unwrap_or_default();
        out.push_str(&format!("{status}  {:<width$} {}{fix}\n", check.name, check.message));
    }
    out
}

/// What `install-service` prints once the daemon answers: how many checks
/// passed, warned and failed, and the line of each that did not pass.
pub(super) async fn summary(env_file: &Path) -> String {
    let checks = all_checks(Some(env_file)).await;
    let tally = |status: Status| checks.iter().filter(|c| c.status == status).count();
    let (passed, warned, failed) = (tally(Status::Pass), tally(Status::Warn), tally(Status::Fail));
    let not_passed: Vec<Check> = checks.into_iter().filter(|c| c.status != Status::Pass).collect();
    let more = if not_passed.is_empty() { "" } else { "; `meshctl doctor` shows every check" };
    format!("doctor: {passed} passed, {warned} warned, {failed} failed{more}\n{}", render(&not_passed))
}

/// Every check, in order: the local ones first, then those that talk to the
/// daemon, Tailscale, Syncthing and the peers, concurrently.
async fn all_checks(env_file: Option<&Path>) -> Vec<Check> {
    let (env, env_problem) = match NodeEnv::load(env_file) {
        Ok(env) => (env, None),
        Err(error) => (NodeEnv::from_parts(None, std::env::vars()).unwrap_or_default(), Some(error.to_string())),
    };
    let node = env.get(NODE_ID).map(|s| s.value.trim().to_owned()).filter(|v| !v.is_empty());
    let git = GitSettings::from_env(&env).ok().flatten();
    let followed = match &git {
        Some(git) => Some(read_followed(&env, git).await),
        None => None,
    };
    // With Git, the checks below are of the set the daemon follows.
    let manifests = match &followed {
        Some(Ok(followed)) => Manifests::read(followed.shown(), Ok((followed.files.clone(), Vec::new()))),
        _ => Manifests::load(&env),
    };
    let mesh = manifests.set.mesh.as_ref().map(|mesh| mesh.spec.clone()).unwrap_or_default();
    let key = crate::api_key::resolve(&env, Some(&mesh));

    let mut checks = vec![
        env_check(&EnvFound {
            problem: env_problem,
            file: env.env_file().map(|p| p.display().to_string()),
            node: node.clone(),
            key: key.clone(),
            identity_auth: mesh.auth.tailscale_identity.enabled,
        }),
        manifests.check(),
        node_check(&env, &manifests.set, node.as_deref()),
    ];
    checks.extend(service_program_checks(&manifests.set, node.as_deref().unwrap_or_default(), &env));
    if let (Some(git), Some(followed)) = (&git, &followed) {
        checks.push(git_check(&git_version().await));
        checks.extend(git_mode_checks(&env, git, followed).await);
    }
    let node = node.unwrap_or_default();
    let key = key.ok().flatten();
    let set = &manifests.set;

    let daemon_and_capabilities = async {
        let listen = match listen_addr(&env).await {
            Ok(listen) => listen,
            Err(problem) => {
                let fix = "set MESH_LISTEN in .env to an address:port such as 127.0.0.1:8000";
                return vec![Check::fail("api-port", problem, fix)];
            }
        };
        let client = ApiClient::new(&client_addr(listen).to_string(), key.as_deref(), TIMEOUT);
        let answered = DaemonFound::ask(&client).await;
        let mut checks = vec![port_check(listen, &bind(listen), &answered, &node)];
        checks.push(daemon_check(client.base(), &answered, &node));
        let status = match &answered {
            DaemonFound::Answered { status, .. } => status.as_ref().as_ref().ok(),
            DaemonFound::Unreachable(_) => None,
        };
        let this_node = CapabilityProbe { node: &node, api: client.base(), key: key.as_deref() };
        checks.extend(capability_checks(set, status, &this_node).await);
        checks
    };
    let tailscale_and_peers = async {
        let required = mesh.discovery.tailscale || mesh.auth.tailscale_identity.enabled;
        let socket = mesh.discovery.local_api_socket.as_deref().map(crate::config::expand_home);
        let tailnet = match TailscaleClient::locate(socket.as_deref()).await {
            None => Err("Tailscale is not installed (no tailscaled socket, no `tailscale` command)".to_owned()),
            Some(client) => client.with_timeout(TIMEOUT).status().await.map_err(|error| error.to_string()),
        };
        let mut checks = vec![tailscale_check(&tailnet, required)];
        let tailnet = tailnet.ok().filter(|_| mesh.discovery.tailscale);
        checks.extend(peer_checks(set, &node, tailnet.as_ref(), key.as_deref()).await);
        checks
    };
    let (mut local, mut remote, syncthing) =
        tokio::join!(daemon_and_capabilities, tailscale_and_peers, syncthing_check(set, &node, &env));
    // In order: the port and the daemon, Tailscale, Syncthing, the peers, the capabilities.
    let capabilities = local.split_off(local.len().min(2));
    let peers = remote.split_off(1);
    checks.extend(local.into_iter().chain(remote).chain(syncthing).chain(peers).chain(capabilities));
    checks
}

// --- .env --------------------------------------------------------------------------

/// What was found of the node's settings.
#[derive(Clone, Debug)]
struct EnvFound {
    /// Why the env file could not be read or parsed.
    problem: Option<String>,
    /// The env file read, if any.
    file: Option<String>,
    node: Option<String>,
    /// The mesh API key, as `api_key::resolve` found it.
    key: Result<Option<String>, String>,
    /// Whether the Mesh lets callers in by Tailscale identity.
    identity_auth: bool,
}

fn env_check(found: &EnvFound) -> Check {
    const NAME: &str = "env";
    if let Some(problem) = &found.problem {
        return Check::fail(NAME, problem.clone(), "fix the line it names (NAME=value, one a line)");
    }
    let file = found.file.as_deref().unwrap_or("the environment (no .env here)");
    let Some(node) = &found.node else {
        return Check::fail(
            NAME,
            format!("{NODE_ID} is not set in {file}"),
            format!("add {NODE_ID}=<this machine's Node name> to .env"),
        );
    };
    match &found.key {
        Err(problem) => Check::fail(NAME, problem.clone(), "set the variable or file the Mesh's auth.apiKey names"),
        Ok(None) if found.identity_auth => {
            Check::pass(NAME, format!("{file}: {node}, no API key (callers get in by Tailscale identity)"))
        }
        Ok(None) => Check::fail(
            NAME,
            format!("{file}: MESH_API_KEY is not set and Tailscale identity auth is off"),
            "add MESH_API_KEY=$(openssl rand -hex 32) to .env, the same on every node",
        ),
        Ok(Some(key)) if key.chars().count() < MIN_KEY_LEN => Check::warn(
            NAME,
            format!("{file}: {node}, but the API key is {} characters long", key.chars().count()),
            format!("use a key of {MIN_KEY_LEN} characters or more: openssl rand -hex 32, the same on every node"),
        ),
        Ok(Some(_)) => Check::pass(NAME, format!("{file}: {node}, API key set")),
    }
}

// --- manifests and this node ----------------------------------------------------------

/// The local manifests, checked as `meshctl validate` checks them.
struct Manifests {
    dir: String,
    /// Why the folder could not be read.
    unreadable: Option<String>,
    files: usize,
    /// The first line of each error, `file:line:col: Kind/name: message`.
    errors: Vec<String>,
    set: ManifestSet,
}

impl Manifests {
    fn load(env: &NodeEnv) -> Manifests {
        let dir = env.manifests_dir();
        Manifests::read(dir.display().to_string(), loader::load_dir(&dir).map_err(|error| error.to_string()))
    }

    /// The manifests `shown` names, as read (or why they could not be).
    fn read(shown: String, loaded: Result<(Vec<SourceFile>, Vec<Diagnostic>), String>) -> Manifests {
        match loaded {
            Err(error) => {
                Manifests { dir: shown, unreadable: Some(error), files: 0, errors: vec![], set: default_set() }
            }
            Ok((files, problems)) => {
                let validation = manifest::validate(&files, problems);
                let errors = validation.diagnostics.iter().filter(|d| d.is_error());
                let errors = errors.map(|d| format!("{}:{}:{}: {}: {}", d.file, d.line, d.column, d.object, d.message));
                Manifests {
                    dir: shown,
                    unreadable: None,
                    files: files.len(),
                    errors: errors.collect(),
                    set: validation.set,
                }
            }
        }
    }

    fn check(&self) -> Check {
        const NAME: &str = "manifests";
        if let Some(problem) = &self.unreadable {
            return Check::fail(NAME, problem.clone(), "set MESH_MANIFESTS in .env to the manifests folder");
        }
        match self.errors.as_slice() {
            [] => Check::pass(
                NAME,
                format!("{}: {} in {} are valid", self.dir, count(self.set.len(), "object"), count(self.files, "file")),
            ),
            errors => Check::fail(
                NAME,
                format!("{}: {}: {}", self.dir, count(errors.len(), "error"), errors.join("; ")),
                format!("correct them (meshctl validate {} shows each in context)", self.dir),
            ),
        }
    }
}

fn default_set() -> ManifestSet {
    manifest::validate(&[], Vec::new()).set
}

fn node_check(env: &NodeEnv, set: &ManifestSet, node: Option<&str>) -> Check {
    const NAME: &str = "node";
    let Some(node) = node else {
        return Check::fail(NAME, format!("{NODE_ID} is not set"), format!("add {NODE_ID} to .env"));
    };
    match set.nodes.get(node) {
        Some(object) => {
            Check::pass(NAME, format!("Node/{node}: {}, at {}", object.spec.role.as_str(), object.spec.address.value))
        }
        None => {
            let help = env.check_identity(set).into_iter().find_map(|d| d.help);
            let hint = help.map(|help| format!(" ({help})")).unwrap_or_default();
            Check::fail(
                NAME,
                format!("no Node in the manifests is named \"{node}\"{hint}"),
                format!("add a Node named {node} to the manifests, or set {NODE_ID} to one of them"),
            )
        }
    }
}

// --- the API port and the daemon --------------------------------------------------------

/// Where the daemon listens: `MESH_LISTEN`, else the address it would pick.
pub(super) async fn listen_addr(env: &NodeEnv) -> Result<SocketAddr, String> {
    match env.get("MESH_LISTEN").map(|s| s.value.trim()).filter(|v| !v.is_empty()) {
        Some(text) => text.parse().map_err(|_| format!("MESH_LISTEN \"{text}\" is not an address:port")),
        None => {
            let tailnet = tokio::time::timeout(TIMEOUT, crate::tailscale::local_tailnet_ipv4()).await.ok().flatten();
            Ok(default_listen(tailnet))
        }
    }
}

/// What binding the listen address found.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Bind {
    Free,
    InUse,
    Refused(String),
}

fn bind(listen: SocketAddr) -> Bind {
    match TcpListener::bind(listen) {
        Ok(_) => Bind::Free,
        Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => Bind::InUse,
        Err(error) => Bind::Refused(error.to_string()),
    }
}

/// What the daemon's API answered.
enum DaemonFound {
    Unreachable(String),
    /// `/mesh/health` answered; `status` is `/api/v1/status` with the key.
    Answered {
        health: Health,
        status: Box<Result<NodeStatus, ClientError>>,
    },
}

impl DaemonFound {
    async fn ask(client: &ApiClient) -> DaemonFound {
        match client.health().await {
            Err(error) => DaemonFound::Unreachable(error.to_string()),
            Ok(health) => DaemonFound::Answered { health, status: Box::new(client.status().await) },
        }
    }

    fn node(&self) -> Option<&str> {
        match self {
            DaemonFound::Answered { health, .. } => Some(&health.node),
            DaemonFound::Unreachable(_) => None,
        }
    }
}

const START_DAEMON: &str = "start it: meshctl daemon or meshctl install-service";

fn port_check(listen: SocketAddr, bind: &Bind, daemon: &DaemonFound, node: &str) -> Check {
    const NAME: &str = "api-port";
    match (bind, daemon.node()) {
        (Bind::Free, _) => Check::pass(NAME, format!("{listen} is free for the daemon")),
        (Bind::InUse, Some(answering)) if answering == node => {
            Check::pass(NAME, format!("{listen} is served by this node's daemon ({node})"))
        }
        (Bind::InUse, Some(other)) => Check::fail(
            NAME,
            format!("{listen} is served by the daemon of another node, {other}"),
            "stop that daemon, or give this node another port with MESH_LISTEN in .env",
        ),
        (Bind::InUse, None) => Check::fail(
            NAME,
            format!("{listen} is in use by something that is not a meshctl daemon"),
            format!("stop what listens there (lsof -i :{}), or set MESH_LISTEN in .env", listen.port()),
        ),
        (Bind::Refused(why), Some(answering)) if answering == node => {
            Check::pass(NAME, format!("{listen} is served by this node's daemon ({why} to bind it here)"))
        }
        (Bind::Refused(why), _) => Check::fail(
            NAME,
            format!("cannot listen on {listen}: {why}"),
            "set MESH_LISTEN in .env to an address of this machine",
        ),
    }
}

fn daemon_check(base: &str, daemon: &DaemonFound, node: &str) -> Check {
    const NAME: &str = "daemon";
    match daemon {
        DaemonFound::Unreachable(why) => Check::fail(NAME, format!("nothing answers: {why}"), START_DAEMON),
        DaemonFound::Answered { health, .. } if health.node != node => Check::fail(
            NAME,
            format!("the daemon at {base} is Node {}, not {node}", health.node),
            "run this node's daemon with this .env, or point MESH_LISTEN at it",
        ),
        DaemonFound::Answered { health, .. } if health.api_version != API_VERSION => Check::fail(
            NAME,
            format!("the daemon at {base} speaks mesh API {}, this meshctl {API_VERSION}", health.api_version),
            "restart the daemon with this meshctl (meshctl daemon, or restart its service)",
        ),
        DaemonFound::Answered { health, status } => match status.as_ref() {
            Err(ClientError::Api { status, .. }) if status.as_u16() == 401 => Check::fail(
                NAME,
                format!("{base} refused the key: the key in .env is not the daemon's"),
                "set MESH_API_KEY in .env to the daemon's key (restart the daemon after changing its .env)",
            ),
            Err(error) => Check::fail(
                NAME,
                format!("{base} answers its health but not its status: {error}"),
                "look at the daemon's log (RUST_LOG=debug meshctl daemon shows more)",
            ),
            Ok(status) => {
                let revision = health.revision.as_deref().unwrap_or("no revision yet");
                let rejected = status.last_error.is_some();
                let message = format!(
                    "{node} answers at {base}: meshctl {}, API {}, {revision}, up {}",
                    health.version,
                    health.api_version,
                    humantime::format_duration(Duration::from_secs(health.uptime_seconds))
                );
                if rejected {
                    Check::warn(
                        NAME,
                        format!("{message}; it rejected the last snapshot"),
                        "meshctl status shows why; the previous revision keeps running",
                    )
                } else {
                    Check::pass(NAME, message)
                }
            }
        },
    }
}

// --- Git mode: the set the daemon follows, the remote, the local folder ----------------

/// The manifests of the commit the daemon's clone fetched last.
struct Followed {
    /// `git REMOTE@BRANCH`.
    source: String,
    commit: String,
    files: Vec<SourceFile>,
}

impl Followed {
    /// `git REMOTE@BRANCH at 1a2b3c4d5e6f`.
    fn shown(&self) -> String {
        format!("{} at {}", self.source, self.commit.get(..12).unwrap_or(&self.commit))
    }
}

/// Reads what the daemon follows from its clone in the state folder.
async fn read_followed(env: &NodeEnv, git: &GitSettings) -> Result<Followed, String> {
    let state_dir = crate::config::state_dir(env).ok_or("there is no state folder (no MESH_STATE_DIR, no HOME)")?;
    let (clone_dir, settings) = (state_dir.join("git"), git.clone());
    let read = tokio::task::spawn_blocking(move || source::git::read_fetched(&clone_dir, &settings)).await;
    let (commit, files) = read.map_err(|error| error.to_string())??;
    Ok(Followed { source: SourceStatus::git(git).followed(), commit, files })
}

/// The remote and branch (`git ls-remote`), and whether the local folder
/// differs from what the daemon follows.
async fn git_mode_checks(env: &NodeEnv, git: &GitSettings, followed: &Result<Followed, String>) -> Vec<Check> {
    let source = SourceStatus::git(git);
    let mut checks = vec![git_remote_check(&source, &ls_remote(git).await)];
    let dir = env.manifests_dir();
    let local = loader::load_dir(&dir).map_err(|error| error.to_string());
    let compared = match (followed, local) {
        (Ok(followed), Ok((files, _))) => {
            Ok((followed.shown(), compare::differences(&dir.display().to_string(), &files, &git.path, &followed.files)))
        }
        (Err(why), _) => Err(why.clone()),
        (_, Err(why)) => Err(why),
    };
    checks.push(local_folder_check(&dir.display().to_string(), &source, &compared));
    checks
}

/// The branch's commit on the remote (None: no such branch), or why the
/// remote could not be asked.
async fn ls_remote(git: &GitSettings) -> Result<Option<String>, String> {
    let (remote, head) = (git.remote.clone(), format!("refs/heads/{}", git.branch));
    let ask = move || -> Result<Option<String>, String> {
        // Git's message names the command, URL included: never its password.
        let failed = |error: crate::git::GitError| error.to_string().replace(&remote, &without_credentials(&remote));
        let git = Git::new(".", GIT_REMOTE_TIMEOUT).for_remote().map_err(failed)?;
        let listed = git.run(&["ls-remote", &remote, &head]).map_err(failed)?;
        Ok(source::git::listed_commit(&listed, &head).map(str::to_owned))
    };
    tokio::task::spawn_blocking(ask).await.map_err(|error| error.to_string())?
}

/// Asking a remote over ssh or HTTPS takes longer than a local check.
const GIT_REMOTE_TIMEOUT: Duration = Duration::from_secs(10);

/// The remote answers and has the branch.
fn git_remote_check(source: &SourceStatus, found: &Result<Option<String>, String>) -> Check {
    const NAME: &str = "git-remote";
    let remote = source.remote.as_deref().unwrap_or_default();
    let branch = source.branch.as_deref().unwrap_or_default();
    match found {
        Ok(Some(commit)) => {
            Check::pass(NAME, format!("{} answers, at {}", source.followed(), commit.get(..12).unwrap_or(commit)))
        }
        Ok(None) => Check::fail(
            NAME,
            format!("{remote} has no branch {branch}"),
            format!("push it (`git push {remote} HEAD:{branch}`), or set MESH_GIT_BRANCH to a branch it has"),
        ),
        Err(why) => Check::fail(
            NAME,
            format!("cannot reach {remote}: {why}"),
            format!(
                "check MESH_GIT_REMOTE, the network and your Git credentials (`git ls-remote {remote}` must work without a prompt)"
            ),
        ),
    }
}

/// Whether the local folder is what the daemon follows: a difference is
/// work not pushed yet (or stale files), which `apply` would not deploy.
fn local_folder_check(dir: &str, source: &SourceStatus, compared: &Result<(String, Differences), String>) -> Check {
    const NAME: &str = "local-folder";
    match compared {
        Ok((followed, differences)) if differences.is_empty() => {
            Check::pass(NAME, format!("{dir} is what the daemon follows ({followed})"))
        }
        Ok((followed, differences)) => Check::warn(
            NAME,
            format!("{dir} differs from what the daemon follows ({followed}): it {differences}"),
            "commit and `git push` the changes to apply them (`meshctl diff` shows what they change), or discard them",
        ),
        Err(why) => Check::warn(
            NAME,
            format!("cannot compare {dir} with what the daemon follows: {why}; the checks below read {dir}"),
            format!("start the daemon (meshctl daemon) so it fetches {}", source.followed()),
        ),
    }
}

// --- Git --------------------------------------------------------------------------------

/// The oldest `git` the Git source is tested with (Debian 11's).
const GIT_MIN: (u32, u32) = (2, 30);

/// What `git --version` prints, or why it could not run.
async fn git_version() -> Result<String, String> {
    let version = || Git::new(".", TIMEOUT).run(&["--version"]).map(|out| out.trim().to_owned());
    match tokio::task::spawn_blocking(version).await {
        Ok(found) => found.map_err(|error| error.to_string()),
        Err(error) => Err(error.to_string()),
    }
}

/// The Git source (`MESH_GIT_REMOTE`) runs the system's `git`.
fn git_check(found: &Result<String, String>) -> Check {
    const NAME: &str = "git";
    let install = "install Git (Debian: `apt-get install git`; macOS: `xcode-select --install` or `brew install git`)";
    match found {
        Err(why) => Check::fail(NAME, format!("{why}; MESH_GIT_REMOTE is set and the Git source runs git"), install),
        Ok(version) => match git_version_number(version) {
            Some(number) if number >= GIT_MIN => Check::pass(NAME, format!("{version}, for MESH_GIT_REMOTE")),
            Some(_) => Check::warn(
                NAME,
                format!(
                    "{version} is older than {}.{}, the oldest the Git source is tested with",
                    GIT_MIN.0, GIT_MIN.1
                ),
                install,
            ),
            None => Check::warn(
                NAME,
                format!("`git --version` printed \"{version}\", not a Git version"),
                "check which `git` is first on PATH",
            ),
        },
    }
}

/// `(major, minor)` of `git version 2.39.3 (Apple Git-145)`.
fn git_version_number(version: &str) -> Option<(u32, u32)> {
    let number = version.strip_prefix("git version ")?.split_whitespace().next()?;
    let mut parts = number.split('.').map(str::parse::<u32>);
    Some((parts.next()?.ok()?, parts.next()?.ok()?))
}

// --- Tailscale --------------------------------------------------------------------------

fn tailscale_check(found: &Result<TailnetStatus, String>, required: bool) -> Check {
    const NAME: &str = "tailscale";
    let down = |why: String| {
        if required {
            Check::fail(
                NAME,
                format!("{why}; the Mesh uses Tailscale (discovery or identity auth)"),
                "install Tailscale and run `tailscale up`, or turn the Mesh's Tailscale settings off",
            )
        } else {
            Check::warn(
                NAME,
                format!("{why}; fine while the Nodes' addresses are plain"),
                "install Tailscale and run `tailscale up` to reach peers away from home",
            )
        }
    };
    match found {
        Err(why) => down(why.clone()),
        Ok(status) if !status.running => down("Tailscale is not running".into()),
        Ok(status) => {
            let name = status.self_dns_name.as_deref().unwrap_or("no MagicDNS name");
            let ip = status.tailnet_ipv4().map(|ip| format!(", {ip}")).unwrap_or_default();
            Check::pass(NAME, format!("up as {name}{ip}"))
        }
    }
}

// --- Syncthing --------------------------------------------------------------------------

/// The Syncthing check, when this Node has `spec.syncthing` or a Syncthing
/// key is set.
async fn syncthing_check(set: &ManifestSet, node: &str, env: &NodeEnv) -> Option<Check> {
    const NAME: &str = "syncthing";
    let node_settings = set.nodes.get(node).and_then(|n| n.spec.syncthing.as_ref());
    let key_set = env.get(SYNCTHING_KEY).is_some_and(|key| !key.value.trim().is_empty());
    let gui_address = env.get(SYNCTHING_GUI_ADDRESS).map(|address| address.value.trim());
    let settings = syncthing_target(node_settings, key_set, gui_address)?;
    let url = &settings.api_url;
    let where_key = match &settings.api_key {
        SecretRef::Env(name) => format!("set {name} in .env to"),
        SecretRef::File(path) => format!("write to {path}"),
    };
    let key = match resolve_secret(env, &settings.api_key) {
        Ok(key) => key,
        Err(error) => {
            return Some(Check::fail(
                NAME,
                format!("Node/{node} spec.syncthing.apiKey: {error}"),
                format!("{where_key} the key in Syncthing's GUI (Actions > Settings > API Key)"),
            ));
        }
    };
    let client = syncthing::Client::new(url, &key);
    let answer = tokio::time::timeout(TIMEOUT, client.system_status()).await;
    let found = match answer {
        Err(_) => Err(SyncthingProblem::Unreachable(format!("no answer in {}s", TIMEOUT.as_secs()))),
        Ok(Ok(status)) => Ok(status.my_id),
        Ok(Err(SyncthingError::WrongKey { .. })) => Err(SyncthingProblem::WrongKey),
        Ok(Err(SyncthingError::Unreachable { reason, .. })) => Err(SyncthingProblem::Unreachable(reason)),
        Ok(Err(error)) => Err(SyncthingProblem::Other(error.to_string())),
    };
    Some(syncthing_verdict(url, &where_key, &found))
}

/// The key `meshctl init` writes for Syncthing, and the GUI address variable
/// Syncthing itself reads (`STGUIADDRESS`).
const SYNCTHING_KEY: &str = "SYNCTHING_API_KEY";
const SYNCTHING_GUI_ADDRESS: &str = "STGUIADDRESS";

/// Where and with which key doctor asks Syncthing.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SyncthingTarget {
    api_url: String,
    api_key: SecretRef,
}

/// The Node's `spec.syncthing`; without one, a `SYNCTHING_API_KEY` that is
/// set is still checked (a key kept for later is a key that may be wrong),
/// at `STGUIADDRESS` or Syncthing's default GUI address.
fn syncthing_target(node: Option<&NodeSyncthing>, key_set: bool, gui_address: Option<&str>) -> Option<SyncthingTarget> {
    if let Some(settings) = node {
        return Some(SyncthingTarget { api_url: settings.api_url.value.clone(), api_key: settings.api_key.clone() });
    }
    if !key_set {
        return None;
    }
    let address = gui_address.filter(|a| !a.is_empty()).unwrap_or("127.0.0.1:8384");
    let api_url = if address.contains("://") { address.to_owned() } else { format!("http://{address}") };
    Some(SyncthingTarget { api_url, api_key: SecretRef::Env(SYNCTHING_KEY.to_owned()) })
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum SyncthingProblem {
    Unreachable(String),
    WrongKey,
    Other(String),
}

fn syncthing_verdict(url: &str, where_key: &str, found: &Result<String, SyncthingProblem>) -> Check {
    const NAME: &str = "syncthing";
    match found {
        Ok(device) => {
            let short = device.split('-').next().unwrap_or(device);
            Check::pass(NAME, format!("Syncthing at {url} answers with the key (device {short})"))
        }
        Err(SyncthingProblem::WrongKey) => Check::fail(
            NAME,
            format!("Syncthing at {url} refused the API key"),
            format!("{where_key} the key in Syncthing's GUI (Actions > Settings > API Key)"),
        ),
        Err(SyncthingProblem::Unreachable(why)) => Check::fail(
            NAME,
            format!("Syncthing at {url} is not reachable: {why}"),
            "start Syncthing, or set the Node's spec.syncthing.apiUrl to where its GUI listens",
        ),
        Err(SyncthingProblem::Other(why)) => {
            Check::fail(NAME, why.clone(), "look at Syncthing's log; meshctl needs its REST API")
        }
    }
}

// --- Services' programs --------------------------------------------------------------

/// A `service/<name>` check per Service placed on this node: its program
/// (`command[0]`) is found on the PATH it will get, which is the one the
/// service manager gives the daemon (`install-service` writes it) unless the
/// Service sets its own.
fn service_program_checks(set: &ManifestSet, node: &str, env: &NodeEnv) -> Vec<Check> {
    let platform = Platform::current();
    let binary = std::env::current_exe().unwrap_or_default();
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from).unwrap_or_default();
    let manager_path = service_path(platform, &binary, &home);
    let daemon_dir = env.env_file().and_then(Path::parent).map(Path::to_path_buf);
    let placed = set.services.iter().filter(|(_, service)| set.runs_on(&service.spec, node));
    placed
        .map(|(name, service)| {
            let spec = &service.spec;
            let program = spec.command.first().map_or("", |word| word.value.as_str());
            let own_path = match spec.env.get("PATH").map(|value| &value.value) {
                Some(EnvValue::Text(path)) => Some(path.as_str()),
                _ => None,
            };
            let (path, owner) = match own_path {
                Some(path) => (path, "its own PATH in spec.env"),
                None => (manager_path.as_str(), path_owner(platform)),
            };
            let working_dir = spec.working_dir.as_deref().map(crate::config::expand_home);
            let working_dir = match (working_dir, &daemon_dir) {
                (Some(dir), Some(base)) if dir.is_relative() => Some(base.join(dir)),
                (dir, _) => dir,
            };
            let found = program::find(program, path.as_ref(), working_dir.as_deref(), program::is_executable);
            program_verdict(name, program, found.as_deref(), owner, path)
        })
        .collect()
}

fn program_verdict(service: &str, program: &str, found: Option<&Path>, owner: &str, path: &str) -> Check {
    let check = format!("service/{service}");
    match found {
        Some(file) if file == Path::new(program) => {
            Check::pass(&check, format!("Service/{service}: `{program}` is there"))
        }
        Some(file) => Check::pass(&check, format!("Service/{service}: `{program}` is {} on {owner}", file.display())),
        None if program.contains('/') => Check::fail(
            &check,
            format!("Service/{service}: `{program}` does not exist or is not executable"),
            "install it there, or correct the Service's command",
        ),
        None => Check::fail(
            &check,
            format!("Service/{service}: `{program}` not found on {owner} ({path})"),
            "install it into one of those folders, or give its full path as the Service's command[0]",
        ),
    }
}

// --- peers ------------------------------------------------------------------------------

/// What asking a peer's `/mesh/health` found.
#[derive(Clone, Debug, PartialEq)]
enum PeerFound {
    Unreachable(String),
    Answered {
        api_version: String,
        version: String,
        /// The peer's clock minus ours, in seconds, from its `Date` header.
        skew: Option<f64>,
    },
}

/// A `peer/<name>` and, when it answered, a `clock/<name>` check per other Node.
async fn peer_checks(set: &ManifestSet, node: &str, tailnet: Option<&TailnetStatus>, key: Option<&str>) -> Vec<Check> {
    let http = net::http_client(TIMEOUT).timeout(TIMEOUT).build().expect("a plain HTTP client builds");
    let peers = set.nodes.iter().filter(|(name, _)| name.as_str() != node);
    let asks = peers.map(|(name, object)| {
        let address = &object.spec.address.value;
        let tailnet_ip = tailnet.and_then(|t| t.peer_for(address)).and_then(|p| p.ips.iter().find(|ip| ip.is_ipv4()));
        let host = tailnet_ip.map_or_else(|| address.clone(), ToString::to_string);
        let dial = host_port(&host, object.spec.api_port.0);
        let http = http.clone();
        async move {
            let found = ask_peer(&http, &dial, key).await;
            let mut checks = vec![peer_check(name, &dial, &found)];
            if let PeerFound::Answered { skew: Some(skew), .. } = found {
                checks.push(clock_check(name, skew));
            }
            checks
        }
    });
    futures_util::future::join_all(asks).await.into_iter().flatten().collect()
}

async fn ask_peer(http: &reqwest::Client, dial: &str, key: Option<&str>) -> PeerFound {
    let request = http.get(format!("http://{dial}/mesh/health"));
    let request = match key {
        Some(key) => request.bearer_auth(key),
        None => request,
    };
    let sent = SystemTime::now();
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => return PeerFound::Unreachable(root_cause(&error)),
    };
    let received = SystemTime::now();
    let date = response.headers().get(reqwest::header::DATE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if !response.status().is_success() {
        return PeerFound::Unreachable(format!("it answered {}", response.status()));
    }
    let health: Health = match response.json().await {
        Ok(health) => health,
        Err(error) => return PeerFound::Unreachable(format!("not a mesh API: {}", root_cause(&error))),
    };
    let skew = date.as_deref().and_then(parse_http_date).map(|peer| skew_seconds(peer, sent, received));
    PeerFound::Answered { api_version: health.api_version, version: health.version, skew }
}

fn peer_check(name: &str, dial: &str, found: &PeerFound) -> Check {
    let check = format!("peer/{name}");
    match found {
        PeerFound::Unreachable(why) => Check::warn(
            &check,
            format!("{name} does not answer at {dial} ({why}); normal while it sleeps"),
            format!("if it should be up: start meshctl daemon on {name}, and check {dial} reaches it"),
        ),
        PeerFound::Answered { api_version, version, .. } if api_version != API_VERSION => Check::fail(
            &check,
            format!(
                "{name} at {dial} speaks mesh API {api_version} (meshctl {version}); this node speaks {API_VERSION}"
            ),
            "run the same meshctl version on every node",
        ),
        PeerFound::Answered { version, .. } => {
            Check::pass(&check, format!("{name} answers at {dial}: meshctl {version}, API {API_VERSION}"))
        }
    }
}

/// Clock skew in seconds (the peer's clock minus ours, measured from a `Date`
/// header of 1 s resolution, so up to about a second off).
fn clock_check(name: &str, skew: f64) -> Check {
    let check = format!("clock/{name}");
    let size = Duration::from_secs_f64(skew.abs());
    let direction = if skew > 0.0 { "ahead of" } else { "behind" };
    let message = format!("{name}'s clock is {:.0}s {direction} this node's (to within 1 s)", skew.abs());
    let fix = "turn on network time on both machines (macOS: System Settings > General > Date & Time)";
    if size > SKEW_FAIL {
        Check::fail(&check, message, fix)
    } else if size > SKEW_WARN {
        Check::warn(&check, message, fix)
    } else {
        Check::pass(&check, format!("{name}'s clock agrees with this node's to within {}s", SKEW_WARN.as_secs()))
    }
}

/// The peer's clock minus ours: its `Date` (truncated to the second, so half
/// a second is added) against the middle of the round trip.
fn skew_seconds(peer: SystemTime, sent: SystemTime, received: SystemTime) -> f64 {
    let seconds = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let ours = (seconds(sent) + seconds(received)) / 2.0;
    seconds(peer) + 0.5 - ours
}

/// An HTTP `Date` (IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`).
fn parse_http_date(text: &str) -> Option<SystemTime> {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let words: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = words.as_slice() else { return None };
    let month = MONTHS.iter().position(|m| m == month)? + 1;
    let day: u8 = day.parse().ok()?;
    humantime::parse_rfc3339(&format!("{year}-{month:02}-{day:02}T{time}Z")).ok()
}

// --- capabilities -----------------------------------------------------------------------

/// This node, as the capability checks reach endpoints from it.
struct CapabilityProbe<'a> {
    node: &'a str,
    /// This node's mesh API (`http://host:port`) and its key.
    api: &'a str,
    key: Option<&'a str>,
}

/// Where a capability served by `served_by` is checked from this node: its
/// endpoint directly, as the Capability reconciler probes it, or, for a
/// peer's loopback endpoint that only the peer can reach, through this
/// node's own `/cap/<name>/` (the way a client reaches it; true: send the key).
fn capability_health_target(
    set: &ManifestSet,
    name: &str,
    served_by: &str,
    this: &CapabilityProbe<'_>,
) -> Option<(String, bool)> {
    let spec = &set.capabilities.get(name)?.spec;
    let address = set.nodes.get(served_by).map(|n| n.spec.address.value.as_str());
    let host = spec.endpoint_host(address)?;
    Some(match health_check(host, served_by, this.node) {
        HealthCheck::Direct => (health_url(spec, host), false),
        HealthCheck::ByItsNode => {
            let api = this.api.trim_start_matches("http://");
            (health_url_by_node(api, name, spec), true)
        }
    })
}

/// A `capability/<name>` check per Capability the daemon reconciles: where it
/// is placed now, and whether its endpoint there is healthy.
async fn capability_checks(set: &ManifestSet, status: Option<&NodeStatus>, this: &CapabilityProbe<'_>) -> Vec<Check> {
    let Some(status) = status else {
        let names = set.capabilities.keys();
        return names
            .map(|name| {
                Check::warn(
                    &format!("capability/{name}"),
                    "cannot tell where it is placed: the daemon does not answer",
                    START_DAEMON,
                )
            })
            .collect();
    };
    let http = net::http_client(TIMEOUT).timeout(TIMEOUT).build().expect("a plain HTTP client builds");
    let capabilities = status.objects.iter().filter(|object| object.kind == "Capability");
    let checks = capabilities.map(|object| {
        let http = http.clone();
        async move {
            let served_by = object.details.get("servedBy");
            let target = served_by.and_then(|node| capability_health_target(set, &object.name, node, this));
            let (url, with_key) = match target {
                Some((url, with_key)) => (Some(url), with_key),
                None => (object.details.get("endpoint").cloned(), false),
            };
            let health = match &url {
                Some(url) => Some(endpoint_health(&http, url, this.key.filter(|_| with_key)).await),
                None => None,
            };
            let reason = object.condition(ConditionType::Ready).map(|c| c.message.clone());
            capability_verdict(&object.name, served_by.map(String::as_str), url.as_deref(), health, reason)
        }
    });
    futures_util::future::join_all(checks).await
}

async fn endpoint_health(http: &reqwest::Client, url: &str, key: Option<&str>) -> Result<(), String> {
    let mut request = http.get(url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    match request.send().await {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => Err(format!("it answered {}", response.status())),
        Err(error) => Err(root_cause(&error)),
    }
}

fn capability_verdict(
    name: &str,
    served_by: Option<&str>,
    url: Option<&str>,
    health: Option<Result<(), String>>,
    reason: Option<String>,
) -> Check {
    let check = format!("capability/{name}");
    let describe = format!("meshctl describe capability {name}");
    match (served_by, url, health) {
        (None, _, _) => Check::fail(
            &check,
            reason.filter(|r| !r.is_empty()).unwrap_or_else(|| "no node serves it yet".into()),
            format!("start its service on a node of its placement ({describe})"),
        ),
        (Some(node), Some(url), Some(Ok(()))) => Check::pass(&check, format!("served by {node}, healthy at {url}")),
        (Some(node), Some(url), Some(Err(why))) => Check::fail(
            &check,
            format!("served by {node}, but {url} is not healthy: {why}"),
            format!(
                "check its service on {node} ({describe}); the mesh moves it within seconds if another node can serve it"
            ),
        ),
        (Some(node), _, _) => Check::warn(
            &check,
            format!("served by {node}, at an endpoint this meshctl cannot tell"),
            "apply the manifests again so this node and its daemon agree",
        ),
    }
}

/// "1 error", "2 errors".
fn count(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(node: &str) -> Health {
        Health {
            node: node.into(),
            role: None,
            version: "0.1.0".into(),
            commit: "1a2b3c4".into(),
            api_version: API_VERSION.into(),
            revision: Some("r1".into()),
            uptime_seconds: 61,
            source: None,
            placements: Default::default(),
        }
    }

    fn answered(node: &str) -> DaemonFound {
        let status = NodeStatus {
            name: node.into(),
            role: "primary".into(),
            online: true,
            last_seen: None,
            unreachable_since: None,
            revision: Some("r1".into()),
            last_error: None,
            objects: Vec::new(),
            paused: false,
            source: None,
        };
        DaemonFound::Answered { health: health(node), status: Box::new(Ok(status)) }
    }

    #[test]
    fn the_api_port_is_free_or_served_by_our_daemon_and_anything_else_fails() {
        let listen: SocketAddr = "127.0.0.1:8000".parse().unwrap();
        let nobody = DaemonFound::Unreachable("refused".into());
        let refused = Bind::Refused("cannot assign requested address".into());
        let table = [
            (Bind::Free, &nobody, Status::Pass, "is free"),
            (Bind::InUse, &answered("laptop"), Status::Pass, "served by this node's daemon"),
            (Bind::InUse, &answered("mini"), Status::Fail, "another node, mini"),
            (Bind::InUse, &nobody, Status::Fail, "not a meshctl daemon"),
            (refused.clone(), &answered("laptop"), Status::Pass, "served by this node's daemon"),
            (refused, &nobody, Status::Fail, "cannot listen on 127.0.0.1:8000"),
        ];
        for (bind, daemon, status, words) in table {
            let check = port_check(listen, &bind, daemon, "laptop");
            assert_eq!(check.status, status, "{bind:?}: {check:?}");
            assert!(check.message.contains(words), "{bind:?}: {check:?}");
        }
    }

    #[test]
    fn the_daemon_must_answer_as_this_node_and_take_the_key() {
        let unauthorized = ClientError::Api {
            status: reqwest::StatusCode::UNAUTHORIZED,
            error: "unauthorized".into(),
            message: "a valid key is required".into(),
            diagnostics: vec![],
        };
        let newer = match answered("laptop") {
            DaemonFound::Answered { mut health, status } => {
                health.api_version = "v2".into();
                DaemonFound::Answered { health, status }
            }
            unreachable => unreachable,
        };
        let refused = DaemonFound::Answered { health: health("laptop"), status: Box::new(Err(unauthorized)) };
        let table = [
            (answered("laptop"), Status::Pass, "laptop answers at http://x: meshctl 0.1.0, API v1, r1, up 1m 1s"),
            (answered("mini"), Status::Fail, "the daemon at http://x is Node mini, not laptop"),
            (newer, Status::Fail, "the daemon at http://x speaks mesh API v2, this meshctl v1"),
            (refused, Status::Fail, "http://x refused the key: the key in .env is not the daemon's"),
            (DaemonFound::Unreachable("refused".into()), Status::Fail, "nothing answers: refused"),
        ];
        for (found, status, message) in table {
            let check = daemon_check("http://x", &found, "laptop");
            assert_eq!((check.status, check.message.as_str()), (status, message));
        }
        let down = daemon_check("http://x", &DaemonFound::Unreachable("refused".into()), "laptop");
        assert_eq!(down.fix.as_deref(), Some("start it: meshctl daemon or meshctl install-service"));
    }

    #[test]
    fn git_passes_from_2_30_warns_older_and_fails_when_missing() {
        let table = [
            (Ok("git version 2.47.3"), Status::Pass, "git version 2.47.3, for MESH_GIT_REMOTE"),
            (Ok("git version 2.39.3 (Apple Git-145)"), Status::Pass, "Apple Git-145"),
            (Ok("git version 2.30.0.windows.1"), Status::Pass, "2.30.0"),
            (Ok("git version 2.29.2"), Status::Warn, "older than 2.30"),
            (Ok("git version 1.9.1"), Status::Warn, "older than 2.30"),
            (Ok("hub version 2.14"), Status::Warn, "not a Git version"),
            (Err("`git --version` failed: git is not installed or not on PATH"), Status::Fail, "not installed"),
        ];
        for (found, status, words) in table {
            let check = git_check(&found.map(str::to_owned).map_err(str::to_owned));
            assert_eq!(check.status, status, "{found:?}");
            assert!(check.message.contains(words), "{found:?}: {}", check.message);
            assert_eq!(check.fix.is_some(), status != Status::Pass, "{found:?}");
        }
    }

    fn git_source() -> SourceStatus {
        SourceStatus::git(&GitSettings {
            remote: "https://me:pw@example.com/mesh.git".into(),
            branch: "main".into(),
            path: "manifests".into(),
            interval: Duration::from_secs(30),
            timeout: crate::config::DEFAULT_GIT_TIMEOUT,
        })
    }

    #[test]
    fn the_remote_must_answer_and_have_the_branch() {
        let cases = [
            (
                Ok(Some("a".repeat(40))),
                Status::Pass,
                "git https://me:***@example.com/mesh.git@main answers, at aaaaaaaaaaaa",
            ),
            (Ok(None), Status::Fail, "https://me:***@example.com/mesh.git has no branch main"),
            (Err("`git ls-remote` failed: Could not resolve host".to_owned()), Status::Fail, "cannot reach"),
        ];
        for (found, status, message) in cases {
            let check = git_remote_check(&git_source(), &found);
            assert_eq!(check.status, status, "{check:?}");
            assert!(check.message.contains(message), "{check:?}");
            assert_eq!(check.name, "git-remote");
            assert!(!format!("{check:?}").contains(":pw@"), "no password shown: {check:?}");
        }
    }

    #[test]
    fn a_local_folder_that_differs_from_the_followed_commit_is_a_warning() {
        let differs = Differences { changed: vec!["llm.yaml".into()], ..Differences::default() };
        let cases = [
            (
                Ok(("git x@main at 1".to_owned(), Differences::default())),
                Status::Pass,
                "is what the daemon follows (git x@main at 1)",
            ),
            (
                Ok(("git x@main at 1".to_owned(), differs)),
                Status::Warn,
                "differs from what the daemon follows (git x@main at 1): it changes llm.yaml",
            ),
            (Err("the daemon has not fetched branch main yet".to_owned()), Status::Warn, "cannot compare"),
        ];
        for (compared, status, message) in cases {
            let check = local_folder_check("/m", &git_source(), &compared);
            assert_eq!(check.status, status, "{check:?}");
            assert!(check.message.contains(message), "{check:?}");
        }
    }

    #[test]
    fn clock_skew_passes_to_5_s_warns_to_60_s_and_fails_beyond() {
        let table = [
            (0.4, Status::Pass),
            (-5.0, Status::Pass),
            (5.6, Status::Warn),
            (-59.0, Status::Warn),
            (61.0, Status::Fail),
            (-3600.0, Status::Fail),
        ];
        for (skew, status) in table {
            assert_eq!(clock_check("mini", skew).status, status, "{skew}");
        }
        assert_eq!(clock_check("mini", -90.2).message, "mini's clock is 90s behind this node's (to within 1 s)");
    }

    #[test]
    fn skew_is_the_peer_date_against_the_middle_of_the_round_trip() {
        let at = |s: u64, ms: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s) + Duration::from_millis(ms);
        // Sent at 100.2 s, answered at 100.4 s: the peer's 100 s means 100.5 s.
        let skew = skew_seconds(at(100, 0), at(100, 200), at(100, 400));
        assert!((skew - 0.2).abs() < 1e-6, "{skew}");
        assert!((skew_seconds(at(40, 0), at(100, 0), at(100, 0)) + 59.5).abs() < 1e-6);
    }

    #[test]
    fn http_dates_are_read_and_anything_else_is_not() {
        let date = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(date.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(), 784_111_777);
        for text in ["Sunday, 06-Nov-94 08:49:37 GMT", "Sun, 06 Foo 1994 08:49:37 GMT", "", "Sun, 06 Nov 1994 08:49:37"]
        {
            assert_eq!(parse_http_date(text), None, "{text}");
        }
    }

    #[test]
    fn a_peer_that_does_not_answer_is_a_warning_and_another_api_version_fails() {
        let answered = |api: &str| PeerFound::Answered { api_version: api.into(), version: "0.2.0".into(), skew: None };
        let table = [
            (PeerFound::Unreachable("refused".into()), Status::Warn, "mini does not answer at mini:8000 (refused)"),
            (answered(API_VERSION), Status::Pass, "mini answers at mini:8000: meshctl 0.2.0, API v1"),
            (answered("v2"), Status::Fail, "mini at mini:8000 speaks mesh API v2 (meshctl 0.2.0)"),
        ];
        for (found, status, words) in table {
            let check = peer_check("mini", "mini:8000", &found);
            assert_eq!((check.name.as_str(), check.status), ("peer/mini", status));
            assert!(check.message.starts_with(words), "{check:?}");
        }
    }

    #[test]
    fn the_env_needs_a_node_and_a_key_unless_tailscale_identity_lets_callers_in() {
        let found = |node: Option<&str>, key: Result<Option<&str>, &str>, identity_auth: bool| EnvFound {
            problem: None,
            file: Some(".env".into()),
            node: node.map(Into::into),
            key: key.map(|k| k.map(Into::into)).map_err(Into::into),
            identity_auth,
        };
        let long = "k".repeat(MIN_KEY_LEN);
        let table = [
            (found(Some("laptop"), Ok(Some(&long)), false), Status::Pass, ".env: laptop, API key set"),
            (found(Some("laptop"), Ok(Some("short")), false), Status::Warn, "the API key is 5 characters long"),
            (found(Some("laptop"), Ok(None), false), Status::Fail, "MESH_API_KEY is not set"),
            (found(Some("laptop"), Ok(None), true), Status::Pass, "by Tailscale identity"),
            (found(Some("laptop"), Err("the Mesh's auth.apiKey: x"), false), Status::Fail, "auth.apiKey"),
            (found(None, Ok(Some(&long)), false), Status::Fail, "AGENT_NODE_ID is not set in .env"),
        ];
        for (found, status, words) in table {
            let check = env_check(&found);
            assert_eq!(check.status, status, "{check:?}");
            assert!(check.message.contains(words), "{check:?}");
        }
        let unreadable = EnvFound { problem: Some(".env: line 3".into()), ..found(None, Ok(None), false) };
        assert_eq!(env_check(&unreadable).status, Status::Fail);
    }

    #[test]
    fn tailscale_down_is_a_warning_unless_the_mesh_relies_on_it() {
        let up = TailnetStatus {
            running: true,
            self_ips: vec!["100.101.1.2".parse().unwrap()],
            self_dns_name: Some("laptop.tail1234.ts.net".into()),
            ..TailnetStatus::default()
        };
        let stopped = TailnetStatus::default();
        let missing = Err("Tailscale is not installed".to_owned());
        let table = [
            (Ok(up), false, Status::Pass),
            (Ok(stopped.clone()), false, Status::Warn),
            (Ok(stopped), true, Status::Fail),
            (missing.clone(), false, Status::Warn),
            (missing, true, Status::Fail),
        ];
        for (found, required, status) in table {
            assert_eq!(tailscale_check(&found, required).status, status, "{found:?} {required}");
        }
        let up = tailscale_check(&Ok(TailnetStatus { running: true, ..TailnetStatus::default() }), false);
        assert_eq!(up.message, "up as no MagicDNS name");
    }

    #[test]
    fn a_peers_loopback_endpoint_is_checked_through_this_nodes_pass_through() {
        use crate::manifest::{SourceFile, validate};
        let node = |name: &str, ip: &str| {
            format!(
                "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {{name: {name}}}\nspec: {{role: satellite, address: {ip}}}\n---\n"
            )
        };
        let capability = |name: &str, endpoint: &str| {
            format!(
                "apiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {{name: {name}}}\n\
                 spec: {{provider: http, placement: {{prefer: [mini], fallback: [laptop]}}, endpoint: {endpoint}}}\n---\n"
            )
        };
        let text = [
            node("mini", "100.64.0.1"),
            node("laptop", "100.64.0.2"),
            capability("llm", "{host: 127.0.0.1, port: 11434, healthPath: /api/version}"),
            capability("db", "{port: 8001, healthPath: /api/v2/heartbeat}"),
        ]
        .concat();
        let validation = validate(&[SourceFile { path: "m.yaml".into(), text }], Vec::new());
        assert!(validation.is_valid(), "{:?}", validation.diagnostics);
        let this = CapabilityProbe { node: "laptop", api: "http://100.64.0.2:8000", key: Some("k") };
        let target = |name: &str, served_by: &str| capability_health_target(&validation.set, name, served_by, &this);
        let table = [
            ("llm", "mini", Some(("http://100.64.0.2:8000/cap/llm/api/version", true))),
            ("llm", "laptop", Some(("http://127.0.0.1:11434/api/version", false))),
            ("db", "mini", Some(("http://100.64.0.1:8001/api/v2/heartbeat", false))),
            ("gone", "mini", None),
        ];
        for (name, served_by, expected) in table {
            let expected = expected.map(|(url, key)| (url.to_owned(), key));
            assert_eq!(target(name, served_by), expected, "{name} served by {served_by}");
        }
    }

    #[test]
    fn syncthing_names_a_wrong_key_apart_from_an_unreachable_one() {
        let url = "http://127.0.0.1:8384";
        let wrong = syncthing_verdict(url, "set SYNCTHING_API_KEY in .env to", &Err(SyncthingProblem::WrongKey));
        assert_eq!(
            render(&[wrong]),
            "fail  syncthing      Syncthing at http://127.0.0.1:8384 refused the API key — fix: set SYNCTHING_API_KEY in .env to the key in Syncthing's GUI (Actions > Settings > API Key)\n"
        );
        let down = syncthing_verdict(url, "", &Err(SyncthingProblem::Unreachable("refused".into())));
        assert_eq!(
            (down.status, down.message.as_str()),
            (Status::Fail, "Syncthing at http://127.0.0.1:8384 is not reachable: refused")
        );
        let ok = syncthing_verdict(url, "", &Ok("ABCDEFG-HIJKLMN".into()));
        assert_eq!(
            (ok.status, ok.message.as_str()),
            (Status::Pass, "Syncthing at http://127.0.0.1:8384 answers with the key (device ABCDEFG)")
        );
    }

    #[test]
    fn a_capability_passes_only_where_it_is_served_and_healthy() {
        let url = Some("http://mini:11434/api/tags");
        let table = [
            (Some("mini"), url, Some(Ok(())), Status::Pass),
            (Some("mini"), url, Some(Err("refused".to_owned())), Status::Fail),
            (None, None, None, Status::Fail),
            (Some("mini"), None, None, Status::Warn),
        ];
        for (served_by, url, health, status) in table {
            let check = capability_verdict("llm", served_by, url, health.clone(), Some("mini is offline".into()));
            assert_eq!((check.name.as_str(), check.status), ("capability/llm", status), "{check:?}");
        }
        let none = capability_verdict("llm", None, None, None, Some("no node can serve it: mini is offline".into()));
        assert_eq!(none.message, "no node can serve it: mini is offline");
        assert_eq!(capability_verdict("llm", None, None, None, None).message, "no node serves it yet");
    }

    #[test]
    fn a_services_program_passes_where_it_is_found_and_fails_named_where_not() {
        let owner = "the LaunchAgent's PATH";
        let path = "/usr/bin:/bin";
        let table = [
            (
                "ollama",
                Some("/opt/homebrew/bin/ollama"),
                Status::Pass,
                "Service/ollama: `ollama` is /opt/homebrew/bin/ollama on the LaunchAgent's PATH",
            ),
            (
                "ollama",
                None,
                Status::Fail,
                "Service/ollama: `ollama` not found on the LaunchAgent's PATH (/usr/bin:/bin)",
            ),
            ("/opt/ollama", Some("/opt/ollama"), Status::Pass, "Service/ollama: `/opt/ollama` is there"),
            ("/opt/ollama", None, Status::Fail, "Service/ollama: `/opt/ollama` does not exist or is not executable"),
        ];
        for (program, found, status, message) in table {
            let check = program_verdict("ollama", program, found.map(Path::new), owner, path);
            assert_eq!(check.name, "service/ollama");
            assert_eq!((check.status, check.message.as_str()), (status, message));
            assert_eq!(check.fix.is_some(), status == Status::Fail, "{check:?}");
        }
    }

    #[test]
    fn syncthing_is_checked_for_the_node_or_wherever_a_key_is_set() {
        use crate::manifest::Located;
        let settings = NodeSyncthing {
            api_url: Located::new("http://127.0.0.1:9000".into(), Default::default()),
            api_key: SecretRef::File("~/st.key".into()),
            device_address: Located::new("dynamic".into(), Default::default()),
        };
        let target = |url: &str, key: SecretRef| Some(SyncthingTarget { api_url: url.into(), api_key: key });
        let env_key = || SecretRef::Env("SYNCTHING_API_KEY".into());
        let table = [
            (Some(&settings), false, None, target("http://127.0.0.1:9000", SecretRef::File("~/st.key".into()))),
            (
                Some(&settings),
                true,
                Some("127.0.0.1:1"),
                target("http://127.0.0.1:9000", SecretRef::File("~/st.key".into())),
            ),
            (None, true, None, target("http://127.0.0.1:8384", env_key())),
            (None, true, Some(""), target("http://127.0.0.1:8384", env_key())),
            (None, true, Some("127.0.0.1:28384"), target("http://127.0.0.1:28384", env_key())),
            (None, true, Some("https://st.local:8384"), target("https://st.local:8384", env_key())),
            (None, false, Some("127.0.0.1:28384"), None),
        ];
        for (node, key_set, gui, expected) in table {
            assert_eq!(syncthing_target(node, key_set, gui), expected, "{node:?} {key_set} {gui:?}");
        }
    }

    #[test]
    fn json_lists_check_status_message_and_fix() {
        let json = serde_json::to_value([Check::pass("node", "Node/laptop")]).unwrap();
        assert_eq!(
            json,
            serde_json::json!([{"check": "node", "status": "pass", "message": "Node/laptop", "fix": null}])
        );
    }
}
