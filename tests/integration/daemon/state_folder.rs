//! One daemon per state folder: a second `meshctl daemon` on the same
//! `MESH_STATE_DIR` is refused at once and leaves the first one's Services and
//! `processes.json` alone, also after the folder was deleted under the first.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::support::{Daemon, eventually, free_port, is_dead, sleeper};

/// "At once": the refused daemon does no work before it checks the lock.
const REFUSAL_LIMIT: Duration = Duration::from_secs(5);

/// Starts a second daemon on `daemon`'s workspace (its `.env`, so its state
/// folder) on another port, and checks it exits 1 at once naming the folder
/// and the first daemon's pid.
fn assert_second_daemon_refused(daemon: &Daemon, state: &Path) {
    let listen = format!("{}:{}", Ipv4Addr::LOCALHOST, free_port());
    let started = Instant::now();
    let run = daemon
        .meshctl_within(REFUSAL_LIMIT, &["daemon", "--listen", &listen])
        .expect("the second daemon exits at once");
    assert_eq!(run.code, 1, "{run:?}");
    assert!(started.elapsed() < REFUSAL_LIMIT);
    let folder = std::fs::canonicalize(state.parent().unwrap()).unwrap().join("state");
    assert!(run.stderr.contains(&folder.display().to_string()), "names the folder: {}", run.stderr);
    assert!(run.stderr.contains(&format!("pid {}", daemon.pid())), "names the holder: {}", run.stderr);
}

/// The pids `processes.json` lists, None while the file is missing.
fn recorded_pids(state: &Path) -> Option<Vec<u64>> {
    let text = std::fs::read_to_string(state.join("processes.json")).ok()?;
    let file: Value = serde_json::from_str(&text).expect("processes.json is JSON");
    Some(file["processes"].as_array()?.iter().filter_map(|process| process["pid"].as_u64()).collect())
}

#[test]
fn a_second_daemon_on_the_same_state_folder_is_refused_even_after_the_folder_is_deleted() {
    let daemon = Daemon::builder().file("manifests/sleeper.yaml", &sleeper("sleeper")).start();
    let pid = daemon.wait_until_ready("sleeper");
    let state = daemon.path().join("state");
    assert_eq!(recorded_pids(&state), Some(vec![u64::from(pid)]));

    assert_second_daemon_refused(&daemon, &state);
    assert!(!is_dead(pid), "the first daemon's Service was stopped");
    assert_eq!(daemon.wait_until_ready("sleeper"), pid, "the Service was started again");
    assert_eq!(recorded_pids(&state), Some(vec![u64::from(pid)]), "processes.json is intact");

    // Deleted under the running daemon: it makes the folder again, with what
    // it records there.
    std::fs::remove_dir_all(&state).unwrap();
    eventually("the daemon makes its state folder again", || {
        (recorded_pids(&state)? == [u64::from(pid)]).then_some(())
    });
    assert!(daemon.log().contains("the state folder was deleted while the daemon ran"), "{}", daemon.log());

    // Deleted again, and a second daemon comes before the first noticed.
    std::fs::remove_dir_all(&state).unwrap();
    assert_second_daemon_refused(&daemon, &state);
    eventually("the daemon makes its state folder again", || {
        (recorded_pids(&state)? == [u64::from(pid)]).then_some(())
    });
    assert!(!is_dead(pid), "the first daemon's Service was stopped");
    assert_eq!(daemon.wait_until_ready("sleeper"), pid);
}
