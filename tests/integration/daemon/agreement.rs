//! Three daemons on loopback (127.0.0.2, .3, .4) agree on who serves a
//! capability: it prefers node-c, then node-b, then node-a. When node-c hangs
//! (SIGSTOP: its port still accepts, nothing answers), node-a and node-b both
//! move it to node-b and show node-c offline; when node-c answers again, all
//! three move it back. The figures are printed; `benches/sleep.rs` measures
//! them over many rounds.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::support::{Daemon, Endpoint, eventually, free_port_on, kill, node_manifest, port_free_on_all, stop};

const NODES: [(&str, Ipv4Addr); 3] = [
    ("node-a", Ipv4Addr::new(127, 0, 0, 2)),
    ("node-b", Ipv4Addr::new(127, 0, 0, 3)),
    ("node-c", Ipv4Addr::new(127, 0, 0, 4)),
];

/// How soon every node must agree: the goal is 2 s (the bench's figure); the
/// rest is slack for a machine running the whole suite.
const SOON: Duration = Duration::from_secs(10);

fn manifests(api_ports: [u16; 3], endpoint_port: u16) -> String {
    let mut text = String::new();
    for ((name, ip), port) in NODES.iter().zip(api_ports) {
        text.push_str(&node_manifest(name, "satellite", (*ip, port).into()));
    }
    text.push_str(&format!(
        "apiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {{name: llm_inference}}\n\
         spec:\n  provider: http\n  placement: {{prefer: [node-c], fallback: [node-b, node-a]}}\n  \
         endpoint: {{port: {endpoint_port}, path: /}}\n"
    ));
    text
}

/// Who `daemon` says serves the capability, and whether it sees `peer` online.
fn view(daemon: &Daemon, peer: &str) -> Option<(String, bool)> {
    let served = daemon.object("Capability", "llm_inference")?["details"]["servedBy"].as_str()?.to_owned();
    let online = daemon.view_of(peer)?["online"].as_bool()?;
    Some((served, online))
}

/// Waits until each daemon of `views` says `served` serves the capability
/// and sees the peer named beside it `online`; how long it took.
fn wait_all_agree(views: &[(&Daemon, &str)], served: &str, online: bool) -> Duration {
    let started = Instant::now();
    eventually(&format!("every node says {served} serves llm_inference"), || {
        for (daemon, peer) in views {
            match view(daemon, peer) {
                Some((by, seen_online)) if by == served && seen_online == online => {}
                other => return Err(format!("{} sees {other:?}", daemon.path().display())),
            }
        }
        Ok(())
    });
    started.elapsed()
}

#[test]
fn three_nodes_agree_on_the_serving_node_when_it_hangs_and_when_it_returns() {
    let api_ports = NODES.map(|(_, ip)| free_port_on(ip));
    let ips = NODES.map(|(_, ip)| ip);
    let endpoint_port = port_free_on_all(&ips);
    let mesh = manifests(api_ports, endpoint_port);
    let _endpoints = ips.map(|ip| Endpoint::start(ip, endpoint_port));
    let [a, b, c] = [0, 1, 2]
        .map(|i| Daemon::builder().file("manifests/node.yaml", &mesh).at(NODES[i].0, ips[i], api_ports[i]).start());
    let everyone = [(&a, "node-c"), (&b, "node-c"), (&c, "node-a")];
    wait_all_agree(&everyone, "node-c", true);

    stop(c.pid());
    let fell_back = wait_all_agree(&[(&a, "node-c"), (&b, "node-c")], "node-b", false);
    for daemon in [&a, &b] {
        let status = daemon.meshctl(&["status"]);
        assert!(status.stdout.contains("llm_inference -> node-b (node-c unreachable since "), "{status:?}");
    }

    kill(c.pid(), libc::SIGCONT);
    let came_back = wait_all_agree(&everyone, "node-c", true);
    eprintln!(
        "node-a and node-b agreed on node-b {fell_back:?} after node-c hung, on node-c {came_back:?} after it returned"
    );
    assert!(fell_back < SOON && came_back < SOON, "fell back after {fell_back:?}, came back after {came_back:?}");
}
