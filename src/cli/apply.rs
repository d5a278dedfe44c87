//! `meshctl apply [-f PATH…] [--dry-run] [--force]` and `meshctl diff [-f PATH…]`:
//! validate a set here (a folder, files or standard input: what is given is
//! the whole set), then hand it to this node's controller and every peer, which
//! validate it again and reconcile now (or only plan, for a dry run). A node
//! with a Git source follows its remote: `apply` refuses there unless forced,
//! and `diff` plans against the commit the node follows. `apply` refuses files
//! that lack this node's Node unless forced: they would replace its whole set.
//! `diff` exits as `kubectl diff`: 0 no change, 1 changes, 2 error.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::{Outcome, Output, local_client, output, runtime};
use crate::api::wire::{MeshNode, Plan};
use crate::client::{ApiClient, ClientError};
use crate::config::GitSettings;
use crate::identity::{NODE_ID, NodeEnv};
use crate::manifest::loader::{self, Input, Loaded};
use crate::manifest::{self, Bundle, ManifestSet};
use crate::source::{content_revision, folder_revision};
use crate::source_status::SourceStatus;

/// How long a peer gets to take a bundle.
const PEER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// The set to send: a manifests folder, a file, or `-` (standard input);
    /// may be given more than once (default: MESH_MANIFESTS, else ./manifests).
    /// What is given replaces the whole set in force: `apply -f one.yaml`
    /// leaves only that file's objects running. A file or standard input that
    /// lacks this node's Node is refused unless --force.
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Print the plan; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// With a Git source (MESH_GIT_REMOTE): apply the set anyway, until the
    /// next new commit replaces it. With files that lack this node's Node:
    /// apply them anyway.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, clap::Args)]
pub(super) struct DiffArgs {
    /// The set to compare: a manifests folder, a file, or `-` (standard input);
    /// may be given more than once (default: MESH_MANIFESTS, else ./manifests).
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// `json` or `yaml`: every node's plan, and whether anything would change.
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
}

/// `diff`'s exit code when something would change.
const CHANGES: u8 = 1;
/// `diff`'s exit code on an error (a bad folder, a node that refused).
pub(super) const DIFF_ERROR: u8 = 2;

/// The shape of `diff -o json|yaml`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DiffReport {
    /// Whether any node's plan has a change: the exit code is 1 then.
    changed: bool,
    /// What each node follows when it has a Git source: the plans are
    /// against it.
    source: Option<String>,
    plans: Vec<Plan>,
    skipped: Vec<Skipped>,
    /// The folder's changes that are not pushed, when it is a Git checkout.
    unpushed: Option<String>,
}

/// A node that was not asked, and why: it picks the change up itself.
#[derive(Serialize)]
struct Skipped {
    node: String,
    reason: String,
}

pub(super) fn diff(args: DiffArgs, env_file: Option<&Path>) -> anyhow::Result<Outcome> {
    let env = &NodeEnv::load(env_file)?;
    let git = GitSettings::from_env(env).map_err(anyhow::Error::msg)?;
    let Some(checked) = check(&given(args.paths, env), |_, _, _| None)? else {
        return Ok(Outcome::Code(DIFF_ERROR));
    };
    let sent = send(env, &checked, true, false)?;
    let source = git.as_ref().map(|git| SourceStatus::git(git).followed());
    let text = diff_text(&checked.label, source.as_deref(), &sent.answers, checked.unpushed.as_deref());
    let (mut plans, mut skipped) = (Vec::new(), Vec::new());
    for answer in sent.answers {
        match answer {
            Answer::Planned(plan) => plans.push(plan),
            Answer::Skipped(node) => skipped.push(node),
        }
    }
    let changed = plans.iter().any(|plan| !plan.changes.is_empty());
    let report = DiffReport { changed, source, plans, skipped, unpushed: checked.unpushed };
    output::print(args.output, &report, || text)?;
    Ok(Outcome::Code(diff_exit_code(sent.failed, changed)))
}

