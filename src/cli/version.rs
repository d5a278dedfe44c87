//! `meshctl version`: this client's version and commit, and those of the
//! daemon it talks to (from `/mesh/health`). As `kubectl version`, the
//! client's part is always printed and the command exits 1 when the daemon
//! cannot be asked.

use std::path::Path;

use serde::Serialize;

use super::{Outcome, Output, Target, runtime, target_client};
use crate::api::wire::Health;
use crate::build_info;
use crate::identity::NodeEnv;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Print only this client's version; ask no daemon.
    #[arg(long)]
    client: bool,
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
    #[command(flatten)]
    target: Target,
}

/// `version -o json`: `daemon` is null when it was not asked (`--client`) or
/// did not answer, and then `error` says why.
#[derive(Debug, Serialize)]
struct Report {
    client: Build,
    daemon: Option<DaemonBuild>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct Build {
    version: String,
    commit: String,
}

#[derive(Debug, Serialize)]
struct DaemonBuild {
    node: String,
    version: String,
    commit: String,
}

pub(super) fn run(args: Args, env_file: Option<&Path>) -> anyhow::Result<Outcome> {
    let client = Build { version: build_info::VERSION.into(), commit: build_info::COMMIT.into() };
    let answer = (!args.client).then(|| ask_daemon(env_file, &args.target));
    let (daemon, error) = match answer {
        None => (None, None),
        Some(Ok(health)) => {
            (Some(DaemonBuild { node: health.node, version: health.version, commit: health.commit }), None)
        }
        Some(Err(error)) => (None, Some(error)),
    };
    let failed = error.is_some();
    match args.output {
        Output::Text => {
            println!("Client Version: {} (commit {})", client.version, client.commit);
            if let Some(daemon) = &daemon {
                println!("Daemon Version: {} (commit {}) on node {}", daemon.version, daemon.commit, daemon.node);
            }
            if let Some(error) = error {
                return Err(error);
            }
        }
        format => {
            let report = Report { client, daemon, error: error.map(|error| format!("{error:#}")) };
            super::output::print(format, &report, String::new)?;
        }
    }
    Ok(if failed { Outcome::Failure } else { Outcome::Success })
}

fn ask_daemon(env_file: Option<&Path>, target: &Target) -> anyhow::Result<Health> {
    let env = &NodeEnv::load(env_file)?;
    let (client, _) = target_client(env, target)?;
    Ok(runtime()?.block_on(client.health())?)
}
