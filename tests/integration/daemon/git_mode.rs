//! Git mode on real daemons, a bare remote and the user's checkout: `apply`
//! refuses a folder unless forced and the next commit replaces a forced one,
//! `diff` plans against the commit the node follows, `status` shows each
//! node's source (on the other node too, and a fetch error), and a `git push`
//! from a node's own checkout reaches both nodes long before the interval.

use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::support::{A, B, Daemon, eventually, free_port_on, node, node_in_status, sleeper, two_nodes};
use crate::support::GitRemote;

const IP_A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);
const IP_B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 5);

/// `GET /mesh/health` as anyone may ask it: without the key.
fn health_without_key(daemon: &Daemon) -> Value {
    let mut stream = std::net::TcpStream::connect(daemon.api()).expect("connect");
    write!(stream, "GET /mesh/health HTTP/1.0\r\nHost: {}\r\n\r\n", daemon.api()).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let (_, body) = answer.split_once("\r\n\r\n").expect("a body");
    serde_json::from_str(body).expect("JSON")
}

/// `POST /api/v1/apply` of an empty bundle with the key, as an older
/// `meshctl` or a script sends it (with `X-Mesh-Force` when `forced`): the
/// status code and the JSON answer.
fn post_apply(daemon: &Daemon, forced: bool) -> (u16, Value) {
    let body = r#"{"revision":"r1","files":[]}"#;
    let force = if forced { "X-Mesh-Force: 1\r\n" } else { "" };
    let mut stream = std::net::TcpStream::connect(daemon.api()).expect("connect");
    write!(
        stream,
        "POST /api/v1/apply HTTP/1.0\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n{force}\r\n{body}",
        daemon.api(),
        Daemon::KEY,
        body.len()
    )
    .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a body");
    let status = head.split_whitespace().nth(1).and_then(|code| code.parse().ok()).expect("a status code");
    (status, serde_json::from_str(body).expect("JSON"))
}

#[test]
fn apply_is_refused_in_git_mode_and_a_forced_folder_runs_until_the_next_commit() {
    let repo = GitRemote::new();
    let remote = repo.remote.display().to_string();
    repo.push("manifests/pushed.yaml", &sleeper("pushed"));
    let first = repo.push("manifests/node.yaml", &node());
    // The folder here holds stale starter files, as in the issue.
    let daemon = Daemon::builder().file("manifests/local.yaml", &sleeper("local")).git(&remote, "1s").start();
    daemon.wait_for_revision(&first);
    daemon.wait_until_ready("pushed");

    let refused = daemon.meshctl(&["apply"]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.starts_with(&format!("this node follows {remote}@main (MESH_GIT_REMOTE)")), "{refused:?}");
    assert!(refused.stderr.contains("`git push`"), "{refused:?}");
    assert!(
        refused.stderr.contains("`meshctl apply --force` applies the folder anyway, until the next commit"),
        "{refused:?}"
    );
    assert_eq!(daemon.revision().as_deref(), Some(first.as_str()));
    assert_eq!(daemon.object("Service", "local"), None);
    // The daemon refuses too, whoever sends the bundle, unless it is forced.
    let (status, answer) = post_apply(&daemon, false);
    assert_eq!((status, &answer["error"]), (409, &Value::from("follows_git")), "{answer}");
    assert!(answer["message"].as_str().unwrap().starts_with(&format!("this node follows {remote}@main")), "{answer}");
    let (status, answer) = post_apply(&daemon, true);
    assert_eq!((status, &answer["error"]), (422, &Value::from("invalid")), "forced, the bundle is checked: {answer}");

    // What pushing the folder would change, against the followed commit.
    let diff = daemon.meshctl(&["diff"]);
    assert_eq!(diff.code, 1, "pushing it would change something: {diff:?}");
    assert!(diff.stdout.contains(&format!("against what each node follows (git {remote}@main)")), "{diff:?}");
    assert!(diff.stdout.contains(&format!("Plan for node test-node ({first} -> local-")), "{diff:?}");
    assert!(diff.stdout.contains("  + Service/local") && diff.stdout.contains("  - Service/pushed"), "{diff:?}");

    let forced = daemon.meshctl(&["apply", "--force"]);
    assert_eq!(forced.code, 0, "{forced:?}");
    assert!(forced.stdout.contains("this folder runs until the next new commit"), "{forced:?}");
    let local = daemon.revision().expect("a revision");
    assert!(local.starts_with("local-"), "{local}");
    daemon.wait_until_ready("local");
    // The Git source fetches every second; the same commit does not undo the folder.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(daemon.revision().as_deref(), Some(local.as_str()));
    // Still planned against the followed commit, not the forced folder.
    let diff = daemon.meshctl(&["diff"]);
    assert!(diff.stdout.contains(&format!("Plan for node test-node ({first} -> {local})")), "{diff:?}");

    let second = repo.push("manifests/pushed.yaml", &sleeper("pushed-again"));
    daemon.wait_for_revision(&second);
    daemon.wait_until_ready("pushed-again");
    eventually("the forced folder's Service is gone", || daemon.object("Service", "local").is_none().then_some(()));
}

