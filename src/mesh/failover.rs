//! The one failover behind every call the mesh passes on to the node that
//! serves a capability: `POST /mesh/route` and the pass-through proxies
//! (`/ollama/…`, `/cap/<name>/…`) alike.
//!
//! - **Which node next** ([`order`], [`candidates`]): the placement's order
//!   (`prefer` then `fallback`), a preferred or placed node first, nodes known
//!   to be down left out unless all are.
//! - **Whether to move on** ([`moves_on`]): while nothing has reached an
//!   endpoint, always. A refused connection, a failed name lookup or a connect
//!   timeout moves on (a router that does not keeps sending to a dead host,
//!   BerriAI/litellm#27362), and so does a peer that answers that it sent
//!   nothing. Once a request was sent and lost there — a timeout while waiting
//!   for an answer, a connection that broke, a peer that went silent — only an
//!   idempotent read ([`Effect::Read`]: GET, HEAD, OPTIONS) moves on; anything
//!   else ends there, because running it twice could be worse than failing.
//!   An answer, whatever its status, is the call's result.
//! - **Failing fast** ([`Silence`]): while a call waits on a peer (for its
//!   answer, and for a streamed answer's body too) it is raced against the
//!   prober's verdict that the peer went silent ([`Peers::changes`] fires on
//!   it, within 1.5 s of the silence), so a hung or unplugged peer costs a
//!   call seconds, not its whole timeout (or forever, streaming): a read moves
//!   on, anything else ends with [`WentSilent`], and a body already streaming
//!   to the client is cut.
//!
//! The decisions are pure and table-tested; [`Failover::run`] does the I/O:
//! this node's endpoint is called directly, a peer through its mesh API with
//! the mesh key and [`HOP_HEADER`], which makes it serve the call itself.
//! What a call sends and how its answer is read is the caller's [`Call`].

use std::pin::Pin;
use std::time::Duration;

use futures_util::{Stream, StreamExt, TryStreamExt};
use hyper::body::Bytes;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use tokio::time::Instant;

use super::peers::{PeerState, Peers};
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

/// The value of [`HOP_HEADER`] on a node's health check of a peer's endpoint
/// through the peer's pass-through: served there like any call handed over
/// (a peer that reads only the header's presence does just that), but not
/// counted in `agentmesh_route_calls_total`, which counts the calls clients
/// made.
pub const HEALTH_CHECK_HOP: &str = "health-check";

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

/// Whether running a call twice is harmless, which decides whether a call
/// lost on a node that had it moves on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// GET, HEAD, OPTIONS: an idempotent read, safe to send again.
    Read,
    /// Anything else (POST, PUT, DELETE, PATCH; every `/mesh/route` call):
    /// it may change something, so it runs at most once.
    Write,
}

impl Effect {
    /// The effect of a request with `method`.
    pub fn of(method: &Method) -> Effect {
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) { Effect::Read } else { Effect::Write }
    }
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
    /// Sent to a peer, and the prober found the peer silent before it answered.
    WentSilent,
    /// This node's endpoint answered, whatever its status.
    EndpointAnswered,
    /// A peer answered: its status, whether it marked the answer
    /// [`NOT_SENT_HEADER`], and the code of its body when that is the mesh
    /// API's `{error, message}`.
    PeerAnswered { status: u16, marked_not_sent: bool, mesh_error: Option<&'a str> },
}

/// Whether a call with `effect` moves on to the next node after
/// `attempted`: when nothing reached an endpoint, or when an idempotent read
/// was lost without an answer.
pub fn moves_on(protocol: PeerProtocol, effect: Effect, attempted: Attempted<'_>) -> bool {
    match attempted {
        Attempted::NotConnected => true,
        Attempted::TimedOut | Attempted::Broke | Attempted::WentSilent => effect == Effect::Read,
        Attempted::EndpointAnswered => false,
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
    Stream(Streamed),
    /// A peer's error, read already to see whether it sent anything.
    Read { url: String, status: StatusCode, headers: HeaderMap, body: Bytes },
}

/// How a call that reached a node was lost.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Lost {
    /// No answer within this long.
    #[error("no answer within {}", humantime::format_duration(*.0))]
    TimedOut(Duration),
    /// The exchange with `url` broke: `cause`.
    #[error("the exchange with {url} broke: {cause}")]
    Broke { url: String, cause: String },
    /// The prober found the peer silent while the call waited on it.
    #[error("{0}")]
    WentSilent(WentSilent),
}

