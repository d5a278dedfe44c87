//! The one failover behind every call the mesh passes on to the node that
//! serves a capability: `POST /mesh/route` and the pass-through proxies
//! (`/ollama/…`, `/cap/<name>/…`) alike.
//!
//! - **Which node next** ([`order`], [`candidates`]): the placement's order
//!   (`prefer` then `fallback`), a preferred or placed node first, nodes known
//!   to be down left out unless all are.
//! - **Whether to move on** ([`moves_on`]): only while nothing has reached an
//!   endpoint. A refused connection, a failed name lookup or a connect timeout
//!   moves on (a router that does not keeps sending to a dead host,
//!   BerriAI/litellm#27362), and so does a peer that answers that it sent
//!   nothing. Once a request was sent — any answer, a timeout while waiting
//!   for one, a connection that broke mid-call — that is the call's result,
//!   because the payload is not known to be idempotent and running it twice
//!   could be worse than failing.
//!
//! Both decisions are pure and table-tested; [`Failover::run`] does the I/O:
//! this node's endpoint is called directly, a peer through its mesh API with
//! the mesh key and [`HOP_HEADER`], which makes it serve the call itself.
//! What a call sends and how its answer is read is the caller's [`Call`].

use std::time::Duration;

use hyper::body::Bytes;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::Deserialize;

use super::peers::Peers;
use super::wake_up::WakeUp;
use crate::api::wire::WakeWait;
use crate::api_key::ApiKey;
use crate::manifest::ManifestSet;
use crate::manifest::kinds::CapabilitySpec;
use crate::metrics::Metrics;
use crate::net::{self, root_cause};

/// Set on a call one node hands to another: the callee serves it itself and
/// never passes it on again, so two nodes that disagree about a placement (one
/// has a newer revision) cannot pass a call back and forth.
pub const HOP_HEADER: &str = "x-mesh-route-hop";

/// Set on a pass-through's own error when it sent the request to no
/// endpoint, so a peer's "I could not reach my backend" is told apart from a
/// backend's 503 (Ollama's "queue full"), and the calling node moves on.
pub const NOT_SENT_HEADER: &str = "x-mesh-not-sent";

/// The error codes of the mesh API that prove the callee sent nothing to an
/// endpoint: it has no set or another revision of it (it does not know the
/// capability, or it is not in the placement there), its own endpoint refused
/// the connection, it does not take our key, or it has no such route. The
/// call moves on from these as from a refused connection: a live daemon in
/// front of a dead endpoint is as unable to serve as a dead daemon.
pub const NOTHING_SENT: [&str; 6] =
    ["no_set", "unknown_capability", "bad_prefer_node", "unreachable", "unauthorized", "not_found"];

/// The nodes a call tries, in order, and the nodes left out because they are
/// known to be down.
#[derive(Debug, PartialEq, Eq)]
pub struct Order<'a> {
    pub attempt: Vec<&'a str>,
    pub skipped: Vec<&'a str>,
}

/// The order of a call over `placement` (prefer then fallback): `prefer_node`
/// first, then the placement. None when `prefer_node` is not in the placement.
///
/// Nodes known to be down are skipped, the preferred one too (a preference is
/// not an order to wait for a sleeping laptop). When every node is known to be
/// down, all are tried in order after all: what the prober knows may be seconds
/// old (a laptop that just woke), trying costs a refused connection or a
/// connect timeout, and not trying is a certain failure.
pub fn order<'a>(
    placement: &[&'a str],
    prefer_node: Option<&'a str>,
    known_down: impl Fn(&str) -> bool,
) -> Option<Order<'a>> {
    let mut nodes = Vec::with_capacity(placement.len());
    if let Some(preferred) = prefer_node {
        if !placement.contains(&preferred) {
            return None;
        }
        nodes.push(preferred);
    }
    nodes.extend(placement.iter().copied().filter(|node| Some(*node) != prefer_node));
    let (attempt, skipped): (Vec<&str>, Vec<&str>) = nodes.iter().partition(|node| !known_down(node));
    if attempt.is_empty() {
        return Some(Order { attempt: nodes, skipped: Vec::new() });
    }
    Some(Order { attempt, skipped })
}

