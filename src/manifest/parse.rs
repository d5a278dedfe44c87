//! Text to objects: one file's documents, each read first for its header
//! (`apiVersion`, `kind`, `metadata.name`) and then as its concrete kind, so that
//! every error keeps its line and column. Works on strings only; the loader reads
//! files.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_saphyr::{MessageFormatter, UserMessageFormatter};

use super::object::{API_VERSION, Kind, Manifest, Object, Origin, RawObject, Spec};
use super::shape::{self, Problem, Tree};
use super::values::{Located, name_problem, with_line_offset};
use crate::diagnostic::{Diagnostic, Pos, did_you_mean};

/// A manifest file's path (as the user would open it) and text.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub path: Arc<str>,
    pub text: String,
}

/// Limits that refuse alias bombs and deep nesting quickly, far above what any
/// real manifest needs.
const MAX_NODES_PER_DOCUMENT: usize = 20_000;
const MAX_ALIASES_PER_DOCUMENT: usize = 1_000;
const MAX_DEPTH: usize = 64;
/// How deep a document may be for the schema walk after a failed parse: the
/// schemas are six levels deep, and a deeper document gets the parser's error
/// alone, walked by no deep recursion.
const MAX_WALKED_DEPTH: usize = 16;

/// What one file holds: the objects that parsed, every problem, and the objects
/// declared (by kind and name) whose document did not parse.
#[derive(Default)]
pub(super) struct ParsedFile {
    pub objects: Vec<Manifest>,
    pub diagnostics: Vec<Diagnostic>,
    pub unparsed: Vec<(Kind, String)>,
}

/// Parses every document of `file`.
pub(super) fn parse_file(file: &SourceFile) -> ParsedFile {
    let mut parsed = ParsedFile::default();
    let mut ordinal = 0;
    for document in split_documents(&file.text) {
        match parse_document(file, &document, ordinal + 1) {
            Parsed::Empty => continue,
            Parsed::Object(object) => parsed.objects.push(*object),
            Parsed::Invalid { found, declared } => {
                parsed.diagnostics.extend(found);
                parsed.unparsed.extend(declared);
            }
        }
        ordinal += 1;
    }
    parsed
}

/// The documents of `new` that declare an object (`kind` and `metadata.name`)
/// that `old` does not, at their own lines: every other line is left empty but
/// for the `---` markers, so positions stay the file's. None when there is none.
/// The folder source lets these through at once while it holds `old`.
pub fn new_documents(old: &str, new: &str) -> Option<String> {
    let declared = |text| -> Vec<(Option<(String, String)>, &str)> {
        split_documents(text).into_iter().map(|document| (declares(&document), document.text)).collect()
    };
    let known: HashSet<(String, String)> = declared(old).into_iter().filter_map(|(object, _)| object).collect();
    let mut out = String::with_capacity(new.len());
    let mut added = false;
    for (object, text) in declared(new) {
        let is_new = object.is_some_and(|object| !known.contains(&object));
        added |= is_new;
        for (index, line) in lines_inclusive(text).enumerate() {
            let marker = index == 0 && is_marker(line);
            if is_new || marker {
                out.push_str(line);
            } else {
                out.push_str(&line[line.trim_end_matches(['\r', '\n']).len()..]);
            }
        }
    }
    added.then_some(out)
}

/// The kind and name a document declares, when its header reads.
fn declares(document: &DocumentText<'_>) -> Option<(String, String)> {
    let header = from_yaml::<Option<Header>>(document).ok()??;
    Some((header.kind?.value, header.metadata?.name?.value))
}

/// One document of a file, parsed alone; positions are shifted by the lines
/// before it, so they are the file's.
struct DocumentText<'a> {
    text: &'a str,
    /// How many lines of the file come before it.
    line_offset: u32,
    /// The first line with content, for errors about the document as a whole.
    first_line: u32,
}

/// Splits at `---` lines. YAML forbids a line starting with `---` followed by a
/// space or the end of the line inside any scalar, so this split is exact.
fn split_documents(text: &str) -> Vec<DocumentText<'_>> {
    let mut documents = Vec::new();
    let (mut start_byte, mut start_line, mut first_line) = (0, 0, None);
    let mut offset = 0;
    for (index, line) in lines_inclusive(text).enumerate() {
        if index > 0 && is_marker(line) {
            documents.push(document(&text[start_byte..offset], start_line, first_line));
            (start_byte, start_line, first_line) = (offset, index, None);
        }
        let trimmed = line.trim();
        if first_line.is_none() && !(trimmed.is_empty() || trimmed.starts_with('#') || is_marker(line)) {
            first_line = Some(index);
        }
        offset += line.len();
    }
    documents.push(document(&text[start_byte..], start_line, first_line));
    documents
}

