//! `meshctl validate` as a user runs it on a good folder: the example manifests
//! validate, the folder is found the documented way, exit codes, `-o json`, and
//! the node's `.env` checked against the manifests (design sections 2 and 5).

use serde_json::Value;

use crate::support::{Run, Workspace, examples_dir};

/// What `validate` prints for the example manifests.
const EXAMPLES_VALID: &str = "manifests: 9 objects in 7 files are valid\n";

/// A folder with one valid Node, to tell apart which folder was read.
fn lone_node(name: &str) -> String {
    format!(
        "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata:\n  name: {name}\nspec:\n  role: primary\n  address: {name}\n"
    )
}

fn assert_valid_examples(run: &Run) {
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, EXAMPLES_VALID, "{run:?}");
    assert_eq!(run.stderr, "", "{run:?}");
}

fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|error| panic!("stdout is not JSON ({error}): {run:?}"))
}

// --- the examples --------------------------------------------------------------

#[test]
fn the_example_manifests_validate() {
    let run = Workspace::new().with_examples().run(&["validate", "manifests"]);
    assert_valid_examples(&run);
}

#[test]
fn the_example_manifests_validate_in_place_by_absolute_path() {
    let dir = examples_dir();
    let run = Workspace::new().run(&["validate", dir.to_str().expect("a UTF-8 path")]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, format!("{}: 9 objects in 7 files are valid\n", dir.display()));
}

