//! `meshctl`: the command line. Each command lives in its own module; exit codes
//! are decided here, in one place: 0 ok, 1 failure, 2 usage error (clap's);
//! `diff` as `kubectl diff`: 0 no change, 1 changes, 2 error;
//! `exec` ends with its command's code, or 127 (not found) / 126 (cannot run).

mod apply;
mod completion;
mod daemon;
mod describe;
mod doctor;
mod env;
mod events;
mod examples;
mod get;
mod handoff;
mod init;
mod join;
mod kinds;
mod logs;
mod man;
mod openapi;
mod output;
mod platform;
mod route;
mod schema;
mod service;
mod sessions;
mod status;
mod stream;
mod table;
mod ui;
mod validate;
mod version;
mod wake;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand, ValueEnum};

use crate::api::wire::MeshNode;
use crate::api_key;
use crate::client::{ApiClient, ClientError};
use crate::config::{client_addr, default_listen};
use crate::diagnostic::did_you_mean;
use crate::env_location;
use crate::identity::NodeEnv;

#[derive(Debug, Parser)]
#[command(
    name = "meshctl",
    version = crate::build_info::VERSION_AND_COMMIT,
    about = "Declarative mesh of your AI agent's machines"
)]
struct Cli {
    /// Read the node's settings from this env file, instead of the `.env` of
    /// the current folder or the nearest parent that has one, else of the node
    /// folder named in the context file `init` writes.
    #[arg(long, global = true, value_name = "FILE")]
    env_file: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a manifests folder, files or standard input (-) and report every problem.
    Validate(validate::Args),
    /// Write the manifests' JSON Schemas.
    Schema(schema::Args),
    /// Print the mesh API's OpenAPI 3.1 description (as served at /api/v1/openapi.json).
    Openapi(openapi::Args),
    /// Run this node's controller until SIGTERM or SIGINT.
    Daemon(daemon::Args),
    /// Show every node of the mesh and its objects.
    Status(status::Args),
    /// Hand a conversation to another node, following each step until it is done.
    Handoff(handoff::Args),
    /// Every conversation of this node: owner, epoch, in sync with the peer, conflicts.
    Sessions(sessions::Args),
    /// Validate a set (a folder, files or standard input) and apply it on this node and every peer now.
    Apply(apply::Args),
    /// Print what `apply` would change; change nothing.
    Diff(apply::DiffArgs),
    /// List one kind's objects on every node of the mesh, e.g. `meshctl get svc`.
    Get(get::Args),
    /// Print a Service's output, e.g. `meshctl logs service/ollama -f`.
    Logs(logs::Args),
    /// Show one object: conditions, spec, events, output.
    Describe(describe::Args),
    /// Print the controller's recent events; with -f, follow events and output.
    Events(events::Args),
    /// Call a capability on the node that serves it, through this node's router.
    Route(route::Args),
    /// Check this node's setup, one line per check, with the fix for each problem.
    Doctor(doctor::Args),
    /// Print the client env (where each capability is served now) in dotenv form.
    Env(env::EnvArgs),
    /// Run a command with the client env, e.g. `meshctl exec -- python agent.py`.
    Exec(env::ExecArgs),
    /// Set this node up: write .env (a new mesh key, or the one a join token carries) and, when missing, starter manifests.
    Init(init::Args),
    /// Print a one-line token that lets another machine join: `meshctl init --join -` there.
    JoinToken(join::TokenArgs),
    /// Run this node's controller at login (systemd user unit or LaunchAgent).
    InstallService(service::InstallArgs),
    /// Stop the controller's service and remove it.
    UninstallService(service::UninstallArgs),
    /// The installed controller's service: status, restart, logs.
    Service(service::ServiceArgs),
    /// Open this node's status page in a browser, signed in with a one-time ticket (never the key).
    Ui(ui::Args),
    /// Send a Node's Wake-on-LAN magic packet, as its manifest's `wake` says.
    Wake(wake::Args),
    /// Print this client's version and commit, and those of this node's daemon.
    Version(version::Args),
    /// Print the completion script of a shell.
    Completion(completion::Args),
    /// Write the man pages into a folder.
    #[command(hide = true)]
    Man(man::Args),
}