/// `kubectl diff`'s codes: an error wins over changes.
fn diff_exit_code(failed: bool, changed: bool) -> u8 {
    match (failed, changed) {
        (true, _) => DIFF_ERROR,
        (false, true) => CHANGES,
        (false, false) => 0,
    }
}

/// What `diff` prints for people: what `apply --dry-run` prints.
fn diff_text(label: &str, followed: Option<&str>, answers: &[Answer], unpushed: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(followed) = followed {
        out.push_str(&against_text(label, followed));
    }
    out.push_str(&answers_text(answers));
    out.push_str("dry run: nothing was changed\n");
    if let Some(note) = unpushed {
        out.push_str(&unpushed_text(note));
    }
    out
}

fn against_text(label: &str, followed: &str) -> String {
    format!("{label} against what each node follows ({followed}): what pushing it would change\n")
}

/// Each node's plan, or why it was skipped, in the order they were asked.
fn answers_text(answers: &[Answer]) -> String {
    let line = |answer: &Answer| match answer {
        Answer::Planned(plan) => format!("{plan}\n"),
        Answer::Skipped(Skipped { node, reason }) => format!("node {node}: {reason}\n"),
    };
    answers.iter().map(line).collect()
}

fn unpushed_text(note: &str) -> String {
    format!("note: {note}. A controller with a Git source returns to the remote's state at its next new commit.\n")
}

/// The paths of `-f`, else the node's manifests folder.
fn given(paths: Vec<PathBuf>, env: &NodeEnv) -> Vec<PathBuf> {
    if paths.is_empty() { vec![env.manifests_dir()] } else { paths }
}

/// A set that passed validation: what to send, and to which peers.
struct Checked {
    /// The inputs as named, for messages.
    label: String,
    bundle: Bundle,
    /// Every Node of the set: `(name, address:apiPort)`.
    nodes: Vec<(String, String)>,
    unpushed: Option<String>,
}

/// Validates what `paths` name as one whole set, printing every diagnostic;
/// None when it has errors or `refusal` refuses it (given the inputs' label,
/// whether they are only folders, and the objects that parsed), said on
/// stderr in place of the diagnostics.
fn check(
    paths: &[PathBuf],
    refusal: impl FnOnce(&str, bool, &ManifestSet) -> Option<String>,
) -> anyhow::Result<Option<Checked>> {
    let mut loaded = loader::load_paths(paths)?;
    let label = loaded.label();
    let validation = manifest::validate(&loaded.files, std::mem::take(&mut loaded.problems));
    if let Some(refusal) = refusal(&label, loaded.only_folders(), &validation.set) {
        eprintln!("{refusal}");
        return Ok(None);
    }
    for diagnostic in &validation.diagnostics {
        eprintln!("{diagnostic}\n");
    }
    if !validation.is_valid() {
        eprintln!("{label}: {} error(s); nothing was applied", validation.error_count());
        return Ok(None);
    }
    let (revision, unpushed) = revision(&loaded);
    let nodes = validation
        .set
        .nodes
        .values()
        .map(|node| (node.name().to_owned(), format!("{}:{}", node.spec.address.value, node.spec.api_port)))
        .collect();
    Ok(Some(Checked { label, bundle: Bundle::from_files(revision, &loaded.files), nodes, unpushed }))
}

/// One folder's commit when it is a clean Git checkout, else a hash of the
/// content given.
fn revision(loaded: &Loaded) -> (String, Option<String>) {
    match loaded.inputs.as_slice() {
        [Input::Folder(dir)] => folder_revision(dir, &loaded.files),
        _ => (content_revision(Path::new(""), &loaded.files), None),
    }
}

