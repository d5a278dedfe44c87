//! `kind: Node`: one machine of the mesh, its address and roles.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::diagnostic::Pos;
use crate::manifest::values::{DurationSpec, HTTP_URL_PATTERN, Located, MacAddress, Port, SecretRef};

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
    /// How to wake this machine from sleep with a Wake-on-LAN magic packet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake: Option<NodeWake>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Primary,
    Satellite,
}

impl Role {
    /// The role `text` names (`primary` or `satellite`), if any.
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "primary" => Some(Role::Primary),
            "satellite" => Some(Role::Satellite),
            _ => None,
        }
    }

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

/// Where a Wake-on-LAN magic packet for this node goes, and how long a woken
/// node may take to answer.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeWake {
    /// The MAC address of the network card that wakes the machine.
    pub mac: MacAddress,
    /// Where the packet is sent: the LAN's broadcast address, or an IPv4/IPv6
    /// address or host name.
    pub address: Located<String>,
    /// The UDP port of the packet (9, "discard", by custom; 7 also works).
    #[serde(default = "default_wake_port")]
    pub port: Port,
    /// How long the node may take to answer after a wake: how long a call
    /// that woke it waits before it uses the fallback.
    #[serde(default = "default_wake_timeout")]
    pub timeout: DurationSpec,
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

fn default_wake_port() -> Port {
    Port(9)
}

fn default_wake_timeout() -> DurationSpec {
    DurationSpec::fixed("15s")
}
