//! The manifest model and its checks: YAML text in, a checked [`ManifestSet`] and
//! diagnostics out. Only [`loader`] touches the file system.

mod bundle;
mod check;
pub mod kinds;
pub mod loader;
mod object;
mod parse;
pub mod schema;
mod set;
mod shape;
mod values;

use std::collections::{HashMap, HashSet};

pub use crate::diagnostic::Pos;
pub use bundle::{Bundle, BundleFile};
pub use object::{API_VERSION, Kind, Manifest, Metadata, Object, Origin, Spec};
use parse::ParsedFile;
pub use parse::{SourceFile, new_documents};
pub use set::ManifestSet;
pub use values::{DurationSpec, Located, MacAddress, NAME_PATTERN, Port, SecretRef, name_problem};

use crate::diagnostic::Diagnostic;

/// The outcome of checking a set of files: the objects that parsed, and every
/// problem found. The set may be acted on only when there is no error.
#[derive(Debug)]
pub struct Validation {
    pub set: ManifestSet,
    pub diagnostics: Vec<Diagnostic>,
}

impl Validation {
    pub fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    pub fn is_valid(&self) -> bool {
        self.error_count() == 0
    }

    /// Adds problems found outside the manifests (the node's `.env`), keeping the
    /// order and source lines of [`validate`].
    pub fn extend(&mut self, diagnostics: Vec<Diagnostic>, files: &[SourceFile]) {
        self.diagnostics.extend(diagnostics);
        finish(&mut self.diagnostics, files);
    }
}

/// What the files checked together are, which decides how a reference to an
/// object in none of them is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The whole set (a folder, a bundle): such a reference is an error.
    Whole,
    /// Part of a set, the rest elsewhere (files staged for a commit): such a
    /// reference is a warning.
    Part,
}

/// Parses and checks `files` as one whole set. `earlier` holds problems found
/// while loading them; they are reported with the rest.
pub fn validate(files: &[SourceFile], earlier: Vec<Diagnostic>) -> Validation {
    validate_as(files, earlier, Scope::Whole)
}

/// [`validate`], with references outside the files judged as `scope` says.
pub fn validate_as(files: &[SourceFile], earlier: Vec<Diagnostic>, scope: Scope) -> Validation {
    let mut diagnostics = earlier;
    let (mut objects, mut unparsed) = (Vec::new(), HashSet::new());
    for parsed in parse_files(files) {
        objects.extend(parsed.objects);
        diagnostics.extend(parsed.diagnostics);
        unparsed.extend(parsed.unparsed);
    }
    let set = check::check(objects, &unparsed, scope, &mut diagnostics);
    finish(&mut diagnostics, files);
    Validation { set, diagnostics }
}

/// Below this much text, parsing on one thread is faster than starting others.
const PARALLEL_THRESHOLD_BYTES: usize = 64 * 1024;

/// Each file's objects and problems, in file order; large sets are parsed on
/// every core.
fn parse_files(files: &[SourceFile]) -> Vec<ParsedFile> {
    let parse_one = parse::parse_file;
    let total: usize = files.iter().map(|f| f.text.len()).sum();
    let threads = std::thread::available_parallelism().map_or(1, usize::from).min(files.len());
    if total < PARALLEL_THRESHOLD_BYTES || threads < 2 {
        return files.iter().map(parse_one).collect();
    }
    let chunk = files.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = files
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(parse_one).collect::<Vec<_>>()))
            .collect();
        workers.into_iter().flat_map(|worker| worker.join().expect("parsing does not panic")).collect()
    })
}

/// Orders diagnostics by place and attaches the source line each points at. Each
/// file's lines are found once, however many diagnostics point into it.
fn finish(diagnostics: &mut [Diagnostic], files: &[SourceFile]) {
    let texts: HashMap<&str, &str> = files.iter().map(|f| (&*f.path, f.text.as_str())).collect();
    let mut lines: HashMap<&str, Vec<&str>> = HashMap::new();
    for diagnostic in diagnostics.iter_mut().filter(|d| d.source_line.is_none()) {
        let Some((&path, &text)) = texts.get_key_value(&*diagnostic.file) else { continue };
        let file_lines = lines.entry(path).or_insert_with(|| parse::lines_inclusive(text).collect());
        diagnostic.source_line =
            file_lines.get(diagnostic.line as usize - 1).map(|line| line.trim_end_matches(['\r', '\n']).to_owned());
    }
    diagnostics.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
}
