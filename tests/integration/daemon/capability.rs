//! A Capability across two daemons on loopback (127.0.0.2 and 127.0.0.3):
//! each node has an HTTP server as its endpoint; the capability prefers
//! node-b and falls back to node-a. node-a's `meshctl env` / `exec` point at
//! node-b, follow it to node-a when node-b's endpoint dies, and back when it
//! returns; `status` and the events say so.

use std::net::{Ipv4Addr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::support::{Daemon, eventually, free_port_on, http_get_at, python};

const A: &str = "node-a";
const B: &str = "node-b";
const IP_A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const IP_B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

/// How soon a placement must follow its endpoint: a recheck every 5 s, a
/// probe, and slack for a busy machine.
const SOON: Duration = Duration::from_secs(10);

/// `python3 -m http.server` on `ip:port`, killed when dropped.
struct Endpoint(Child);

impl Endpoint {
    fn start(ip: Ipv4Addr, port: u16) -> Endpoint {
        let child = Command::new(python())
            .args(["-m", "http.server", &port.to_string(), "--bind", &ip.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m http.server starts");
        let endpoint = Endpoint(child);
        eventually(&format!("the endpoint on {ip}:{port} answers"), || {
            (http_get_at(ip, port, "/") == Some(200)).then_some(())
        });
        endpoint
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port free on both addresses, so both endpoints share it as one
/// Capability's `endpoint.port`.
fn port_free_on_both() -> u16 {
    eventually("a port free on both addresses", || {
        let port = free_port_on(IP_B);
        TcpListener::bind((IP_A, port)).is_ok().then_some(port)
    })
}

fn manifests(port_a: u16, port_b: u16, endpoint_port: u16) -> String {
    let node = |name: &str, role: &str, ip: Ipv4Addr, port: u16| {
        format!(
            "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata:\n  name: {name}\nspec:\n  role: {role}\n  address: {ip}\n  apiPort: {port}\n"
        )
    };
    let capability = format!(
        "apiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata:\n  name: llm_inference\nspec:\n  provider: http\n  \
         placement:\n    prefer: [{B}]\n    fallback: [{A}]\n  endpoint:\n    port: {endpoint_port}\n    path: /\n  \
         clientEnv:\n    LLM_URL: \"http://{{{{host}}}}:{{{{port}}}}\"\n    LLM_NODE: \"{{{{node}}}}\"\n"
    );
    format!("{}---\n{}---\n{capability}", node(A, "primary", IP_A, port_a), node(B, "satellite", IP_B, port_b))
}

/// `meshctl env -o json` of `daemon`, None while it fails.
fn env_json(daemon: &Daemon) -> Option<Value> {
    let run = daemon.meshctl(&["env", "-o", "json"]);
    (run.code == 0).then(|| serde_json::from_str(&run.stdout).expect("env -o json is JSON"))
}

/// Waits until node-a's client env points at `node` (at `ip:port`); returns how long it took.
fn wait_env_points_at(a: &Daemon, node: &str, ip: Ipv4Addr, port: u16) -> Duration {
    let started = Instant::now();
    let url = format!("http://{ip}:{port}");
    eventually(&format!("meshctl env points at {node}"), || {
        let env = env_json(a)?;
        (env["LLM_NODE"] == node && env["LLM_URL"] == url.as_str()).then_some(())
    });
    started.elapsed()
}

fn exec_llm_node(a: &Daemon) -> String {
    let run = a.meshctl(&["exec", "--", "sh", "-c", "echo $LLM_NODE"]);
    assert_eq!(run.code, 0, "{run:?}");
    run.stdout.trim().to_owned()
}

fn capability_message(a: &Daemon) -> String {
    let object = a.object("Capability", "llm_inference").expect("node-a lists the Capability");
    let conditions = object["conditions"].as_array().expect("conditions");
    let ready = conditions.iter().find(|c| c["type"] == "Ready").expect("Ready");
    ready["message"].as_str().expect("a message").to_owned()
}

/// The Capability's Ready message once it says `what`: the status follows the
/// reconcile that wrote `client.env`, a moment after the file.
fn capability_message_once(a: &Daemon, what: &str, says: impl Fn(&str) -> bool) -> String {
    eventually(what, || {
        let message = capability_message(a);
        if says(&message) { Ok(message) } else { Err(format!("the message is {message:?}")) }
    })
}

#[test]
fn the_client_env_follows_the_capability_to_the_fallback_and_back() {
    let (port_a, port_b) = (free_port_on(IP_A), free_port_on(IP_B));
    let endpoint_port = port_free_on_both();
    let mesh = manifests(port_a, port_b, endpoint_port);
    let _endpoint_a = Endpoint::start(IP_A, endpoint_port);
    let endpoint_b = Endpoint::start(IP_B, endpoint_port);
    let a = Daemon::builder().file("manifests/node.yaml", &mesh).at(A, IP_A, port_a).start();
    let _b = Daemon::builder().file("manifests/node.yaml", &mesh).at(B, IP_B, port_b).start();

    let started = Instant::now();
    wait_env_points_at(&a, B, IP_B, endpoint_port);
    let placed_in = started.elapsed();
    assert_eq!(exec_llm_node(&a), B);
    let text = a.meshctl(&["env"]);
    assert_eq!(text.code, 0, "{text:?}");
    assert!(text.stdout.starts_with("# Generated by the agentmesh controller of node-a"), "{text:?}");
    assert!(text.stdout.contains(&format!("LLM_URL=http://{IP_B}:{endpoint_port}\n")), "{text:?}");
    let served_by_b = format!("served by {B}");
    capability_message_once(&a, "the Capability says node-b serves it", |message| message == served_by_b);
    let status = a.meshctl(&["status"]);
    assert!(status.stdout.contains(&format!("llm_inference -> {B}")), "{status:?}");

    drop(endpoint_b);
    let failed_over_in = wait_env_points_at(&a, A, IP_A, endpoint_port);
    assert!(failed_over_in < SOON, "the env pointed at {A} after {failed_over_in:?}");
    assert_eq!(exec_llm_node(&a), A);
    let fallback = format!("served by {A} (fallback; {B}: endpoint unhealthy: ");
    capability_message_once(&a, "the Capability says node-a serves it as the fallback", |message| {
        message.starts_with(&fallback)
    });
    let status = a.meshctl(&["status"]);
    assert!(status.stdout.contains(&format!("llm_inference -> {A} (fallback; {B}")), "{status:?}");
    let events = a.meshctl(&["events"]);
    let change = format!("llm_inference: {B} -> {A} (served by {A} (fallback;");
    assert!(events.stdout.contains("PlacementChanged") && events.stdout.contains(&change), "{events:?}");

    let _endpoint_b = Endpoint::start(IP_B, endpoint_port);
    let back_in = wait_env_points_at(&a, B, IP_B, endpoint_port);
    assert!(back_in < SOON, "the env pointed back at {B} after {back_in:?}");
    assert_eq!(exec_llm_node(&a), B);
    eventually("the event of the move back", || {
        a.meshctl(&["events"]).stdout.contains(&format!("llm_inference: {A} -> {B} (served by {B})")).then_some(())
    });
    eprintln!("placed in {placed_in:?}, failed over in {failed_over_in:?}, back in {back_in:?}");
}

#[test]
fn env_and_exec_say_when_the_daemon_has_not_written_the_client_env_and_exec_reports_a_missing_command() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state");
    std::fs::write(dir.path().join(".env"), format!("MESH_STATE_DIR={}\n", state.display())).expect("write .env");
    let meshctl = |args: &[&str]| {
        Command::new(assert_cmd::cargo::cargo_bin("meshctl"))
            .args(args)
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .output()
            .expect("meshctl runs")
    };
    for args in [&["env"][..], &["exec", "--", "true"]] {
        let output = meshctl(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("has not written the client env yet"), "{args:?}: {stderr}");
    }
    std::fs::create_dir_all(&state).expect("state folder");
    std::fs::write(state.join("client.env"), "# generated\nGREETING='hello there'\n").expect("client.env");
    let output = meshctl(&["exec", "--", "sh", "-c", "echo \"$GREETING\"; exit 3"]);
    assert_eq!((output.status.code(), String::from_utf8_lossy(&output.stdout).as_ref()), (Some(3), "hello there\n"));
    let output = meshctl(&["exec", "--", "no-such-command-4f2a", "--flag"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(127), "{stderr}");
    assert!(stderr.contains("no-such-command-4f2a: command not found"), "{stderr}");
    let output = meshctl(&["env", "-o", "json"]);
    let json: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(json, serde_json::json!({"GREETING": "hello there"}));
}
