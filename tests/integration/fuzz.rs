//! Robustness of the loader, the checks and the `.env` reader: whatever a
//! manifests folder holds (arbitrary bytes, YAML-shaped noise, example files with
//! random edits, inputs built to hurt), `load_dir` and `validate` return
//! diagnostics and never panic, every diagnostic points at a line and column
//! that exist in its file, and renders as its own lines.
//!
//! These are property tests (proptest) on the library: they run on stable with
//! `cargo test`, in seconds, and a failure shrinks to a small input. The
//! coverage-guided fuzz targets in `fuzz/` (cargo-fuzz, nightly) hold the same
//! inputs to the same promises: this file includes their checks
//! (`fuzz/src/lib.rs`), feeds them inputs in their format (files split at 0xFF
//! bytes), and replays every input the fuzzers ever found wrong
//! (`fuzz/regressions/`).

#[allow(unreachable_pub, reason = "the fuzz crate's root, whose items are public there")]
#[path = "../../fuzz/src/lib.rs"]
mod inputs;

use std::path::Path;
use std::sync::LazyLock;

use agentmesh::manifest::loader::load_dir;
use agentmesh::manifest::{SourceFile, Validation, validate};
use proptest::prelude::*;
use proptest::sample::{Index, select};

use crate::support::examples_dir;

fn source(path: &str, text: String) -> SourceFile {
    SourceFile { path: path.into(), text }
}

/// Validates `files` and checks every diagnostic's place and rendering.
fn validate_checked(files: &[SourceFile]) -> Result<Validation, TestCaseError> {
    inputs::check_files(files).map_err(TestCaseError::fail)
}

// ---------------------------------------------------------------------------
// Arbitrary bytes

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_as_text_never_panic_the_validator(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        validate_checked(&[source("bytes.yaml", text)])?;
    }

    #[test]
    fn arbitrary_bytes_hold_both_fuzz_targets_promises(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        inputs::manifests(&bytes);
        inputs::env_file(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Through the file system: files that are not UTF-8 are reported by the
    /// loader, the rest by the checks.
    #[test]
    fn arbitrary_bytes_in_a_manifests_folder_never_panic_the_loader(
        files in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..4)
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        for (index, bytes) in files.iter().enumerate() {
            std::fs::write(dir.path().join(format!("f{index}.yaml")), bytes).expect("write file");
        }
        let (loaded, unreadable) = load_dir(dir.path()).expect("the folder loads");
        let not_utf8 = files.iter().filter(|bytes| std::str::from_utf8(bytes).is_err()).count();
        prop_assert_eq!(loaded.len(), files.len() - not_utf8);
        prop_assert_eq!(unreadable.len(), not_utf8);
        let validation = validate(&loaded, unreadable);
        for diagnostic in &validation.diagnostics {
            prop_assert!(diagnostic.line >= 1 && diagnostic.column >= 1, "{}", diagnostic);
            let _rendered = diagnostic.to_string();
        }
    }
}

// ---------------------------------------------------------------------------
// YAML-shaped text

const KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "labels",
    "spec",
    "role",
    "address",
    "apiPort",
    "nodes",
    "nodeSelector",
    "matchLabels",
    "placement",
    "prefer",
    "fallback",
    "service",
    "endpoint",
    "port",
    "path",
    "healthCheck",
    "http",
    "tcp",
    "command",
    "env",
    "paths",
    "syncFolder",
    "provider",
    "ollama",
    "models",
    "syncthing",
    "apiKey",
    "auth",
    "backoff",
    "max",
    "timeout",
    "<<",
    "x",
];

