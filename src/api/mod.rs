//! The mesh API (design section 5) served by every node's controller: axum
//! handlers over the controller's shared state, the bearer key checked in
//! constant time on everything but `/mesh/health` and the OpenAPI document
//! (`openapi.rs`) (or, when the Mesh enables it, the caller's Tailscale
//! identity). Errors are JSON `{error, message}`,
//! but for the Ollama proxy's own (`ollama.rs`), which are Ollama's `{error}`:
//! every rejection of axum's (body, path, upgrade, method, route) is turned
//! into that shape, and no input gets a 500. `/ollama/` and `/cap/<name>/`
//! (`cap.rs`) pass requests on to the node serving a capability
//! (`passthrough.rs`).

pub(crate) mod cap;
mod error;
mod handoff;
pub(crate) mod jsdoc;
mod metrics;
pub(crate) mod ollama;
pub(crate) mod openapi;
pub(crate) mod page;
pub(crate) mod passthrough;
mod peers;
pub(crate) mod serve;
mod state;
mod ui_session;
pub(crate) mod ui_tokens;
pub(crate) mod wire;

pub(crate) use self::state::ApiState;
use self::state::MAX_BODY_BYTES;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::oneshot;

use self::error::{ApiError, bad_request};
use self::ui_session::{LetIn, MayAct, bearer_key};
use self::wire::{
    Action, ApplyRequest, ApplyResponse, Describe, Health, Intervention, MeshNode, MeshStatus, ReconcileRequest,
    ReconcileResponse, RouteRequest, Routed, StreamMessage, SyncthingDevice,
};
use crate::build_info;
use crate::client::statuses;
use crate::controller::status::{NodeStatus, ObjectKey};
use crate::controller::{InForce, Input, Shared, validate_off_runtime};
use crate::manifest::Kind;
use crate::manifest::kinds::Role;
use crate::mesh::failover::HOP_HEADER;
use crate::mesh::placement::Placements;
use crate::reconcile::{plan, sync_folder};
use crate::source::Snapshot;
use crate::source_status::SourceStatus;

pub(crate) fn router(state: ApiState) -> Router {
    let protected = Router::new()
        .route("/api/v1/status", get(status))
        .route("/api/v1/mesh", get(mesh))
        .route("/api/v1/mesh/status", get(mesh_status))
        .route("/api/v1/peers", post(peers::register))
        .route("/api/v1/apply", post(apply))
        .route("/api/v1/reconcile", post(reconcile_now))
        .route("/api/v1/objects/{kind}", get(names_of_kind))
        .route("/api/v1/objects/{kind}/{name}", get(describe))
        .route("/api/v1/mesh/nodes/{node}/objects/{kind}/{name}", get(describe_on))
        .route("/api/v1/events", get(events))
        .route("/api/v1/syncthing/device", get(syncthing_device))
        .route("/api/v1/handoff", post(handoff::start))
        .route("/api/v1/handoff/message", post(handoff::message))
        .route("/api/v1/handoff/messages", post(handoff::messages))
        .route("/api/v1/handoff/{handoff}", get(handoff::progress))
        .route("/api/v1/sessions", get(handoff::sessions))
        .route("/api/v1/sessions/{id}", get(handoff::session))
        .route(metrics::PATH, get(metrics::scrape))
        .route("/mesh/route", post(route))
        .route("/mesh/goodbye", post(peers::goodbye))
        .route("/ui/ticket", post(ui_session::ticket))
        .route("/ui/authority", get(ui_session::authority))
        .route(ollama::PREFIX, any(ollama::proxy))
        .route("/ollama/", any(ollama::proxy))
        .route("/ollama/{*rest}", any(ollama::proxy))
        .route("/cap/{name}", any(cap::proxy))
        .route("/cap/{name}/", any(cap::proxy))
        .route("/cap/{name}/{*rest}", any(cap::proxy))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key));
    Router::new()
        .route("/mesh/health", get(health))
        .route(openapi::PATH, get(openapi_document))
        .route("/", get(page::shell))
        .route("/ui/{file}", get(page::asset))
        .route("/ui/session", post(ui_session::open).delete(ui_session::forget))
        .merge(protected)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        // After every route: it is set on the routes there are. axum adds `Allow`.
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), metrics::count_request))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    let message = format!("{} does not take {method}; see the Allow header", uri.path());
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", message)
}

