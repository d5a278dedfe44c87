//! `meshctl version` against a real daemon, and with the daemon down (the
//! client's part printed, exit 1, as `kubectl version`).

use serde_json::Value;

use super::support::{Daemon, NODE};

#[test]
fn version_prints_the_client_and_the_daemon_and_exits_1_once_the_daemon_is_down() {
    let mut daemon = Daemon::builder().start();
    // What build.rs recorded for this build, binary and tests alike: the
    // checkout's HEAD when it was built, whatever HEAD is now.
    let (version, commit) = (env!("CARGO_PKG_VERSION"), env!("AGENTMESH_COMMIT"));
    let health = daemon.api_get("/mesh/health").expect("the health answer");
    assert_eq!(health["commit"], commit, "{health}");

    let run = daemon.meshctl(&["version"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        format!(
            "Client Version: {version} (commit {commit})\nDaemon Version: {version} (commit {commit}) on node {NODE}\n"
        )
    );

    let run = daemon.meshctl(&["version", "-o", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let json: Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(
        json,
        serde_json::json!({
            "client": {"version": version, "commit": commit},
            "daemon": {"node": NODE, "version": version, "commit": commit},
        })
    );

    daemon.kill();
    let run = daemon.meshctl(&["version"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.stdout, format!("Client Version: {version} (commit {commit})\n"));
    assert!(run.stderr.contains("error: "), "{run:?}");

    let run = daemon.meshctl(&["version", "-o", "json"]);
    assert_eq!(run.code, 1, "{run:?}");
    let json: Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(json["client"], serde_json::json!({"version": version, "commit": commit}));
    assert_eq!(json["daemon"], Value::Null);
    assert!(json["error"].as_str().is_some_and(|error| !error.is_empty()), "{json}");

    let run = daemon.meshctl(&["version", "--client"]);
    assert_eq!(run.code, 0, "--client asks no daemon: {run:?}");
    assert_eq!(run.stdout, format!("Client Version: {version} (commit {commit})\n"));

    let run = daemon.meshctl(&["--version"]);
    assert_eq!((run.code, run.stdout), (0, format!("meshctl {version} (commit {commit})\n")));
}
