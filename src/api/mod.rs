//! The mesh API (design section 5) served by every node's controller: axum
//! handlers over the controller's shared state, the bearer key checked in
//! constant time on everything but `/mesh/health`. Errors are JSON
//! `{error, message}`.

pub mod wire;

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, oneshot};

use self::wire::{
    ApplyRequest, ApplyResponse, Describe, ErrorBody, Health, MeshNode, ReconcileRequest, ReconcileResponse,
    RouteRequest,
};
use crate::controller::status::NodeStatus;
use crate::controller::{Input, Shared, validate_for_node};
use crate::manifest::Kind;
use crate::mesh::router::{HOP_HEADER, MeshRouter, Routed};
use crate::reconcile::plan;
use crate::source::Snapshot;

/// The largest request body: an `apply` bundle of a whole manifests folder.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

#[derive(Clone)]
pub struct ApiState {
    pub shared: Arc<Shared>,
    pub inbox: mpsc::Sender<Input>,
    pub api_key: Arc<str>,
    /// Asks the Git source to fetch now, when there is one.
    pub nudge: Option<mpsc::Sender<()>>,
    pub router: MeshRouter,
}

pub fn router(state: ApiState) -> Router {
    let protected = Router::new()
        .route("/api/v1/status", get(status))
        .route("/api/v1/mesh", get(mesh))
        .route("/api/v1/apply", post(apply))
        .route("/api/v1/reconcile", post(reconcile_now))
        .route("/api/v1/objects/{kind}/{name}", get(describe))
        .route("/mesh/route", post(route))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key));
    Router::new()
        .route("/mesh/health", get(health))
        .merge(protected)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// An error as the API returns it.
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, error: &str, message: impl Into<String>) -> Self {
        ApiError { status, body: ErrorBody { error: error.into(), message: message.into(), diagnostics: Vec::new() } }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("a valid header"));
        }
        response
    }
}

async fn require_key(State(state): State<ApiState>, headers: HeaderMap, request: Request, next: Next) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(key) if bool::from(key.as_bytes().ct_eq(state.api_key.as_bytes())) => next.run(request).await,
        Some(_) => ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "the bearer key is wrong").into_response(),
        None => ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "send Authorization: Bearer <MESH_API_KEY>")
            .into_response(),
    }
}

async fn health(State(state): State<ApiState>) -> Json<Health> {
    let shared = &state.shared;
    let inner = shared.lock();
    let applied = inner.applied.as_ref();
    Json(Health {
        node: shared.node.clone(),
        role: applied.and_then(|a| a.set.nodes.get(&shared.node)).map(|n| n.spec.role.as_str().to_owned()),
        version: env!("CARGO_PKG_VERSION").into(),
        api_version: wire::API_VERSION.into(),
        revision: applied.map(|a| a.revision.clone()),
        uptime_seconds: shared.started.elapsed().as_secs(),
    })
}

/// This node's status in the shape of `status -o json`.
pub fn node_status(shared: &Shared) -> NodeStatus {
    let inner = shared.lock();
    let applied = inner.applied.as_ref();
    let role = applied
        .and_then(|a| a.set.nodes.get(&shared.node))
        .map(|n| n.spec.role.as_str())
        .or_else(|| shared.env.get(crate::identity::ROLE).map(|s| s.value.as_str()))
        .unwrap_or("satellite");
    NodeStatus {
        name: shared.node.clone(),
        role: role.to_owned(),
        online: true,
        last_seen: Some(crate::controller::status::now_rfc3339()),
        revision: applied.map(|a| a.revision.clone()),
        last_error: inner.last_error.clone(),
        objects: inner.status.objects(),
    }
}

async fn status(State(state): State<ApiState>) -> Json<NodeStatus> {
    Json(node_status(&state.shared))
}

/// The Nodes of the set in force, so a client can reach every peer.
async fn mesh(State(state): State<ApiState>) -> Json<Vec<MeshNode>> {
    let inner = state.shared.lock();
    let nodes = inner.applied.as_ref().map(|a| {
        a.set
            .nodes
            .values()
            .map(|n| MeshNode {
                name: n.name().to_owned(),
                role: n.spec.role.as_str().to_owned(),
                address: n.spec.address.value.clone(),
                api_port: n.spec.api_port.0,
                this_node: n.name() == state.shared.node,
            })
            .collect()
    });
    Json(nodes.unwrap_or_default())
}

