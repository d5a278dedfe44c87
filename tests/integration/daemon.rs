//! `meshctl daemon` end to end: the real binary on real files, a real Git
//! remote and real child processes, driven and read through the real CLI and
//! API. Each test runs its own daemon (workspace, port, state folder), so they
//! run in parallel. Linux only: they read `/proc`.
#![cfg(target_os = "linux")]

mod agreement;
mod anywhere;
mod bad_requests;
mod browser;
mod capability;
mod doctor;
mod events;
mod files;
mod get;
mod git_mode;
mod goodbye;
mod idle_connections;
mod join;
mod logind;
mod loopback;
mod mesh_status;
mod metrics;
mod model_pulls;
mod output;
mod output_burst;
mod page;
mod partition;
mod peers;
mod schemathesis;
mod service;
mod sessions;
mod settle;
mod state_folder;
mod sync;
mod tailnet;
mod unreachable;
mod version;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::Value;

/// What the daemon tests reach as `super::support`.
use crate::support::daemon as support;
use crate::support::daemon::{
    Daemon, Marker, NODE, detail, eventually, free_port, http_get, is_dead, kill, object_in, python, service, sleeper,
    web,
};
use crate::support::sshd::Sshd;
use crate::support::{GitRemote, git};

/// How soon the children of a daemon killed with SIGKILL must be dead.
const ORPHAN_LIMIT: Duration = Duration::from_secs(2);

/// A Python program that runs until stopped.
const SLEEP: &str = "import time; time.sleep(1000)";

/// A Service whose process carries `marker`, to be counted wherever it runs.
fn marked(name: &str, marker: &Marker) -> String {
    service(name, &[python(), "-c", SLEEP, marker.as_str()], "")
}

/// The `(status, reason)` of one condition of an object.
fn condition(object: &Value, kind: &str) -> (String, String) {
    let conditions = object["conditions"].as_array().expect("conditions");
    let found = conditions.iter().find(|c| c["type"] == kind).unwrap_or_else(|| panic!("{kind} in {object}"));
    (found["status"].as_str().unwrap().to_owned(), found["reason"].as_str().unwrap().to_owned())
}

fn keys(value: &Value) -> BTreeSet<&str> {
    value.as_object().expect("an object").keys().map(String::as_str).collect()
}

// --- Services follow the manifests -------------------------------------------------

#[test]
fn an_edit_that_adds_a_service_starts_it_and_it_becomes_ready() {
    let daemon = Daemon::builder().start();
    let before = eventually("the first revision is applied", || daemon.revision());
    assert_eq!(daemon.object("Service", "web"), None);

    let port = free_port();
    daemon.write("manifests/web.yaml", &web("web", port));
    let pid = daemon.wait_until_ready("web");

    assert_eq!(http_get(port, "/"), Some(200), "the server answers its health check");
    assert!(!is_dead(pid));
    let object = daemon.object("Service", "web").unwrap();
    assert_eq!(condition(&object, "Ready"), ("True".into(), "Running".into()));
    assert_eq!(condition(&object, "Degraded"), ("False".into(), "AsExpected".into()));
    assert_ne!(daemon.revision(), Some(before), "the edit is a new revision");
}

#[test]
fn a_crashed_service_is_restarted_with_a_new_pid_and_becomes_ready_again() {
    let port = free_port();
    let daemon = Daemon::builder().file("manifests/web.yaml", &web("web", port)).start();
    daemon.wait_until_ready("web");
    let described = daemon.meshctl(&["describe", "service", "web"]);
    assert_eq!(described.code, 0, "{described:?}");
    let pid: u32 = described
        .stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("pid: "))
        .unwrap_or_else(|| panic!("describe shows the pid: {described:?}"))
        .parse()
        .unwrap();

    kill(pid, libc::SIGKILL);
    let restarted = daemon.wait_for_service("web runs again under a new pid and is Ready", "web", |object| {
        object["ready"] == true
            && detail(object, "pid").is_some_and(|new| new != pid)
            && detail(object, "restarts").is_some_and(|restarts| restarts >= 1)
    });

    assert!(is_dead(pid));
    assert!(!is_dead(restarted));
    assert_eq!(http_get(port, "/"), Some(200));
    let object = daemon.object("Service", "web").unwrap();
    assert_eq!(object["details"]["lastExit"], "killed by signal 9");
}

