//! `meshctl get KIND [NAME]`: one kind's objects on every node of the mesh,
//! one row each with a NODE column (for nodes, the mesh view), as a table,
//! JSON, YAML or `kind/name` lines; with `-w`, again each time it changes.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::status::{Row, collect};
use super::{Outcome, Target, kinds, runtime, stream, table, target_client};
use crate::api::wire::MeshNode;
use crate::client::ApiClient;
use crate::controller::status::{ConditionType, ObjectStatus};
use crate::identity::NodeEnv;
use crate::manifest::Kind;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// node (no), service (svc), capability (cap), syncfolder (sf),
    /// handoffpolicy (hp) or mesh: singular, plural or short, in any case.
    kind: String,
    /// Only the objects of this name.
    name: Option<String>,
    /// `wide` adds columns; `name` prints `kind/name` lines.
    #[arg(short, long, value_enum, default_value_t)]
    output: GetOutput,
    /// After the first listing, print it again each time it changes, until Ctrl-C.
    #[arg(short, long)]
    watch: bool,
    #[command(flatten)]
    target: Target,
}

/// How `get` prints: kubectl's `-o` values, with `text` the plain table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum GetOutput {
    #[default]
    Text,
    Wide,
    Json,
    Yaml,
    Name,
}

/// How often `-w` looks again besides the events of the asked node: the
/// objects of its peers change without an event there.
const WATCH_POLL: Duration = Duration::from_secs(2);

pub(super) fn run(args: Args, env_file: Option<&Path>) -> anyhow::Result<Outcome> {
    let kind = kinds::resolve(&args.kind)?;
    let env = &NodeEnv::load(env_file)?;
    let (client, key) = target_client(env, &args.target)?;
    let asked = Asked { kind, name: args.name, output: args.output, client, key };
    runtime()?.block_on(async {
        let listing = asked.list().await?;
        if listing.is_empty() && asked.name.is_some() && !args.watch {
            eprintln!("{}", not_found(&asked, &listing));
            return Ok(Outcome::Failure);
        }
        let mut shown = print(&asked, &listing, None)?;
        if args.watch { watch(&asked, &mut shown).await } else { Ok(Outcome::Success) }
    })
}

/// What the user asked for, and of whom.
struct Asked {
    kind: Kind,
    name: Option<String>,
    output: GetOutput,
    client: ApiClient,
    key: Option<String>,
}

impl Asked {
    /// The asked objects as the nodes report them now.
    async fn list(&self) -> anyhow::Result<Listing> {
        let named = |name: &str| self.name.as_deref().is_none_or(|wanted| wanted == name);
        if self.kind == Kind::Node {
            let nodes = self.client.mesh().await?;
            return Ok(Listing::Nodes(nodes.into_iter().filter(|node| named(&node.name)).collect()));
        }
        let rows = collect(self.client.clone(), self.key.clone()).await?;
        let mut items = Vec::new();
        let mut offline = Vec::new();
        for Row { status, view } in rows {
            if !status.online {
                // "mini (unreachable since 09:12)" for a peer known to be down.
                let since = super::status::away(&view, crate::clock::local_hh_mm);
                offline.push(since.map_or_else(|| status.name.clone(), |words| format!("{} ({words})", status.name)));
                continue;
            }
            let objects = status.objects.into_iter().filter(|o| o.kind == self.kind.as_str() && named(&o.name));
            items.extend(objects.map(|object| Item { node: Some(status.name.clone()), object }));
        }
        let declared = self.client.names(self.kind.as_str()).await?;
        let unreported: Vec<String> =
            declared.into_iter().filter(|name| named(name) && !items.iter().any(|i| i.object.name == *name)).collect();
        items.extend(unreported.into_iter().map(|name| Item::unreported(self.kind, name)));
        Ok(Listing::Objects { items, offline })
    }
}

