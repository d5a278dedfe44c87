//! `meshctl route CAPABILITY --data JSON [--prefer NODE]`: calls a capability
//! through this node's MeshRouter, as the agent does over `POST /mesh/route`.
//! The answer goes to stdout (JSON pretty-printed, text as it came), which node
//! served it to stderr, so the answer can be piped on.

use std::path::Path;

use super::{Outcome, Target, runtime, target_client};
use crate::identity::NodeEnv;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// The Capability to call, e.g. vector_db.
    capability: String,
    /// The JSON payload POSTed to the capability's endpoint.
    #[arg(long, value_name = "JSON", value_parser = parse_json)]
    data: serde_json::Value,
    /// Try this node first; it must be in the capability's placement.
    #[arg(long, value_name = "NODE")]
    prefer: Option<String>,
    #[command(flatten)]
    target: Target,
}

/// Ends with 1 when the endpoint answered with anything but 2xx, as a script
/// checking the exit code expects; the answer is printed either way.
pub(super) fn run(args: Args, env_file: Option<&Path>) -> anyhow::Result<Outcome> {
    let env = &NodeEnv::load(env_file)?;
    let (client, _) = target_client(env, &args.target)?;
    let routed = runtime()?.block_on(client.route(&args.capability, &args.data, args.prefer.as_deref()))?;
    match &routed.body {
        serde_json::Value::String(text) if text.ends_with('\n') => print!("{text}"),
        serde_json::Value::String(text) => println!("{text}"),
        json => println!("{}", serde_json::to_string_pretty(json)?),
    }
    eprintln!("served by {} (HTTP {})", routed.node, routed.status);
    Ok(if (200..300).contains(&routed.status) { Outcome::Success } else { Outcome::Failure })
}

/// A bad `--data` is a usage error (exit 2), said before anything is sent.
fn parse_json(text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(text).map_err(|error| format!("not JSON: {error}"))
}