async fn require_key(State(state): State<ApiState>, headers: HeaderMap, request: Request, next: Next) -> Response {
    let presented = bearer_key(&headers);
    if presented.is_some_and(|key| state.handles.api_key.matches(key)) {
        return let_in(LetIn::Key, &headers, request, next).await;
    }
    if metrics::metrics_key_opens(&state, &request, presented) {
        return next.run(request).await;
    }
    match ui_session::admission(&state, &headers, request.method()) {
        ui_session::Admission::Admitted => {
            let under_key = state.handles.api_key.get().is_some();
            return let_in(LetIn::Session { under_key }, &headers, request, next).await;
        }
        ui_session::Admission::Refused(error) => return error.into_response(),
        ui_session::Admission::NoSession => {}
    }
    let caller = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(caller)| *caller);
    if let Some(caller) = caller
        && tailscale_identity_allowed(&state, caller).await
    {
        return let_in(LetIn::Identity, &headers, request, next).await;
    }
    match presented {
        Some(_) => ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "the bearer key is wrong").into_response(),
        None => ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "send Authorization: Bearer <MESH_API_KEY>")
            .into_response(),
    }
}

/// Runs a request that was let in, telling the handlers whether it may act;
/// an action it may not take is refused here (`403 key_required`).
async fn let_in(how: LetIn, headers: &HeaderMap, mut request: Request, next: Next) -> Response {
    let may_act = ui_session::may_act(how, ui_session::from_browser(headers));
    if !may_act && ui_session::is_action(request.method(), request.uri().path()) {
        return ui_session::key_required().into_response();
    }
    request.extensions_mut().insert(MayAct(may_act));
    next.run(request).await
}

/// Whether the Mesh in force enables Tailscale identity auth and allows the
/// identity that whois gives for the caller's address.
async fn tailscale_identity_allowed(state: &ApiState, caller: SocketAddr) -> bool {
    let (settings, socket) = {
        let Some(set) = state.shared.applied_set() else { return false };
        let Some(mesh) = set.mesh.as_ref() else { return false };
        (mesh.spec.auth.tailscale_identity.clone(), mesh.spec.discovery.local_api_socket.clone())
    };
    if !settings.enabled {
        return false;
    }
    let socket = socket.as_deref().map(crate::config::expand_home);
    let Some(identity) = state.tailscale.whois(socket.as_deref(), caller).await else {
        tracing::debug!(%caller, "no Tailscale identity for a caller without the key");
        return false;
    };
    let allowed = identity.allowed(&settings);
    tracing::debug!(%caller, login = identity.login, node = identity.node_name, allowed, "Tailscale identity");
    allowed
}

/// Open to anyone; what the node follows only to a caller with the key (its
/// peers' probes).
async fn health(State(state): State<ApiState>, headers: HeaderMap) -> Json<Health> {
    let shared = &state.shared;
    let with_key = bearer_key(&headers).is_some_and(|key| state.handles.api_key.matches(key));
    let applied = shared.in_force();
    Json(Health {
        node: shared.node().to_owned(),
        role: applied.as_ref().and_then(|a| a.set.nodes.get(shared.node())).map(|n| n.spec.role),
        version: build_info::VERSION.into(),
        commit: build_info::COMMIT.into(),
        api_version: wire::API_VERSION.into(),
        revision: applied.map(|a| a.revision),
        uptime_seconds: shared.uptime().as_secs(),
        source: with_key.then(|| Box::new(state.source.borrow().clone())),
        placements: if with_key { served_by(&state.handles.placements) } else { BTreeMap::new() },
    })
}

/// Open to anyone, like health: it describes the API and holds nothing secret.
async fn openapi_document() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], openapi::document_text()).into_response()
}

/// Which node serves each capability, as this node decided.
fn served_by(placements: &Placements) -> BTreeMap<String, String> {
    placements.all().into_iter().map(|(capability, served)| (capability, served.node)).collect()
}

/// This node's status in the shape of `status -o json`.
pub(crate) fn node_status(shared: &Shared, source: &SourceStatus) -> NodeStatus {
    let env = shared.env();
    let applied = shared.in_force();
    let role = applied
        .as_ref()
        .and_then(|a| a.set.nodes.get(shared.node()))
        .map(|n| n.spec.role.as_str())
        .or_else(|| env.get(crate::identity::ROLE).map(|s| s.value.as_str()))
        .unwrap_or("satellite");
    NodeStatus {
        name: shared.node().to_owned(),
        role: role.to_owned(),
        online: true,
        last_seen: Some(crate::controller::status::now_rfc3339()),
        unreachable_since: None,
        revision: applied.as_ref().map(|a| a.revision.clone()),
        last_error: shared.last_error(),
        objects: shared.status().objects(),
        paused: shared.paused(),
        source: Some(source.clone()),
    }
}

