//! Passing a client's HTTP request through to the node that serves a
//! capability, shared by the Ollama proxy (`/ollama/…`) and the capability
//! pass-through (`/cap/<name>/…`).
//!
//! - **Which node, and failover**: the mesh's one
//!   [`failover`](crate::mesh::failover), as for `/mesh/route`: the node the
//!   Capability reconciler placed it on first, then the placement, nodes known
//!   to be down skipped ([`candidates`]); the next node is tried while
//!   nothing was sent (a connection that could not be made, or a peer that
//!   says it sent nothing), and for a GET, HEAD or OPTIONS also when it was
//!   lost without an answer (a broken connection, a peer that went silent).
//!   Once an answer came, it is the answer.
//! - **How**: this node calls its own endpoint (an Ollama one with the `Host`
//!   Ollama's DNS-rebinding check accepts, [`backend_host`]); a peer gets the
//!   request at its own mount (`/ollama/…`, `/cap/<name>/…`) with the mesh key
//!   and [`HOP_HEADER`], which makes it serve the request itself or answer
//!   that it sent nothing ([`NOT_SENT_HEADER`]). The client's credentials are
//!   never passed to an endpoint.
//! - **Streaming**: the answer's status, headers (less hop-by-hop ones) and
//!   body are passed on as they come, chunk by chunk, never buffered. The
//!   request body is read whole first (up to the API's body limit), so it can
//!   be sent again to the next node; a larger one is refused with 413.
//!
//! Errors of the pass-through itself come in the shape its clients read
//! ([`ErrorShape`]): 503 when no node could be reached, 502 when a node took
//! the request and the exchange broke before an answer, 504 `went_silent`
//! when the peer that took a request other than a read went silent before it
//! answered. A peer that goes silent while its answer streams cuts the
//! stream: the body ends without its last chunk, which the client reads as a
//! broken answer; an Ollama NDJSON stream ends instead with the
//! `{"error": …}` line Ollama itself ends a failed stream with.

use std::net::IpAddr;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::state::{ApiState, MAX_BODY_BYTES};
use super::wire::{ErrorBody, OllamaError};
use crate::manifest::ManifestSet;
use crate::manifest::kinds::{CapabilitySpec, Provider};
use crate::mesh::failover::{
    Call, Finish, HEALTH_CHECK_HOP, HOP_HEADER, Lost, NOT_SENT_HEADER, PeerProtocol, Reply, Streamed, candidates, list,
};
use crate::mesh::wake_up::WAKE_HEADER;
use crate::net::host_port;

/// The shape of the pass-through's own errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorShape {
    /// Ollama's `{"error": "<message>"}`, which Ollama clients show.
    Ollama,
    /// The mesh API's `{"error": "<code>", "message": "<message>"}`.
    Mesh,
}

impl ErrorShape {
    /// An error of this shape.
    pub(crate) fn error(self, status: StatusCode, code: &str, message: &str) -> Response {
        match self {
            ErrorShape::Ollama => (status, axum::Json(OllamaError { error: message.into() })).into_response(),
            ErrorShape::Mesh => {
                let body = ErrorBody { error: code.into(), message: message.into(), diagnostics: Vec::new() };
                (status, axum::Json(body)).into_response()
            }
        }
    }

    /// The error when the request was sent to no endpoint (503: none could
    /// take it; 404: no such capability here), marked so.
    pub(crate) fn not_sent(self, status: StatusCode, code: &str, message: &str) -> Response {
        let mut response = self.error(status, code, message);
        response.headers_mut().insert(NOT_SENT_HEADER, HeaderValue::from_static("1"));
        response
    }
}

/// What a pass-through serves: a capability of the set in force, and where
/// peers take it.
pub(crate) struct Target<'a> {
    pub set: &'a ManifestSet,
    pub capability: &'a str,
    pub spec: &'a CapabilitySpec,
    /// The mount on every node's API: `/ollama`, `/cap/<name>`.
    pub mount: String,
    /// The endpoint's path the mount stands for: `endpoint.path` for
    /// `/ollama`, the root for `/cap/<name>`.
    pub base: &'a str,
    pub shape: ErrorShape,
}

