//! `meshctl status`: every node of the mesh and its objects, in one table, or
//! as JSON / YAML in the stable shape of design section 5.

use std::time::Duration;

use serde::Serialize;

use super::{Outcome, local_client, runtime, table};
use crate::client::ApiClient;
use crate::controller::status::NodeStatus;
use std::path::Path;

use crate::identity::NodeEnv;

/// How long a peer gets to answer before it is shown offline.
const PEER_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(short, long, value_enum, default_value_t)]
    output: Format,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
    Yaml,
}

#[derive(Serialize)]
struct MeshStatus {
    nodes: Vec<NodeStatus>,
}

pub fn run(args: Args, env_file: Option<&Path>) -> anyhow::Result<Outcome> {
    let env = &NodeEnv::load(env_file)?;
    let (client, key) = local_client(env)?;
    let nodes = runtime()?.block_on(collect(client, key))?;
    let status = MeshStatus { nodes };
    match args.output {
        Format::Json => println!("{}", serde_json::to_string_pretty(&status)?),
        Format::Yaml => print!("{}", serde_saphyr::to_string(&status)?),
        Format::Table => print!("{}", render(&status.nodes)),
    }
    Ok(Outcome::Success)
}

/// The local node's status, then every peer's, asked concurrently; a peer that
/// does not answer is shown offline.
async fn collect(local: ApiClient, key: String) -> anyhow::Result<Vec<NodeStatus>> {
    let mine = local.status().await?;
    let peers = local.mesh().await?.into_iter().filter(|n| !n.this_node);
    let mut tasks = tokio::task::JoinSet::new();
    for (index, peer) in peers.enumerate() {
        let client = ApiClient::new(&format!("{}:{}", peer.address, peer.api_port), &key, PEER_TIMEOUT);
        tasks.spawn(async move {
            let status = client.status().await.unwrap_or_else(|_| NodeStatus {
                name: peer.name.clone(),
                role: peer.role.clone(),
                online: false,
                last_seen: None,
                revision: None,
                last_error: None,
                objects: Vec::new(),
                paused: false,
            });
            (index, status)
        });
    }
    let mut others: Vec<(usize, NodeStatus)> = tasks.join_all().await;
    others.sort_by_key(|(index, _)| *index);
    Ok(std::iter::once(mine).chain(others.into_iter().map(|(_, s)| s)).collect())
}

fn render(nodes: &[NodeStatus]) -> String {
    let dash = || "-".to_owned();
    let mut rows = vec![["NODE", "ROLE", "ONLINE", "REVISION", "LAST SEEN"].map(String::from).to_vec()];
    for node in nodes {
        rows.push(vec![
            node.name.clone(),
            node.role.clone(),
            if node.online { "yes" } else { "no" }.into(),
            node.revision.clone().unwrap_or_else(dash),
            node.last_seen.clone().unwrap_or_else(dash),
        ]);
    }
    let mut out = table::render(&rows);
    for node in nodes.iter().filter(|n| n.online) {
        out.push_str(&format!("\n{}:\n", node.name));
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
            let ready = object.conditions.iter().find(|c| c.condition_type == "Ready");
            let degraded = object.conditions.iter().find(|c| c.condition_type == "Degraded" && c.status == "True");
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
    }
    out
}