/// One object as one node reports it: `-o json`'s item. An object in the
/// set that no node reports (a Mesh, a Service no answering node runs) has no
/// node, no conditions and no details.
#[derive(Clone, Debug, Serialize)]
struct Item {
    node: Option<String>,
    #[serde(flatten)]
    object: ObjectStatus,
}

impl Item {
    fn unreported(kind: Kind, name: String) -> Item {
        let object = ObjectStatus {
            kind: kind.to_string(),
            name,
            ready: false,
            conditions: Vec::new(),
            details: Default::default(),
        };
        Item { node: None, object }
    }
}

/// What `get` found.
enum Listing {
    /// The mesh view of the asked node: every node it knows and how it sees it.
    Nodes(Vec<MeshNode>),
    /// The objects of every node that answered, and the nodes that did not.
    Objects { items: Vec<Item>, offline: Vec<String> },
}

impl Listing {
    fn is_empty(&self) -> bool {
        match self {
            Listing::Nodes(nodes) => nodes.is_empty(),
            Listing::Objects { items, .. } => items.is_empty(),
        }
    }

    fn offline(&self) -> &[String] {
        match self {
            Listing::Nodes(_) => &[],
            Listing::Objects { offline, .. } => offline,
        }
    }

    /// The nodes without what moves on every probe (the round trip, when each
    /// last answered): what a watcher compares, so it prints again only when
    /// more than that changed.
    fn steady_nodes(&self) -> Option<Vec<MeshNode>> {
        let Listing::Nodes(nodes) = self else { return None };
        Some(nodes.iter().map(|node| MeshNode { rtt_ms: None, last_seen: None, ..node.clone() }).collect())
    }
}

/// `-o json|yaml`: a kubectl-style list, the same shape for one item or none.
#[derive(Serialize)]
struct List<'a, T> {
    kind: &'static str,
    items: &'a [T],
}

/// Prints `listing` unless its steady part (see [`Listing::steady_nodes`])
/// renders as `previous` did; returns that rendering. Nodes that did not
/// answer and an empty listing are said on standard error, so standard
/// output stays the listing alone.
fn print(asked: &Asked, listing: &Listing, previous: Option<&str>) -> anyhow::Result<String> {
    let rendered = render(asked.kind, asked.output, listing)?;
    let steady = match listing.steady_nodes() {
        Some(nodes) => render(asked.kind, asked.output, &Listing::Nodes(nodes))?,
        None => rendered.clone(),
    };
    if previous == Some(steady.as_str()) {
        return Ok(steady);
    }
    if previous.is_some() && matches!(asked.output, GetOutput::Text | GetOutput::Wide) {
        println!();
    }
    if previous.is_some() && asked.output == GetOutput::Yaml {
        println!("---");
    }
    print!("{rendered}");
    let offline = listing.offline();
    if !offline.is_empty() {
        eprintln!("offline, not shown: {}", offline.join(", "));
    }
    if listing.is_empty() && asked.output != GetOutput::Json && asked.output != GetOutput::Yaml {
        let plural = kinds::plural(asked.kind);
        eprintln!("No {plural} found on any node of the mesh.");
    }
    Ok(steady)
}

/// The listing in `output`'s form; an empty table is no output at all.
fn render(kind: Kind, output: GetOutput, listing: &Listing) -> anyhow::Result<String> {
    let structured = |yaml: bool| -> anyhow::Result<String> {
        let text = match listing {
            Listing::Nodes(nodes) => document(&List { kind: "List", items: nodes }, yaml)?,
            Listing::Objects { items, .. } => document(&List { kind: "List", items }, yaml)?,
        };
        Ok(text)
    };
    Ok(match output {
        GetOutput::Json => structured(false)?,
        GetOutput::Yaml => structured(true)?,
        GetOutput::Name => names(kind, listing),
        GetOutput::Text | GetOutput::Wide if listing.is_empty() => String::new(),
        GetOutput::Text | GetOutput::Wide => {
            let wide = output == GetOutput::Wide;
            let rows = match listing {
                Listing::Nodes(nodes) => node_rows(nodes, wide),
                Listing::Objects { items, .. } => object_rows(kind, items, wide),
            };
            table::render(&rows)
        }
    })
}

