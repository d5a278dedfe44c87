//! A Service that floods its output, against a real daemon: its lines go to
//! the status stream beside the controller's loop, not through it, so an
//! apply during the flood is not held up and the daemon's memory does not
//! grow with the flood. Each line is logged once.

use std::time::{Duration, Instant};

use super::support::{Daemon, eventually_within, service, sleeper};

/// How many lines the flood writes: about 50 MB.
const BURST_LINES: u32 = 800_000;

/// The longest a Service may take from its manifest to Ready while another
/// floods: a quiet daemon needs well under a second.
const PROMPT: Duration = Duration::from_secs(5);

/// How much the daemon's peak memory may grow while it reads the flood: the
/// stream and the ring hold a bounded number of lines (about 1 MB).
const MEMORY_BOUND_KB: u64 = 32 * 1024;

/// The peak resident memory of `pid` (`VmHWM`), in kB.
fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the daemon's /proc status");
    let line = status.lines().find(|line| line.starts_with("VmHWM:")).expect("a VmHWM line");
    line.split_whitespace().nth(1).and_then(|kb| kb.parse().ok()).expect("VmHWM in kB")
}

/// The last line `service` wrote, as `describe` shows it.
fn last_line(daemon: &Daemon, service: &str) -> Option<String> {
    let described = daemon.api_get(&format!("/api/v1/objects/Service/{service}"))?;
    described["logs"].as_array()?.last()?["line"].as_str().map(str::to_owned)
}

#[test]
fn a_flood_of_output_holds_up_no_apply_and_does_not_grow_the_daemons_memory() {
    let daemon = Daemon::builder().start();
    let go = daemon.path().join("go");
    let script = format!(
        "while [ ! -e '{}' ]; do sleep 0.02; done; \
         yes 'a line of output from a chatty service, long enough to be counted' | head -n {BURST_LINES}; \
         echo flood-done; exec sleep 1000",
        go.display()
    );
    daemon.write("manifests/chatty.yaml", &service("chatty", &["sh", "-c", &script], ""));
    daemon.wait_until_ready("chatty");
    let before = peak_rss_kb(daemon.pid());

    std::fs::write(&go, "").unwrap();
    let flooding = Instant::now();
    daemon.write("manifests/late.yaml", &sleeper("late"));
    daemon.wait_until_ready("late");
    let took = flooding.elapsed();
    eventually_within(Duration::from_secs(60), "the flood is read", || {
        (last_line(&daemon, "chatty").as_deref() == Some("flood-done")).then_some(())
    });

    assert!(took < PROMPT, "the late Service took {took:?} to be Ready during the flood");
    let grown = peak_rss_kb(daemon.pid()).saturating_sub(before);
    assert!(grown < MEMORY_BOUND_KB, "the daemon's peak memory grew by {grown} kB reading the flood");
}

#[test]
fn each_output_line_is_logged_once_at_debug_level() {
    let daemon = Daemon::builder().process_env("RUST_LOG", "agentmesh=debug").start();
    // The lines are computed, so the command line (which the log may show)
    // does not contain them.
    let command = ["sh", "-c", "echo out-$((40 + 2))-line; echo err-$((40 + 2))-line >&2; exec sleep 1000"];
    daemon.write("manifests/echo.yaml", &service("echo", &command, ""));
    daemon.wait_until_ready("echo");
    let lines = ["out-42-line", "err-42-line"];
    eventually_within(Duration::from_secs(10), "both lines are logged", || {
        let log = daemon.log();
        lines.iter().all(|line| log.contains(line)).then_some(())
    });
    // Time for a second copy to arrive, if there were one.
    std::thread::sleep(Duration::from_millis(500));
    let log = daemon.log();
    for line in lines {
        assert_eq!(log.matches(line).count(), 1, "{line} is logged once:\n{log}");
    }
}