/// The nodes a pass-through tries, in order: `served` (the node the reconciler
/// placed the capability on) first when it is in the placement, then the
/// placement's `prefer` and `fallback`; nodes known to be down are skipped
/// unless all are.
pub fn candidates<'a>(
    placement: &[&'a str],
    served: Option<&'a str>,
    known_down: impl Fn(&str) -> bool,
) -> Vec<&'a str> {
    let served = served.filter(|node| placement.contains(node));
    order(placement, served, known_down).map(|order| order.attempt).unwrap_or_default()
}

/// What a peer's answer speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerProtocol {
    /// Its `POST /mesh/route`: every answer but a 2xx is its router's own error.
    Route,
    /// A pass-through mount: an answer is its backend's, unless marked
    /// [`NOT_SENT_HEADER`] or the mesh API's own refusal (401, 404).
    PassThrough,
}

/// What one node made of a call, as far as failover cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempted<'a> {
    /// The connection was never made: refused, no route, name lookup, connect timeout.
    NotConnected,
    /// Sent, and no answer within the call's timeout.
    TimedOut,
    /// Sent, and the connection broke.
    Broke,
    /// This node's endpoint answered, whatever its status.
    EndpointAnswered,
    /// A peer answered: its status, whether it marked the answer
    /// [`NOT_SENT_HEADER`], and the code of its body when that is the mesh
    /// API's `{error, message}`.
    PeerAnswered { status: u16, marked_not_sent: bool, mesh_error: Option<&'a str> },
}

/// Whether a call moves on to the next node after `attempted`: only when
/// nothing reached an endpoint.
pub fn moves_on(protocol: PeerProtocol, attempted: Attempted<'_>) -> bool {
    match attempted {
        Attempted::NotConnected => true,
        Attempted::TimedOut | Attempted::Broke | Attempted::EndpointAnswered => false,
        Attempted::PeerAnswered { status, marked_not_sent, mesh_error } => {
            let refusal = mesh_error.is_some_and(|code| NOTHING_SENT.contains(&code));
            let from_the_mesh_api = match protocol {
                PeerProtocol::Route => !(200..300).contains(&status),
                // A backend's own 503 may look like the mesh API's error;
                // only the API's refusals are told apart.
                PeerProtocol::PassThrough => matches!(status, 401 | 404),
            };
            marked_not_sent || (refusal && from_the_mesh_api)
        }
    }
}

/// One node a call could not reach, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub node: String,
    pub reason: String,
}

/// `node: reason; node: reason`, for messages.
pub fn list(attempts: &[Attempt]) -> String {
    attempts.iter().map(|a| format!("{}: {}", a.node, a.reason)).collect::<Vec<_>>().join("; ")
}

/// A node's answer as failover hands it to the [`Call`].
pub enum Reply {
    /// Not read yet: for the call to read or pass on as it comes.
    Stream(reqwest::Response),
    /// A peer's error, read already to see whether it sent anything.
    Read { url: String, status: StatusCode, headers: HeaderMap, body: Bytes },
}

/// How a call that reached a node was lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lost {
    /// No answer within this long.
    TimedOut(Duration),
    /// The exchange with `url` broke: `cause`.
    Broke { url: String, cause: String },
}

/// Sorts the transport error of a call sent to `url` with `timeout`: nothing
/// was sent (the reason), or how the call was lost.
fn sort_transport_error(url: &str, error: &reqwest::Error, timeout: Option<Duration>) -> NoAnswer {
    let attempted = if error.is_connect() {
        Attempted::NotConnected
    } else if error.is_timeout() {
        Attempted::TimedOut
    } else {
        Attempted::Broke
    };
    // A transport error is sorted the same whatever protocol the call speaks.
    if moves_on(PeerProtocol::Route, attempted) {
        return NoAnswer::NothingSent(format!("{url}: {}", root_cause(error)));
    }
    NoAnswer::Lost(lost_while_reading(url, error, timeout))
}

/// How a call whose answer from `url` had begun to arrive was lost: it was
/// sent, whatever the error.
pub fn lost_while_reading(url: &str, error: &reqwest::Error, timeout: Option<Duration>) -> Lost {
    match timeout.filter(|_| error.is_timeout()) {
        Some(after) => Lost::TimedOut(after),
        None => Lost::Broke { url: url.to_owned(), cause: root_cause(error) },
    }
}

/// A call failover carries from node to node: what to send, and how to read
/// the answer of the node that took it.
pub trait Call: Sync {
    /// The call's result once a node took it.
    type Answer: Send;