impl Lost {
    /// What the loss means to [`moves_on`].
    fn attempted(&self) -> Attempted<'static> {
        match self {
            Lost::TimedOut(_) => Attempted::TimedOut,
            Lost::Broke { .. } => Attempted::Broke,
            Lost::WentSilent(_) => Attempted::WentSilent,
        }
    }
}

/// A peer the prober found silent (offline in [`Peers`]) while a call waited
/// on it, and what became of the call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WentSilent {
    pub node: String,
    /// The call's method.
    pub method: Method,
    /// How long the call had waited on the peer.
    pub waited: Duration,
    /// Why the prober's last probe of the peer failed.
    pub probe: String,
    /// The node next in the call's order, if any.
    pub next: Option<String>,
    /// Whether the answer had begun to stream to the client (then it is cut).
    pub streaming: bool,
}

impl WentSilent {
    /// What happened, without the node's name (for a list of attempts by node).
    pub fn reason(&self) -> String {
        let method = &self.method;
        let waited = self.waited.as_secs_f64();
        let (while_, waited) = if self.streaming {
            (format!("its answer to the {method} streamed"), format!("in flight for {waited:.1} s"))
        } else {
            (format!("the {method} was in flight"), format!("no answer after {waited:.1} s"))
        };
        let then = match (self.streaming, Effect::of(method), &self.next) {
            (true, _, _) => "; the answer is cut short".to_owned(),
            (false, Effect::Read, Some(next)) => {
                format!("; sent again to \"{next}\", as a {method} is safe to send twice")
            }
            (false, Effect::Read, None) => "; no other node to send it to".to_owned(),
            (false, Effect::Write, Some(next)) => {
                format!("; not retried on \"{next}\": a {method} may not be safe to run twice")
            }
            (false, Effect::Write, None) => format!("; not retried: a {method} may not be safe to run twice"),
        };
        format!("went silent while {while_} ({waited}; its last health probe: {}){then}", self.probe)
    }
}

impl std::fmt::Display for WentSilent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "node \"{}\" {}", self.node, self.reason())
    }
}

/// Watches the peer a call waits on for the prober's verdict that it went
/// silent: woken by [`Peers::changes`], never polling.
#[derive(Clone)]
struct Silence {
    peers: Peers,
    node: String,
    method: Method,
    next: Option<String>,
    sent: Instant,
    /// Whether the peer was up when the call began. A peer tried although
    /// known down (as every node of the order was) has not gone silent on
    /// this call until it was seen answering.
    seen_up: bool,
}

impl Silence {
    fn new(peers: &Peers, node: &str, method: Method, next: Option<&str>) -> Silence {
        let seen_up = !peers.known_down(node);
        let (node, next) = (node.to_owned(), next.map(str::to_owned));
        Silence { peers: peers.clone(), node, method, next, sent: Instant::now(), seen_up }
    }

    /// Resolves when the prober finds the peer silent; never otherwise.
    async fn wait(self, streaming: bool) -> WentSilent {
        if !self.seen_up {
            self.peers.until(&self.node, |peer| !peer.known_down()).await;
        }
        self.peers.until(&self.node, PeerState::known_down).await;
        let probe = self.peers.get(&self.node).and_then(|peer| peer.last_error).unwrap_or_default();
        let Silence { node, method, next, sent, .. } = self;
        WentSilent { node, method, waited: sent.elapsed(), probe, next, streaming }
    }
}

/// An answer as it arrives from a node: its head, and its body still to
/// read, raced against the peer going silent when it comes from one.
pub struct Streamed {
    response: reqwest::Response,
    timeout: Option<Duration>,
    silence: Option<Silence>,
}

impl Streamed {
    pub fn status(&self) -> StatusCode {
        self.response.status()
    }

    pub fn headers(&self) -> &HeaderMap {
        self.response.headers()
    }

    pub fn url(&self) -> &Url {
        self.response.url()
    }

    /// The whole body, or how the call was lost while reading it. Read
    /// within [`Call::answer`], while failover still races the call against
    /// the peer going silent.
    pub async fn bytes(self) -> Result<Bytes, Lost> {
        let url = self.response.url().to_string();
        self.response.bytes().await.map_err(|error| lost_while_reading(&url, &error, self.timeout))
    }

