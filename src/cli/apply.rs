//! `meshctl apply [-f DIR] [--dry-run]` and `meshctl diff [-f DIR]`: validate a
//! folder here, then hand it to this node's controller and every peer, which
//! validate it again and reconcile now (or only plan, for a dry run).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Outcome, local_client, runtime};
use crate::client::{ApiClient, ClientError};
use crate::identity::NodeEnv;
use crate::manifest::Bundle;
use crate::manifest::{self, loader};
use crate::source::folder_revision;

/// How long a peer gets to take a bundle.
const PEER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// The manifests folder (default: MESH_MANIFESTS, else ./manifests).
    #[arg(short = 'f', long = "filename", value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Print the plan; change nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, clap::Args)]
pub(super) struct DiffArgs {
    /// The manifests folder (default: MESH_MANIFESTS, else ./manifests).
    #[arg(short = 'f', long = "filename", value_name = "DIR")]
    dir: Option<PathBuf>,
}

pub(super) fn diff(args: DiffArgs, env_file: Option<&Path>) -> anyhow::Result<Outcome> {
    run(Args { dir: args.dir, dry_run: true }, env_file)
}

pub(super) fn run(args: Args, env_file: Option<&Path>) -> anyhow::Result<Outcome> {
    let env = &NodeEnv::load(env_file)?;
    let dir = args.dir.unwrap_or_else(|| env.manifests_dir());
    let (files, unreadable) = loader::load_dir(&dir)?;
    let validation = manifest::validate(&files, unreadable);
    for diagnostic in &validation.diagnostics {
        eprintln!("{diagnostic}\n");
    }
    if !validation.is_valid() {
        eprintln!("{}: {} error(s); nothing was applied", dir.display(), validation.error_count());
        return Ok(Outcome::Failure);
    }
    let (revision, unpushed) = folder_revision(&dir, &files);
    let bundle = Bundle::from_files(revision, &files);
    let (local, key) = local_client(env)?;
    let this_node = env.get(crate::identity::NODE_ID).map(|s| s.value.clone()).unwrap_or_default();
    let peers: Vec<(String, String)> = validation
        .set
        .nodes
        .values()
        .filter(|node| node.name() != this_node)
        .map(|node| (node.name().to_owned(), format!("{}:{}", node.spec.address.value, node.spec.api_port)))
        .collect();

    let mut failed = false;
    runtime()?.block_on(async {
        match local.apply(bundle.clone(), args.dry_run).await {
            Ok(response) => println!("{}", response.plan),
            Err(error) => {
                report(&this_node, &error);
                failed = true;
            }
        }
        // What the local daemon's prober knows: peers known to be down are
        // skipped rather than waited for, and a peer is called where the
        // daemon calls it (its tailnet IP when known).
        let views = local.mesh().await.unwrap_or_default();
        for (name, written) in peers {
            let view = views.iter().find(|v| v.name == name);
            if let Some(view) = view.filter(|v| v.known_down) {
                let since = view.last_seen.as_deref().map_or_else(String::new, |t| format!(", last seen {t}"));
                println!("node {name}: offline{since}; skipped, it picks the change up from its own source");
                continue;
            }
            let authority = view.map_or(written, |v| v.dial.clone());
            match ApiClient::new(&authority, key.as_deref(), PEER_TIMEOUT).apply(bundle.clone(), args.dry_run).await {
                Ok(response) => println!("{}", response.plan),
                Err(ClientError::Unreachable { reason, .. }) => {
                    println!("node {name}: not reachable ({reason}); it picks the change up from its own source");
                }
                Err(error) => {
                    report(&name, &error);
                    failed = true;
                }
            }
        }
    });
    if args.dry_run {
        println!("dry run: nothing was changed");
    }
    if let Some(note) = unpushed {
        println!("note: {note}. A controller with a Git source returns to the remote's state at its next new commit.");
    }
    Ok(if failed { Outcome::Failure } else { Outcome::Success })
}

fn report(node: &str, error: &ClientError) {
    eprintln!("node {node}: {error}");
    if let ClientError::Api { diagnostics, .. } = error {
        for diagnostic in diagnostics {
            eprintln!("{diagnostic}\n");
        }
    }
}