/// A `---` line: the start of a new document.
fn is_marker(line: &str) -> bool {
    line.strip_prefix("---").is_some_and(|rest| rest.is_empty() || rest.starts_with(|c: char| c.is_whitespace()))
}

/// The lines of `text`, each with its line break. YAML's line breaks are
/// `\r\n`, `\r` and `\n`, and the parser's positions count a lone `\r` as
/// one: so must everything that maps those positions to lines.
pub(super) fn lines_inclusive(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = match rest.find(['\r', '\n']) {
            Some(at) if rest[at..].starts_with("\r\n") => at + 2,
            Some(at) => at + 1,
            None => rest.len(),
        };
        let (line, tail) = rest.split_at(end);
        rest = tail;
        Some(line)
    })
}

fn document(text: &str, start_line: usize, first_line: Option<usize>) -> DocumentText<'_> {
    let line = |index: usize| u32::try_from(index).unwrap_or(u32::MAX);
    DocumentText { text, line_offset: line(start_line), first_line: line(first_line.unwrap_or(start_line)) + 1 }
}

/// The kind of a document written the usual way — one top-level `apiVersion:`
/// line of this API and one `kind:` line of a known kind — read from the text
/// alone, so that such a document is parsed once. Anything else takes the slow
/// path through the header.
fn kind_at_a_glance(text: &str) -> Option<Kind> {
    let (mut kind, mut version, mut kinds, mut versions) = (None, None, 0, 0);
    for line in text.lines() {
        let value = |rest: &str| {
            let rest = rest.split(" #").next().unwrap_or_default().trim();
            rest.trim_matches(|c| c == '"' || c == '\'').to_owned()
        };
        if let Some(rest) = line.strip_prefix("kind:") {
            kinds += 1;
            kind = Kind::parse(&value(rest));
        } else if let Some(rest) = line.strip_prefix("apiVersion:") {
            versions += 1;
            version = Some(value(rest));
        }
    }
    (kinds == 1 && versions == 1 && version.as_deref() == Some(API_VERSION)).then_some(kind).flatten()
}

/// The kind and name a document that is not YAML still shows, written the usual
/// way (see [`kind_at_a_glance`], and `metadata:` with an indented `name:` or
/// `metadata: {name: …}`): objects naming it are not told it is unknown.
fn declared_at_a_glance(text: &str) -> Option<(Kind, String)> {
    let kind = kind_at_a_glance(text)?;
    let mut lines = text.lines().map(|line| line.split(" #").next().unwrap_or_default());
    let rest = lines.by_ref().find_map(|line| line.strip_prefix("metadata:"))?.trim();
    let name = match rest.strip_prefix('{') {
        Some(flow) => flow.split([',', '}']).find_map(|part| part.trim().strip_prefix("name:")),
        None => lines.take_while(|line| line.starts_with(' ')).find_map(|line| line.trim().strip_prefix("name:")),
    }?;
    let name = name.trim().trim_matches(['"', '\'']);
    (!name.is_empty()).then(|| (kind, name.to_owned()))
}

enum Parsed {
    Empty,
    Object(Box<Manifest>),
    /// Every structural problem of the document, and the object it declares
    /// when its header (or, for text that is not YAML, its usual lines) names
    /// a known kind and a name: references to that object are not reported
    /// again as unknown.
    Invalid {
        found: Vec<Diagnostic>,
        declared: Option<(Kind, String)>,
    },
}

/// The fields every document shares, read leniently to learn what the document
/// claims to be before it is read strictly.
#[derive(Deserialize)]
struct Header {
    #[serde(rename = "apiVersion")]
    api_version: Option<Located<String>>,
    kind: Option<Located<String>>,
    metadata: Option<HeaderMetadata>,
}

#[derive(Deserialize)]
struct HeaderMetadata {
    name: Option<Located<String>>,
}

/// Whether a document's root is a mapping, learned without reading its fields:
/// the parser's own word for a list or a scalar there ("expected mapping start")
/// is the same as for any nested value, so it does not say that the document as a
/// whole has the wrong shape.
enum RootShape {
    Mapping,
    NotAMapping,
}

