//! How long `meshctl handoff ID --to node-b` takes for a conversation of 1 MB
//! and of 100 MB: two real Syncthings and two real optimised daemons on
//! loopback (node-a on 127.0.0.2, node-b on 127.0.0.3), a SyncFolder and a
//! HandoffPolicy on it. Each round writes a new conversation folder (a few
//! files of random bytes) on node-a, waits until both nodes show it owned by
//! node-a and in sync, then times the command, run on node-a, until it reports
//! that node-b owns it (freeze, barrier, accept). Then node-a, which no longer
//! owns it, appends to one of its files: the time until both nodes hold node-b's
//! file back and node-a's kept aside as `<file>.stale-2` is the stale write's.
//!
//! Last, node-a makes 100 small conversations more (as months of chats would),
//! and both daemons are left idle, each owning some (each looks for stale
//! writes in its own every 2 s and sends the peer every record): their CPU
//! time is measured.
//!
//! Run: `cargo bench --bench handoff` (cargo builds the optimised `meshctl`).
//! `BENCH_ROUNDS=5` measures more rounds of each size; `BENCH_IDLE_SECONDS=10`
//! shortens the idle measurement (30 s); `BENCH_IDLE_CONVERSATIONS=500` makes
//! more small conversations.

#![allow(
    unsafe_code,
    reason = "the benches signal and inspect processes with libc; the crate keeps its unsafe in src/sys.rs"
)]

mod common;

use std::fs;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use common::mesh::{Daemon, Mesh, NODES, Syncthing, wait_within};
use common::{clock_ticks_per_second, cpu_ticks, millis, quantile};

const POLICY: &str = "chats";
/// How long a conversation of 100 MB may take to reach node-b.
const SYNC_PATIENCE: Duration = Duration::from_secs(300);
const FILES: usize = 4;

fn main() {
    let extra: Option<usize> = std::env::var("BENCH_ROUNDS").ok().and_then(|n| n.parse().ok());
    let data = tempfile::tempdir().expect("temp dir");
    let mesh = Mesh::start();
    let mut manifests = mesh.nodes();
    let folders = NODES.map(|(name, _)| data.path().join(name).join("chats"));
    manifests.push_str(&format!(
        "apiVersion: agentmesh/v1alpha1\nkind: SyncFolder\nmetadata: {{name: chats}}\nspec:\n  paths:\n    \
         {}: {}\n    {}: {}\n---\napiVersion: agentmesh/v1alpha1\nkind: HandoffPolicy\nmetadata: {{name: {POLICY}}}\n\
         spec:\n  syncFolder: chats\n  sessionsDir: sessions\n  timeout: 10m\n",
        NODES[0].0,
        folders[0].display(),
        NODES[1].0,
        folders[1].display()
    ));
    let daemons = mesh.start_daemons(&manifests);

    let mut conversations = 0;
    for (label, bytes, rounds) in [("1 MB", 1 << 20, extra.unwrap_or(3)), ("100 MB", 100 << 20, extra.unwrap_or(2))] {
        let (mut times, mut stale_times) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let id = format!("c-{}-{round}", bytes >> 20);
            conversations += 1;
            write_conversation(&folders[0].join("sessions").join(&id), bytes);
            let synced = Instant::now();
            for daemon in &daemons {
                wait_within(SYNC_PATIENCE, &format!("{id} is owned by node-a and in sync"), || {
                    let session: serde_json::Value =
                        serde_json::from_str(&daemon.get(&format!("/api/v1/sessions/{id}"))?).ok()?;
                    (session["owner"] == NODES[0].0 && session["inSync"] == true).then_some(())
                });
            }
            let synced = synced.elapsed();

            let started = Instant::now();
            let run = daemons[0].meshctl(&["handoff", &id, "--to", NODES[1].0]);
            let took = started.elapsed();
            let stdout = String::from_utf8_lossy(&run.stdout);
            assert!(
                run.status.success() && stdout.contains(&format!("{} now owns {id} at epoch 2", NODES[1].0)),
                "the handoff of {id} failed: {stdout}{}",
                String::from_utf8_lossy(&run.stderr)
            );
            println!(
                "{label:>6} round {round}: handoff {:8.1} ms (written to in sync on both: {:.1} ms)",
                millis(took),
                millis(synced)
            );
            times.push(took);

            let aside = keep_aside_stale_write(&folders, &mesh.syncthings[0], &id);
            println!("{label:>6} round {round}: stale write kept aside on both nodes {:8.1} ms", millis(aside));
            stale_times.push(aside);
        }
        println!(
            "{label:>6} handoff, {} rounds: median {:.1} ms, min {:.1} ms, max {:.1} ms",
            times.len(),
            millis(quantile(&times, 0.5)),
            millis(quantile(&times, 0.0)),
            millis(quantile(&times, 1.0))
        );
        println!(
            "{label:>6} stale write kept aside, {} rounds: median {:.1} ms, min {:.1} ms, max {:.1} ms",
            stale_times.len(),
            millis(quantile(&stale_times, 0.5)),
            millis(quantile(&stale_times, 0.0)),
            millis(quantile(&stale_times, 1.0))
        );
    }
    // Months of chats leave many small conversations: the idle cost with them.
    let small = std::env::var("BENCH_IDLE_CONVERSATIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(100);
    for index in 0..small {
        let dir = folders[0].join("sessions").join(format!("chat-{index}"));
        fs::create_dir_all(&dir).expect("make a conversation folder");
        fs::write(dir.join("messages.jsonl"), "{\"role\":\"user\",\"content\":\"hello\"}\n".repeat(20))
            .expect("write a conversation");
    }
    for daemon in &daemons {
        wait_within(SYNC_PATIENCE, &format!("{small} more conversations in sync"), || {
            let sessions: serde_json::Value = serde_json::from_str(&daemon.get("/api/v1/sessions")?).ok()?;
            let in_sync = sessions.as_array()?.iter().filter(|session| session["inSync"] == true).count();
            (in_sync == conversations + small).then_some(())
        });
    }
    idle_cost(&daemons, conversations, small);
    drop(daemons);
}

