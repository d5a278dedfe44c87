//! The MeshRouter (design section 5): calls a Capability on a node that serves
//! it, with the JSON payload of `POST /mesh/route`. Which node, in what order
//! and when a call moves on to the next one is the mesh's one
//! [`failover`](super::failover); this node's endpoint gets the payload as a
//! POST, a peer gets the call at its own `POST /mesh/route`, and what came of
//! it is told as a [`Routed`] answer or a [`RouteError`].

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use reqwest::Method;

use super::failover::{Attempt, Call, Failover, Finish, Lost, Order, PeerProtocol, Reply, WentSilent, list, order};
use super::placement::Placements;
use crate::api::wire::{RouteCall, Routed};
use crate::diagnostic::did_you_mean;
use crate::manifest::ManifestSet;
use crate::manifest::kinds::CapabilitySpec;
use crate::net::host_port;

/// How long an endpoint gets to answer once a call reached it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A call handed to a peer waits this much longer than the peer waits for its
/// endpoint, so the peer's answer, which says what timed out, arrives first.
const HOP_GRACE: Duration = Duration::from_secs(2);

/// Reads the set in force when a call comes, so the router follows every new
/// revision without knowing the controller.
pub type SetInForce = Arc<dyn Fn() -> Option<Arc<ManifestSet>> + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("no manifests are in force on this node yet, so it knows no capability")]
    NoSet,
    #[error("unknown capability \"{name}\"{}", help_suffix(help))]
    UnknownCapability { name: String, help: Option<String> },
    #[error(
        "node \"{node}\" is not in the placement of capability \"{capability}\" (placement: {}){}",
        placement.join(", "),
        help_suffix(help)
    )]
    NotPlaced { capability: String, node: String, placement: Vec<String>, help: Option<String> },
    #[error(
        "no node could take the call for capability \"{capability}\": {}{}",
        list(attempts),
        skipped_suffix(skipped)
    )]
    Unreachable { capability: String, attempts: Vec<Attempt>, skipped: Vec<String> },
    /// A call handed over by another router could not reach this node's
    /// endpoint. The same code as `Unreachable`: nothing was sent.
    #[error("node \"{node}\" cannot reach its endpoint: {reason}")]
    EndpointDown { node: String, reason: String },
    #[error(
        "node \"{node}\" took the call for capability \"{capability}\" but did not answer within {}; \
         not tried elsewhere, as it may have run{}",
        humantime::format_duration(*after),
        earlier_suffix(earlier)
    )]
    Timeout { capability: String, node: String, after: Duration, earlier: Vec<Attempt> },
    #[error(
        "the call for capability \"{capability}\" reached node \"{node}\" but {reason}; \
         not tried elsewhere, as it may have run{}",
        earlier_suffix(earlier)
    )]
    Broken { capability: String, node: String, reason: String, earlier: Vec<Attempt> },
    /// The peer that took the call went silent before it answered, as the
    /// prober found: the call ends at once rather than after its timeout.
    #[error("the call for capability \"{capability}\" failed: {silent}{}", earlier_suffix(earlier))]
    WentSilent { capability: String, silent: Box<WentSilent>, earlier: Vec<Attempt> },
    /// A peer took the call and answered with an error of its own, which is
    /// passed on as it is.
    #[error("{message}{}", earlier_suffix(earlier))]
    Remote { node: String, status: u16, code: String, message: String, earlier: Vec<Attempt> },
}

impl RouteError {
    /// The HTTP status `/mesh/route` answers with.
    pub fn status(&self) -> u16 {
        match self {
            RouteError::NoSet | RouteError::Unreachable { .. } | RouteError::EndpointDown { .. } => 503,
            RouteError::UnknownCapability { .. } => 404,
            RouteError::NotPlaced { .. } => 400,
            RouteError::Timeout { .. } | RouteError::WentSilent { .. } => 504,
            RouteError::Broken { .. } => 502,
            RouteError::Remote { status, .. } => *status,
        }
    }

    /// The `error` code of `/mesh/route`'s JSON error.
    pub fn code(&self) -> &str {
        match self {
            RouteError::NoSet => "no_set",
            RouteError::UnknownCapability { .. } => "unknown_capability",
            RouteError::NotPlaced { .. } => "bad_prefer_node",
            RouteError::Unreachable { .. } | RouteError::EndpointDown { .. } => "unreachable",
            RouteError::Timeout { .. } => "timeout",
            RouteError::WentSilent { .. } => "went_silent",
            RouteError::Broken { .. } => "bad_gateway",
            RouteError::Remote { code, .. } => code,
        }
    }
}