#[test]
fn a_service_whose_program_is_missing_says_it_is_not_found_on_path() {
    let program = "agentmesh-test-missing-program";
    let daemon = Daemon::builder().file("manifests/llm.yaml", &service("llm", &[program, "serve"], "")).start();

    let expected = format!("`{program}` not found on PATH (");
    let object = eventually("llm says its program is missing", || {
        let object = daemon.object("Service", "llm")?;
        object.to_string().contains(&expected).then_some(object)
    });
    assert!(!object.to_string().contains("os error"), "{object}");
    let last_exit = object["details"]["lastExit"].as_str().expect("lastExit");
    assert!(last_exit.starts_with(&format!("cannot start: {expected}")), "{object}");
    let degraded = object["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Degraded").unwrap();
    assert_eq!(degraded["status"], "True", "{object}");
    assert!(degraded["message"].as_str().unwrap().starts_with(&format!("cannot start: {expected}")), "{object}");
    let described = daemon.meshctl(&["describe", "service", "llm"]);
    assert!(described.stdout.contains(&expected), "{described:?}");
    assert!(!described.stdout.contains("os error"), "{described:?}");
}

#[test]
fn a_service_whose_port_a_stranger_holds_is_degraded_port_in_use_and_backs_off_to_its_max() {
    let port = free_port();
    let mut stranger = std::process::Command::new(python())
        .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the stranger starts");
    eventually("the stranger listens", || (http_get(port, "/") == Some(200)).then_some(()));
    // The Service binds the same port, so it exits at once; its probe is
    // answered by the stranger. Backoff: 100 ms doubling to 1 s.
    let daemon = Daemon::builder().file("manifests/web.yaml", &web("web", port)).start();

    let object = eventually("web is Degraded with PortInUse", || {
        daemon.object("Service", "web").filter(|object| condition(object, "Degraded").1 == "PortInUse")
    });
    assert_eq!(object["details"]["portInUse"], port.to_string());
    let message = object["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Degraded").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains(&format!("port {port} is held by a process this controller did not start")), "{message}");
    // Once the delay has doubled up to its max (0.1 + 0.2 + 0.4 + 0.8 s), a
    // start at most every second or so; a reset backoff would start it every
    // ~0.1 s plus Python's start-up.
    std::thread::sleep(Duration::from_secs(2));
    let restarts = |daemon: &Daemon| detail(&daemon.object("Service", "web").unwrap(), "restarts").unwrap();
    let before = restarts(&daemon);
    std::thread::sleep(Duration::from_secs(4));
    let during = restarts(&daemon) - before;
    assert!(during <= 6, "{during} restarts in 4 s: the backoff was not kept");

    stranger.kill().expect("stop the stranger");
    stranger.wait().expect("reap the stranger");
    let object = eventually("web runs once the port is free", || {
        daemon.object("Service", "web").filter(|object| object["ready"] == true)
    });
    assert_eq!(condition(&object, "Degraded"), ("False".into(), "AsExpected".into()));
    assert!(object["details"].get("portInUse").is_none(), "{object}");
}

