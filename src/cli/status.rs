//! `meshctl status [-w]`: every node of the mesh and its objects, in one table,
//! or as JSON / YAML in the stable shape of design section 5; watching, again
//! whenever it changed, looked at after each event of the node's controller
//! (and every few seconds, for changes that come with no event).

use std::io::Write as _;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::{Outcome, Output, Target, output, runtime, stream, table, target_client};
use crate::api::wire::MeshNode;
use crate::client::ApiClient;
use crate::client::statuses;
use crate::controller::status::{ConditionType, NodeStatus};
use std::path::Path;

use crate::identity::NodeEnv;
use crate::source_status::SourceStatus;

/// How long a peer gets to answer before it is shown offline.
const PEER_TIMEOUT: Duration = Duration::from_secs(2);

/// Watching, how often the mesh is asked again without an event: a condition
/// that settles later (a Service becoming Ready) and a peer's own changes
/// come with no event of this node. Printed only when it changed.
const RESYNC: Duration = Duration::from_secs(2);

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
    /// Keep watching: after each event of the node's controller, print the
    /// status again if it changed (JSON: one line each; YAML: one document
    /// each), until Ctrl-C.
    #[arg(short, long)]
    watch: bool,
    #[command(flatten)]
    target: Target,
}

#[derive(Serialize)]
struct MeshStatus {
    nodes: Vec<NodeStatus>,
}

pub(super) fn run(args: Args, env_file: Option<&Path>) -> anyhow::Result<Outcome> {
    let env = &NodeEnv::load(env_file)?;
    let (client, key) = target_client(env, &args.target)?;
    if args.watch {
        return runtime()?.block_on(watch(client, key, args.output));
    }
    let rows = runtime()?.block_on(collect(client, key))?;
    output::print(args.output, &mesh_status(&rows), || render(&rows))?;
    Ok(Outcome::Success)
}

fn mesh_status(rows: &[Row]) -> MeshStatus {
    MeshStatus { nodes: rows.iter().map(|row| row.status.clone()).collect() }
}

/// Prints the status, then again whenever it changed: looked at after each
/// change the node's event stream tells of, and every [`RESYNC`]; until the
/// daemon closes the stream or the user stops it.
async fn watch(client: ApiClient, key: Option<String>, format: Output) -> anyhow::Result<Outcome> {
    let mut events = client.events().await?;
    stream::past_recent_events(&mut events).await?;
    let mut shown: Option<MeshStatus> = None;
    loop {
        let rows = collect(client.clone(), key.clone()).await?;
        let status = mesh_status(&rows);
        if shown.as_ref().is_none_or(|shown| changed(shown, &status)) {
            let text = match output::stream_item(format, &status)? {
                Some(item) => item,
                None => render(&rows),
            };
            // A blank line parts the tables; JSON lines and YAML documents part themselves.
            let separator = if format == Output::Text && shown.is_some() { "\n" } else { "" };
            print!("{separator}{text}");
            std::io::stdout().flush()?;
            shown = Some(status);
        }
        if !stream::next_look(&mut events, RESYNC).await? {
            eprintln!("the daemon closed the event stream");
            return Ok(Outcome::Success);
        }
    }
}

/// Whether the mesh changed between two looks: anything but when the nodes
/// were last seen, which moves on every look.
fn changed(before: &MeshStatus, now: &MeshStatus) -> bool {
    let unseen = |status: &MeshStatus| -> Vec<NodeStatus> {
        status.nodes.iter().map(|node| NodeStatus { last_seen: None, ..node.clone() }).collect()
    };
    unseen(before) != unseen(now)
}

/// One node of the mesh: its status, and what this node's prober knows of it.
pub(super) struct Row {
    pub(super) status: NodeStatus,
    pub(super) view: MeshNode,
}

/// The local node's status, then every peer's, asked concurrently. A peer the
/// local daemon knows to be down, or that does not answer, is shown with its
/// last known state from the local daemon's view, marked offline.
pub(super) async fn collect(local: ApiClient, key: Option<String>) -> anyhow::Result<Vec<Row>> {
    let mine = local.status().await?;
    let nodes = local.mesh().await?;
    let gathered = statuses::gather(mine, nodes, key.as_deref(), PEER_TIMEOUT).await;
    Ok(gathered.into_iter().map(|node| Row { status: node.status, view: node.view }).collect())
}

