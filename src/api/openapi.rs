//! The OpenAPI 3.1 description of the mesh API, served at
//! `GET /api/v1/openapi.json` and committed as `docs/openapi.json`: the
//! schemas are schemars' JSON Schema 2020-12 of the wire types the handlers
//! use (OpenAPI 3.1's own schema dialect), requests as they are read and
//! answers as they are written; the paths are [`operations`], one entry per
//! route, listing every status its handler answers.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

use super::wire::{
    ApplyRequest, ApplyResponse, Describe, ErrorBody, FORCE_HEADER, Goodbye, HandoffBatch, HandoffMessage,
    HandoffProgress, HandoffRequest, Health, Intervention, MeshNode, MeshStatus, OllamaError, PeerRegistered,
    PeerRegistration, ReconcileRequest, ReconcileResponse, RouteRequest, Routed, Session, StreamMessage,
    SyncthingDevice, UiAuthority, UiSessionGranted, UiSessionRequest, UiTicket,
};
use crate::controller::status::NodeStatus;

/// Where the document is served, without a key: it holds nothing secret.
pub(crate) const PATH: &str = "/api/v1/openapi.json";

/// Where OpenAPI keeps the schemas a `$ref` names.
const SCHEMAS: &str = "/components/schemas";

/// The document as pretty JSON ending in a newline, as committed.
pub(crate) fn document_text() -> &'static str {
    static TEXT: LazyLock<String> = LazyLock::new(|| {
        let mut text = serde_json::to_string_pretty(&document()).expect("the document serializes");
        text.push('\n');
        text
    });
    &TEXT
}

/// How a body is described: a wire type's schema, text of a media type, or
/// anything (a pass-through's body is the backend's).
#[derive(Clone, Copy)]
enum Payload {
    Json(fn(&mut SchemaGenerator) -> Schema),
    /// Text in any of these media types, as the request's `Accept` chooses.
    Text(&'static [&'static str]),
    Anything,
    Empty,
}

/// The schema of `T`, as a `$ref` when it is a named type.
fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// One status an operation answers with.
struct Answer {
    /// `200`, or `default` for a pass-through's backend answer.
    status: &'static str,
    description: &'static str,
    payload: Payload,
}

fn ok(status: &'static str, description: &'static str, payload: Payload) -> Answer {
    Answer { status, description, payload }
}

/// An error of the mesh API's `{error, message}` shape.
fn error(status: &'static str, description: &'static str) -> Answer {
    Answer { status, description, payload: Payload::Json(schema::<ErrorBody>) }
}

/// An error of the Ollama proxy's own, in Ollama's `{error}` shape.
fn ollama_error(status: &'static str, description: &'static str) -> Answer {
    Answer { status, description, payload: Payload::Json(schema::<OllamaError>) }
}

/// One route and method of the API.
struct Operation {
    method: &'static str,
    path: &'static str,
    id: String,
    summary: &'static str,
    description: &'static str,
    /// Answered without the key (`/mesh/health`, this document).
    open: bool,
    /// A WebSocket handshake (the event stream).
    websocket: bool,
    parameters: Vec<Value>,
    /// The request body, and whether it is required.
    request: Option<(Payload, bool)>,
    answers: Vec<Answer>,
}

impl Operation {
    fn new(method: &'static str, path: &'static str, id: impl Into<String>, summary: &'static str) -> Operation {
        Operation {
            method,
            path,
            id: id.into(),
            summary,
            description: "",
            open: false,
            websocket: false,
            parameters: Vec::new(),
            request: None,
            answers: Vec::new(),
        }
    }

    fn described(mut self, description: &'static str) -> Self {
        self.description = description;
        self
    }

    fn open(mut self) -> Self {
        self.open = true;
        self
    }

    fn websocket(mut self) -> Self {
        self.websocket = true;
        self
    }

    fn parameter(mut self, parameter: Value) -> Self {
        self.parameters.push(parameter);
        self
    }

    /// A required JSON body of type `T`, read as the handler reads it.
    fn body<T: JsonSchema>(mut self) -> Self {
        self.request = Some((Payload::Json(schema::<T>), true));
        self
    }

    fn optional_body<T: JsonSchema>(mut self) -> Self {
        self.request = Some((Payload::Json(schema::<T>), false));
        self
    }

    fn any_body(mut self) -> Self {
        self.request = Some((Payload::Anything, false));
        self
    }

    fn answers(mut self, answers: impl IntoIterator<Item = Answer>) -> Self {
        self.answers.extend(answers);
        self
    }

