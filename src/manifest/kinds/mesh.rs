//! `kind: Mesh`: the settings of the whole mesh (API key, discovery, reconcile timing).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::manifest::values::{DurationSpec, Located, SecretRef, TAG_PATTERN};

/// Settings for the whole mesh; at most one.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MeshSpec {
    /// Who may call the mesh API.
    #[serde(default)]
    pub auth: MeshAuth,
    /// How nodes learn where their peers are.
    #[serde(default)]
    pub discovery: Discovery,
    /// How often the controller reconciles, and how long it waits on changes.
    #[serde(default)]
    pub reconcile: ReconcileSettings,
}

/// Who may call the mesh API.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MeshAuth {
    /// The shared bearer key of the mesh API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretRef>,
    /// Callers let in by their Tailscale identity, without the key.
    #[serde(default)]
    pub tailscale_identity: TailscaleIdentity,
}

/// Lets in callers whose Tailscale identity is allowed, without the key.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TailscaleIdentity {
    /// Whether Tailscale identities are checked at all (default: false).
    #[serde(default)]
    pub enabled: bool,
    /// Login names, e.g. `alice@example.com`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_users: Vec<String>,
    /// Node tags, e.g. `tag:agent`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("items" = { "type": "string", "pattern": TAG_PATTERN }))]
    pub allow_tags: Vec<Located<String>>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Discovery {
    /// Learn peers' addresses and online state from the Tailscale LocalAPI.
    #[serde(default)]
    pub tailscale: bool,
    /// The LocalAPI socket (default: the platform's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_api_socket: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReconcileSettings {
    /// How often every object is reconciled even when nothing changed (drift).
    #[serde(default = "default_resync_interval")]
    pub resync_interval: DurationSpec,
    /// How long a manifest file that became empty, shrank or was deleted must
    /// stay unchanged before what it no longer declares is changed or removed:
    /// an editor, a sync tool or `git checkout` writing the file is not a decision.
    #[serde(default = "default_settle_time")]
    pub settle_time: DurationSpec,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        ReconcileSettings { resync_interval: default_resync_interval(), settle_time: default_settle_time() }
    }
}

fn default_resync_interval() -> DurationSpec {
    DurationSpec::fixed("5m")
}

fn default_settle_time() -> DurationSpec {
    DurationSpec::fixed("2s")
}
