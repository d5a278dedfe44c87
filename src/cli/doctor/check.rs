//! One check's verdict, and what every check shares: the network timeout, the
//! wording of counts, and the one line each verdict prints as.

use std::time::Duration;

use serde::Serialize;

/// How long any one network check waits.
pub(super) const TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(in crate::cli) enum Status {
    Pass,
    Warn,
    Fail,
}

/// One check's verdict; `-o json|yaml` prints a list of these.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(in crate::cli) struct Check {
    #[serde(rename = "check")]
    pub name: String,
    pub status: Status,
    pub message: String,
    pub fix: Option<String>,
}

impl Check {
    pub(super) fn pass(name: &str, message: impl Into<String>) -> Check {
        Check { name: name.into(), status: Status::Pass, message: message.into(), fix: None }
    }

    pub(super) fn warn(name: &str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { name: name.into(), status: Status::Warn, message: message.into(), fix: Some(fix.into()) }
    }

    pub(super) fn fail(name: &str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { name: name.into(), status: Status::Fail, message: message.into(), fix: Some(fix.into()) }
    }
}

/// One line per check: status, name, message, and the fix when there is one.
pub(super) fn render(checks: &[Check]) -> String {
    let width = checks.iter().map(|c| c.name.len() + 1).max().unwrap_or(0).max(14);
    let mut out = String::new();
    for check in checks {
        let status = match check.status {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        };
        let fix = check.fix.as_deref().map(|fix| format!(" — fix: {fix}")).unwrap_or_default();
        out.push_str(&format!("{status}  {:<width$} {}{fix}\n", check.name, check.message));
    }
    out
}

/// "1 file", "2 files".
pub(super) fn count(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lists_check_status_message_and_fix() {
        let json = serde_json::to_value([Check::pass("node", "Node/laptop")]).unwrap();
        assert_eq!(
            json,
            serde_json::json!([{"check": "node", "status": "pass", "message": "Node/laptop", "fix": null}])
        );
    }
}
