//! The JSON Schemas in `schemas/`: that they are what `meshctl schema` writes, and
//! that they agree with the Rust model both ways. An independent validator (the
//! `jsonschema` crate, on the committed files) checks the example manifests, a table
//! of broken documents, and generated documents, valid and broken, against
//! `meshctl validate` and `agentmesh::manifest::validate`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use agentmesh::manifest::schema::{ANY_SCHEMA_FILE, schema_file};
use agentmesh::manifest::{DurationSpec, Kind, MacAddress, SourceFile, name_problem, validate};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Map, Value, json};

use crate::support::{Workspace, examples_dir};

const REGENERATE: &str = "run `cargo run -- schema --out schemas` and commit the result";

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

/// The files of `dir` (not recursive), by name.
fn files_in(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", dir.display()))
        .map(|entry| entry.expect("folder entry").path())
        .filter(|path| path.is_file())
        .map(|path| {
            let name = path.file_name().expect("a file name").to_string_lossy().into_owned();
            (name, std::fs::read(&path).expect("read file"))
        })
        .collect()
}

/// Every committed schema, compiled once for the whole test binary.
static SCHEMAS: LazyLock<BTreeMap<String, jsonschema::Validator>> = LazyLock::new(|| {
    files_in(&schemas_dir())
        .into_iter()
        .filter(|(name, _)| name.ends_with(".schema.json"))
        .map(|(name, bytes)| {
            let schema: Value =
                serde_json::from_slice(&bytes).unwrap_or_else(|error| panic!("schemas/{name} is not JSON: {error}"));
            let validator = jsonschema::draft202012::new(&schema)
                .unwrap_or_else(|error| panic!("schemas/{name} is not a valid JSON Schema: {error}"));
            (name, validator)
        })
        .collect()
});

/// Why the committed schema `file` rejects `document`; empty when it accepts it.
fn schema_errors(file: &str, document: &Value) -> Vec<String> {
    let validator = SCHEMAS.get(file).unwrap_or_else(|| panic!("schemas/{file} does not exist"));
    validator.iter_errors(document).map(|error| format!("{}: {error}", error.instance_path())).collect()
}

/// The schema of the kind `document` claims, if it claims a known one.
fn kind_schema(document: &Value) -> Option<String> {
    document.get("kind").and_then(Value::as_str).and_then(Kind::parse).map(schema_file)
}

/// The documents of a YAML file, read by the YAML library alone (not by the
/// manifest parser under test), empty ones left out.
fn yaml_documents(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap_or_else(|error| panic!("not YAML: {error}\n{text}"))
        .into_iter()
        .filter(|document| !document.is_null())
        .collect()
}

/// Every example manifest file, recursively, in a stable order.
fn example_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read examples folder") {
            let path = entry.expect("folder entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&examples_dir(), &mut files);
    files.sort();
    assert!(!files.is_empty(), "no example manifests under {}", examples_dir().display());
    files
}

fn shown(path: &Path) -> String {
    path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(path).display().to_string()
}

// ---------------------------------------------------------------------------
// schemas/ is what `meshctl schema` writes

#[test]
fn committed_schemas_are_exactly_what_meshctl_schema_writes() {
    let workspace = Workspace::new();
    let run = workspace.run(&["schema", "--out", "generated"]);
    assert_eq!(run.code, 0, "meshctl schema --out failed:\n{}", run.stderr);
    let generated = files_in(&workspace.path().join("generated"));
    let committed = files_in(&schemas_dir());

    let mut problems = Vec::new();
    for (name, text) in &generated {
        match committed.get(name) {
            None => problems.push(format!("schemas/{name} is missing")),
            Some(old) if old != text => {
                let line = String::from_utf8_lossy(old)
                    .lines()
                    .zip(String::from_utf8_lossy(text).lines())
                    .position(|(a, b)| a != b)
                    .map_or_else(|| "at the end".to_owned(), |i| format!("from line {}", i + 1));
                problems.push(format!("schemas/{name} differs from the generated one {line}"));
            }
            Some(_) => {}
        }
    }
    for name in committed.keys().filter(|name| !generated.contains_key(*name)) {
        problems.push(format!("schemas/{name} is not written by `meshctl schema`: delete it"));
    }
    assert!(problems.is_empty(), "schemas/ is out of date; {REGENERATE}:\n  {}", problems.join("\n  "));
}

