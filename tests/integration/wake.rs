//! `meshctl wake NODE`: the magic packet a Node's `wake` describes, sent by
//! hand to a UDP listener on loopback (never to a LAN address).

use std::net::UdpSocket;
use std::time::Duration;

use crate::support::Workspace;

/// Two Nodes: `mini` wakes at 127.0.0.1:`port`, `laptop` declares no wake.
fn manifests(port: u16) -> String {
    format!(
        "apiVersion: agentmesh/v1alpha1
kind: Node
metadata: {{name: mini}}
spec:
  role: primary
  address: mini
  wake:
    mac: \"0a:1b:2c:3d:4e:5f\"
    address: 127.0.0.1
    port: {port}
    timeout: 20s
---
apiVersion: agentmesh/v1alpha1
kind: Node
metadata: {{name: laptop}}
spec: {{role: satellite, address: laptop}}
"
    )
}

#[test]
fn wake_sends_the_magic_packet_of_the_node_to_its_address_and_port() {
    let listener = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP listener on loopback");
    listener.set_read_timeout(Some(Duration::from_secs(20))).expect("set a read timeout");
    let port = listener.local_addr().expect("listener address").port();
    let workspace = Workspace::new().file("manifests/nodes.yaml", &manifests(port));

    let run = workspace.run(&["wake", "mini"]);
    assert_eq!(run.code, 0, "meshctl wake failed:\n{}", run.stderr);
    assert_eq!(
        run.stdout,
        format!(
            "sent a magic packet for 0a:1b:2c:3d:4e:5f (102 bytes) to 127.0.0.1:{port}; mini may take up to 20s to answer\n"
        )
    );

    let mut buffer = [0u8; 512];
    let (len, _) = listener.recv_from(&mut buffer).expect("the magic packet arrives");
    let mut expected = vec![0xFF; 6];
    for _ in 0..16 {
        expected.extend_from_slice(&[0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f]);
    }
    assert_eq!(&buffer[..len], expected.as_slice());
}

#[test]
fn wake_refuses_an_unknown_node_and_a_node_without_wake() {
    let workspace = Workspace::new().file("manifests/nodes.yaml", &manifests(9));
    // (node, stderr)
    let cases = [
        ("laptop", "error: Node \"laptop\" declares no wake (mac and address) in manifests\n"),
        ("mnii", "error: no Node \"mnii\" (did you mean \"mini\"?) in manifests\n"),
    ];
    for (node, stderr) in cases {
        let run = workspace.run(&["wake", node]);
        assert_eq!((run.code, run.stdout.as_str(), run.stderr.as_str()), (1, "", stderr), "{node}");
    }
}

#[test]
fn wake_shows_why_a_node_with_a_malformed_wake_did_not_load() {
    let node = "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: mini}\nspec:\n  role: primary\n  address: mini\n  wake: {mac: \"aa:bb:cc:dd:ee\", address: 127.0.0.1}\n";
    let run = Workspace::new().file("manifests/nodes.yaml", node).run(&["wake", "mini"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.starts_with(
            "manifests/nodes.yaml:7:15: Node/mini: MAC address \"aa:bb:cc:dd:ee\" must be six hex pairs joined by ':' or '-'"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stderr.ends_with("error: no Node \"mini\" in manifests (see the errors above)\n"), "{}", run.stderr);
}
