//! `-o json|yaml` on every read verb, `status -w` and `diff`'s exit codes, run
//! through the real binary against a real daemon: each verb's JSON has the key
//! set `docs/cli.md` documents, and its YAML is the same data.

use std::collections::BTreeSet;

use serde_json::Value;

use super::keys;
use super::support::{Daemon, NODE, eventually, free_port, service, sleeper, web};
use crate::support::Run;

/// `meshctl args… -o json` and `-o yaml`, read as one value each; equal once
/// `normalize` removed what differs between two runs a moment apart (retried
/// a few times: an event may land between the two). Returns the JSON run's
/// exit code and value.
fn json_and_yaml(daemon: &Daemon, args: &[&str], normalize: fn(&mut Value)) -> (i32, Value) {
    eventually(&format!("meshctl {} prints the same data as JSON and as YAML", args.join(" ")), || {
        let (json_run, yaml_run) = (run(daemon, args, "json"), run(daemon, args, "yaml"));
        assert_eq!(json_run.code, yaml_run.code, "{json_run:?}\n{yaml_run:?}");
        let mut json: Value = serde_json::from_str(&json_run.stdout).unwrap_or_else(|e| panic!("{e}: {json_run:?}"));
        let mut yaml: Value = serde_saphyr::from_str(&yaml_run.stdout).unwrap_or_else(|e| panic!("{e}: {yaml_run:?}"));
        normalize(&mut json);
        normalize(&mut yaml);
        (json == yaml).then_some((json_run.code, json))
    })
}

fn run(daemon: &Daemon, args: &[&str], format: &str) -> Run {
    daemon.meshctl(&[args, &["-o", format]].concat())
}

fn unchanged(_: &mut Value) {}

fn set<const N: usize>(names: [&str; N]) -> BTreeSet<&str> {
    BTreeSet::from(names)
}

/// A Capability served by the Service `web` on `port`, with a client env.
fn capability(port: u16) -> String {
    format!(
        "apiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata:\n  name: pages\nspec:\n  provider: http\n  \
         service: web\n  placement:\n    prefer: [{NODE}]\n  endpoint:\n    port: {port}\n    path: /\n  \
         clientEnv:\n    PAGES_URL: \"http://{{{{host}}}}:{{{{port}}}}\"\n"
    )
}

#[test]
fn every_read_verb_prints_the_same_data_as_json_and_yaml_of_its_documented_shape() {
    let port = free_port();
    let daemon = Daemon::builder()
        .file("manifests/worker.yaml", &sleeper("worker"))
        .file("manifests/web.yaml", &web("web", port))
        .file("manifests/pages.yaml", &capability(port))
        .file("bad/node.yaml", "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata:\n  name: Bad_Name\nspec: {}\n")
        .start();
    daemon.wait_until_ready("worker");
    daemon.wait_until_ready("web");
    let url = format!("http://127.0.0.1:{port}");
    eventually("the client env names the capability", || {
        let run = daemon.meshctl(&["env"]);
        run.stdout.contains(&url).then_some(())
    });

    let (code, status) = json_and_yaml(&daemon, &["status"], |status| status["nodes"][0]["lastSeen"] = Value::Null);
    assert_eq!((code, keys(&status)), (0, set(["nodes"])));

    let (code, described) = json_and_yaml(&daemon, &["describe", "service", "worker"], unchanged);
    assert_eq!((code, keys(&described)), (0, set(["kind", "name", "spec", "status", "events", "logs"])));
    assert_eq!((&described["kind"], &described["name"]), (&Value::from("Service"), &Value::from("worker")));
    assert_eq!(keys(&described["status"]), set(["kind", "name", "ready", "conditions", "details"]));
    assert_eq!(described["spec"]["command"], serde_json::json!(["sleep", "1000"]));
    for event in described["events"].as_array().unwrap() {
        assert_eq!(keys(event), set(["time", "type", "reason", "object", "message"]), "{event}");
    }

    let (code, diff) = json_and_yaml(&daemon, &["diff"], unchanged);
    assert_eq!((code, keys(&diff)), (0, set(["changed", "source", "plans", "skipped", "unpushed"])));
    assert_eq!(
        (&diff["changed"], &diff["source"], &diff["skipped"]),
        (&false.into(), &Value::Null, &Value::Array(vec![]))
    );
    let plan = &diff["plans"][0];
    assert_eq!(keys(plan), set(["node", "fromRevision", "toRevision", "changes", "unchanged"]));
    assert_eq!((&plan["changes"], &plan["unchanged"]), (&Value::Array(vec![]), &Value::from(4)));

    let (code, sessions) = json_and_yaml(&daemon, &["sessions"], unchanged);
    assert_eq!((code, sessions), (0, Value::Array(vec![])), "no HandoffPolicy, no conversation");

    let (code, env) = json_and_yaml(&daemon, &["env"], unchanged);
    assert_eq!(code, 0);
    assert!(env.as_object().expect("env is one object").values().all(Value::is_string), "{env}");
    assert_eq!(env["PAGES_URL"], url.as_str());

    let (_, checks) = json_and_yaml(&daemon, &["doctor"], |checks| {
        // Timings and clock readings differ from one run to the next.
        for check in checks.as_array_mut().into_iter().flatten() {
            check["message"] = Value::Null;
        }
    });
    let checks = checks.as_array().expect("doctor prints a list");
    assert!(!checks.is_empty());
    for check in checks {
        assert_eq!(keys(check), set(["check", "status", "message", "fix"]), "{check}");
    }

    let (code, valid) = json_and_yaml(&daemon, &["validate"], unchanged);
    assert_eq!((code, &valid["valid"], &valid["objects"]), (0, &true.into(), &4.into()));
    assert_eq!(keys(&valid), set(["valid", "objects", "files", "errorCount", "warningCount", "diagnostics"]));
    let (code, invalid) = json_and_yaml(&daemon, &["validate", "bad"], unchanged);
    assert_eq!((code, &invalid["valid"]), (1, &false.into()));
    let diagnostic = &invalid["diagnostics"][0];
    let mut fields = keys(diagnostic);
    fields.remove("help");
    assert_eq!(fields, set(["severity", "file", "line", "column", "object", "message"]), "{diagnostic}");

    // The event stream: one JSON value per line, one YAML document each.
    let events = eventually("events -o json and -o yaml print the same messages", || {
        let (json_run, yaml_run) = (run(&daemon, &["events"], "json"), run(&daemon, &["events"], "yaml"));
        assert_eq!((json_run.code, yaml_run.code), (0, 0), "{json_run:?}\n{yaml_run:?}");
        let json: Vec<Value> = json_run.stdout.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
        let yaml: Vec<Value> = serde_saphyr::from_str_multiple(&yaml_run.stdout).expect("YAML documents");
        (json == yaml).then_some(json)
    });
    assert!(!events.is_empty());
    for event in &events {
        assert_eq!(keys(event), set(["type", "time", "eventType", "reason", "object", "message"]), "{event}");
    }
}