#[test]
fn the_example_manifests_validate_as_json() {
    let run = Workspace::new().with_examples().run(&["validate", "manifests", "-o", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stderr, "");
    let report = json(&run);
    assert_eq!(report["valid"], true);
    assert_eq!(report["objects"], 9);
    assert_eq!(report["files"], 7);
    assert_eq!(report["errorCount"], 0);
    assert_eq!(report["warningCount"], 0);
    assert_eq!(report["diagnostics"], Value::Array(vec![]));
}

#[test]
fn the_example_manifests_validate_against_each_example_node_identity() {
    for (node, role) in [("agent-home-mini", "primary"), ("agent-work-laptop", "satellite")] {
        let env = format!("AGENT_NODE_ID={node}\nAGENT_ROLE={role}\n");
        let run = Workspace::new().with_examples().file(".env", &env).run(&["validate"]);
        assert_valid_examples(&run);
    }
}

// --- which folder is read ------------------------------------------------------

#[test]
fn without_dir_validate_reads_manifests_in_the_current_folder() {
    let run = Workspace::new().with_examples().run(&["validate"]);
    assert_valid_examples(&run);
}

#[test]
fn without_dir_or_manifests_folder_validate_says_which_folder_is_missing() {
    let run = Workspace::new().run(&["validate"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.stderr, "error: manifests folder manifests does not exist\n");
    assert_eq!(run.stdout, "");
}

#[test]
fn mesh_manifests_in_the_environment_names_the_folder() {
    let workspace = Workspace::new()
        .file("manifests/broken.yaml", "not: [a manifest")
        .file("other/node.yaml", &lone_node("other-node"));
    let run = workspace.run_with_env(&["validate"], &[("MESH_MANIFESTS", "other")]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "other: 1 object in 1 file are valid\n");
}

#[test]
fn an_explicit_dir_wins_over_mesh_manifests() {
    let workspace = Workspace::new().with_examples().file("other/broken.yaml", "not: [a manifest");
    let run = workspace.run_with_env(&["validate", "manifests"], &[("MESH_MANIFESTS", "other")]);
    assert_valid_examples(&run);
}

#[test]
fn mesh_manifests_in_dot_env_names_the_folder() {
    let workspace = Workspace::new()
        .file("manifests/broken.yaml", "not: [a manifest")
        .file("other/node.yaml", &lone_node("other-node"))
        .file(".env", "AGENT_NODE_ID=other-node\nMESH_MANIFESTS=other\n");
    let run = workspace.run(&["validate"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "other: 1 object in 1 file are valid\n");
}

#[test]
fn mesh_manifests_in_an_env_file_is_relative_to_that_files_folder() {
    let workspace = Workspace::new()
        .file("manifests/broken.yaml", "not: [a manifest")
        .file("deploy/manifests/node.yaml", &lone_node("deployed"))
        .file("deploy/node.env", "AGENT_NODE_ID=deployed\nMESH_MANIFESTS=manifests\n");
    let run = workspace.run(&["validate", "--env-file", "deploy/node.env"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "deploy/manifests: 1 object in 1 file are valid\n");
}

#[test]
fn mesh_manifests_in_the_environment_wins_over_dot_env() {
    let workspace = Workspace::new()
        .file("from-file/broken.yaml", "not: [a manifest")
        .file("from-env/node.yaml", &lone_node("n1"))
        .file(".env", "AGENT_NODE_ID=n1\nMESH_MANIFESTS=from-file\n");
    let run = workspace.run_with_env(&["validate"], &[("MESH_MANIFESTS", "from-env")]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "from-env: 1 object in 1 file are valid\n");
}

// --- exit codes ----------------------------------------------------------------

#[test]
fn exit_code_is_one_for_an_invalid_folder() {
    let run = Workspace::new().file("manifests/broken.yaml", &lone_node("Broken")).run(&["validate"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.ends_with("\nmanifests: 1 error\n"), "{run:?}");
    assert_eq!(run.stdout, "");
}

#[test]
fn exit_code_is_one_for_a_missing_folder_with_a_clear_error() {
    let run = Workspace::new().with_examples().run(&["validate", "no-such-folder"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.stderr, "error: manifests folder no-such-folder does not exist\n");
    assert_eq!(run.stdout, "");
}

/// A file is a manifests input of its own (issue #18); a missing one is named
/// as a file.
#[test]
fn a_file_given_as_the_path_is_validated_and_a_missing_one_is_named() {
    let workspace = Workspace::new().file("mesh.yaml", &lone_node("x"));
    let run = workspace.run(&["validate", "mesh.yaml"]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (0, "mesh.yaml: 1 object in 1 file are valid\n", "")
    );
    let missing = workspace.run(&["validate", "gone.yaml"]);
    assert_eq!(missing.code, 1, "{missing:?}");
    assert_eq!(missing.stderr, "error: gone.yaml: no such file\n");
}

#[test]
fn an_empty_folder_is_valid() {
    let run = Workspace::new().file("manifests/README.md", "no manifests yet\n").run(&["validate"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "manifests: 0 objects in 0 files are valid\n");
}

#[test]
fn exit_code_is_two_for_usage_errors() {
    let workspace = Workspace::new().with_examples();
    for args in [
        &["validate", "--no-such-flag"][..],
        &["no-such-command"],
        &["validate", "-o", "xml"],
        &["validate", "manifests", "extra"],
        &[],
    ] {
        let run = workspace.run(args);
        assert_eq!(run.code, 2, "meshctl {args:?}: {run:?}");
        assert!(run.stderr.contains("--help"), "meshctl {args:?}: {run:?}");
        assert_eq!(run.stdout, "", "meshctl {args:?}");
    }
}

#[test]
fn an_unknown_flag_is_named_in_the_usage_error() {
    let run = Workspace::new().run(&["validate", "--lenient"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.starts_with("error: unexpected argument '--lenient' found\n"), "{run:?}");
}

#[test]
fn an_unknown_subcommand_is_named_in_the_usage_error() {
    let run = Workspace::new().run(&["valdiate"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.starts_with("error: unrecognized subcommand 'valdiate'\n"), "{run:?}");
}

// --- -o json -------------------------------------------------------------------

#[test]
fn json_output_carries_every_diagnostic_field_and_exits_one_when_invalid() {
    let workspace = Workspace::new().with_examples().file(
        "manifests/llm.yaml",
        &std::fs::read_to_string(examples_dir().join("llm.yaml"))
            .expect("read llm.yaml")
            .replace("    prefer: [agent-home-mini]", "    prefer: [agent-home-mac]"),
    );
    let run = workspace.run(&["validate", "-o", "json"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.stderr, "", "JSON mode prints nothing on stderr");
    let report = json(&run);
    assert_eq!(report["valid"], false);
    assert_eq!(report["objects"], 9);
    assert_eq!(report["files"], 7);
    assert_eq!(report["errorCount"], 1);
    assert_eq!(report["warningCount"], 0);
    let diagnostics = report["diagnostics"].as_array().expect("a diagnostics array");
    assert_eq!(diagnostics.len(), 1, "{report:#}");
    assert_eq!(
        diagnostics[0],
        serde_json::json!({
            "severity": "error",
            "file": "manifests/llm.yaml",
            "line": 34,
            "column": 14,
            "object": "Capability/llm_inference",
            "message": "placement.prefer names unknown node \"agent-home-mac\"",
            "help": "did you mean \"agent-home-mini\"?"
        })
    );
}

#[test]
fn json_output_lists_errors_and_warnings_with_their_severity() {
    let workspace = Workspace::new().file("manifests/nodes.yaml", &lone_node("home")).file(
        "manifests/sync.yaml",
        "apiVersion: agentmesh/v1alpha1\nkind: SyncFolder\nmetadata:\n  name: data\nspec:\n  paths:\n    home: ~/data\n    laptop: ~/data\n",
    );
    let run = workspace.run(&["validate", "-o", "json"]);
    assert_eq!(run.code, 1, "{run:?}");
    let report = json(&run);
    assert_eq!(report["errorCount"], 1, "{report:#}");
    assert_eq!(report["warningCount"], 0, "{report:#}");
    assert_eq!(report["diagnostics"][0]["severity"], "error");
    assert_eq!(report["diagnostics"][0]["line"], 8);
    assert_eq!(report["diagnostics"][0]["column"], 5);

    let one_path = Workspace::new().file("manifests/nodes.yaml", &lone_node("home")).file(
        "manifests/sync.yaml",
        "apiVersion: agentmesh/v1alpha1\nkind: SyncFolder\nmetadata:\n  name: data\nspec:\n  paths:\n    home: ~/data\n",
    );
    let run = one_path.run(&["validate", "-o", "json"]);
    assert_eq!(run.code, 0, "a warning alone is valid: {run:?}");
    let report = json(&run);
    assert_eq!(report["valid"], true);
    assert_eq!(report["warningCount"], 1);
    assert_eq!(report["diagnostics"][0]["severity"], "warning");
    assert!(report["diagnostics"][0].get("help").is_none(), "no help key without help: {report:#}");
}

// --- the node's identity: .env, --env-file, the environment ---------------------

#[test]
fn an_unknown_node_id_in_dot_env_is_an_error_at_its_line_with_did_you_mean() {
    let workspace = Workspace::new()
        .with_examples()
        .file(".env", "# this machine\nAGENT_NODE_ID=agent-home-mac\nMESH_API_KEY=not-checked-here\n");
    let run = workspace.run(&["validate"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        run.stderr,
        ".env:2:15: AGENT_NODE_ID: names no Node in the manifests: \"agent-home-mac\"\n \
         2 | AGENT_NODE_ID=agent-home-mac\n   \
         |               ^^^^^^^^^^^^^^\n   \
         = help: did you mean \"agent-home-mini\"?\n\
         \n\
         manifests: 1 error\n"
    );
    assert_eq!(run.stdout, "");
}

#[test]
fn a_role_that_disagrees_with_the_node_is_a_warning_and_exit_zero() {
    let workspace =
        Workspace::new().with_examples().file(".env", "AGENT_NODE_ID=agent-work-laptop\nAGENT_ROLE=primary\n");
    let run = workspace.run(&["validate"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stderr,
        ".env:2:12: AGENT_ROLE: warning: is \"primary\" but Node/agent-work-laptop says role satellite; \
         the Node manifest wins\n \
         2 | AGENT_ROLE=primary\n   \
         |            ^^^^^^^\n\n"
    );
    assert_eq!(run.stdout, "manifests: 9 objects in 7 files are valid, 1 warning\n");
}

#[test]
fn a_role_that_is_no_role_is_an_error_with_did_you_mean() {
    let workspace = Workspace::new().with_examples().file(".env", "AGENT_NODE_ID=agent-home-mini\nAGENT_ROLE=primry\n");
    let run = workspace.run(&["validate"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        run.stderr,
        ".env:2:12: AGENT_ROLE: \"primry\" is not a role: use primary or satellite\n \
         2 | AGENT_ROLE=primry\n   \
         |            ^^^^^^\n   \
         = help: did you mean \"primary\"?\n\
         \n\
         manifests: 1 error\n"
    );
}

#[test]
fn a_dot_env_without_node_id_is_an_error() {
    let workspace = Workspace::new().with_examples().file(".env", "MESH_API_KEY=k\n");
    let run = workspace.run(&["validate"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        run.stderr,
        ".env:1:1: AGENT_NODE_ID: AGENT_NODE_ID is not set: it names this node's Node manifest\n\nmanifests: 1 error\n"
    );
}

#[test]
fn env_file_flag_is_checked_like_dot_env() {
    let workspace = Workspace::new()
        .with_examples()
        .file(".env", "AGENT_NODE_ID=agent-home-mini\n")
        .file("conf/laptop.env", "export AGENT_NODE_ID = agent-home-mac\n");
    let run = workspace.run(&["validate", "--env-file", "conf/laptop.env"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        run.stderr,
        "conf/laptop.env:1:24: AGENT_NODE_ID: names no Node in the manifests: \"agent-home-mac\"\n \
         1 | export AGENT_NODE_ID = agent-home-mac\n   \
         |                        ^^^^^^^^^^^^^^\n   \
         = help: did you mean \"agent-home-mini\"?\n\
         \n\
         manifests: 1 error\n"
    );
}

#[test]
fn env_file_flag_may_come_before_the_subcommand() {
    let workspace = Workspace::new()
        .with_examples()
        .file("conf/laptop.env", "AGENT_NODE_ID=agent-work-laptop\nAGENT_ROLE=primary\n");
    let run = workspace.run(&["--env-file", "conf/laptop.env", "validate"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.starts_with("conf/laptop.env:2:12: AGENT_ROLE: warning: "), "{run:?}");
}

#[test]
fn a_missing_env_file_is_an_error_naming_it() {
    let run = Workspace::new().with_examples().run(&["validate", "--env-file", "nope.env"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.starts_with("error: cannot read env file nope.env: "), "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
}

#[test]
fn the_process_environment_overrides_dot_env() {
    let workspace = Workspace::new().with_examples().file(".env", "AGENT_NODE_ID=agent-home-mac\n");
    let run = workspace.run_with_env(&["validate"], &[("AGENT_NODE_ID", "agent-home-mini")]);
    assert_valid_examples(&run);

    let workspace = Workspace::new().with_examples().file(".env", "AGENT_NODE_ID=agent-home-mini\n");
    let run = workspace.run_with_env(&["validate"], &[("AGENT_NODE_ID", "agent-home-mac")]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        run.stderr,
        "(environment):1:1: AGENT_NODE_ID: names no Node in the manifests: \"agent-home-mac\"\n   \
         = help: did you mean \"agent-home-mini\"?\n\
         \n\
         manifests: 1 error\n"
    );
}

#[test]
fn without_dot_env_a_node_id_in_the_environment_is_still_checked() {
    let run = Workspace::new().with_examples().run_with_env(&["validate"], &[("AGENT_NODE_ID", "agent-work-laptp")]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.starts_with(
            "(environment):1:1: AGENT_NODE_ID: names no Node in the manifests: \"agent-work-laptp\"\n   \
             = help: did you mean \"agent-work-laptop\"?\n"
        ),
        "{run:?}"
    );
}

#[test]
fn identity_problems_are_in_the_json_report() {
    let workspace = Workspace::new().with_examples().file(".env", "AGENT_NODE_ID=agent-home-mac\n");
    let run = workspace.run(&["validate", "-o", "json"]);
    assert_eq!(run.code, 1, "{run:?}");
    let report = json(&run);
    assert_eq!(report["errorCount"], 1);
    assert_eq!(
        report["diagnostics"][0],
        serde_json::json!({
            "severity": "error",
            "file": ".env",
            "line": 1,
            "column": 15,
            "object": "AGENT_NODE_ID",
            "message": "names no Node in the manifests: \"agent-home-mac\"",
            "help": "did you mean \"agent-home-mini\"?"
        })
    );
}
