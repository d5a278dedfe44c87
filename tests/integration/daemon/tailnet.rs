//! Two daemons found through Tailscale: their Node addresses are MagicDNS
//! names that do not resolve (they run in a network namespace of their own
//! with only loopback, so no name lookup leaves it), and each learns the other's
//! tailnet IP from a fake LocalAPI. Neither has `MESH_API_KEY`: the Mesh lets
//! callers in by Tailscale identity, so peers and the CLI get in through whois.
//! Needs root and iproute2 (`ip`).

use std::net::Ipv4Addr;

use serde_json::Value;

use super::support::{A, B, Daemon, IP_A, IP_B, Namespace, eventually};
use crate::tailscale::fake::{self, FakeTailscaled};

/// Any port: the namespace is new, nothing else listens in it.
const PORT: u16 = 7430;

/// The LocalAPI status a node's tailscaled gives: the fixture's online peer
/// renamed to `peer`, at `ip`.
fn status_with_peer(peer: &str, ip: Ipv4Addr, online: bool) -> String {
    let status =
        fake::STATUS.replace("mac-mini", peer).replace("Mac-mini", peer).replace("100.101.3.4", &ip.to_string());
    if online { status } else { status.replacen("\"Online\": true", "\"Online\": false", 2) }
}

fn manifests() -> String {
    let node = |name: &str, role: &str| {
        format!(
            "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata:\n  name: {name}\nspec:\n  role: {role}\n  \
             address: {name}\n  apiPort: {PORT}\n"
        )
    };
    format!(
        "{}---\n{}---\napiVersion: agentmesh/v1alpha1\nkind: Mesh\nmetadata:\n  name: mesh\nspec:\n  auth:\n    \
         tailscaleIdentity:\n      enabled: true\n      allowTags: [\"tag:agent\"]\n  discovery:\n    tailscale: true\n    \
         localApiSocket: ~/tailscaled.sock\n",
        node(A, "primary"),
        node(B, "satellite")
    )
}

#[test]
fn peers_are_dialled_at_their_tailnet_ips_and_let_in_by_identity_without_a_key() {
    let namespace = Namespace::new("am-ts");
    // The fakes serve from this runtime's threads while the test waits.
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let _entered = runtime.enter();
    let (tailscaled_a, tailscaled_b) = (FakeTailscaled::start(), FakeTailscaled::start());
    tailscaled_a.set_status(&status_with_peer(B, IP_B, true));
    tailscaled_b.set_status(&status_with_peer(A, IP_A, true));
    // Inside the namespace every connection comes from 127.0.0.1: the peer
    // daemon and the test's CLI alike, a node tagged tag:agent.
    for tailscaled in [&tailscaled_a, &tailscaled_b] {
        tailscaled.answer_whois(Ipv4Addr::LOCALHOST.into(), fake::WHOIS_TAGGED);
    }
    let start = |node: &str, ip: Ipv4Addr, tailscaled: &FakeTailscaled| {
        let builder = Daemon::builder().file("manifests/node.yaml", &manifests()).without_api_key();
        std::os::unix::fs::symlink(tailscaled.socket(), builder.path().join("tailscaled.sock")).expect("symlink");
        builder.at(node, ip, PORT).netns(&namespace.0).start()
    };
    let a = start(A, IP_A, &tailscaled_a);
    let mut b = start(B, IP_B, &tailscaled_b);

    let seen = a.wait_until_sees_online(B);
    assert_eq!(seen["dial"], format!("{IP_B}:{PORT}"), "dialled at its tailnet IP: {seen}");
    assert_eq!(seen["address"], B, "{seen}");
    b.wait_until_sees_online(A);
    assert!(a.log().contains("dialling the peer at its tailnet address"), "{}", a.log());
    assert!(a.log().contains("MESH_API_KEY is not set"), "{}", a.log());

    // The CLI and the peers get in by identity: the mesh-wide status carries
    // node-b's own objects, fetched from it without a key.
    let run = a.meshctl(&["status", "-o", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let status: Value = serde_json::from_str(&run.stdout).expect("JSON");
    let peer = status["nodes"].as_array().unwrap().iter().find(|n| n["name"] == B).cloned().unwrap();
    assert_eq!(peer["online"], true, "{peer}");
    assert!(peer["objects"].as_array().is_some_and(|o| !o.is_empty()), "node-b's objects: {peer}");
    let apply = a.meshctl(&["apply"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    assert!(!apply.stdout.contains("unauthorized") && !apply.stderr.contains("unauthorized"), "{apply:?}");

    // A caller Tailscale does not know gets nothing without the key.
    tailscaled_b.answer_whois(Ipv4Addr::LOCALHOST.into(), fake::WHOIS_OTHER_USER);
    let refused = b.meshctl(&["status", "-o", "json"]);
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(refused.stderr.contains("401") || refused.stderr.contains("unauthorized"), "{refused:?}");

    // Node-b goes to sleep: Tailscale sees it offline, and so does node-a.
    tailscaled_a.set_status(&status_with_peer(B, IP_B, false));
    b.kill();
    a.wait_until_sees_offline(B);
    eventually("the offline event says Tailscale agrees", || {
        a.log().contains("Tailscale sees it offline too").then_some(())
    });
}