    /// What a peer's answer speaks.
    fn protocol(&self) -> PeerProtocol;

    /// The request to this node's endpoint at `host`:`port`.
    fn to_endpoint(&self, http: &reqwest::Client, host: &str, port: u16) -> reqwest::RequestBuilder;

    /// The request to peer `node`'s mesh API at `authority`; failover adds
    /// [`HOP_HEADER`] and the mesh key.
    fn to_peer(&self, http: &reqwest::Client, node: &str, authority: &str) -> reqwest::RequestBuilder;

    /// How long a node gets to answer once the call reached it; None: no
    /// limit (an answer passed on as it streams).
    fn timeout(&self, to_peer: bool) -> Option<Duration>;

    /// Reads the answer of the node that took the call (this node's endpoint
    /// unless `from_peer`).
    fn answer(&self, from_peer: bool, reply: Reply) -> impl Future<Output = Result<Self::Answer, Lost>> + Send;

    /// Whether `answer` counts as served in the metrics.
    fn served(answer: &Self::Answer) -> bool;
}

/// How a call ended.
#[derive(Debug)]
pub enum Finish<T> {
    /// `node` took the call and this is its answer; `earlier` could not take it.
    Answered { node: String, answer: T, earlier: Vec<Attempt> },
    /// `node` took the call and it was lost there; not tried elsewhere.
    Lost { node: String, lost: Lost, earlier: Vec<Attempt> },
    /// No node took it.
    NotSent { attempts: Vec<Attempt> },
}

/// The failover of one node: who it is, where its peers are, the key they
/// take and one pooled client. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct Failover {
    node: String,
    api_key: ApiKey,
    peers: Peers,
    metrics: Metrics,
    /// One client for every call, so connections to endpoints and peers are
    /// kept alive and reused.
    http: reqwest::Client,
    wake_up: WakeUp,
}

/// How one node's attempt went.
enum Tried<T> {
    NotSent(String),
    Answered(T),
    Lost(Lost),
}

impl Failover {
    pub fn new(node: String, api_key: ApiKey, peers: Peers, metrics: Metrics, wake_up: WakeUp) -> Failover {
        let http = net::http_client(net::CONNECT_TIMEOUT)
            // Whether a call is sent again is failover's decision alone, and
            // a redirect is the endpoint's answer to pass back: following it
            // would turn the POST into a GET somewhere else.
            .retry(reqwest::retry::never())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a plain HTTP client builds");
        Failover { node, api_key, peers, metrics, http, wake_up }
    }

    /// The node this runs on.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Whether the prober knows `node` to be down now.
    pub fn known_down(&self, node: &str) -> bool {
        self.peers.known_down(node)
    }

    /// Wakes `node`, the one a call would rather use, when it is known down
    /// and has `wake`, and waits for it ([`WakeUp::before_fallback`]); call
    /// before choosing the order, which then finds it up or goes on without it.
    pub async fn wake_first(&self, set: &ManifestSet, node: &str) -> Option<WakeWait> {
        self.wake_up.before_fallback(set, node).await
    }

    /// Tries `call` for `capability` (`spec` in `set`) on `nodes` in turn
    /// until one takes it, counting each attempt in the metrics.
    pub async fn run<C: Call>(
        &self,
        set: &ManifestSet,
        spec: &CapabilitySpec,
        capability: &str,
        nodes: &[&str],
        call: &C,
    ) -> Finish<C::Answer> {
        let mut attempts = Vec::new();
        for &node in nodes {
            let tried = self.attempt(set, spec, node, call).await;
            let served = matches!(&tried, Tried::Answered(answer) if C::served(answer));
            self.metrics.routed(capability, node, served);
            let (node, earlier) = (node.to_owned(), attempts.clone());
            match tried {
                Tried::NotSent(reason) => attempts.push(Attempt { node, reason }),
                Tried::Answered(answer) => return Finish::Answered { node, answer, earlier },
                Tried::Lost(lost) => return Finish::Lost { node, lost, earlier },
            }
        }
        Finish::NotSent { attempts }
    }