fn document(value: &impl Serialize, yaml: bool) -> anyhow::Result<String> {
    Ok(if yaml { serde_saphyr::to_string(value)? } else { serde_json::to_string_pretty(value)? + "\n" })
}

/// `service/ollama` lines, once per name however many nodes report it.
fn names(kind: Kind, listing: &Listing) -> String {
    let all: Vec<&str> = match listing {
        Listing::Nodes(nodes) => nodes.iter().map(|node| node.name.as_str()).collect(),
        Listing::Objects { items, .. } => items.iter().map(|item| item.object.name.as_str()).collect(),
    };
    let mut out = String::new();
    for (index, name) in all.iter().enumerate() {
        if !all[..index].contains(name) {
            out.push_str(&format!("{}/{name}\n", kinds::singular(kind)));
        }
    }
    out
}

/// The mesh view: each node as the asked node sees it; `wide` adds where it
/// is dialled, its version, the round trip and when it last answered.
fn node_rows(nodes: &[MeshNode], wide: bool) -> Vec<Vec<String>> {
    let dash = || "-".to_owned();
    let mut header = vec!["NAME", "ROLE", "ONLINE", "REVISION"];
    if wide {
        header.extend(["ADDRESS", "VERSION", "RTT", "LAST SEEN"]);
    }
    let mut rows = vec![header.into_iter().map(String::from).collect()];
    for node in nodes {
        let online = match (node.online || node.this_node, node.compatible) {
            (true, true) => "yes".to_owned(),
            (true, false) => format!("yes (API {}: incompatible)", node.api_version.as_deref().unwrap_or("?")),
            (false, _) => super::status::not_online(node, crate::clock::local_hh_mm),
        };
        let name = if node.this_node { format!("{} (this node)", node.name) } else { node.name.clone() };
        let mut row = vec![name, node.role.clone(), online, node.revision.clone().unwrap_or_else(dash)];
        if wide {
            row.extend([
                node.authority(),
                node.version.clone().unwrap_or_else(dash),
                node.rtt_ms.filter(|_| !node.this_node).map_or_else(dash, |ms| format!("{ms:.1}ms")),
                node.last_seen.clone().unwrap_or_else(dash),
            ]);
        }
        rows.push(row);
    }
    rows
}

/// The `details` a kind shows as columns: `(header, key)`, by default and
/// with `-o wide`.
fn detail_columns(kind: Kind, wide: bool) -> &'static [(&'static str, &'static str)] {
    match (kind, wide) {
        (Kind::Service, false) => &[("RESTARTS", "restarts")],
        (Kind::Service, true) => &[("RESTARTS", "restarts"), ("PID", "pid"), ("LAST EXIT", "lastExit")],
        (Kind::Capability, false) => &[("SERVED BY", "servedBy")],
        (Kind::Capability, true) => &[("SERVED BY", "servedBy"), ("ENDPOINT", "endpoint")],
        (Kind::SyncFolder, false) => &[("STATE", "state")],
        (Kind::SyncFolder, true) => &[("STATE", "state"), ("PATH", "path")],
        _ => &[],
    }
}

