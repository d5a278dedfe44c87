//! `meshctl doctor` on node-a of a two-node mesh on loopback (127.0.0.2 and
//! 127.0.0.3): node-a has a real Syncthing, and a Capability is placed on
//! node-b, whose endpoint is node-b's own `/mesh/health`. Healthy, doctor
//! passes; then a wrong Syncthing key, an invalid manifest and a stopped peer
//! are each named, and each makes it exit 1; so does node-a's own daemon stopped.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::support::{A, B, Daemon, IP_A, IP_B, eventually, free_port_on};
use crate::support::Run;
use crate::support::syncthing::Syncthing;

/// Every check makes at most two calls of 2 s each, concurrently with the others.
const DOCTOR_LIMIT: Duration = Duration::from_secs(8);

fn manifests(port_a: u16, port_b: u16, syncthing: &Syncthing) -> String {
    format!(
        "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata:\n  name: {A}\nspec:\n  role: primary\n  address: {IP_A}\n  \
         apiPort: {port_a}\n  syncthing:\n    apiUrl: {}\n    apiKey: {{env: SYNCTHING_API_KEY}}\n\
         ---\napiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata:\n  name: {B}\nspec:\n  role: satellite\n  \
         address: {IP_B}\n  apiPort: {port_b}\n\
         ---\napiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata:\n  name: echo\nspec:\n  provider: http\n  \
         placement:\n    prefer: [{B}]\n  endpoint:\n    port: {port_b}\n    path: /mesh/health\n",
        syncthing.api_url()
    )
}

/// `meshctl doctor -o json` on `daemon`'s node: the run, and each check's
/// `(name, status)`; the checks by name for their messages.
fn doctor(daemon: &Daemon) -> (Run, Vec<(String, String)>, Vec<Value>) {
    let started = Instant::now();
    let run = daemon.meshctl(&["doctor", "-o", "json"]);
    assert!(started.elapsed() < DOCTOR_LIMIT, "doctor took {:?}", started.elapsed());
    let checks: Vec<Value> = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run:?}"));
    let verdicts = checks
        .iter()
        .map(|c| (c["check"].as_str().unwrap().to_owned(), c["status"].as_str().unwrap().to_owned()))
        .collect();
    (run, verdicts, checks)
}

fn find<'a>(checks: &'a [Value], name: &str) -> &'a Value {
    checks.iter().find(|c| c["check"] == name).unwrap_or_else(|| panic!("no check {name} in {checks:?}"))
}

/// The verdicts with Tailscale's left out: pass where this machine runs it,
/// warn where it does not (it is not needed with plain addresses).
fn without_tailscale(verdicts: &[(String, String)]) -> Vec<(&str, &str)> {
    let tailscale = verdicts.iter().find(|(name, _)| name == "tailscale").expect("a tailscale check");
    assert!(matches!(tailscale.1.as_str(), "pass" | "warn"), "{verdicts:?}");
    verdicts.iter().filter(|(name, _)| name != "tailscale").map(|(n, s)| (n.as_str(), s.as_str())).collect()
}

