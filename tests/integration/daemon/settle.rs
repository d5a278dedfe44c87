//! A save in progress is not a decision: a manifest file that became empty,
//! shrank or was deleted changes nothing it declares until it has been
//! unchanged for the Mesh's `reconcile.settleTime` (2 s by default), while
//! other files apply at once.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::support::{Daemon, detail, eventually, is_dead, object_in, service, sleeper};

/// The settle time when no Mesh sets one.
const DEFAULT_SETTLE: Duration = Duration::from_secs(2);

/// How long before the settle time ends the "not yet" checks stop.
const MARGIN: Duration = Duration::from_millis(300);

/// A Service whose file ends with a number, so a prefix of the file still
/// parses (`PORT: 114` for `PORT: 11434`) and changes what it declares.
fn with_port(name: &str, port: &str) -> String {
    service(name, &["sleep", "1000"], &format!("  env:\n    PORT: {port}\n"))
}

/// Empties a file in place, as an editor or `git checkout` does before it
/// writes the new text.
fn truncate(daemon: &Daemon, relative: &str) {
    std::fs::File::create(daemon.path().join(relative)).expect("truncate the file");
}

/// The reasons of the events about `object` (`Service/worker`), oldest first.
fn events_of(daemon: &Daemon, object: &str) -> Vec<String> {
    let run = daemon.meshctl(&["events", "-o", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    run.stdout
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("events -o json prints JSON lines"))
        .filter(|message| message["type"] == "event" && message["object"] == object)
        .map(|message| message["reason"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Watches the Service until `until`: every status that came back before
/// then shows it Ready, running as `pid`. Returns how many statuses did.
fn stays_running(daemon: &Daemon, name: &str, pid: u32, until: Instant) -> usize {
    let mut seen = 0;
    loop {
        let object = daemon.object("Service", name);
        if Instant::now() >= until {
            break;
        }
        let object = object.unwrap_or_else(|| panic!("Service/{name} left the status before its file settled"));
        assert_eq!(detail(&object, "pid"), Some(pid), "Service/{name} kept its process: {object}");
        assert_eq!(object["ready"], true, "Service/{name} stayed Ready: {object}");
        seen += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(seen > 0, "no status of Service/{name} came back before {until:?}");
    seen
}

/// The value of `name` in the environment of process `pid`.
fn env_of(pid: u32, name: &str) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{name}=");
    environ.split(|byte| *byte == 0).find_map(|entry| {
        let entry = std::str::from_utf8(entry).ok()?;
        entry.strip_prefix(&prefix).map(str::to_owned)
    })
}

#[test]
fn a_file_truncated_and_written_back_leaves_its_service_running() {
    let text = sleeper("worker");
    let daemon =
        Daemon::builder().file("manifests/worker.yaml", &text).file("manifests/other.yaml", &sleeper("other")).start();
    let pid = daemon.wait_until_ready("worker");
    let events_before = events_of(&daemon, "Service/worker");

    let saved = Instant::now();
    truncate(&daemon, "manifests/worker.yaml");
    std::thread::sleep(Duration::from_millis(300));
    daemon.write("manifests/worker.yaml", &text);

    stays_running(&daemon, "worker", pid, saved + DEFAULT_SETTLE + Duration::from_secs(1));
    assert!(!is_dead(pid), "the worker's process was never stopped");
    assert_eq!(events_of(&daemon, "Service/worker"), events_before, "no Stopping, Starting or Restarting");
    let object = daemon.object("Service", "worker").expect("Service/worker");
    assert_eq!(detail(&object, "restarts"), Some(0), "{object}");
}

#[test]
fn a_prefix_that_still_parses_applies_only_once_it_has_settled() {
    let text = with_port("model", "11434");
    let daemon = Daemon::builder().file("manifests/model.yaml", &text).start();
    let pid = daemon.wait_until_ready("model");
    assert_eq!(env_of(pid, "PORT").as_deref(), Some("11434"));

    let cut = Instant::now();
    let prefix = text.strip_suffix("34\n").expect("the file ends with the port");
    daemon.write("manifests/model.yaml", prefix);

    stays_running(&daemon, "model", pid, cut + DEFAULT_SETTLE - MARGIN);
    let restarted = daemon.wait_for_service("the prefix applies once it settled", "model", |object| {
        detail(object, "pid").is_some_and(|now| now != pid) && object["ready"] == true
    });
    assert!(cut.elapsed() >= DEFAULT_SETTLE, "applied {:?} after the cut", cut.elapsed());
    assert_eq!(env_of(restarted, "PORT").as_deref(), Some("114"), "the settled prefix is what runs");
    eventually("the old process is gone", || is_dead(pid).then_some(()));
}

#[test]
fn an_emptied_file_applies_after_the_settle_time_and_another_file_at_once() {
    let daemon = Daemon::builder()
        .file("manifests/worker.yaml", &sleeper("worker"))
        .file("manifests/other.yaml", &sleeper("other"))
        .start();
    let worker = daemon.wait_until_ready("worker");
    let other = daemon.wait_until_ready("other");

    let emptied = Instant::now();
    truncate(&daemon, "manifests/worker.yaml");
    std::thread::sleep(Duration::from_millis(300));
    daemon.write("manifests/other.yaml", &service("other", &["sleep", "1001"], ""));

    let status = eventually("the other file's change applies", || {
        let status = daemon.status();
        let object = object_in(&status, "Service", "other")?;
        detail(&object, "pid").is_some_and(|pid| pid != other).then_some(status)
    });
    let held = object_in(&status, "Service", "worker");
    let held = held.expect("Service/worker is still there when the other file applied");
    assert_eq!(detail(&held, "pid"), Some(worker), "the emptied file's Service still runs: {held}");

    stays_running(&daemon, "worker", worker, emptied + DEFAULT_SETTLE - MARGIN);
    eventually("the emptied file's Service is removed", || daemon.object("Service", "worker").is_none().then_some(()));
    assert!(emptied.elapsed() >= DEFAULT_SETTLE, "removed {:?} after the file was emptied", emptied.elapsed());
    eventually("the worker's process is stopped", || is_dead(worker).then_some(()));
}

#[test]
fn the_settle_time_of_the_mesh_is_honoured_for_a_deleted_file() {
    let settle = Duration::from_secs(4);
    let mesh = format!(
        "apiVersion: agentmesh/v1alpha1\nkind: Mesh\nmetadata:\n  name: home\nspec:\n  reconcile:\n    settleTime: {}s\n",
        settle.as_secs()
    );
    let daemon =
        Daemon::builder().file("manifests/mesh.yaml", &mesh).file("manifests/worker.yaml", &sleeper("worker")).start();
    let worker = daemon.wait_until_ready("worker");

    let deleted = Instant::now();
    daemon.remove("manifests/worker.yaml");

    stays_running(&daemon, "worker", worker, deleted + settle - MARGIN);
    eventually("the deleted file's Service is removed", || daemon.object("Service", "worker").is_none().then_some(()));
    assert!(deleted.elapsed() >= settle, "removed {:?} after the file was deleted", deleted.elapsed());
    eventually("the worker's process is stopped", || is_dead(worker).then_some(()));
}

#[test]
fn an_object_new_in_a_shrunk_file_starts_at_once_while_the_removed_one_waits() {
    let two = format!("{}---\n{}", sleeper("worker"), service("retiring-service", &["sleep", "1000"], ""));
    let daemon = Daemon::builder().file("manifests/workers.yaml", &two).start();
    let worker = daemon.wait_until_ready("worker");
    let retiring = daemon.wait_until_ready("retiring-service");

    let saved = Instant::now();
    daemon.write("manifests/workers.yaml", &format!("{}---\n{}", sleeper("worker"), sleeper("fresh")));
    daemon.wait_until_ready("fresh");
    assert!(saved.elapsed() < DEFAULT_SETTLE - MARGIN, "the new Service waited {:?}", saved.elapsed());

    stays_running(&daemon, "retiring-service", retiring, saved + DEFAULT_SETTLE - MARGIN);
    eventually("the removed Service goes once the file settled", || {
        daemon.object("Service", "retiring-service").is_none().then_some(())
    });
    assert!(saved.elapsed() >= DEFAULT_SETTLE, "removed {:?} after the save", saved.elapsed());
    assert_eq!(daemon.wait_until_ready("worker"), worker, "the unchanged Service kept running");
    assert!(daemon.object("Service", "fresh").is_some());
}
