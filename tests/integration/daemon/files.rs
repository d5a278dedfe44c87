//! `diff -f` and `apply -f` on files and standard input against a real daemon
//! (issue #18, point 4): what is given is the whole set, and `apply` refuses a
//! file or a stream that lacks this node's Node unless `--force`.

use super::support::{Daemon, NODE, eventually, finish, meshctl_in, node, service, sleeper};
use crate::support::Run;

/// `meshctl args…` in the daemon's workspace with `input` on standard input.
fn with_stdin(daemon: &Daemon, args: &[&str], input: &str) -> Run {
    finish(meshctl_in(daemon.path(), args), input)
}

/// `documents` as one `---`-separated stream.
fn stream(documents: &[&str]) -> String {
    documents.join("---\n")
}

#[test]
fn diff_reads_the_set_from_standard_input() {
    let daemon = Daemon::builder().file("manifests/keep.yaml", &sleeper("keep")).start();
    daemon.wait_until_ready("keep");
    let revision = daemon.revision().expect("a revision");

    let more = with_stdin(&daemon, &["diff", "-f", "-"], &stream(&[&node(), &sleeper("keep"), &sleeper("extra")]));
    assert_eq!(more.code, 1, "{more:?}");
    let (first, rest) = more.stdout.split_once('\n').expect("a plan");
    assert!(first.starts_with(&format!("Plan for node {NODE} ({revision} -> local-")), "{more:?}");
    assert_eq!(rest, "  + Service/extra => start: sleep 1000\n  2 unchanged\ndry run: nothing was changed\n");

    let same = with_stdin(&daemon, &["diff", "-f", "-"], &stream(&[&node(), &sleeper("keep")]));
    assert_eq!(same.code, 0, "{same:?}");
    assert!(same.stdout.contains("\n  no changes\n  2 unchanged\n"), "{same:?}");

    let bad = with_stdin(&daemon, &["diff", "-f", "-"], &stream(&[&node(), "kind: Service\n"]));
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.starts_with("<stdin>:9:1: Service/<unnamed>: missing field `apiVersion`"), "{bad:?}");
    assert!(bad.stderr.ends_with("<stdin>: 1 error(s); nothing was applied\n"), "{bad:?}");

    assert_eq!(daemon.revision(), Some(revision), "diff changed nothing");
    assert_eq!(daemon.object("Service", "extra"), None);
}

/// Another machine's Node: a file holding it and its Services lacks this one's.
const OTHER_NODE: &str = "apiVersion: agentmesh/v1alpha1
kind: Node
metadata:
  name: other
spec:
  role: satellite
  address: 127.0.0.2
";

#[test]
fn apply_refuses_a_file_or_stream_without_this_nodes_node_and_replaces_the_set_with_it() {
    let daemon = Daemon::builder()
        .file("manifests/keep.yaml", &sleeper("keep"))
        .file("other.yaml", &stream(&[OTHER_NODE, &service("extra", &["sleep", "1000"], "").replace(NODE, "other")]))
        .file("whole.yaml", &stream(&[&node(), &sleeper("extra")]))
        .start();
    let keep = daemon.wait_until_ready("keep");
    let revision = daemon.revision().expect("a revision");

    let refused = daemon.meshctl(&["apply", "-f", "other.yaml"]);
    assert_eq!((refused.code, refused.stdout.as_str()), (1, ""), "{refused:?}");
    assert_eq!(
        refused.stderr,
        format!(
            "other.yaml declares no Node \"{NODE}\" for this node: `apply -f` sends what it is given as the whole \
             set, so applying it would remove every other object from this node. Give the whole manifests folder, \
             or add --force to apply only these objects; nothing was applied\n"
        )
    );
    // A Service alone names this node's Node, which the stream lacks: refused
    // before its diagnostics.
    let from_stdin = with_stdin(&daemon, &["apply", "-f", "-"], &sleeper("extra"));
    assert_eq!(from_stdin.code, 1, "{from_stdin:?}");
    assert!(from_stdin.stderr.starts_with(&format!("<stdin> declares no Node \"{NODE}\"")), "{from_stdin:?}");
    assert_eq!(from_stdin.stderr.lines().count(), 1, "only the refusal: {from_stdin:?}");
    assert_eq!(daemon.revision(), Some(revision.clone()), "nothing was applied");
    assert_eq!(super::support::detail(&daemon.object("Service", "keep").expect("keep"), "pid"), Some(keep));

    // A file with this node's Node is the whole set: keep is not in it.
    let applied = daemon.meshctl(&["apply", "-f", "whole.yaml"]);
    assert_eq!(applied.code, 0, "{applied:?}");
    assert!(
        applied.stdout.contains("  + Service/extra => start: sleep 1000\n  - Service/keep => stop\n"),
        "{applied:?}"
    );
    daemon.wait_until_ready("extra");
    eventually("Service/keep is gone", || daemon.object("Service", "keep").is_none().then_some(()));
    assert_ne!(daemon.revision(), Some(revision));
}