impl<'de> Deserialize<'de> for RootShape {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Shape;
        impl<'de> serde::de::Visitor<'de> for Shape {
            type Value = RootShape;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<RootShape, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(RootShape::Mapping)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<RootShape, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(RootShape::NotAMapping)
            }
            fn visit_bool<E>(self, _: bool) -> Result<RootShape, E> {
                Ok(RootShape::NotAMapping)
            }
            fn visit_i64<E>(self, _: i64) -> Result<RootShape, E> {
                Ok(RootShape::NotAMapping)
            }
            fn visit_u64<E>(self, _: u64) -> Result<RootShape, E> {
                Ok(RootShape::NotAMapping)
            }
            fn visit_f64<E>(self, _: f64) -> Result<RootShape, E> {
                Ok(RootShape::NotAMapping)
            }
            fn visit_str<E>(self, _: &str) -> Result<RootShape, E> {
                Ok(RootShape::NotAMapping)
            }
            fn visit_unit<E>(self) -> Result<RootShape, E> {
                Ok(RootShape::Mapping)
            }
        }
        deserializer.deserialize_any(Shape)
    }
}

fn parse_document(file: &SourceFile, document: &DocumentText<'_>, ordinal: usize) -> Parsed {
    if let Some(kind) = kind_at_a_glance(document.text)
        && let Ok(object) = parse_kind(kind, file, document)
    {
        return Parsed::Object(Box::new(object));
    }
    parse_document_with_header(file, document, ordinal)
}

/// The careful path: the header first, for precise errors about it, then the
/// kind it names.
fn parse_document_with_header(file: &SourceFile, document: &DocumentText<'_>, ordinal: usize) -> Parsed {
    let document_label = format!("document {ordinal}");
    let start = Pos { line: document.first_line, column: 1, len: 1 };
    let header = match from_yaml::<Option<Header>>(document) {
        Ok(None) => return Parsed::Empty,
        Ok(Some(header)) => header,
        Err(error) => {
            let mut diagnostic = yaml_diagnostic(file, &document_label, &error);
            if matches!(from_yaml::<RootShape>(document), Ok(RootShape::NotAMapping)) {
                diagnostic.message = "a manifest must be a mapping with apiVersion, kind, metadata and spec".into();
            }
            return invalid(diagnostic, declared_at_a_glance(document.text));
        }
    };
    let kind_text = header.kind.as_ref().map(|kind| kind.value.clone());
    let name = header.metadata.and_then(|m| m.name);
    let declared = kind_text.as_deref().and_then(Kind::parse).zip(name.as_ref().map(|name| name.value.clone()));
    let label = match (&kind_text, name.as_ref().map(|n| &n.value)) {
        (Some(kind), Some(name)) => format!("{kind}/{name}"),
        (Some(kind), None) => format!("{kind}/<unnamed>"),
        (None, _) => document_label,
    };

    match &header.api_version {
        None => {
            return invalid(
                Diagnostic::error(
                    &file.path,
                    start,
                    label,
                    format!("missing field `apiVersion` (expected \"{API_VERSION}\")"),
                ),
                declared,
            );
        }
        Some(version) if version.value != API_VERSION => {
            return invalid(
                Diagnostic::error(
                    &file.path,
                    version.at,
                    label,
                    format!("unknown apiVersion \"{}\", expected \"{API_VERSION}\"", version.value),
                )
                .with_help(did_you_mean(&version.value, [API_VERSION])),
                declared,
            );
        }
        Some(_) => {}
    }
    let Some(kind_text) = header.kind else {
        return invalid(
            Diagnostic::error(&file.path, start, label, format!("missing field `kind` (one of {})", kind_list())),
            None,
        );
    };
    let Some(kind) = Kind::parse(&kind_text.value) else {
        return invalid(
            Diagnostic::error(
                &file.path,
                kind_text.at,
                label,
                format!("unknown kind \"{}\", expected one of {}", kind_text.value, kind_list()),
            )
            .with_help(did_you_mean(&kind_text.value, Kind::ALL.map(Kind::as_str))),
            None,
        );
    };

    let parsed = parse_kind(kind, file, document);
    match parsed {
        Ok(object) => Parsed::Object(Box::new(object)),
        Err(error) => {
            let first = yaml_diagnostic(file, &label, &error);
            let walked = from_yaml_within::<Located<Tree>>(document, MAX_WALKED_DEPTH)
                .map(|tree| shape::problems(kind, &tree, start))
                .unwrap_or_default();
            let found = if walked.is_empty() {
                let mut found = vec![first];
                if let Some(name) = name
                    && let Some(problem) = name_problem(&name.value)
                {
                    let message = format!("metadata.name \"{}\" {problem}", name.value);
                    found.push(Diagnostic::error(&file.path, name.at, label, message));
                }
                found
            } else {
                merge(first, walked, file, &label)
            };
            Parsed::Invalid { found, declared }
        }
    }
}

