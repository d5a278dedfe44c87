//! `meshctl get`, `describe` and `logs` (#18, point 1) against two real
//! daemons: every kind by its names, each `-o`, across both nodes; a name no
//! node has; `get -w` printing again after a change; `describe` in its three
//! forms; a Service's output, and `logs -f` seeing a new line.

use std::path::Path;

use serde_json::Value;

use super::support::{eventually, laptop_and_mini};
use crate::support::Run;

/// A Service on the laptop that prints two lines, then `line-after` each
/// time the file `trigger` appears (and removes it); a Service on the mini;
/// a Capability, a SyncFolder and a HandoffPolicy that both nodes report; a Mesh.
fn objects(trigger: &Path) -> String {
    let trigger = trigger.display();
    let script = format!(
        "echo line-one; echo line-two; while sleep 0.1; do if [ -e {trigger} ]; then rm {trigger}; echo line-after; fi; done"
    );
    let script = serde_json::to_string(&script).expect("a string serializes");
    format!(
        "apiVersion: agentmesh/v1alpha1\nkind: Service\nmetadata: {{name: talker}}\n\
         spec: {{nodes: [laptop], command: [sh, -c, {script}]}}\n---\n\
         apiVersion: agentmesh/v1alpha1\nkind: Service\nmetadata: {{name: quiet}}\n\
         spec: {{nodes: [mini], command: [sleep, '1000']}}\n---\n\
         apiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {{name: llm}}\n\
         spec: {{provider: http, placement: {{prefer: [mini], fallback: [laptop]}}, endpoint: {{port: 9, path: /}}}}\n---\n\
         apiVersion: agentmesh/v1alpha1\nkind: SyncFolder\nmetadata: {{name: notes}}\n\
         spec: {{paths: {{laptop: ~/notes, mini: ~/notes}}}}\n---\n\
         apiVersion: agentmesh/v1alpha1\nkind: HandoffPolicy\nmetadata: {{name: handover}}\n\
         spec: {{syncFolder: notes, sessionsDir: sessions}}\n---\n\
         apiVersion: agentmesh/v1alpha1\nkind: Mesh\nmetadata: {{name: home}}\nspec: {{}}\n"
    )
}

