//! What the fuzz targets check, shared with the stable property tests
//! (`tests/integration/fuzz.rs` includes this file), so that both hold the
//! loader and the `.env` reader to the same promises on the same inputs: no
//! panic, every diagnostic points at a line and column of its file, and every
//! rendered diagnostic keeps its shape (no value can add a line of its own).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use agentmesh::diagnostic::Diagnostic;
use agentmesh::identity::NodeEnv;
use agentmesh::manifest::{ManifestSet, SourceFile, Validation, validate};

/// Separates files in a fuzz input: a byte that UTF-8 text never holds.
pub const FILE_SEPARATOR: u8 = 0xFF;

/// At most this many files are made from one input; the rest is the last file.
pub const MAX_FILES: usize = 8;

/// The manifest files an input stands for: its pieces between
/// [`FILE_SEPARATOR`]s, each read as text the way a lossy editor would.
pub fn file_set(data: &[u8]) -> Vec<SourceFile> {
    data.splitn(MAX_FILES, |byte| *byte == FILE_SEPARATOR)
        .enumerate()
        .map(|(index, bytes)| SourceFile {
            path: format!("manifests/f{index}.yaml").into(),
            text: String::from_utf8_lossy(bytes).into_owned(),
        })
        .collect()
}

/// The input that stands for `texts`, one file each: [`file_set`] reverses it.
pub fn input_of(texts: &[String]) -> Vec<u8> {
    let mut data = Vec::new();
    for (index, text) in texts.iter().enumerate() {
        if index > 0 {
            data.push(FILE_SEPARATOR);
        }
        data.extend_from_slice(text.as_bytes());
    }
    data
}

/// The fuzz target of the manifest checks: validates the input's files as one
/// set and panics on a broken promise.
pub fn manifests(data: &[u8]) {
    if let Err(problem) = check_files(&file_set(data)) {
        panic!("{problem}");
    }
}

/// Validates `files` as one set and checks every diagnostic's place and
/// rendering; the validation, or what is wrong.
pub fn check_files(files: &[SourceFile]) -> Result<Validation, String> {
    let validation = validate(files, Vec::new());
    let lines: HashMap<Arc<str>, Vec<&str>> = files.iter().map(|f| (f.path.clone(), yaml_lines(&f.text))).collect();
    for diagnostic in &validation.diagnostics {
        if let Some(problem) = misplaced(diagnostic, &lines) {
            return Err(problem);
        }
        check_rendering(diagnostic)?;
    }
    Ok(validation)
}

/// The fuzz target of the `.env` reader: reads the input as a node's `.env`,
/// then checks the identity it gives against two Nodes, and panics on a broken
/// promise (a parse error is an answer, not a failure).
pub fn env_file(data: &[u8]) {
    let text = String::from_utf8_lossy(data).into_owned();
    let Ok(env) = NodeEnv::from_parts(Some((PathBuf::from("node/.env"), text.clone())), Vec::new()) else {
        return;
    };
    // The same two Nodes for every input: validated once.
    static NODES: std::sync::LazyLock<ManifestSet> = std::sync::LazyLock::new(|| {
        let nodes = "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: home}\nspec: {role: primary, address: home}\n---\napiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: laptop}\nspec: {role: satellite, address: laptop}\n";
        validate(&[SourceFile { path: "manifests/nodes.yaml".into(), text: nodes.into() }], Vec::new()).set
    });
    let _ = env.manifests_dir();
    let line_count = text.lines().count().max(1);
    for diagnostic in env.check_identity(&NODES) {
        if diagnostic.file.as_ref() == "node/.env" && diagnostic.line as usize > line_count {
            panic!("points at line {} of a .env of {line_count} lines: {diagnostic}", diagnostic.line);
        }
        if let Err(problem) = check_rendering(&diagnostic) {
            panic!("{problem}");
        }
    }
}

/// The lines of `text` as a YAML parser counts them: `\n`, `\r\n` and a lone `\r`
/// each end one.
pub fn yaml_lines(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let (mut lines, mut start, mut at) = (Vec::new(), 0, 0);
    while at < bytes.len() {
        if matches!(bytes[at], b'\n' | b'\r') {
            lines.push(&text[start..at]);
            if bytes[at] == b'\r' && bytes.get(at + 1) == Some(&b'\n') {
                at += 1;
            }
            start = at + 1;
        }
        at += 1;
    }
    lines.push(&text[start..]);
    lines
}

/// What is wrong with where `diagnostic` points, given the lines of each file.
pub fn misplaced(diagnostic: &Diagnostic, files: &HashMap<Arc<str>, Vec<&str>>) -> Option<String> {
    let Some(lines) = files.get(&diagnostic.file) else {
        return Some(format!("names a file that was not given: {diagnostic}"));
    };
    let (line, column) = (diagnostic.line as usize, diagnostic.column as usize);
    if line < 1 || column < 1 {
        return Some(format!("has line or column 0: {diagnostic}"));
    }
    if line > lines.len() + 1 {
        return Some(format!("points at line {line} of a file of {} lines: {diagnostic}", lines.len()));
    }
    let width = lines.get(line - 1).map_or(0, |text| text.chars().count());
    if column > width + 1 {
        return Some(format!("points at column {column} of a line of {width} characters: {diagnostic}"));
    }
    None
}

/// A rendered diagnostic is its first line (`path:line:col: object: message`),
/// then the source line and the caret, then the help, each when there is one:
/// no more lines, and no control character anywhere.
fn check_rendering(diagnostic: &Diagnostic) -> Result<(), String> {
    let rendered = diagnostic.to_string();
    let expected = 1 + 2 * usize::from(diagnostic.source_line.is_some()) + usize::from(diagnostic.help.is_some());
    let lines: Vec<&str> = rendered.split('\n').collect();
    if lines.len() != expected {
        return Err(format!("renders as {} lines, not {expected}: {rendered:?}", lines.len()));
    }
    if let Some(line) = lines.iter().find(|line| line.contains(char::is_control)) {
        return Err(format!("renders a control character: {line:?}"));
    }
    let place = format!(":{}:{}: ", diagnostic.line, diagnostic.column);
    if !lines[0].contains(&place) {
        return Err(format!("first line does not give the place {place:?}: {:?}", lines[0]));
    }
    Ok(())
}