/// Routes capability calls. Cheap to clone; clones share one connection pool.
#[derive(Clone)]
pub struct MeshRouter {
    inner: Arc<Inner>,
}

struct Inner {
    /// Who serves each capability now, tried first when the caller prefers no node.
    placements: Placements,
    set_in_force: SetInForce,
    failover: Failover,
    timeout: Duration,
}

impl MeshRouter {
    /// A router whose calls take `failover`; an endpoint gets `timeout` to
    /// answer once a call reached it.
    pub fn new(failover: Failover, placements: Placements, set_in_force: SetInForce, timeout: Duration) -> MeshRouter {
        MeshRouter { inner: Arc::new(Inner { placements, set_in_force, failover, timeout }) }
    }

    /// Calls `capability` with `payload` on the first node, in placement order
    /// (`prefer_node` first, else the node the Capability reconciler found
    /// serving it), that takes it. The node it would rather use (`prefer_node`,
    /// else the placement's first) is woken first when it sleeps and has `wake`.
    pub async fn route(
        &self,
        capability: &str,
        payload: serde_json::Value,
        prefer_node: Option<&str>,
    ) -> Result<Routed, RouteError> {
        let set = (self.inner.set_in_force)().ok_or(RouteError::NoSet)?;
        let spec = find(&set, capability)?;
        let placement: Vec<&str> = spec.placement.order().map(|node| node.value.as_str()).collect();
        let served = self.inner.placements.get(capability).map(|served| served.node);
        // A placement decided under an older revision may name a node no
        // longer in the placement: then it is no preference at all.
        let serving = served.as_deref().and_then(|node| placement.iter().copied().find(|n| *n == node));
        let choose = |first| {
            order(&placement, first, |node| self.inner.failover.known_down(node))
                .ok_or_else(|| not_placed(capability, prefer_node.unwrap_or_default(), &placement))
        };
        let chosen = choose(prefer_node.or(serving))?;
        let wake = match prefer_node.or(placement.first().copied()) {
            Some(wanted) => self.inner.failover.wake_first(&set, wanted).await,
            None => None,
        };
        // A node that answered its wake is the one to use, before the node
        // serving it meanwhile; one that did not is known down still.
        let woken = wake.as_ref().filter(|wake| wake.answered);
        let woken = placement.iter().copied().find(|node| woken.is_some_and(|wake| wake.node == *node));
        let order = if wake.is_some() { choose(woken.or(prefer_node).or(serving))? } else { chosen };
        let routed = self.run(&set, spec, capability, &payload, order).await?;
        Ok(Routed { wake, ..routed })
    }

    /// Serves a call another router handed over ([`HOP_HEADER`](super::failover::HOP_HEADER)):
    /// on this node only, never forwarded again. `prefer_node`, when given,
    /// must be this node, and this node must be in the placement.
    pub async fn serve_here(
        &self,
        capability: &str,
        payload: serde_json::Value,
        prefer_node: Option<&str>,
    ) -> Result<Routed, RouteError> {
        let set = (self.inner.set_in_force)().ok_or(RouteError::NoSet)?;
        let spec = find(&set, capability)?;
        let here = self.node();
        let placement: Vec<&str> = spec.placement.order().map(|node| node.value.as_str()).collect();
        let wanted = prefer_node.unwrap_or(here);
        if wanted != here || !placement.contains(&here) {
            return Err(not_placed(capability, wanted, &placement));
        }
        let order = Order { attempt: vec![here], skipped: Vec::new() };
        self.run(&set, spec, capability, &payload, order).await.map_err(|error| match error {
            RouteError::Unreachable { attempts, .. } => RouteError::EndpointDown {
                node: here.to_owned(),
                reason: attempts.into_iter().map(|a| a.reason).collect::<Vec<_>>().join("; "),
            },
            other => other,
        })
    }

    /// The node this router runs on.
    pub fn node(&self) -> &str {
        self.inner.failover.node()
    }

    /// The failover every call through this node takes, shared with the
    /// pass-through proxies.
    pub fn failover(&self) -> &Failover {
        &self.inner.failover
    }

