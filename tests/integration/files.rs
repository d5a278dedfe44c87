//! `meshctl validate` on files, folders and standard input (issue #18, point
//! 4): a file is checked for its own problems, a reference to an object in no
//! given file warns unless `--strict`, and the pre-commit hook the README shows
//! blocks a commit of a bad staged manifest in a real Git repository.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::{Workspace, git};

const NODE: &str = "apiVersion: agentmesh/v1alpha1
kind: Node
metadata:
  name: mini
spec:
  role: primary
  address: mini
";

const SERVICE: &str = "apiVersion: agentmesh/v1alpha1
kind: Service
metadata:
  name: ollama
spec:
  nodes: [mini]
  command: [ollama, serve]
";

/// Names the Service `ollama` and the Node `mini`, declared in other files.
const CAPABILITY: &str = "apiVersion: agentmesh/v1alpha1
kind: Capability
metadata:
  name: llm
spec:
  service: ollama
  provider: ollama
  placement:
    prefer: [mini]
  endpoint:
    port: 11434
";

/// A Service with a misspelt field on line 6, so no nodes (line 5).
const BAD_SERVICE: &str = "apiVersion: agentmesh/v1alpha1
kind: Service
metadata:
  name: broken
spec:
  nodez: [mini]
  command: [sleep, '1']
";

/// The pre-commit hook of the README, as written there: it checks the staged
/// content of the manifests under `manifests/` as files of their own.
const PRE_COMMIT_HOOK: &str = r#"#!/bin/sh
# .git/hooks/pre-commit: refuse a commit whose staged manifests do not validate.
# Checks what is staged, not the work tree. A reference to an object in a file
# not staged is a warning; add --strict to refuse it too.
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
git diff --cached --name-only -z --diff-filter=ACMR -- 'manifests/*.yaml' 'manifests/*.yml' |
  git checkout-index -z --stdin --prefix="$tmp/" || exit 1
cd "$tmp" || exit 1
set --
IFS='
'
for file in $(find . -type f | sort); do set -- "$@" -f "${file#./}"; done
[ $# -eq 0 ] || meshctl validate "$@"
"#;

fn manifests() -> Workspace {
    Workspace::new()
        .file("manifests/node.yaml", NODE)
        .file("manifests/ollama.yaml", SERVICE)
        .file("manifests/llm.yaml", CAPABILITY)
}

#[test]
fn validate_takes_a_folder_a_file_several_files_and_standard_input() {
    let workspace = manifests();
    let cases: [(&[&str], &str); 4] = [
        (&["validate", "manifests"], "manifests: 3 objects in 3 files are valid\n"),
        (&["validate", "manifests/node.yaml"], "manifests/node.yaml: 1 object in 1 file are valid\n"),
        (
            &["validate", "-f", "manifests/node.yaml", "-f", "manifests/ollama.yaml", "-f", "manifests/llm.yaml"],
            "manifests/node.yaml, manifests/ollama.yaml, manifests/llm.yaml: 3 objects in 3 files are valid\n",
        ),
        (
            &["validate", "-f", "manifests/node.yaml", "-f", "manifests"],
            "manifests/node.yaml, manifests: 3 objects in 3 files are valid\n",
        ),
    ];
    for (args, stdout) in cases {
        let run = workspace.run(args);
        assert_eq!((run.code, run.stdout.as_str(), run.stderr.as_str()), (0, stdout, ""), "{args:?}");
    }

    let stream = format!("{NODE}---\n{SERVICE}---\n{CAPABILITY}");
    let run = workspace.run_with_stdin(&["validate", "-"], &stream);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (0, "<stdin>: 3 objects in 1 file are valid\n", "")
    );
}

#[test]
fn standard_input_is_named_stdin_with_the_line_of_each_problem() {
    // The bad Service is the second document, from line 9: its `spec:` is on line 13.
    let stream = format!("{NODE}---\n{BAD_SERVICE}");
    let run = Workspace::new().run_with_stdin(&["validate", "-f", "-"], &stream);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        run.stderr,
        "<stdin>:13:1: Service/broken: the spec needs nodes or nodeSelector\n 13 | spec:\n    | ^^^^\n\n\
         <stdin>:14:3: Service/broken: unknown field `nodez`, expected one of nodes, nodeSelector, command, env, \
         workingDir, healthCheck, restart, backoff, stopGracePeriod\n 14 |   nodez: [mini]\n    |   ^^^^^\n    \
         = help: did you mean \"nodes\"?\n\n<stdin>: 2 errors\n"
    );
    assert_eq!(run.stdout, "");
}