/// Why `apply` refuses files or standard input (`only_folders` false) that
/// declare no Node named `this_node`: the set sent replaces the one in force,
/// so it would stop everything else on this node. A folder, a dry run and
/// `--force` pass.
fn partial_set_refusal(
    label: &str,
    only_folders: bool,
    set: &ManifestSet,
    this_node: Option<&str>,
    dry_run: bool,
    force: bool,
) -> Option<String> {
    if only_folders || dry_run || force || this_node.is_some_and(|node| set.nodes.contains_key(node)) {
        return None;
    }
    let node = this_node.map_or_else(|| "(AGENT_NODE_ID is not set)".to_owned(), |node| format!("\"{node}\""));
    Some(format!(
        "{label} declares no Node {node} for this node: `apply -f` sends what it is given as the whole set, \
         so applying it would remove every other object from this node. Give the whole manifests folder, \
         or add --force to apply only these objects; nothing was applied"
    ))
}

/// What the nodes answered, in the order they were asked, and whether one
/// refused (said on stderr).
struct Sent {
    answers: Vec<Answer>,
    failed: bool,
}

enum Answer {
    Planned(Plan),
    Skipped(Skipped),
}

/// Hands the bundle to this node's controller, then to every peer the local
/// daemon does not know to be down.
fn send(env: &NodeEnv, checked: &Checked, dry_run: bool, force: bool) -> anyhow::Result<Sent> {
    let (local, key) = local_client(env)?;
    let this_node = env.get(NODE_ID).map(|s| s.value.clone()).unwrap_or_default();
    let peers = checked.nodes.iter().filter(|(name, _)| *name != this_node);
    let bundle = &checked.bundle;
    let mut sent = Sent { answers: Vec::new(), failed: false };
    runtime()?.block_on(async {
        match local.apply(bundle.clone(), dry_run, force).await {
            Ok(response) => sent.answers.push(Answer::Planned(response.plan)),
            Err(error) => {
                report(&this_node, &error);
                sent.failed = true;
            }
        }
        // What the local daemon's prober knows: peers known to be down are
        // skipped rather than waited for, and a peer is called where the
        // daemon calls it (its tailnet IP when known).
        let views = local.mesh().await.unwrap_or_default();
        for (name, written) in peers {
            let view = views.iter().find(|v| v.name == *name);
            if let Some(view) = view.filter(|v| v.known_down) {
                let reason = skipped_because(view, crate::clock::local_hh_mm);
                sent.answers.push(Answer::Skipped(Skipped { node: name.clone(), reason }));
                continue;
            }
            let authority = view.map_or_else(|| written.clone(), MeshNode::authority);
            let peer = ApiClient::new(&authority, key.as_deref(), PEER_TIMEOUT);
            match peer.apply(bundle.clone(), dry_run, force).await {
                Ok(response) => sent.answers.push(Answer::Planned(response.plan)),
                Err(ClientError::Unreachable { reason, .. }) => {
                    let reason = format!("not reachable ({reason}); it picks the change up from its own source");
                    sent.answers.push(Answer::Skipped(Skipped { node: name.clone(), reason }));
                }
                Err(error) => {
                    report(name, &error);
                    sent.failed = true;
                }
            }
        }
    });
    Ok(sent)
}