/// The CPU each daemon uses while nothing happens, node-b owning
/// `handed` conversations and node-a `small` more.
fn idle_cost(daemons: &[Daemon], handed: usize, small: usize) {
    let seconds = std::env::var("BENCH_IDLE_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    // Let the last stale write's echoes settle first.
    std::thread::sleep(Duration::from_secs(5));
    let begin: Vec<u64> = daemons.iter().map(|daemon| cpu_ticks(daemon.pid())).collect();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let elapsed = started.elapsed().as_secs_f64();
    let (a, b) = (NODES[0].0, NODES[1].0);
    println!("idle, {small} small conversations owned by {a} and {handed} by {b}, over {elapsed:.0} s:");
    for ((daemon, begin), (name, _)) in daemons.iter().zip(begin).zip(NODES) {
        let cpu = (cpu_ticks(daemon.pid()) - begin) as f64 / clock_ticks_per_second() as f64;
        println!("  {name}: CPU {cpu:.2} s = {:.3} % of one core", cpu / elapsed * 100.0);
    }
}

/// Appends to `part-0.bin` of conversation `id` on node-a (no longer its
/// owner), has node-a's Syncthing scan it, and times until both nodes hold
/// the owner's file and node-a's kept aside as `part-0.bin.stale-2`.
fn keep_aside_stale_write(folders: &[std::path::PathBuf; 2], syncthing_a: &Syncthing, id: &str) -> Duration {
    use std::io::Write as _;
    let relative = Path::new("sessions").join(id).join("part-0.bin");
    let owners = fs::read(folders[1].join(&relative)).expect("node-b's file");
    let started = Instant::now();
    let mut file = fs::OpenOptions::new().append(true).open(folders[0].join(&relative)).expect("open node-a's file");
    file.write_all(b"written on node-a after the handoff\n").expect("append");
    drop(file);
    let stale_len = owners.len() as u64 + 36;
    syncthing_a.scan("chats");
    for folder in folders {
        let (file, aside) = (folder.join(&relative), folder.join(relative.with_extension("bin.stale-2")));
        wait_within(SYNC_PATIENCE, &format!("{} keeps the stale write aside", folder.display()), || {
            let kept = fs::metadata(&aside).ok()?.len() == stale_len;
            (kept && fs::read(&file).ok()? == owners).then_some(())
        });
    }
    started.elapsed()
}

/// A conversation folder of `bytes` random bytes in [`FILES`] files.
fn write_conversation(dir: &Path, bytes: usize) {
    fs::create_dir_all(dir).expect("make the conversation folder");
    let mut random = fs::File::open("/dev/urandom").expect("open /dev/urandom");
    for index in 0..FILES {
        let mut content = vec![0; bytes / FILES];
        random.read_exact(&mut content).expect("read random bytes");
        fs::write(dir.join(format!("part-{index}.bin")), content).expect("write a file");
    }
}
