//! `kind: Node`: one machine of the mesh, its address and roles.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::diagnostic::Pos;
use crate::manifest::values::{HTTP_URL_PATTERN, Located, Port, SecretRef};

/// A machine of the mesh.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeSpec {
    /// `primary` or `satellite`.
    pub role: Role,
    /// How peers reach this node: a tailnet name, host name or IP address.
    pub address: Located<String>,
    /// The port of this node's mesh API.
    #[serde(default = "default_api_port")]
    pub api_port: Port,
    /// This node's Syncthing instance, if it takes part in folder sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syncthing: Option<NodeSyncthing>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Primary,
    Satellite,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Satellite => "satellite",
        }
    }
}

/// How the controller reaches this node's Syncthing, and how peers dial it.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeSyncthing {
    /// Syncthing's REST base URL on this node.
    #[serde(default = "default_syncthing_api_url")]
    #[schemars(extend("pattern" = HTTP_URL_PATTERN))]
    pub api_url: Located<String>,
    /// The REST API key.
    pub api_key: SecretRef,
    /// What peers dial, e.g. `tcp://agent-home-mini:22000`, or `dynamic`.
    #[serde(default = "default_device_address")]
    pub device_address: Located<String>,
}

fn default_api_port() -> Port {
    Port(8000)
}

fn default_syncthing_api_url() -> Located<String> {
    Located::new("http://127.0.0.1:8384".into(), Pos::default())
}

fn default_device_address() -> Located<String> {
    Located::new("dynamic".into(), Pos::default())
}