#[test]
fn a_reference_outside_the_given_file_warns_and_strict_makes_it_an_error() {
    let workspace = manifests();
    let run = workspace.run(&["validate", "manifests/llm.yaml"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "manifests/llm.yaml: 1 object in 1 file are valid, 2 warnings\n");
    let firsts: Vec<&str> = run.stderr.lines().filter(|line| line.starts_with("manifests/")).collect();
    assert_eq!(
        firsts,
        [
            "manifests/llm.yaml:6:12: Capability/llm: warning: service names Service \"ollama\", which is in none of the given files",
            "manifests/llm.yaml:9:14: Capability/llm: warning: placement.prefer names node \"mini\", which is in none of the given files",
        ],
        "{run:?}"
    );

    let strict = workspace.run(&["validate", "--strict", "manifests/llm.yaml"]);
    assert_eq!(strict.code, 1, "{strict:?}");
    assert!(strict.stderr.contains("Capability/llm: service names unknown Service \"ollama\""), "{strict:?}");
    assert!(strict.stderr.ends_with("manifests/llm.yaml: 2 errors\n"), "{strict:?}");

    // Given together, the files resolve each other: nothing to warn about.
    let together = workspace.run(&[
        "validate",
        "-f",
        "manifests/llm.yaml",
        "-f",
        "manifests/ollama.yaml",
        "-f",
        "manifests/node.yaml",
    ]);
    assert_eq!((together.code, together.stderr.as_str()), (0, ""), "{together:?}");
}

#[test]
fn a_whole_folder_keeps_references_to_missing_objects_as_errors() {
    let run =
        Workspace::new().file("manifests/node.yaml", NODE).file("manifests/llm.yaml", CAPABILITY).run(&["validate"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("Capability/llm: service names unknown Service \"ollama\""), "{run:?}");
    assert!(run.stderr.ends_with("manifests: 1 error\n"), "{run:?}");
}

#[test]
fn validate_json_carries_the_warnings_with_their_severity() {
    let run = manifests().run(&["validate", "manifests/llm.yaml", "-o", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let report: Value = serde_json::from_str(&run.stdout).expect("validate -o json is JSON");
    assert_eq!(report["valid"], true);
    assert_eq!((report["errorCount"].as_u64(), report["warningCount"].as_u64()), (Some(0), Some(2)));
    let diagnostics = report["diagnostics"].as_array().expect("diagnostics");
    let seen: Vec<(&str, &str, u64)> = diagnostics
        .iter()
        .map(|d| (d["severity"].as_str().unwrap(), d["file"].as_str().unwrap(), d["line"].as_u64().unwrap()))
        .collect();
    assert_eq!(seen, [("warning", "manifests/llm.yaml", 6), ("warning", "manifests/llm.yaml", 9)]);
}

#[test]
fn a_path_and_filename_together_are_a_usage_error() {
    let run = manifests().run(&["validate", "manifests", "-f", "manifests/node.yaml"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("cannot be used with"), "{run:?}");
}

// --- the pre-commit hook -------------------------------------------------------------

/// `git commit` in `repo` with the hook, `meshctl` on its PATH: whether it
/// committed, and what the hook printed.
fn commit(repo: &Path, message: &str) -> (bool, String) {
    let meshctl = assert_cmd::cargo::cargo_bin("meshctl");
    let path = std::env::join_paths(
        std::iter::once(meshctl.parent().expect("a folder").to_owned())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .expect("a PATH");
    let output = Command::new("git")
        .current_dir(repo)
        .env("PATH", path)
        .env("XDG_CONFIG_HOME", repo.join(".no-config"))
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("MESH_MANIFESTS")
        .env_remove("AGENT_NODE_ID")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.invalid", "commit", "--quiet", "-m", message])
        .output()
        .expect("git commit runs");
    let printed = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), printed)
}

fn write(repo: &Path, relative: &str, text: &str) {
    let path = repo.join(relative);
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("create folders");
    std::fs::write(path, text).expect("write");
}

#[test]
fn the_pre_commit_hook_blocks_a_bad_staged_manifest_and_warns_on_references_elsewhere() {
    use std::os::unix::fs::PermissionsExt as _;

    let readme = include_str!("../../README.md");
    assert!(readme.contains(&format!("```sh\n{PRE_COMMIT_HOOK}```")), "the README shows this hook, word for word");
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = dir.path();
    git(repo, &["init", "--quiet", "-b", "main"]);
    let hook = repo.join(".git/hooks/pre-commit");
    write(repo, ".git/hooks/pre-commit", PRE_COMMIT_HOOK);
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    // Good files pass.
    write(repo, "manifests/node.yaml", NODE);
    write(repo, "manifests/ollama.yaml", SERVICE);
    write(repo, "README.txt", "not a manifest: the hook leaves it alone\n");
    git(repo, &["add", "--all"]);
    let (committed, printed) = commit(repo, "nodes and services");
    assert!(committed, "{printed}");
    assert_eq!(printed, "manifests/node.yaml, manifests/ollama.yaml: 2 objects in 2 files are valid\n");

    // A bad staged file blocks the commit, named as in the repository.
    write(repo, "manifests/broken.yaml", BAD_SERVICE);
    git(repo, &["add", "manifests/broken.yaml"]);
    let head = git(repo, &["rev-parse", "HEAD"]);
    let (committed, printed) = commit(repo, "broken");
    assert!(!committed, "{printed}");
    assert!(
        printed.starts_with("manifests/broken.yaml:5:1: Service/broken: the spec needs nodes or nodeSelector\n"),
        "{printed}"
    );
    assert!(printed.ends_with("manifests/broken.yaml: 2 errors\n"), "{printed}");
    assert_eq!(git(repo, &["rev-parse", "HEAD"]), head, "nothing was committed");

    // What is staged is checked, not the work tree: fixing the file without
    // staging the fix still blocks.
    write(repo, "manifests/broken.yaml", SERVICE.replace("ollama", "fixed").as_str());
    let (committed, printed) = commit(repo, "still broken");
    assert!(!committed, "{printed}");
    git(repo, &["rm", "--quiet", "--force", "manifests/broken.yaml"]);

    // A Capability naming the Service and Node of committed, unstaged files
    // only warns, and the commit goes through.
    write(repo, "manifests/llm.yaml", CAPABILITY);
    git(repo, &["add", "manifests/llm.yaml"]);
    let (committed, printed) = commit(repo, "a capability");
    assert!(committed, "{printed}");
    assert!(
        printed.contains("manifests/llm.yaml:6:12: Capability/llm: warning: service names Service \"ollama\", which is in none of the given files"),
        "{printed}"
    );
    assert!(printed.ends_with("manifests/llm.yaml: 1 object in 1 file are valid, 2 warnings\n"), "{printed}");
    assert_ne!(git(repo, &["rev-parse", "HEAD"]), head, "the capability was committed");
}
