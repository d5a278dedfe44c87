//! `meshctl validate` keeps to its folder and to its lines (issue #13, point 6):
//! a symlink out of the manifests folder is named in a warning and never
//! followed, so no line of a file outside is ever printed; a value holding a
//! newline or a terminal escape cannot forge a diagnostic line; ten thousand
//! duplicated documents are checked quickly.

use std::os::unix::fs::symlink;
use std::time::{Duration, Instant};

use crate::support::Workspace;

const HOME: &str =
    "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata:\n  name: home\nspec:\n  role: primary\n  address: home\n";
const LAPTOP: &str = "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata:\n  name: laptop\nspec:\n  role: satellite\n  address: laptop\n";
/// What a folder beside the manifests holds: invalid, so that reading it would
/// print its lines.
const SECRET: &str =
    "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata:\n  name: SECRET-NAME\nspec: {SECRET-LINE: 1}\n";

#[test]
fn symlinks_out_of_the_folder_are_warned_about_and_never_followed() {
    let workspace = Workspace::new()
        .file("manifests/nodes.yaml", HOME)
        .file("manifests/.versions/v2.yaml", LAPTOP)
        .file("secret/leak.yaml", SECRET)
        .file("secret/deeper/more.yaml", SECRET);
    let manifests = workspace.path().join("manifests");
    for (link, target) in [
        ("loop", ".."),
        ("sibling", "../secret"),
        ("leak.yaml", "../secret/leak.yaml"),
        ("self", "."),
        ("cycle-a", "cycle-b"),
        ("cycle-b", "cycle-a"),
        ("gone.yaml", "missing.yaml"),
        // Inside the folder: a file read anyway is not read twice; one in a
        // hidden folder is read under the link's name.
        ("alias.yaml", "nodes.yaml"),
        ("current.yaml", ".versions/v2.yaml"),
    ] {
        symlink(target, manifests.join(link)).expect("symlink");
    }

    let started = Instant::now();
    let run = workspace.run(&["validate", "manifests"]);
    let elapsed = started.elapsed();

    assert!(elapsed < Duration::from_secs(5), "validate took {elapsed:?}");
    assert!(!format!("{run:?}").contains("SECRET"), "a line from outside the folder was printed: {run:?}");
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "manifests: 2 objects in 2 files are valid, 7 warnings\n");
    let outside = workspace.path().canonicalize().expect("canonical path");
    let outside = outside.display();
    let expected = [
        "manifests/cycle-a:1:1: symlink: warning: not followed: it is a loop".to_owned(),
        "manifests/cycle-b:1:1: symlink: warning: not followed: it is a loop".to_owned(),
        "manifests/gone.yaml:1:1: symlink: warning: not followed: its target cannot be reached (entity not found)"
            .to_owned(),
        format!(
            "manifests/leak.yaml:1:1: symlink: warning: not followed: it leads outside the manifests folder, to {outside}/secret/leak.yaml"
        ),
        format!("manifests/loop:1:1: symlink: warning: not followed: it leads outside the manifests folder, to {outside}"),
        "manifests/self:1:1: symlink: warning: not followed: it leads to a folder inside the manifests folder, which is read where it is".to_owned(),
        format!(
            "manifests/sibling:1:1: symlink: warning: not followed: it leads outside the manifests folder, to {outside}/secret"
        ),
    ];
    let printed: Vec<&str> = run.stderr.lines().filter(|line| !line.is_empty()).collect();
    assert_eq!(printed, expected);

    let json = workspace.run(&["validate", "manifests", "-o", "json"]);
    let report: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON report");
    assert_eq!((report["objects"].as_u64(), report["files"].as_u64()), (Some(2), Some(2)), "{report}");
}

#[test]
fn a_value_or_file_name_with_a_newline_cannot_forge_a_diagnostic_line() {
    let forged = "manifests/x.yaml:1:1: Node/x: forged";
    let workspace = Workspace::new()
        .file(
            "manifests/nodes.yaml",
            &format!(
                "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata:\n  name: \"a\\n{forged}\"\nspec:\n  role: primary\n  address: home\n"
            ),
        )
        .file("manifests/escape.yaml", "apiVersion: agentmesh/v1alpha1\nkind: \"\u{1b}[2J\u{1b}[31mNode\"\n")
        .file(&format!("manifests/evil\n{forged}.yaml"), "kind: Nope\n");

    let run = workspace.run(&["validate", "manifests"]);

    assert_eq!(run.code, 1, "{run:?}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert!(lines.iter().all(|line| !line.starts_with("manifests/x.yaml")), "a line was forged:\n{}", run.stderr);
    assert!(!run.stderr.contains(|c: char| c.is_control() && c != '\n'), "a control character was printed: {run:?}");
    for escaped in [
        "metadata.name \"a\\nmanifests/x.yaml:1:1: Node/x: forged\"",
        "manifests/evil\\nmanifests/x.yaml:1:1: Node/x: forged.yaml:1:1:",
        "manifests/escape.yaml:2:8: document 1: unexpected character: `\\u{1b}'",
        " 2 | kind: \"\\u{1b}[2J\\u{1b}[31mNode\"",
    ] {
        assert!(run.stderr.contains(escaped), "{escaped:?} is not in:\n{}", run.stderr);
    }
}

#[test]
fn ten_thousand_duplicated_documents_are_checked_quickly_with_one_error_each() {
    let text = vec![HOME; 10_000].join("---\n");
    let workspace = Workspace::new().file("manifests/nodes.yaml", &text);

    let started = Instant::now();
    let run = workspace.run(&["validate", "manifests"]);
    let elapsed = started.elapsed();

    // A debug build; the release bench holds the real figure (it was 15 s in
    // release when each diagnostic looked its line up from the top of the file).
    assert!(elapsed < Duration::from_secs(30), "validate took {elapsed:?}");
    assert_eq!(run.code, 1, "{run:?}");
    let twice =
        run.stderr.matches(": Node/home: Node/home is declared twice; first at manifests/nodes.yaml:4:9\n").count();
    assert_eq!(twice, 9_999);
    assert!(run.stderr.ends_with("\nmanifests: 9999 errors\n"), "{}", &run.stderr[run.stderr.len() - 200..]);
}
