//! Diagnostics: a problem at a place in a file, about an object, rendered the way
//! compilers do (`path:line:col: Kind/name: message`, the source line, a caret and
//! a "did you mean").

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::manifest::Pos;

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
        write!(f, "{}:{}:{}: {}: {warning}{}", self.file, self.line, self.column, self.object, self.message)?;
        let gutter = " ".repeat(self.line.to_string().len());
        if let Some(source) = &self.source_line {
            let source = source.replace('\t', " ");
            let start = (self.column as usize).saturating_sub(1).min(source.chars().count());
            let room = source.chars().count().saturating_sub(start).max(1);
            let carets = "^".repeat((self.len as usize).clamp(1, room));
            write!(f, "\n {} | {source}\n {gutter} | {}{carets}", self.line, " ".repeat(start))?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n {gutter} = help: {help}")?;
        }
        Ok(())
    }
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
