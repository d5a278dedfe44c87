//! `meshctl apply [-f DIR] [--dry-run] [--force]` and `meshctl diff [-f DIR]`:
//! validate a folder here, then hand it to this node's controller and every
//! peer, which validate it again and reconcile now (or only plan, for a dry
//! run). A node with a Git source follows its remote: `apply` refuses there
//! unless forced, and `diff` plans against the commit the node follows.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Outcome, local_client, runtime};
use crate::client::{ApiClient, ClientError};
use crate::config::GitSettings;
use crate::identity::NodeEnv;
use crate::manifest::Bundle;
use crate::manifest::{self, loader};
use crate::source::folder_revision;
use crate::source_status::SourceStatus;

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
    /// With a Git source (MESH_GIT_REMOTE): apply the folder anyway, until the
    /// next new commit replaces it.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, clap::Args)]
pub(super) struct DiffArgs {
    /// The manifests folder (default: MESH_MANIFESTS, else ./manifests).
    #[arg(short = 'f', long = "filename", value_name = "DIR")]
    dir: Option<PathBuf>,
}

pub(super) fn diff(args: DiffArgs, env_file: Option<&Path>) -> anyhow::Result<Outcome> {
    run(Args { dir: args.dir, dry_run: true, force: false }, env_file)
}

/// Whether `apply` may send a folder to a node that follows `git` (None: the
/// node follows its folder): a dry run and a forced apply may; anything else
/// is refused with what to do instead.
fn git_mode_refusal(git: Option<&GitSettings>, dry_run: bool, force: bool) -> Option<String> {
    SourceStatus::git(git.filter(|_| !dry_run && !force)?).apply_refusal()
}

pub(super) fn run(args: Args, env_file: Option<&Path>) -> anyhow::Result<Outcome> {
    let env = &NodeEnv::load(env_file)?;
    let git = GitSettings::from_env(env).map_err(anyhow::Error::msg)?;
    if let Some(refusal) = git_mode_refusal(git.as_ref(), args.dry_run, args.force) {
        eprintln!("{refusal}");
        return Ok(Outcome::Failure);
    }
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

    if let Some(git) = git.as_ref().filter(|_| args.dry_run) {
        let followed = SourceStatus::git(git).followed();
        println!("{} against what each node follows ({followed}): what pushing it would change", dir.display());
    }
    let mut failed = false;
    runtime()?.block_on(async {
        match local.apply(bundle.clone(), args.dry_run, args.force).await {
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
            let peer = ApiClient::new(&authority, key.as_deref(), PEER_TIMEOUT);
            match peer.apply(bundle.clone(), args.dry_run, args.force).await {
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
    if let Some(git) = git.as_ref().filter(|_| !args.dry_run && !failed) {
        let followed = SourceStatus::git(git).followed();
        println!("applied with --force: this folder runs until the next new commit on {followed} replaces it");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_that_follows_git_refuses_a_plain_apply_only() {
        let git = GitSettings {
            remote: "git@example.com:me/mesh.git".into(),
            branch: "main".into(),
            path: "manifests".into(),
            interval: Duration::from_secs(30),
            timeout: crate::config::DEFAULT_GIT_TIMEOUT,
        };
        // (source, dry run, force) -> refused
        let cases = [
            (None, false, false, false),
            (None, true, false, false),
            (None, false, true, false),
            (Some(&git), false, false, true),
            (Some(&git), true, false, false),
            (Some(&git), false, true, false),
            (Some(&git), true, true, false),
        ];
        for (source, dry_run, force, refused) in cases {
            assert_eq!(git_mode_refusal(source, dry_run, force).is_some(), refused, "{source:?} {dry_run} {force}");
        }
        let message = git_mode_refusal(Some(&git), false, false).expect("refused");
        assert!(
            message.starts_with("this node follows git@example.com:me/mesh.git@main (MESH_GIT_REMOTE)"),
            "{message}"
        );
        assert!(message.contains("`git push`") && message.contains("`meshctl apply --force`"), "{message}");
    }
}