    /// Whether the key middleware takes it for an action (`ui_session::is_action`).
    fn is_action(&self) -> bool {
        super::ui_session::is_action(&self.http_method(), self.path)
    }

    /// Whether a session cookie is refused on it without the page's Origin
    /// (`ui_session::same_origin_required`).
    fn needs_same_origin(&self) -> bool {
        super::ui_session::same_origin_required(&self.http_method(), self.websocket)
    }

    fn http_method(&self) -> axum::http::Method {
        axum::http::Method::from_bytes(self.method.to_ascii_uppercase().as_bytes())
            .expect("an operation's method is an HTTP method")
    }

    /// Its answers with those every such route gives: 401 without the key,
    /// 403 where a session cookie could act (`require_key`), and 400, 413 and
    /// 415 for a JSON body that does not read.
    fn all_answers(&self) -> Vec<(&'static str, String, Payload)> {
        static KEY: Answer = Answer {
            status: "401",
            description: "`unauthorized`: no key, or the wrong one (and no allowed Tailscale identity)",
            payload: Payload::Json(schema::<ErrorBody>),
        };
        static JSON_BODY: [Answer; 3] = [
            Answer {
                status: "400",
                description: "`bad_request`: the body is not JSON, or not of the request's shape",
                payload: Payload::Json(schema::<ErrorBody>),
            },
            Answer {
                status: "413",
                description: "`too_large`: the body is over 16 MiB",
                payload: Payload::Json(schema::<ErrorBody>),
            },
            Answer {
                status: "415",
                description: "`unsupported_media_type`: a body not sent as `application/json`",
                payload: Payload::Json(schema::<ErrorBody>),
            },
        ];
        static ACTION: Answer = Answer {
            status: "403",
            description: "`key_required`: a browser let in without the key's authority (its Tailscale identity \
                alone); `cross_origin`: a session cookie sent from another origin",
            payload: Payload::Json(schema::<ErrorBody>),
        };
        static CROSS_ORIGIN: Answer = Answer {
            status: "403",
            description: "`cross_origin`: a session cookie sent from another origin",
            payload: Payload::Json(schema::<ErrorBody>),
        };
        let mut all: Vec<&Answer> = self.answers.iter().collect();
        if !self.open {
            all.push(&KEY);
        }
        if !self.open && self.is_action() {
            all.push(&ACTION);
        } else if !self.open && self.needs_same_origin() {
            all.push(&CROSS_ORIGIN);
        }
        if matches!(self.request, Some((Payload::Json(_), _))) {
            all.extend(&JSON_BODY);
        }
        // A status the route lists itself keeps its payload; the reasons the
        // common answers add for it are joined to its description.
        let mut merged: Vec<(&'static str, String, Payload)> = Vec::new();
        for answer in all {
            match merged.iter_mut().find(|(status, ..)| *status == answer.status) {
                Some((_, description, _)) if !description.contains(answer.description) => {
                    description.push_str("; ");
                    description.push_str(answer.description);
                }
                Some(_) => {}
                None => merged.push((answer.status, answer.description.to_owned(), answer.payload)),
            }
        }
        merged.sort_by_key(|(status, ..)| *status);
        merged
    }
}

/// A path parameter: a non-empty string (an empty one names another route).
fn path_parameter(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description,
        "schema": {"type": "string", "minLength": 1}})
}

const PASS_THROUGH_METHODS: [&str; 7] = ["get", "put", "post", "delete", "options", "head", "patch"];

