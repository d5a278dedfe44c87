//! `meshctl describe KIND NAME` (or `KIND/NAME`, short names too): one
//! object's conditions, spec, recent events and, for a Service, its last
//! output lines; or all of it as JSON or YAML.

use super::{Outcome, Output, Target, kinds, output, runtime, table, target_client};
use std::path::Path;

use crate::identity::NodeEnv;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// node (no), service (svc), capability (cap), syncfolder (sf),
    /// handoffpolicy (hp) or mesh, then the name; or KIND/NAME, e.g. svc/ollama.
    kind: String,
    name: Option<String>,
    /// `json` or `yaml`: the API's answer (kind, name, spec, status, events,
    /// logs) as it is.
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
    #[command(flatten)]
    target: Target,
}

pub(super) fn run(args: Args, env_file: Option<&Path>) -> anyhow::Result<Outcome> {
    let (kind, name) = kinds::reference(&args.kind, args.name.as_deref())?;
    let env = &NodeEnv::load(env_file)?;
    let (client, _) = target_client(env, &args.target)?;
    let described = runtime()?.block_on(client.describe(kind.as_str(), &name))?;
    if args.output != Output::Text {
        output::print(args.output, &described, String::new)?;
        return Ok(Outcome::Success);
    }
    println!("Kind:  {}", described.kind);
    println!("Name:  {}", described.name);
    if kind == crate::manifest::Kind::Node {
        let nodes = runtime()?.block_on(client.mesh())?;
        if let Some(node) = nodes.iter().find(|node| node.name == name) {
            println!("Mesh:  {}", reach(node));
        }
    }
    if let Some(status) = &described.status {
        println!("Ready: {}", if status.ready { "True" } else { "False" });
        println!("Conditions:");
        let mut rows = vec![["TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"].map(String::from).to_vec()];
        for c in &status.conditions {
            rows.push(vec![
                c.condition_type.clone(),
                c.status.clone(),
                c.reason.clone(),
                c.last_transition_time.clone(),
                c.message.clone(),
            ]);
        }
        print_indented(&table::render(&rows));
        if !status.details.is_empty() {
            println!("Details:");
            for (key, value) in &status.details {
                println!("  {key}: {value}");
            }
        }
    } else {
        println!("Ready: not acted on by this node");
    }
    if let Some(spec) = &described.spec {
        println!("Spec:");
        print_indented(&serde_saphyr::to_string(spec)?);
    }
    println!("Events:");
    if described.events.is_empty() {
        println!("  none");
    } else {
        let mut rows = vec![["TIME", "TYPE", "REASON", "MESSAGE"].map(String::from).to_vec()];
        for e in &described.events {
            rows.push(vec![e.time.clone(), e.event_type.clone(), e.reason.clone(), e.message.clone()]);
        }
        print_indented(&table::render(&rows));
    }
    if !described.logs.is_empty() {
        println!("Output (last {} lines):", described.logs.len());
        for line in &described.logs {
            println!("  {} | {}", line.stream, line.line);
        }
    }
    Ok(Outcome::Success)
}

/// How the asked node sees `node`: "this node", "online", "unreachable
/// since 09:12" or "offline" (not reached yet), with when it last answered
/// and why not.
fn reach(node: &crate::api::wire::MeshNode) -> String {
    if node.this_node {
        return "this node".to_owned();
    }
    let mut words = if node.online {
        "online".to_owned()
    } else {
        super::status::away(node, crate::clock::local_hh_mm).unwrap_or_else(|| "offline".to_owned())
    };
    if let Some(seen) = &node.last_seen {
        words.push_str(&format!(", last seen {seen}"));
    }
    if let Some(error) = node.last_error.as_ref().filter(|_| !node.online) {
        words.push_str(&format!(": {error}"));
    }
    words
}

fn print_indented(text: &str) {
    for line in text.lines() {
        println!("  {line}");
    }
}