/// NODE, NAME, READY and the reason of the condition that matters (Degraded
/// when it holds, else Ready), the kind's detail columns, and with `wide`
/// that condition's message.
fn object_rows(kind: Kind, items: &[Item], wide: bool) -> Vec<Vec<String>> {
    let columns = detail_columns(kind, wide);
    let mut header: Vec<String> = ["NODE", "NAME", "READY", "REASON"].map(String::from).to_vec();
    header.extend(columns.iter().map(|(title, _)| (*title).to_owned()));
    if wide {
        header.push("MESSAGE".to_owned());
    }
    let mut rows = vec![header];
    for Item { node, object } in items {
        let ready = object.condition(ConditionType::Ready);
        let degraded = object.condition(ConditionType::Degraded).filter(|c| c.holds());
        let shown = degraded.or(ready);
        let unknown = if node.is_some() { "Unknown" } else { "-" };
        let mut row = vec![
            node.clone().unwrap_or_else(|| "-".into()),
            object.name.clone(),
            ready.map_or_else(|| unknown.into(), |c| c.status.clone()),
            shown.map_or_else(|| "-".into(), |c| c.reason.clone()),
        ];
        row.extend(columns.iter().map(|(_, key)| object.details.get(*key).cloned().unwrap_or_else(|| "-".into())));
        if wide {
            row.push(shown.map(|c| c.message.clone()).unwrap_or_default());
        }
        rows.push(row);
    }
    rows
}

/// kubectl's words for a name no node has: `Error from server (NotFound)`.
fn not_found(asked: &Asked, listing: &Listing) -> String {
    let name = asked.name.as_deref().unwrap_or_default();
    let plural = kinds::plural(asked.kind);
    let mut message = if asked.kind == Kind::Node {
        format!("Error from server (NotFound): {plural} \"{name}\" not found: the mesh has no such node")
    } else {
        format!("Error from server (NotFound): {plural} \"{name}\" not found on any node of the mesh")
    };
    if !listing.offline().is_empty() {
        message.push_str(&format!(" (offline, not asked: {})", listing.offline().join(", ")));
    }
    message
}

