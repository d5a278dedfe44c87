//! A network partition between two daemons, each in a network namespace of
//! its own that the test creates, joined by a veth pair: cutting the link shows
//! each peer offline with one log line (no error storm while it stays cut), and
//! restoring it shows each online again. Needs root and iproute2 (`ip`).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::support::{A, B, Daemon, Link, eventually, two_nodes};

/// Any port: the namespaces are new, nothing else listens in them.
const PORT: u16 = 7420;

/// How long the link stays cut once both sides see it: several failed probes.
const HOLD: Duration = Duration::from_secs(12);
/// How soon a change must show on both sides: an offline peer is asked every
/// second, a probe times out after 1 s; the rest is slack for a busy machine.
const SOON: Duration = Duration::from_secs(10);

/// The two Nodes, each at its namespace's address.
fn nodes(ips: [Ipv4Addr; 2]) -> String {
    two_nodes((A, ips[0], PORT), (B, ips[1], PORT))
}

fn is_online(daemon: &Daemon, node: &str, online: bool) -> bool {
    daemon.view_of(node).is_some_and(|view| view["online"] == online)
}

/// Waits until both daemons show each other `online`; how long it took.
fn wait_both(a: &Daemon, b: &Daemon, online: bool) -> Duration {
    let started = Instant::now();
    eventually(&format!("both peers are online: {online}"), || {
        (is_online(a, B, online) && is_online(b, A, online)).then_some(())
    });
    started.elapsed()
}

/// The lines of `log` that warn or fail, without their timestamps.
fn complaints(log: &str) -> Vec<String> {
    let lines = log.lines().filter(|line| line.contains("WARN") || line.contains("ERROR"));
    lines.map(|line| line.split_once(' ').map_or(line, |(_, rest)| rest).to_owned()).collect()
}

#[test]
fn a_cut_link_shows_each_peer_offline_once_and_online_again_when_restored() {
    let link = Link::new();
    let mesh = nodes(link.ips);
    let daemon = |side: usize, name: &str| {
        Daemon::builder()
            .file("manifests/node.yaml", &mesh)
            .netns(&link.netns[side])
            .at(name, link.ips[side], PORT)
            .start()
    };
    let a = daemon(0, A);
    let b = daemon(1, B);
    wait_both(&a, &b, true);
    let (before_a, before_b) = (a.log().len(), b.log().len());

    link.set(0, false);
    let took = wait_both(&a, &b, false);
    assert!(took < SOON, "offline after {took:?}");
    std::thread::sleep(HOLD);
    assert!(is_online(&a, B, false) && is_online(&b, A, false), "still offline while cut");
    for (daemon, peer, before) in [(&a, B, before_a), (&b, A, before_b)] {
        let log = &daemon.log()[before..];
        assert_eq!(log.matches(&format!("peer {peer} offline")).count(), 1, "one offline line:\n{log}");
        let complaints = complaints(log);
        let mut unique = complaints.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), complaints.len(), "a line repeats while cut:\n{log}");
        assert!(complaints.len() <= 2, "a storm of warnings while cut:\n{log}");
    }

    link.set(0, true);
    let took = wait_both(&a, &b, true);
    assert!(took < SOON, "online again after {took:?}");
    for (daemon, peer, before) in [(&a, B, before_a), (&b, A, before_b)] {
        let log = &daemon.log()[before..];
        assert_eq!(log.matches(&format!("peer {peer} online again after")).count(), 1, "{log}");
        assert_eq!(log.matches(&format!("peer {peer} offline")).count(), 1, "{log}");
    }
}
