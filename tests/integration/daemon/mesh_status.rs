//! `GET /api/v1/mesh/status` against two real daemons: the laptop answers
//! both nodes' objects (the mini's asked with the key); with the mini hung
//! (SIGSTOP) it still answers within its peer timeout, the mini marked as not
//! answering, and once the prober knows the mini is down, at once, the mini
//! not asked at all. Likewise `describe` of a peer's object through the
//! laptop (`/api/v1/mesh/nodes/{node}/objects/…`), the page's way to a peer's
//! Service output.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::support::{Daemon, http_within_5s, kill, laptop_and_mini, stop};

/// The endpoint's 1.5 s peer timeout, and slack for a busy machine.
const PEER_TIMEOUT_AND_SLACK: Duration = Duration::from_millis(2500);

/// A Service on `node` only that says where it runs, then sleeps.
fn sleeper_on(name: &str, node: &str) -> String {
    format!(
        "---\napiVersion: agentmesh/v1alpha1\nkind: Service\nmetadata: {{name: {name}}}\n\
         spec: {{nodes: [{node}], command: [sh, -c, 'echo up on {node}; exec sleep 1000']}}\n"
    )
}

/// `describe` of `kind/name` on `node`, asked of `daemon`: status and body.
async fn describe_on(daemon: &Daemon, node: &str, kind: &str, name: &str) -> (u16, Value, Duration) {
    let started = Instant::now();
    let path = format!("/api/v1/mesh/nodes/{node}/objects/{kind}/{name}");
    let answer = http_within_5s().get(daemon.url(&path)).bearer_auth(Daemon::KEY).send().await.expect("it answers");
    (answer.status().as_u16(), answer.json().await.unwrap(), started.elapsed())
}

async fn mesh_status(daemon: &Daemon) -> (Value, Duration) {
    let started = Instant::now();
    let answer = http_within_5s().get(daemon.url("/api/v1/mesh/status")).bearer_auth(Daemon::KEY).send().await;
    let answer = answer.expect("the laptop answers");
    assert_eq!(answer.status(), 200);
    (answer.json().await.unwrap(), started.elapsed())
}

fn node<'a>(status: &'a Value, name: &str) -> &'a Value {
    let nodes = status["nodes"].as_array().expect("nodes");
    nodes.iter().find(|node| node["view"]["name"] == name).unwrap_or_else(|| panic!("{name} in {status}"))
}

fn services(node: &Value) -> Vec<&str> {
    let objects = node["status"]["objects"].as_array().into_iter().flatten();
    objects.filter(|object| object["kind"] == "Service").filter_map(|object| object["name"].as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_nodes_objects_come_from_one_node_and_a_hung_peer_never_holds_the_answer() {
    let objects = sleeper_on("on-laptop", "laptop") + &sleeper_on("on-mini", "mini");
    let (laptop, mini) = laptop_and_mini(&objects).await;
    laptop.sees_online("mini").await;
    let mut both = None;
    for _ in 0..50 {
        let (status, _) = mesh_status(&laptop).await;
        if services(node(&status, "mini")) == ["on-mini"] && services(node(&status, "laptop")) == ["on-laptop"] {
            both = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = both.expect("the laptop's answer holds each node's own Service");
    let names: Vec<&Value> = status["nodes"].as_array().unwrap().iter().map(|node| &node["view"]["name"]).collect();
    assert_eq!(names, ["laptop", "mini"], "this node first: {status}");
    assert_eq!(node(&status, "laptop")["view"]["thisNode"], true);
    assert!(node(&status, "mini").get("unanswered").is_none(), "{status}");
    assert_eq!(node(&status, "mini")["status"]["online"], true);

    // The mini's Service, described by the mini, through the laptop: its output too.
    let mut said = None;
    for _ in 0..50 {
        let (code, described, _) = describe_on(&laptop, "mini", "Service", "on-mini").await;
        assert_eq!(code, 200, "{described}");
        if described["logs"].as_array().is_some_and(|lines| lines.iter().any(|l| l["line"] == "up on mini")) {
            said = Some(described);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let described = said.expect("the mini's Service output reaches the laptop's caller");
    assert_eq!((&described["kind"], &described["name"]), (&"Service".into(), &"on-mini".into()));
    let (code, here, _) = describe_on(&laptop, "laptop", "Service", "on-laptop").await;
    assert_eq!((code, &here["name"]), (200, &"on-laptop".into()), "{here}");
    let (code, missing, _) = describe_on(&laptop, "mini", "Service", "no-such").await;
    assert_eq!((code, &missing["error"]), (404, &"not_found".into()), "the mini's own refusal: {missing}");
    assert!(missing["message"].as_str().unwrap().starts_with("mini: "), "{missing}");
    let (code, nowhere, _) = describe_on(&laptop, "desk", "Service", "on-mini").await;
    assert_eq!((code, &nowhere["error"]), (404, &"not_found".into()), "{nowhere}");
    let (code, bad, _) = describe_on(&laptop, "mini", "Gadget", "on-mini").await;
    assert_eq!((code, &bad["error"]), (400, &"bad_request".into()), "checked before asking: {bad}");

    stop(mini.pid());
    let (status, took) = mesh_status(&laptop).await;
    println!("answered in {took:?} with the mini hung");
    assert!(took < PEER_TIMEOUT_AND_SLACK, "a hung peer held the answer {took:?}");
    let hung = node(&status, "mini");
    assert!(hung["unanswered"].is_string(), "{status}");
    assert_eq!(hung["status"]["online"], false);
    assert!(services(hung).is_empty(), "{status}");
    assert_eq!(services(node(&status, "laptop")), ["on-laptop"]);
    let (code, failed, took) = describe_on(&laptop, "mini", "Service", "on-mini").await;
    assert!(took < PEER_TIMEOUT_AND_SLACK, "a hung peer held describe {took:?}");
    assert!(code == 502 || failed["error"] == "peer_down", "{code} {failed}");

    let mut known_down = None;
    for _ in 0..50 {
        let (status, took) = mesh_status(&laptop).await;
        if node(&status, "mini")["view"]["knownDown"] == true {
            known_down = Some((status, took));
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, took) = known_down.expect("the laptop's prober finds the mini down");
    println!("answered in {took:?} with the mini known down");
    assert_eq!(node(&status, "mini")["unanswered"], "not asked: known to be down");
    assert!(took < Duration::from_secs(1), "a peer known down is not asked, yet the answer took {took:?}");
    let (code, down, took) = describe_on(&laptop, "mini", "Service", "on-mini").await;
    assert_eq!((code, &down["error"]), (503, &"peer_down".into()), "{down}");
    assert!(down["message"].as_str().unwrap().contains("mini is unreachable since "), "{down}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    kill(mini.pid(), libc::SIGCONT);
}