/// The parser's error together with every problem the schema walk found. Where
/// both point at the same place the parser's words are kept; the parser's
/// error is left out when the walk says the same (a missing field, which the
/// walk places at the mapping that lacks it).
fn merge(first: Diagnostic, walked: Vec<Problem>, file: &SourceFile, label: &str) -> Vec<Diagnostic> {
    let mut first = Some(first).filter(|first| !walked.iter().any(|problem| problem.message == first.message));
    let mut found = Vec::with_capacity(walked.len() + 1);
    for problem in walked {
        let at_first = first.as_ref().is_some_and(|f| (f.line, f.column) == (problem.at.line, problem.at.column));
        match first.take_if(|_| at_first) {
            Some(first) => found.push(first),
            None => {
                found.push(Diagnostic::error(&file.path, problem.at, label, problem.message).with_help(problem.help));
            }
        }
    }
    found.extend(first);
    found
}

fn invalid(diagnostic: Diagnostic, declared: Option<(Kind, String)>) -> Parsed {
    Parsed::Invalid { found: vec![diagnostic], declared }
}

fn kind_list() -> String {
    Kind::ALL.map(Kind::as_str).join(", ")
}

fn parse_kind(kind: Kind, file: &SourceFile, document: &DocumentText<'_>) -> Result<Manifest, YamlError> {
    match kind {
        Kind::Node => parse_object(file, document).map(Manifest::Node),
        Kind::Service => parse_object(file, document).map(Manifest::Service),
        Kind::Capability => parse_object(file, document).map(Manifest::Capability),
        Kind::SyncFolder => parse_object(file, document).map(Manifest::SyncFolder),
        Kind::HandoffPolicy => parse_object(file, document).map(Manifest::HandoffPolicy),
        Kind::Mesh => parse_object(file, document).map(Manifest::Mesh),
    }
}

/// Parses the document as kind `S`. A document whose `kind` or `apiVersion` is
/// not what was expected is an error here (the header path reports it well).
fn parse_object<S: Spec>(file: &SourceFile, document: &DocumentText<'_>) -> Result<Object<S>, YamlError> {
    let raw: RawObject<S> = from_yaml(document)?;
    if raw.kind != S::KIND.as_str() || raw.api_version != API_VERSION {
        return Err(YamlError {
            at: Pos::default(),
            error: Box::new(serde::de::Error::custom("kind or apiVersion is not the expected one")),
        });
    }
    Ok(Object {
        origin: Origin { file: file.path.clone(), at: raw.metadata.name.at },
        metadata: raw.metadata,
        spec_at: raw.spec.at,
        spec: raw.spec.value,
    })
}

/// A parser error and its position in the file.
struct YamlError {
    at: Pos,
    error: Box<serde_saphyr::Error>,
}

fn from_yaml<T: serde::de::DeserializeOwned>(document: &DocumentText<'_>) -> Result<T, YamlError> {
    from_yaml_within(document, MAX_DEPTH)
}

fn from_yaml_within<T: serde::de::DeserializeOwned>(
    document: &DocumentText<'_>,
    max_depth: usize,
) -> Result<T, YamlError> {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_nodes: MAX_NODES_PER_DOCUMENT,
            max_aliases: MAX_ALIASES_PER_DOCUMENT,
            max_depth: max_depth,
        },
        with_snippet: false,
        // A text field given a plain `8001`, `true` or `1.0` is an error, as it is
        // for the JSON Schema: quote it.
        no_schema: true,
    };
    with_line_offset(document.line_offset, || {
        serde_saphyr::from_str_with_options(document.text, options).map_err(|error| YamlError {
            at: error.location().map(Pos::from_location).unwrap_or_default(),
            error: Box::new(error),
        })
    })
}

