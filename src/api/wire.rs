//! The JSON shapes of the mesh API, shared by the server and `meshctl`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::controller::status::{EventRecord, NodeStatus, ObjectStatus, StreamItem};
use crate::handoff::protocol::Envelope;
use crate::manifest::Bundle;
use crate::manifest::kinds::Role;
use crate::manifest::{Kind, ManifestSet};
use crate::source_status::SourceStatus;
use crate::supervisor;

/// Sent with `POST /api/v1/apply` by `apply --force`: a node that follows Git
/// takes the bundle (until its next commit) instead of refusing it. A header,
/// not a field, so that nodes a release older, which refuse unknown fields,
/// still take a forced bundle.
pub(crate) const FORCE_HEADER: &str = "x-mesh-force";

/// The version of this API; a peer with another one is shown as incompatible.
pub(crate) const API_VERSION: &str = "v1";

/// Where the capability pass-through is mounted; a capability's mount is
/// `/cap/<name>`, which stands for its endpoint's root.
pub(crate) const CAP_PREFIX: &str = "/cap";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    pub node: String,
    pub role: Option<Role>,
    pub version: String,
    /// The commit the daemon was built from; "unknown" from nodes of earlier
    /// versions, which lack it.
    #[serde(default = "unknown_commit")]
    pub commit: String,
    pub api_version: String,
    pub revision: Option<String>,
    pub uptime_seconds: u64,
    /// What the node follows; peers show it while the node is offline. Absent
    /// from nodes of earlier versions. Boxed: the answer is mostly small.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Box<SourceStatus>>,
    /// Which node this node has each capability served by now (capability ->
    /// node; told to callers with the key): a peer that sees it change
    /// decides again at once, so nodes agree within a probe.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub placements: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorBody {
    pub error: String,
    pub message: String,
    /// For a rejected bundle: every error, rendered with file:line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<String>,
}

/// An error of the Ollama proxy's own, in Ollama's shape, which Ollama
/// clients show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct OllamaError {
    pub error: String,
}

/// `POST /api/v1/apply`: a bundle (`revision`, `files`) and `dryRun`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", from = "StrictApplyRequest")]
pub(crate) struct ApplyRequest {
    #[serde(flatten)]
    pub bundle: Bundle,
    #[serde(default)]
    pub dry_run: bool,
}

/// [`ApplyRequest`] as it is read: serde cannot refuse unknown fields
/// next to a flattened one, so the bundle's fields are spelled out here.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StrictApplyRequest {
    revision: String,
    files: Vec<crate::manifest::BundleFile>,
    #[serde(default)]
    dry_run: bool,
}

impl From<StrictApplyRequest> for ApplyRequest {
    fn from(StrictApplyRequest { revision, files, dry_run }: StrictApplyRequest) -> Self {
        ApplyRequest { bundle: Bundle { revision, files }, dry_run }
    }
}

