//! `GET /api/v1/mesh/status` against two real daemons: the laptop answers
//! both nodes' objects (the mini's asked with the key); with the mini hung
//! (SIGSTOP) it still answers within its peer timeout, the mini marked as not
//! answering, and once the prober knows the mini is down, at once, the mini
//! not asked at all.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::support::{Daemon, http_within_5s, kill, laptop_and_mini};

/// The endpoint's 1.5 s peer timeout, and slack for a busy machine.
const PEER_TIMEOUT_AND_SLACK: Duration = Duration::from_millis(2500);

/// A Service that sleeps on `node` only.
fn sleeper_on(name: &str, node: &str) -> String {
    format!(
        "---\napiVersion: agentmesh/v1alpha1\nkind: Service\nmetadata: {{name: {name}}}\n\
         spec: {{nodes: [{node}], command: [sleep, '1000']}}\n"
    )
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

    kill(mini.pid(), libc::SIGSTOP);
    let (status, took) = mesh_status(&laptop).await;
    println!("answered in {took:?} with the mini hung");
    assert!(took < PEER_TIMEOUT_AND_SLACK, "a hung peer held the answer {took:?}");
    let hung = node(&status, "mini");
    assert!(hung["unanswered"].is_string(), "{status}");
    assert_eq!(hung["status"]["online"], false);
    assert!(services(hung).is_empty(), "{status}");
    assert_eq!(services(node(&status, "laptop")), ["on-laptop"]);

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
    kill(mini.pid(), libc::SIGCONT);
}