/// A parser or type error as a diagnostic, with a "did you mean" for unknown
/// fields and variants, and plain words for the limits.
fn yaml_diagnostic(file: &SourceFile, label: &str, YamlError { at, error }: &YamlError) -> Diagnostic {
    let at = *at;
    let raw = UserMessageFormatter.format_message(error.without_snippet()).into_owned();
    let (message, help) = if is_limit_breach(error) {
        (
            format!(
                "document refused: it is nested deeper than {MAX_DEPTH} levels, or expands to more than \
                 {MAX_NODES_PER_DOCUMENT} values or {MAX_ALIASES_PER_DOCUMENT} aliases (an alias bomb?)"
            ),
            None,
        )
    } else if raw.starts_with("recursion limit exceeded") {
        ("document refused: it is nested too deeply".to_owned(), None)
    } else if let serde_saphyr::Error::QuotingRequired { value, .. } = error.without_snippet() {
        (
            format!("{value} reads as a number, boolean or null, but this field takes text"),
            Some(format!("quote it: \"{value}\"")),
        )
    } else {
        let help = unknown_name_help(&raw);
        (raw, help)
    };
    Diagnostic::error(&file.path, at, label, message).with_help(help)
}

/// Whether `error` is one of the parser's limits (see the constants above),
/// also when it was met while replaying an alias.
fn is_limit_breach(mut error: &serde_saphyr::Error) -> bool {
    use serde_saphyr::Error;
    loop {
        match error {
            Error::AliasError { error: inner, .. } | Error::WithSnippet { error: inner, .. } => error = inner,
            Error::Budget { .. }
            | Error::AliasReplayLimitExceeded { .. }
            | Error::AliasExpansionLimitExceeded { .. }
            | Error::AliasReplayStackDepthExceeded { .. } => return true,
            _ => return false,
        }
    }
}