/// Validates the bundle again here; a dry run returns the plan, a real one
/// applies it through the controller loop and returns the plan it acted on.
async fn apply(
    State(state): State<ApiState>,
    Json(request): Json<ApplyRequest>,
) -> Result<Json<ApplyResponse>, ApiError> {
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
        let shared = &state.shared;
        let snapshot = Snapshot {
            revision: request.bundle.revision.clone(),
            files: request.bundle.source_files(),
            problems: Vec::new(),
            origin: "apply".into(),
        };
        let set = validate_for_node(&snapshot, &shared.env).map_err(invalid)?;
        let current = shared.lock().applied.clone();
        let plan = plan::plan(
            current.as_ref().map(|a| (a.set.as_ref(), a.revision.as_str())),
            (&set, &snapshot.revision),
            &shared.node,
            &shared.env,
            |name| shared.supervisor.status(name),
        );
        return Ok(Json(ApplyResponse { applied: false, plan }));
    }
    let (reply, answer) = oneshot::channel();
    state.inbox.send(Input::Apply { bundle: request.bundle, reply }).await.map_err(|_| stopping())?;
    let plan = answer.await.map_err(|_| stopping())?.map_err(invalid)?;
    Ok(Json(ApplyResponse { applied: true, plan }))
}

/// Fetches (with a Git source) and reconciles every object now. With a
/// `revision`, waits until that revision is the one in force, so a caller knows
/// its push has landed here.
async fn reconcile_now(
    State(state): State<ApiState>,
    request: Option<Json<ReconcileRequest>>,
) -> Result<Json<ReconcileResponse>, ApiError> {
    if let Some(nudge) = &state.nudge {
        // A full channel already holds a pending fetch.
        let _ = nudge.try_send(());
    }
    state.inbox.send(Input::ReconcileAll).await.map_err(|_| stopping())?;
    let in_force = || state.shared.lock().applied.as_ref().map(|a| a.revision.clone());
    if let Some(wanted) = request.and_then(|Json(r)| r.revision) {
        let deadline = tokio::time::Instant::now() + REVISION_WAIT;
        while in_force().as_deref() != Some(wanted.as_str()) {
            if tokio::time::Instant::now() >= deadline {
                let message = format!("revision {wanted} is not in force after {}s", REVISION_WAIT.as_secs());
                return Err(ApiError::new(StatusCode::GATEWAY_TIMEOUT, "timeout", message));
            }
            tokio::time::sleep(REVISION_POLL).await;
        }
    }
    Ok(Json(ReconcileResponse { scheduled: true, revision: in_force() }))
}

/// How long `reconcile` waits for a requested revision, and how often it looks.
const REVISION_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
const REVISION_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// One object: its status, spec, recent events and, for a Service, its output.
async fn describe(
    State(state): State<ApiState>,
    Path((kind, name)): Path<(String, String)>,
) -> Result<Json<Describe>, ApiError> {
    let kind = Kind::ALL
        .into_iter()
        .find(|k| k.as_str().eq_ignore_ascii_case(&kind))
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("unknown kind \"{kind}\"")))?;
    let shared = &state.shared;
    let inner = shared.lock();
    let spec = inner.applied.as_ref().and_then(|a| wire::spec_json(&a.set, kind, &name));
    let status = inner.status.object(&(kind, name.clone())).cloned();
    if spec.is_none() && status.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{kind}/{name} is not in the applied set"),
        ));
    }
    let object = format!("{kind}/{name}");
    let events = inner.status.events(Some(&object), 20);
    drop(inner);
    let logs = if kind == Kind::Service {
        shared.supervisor.logs(&name, 20).into_iter().map(Into::into).collect()
    } else {
        Vec::new()
    };
    Ok(Json(Describe { kind: kind.to_string(), name, spec, status, events, logs }))
}

/// Calls a capability through the MeshRouter. A call another router handed
/// over ([`HOP_HEADER`]) is served here or not at all, never forwarded again.
async fn route(
    State(state): State<ApiState>,
    headers: HeaderMap,
    request: Result<Json<RouteRequest>, JsonRejection>,
) -> Result<Json<Routed>, ApiError> {
    let Json(request) =
        request.map_err(|rejection| ApiError::new(rejection.status(), "bad_request", rejection.body_text()))?;
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
