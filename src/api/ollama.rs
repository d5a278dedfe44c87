//! The Ollama-compatible proxy at `/ollama/` (design section 5): any Ollama
//! request (`/ollama/api/generate`, `/ollama/api/tags`, `/ollama/v1/...`) goes
//! to the node that serves the Ollama capability now, so a client pointed at
//! any node (`OLLAMA_HOST=http://<node>:8000/ollama`) reaches the LLM wherever
//! it runs. It sits behind the API's auth like every other route; the Python
//! `ollama` client sends `OLLAMA_API_KEY` as the bearer key.
//!
//! - **Which capability**: the one with `provider: ollama`; of several, the one
//!   named `llm_inference`, else the first by name ([`ollama_capability`]).
//! - **Which node**: the node the Capability reconciler placed it on
//!   ([`Placements`](crate::mesh::placement::Placements)) first, then `prefer`
//!   and `fallback` in the MeshRouter's [`order`], nodes known to be down
//!   skipped ([`candidates`]).
//! - **How**: this node calls its own endpoint with the `Host` Ollama's
//!   DNS-rebinding check accepts ([`backend_host`]); a peer gets the request at
//!   its own `/ollama/...` with the mesh key and the router's [`HOP_HEADER`],
//!   which makes it serve the request itself or answer that it sent nothing.
//! - **Failover** follows the router's rule: the next node is tried only while
//!   nothing was sent (a connection that could not be made, or a peer that
//!   says it sent nothing). Once a request went out, its answer is the answer.
//! - **Streaming**: the answer's status, headers (less hop-by-hop ones) and
//!   body are passed on as they come, chunk by chunk, never buffered. The
//!   request body is read whole first (up to the API's body limit), so it can
//!   be sent again to the next node: generate, chat, pull and create bodies are
//!   small; a model blob larger than the limit is refused with 413.
//!
//! Errors of the proxy itself are Ollama's shape, `{"error": "..."}`, since
//! Ollama clients show that field: 503 when no node could be reached, 502 when
//! a node took the request and the exchange broke before an answer.

use std::net::IpAddr;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;

use super::{ApiState, MAX_BODY_BYTES};
use crate::client::root_cause;
use crate::manifest::ManifestSet;
use crate::manifest::kinds::{CapabilitySpec, Provider};
use crate::mesh::router::{HOP_HEADER, NOTHING_SENT, endpoint_host, host_port, order};

/// Where the proxy is mounted on the mesh API.
pub const PREFIX: &str = "/ollama";

/// The capability a mesh with several Ollama capabilities proxies to.
pub const LLM_INFERENCE: &str = "llm_inference";

/// Set on the proxy's own error when it sent the request to no endpoint, so a
/// peer's "I could not reach my backend" is told apart from a backend's 503
/// (Ollama's "queue full"), and the calling node moves on.
pub const NOT_SENT_HEADER: &str = "x-mesh-not-sent";

/// The Capability the proxy serves: the one with `provider: ollama`; of
/// several, the one named [`LLM_INFERENCE`], else the first by name.
pub fn ollama_capability(set: &ManifestSet) -> Option<(&str, &CapabilitySpec)> {
    let mut ollama = set.capabilities.iter().filter(|(_, object)| object.spec.provider == Provider::Ollama);
    let first = ollama.clone().next()?;
    let chosen = ollama.find(|(name, _)| name.as_str() == LLM_INFERENCE).unwrap_or(first);
    Some((chosen.0.as_str(), &chosen.1.spec))
}

/// The nodes to try, in order: `served` (the node the reconciler placed the
/// capability on) first when it is in the placement, then the placement's
/// `prefer` and `fallback`; nodes known to be down are skipped unless all are.
pub fn candidates<'a>(
    placement: &[&'a str],
    served: Option<&'a str>,
    known_down: impl Fn(&str) -> bool,
) -> Vec<&'a str> {
    let served = served.filter(|node| placement.contains(node));
    order(placement, served, known_down).map(|order| order.attempt).unwrap_or_default()
}

