//! Something the daemon did or saw, as its event log records it: a
//! [`Severity`], a reason and a message. A leaf, so every layer can report one.

use std::sync::Arc;

/// Records an event about an object (`Node/<name>`), for a part of the daemon
/// that reports events without knowing the log.
pub(crate) type EventSink = Arc<dyn Fn(&str, Event) + Send + Sync>;

/// Whether an event is routine or worth a person's look; its JSON is the
/// variant's name (`"type": "Normal"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Normal,
    Warning,
}

impl Severity {
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Normal => "Normal",
            Severity::Warning => "Warning",
        }
    }
}

/// One event before the log gives it a time and an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub severity: Severity,
    /// A stable, CamelCase or dotted word that tools may match (`PortInUse`, `handoff.freeze`).
    pub reason: &'static str,
    pub message: String,
}

impl Event {
    pub fn normal(reason: &'static str, message: impl Into<String>) -> Event {
        Event { severity: Severity::Normal, reason, message: message.into() }
    }

    pub fn warning(reason: &'static str, message: impl Into<String>) -> Event {
        Event { severity: Severity::Warning, reason, message: message.into() }
    }
}