    /// Sends `call` to `node` once.
    async fn attempt<C: Call>(
        &self,
        set: &ManifestSet,
        spec: &CapabilitySpec,
        node: &str,
        call: &C,
    ) -> Tried<C::Answer> {
        let to_peer = node != self.node;
        let request = if to_peer {
            let Some(authority) = self.peers.authority_of(set, node) else {
                return Tried::NotSent(format!("no Node manifest says where \"{node}\" is"));
            };
            let request = call.to_peer(&self.http, node, &authority).header(HOP_HEADER, "1");
            // Without a key, the peer lets this node in by its Tailscale identity.
            match self.api_key.get() {
                Some(key) => request.bearer_auth(key),
                None => request,
            }
        } else {
            let address = set.nodes.get(node).map(|node| node.spec.address.value.as_str());
            let Some(host) = spec.endpoint_host(address) else {
                return Tried::NotSent("this node has no Node manifest to take its address from".into());
            };
            call.to_endpoint(&self.http, host, spec.endpoint.port.0)
        };
        let timeout = call.timeout(to_peer);
        let request = match timeout {
            Some(timeout) => request.timeout(timeout),
            None => request,
        };
        let request = match request.build() {
            Ok(request) => request,
            Err(error) => return Tried::NotSent(format!("the request could not be made: {}", root_cause(&error))),
        };
        let url = request.url().to_string();
        let response = match self.http.execute(request).await {
            Ok(response) => response,
            Err(error) => {
                return match sort_transport_error(&url, &error, timeout) {
                    NoAnswer::NothingSent(reason) => Tried::NotSent(reason),
                    NoAnswer::Lost(lost) => Tried::Lost(lost),
                };
            }
        };
        let reply = if to_peer {
            match peer_reply(call.protocol(), url, response, timeout).await {
                Ok(reply) => reply,
                Err(NoAnswer::NothingSent(reason)) => return Tried::NotSent(reason),
                Err(NoAnswer::Lost(lost)) => return Tried::Lost(lost),
            }
        } else {
            Reply::Stream(response)
        };
        match call.answer(to_peer, reply).await {
            Ok(answer) => Tried::Answered(answer),
            Err(lost) => Tried::Lost(lost),
        }
    }
}

/// Why a call, or a peer's reply, is no answer to pass on.
enum NoAnswer {
    /// It sent nothing: why.
    NothingSent(String),
    /// Its error could not be read.
    Lost(Lost),
}