/// Reads a request's body whole (so it can be sent to the next node), or the
/// 413 to answer.
pub(crate) async fn read_body(body: Body, shape: ErrorShape) -> Result<Bytes, Response> {
    axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|error| {
        let message = format!("the request body could not be read (at most {MAX_BODY_BYTES} bytes): {error}");
        shape.error(StatusCode::PAYLOAD_TOO_LARGE, "too_large", &message)
    })
}

/// The backend URL of a passed-through request: the endpoint's base path,
/// then the path after the mount (`/api/tags`; empty for the root) and the query.
pub(crate) fn backend_url(authority: &str, base: &str, rest: &str, query: Option<&str>) -> String {
    let path = format!("{}{}", base.trim_end_matches('/'), rest);
    let path = if path.is_empty() { "/" } else { path.as_str() };
    match query {
        Some(query) => format!("http://{authority}{path}?{query}"),
        None => format!("http://{authority}{path}"),
    }
}

/// The `Host` sent to an Ollama backend at `host:port`. Ollama bound to a
/// loopback address refuses every other Host with 403 (its DNS-rebinding
/// check): an IP literal passes as loopback, private or local, and a name is
/// sent as `localhost`, which always passes. Ollama bound to any other address
/// takes every Host. The client's own Host (this node's name) is never sent.
pub(crate) fn backend_host(host: &str, port: u16) -> String {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<IpAddr>().is_ok() { host_port(bare, port) } else { format!("localhost:{port}") }
}

/// Headers that belong to one connection, never passed on by a proxy
/// (RFC 9110 7.6.1), besides those the `Connection` header names.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// `headers` less the hop-by-hop ones.
pub(crate) fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    let mut kept = headers.clone();
    for name in HOP_BY_HOP.iter().cloned().chain(named.iter().filter_map(|name| HeaderName::try_from(name).ok())) {
        kept.remove(name);
    }
    kept
}

/// The client's headers as sent on: end to end ones, less `Host` (each hop
/// sets its own), the client's credentials (the mesh key is not the
/// backend's business), the hop marker and the length (the body is re-sent
/// whole, and the client sets it).
pub(crate) fn request_headers(incoming: &HeaderMap) -> HeaderMap {
    let mut headers = end_to_end(incoming);
    for name in [header::HOST, header::AUTHORIZATION, header::CONTENT_LENGTH] {
        headers.remove(name);
    }
    headers.remove(HOP_HEADER);
    headers
}

/// Passes one request (`rest`: the path after the mount) through to the
/// first node of the candidates that takes it.
pub(crate) async fn pass_through(
    state: &ApiState,
    target: Target<'_>,
    parts: &Parts,
    rest: &str,
    body: Bytes,
) -> Response {
    let Target { set, capability, spec, mount, base, shape } = target;
    let failover = state.router.failover();
    let here = failover.node();
    let placement: Vec<&str> = spec.placement.order().map(|node| node.value.as_str()).collect();
    let served = state.handles.placements.get(capability).map(|served| served.node);
    let mut wake = None;
    let nodes = if parts.headers.contains_key(HOP_HEADER) {
        // Handed over by a peer: served here or not at all, never passed on.
        if !placement.contains(&here) {
            let message = format!("node \"{here}\" is not in the placement of capability \"{capability}\"");
            return shape.not_sent(StatusCode::SERVICE_UNAVAILABLE, "bad_prefer_node", &message);
        }
        vec![here]
    } else {
        let wanted = placement.first().copied().unwrap_or(here);
        wake = failover.wake_first(set, wanted).await;
        // A node that answered its wake goes first, before the one serving meanwhile.
        let woken = wake.as_ref().filter(|wake| wake.answered).map(|_| wanted);
        candidates(&placement, woken.or(served.as_deref()), |node| failover.known_down(node))
    };
    let call = PassedRequest {
        parts,
        headers: request_headers(&parts.headers),
        mount: &mount,
        base,
        rest,
        body,
        ollama: spec.provider == Provider::Ollama,
        health_check: parts.headers.get(HOP_HEADER).is_some_and(|hop| hop == HEALTH_CHECK_HOP),
    };
    let mut response = match failover.run(set, spec, capability, &nodes, &call).await {
        Finish::Answered { answer, .. } => reply_response(answer, shape),
        Finish::Lost { lost: Lost::WentSilent(silent), .. } => {
            shape.error(StatusCode::GATEWAY_TIMEOUT, "went_silent", &silent.to_string())
        }
        Finish::Lost { node, lost: Lost::Broke { url, cause }, .. } => {
            let message = format!(
                "the request reached node \"{node}\" ({url}) but the exchange broke: {cause}; \
                 not tried elsewhere, as it may have run"
            );
            shape.error(StatusCode::BAD_GATEWAY, "bad_gateway", &message)
        }
        Finish::Lost { node, lost: Lost::TimedOut(after), .. } => {
            let after = humantime::format_duration(after);
            let message = format!(
                "node \"{node}\" took the request but did not answer within {after}; \
                 not tried elsewhere, as it may have run"
            );
            shape.error(StatusCode::GATEWAY_TIMEOUT, "timeout", &message)
        }
        Finish::NotSent { attempts } => {
            let message = format!("no node could serve capability \"{capability}\": {}", list(&attempts));
            shape.not_sent(StatusCode::SERVICE_UNAVAILABLE, "unreachable", &message)
        }
    };
    if let Some(value) = wake.and_then(|wake| HeaderValue::from_str(&wake.header_value()).ok()) {
        response.headers_mut().insert(WAKE_HEADER, value);
    }
    response
}