    /// The body chunk by chunk as it comes; when it breaks or the peer goes
    /// silent, one error saying so, and the end.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, Lost>> + Send + 'static {
        let Streamed { response, timeout, silence } = self;
        let url = response.url().to_string();
        let body: Pin<Box<dyn Stream<Item = Result<Bytes, Lost>> + Send>> =
            Box::pin(response.bytes_stream().map_err(move |error| lost_while_reading(&url, &error, timeout)));
        let silent: Pin<Box<dyn Future<Output = WentSilent> + Send>> = match silence {
            Some(silence) => Box::pin(silence.wait(true)),
            None => Box::pin(std::future::pending()),
        };
        futures_util::stream::unfold(Some((body, silent)), |state| async move {
            let (mut body, mut silent) = state?;
            tokio::select! {
                chunk = body.next() => chunk.map(|chunk| {
                    let more = chunk.is_ok();
                    (chunk, more.then_some((body, silent)))
                }),
                went = &mut silent => Some((Err(Lost::WentSilent(went)), None)),
            }
        })
    }
}

/// Sorts the transport error of a call sent to `url` with `timeout`: nothing
/// was sent (the reason), or how the call was lost.
fn sort_transport_error(url: &str, error: &reqwest::Error, timeout: Option<Duration>) -> NoAnswer {
    if error.is_connect() {
        return NoAnswer::NothingSent(format!("{url}: {}", root_cause(error)));
    }
    NoAnswer::Lost(lost_while_reading(url, error, timeout))
}