const SCALARS: &[&str] = &[
    "agentmesh/v1alpha1",
    "Node",
    "Service",
    "Capability",
    "SyncFolder",
    "HandoffPolicy",
    "Mesh",
    "primary",
    "satellite",
    "home",
    "laptop",
    "8000",
    "0",
    "70000",
    "-1",
    "1.5",
    "1e999",
    "0x1F",
    ".inf",
    ".nan",
    "true",
    "no",
    "null",
    "~",
    "10s",
    "0s",
    "1h30m",
    "99999999999999999999s",
    "\"{{node.name}}\"",
    "\"{{\"",
    "\"{{host}}:{{port}}\"",
    "''",
    "\"\"",
    "'it''s'",
    "\"a\\\"b\\u00e9\"",
    "llama3.2:3b",
    "/api",
    "~/x",
    "tag:x",
    "!!str 1",
    "!!binary aGk=",
    "!tag x",
    "!!int x",
    "é",
    "\u{FEFF}",
    "-",
    "--x",
    "a:b",
    "{env: X}",
    "{file: /k}",
    "[home, laptop]",
    "{}",
    "[]",
];

const TOKENS: &[&str] = &[
    ": ",
    ":",
    "\n",
    " ",
    "  ",
    "    ",
    "\t",
    "- ",
    "-",
    "---",
    "---\n",
    "...",
    "...\n",
    "[",
    "]",
    "{",
    "}",
    ", ",
    ",",
    "&a ",
    "*a",
    "&b ",
    "*b",
    "<<: *a",
    "|",
    "|-",
    "|+",
    ">",
    ">2",
    "# c",
    "#",
    "? ",
    "\"",
    "'",
    "\\",
    "%YAML 1.2\n",
    "%YAML 1.1\n",
    "%TAG ! tag:x,2024:\n",
    "!",
    "!!",
    "@",
    "`",
    "\u{0}",
    "\r\n",
];

/// One line of YAML: indentation (at least `min_indent` levels), maybe a
/// sequence dash, an anchor, alias or tag, a key, a value.
fn yaml_line(min_indent: usize) -> impl Strategy<Value = String> {
    (
        prop_oneof![3 => Just(min_indent), 1 => min_indent + 1..min_indent + 4],
        prop::bool::weighted(0.2),
        prop::option::weighted(0.8, select(KEYS)),
        prop::option::weighted(0.8, prop_oneof![4 => select(SCALARS), 1 => select(TOKENS)]),
        prop::option::weighted(0.15, select(&["&a ", "*a", "&b ", "!!str ", "!!map ", "? ", "# c"][..])),
    )
        .prop_map(|(indent, dash, key, value, decoration)| {
            let mut line = "  ".repeat(indent);
            if dash {
                line.push_str("- ");
            }
            if let Some(decoration) = decoration {
                line.push_str(decoration);
            }
            if let Some(key) = key {
                line.push_str(key);
                line.push(':');
            }
            if let Some(value) = value {
                line.push(' ');
                line.push_str(value);
            }
            line + "\n"
        })
}

/// A document with a plausible header and a spec of random lines, so that
/// the noise reaches the parsing of each kind and the checks across objects.
fn manifest_document() -> impl Strategy<Value = String> {
    (
        prop_oneof![4 => select(&["Node", "Service", "Capability", "SyncFolder", "HandoffPolicy", "Mesh"][..]), 1 => select(SCALARS)],
        prop_oneof![4 => select(&["home", "laptop", "llm", "data", "a_b"][..]), 1 => select(SCALARS)],
        prop::collection::vec(yaml_line(1), 0..14),
    )
        .prop_map(|(kind, name, spec)| {
            format!("---\napiVersion: agentmesh/v1alpha1\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n{}", spec.concat())
        })
}