/// Sorts a peer's reply: an answer to stream, an error read whole, or its
/// word that it sent nothing ([`moves_on`]).
async fn peer_reply(
    protocol: PeerProtocol,
    url: String,
    response: reqwest::Response,
    timeout: Option<Duration>,
) -> Result<Reply, NoAnswer> {
    let status = response.status();
    let marked_not_sent = response.headers().contains_key(NOT_SENT_HEADER);
    let may_refuse = match protocol {
        PeerProtocol::Route => !status.is_success(),
        PeerProtocol::PassThrough => matches!(status, StatusCode::UNAUTHORIZED | StatusCode::NOT_FOUND),
    };
    if !marked_not_sent && !may_refuse {
        return Ok(Reply::Stream(response));
    }
    let headers = response.headers().clone();
    let body = match response.bytes().await {
        Ok(body) => body,
        // Its mark says nothing was sent, whether or not its reasons arrive.
        Err(error) if marked_not_sent => {
            return Err(NoAnswer::NothingSent(format!("{url} answered {status}, then broke: {}", root_cause(&error))));
        }
        Err(error) => {
            return Err(NoAnswer::Lost(lost_while_reading(&url, &error, timeout)));
        }
    };
    #[derive(Deserialize)]
    struct MeshError {
        error: String,
        message: Option<String>,
    }
    let error = serde_json::from_slice::<MeshError>(&body).ok();
    // The mesh API's own errors carry a message; Ollama's never do.
    let mesh_error = error.as_ref().filter(|e| e.message.is_some()).map(|e| e.error.as_str());
    let attempted = Attempted::PeerAnswered { status: status.as_u16(), marked_not_sent, mesh_error };
    if !moves_on(protocol, attempted) {
        return Ok(Reply::Read { url, status, headers, body });
    }
    let reason = match (error, marked_not_sent, protocol) {
        (Some(MeshError { error, message }), true, _) => message.unwrap_or(error),
        (None, _, _) => format!("{url} answered {status}"),
        (Some(MeshError { message, .. }), false, PeerProtocol::Route) => message.unwrap_or_default(),
        (Some(MeshError { message, .. }), false, PeerProtocol::PassThrough) => {
            format!("{url} answered {status}: {}", message.unwrap_or_default())
        }
    };
    Err(NoAnswer::NothingSent(reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_follows_placement_prefer_node_and_known_down_nodes() {
        type Case = (
            &'static [&'static str],
            Option<&'static str>,
            &'static [&'static str],
            Option<(&'static [&'static str], &'static [&'static str])>,
        );
        let table: &[Case] = &[
            // placement, prefer_node, known down, (attempt, skipped) or None
            (&["a", "b", "c"], None, &[], Some((&["a", "b", "c"], &[]))),
            (&["a", "b", "c"], Some("c"), &[], Some((&["c", "a", "b"], &[]))),
            (&["a", "b", "c"], Some("a"), &[], Some((&["a", "b", "c"], &[]))),
            (&["a", "b", "c"], Some("d"), &[], None),
            (&["a", "b", "c"], None, &["a"], Some((&["b", "c"], &["a"]))),
            (&["a", "b", "c"], Some("c"), &["c"], Some((&["a", "b"], &["c"]))),
            (&["a", "b", "c"], None, &["a", "c"], Some((&["b"], &["a", "c"]))),
            // Everything known down: all are tried after all, in order.
            (&["a", "b", "c"], None, &["a", "b", "c"], Some((&["a", "b", "c"], &[]))),
            (&["a", "b"], Some("b"), &["a", "b"], Some((&["b", "a"], &[]))),
            (&["a"], None, &[], Some((&["a"], &[]))),
        ];
        for (placement, prefer_node, down, expected) in table {
            let got = order(placement, *prefer_node, |node| down.contains(&node));
            let expected =
                expected.map(|(attempt, skipped)| Order { attempt: attempt.to_vec(), skipped: skipped.to_vec() });
            assert_eq!(got, expected, "placement {placement:?}, prefer {prefer_node:?}, down {down:?}");
        }
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
    fn a_call_moves_on_only_while_nothing_reached_an_endpoint() {
        use Attempted::*;
        use PeerProtocol::*;
        let peer = |status, marked_not_sent, mesh_error| PeerAnswered { status, marked_not_sent, mesh_error };
        let table = [
            // Transport: only a connection never made moves on.
            (Route, NotConnected, true),
            (PassThrough, NotConnected, true),
            (Route, TimedOut, false),
            (PassThrough, Broke, false),
            (Route, EndpointAnswered, false),
            // A peer's router: its refusals move on, its other errors and every answer do not.
            (Route, peer(503, false, Some("unreachable")), true),
            (Route, peer(401, false, Some("unauthorized")), true),
            (Route, peer(400, false, Some("bad_prefer_node")), true),
            (Route, peer(504, false, Some("timeout")), false),
            (Route, peer(502, false, Some("bad_gateway")), false),
            (Route, peer(500, false, None), false),
            (Route, peer(200, false, None), false),
            // A pass-through: its mark, or the mesh API's 401/404, move on;
            // a backend's answer, whatever it looks like, does not.
            (PassThrough, peer(503, true, Some("unreachable")), true),
            (PassThrough, peer(503, true, None), true),
            (PassThrough, peer(404, true, Some("unknown_capability")), true),
            (PassThrough, peer(401, false, Some("unauthorized")), true),
            (PassThrough, peer(404, false, Some("not_found")), true),
            (PassThrough, peer(404, false, None), false),
            (PassThrough, peer(503, false, Some("unreachable")), false),
            (PassThrough, peer(401, false, Some("http")), false),
            (PassThrough, peer(200, false, None), false),
        ];
        for (protocol, attempted, expected) in table {
            assert_eq!(moves_on(protocol, attempted), expected, "{protocol:?} {attempted:?}");
        }
    }

    /// A pass-through call: GET `/x` of this node's endpoint, or of a peer's
    /// `/cap/x`; the answer is its status and text.
    struct PassThroughGet;

    impl Call for PassThroughGet {
        type Answer = (u16, String);

        fn protocol(&self) -> PeerProtocol {
            PeerProtocol::PassThrough
        }

        fn to_endpoint(&self, http: &reqwest::Client, host: &str, port: u16) -> reqwest::RequestBuilder {
            http.get(format!("http://{}/x", net::host_port(host, port)))
        }

        fn to_peer(&self, http: &reqwest::Client, _node: &str, authority: &str) -> reqwest::RequestBuilder {
            http.get(format!("http://{authority}/cap/x"))
        }

        fn timeout(&self, _to_peer: bool) -> Option<Duration> {
            None
        }

        async fn answer(&self, _from_peer: bool, reply: Reply) -> Result<(u16, String), Lost> {
            Ok(match reply {
                Reply::Stream(response) => {
                    let status = response.status().as_u16();
                    (status, response.text().await.unwrap())
                }
                Reply::Read { status, body, .. } => (status.as_u16(), String::from_utf8_lossy(&body).into_owned()),
            })
        }

        fn served(answer: &(u16, String)) -> bool {
            answer.0 < 500
        }
    }

    async fn serve(app: axum::Router) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        port
    }

    #[tokio::test]
    async fn a_pass_through_moves_on_from_a_peer_that_sent_nothing_but_passes_a_backends_error_on() {
        use axum::http::HeaderValue;
        use axum::response::IntoResponse;
        let endpoint_port = serve(axum::Router::new().fallback(|| async { "from here" })).await;
        type PeerAnswer = (u16, bool, &'static str);
        type Answered = (&'static str, u16, &'static str);
        let table: &[(PeerAnswer, Answered, &[&str])] = &[
            // The peer's answer (status, marked not sent, body); who answered
            // (node, status, body); why earlier nodes did not.
            (
                (503, true, r#"{"error":"unreachable","message":"its backend refused"}"#),
                ("here", 200, "from here"),
                &["peer: its backend refused"],
            ),
            ((503, true, "not json"), ("here", 200, "from here"), &["peer: {url} answered 503 Service Unavailable"]),
            (
                (401, false, r#"{"error":"unauthorized","message":"no key"}"#),
                ("here", 200, "from here"),
                &["peer: {url} answered 401 Unauthorized: no key"],
            ),
            // A backend's own errors, even in the mesh API's shape, are answers.
            (
                (503, false, r#"{"error":"unreachable","message":"queue full"}"#),
                ("peer", 503, r#"{"error":"unreachable","message":"queue full"}"#),
                &[],
            ),
            ((404, false, r#"{"error":"model not found"}"#), ("peer", 404, r#"{"error":"model not found"}"#), &[]),
        ];
        for &((status, marked, body), (node, answer_status, answer_body), earlier) in table {
            let peer = axum::Router::new().fallback(move || async move {
                let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
                if marked {
                    response.headers_mut().insert(NOT_SENT_HEADER, HeaderValue::from_static("1"));
                }
                response
            });
            let peer_port = serve(peer).await;
            let text = format!(
                "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {{name: here}}\nspec: {{role: primary, address: 127.0.0.1}}\n\
                 ---\napiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {{name: peer}}\nspec: {{role: satellite, address: 127.0.0.1, apiPort: {peer_port}}}\n\
                 ---\napiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {{name: cap}}\n\
                 spec: {{provider: http, placement: {{prefer: [peer], fallback: [here]}}, endpoint: {{port: {endpoint_port}}}}}\n"
            );
            let validation =
                crate::manifest::validate(&[crate::manifest::SourceFile { path: "m.yaml".into(), text }], Vec::new());
            assert!(validation.is_valid(), "{:?}", validation.diagnostics);
            let set = validation.set;
            let spec = &set.capabilities["cap"].spec;
            let failover =
                Failover::new("here".into(), ApiKey::new(Some("key".into())), Peers::default(), Metrics::default(), {
                    WakeUp::new(Peers::default(), std::sync::Arc::new(|_, _| {}))
                });
            let finish = failover.run(&set, spec, "cap", &["peer", "here"], &PassThroughGet).await;
            let Finish::Answered { node: answered_by, answer, earlier: reasons } = finish else {
                panic!("peer answered {status}: {finish:?}");
            };
            let url = format!("http://127.0.0.1:{peer_port}/cap/x");
            let expected: Vec<String> = earlier.iter().map(|reason| reason.replace("{url}", &url)).collect();
            let got: Vec<String> = reasons.iter().map(|a| format!("{}: {}", a.node, a.reason)).collect();
            assert_eq!(
                (answered_by.as_str(), answer.0, answer.1.as_str(), got),
                (node, answer_status, answer_body, expected),
                "peer answered {status} {body}"
            );
        }
    }
}
