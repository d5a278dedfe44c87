//! The status page in a real browser (issue #21, point 5): Debian's chromium
//! driven by Playwright for Python (`tests/browser/test_page.py`) against two
//! real daemons, node-a and node-b, each with a real Syncthing sharing a
//! folder with a HandoffPolicy (the fixture of `sync.rs`) and a capability
//! node-b serves. The page lists both nodes and the placement; a handoff
//! started from the page completes; node-b stopped (SIGSTOP) shows as
//! unreachable within 5 s without a reload; no request URL the browser made
//! holds the key, and neither does either daemon's log, at debug level.
//! Screenshots of each state go to `target/browser/`. It needs
//! /usr/bin/chromium and Playwright in the CI venv (`.ci/run` installs both).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::support::{A, B, Daemon, Endpoint, IP_A, IP_B, kill, port_free_on_all};
use super::sync::{OBJECT, PATIENCE, Side, Syncthings};
use crate::support::wait::eventually_within;
use crate::support::{pytest_passed, venv_python};

const CHROMIUM: &str = "/usr/bin/chromium";
const CONVERSATION: &str = "c-1";
const CAPABILITY: &str = "llm";

/// A Service on node-b, and what it prints first: the page shows a peer's output.
const SERVICE: &str = "greeter";
const SERVICE_SAYS: &str = "hello from node-b";

/// A HandoffPolicy on the shared folder, `llm`, served by node-b, else node-a,
/// and the Service `greeter` on node-b.
fn manifests(endpoint_port: u16) -> String {
    format!(
        "apiVersion: agentmesh/v1alpha1\nkind: HandoffPolicy\nmetadata:\n  name: chats\nspec:\n  syncFolder: {OBJECT}\n  \
         sessionsDir: sessions\n---\napiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {{name: {CAPABILITY}}}\n\
         spec:\n  provider: http\n  placement: {{prefer: [{B}], fallback: [{A}]}}\n  endpoint: {{port: {endpoint_port}, path: /}}\n\
         ---\napiVersion: agentmesh/v1alpha1\nkind: Service\nmetadata: {{name: {SERVICE}}}\n\
         spec: {{nodes: [{B}], command: [sh, -c, 'echo {SERVICE_SAYS}; exec sleep 1000']}}\n"
    )
}

/// The CI venv's Python with Playwright (and pytest), once chromium is
/// there: like every test of real parts, it fails, never skips, without them.
fn browser_python() -> PathBuf {
    assert!(Path::new(CHROMIUM).exists(), "no {CHROMIUM}: install Debian's chromium package (.ci/run does)");
    venv_python("AGENTMESH_TEST_PYTHON", ".venv-ci", "playwright", "1.65.3")
}

/// Waits until `side` shows the conversation as `check` wants it.
fn wait_for_conversation(side: &Side, what: &str, check: impl Fn(&Value) -> bool) {
    eventually_within(PATIENCE, &format!("{} shows {CONVERSATION} {what}", side.name), || {
        side.daemon.api_get(&format!("/api/v1/sessions/{CONVERSATION}")).filter(|session| check(session))
    });
}

#[test]
fn the_page_in_a_real_browser_shows_the_mesh_hands_over_and_sees_a_peer_stop() {
    let python = browser_python();
    let endpoint_port = port_free_on_all(&[IP_A, IP_B]);
    let _endpoints = [Endpoint::start(IP_A, endpoint_port), Endpoint::start(IP_B, endpoint_port)];
    let pair = Syncthings::start().start_daemons_with_env(&manifests(endpoint_port), &[("RUST_LOG", "debug")]);
    pair.wait_until_ready();
    let conversation = pair.a.syncthing.data(OBJECT).join("sessions").join(CONVERSATION);
    std::fs::create_dir_all(&conversation).expect("make the conversation folder");
    std::fs::write(conversation.join("messages.jsonl"), "{\"role\":\"user\",\"content\":\"hello\"}\n").unwrap();
    for side in [&pair.a, &pair.b] {
        wait_for_conversation(side, "owned by node-a, in sync", |s| s["owner"] == A && s["inSync"] == true);
        eventually_within(PATIENCE, &format!("{} places {CAPABILITY} on {B}", side.name), || {
            let status = side.daemon.api_get("/api/v1/status")?;
            let objects = status["objects"].as_array()?.clone();
            objects.into_iter().find(|o| o["kind"] == "Capability" && o["details"]["servedBy"] == B)
        });
    }

    let screenshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser");
    std::fs::create_dir_all(&screenshots).expect("make target/browser");
    let url = |side: &Side| format!("http://{}/", side.api_address());
    let env = [
        ("AGENTMESH_TEST_PAGE_URL", url(&pair.a)),
        ("AGENTMESH_TEST_PEER_URL", url(&pair.b)),
        ("AGENTMESH_TEST_KEY", Daemon::KEY.to_owned()),
        ("AGENTMESH_TEST_NODE", A.to_owned()),
        ("AGENTMESH_TEST_PEER", B.to_owned()),
        ("AGENTMESH_TEST_PEER_PID", pair.b.daemon.pid().to_string()),
        ("AGENTMESH_TEST_CAPABILITY", CAPABILITY.to_owned()),
        ("AGENTMESH_TEST_PEER_SERVICE", SERVICE.to_owned()),
        ("AGENTMESH_TEST_PEER_SERVICE_SAYS", SERVICE_SAYS.to_owned()),
        ("AGENTMESH_TEST_CONVERSATION", CONVERSATION.to_owned()),
        ("AGENTMESH_TEST_CHROMIUM", CHROMIUM.to_owned()),
        ("AGENTMESH_TEST_SCREENSHOTS", screenshots.display().to_string()),
    ];
    let mut command = std::process::Command::new(&python);
    command
        .args(["-m", "pytest", "-p", "no:cacheprovider", "-q", "tests/browser/test_page.py"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .env("PYTHONDONTWRITEBYTECODE", "1");
    for (name, value) in &env {
        command.env(name, value);
    }
    let output = run_within(command, Duration::from_secs(120));
    // The browser stopped node-b; it may go on now, and stop as the test ends.
    kill(pair.b.daemon.pid(), libc::SIGCONT);
    let summary = pytest_passed(&output);
    assert!(summary.contains("5 passed"), "the browser tests ran: {summary}");

    // What the browser did, as the daemons saw it.
    wait_for_conversation(&pair.a, "owned by node-b at epoch 2", |s| s["owner"] == B && s["epoch"] == 2);
    for side in [&pair.a, &pair.b] {
        let log = side.daemon.log();
        assert!(log.contains("DEBUG"), "{} logs at debug level", side.name);
        assert!(!log.contains(Daemon::KEY), "the key is in {}'s log", side.name);
    }
}

/// Runs `command` to its end; fails past `limit`.
fn run_within(mut command: std::process::Command, limit: Duration) -> std::process::Output {
    let child =
        command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("python runs");
    let id = child.id();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    match receiver.recv_timeout(limit) {
        Ok(output) => output.expect("python's output"),
        Err(_) => {
            kill(id, libc::SIGKILL);
            panic!("the browser tests did not end within {limit:?}");
        }
    }
}