fn render(rows: &[Row]) -> String {
    let dash = || "-".to_owned();
    let mut table = vec![["NODE", "ROLE", "ONLINE", "RTT", "REVISION", "LAST SEEN"].map(String::from).to_vec()];
    for Row { status: node, view } in rows {
        let online = match (node.online, view.compatible) {
            (true, true) => "yes".to_owned(),
            (true, false) => format!("yes (API {}: incompatible)", view.api_version.as_deref().unwrap_or("?")),
            (false, _) => not_online(view, crate::clock::local_hh_mm),
        };
        table.push(vec![
            node.name.clone(),
            node.role.clone(),
            online,
            view.rtt_ms.filter(|_| !view.this_node).map_or_else(dash, |ms| format!("{ms:.1}ms")),
            node.revision.clone().unwrap_or_else(dash),
            node.last_seen.clone().unwrap_or_else(dash),
        ]);
    }
    let mut out = table::render(&table);
    for node in rows.iter().map(|row| &row.status).filter(|n| n.online) {
        out.push_str(&format!("\n{}:\n", node.name));
        if let Some(source) = &node.source {
            out.push_str(&source_lines(source));
        }
        if node.paused {
            out.push_str("  reconciles paused (`meshctl events --send resume` resumes them)\n");
        }
        if let Some(error) = &node.last_error {
            out.push_str("  last snapshot rejected (the previous revision keeps running):\n");
            for line in error.lines() {
                out.push_str(&format!("    {line}\n"));
            }
        }
        if node.objects.is_empty() {
            out.push_str("  no objects\n");
            continue;
        }
        let mut rows = vec![["KIND", "NAME", "READY", "REASON", "MESSAGE"].map(String::from).to_vec()];
        for object in &node.objects {
            let ready = object.condition(ConditionType::Ready);
            let degraded = object.condition(ConditionType::Degraded).filter(|c| c.holds());
            let shown = degraded.or(ready);
            rows.push(vec![
                object.kind.clone(),
                object.name.clone(),
                ready.map_or_else(|| "Unknown".into(), |c| c.status.clone()),
                shown.map(|c| c.reason.clone()).unwrap_or_default(),
                shown.map(|c| c.message.clone()).unwrap_or_default(),
            ]);
        }
        for line in table::render(&rows).lines() {
            out.push_str(&format!("  {line}\n"));
        }
        let placements = placements(node);
        if !placements.is_empty() {
            out.push_str("  capabilities:\n");
            for line in placements {
                out.push_str(&format!("    {line}\n"));
            }
        }
    }
    out
}

/// The ONLINE column of a node that is not: "no (unreachable since 09:12)"
/// or "no (asleep since 09:12)", times of day read on `clock`; "no" for one
/// not reached yet.
pub(super) fn not_online(view: &MeshNode, clock: impl Fn(SystemTime) -> String) -> String {
    away(view, clock).map_or_else(|| "no".to_owned(), |words| format!("no ({words})"))
}

/// "asleep since 09:12" for a peer that said goodbye, "unreachable since
/// 09:12" for one known to be down, as `view` tells; times of day read on `clock`.
pub(super) fn away(view: &MeshNode, clock: impl Fn(SystemTime) -> String) -> Option<String> {
    let (since, asleep) = match (&view.asleep_since, &view.unreachable_since) {
        (Some(since), _) => (since, true),
        (None, Some(since)) => (since, false),
        (None, None) => return None,
    };
    let since = humantime::parse_rfc3339_weak(since).ok()?;
    Some(crate::mesh::absence::Absence { since: Some(since), asleep }.words(clock))
}

/// What a node follows, the revision it last read and when, and why its last
/// fetch failed.
fn source_lines(source: &SourceStatus) -> String {
    let revision =
        source.revision.as_deref().map_or_else(|| "nothing read yet".to_owned(), |r| format!("at {}", short(r)));
    let fetched = source.last_fetched.as_deref().map(|at| format!(", fetched {at}")).unwrap_or_default();
    let mut out = format!("  source: {} ({revision}{fetched})\n", source.followed());
    if let Some(error) = &source.last_fetch_error {
        out.push_str(&format!("  last fetch failed: {error}\n"));
    }
    out
}