/// Every route of the API, in the router's order, but those named in the
/// test's `NOT_DESCRIBED` (the page and its assets, the pass-throughs' roots);
/// the test reads the router's routes and fails on one described nowhere.
fn operations() -> Vec<Operation> {
    let kind =
        path_parameter("kind", "A kind, in any case: Node, Service, Capability, SyncFolder, HandoffPolicy or Mesh.");
    let mut operations = vec![
        Operation::new("get", "/mesh/health", "health", "Whether the node answers, and what it runs")
            .described(
                "Open to anyone. With the key it also says what the node follows (`source`) and which node \
                 serves each capability (`placements`): its peers' probes.",
            )
            .open()
            .answers([ok("200", "The node's health", Payload::Json(schema::<Health>))]),
        Operation::new("get", PATH, "openapi", "This document").open().answers([ok(
            "200",
            "The OpenAPI 3.1 description of this API",
            Payload::Json(schema::<Value>),
        )]),
        Operation::new(
            "post",
            "/ui/session",
            "openUiSession",
            "Trade the key or a ticket for the page's session cookie",
        )
        .described(
            "The key as `Authorization: Bearer` or `{\"key\"}`, or a one-time ticket from `POST /ui/ticket` \
                 as `{\"ticket\"}`. The answer sets `mesh_session` (`HttpOnly; SameSite=Strict; Path=/`), which \
                 the API and the event stream then accept like the key, from the page's own origin.",
        )
        .open()
        .optional_body::<UiSessionRequest>()
        .answers([
            ok("200", "Granted; the cookie is set", Payload::Json(schema::<UiSessionGranted>)),
            error("401", "`unauthorized`: no key or ticket, a wrong key, or a ticket unknown, used or expired"),
            error("403", "`cross_origin`: sent from another origin"),
            error("500", "`no_randomness`: the system gave no random bytes"),
        ]),
        Operation::new("delete", "/ui/session", "forgetUiSession", "End the page's session (the Forget button)")
            .open()
            .answers([
                ok("204", "Ended; the cookie is cleared", Payload::Empty),
                error("403", "`cross_origin`: sent from another origin"),
            ]),
        Operation::new("get", "/api/v1/status", "status", "This node's status, as `meshctl status -o json`")
            .answers([ok("200", "The node and the objects it reports", Payload::Json(schema::<NodeStatus>))]),
        Operation::new("get", "/api/v1/mesh", "mesh", "This node's view of every node: itself, then its peers")
            .answers([ok("200", "One entry per node", Payload::Json(schema::<Vec<MeshNode>>))]),
        Operation::new("get", "/api/v1/mesh/status", "meshStatus", "Every node's status, as this node gathers it")
            .described(
                "This node's status, and each peer's `GET /api/v1/status` asked by this node with the mesh key, all \
                 at once: a peer known to be down is not asked, and one that does not answer within 1.5 s is given \
                 with its last known state, offline, and `unanswered` saying why. It answers within about 1.5 s \
                 whatever the peers do.",
            )
            .answers([ok("200", "This node first, then its peers", Payload::Json(schema::<MeshStatus>))]),
        Operation::new("post", "/api/v1/peers", "registerPeer", "A node joining the mesh says where its API answers")
            .body::<PeerRegistration>()
            .answers([
                ok(
                    "200",
                    "Recorded; the node is probed until the manifests declare it",
                    Payload::Json(schema::<PeerRegistered>),
                ),
                error("400", "`bad_request`: a bad name, role, address or port"),
                error("409", "`name_taken`: the name is this node's own"),
                error("500", "`state_unwritable`: the state folder could not record it"),
            ]),
        Operation::new("post", "/api/v1/apply", "apply", "Apply a bundle of manifest files, or plan it (`dryRun`)")
            .parameter(json!({"name": FORCE_HEADER, "in": "header", "required": false,
                "description": "Present: a node that follows Git takes the bundle anyway, until its next commit.",
                "schema": {"type": "string"}}))
            .body::<ApplyRequest>()
            .answers([
                ok("200", "The plan, applied or not", Payload::Json(schema::<ApplyResponse>)),
                error("409", "`follows_git`: the node follows Git and the request is not forced"),
                error("422", "`invalid`: the bundle has errors, each in `diagnostics` with file:line"),
                error("503", "`stopping`: the controller is shutting down"),
            ]),
        Operation::new(
            "post",
            "/api/v1/reconcile",
            "reconcile",
            "Fetch (with a Git source) and reconcile every object now",
        )
        .described("With `revision`, waits (up to 30 s) until that revision is in force.")
        .optional_body::<ReconcileRequest>()
        .answers([
            ok("200", "Scheduled; the revision in force", Payload::Json(schema::<ReconcileResponse>)),
            error("503", "`stopping`: the controller is shutting down"),
            error("504", "`timeout`: the revision asked for is not in force after 30 s"),
        ]),
        Operation::new("get", "/api/v1/objects/{kind}", "names", "The names of one kind's objects in the applied set")
            .parameter(kind.clone())
            .answers([
                ok("200", "The names, sorted", Payload::Json(schema::<Vec<String>>)),
                error("400", "`bad_request`: an unknown kind"),
            ]),
        Operation::new(
            "get",
            "/api/v1/objects/{kind}/{name}",
            "describe",
            "One object: spec, status, recent events, output",
        )
        .parameter(kind.clone())
        .parameter(path_parameter("name", "The object's name."))
        .answers([
            ok("200", "The object", Payload::Json(schema::<Describe>)),
            error("400", "`bad_request`: an unknown kind, or a name no object can have"),
            error("404", "`not_found`: no such object in the applied set"),
        ]),
        Operation::new(
            "get",
            "/api/v1/mesh/nodes/{node}/objects/{kind}/{name}",
            "describeOn",
            "One object of any node, as `describe` on that node",
        )
        .described(
            "This node's own `describe`, or a peer's asked by this node with the mesh key within 1.5 s: how the \
             status page, which may call only its own node, reads a peer's Service output. A peer known to be down \
             is not asked.",
        )
        .parameter(path_parameter("node", "A node of the mesh: this one or a peer."))
        .parameter(kind)
        .parameter(path_parameter("name", "The object's name."))
        .answers([
            ok("200", "The object, as its node describes it", Payload::Json(schema::<Describe>)),
            error("400", "`bad_request`: an unknown kind, or a name no object can have"),
            error("404", "`not_found`: no such node in the mesh, or no such object on it"),
            error("502", "`peer_failed`: the peer did not answer in time, or failed"),
            error("503", "`peer_down`: the peer is known to be down (asleep or unreachable since a time): not asked"),
        ]),
        Operation::new("get", "/api/v1/events", "events", "The event stream, a WebSocket")
            .websocket()
            .described(
                "A WebSocket (send the usual upgrade headers). The server sends JSON text frames, each a \
                 `StreamMessage` (see components/schemas) tagged by `type`: up to 50 recent `event`s, then \
                 `live`, then `event`s and Service output (`log`) as they happen; `lagged` when the client \
                 fell behind. The client may send an `Intervention` (`{\"action\": \"pause\" | \"resume\" | \
                 \"reconcile\"}`), answered by an `ack` or an `error`.",
            )
            .answers([
                ok("101", "Switching to the WebSocket protocol", Payload::Empty),
                error("400", "`bad_request`: not a WebSocket handshake"),
                error("426", "`bad_request`: the connection cannot be upgraded"),
            ]),
        Operation::new(
            "get",
            "/api/v1/syncthing/device",
            "syncthingDevice",
            "This node's Syncthing device, for peers to pair",
        )
        .answers([
            ok("200", "The device ID and the address peers dial", Payload::Json(schema::<SyncthingDevice>)),
            error("404", "`no_syncthing`: this node declares no Syncthing"),
            error("503", "`not_ready` (no manifests in force yet) or `syncthing_unreachable`"),
        ]),
        Operation::new("post", "/api/v1/handoff", "handoff", "Hand a conversation to another node, or take it over")
            .body::<HandoffRequest>()
            .answers([
                ok("200", "Taken over (`force`): done", Payload::Json(schema::<HandoffProgress>)),
                ok("202", "Begun: follow it at /api/v1/handoff/{handoff}", Payload::Json(schema::<HandoffProgress>)),
                error("400", "`bad_request`, `no_target` or `unknown_node`"),
                error("403", "`force_not_allowed`: the policy does not allow a forced takeover"),
                error("404", "`not_found`: no such conversation"),
                error("409", "`owner_online`, `rejected` or `target_offline`"),
                error("500", "`state_not_saved`: the record could not be persisted"),
                error("503", "`not_ready`: no manifests in force yet"),
            ]),
        Operation::new(
            "post",
            "/api/v1/handoff/message",
            "handoffMessage",
            "One handoff protocol message from the peer's controller",
        )
        .body::<HandoffMessage>()
        .answers([
            ok("202", "Taken", Payload::Empty),
            error("400", "`bad_request`, `unsupported_protocol` or `wrong_node`"),
            error("500", "`state_not_saved`: the record could not be persisted"),
        ]),
        Operation::new(
            "post",
            "/api/v1/handoff/messages",
            "handoffMessages",
            "A batch of handoff protocol messages from the peer",
        )
        .described(
            "A message that is refused is dropped and named in the answer; a newer protocol refuses the whole batch.",
        )
        .body::<Vec<HandoffMessage>>()
        .answers([
            ok("202", "How many were taken, and the ones dropped", Payload::Json(schema::<HandoffBatch>)),
            error("400", "`bad_request` or `unsupported_protocol`"),
            error("500", "`state_not_saved`: a record could not be persisted"),
        ]),
        Operation::new(
            "get",
            "/api/v1/handoff/{handoff}",
            "handoffProgress",
            "How a handoff started on this node goes",
        )
        .parameter(path_parameter("handoff", "The handoff's id, from the answer that started it."))
        .answers([
            ok("200", "Its progress", Payload::Json(schema::<HandoffProgress>)),
            error("400", "`bad_request`: an id no handoff can have"),
            error("404", "`not_found`: no such handoff started here"),
        ]),
        Operation::new("get", "/api/v1/sessions", "sessions", "Every conversation of every HandoffPolicy on this node")
            .answers([
                ok("200", "The conversations", Payload::Json(schema::<Vec<Session>>)),
                error("500", "`internal`: listing the folders failed"),
                error("503", "`not_ready`: no manifests in force yet"),
            ]),
        Operation::new("get", "/api/v1/sessions/{id}", "session", "One conversation, by id")
            .parameter(path_parameter("id", "The conversation's id."))
            .answers([
                ok("200", "The conversation", Payload::Json(schema::<Session>)),
                error("400", "`bad_request`: an id no conversation can have"),
                error("404", "`not_found`: no such conversation on this node"),
                error("500", "`internal`: listing the folders failed"),
                error("503", "`not_ready`: no manifests in force yet"),
            ]),
        Operation::new("get", "/metrics", "metrics", "Prometheus metrics")
            .described(
                "OpenMetrics when `Accept` names `application/openmetrics-text`, else the Prometheus text format \
                 0.0.4. The mesh key or `MESH_METRICS_KEY` (which opens this route only) may read it.",
            )
            .answers([ok(
                "200",
                "The metrics, as text",
                Payload::Text(&["application/openmetrics-text", "text/plain"]),
            )]),
        Operation::new("post", "/mesh/goodbye", "goodbye", "A peer says it is about to sleep, or that it woke")
            .described(
                "`asleep`: the peer is down here at once (whatever it serves falls back) and stays so until it says \
                 `awake` or answers every probe for 10 s. `awake`: it is probed at once. `node` must be the \
                 caller, a peer of this node.",
            )
            .body::<Goodbye>()
            .answers([
                ok("204", "Taken", Payload::Empty),
                error("400", "`bad_request`, or `unknown_node`: this node's own name or no peer of it"),
            ]),
        Operation::new("post", "/ui/ticket", "uiTicket", "A one-time ticket for the page, valid 60 s")
            .described("`meshctl ui` puts it in the page's URL fragment (`/#ticket=…`) instead of the key.")
            .answers([
                ok("200", "The ticket", Payload::Json(schema::<UiTicket>)),
                error("500", "`no_randomness`: the system gave no random bytes"),
            ]),
        Operation::new("get", "/ui/authority", "uiAuthority", "Whether the caller may act (the page's actions)")
            .described(
                "False for a browser let in by its Tailscale identity alone (or by a session of a node without a \
                 key): its actions are refused with 403 `key_required`, so the page asks for the key on confirming.",
            )
            .answers([ok("200", "Whether it may act", Payload::Json(schema::<UiAuthority>))]),
        Operation::new("post", "/mesh/route", "route", "Call a capability on the node that serves it")
            .described(
                "Answers 200 whenever an endpoint answered, whatever its own status (`status`). A call another \
                 router handed over (header `x-mesh-route-hop`) is served here or not at all.",
            )
            .body::<RouteRequest>()
            .answers([
                ok("200", "The endpoint's answer and the node that gave it", Payload::Json(schema::<Routed>)),
                error("400", "`bad_request`, or `bad_prefer_node`: `preferNode` is not in the placement"),
                error("404", "`unknown_capability`"),
                error("502", "`bad_gateway`: the exchange broke after the call reached a node"),
                error("503", "`no_set` or `unreachable`: no node could take the call; nothing was sent"),
                error("504", "`timeout` or `went_silent`: a node took the call but did not answer"),
            ]),
    ];
    for method in PASS_THROUGH_METHODS {
        operations.push(
            Operation::new(
                method,
                "/ollama/{path}",
                pass_through_id("ollama", method),
                "Ollama's own API, on the node serving it",
            )
            .described(
                "Any method and path (`/ollama/api/generate`, `/ollama/v1/...`; `/ollama` alone is the root): \
                     passed to the node that serves the Capability with `provider: ollama` (`llm_inference` of \
                     several), streaming included. Body and answer are Ollama's. The proxy's own errors are \
                     Ollama's `{error}`.",
            )
            .parameter(path_parameter("path", "The rest of Ollama's path, slashes included."))
            .any_body()
            .answers([
                ok("default", "Ollama's answer", Payload::Anything),
                ollama_error("413", "The body is over 16 MiB"),
                ollama_error("502", "The exchange broke after the request reached a node"),
                ollama_error("503", "No manifests in force, no Ollama capability, or no node could take it"),
                ollama_error("504", "A node took the request but did not answer in time"),
            ]),
        );
    }
    for method in PASS_THROUGH_METHODS {
        operations.push(
            Operation::new(
                method,
                "/cap/{name}/{path}",
                pass_through_id("cap", method),
                "A capability's own HTTP API, on the node serving it",
            )
            .described(
                "Any method and path: `/cap/<name>/x` reaches `/x` on the endpoint of the node serving \
                     capability `<name>` (`/cap/<name>` alone is its root), streaming included. Body and answer \
                     are the endpoint's.",
            )
            .parameter(path_parameter("name", "The Capability's name."))
            .parameter(path_parameter("path", "The endpoint's path, slashes included."))
            .any_body()
            .answers([
                ok("default", "The endpoint's answer", Payload::Anything),
                error("404", "`unknown_capability`"),
                error("413", "`too_large`: the body is over 16 MiB"),
                error("502", "`bad_gateway`: the exchange broke after the request reached a node"),
                error("503", "`no_set`, `bad_prefer_node` or `unreachable`: nothing was sent"),
                error("504", "`timeout` or `went_silent`: a node took the request but did not answer"),
            ]),
        );
    }
    operations
}

