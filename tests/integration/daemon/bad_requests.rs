//! Every bad request gets JSON (issue #13, point 5), against the real daemon:
//! each route fed malformed JSON, wrong types, unknown fields, a wrong method
//! or a bad path parameter answers `{error, message}` with the right status,
//! never a 500. Handoff messages from the peer carry a protocol version and
//! tolerate fields they do not know; conversation ids are checked where they
//! enter; an `Accept` for a conversation that does not exist creates nothing.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::keys;
use super::support::{Daemon, NODE, eventually, http, node_manifest};

/// The peer Node of the test daemon's HandoffPolicy.
const PEER: &str = "node-b";
const POLICY: &str = "chats";

/// The peer Node (at `port`), a SyncFolder under `~/agent_data` on both nodes
/// and a HandoffPolicy on it. No Syncthing: the daemon claims new
/// conversation folders at once.
fn handoff_manifests(port: u16) -> String {
    let peer = node_manifest(PEER, "satellite", (Ipv4Addr::LOCALHOST, port).into());
    format!(
        "{peer}apiVersion: agentmesh/v1alpha1\nkind: SyncFolder\nmetadata:\n  name: agent_data\nspec:\n  paths:\n    \
         {NODE}: ~/agent_data\n    {PEER}: ~/agent_data\n---\n\
         apiVersion: agentmesh/v1alpha1\nkind: HandoffPolicy\nmetadata:\n  name: {POLICY}\nspec:\n  \
         syncFolder: agent_data\n"
    )
}

/// A daemon with [`handoff_manifests`], its peer played by a [`FakePeer`].
fn daemon_with_a_peer() -> (Daemon, FakePeer) {
    let peer = FakePeer::start();
    let daemon = Daemon::builder().file("manifests/handoff.yaml", &handoff_manifests(peer.port)).start();
    eventually("the HandoffPolicy is in force", || {
        daemon.api_get(&format!("/api/v1/objects/HandoffPolicy/{POLICY}")).filter(|o| o["spec"].is_object())
    });
    (daemon, peer)
}

/// The peer's controller, as far as the daemon can tell: it keeps every
/// handoff message the daemon sends it and answers 202. Its health answers
/// 503, so the daemon sees it down and sends it only its replies.
struct FakePeer {
    port: u16,
    received: Arc<Mutex<Vec<Value>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakePeer {
    fn start() -> FakePeer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake peer");
        let port = listener.local_addr().expect("an address").port();
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let received = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let kept = received.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                let app = axum::Router::new().fallback(move |uri: axum::http::Uri, body: axum::body::Bytes| {
                    let kept = kept.clone();
                    async move {
                        if !uri.path().starts_with("/api/v1/handoff/message") {
                            return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                        }
                        match serde_json::from_slice::<Value>(&body) {
                            Ok(Value::Array(messages)) => kept.lock().unwrap().extend(messages),
                            Ok(message) => kept.lock().unwrap().push(message),
                            Err(_) => return axum::http::StatusCode::BAD_REQUEST,
                        }
                        axum::http::StatusCode::ACCEPTED
                    }
                });
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        FakePeer { port, received, stop: Some(stop), thread: Some(thread) }
    }

    /// The messages received so far whose `envelope.message.type` is `kind`.
    fn received(&self, kind: &str) -> Vec<Value> {
        let received = self.received.lock().unwrap();
        received.iter().filter(|message| message["envelope"]["message"]["type"] == kind).cloned().collect()
    }
}

impl Drop for FakePeer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A request body, and how it is sent.
#[derive(Clone, Debug)]
enum Body {
    None,
    /// Sent as `application/json`.
    Json(String),
    /// Sent without a Content-Type.
    Untyped(String),
}

fn typed(text: impl Into<String>) -> Body {
    Body::Json(text.into())
}

fn untyped(text: &str) -> Body {
    Body::Untyped(text.to_owned())
}

/// One answer of the API.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: Option<String>,
    allow: Option<String>,
    body: Value,
}

async fn call(daemon: &Daemon, method: &str, path: &str, body: &Body) -> Answer {
    let url = format!("http://127.0.0.1:{}{path}", daemon.port());
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let request = http().request(method, url).bearer_auth(Daemon::KEY);
    let request = match body {
        Body::None => request,
        Body::Json(text) => request.header("content-type", "application/json").body(text.clone()),
        Body::Untyped(text) => request.body(text.clone()),
    };
    let response = request.send().await.expect("the daemon answers");
    let header = |name| {
        response.headers().get(name).map(|value: &reqwest::header::HeaderValue| value.to_str().unwrap().to_owned())
    };
    let (status, content_type, allow) = (response.status().as_u16(), header("content-type"), header("allow"));
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer { status, content_type, allow, body }
}