async fn status(State(state): State<ApiState>) -> Json<NodeStatus> {
    Json(node_status(&state.shared, &state.source.borrow()))
}

/// This node's view of every node: itself, then each peer as the prober last
/// saw it, so a client can reach every peer and knows which are down.
async fn mesh(State(state): State<ApiState>) -> Json<Vec<MeshNode>> {
    let me = node_status(&state.shared, &state.source.borrow());
    Json(mesh_view(&state, &me))
}

/// How long a peer gets to answer `GET /api/v1/mesh/status`'s question: the
/// prober's own patience, so a peer that does not answer in it is one the
/// prober is about to call down anyway.
const PEER_STATUS_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1500);

/// Every node's status: this node's, and each peer's asked with the mesh key
/// (the page may call only its own node, and only this node holds the key),
/// all at once; a peer known to be down is not asked, and one that does not
/// answer in [`PEER_STATUS_TIMEOUT`] is marked with why.
async fn mesh_status(State(state): State<ApiState>) -> Json<MeshStatus> {
    let mine = node_status(&state.shared, &state.source.borrow());
    let views = mesh_view(&state, &mine);
    let key = state.handles.api_key.get();
    let nodes = statuses::gather(mine, views, key.as_deref(), PEER_STATUS_TIMEOUT).await;
    Json(MeshStatus { nodes })
}

/// Every node as this one sees it: `me` (its own status), then each peer.
fn mesh_view(state: &ApiState, me: &NodeStatus) -> Vec<MeshNode> {
    let shared = &state.shared;
    let (address, api_port) = {
        let set = shared.applied_set();
        let node = set.as_ref().and_then(|set| set.nodes.get(shared.node()));
        node.map_or_else(|| (String::new(), 0), |n| (n.spec.address.value.clone(), n.spec.api_port.0))
    };
    let this = MeshNode {
        name: me.name.clone(),
        role: me.role.clone(),
        dial: format!("{address}:{api_port}"),
        address,
        api_port,
        this_node: true,
        online: true,
        known_down: false,
        last_seen: me.last_seen.clone(),
        rtt_ms: None,
        revision: me.revision.clone(),
        version: Some(env!("CARGO_PKG_VERSION").into()),
        api_version: Some(wire::API_VERSION.into()),
        compatible: true,
        last_error: None,
        unreachable_since: None,
        asleep_since: None,
        source: me.source.clone(),
    };
    let known = &state.handles.peers;
    let peers = known.all().into_iter().map(|peer| MeshNode {
        known_down: peer.known_down(),
        unreachable_since: peer
            .absence()
            .and_then(|absence| absence.since)
            .map(|since| humantime::format_rfc3339_seconds(since).to_string()),
        dial: peer.authority(),
        role: peer.role.map_or("unknown", Role::as_str).to_owned(),
        this_node: false,
        compatible: peer.api_version.as_deref().is_none_or(|v| v == wire::API_VERSION),
        name: peer.name,
        address: peer.address,
        api_port: peer.api_port,
        online: peer.online,
        last_seen: peer.last_seen,
        rtt_ms: peer.rtt_ms,
        revision: peer.revision,
        version: peer.version,
        api_version: peer.api_version,
        last_error: peer.last_error,
        asleep_since: peer.asleep_since.map(|since| humantime::format_rfc3339_seconds(since).to_string()),
        source: peer.source,
    });
    std::iter::once(this).chain(peers).collect()
}