/// The plan of a candidate set on one node, as `diff` and `apply --dry-run`
/// show it (made by `reconcile::plan`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Plan {
    pub node: String,
    pub from_revision: Option<String>,
    pub to_revision: String,
    pub changes: Vec<Change>,
    /// Objects present in both sets with the same content.
    pub unchanged: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Op {
    Add,
    Change,
    Remove,
    /// The object is unchanged, but this node must act on it (a process that
    /// is not running as declared).
    Act,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Change {
    pub op: Op,
    pub kind: String,
    pub name: String,
    /// The spec fields (and `metadata.labels`) that differ.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// What this node would do, e.g. `start: ollama serve`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApplyResponse {
    pub applied: bool,
    pub plan: Plan,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ReconcileRequest {
    /// Wait until this revision is in force (fetching it first with a Git source).
    #[serde(default)]
    pub revision: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReconcileResponse {
    pub scheduled: bool,
    pub revision: Option<String>,
}

/// One node in `GET /api/v1/mesh`: this node's view of it.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MeshNode {
    pub name: String,
    pub role: String,
    pub address: String,
    pub api_port: u16,
    pub this_node: bool,
    /// Where this node calls it (`host:port`): the tailnet IP when known.
    #[serde(default)]
    pub dial: String,
    #[serde(default)]
    pub online: bool,
    /// Whether it was probed and did not answer: known to be down, not just
    /// not probed yet.
    #[serde(default)]
    pub known_down: bool,
    #[serde(default)]
    pub last_seen: Option<String>,
    #[serde(default)]
    pub rtt_ms: Option<f64>,
    #[serde(default)]
    pub revision: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub api_version: Option<String>,
    /// False when it speaks another API version than this node.
    #[serde(default = "yes")]
    pub compatible: bool,
    /// Why its last probe failed, while it is offline.
    #[serde(default)]
    pub last_error: Option<String>,
    /// When it stopped answering (RFC 3339), while it is known to be down.
    #[serde(default)]
    pub unreachable_since: Option<String>,
    /// When it said it was going to sleep (RFC 3339), until it woke.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asleep_since: Option<String>,
    /// What it follows, as it last said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceStatus>,
}

impl MeshNode {
    /// Where to call it (`host:port`): where its view says this node dials
    /// it, or its declared address when the view is from a daemon that does
    /// not say (an older one).
    pub(crate) fn authority(&self) -> String {
        if self.dial.is_empty() { crate::net::host_port(&self.address, self.api_port) } else { self.dial.clone() }
    }
}

/// `GET /api/v1/mesh/status`: every node's status, as this node gathered it.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct MeshStatus {
    /// This node first, then each peer in the order of `GET /api/v1/mesh`.
    pub nodes: Vec<MeshNodeStatus>,
}

/// One node of [`MeshStatus`].
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MeshNodeStatus {
    /// This node's view of it, as in `GET /api/v1/mesh`.
    pub view: MeshNode,
    /// Its own `GET /api/v1/status`; for a node that did not answer, its last
    /// known state from the view, offline and with no objects.
    pub status: NodeStatus,
    /// Why it did not answer (not asked while known to be down, no answer
    /// in time, refused…); absent when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unanswered: Option<String>,
}

fn unknown_commit() -> String {
    crate::build_info::UNKNOWN_COMMIT.into()
}

fn yes() -> bool {
    true
}

/// `POST /mesh/route` as a caller sends it. It borrows: a router hands one
/// payload to several nodes in turn.
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RouteCall<'a> {
    pub capability: &'a str,
    pub payload: &'a serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefer_node: Option<&'a str>,
}

/// A call's answer, and the JSON answer of `POST /mesh/route`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Routed {
    /// The node whose endpoint answered.
    pub node: String,
    /// The endpoint's HTTP status.
    pub status: u16,
    /// The endpoint's answer: its JSON, or its text as a JSON string when it is
    /// not JSON.
    pub body: serde_json::Value,
    /// Present when the call waited for a wake of the node it would rather use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake: Option<WakeWait>,
}

/// A call's wait for a Wake-on-LAN: the node woken, how the wake went out
/// (`LAN`, `Tailscale peer lan-box`), how long the call waited and whether
/// the node answered within its `timeout` (else the call went on without it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WakeWait {
    pub node: String,
    pub via: String,
    pub waited_ms: u64,
    pub answered: bool,
}

impl WakeWait {
    /// `node=mini; via=LAN; waited-ms=3120; answered=true`: the value of a
    /// pass-through answer's `x-mesh-wake` header.
    pub fn header_value(&self) -> String {
        format!("node={}; via={}; waited-ms={}; answered={}", self.node, self.via, self.waited_ms, self.answered)
    }
}