/// How a call whose answer from `url` had begun to arrive was lost: it was
/// sent, whatever the error.
fn lost_while_reading(url: &str, error: &reqwest::Error, timeout: Option<Duration>) -> Lost {
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

    /// The method it is sent with, which says whether it may be sent twice ([`Effect`]).
    fn method(&self) -> &Method;

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

    /// Whether its attempts count in the metrics: a client's call does, a
    /// node's health check of its endpoint ([`HEALTH_CHECK_HOP`]) does not.
    fn counted(&self) -> bool {
        true
    }
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
    /// until one takes it, counting each attempt in the metrics unless the
    /// call is not [`Call::counted`].
    pub async fn run<C: Call>(
        &self,
        set: &ManifestSet,
        spec: &CapabilitySpec,
        capability: &str,
        nodes: &[&str],
        call: &C,
    ) -> Finish<C::Answer> {
        let mut attempts = Vec::new();
        let effect = Effect::of(call.method());
        for (index, &node) in nodes.iter().enumerate() {
            let next = nodes.get(index + 1).copied();
            let tried = self.attempt(set, spec, node, next, call).await;
            if call.counted() {
                let served = matches!(&tried, Tried::Answered(answer) if C::served(answer));
                self.metrics.routed(capability, node, served);
            }
            let (node, earlier) = (node.to_owned(), attempts.clone());
            match tried {
                Tried::NotSent(reason) => attempts.push(Attempt { node, reason }),
                Tried::Answered(answer) => return Finish::Answered { node, answer, earlier },
                Tried::Lost(lost) if moves_on(call.protocol(), effect, lost.attempted()) => {
                    let reason = match lost {
                        Lost::WentSilent(silent) => silent.reason(),
                        other => format!("{other}; sent again, as a {} is safe to send twice", call.method()),
                    };
                    attempts.push(Attempt { node, reason });
                }
                Tried::Lost(lost) => return Finish::Lost { node, lost, earlier },
            }
        }
        Finish::NotSent { attempts }
    }

    /// Sends `call` to `node` once (`next` would be tried after it); a call
    /// to a peer is raced against the peer going silent.
    async fn attempt<C: Call>(
        &self,
        set: &ManifestSet,
        spec: &CapabilitySpec,
        node: &str,
        next: Option<&str>,
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
        let silence = to_peer.then(|| Silence::new(&self.peers, node, call.method().clone(), next));
        let exchange = self.exchange(call, to_peer, request, timeout, silence.clone());
        match silence {
            None => exchange.await,
            Some(silence) => tokio::select! {
                tried = exchange => tried,
                silent = silence.wait(false) => Tried::Lost(Lost::WentSilent(silent)),
            },
        }
    }

    /// Sends `request` and reads the answer as `call` does; a body read
    /// later is raced against `silence`.
    async fn exchange<C: Call>(
        &self,
        call: &C,
        to_peer: bool,
        request: reqwest::Request,
        timeout: Option<Duration>,
        silence: Option<Silence>,
    ) -> Tried<C::Answer> {
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
        let streamed = Streamed { response, timeout, silence };
        let reply = if to_peer {
            match peer_reply(call.protocol(), url, streamed).await {
                Ok(reply) => reply,
                Err(NoAnswer::NothingSent(reason)) => return Tried::NotSent(reason),
                Err(NoAnswer::Lost(lost)) => return Tried::Lost(lost),
            }
        } else {
            Reply::Stream(streamed)
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
async fn peer_reply(protocol: PeerProtocol, url: String, response: Streamed) -> Result<Reply, NoAnswer> {
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
        Err(lost) if marked_not_sent => {
            return Err(NoAnswer::NothingSent(format!("{url} answered {status}, then: {lost}")));
        }
        Err(lost) => return Err(NoAnswer::Lost(lost)),
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
    // A peer's answer is sorted the same whatever the call's effect.
    if !moves_on(protocol, Effect::Write, attempted) {
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
    fn a_call_moves_on_while_nothing_reached_an_endpoint_or_when_a_lost_read_can_be_sent_again() {
        use Attempted::*;
        use Effect::*;
        use PeerProtocol::*;
        let peer = |status, marked_not_sent, mesh_error| PeerAnswered { status, marked_not_sent, mesh_error };
        let table = [
            // Transport: a connection never made moves on, whatever the call.
            (Route, Write, NotConnected, true),
            (PassThrough, Write, NotConnected, true),
            (PassThrough, Read, NotConnected, true),
            // Sent and lost without an answer: only a read moves on.
            (Route, Write, TimedOut, false),
            (PassThrough, Write, Broke, false),
            (Route, Write, WentSilent, false),
            (PassThrough, Write, WentSilent, false),
            (PassThrough, Read, TimedOut, true),
            (PassThrough, Read, Broke, true),
            (PassThrough, Read, WentSilent, true),
            // An answer is the answer, read or not.
            (Route, Write, EndpointAnswered, false),
            (PassThrough, Read, EndpointAnswered, false),
            // A peer's router: its refusals move on, its other errors and every answer do not.
            (Route, Write, peer(503, false, Some("unreachable")), true),
            (Route, Write, peer(401, false, Some("unauthorized")), true),
            (Route, Write, peer(400, false, Some("bad_prefer_node")), true),
            (Route, Write, peer(504, false, Some("timeout")), false),
            (Route, Write, peer(504, false, Some("went_silent")), false),
            (Route, Write, peer(502, false, Some("bad_gateway")), false),
            (Route, Write, peer(500, false, None), false),
            (Route, Write, peer(200, false, None), false),
            // A pass-through: its mark, or the mesh API's 401/404, move on;
            // a backend's answer, whatever it looks like, does not, even to a read.
            (PassThrough, Write, peer(503, true, Some("unreachable")), true),
            (PassThrough, Write, peer(503, true, None), true),
            (PassThrough, Write, peer(404, true, Some("unknown_capability")), true),
            (PassThrough, Write, peer(401, false, Some("unauthorized")), true),
            (PassThrough, Write, peer(404, false, Some("not_found")), true),
            (PassThrough, Write, peer(404, false, None), false),
            (PassThrough, Write, peer(503, false, Some("unreachable")), false),
            (PassThrough, Write, peer(401, false, Some("http")), false),
            (PassThrough, Write, peer(200, false, None), false),
            (PassThrough, Read, peer(503, false, Some("unreachable")), false),
            (PassThrough, Read, peer(504, false, Some("went_silent")), false),
            (PassThrough, Read, peer(200, false, None), false),
        ];
        for (protocol, effect, attempted, expected) in table {
            assert_eq!(moves_on(protocol, effect, attempted), expected, "{protocol:?} {effect:?} {attempted:?}");
        }
    }

    #[test]
    fn only_get_head_and_options_are_reads_safe_to_send_twice() {
        let table = [
            (Method::GET, Effect::Read),
            (Method::HEAD, Effect::Read),
            (Method::OPTIONS, Effect::Read),
            (Method::POST, Effect::Write),
            (Method::PUT, Effect::Write),
            (Method::DELETE, Effect::Write),
            (Method::PATCH, Effect::Write),
            (Method::from_bytes(b"PROPFIND").unwrap(), Effect::Write),
        ];
        for (method, effect) in table {
            assert_eq!(Effect::of(&method), effect, "{method}");
        }
    }

    #[test]
    fn a_silent_peer_is_named_with_what_became_of_the_call() {
        let silent = |method: Method, next: Option<&str>, streaming| WentSilent {
            node: "agent-home-mini".into(),
            method,
            waited: Duration::from_millis(1_530),
            probe: "operation timed out".into(),
            next: next.map(str::to_owned),
            streaming,
        };
        let head = "node \"agent-home-mini\" went silent while";
        let why = "(no answer after 1.5 s; its last health probe: operation timed out)";
        let table = [
            (
                silent(Method::POST, Some("agent-work-laptop"), false),
                format!(
                    "{head} the POST was in flight {why}; not retried on \"agent-work-laptop\": \
                     a POST may not be safe to run twice"
                ),
            ),
            (
                silent(Method::POST, None, false),
                format!("{head} the POST was in flight {why}; not retried: a POST may not be safe to run twice"),
            ),
            (
                silent(Method::GET, Some("agent-work-laptop"), false),
                format!(
                    "{head} the GET was in flight {why}; sent again to \"agent-work-laptop\", as a GET is safe to send twice"
                ),
            ),
            (
                silent(Method::GET, None, false),
                format!("{head} the GET was in flight {why}; no other node to send it to"),
            ),
            (
                silent(Method::GET, Some("agent-work-laptop"), true),
                format!(
                    "{head} its answer to the GET streamed (in flight for 1.5 s; its last health probe: \
                     operation timed out); the answer is cut short"
                ),
            ),
        ];
        for (silent, expected) in table {
            assert_eq!(silent.to_string(), expected);
        }
    }

    #[tokio::test]
    async fn silence_is_a_peer_seen_up_then_found_down_by_the_prober() {
        let peers = Peers::default();
        peers.set_members(vec![PeerState::new("mini", None, "127.0.0.1", 1)]);
        let down = |reason: &str| {
            let reason = reason.to_owned();
            move |peer: &mut PeerState| {
                peer.online = false;
                peer.last_error = Some(reason);
            }
        };
        let up = |peer: &mut PeerState| {
            peer.online = true;
            peer.last_error = None;
        };
        let soon = Duration::from_millis(100);
        // Never probed: not known down, so a call may wait on it; the verdict ends the wait.
        let silence = Silence::new(&peers, "mini", Method::POST, Some("laptop"));
        let waiting = tokio::spawn(silence.wait(false));
        peers.update("mini", up);
        tokio::time::sleep(soon).await;
        assert!(!waiting.is_finished(), "an online peer is not silent");
        peers.update("mini", down("operation timed out"));
        let silent = tokio::time::timeout(soon * 10, waiting).await.expect("woken by the change").unwrap();
        assert_eq!((silent.probe.as_str(), silent.next.as_deref()), ("operation timed out", Some("laptop")));
        // Tried while known down (every node was): silent only once seen up and then down again.
        let silence = Silence::new(&peers, "mini", Method::GET, None);
        let waiting = tokio::spawn(silence.wait(true));
        tokio::time::sleep(soon).await;
        assert!(!waiting.is_finished(), "down since before the call: no news");
        peers.update("mini", up);
        tokio::time::sleep(soon).await;
        peers.update("mini", down("connection reset"));
        let silent = tokio::time::timeout(soon * 10, waiting).await.expect("woken by the change").unwrap();
        assert_eq!((silent.probe.as_str(), silent.streaming), ("connection reset", true));
    }

    /// A pass-through call: GET `/x` of this node's endpoint, or of a peer's
    /// `/cap/x`; the answer is its status and text.
    struct PassThroughGet;

    impl Call for PassThroughGet {
        type Answer = (u16, String);

        fn protocol(&self) -> PeerProtocol {
            PeerProtocol::PassThrough
        }

        fn method(&self) -> &Method {
            static GET: Method = Method::GET;
            &GET
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
                    (status, String::from_utf8_lossy(&response.bytes().await.unwrap()).into_owned())
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