/// Validates the bundle again here; a dry run returns the plan, a real one
/// applies it through the controller loop and returns the plan it acted on.
async fn apply(
    State(state): State<ApiState>,
    headers: HeaderMap,
    request: Result<Json<ApplyRequest>, JsonRejection>,
) -> Result<Json<ApplyResponse>, ApiError> {
    let Json(request) = request?;
    let forced = headers.contains_key(wire::FORCE_HEADER);
    if !request.dry_run && !forced {
        // A node that follows Git takes a folder only when forced.
        let refusal = state.source.borrow().apply_refusal();
        if let Some(message) = refusal {
            return Err(ApiError::new(StatusCode::CONFLICT, "follows_git", message));
        }
    }
    let invalid = |diagnostics: Vec<crate::diagnostic::Diagnostic>| {
        let mut error = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("the bundle has {} error(s)", diagnostics.len()),
        );
        error.body.diagnostics = diagnostics.iter().map(ToString::to_string).collect();
        error
    };
    if request.dry_run {
        let snapshot = Snapshot {
            revision: request.bundle.revision.clone(),
            files: request.bundle.source_files(),
            problems: Vec::new(),
            origin: "apply".into(),
        };
        let env = state.shared.env();
        let (snapshot, validated) = validate_off_runtime(snapshot, env.clone()).await;
        let set = validated.map_err(invalid)?;
        let current = dry_run_base(&state.shared, env.clone()).await;
        let handles = state.handles.clone();
        // Comparing two whole sets is blocking work too.
        let planned = tokio::task::spawn_blocking(move || {
            plan::plan(
                current.as_ref().map(|a| (a.set.as_ref(), a.revision.as_str())),
                (&set, &snapshot.revision),
                &handles.node,
                &env,
                |name| handles.supervisor.status(name),
            )
        })
        .await;
        let plan = planned.unwrap_or_else(|failed| std::panic::resume_unwind(failed.into_panic()));
        return Ok(Json(ApplyResponse { applied: false, plan }));
    }
    let (reply, answer) = oneshot::channel();
    state.inbox.send(Input::Apply { bundle: request.bundle, reply }).await.map_err(|_| stopping())?;
    let plan = answer.await.map_err(|_| stopping())?.map_err(invalid)?;
    Ok(Json(ApplyResponse { applied: true, plan }))
}

/// What a dry run (`diff`) plans against: the commit the Git source follows
/// when a folder applied with `--force` runs in its place (and that commit
/// is valid), else the set in force.
async fn dry_run_base(shared: &Shared, env: std::sync::Arc<crate::identity::NodeEnv>) -> Option<InForce> {
    let in_force = shared.in_force();
    let Some(followed) = shared.followed().filter(|followed| plans_against_followed(in_force.as_ref(), followed))
    else {
        return in_force;
    };
    let origin = followed.origin.clone();
    match validate_off_runtime(followed, env).await {
        (followed, Ok(set)) => Some(InForce { revision: followed.revision, origin, set: std::sync::Arc::new(set) }),
        (_, Err(_)) => in_force,
    }
}

/// Whether the set in force is not the commit the node follows.
fn plans_against_followed(in_force: Option<&InForce>, followed: &Snapshot) -> bool {
    in_force.is_none_or(|in_force| in_force.revision != followed.revision)
}

/// Fetches (with a Git source) and reconciles every object now. With a
/// `revision`, waits until that revision is the one in force, so a caller knows
/// its push has landed here.
async fn reconcile_now(
    State(state): State<ApiState>,
    request: Result<Option<Json<ReconcileRequest>>, JsonRejection>,
) -> Result<Json<ReconcileResponse>, ApiError> {
    let request = request?;
    if let Some(nudge) = &state.nudge {
        // A full channel already holds a pending fetch.
        let _ = nudge.try_send(());
    }
    state.inbox.send(Input::ReconcileAll).await.map_err(|_| stopping())?;
    let mut in_force = state.shared.watch_in_force();
    if let Some(wanted) = request.and_then(|Json(r)| r.revision) {
        let arrived = in_force.wait_for(|in_force| in_force.as_ref().is_some_and(|a| a.revision == wanted));
        match tokio::time::timeout(REVISION_WAIT, arrived).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return Err(stopping()),
            Err(_) => {
                let message = format!("revision {wanted} is not in force after {}s", REVISION_WAIT.as_secs());
                return Err(ApiError::new(StatusCode::GATEWAY_TIMEOUT, "timeout", message));
            }
        }
    }
    let revision = in_force.borrow().as_ref().map(|a| a.revision.clone());
    Ok(Json(ReconcileResponse { scheduled: true, revision }))
}

