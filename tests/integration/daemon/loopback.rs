//! A capability whose endpoint is on its node's loopback, as Ollama.app
//! listens on the Mac mini's 127.0.0.1:11434: two daemons, each in a network
//! namespace of its own (so each has its own loopback, as two machines do),
//! each with an HTTP server on its own 127.0.0.1 and no Service. node-b
//! cannot reach node-a's endpoint; it places the capability on node-a by
//! node-a's word, reaches it through node-b's `/cap/`, `/ollama/` and
//! `/mesh/route`, and moves to its own endpoint when node-a says its
//! endpoint died. Needs root and iproute2 (`ip`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::support::{A, B, Daemon, Link, eventually, ip_command, python, two_nodes};

/// Any ports: the namespaces are new, nothing else listens in them.
const API_PORT: u16 = 7420;
const ENDPOINT_PORT: u16 = 11434;

/// How soon a placement must follow its endpoint: a recheck every 5 s, a
/// probe through the peer, and slack for a busy machine.
const SOON: Duration = Duration::from_secs(12);

/// `python3 -m http.server` on 127.0.0.1 of namespace `netns`, serving a file
/// `who` that holds the node's name as JSON; killed when dropped.
struct Endpoint {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Endpoint {
    fn start(netns: &str, node: &str) -> Endpoint {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("who"), format!("\"{node}\"")).expect("write who");
        let child = Command::new(ip_command())
            .args(["netns", "exec", netns, python(), "-m", "http.server", &ENDPOINT_PORT.to_string()])
            .args(["--bind", "127.0.0.1", "--directory"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ip netns exec python3 -m http.server starts");
        Endpoint { child, _dir: dir }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        // `ip netns exec` execs python: this is the server's own pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn manifests(link: &Link) -> String {
    let capability = format!(
        "apiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata:\n  name: llm_inference\nspec:\n  provider: ollama\n  \
         placement:\n    prefer: [{A}]\n    fallback: [{B}]\n  \
         endpoint:\n    host: 127.0.0.1\n    port: {ENDPOINT_PORT}\n    path: /\n    healthPath: /who\n  \
         clientEnv:\n    OLLAMA_HOST: \"{{{{api}}}}/ollama\"\n    LLM_NODE: \"{{{{node}}}}\"\n"
    );
    two_nodes((A, link.ips[0], API_PORT), (B, link.ips[1], API_PORT)) + &capability
}

/// node-b's Capability: who serves it, and its Ready message.
fn placement(b: &Daemon) -> Option<(String, String)> {
    let object = b.object("Capability", "llm_inference")?;
    let served = object["details"]["servedBy"].as_str().unwrap_or_default().to_owned();
    let ready = object["conditions"].as_array()?.iter().find(|c| c["type"] == "Ready")?.clone();
    Some((served, ready["message"].as_str()?.to_owned()))
}

fn wait_served_by(b: &Daemon, node: &str) -> (Duration, String) {
    let started = Instant::now();
    let message = eventually(&format!("{B} places the capability on {node}"), || {
        placement(b).filter(|(served, _)| served == node).map(|(_, message)| message)
    });
    (started.elapsed(), message)
}

#[test]
fn a_loopback_endpoint_is_placed_by_its_nodes_word_and_reached_through_its_api() {
    let link = Link::new();
    let mesh = manifests(&link);
    let daemon = |side: usize, name: &str| {
        Daemon::builder()
            .file("manifests/node.yaml", &mesh)
            .netns(&link.netns[side])
            .at(name, link.ips[side], API_PORT)
            .start()
    };
    let endpoint_a = Endpoint::start(&link.netns[0], A);
    let _endpoint_b = Endpoint::start(&link.netns[1], B);
    let _a = daemon(0, A);
    let b = daemon(1, B);

    let (placed_in, message) = wait_served_by(&b, A);
    assert_eq!(message, format!("served by {A}"));
    for path in ["/cap/llm_inference/who", "/ollama/who"] {
        assert_eq!(b.api_get(path), Some(Value::from(A)), "{path} on {B} reaches {A}'s loopback endpoint");
    }
    // `/mesh/route` too: http.server answers a POST with 501, from node-a's loopback.
    let routed = b.meshctl(&["route", "llm_inference", "--data", "{}"]);
    assert!(routed.stderr.contains(&format!("served by {A} (HTTP 501)")), "{routed:?}");
    let env = b.meshctl(&["env", "-o", "json"]);
    let env: Value = serde_json::from_str(&env.stdout).expect("env -o json is JSON");
    let api = format!("http://{}:{API_PORT}/ollama", link.ips[1]);
    assert_eq!((env["OLLAMA_HOST"].as_str(), env["LLM_NODE"].as_str()), (Some(api.as_str()), Some(A)));

    // node-a's endpoint dies: node-a says so, and node-b moves to its own.
    drop(endpoint_a);
    let (failed_over_in, message) = wait_served_by(&b, B);
    assert!(failed_over_in < SOON, "{B} moved after {failed_over_in:?}");
    let said =
        format!("served by {B} (fallback; {A}: endpoint unhealthy: its node says: no node could serve capability");
    assert!(message.starts_with(&said) && message.contains("Connection refused"), "{message}");
    for path in ["/cap/llm_inference/who", "/ollama/who"] {
        assert_eq!(b.api_get(path), Some(Value::from(B)), "{path} on {B} after the failover");
    }
    eprintln!("placed in {placed_in:?}, failed over in {failed_over_in:?}");
}
