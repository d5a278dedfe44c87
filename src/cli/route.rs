//! `meshctl route CAPABILITY --data JSON [--prefer NODE]`: calls a capability
//! through this node's MeshRouter, as the agent does over `POST /mesh/route`.
//! The answer goes to stdout (JSON pretty-printed, text as it came), which node
//! served it to stderr, so the answer can be piped on.

use std::path::Path;

use super::{Outcome, Target, runtime, target_client};
use crate::api::wire::Routed;
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
    eprintln!("{}", served_line(&routed));
    Ok(if (200..300).contains(&routed.status) { Outcome::Success } else { Outcome::Failure })
}

/// Which node served the call, and the wake it waited for, if any.
fn served_line(routed: &Routed) -> String {
    let served = format!("served by {} (HTTP {})", routed.node, routed.status);
    let Some(wake) = &routed.wake else { return served };
    let waited = humantime::format_duration(std::time::Duration::from_millis(wake.waited_ms / 100 * 100));
    let outcome = if wake.answered { "it answered" } else { "no answer, so the fallback" };
    format!("{served} after waking {} via {} ({outcome} after {waited})", wake.node, wake.via)
}

/// A bad `--data` is a usage error (exit 2), said before anything is sent.
fn parse_json(text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(text).map_err(|error| format!("not JSON: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::wire::WakeWait;

    #[test]
    fn the_served_line_says_which_node_served_and_the_wake_it_waited_for() {
        let wake =
            |answered: bool, waited_ms: u64| WakeWait { node: "mini".into(), via: "LAN".into(), waited_ms, answered };
        let routed =
            |node: &str, wake: Option<WakeWait>| Routed { node: node.into(), status: 200, body: "ok".into(), wake };
        let table = [
            (routed("b", None), "served by b (HTTP 200)"),
            (
                routed("mini", Some(wake(true, 2_980))),
                "served by mini (HTTP 200) after waking mini via LAN (it answered after 2s 900ms)",
            ),
            (
                routed("laptop", Some(wake(false, 15_004))),
                "served by laptop (HTTP 200) after waking mini via LAN (no answer, so the fallback after 15s)",
            ),
        ];
        for (routed, expected) in table {
            assert_eq!(served_line(&routed), expected);
        }
    }
}