/// The backend URL of a proxied request: the endpoint's base path, then the
/// path after [`PREFIX`] (`/api/tags`; empty for Ollama's root) and the query.
pub fn backend_url(authority: &str, base: &str, rest: &str, query: Option<&str>) -> String {
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
pub fn backend_host(host: &str, port: u16) -> String {
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
pub fn end_to_end(headers: &HeaderMap) -> HeaderMap {
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
pub fn request_headers(incoming: &HeaderMap) -> HeaderMap {
    let mut headers = end_to_end(incoming);
    for name in [header::HOST, header::AUTHORIZATION, header::CONTENT_LENGTH] {
        headers.remove(name);
    }
    headers.remove(HOP_HEADER);
    headers
}

/// Proxies one request (any method, any path under [`PREFIX`]).
pub async fn proxy(State(state): State<ApiState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let rest = parts.uri.path().strip_prefix(PREFIX).unwrap_or_default().to_owned();
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(error) => {
            let message = format!("the request body could not be read (at most {MAX_BODY_BYTES} bytes): {error}");
            return ollama_error(StatusCode::PAYLOAD_TOO_LARGE, &message);
        }
    };
    let router = &state.router;
    let here = router.node();
    let Some(set) = state.shared.applied_set() else {
        return not_sent(&format!("node \"{here}\" has no manifests in force yet, so it knows no Ollama capability"));
    };
    let Some((capability, spec)) = ollama_capability(&set) else {
        return not_sent("no Capability with provider: ollama is declared");
    };
    let placement: Vec<&str> = spec.placement.order().map(|node| node.value.as_str()).collect();
    let hop = parts.headers.contains_key(HOP_HEADER);
    let served = state.shared.placements.get(capability).map(|served| served.node);
    let nodes = if hop {
        // Handed over by a peer: served here or not at all, never passed on.
        if !placement.contains(&here) {
            return not_sent(&format!("node \"{here}\" is not in the placement of capability \"{capability}\""));
        }
        vec![here]
    } else {
        candidates(&placement, served.as_deref(), |node| router.known_down(node))
    };
    let headers = request_headers(&parts.headers);
    let query = parts.uri.query();
    let mut failures = Vec::new();
    for node in nodes {
        let (url, outgoing) = if node == here {
            let Some(host) = endpoint_host(&set, spec, here) else {
                failures.push(format!("{node}: this node has no Node manifest to take its address from"));
                continue;
            };
            let port = spec.endpoint.port.0;
            let url = backend_url(&host_port(host, port), &spec.endpoint.path.value, &rest, query);
            let mut outgoing = headers.clone();
            outgoing.insert(header::HOST, header_value(&backend_host(host, port)));
            (url, outgoing)
        } else {
            let Some(authority) = router.peer_authority(&set, node) else {
                failures.push(format!("{node}: no Node manifest says where it is"));
                continue;
            };
            let url = backend_url(&authority, PREFIX, &rest, query);
            let mut outgoing = headers.clone();
            outgoing.insert(HOP_HEADER, HeaderValue::from_static("1"));
            // Without a key, the peer lets this node in by its Tailscale identity.
            if let Some(key) = router.api_key().get() {
                outgoing.insert(header::AUTHORIZATION, header_value(&format!("Bearer {key}")));
            }
            (url, outgoing)
        };
        let sent = router.http().request(parts.method.clone(), &url).headers(outgoing).body(body.clone()).send().await;
        let response = match sent {
            Ok(response) => response,
            Err(error) if error.is_connect() => {
                state.shared.metrics.routed(capability, node, false);
                failures.push(format!("{node}: {url}: {}", root_cause(&error)));
                continue;
            }
            Err(error) => {
                state.shared.metrics.routed(capability, node, false);
                let message = format!(
                    "the request reached node \"{node}\" ({url}) but the exchange broke: {}; \
                     not tried elsewhere, as it may have run",
                    root_cause(&error)
                );
                return ollama_error(StatusCode::BAD_GATEWAY, &message);
            }
        };
        let answer = if node == here { Answer::Stream(response) } else { peer_answer(response).await };
        match answer {
            Answer::NotSent(reason) => {
                state.shared.metrics.routed(capability, node, false);
                failures.push(format!("{node}: {reason}"));
            }
            answer => {
                state.shared.metrics.routed(capability, node, answer.status().as_u16() < 500);
                return answer.into_response();
            }
        }
    }
    not_sent(&format!("no node could serve capability \"{capability}\": {}", failures.join("; ")))
}

/// A node's answer to a proxied request.
enum Answer {
    /// Passed on as it comes.
    Stream(reqwest::Response),
    /// Read already (a peer's error, to see whether it sent anything).
    Read { status: StatusCode, headers: HeaderMap, body: axum::body::Bytes },
    /// The node sent the request to no endpoint.
    NotSent(String),
}

impl Answer {
    fn status(&self) -> StatusCode {
        match self {
            Answer::Stream(response) => response.status(),
            Answer::Read { status, .. } => *status,
            Answer::NotSent(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let (status, headers, body) = match self {
            Answer::Stream(response) => {
                let (status, headers) = (response.status(), end_to_end(response.headers()));
                let url = response.url().clone();
                let chunks = response.bytes_stream().inspect_err(move |error| {
                    tracing::warn!(%url, error = %root_cause(error), "an Ollama answer broke off while proxied");
                });
                (status, headers, Body::from_stream(chunks))
            }
            Answer::Read { status, headers, body } => (status, end_to_end(&headers), Body::from(body)),
            Answer::NotSent(reason) => return not_sent(&reason),
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        response
    }
}

/// Sorts a peer's answer: its proxy's own "nothing sent", the mesh API's
/// refusal (our key, or an older peer without the proxy: the router's
/// [`NOTHING_SENT`] codes), or its backend's answer, passed on.
async fn peer_answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let refused = matches!(status, StatusCode::UNAUTHORIZED | StatusCode::NOT_FOUND);
    if !response.headers().contains_key(NOT_SENT_HEADER) && !refused {
        return Answer::Stream(response);
    }
    let headers = response.headers().clone();
    let url = response.url().to_string();
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(error) => return Answer::NotSent(format!("{url} answered {status}, then broke: {}", root_cause(&error))),
    };
    #[derive(serde::Deserialize)]
    struct MeshError {
        error: String,
        message: Option<String>,
    }
    let error = serde_json::from_slice::<MeshError>(&body).ok();
    if headers.contains_key(NOT_SENT_HEADER) {
        return Answer::NotSent(error.map_or_else(|| format!("{url} answered {status}"), |e| e.error));
    }
    match error {
        // The mesh API's own errors carry a message; Ollama's never do.
        Some(MeshError { error, message: Some(message) }) if NOTHING_SENT.contains(&error.as_str()) => {
            Answer::NotSent(format!("{url} answered {status}: {message}"))
        }
        _ => Answer::Read { status, headers, body },
    }
}

/// The proxy's answer when it sent the request to no endpoint.
fn not_sent(message: &str) -> Response {
    let mut response = ollama_error(StatusCode::SERVICE_UNAVAILABLE, message);
    response.headers_mut().insert(NOT_SENT_HEADER, HeaderValue::from_static("1"));
    response
}

/// An error in Ollama's shape, `{"error": "..."}`.
fn ollama_error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).expect("a host, port or key is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{SourceFile, validate};

    fn set(capabilities: &[(&str, &str)]) -> ManifestSet {
        let mut text = "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: a}\nspec: {role: primary, address: 127.0.0.1}\n".to_owned();
        for (name, provider) in capabilities {
            text.push_str(&format!(
                "---\napiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {{name: {name}}}\n\
                 spec: {{provider: {provider}, placement: {{prefer: [a]}}, endpoint: {{port: 11434}}}}\n"
            ));
        }
        let validation = validate(&[SourceFile { path: "m.yaml".into(), text }], Vec::new());
        assert!(validation.is_valid(), "{:?}", validation.diagnostics);
        validation.set
    }

    #[test]
    fn the_ollama_capability_is_llm_inference_else_the_first_ollama_one_by_name() {
        let name = |caps: &[(&str, &str)]| ollama_capability(&set(caps)).map(|(name, _)| name.to_owned());
        assert_eq!(
            name(&[("a_http", "http"), ("llm_inference", "ollama"), ("b_llm", "ollama")]).unwrap(),
            "llm_inference"
        );
        assert_eq!(name(&[("a_http", "http"), ("z_llm", "ollama"), ("b_llm", "ollama")]).unwrap(), "b_llm");
        assert_eq!(name(&[("llm_inference", "http")]), None);
        assert_eq!(name(&[]), None);
    }

    #[test]
    fn candidates_put_the_placed_node_first_then_the_placement_less_known_down_nodes() {
        let none = |_: &str| false;
        assert_eq!(candidates(&["mini", "laptop"], None, none), ["mini", "laptop"]);
        assert_eq!(candidates(&["mini", "laptop"], Some("laptop"), none), ["laptop", "mini"]);
        // A placed node the placement no longer names is ignored.
        assert_eq!(candidates(&["mini", "laptop"], Some("old"), none), ["mini", "laptop"]);
        assert_eq!(candidates(&["mini", "laptop"], Some("mini"), |n| n == "mini"), ["laptop"]);
        // All known down: all are tried after all.
        assert_eq!(candidates(&["mini", "laptop"], None, |_| true), ["mini", "laptop"]);
    }

    #[test]
    fn backend_urls_join_the_base_path_the_rest_and_the_query() {
        assert_eq!(backend_url("127.0.0.1:11434", "/", "/api/tags", None), "http://127.0.0.1:11434/api/tags");
        assert_eq!(backend_url("h:1", "/", "", None), "http://h:1/");
        assert_eq!(backend_url("h:1", "/base/", "/v1/models", Some("a=1&b")), "http://h:1/base/v1/models?a=1&b");
        assert_eq!(backend_url("peer:8000", PREFIX, "/api/chat", None), "http://peer:8000/ollama/api/chat");
        assert_eq!(backend_url("peer:8000", PREFIX, "", None), "http://peer:8000/ollama");
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
}
