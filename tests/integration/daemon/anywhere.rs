//! `meshctl` from anywhere (#17, point 2): the `.env` of the nearest folder
//! up, else the node folder named in the context file `init` writes; relative
//! paths from the `.env`'s folder; errors that say which `.env` was used; and
//! `--on NODE`, which asks a peer's daemon at the address the local peer table
//! gives.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::support::{Daemon, NODE, laptop_and_mini, node};
use crate::support::Run;

/// The workspace as the binary sees it (the temp folder may be a symlink).
fn real(path: &Path) -> PathBuf {
    path.canonicalize().expect("the folder exists")
}

/// The name of the node whose status `meshctl status -o json` lists first:
/// the daemon that answered.
fn answering_node(run: &Run) -> String {
    assert_eq!(run.code, 0, "{run:?}");
    let status: Value = serde_json::from_str(&run.stdout).expect("status -o json is JSON");
    status["nodes"][0]["name"].as_str().expect("a node name").to_owned()
}

#[test]
fn meshctl_finds_the_node_from_a_subfolder_and_from_anywhere_through_the_context_file() {
    let mut daemon = Daemon::builder()
        .file("conf/manifests/node.yaml", &node())
        .setting("MESH_MANIFESTS", "conf/manifests")
        .setting("AGENT_ROLE", "primary")
        .start();
    let workspace = real(daemon.path());
    let subfolder = workspace.join("notes/deeper");
    std::fs::create_dir_all(&subfolder).expect("create the subfolder");
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let config = tempfile::tempdir().expect("temp dir");
    let config_home = config.path().to_str().expect("UTF-8 path");
    let context = real(config.path()).join("agentmesh/context");
    let with_config = [("XDG_CONFIG_HOME", config_home)];

    // From a subfolder: the workspace's .env, and MESH_MANIFESTS from its folder.
    assert_eq!(answering_node(&daemon.meshctl_from(&subfolder, &[], &["status", "-o", "json"])), NODE);
    let validate = daemon.meshctl_from(&subfolder, &[], &["validate"]);
    assert_eq!(validate.code, 0, "{validate:?}");
    assert!(validate.stdout.starts_with("../../conf/manifests: 1 object"), "{validate:?}");
    let diff = daemon.meshctl_from(&subfolder, &[], &["diff"]);
    assert_eq!(diff.code, 0, "the folder the daemon follows, read from a subfolder: {diff:?}");

    // From an unrelated folder, before `init` wrote the context file: nothing found, and said so.
    let dead_port = [("XDG_CONFIG_HOME", config_home), ("MESH_LISTEN", "127.0.0.1:1")];
    let lost = daemon.meshctl_from(elsewhere.path(), &dead_port, &["status"]);
    assert_eq!(lost.code, 1, "{lost:?}");
    let expected = format!(
        "no .env found: none in {} or any folder above it, and no context file at {}",
        real(elsewhere.path()).display(),
        context.display()
    );
    assert!(lost.stderr.contains("cannot reach the controller") && lost.stderr.contains(&expected), "{lost:?}");

    // `init` in the node folder names it in the context file; then any folder works.
    let init = daemon.meshctl_from(&workspace, &with_config, &["init"]);
    assert_eq!(init.code, 0, "{init:?}");
    assert!(init.stdout.contains(&format!("wrote {}", context.display())), "{init:?}");
    let named = std::fs::read_to_string(&context).expect("init wrote the context file");
    assert_eq!(named, format!("{}\n", workspace.display()));
    assert_eq!(answering_node(&daemon.meshctl_from(elsewhere.path(), &with_config, &["status", "-o", "json"])), NODE);

    // With the daemon down, the error names the .env that gave its address.
    daemon.kill();
    let down = daemon.meshctl_from(&subfolder, &[], &["status"]);
    assert_eq!(down.code, 1, "{down:?}");
    let nearby = "settings from ../../.env, the nearest .env from the current folder up";
    assert!(down.stderr.contains("cannot reach the controller") && down.stderr.contains(nearby), "{down:?}");
    let down = daemon.meshctl_from(elsewhere.path(), &with_config, &["sessions"]);
    assert_eq!(down.code, 1, "{down:?}");
    let through_context = format!(
        "settings from {}, in the node folder named in {}",
        workspace.join(".env").display(),
        context.display()
    );
    assert!(down.stderr.contains(&through_context), "{down:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn on_node_asks_the_peers_daemon_at_the_address_the_local_peer_table_gives() {
    let (laptop, mini) = laptop_and_mini("").await;
    laptop.sees_online("mini").await;

    assert_eq!(answering_node(&laptop.meshctl(&["status", "-o", "json"])), "laptop");
    assert_eq!(answering_node(&laptop.meshctl(&["status", "-o", "json", "--on", "mini"])), "mini");
    assert_eq!(answering_node(&mini.meshctl(&["status", "-o", "json", "--on", "laptop"])), "laptop");
    assert_eq!(answering_node(&laptop.meshctl(&["status", "-o", "json", "--on", "laptop"])), "laptop");

    let described = laptop.meshctl(&["describe", "Node", "mini", "--on", "mini"]);
    assert_eq!(described.code, 0, "{described:?}");
    let sessions = laptop.meshctl(&["sessions", "-o", "json", "--on", "mini"]);
    assert_eq!((sessions.code, sessions.stdout.trim()), (0, "[]"), "{sessions:?}");

    let unknown = laptop.meshctl(&["status", "--on", "minni"]);
    assert_eq!(unknown.code, 1, "{unknown:?}");
    assert!(unknown.stderr.contains("known nodes: laptop (this node), mini; did you mean \"mini\"?"), "{unknown:?}");
}