/// How a command prints its result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people: a table or lines (`table` is a synonym).
    #[default]
    #[value(alias = "table")]
    Text,
    Json,
    Yaml,
}

/// What a command reports back to `main`.
pub enum Outcome {
    Success,
    /// The command ran and found a problem it has already printed.
    Failure,
    /// Ends with this exit code (`exec`: the command could not be run).
    Code(u8),
}

/// The command line's definition, with the help's examples.
fn command() -> clap::Command {
    examples::add(Cli::command())
}

pub fn run() -> ExitCode {
    let cli = Cli::from_arg_matches(&command().get_matches()).unwrap_or_else(|error| error.exit());
    if !matches!(cli.command, Command::Daemon(_)) {
        restore_default_sigpipe();
    }
    let env_file = cli.env_file.as_deref();
    let error_code = cli.command.error_code();
    let result = match cli.command {
        Command::Validate(args) => validate::run(args, env_file),
        Command::Schema(args) => schema::run(args),
        Command::Openapi(args) => openapi::run(args),
        Command::Daemon(args) => daemon::run(args, env_file),
        Command::Status(args) => status::run(args, env_file),
        Command::Sessions(args) => sessions::run(args, env_file),
        Command::Handoff(args) => handoff::run(args, env_file),
        Command::Apply(args) => apply::run(args, env_file),
        Command::Diff(args) => apply::diff(args, env_file),
        Command::Get(args) => get::run(args, env_file),
        Command::Logs(args) => logs::run(args, env_file),
        Command::Describe(args) => describe::run(args, env_file),
        Command::Events(args) => events::run(args, env_file),
        Command::Route(args) => route::run(args, env_file),
        Command::Doctor(args) => doctor::run(args, env_file),
        Command::Env(args) => env::env(args, env_file),
        Command::Exec(args) => env::exec(args, env_file),
        Command::Init(args) => init::run(args, env_file),
        Command::JoinToken(args) => join::token(args, env_file),
        Command::InstallService(args) => service::install(args, env_file),
        Command::UninstallService(args) => service::uninstall(args),
        Command::Service(args) => service::service(args),
        Command::Ui(args) => ui::run(args, env_file),
        Command::Wake(args) => wake::run(args, env_file),
        Command::Version(args) => version::run(args, env_file),
        Command::Completion(args) => completion::run(args),
        Command::Man(args) => man::run(args),
    };
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Failure) => ExitCode::from(1),
        Ok(Outcome::Code(code)) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {error:#}");
            if error.chain().any(|cause| matches!(cause.downcast_ref(), Some(ClientError::Unreachable { .. }))) {
                eprintln!("  {}", env_location::locate(env_file));
            }
            ExitCode::from(error_code)
        }
    }
}

impl Command {
    /// The exit code of an error: 1, but 2 for `diff`, whose 1 means "there
    /// are changes" (as `kubectl diff`).
    fn error_code(&self) -> u8 {
        match self {
            Command::Diff(_) => apply::DIFF_ERROR,
            _ => 1,
        }
    }
}

/// How long the CLI waits for its own node's controller.
const LOCAL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Which daemon a command asks: this node's, or with `--on`, a peer's.
#[derive(Debug, clap::Args)]
pub(super) struct Target {
    /// Ask NODE's daemon instead of this node's: dialled at the address this
    /// node's daemon has for it in its peer table, with the mesh key.
    #[arg(long, value_name = "NODE")]
    on: Option<String>,
}

/// A client of the daemon `target` names, and the key for its peers.
fn target_client(env: &NodeEnv, target: &Target) -> anyhow::Result<(ApiClient, Option<String>)> {
    let (local, key) = local_client(env)?;
    let Some(node) = target.on.as_deref() else { return Ok((local, key)) };
    let peers = runtime()?
        .block_on(local.mesh())
        .with_context(|| format!("cannot ask this node's daemon where node {node} is"))?;
    let view = peer_named(&peers, node)?;
    if view.this_node {
        return Ok((local, key));
    }
    Ok((ApiClient::new(&view.authority(), key.as_deref(), LOCAL_TIMEOUT), key))
}