/// Why a peer the local daemon knows to be down is not sent the bundle, in
/// the words status uses: "unreachable since 09:12, last seen …; skipped, …"
/// (times of day read on `clock`).
fn skipped_because(view: &MeshNode, clock: impl Fn(SystemTime) -> String) -> String {
    let away = super::status::away(view, clock).unwrap_or_else(|| "unreachable".into());
    let seen = view.last_seen.as_deref().map_or_else(String::new, |t| format!(", last seen {t}"));
    format!("{away}{seen}; skipped, it picks the change up from its own source")
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
    let this_node = env.get(NODE_ID).map(|setting| setting.value.as_str());
    let refusal = |label: &str, only_folders, set: &ManifestSet| {
        partial_set_refusal(label, only_folders, set, this_node, args.dry_run, args.force)
    };
    let Some(checked) = check(&given(args.paths, env), refusal)? else { return Ok(Outcome::Failure) };
    if let Some(git) = git.as_ref().filter(|_| args.dry_run) {
        print!("{}", against_text(&checked.label, &SourceStatus::git(git).followed()));
    }
    let sent = send(env, &checked, args.dry_run, args.force)?;
    print!("{}", answers_text(&sent.answers));
    if args.dry_run {
        println!("dry run: nothing was changed");
    }
    if let Some(note) = &checked.unpushed {
        print!("{}", unpushed_text(note));
    }
    if let Some(git) = git.as_ref().filter(|_| !args.dry_run && !sent.failed) {
        let followed = SourceStatus::git(git).followed();
        println!("applied with --force: this folder runs until the next new commit on {followed} replaces it");
    }
    Ok(if sent.failed { Outcome::Failure } else { Outcome::Success })
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
    fn a_peer_known_down_is_skipped_as_asleep_or_unreachable_since_a_time_as_status_says() {
        let utc = |at: SystemTime| crate::clock::hh_mm(at, 0);
        let then = ", last seen 2026-12-06T08:29:00Z; skipped, it picks the change up from its own source";
        let table = [
            (Some("2026-12-06T09:12:59Z"), None, format!("unreachable since 09:12{then}")),
            (Some("2026-12-06T08:30:00Z"), Some("2026-12-06T08:30:00Z"), format!("asleep since 08:30{then}")),
            (None, None, format!("unreachable{then}")),
        ];
        for (unreachable_since, asleep_since, expected) in table {
            let mini = MeshNode {
                name: "mini".into(),
                role: "primary".into(),
                address: "10.0.0.2".into(),
                api_port: 8000,
                this_node: false,
                dial: "10.0.0.2:8000".into(),
                online: false,
                known_down: true,
                last_seen: Some("2026-12-06T08:29:00Z".into()),
                rtt_ms: None,
                revision: None,
                version: None,
                api_version: None,
                compatible: true,
                last_error: Some("connection refused".into()),
                unreachable_since: unreachable_since.map(str::to_owned),
                asleep_since: asleep_since.map(str::to_owned),
                source: None,
            };
            assert_eq!(skipped_because(&mini, utc), expected, "{unreachable_since:?} {asleep_since:?}");
        }
    }

    #[test]
    fn diff_exits_0_without_changes_1_with_and_2_when_a_node_refused() {
        // (a node refused, a plan has changes) -> exit code
        let cases = [((false, false), 0), ((false, true), 1), ((true, false), 2), ((true, true), 2)];
        for ((failed, changed), code) in cases {
            assert_eq!(diff_exit_code(failed, changed), code, "failed {failed}, changed {changed}");
        }
    }

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

    #[test]
    fn files_without_this_nodes_node_are_refused_unless_a_folder_a_dry_run_or_forced() {
        let text = "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata:\n  name: mini\nspec:\n  role: primary\n  address: mini\n";
        let set =
            manifest::validate(&[manifest::SourceFile { path: "n.yaml".into(), text: text.into() }], Vec::new()).set;
        assert!(set.nodes.contains_key("mini"));
        // (only folders, this node, dry run, force) -> refused
        let cases = [
            ((false, Some("laptop"), false, false), true),
            ((false, None, false, false), true),
            ((false, Some("mini"), false, false), false),
            ((true, Some("laptop"), false, false), false),
            ((false, Some("laptop"), true, false), false),
            ((false, Some("laptop"), false, true), false),
        ];
        for ((only_folders, this_node, dry_run, force), refused) in cases {
            let refusal = partial_set_refusal("n.yaml", only_folders, &set, this_node, dry_run, force);
            assert_eq!(refusal.is_some(), refused, "{only_folders} {this_node:?} {dry_run} {force}");
        }
        let message = partial_set_refusal("<stdin>", false, &set, Some("laptop"), false, false).expect("refused");
        assert!(message.starts_with("<stdin> declares no Node \"laptop\" for this node"), "{message}");
        assert!(message.contains("--force") && message.ends_with("nothing was applied"), "{message}");
    }
}