    /// Tries the nodes of `order` until one takes the call.
    async fn run(
        &self,
        set: &ManifestSet,
        spec: &CapabilitySpec,
        capability: &str,
        payload: &serde_json::Value,
        order: Order<'_>,
    ) -> Result<Routed, RouteError> {
        let path = &spec.endpoint.path.value;
        let call = JsonCall { here: self.node(), capability, payload, path, timeout: self.inner.timeout };
        let capability = capability.to_owned();
        match self.inner.failover.run(set, spec, &capability, &order.attempt, &call).await {
            Finish::Answered { answer: Ok(routed), .. } => Ok(routed),
            Finish::Answered { node, answer: Err(PeerFailure::Broken(reason)), earlier } => {
                Err(RouteError::Broken { capability, node, reason, earlier })
            }
            Finish::Answered { node, answer: Err(PeerFailure::Remote { status, code, message }), earlier } => {
                Err(RouteError::Remote { node, status, code, message, earlier })
            }
            Finish::Lost { node, lost: Lost::TimedOut(after), earlier } => {
                Err(RouteError::Timeout { capability, node, after, earlier })
            }
            Finish::Lost { node, lost: lost @ Lost::Broke { .. }, earlier } => {
                Err(RouteError::Broken { capability, node, reason: lost.to_string(), earlier })
            }
            Finish::Lost { lost: Lost::WentSilent(silent), earlier, .. } => {
                Err(RouteError::WentSilent { capability, silent: Box::new(silent), earlier })
            }
            Finish::NotSent { attempts } => {
                let skipped = order.skipped.iter().map(|node| (*node).to_owned()).collect();
                Err(RouteError::Unreachable { capability, attempts, skipped })
            }
        }
    }
}

/// A `/mesh/route` call: its payload POSTed to this node's endpoint, or
/// handed to a peer's `/mesh/route`.
struct JsonCall<'a> {
    /// The node this runs on, which answers for its own endpoint.
    here: &'a str,
    capability: &'a str,
    payload: &'a serde_json::Value,
    /// The endpoint's path (the checker made sure it starts with "/").
    path: &'a str,
    timeout: Duration,
}

/// A peer that took the call and could not give a route answer.
enum PeerFailure {
    /// Its answer could not be read as one: why.
    Broken(String),
    /// Its router answered with an error of its own.
    Remote { status: u16, code: String, message: String },
}

impl Call for JsonCall<'_> {
    type Answer = Result<Routed, PeerFailure>;

    fn protocol(&self) -> PeerProtocol {
        PeerProtocol::Route
    }

    fn method(&self) -> &Method {
        // The payload is POSTed to the endpoint, and a peer's router takes it the same way.
        static POST: Method = Method::POST;
        &POST
    }

    fn to_endpoint(&self, http: &reqwest::Client, host: &str, port: u16) -> reqwest::RequestBuilder {
        http.post(format!("http://{}{}", host_port(host, port), self.path)).json(self.payload)
    }

    fn to_peer(&self, http: &reqwest::Client, node: &str, authority: &str) -> reqwest::RequestBuilder {
        let call = RouteCall { capability: self.capability, payload: self.payload, prefer_node: Some(node) };
        http.post(format!("http://{authority}/mesh/route")).json(&call)
    }

    fn timeout(&self, to_peer: bool) -> Option<Duration> {
        Some(if to_peer { self.timeout + HOP_GRACE } else { self.timeout })
    }

    async fn answer(&self, from_peer: bool, reply: Reply) -> Result<Self::Answer, Lost> {
        match reply {
            Reply::Stream(response) => {
                let (url, status) = (response.url().to_string(), response.status());
                let bytes = response.bytes().await?;
                if !from_peer {
                    return Ok(Ok(Routed {
                        node: self.here.to_owned(),
                        status: status.as_u16(),
                        body: answer_body(&bytes),
                        wake: None,
                    }));
                }
                Ok(serde_json::from_slice(&bytes).map_err(|error| {
                    PeerFailure::Broken(format!("its answer from {url} is not a route answer: {error}"))
                }))
            }
            Reply::Read { url, status, body, .. } => {
                #[derive(Deserialize)]
                struct PeerError {
                    error: String,
                    message: String,
                }
                let error = serde_json::from_slice::<PeerError>(&body).unwrap_or_else(|_| PeerError {
                    error: "http".into(),
                    message: format!("{url} answered {status}: {}", String::from_utf8_lossy(&body)),
                });
                Ok(Err(PeerFailure::Remote { status: status.as_u16(), code: error.error, message: error.message }))
            }
        }
    }

    fn served(answer: &Self::Answer) -> bool {
        matches!(answer, Ok(routed) if routed.status < 500)
    }
}

