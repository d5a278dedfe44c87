//! Diagnostics: a problem at a place in a file, about an object, rendered the way
//! compilers do (`path:line:col: Kind/name: message`, the source line, a caret and
//! a "did you mean"). Control characters in anything shown are escaped, so a
//! value cannot forge a line of its own.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;

/// Where a value sits in its source file (1-based), and how many characters it
/// spans, so a caret can underline it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
    pub len: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnostic {
    pub severity: Severity,
    /// The file as the user would open it.
    pub file: Arc<str>,
    pub line: u32,
    pub column: u32,
    /// `Kind/name` of the object, or `document N` when the document has no kind.
    pub object: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// How many characters the caret underlines.
    #[serde(skip)]
    pub len: u32,
    /// The offending source line, filled in once the whole set is checked.
    #[serde(skip)]
    pub source_line: Option<String>,
}

impl Diagnostic {
    pub fn error(file: &Arc<str>, at: Pos, object: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic::new(Severity::Error, file, at, object.into(), message.into())
    }

    pub fn warning(file: &Arc<str>, at: Pos, object: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic::new(Severity::Warning, file, at, object.into(), message.into())
    }

    fn new(severity: Severity, file: &Arc<str>, at: Pos, object: String, message: String) -> Self {
        Diagnostic {
            severity,
            file: file.clone(),
            line: at.line.max(1),
            column: at.column.max(1),
            len: at.len.max(1),
            object,
            message,
            help: None,
            source_line: None,
        }
    }

    pub fn with_help(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    /// The first line is the contract scripts rely on:
    /// `PATH:LINE:COL: Kind/name: message` (warnings say `warning: ` before the
    /// message). The source line, caret and help follow when known.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let warning = match self.severity {
            Severity::Error => "",
            Severity::Warning => "warning: ",
        };
        let (file, object, message) = (escaped(&self.file), escaped(&self.object), escaped(&self.message));
        write!(f, "{file}:{}:{}: {object}: {warning}{message}", self.line, self.column)?;
        let gutter = " ".repeat(self.line.to_string().len());
        if let Some(source) = &self.source_line {
            // A tab is shown as one space and an escaped character as its escape,
            // so the caret is placed by the shown width of what comes before it.
            let source = source.replace('\t', " ");
            let widths: Vec<usize> = source.chars().map(shown_width).collect();
            let start = (self.column as usize).saturating_sub(1).min(widths.len());
            let (before, after) = widths.split_at(start);
            let indent: usize = before.iter().sum();
            let room = after.iter().sum::<usize>().max(1);
            let underlined: usize = after.iter().take(self.len as usize).sum();
            let carets = "^".repeat(underlined.clamp(1, room));
            write!(f, "\n {} | {}\n {gutter} | {}{carets}", self.line, escaped(&source), " ".repeat(indent))?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n {gutter} = help: {}", escaped(help))?;
        }
        Ok(())
    }
}

/// `text` with every control character (line breaks among them) and every
/// character that moves or reorders text on a terminal written as an escape, the
/// way Rust writes it (`\n`, `\u{1b}`): shown text stays on its own line and reads
/// as it is.
pub fn escaped(text: &str) -> Cow<'_, str> {
    if !text.contains(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len());
    for c in text.chars() {
        if needs_escape(c) {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    Cow::Owned(shown)
}

/// How many characters `c` takes once shown by [`escaped`].
fn shown_width(c: char) -> usize {
    if needs_escape(c) { c.escape_default().count() } else { 1 }
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The candidate closest to `wanted`, when it is close enough to be a typo.
pub fn closest<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let budget = (wanted.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .filter(|candidate| *candidate != wanted)
        .map(|candidate| {
            let distance =
                if candidate.eq_ignore_ascii_case(wanted) { 0 } else { strsim::levenshtein(wanted, candidate) };
            (distance, candidate)
        })
        // A suggestion that shares nothing with the word is no suggestion.
        .filter(|(distance, _)| *distance <= budget && *distance < wanted.chars().count())
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// `did you mean "x"?` for the closest candidate, if any.
pub fn did_you_mean<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    closest(wanted, candidates).map(|name| format!("did you mean \"{name}\"?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Diagnostic {
        let file: Arc<str> = "manifests/llm.yaml".into();
        let at = Pos { line: 7, column: 9, len: 14 };
        let mut d = Diagnostic::error(
            &file,
            at,
            "Capability/llm_inference",
            "placement.prefer names unknown node \"agent-home-mac\"",
        )
        .with_help(did_you_mean("agent-home-mac", ["agent-home-mini", "agent-work-laptop"]));
        d.source_line = Some("      - agent-home-mac".into());
        d
    }

    #[test]
    fn renders_location_object_message_caret_and_help() {
        assert_eq!(
            sample().to_string(),
            "manifests/llm.yaml:7:9: Capability/llm_inference: placement.prefer names unknown node \"agent-home-mac\"\n \
             7 |       - agent-home-mac\n   \
             |         ^^^^^^^^^^^^^^\n   \
             = help: did you mean \"agent-home-mini\"?"
        );
    }

    #[test]
    fn control_characters_are_escaped_so_no_line_can_be_forged() {
        let file: Arc<str> = "manifests/a\nb.yaml".into();
        // Column 8 is the right-to-left override: the caret starts under its escape.
        let at = Pos { line: 3, column: 8, len: 3 };
        let forged = "a\nmanifests/x.yaml:1:1: error: forged";
        let mut d = Diagnostic::error(&file, at, format!("Node/{forged}"), format!("metadata.name \"{forged}\""))
            .with_help(Some("use \u{1b}[31m\r\u{2028}".into()));
        d.source_line = Some("\u{1b}[2J\u{0}: \u{202e}abc".into());
        let rendered = d.to_string();
        let lines: Vec<&str> = rendered.lines().collect();
        let caret = format!("   | {}{}", " ".repeat(16), "^".repeat(10));
        assert_eq!(
            lines,
            [
                "manifests/a\\nb.yaml:3:8: Node/a\\nmanifests/x.yaml:1:1: error: forged: \
                 metadata.name \"a\\nmanifests/x.yaml:1:1: error: forged\"",
                " 3 | \\u{1b}[2J\\u{0}: \\u{202e}abc",
                caret.as_str(),
                "   = help: use \\u{1b}[31m\\r\\u{2028}",
            ]
        );
    }

    #[test]
    fn text_without_control_characters_is_not_copied() {
        assert!(matches!(escaped("Node/home: \"é\" 漢"), Cow::Borrowed(_)));
        assert_eq!(escaped("a\tb\u{7f}\u{85}"), "a\\tb\\u{7f}\\u{85}");
    }

    #[test]
    fn closest_prefers_smallest_edit_and_ignores_far_names() {
        let table: [(&str, &[&str], Option<&str>); 5] = [
            ("Nod", &["Node", "Mesh"], Some("Node")),
            ("node", &["Node", "Mesh"], Some("Node")),
            ("apiPrt", &["role", "apiPort", "address"], Some("apiPort")),
            ("zzzzzz", &["role", "apiPort"], None),
            ("Node", &["Node"], None),
        ];
        for (wanted, candidates, expected) in table {
            assert_eq!(closest(wanted, candidates.iter().copied()), expected, "{wanted}");
        }
    }
}