/// `ollamaPost`: the operation id of one method of a pass-through.
fn pass_through_id(mount: &str, method: &str) -> String {
    format!("{mount}{}{}", method[..1].to_ascii_uppercase(), &method[1..])
}

/// The description of the API, with the auth schemes.
const DESCRIPTION: &str = "The mesh API every agentmesh node serves (design section 5). Every route but \
    `/mesh/health` and this document takes the mesh key as `Authorization: Bearer <MESH_API_KEY>`, or no key from \
    a caller whose Tailscale identity the Mesh allows (`spec.auth.tailscaleIdentity`: when enabled, a caller \
    without the key whose address tailscaled's whois maps to an allowed login, node or tag). Errors are JSON \
    `{error, message}` (`error` a stable code), but for the Ollama proxy's own, which are Ollama's `{error}`. \
    The page at `/` is not described.";

pub(crate) fn document() -> Value {
    let mut requests = generator(SchemaSettings::draft2020_12().for_deserialize());
    let mut answers = generator(SchemaSettings::draft2020_12().for_serialize());
    let mut paths: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for operation in operations() {
        let item = paths.entry(operation.path).or_default();
        let value = operation_json(&operation, &mut requests, &mut answers);
        assert!(item.insert(operation.method.into(), value).is_none(), "{} {} twice", operation.method, operation.path);
    }
    // The event stream's messages, which no HTTP body carries.
    answers.subschema_for::<StreamMessage>();
    requests.subschema_for::<Intervention>();
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {"title": "agentmesh mesh API", "version": crate::build_info::VERSION, "description": DESCRIPTION},
        "security": [{"meshKey": []}, {"pageSession": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"meshKey": {"type": "http", "scheme": "bearer",
                "description": "The mesh key, MESH_API_KEY. A caller with an allowed Tailscale identity needs none."},
                "pageSession": {"type": "apiKey", "in": "cookie", "name": "mesh_session",
                "description": "The status page's session, from POST /ui/session. A request it authenticates that \
                    is not a GET, HEAD or OPTIONS, or that opens the event stream, must carry the page's own Origin \
                    (else 403 `cross_origin`)."}},
            "schemas": merged(requests, answers),
        },
    })
}

