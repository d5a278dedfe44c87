//! Two daemons on loopback (127.0.0.2 and 127.0.0.3); the capability prefers
//! node-b. When node-b hangs (SIGSTOP), node-a says so in words: its mesh view
//! gives `unreachableSince`, the capability's Ready condition reads "node-b
//! unreachable since HH:MM; served by node-a", and `status`, `get nodes` and
//! `describe node` show "unreachable since HH:MM" where they showed "offline".
//! Once node-b answers again, every word of it is gone.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::support::{
    A, B, Daemon, Endpoint, IP_A, IP_B, eventually, free_port_on, kill, node_manifest, object_in, port_free_on_all,
    stop,
};

/// The goal is 2 s (printed); the rest is slack for a machine running the
/// whole suite.
const SOON: Duration = Duration::from_secs(10);

fn manifests(port_a: u16, port_b: u16, endpoint_port: u16) -> String {
    format!(
        "{}{}apiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {{name: llm_inference}}\n\
         spec:\n  provider: http\n  placement: {{prefer: [{B}], fallback: [{A}]}}\n  \
         endpoint: {{port: {endpoint_port}, path: /}}\n",
        node_manifest(A, "satellite", (IP_A, port_a).into()),
        node_manifest(B, "satellite", (IP_B, port_b).into()),
    )
}

/// The capability's Ready message on `daemon`, asked of its API alone (a
/// `meshctl status` would wait for a hung peer's answer too).
fn ready_message(daemon: &Daemon) -> Option<String> {
    let object = object_in(&daemon.api_get("/api/v1/status")?, "Capability", "llm_inference")?;
    let ready = object["conditions"].as_array()?.iter().find(|c| c["type"] == "Ready")?.clone();
    Some(ready["message"].as_str()?.to_owned())
}

/// "HH:MM" of a message that holds "unreachable since HH:MM".
fn time_of_day(text: &str) -> Option<&str> {
    let (_, rest) = text.split_once("unreachable since ")?;
    let hh_mm = rest.get(..5)?;
    let digits = hh_mm.bytes().enumerate().all(|(i, b)| if i == 2 { b == b':' } else { b.is_ascii_digit() });
    digits.then_some(hh_mm)
}

#[test]
fn a_hung_peer_is_unreachable_since_a_time_in_the_placement_status_get_and_describe() {
    let (port_a, port_b) = (free_port_on(IP_A), free_port_on(IP_B));
    let endpoint_port = port_free_on_all(&[IP_A, IP_B]);
    let _endpoints = [IP_A, IP_B].map(|ip| Endpoint::start(ip, endpoint_port));
    let mesh = manifests(port_a, port_b, endpoint_port);
    let a = Daemon::builder().file("manifests/node.yaml", &mesh).at(A, IP_A, port_a).start();
    let b = Daemon::builder().file("manifests/node.yaml", &mesh).at(B, IP_B, port_b).start();
    eventually("node-a has node-b serve it", || (ready_message(&a)? == format!("served by {B}")).then_some(()));
    let view = a.wait_until_sees_online(B);
    assert_eq!(view["unreachableSince"], Value::Null, "an online peer is not unreachable: {view}");

    stop(b.pid());
    let stopped = Instant::now();
    let message = eventually("node-a's condition says node-b is unreachable", || {
        ready_message(&a).filter(|m| m.starts_with(&format!("{B} unreachable since ")))
    });
    let said = stopped.elapsed();
    let since = time_of_day(&message).unwrap_or_else(|| panic!("a time of day: {message}")).to_owned();
    assert_eq!(message, format!("{B} unreachable since {since}; served by {A}"));
    let view = a.view_of(B).expect("node-b in the mesh view");
    assert_eq!((view["online"].as_bool(), view["knownDown"].as_bool()), (Some(false), Some(true)), "{view}");
    let unreachable_since = view["unreachableSince"].as_str().unwrap_or_else(|| panic!("unreachableSince: {view}"));
    assert!(humantime::parse_rfc3339(unreachable_since).is_ok(), "RFC 3339: {unreachable_since}");

    let status = a.meshctl(&["status"]);
    assert!(status.stdout.contains(&format!("no (unreachable since {since})")), "{status:?}");
    assert!(status.stdout.contains(&format!("llm_inference -> {A} ({B} unreachable since {since})")), "{status:?}");
    let json: Value = serde_json::from_str(&a.meshctl(&["status", "-o", "json"]).stdout).expect("status JSON");
    let b_status = json["nodes"].as_array().unwrap().iter().find(|n| n["name"] == B).cloned().unwrap();
    assert_eq!(b_status["unreachableSince"], unreachable_since, "{b_status}");
    let nodes = a.meshctl(&["get", "nodes"]);
    let row = nodes.stdout.lines().find(|line| line.starts_with(B)).unwrap_or_default();
    assert!(row.contains(&format!("no (unreachable since {since})")), "{nodes:?}");
    let capabilities = a.meshctl(&["get", "capabilities"]);
    assert!(
        capabilities.stderr.contains(&format!("offline, not shown: {B} (unreachable since {since})")),
        "{capabilities:?}"
    );
    let described = a.meshctl(&["describe", "node", B]);
    assert!(described.stdout.contains(&format!("Mesh:  unreachable since {since}, last seen ")), "{described:?}");
    eprintln!("node-a said node-b unreachable {said:?} after node-b hung");
    assert!(said < SOON, "said after {said:?}");

    kill(b.pid(), libc::SIGCONT);
    eventually("node-b serves it again", || (ready_message(&a)? == format!("served by {B}")).then_some(()));
    let view = a.wait_until_sees_online(B);
    assert_eq!(view["unreachableSince"], Value::Null, "{view}");
    assert!(!a.meshctl(&["status"]).stdout.contains("unreachable"), "no stale word once it is back");
}

/// The lines of `daemon`'s log and of its `events` that name node-b.
fn told_of_b(daemon: &Daemon) -> (usize, usize) {
    let lines = daemon.log().lines().filter(|line| line.contains(B)).count();
    let events = daemon.meshctl(&["events"]).stdout.lines().filter(|line| line.contains(B)).count();
    (lines, events)
}

#[test]
fn a_peer_that_stays_away_is_told_of_once_not_at_every_probe_or_recheck() {
    let (port_a, port_b) = (free_port_on(IP_A), free_port_on(IP_B));
    let endpoint_port = port_free_on_all(&[IP_A, IP_B]);
    let _endpoint = Endpoint::start(IP_A, endpoint_port);
    // node-b never starts: every probe of it is refused.
    let a = Daemon::builder()
        .file("manifests/node.yaml", &manifests(port_a, port_b, endpoint_port))
        .at(A, IP_A, port_a)
        .start();
    eventually("node-a serves it in node-b's stead", || {
        ready_message(&a).filter(|m| m.starts_with(&format!("{B} unreachable since ")))
    });
    let first = told_of_b(&a);
    // Ten probes of node-b and two rechecks of the capability later.
    std::thread::sleep(Duration::from_secs(11));
    let later = told_of_b(&a);
    eprintln!("node-b away: {} log lines and {} events about it, the same 11 s later", later.0, later.1);
    assert_eq!(later, first, "nothing more about node-b:\n{}", a.log());
    assert!(first.0 >= 1 && first.1 >= 1, "its going was told: {first:?}\n{}", a.log());
}