/// Lists again after each change the asked node's event stream tells of
/// (once its burst is over), and every [`WATCH_POLL`]; prints when the
/// listing changed. Ends when the stream does.
async fn watch(asked: &Asked, shown: &mut String) -> anyhow::Result<Outcome> {
    let mut events = asked.client.events().await?;
    stream::past_recent_events(&mut events).await?;
    while stream::next_look(&mut events, WATCH_POLL).await? {
        let listing = asked.list().await?;
        *shown = print(asked, &listing, Some(shown))?;
    }
    eprintln!("the daemon closed the event stream");
    Ok(Outcome::Failure)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::status::Condition;

    fn condition(condition_type: &str, status: &str, reason: &str, message: &str) -> Condition {
        Condition {
            condition_type: condition_type.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: String::new(),
            revision: String::new(),
        }
    }

    fn item(node: &str, kind: Kind, name: &str, conditions: Vec<Condition>, details: &[(&str, &str)]) -> Item {
        let details = details.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let ready = conditions.iter().any(|c| c.condition_type == "Ready" && c.holds());
        Item {
            node: Some(node.into()),
            object: ObjectStatus { kind: kind.to_string(), name: name.into(), ready, conditions, details },
        }
    }

    fn words(text: &str) -> Vec<Vec<String>> {
        text.lines()
            .map(|line| line.split("  ").filter(|w| !w.is_empty()).map(|w| w.trim().to_owned()).collect())
            .collect()
    }

    #[test]
    fn each_kind_shows_its_columns_by_default_and_wide() {
        let ready = || vec![condition("Ready", "True", "Running", "pid 12")];
        let table = [
            (
                Kind::Service,
                false,
                vec!["NODE", "NAME", "READY", "REASON", "RESTARTS"],
                vec!["laptop", "web", "True", "Running", "2"],
            ),
            (
                Kind::Service,
                true,
                vec!["NODE", "NAME", "READY", "REASON", "RESTARTS", "PID", "LAST EXIT", "MESSAGE"],
                vec!["laptop", "web", "True", "Running", "2", "12", "-", "pid 12"],
            ),
            (
                Kind::Capability,
                false,
                vec!["NODE", "NAME", "READY", "REASON", "SERVED BY"],
                vec!["laptop", "web", "True", "Running", "-"],
            ),
            (
                Kind::HandoffPolicy,
                false,
                vec!["NODE", "NAME", "READY", "REASON"],
                vec!["laptop", "web", "True", "Running"],
            ),
        ];
        for (kind, wide, header, row) in table {
            let items = [item("laptop", kind, "web", ready(), &[("restarts", "2"), ("pid", "12")])];
            let rendered = table::render(&object_rows(kind, &items, wide));
            assert_eq!(words(&rendered), [header, row], "{kind} wide={wide}:\n{rendered}");
        }
    }

    #[test]
    fn a_degraded_object_shows_why_and_one_without_conditions_is_unknown() {
        let degraded = vec![
            condition("Ready", "True", "Running", ""),
            condition("Degraded", "True", "PortInUse", "port 8000 is taken"),
        ];
        let items =
            [item("mini", Kind::Service, "db", degraded, &[]), item("laptop", Kind::Service, "web", Vec::new(), &[])];
        let items = [items[0].clone(), items[1].clone(), Item::unreported(Kind::Service, "idle".into())];
        let rendered = table::render(&object_rows(Kind::Service, &items, true));
        let lines = words(&rendered);
        assert_eq!(lines[1], ["mini", "db", "True", "PortInUse", "-", "-", "-", "port 8000 is taken"]);
        assert_eq!(lines[2], ["laptop", "web", "Unknown", "-", "-", "-", "-"]);
        assert_eq!(lines[3], ["-", "idle", "-", "-", "-", "-", "-"], "no node reports it:\n{rendered}");
    }

    #[test]
    fn name_output_prints_each_kind_and_name_once() {
        let items = vec![
            item("laptop", Kind::Capability, "llm", Vec::new(), &[]),
            item("mini", Kind::Capability, "llm", Vec::new(), &[]),
            item("mini", Kind::Capability, "vectors", Vec::new(), &[]),
        ];
        let listing = Listing::Objects { items, offline: Vec::new() };
        assert_eq!(names(Kind::Capability, &listing), "capability/llm\ncapability/vectors\n");
    }

    #[test]
    fn json_is_a_list_of_items_each_naming_its_node() {
        let items = vec![item("mini", Kind::Service, "db", Vec::new(), &[("pid", "7")])];
        let listing = Listing::Objects { items, offline: Vec::new() };
        let json: serde_json::Value =
            serde_json::from_str(&render(Kind::Service, GetOutput::Json, &listing).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "List", "items": [
                {"node": "mini", "kind": "Service", "name": "db", "ready": false, "conditions": [], "details": {"pid": "7"}}
            ]})
        );
        let empty = Listing::Objects { items: Vec::new(), offline: Vec::new() };
        assert_eq!(render(Kind::Service, GetOutput::Text, &empty).unwrap(), "");
    }

    #[test]
    fn watching_nodes_compares_all_but_the_round_trip_and_when_each_last_answered() {
        let node = |online: bool, rtt_ms: f64, last_seen: &str| {
            let json = serde_json::json!({
                "name": "mini", "role": "satellite", "address": "127.0.0.9", "apiPort": 8000, "thisNode": false,
                "online": online, "rttMs": rtt_ms, "lastSeen": last_seen,
            });
            Listing::Nodes(vec![serde_json::from_value(json).expect("a MeshNode")])
        };
        let steady = |listing: &Listing| {
            let nodes = listing.steady_nodes().expect("a node listing");
            render(Kind::Node, GetOutput::Json, &Listing::Nodes(nodes)).unwrap()
        };
        let first = node(true, 1.2, "2026-12-06T09:12:00Z");
        assert_eq!(steady(&first), steady(&node(true, 3.4, "2026-12-06T09:12:01Z")));
        assert_ne!(steady(&first), steady(&node(false, 1.2, "2026-12-06T09:12:00Z")));
        assert!(Listing::Objects { items: Vec::new(), offline: Vec::new() }.steady_nodes().is_none());
    }
}