#[test]
fn status_shows_each_nodes_source_on_both_nodes_and_a_fetch_error() {
    let repo = GitRemote::new();
    let remote = repo.remote.display().to_string();
    let (port_a, port_b) = (free_port_on(IP_A), free_port_on(IP_B));
    let mesh = two_nodes((A, IP_A, port_a), (B, IP_B, port_b));
    let first = repo.push("manifests/node.yaml", &mesh);
    let a = Daemon::builder().at(A, IP_A, port_a).git(&remote, "1s").start();
    let mut b = Daemon::builder().file("manifests/node.yaml", &mesh).at(B, IP_B, port_b).start();
    a.wait_for_revision(&first);
    a.wait_until_sees_online(B);
    b.wait_until_sees_online(A);

    let source = node_in_status(&b, A)["source"].clone();
    assert_eq!(source["type"], "git", "{source}");
    assert_eq!(source["remote"], remote.as_str());
    assert_eq!(source["branch"], "main");
    assert_eq!(source["path"], "manifests");
    assert_eq!(source["revision"], first.as_str());
    assert!(source["lastFetched"].as_str().is_some_and(|at| at.ends_with('Z')), "{source}");
    assert_eq!(source["lastFetchError"], Value::Null);
    let folder = node_in_status(&a, B)["source"].clone();
    assert_eq!(folder["type"], "folder", "{folder}");
    assert_eq!(folder["path"], b.path().join("manifests").display().to_string());
    assert!(folder["revision"].as_str().is_some_and(|r| r.starts_with("local-")), "{folder}");
    let table = a.meshctl(&["status"]);
    assert!(table.stdout.contains(&format!("  source: git {remote}@main (at {}", &first[..12])), "{table:?}");
    // Health tells the source to the mesh (callers with the key) only.
    assert_eq!(a.api_get("/mesh/health").expect("health")["source"]["type"], "git");
    let open = health_without_key(&a);
    assert!(open["revision"].is_string() && open.get("source").is_none(), "{open}");

    // The remote goes away: a fetch error, not a rejected snapshot.
    std::fs::rename(&repo.remote, repo.remote.with_extension("moved")).expect("move the remote away");
    let failing = eventually("node-b shows node-a's fetch error", || {
        let node = node_in_status(&b, A);
        node["source"]["lastFetchError"].is_string().then_some(node)
    });
    let error = failing["source"]["lastFetchError"].as_str().expect("an error");
    assert!(error.contains("does not appear to be a git repository"), "{error}");
    assert_eq!(failing["source"]["revision"], first.as_str());
    assert_eq!(failing["lastError"], Value::Null, "lastError is a rejected snapshot only");
    let table = a.meshctl(&["status"]);
    assert!(table.stdout.contains("  last fetch failed: cannot fetch: "), "{table:?}");

    // Offline, node-b is shown with the source it last told node-a.
    b.kill();
    a.wait_until_sees_offline(B);
    let last_known = node_in_status(&a, B);
    assert_eq!(last_known["online"], false);
    assert_eq!(last_known["source"]["type"], "folder", "{last_known}");
}