#[test]
fn diff_exits_0_without_changes_1_with_changes_and_2_on_errors() {
    let mut daemon = Daemon::builder()
        .file("manifests/worker.yaml", &sleeper("worker"))
        .file("changed/node.yaml", &super::support::node())
        .file("changed/worker.yaml", &service("worker", &["sleep", "2000"], ""))
        .file("bad/node.yaml", "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata:\n  name: Bad_Name\nspec: {}\n")
        .start();
    daemon.wait_until_ready("worker");

    let same = daemon.meshctl(&["diff"]);
    assert_eq!(same.code, 0, "{same:?}");
    assert!(same.stdout.contains("  no changes\n"), "{same:?}");

    let changed = daemon.meshctl(&["diff", "-f", "changed"]);
    assert_eq!(changed.code, 1, "{changed:?}");
    assert!(changed.stdout.contains("~ Service/worker (spec.command)"), "{changed:?}");
    let changed = daemon.meshctl(&["diff", "-f", "changed", "-o", "json"]);
    let report: Value = serde_json::from_str(&changed.stdout).expect("diff -o json is JSON");
    assert_eq!((changed.code, &report["changed"]), (1, &true.into()), "{changed:?}");
    assert_eq!(report["plans"][0]["changes"][0]["op"], "change");

    let bad = daemon.meshctl(&["diff", "-f", "bad"]);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("nothing was applied"), "{bad:?}");
    let missing = daemon.meshctl(&["diff", "-f", "no-such-folder"]);
    assert_eq!(missing.code, 2, "{missing:?}");

    daemon.kill();
    let down = daemon.meshctl(&["diff"]);
    assert_eq!(down.code, 2, "{down:?}");
    assert!(down.stderr.contains("cannot reach the controller"), "{down:?}");
}

#[test]
fn status_watch_prints_the_table_again_when_an_object_changes() {
    let daemon = Daemon::builder().file("manifests/worker.yaml", &sleeper("worker")).start();
    daemon.wait_until_ready("worker");
    let mut watch = daemon.meshctl_follow(&["status", "-w"]);
    watch.until("the first table's worker", |l| l.split_whitespace().take(3).eq(["Service", "worker", "True"]));

    daemon.write("manifests/extra.yaml", &sleeper("extra"));
    watch.until("the new Service Ready", |l| l.split_whitespace().take(3).eq(["Service", "extra", "True"]));
    assert!(watch.is_running(), "status -w keeps watching");
    drop(watch);

    // Watching as JSON: one status per line, of the shape of `status -o json`.
    let first = daemon.meshctl_follow(&["status", "-w", "-o", "json"]).until("a status", |_| true).remove(0);
    let status: Value = serde_json::from_str(&first).expect("one JSON status per line");
    assert_eq!(keys(&status), set(["nodes"]));
    assert!(super::support::object_in(&status["nodes"][0], "Service", "extra").is_some(), "{status}");
}