/// `POST /mesh/route` as the API reads it. Unknown fields are refused: a
/// caller writing `prefer_node` must hear about it, not have it ignored.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RouteRequest {
    pub capability: String,
    pub payload: serde_json::Value,
    #[serde(default)]
    pub prefer_node: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Describe {
    pub kind: String,
    pub name: String,
    /// The object's spec as applied; None once it left the set.
    pub spec: Option<serde_json::Value>,
    pub status: Option<ObjectStatus>,
    pub events: Vec<EventRecord>,
    #[serde(default)]
    pub logs: Vec<LogLine>,
}

/// One line a Service wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct LogLine {
    pub stream: String,
    pub line: String,
}

impl From<supervisor::LogLine> for LogLine {
    fn from(line: supervisor::LogLine) -> Self {
        LogLine { stream: line.stream.to_owned(), line: line.line }
    }
}

/// The spec of one object of the set, as JSON.
pub(crate) fn spec_json(set: &ManifestSet, kind: Kind, name: &str) -> Option<serde_json::Value> {
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

/// One message of the event stream, `GET /api/v1/events`, sent as a JSON text
/// frame tagged by `type`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase")]
pub(crate) enum StreamMessage {
    /// A controller event. Its own `Normal`/`Warning` is `eventType`, since
    /// `type` tags the message.
    #[serde(rename_all = "camelCase")]
    Event {
        time: String,
        event_type: String,
        reason: String,
        object: String,
        message: String,
    },
    Log {
        service: String,
        stream: String,
        line: String,
    },
    /// Sent once after the recent events: what follows happens now.
    Live,
    /// The client fell behind and this many messages were dropped for it.
    Lagged {
        skipped: u64,
    },
    Ack {
        action: Action,
    },
    Error {
        message: String,
    },
}

impl From<StreamItem> for StreamMessage {
    fn from(item: StreamItem) -> Self {
        match item {
            StreamItem::Event(event) => event.into(),
            StreamItem::Log(line) => {
                StreamMessage::Log { service: line.service, stream: line.stream.to_owned(), line: line.line }
            }
        }
    }
}

impl From<EventRecord> for StreamMessage {
    fn from(event: EventRecord) -> Self {
        StreamMessage::Event {
            time: event.time,
            event_type: event.event_type,
            reason: event.reason,
            object: event.object,
            message: event.message,
        }
    }
}

/// What a client of the event stream may ask: `{"action": "pause"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Intervention {
    pub action: Action,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema, clap::ValueEnum)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Action {
    /// Stop dispatching reconciles; changes keep queueing.
    Pause,
    /// Dispatch reconciles again, the queued ones first.
    Resume,
    /// Reconcile every object now.
    Reconcile,
}