/// For "unknown field `x`, expected one of a, b" (and variants), the nearest
/// expected name.
fn unknown_name_help(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `").or_else(|| message.strip_prefix("unknown variant `"))?;
    let (wanted, expected) = rest.split_once('`')?;
    let expected = expected.trim_start_matches(',').trim();
    let expected = expected.strip_prefix("expected").unwrap_or(expected).trim();
    let expected = expected.strip_prefix("one of").unwrap_or(expected);
    let candidates: Vec<&str> = expected
        .split(", ")
        .flat_map(|part| part.split(" or "))
        .map(|name| name.trim().trim_matches('`'))
        .filter(|name| !name.is_empty())
        .collect();
    did_you_mean(wanted, candidates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_line_numbers_and_first_content_line() {
        let text = "# comment\na: 1\n---\n\nb: 2\n--- # next\nc: 3\n";
        let docs = split_documents(text);
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0].first_line, 2);
        assert_eq!(docs[1].first_line, 5);
        assert_eq!((docs[1].text, docs[1].line_offset), ("---\n\nb: 2\n", 2));
        assert_eq!(docs[2].first_line, 7);
    }

    #[test]
    fn new_documents_keep_their_lines_and_leave_known_objects_out() {
        let svc = |name: &str| format!("kind: Service\nmetadata:\n  name: {name}\nspec: {{}}\n");
        let old = format!("{}---\n{}", svc("a"), svc("b"));
        let table: [(&str, String, Option<String>); 6] = [
            ("same objects, shorter", format!("{}---\n{}", svc("a"), &svc("b")[..30]), None),
            ("one removed", svc("a"), None),
            (
                "one removed, one added",
                format!("{}---\n{}", svc("a"), svc("c")),
                Some(format!("\n\n\n\n---\n{}", svc("c"))),
            ),
            ("added first", format!("{}---\n{}", svc("c"), svc("a")), Some(format!("{}---\n\n\n\n\n", svc("c")))),
            ("emptied", String::new(), None),
            ("a document without a name", "kind: Service\nspec: {}\n".into(), None),
        ];
        for (case, new, expected) in table {
            assert_eq!(new_documents(&old, &new), expected, "{case}");
        }
        let crlf = "kind: Mesh\r\nmetadata: {name: home}\r\n---\r\nkind: Node\r\nmetadata: {name: laptop}\r\n";
        assert_eq!(
            new_documents("kind: Mesh\nmetadata: {name: home}\n", crlf).as_deref(),
            Some("\r\n\r\n---\r\nkind: Node\r\nmetadata: {name: laptop}\r\n")
        );
    }

    #[test]
    fn usual_documents_are_recognised_at_a_glance_and_others_are_not() {
        let table = [
            ("apiVersion: agentmesh/v1alpha1\nkind: Node\n", Some(Kind::Node)),
            ("kind: \"Service\"  # a comment\napiVersion: 'agentmesh/v1alpha1'\n", Some(Kind::Service)),
            ("apiVersion: agentmesh/v1\nkind: Node\n", None),
            ("apiVersion: agentmesh/v1alpha1\nkind: Node\nkind: Mesh\n", None),
            ("{apiVersion: agentmesh/v1alpha1, kind: Node}\n", None),
            ("apiVersion: agentmesh/v1alpha1\nkind: Nod\n", None),
        ];
        for (text, expected) in table {
            assert_eq!(kind_at_a_glance(text), expected, "{text:?}");
        }
    }

    #[test]
    fn a_lone_carriage_return_ends_a_line_as_yaml_says() {
        let lines: Vec<&str> = lines_inclusive("a\rb\r\nc\nd").collect();
        assert_eq!(lines, ["a\r", "b\r\n", "c\n", "d"]);
        let docs = split_documents("\ra: 1\r---\rb: 2\r");
        assert_eq!((docs[1].text, docs[1].line_offset, docs[1].first_line), ("---\rb: 2\r", 2, 4));
    }

    #[test]
    fn a_document_that_is_not_yaml_declares_what_its_usual_lines_say() {
        let head = "apiVersion: agentmesh/v1alpha1\nkind: Service\n";
        let table = [
            ("metadata:\n  labels: {a: b}\n  name: web # the server\nspec: [\n", Some("web")),
            ("metadata: {name: \"web\", labels: {a: b}}\nspec: [\n", Some("web")),
            ("metadata:\n  labels: {a: b}\nspec:\n  name: web [\n", None),
            ("spec: [\n", None),
            ("metadata:\n  name:\n", None),
        ];
        for (rest, expected) in table {
            let declared = declared_at_a_glance(&format!("{head}{rest}"));
            assert_eq!(declared, expected.map(|name| (Kind::Service, name.to_owned())), "{rest}");
        }
        assert_eq!(declared_at_a_glance("kind: Service\nmetadata: {name: web}\n"), None, "no apiVersion line");
    }

    #[test]
    fn split_ignores_dashes_that_are_not_markers() {
        let docs = split_documents("a: |\n  ---\nb: ---x\n----\n");
        assert_eq!(docs.len(), 1);
    }

    #[test]
    fn a_document_that_does_not_parse_reports_every_problem_with_the_parsers_words_where_they_agree() {
        let file = |text: &str| SourceFile { path: "t.yaml".into(), text: text.into() };
        let head = "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata:\n  name: laptop\nspec:\n";
        // Each spec, its problems, and whether the document still declares Node/laptop.
        let table: [(&str, &[&str], bool); 4] = [
            (
                // The parser stops at the first; the walk finds the others.
                "  role: leader\n  address: laptop\n  apiPort: 0\n  apiPrt: 1\n",
                &[
                    "6:9: unknown variant `leader`, expected one of primary, satellite",
                    "8:12: apiPort 0 is out of range 1-65535",
                    "9:3: unknown field `apiPrt`, expected one of address, apiPort, role, syncthing, wake",
                ],
                true,
            ),
            (
                // Where the parser and the walk point at one place, the parser's words.
                "  role: primary\n  address: laptop\n  apiPort: 0\n  apiPrt: 1\n",
                &[
                    "8:12: port 0 is out of range 1-65535",
                    "9:3: unknown field `apiPrt`, expected one of address, apiPort, role, syncthing, wake",
                ],
                true,
            ),
            // The parser places a missing field at the last key; the walk at the mapping.
            ("  role: primary\n", &["5:1: missing field `address`"], true),
            // Text that is not YAML still declares what its usual lines say.
            ("  role: primary\n  address: [x\n", &["7:12: unclosed bracket '['"], true),
        ];
        for (spec, expected, declares) in table {
            let parsed = parse_file(&file(&format!("{head}{spec}")));
            let found: Vec<String> =
                parsed.diagnostics.iter().map(|d| format!("{}:{}: {}", d.line, d.column, d.message)).collect();
            assert_eq!(found, expected, "{spec}");
            let declared = declares.then(|| (Kind::Node, "laptop".to_owned()));
            assert_eq!(parsed.unparsed, Vec::from_iter(declared), "{spec}");
        }
    }

    #[test]
    fn unknown_names_get_the_nearest_expected_one() {
        let table = [
            ("unknown field `apiPrt`, expected one of role, apiPort, nodes", Some("did you mean \"apiPort\"?")),
            ("unknown variant `primry`, expected one of primary, satellite", Some("did you mean \"primary\"?")),
            ("unknown variant `x`, expected `a` or `b`", None),
            ("invalid u16", None),
        ];
        for (message, help) in table {
            assert_eq!(unknown_name_help(message).as_deref(), help, "{message}");
        }
    }
}
