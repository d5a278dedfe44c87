//! A client of a controller's mesh API, for `meshctl` and for peers.

use std::time::Duration;

use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use crate::api::wire::{
    ApplyRequest, ApplyResponse, Describe, ErrorBody, HandoffMessage, Health, MeshNode, PeerRegistered,
    PeerRegistration, ReconcileRequest, ReconcileResponse, RouteCall, Routed, Session,
};
use crate::api::wire::{FORCE_HEADER, Goodbye, SyncthingDevice, UiTicket};
use crate::api::wire::{HandoffProgress, HandoffRequest};
use crate::controller::status::NodeStatus;
use crate::manifest::Bundle;
use crate::net::{self, root_cause};

pub(crate) mod statuses;

/// How long `route` waits: longer than the router's own worst case (a connect
/// timeout per node that is down, then one endpoint's whole timeout), so its
/// error, which says what it tried, arrives rather than a timeout of ours.
const ROUTE_WAIT: Duration = Duration::from_secs(120);

impl ClientError {
    /// The peer refused the connection: the request never reached it.
    pub(crate) fn refused(&self) -> bool {
        matches!(self, ClientError::Unreachable { refused: true, .. })
    }
}

/// Whether a connect error was a refusal (nothing listens there), not a
/// timeout or a reset that may have come after the request.
fn connection_refused(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if current.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            return true;
        }
        cause = current.source();
    }
    false
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    /// `refused`: the peer refused the connection, so nothing of the request
    /// reached it (a handoff may give up an `Accept` only then).
    #[error("cannot reach the controller at {base}: {reason}")]
    Unreachable { base: String, reason: String, refused: bool },
    #[error("{message} ({status})")]
    Api { status: StatusCode, error: String, message: String, diagnostics: Vec<String> },
    #[error("unexpected answer from {base}: {reason}")]
    Decode { base: String, reason: String },
}

/// The client's end of the event stream.
pub(crate) type EventStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

#[derive(Clone)]
pub(crate) struct ApiClient {
    base: String,
    /// None: the API lets this caller in by its Tailscale identity, or not at all.
    key: Option<String>,
    timeout: Duration,
    http: reqwest::Client,
}

