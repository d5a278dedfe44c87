//! Two daemons on loopback (127.0.0.2 and 127.0.0.3) as a mesh: each probes
//! the other, shows it offline soon after it dies and online soon after it
//! is back, and a commit pushed to their Git remote reaches the second by
//! nudge, long before its own Git interval.

use std::time::{Duration, Instant};

use super::support::{A, B, Daemon, IP_A, IP_B, eventually, free_port_on, node_in_status, two_nodes};
use crate::support::GitRemote;

/// How soon a change of a peer must show: the offline backoff is capped at
/// 5 s; the rest is slack for a busy machine.
const SOON: Duration = Duration::from_secs(9);

fn count(log: &str, needle: &str) -> usize {
    log.matches(needle).count()
}

#[test]
fn two_daemons_see_each_other_and_a_dead_one_goes_offline_then_back() {
    let (port_a, port_b) = (free_port_on(IP_A), free_port_on(IP_B));
    let mesh = two_nodes((A, IP_A, port_a), (B, IP_B, port_b));
    let a = Daemon::builder().file("manifests/node.yaml", &mesh).at(A, IP_A, port_a).start();
    let mut b = Daemon::builder().file("manifests/node.yaml", &mesh).at(B, IP_B, port_b).start();

    b.wait_until_sees_online(A);
    // Online, and probed since it applied its manifests.
    let view = eventually("node-a sees node-b's revision", || a.view_of(B).filter(|v| v["revision"].is_string()));
    assert_eq!(view["online"], true);
    assert_eq!(view["role"], "satellite");
    assert_eq!(view["apiVersion"], "v1");
    assert_eq!(view["compatible"], true);
    assert!(view["rttMs"].as_f64().is_some() && view["lastSeen"].is_string(), "{view}");
    let peer = node_in_status(&a, B);
    assert_eq!(peer["online"], true);
    let mut keys: Vec<&str> = peer.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["lastError", "lastSeen", "name", "objects", "online", "revision", "role", "source"]);
    let table = a.meshctl(&["status"]);
    assert!(table.stdout.contains("RTT") && table.stdout.contains(B), "{table:?}");

    // Node-a may have found node-b down once already, before it started.
    let logged_before = a.log().len();
    b.kill();
    let went = Instant::now();
    a.wait_until_sees_offline(B);
    let took = went.elapsed();
    assert!(took < SOON, "offline after {took:?}");
    let last_known = node_in_status(&a, B);
    assert_eq!(last_known["online"], false);
    assert_eq!(last_known["role"], "satellite");
    assert!(last_known["lastSeen"].is_string() && last_known["revision"].is_string(), "{last_known}");
    let apply = a.meshctl(&["apply"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    assert!(apply.stdout.contains(&format!("node {B}: unreachable since ")), "{apply:?}");

    b.restart();
    let restarted = Instant::now();
    a.wait_until_sees_online(B);
    let took = restarted.elapsed();
    assert!(took < SOON, "online again after {took:?}");
    b.wait_until_sees_online(A);
    let log = a.log().split_off(logged_before);
    assert_eq!(count(&log, &format!("peer {B} offline")), 1, "{log}");
    assert_eq!(count(&log, &format!("peer {B} online again after")), 1, "{log}");
}

#[test]
fn a_push_reaches_the_other_node_by_nudge_before_its_git_interval() {
    let repo = GitRemote::new();
    let remote = repo.remote.display().to_string();
    let push = |text: &str| repo.push("manifests/node.yaml", text);
    let (port_a, port_b) = (free_port_on(IP_A), free_port_on(IP_B));
    let mesh = two_nodes((A, IP_A, port_a), (B, IP_B, port_b));
    let first = push(&mesh);
    let a = Daemon::builder().at(A, IP_A, port_a).git(&remote, "1s").start();
    let b = Daemon::builder().at(B, IP_B, port_b).git(&remote, "60s").start();
    a.wait_for_revision(&first);
    b.wait_for_revision(&first);
    a.wait_until_sees_online(B);

    let second = push(&format!("{mesh}# a comment, a new commit\n"));
    let pushed = Instant::now();
    b.wait_for_revision(&second);
    let took = pushed.elapsed();
    assert!(took < SOON, "the push reached {B} after {took:?}; its Git interval is 60 s");
    eventually("node-a logs the nudge", || a.log().contains("peer nudged to fetch").then_some(()));
}
