//! How long a new SyncFolder takes to carry its first file: two real
//! Syncthings and two real optimised daemons on loopback (node-a on
//! 127.0.0.2, node-b on 127.0.0.3), configured by manifests and keys only.
//! Each round `meshctl apply`s, on node-a, the manifests plus one more
//! SyncFolder (a new folder id; node-a hands the bundle to node-b), writes a
//! file into node-a's new folder right after, and times until the file is in
//! node-b's folder. The first round also pairs the two Syncthings, so it is
//! printed apart from the median.
//!
//! Run: `cargo bench --bench sync` (cargo builds the optimised `meshctl`).
//! `BENCH_ROUNDS=10` measures more rounds.

#![allow(
    unsafe_code,
    reason = "the benches signal and inspect processes with libc; the crate keeps its unsafe in src/sys.rs"
)]

mod common;

use std::fs;
use std::time::Instant;

use common::mesh::{Mesh, NODES, wait};
use common::{millis, quantile};

fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|n| n.parse().ok()).unwrap_or(5);
    let data = tempfile::tempdir().expect("temp dir");
    let mesh = Mesh::start();
    let nodes = mesh.nodes();
    let daemons = mesh.start_daemons(&nodes);

    let bundle = data.path().join("bundle");
    fs::create_dir_all(&bundle).expect("create the bundle folder");
    fs::write(bundle.join("nodes.yaml"), &nodes).expect("write the Nodes");
    let mut times = Vec::new();
    for round in 0..=rounds {
        let id = format!("bench-{round}");
        let paths = NODES.map(|(name, _)| data.path().join(name).join(&id));
        let folder = format!(
            "apiVersion: agentmesh/v1alpha1\nkind: SyncFolder\nmetadata: {{name: {id}}}\nspec:\n  paths:\n    \
             {}: {}\n    {}: {}\n",
            NODES[0].0,
            paths[0].display(),
            NODES[1].0,
            paths[1].display()
        );
        fs::write(bundle.join(format!("{id}.yaml")), folder).expect("write the SyncFolder");

        let started = Instant::now();
        let apply = daemons[0].meshctl(&["apply", "-f", bundle.to_str().expect("a UTF-8 path")]);
        let applied = started.elapsed();
        assert!(apply.status.success(), "meshctl apply failed: {}", String::from_utf8_lossy(&apply.stderr));
        fs::create_dir_all(&paths[0]).expect("create node-a's folder");
        fs::write(paths[0].join("first.txt"), format!("round {round}")).expect("write the file");
        let arrived = paths[1].join("first.txt");
        wait(&format!("the file of round {round} reaches node-b"), || fs::metadata(&arrived).ok());
        let took = started.elapsed();
        let kind = if round == 0 { " (pairs the Syncthings; not in the median)" } else { "" };
        println!(
            "round {round}: folder {id}: file on node-b {:8.1} ms after apply (apply returned after {:.1} ms){kind}",
            millis(took),
            millis(applied)
        );
        if round > 0 {
            times.push(took);
        }
    }
    if !times.is_empty() {
        println!(
            "apply to first file on the peer, {} rounds: median {:.1} ms, min {:.1} ms, max {:.1} ms",
            times.len(),
            millis(quantile(&times, 0.5)),
            millis(quantile(&times, 0.0)),
            millis(quantile(&times, 1.0))
        );
    }
    drop(daemons);
}