/// YAML-shaped text: documents with random specs, lines of keys and values,
/// raw YAML tokens.
fn yaml_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => manifest_document(),
        3 => yaml_line(0),
        2 => prop::collection::vec(select(TOKENS), 1..6).prop_map(|tokens| tokens.concat()),
        1 => select(SCALARS).prop_map(str::to_owned),
    ];
    prop::collection::vec(piece, 0..30).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn yaml_shaped_text_never_panics_and_every_diagnostic_points_into_the_file(text in yaml_text()) {
        validate_checked(&[source("noise.yaml", text)])?;
    }

    /// The manifests fuzz target's own input format: several files of noise, one
    /// input.
    #[test]
    fn yaml_shaped_file_sets_hold_the_fuzz_targets_promises(texts in prop::collection::vec(yaml_text(), 1..5)) {
        let data = inputs::input_of(&texts);
        prop_assert_eq!(inputs::file_set(&data).len(), texts.len());
        inputs::manifests(&data);
    }

    /// The `.env` fuzz target on env-shaped lines.
    #[test]
    fn env_shaped_text_holds_the_env_targets_promises(lines in prop::collection::vec(env_line(), 0..12)) {
        inputs::env_file(lines.concat().as_bytes());
    }

    /// Two files, so that the checks across objects see what the noise declares.
    #[test]
    fn yaml_shaped_text_next_to_valid_nodes_never_panics(text in yaml_text()) {
        let nodes = "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: home}\nspec: {role: primary, address: home}\n---\napiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: laptop}\nspec: {role: satellite, address: laptop}\n";
        validate_checked(&[source("nodes.yaml", nodes.to_owned()), source("noise.yaml", text)])?;
    }
}

/// One line of a `.env`: the variables the identity check reads, values plain,
/// quoted, substituted or broken, comments and `export`.
fn env_line() -> impl Strategy<Value = String> {
    (
        prop::bool::weighted(0.2),
        select(&["AGENT_NODE_ID", "AGENT_ROLE", "MESH_MANIFESTS", "X", "1BAD", "A B", ""][..]),
        select(&["=", " = ", "=\"", "='", ":", ""][..]),
        prop_oneof![
            3 => select(&["home", "laptop", "primary", "satellite", "primry", "", "\"a b\"", "'x'", "${X}", "$X", "\\", "#c", "\"a\nb\"", "\u{1b}[2J", "\u{0}", "é"][..])
                .prop_map(str::to_owned),
            1 => "[ -~]{0,12}",
        ],
        select(&["\n", "\r\n", "\r", " # note\n", ""][..]),
    )
        .prop_map(|(export, name, assign, value, end)| {
            format!("{}{name}{assign}{value}{end}", if export { "export " } else { "" })
        })
}

