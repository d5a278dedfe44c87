//! `kind: Capability`: something a node offers the mesh (the LLM), where it is served and what clients are told.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::manifest::values::{ENV_NAME_PATTERN, Located, Port, URL_PATH_PATTERN};

/// Something the agent calls (LLM inference, a vector DB), served by the first
/// healthy node in placement order.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CapabilitySpec {
    /// `ollama` or `http`.
    pub provider: Provider,
    /// Which nodes may serve it, in order of preference.
    pub placement: Placement,
    /// The Service that provides it, when the controller runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Located<String>>,
    /// Where it answers on the serving node.
    pub endpoint: Endpoint,
    /// Variables rendered for every node from the serving node:
    /// `{{host}}`, `{{port}}`, `{{path}}` and `{{node}}`; and for going through
    /// this node's Ollama proxy, `{{api}}` (its mesh API, `http://address:apiPort`)
    /// and `{{apiKey}}` (the mesh key).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = { "pattern": ENV_NAME_PATTERN }))]
    pub client_env: BTreeMap<String, Located<String>>,
    /// Settings for `provider: ollama`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ollama: Option<Located<OllamaSettings>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// An Ollama server: models are pulled, and the mesh proxies its API.
    Ollama,
    /// Any HTTP server: the payload is POSTed to the endpoint.
    Http,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Placement {
    /// Nodes that serve it when they are up, first first.
    #[schemars(extend("minItems" = 1))]
    pub prefer: Located<Vec<Located<String>>>,
    /// Nodes that serve it when no preferred node can.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback: Vec<Located<String>>,
}

impl CapabilitySpec {
    /// The host clients call on a node at `node_address`: `endpoint.host`,
    /// else the address; None when neither is known.
    pub fn endpoint_host<'a>(&'a self, node_address: Option<&'a str>) -> Option<&'a str> {
        self.endpoint.host.as_deref().or(node_address)
    }
}

impl Placement {
    /// Every node named, in the order they are tried.
    pub fn order(&self) -> impl Iterator<Item = &Located<String>> {
        self.prefer.iter().chain(&self.fallback)
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Endpoint {
    /// The port it listens on.
    pub port: Port,
    /// The base path of requests.
    #[serde(default = "default_root_path")]
    #[schemars(extend("pattern" = URL_PATH_PATTERN))]
    pub path: Located<String>,
    /// The path that answers 2xx when it is healthy (default: `path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = URL_PATH_PATTERN))]
    pub health_path: Option<Located<String>>,
    /// The host to call (default: the serving node's `address`). A loopback
    /// host (`127.0.0.1`) is each serving node's own: that node checks its
    /// health, and peers reach it through that node's mesh API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// Whether `host` names the machine it is used on: 127.0.0.0/8, `::1` or
/// `localhost` (and its subdomains, RFC 6761).
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => {
            let lower = bare.to_ascii_lowercase();
            lower == "localhost" || lower.ends_with(".localhost")
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OllamaSettings {
    /// Models that must be present on every node that serves it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<Located<String>>,
}

fn default_root_path() -> Located<String> {
    Located::new("/".into(), Default::default())
}