#[test]
fn a_bad_edit_leaves_the_running_process_alone_and_shows_the_error_until_it_is_fixed() {
    let good = sleeper("worker");
    let daemon = Daemon::builder().file("manifests/worker.yaml", &good).start();
    let pid = daemon.wait_until_ready("worker");
    let revision = daemon.revision().unwrap();
    let rejected = |what: &str| {
        eventually(&format!("lastError reports {what}"), || {
            let status = daemon.status();
            let error = status["lastError"].as_str().filter(|error| error.contains(what))?.to_owned();
            Some((error, status))
        })
    };
    let assert_untouched = |status: &Value| {
        assert_eq!(status["revision"], revision.as_str(), "the old revision stays applied");
        let worker = object_in(status, "Service", "worker").expect("worker is still listed");
        assert_eq!((worker["ready"].clone(), detail(&worker, "pid")), (Value::Bool(true), Some(pid)));
        assert!(!is_dead(pid));
    };

    // Line 8 of the file, after the spec's `command`.
    daemon.write("manifests/worker.yaml", &format!("{good}  restartt: always\n"));
    let (error, status) = rejected("unknown field");
    assert!(
        error.starts_with("manifests/worker.yaml:8:3: Service/worker: unknown field `restartt`, expected one of "),
        "{error}"
    );
    assert_untouched(&status);
    let table = daemon.meshctl(&["status"]);
    assert!(table.stdout.contains("  last snapshot rejected (the previous revision keeps running):\n"), "{table:?}");
    assert!(table.stdout.contains("    manifests/worker.yaml:8:3: Service/worker: unknown field"), "{table:?}");

    daemon.write("manifests/worker.yaml", &good.replace(&format!("[{NODE}]"), "[test-nod]"));
    let (error, status) = rejected("unknown node");
    assert_eq!(error, "manifests/worker.yaml:6:11: Service/worker: nodes names unknown node \"test-nod\"");
    assert_untouched(&status);

    // Undoing the edit brings back the applied content, and clears the error.
    daemon.write("manifests/worker.yaml", &good);
    let status = eventually("lastError is cleared", || Some(daemon.status()).filter(|s| s["lastError"].is_null()));
    assert_untouched(&status);
}

#[test]
fn removing_the_manifest_stops_the_process() {
    let daemon = Daemon::builder().file("manifests/worker.yaml", &sleeper("worker")).start();
    let pid = daemon.wait_until_ready("worker");

    daemon.remove("manifests/worker.yaml");
    eventually("the worker process ended", || is_dead(pid).then_some(()));
    eventually("the status no longer lists the worker", || daemon.object("Service", "worker").is_none().then_some(()));
}

// --- the daemon's own life -----------------------------------------------------------

#[test]
fn sigterm_stops_the_services_and_the_daemon_exits_0() {
    let port = free_port();
    let mut daemon = Daemon::builder()
        .file("manifests/worker.yaml", &sleeper("worker"))
        .file("manifests/web.yaml", &web("web", port))
        .start();
    let pids = [daemon.wait_until_ready("worker"), daemon.wait_until_ready("web")];

    daemon.signal(libc::SIGTERM);
    let exit = daemon.wait_for_exit();

    assert_eq!(exit.code(), Some(0), "{exit}");
    for pid in pids {
        assert!(is_dead(pid), "process {pid} outlived the daemon");
    }
    assert_eq!(http_get(port, "/"), None);
}

#[test]
fn sigkill_of_the_daemon_leaves_no_orphan() {
    let mut daemon = Daemon::builder().file("manifests/worker.yaml", &sleeper("worker")).start();
    let pid = daemon.wait_until_ready("worker");

    daemon.signal(libc::SIGKILL);
    let killed = Instant::now();
    daemon.wait_for_exit();
    eventually("the worker died with the daemon", || is_dead(pid).then_some(()));
    assert!(killed.elapsed() < ORPHAN_LIMIT, "the worker outlived the daemon by {:?}", killed.elapsed());
}