impl Intervention {
    /// Reads a client's text frame; the error says what was wrong with it.
    pub(crate) fn parse(text: &str) -> Result<Action, String> {
        serde_json::from_str::<Intervention>(text).map(|i| i.action).map_err(|error| {
            format!("not an intervention ({error}); send {{\"action\": \"pause\" | \"resume\" | \"reconcile\"}}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interventions_are_read_from_their_action() {
        assert_eq!(Intervention::parse(r#"{"action":"pause"}"#), Ok(Action::Pause));
        assert_eq!(Intervention::parse(r#"{"action":"resume"}"#), Ok(Action::Resume));
        assert_eq!(Intervention::parse(r#"{"action":"reconcile"}"#), Ok(Action::Reconcile));
        let unknown = Intervention::parse(r#"{"action":"explode"}"#).unwrap_err();
        assert!(unknown.contains("unknown variant `explode`"), "{unknown}");
        assert!(Intervention::parse("pause").is_err());
        let typo = Intervention::parse(r#"{"action":"pause","node":"b"}"#).unwrap_err();
        assert!(typo.contains("unknown field `node`"), "{typo}");
    }

    #[test]
    fn stream_messages_are_tagged_by_type() {
        let event = EventRecord {
            time: "2026-01-01T00:00:00Z".into(),
            event_type: "Normal".into(),
            reason: "Applied".into(),
            object: String::new(),
            message: "revision r1".into(),
        };
        let json = serde_json::to_value(StreamMessage::from(StreamItem::Event(event))).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "event", "time": "2026-01-01T00:00:00Z", "eventType": "Normal",
                "reason": "Applied", "object": "", "message": "revision r1"})
        );
        let line = supervisor::LogLine { service: "web".into(), stream: "stdout", line: "hi".into() };
        let json = serde_json::to_value(StreamMessage::from(StreamItem::Log(line))).unwrap();
        assert_eq!(json, serde_json::json!({"type": "log", "service": "web", "stream": "stdout", "line": "hi"}));
        let ack = serde_json::to_value(StreamMessage::Ack { action: Action::Pause }).unwrap();
        assert_eq!(ack, serde_json::json!({"type": "ack", "action": "pause"}));
    }

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

    #[test]
    fn a_users_request_with_a_misspelled_field_is_refused_naming_it() {
        let cases = [
            (serde_json::from_str::<ReconcileRequest>(r#"{"revison":"abc"}"#).map(drop), "unknown field `revison`"),
            (
                serde_json::from_str::<ApplyRequest>(r#"{"revision":"r","files":[],"dryrun":true}"#).map(drop),
                "unknown field `dryrun`",
            ),
            (
                serde_json::from_str::<HandoffRequest>(r#"{"id":"c-1","target":"b"}"#).map(drop),
                "unknown field `target`",
            ),
            (serde_json::from_str::<ReconcileRequest>(r#"{"revision":1}"#).map(drop), "invalid type: integer"),
        ];
        for (read, expected) in cases {
            let error = read.expect_err(expected).to_string();
            assert!(error.contains(expected), "{error}");
        }
        let apply: ApplyRequest =
            serde_json::from_str(r#"{"revision":"r","files":[{"path":"a.yaml","text":"x"}],"dryRun":true}"#).unwrap();
        assert_eq!((apply.bundle.revision.as_str(), apply.bundle.files.len(), apply.dry_run), ("r", 1, true));
        let sent = serde_json::to_value(&apply).unwrap();
        assert_eq!(sent, serde_json::json!({"revision":"r","files":[{"path":"a.yaml","text":"x"}],"dryRun":true}));
    }

    #[test]
    fn a_handoff_message_tolerates_unknown_fields_and_refuses_a_newer_protocol() {
        let message = |extra: serde_json::Value| {
            let mut value = serde_json::json!({"policy": "chats", "conversation": "c-1", "envelope": {
                "from": "a", "to": "b", "future": 1,
                "message": {"type": "recordOf", "record": {"owner": "a", "epoch": 2, "phase": {"state": "owned", "x": 1}, "y": []}, "z": null},
            }});
            value.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            value
        };
        let read = HandoffMessage::read(message(serde_json::json!({"newField": {"a": 1}}))).unwrap();
        assert_eq!((read.protocol, read.envelope.from.as_str()), (1, "a"), "no field: the first version");
        assert!(
            matches!(read.envelope.message, crate::handoff::protocol::Message::RecordOf { ref record } if record.epoch == 2)
        );
        assert_eq!(HandoffMessage::read(message(serde_json::json!({"protocol": 1}))).unwrap().protocol, 1);
        let newer = HandoffMessage::read(message(serde_json::json!({"protocol": 2}))).unwrap_err();
        let expected = "the message speaks handoff protocol 2; this node speaks 1: upgrade it";
        assert_eq!(newer, ReadError::NewerProtocol(expected.into()));
        for bad in [serde_json::json!("1"), serde_json::json!(0), serde_json::json!(-1), serde_json::json!(1.5)] {
            let error = HandoffMessage::read(message(serde_json::json!({"protocol": bad}))).unwrap_err();
            assert!(
                matches!(&error, ReadError::Malformed(text) if text.contains("is not a version number")),
                "{error:?}"
            );
        }
        let error = HandoffMessage::read(serde_json::json!({"policy": "chats"})).unwrap_err();
        let missing =
            matches!(&error, ReadError::Malformed(text) if text.starts_with("not a handoff message: missing field"));
        assert!(missing, "{error:?}");

        let envelope = read.envelope.clone();
        let sent = serde_json::to_value(HandoffMessage::new("chats", "c-1", envelope, None)).unwrap();
        assert_eq!(sent["protocol"], HANDOFF_PROTOCOL, "every message says its version: {sent}");
    }

    #[test]
    fn a_refusal_for_a_reason_of_a_newer_release_still_reads() {
        let refused: crate::handoff::protocol::Message =
            serde_json::from_str(r#"{"type":"refused","handoff":"h","reason":{"reason":"somethingNew","detail":3}}"#)
                .unwrap();
        let expected = crate::handoff::protocol::Message::Refused {
            handoff: crate::handoff::protocol::HandoffId("h".into()),
            reason: crate::handoff::protocol::Reason::Other,
        };
        assert_eq!(refused, expected);
    }
}

/// `GET /api/v1/syncthing/device`: this node's Syncthing device, so peers pair
/// with it without anyone copying an ID.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SyncthingDevice {
    pub node: String,
    pub device_id: String,
    /// What peers dial: `tcp://host:port`, or `dynamic`.
    pub device_address: String,
}

/// The version of the handoff protocol this release speaks, sent in every
/// message as `protocol`. Added fields and reasons keep it (a node ignores the
/// fields it does not know); a change an older node would misread (a new
/// message, a field it must not ignore) bumps it, and a node refuses a
/// message of a newer version than its own.
pub(crate) const HANDOFF_PROTOCOL: u32 = 1;

/// `POST /api/v1/handoff/message`: one protocol message between the two
/// controllers, about one conversation of one HandoffPolicy. Unknown fields
/// are ignored, so nodes one release apart still talk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HandoffMessage {
    /// [`HANDOFF_PROTOCOL`] of the sender; a message without it is from a
    /// release before the field, which spoke version 1.
    #[serde(default = "first_protocol")]
    pub protocol: u32,
    pub policy: String,
    pub conversation: String,
    pub envelope: Envelope,
    /// The sender's content hash of the conversation folder, when it has one:
    /// what `inSync` compares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

fn first_protocol() -> u32 {
    1
}

impl HandoffMessage {
    /// A message of this release's protocol.
    pub(crate) fn new(policy: &str, conversation: &str, envelope: Envelope, hash: Option<String>) -> HandoffMessage {
        HandoffMessage {
            protocol: HANDOFF_PROTOCOL,
            policy: policy.into(),
            conversation: conversation.into(),
            envelope,
            hash,
        }
    }

    /// Reads one message from the peer: its protocol version first (a newer
    /// one is refused before its shape is looked at), then the message,
    /// ignoring the fields this release does not know.
    pub(crate) fn read(value: serde_json::Value) -> Result<HandoffMessage, ReadError> {
        let version = match value.get("protocol") {
            None => first_protocol(),
            Some(version) => {
                let number = version.as_u64().filter(|number| *number >= 1);
                let number = number
                    .ok_or_else(|| ReadError::Malformed(format!("protocol {version} is not a version number")))?;
                u32::try_from(number).unwrap_or(u32::MAX)
            }
        };
        if version > HANDOFF_PROTOCOL {
            return Err(ReadError::NewerProtocol(format!(
                "the message speaks handoff protocol {version}; this node speaks {HANDOFF_PROTOCOL}: upgrade it"
            )));
        }
        serde_json::from_value(value).map_err(|error| ReadError::Malformed(format!("not a handoff message: {error}")))
    }
}

/// Why a handoff message from the peer was not read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// It speaks a newer protocol than this release.
    NewerProtocol(String),
    Malformed(String),
}

/// The answer to `POST /api/v1/handoff/messages`: how many messages were
/// taken, and the ones dropped (by their index in the batch), with why.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HandoffBatch {
    pub taken: usize,
    #[serde(default)]
    pub dropped: Vec<DroppedMessage>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DroppedMessage {
    pub index: usize,
    pub error: String,
    pub message: String,
}

/// `GET /api/v1/sessions[/ID]`: one conversation as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Session {
    pub id: String,
    pub policy: String,
    /// None while no node has claimed it (as far as this node knows).
    pub owner: Option<String>,
    pub epoch: Option<u64>,
    /// `owned`, `frozen` (handing over) or `unclaimed`.
    pub phase: String,
    /// The conversation folder on this node.
    pub path: String,
    /// The content hash of the folder here; None when it is not (yet) here.
    pub hash: Option<String>,
    pub files: usize,
    /// Syncthing's conflict copies in the folder, relative paths.
    pub conflicts: Vec<String>,
    /// Writes from a node that did not own the conversation, kept aside by
    /// the owner as `<file>.stale-<epoch>`, relative paths.
    #[serde(default)]
    pub stale: Vec<String>,
    /// The hash the first other node of the folder (by name) last reported:
    /// the peer, with two nodes.
    pub peer_hash: Option<String>,
    /// Every other node of the folder reported the same content as here.
    pub in_sync: bool,
    /// The nodes that hold the owner's content, by name, this one included
    /// when it does; empty while that is not known here.
    #[serde(default)]
    pub holders: Vec<String>,
    /// The agent on this node may write to it now: owned here, not frozen
    /// for a handoff. A write anywhere else is stale and is kept aside.
    #[serde(default)]
    pub writable: bool,
    /// The handoff under way while the conversation is frozen here (its
    /// progress: `GET /api/v1/handoff/{handoff}` on this node, which started it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff: Option<String>,
    /// The node it is being handed to, while frozen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// `POST /api/v1/handoff`'s answer and `GET /api/v1/handoff/{handoff}`: how
/// a handoff started on this node goes, which `meshctl handoff` follows. The
/// record the store keeps is this shape, so the API sends it as it is.
pub(crate) use crate::handoff::store::Progress as HandoffProgress;

/// `POST /api/v1/handoff`: hand conversation `id` to `to` (by default the
/// policy's `defaultTarget`, else the other node), or take it over (`force`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct HandoffRequest {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// A duration (`30s`); by default the policy's `timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default)]
    pub force: bool,
}

/// `POST /api/v1/peers`: a node that joins the mesh (`meshctl init --join`)
/// says where its API answers; the node it joins probes it until its
/// manifests declare a Node of that name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PeerRegistration {
    pub name: String,
    /// `primary` or `satellite`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// A host name or IP the node that takes it can dial.
    pub address: String,
    pub api_port: u16,
}

/// `POST /mesh/goodbye`: a peer says it is about to sleep, or that it woke.
/// `node` must be the caller, a peer of the node it tells.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Goodbye {
    pub node: String,
    pub state: PowerState,
}

/// What a [`Goodbye`] says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum PowerState {
    /// About to sleep: down from now, fall back at once.
    Asleep,
    /// Woke: probe it now.
    Awake,
}

/// `POST /api/v1/peers`'s answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PeerRegistered {
    /// The node that took the registration.
    pub node: String,
}

/// What `POST /ui/session` trades for a session cookie: the key (or send it
/// as `Authorization: Bearer`), or a one-time ticket from `POST /ui/ticket`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct UiSessionRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
}

/// A session the page was given: the cookie carries it, this says how long.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UiSessionGranted {
    pub expires_in_seconds: u64,
}

/// `GET /ui/authority`: whether the caller's requests may act (issue #21:
/// the page's actions need the key). False for a browser let in by its
/// Tailscale identity alone: the page asks it for the key on confirming.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UiAuthority {
    pub may_act: bool,
}

/// A one-time ticket for the page (`meshctl ui` puts it in the URL fragment).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UiTicket {
    pub ticket: String,
    pub expires_in_seconds: u64,
}