/// A client's request as failover passes it on: to this node's endpoint at
/// `base` (an Ollama one with the `Host` it accepts), to a peer at its own
/// `mount`; the answer is passed back as it comes.
struct PassedRequest<'a> {
    parts: &'a Parts,
    /// The client's headers as sent on ([`request_headers`]).
    headers: HeaderMap,
    mount: &'a str,
    base: &'a str,
    rest: &'a str,
    /// Read whole, so it can be sent to the next node.
    body: Bytes,
    /// The endpoint is Ollama's, which checks the `Host`.
    ollama: bool,
    /// A peer's health check of this node's endpoint ([`HEALTH_CHECK_HOP`]),
    /// not a client's call.
    health_check: bool,
}

impl Call for PassedRequest<'_> {
    type Answer = Reply;

    fn protocol(&self) -> PeerProtocol {
        PeerProtocol::PassThrough
    }

    fn method(&self) -> &reqwest::Method {
        &self.parts.method
    }

    fn to_endpoint(&self, http: &reqwest::Client, host: &str, port: u16) -> reqwest::RequestBuilder {
        let url = backend_url(&host_port(host, port), self.base, self.rest, self.parts.uri.query());
        let mut headers = self.headers.clone();
        // Other endpoints get the Host of their URL, as a direct client sends.
        if self.ollama {
            headers.insert(header::HOST, header_value(&backend_host(host, port)));
        }
        http.request(self.parts.method.clone(), url).headers(headers).body(self.body.clone())
    }

    fn to_peer(&self, http: &reqwest::Client, _node: &str, authority: &str) -> reqwest::RequestBuilder {
        let url = backend_url(authority, self.mount, self.rest, self.parts.uri.query());
        http.request(self.parts.method.clone(), url).headers(self.headers.clone()).body(self.body.clone())
    }

    fn timeout(&self, _to_peer: bool) -> Option<Duration> {
        // An answer streams for as long as the backend takes (a long generation).
        None
    }

    async fn answer(&self, _from_peer: bool, reply: Reply) -> Result<Reply, Lost> {
        Ok(reply)
    }

    fn served(answer: &Reply) -> bool {
        let status = match answer {
            Reply::Stream(streamed) => streamed.status(),
            Reply::Read { status, .. } => *status,
        };
        status.as_u16() < 500
    }

    fn counted(&self) -> bool {
        !self.health_check
    }
}