/// The parent-death signal reaches only the process the daemon spawned: a
/// process *it* started survives a SIGKILL of the daemon, and the next daemon on
/// the same state folder must stop it before starting the Service again.
#[test]
fn a_daemon_restarted_after_sigkill_stops_what_the_killed_one_left_and_starts_no_duplicate() {
    let marker = Marker::new("keeper");
    let script = format!("{} -c '{SLEEP}' {} & wait", python(), marker.as_str());
    let mut daemon =
        Daemon::builder().file("manifests/keeper.yaml", &service("keeper", &["sh", "-c", &script], "")).start();
    let leader = daemon.wait_until_ready("keeper");
    let grandchild = eventually("the marked process runs", || marker.processes().pop());

    daemon.signal(libc::SIGKILL);
    daemon.wait_for_exit();
    eventually("the leader died with the daemon", || is_dead(leader).then_some(()));
    assert_eq!(marker.processes(), [grandchild], "left behind until the next daemon");

    daemon.restart();
    let new_leader = daemon.wait_until_ready("keeper");
    let running = eventually("the restarted Service's marked process runs", || {
        Some(marker.processes()).filter(|pids| pids.iter().any(|pid| *pid != grandchild))
    });

    assert_ne!(new_leader, leader);
    assert!(is_dead(grandchild), "the leftover was stopped");
    assert_eq!(running.len(), 1, "exactly one marked process: {running:?}");
}

// --- sources -------------------------------------------------------------------------

#[test]
fn a_commit_pushed_to_the_git_remote_is_applied_within_the_interval() {
    let interval = Duration::from_secs(1);
    let repo = GitRemote::new();
    let push = |path: &str, text: &str| repo.push(path, text);
    let first = push("manifests/node.yaml", &support::node());

    // The workspace's own manifests folder is not read when a Git remote is set.
    let daemon = Daemon::builder()
        .file("manifests/worker.yaml", &sleeper("unread"))
        .git(&format!("file://{}", repo.remote.display()), "1s")
        .start();
    daemon.wait_for_revision(&first);
    assert_eq!(daemon.object("Service", "unread"), None);

    let second = push("manifests/worker.yaml", &sleeper("worker"));
    let pushed = Instant::now();
    daemon.wait_for_revision(&second);
    let took = pushed.elapsed();
    daemon.wait_until_ready("worker");

    // The next fetch is at most one interval away; the rest is reading the
    // status through the CLI on a busy machine.
    assert!(took < interval + Duration::from_secs(2), "applied {took:?} after the push");
    assert_eq!(second.len(), 40);
}

#[test]
fn a_remote_behind_a_host_alias_of_the_users_ssh_config_is_followed() {
    let sshd = Sshd::start();
    let repo = GitRemote::new();
    let first = repo.push("manifests/node.yaml", &support::node());

    // As a user sets it: their own ssh command, their own config file; the Git
    // URL names only the alias.
    let daemon = Daemon::builder()
        .git(&format!("{}:{}", Sshd::ALIAS, repo.remote.display()), "1s")
        .process_env("GIT_SSH_COMMAND", &format!("ssh -F {}", sshd.ssh_config().display()))
        .start();
    daemon.wait_for_revision(&first);

    let second = repo.push("manifests/worker.yaml", &sleeper("worker"));
    daemon.wait_for_revision(&second);
    daemon.wait_until_ready("worker");
}