#[test]
fn doctor_passes_a_healthy_mesh_and_names_a_wrong_key_an_invalid_manifest_and_a_stopped_peer() {
    let syncthing = Syncthing::start("doctor");
    let (port_a, port_b) = (free_port_on(IP_A), free_port_on(IP_B));
    let text = manifests(port_a, port_b, &syncthing);
    let mut a = Daemon::builder()
        .file("manifests/node.yaml", &text)
        .setting("SYNCTHING_API_KEY", syncthing.api_key())
        .at(A, IP_A, port_a)
        .start();
    let mut b = Daemon::builder().file("manifests/node.yaml", &text).at(B, IP_B, port_b).start();
    eventually("node-a places echo on node-b", || {
        let object = a.object("Capability", "echo")?;
        (object["details"]["servedBy"] == B).then_some(())
    });

    // Healthy: the test key is short, so `env` warns; nothing fails.
    let started = Instant::now();
    let (run, verdicts, checks) = doctor(&a);
    let healthy_took = started.elapsed();
    assert_eq!(run.code, 0, "{run:?}");
    let healthy = [
        ("env", "warn"),
        ("manifests", "pass"),
        ("node", "pass"),
        ("api-port", "pass"),
        ("daemon", "pass"),
        ("syncthing", "pass"),
        ("peer/node-b", "pass"),
        ("clock/node-b", "pass"),
        ("capability/echo", "pass"),
    ];
    assert_eq!(without_tailscale(&verdicts), healthy, "{run:?}");
    assert!(find(&checks, "api-port")["message"].as_str().unwrap().contains("served by this node's daemon"));
    assert!(find(&checks, "capability/echo")["message"].as_str().unwrap().contains("served by node-b"));
    let text_run = a.meshctl(&["doctor"]);
    assert_eq!(text_run.code, 0, "{text_run:?}");
    assert!(text_run.stdout.lines().any(|l| l.starts_with("pass  syncthing ")), "{text_run:?}");

    // A wrong Syncthing key in .env.
    let env_path = a.path().join(".env");
    let env = std::fs::read_to_string(&env_path).expect("read .env");
    let wrong = env.replace(&format!("SYNCTHING_API_KEY={}", syncthing.api_key()), "SYNCTHING_API_KEY=not-the-key");
    assert_ne!(wrong, env);
    a.write(".env", &wrong);
    let (run, verdicts, checks) = doctor(&a);
    assert_eq!(run.code, 1, "{run:?}");
    let expected: Vec<_> =
        healthy.iter().map(|&(name, status)| (name, if name == "syncthing" { "fail" } else { status })).collect();
    assert_eq!(without_tailscale(&verdicts), expected, "{run:?}");
    let check = find(&checks, "syncthing");
    assert!(check["message"].as_str().unwrap().contains("refused the API key"), "{check}");
    assert!(check["fix"].as_str().unwrap().starts_with("set SYNCTHING_API_KEY in .env to the key"), "{check}");
    a.write(".env", &env);

    // An invalid manifest: a misspelt field on line 7, so `spec:` (line 5)
    // lacks `address`: both said in one run.
    a.write(
        "manifests/broken.yaml",
        "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata:\n  name: node-c\nspec:\n  role: satellite\n  adress: x\n",
    );
    let (run, verdicts, checks) = doctor(&a);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(verdicts.contains(&("manifests".into(), "fail".into())), "{run:?}");
    let message = find(&checks, "manifests")["message"].as_str().unwrap().to_owned();
    assert!(message.starts_with("manifests: 2 errors: "), "{message}");
    assert!(
        message.contains("broken.yaml:7:") && message.contains("broken.yaml:5:1: Node/node-c: missing field"),
        "{message}"
    );
    assert_eq!(find(&checks, "syncthing")["status"], "pass");
    a.remove("manifests/broken.yaml");

    // node-b stopped: its line says so (a warning: a laptop sleeps), and the
    // capability it served fails.
    b.kill();
    let (run, verdicts, checks) = doctor(&a);
    assert_eq!(run.code, 1, "{run:?}");
    let peer = find(&checks, "peer/node-b");
    assert_eq!(peer["status"], "warn", "{run:?}");
    assert!(peer["message"].as_str().unwrap().starts_with("node-b does not answer"), "{peer}");
    assert_eq!(find(&checks, "capability/echo")["status"], "fail", "{run:?}");
    assert!(!verdicts.iter().any(|(name, _)| name == "clock/node-b"), "no clock without an answer: {verdicts:?}");
    assert_eq!(find(&checks, "syncthing")["status"], "pass");

    // node-a's own daemon stopped: its port is free, and the daemon check says how to start it.
    a.kill();
    let (run, _, checks) = doctor(&a);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(find(&checks, "api-port")["status"], "pass", "{run:?}");
    let daemon = find(&checks, "daemon");
    assert_eq!(daemon["status"], "fail", "{run:?}");
    assert_eq!(daemon["fix"], "start it: meshctl daemon or meshctl install-service");
    assert_eq!(find(&checks, "capability/echo")["status"], "warn", "cannot tell without the daemon: {run:?}");
    eprintln!("doctor on a healthy mesh took {healthy_took:?}");
}