impl ApiClient {
    /// A client of the API at `authority` (`host:port`), giving up after `timeout`.
    pub(crate) fn new(authority: &str, key: Option<&str>, timeout: Duration) -> ApiClient {
        let http = net::http_client(timeout.min(net::CONNECT_TIMEOUT))
            .timeout(timeout)
            .build()
            .expect("a plain HTTP client builds");
        ApiClient { base: format!("http://{authority}"), key: key.map(str::to_owned), timeout, http }
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    pub(crate) async fn health(&self) -> Result<Health, ClientError> {
        self.send(self.http.get(self.url("/mesh/health"))).await
    }

    pub(crate) async fn status(&self) -> Result<NodeStatus, ClientError> {
        self.send(self.http.get(self.url("/api/v1/status"))).await
    }

    pub(crate) async fn mesh(&self) -> Result<Vec<MeshNode>, ClientError> {
        self.send(self.http.get(self.url("/api/v1/mesh"))).await
    }

    /// Tells this node where a joining node's API answers (`POST /api/v1/peers`).
    pub(crate) async fn register_peer(&self, registration: &PeerRegistration) -> Result<PeerRegistered, ClientError> {
        self.send(self.http.post(self.url("/api/v1/peers")).json(registration)).await
    }

    /// Applies (or plans) `bundle`; `force` applies it on a node that follows
    /// Git too, until its next commit.
    pub(crate) async fn apply(&self, bundle: Bundle, dry_run: bool, force: bool) -> Result<ApplyResponse, ClientError> {
        let request = ApplyRequest { bundle, dry_run };
        let mut post = self.http.post(self.url("/api/v1/apply")).json(&request);
        if force {
            post = post.header(FORCE_HEADER, "1");
        }
        self.send(post).await
    }

    /// Reconcile now; with a revision, fetch it and answer once it is in force.
    pub(crate) async fn reconcile(&self, request: &ReconcileRequest) -> Result<ReconcileResponse, ClientError> {
        self.send(self.http.post(self.url("/api/v1/reconcile")).json(request)).await
    }

    /// The names of `kind`'s objects in the node's applied set (`GET /api/v1/objects/KIND`).
    pub(crate) async fn names(&self, kind: &str) -> Result<Vec<String>, ClientError> {
        self.send(self.http.get(self.url(&format!("/api/v1/objects/{kind}")))).await
    }

    pub(crate) async fn describe(&self, kind: &str, name: &str) -> Result<Describe, ClientError> {
        self.send(self.http.get(self.url(&format!("/api/v1/objects/{kind}/{name}")))).await
    }

    /// Opens the event stream (`GET /api/v1/events`, a WebSocket).
    pub(crate) async fn events(&self) -> Result<EventStream, ClientError> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        let url = format!("ws{}/api/v1/events", self.base.trim_start_matches("http"));
        let unreachable = |reason: String| ClientError::Unreachable { base: self.base.clone(), reason, refused: false };
        let mut request = url.into_client_request().map_err(|error| unreachable(error.to_string()))?;
        if let Some(key) = &self.key {
            let bearer =
                format!("Bearer {key}").parse().map_err(|_| unreachable("the key is not a header value".into()))?;
            request.headers_mut().insert(reqwest::header::AUTHORIZATION, bearer);
        }
        let connect = tokio_tungstenite::connect_async(request);
        let (stream, _) = match tokio::time::timeout(self.timeout, connect).await {
            Ok(Ok(connected)) => connected,
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response))) => {
                let status = StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
                let body: Option<ErrorBody> = response.body().as_deref().and_then(|b| serde_json::from_slice(b).ok());
                let (error, message) =
                    body.map_or_else(|| ("http".into(), status.to_string()), |b| (b.error, b.message));
                return Err(ClientError::Api { status, error, message, diagnostics: Vec::new() });
            }
            Ok(Err(error)) => return Err(unreachable(root_cause(&error))),
            Err(_) => return Err(unreachable(format!("no answer in {}s", self.timeout.as_secs()))),
        };
        Ok(stream)
    }

    /// The node's Syncthing device ID and the address its peers dial.
    pub(crate) async fn syncthing_device(&self) -> Result<SyncthingDevice, ClientError> {
        self.send(self.http.get(self.url("/api/v1/syncthing/device"))).await
    }

    /// A one-time ticket the status page trades for a session (`POST /ui/ticket`).
    pub(crate) async fn ui_ticket(&self) -> Result<UiTicket, ClientError> {
        self.send(self.http.post(self.url("/ui/ticket"))).await
    }

    /// Tells this peer that this node is about to sleep or woke (`POST /mesh/goodbye`).
    pub(crate) async fn goodbye(&self, goodbye: &Goodbye) -> Result<(), ClientError> {
        self.exchange(self.http.post(self.url("/mesh/goodbye")).json(goodbye)).await.map(drop)
    }

    /// Delivers one handoff protocol message to this (peer's) controller.
    pub(crate) async fn handoff_message(&self, message: &HandoffMessage) -> Result<(), ClientError> {
        self.exchange(self.http.post(self.url("/api/v1/handoff/message")).json(message)).await.map(drop)
    }

    /// Delivers several handoff protocol messages (the records of a pass) at once.
    pub(crate) async fn handoff_messages(&self, messages: &[HandoffMessage]) -> Result<(), ClientError> {
        self.exchange(self.http.post(self.url("/api/v1/handoff/messages")).json(messages)).await.map(drop)
    }

    /// Starts a handoff on this (the owner's) controller.
    pub(crate) async fn handoff(&self, request: &HandoffRequest) -> Result<HandoffProgress, ClientError> {
        self.send(self.http.post(self.url("/api/v1/handoff")).json(request)).await
    }

    /// How a handoff started on this controller goes.
    pub(crate) async fn handoff_progress(&self, handoff: &str) -> Result<HandoffProgress, ClientError> {
        self.send(self.http.get(self.url(&format!("/api/v1/handoff/{handoff}")))).await
    }

    /// Every conversation this node knows of (`GET /api/v1/sessions`).
    pub(crate) async fn sessions(&self) -> Result<Vec<Session>, ClientError> {
        self.send(self.http.get(self.url("/api/v1/sessions"))).await
    }

    /// One conversation (`GET /api/v1/sessions/ID`).
    pub(crate) async fn session(&self, id: &str) -> Result<Session, ClientError> {
        self.send(self.http.get(self.url(&format!("/api/v1/sessions/{id}")))).await
    }

    /// Calls a capability through this controller's MeshRouter.
    pub(crate) async fn route(
        &self,
        capability: &str,
        payload: &serde_json::Value,
        prefer_node: Option<&str>,
    ) -> Result<Routed, ClientError> {
        let call = RouteCall { capability, payload, prefer_node };
        self.send(self.http.post(self.url("/mesh/route")).json(&call).timeout(ROUTE_WAIT)).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T, ClientError> {
        let bytes = self.exchange(request).await?;
        serde_json::from_slice(&bytes)
            .map_err(|error| ClientError::Decode { base: self.base.clone(), reason: error.to_string() })
    }

    /// Sends `request` with the key (when there is one) and returns the body
    /// of a success, or the API's `{error, message}` as an error.
    async fn exchange(&self, request: reqwest::RequestBuilder) -> Result<hyper::body::Bytes, ClientError> {
        let request = match &self.key {
            Some(key) => request.bearer_auth(key),
            None => request,
        };
        let unreachable = |error: reqwest::Error| ClientError::Unreachable {
            base: self.base.clone(),
            reason: root_cause(&error),
            refused: error.is_connect() && connection_refused(&error),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        // The request went out: whatever fails now, it may have been taken.
        let bytes = response.bytes().await.map_err(|error| ClientError::Unreachable {
            base: self.base.clone(),
            reason: root_cause(&error),
            refused: false,
        })?;
        if status.is_success() {
            return Ok(bytes);
        }
        let body: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_else(|_| ErrorBody {
            error: "http".into(),
            message: String::from_utf8_lossy(&bytes).into_owned(),
            diagnostics: Vec::new(),
        });
        Err(ClientError::Api { status, error: body.error, message: body.message, diagnostics: body.diagnostics })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_a_refused_connection_is_refused_not_one_taken_that_never_answers() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let error = ApiClient::new(&closed.to_string(), None, Duration::from_secs(1)).health().await.unwrap_err();
        assert!(error.refused(), "{error:?}");
        assert!(error.to_string().contains("refused"), "{error}");

        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = silent.local_addr().unwrap().to_string();
        let error = ApiClient::new(&address, None, Duration::from_millis(500)).health().await.unwrap_err();
        assert!(!error.refused(), "taken, then no answer: it may have arrived: {error:?}");
    }
}