/// How long `reconcile` waits for a requested revision.
const REVISION_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// One object: its status, spec, recent events and, for a Service, its output.
/// A kind or a name that can never be in a set is a bad request (400); a
/// well-formed one that is not there is not found (404).
async fn describe(
    State(state): State<ApiState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Describe>, ApiError> {
    let Path((kind, name)) = path?;
    let kind = object_named(&kind, &name)?;
    describe_here(&state, kind, name).map(Json)
}

/// `kind` and `name` of a request, checked: a kind there is, a valid name.
fn object_named(kind: &str, name: &str) -> Result<Kind, ApiError> {
    let kind = kind_named(kind)?;
    match crate::manifest::name_problem(name) {
        Some(problem) => Err(bad_request(format!("{name:?} cannot name a {kind}: {problem}"))),
        None => Ok(kind),
    }
}

/// What `meshctl describe` shows of one object of this node.
fn describe_here(state: &ApiState, kind: Kind, name: String) -> Result<Describe, ApiError> {
    let spec = state.shared.applied_set().and_then(|set| wire::spec_json(&set, kind, &name));
    let status_store = state.shared.status();
    let status = status_store.object(&ObjectKey::new(kind, name.clone())).cloned();
    if spec.is_none() && status.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{kind}/{name} is not in the applied set"),
        ));
    }
    let object = format!("{kind}/{name}");
    let events = status_store.events(Some(&object), 20);
    drop(status_store);
    let logs = if kind == Kind::Service {
        state.handles.supervisor.logs(&name, 20).into_iter().map(Into::into).collect()
    } else {
        Vec::new()
    };
    Ok(Describe { kind: kind.to_string(), name, spec, status, events, logs })
}

/// `describe` of an object on `node`, this one or a peer asked with the mesh
/// key within [`PEER_STATUS_TIMEOUT`]: the page, which may call only its own
/// node, reads a peer's Service output through it. A peer known to be down
/// is not asked (503, with how it is away); one that fails to answer is 502.
async fn describe_on(
    State(state): State<ApiState>,
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<Json<Describe>, ApiError> {
    let Path((node, kind, name)) = path?;
    let kind = object_named(&kind, &name)?;
    if node == state.shared.node() {
        return describe_here(&state, kind, name).map(Json);
    }
    let Some(peer) = state.handles.peers.get(&node) else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no node {node:?} in the mesh")));
    };
    if let Some(absence) = peer.absence() {
        let message = format!("{node} is {}: not asked", absence.words(crate::clock::local_hh_mm));
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "peer_down", message));
    }
    let key = state.handles.api_key.get();
    let client = crate::client::ApiClient::new(&peer.authority(), key.as_deref(), PEER_STATUS_TIMEOUT);
    match client.describe(kind.as_str(), &name).await {
        Ok(described) => Ok(Json(described)),
        Err(crate::client::ClientError::Api { status, error, message, .. }) if status == StatusCode::NOT_FOUND => {
            Err(ApiError::new(status, &error, format!("{node}: {message}")))
        }
        Err(error) => Err(ApiError::new(StatusCode::BAD_GATEWAY, "peer_failed", format!("{node}: {error}"))),
    }
}

