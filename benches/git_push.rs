//! How long a `git push` takes to be applied on every node: two real
//! optimised daemons on loopback (node-a on 127.0.0.2, node-b on 127.0.0.3)
//! follow a bare remote on disk with the default 30 s interval. Node-a's
//! `MESH_MANIFESTS` lies in the user's checkout, a clone of the remote. Each
//! round commits a change there (not timed), then times from the start of
//! `git push` until both daemons' `/mesh/health` names the new commit.
//!
//! Run: `cargo bench --bench git_push` (cargo builds the optimised `meshctl`).
//! `BENCH_ROUNDS=50` measures more rounds (default 20).

#![allow(
    unsafe_code,
    reason = "the benches signal and inspect processes with libc; the crate keeps its unsafe in src/sys.rs"
)]

mod common;

use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use common::mesh::{Daemon, KEY, NODES, free_port, wait};
use common::{millis, quantile};

fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|n| n.parse().ok()).unwrap_or(20);
    let dir = tempfile::tempdir().expect("temp dir");
    let (remote, work) = (dir.path().join("remote.git"), dir.path().join("work"));
    git(dir.path(), &["init", "--quiet", "--bare", "-b", "main", "remote.git"]);
    git(dir.path(), &["init", "--quiet", "-b", "main", "work"]);
    git(&work, &["config", "user.name", "Bench"]);
    git(&work, &["config", "user.email", "bench@example.invalid"]);
    git(&work, &["remote", "add", "origin", &remote.display().to_string()]);

    let ports = NODES.map(|(_, ip)| free_port(ip));
    let nodes: String = NODES
        .iter()
        .zip(ports)
        .map(|((name, ip), port)| {
            format!(
                "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {{name: {name}}}\nspec:\n  role: satellite\n  \
                 address: {ip}\n  apiPort: {port}\n---\n"
            )
        })
        .collect();
    let manifests = work.join("manifests");
    fs::create_dir(&manifests).expect("create the manifests folder");
    let first = commit(&work, &format!("{nodes}# round 0\n"));
    git(&work, &["push", "--quiet", "origin", "main"]);

    let checkout = manifests.display().to_string();
    let daemons = [
        GitDaemon::start(NODES[0], ports[0], &remote, Some(&checkout)),
        GitDaemon::start(NODES[1], ports[1], &remote, None),
    ];
    for (daemon, (peer, _)) in daemons.iter().zip(NODES.iter().rev()) {
        wait(&format!("{} is on the first commit and sees {peer}", daemon.name), || {
            let mesh: serde_json::Value = serde_json::from_str(&daemon.get("/api/v1/mesh")?).ok()?;
            let sees = mesh.as_array()?.iter().any(|node| node["name"] == *peer && node["online"] == true);
            (sees && daemon.revision().as_deref() == Some(first.as_str())).then_some(())
        });
    }

    let mut both = Vec::new();
    let mut each = [Vec::new(), Vec::new()];
    for round in 1..=rounds {
        let revision = commit(&work, &format!("{nodes}# round {round}\n"));
        let started = Instant::now();
        git(&work, &["push", "--quiet", "origin", "main"]);
        let pushed = started.elapsed();
        let mut arrived = [None, None];
        wait(&format!("round {round} reaches both nodes"), || {
            for (daemon, at) in daemons.iter().zip(arrived.iter_mut()) {
                if at.is_none() && daemon.revision().as_deref() == Some(revision.as_str()) {
                    *at = Some(started.elapsed());
                }
            }
            arrived.iter().all(Option::is_some).then_some(())
        });
        let [a, b] = arrived.map(|at| at.expect("arrived"));
        println!(
            "round {round:2}: node-a {:7.1} ms, node-b {:7.1} ms after `git push` started (the push took {:.1} ms)",
            millis(a),
            millis(b),
            millis(pushed)
        );
        both.push(a.max(b));
        each[0].push(a);
        each[1].push(b);
    }
    println!(
        "push -> every node on the new commit, {rounds} pushes: median {:.1} ms, p95 {:.1} ms, max {:.1} ms \
         (node-a median {:.1} ms, node-b median {:.1} ms; Git interval 30 s)",
        millis(quantile(&both, 0.5)),
        millis(quantile(&both, 0.95)),
        millis(quantile(&both, 1.0)),
        millis(quantile(&each[0], 0.5)),
        millis(quantile(&each[1], 0.5)),
    );
}

/// Runs `git args…` in `dir` without the user's configuration; its output, trimmed.
fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(output.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("UTF-8 output").trim().to_owned()
}

/// Writes the manifests and commits them; returns the commit id.
fn commit(work: &Path, manifests: &str) -> String {
    fs::write(work.join("manifests/nodes.yaml"), manifests).expect("write the manifests");
    git(work, &["add", "--all"]);
    git(work, &["commit", "--quiet", "-m", "change the manifests"]);
    git(work, &["rev-parse", "HEAD"])
}

/// `meshctl daemon` following the remote, in a workspace of its own; stopped
/// (SIGTERM) when dropped.
struct GitDaemon {
    name: &'static str,
    daemon: Daemon,
}

impl GitDaemon {
    /// Starts it on `remote` with the default interval, its manifests folder in
    /// `checkout` when given; returns once its API answers.
    fn start((name, ip): (&'static str, Ipv4Addr), port: u16, remote: &Path, checkout: Option<&str>) -> GitDaemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut env = format!(
            "AGENT_NODE_ID={name}\nMESH_LISTEN={ip}:{port}\nMESH_STATE_DIR={}\nMESH_API_KEY={KEY}\nMESH_GIT_REMOTE={}\n",
            dir.path().join("state").display(),
            remote.display()
        );
        if let Some(checkout) = checkout {
            env.push_str(&format!("MESH_MANIFESTS={checkout}\n"));
        }
        fs::write(dir.path().join(".env"), env).expect("write .env");
        GitDaemon { name, daemon: Daemon::run_in(dir, name, ip, port) }
    }

    fn get(&self, path: &str) -> Option<String> {
        self.daemon.get(path)
    }

    /// The revision in force, from `/mesh/health`.
    fn revision(&self) -> Option<String> {
        let health: serde_json::Value = serde_json::from_str(&self.daemon.get("/mesh/health")?).ok()?;
        health["revision"].as_str().map(str::to_owned)
    }
}