fn find<'a>(set: &'a ManifestSet, capability: &str) -> Result<&'a CapabilitySpec, RouteError> {
    set.capabilities.get(capability).map(|object| &object.spec).ok_or_else(|| RouteError::UnknownCapability {
        name: capability.to_owned(),
        help: did_you_mean(capability, set.capabilities.keys().map(String::as_str)),
    })
}

fn not_placed(capability: &str, node: &str, placement: &[&str]) -> RouteError {
    RouteError::NotPlaced {
        capability: capability.to_owned(),
        node: node.to_owned(),
        placement: placement.iter().map(|node| (*node).to_owned()).collect(),
        help: did_you_mean(node, placement.iter().copied()),
    }
}

/// The endpoint's answer as JSON, or its text as a JSON string.
fn answer_body(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

fn help_suffix(help: &Option<String>) -> String {
    help.as_ref().map(|help| format!("; {help}")).unwrap_or_default()
}

fn skipped_suffix(skipped: &[String]) -> String {
    if skipped.is_empty() { String::new() } else { format!("; skipped as known to be down: {}", skipped.join(", ")) }
}

fn earlier_suffix(earlier: &[Attempt]) -> String {
    if earlier.is_empty() { String::new() } else { format!(" (before it: {})", list(earlier)) }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Json;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;

    use super::*;
    use crate::api_key::ApiKey;
    use crate::manifest::{SourceFile, validate};
    use crate::mesh::failover::HOP_HEADER;
    use crate::mesh::peers::{PeerState, Peers};
    use crate::mesh::placement::Served;
    use crate::mesh::wake_up::WakeUp;
    use crate::metrics::Metrics;

    /// What a fake peer's `/mesh/route` answers, and what it was sent.
    #[derive(Clone, Default)]
    struct FakePeer {
        answer: Arc<Mutex<Option<(StatusCode, serde_json::Value)>>>,
        calls: Arc<Mutex<Vec<(HeaderMap, serde_json::Value)>>>,
    }

    /// A router on node `here` over a set where `here` and `peer` both live
    /// on 127.0.0.1: `here`'s endpoint server (`/json`, `/text`, `/slow`)
    /// counts its calls, and `peer`'s API is a [`FakePeer`].
    struct Fixture {
        peer: FakePeer,
        endpoint_calls: Arc<AtomicUsize>,
        endpoint_port: u16,
        peer_port: u16,
        closed_port: u16,
        peers: Peers,
        placements: Placements,
    }

    impl Fixture {
        async fn new() -> Fixture {
            let endpoint_calls = Arc::new(AtomicUsize::new(0));
            let counted = |answer: fn() -> axum::response::Response| {
                let calls = endpoint_calls.clone();
                post(move || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    answer()
                })
            };
            use axum::response::IntoResponse;
            let endpoint = axum::Router::new()
                .route("/json", counted(|| Json(serde_json::json!({"served": true})).into_response()))
                .route("/text", counted(|| "plain words".into_response()))
                .route("/fail", counted(|| (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response()))
                .route(
                    "/slow",
                    post({
                        let calls = endpoint_calls.clone();
                        move || async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_secs(5)).await;
                            "late"
                        }
                    }),
                );
            let peer = FakePeer::default();
            let fake = peer.clone();
            let peer_api = axum::Router::new().route(
                "/mesh/route",
                post(move |headers: HeaderMap, Json(body): Json<serde_json::Value>| async move {
                    fake.calls.lock().unwrap().push((headers, body));
                    let (status, answer) = fake.answer.lock().unwrap().clone().expect("an answer is set");
                    (status, Json(answer))
                }),
            );
            let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            Fixture {
                peer,
                endpoint_calls,
                endpoint_port: serve(endpoint).await,
                peer_port: serve(peer_api).await,
                closed_port,
                peers: Peers::default(),
                placements: Placements::default(),
            }
        }

        /// A router whose set holds one capability `cap` placed as given, with
        /// its endpoint at `port` and `path`.
        fn router(&self, placement: &str, port: u16, path: &str, timeout: Duration) -> MeshRouter {
            let text = format!(
                "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {{name: here}}\nspec: {{role: primary, address: 127.0.0.1}}\n\
                 ---\napiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {{name: peer}}\nspec: {{role: satellite, address: 127.0.0.1, apiPort: {}}}\n\
                 ---\napiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {{name: cap}}\n\
                 spec: {{provider: http, placement: {placement}, endpoint: {{port: {port}, path: {path}}}}}\n",
                self.peer_port
            );
            let validation = validate(&[SourceFile { path: "m.yaml".into(), text }], Vec::new());
            assert!(validation.is_valid(), "{:?}", validation.diagnostics);
            let set = Arc::new(validation.set);
            let metrics = Metrics::default();
            let wake_up = WakeUp::new(self.peers.clone(), Arc::new(|_, _| {}));
            let failover =
                Failover::new("here".into(), ApiKey::new(Some("key".into())), self.peers.clone(), metrics, wake_up);
            MeshRouter::new(failover, self.placements.clone(), Arc::new(move || Some(set.clone())), timeout)
        }

        fn answer(&self, status: StatusCode, body: serde_json::Value) {
            *self.peer.answer.lock().unwrap() = Some((status, body));
        }

        fn peer_calls(&self) -> Vec<(HeaderMap, serde_json::Value)> {
            self.peer.calls.lock().unwrap().clone()
        }

        fn endpoint_calls(&self) -> usize {
            self.endpoint_calls.load(Ordering::SeqCst)
        }
    }

    async fn serve(app: axum::Router) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        port
    }

    const LONG: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn this_nodes_endpoint_answers_json_or_text() {
        let f = Fixture::new().await;
        let routed = f.router("{prefer: [here]}", f.endpoint_port, "/json", LONG).route("cap", 1.into(), None).await;
        assert_eq!(
            routed.unwrap(),
            Routed { node: "here".into(), status: 200, body: serde_json::json!({"served": true}), wake: None }
        );
        let routed = f.router("{prefer: [here]}", f.endpoint_port, "/text", LONG).route("cap", 1.into(), None).await;
        assert_eq!(routed.unwrap().body, serde_json::json!("plain words"));
    }

    #[tokio::test]
    async fn without_a_preferred_node_the_node_serving_it_now_is_tried_first() {
        let f = Fixture::new().await;
        f.answer(StatusCode::OK, serde_json::json!({"node": "peer", "status": 200, "body": "from peer"}));
        let router = f.router("{prefer: [peer], fallback: [here]}", f.endpoint_port, "/json", LONG);
        let here = Served { node: "here".into(), host: "127.0.0.1".into(), port: f.endpoint_port };
        f.placements.set("cap", Some(here));
        let routed = router.route("cap", 1.into(), None).await.unwrap();
        assert_eq!((routed.node.as_str(), f.endpoint_calls()), ("here", 1));
        assert!(f.peer_calls().is_empty(), "the preferred peer is not what serves it now");
        let routed = router.route("cap", 1.into(), Some("peer")).await.unwrap();
        assert_eq!(routed.node, "peer", "a preferNode still wins");
        f.placements.set("cap", None);
        let routed = router.route("cap", 1.into(), None).await.unwrap();
        assert_eq!((routed.node.as_str(), f.peer_calls().len()), ("peer", 2), "no decision: placement order");
    }

    #[tokio::test]
    async fn a_refused_endpoint_fails_over_to_a_peer_told_to_serve_it_itself() {
        let f = Fixture::new().await;
        f.answer(StatusCode::OK, serde_json::json!({"node": "peer", "status": 201, "body": "made"}));
        let router = f.router("{prefer: [here], fallback: [peer]}", f.closed_port, "/json", LONG);
        let routed = router.route("cap", serde_json::json!({"q": 1}), None).await.unwrap();
        assert_eq!(routed, Routed { node: "peer".into(), status: 201, body: "made".into(), wake: None });
        let calls = f.peer_calls();
        assert_eq!(calls.len(), 1);
        let (headers, body) = &calls[0];
        assert_eq!(headers[HOP_HEADER], "1");
        assert_eq!(headers["authorization"], "Bearer key");
        assert_eq!(body, &serde_json::json!({"capability": "cap", "payload": {"q": 1}, "preferNode": "peer"}));
    }

    #[tokio::test]
    async fn a_call_that_reached_an_endpoint_is_never_tried_elsewhere() {
        let f = Fixture::new().await;
        f.answer(StatusCode::OK, serde_json::json!({"node": "peer", "status": 200, "body": null}));
        let timeout = Duration::from_millis(300);
        let slow = f.router("{prefer: [here], fallback: [peer]}", f.endpoint_port, "/slow", timeout);
        let error = slow.route("cap", 1.into(), None).await.unwrap_err();
        assert!(matches!(error, RouteError::Timeout { .. }), "{error:?}");
        assert_eq!((error.status(), error.code()), (504, "timeout"));
        assert!(
            error
                .to_string()
                .contains("node \"here\" took the call for capability \"cap\" but did not answer within 300ms"),
            "{error}"
        );
        let failing = f.router("{prefer: [here], fallback: [peer]}", f.endpoint_port, "/fail", LONG);
        let routed = failing.route("cap", 1.into(), None).await.unwrap();
        assert_eq!((routed.node.as_str(), routed.status, routed.body), ("here", 500, "boom".into()));
        assert!(f.peer_calls().is_empty(), "the peer was never asked");
        assert_eq!(f.endpoint_calls(), 2);
    }

    #[tokio::test]
    async fn a_peer_that_sent_nothing_is_failed_over_but_a_peer_that_timed_out_is_not() {
        let f = Fixture::new().await;
        let router = f.router("{prefer: [peer], fallback: [here]}", f.endpoint_port, "/json", LONG);
        f.answer(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"error": "unreachable", "message": "peer: its endpoint refused"}),
        );
        let routed = router.route("cap", 1.into(), None).await.unwrap();
        assert_eq!(routed.node, "here");
        f.answer(StatusCode::GATEWAY_TIMEOUT, serde_json::json!({"error": "timeout", "message": "peer was slow"}));
        let error = router.route("cap", 1.into(), None).await.unwrap_err();
        assert_eq!((error.status(), error.code(), error.to_string()), (504, "timeout", "peer was slow".into()));
        assert_eq!((f.peer_calls().len(), f.endpoint_calls()), (2, 1), "only the first call reached here");
    }

    #[tokio::test]
    async fn nodes_known_to_be_down_are_skipped_and_every_failure_is_listed() {
        let f = Fixture::new().await;
        f.peers.set_members(vec![PeerState::new("peer", None, "127.0.0.1", f.peer_port)]);
        f.peers.update("peer", |p| p.last_error = Some("no answer".into()));
        let router = f.router("{prefer: [peer], fallback: [here]}", f.closed_port, "/json", LONG);
        let error = router.route("cap", 1.into(), None).await.unwrap_err();
        let url = format!("http://127.0.0.1:{}/json", f.closed_port);
        assert_eq!((error.status(), error.code()), (503, "unreachable"));
        assert!(
            error.to_string().starts_with(&format!(
                "no node could take the call for capability \"cap\": here: {url}: Connection refused"
            )),
            "{error}"
        );
        assert!(error.to_string().ends_with("; skipped as known to be down: peer"), "{error}");
        assert!(f.peer_calls().is_empty());
    }

    #[tokio::test]
    async fn a_handed_over_call_is_served_here_or_not_at_all() {
        let f = Fixture::new().await;
        f.answer(StatusCode::OK, serde_json::json!({"node": "peer", "status": 200, "body": null}));
        let router = f.router("{prefer: [here], fallback: [peer]}", f.closed_port, "/json", LONG);
        let error = router.serve_here("cap", 1.into(), Some("here")).await.unwrap_err();
        let url = format!("http://127.0.0.1:{}/json", f.closed_port);
        assert!(
            error
                .to_string()
                .starts_with(&format!("node \"here\" cannot reach its endpoint: {url}: Connection refused")),
            "{error}"
        );
        assert_eq!((error.status(), error.code()), (503, "unreachable"), "the caller moves on from this");
        assert!(f.peer_calls().is_empty(), "never forwarded");
    }

    #[tokio::test]
    async fn unknown_capabilities_and_nodes_out_of_the_placement_are_named() {
        let f = Fixture::new().await;
        let router = f.router("{prefer: [here]}", f.endpoint_port, "/json", LONG);
        let error = router.route("cpa", 1.into(), None).await.unwrap_err();
        assert_eq!(error.to_string(), "unknown capability \"cpa\"; did you mean \"cap\"?");
        assert_eq!((error.status(), error.code()), (404, "unknown_capability"));
        let error = router.route("cap", 1.into(), Some("peer")).await.unwrap_err();
        assert_eq!(error.to_string(), "node \"peer\" is not in the placement of capability \"cap\" (placement: here)");
        assert_eq!((error.status(), error.code()), (400, "bad_prefer_node"));
        let error = router.serve_here("cap", 1.into(), Some("elsewhere")).await.unwrap_err();
        assert_eq!(error.code(), "bad_prefer_node");
        let only_peer = f.router("{prefer: [peer]}", f.endpoint_port, "/json", LONG);
        let error = only_peer.serve_here("cap", 1.into(), None).await.unwrap_err();
        assert_eq!(error.to_string(), "node \"here\" is not in the placement of capability \"cap\" (placement: peer)");
        assert_eq!(f.endpoint_calls(), 0);
    }
}