/// A `POST /api/v1/peers` body.
fn peer(name: &str, address: &str, api_port: u16) -> String {
    json!({"name": name, "address": address, "apiPort": api_port}).to_string()
}

#[tokio::test]
async fn every_route_answers_bad_input_with_a_json_error_and_the_right_status_never_a_500() {
    let (daemon, _peer) = daemon_with_a_peer();
    let too_long = format!("/api/v1/sessions/{}", "a".repeat(129));
    let message = |protocol: Value| {
        let record = json!({"type": "recordOf", "record": {"owner": PEER, "epoch": 1, "phase": {"state": "owned"}}});
        let mut message = from_peer("c-1", record);
        message["protocol"] = protocol;
        typed(message.to_string())
    };
    // (method, path, body, status, error, words the message must hold)
    let cases: Vec<(&str, &str, Body, u16, &str, &str)> = vec![
        ("POST", "/api/v1/apply", typed("{"), 400, "bad_request", "EOF"),
        ("POST", "/api/v1/apply", typed(r#"{"revision":1,"files":[]}"#), 400, "bad_request", "invalid type"),
        (
            "POST",
            "/api/v1/apply",
            typed(r#"{"revision":"r","files":[],"dryrun":true}"#),
            400,
            "bad_request",
            "unknown field `dryrun`",
        ),
        ("POST", "/api/v1/apply", untyped(r#"{"revision":"r","files":[]}"#), 415, "unsupported_media_type", ""),
        ("GET", "/api/v1/apply", Body::None, 405, "method_not_allowed", "GET"),
        ("POST", "/api/v1/reconcile", typed(r#"{"revison":"abc"}"#), 400, "bad_request", "unknown field `revison`"),
        ("POST", "/api/v1/reconcile", typed(r#"{"revision":5}"#), 400, "bad_request", "invalid type"),
        ("POST", "/api/v1/reconcile", typed("revision"), 400, "bad_request", "expected"),
        ("PUT", "/api/v1/reconcile", Body::None, 405, "method_not_allowed", "PUT"),
        ("GET", "/api/v1/objects/Nope/x", Body::None, 400, "bad_request", "unknown kind \"Nope\""),
        ("GET", "/api/v1/objects/Nope", Body::None, 400, "bad_request", "unknown kind \"Nope\""),
        ("GET", "/api/v1/objects/Service/Not%20A%20Name", Body::None, 400, "bad_request", "cannot name a Service"),
        ("GET", "/api/v1/objects/Service/%FF", Body::None, 400, "bad_request", "UTF-8"),
        ("GET", "/api/v1/objects/Service/absent", Body::None, 404, "not_found", "Service/absent"),
        ("DELETE", "/api/v1/objects/Service/absent", Body::None, 405, "method_not_allowed", "DELETE"),
        ("GET", "/api/v1/events", Body::None, 400, "bad_request", "WebSocket"),
        ("POST", "/api/v1/events", Body::None, 405, "method_not_allowed", "POST"),
        (
            "POST",
            "/api/v1/handoff",
            typed(r#"{"id":"c-1","target":"b"}"#),
            400,
            "bad_request",
            "unknown field `target`",
        ),
        ("POST", "/api/v1/handoff", typed(r#"{"id":5}"#), 400, "bad_request", "invalid type"),
        ("POST", "/api/v1/handoff", typed(r#"{"id":"../etc"}"#), 400, "bad_request", "starts with a dot"),
        ("POST", "/api/v1/handoff", typed(r#"{"id":"a/b"}"#), 400, "bad_request", "holds '/'"),
        ("POST", "/api/v1/handoff", typed(r#"{"id":"absent"}"#), 404, "not_found", "absent"),
        ("POST", "/api/v1/handoff", untyped(r#"{"id":"absent"}"#), 415, "unsupported_media_type", ""),
        ("GET", "/api/v1/handoff", Body::None, 405, "method_not_allowed", "GET"),
        ("POST", "/api/v1/handoff/message", typed("{\"policy\""), 400, "bad_request", "EOF"),
        ("POST", "/api/v1/handoff/message", typed("[]"), 400, "bad_request", "not a handoff message"),
        ("POST", "/api/v1/handoff/message", message(json!(2)), 400, "unsupported_protocol", "protocol 2"),
        ("POST", "/api/v1/handoff/message", message(json!("1")), 400, "bad_request", "not a version"),
        ("GET", "/api/v1/handoff/message", Body::None, 405, "method_not_allowed", "GET"),
        ("POST", "/api/v1/handoff/messages", typed("{}"), 400, "bad_request", "invalid type: map"),
        ("POST", "/api/v1/handoff/messages", untyped("[]"), 415, "unsupported_media_type", ""),
        ("GET", "/api/v1/handoff/messages", Body::None, 405, "method_not_allowed", "GET"),
        ("GET", "/api/v1/handoff/.hidden", Body::None, 400, "bad_request", "handoff id \".hidden\" starts with a dot"),
        ("GET", "/api/v1/handoff/node-b-1", Body::None, 404, "not_found", "node-b-1"),
        ("POST", "/api/v1/handoff/node-b-1", Body::None, 405, "method_not_allowed", "POST"),
        ("GET", "/api/v1/sessions/.hidden", Body::None, 400, "bad_request", "starts with a dot"),
        ("GET", "/api/v1/sessions/a%20b", Body::None, 400, "bad_request", "holds ' '"),
        ("GET", "/api/v1/sessions/caf%C3%A9", Body::None, 400, "bad_request", "holds 'é'"),
        ("GET", "/api/v1/sessions/%FF", Body::None, 400, "bad_request", "UTF-8"),
        ("GET", &too_long, Body::None, 400, "bad_request", "is 129 bytes"),
        ("GET", "/api/v1/sessions/absent", Body::None, 404, "not_found", "absent"),
        ("DELETE", "/api/v1/sessions/absent", Body::None, 405, "method_not_allowed", "DELETE"),
        ("POST", "/api/v1/sessions", Body::None, 405, "method_not_allowed", "POST"),
        ("POST", "/api/v1/status", Body::None, 405, "method_not_allowed", "POST"),
        ("PUT", "/api/v1/mesh", Body::None, 405, "method_not_allowed", "PUT"),
        ("POST", "/api/v1/peers", typed("{"), 400, "bad_request", "EOF"),
        ("POST", "/api/v1/peers", typed(r#"{"name":"x","address":"a","port":1}"#), 400, "bad_request", "unknown field"),
        ("POST", "/api/v1/peers", typed(peer("Bad!", "a", 8000)), 400, "bad_request", "cannot name a node"),
        ("POST", "/api/v1/peers", typed(peer("desk", "http://a/", 8000)), 400, "bad_request", "not a host name"),
        ("POST", "/api/v1/peers", typed(peer("desk", "a", 0)), 400, "bad_request", "apiPort 0"),
        (
            "POST",
            "/api/v1/peers",
            typed(r#"{"name":"desk","role":"leader","address":"a","apiPort":8000}"#),
            400,
            "bad_request",
            "unknown variant `leader`, expected `primary` or `satellite`",
        ),
        ("POST", "/api/v1/peers", typed(peer(NODE, "a", 8000)), 409, "name_taken", "this node's own name"),
        ("GET", "/api/v1/peers", Body::None, 405, "method_not_allowed", "GET"),
        ("POST", "/api/v1/syncthing/device", Body::None, 405, "method_not_allowed", "POST"),
        ("POST", "/metrics", Body::None, 405, "method_not_allowed", "POST"),
        ("POST", "/mesh/health", Body::None, 405, "method_not_allowed", "POST"),
        ("POST", "/mesh/route", typed("{"), 400, "bad_request", "EOF"),
        ("POST", "/mesh/route", typed(r#"{"capability":1,"payload":{}}"#), 400, "bad_request", "invalid type"),
        (
            "POST",
            "/mesh/route",
            typed(r#"{"capability":"llm","payload":{},"prefer_node":"b"}"#),
            400,
            "bad_request",
            "unknown field `prefer_node`",
        ),
        ("GET", "/mesh/route", Body::None, 405, "method_not_allowed", "GET"),
        ("GET", "/api/v1/nope", Body::None, 404, "not_found", "no such endpoint"),
    ];
    for (method, path, body, status, error, words) in cases {
        let answer = call(&daemon, method, path, &body).await;
        let what = format!("{method} {path} {body:?}: {answer:?}");
        assert_eq!((answer.status, answer.content_type.as_deref()), (status, Some("application/json")), "{what}");
        assert_eq!(keys(&answer.body), BTreeSet::from(["error", "message"]), "{what}");
        assert_eq!(answer.body["error"], error, "{what}");
        assert!(answer.body["message"].as_str().unwrap().contains(words), "{what}");
        if status == 405 {
            let allow = answer.allow.unwrap_or_default();
            assert!(!allow.is_empty() && !allow.contains(method), "{what}: Allow names the methods it takes");
        }
    }
    let log = daemon.log();
    assert!(!log.contains("panicked"), "no handler panicked:\n{log}");
}

/// A conversation's record in the daemon's state folder, if there is one.
fn saved_record(daemon: &Daemon, id: &str) -> Option<Value> {
    let path = daemon.path().join(format!("state/handoff/{POLICY}/{id}.json"));
    std::fs::read(path).ok().map(|bytes| serde_json::from_slice(&bytes).expect("a record reads"))
}

/// A message from the peer about conversation `id` of the policy.
fn from_peer(id: &str, message: Value) -> Value {
    json!({"policy": POLICY, "conversation": id, "envelope": {"from": PEER, "to": NODE, "message": message}})
}

#[tokio::test]
async fn handoff_messages_tolerate_unknown_fields_and_say_their_protocol() {
    let (daemon, _peer) = daemon_with_a_peer();
    let post = |path: &'static str, body: Value| {
        let body = typed(body.to_string());
        let daemon = &daemon;
        async move { call(daemon, "POST", path, &body).await }
    };

    // A message of the previous release (no `protocol`) with fields this one
    // does not know, at every level, is taken and acted on.
    let record = json!({"owner": PEER, "epoch": 3, "phase": {"state": "owned", "since": "later"}, "votes": []});
    let mut message = from_peer("c-9", json!({"type": "recordOf", "record": record, "signature": "x"}));
    message["envelope"]["ttl"] = json!(4);
    message["compression"] = json!("none");
    let answer = post("/api/v1/handoff/message", message).await;
    assert_eq!(answer.status, 202, "{answer:?}");
    let session = daemon.api_get("/api/v1/sessions/c-9").expect("the conversation is known");
    assert_eq!((&session["owner"], &session["epoch"]), (&json!(PEER), &json!(3)), "{session}");
    assert_eq!(saved_record(&daemon, "c-9").expect("persisted")["epoch"], 3);

    // A newer protocol is refused with a clear error, and nothing is written.
    let mut newer = from_peer(
        "c-10",
        json!({"type": "recordOf", "record": {"owner": PEER, "epoch": 1, "phase": {"state": "owned"}}}),
    );
    newer["protocol"] = json!(2);
    let answer = post("/api/v1/handoff/message", newer).await;
    assert_eq!((answer.status, &answer.body["error"]), (400, &json!("unsupported_protocol")), "{answer:?}");
    assert!(answer.body["message"].as_str().unwrap().contains("this node speaks 1"), "{answer:?}");
    assert_eq!(saved_record(&daemon, "c-10"), None);

    // In a batch, a bad message is dropped and named; the others are taken.
    let good = from_peer(
        "c-11",
        json!({"type": "recordOf", "record": {"owner": PEER, "epoch": 1, "phase": {"state": "owned"}}, "extra": 1}),
    );
    let bad_id = from_peer(
        "bad id",
        json!({"type": "recordOf", "record": {"owner": PEER, "epoch": 1, "phase": {"state": "owned"}}}),
    );
    let mut stranger = from_peer(
        "c-12",
        json!({"type": "recordOf", "record": {"owner": "node-x", "epoch": 1, "phase": {"state": "owned"}}}),
    );
    stranger["envelope"]["from"] = json!("node-x");
    let answer = post("/api/v1/handoff/messages", json!([good, bad_id, stranger])).await;
    assert_eq!(answer.status, 202, "{answer:?}");
    assert_eq!(answer.body["taken"], 1, "{answer:?}");
    let dropped: Vec<(u64, &str)> = answer.body["dropped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["index"].as_u64().unwrap(), d["error"].as_str().unwrap()))
        .collect();
    assert_eq!(dropped, [(1, "bad_request"), (2, "wrong_node")], "{answer:?}");
    assert!(saved_record(&daemon, "c-11").is_some());
    assert_eq!((saved_record(&daemon, "c-12"), saved_record(&daemon, "bad id")), (None, None));
    assert_eq!(daemon.log().matches("a handoff message from the peer was dropped").count(), 2);
}

#[tokio::test]
async fn an_accept_for_a_conversation_that_does_not_exist_creates_nothing_and_is_refused() {
    let (daemon, peer) = daemon_with_a_peer();
    let post = |body: Value| {
        let body = typed(body.to_string());
        let daemon = &daemon;
        async move { call(daemon, "POST", "/api/v1/handoff/message", &body).await }
    };
    let record = json!({"type": "recordOf", "record": {"owner": PEER, "epoch": 3, "phase": {"state": "owned"}}});
    assert_eq!(post(from_peer("c-9", record)).await.status, 202);

    // An Accept for a conversation that does not exist here creates nothing
    // and is answered Refused, in this release's protocol.
    let accept = from_peer("ghost", json!({"type": "accept", "handoff": "node-b-1", "epoch": 1}));
    let answer = post(accept).await;
    assert_eq!(answer.status, 202, "{answer:?}");
    let refused = eventually("the peer hears the refusal", || peer.received("refused").into_iter().next());
    assert_eq!(refused["protocol"], 1, "the reply says its protocol: {refused}");
    assert_eq!((&refused["conversation"], &refused["envelope"]["to"]), (&json!("ghost"), &json!(PEER)));
    assert_eq!(refused["envelope"]["message"]["reason"], json!({"reason": "unknownConversation"}), "{refused}");
    assert_eq!(saved_record(&daemon, "ghost"), None, "no record file");
    assert!(!daemon.path().join("agent_data/sessions/ghost").exists(), "no conversation folder");
    assert!(!daemon.path().join(format!("state/handoff-shadow/{POLICY}/ghost")).exists(), "no shadow");
    assert!(daemon.api_get("/api/v1/sessions/ghost").is_some_and(|answer| answer["error"] == "not_found"));

    // An Accept for a conversation it knows (c-9, the peer's at epoch 3) is
    // still accepted: owned here at epoch 4, and the peer is told so.
    let accept = from_peer("c-9", json!({"type": "accept", "handoff": "node-b-2", "epoch": 3}));
    assert_eq!(post(accept).await.status, 202);
    let accepted = eventually("the peer hears the acceptance", || peer.received("accepted").into_iter().next());
    assert_eq!((&accepted["protocol"], &accepted["envelope"]["message"]["epoch"]), (&json!(1), &json!(4)));
    assert_eq!(saved_record(&daemon, "c-9").unwrap()["owner"], NODE);
}

#[tokio::test]
async fn a_folder_whose_name_is_not_a_conversation_id_is_ignored_with_one_warning_and_never_claimed() {
    let (daemon, _peer) = daemon_with_a_peer();
    // The peer answers no probe, so this node claims nothing before a record of
    // the policy reached it from the peer (it may have missed the peer's claims).
    let record = json!({"type": "recordOf", "record": {"owner": PEER, "epoch": 1, "phase": {"state": "owned"}}});
    let told = typed(from_peer("peer-1", record).to_string());
    assert_eq!(call(&daemon, "POST", "/api/v1/handoff/message", &told).await.status, 202);
    let sessions = daemon.path().join("agent_data/sessions");
    for name in ["good-1", "has space"] {
        std::fs::create_dir_all(sessions.join(name)).expect("make the folder");
    }
    eventually("good-1 is claimed here", || {
        daemon.api_get("/api/v1/sessions/good-1").filter(|session| session["owner"] == NODE)
    });
    // A few passes of the reconciler (one every 2 s) later, still one warning.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let policy = daemon.api_get(&format!("/api/v1/objects/HandoffPolicy/{POLICY}")).expect("the policy");
    let warnings: Vec<&Value> =
        policy["events"].as_array().unwrap().iter().filter(|e| e["reason"] == "handoff.ignoredFolder").collect();
    assert_eq!(warnings.len(), 1, "{policy}");
    assert_eq!(warnings[0]["type"], "Warning");
    let text = warnings[0]["message"].as_str().unwrap();
    assert!(
        text.contains("has space: not a conversation, left alone: conversation id \"has space\" holds ' '"),
        "{text}"
    );
    let listed = daemon.api_get("/api/v1/sessions").expect("the sessions");
    let ids: Vec<&str> = listed.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["good-1", "peer-1"]);
    assert!(saved_record(&daemon, "has space").is_none(), "never claimed");
    assert_eq!(daemon.log().matches("not a conversation, left alone").count(), 1);
}
