//! `kind: HandoffPolicy`: where conversations live and how one moves from node to node.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::manifest::values::{DurationSpec, Located};

/// How a conversation moves from one node to another.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HandoffPolicySpec {
    /// The SyncFolder that holds the conversations.
    pub sync_folder: Located<String>,
    /// The folder, relative to the SyncFolder, with one sub-folder per conversation.
    #[serde(default = "default_sessions_dir")]
    pub sessions_dir: Located<String>,
    /// Where `meshctl handoff ID` sends a conversation when no `--to` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_target: Option<Located<String>>,
    /// Hand over only once the target holds the same content.
    #[serde(default = "default_true")]
    pub require_in_sync: bool,
    /// How long a handoff may take before it is abandoned.
    #[serde(default = "default_timeout")]
    pub timeout: DurationSpec,
    /// Whether `--force` may take a conversation over from an unreachable owner.
    #[serde(default)]
    pub allow_force: bool,
}

fn default_sessions_dir() -> Located<String> {
    Located::new("sessions".into(), Default::default())
}
fn default_true() -> bool {
    true
}
fn default_timeout() -> DurationSpec {
    DurationSpec::fixed("2m")
}