/// A commit's first 12 hex digits; other revisions as they are.
fn short(revision: &str) -> &str {
    if revision.len() == 40 { &revision[..12] } else { revision }
}

/// `llm_inference -> agent-home-mini` for each Capability of `node`: which
/// node serves it as this node decided (`none` while no node can), and why
/// the nodes before it were passed over.
fn placements(node: &NodeStatus) -> Vec<String> {
    let capabilities = node.objects.iter().filter(|object| object.kind == "Capability");
    capabilities
        .map(|object| {
            let Some(served_by) = object.details.get("servedBy") else {
                return format!("{} -> none", object.name);
            };
            let ready = object.condition(ConditionType::Ready);
            let note = ready.map(|c| placement_note(&c.message, served_by)).unwrap_or_default();
            format!("{} -> {served_by}{note}", object.name)
        })
        .collect()
}

/// The notes of a capability's Ready message around `served by NODE`, in
/// one pair of brackets: "mini unreachable since 09:12; served by laptop
/// (fallback; desk: endpoint unhealthy)" gives " (mini unreachable since
/// 09:12; fallback; desk: endpoint unhealthy)".
fn placement_note(message: &str, served_by: &str) -> String {
    let Some((before, after)) = message.split_once(&format!("served by {served_by}")) else { return String::new() };
    let after = after.trim().strip_prefix('(').and_then(|a| a.strip_suffix(')')).unwrap_or(after.trim());
    let notes: Vec<&str> = [before.trim().trim_end_matches(';'), after].into_iter().filter(|n| !n.is_empty()).collect();
    if notes.is_empty() { String::new() } else { format!(" ({})", notes.join("; ")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(name: &str, online: bool, api_version: &str) -> MeshNode {
        MeshNode {
            name: name.into(),
            role: "satellite".into(),
            address: "10.0.0.2".into(),
            api_port: 8000,
            this_node: false,
            dial: "10.0.0.2:8000".into(),
            online,
            known_down: !online,
            last_seen: Some("2026-11-28T10:00:00Z".into()),
            rtt_ms: Some(1.25),
            revision: Some("r1".into()),
            version: Some("0.1.0".into()),
            api_version: Some(api_version.into()),
            compatible: api_version == crate::api::wire::API_VERSION,
            last_error: None,
            unreachable_since: None,
            asleep_since: None,
            source: None,
        }
    }

    #[test]
    fn watching_reprints_on_a_change_but_not_when_only_last_seen_moved() {
        let mesh = |last_seen: &str, revision: &str| MeshStatus {
            nodes: vec![NodeStatus {
                last_seen: Some(last_seen.into()),
                revision: Some(revision.into()),
                ..NodeStatus::fixture("mini")
            }],
        };
        let before = mesh("2026-11-28T10:00:00Z", "r1");
        assert!(!changed(&before, &mesh("2026-11-28T10:00:02Z", "r1")));
        assert!(changed(&before, &mesh("2026-11-28T10:00:02Z", "r2")));
        assert!(changed(&before, &MeshStatus { nodes: Vec::new() }));
    }

    #[test]
    fn the_table_shows_which_node_serves_each_capability() {
        use crate::controller::status::{Condition, ObjectStatus};
        let capability = |name: &str, served_by: Option<&str>, message: &str| ObjectStatus {
            kind: "Capability".into(),
            name: name.into(),
            ready: served_by.is_some(),
            conditions: vec![Condition {
                condition_type: ConditionType::Ready.to_string(),
                status: if served_by.is_some() { "True" } else { "False" }.into(),
                reason: "Served".into(),
                message: message.into(),
                last_transition_time: String::new(),
                revision: String::new(),
            }],
            details: served_by.map(|node| [("servedBy".to_owned(), node.to_owned())].into()).unwrap_or_default(),
        };
        let mut mini = NodeStatus::fixture("mini");
        mini.objects = vec![
            capability("llm_inference", Some("laptop"), "served by laptop (fallback; mini is offline)"),
            capability("vector_db", None, "no node can serve it: mini: GET http://mini:1/ (os error 111)"),
            capability("pages", Some("laptop"), "mini asleep since 09:12; served by laptop"),
            capability("search", Some("desk"), "mini unreachable since 09:12; served by desk (fallback; laptop: x)"),
            capability("notes", Some("mini"), "served by mini"),
        ];
        let table = render(&[Row { status: mini, view: view("mini", true, "v1") }]);
        assert!(
            table.ends_with(
                "  capabilities:\n    llm_inference -> laptop (fallback; mini is offline)\n    vector_db -> none\n    \
                 pages -> laptop (mini asleep since 09:12)\n    \
                 search -> desk (mini unreachable since 09:12; fallback; laptop: x)\n    notes -> mini\n"
            ),
            "{table}"
        );
    }

    #[test]
    fn the_table_shows_what_each_node_follows_and_its_last_fetch_error() {
        let mut git = SourceStatus::git(&crate::config::GitSettings {
            remote: "/srv/mesh.git".into(),
            branch: "main".into(),
            path: "manifests".into(),
            interval: Duration::from_secs(30),
            timeout: crate::config::DEFAULT_GIT_TIMEOUT,
        });
        git.fetched(Some("0123456789abcdef0123456789abcdef01234567".into()), SystemTime::UNIX_EPOCH);
        git.failed("cannot fetch: no route to host".into());
        let mut mini = NodeStatus::fixture("mini");
        mini.source = Some(git);
        let table = render(&[Row { status: mini, view: view("mini", true, "v1") }]);
        assert!(
            table.contains(
                "mini:\n  source: git /srv/mesh.git@main (at 0123456789ab, fetched 1970-01-01T00:00:00Z)\n  \
                 last fetch failed: cannot fetch: no route to host\n"
            ),
            "{table}"
        );
        let mut laptop = NodeStatus::fixture("laptop");
        laptop.source = Some(SourceStatus::folder("/home/me/mesh/manifests"));
        let table = render(&[Row { status: laptop, view: view("laptop", true, "v1") }]);
        assert!(table.contains("  source: folder /home/me/mesh/manifests (nothing read yet)\n"), "{table}");
    }

    #[test]
    fn a_peer_known_to_be_down_is_unreachable_or_asleep_since_a_time_not_just_offline() {
        let utc = |at: SystemTime| crate::clock::hh_mm(at, 0);
        let table = [
            (Some("2026-12-06T09:12:59Z"), None, "no (unreachable since 09:12)"),
            (None, Some("2026-12-06T08:30:00Z"), "no (asleep since 08:30)"),
            (Some("2026-12-06T09:12:59Z"), Some("2026-12-06T08:30:00Z"), "no (asleep since 08:30)"),
            (None, None, "no"),
            (Some("not a time"), None, "no"),
        ];
        for (unreachable_since, asleep_since, expected) in table {
            let mut mini = view("mini", false, "v1");
            mini.unreachable_since = unreachable_since.map(str::to_owned);
            mini.asleep_since = asleep_since.map(str::to_owned);
            assert_eq!(not_online(&mini, utc), expected, "{unreachable_since:?} {asleep_since:?}");
        }
    }

    #[test]
    fn the_table_shows_rtt_offline_peers_and_incompatible_api_versions() {
        let rows = [
            Row {
                status: NodeStatus { online: false, ..NodeStatus::fixture("laptop") },
                view: view("laptop", false, "v1"),
            },
            Row { status: NodeStatus::fixture("mini"), view: view("mini", true, "v2") },
        ];
        let table = render(&rows);
        let lines: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(lines[0], ["NODE", "ROLE", "ONLINE", "RTT", "REVISION", "LAST", "SEEN"]);
        assert_eq!(lines[1], ["laptop", "satellite", "no", "1.2ms", "r1", "2026-11-28T10:00:00Z"]);
        assert_eq!(lines[2][..5], ["mini", "satellite", "yes", "(API", "v2:"]);
        assert!(lines[2].contains(&"incompatible)"), "{table}");
        assert!(!table.contains("laptop:"), "an offline peer has no objects to list:\n{table}");
    }
}