fn generator(settings: SchemaSettings) -> SchemaGenerator {
    let mut settings = settings;
    settings.definitions_path = SCHEMAS.into();
    settings.meta_schema = None;
    settings.into_generator()
}

/// The named schemas of both contracts. A type named in both must read the
/// same in both: a `$ref` cannot tell them apart.
fn merged(mut requests: SchemaGenerator, mut answers: SchemaGenerator) -> Map<String, Value> {
    let mut schemas = requests.take_definitions(true);
    for (name, schema) in answers.take_definitions(true) {
        if let Some(request) = schemas.get(&name) {
            assert_eq!(request, &schema, "{name} reads differently in requests and answers: give one a schemars name");
        }
        schemas.insert(name, schema);
    }
    schemas.sort_keys();
    schemas
}

fn operation_json(operation: &Operation, requests: &mut SchemaGenerator, answers: &mut SchemaGenerator) -> Value {
    let mut out = json!({"operationId": operation.id, "summary": operation.summary});
    if !operation.description.is_empty() {
        out["description"] = operation.description.into();
    }
    if operation.open {
        out["security"] = json!([]);
    }
    if !operation.parameters.is_empty() {
        out["parameters"] = operation.parameters.clone().into();
    }
    if let Some((payload, required)) = operation.request {
        out["requestBody"] = json!({"required": required, "content": content(payload, requests)});
    }
    let responses: Map<String, Value> = operation
        .all_answers()
        .into_iter()
        .map(|(status, description, payload)| {
            let mut response = json!({"description": description});
            if !matches!(payload, Payload::Empty) {
                response["content"] = content(payload, answers);
            }
            (status.to_owned(), response)
        })
        .collect();
    out["responses"] = responses.into();
    out
}

