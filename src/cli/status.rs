//! `meshctl status`: every node of the mesh and its objects, in one table, or
//! as JSON / YAML in the stable shape of design section 5.

use std::time::Duration;

use serde::Serialize;

use super::{Outcome, Target, runtime, table, target_client};
use crate::api::wire::MeshNode;
use crate::client::ApiClient;
use crate::controller::status::{ConditionType, NodeStatus};
use std::path::Path;

use crate::identity::NodeEnv;
use crate::source_status::SourceStatus;

/// How long a peer gets to answer before it is shown offline.
const PEER_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    #[arg(short, long, value_enum, default_value_t)]
    output: Format,
    #[command(flatten)]
    target: Target,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum Format {
    #[default]
    Table,
    Json,
    Yaml,
}

#[derive(Serialize)]
struct MeshStatus {
    nodes: Vec<NodeStatus>,
}

pub(super) fn run(args: Args, env_file: Option<&Path>) -> anyhow::Result<Outcome> {
    let env = &NodeEnv::load(env_file)?;
    let (client, key) = target_client(env, &args.target)?;
    let rows = runtime()?.block_on(collect(client, key))?;
    match args.output {
        Format::Table => print!("{}", render(&rows)),
        format => {
            let status = MeshStatus { nodes: rows.into_iter().map(|row| row.status).collect() };
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&status)?),
                _ => print!("{}", serde_saphyr::to_string(&status)?),
            }
        }
    }
    Ok(Outcome::Success)
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
    let mut nodes = local.mesh().await?;
    let this = nodes.iter().position(|n| n.this_node).map(|i| nodes.remove(i));
    let mut tasks = tokio::task::JoinSet::new();
    for (index, view) in nodes.into_iter().enumerate() {
        let client = ApiClient::new(&view.dial, key.as_deref(), PEER_TIMEOUT);
        tasks.spawn(async move {
            let fetched = if view.known_down { None } else { client.status().await.ok() };
            let status = fetched.unwrap_or_else(|| NodeStatus {
                name: view.name.clone(),
                role: view.role.clone(),
                online: false,
                last_seen: view.last_seen.clone(),
                revision: view.revision.clone(),
                last_error: None,
                objects: Vec::new(),
                paused: false,
                source: view.source.clone(),
            });
            (index, Row { status, view })
        });
    }
    let mut others: Vec<(usize, Row)> = tasks.join_all().await;
    others.sort_by_key(|(index, _)| *index);
    let this = this.map(|view| Row { status: mine, view });
    Ok(this.into_iter().chain(others.into_iter().map(|(_, row)| row)).collect())
}

fn render(rows: &[Row]) -> String {
    let dash = || "-".to_owned();
    let mut table = vec![["NODE", "ROLE", "ONLINE", "RTT", "REVISION", "LAST SEEN"].map(String::from).to_vec()];
    for Row { status: node, view } in rows {
        let online = match (node.online, view.compatible) {
            (true, true) => "yes".to_owned(),
            (true, false) => format!("yes (API {}: incompatible)", view.api_version.as_deref().unwrap_or("?")),
            (false, _) => "no".to_owned(),
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
/// node serves it as this node decided (`none` while no node can).
fn placements(node: &NodeStatus) -> Vec<String> {
    let capabilities = node.objects.iter().filter(|object| object.kind == "Capability");
    capabilities
        .map(|object| {
            let served_by = object.details.get("servedBy").map_or("none", String::as_str);
            let ready = object.condition(ConditionType::Ready);
            let note = ready.and_then(|c| c.message.split_once(" (")).map(|(_, note)| format!(" ({note}"));
            format!("{} -> {served_by}{}", object.name, note.unwrap_or_default())
        })
        .collect()
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
            source: None,
        }
    }

    fn status(name: &str, online: bool) -> NodeStatus {
        NodeStatus {
            name: name.into(),
            role: "satellite".into(),
            online,
            last_seen: Some("2026-11-28T10:00:00Z".into()),
            revision: Some("r1".into()),
            last_error: None,
            objects: Vec::new(),
            paused: false,
            source: None,
        }
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
        let mut mini = status("mini", true);
        mini.objects = vec![
            capability("llm_inference", Some("laptop"), "served by laptop (fallback; mini is offline)"),
            capability("vector_db", None, "no node can serve it: mini is offline"),
        ];
        let table = render(&[Row { status: mini, view: view("mini", true, "v1") }]);
        assert!(
            table.ends_with(
                "  capabilities:\n    llm_inference -> laptop (fallback; mini is offline)\n    vector_db -> none\n"
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
        git.fetched(Some("0123456789abcdef0123456789abcdef01234567".into()), std::time::SystemTime::UNIX_EPOCH);
        git.failed("cannot fetch: no route to host".into());
        let mut mini = status("mini", true);
        mini.source = Some(git);
        let table = render(&[Row { status: mini, view: view("mini", true, "v1") }]);
        assert!(
            table.contains(
                "mini:\n  source: git /srv/mesh.git@main (at 0123456789ab, fetched 1970-01-01T00:00:00Z)\n  \
                 last fetch failed: cannot fetch: no route to host\n"
            ),
            "{table}"
        );
        let mut laptop = status("laptop", true);
        laptop.source = Some(SourceStatus::folder("/home/me/mesh/manifests"));
        let table = render(&[Row { status: laptop, view: view("laptop", true, "v1") }]);
        assert!(table.contains("  source: folder /home/me/mesh/manifests (nothing read yet)\n"), "{table}");
    }

    #[test]
    fn the_table_shows_rtt_offline_peers_and_incompatible_api_versions() {
        let rows = [
            Row { status: status("laptop", false), view: view("laptop", false, "v1") },
            Row { status: status("mini", true), view: view("mini", true, "v2") },
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
