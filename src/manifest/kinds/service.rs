//! `kind: Service`: a server a node runs and supervises.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::node::Role;
use crate::manifest::values::{DurationSpec, ENV_NAME_PATTERN, Located, Port, SecretRef, URL_PATH_PATTERN};

/// A server that the controller runs and supervises on the nodes it is placed on.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(extend("oneOf" = [
    { "required": ["nodes"], "properties": { "nodes": { "description": "At least one node.", "minItems": 1 } } },
    { "required": ["nodeSelector"] }
]))]
pub struct ServiceSpec {
    /// The nodes that run it, by name. Give this or `nodeSelector`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<Located<String>>,
    /// The nodes that run it, by role or labels. Give this or `nodes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<NodeSelector>,
    /// The program and its arguments. `{{node.name}}` and `{{node.address}}` are
    /// replaced by the running node's values.
    #[schemars(extend("minItems" = 1))]
    pub command: Vec<Located<String>>,
    /// Environment variables; values may use the same placeholders as `command`,
    /// or be a secret reference.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = { "pattern": ENV_NAME_PATTERN }))]
    pub env: BTreeMap<String, Located<EnvValue>>,
    /// The working folder (default: the controller's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// How the controller knows the server is serving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// When the controller starts it again after it exits.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// The delay between restarts, doubling from `initial` up to `max`.
    #[serde(default)]
    pub backoff: Backoff,
    /// How long a stopping server gets between SIGTERM and SIGKILL.
    #[serde(default = "default_stop_grace_period")]
    pub stop_grace_period: DurationSpec,
}

/// Picks nodes by role and labels; every condition given must hold.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeSelector {
    /// Only nodes of this role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Only nodes that carry every one of these labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
}

/// An environment variable's value: text (numbers and booleans are taken as
/// their text, as a shell would) or a secret reference.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EnvValue {
    Text(String),
    Secret(SecretRef),
}

impl<'de> Deserialize<'de> for EnvValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EnvVisitor;
        impl<'de> Visitor<'de> for EnvVisitor {
            type Value = EnvValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a secret reference {env: NAME} / {file: PATH}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EnvValue, E> {
                Ok(EnvValue::Text(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<EnvValue, E> {
                Ok(EnvValue::Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<EnvValue, E> {
                Ok(EnvValue::Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<EnvValue, E> {
                Ok(EnvValue::Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<EnvValue, E> {
                Ok(EnvValue::Text(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<EnvValue, A::Error> {
                SecretRef::deserialize(de::value::MapAccessDeserializer::new(map)).map(EnvValue::Secret)
            }
        }
        deserializer.deserialize_any(EnvVisitor)
    }
}

impl JsonSchema for EnvValue {
    fn schema_name() -> Cow<'static, str> {
        "EnvValue".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Text (a number or boolean is taken as its text) or a secret reference.",
            "anyOf": [
                { "type": ["string", "number", "boolean"] },
                generator.subschema_for::<SecretRef>()
            ]
        })
    }
}

/// Exactly one of `http` or `tcp`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(extend("oneOf" = [{ "required": ["http"] }, { "required": ["tcp"] }]))]
pub struct HealthCheck {
    /// Probe with an HTTP request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpProbe>,
    /// Probe by opening a TCP connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpProbe>,
    /// How often it is probed.
    #[serde(default = "default_probe_interval")]
    pub interval: DurationSpec,
    /// How long a probe may take before it counts as failed.
    #[serde(default = "default_probe_timeout")]
    pub timeout: DurationSpec,
}

/// Healthy when `GET http://<host>:port/path` answers 2xx.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpProbe {
    /// The port the server answers on.
    pub port: Port,
    /// The path asked for (default: `/`).
    #[serde(default = "default_probe_path")]
    #[schemars(extend("pattern" = URL_PATH_PATTERN))]
    pub path: Located<String>,
    /// The host to probe (default: the node's `address`); `127.0.0.1` for a
    /// server that listens on loopback only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// Healthy when a TCP connection to `host`:port succeeds.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TcpProbe {
    /// The port to connect to.
    pub port: Port,
    /// The host to probe (default: the node's `address`); `127.0.0.1` for a
    /// server that listens on loopback only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Start it again whenever it exits.
    #[default]
    Always,
    /// Start it again only when it exits with an error.
    OnFailure,
    /// Leave it stopped.
    Never,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Backoff {
    /// The first delay (default: 1s).
    #[serde(default = "default_backoff_initial")]
    pub initial: DurationSpec,
    /// The longest delay (default: 5m); not shorter than `initial`.
    #[serde(default = "default_backoff_max")]
    pub max: Located<DurationSpec>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { initial: default_backoff_initial(), max: default_backoff_max() }
    }
}

fn default_stop_grace_period() -> DurationSpec {
    DurationSpec::fixed("10s")
}
fn default_probe_interval() -> DurationSpec {
    DurationSpec::fixed("10s")
}
fn default_probe_timeout() -> DurationSpec {
    DurationSpec::fixed("2s")
}
fn default_probe_path() -> Located<String> {
    Located::new("/".into(), Default::default())
}
fn default_backoff_initial() -> DurationSpec {
    DurationSpec::fixed("1s")
}
fn default_backoff_max() -> Located<DurationSpec> {
    Located::new(DurationSpec::fixed("5m"), Default::default())
}