#[test]
fn meshctl_schema_writes_one_file_per_kind_and_one_for_any_document() {
    let workspace = Workspace::new();
    let run = workspace.run(&["schema", "--out", "out"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let written: Vec<String> = files_in(&workspace.path().join("out")).into_keys().collect();
    let expected = [
        "capability.schema.json",
        "handoffpolicy.schema.json",
        "manifest.schema.json",
        "mesh.schema.json",
        "node.schema.json",
        "service.schema.json",
        "syncfolder.schema.json",
    ];
    assert_eq!(written, expected);
}

#[test]
fn meshctl_schema_without_out_prints_the_committed_any_document_schema() {
    let run = Workspace::new().run(&["schema"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let committed = std::fs::read_to_string(schemas_dir().join(ANY_SCHEMA_FILE)).expect("read schema");
    assert!(run.stdout == committed, "`meshctl schema` prints another {ANY_SCHEMA_FILE}; {REGENERATE}");
}

// ---------------------------------------------------------------------------
// The example manifests

#[test]
fn every_example_document_validates_against_its_kind_schema_and_the_any_document_schema() {
    let mut failures = Vec::new();
    let mut kinds_seen = std::collections::BTreeSet::new();
    for path in example_files() {
        let text = std::fs::read_to_string(&path).expect("read example");
        for (index, document) in yaml_documents(&text).iter().enumerate() {
            let place = format!("{} document {}", shown(&path), index + 1);
            let Some(kind_file) = kind_schema(document) else {
                failures.push(format!("{place}: no known kind"));
                continue;
            };
            kinds_seen.insert(kind_file.clone());
            for file in [kind_file.as_str(), ANY_SCHEMA_FILE] {
                for error in schema_errors(file, document) {
                    failures.push(format!("{place}: {file}: {error}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "the schema rejects example manifests:\n  {}", failures.join("\n  "));
    assert_eq!(kinds_seen.len(), Kind::ALL.len(), "the examples should show every kind: {kinds_seen:?}");
}

#[test]
fn every_example_file_names_an_existing_schema_that_accepts_it_on_its_first_line() {
    let schemas = schemas_dir().canonicalize().expect("schemas/ exists");
    let mut failures = Vec::new();
    for path in example_files() {
        let text = std::fs::read_to_string(&path).expect("read example");
        let first = text.lines().next().unwrap_or_default();
        let Some(target) = first.strip_prefix("# yaml-language-server: $schema=") else {
            failures.push(format!("{}: first line is not `# yaml-language-server: $schema=…`", shown(&path)));
            continue;
        };
        let resolved = path.parent().expect("a folder").join(target.trim());
        let Ok(resolved) = resolved.canonicalize() else {
            failures.push(format!("{}: $schema={target} does not exist", shown(&path)));
            continue;
        };
        if resolved.parent() != Some(schemas.as_path()) {
            failures.push(format!("{}: $schema={target} is not in schemas/", shown(&path)));
            continue;
        }
        let file = resolved.file_name().expect("a file name").to_string_lossy().into_owned();
        for (index, document) in yaml_documents(&text).iter().enumerate() {
            for error in schema_errors(&file, document) {
                failures.push(format!("{} document {}: {file}: {error}", shown(&path), index + 1));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------
// Hand-written documents: what the schema rejects, `meshctl validate` rejects

/// The valid Node that every document of the tables below is validated next to.
const VALID_NODE: &str = "\
apiVersion: agentmesh/v1alpha1
kind: Node
metadata:
  name: home
  labels: {zone: a}
spec:
  role: primary
  address: home
";

/// Documents that each break one rule the schema states.
const REJECTED: &[(&str, &str)] = &[
    (
        "an unknown field in spec (a typo)",
        "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: laptop}\nspec:\n  role: satellite\n  address: laptop\n  apiPrt: 8000\n",
    ),
    (
        "an unknown top-level field",
        "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: laptop}\nspec: {role: satellite, address: laptop}\nstatus: {}\n",
    ),
    (
        "an unknown field in metadata",
        "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: laptop, namespace: home}\nspec: {role: satellite, address: laptop}\n",
    ),
    (
        "a role that is not in the enum",
        "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: laptop}\nspec: {role: leader, address: laptop}\n",
    ),
    (
        "a restart policy that is not in the enum",
        "apiVersion: agentmesh/v1alpha1\nkind: Service\nmetadata: {name: web}\nspec:\n  nodes: [home]\n  command: [web]\n  restart: sometimes\n",
    ),
    (
        "port 0",
        "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: laptop}\nspec: {role: satellite, address: laptop, apiPort: 0}\n",
    ),
    (
        "port 70000",
        "apiVersion: agentmesh/v1alpha1\nkind: Service\nmetadata: {name: web}\nspec:\n  nodes: [home]\n  command: [web]\n  healthCheck:\n    tcp: {port: 70000}\n",
    ),
    (
        "a wake MAC address with a separator missing",
        "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: laptop}\nspec:\n  role: satellite\n  address: laptop\n  wake: {mac: \"aabb:cc:dd:ee:ff\", address: 192.168.1.255}\n",
    ),
    (
        "a wake without a MAC address",
        "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: laptop}\nspec:\n  role: satellite\n  address: laptop\n  wake: {address: 192.168.1.255}\n",
    ),
    (
        "a wake port 0",
        "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: laptop}\nspec:\n  role: satellite\n  address: laptop\n  wake: {mac: \"aa:bb:cc:dd:ee:ff\", address: 192.168.1.255, port: 0}\n",
    ),
    (
        "a duration without a known unit",
        "apiVersion: agentmesh/v1alpha1\nkind: Service\nmetadata: {name: web}\nspec:\n  nodes: [home]\n  command: [web]\n  stopGracePeriod: 10sec\n",
    ),
    (
        "a zero duration",
        "apiVersion: agentmesh/v1alpha1\nkind: Service\nmetadata: {name: web}\nspec:\n  nodes: [home]\n  command: [web]\n  stopGracePeriod: 0s\n",
    ),
    (
        "a fractional duration",
        "apiVersion: agentmesh/v1alpha1\nkind: Mesh\nmetadata: {name: mesh}\nspec:\n  reconcile: {resyncInterval: 1.5h}\n",
    ),
    (
        "a name with capitals",
        "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: Laptop}\nspec: {role: satellite, address: laptop}\n",
    ),
    (
        "a name starting with a dash",
        "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: -laptop}\nspec: {role: satellite, address: laptop}\n",
    ),
    (
        "a name of 64 characters",
        "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}\nspec: {role: satellite, address: laptop}\n",
    ),
    (
        "a secret written in plain text",
        "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: laptop}\nspec:\n  role: satellite\n  address: laptop\n  syncthing:\n    apiKey: hunter2\n",
    ),
    (
        "a secret reference with both env and file",
        "apiVersion: agentmesh/v1alpha1\nkind: Mesh\nmetadata: {name: mesh}\nspec:\n  auth:\n    apiKey: {env: MESH_API_KEY, file: /etc/key}\n",
    ),
    ("a missing spec", "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: laptop}\n"),
    (
        "a missing required spec field",
        "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: laptop}\nspec: {address: laptop}\n",
    ),
    (
        "a wrong apiVersion",
        "apiVersion: agentmesh/v1\nkind: Node\nmetadata: {name: laptop}\nspec: {role: satellite, address: laptop}\n",
    ),
    (
        "an unknown kind",
        "apiVersion: agentmesh/v1alpha1\nkind: Nodes\nmetadata: {name: laptop}\nspec: {role: satellite, address: laptop}\n",
    ),
    (
        "another kind's spec under a kind",
        "apiVersion: agentmesh/v1alpha1\nkind: Service\nmetadata: {name: laptop}\nspec: {role: satellite, address: laptop}\n",
    ),
    (
        "a port written as a string",
        "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: laptop}\nspec: {role: satellite, address: laptop, apiPort: \"8000\"}\n",
    ),
    (
        "a command written as one string",
        "apiVersion: agentmesh/v1alpha1\nkind: Service\nmetadata: {name: web}\nspec:\n  nodes: [home]\n  command: web --port 80\n",
    ),
    (
        "a number where text is expected",
        "apiVersion: agentmesh/v1alpha1\nkind: Service\nmetadata: {name: web}\nspec:\n  nodes: [home]\n  command: [web, --port, 8080]\n",
    ),
    (
        "a boolean label value",
        "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata:\n  name: laptop\n  labels: {gpu: true}\nspec: {role: satellite, address: laptop}\n",
    ),
    (
        "a health check with both http and tcp",
        "apiVersion: agentmesh/v1alpha1\nkind: Service\nmetadata: {name: web}\nspec:\n  nodes: [home]\n  command: [web]\n  healthCheck:\n    http: {port: 80}\n    tcp: {port: 80}\n",
    ),
    (
        "a health check with neither http nor tcp",
        "apiVersion: agentmesh/v1alpha1\nkind: Service\nmetadata: {name: web}\nspec:\n  nodes: [home]\n  command: [web]\n  healthCheck: {interval: 5s}\n",
    ),
    (
        "a Service placed by nodes and by nodeSelector",
        "apiVersion: agentmesh/v1alpha1\nkind: Service\nmetadata: {name: web}\nspec:\n  nodes: [home]\n  nodeSelector: {role: primary}\n  command: [web]\n",
    ),
    (
        "a Service placed nowhere",
        "apiVersion: agentmesh/v1alpha1\nkind: Service\nmetadata: {name: web}\nspec:\n  nodes: []\n  command: [web]\n",
    ),
    (
        "an empty command",
        "apiVersion: agentmesh/v1alpha1\nkind: Service\nmetadata: {name: web}\nspec:\n  nodes: [home]\n  command: []\n",
    ),
    (
        "an env name that is not a variable name",
        "apiVersion: agentmesh/v1alpha1\nkind: Service\nmetadata: {name: web}\nspec:\n  nodes: [home]\n  command: [web]\n  env: {1PORT: \"80\"}\n",
    ),
    (
        "a health check path without its leading slash",
        "apiVersion: agentmesh/v1alpha1\nkind: Service\nmetadata: {name: web}\nspec:\n  nodes: [home]\n  command: [web]\n  healthCheck:\n    http: {port: 80, path: health}\n",
    ),
    (
        "an empty placement",
        "apiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {name: llm}\nspec:\n  provider: http\n  placement: {prefer: []}\n  endpoint: {port: 80}\n",
    ),
    (
        "a client env name that is not a variable name",
        "apiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {name: llm}\nspec:\n  provider: http\n  placement: {prefer: [home]}\n  endpoint: {port: 80}\n  clientEnv: {LLM-URL: \"http://{{host}}\"}\n",
    ),
    (
        "a SyncFolder on no node",
        "apiVersion: agentmesh/v1alpha1\nkind: SyncFolder\nmetadata: {name: data}\nspec:\n  paths: {}\n",
    ),
    (
        "a Syncthing API URL without a scheme",
        "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: laptop}\nspec:\n  role: satellite\n  address: laptop\n  syncthing:\n    apiUrl: 127.0.0.1:8384\n    apiKey: {env: KEY}\n",
    ),
    (
        "a Tailscale tag without its prefix",
        "apiVersion: agentmesh/v1alpha1\nkind: Mesh\nmetadata: {name: mesh}\nspec:\n  auth:\n    tailscaleIdentity: {enabled: true, allowTags: [agent]}\n",
    ),
    (
        "a list where a mapping is expected",
        "apiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {name: llm}\nspec:\n  provider: http\n  placement: [home]\n  endpoint: {port: 80}\n",
    ),
];

/// Documents the schema and `meshctl validate` both accept.
const ACCEPTED: &[(&str, &str)] = &[
    (
        "a Service placed by nodeSelector, with numbers, booleans and a secret in env",
        "apiVersion: agentmesh/v1alpha1\nkind: Service\nmetadata: {name: web}\nspec:\n  nodeSelector:\n    role: primary\n    matchLabels: {zone: a}\n  command: [web, --host, \"{{node.address}}\", --port, \"8080\"]\n  env:\n    PORT: 8080\n    DEBUG: true\n    TOKEN: {env: WEB_TOKEN}\n  healthCheck:\n    tcp: {port: 8080}\n  restart: on-failure\n  backoff: {initial: 500ms, max: 1h30m}\n",
    ),
    (
        "a Capability with placement, endpoint and client env",
        "apiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {name: llm_inference}\nspec:\n  provider: ollama\n  placement: {prefer: [home]}\n  endpoint: {port: 11434}\n  clientEnv: {OLLAMA_HOST: \"http://{{host}}:{{port}}\"}\n  ollama: {models: [\"llama3.2:3b\"]}\n",
    ),
    (
        "a Mesh whose spec is all defaults",
        "apiVersion: agentmesh/v1alpha1\nkind: Mesh\nmetadata: {name: mesh}\nspec: {}\n",
    ),
    (
        "a Node that can be woken over the LAN",
        "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: laptop}\nspec:\n  role: satellite\n  address: laptop\n  wake:\n    mac: AA-BB-CC-DD-EE-FF\n    address: fe80::1\n    port: 7\n    timeout: 1m\n",
    ),
    (
        "a Node with a file secret and a quoted numeric label",
        "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata:\n  name: \"2\"\n  labels: {rack: \"7\"}\nspec:\n  role: satellite\n  address: 100.64.0.2\n  syncthing:\n    apiKey: {file: /etc/agentmesh/syncthing.key}\n",
    ),
];

/// Runs `meshctl validate` on a folder holding [`VALID_NODE`] and `document`.
fn meshctl_validate_with_valid_node(document: &str) -> crate::support::Run {
    Workspace::new()
        .file("manifests/node.yaml", VALID_NODE)
        .file("manifests/doc.yaml", document)
        .run(&["validate", "manifests"])
}

#[test]
fn the_valid_node_of_the_tables_is_valid_alone() {
    let run = Workspace::new().file("manifests/node.yaml", VALID_NODE).run(&["validate", "manifests"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(schema_errors("node.schema.json", &yaml_documents(VALID_NODE)[0]).is_empty());
}

#[test]
fn every_document_the_schema_rejects_meshctl_validate_rejects_too() {
    assert!(REJECTED.len() >= 10);
    let mut failures = Vec::new();
    for (what, text) in REJECTED {
        let document = &yaml_documents(text)[0];
        let mut schemas = vec![ANY_SCHEMA_FILE.to_owned()];
        schemas.extend(kind_schema(document));
        for file in &schemas {
            if schema_errors(file, document).is_empty() {
                failures.push(format!("{what}: {file} accepts it"));
            }
        }
        let run = meshctl_validate_with_valid_node(text);
        if run.code != 1 || !run.stderr.contains("manifests/doc.yaml:") {
            failures.push(format!(
                "{what}: meshctl validate exited {} without an error in doc.yaml:\n{}{}",
                run.code, run.stdout, run.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "the schema and meshctl disagree:\n  {}", failures.join("\n  "));
}

#[test]
fn every_document_the_schema_accepts_here_meshctl_validate_accepts_too() {
    let mut failures = Vec::new();
    for (what, text) in ACCEPTED {
        let document = &yaml_documents(text)[0];
        let kind = kind_schema(document).expect("a known kind");
        for file in [kind.as_str(), ANY_SCHEMA_FILE] {
            for error in schema_errors(file, document) {
                failures.push(format!("{what}: {file}: {error}"));
            }
        }
        let run = meshctl_validate_with_valid_node(text);
        if run.code != 0 {
            failures.push(format!("{what}: meshctl validate exited {}:\n{}", run.code, run.stderr));
        }
    }
    assert!(failures.is_empty(), "the schema and meshctl disagree:\n  {}", failures.join("\n  "));
}

#[test]
fn the_any_document_schema_reports_problems_where_the_schema_of_the_documents_kind_does() {
    let mut failures = Vec::new();
    for (what, text) in REJECTED {
        let document = &yaml_documents(text)[0];
        let Some(kind_file) = kind_schema(document) else { continue };
        let paths = |file: &str| {
            let validator = &SCHEMAS[file];
            let mut paths: Vec<String> =
                validator.iter_errors(document).map(|error| error.instance_path().to_string()).collect();
            paths.sort();
            paths.dedup();
            paths
        };
        let (by_kind, any) = (paths(&kind_file), paths(ANY_SCHEMA_FILE));
        if by_kind != any {
            failures.push(format!("{what}: {kind_file} reports at {by_kind:?}, {ANY_SCHEMA_FILE} at {any:?}"));
        }
    }
    assert!(failures.is_empty(), "the any-document schema does not follow `kind`:\n  {}", failures.join("\n  "));
}

#[test]
fn each_schema_has_a_stable_urn_id() {
    let mut ids = Vec::new();
    for (name, bytes) in files_in(&schemas_dir()) {
        let schema: Value = serde_json::from_slice(&bytes).expect("schema is JSON");
        let stem = name.strip_suffix(".schema.json").expect("a schema file");
        assert_eq!(schema["$id"], format!("urn:agentmesh:schema:v1alpha1:{stem}"), "schemas/{name}");
        ids.push(stem.to_owned());
    }
    assert!(ids.contains(&"manifest".to_owned()) && ids.len() == Kind::ALL.len() + 1, "{ids:?}");
}

#[test]
fn every_property_of_every_schema_has_a_description() {
    fn walk(node: &Value, at: &str, missing: &mut Vec<String>) {
        match node {
            Value::Object(map) => {
                if let Some(Value::Object(properties)) = map.get("properties") {
                    for (name, property) in properties {
                        if property.get("description").and_then(Value::as_str).is_none_or(str::is_empty) {
                            missing.push(format!("{at}/properties/{name}"));
                        }
                    }
                }
                for (key, value) in map {
                    walk(value, &format!("{at}/{key}"), missing);
                }
            }
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    walk(item, &format!("{at}/{index}"), missing);
                }
            }
            _ => {}
        }
    }
    let mut missing = Vec::new();
    for (name, bytes) in files_in(&schemas_dir()) {
        let schema: Value = serde_json::from_slice(&bytes).expect("schema is JSON");
        walk(&schema, &name, &mut missing);
    }
    // The `if` of the any-document schema only tests `kind`; it describes nothing.
    missing.retain(|at| !at.contains("/if/properties/"));
    assert!(missing.is_empty(), "properties without a description:\n  {}", missing.join("\n  "));
}

#[test]
fn init_writes_the_schemas_beside_the_manifests_and_its_starter_files_name_them() {
    let workspace = Workspace::new();
    let run = workspace.run(&["init", "--node", "agent-home-mini", "--role", "primary"]);
    assert_eq!(run.code, 0, "{run:?}");
    let written = files_in(&workspace.path().join("schemas"));
    assert_eq!(written, files_in(&schemas_dir()), "init writes the committed schemas into schemas/");

    let manifests = workspace.path().join("manifests");
    let starters = [manifests.join("nodes/agent-home-mini.yaml"), manifests.join("mesh.yaml")];
    for path in &starters {
        let text = std::fs::read_to_string(path).expect("a starter file");
        let first = text.lines().next().unwrap_or_default();
        let target = first.strip_prefix("# yaml-language-server: $schema=").unwrap_or_else(|| {
            panic!("{}: first line is not a yaml-language-server modeline: {first}", path.display())
        });
        assert!(target.starts_with("../"), "{}: the schema path is relative: {target}", path.display());
        let schema = path.parent().expect("a folder").join(target);
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(&schema).expect("the named schema exists"))
            .expect("schema is JSON");
        let validator = jsonschema::draft202012::new(&schema).expect("a valid schema");
        for document in yaml_documents(&text) {
            let errors: Vec<String> = validator.iter_errors(&document).map(|error| error.to_string()).collect();
            assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        }
    }
    let again = workspace.run(&["init"]);
    assert!(again.stdout.contains("already set up: nothing changed"), "{again:?}");
}

// ---------------------------------------------------------------------------
// Generated documents: valid ones both accept, broken ones both reject

/// `value` as block-style YAML, as a person writes it: a string is plain when YAML
/// reads it back as the same string, else double-quoted (JSON's quoting is YAML's).
fn to_yaml(value: &Value) -> String {
    fn scalar(value: &Value) -> String {
        match value {
            Value::String(text) => {
                let plain_is_text = !text.is_empty()
                    && text.chars().all(|c| c.is_ascii_alphanumeric() || "_-./~".contains(c))
                    && !text.starts_with(['-', '.'])
                    && serde_saphyr::from_str::<Value>(text).ok().as_ref() == Some(value);
                if plain_is_text { text.clone() } else { value.to_string() }
            }
            Value::Object(map) if map.is_empty() => "{}".into(),
            Value::Array(items) if items.is_empty() => "[]".into(),
            other => other.to_string(),
        }
    }
    fn block(value: &Value, indent: usize, out: &mut String) {
        let pad = " ".repeat(indent);
        let entries: Vec<(String, &Value)> = match value {
            Value::Object(map) if !map.is_empty() => {
                map.iter().map(|(key, value)| (format!("{}:", scalar(&Value::String(key.clone()))), value)).collect()
            }
            Value::Array(items) if !items.is_empty() => items.iter().map(|item| ("-".to_owned(), item)).collect(),
            other => {
                out.push_str(&format!("{pad}{}\n", scalar(other)));
                return;
            }
        };
        for (lead, value) in entries {
            out.push_str(&pad);
            out.push_str(&lead);
            match value {
                Value::Object(map) if !map.is_empty() => {
                    out.push('\n');
                    block(value, indent + 2, out);
                }
                Value::Array(items) if !items.is_empty() => {
                    out.push('\n');
                    block(value, indent + 2, out);
                }
                other => out.push_str(&format!(" {}\n", scalar(other))),
            }
        }
    }
    let mut out = String::new();
    block(value, 0, &mut out);
    out
}

fn name() -> BoxedStrategy<String> {
    "[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?".boxed()
}

fn port() -> BoxedStrategy<u16> {
    (1..=u16::MAX).boxed()
}

/// A valid duration's text and length in milliseconds.
fn duration() -> BoxedStrategy<(String, u64)> {
    const UNITS: [(&str, u64); 5] = [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)];
    prop::collection::vec((0u64..2_000, select(&UNITS[..])), 1..4)
        .prop_filter("a duration is longer than zero", |parts| parts.iter().any(|(n, _)| *n > 0))
        .prop_map(|parts| {
            let text = parts.iter().map(|(n, (unit, _))| format!("{n}{unit}")).collect();
            let millis = parts.iter().map(|(n, (_, scale))| n * scale).sum();
            (text, millis)
        })
        .boxed()
}

fn duration_text() -> BoxedStrategy<String> {
    duration().prop_map(|(text, _)| text).boxed()
}

fn env_name() -> BoxedStrategy<String> {
    "[A-Z_][A-Z0-9_]{0,12}".boxed()
}

fn secret_ref() -> BoxedStrategy<Value> {
    prop_oneof![
        env_name().prop_map(|name| json!({ "env": name })),
        "/[a-z0-9/._-]{1,20}".prop_map(|path| json!({ "file": path })),
    ]
    .boxed()
}

fn url_path() -> BoxedStrategy<String> {
    "/[a-z0-9/._-]{0,20}".boxed()
}

fn labels() -> BoxedStrategy<BTreeMap<String, String>> {
    prop::collection::btree_map("[a-z][a-z0-9.-]{0,10}", "[a-z0-9._-]{0,10}", 0..3).boxed()
}

/// A plain text value: words, numbers and booleans as text, placeholders.
fn text(placeholders: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![
        "[a-zA-Z0-9 ._:/=-]{0,16}",
        select(&["8001", "true", "no", "1.5", "~", "null", "0x1F", "1e3", "", "-v", "a: b", "# hi"][..])
            .prop_map(str::to_owned),
        (select(placeholders), "[a-z:/]{0,6}").prop_map(|(p, rest)| format!("{{{{{p}}}}}{rest}")),
    ]
    .boxed()
}

fn envelope(kind: &str, name: &str, labels: BTreeMap<String, String>, spec: Value) -> Value {
    let mut metadata = json!({ "name": name });
    if !labels.is_empty() {
        metadata["labels"] = json!(labels);
    }
    json!({ "apiVersion": "agentmesh/v1alpha1", "kind": kind, "metadata": metadata, "spec": spec })
}

/// Inserts `key: value` into `object` when `value` is given.
fn put(object: &mut Value, key: &str, value: Option<Value>) {
    if let Some(value) = value {
        object[key] = value;
    }
}

fn node_spec() -> BoxedStrategy<Value> {
    let syncthing = (
        secret_ref(),
        prop::option::of("https?://[a-z0-9.]{1,12}:[1-9][0-9]{0,3}"),
        prop::option::of(prop_oneof![
            Just("dynamic".to_owned()),
            ("(tcp|quic|tcp4|relay)", "[a-z0-9.-]{1,12}", port()).prop_map(|(s, h, p)| format!("{s}://{h}:{p}")),
        ]),
    )
        .prop_map(|(api_key, api_url, device)| {
            let mut syncthing = json!({ "apiKey": api_key });
            put(&mut syncthing, "apiUrl", api_url.map(Value::from));
            put(&mut syncthing, "deviceAddress", device.map(Value::from));
            syncthing
        });
    (
        select(&["primary", "satellite"][..]),
        prop_oneof!["[a-z][a-z0-9-]{0,20}", "100\\.(6[4-9]|[7-9][0-9])\\.[0-9]{1,3}\\.[0-9]{1,3}"],
        prop::option::of(port()),
        prop::option::of(syncthing),
    )
        .prop_map(|(role, address, api_port, syncthing)| {
            let mut spec = json!({ "role": role, "address": address });
            put(&mut spec, "apiPort", api_port.map(Value::from));
            put(&mut spec, "syncthing", syncthing);
            spec
        })
        .boxed()
}

const SERVICE_PLACEHOLDERS: &[&str] = &["node.name", "node.address"];
const CLIENT_ENV_PLACEHOLDERS: &[&str] = &["host", "port", "path", "node"];

/// A Service spec placed on `nodes` (by name) or by a selector.
fn service_spec(nodes: [String; 2]) -> BoxedStrategy<Value> {
    let placement = prop_oneof![
        prop::sample::subsequence(nodes.to_vec(), 1..=2).prop_map(|nodes| json!({ "nodes": nodes })),
        (prop::option::of(select(&["primary", "satellite"][..])), labels()).prop_map(|(role, labels)| {
            let mut selector = json!({});
            put(&mut selector, "role", role.map(Value::from));
            if !labels.is_empty() {
                selector["matchLabels"] = json!(labels);
            }
            json!({ "nodeSelector": selector })
        }),
    ];
    let command = ("[a-z][a-z0-9_./-]{0,12}", prop::collection::vec(text(SERVICE_PLACEHOLDERS), 0..4))
        .prop_map(|(program, args)| std::iter::once(program).chain(args).collect::<Vec<_>>());
    let env_value = prop_oneof![
        text(SERVICE_PLACEHOLDERS).prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        secret_ref(),
    ];
    let health_check = (
        prop_oneof![
            (port(), prop::option::of(url_path())).prop_map(|(port, path)| {
                let mut http = json!({ "port": port });
                put(&mut http, "path", path.map(Value::from));
                json!({ "http": http })
            }),
            port().prop_map(|port| json!({ "tcp": { "port": port } })),
        ],
        prop::option::of(duration_text()),
        prop::option::of(duration_text()),
    )
        .prop_map(|(mut check, interval, timeout)| {
            put(&mut check, "interval", interval.map(Value::from));
            put(&mut check, "timeout", timeout.map(Value::from));
            check
        });
    let backoff = (duration(), duration()).prop_map(|(a, b)| {
        let (initial, max) = if a.1 <= b.1 { (a.0, b.0) } else { (b.0, a.0) };
        json!({ "initial": initial, "max": max })
    });
    (
        placement,
        command,
        prop::collection::btree_map(env_name(), env_value, 0..4),
        prop::option::of("~?/[a-z0-9/_.-]{0,16}"),
        prop::option::of(health_check),
        prop::option::of(select(&["always", "on-failure", "never"][..])),
        prop::option::of(backoff),
        prop::option::of(duration_text()),
    )
        .prop_map(|(mut spec, command, env, working_dir, health_check, restart, backoff, grace)| {
            spec["command"] = json!(command);
            if !env.is_empty() {
                spec["env"] = json!(env);
            }
            put(&mut spec, "workingDir", working_dir.map(Value::from));
            put(&mut spec, "healthCheck", health_check);
            put(&mut spec, "restart", restart.map(Value::from));
            put(&mut spec, "backoff", backoff);
            put(&mut spec, "stopGracePeriod", grace.map(Value::from));
            spec
        })
        .boxed()
}

/// A Capability spec placed on `nodes`, maybe provided by `service`.
fn capability_spec(nodes: [String; 2], service: String) -> BoxedStrategy<Value> {
    let endpoint =
        (port(), prop::option::of(url_path()), prop::option::of(url_path()), prop::option::of("[a-z0-9.-]{1,16}"))
            .prop_map(|(port, path, health_path, host)| {
                let mut endpoint = json!({ "port": port });
                put(&mut endpoint, "path", path.map(Value::from));
                put(&mut endpoint, "healthPath", health_path.map(Value::from));
                put(&mut endpoint, "host", host.map(Value::from));
                endpoint
            });
    (
        select(&["ollama", "http"][..]),
        any::<bool>(),
        any::<bool>(),
        endpoint,
        prop::collection::btree_map(env_name(), text(CLIENT_ENV_PLACEHOLDERS), 0..3),
        prop::option::of(prop::collection::vec("[a-z0-9][a-z0-9.:_-]{0,16}", 0..3)),
    )
        .prop_map(move |(provider, fallback, with_service, endpoint, client_env, models)| {
            let [first, second] = nodes.clone();
            let mut placement = json!({ "prefer": [first] });
            if fallback {
                placement["fallback"] = json!([second]);
            }
            let mut spec = json!({ "provider": provider, "placement": placement, "endpoint": endpoint });
            put(&mut spec, "service", with_service.then(|| Value::from(service.clone())));
            if !client_env.is_empty() {
                spec["clientEnv"] = json!(client_env);
            }
            if provider == "ollama" {
                put(&mut spec, "ollama", models.map(|models| json!({ "models": models })));
            }
            spec
        })
        .boxed()
}

/// Two Nodes, a Service and a Capability that make a valid set.
fn valid_documents() -> BoxedStrategy<Vec<Value>> {
    (prop::collection::btree_set(name(), 2), name(), name())
        .prop_flat_map(|(node_names, service, capability)| {
            let nodes: [String; 2] = node_names.into_iter().collect::<Vec<_>>().try_into().expect("two names");
            (
                (node_spec(), labels(), node_spec(), labels()),
                service_spec(nodes.clone()),
                capability_spec(nodes.clone(), service.clone()),
                Just((nodes, service, capability)),
            )
        })
        .prop_map(
            |((node_a, labels_a, node_b, labels_b), service_spec, capability_spec, (nodes, service, capability))| {
                let [a, b] = nodes;
                vec![
                    envelope("Node", &a, labels_a, node_a),
                    envelope("Node", &b, labels_b, node_b),
                    envelope("Service", &service, BTreeMap::new(), service_spec),
                    envelope("Capability", &capability, BTreeMap::new(), capability_spec),
                ]
            },
        )
        .boxed()
}

/// One file per document, written as YAML; the YAML reads back as the document.
fn source_files(documents: &[Value]) -> Result<Vec<SourceFile>, TestCaseError> {
    documents
        .iter()
        .enumerate()
        .map(|(index, document)| {
            let text = to_yaml(document);
            let read_back: Value = serde_saphyr::from_str(&text)
                .map_err(|error| TestCaseError::fail(format!("the test's YAML is not YAML: {error}\n{text}")))?;
            prop_assert_eq!(&read_back, document, "the test's YAML writer is wrong:\n{}", text);
            Ok(SourceFile { path: format!("doc{index}.yaml").into(), text })
        })
        .collect()
}

fn render(files: &[SourceFile]) -> String {
    files.iter().map(|file| format!("--- {}\n{}", file.path, file.text)).collect()
}

/// A change to one document that breaks it.
#[derive(Clone, Debug)]
enum Break {
    Set(Vec<String>, Value),
    Remove(Vec<String>),
}

impl Break {
    fn set(path: &[&str], value: impl Into<Value>) -> Break {
        Break::Set(path.iter().map(|s| (*s).to_owned()).collect(), value.into())
    }

    fn remove(path: &[&str]) -> Break {
        Break::Remove(path.iter().map(|s| (*s).to_owned()).collect())
    }

    /// Applies the change, creating the mappings on the way to a value it sets.
    fn apply(&self, document: &mut Value) {
        let (path, value) = match self {
            Break::Set(path, value) => (path, Some(value)),
            Break::Remove(path) => (path, None),
        };
        let (last, parents) = path.split_last().expect("a path");
        let mut at = document;
        for key in parents {
            if !at.get(key).is_some_and(Value::is_object) {
                at[key.as_str()] = Value::Object(Map::new());
            }
            at = &mut at[key.as_str()];
        }
        let object = at.as_object_mut().expect("a mapping");
        match value {
            Some(value) => {
                object.insert(last.clone(), value.clone());
            }
            None => {
                object.remove(last);
            }
        }
    }
}

/// `field` with one character dropped: a typo that names no field of `fields`.
fn typo(fields: &'static [&'static str]) -> BoxedStrategy<String> {
    (select(fields), any::<prop::sample::Index>())
        .prop_map(|(field, at)| {
            let mut typo = field.to_owned();
            typo.remove(at.index(field.len()));
            typo
        })
        .prop_filter("a typo is not a real field", move |typo| !fields.contains(&typo.as_str()))
        .boxed()
}

fn bad_port() -> BoxedStrategy<Value> {
    prop_oneof![Just(json!(0)), (65_536i64..10_000_000).prop_map(Value::from), (-70_000i64..0).prop_map(Value::from)]
        .boxed()
}

fn bad_duration() -> BoxedStrategy<Value> {
    prop_oneof![
        select(&["0s", "00m0ms", "10", "10 s", "1.5h", "s", "-1s", "10sec", "1h 30m", "", "5M", "1H", "P1D"][..])
            .prop_map(Value::from),
        (1i64..1000).prop_map(Value::from),
    ]
    .boxed()
}

/// A name that breaks the name rule.
fn bad_name() -> BoxedStrategy<Value> {
    prop_oneof![
        (name(), "[A-Z.: ]").prop_map(|(name, bad)| Value::from(format!("{name}{bad}x"))),
        name().prop_map(|name| Value::from(format!("-{name}"))),
        name().prop_map(|name| Value::from(format!("{name}_"))),
        Just(Value::from("")),
        Just(Value::from("a".repeat(64))),
        (1i64..100_000).prop_map(Value::from),
    ]
    .boxed()
}

/// A string that is not one of `allowed`.
fn not_one_of(allowed: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop_oneof!["[a-zA-Z-]{1,12}".prop_map(Value::from), Just(Value::from(true)), Just(Value::from(1))]
        .prop_filter("not an allowed value", move |value| !value.as_str().is_some_and(|v| allowed.contains(&v)))
        .boxed()
}

const ENVELOPE_FIELDS: &[&str] = &["apiVersion", "kind", "metadata", "spec"];
const NODE_FIELDS: &[&str] = &["role", "address", "apiPort", "syncthing"];
const SERVICE_FIELDS: &[&str] =
    &["nodes", "nodeSelector", "command", "env", "workingDir", "healthCheck", "restart", "backoff", "stopGracePeriod"];
const ENDPOINT_FIELDS: &[&str] = &["port", "path", "healthPath", "host"];

/// Breaks any document.
fn envelope_break() -> BoxedStrategy<Break> {
    prop_oneof![
        bad_name().prop_map(|name| Break::set(&["metadata", "name"], name)),
        select(ENVELOPE_FIELDS).prop_map(|field| Break::remove(&[field])),
        Just(Break::remove(&["metadata", "name"])),
        typo(ENVELOPE_FIELDS).prop_map(|key| Break::set(&[key.as_str()], json!({}))),
        select(&["namespace", "annotations", "nme"][..]).prop_map(|key| Break::set(&["metadata", key], "x")),
        prop_oneof![Just(json!(1)), Just(json!(true)), Just(json!(null)), Just(json!(["a"]))]
            .prop_map(|value| Break::set(&["metadata", "labels", "app"], value)),
        not_one_of(&["agentmesh/v1alpha1"]).prop_map(|version| Break::set(&["apiVersion"], version)),
        not_one_of(&["Node", "Service", "Capability", "SyncFolder", "HandoffPolicy", "Mesh"])
            .prop_map(|kind| Break::set(&["kind"], kind)),
        prop_oneof![Just(json!(null)), Just(json!("spec")), Just(json!([]))]
            .prop_map(|spec| Break::set(&["spec"], spec)),
    ]
    .boxed()
}

fn node_break() -> BoxedStrategy<Break> {
    prop_oneof![
        not_one_of(&["primary", "satellite"]).prop_map(|role| Break::set(&["spec", "role"], role)),
        bad_port().prop_map(|port| Break::set(&["spec", "apiPort"], port)),
        prop_oneof![(1i64..1000).prop_map(Value::from), Just(json!(false)), Just(json!(["a"]))]
            .prop_map(|address| Break::set(&["spec", "address"], address)),
        prop_oneof![
            "[a-zA-Z0-9]{1,16}".prop_map(Value::from),
            Just(json!({ "env": "A", "file": "/b" })),
            Just(json!({ "env": "" })),
            Just(json!({})),
        ]
        .prop_map(|secret| Break::set(&["spec", "syncthing", "apiKey"], secret)),
        select(&["role", "address"][..]).prop_map(|field| Break::remove(&["spec", field])),
        typo(NODE_FIELDS).prop_map(|key| Break::set(&["spec", key.as_str()], "x")),
        Just(Break::set(&["kind"], "Mesh")),
    ]
    .boxed()
}

fn service_break() -> BoxedStrategy<Break> {
    prop_oneof![
        not_one_of(&["always", "on-failure", "never"]).prop_map(|restart| Break::set(&["spec", "restart"], restart)),
        bad_port().prop_map(|port| Break::set(&["spec", "healthCheck", "tcp", "port"], port)),
        bad_duration().prop_map(|d| Break::set(&["spec", "stopGracePeriod"], d)),
        bad_duration().prop_map(|d| Break::set(&["spec", "healthCheck", "interval"], d)),
        bad_duration().prop_map(|d| Break::set(&["spec", "backoff", "initial"], d)),
        prop_oneof![Just(json!("ollama serve")), Just(json!(["ollama", 8001])), Just(json!(["ollama", true]))]
            .prop_map(|command| Break::set(&["spec", "command"], command)),
        Just(Break::remove(&["spec", "command"])),
        prop_oneof![Just(json!(["a"])), Just(json!({ "env": "" })), Just(json!({ "value": "x" }))]
            .prop_map(|value| Break::set(&["spec", "env", "VAR"], value)),
        typo(SERVICE_FIELDS).prop_map(|key| Break::set(&["spec", key.as_str()], "x")),
        Just(Break::set(&["kind"], "Node")),
    ]
    .boxed()
}

fn capability_break() -> BoxedStrategy<Break> {
    prop_oneof![
        not_one_of(&["ollama", "http"]).prop_map(|provider| Break::set(&["spec", "provider"], provider)),
        bad_port().prop_map(|port| Break::set(&["spec", "endpoint", "port"], port)),
        prop_oneof![Just(json!("home")), Just(json!([1])), Just(json!({ "first": "home" }))]
            .prop_map(|prefer| Break::set(&["spec", "placement", "prefer"], prefer)),
        select(&["provider", "placement", "endpoint"][..]).prop_map(|field| Break::remove(&["spec", field])),
        typo(ENDPOINT_FIELDS).prop_map(|key| Break::set(&["spec", "endpoint", key.as_str()], "x")),
        prop_oneof![Just(json!(8001)), Just(json!(true)), Just(json!({ "env": "X" }))]
            .prop_map(|value| Break::set(&["spec", "clientEnv", "VAR"], value)),
        Just(Break::set(&["kind"], "Service")),
    ]
    .boxed()
}

/// Which document of [`valid_documents`] to break, and how.
fn broken_documents() -> BoxedStrategy<(Vec<Value>, usize, Break)> {
    let target = prop_oneof![
        (0..4usize, envelope_break()),
        (0..2usize, node_break()),
        service_break().prop_map(|b| (2, b)),
        capability_break().prop_map(|b| (3, b)),
    ];
    (valid_documents(), target).prop_map(|(documents, (index, change))| (documents, index, change)).boxed()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn generated_valid_documents_are_accepted_by_the_schema_and_the_rust_validator(documents in valid_documents()) {
        let files = source_files(&documents)?;
        for document in &documents {
            let kind = kind_schema(document).expect("a known kind");
            for file in [kind.as_str(), ANY_SCHEMA_FILE] {
                let errors = schema_errors(file, document);
                prop_assert!(errors.is_empty(), "{} rejects a valid document:\n{:#?}\n{}", file, errors, render(&files));
            }
        }
        let validation = validate(&files, vec![]);
        let errors: Vec<String> =
            validation.diagnostics.iter().filter(|d| d.is_error()).map(ToString::to_string).collect();
        prop_assert!(errors.is_empty(), "validate rejects a valid set:\n{}\n{}", errors.join("\n"), render(&files));
        prop_assert_eq!(validation.set.len(), documents.len());
    }

    #[test]
    fn generated_documents_with_one_broken_field_are_rejected_by_the_schema_and_the_rust_validator(
        (mut documents, index, change) in broken_documents()
    ) {
        let kind = kind_schema(&documents[index]).expect("a known kind");
        change.apply(&mut documents[index]);
        let broken = &documents[index];
        let files = source_files(&documents)?;
        for file in [kind.as_str(), ANY_SCHEMA_FILE] {
            prop_assert!(
                !schema_errors(file, broken).is_empty(),
                "{} accepts a document broken by {:?}:\n{}", file, change, files[index].text
            );
        }
        let validation = validate(&files, vec![]);
        let in_broken_file = validation.diagnostics.iter().any(|d| d.is_error() && *d.file == *files[index].path);
        prop_assert!(
            in_broken_file,
            "validate finds no error in a document broken by {:?}:\n{}\ndiagnostics: {:#?}",
            change, files[index].text, validation.diagnostics
        );
    }
}

// ---------------------------------------------------------------------------
// The schema's patterns against the Rust rules they restate

/// The committed definition `name` of manifest.schema.json, compiled alone.
fn definition(pointer: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(schemas_dir().join(ANY_SCHEMA_FILE)).expect("read schema");
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    let definition = schema.pointer(pointer).unwrap_or_else(|| panic!("{ANY_SCHEMA_FILE} has no {pointer}"));
    jsonschema::draft202012::new(definition).expect("a valid schema")
}

static DURATION_SCHEMA: LazyLock<jsonschema::Validator> = LazyLock::new(|| definition("/$defs/Duration"));
static NAME_SCHEMA: LazyLock<jsonschema::Validator> = LazyLock::new(|| definition("/$defs/Metadata/properties/name"));
static MAC_SCHEMA: LazyLock<jsonschema::Validator> = LazyLock::new(|| definition("/$defs/MacAddress"));

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Numbers stay short: a sum that overflows (`99999999999999999999s`) is
    /// beyond what a pattern can see, and the parser alone rejects it.
    #[test]
    fn the_duration_pattern_accepts_exactly_what_the_duration_parser_accepts(
        text in prop_oneof!["([0-9]{1,6}(ms|s|m|h|d))*[0-9]{0,3}", "[0-9a-z. -]{0,10}", duration_text()]
    ) {
        prop_assert_eq!(
            DURATION_SCHEMA.is_valid(&Value::from(text.as_str())),
            DurationSpec::parse(&text).is_ok(),
            "{:?}", text
        );
    }

    #[test]
    fn the_name_pattern_accepts_exactly_what_the_name_rule_accepts(
        text in prop_oneof![name(), "[a-z0-9_-]{0,66}", "[a-zA-Z0-9_. \n-]{0,8}"]
    ) {
        prop_assert_eq!(NAME_SCHEMA.is_valid(&Value::from(text.as_str())), name_problem(&text).is_none(), "{:?}", text);
    }

    #[test]
    fn the_mac_pattern_accepts_exactly_what_the_mac_parser_accepts(
        text in prop_oneof!["[0-9a-fA-F]{2}([:-][0-9a-fA-F]{1,3}){4,6}", "[0-9a-gA-G:+ -]{0,18}", "([0-9a-f]{2}:){5}[0-9a-f]{2}"]
    ) {
        prop_assert_eq!(MAC_SCHEMA.is_valid(&Value::from(text.as_str())), MacAddress::parse(&text).is_ok(), "{:?}", text);
    }
}