/// Every input a fuzz target was found to fail on, kept in
/// `fuzz/regressions/<target>/`, passes now.
#[test]
fn every_input_the_fuzzers_found_wrong_passes_now() {
    let regressions = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut replayed = 0;
    for (target, check) in [("manifests", inputs::manifests as fn(&[u8])), ("env_file", inputs::env_file)] {
        let Ok(entries) = std::fs::read_dir(regressions.join(target)) else { continue };
        for entry in entries {
            let path = entry.expect("entry").path();
            check(&std::fs::read(&path).expect("read regression"));
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no regression inputs in {}", regressions.display());
}

// ---------------------------------------------------------------------------
// Example files with random edits

/// The example manifests, as the loader reads them.
static EXAMPLES: LazyLock<Vec<SourceFile>> = LazyLock::new(|| {
    let (files, unreadable) = load_dir(&examples_dir()).expect("the examples load");
    assert!(unreadable.is_empty() && !files.is_empty());
    files
});

#[derive(Clone, Debug)]
enum Edit {
    Insert(Index, u8),
    Delete(Index),
    Replace(Index, u8),
}

fn edit_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => select(&b" \n\t-:#{}[],&*!|>'\"\\%?.0123456789~az"[..]),
        1 => any::<u8>(),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<Index>(), edit_byte()).prop_map(|(at, byte)| Edit::Insert(at, byte)),
        any::<Index>().prop_map(Edit::Delete),
        (any::<Index>(), edit_byte()).prop_map(|(at, byte)| Edit::Replace(at, byte)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for edit in edits {
        match *edit {
            Edit::Insert(at, byte) => bytes.insert(at.index(bytes.len() + 1), byte),
            Edit::Delete(at) if !bytes.is_empty() => {
                bytes.remove(at.index(bytes.len()));
            }
            Edit::Replace(at, byte) if !bytes.is_empty() => {
                let at = at.index(bytes.len());
                bytes[at] = byte;
            }
            Edit::Delete(_) | Edit::Replace(..) => {}
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// One example file edited, validated with the others, so that the checks
    /// across files see half-broken objects.
    #[test]
    fn example_files_with_random_byte_edits_never_panic(
        file in any::<Index>(),
        edits in prop::collection::vec(edit(), 1..10),
    ) {
        let mut files = EXAMPLES.clone();
        let file = file.index(files.len());
        files[file].text = apply(&files[file].text, &edits);
        validate_checked(&files)?;
    }
}

#[test]
fn the_unedited_examples_are_valid() {
    let validation = validate(&EXAMPLES, vec![]);
    assert!(validation.is_valid(), "{:#?}", validation.diagnostics);
}

// ---------------------------------------------------------------------------
// Inputs built to hurt

#[test]
fn hostile_inputs_are_refused_with_diagnostics_not_panics() {
    let laughs = {
        let mut text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n".to_owned();
        for level in 1..10 {
            let previous = format!("*a{}", level - 1);
            let list = [previous.as_str(); 10].join(", ");
            text.push_str(&format!("a{level}: &a{level} [{list}]\n"));
        }
        text
    };
    let cases: Vec<(&str, String)> = vec![
        ("an empty file", String::new()),
        ("only document markers", "---\n---\n...\n---".to_owned()),
        ("a byte order mark", "\u{FEFF}apiVersion: agentmesh/v1alpha1\n".to_owned()),
        ("NUL bytes", "apiVersion: \0\nkind: Node\0".to_owned()),
        ("CR line ends", "apiVersion: agentmesh/v1alpha1\rkind: Nodes\rmetadata: {name: a}\r".to_owned()),
        ("CRLF line ends", "apiVersion: agentmesh/v1alpha1\r\nkind: Nodes\r\n".to_owned()),
        ("tabs for indentation", "spec:\n\trole: primary\n".to_owned()),
        ("deeply nested flow sequences", "[".repeat(100_000)),
        ("deeply nested flow mappings", "{a: ".repeat(20_000)),
        ("deeply nested block sequences", (0..2_000).map(|i| format!("{}- \n", " ".repeat(i))).collect()),
        ("deeply nested block mappings", (0..2_000).map(|i| format!("{}k:\n", " ".repeat(i))).collect()),
        ("an alias bomb", laughs),
        ("a self-referencing alias", "a: &a [*a]\n".to_owned()),
        ("an undefined alias", "apiVersion: *nope\n".to_owned()),
        ("a very long line", format!("apiVersion: {}\n", "a".repeat(300_000))),
        // Time grows linearly with the count (tests/integration/scaling.rs).
        ("many documents", "---\nkind: Node\n".repeat(1_000)),
        ("a duplicated key, many times", "kind: Node\n".repeat(5_000)),
        (
            "an overflowing number",
            format!(
                "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {{name: a}}\nspec: {{role: primary, address: a, apiPort: {}}}\n",
                "9".repeat(400)
            ),
        ),
        ("an unclosed quote", "apiVersion: \"agentmesh/v1alpha1\nkind: Node\n".to_owned()),
        ("a lone directive", "%YAML 1.2\n".to_owned()),
        (
            "a merge of a scalar",
            "apiVersion: agentmesh/v1alpha1\nkind: Mesh\nmetadata: {name: m}\nspec:\n  <<: 1\n".to_owned(),
        ),
    ];
    for (what, text) in cases {
        let files = [source("hostile.yaml", text)];
        let validation = validate_checked(&files).unwrap_or_else(|error| panic!("{what}: {error}"));
        let nonempty = !files[0].text.trim_matches(['-', '.', '\n']).is_empty();
        if nonempty {
            assert!(!validation.is_valid(), "{what}: accepted");
        }
    }
}