#[test]
fn doctor_checks_git_only_when_the_git_source_is_set() {
    let workspace = crate::support::Workspace::new().file("manifests/node.yaml", &super::support::node());
    let git_check = |env: &[(&str, &str)]| {
        let run = workspace.run_with_env(&["doctor", "-o", "json"], env);
        let checks: Vec<Value> = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run:?}"));
        checks.into_iter().find(|check| check["check"] == "git")
    };
    let remote = ("MESH_GIT_REMOTE", "git@example.invalid:mesh.git");

    assert_eq!(git_check(&[]), None);
    let found = git_check(&[remote]).expect("a git check");
    assert_eq!(found["status"], "pass", "{found}");
    assert!(found["message"].as_str().unwrap().starts_with("git version 2."), "{found}");
    let missing = git_check(&[remote, ("PATH", "/nonexistent")]).expect("a git check");
    assert_eq!(missing["status"], "fail", "{missing}");
    assert!(missing["message"].as_str().unwrap().contains("git is not installed or not on PATH"), "{missing}");
    assert!(missing["fix"].as_str().unwrap().starts_with("install Git"), "{missing}");
}

#[test]
fn doctor_finds_each_services_program_on_the_service_managers_path_and_checks_any_syncthing_key() {
    use super::support::{NODE, node, service};
    let syncthing = Syncthing::start("doctor-key");
    let missing = "agentmesh-test-missing-program";
    let manifests = [
        node(),
        format!("---\n{}", service("llm", &[missing, "serve"], "")),
        format!("---\n{}", service("shell", &["sh", "-c", "true"], "")),
        format!("---\n{}", service("own", &["sh"], "  env:\n    PATH: /nonexistent\n")),
    ]
    .concat();
    let env = |key: &str| {
        format!(
            "AGENT_NODE_ID={NODE}\nMESH_LISTEN=127.0.0.1:{}\nSYNCTHING_API_KEY={key}\nSTGUIADDRESS={}\n",
            free_port_on(Ipv4Addr::LOCALHOST),
            syncthing.api_url()
        )
    };
    let doctor = |workspace: &crate::support::Workspace| {
        let run = workspace.run(&["doctor", "-o", "json"]);
        let checks: Vec<Value> = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run:?}"));
        assert_eq!(run.code, 1, "no daemon runs: {run:?}");
        checks
    };

    let workspace =
        crate::support::Workspace::new().file("manifests/all.yaml", &manifests).file(".env", &env("not-the-key"));
    let checks = doctor(&workspace);
    let llm = find(&checks, "service/llm");
    assert_eq!(llm["status"], "fail", "{llm}");
    let message = llm["message"].as_str().unwrap();
    let expected = format!("Service/llm: `{missing}` not found on the systemd unit's PATH (");
    assert!(message.starts_with(&expected), "{llm}");
    assert!(message.contains(":/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)"), "the unit's PATH is shown: {llm}");
    let shell = find(&checks, "service/shell");
    assert_eq!(shell["status"], "pass", "{shell}");
    assert!(shell["message"].as_str().unwrap().ends_with("/sh on the systemd unit's PATH"), "{shell}");
    let own = find(&checks, "service/own");
    assert_eq!(own["status"], "fail", "{own}");
    assert_eq!(own["message"], "Service/own: `sh` not found on its own PATH in spec.env (/nonexistent)");

    // No Node has spec.syncthing: the key set in .env is checked all the same.
    let check = find(&checks, "syncthing");
    assert_eq!(check["status"], "fail", "{check}");
    assert!(check["message"].as_str().unwrap().ends_with("refused the API key"), "{check}");
    assert!(check["fix"].as_str().unwrap().starts_with("set SYNCTHING_API_KEY in .env to the key"), "{check}");
    let workspace = workspace.file(".env", &env(syncthing.api_key()));
    let check = find(&doctor(&workspace), "syncthing").clone();
    assert_eq!(check["status"], "pass", "{check}");
}
