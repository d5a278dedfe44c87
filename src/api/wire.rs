//! The JSON shapes of the mesh API, shared by the server and `meshctl`.

use serde::{Deserialize, Serialize};

use crate::controller::state::Bundle;
use crate::controller::status::{Event, ObjectStatus};
use crate::manifest::{Kind, ManifestSet};
use crate::reconcile::plan::Plan;
use crate::supervisor;

/// The version of this API; a peer with another one is shown as incompatible.
pub const API_VERSION: &str = "v1";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    pub node: String,
    pub role: Option<String>,
    pub version: String,
    pub api_version: String,
    pub revision: Option<String>,
    pub uptime_seconds: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
    /// For a rejected bundle: every error, rendered with file:line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyRequest {
    #[serde(flatten)]
    pub bundle: Bundle,
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyResponse {
    pub applied: bool,
    pub plan: Plan,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconcileRequest {
    /// Wait until this revision is in force (fetching it first with a Git source).
    #[serde(default)]
    pub revision: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconcileResponse {
    pub scheduled: bool,
    pub revision: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshNode {
    pub name: String,
    pub role: String,
    pub address: String,
    pub api_port: u16,
    pub this_node: bool,
}

/// `POST /mesh/route` as a caller sends it. It borrows: a router hands one
/// payload to several nodes in turn.
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteCall<'a> {
    pub capability: &'a str,
    pub payload: &'a serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefer_node: Option<&'a str>,
}

/// `POST /mesh/route` as the API reads it. Unknown fields are refused: a
/// caller writing `prefer_node` must hear about it, not have it ignored.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RouteRequest {
    pub capability: String,
    pub payload: serde_json::Value,
    #[serde(default)]
    pub prefer_node: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Describe {
    pub kind: String,
    pub name: String,
    /// The object's spec as applied; None once it left the set.
    pub spec: Option<serde_json::Value>,
    pub status: Option<ObjectStatus>,
    pub events: Vec<Event>,
    #[serde(default)]
    pub logs: Vec<LogLine>,
}

/// One line a Service wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub stream: String,
    pub line: String,
}

impl From<supervisor::LogLine> for LogLine {
    fn from(line: supervisor::LogLine) -> Self {
        LogLine { stream: line.stream.to_owned(), line: line.line }
    }
}

/// The spec of one object of the set, as JSON.
pub fn spec_json(set: &ManifestSet, kind: Kind, name: &str) -> Option<serde_json::Value> {
    let value = match kind {
        Kind::Node => set.nodes.get(name).map(|o| serde_json::to_value(&o.spec)),
        Kind::Service => set.services.get(name).map(|o| serde_json::to_value(&o.spec)),
        Kind::Capability => set.capabilities.get(name).map(|o| serde_json::to_value(&o.spec)),
        Kind::SyncFolder => set.sync_folders.get(name).map(|o| serde_json::to_value(&o.spec)),
        Kind::HandoffPolicy => set.handoff_policies.get(name).map(|o| serde_json::to_value(&o.spec)),
        Kind::Mesh => set.mesh.as_ref().filter(|m| m.name() == name).map(|o| serde_json::to_value(&o.spec)),
    };
    value.and_then(Result::ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_call_reads_back_as_the_request_it_was() {
        let payload = serde_json::json!({"n": [1, 2], "prompt": "hi"});
        let text =
            serde_json::to_string(&RouteCall { capability: "llm", payload: &payload, prefer_node: Some("mini") })
                .unwrap();
        assert_eq!(text, r#"{"capability":"llm","payload":{"n":[1,2],"prompt":"hi"},"preferNode":"mini"}"#);
        let read: RouteRequest = serde_json::from_str(&text).unwrap();
        assert_eq!(read, RouteRequest { capability: "llm".into(), payload, prefer_node: Some("mini".into()) });
        let typo = serde_json::from_str::<RouteRequest>(r#"{"capability":"llm","payload":1,"prefer_node":"mini"}"#);
        assert!(typo.unwrap_err().to_string().contains("unknown field `prefer_node`"));
    }
}