#[test]
fn a_push_from_the_nodes_checkout_reaches_both_nodes_long_before_the_interval() {
    let repo = GitRemote::new();
    let remote = repo.remote.display().to_string();
    let (port_a, port_b) = (free_port_on(IP_A), free_port_on(IP_B));
    let mesh = two_nodes((A, IP_A, port_a), (B, IP_B, port_b));
    let first = repo.push("manifests/node.yaml", &mesh);
    // Node-a's manifests folder is in the user's checkout; node-b's is not.
    let a = Daemon::builder()
        .at(A, IP_A, port_a)
        .git(&remote, "60s")
        .setting("MESH_MANIFESTS", &repo.work.join("manifests").display().to_string())
        .start();
    let b = Daemon::builder().at(B, IP_B, port_b).git(&remote, "60s").start();
    a.wait_for_revision(&first);
    b.wait_for_revision(&first);
    a.wait_until_sees_online(B);
    assert!(a.log().contains("a git push from this checkout is fetched at once"), "{}", a.log());

    let pushed = Instant::now();
    let second = repo.push("manifests/node.yaml", &format!("{mesh}# a new commit\n"));
    a.wait_for_revision(&second);
    b.wait_for_revision(&second);
    let took = pushed.elapsed();
    assert!(took < Duration::from_secs(10), "the push reached both nodes after {took:?}; their interval is 60 s");
}

/// `doctor -o json`'s check named `name`.
fn doctor_check(checks: &str, name: &str) -> Value {
    let checks: Vec<Value> = serde_json::from_str(checks).unwrap_or_else(|e| panic!("{e}: {checks}"));
    checks.into_iter().find(|check| check["check"] == name).unwrap_or_else(|| panic!("no {name} check"))
}

#[test]
fn doctor_checks_the_followed_commit_the_remote_and_whether_the_local_folder_differs() {
    let repo = GitRemote::new();
    let remote = repo.remote.display().to_string();
    let first = repo.push("manifests/node.yaml", &node());
    let daemon = Daemon::builder().file("manifests/local.yaml", &sleeper("local")).git(&remote, "60s").start();
    daemon.wait_for_revision(&first);
    let followed = format!("git {remote}@main at {}", &first[..12]);

    let run = daemon.meshctl(&["doctor", "-o", "json"]);
    let manifests = doctor_check(&run.stdout, "manifests");
    assert_eq!(manifests["status"], "pass", "{manifests}");
    assert_eq!(
        manifests["message"],
        format!("{followed}: 1 object in 1 file are valid"),
        "the followed set, not the folder"
    );
    let remote_check = doctor_check(&run.stdout, "git-remote");
    assert_eq!(remote_check["status"], "pass", "{remote_check}");
    assert_eq!(remote_check["message"], format!("git {remote}@main answers, at {}", &first[..12]));
    let local = doctor_check(&run.stdout, "local-folder");
    assert_eq!(local["status"], "warn", "{local}");
    assert_eq!(
        local["message"],
        format!("manifests differs from what the daemon follows ({followed}): it adds local.yaml")
    );

    daemon.remove("manifests/local.yaml");
    let run = daemon.meshctl(&["doctor", "-o", "json"]);
    let local = doctor_check(&run.stdout, "local-folder");
    assert_eq!(local["status"], "pass", "{local}");

    // No such branch, no such remote: each a fail with its fix.
    let workspace = crate::support::Workspace::new().file("manifests/node.yaml", &node());
    let state = workspace.path().join("state").display().to_string();
    let missing = "/nonexistent/mesh.git";
    let cases = [
        (remote.as_str(), "release", format!("{remote} has no branch release"), "push it"),
        (missing, "main", format!("cannot reach {missing}: "), "check MESH_GIT_REMOTE"),
    ];
    for (url, branch, message, fix) in cases {
        let settings = [("MESH_GIT_REMOTE", url), ("MESH_GIT_BRANCH", branch), ("MESH_STATE_DIR", state.as_str())];
        let run = workspace.run_with_env(&["doctor", "-o", "json"], &settings);
        assert_eq!(run.code, 1, "{run:?}");
        let check = doctor_check(&run.stdout, "git-remote");
        assert_eq!(check["status"], "fail", "{check}");
        assert!(check["message"].as_str().unwrap().starts_with(&message), "{check}");
        assert!(check["fix"].as_str().unwrap().starts_with(fix), "{check}");
    }
}
