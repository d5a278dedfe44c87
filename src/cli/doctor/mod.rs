//! `meshctl doctor`: one line per check of this node's setup, each `pass`,
//! `warn` or `fail` with the fix in plain words; exit 1 on any fail.
//!
//! Each check is a small function returning a [`Check`]. What a check found is
//! gathered at the edges (files, sockets, HTTP with a short timeout, the
//! network checks run concurrently); deciding pass / warn / fail from it is
//! pure and table-tested in the check's own file: `setup` (.env, manifests,
//! this Node), `daemon`, `git`, `tools` (Tailscale, Syncthing, programs),
//! `peers`, `capabilities`. This file runs them in order and prints them.

use std::path::Path;

mod capabilities;
mod check;
mod daemon;
mod git;
mod peers;
mod setup;
mod tools;

use capabilities::{CapabilityProbe, capability_checks};
use check::{Check, Status, TIMEOUT, render};
pub(super) use daemon::listen_addr;
use daemon::{DaemonFound, bind, daemon_check, port_check};
use git::{git_check, git_mode_checks, git_version, read_followed};
use peers::peer_checks;
use setup::{EnvFound, Manifests, env_check, node_check};
use tools::{service_program_checks, syncthing_check, tailscale_check};

use super::{Outcome, Output};
use crate::client::ApiClient;
use crate::config::{GitSettings, client_addr};
use crate::identity::{NODE_ID, NodeEnv};
use crate::tailscale::TailscaleClient;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Print one line per check, or the checks as a JSON or YAML list.
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
}

pub(super) fn run(args: Args, env_file: Option<&Path>) -> anyhow::Result<Outcome> {
    let checks = super::runtime()?.block_on(all_checks(env_file));
    super::output::print(args.output, &checks, || render(&checks))?;
    Ok(if checks.iter().any(|c| c.status == Status::Fail) { Outcome::Failure } else { Outcome::Success })
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
    let node = env.value(NODE_ID).map(str::to_owned);
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