/// A node's answer as the client gets it: status, end-to-end headers, body
/// (streamed chunk by chunk when not read already).
fn reply_response(reply: Reply, shape: ErrorShape) -> Response {
    let (status, headers, body) = match reply {
        Reply::Stream(streamed) => {
            let (status, headers) = (streamed.status(), end_to_end(streamed.headers()));
            (status, headers, streamed_body(streamed, shape))
        }
        Reply::Read { status, headers, body, .. } => (status, end_to_end(&headers), Body::from(body)),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// A streamed answer's body as the client gets it. When it breaks off (its
/// node went silent, its connection broke), the error ends the body early:
/// hyper then closes the connection without the last chunk, so the client
/// sees a broken answer, never a whole one. An Ollama client reading NDJSON
/// gets instead the `{"error": …}` line Ollama itself ends a failed stream
/// with, which its clients raise as the error (a line followed by a cut
/// connection could be lost unsent).
fn streamed_body(streamed: Streamed, shape: ErrorShape) -> Body {
    let ndjson = shape == ErrorShape::Ollama
        && streamed
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|value| value.as_bytes() == b"application/x-ndjson");
    let url = streamed.url().clone();
    let chunks = streamed.into_stream().flat_map(move |chunk| {
        let items = match chunk {
            Ok(bytes) => vec![Ok(bytes)],
            Err(lost) => {
                tracing::warn!(%url, error = %lost, "an answer broke off while passed through");
                if ndjson {
                    vec![Ok(Bytes::from(format!("{}\n", serde_json::json!({ "error": lost.to_string() }))))]
                } else {
                    vec![Err(lost)]
                }
            }
        };
        futures_util::stream::iter(items)
    });
    Body::from_stream(chunks)
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).expect("a host, port or key is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_urls_join_the_base_path_the_rest_and_the_query() {
        assert_eq!(backend_url("127.0.0.1:11434", "/", "/api/tags", None), "http://127.0.0.1:11434/api/tags");
        assert_eq!(backend_url("h:1", "/", "", None), "http://h:1/");
        assert_eq!(backend_url("h:1", "/base/", "/v1/models", Some("a=1&b")), "http://h:1/base/v1/models?a=1&b");
        assert_eq!(backend_url("peer:8000", "/ollama", "/api/chat", None), "http://peer:8000/ollama/api/chat");
        assert_eq!(backend_url("peer:8000", "/ollama", "", None), "http://peer:8000/ollama");
        assert_eq!(
            backend_url("peer:8000", "/cap/vector_db", "/api/v2/heartbeat", None),
            "http://peer:8000/cap/vector_db/api/v2/heartbeat"
        );
    }

    #[test]
    fn the_backend_host_is_an_ip_literal_or_localhost() {
        assert_eq!(backend_host("127.0.0.1", 11434), "127.0.0.1:11434");
        assert_eq!(backend_host("100.64.0.5", 11434), "100.64.0.5:11434");
        assert_eq!(backend_host("::1", 11434), "[::1]:11434");
        assert_eq!(backend_host("[fd7a:115c:a1e0::1]", 1), "[fd7a:115c:a1e0::1]:1");
        assert_eq!(backend_host("agent-home-mini", 11434), "localhost:11434");
        assert_eq!(backend_host("mac-mini.tail1234.ts.net", 8080), "localhost:8080");
    }

    #[test]
    fn hop_by_hop_headers_credentials_and_host_are_not_passed_on() {
        let mut incoming = HeaderMap::new();
        for (name, value) in [
            ("host", "agent-work-laptop:8000"),
            ("authorization", "Bearer mesh-key"),
            ("connection", "keep-alive, x-private"),
            ("x-private", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("content-length", "12"),
            (HOP_HEADER, "1"),
            ("content-type", "application/json"),
            ("accept", "application/json"),
            ("user-agent", "ollama-python/0.6.3"),
        ] {
            incoming.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        let sent = request_headers(&incoming);
        let mut names: Vec<&str> = sent.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["accept", "content-type", "user-agent"]);
        let answered = end_to_end(&incoming);
        assert!(answered.contains_key("content-length") && answered.contains_key("authorization"));
        assert!(!answered.contains_key("x-private") && !answered.contains_key("transfer-encoding"));
    }

    #[test]
    fn errors_take_the_shape_their_clients_read() {
        let body = |response: Response| async move {
            let headers = response.headers().clone();
            let bytes = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
            (headers.contains_key(NOT_SENT_HEADER), serde_json::from_slice::<serde_json::Value>(&bytes).unwrap())
        };
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let ollama =
                body(ErrorShape::Ollama.not_sent(StatusCode::SERVICE_UNAVAILABLE, "unreachable", "down")).await;
            assert_eq!(ollama, (true, serde_json::json!({"error": "down"})));
            let mesh = body(ErrorShape::Mesh.error(StatusCode::BAD_GATEWAY, "bad_gateway", "broke")).await;
            assert_eq!(mesh, (false, serde_json::json!({"error": "bad_gateway", "message": "broke"})));
        });
    }
}