/// The names of one kind's objects in the applied set, sorted: `meshctl get`
/// lists them besides the objects a node reports a status for (a Mesh, a
/// Service no node runs).
async fn names_of_kind(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Vec<String>>, ApiError> {
    let Path(kind) = path?;
    let kind = kind_named(&kind)?;
    Ok(Json(state.shared.applied_set().map(|set| set.names(kind)).unwrap_or_default()))
}

/// The kind `text` names in any case; an unknown one is a bad request.
fn kind_named(text: &str) -> Result<Kind, ApiError> {
    Kind::ALL.into_iter().find(|k| k.as_str().eq_ignore_ascii_case(text)).ok_or_else(|| {
        let kinds = Kind::ALL.map(|kind| kind.as_str()).join(", ");
        bad_request(format!("unknown kind {text:?}; the kinds are {kinds}"))
    })
}

/// How many past events a new stream client gets first, for context.
const RECENT_EVENTS: usize = 50;

/// The event stream: recent events, `live`, then events and Service output as
/// they happen; the client may send interventions. The key was checked before the
/// upgrade, by the same middleware as every other route.
async fn events(
    State(state): State<ApiState>,
    may_act: Option<axum::Extension<MayAct>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let may_act = may_act.is_some_and(|axum::Extension(MayAct(may))| may);
    Ok(upgrade?.on_upgrade(move |socket| stream_events(state, socket, may_act)))
}

/// Streams to one client; its interventions are taken only when `may_act`
/// (a browser let in by its Tailscale identity alone watches).
async fn stream_events(state: ApiState, socket: WebSocket, may_act: bool) {
    let (recent, mut items) = state.shared.status().subscribe(RECENT_EVENTS);
    let (mut sink, mut incoming) = socket.split();
    for event in recent {
        if send(&mut sink, &event.into()).await.is_err() {
            return;
        }
    }
    if send(&mut sink, &StreamMessage::Live).await.is_err() {
        return;
    }
    loop {
        let message = tokio::select! {
            item = items.recv() => match item {
                Ok(item) => item.into(),
                // The channel dropped the oldest for us; the controller never waits.
                Err(RecvError::Lagged(skipped)) => StreamMessage::Lagged { skipped },
                Err(RecvError::Closed) => break,
            },
            frame = incoming.next() => match frame {
                Some(Ok(Message::Text(_))) if !may_act => StreamMessage::Error { message: KEY_REQUIRED.into() },
                Some(Ok(Message::Text(text))) => intervene(&state, &text).await,
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                // Pings are answered by axum; nothing else means anything here.
                Some(Ok(_)) => continue,
            },
        };
        if send(&mut sink, &message).await.is_err() {
            return;
        }
    }
    let _ = sink.send(Message::Close(None)).await;
}

async fn send(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    message: &StreamMessage,
) -> Result<(), axum::Error> {
    let text = serde_json::to_string(message).expect("stream messages serialize");
    sink.send(Message::Text(text.into())).await
}

/// Why an intervention of a stream that may not act is refused.
const KEY_REQUIRED: &str = "key_required: an intervention from the page needs the key; open the stream with it";

/// Hands a client's intervention to the controller, which records it as an
/// event; the answer is the acknowledgement or what was wrong.
async fn intervene(state: &ApiState, text: &str) -> StreamMessage {
    let action = match Intervention::parse(text) {
        Ok(action) => action,
        Err(message) => return StreamMessage::Error { message },
    };
    let input = match action {
        Action::Pause => Input::Pause,
        Action::Resume => Input::Resume,
        Action::Reconcile => {
            if let Some(nudge) = &state.nudge {
                let _ = nudge.try_send(());
            }
            Input::ReconcileAll
        }
    };
    match state.inbox.send(input).await {
        Ok(()) => StreamMessage::Ack { action },
        Err(_) => StreamMessage::Error { message: "the controller is shutting down".into() },
    }
}

/// Calls a capability through the MeshRouter. A call another router handed
/// over ([`HOP_HEADER`]) is served here or not at all, never forwarded again.
async fn route(
    State(state): State<ApiState>,
    headers: HeaderMap,
    request: Result<Json<RouteRequest>, JsonRejection>,
) -> Result<Json<Routed>, ApiError> {
    let Json(request) = request?;
    let RouteRequest { capability, payload, prefer_node } = request;
    let result = if headers.contains_key(HOP_HEADER) {
        state.router.serve_here(&capability, payload, prefer_node.as_deref()).await
    } else {
        state.router.route(&capability, payload, prefer_node.as_deref()).await
    };
    result.map(Json).map_err(|error| {
        let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_GATEWAY);
        ApiError::new(status, error.code(), error.to_string())
    })
}

fn stopping() -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "stopping", "the controller is shutting down")
}

/// This node's Syncthing device: its ID from the local Syncthing, and the
/// address its Node manifest gives peers to dial.
async fn syncthing_device(State(state): State<ApiState>) -> Result<Json<SyncthingDevice>, ApiError> {
    let Some(set) = state.shared.applied_set() else {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "no manifests are in force yet"));
    };
    let node = state.shared.node().to_owned();
    let (client, device_address) = sync_folder::this_node_client(&set, &node, &state.shared.env())
        .map_err(|error| ApiError::new(StatusCode::NOT_FOUND, "no_syncthing", error.message))?;
    let status = client
        .system_status()
        .await
        .map_err(|error| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "syncthing_unreachable", error.to_string()))?;
    Ok(Json(SyncthingDevice { node, device_id: status.my_id, device_address }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dry_run_plans_against_the_followed_commit_only_while_another_set_runs() {
        let in_force = |revision: &str| InForce {
            revision: revision.into(),
            origin: "apply".into(),
            set: std::sync::Arc::new(crate::manifest::validate(&[], Vec::new()).set),
        };
        let followed =
            Snapshot { revision: "c1".into(), files: Vec::new(), problems: Vec::new(), origin: "git r main".into() };
        let cases = [(Some(in_force("c1")), false), (Some(in_force("local-abc")), true), (None, true)];
        for (running, expected) in cases {
            assert_eq!(
                plans_against_followed(running.as_ref(), &followed),
                expected,
                "{:?}",
                running.map(|r| r.revision)
            );
        }
    }
}