/// The node `name` of the local daemon's peer table, or an error listing the
/// nodes it knows.
fn peer_named<'a>(peers: &'a [MeshNode], name: &str) -> anyhow::Result<&'a MeshNode> {
    if let Some(view) = peers.iter().find(|view| view.name == name) {
        return Ok(view);
    }
    let known: Vec<String> = peers
        .iter()
        .map(|view| if view.this_node { format!("{} (this node)", view.name) } else { view.name.clone() })
        .collect();
    let help =
        did_you_mean(name, peers.iter().map(|view| view.name.as_str())).map_or_else(String::new, |h| format!("; {h}"));
    anyhow::bail!("--on {name}: this node's daemon knows no such node; known nodes: {}{help}", known.join(", "))
}

/// A client of this node's controller, found from the same settings as the
/// daemon (`MESH_LISTEN`, the key), and the key for its peers.
fn local_client(env: &NodeEnv) -> anyhow::Result<(ApiClient, Option<String>)> {
    let addr = match env.listen().map_err(anyhow::Error::msg)? {
        Some(listen) => client_addr(listen),
        None => default_daemon_addr()?,
    };
    let key = cli_api_key(env)?;
    Ok((ApiClient::new(&addr.to_string(), key.as_deref(), LOCAL_TIMEOUT), key))
}

/// The key the daemon uses: where the Mesh of the local manifests points, or
/// else `MESH_API_KEY`. None when neither gives one: the daemon then lets the
/// CLI in only by its Tailscale identity.
fn cli_api_key(env: &NodeEnv) -> anyhow::Result<Option<String>> {
    let dir = env.manifests_dir();
    let set = crate::manifest::loader::load_dir(&dir)
        .ok()
        .map(|(files, problems)| crate::manifest::validate(&files, problems).set);
    let mesh = set.as_ref().and_then(|set| set.mesh.as_ref()).map(|mesh| &mesh.spec);
    api_key::resolve(env, mesh).map_err(|error| anyhow::anyhow!("{error} (from {})", dir.display()))
}

/// Where a daemon without `MESH_LISTEN` listens: the address it picks as it
/// starts (the tailnet IP when Tailscale is up), or loopback when nothing
/// answers there, as when the daemon started before Tailscale came up.
fn default_daemon_addr() -> anyhow::Result<SocketAddr> {
    let addr = default_listen(runtime()?.block_on(crate::tailscale::local_tailnet_ipv4()));
    let loopback = default_listen(None);
    if addr != loopback && std::net::TcpStream::connect_timeout(&addr, TAILNET_CONNECT_TIMEOUT).is_err() {
        return Ok(loopback);
    }
    Ok(addr)
}

/// This node's own tailnet IP answers at once or not at all.
const TAILNET_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// A small runtime for the commands that talk HTTP.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// Rust ignores SIGPIPE, so `meshctl status | head` would fail writing to a
/// closed pipe; a command-line tool should end quietly instead, as others do.
/// The daemon keeps ignoring it: a closed socket must not kill it.
fn restore_default_sigpipe() {
    crate::sys::restore_default_disposition(libc::SIGPIPE);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(name: &str, this_node: bool) -> MeshNode {
        let json = serde_json::json!({
            "name": name, "role": "satellite", "address": "127.0.0.9", "apiPort": 8000, "thisNode": this_node,
        });
        serde_json::from_value(json).expect("a MeshNode")
    }

    #[test]
    fn a_node_is_called_where_its_view_dials_it_else_at_its_declared_address() {
        let older = view("mini", false);
        assert_eq!(older.authority(), "127.0.0.9:8000");
        let tailnet = MeshNode { dial: "100.64.0.2:8000".into(), ..older };
        assert_eq!(tailnet.authority(), "100.64.0.2:8000");
    }

    #[test]
    fn on_finds_the_node_by_name_or_lists_the_known_ones() {
        let peers = [view("laptop", true), view("mini", false)];
        assert_eq!(peer_named(&peers, "mini").unwrap().name, "mini");
        assert!(peer_named(&peers, "laptop").unwrap().this_node);
        let error = peer_named(&peers, "minni").unwrap_err().to_string();
        assert_eq!(
            error,
            "--on minni: this node's daemon knows no such node; known nodes: laptop (this node), mini; did you mean \"mini\"?"
        );
    }
}