/// The first two words of each line after the header: `(node, name)`.
fn rows(run: &Run) -> Vec<(String, String)> {
    assert_eq!(run.code, 0, "{run:?}");
    let lines = run.stdout.lines().skip(1);
    lines
        .map(|line| {
            let mut words = line.split_whitespace().map(str::to_owned);
            (words.next().unwrap_or_default(), words.next().unwrap_or_default())
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn get_lists_each_kind_by_every_name_across_both_nodes_and_watches_for_changes() {
    let trigger = tempfile::tempdir().expect("temp dir");
    let (laptop, mini) = laptop_and_mini(&objects(&trigger.path().join("go"))).await;
    laptop.sees_online("mini").await;
    mini.sees_online("laptop").await;

    // Services: the laptop's and the mini's, each with its node, by every name of the kind.
    let both = pairs(&[("laptop", "talker"), ("mini", "quiet")]);
    eventually("get svc shows both nodes' Services", || (rows(&laptop.meshctl(&["get", "svc"])) == both).then_some(()));
    for name in ["service", "services", "SVC", "Service"] {
        assert_eq!(rows(&laptop.meshctl(&["get", name])), both, "get {name}");
    }
    let table = laptop.meshctl(&["get", "services"]);
    assert_eq!(table.stdout.lines().next(), Some("NODE    NAME    READY  REASON   RESTARTS"), "{table:?}");
    let wide = laptop.meshctl(&["get", "svc", "-o", "wide"]);
    let header: Vec<&str> =
        wide.stdout.lines().next().unwrap_or_default().split("  ").filter(|w| !w.is_empty()).collect();
    let header: Vec<&str> = header.into_iter().map(str::trim).collect();
    assert_eq!(header, ["NODE", "NAME", "READY", "REASON", "RESTARTS", "PID", "LAST EXIT", "MESSAGE"], "{wide:?}");
    let names = laptop.meshctl(&["get", "svc", "-o", "name"]);
    assert_eq!((names.code, names.stdout.as_str()), (0, "service/talker\nservice/quiet\n"), "{names:?}");
    let from_mini = laptop.meshctl(&["get", "svc", "-o", "name", "--on", "mini"]);
    assert_eq!(from_mini.stdout, "service/quiet\nservice/talker\n", "mini's own first: {from_mini:?}");
    assert_eq!(rows(&laptop.meshctl(&["get", "svc", "talker"])), pairs(&[("laptop", "talker")]));

    // Capabilities, SyncFolders, HandoffPolicies and the Mesh: one row per node that reports them.
    let json = laptop.meshctl(&["get", "cap", "-o", "json"]);
    assert_eq!(json.code, 0, "{json:?}");
    let list: Value = serde_json::from_str(&json.stdout).expect("get -o json is JSON");
    assert_eq!(list["kind"], "List", "{list}");
    let items: Vec<(&str, &str, &str)> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| (item["node"].as_str().unwrap(), item["kind"].as_str().unwrap(), item["name"].as_str().unwrap()))
        .collect();
    assert_eq!(items, [("laptop", "Capability", "llm"), ("mini", "Capability", "llm")], "{list}");
    let yaml = laptop.meshctl(&["get", "capabilities", "-o", "yaml"]);
    assert!(yaml.code == 0 && yaml.stdout.starts_with("kind: List\nitems:\n"), "{yaml:?}");
    assert!(yaml.stdout.contains("node: mini") && yaml.stdout.contains("name: llm"), "{yaml:?}");
    let names = laptop.meshctl(&["get", "capability", "-o", "name"]);
    assert_eq!(names.stdout, "capability/llm\n", "once however many nodes report it: {names:?}");
    for (kinds, name) in [(["sf", "syncfolders"], "notes"), (["hp", "handoffpolicies"], "handover")] {
        for kind in kinds {
            assert_eq!(rows(&laptop.meshctl(&["get", kind])), pairs(&[("laptop", name), ("mini", name)]), "get {kind}");
        }
    }
    // No node reports a status for the Mesh: one row from the set, without a node.
    for kind in ["mesh", "Mesh"] {
        assert_eq!(rows(&laptop.meshctl(&["get", kind])), pairs(&[("-", "home")]), "get {kind}");
    }
    let mesh = laptop.meshctl(&["get", "mesh", "-o", "json"]);
    let mesh: Value = serde_json::from_str(&mesh.stdout).expect("get mesh -o json is JSON");
    assert_eq!(mesh["items"][0]["node"], Value::Null, "{mesh}");
    assert_eq!(mesh["items"][0]["name"], "home", "{mesh}");
    let folders = laptop.meshctl(&["get", "sf", "-o", "wide"]);
    assert!(folders.stdout.lines().next().unwrap_or_default().contains("PATH"), "{folders:?}");

    // Nodes: the mesh view of the asked node.
    for kind in ["no", "node", "nodes"] {
        let nodes = laptop.meshctl(&["get", kind]);
        assert_eq!(rows(&nodes), pairs(&[("laptop", "(this"), ("mini", "satellite")]), "get {kind}: {nodes:?}");
    }
    let nodes = laptop.meshctl(&["get", "nodes", "-o", "name"]);
    assert_eq!(nodes.stdout, "node/laptop\nnode/mini\n", "{nodes:?}");

    // A name no node has, and a kind there is not.
    let missing = laptop.meshctl(&["get", "svc", "nope"]);
    assert_eq!((missing.code, missing.stdout.as_str()), (1, ""), "{missing:?}");
    assert_eq!(
        missing.stderr.trim(),
        "Error from server (NotFound): services \"nope\" not found on any node of the mesh",
        "{missing:?}"
    );
    let unknown = laptop.meshctl(&["get", "pods"]);
    assert_eq!(unknown.code, 1, "{unknown:?}");
    assert!(unknown.stderr.contains("the server doesn't have a resource type \"pods\""), "{unknown:?}");
    assert!(unknown.stderr.contains("services (svc)"), "{unknown:?}");

    // -w: the table, then again once a Service is added.
    let watch = laptop.meshctl_follow(&["get", "svc", "-w"]);
    watch.until("the first listing", |line| line.starts_with("mini") && line.contains("quiet"));
    laptop.write(
        "manifests/newcomer.yaml",
        "apiVersion: agentmesh/v1alpha1\nkind: Service\nmetadata: {name: newcomer}\n\
         spec: {nodes: [laptop], command: [sleep, '1000']}\n",
    );
    let again = watch.until("the newcomer", |line| line.starts_with("laptop") && line.contains("newcomer"));
    assert!(again.iter().any(|line| line.starts_with("NODE")), "printed again with its header: {again:#?}");
    drop(watch);
}

#[tokio::test(flavor = "multi_thread")]
async fn describe_takes_every_form_and_logs_prints_and_follows_a_services_output() {
    let trigger = tempfile::tempdir().expect("temp dir");
    let go = trigger.path().join("go");
    let (laptop, mini) = laptop_and_mini(&objects(&go)).await;
    laptop.sees_online("mini").await;
    mini.sees_online("laptop").await;
    laptop.wait_until_ready("talker");

    for form in
        [&["describe", "Service", "talker"][..], &["describe", "svc", "talker"], &["describe", "service/talker"]]
    {
        let described = laptop.meshctl(form);
        assert_eq!(described.code, 0, "{form:?}: {described:?}");
        assert!(described.stdout.starts_with("Kind:  Service\nName:  talker\n"), "{form:?}: {described:?}");
    }
    let described = laptop.meshctl(&["describe", "cap/llm"]);
    assert!(described.stdout.starts_with("Kind:  Capability\nName:  llm\n"), "{described:?}");
    let bad = laptop.meshctl(&["describe", "svc"]);
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stderr.contains("needs a name"), "{bad:?}");

    // The output, from the node that runs the Service, wherever it is asked.
    let output = eventually("the two lines", || {
        let run = laptop.meshctl(&["logs", "service/talker"]);
        (run.code == 0 && run.stdout == "line-one\nline-two\n").then_some(run)
    });
    assert_eq!(output.stderr, "", "{output:?}");
    let from_mini = mini.meshctl(&["logs", "svc/talker"]);
    assert_eq!((from_mini.code, from_mini.stdout.as_str()), (0, "line-one\nline-two\n"), "{from_mini:?}");
    let quiet = laptop.meshctl(&["logs", "svc/quiet"]);
    assert_eq!((quiet.code, quiet.stdout.as_str()), (0, ""), "{quiet:?}");
    let not_a_service = laptop.meshctl(&["logs", "capability/llm"]);
    assert_eq!(not_a_service.code, 1, "{not_a_service:?}");
    assert!(not_a_service.stderr.contains("capability/llm has no output: only services do"), "{not_a_service:?}");
    let missing = laptop.meshctl(&["logs", "svc/nope"]);
    assert_eq!(missing.code, 1, "{missing:?}");
    assert!(missing.stderr.contains("Error from server (NotFound): services \"nope\" not found"), "{missing:?}");

    // -f: the last lines, then a line written afterwards.
    let follow = mini.meshctl_follow(&["logs", "service/talker", "-f"]);
    let first = follow.until("the last lines", |line| line == "line-two");
    assert_eq!(first, ["line-one", "line-two"]);
    std::fs::write(&go, "").expect("write the trigger");
    let next = follow.until("the new line", |line| line == "line-after");
    assert_eq!(next, ["line-after"], "nothing printed twice");
    drop(follow);

    // A Service that never stops writing is followed all the same.
    laptop.write(
        "manifests/chatter.yaml",
        "apiVersion: agentmesh/v1alpha1\nkind: Service\nmetadata: {name: chatter}\n\
         spec: {nodes: [laptop], command: [sh, -c, 'while true; do echo tick; sleep 0.02; done']}\n",
    );
    laptop.wait_until_ready("chatter");
    let follow = laptop.meshctl_follow(&["logs", "svc/chatter", "-f"]);
    follow.until("a tick", |line| line == "tick");
}