fn content(payload: Payload, generator: &mut SchemaGenerator) -> Value {
    match payload {
        Payload::Json(schema) => json!({"application/json": {"schema": schema(generator)}}),
        Payload::Text(media) => {
            media.iter().map(|media| (media.to_string(), json!({"schema": {"type": "string"}}))).collect()
        }
        Payload::Anything | Payload::Empty => json!({"*/*": {}}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The routes of [`router`](super::super::router) deliberately not in the
    /// description (method or `ANY`, path, why). Every other route must be
    /// described.
    const NOT_DESCRIBED: [(&str, &str, &str); 6] = [
        ("GET", "/", "the page: HTML for a browser, not an API"),
        ("GET", "/ui/{file}", "the page's scripts and style sheet"),
        ("ANY", "/ollama", "Ollama's root, told in `/ollama/{path}`: a path parameter is never empty"),
        ("ANY", "/ollama/", "Ollama's root, as `/ollama`"),
        ("ANY", "/cap/{name}", "an endpoint's root, told in `/cap/{name}/{path}`"),
        ("ANY", "/cap/{name}/", "an endpoint's root, as `/cap/{name}`"),
    ];

    /// Each `.route(path, methods)` of `router()` in src/api/mod.rs, read
    /// from its source (axum does not list a router's routes): the path, its
    /// rest parameter spelled `{path}` as the description does, and its
    /// methods (`ANY` for `any(…)`). Panics on what it cannot read, so a
    /// route is never missed: a path in neither quotes nor a known constant,
    /// or a router grown by other means than `.route` and `.merge`.
    fn routes() -> Vec<(String, Vec<String>)> {
        let source = include_str!("mod.rs");
        let start = source.find("pub(crate) fn router(").expect("router() in src/api/mod.rs");
        let body = &source[start..start + source[start..].find("\n}\n").expect("the end of router()")];
        for other in [".nest", ".route_service", ".fallback_service"] {
            assert!(!body.contains(other), "router() uses {other}: teach this test to read it");
        }
        let constants = [
            ("metrics::PATH", super::super::metrics::PATH),
            ("openapi::PATH", PATH),
            ("ollama::PREFIX", super::super::ollama::PREFIX),
        ];
        let mut routes = Vec::new();
        for (at, _) in body.match_indices(".route(") {
            let call = &body[at + ".route(".len()..];
            let (mut depth, mut comma, mut end) = (0, None, None);
            for (index, char) in call.char_indices() {
                match char {
                    '(' => depth += 1,
                    ')' if depth == 0 => {
                        end = Some(index);
                        break;
                    }
                    ')' => depth -= 1,
                    ',' if depth == 0 => comma = comma.or(Some(index)),
                    _ => {}
                }
            }
            let (comma, end) = (comma.expect("two arguments"), end.expect("a closed call"));
            let path = call[..comma].trim();
            let path = match path.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
                Some(literal) => literal,
                None => {
                    constants
                        .iter()
                        .find(|(name, _)| *name == path)
                        .unwrap_or_else(|| panic!("{path}: a constant this test does not know"))
                        .1
                }
            };
            let methods = method_routers(&call[comma + 1..end]);
            routes.push((path.replace("{*rest}", "{path}"), methods));
        }
        routes
    }

    /// The methods of a method router as written (`get(a).delete(b)`,
    /// `any(c)`), upper case.
    fn method_routers(written: &str) -> Vec<String> {
        let starts_a_word = |at: usize| at == 0 || !written[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_');
        ["get", "post", "put", "delete", "patch", "head", "options", "any"]
            .into_iter()
            .filter(|method| written.match_indices(&format!("{method}(")).any(|(at, _)| starts_a_word(at)))
            .map(str::to_ascii_uppercase)
            .collect()
    }

    #[test]
    fn every_route_of_the_router_is_described_or_named_as_not_and_nothing_else_is() {
        let routes = routes();
        assert!(routes.len() > 20, "read too few routes: {routes:?}");
        let described: std::collections::BTreeSet<(String, String)> =
            operations().iter().map(|op| (op.method.to_ascii_uppercase(), op.path.to_owned())).collect();
        let not_described = |method: &str, path: &str| NOT_DESCRIBED.iter().any(|(m, p, _)| *m == method && *p == path);
        let mut routed = std::collections::BTreeSet::new();
        for (path, methods) in &routes {
            assert!(!methods.is_empty(), "{path}: no method read");
            for method in methods {
                if not_described(method, path) {
                    continue;
                }
                let each: Vec<String> = match method.as_str() {
                    "ANY" => PASS_THROUGH_METHODS.iter().map(|m| m.to_ascii_uppercase()).collect(),
                    _ => vec![method.clone()],
                };
                for method in each {
                    assert!(
                        described.contains(&(method.clone(), path.clone())),
                        "{method} {path} is routed but not in the API description: describe it in operations(), or name it in NOT_DESCRIBED and say why"
                    );
                    routed.insert((method, path.clone()));
                }
            }
        }
        for (method, path) in &described {
            assert!(routed.contains(&(method.clone(), path.clone())), "{method} {path} is described but not routed");
        }
        for (method, path, _) in NOT_DESCRIBED {
            assert!(
                routes.iter().any(|(p, m)| p == path && m.iter().any(|m| m == method)),
                "{method} {path} is named as not described but not routed"
            );
        }
    }

    /// Every `$ref` under `value`.
    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(fields) => {
                if let Some(Value::String(target)) = fields.get("$ref") {
                    out.push(target);
                }
                fields.values().for_each(|field| refs(field, out));
            }
            Value::Array(items) => items.iter().for_each(|item| refs(item, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_names_a_schema_of_the_document() {
        let document = document();
        let mut found = Vec::new();
        refs(&document, &mut found);
        assert!(found.len() > 40, "{found:?}");
        for target in found {
            let name = target.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("{target}"));
            assert!(document["components"]["schemas"].get(name).is_some(), "{target} names no schema");
        }
    }

    #[test]
    fn the_key_and_a_json_body_bring_their_errors_to_every_operation() {
        let document = document();
        let mut ids = std::collections::BTreeSet::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let what = format!("{method} {path}");
                assert!(ids.insert(operation["operationId"].as_str().unwrap().to_owned()), "{what}: its id again");
                let statuses: Vec<&str> =
                    operation["responses"].as_object().unwrap().keys().map(String::as_str).collect();
                let open = operation.get("security") == Some(&json!([]));
                assert_eq!(open, ["/mesh/health", PATH, "/ui/session"].contains(&path.as_str()), "{what}");
                // The page's session route is open, and checks the key it is given itself.
                let checks_a_key = !open || what == "post /ui/session";
                assert_eq!(statuses.contains(&"401"), checks_a_key, "{what}: {statuses:?}");
                let json_body = operation.pointer("/requestBody/content/application~1json").is_some();
                for status in ["400", "413", "415"] {
                    assert!(!json_body || statuses.contains(&status), "{what}: {status} missing from {statuses:?}");
                }
                // A session cookie without the page's Origin is refused where it could act.
                if !open {
                    let acts = !["get", "head", "options"].contains(&method.as_str()) || path == "/api/v1/events";
                    assert_eq!(statuses.contains(&"403"), acts, "{what}: {statuses:?}");
                    let refusal = operation["responses"]["403"]["description"].as_str().unwrap_or_default();
                    assert!(!acts || refusal.contains("`cross_origin`"), "{what}: {refusal}");
                }
            }
        }
        for method in PASS_THROUGH_METHODS {
            assert!(ids.contains(&pass_through_id("ollama", method)) && ids.contains(&pass_through_id("cap", method)));
        }
    }

    #[test]
    fn requests_are_described_as_read_and_answers_as_written() {
        let document = document();
        let schemas = &document["components"]["schemas"];
        // Read: unknown fields refused, the bundle's fields spelled out.
        assert_eq!(schemas["ApplyRequest"]["additionalProperties"], false);
        assert_eq!(schemas["ApplyRequest"]["required"], json!(["revision", "files"]));
        assert_eq!(schemas["RouteRequest"]["required"], json!(["capability", "payload"]));
        // Written: a field left out when empty is not required.
        let required = schemas["Health"]["required"].as_array().unwrap();
        assert!(required.contains(&json!("uptimeSeconds")) && !required.contains(&json!("placements")), "{required:?}");
        assert!(schemas.get("StreamMessage").is_some() && schemas.get("Intervention").is_some());
        assert_eq!(document["components"]["securitySchemes"]["meshKey"]["scheme"], "bearer");
    }
}