#[test]
fn ssh_never_asks_when_the_user_set_no_ssh_command_of_their_own() {
    let sshd = Sshd::start();
    let repo = GitRemote::new();
    repo.push("manifests/node.yaml", &support::node());
    let builder = Daemon::builder();
    // An askpass program ssh would run to ask about the unknown host key (or a
    // password) even without a terminal; it leaves a mark when asked.
    let asked = builder.path().join("asked");
    let askpass = builder.path().join("askpass");
    std::fs::write(&askpass, format!("#!/bin/sh\ntouch {}\necho yes\n", asked.display())).expect("write askpass");
    std::fs::set_permissions(&askpass, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let daemon = builder
        .setting("MESH_GIT_REMOTE", &format!("ssh://127.0.0.1:{}{}", sshd.port, repo.remote.display()))
        .process_env("SSH_ASKPASS", &askpass.display().to_string())
        .process_env("SSH_ASKPASS_REQUIRE", "force")
        .start();

    let started = Instant::now();
    eventually("the fetch fails on the unknown host key", || {
        daemon.log().contains("Host key verification failed").then_some(())
    });
    assert!(started.elapsed() < Duration::from_secs(10), "failed after {:?}", started.elapsed());
    assert!(!asked.exists(), "ssh asked");
    assert_eq!(daemon.revision(), None);
}

// --- apply, dry runs and diffs -----------------------------------------------------

#[test]
fn apply_applies_another_folder_at_once_under_its_revision() {
    let marker = Marker::new("extra");
    let daemon = Daemon::builder()
        .file("other/node.yaml", &support::node())
        .file("other/extra.yaml", &marked("extra", &marker))
        .start();
    let watched = eventually("the watched folder is applied", || daemon.revision());

    let run = daemon.meshctl(&["apply", "-f", "other"]);
    assert_eq!(run.code, 0, "{run:?}");
    let revision = daemon.revision().expect("a revision");
    assert_eq!(
        run.stdout,
        format!(
            "Plan for node {NODE} ({watched} -> {revision}):\n  \
             + Service/extra => start: {} -c {SLEEP} {}\n  \
             1 unchanged\n",
            python(),
            marker.as_str()
        )
    );
    assert!(revision.starts_with("local-") && revision.len() == "local-".len() + 12, "{revision}");
    daemon.wait_until_ready("extra");
    eventually("the extra process runs", || Some(marker.processes()).filter(|pids| pids.len() == 1));

    // A clean Git checkout is applied under its commit.
    let other = daemon.path().join("other");
    git(&other, &["init", "--quiet", "-b", "main"]);
    git(&other, &["add", "--all"]);
    git(&other, &["-c", "user.name=Test", "-c", "user.email=test@example.invalid", "commit", "--quiet", "-m", "m"]);
    let commit = git(&other, &["rev-parse", "HEAD"]);
    let run = daemon.meshctl(&["apply", "-f", "other"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, format!("Plan for node {NODE} ({revision} -> {commit}):\n  no changes\n  2 unchanged\n"));
    assert_eq!(daemon.revision(), Some(commit));
    assert_eq!(marker.processes().len(), 1, "the same content starts nothing new");
}

#[test]
fn apply_dry_run_and_diff_print_the_plan_and_change_nothing() {
    let marker = Marker::new("extra");
    let daemon = Daemon::builder()
        .file("manifests/keep.yaml", &sleeper("keep"))
        .file("manifests/gone.yaml", &sleeper("gone"))
        .file("other/node.yaml", &support::node())
        .file("other/keep.yaml", &service("keep", &["sleep", "2000"], ""))
        .file("other/extra.yaml", &marked("extra", &marker))
        .start();
    let pids = [daemon.wait_until_ready("keep"), daemon.wait_until_ready("gone")];
    let revision = daemon.revision().unwrap();

    let dry_run = daemon.meshctl(&["apply", "--dry-run", "-f", "other"]);
    let diff = daemon.meshctl(&["diff", "-f", "other"]);

    assert_eq!(dry_run.code, 0, "{dry_run:?}");
    let (first, rest) = dry_run.stdout.split_once('\n').unwrap();
    assert!(first.starts_with(&format!("Plan for node {NODE} ({revision} -> local-")), "{first}");
    assert_eq!(
        rest,
        format!(
            "  + Service/extra => start: {} -c {SLEEP} {}\n  \
             - Service/gone => stop\n  \
             ~ Service/keep (spec.command) => restart: sleep 2000\n  \
             1 unchanged\n\
             dry run: nothing was changed\n",
            python(),
            marker.as_str()
        )
    );
    assert_eq!((diff.code, &diff.stdout), (1, &dry_run.stdout), "diff prints the same plan, and exits 1: {diff:?}");

    let status = daemon.status();
    assert_eq!(status["revision"], revision.as_str());
    assert_eq!(object_in(&status, "Service", "extra"), None);
    for (name, pid) in [("keep", pids[0]), ("gone", pids[1])] {
        let object = object_in(&status, "Service", name).unwrap();
        assert_eq!(detail(&object, "pid"), Some(pid), "{name} was not restarted");
        assert!(!is_dead(pid));
    }
    assert!(marker.processes().is_empty(), "no extra process was started");

    let unchanged = daemon.meshctl(&["diff"]);
    assert_eq!(
        unchanged.stdout,
        format!(
            "Plan for node {NODE} ({revision} -> {revision}):\n  no changes\n  3 unchanged\ndry run: nothing was changed\n"
        )
    );
}

// --- what the node reports -----------------------------------------------------------

#[test]
fn status_renders_as_a_table_as_yaml_and_as_json_of_the_stable_shape() {
    let daemon = Daemon::builder().file("manifests/worker.yaml", &sleeper("worker")).start();
    let pid = daemon.wait_until_ready("worker");
    let revision = daemon.revision().unwrap();

    let table = daemon.meshctl(&["status"]);
    assert_eq!(table.code, 0, "{table:?}");
    let lines: Vec<Vec<&str>> = table.stdout.lines().map(|line| line.split_whitespace().collect()).collect();
    assert_eq!(lines[0], ["NODE", "ROLE", "ONLINE", "RTT", "REVISION", "LAST", "SEEN"]);
    assert_eq!(lines[1][..5], [NODE, "primary", "yes", "-", revision.as_str()]);
    assert_eq!(lines[3], [format!("{NODE}:").as_str()]);
    let folder = daemon.path().join("manifests").display().to_string();
    assert_eq!(lines[4][..5], ["source:", "folder", folder.as_str(), "(at", &format!("{revision},")]);
    assert_eq!(lines[5], ["KIND", "NAME", "READY", "REASON", "MESSAGE"]);
    assert_eq!(lines[6], ["Node", NODE, "True", "Registered", "this", "node,", "role", "primary"]);
    assert_eq!(lines[7], ["Service", "worker", "True", "Running", "started", "(pid", &format!("{pid})")]);

    let json = daemon.meshctl(&["status", "-o", "json"]);
    let json: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(keys(&json), BTreeSet::from(["nodes"]));
    let node = &json["nodes"][0];
    assert_eq!(json["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(
        keys(node),
        BTreeSet::from(["name", "role", "online", "lastSeen", "revision", "lastError", "objects", "source"])
    );
    assert_eq!(keys(&node["source"]), BTreeSet::from(["type", "path", "revision", "lastFetched", "lastFetchError"]));
    assert_eq!((&node["name"], &node["role"], &node["online"]), (&Value::from(NODE), &"primary".into(), &true.into()));
    assert!(node["lastSeen"].is_string() && node["lastError"].is_null());
    for object in node["objects"].as_array().unwrap() {
        // `details` (pid, restarts…) comes on top of design section 5's shape.
        assert_eq!(keys(object), BTreeSet::from(["kind", "name", "ready", "conditions", "details"]), "{object}");
        let types: Vec<&Value> = object["conditions"].as_array().unwrap().iter().map(|c| &c["type"]).collect();
        assert_eq!(types, ["Ready", "Progressing", "Degraded"]);
        for condition in object["conditions"].as_array().unwrap() {
            assert_eq!(
                keys(condition),
                BTreeSet::from(["type", "status", "reason", "message", "lastTransitionTime", "revision"])
            );
            assert_eq!(condition["revision"], revision.as_str());
        }
    }

    let yaml = daemon.meshctl(&["status", "-o", "yaml"]);
    assert_eq!(yaml.code, 0, "{yaml:?}");
    let mut yaml: Value = serde_saphyr::from_str(&yaml.stdout).expect("status -o yaml is YAML");
    let mut json = json;
    // Read a moment apart; the rest is the same document.
    yaml["nodes"][0]["lastSeen"] = Value::Null;
    json["nodes"][0]["lastSeen"] = Value::Null;
    assert_eq!(yaml, json);
}

#[tokio::test]
async fn the_api_answers_health_to_anyone_and_wants_the_key_and_small_bodies_for_the_rest() {
    let daemon = Daemon::builder().start();
    let base = format!("http://127.0.0.1:{}", daemon.port());
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let json = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let kind = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
        let body: Value = response.json().await.expect("a JSON body");
        (status, kind, body)
    };

    let (status, _, health) = json(http.get(format!("{base}/mesh/health")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!((&health["node"], &health["apiVersion"]), (&Value::from(NODE), &Value::from("v1")));

    let status_url = format!("{base}/api/v1/status");
    for request in [http.get(&status_url), http.get(&status_url).bearer_auth("wrong-key")] {
        let (status, kind, body) = json(request.send().await.unwrap()).await;
        assert_eq!((status, kind.as_deref()), (401, Some("application/json")));
        assert_eq!(keys(&body), BTreeSet::from(["error", "message"]), "{body}");
        assert_eq!(body["error"], "unauthorized");
    }
    let (status, _, body) = json(http.get(&status_url).bearer_auth(Daemon::KEY).send().await.unwrap()).await;
    assert_eq!((status, &body["name"]), (200, &Value::from(NODE)));

    let oversized = vec![b' '; 17 * 1024 * 1024];
    let response = http
        .post(format!("{base}/api/v1/apply"))
        .bearer_auth(Daemon::KEY)
        .header("content-type", "application/json")
        .body(oversized)
        .send()
        .await
        .unwrap();
    let (status, kind, body) = json(response).await;
    assert_eq!((status, kind.as_deref()), (413, Some("application/json")), "{body}");
    assert_eq!(keys(&body), BTreeSet::from(["error", "message"]), "{body}");
}

// --- the mesh API key ----------------------------------------------------------------

#[test]
fn the_mesh_key_is_read_where_the_mesh_points_and_the_cli_finds_it_too() {
    let mesh = "apiVersion: agentmesh/v1alpha1\nkind: Mesh\nmetadata:\n  name: mesh\nspec:\n  auth:\n    \
                apiKey: {file: ~/mesh.key}\n";
    let daemon = Daemon::builder().file("mesh.key", "file-key-7c1d\n").file("manifests/mesh.yaml", mesh).start();
    let status_with = |key: &str| {
        let (port, key) = (daemon.port(), key.to_owned());
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let request = format!("GET /api/v1/status HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n\r\n");
        std::io::Write::write_all(&mut stream, request.as_bytes()).unwrap();
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut stream, &mut answer).unwrap();
        answer.split_whitespace().nth(1).unwrap().to_owned()
    };
    // Until the Mesh is in force the daemon takes MESH_API_KEY.
    eventually("the file's key is let in", || (status_with("file-key-7c1d") == "200").then_some(()));
    assert_eq!(status_with(Daemon::KEY), "401", "MESH_API_KEY gives way to the key the Mesh points at");
    let run = daemon.meshctl(&["status", "-o", "json"]);
    assert_eq!(run.code, 0, "the CLI reads the key where the Mesh points: {run:?}");
    assert!(!daemon.log().contains("file-key-7c1d"), "the key is never logged");
}

#[test]
fn sighup_reads_the_settings_again_and_leaves_unchanged_services_running() {
    let port = free_port();
    let daemon = Daemon::builder().file("manifests/web.yaml", &web("web", port)).start();
    let pid = daemon.wait_until_ready("web");
    let env = std::fs::read_to_string(daemon.path().join(".env")).unwrap();
    daemon.write(".env", &env.replace(Daemon::KEY, "rotated-key-5b2e"));
    let status_with = |key: &str| {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", daemon.port())).unwrap();
        let request = format!("GET /api/v1/status HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n\r\n");
        std::io::Write::write_all(&mut stream, request.as_bytes()).unwrap();
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut stream, &mut answer).unwrap();
        answer.split_whitespace().nth(1).unwrap().to_owned()
    };
    assert_eq!(status_with("rotated-key-5b2e"), "401", "nothing changes before the signal");

    kill(daemon.pid(), libc::SIGHUP);
    eventually("the rotated key is in force", || (status_with("rotated-key-5b2e") == "200").then_some(()));
    assert_eq!(status_with(Daemon::KEY), "401", "the old key is out");
    eventually("the reload is told", || daemon.log().contains("settings read again").then_some(()));
    let after = daemon.wait_until_ready("web");
    assert_eq!(after, pid, "the unchanged Service kept running");
    assert!(!is_dead(pid));
}

// --- secrets stay with the controller ----------------------------------------------

#[test]
fn a_service_gets_what_it_declares_and_the_allowed_variables_never_the_daemons_keys() {
    let builder = Daemon::builder();
    let dump = builder.path().join("service-env.txt");
    let more = format!(
        "  env:\n    DUMP: {}\n    STORE_KEY: {{env: SYNCTHING_API_KEY}}\n    MODE: declared\n",
        dump.display()
    );
    let printenv = service("printenv", &["sh", "-c", "env > \"$DUMP\"; exec sleep 1000"], &more);
    // What a unit with EnvironmentFile= gave the daemon: the keys in its
    // process environment, beside what every login has.
    let daemon = builder
        .setting("DOTENV_ONLY_TOKEN", "dotenv-secret-61aa")
        .process_env("MESH_API_KEY", Daemon::KEY)
        .process_env("SYNCTHING_API_KEY", "syncthing-secret-8d02")
        .process_env("MESH_METRICS_KEY", "metrics-secret-27fe")
        .process_env("AWS_SECRET_ACCESS_KEY", "cloud-secret-0c3b")
        .process_env("LC_TIME", "C.UTF-8")
        .process_env("TZ", "UTC")
        .process_env("https_proxy", "http://127.0.0.1:9")
        .file("manifests/printenv.yaml", &printenv)
        .start();
    daemon.wait_until_ready("printenv");
    let text = eventually("the Service wrote its environment", || {
        std::fs::read_to_string(&dump).ok().filter(|text| text.contains("MODE="))
    });
    let env: BTreeMap<&str, &str> = text.lines().filter_map(|line| line.split_once('=')).collect();

    assert_eq!(env.get("MODE"), Some(&"declared"));
    assert_eq!(env.get("STORE_KEY"), Some(&"syncthing-secret-8d02"), "a key asked for by reference is given");
    assert_eq!(env.get("HOME"), Some(&daemon.path().to_str().unwrap()));
    assert_eq!(env.get("LC_TIME"), Some(&"C.UTF-8"));
    assert_eq!(env.get("TZ"), Some(&"UTC"));
    assert_eq!(env.get("https_proxy"), Some(&"http://127.0.0.1:9"));
    assert!(env.contains_key("PATH"));
    for name in ["MESH_API_KEY", "SYNCTHING_API_KEY", "MESH_METRICS_KEY", "AWS_SECRET_ACCESS_KEY", "AGENT_NODE_ID"] {
        assert!(!env.contains_key(name), "{name} reached the Service:\n{text}");
    }
    for secret in [Daemon::KEY, "metrics-secret-27fe", "cloud-secret-0c3b", "dotenv-secret-61aa"] {
        assert!(!text.contains(secret), "a secret of the daemon reached the Service:\n{text}");
    }
}
