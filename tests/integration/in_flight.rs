//! A call in flight when the node that took it goes silent, end to end: two
//! real daemons, `laptop` on 127.0.0.2 and `mini` on 127.0.0.3, a Capability
//! `slow` that prefers the mini and falls back to the laptop, and on each node
//! an endpoint the test runs. The mini's takes a call and then hangs (30 s);
//! once it has the call, the test SIGSTOPs the mini's daemon (a hung or
//! sleeping node: the kernel still accepts on its port, nothing answers). The
//! laptop's prober finds it silent within 1.5 s, and the call the laptop
//! passed on to it ends then, not after its timeout: a POST fails with
//! `went_silent`, never run again on the laptop; a GET is served by the
//! laptop; a streamed answer is cut. The figures are printed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{any, get};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::support::daemon::{Daemon, LAPTOP, MINI, laptop_and_mini, same_port_on};
use crate::support::wait::eventually_async;

/// How long the mini's endpoint keeps a call before answering: far longer
/// than any figure measured here.
const HANG: Duration = Duration::from_secs(30);

/// How soon a call in flight must end after its node went silent: the goal is
/// 2.5 s (the prober's 1.5 s, and the answer's way back); the rest is slack
/// for a machine running the whole suite.
const SOON: Duration = Duration::from_secs(6);

/// A process stopped with SIGSTOP, continued when dropped, even when the
/// test fails, so no stopped daemon is left behind.
struct Stopped(u32);

impl Stopped {
    fn new(pid: u32) -> Stopped {
        crate::support::daemon::stop(pid);
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.0) {
            // SAFETY: kill takes plain integers and touches no memory.
            unsafe { libc::kill(pid, libc::SIGCONT) };
        }
    }
}

/// Calls an endpoint took under `/slow` and `/stream`.
#[derive(Clone, Default)]
struct Calls(Arc<AtomicUsize>);

impl Calls {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    fn took_one(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// The mini's endpoint: healthy, and every call under `/slow` hangs; `/stream`
/// sends its first NDJSON line, as Ollama streams, then hangs.
fn hanging(listener: tokio::net::TcpListener, calls: Calls) {
    let slow = calls.clone();
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route(
            "/stream",
            get(move || async move {
                calls.took_one();
                let chunks = futures_util::stream::iter(0..2).then(|index| async move {
                    if index > 0 {
                        tokio::time::sleep(HANG).await;
                    }
                    Ok::<_, std::io::Error>(format!("{{\"chunk\":{index}}}\n"))
                });
                ([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(chunks)).into_response()
            }),
        )
        .fallback(any(move || async move {
            slow.took_one();
            tokio::time::sleep(HANG).await;
            "late, from mini"
        }));
    tokio::spawn(async move { axum::serve(listener, app).await });
}

/// The laptop's endpoint: answers every call at once, saying which method it got.
fn prompt(listener: tokio::net::TcpListener, calls: Calls) {
    let app = Router::new().route("/health", get(|| async { "ok" })).fallback(any(move |request: Request| {
        calls.took_one();
        async move { axum::Json(json!({"node": "laptop", "method": request.method().as_str()})).into_response() }
    }));
    tokio::spawn(async move { axum::serve(listener, app).await });
}

struct Mesh {
    laptop: Daemon,
    mini: Daemon,
    laptop_calls: Calls,
    mini_calls: Calls,
}

impl Mesh {
    async fn start() -> Mesh {
        let (laptop_listener, mini_listener) = same_port_on(LAPTOP, MINI).await;
        let port = laptop_listener.local_addr().unwrap().port();
        let (laptop_calls, mini_calls) = (Calls::default(), Calls::default());
        prompt(laptop_listener, laptop_calls.clone());
        hanging(mini_listener, mini_calls.clone());
        let capabilities = format!(
            "apiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {{name: slow}}\n\
             spec: {{provider: http, placement: {{prefer: [mini], fallback: [laptop]}}, \
             endpoint: {{port: {port}, path: /slow, healthPath: /health}}}}\n---\n\
             apiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {{name: llm_inference}}\n\
             spec: {{provider: ollama, placement: {{prefer: [mini], fallback: [laptop]}}, \
             endpoint: {{port: {port}, path: /, healthPath: /health}}}}\n"
        );
        let (laptop, mini) = laptop_and_mini(&capabilities).await;
        let mesh = Mesh { laptop, mini, laptop_calls, mini_calls };
        mesh.laptop.sees_online("mini").await;
        mesh.both_served_by("mini").await;
        mesh
    }

    async fn both_served_by(&self, node: &str) {
        self.laptop.served_by("slow", node).await;
        self.laptop.served_by("llm_inference", node).await;
    }

    /// Continues the mini once the laptop has moved both capabilities to
    /// itself, and waits until they are back on the mini: the next call goes
    /// to the mini for certain.
    async fn bring_back(&self, stopped: Stopped) {
        self.both_served_by("laptop").await;
        drop(stopped);
        self.laptop.sees_online("mini").await;
        self.both_served_by("mini").await;
    }

    /// Sends `request` to the laptop, waits until the mini's endpoint has it,
    /// stops the mini's daemon; the answer's head, how long after the stop it
    /// came, and the stopped daemon (continued when dropped).
    async fn silence_the_mini_under(&self, request: reqwest::RequestBuilder) -> (reqwest::Response, Duration, Stopped) {
        let before = self.mini_calls.count();
        let call = tokio::spawn(request.bearer_auth(Daemon::KEY).timeout(HANG * 2).send());
        eventually_async("the mini's endpoint has the call", || {
            std::future::ready((self.mini_calls.count() > before).then_some(()))
        })
        .await;
        let stopped = Stopped::new(self.mini.pid());
        let silenced = Instant::now();
        let response = call.await.unwrap().expect("the laptop answers");
        (response, silenced.elapsed(), stopped)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_call_in_flight_on_a_node_that_goes_silent_fails_at_once_and_is_not_run_again() {
    let mesh = Mesh::start().await;
    let request = reqwest::Client::new()
        .post(mesh.laptop.url("/mesh/route"))
        .json(&json!({"capability": "slow", "payload": {"n": 1}}));
    let (response, after, _stopped) = mesh.silence_the_mini_under(request).await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    eprintln!("POST /mesh/route ended {after:?} after the mini went silent: {status} {body}");
    assert_eq!((status, body["error"].as_str()), (504, Some("went_silent")), "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "the call for capability \"slow\" failed: node \"mini\" went silent while the POST was in flight (no answer after "
        ),
        "{message}"
    );
    assert!(message.ends_with("; not retried on \"laptop\": a POST may not be safe to run twice"), "{message}");
    assert!(after < SOON, "the call ended {after:?} after the mini went silent");
    assert_eq!(mesh.laptop_calls.count(), 0, "never run on the laptop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_in_flight_on_a_node_that_goes_silent_is_served_by_the_next_and_a_post_is_not() {
    let mesh = Mesh::start().await;
    let http = reqwest::Client::new();
    let (response, after, stopped) = mesh.silence_the_mini_under(http.get(mesh.laptop.url("/cap/slow/slow"))).await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    eprintln!("GET /cap/slow/slow answered {after:?} after the mini went silent: {status} {body}");
    assert_eq!((status, body), (200, json!({"node": "laptop", "method": "GET"})));
    assert!(after < SOON, "answered {after:?} after the mini went silent");
    // The mini is back: a POST through the same pass-through is not sent twice.
    mesh.bring_back(stopped).await;
    let (response, after, _stopped) =
        mesh.silence_the_mini_under(http.post(mesh.laptop.url("/cap/slow/slow")).body("once")).await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    eprintln!("POST /cap/slow/slow ended {after:?} after the mini went silent: {status} {body}");
    assert_eq!((status, body["error"].as_str()), (504, Some("went_silent")), "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.starts_with("node \"mini\" went silent while the POST was in flight"), "{message}");
    assert!(after < SOON, "the POST ended {after:?} after the mini went silent");
    assert_eq!(mesh.laptop_calls.count(), 1, "only the GET ran on the laptop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_answer_from_a_node_that_goes_silent_is_cut() {
    let mesh = Mesh::start().await;
    let (rest, after, stopped) = mesh.stream_then_silence_the_mini("/cap/slow/stream").await;
    eprintln!("/cap/: the stream was cut {after:?} after the mini went silent: {rest:?}");
    assert!(matches!(rest.as_slice(), [Err(_)]), "the body ends with an error, never as a whole answer: {rest:?}");
    assert!(after < SOON, "cut {after:?} after the mini went silent");

    // An Ollama client is told why, in the last line Ollama ends a failed stream with.
    mesh.bring_back(stopped).await;
    let (rest, after, _stopped) = mesh.stream_then_silence_the_mini("/ollama/stream").await;
    eprintln!("/ollama/: the stream was cut {after:?} after the mini went silent: {rest:?}");
    let [Ok(line)] = rest.as_slice() else { panic!("an error line, and the end: {rest:?}") };
    let line: Value = serde_json::from_str(line).unwrap();
    let error = line["error"].as_str().unwrap();
    assert!(
        error.starts_with("node \"mini\" went silent while its answer to the GET streamed (in flight for "),
        "{error}"
    );
    assert!(error.ends_with("; the answer is cut short"), "{error}");
    assert!(after < SOON, "cut {after:?} after the mini went silent");
    assert_eq!(mesh.laptop_calls.count(), 0, "a stream that began is never sent again");
}

impl Mesh {
    /// GETs `path` of the laptop, reads the first line of the mini's stream,
    /// stops the mini's daemon; what the body gave after that (up to its
    /// first error), how long after the stop it came, and the stopped daemon.
    async fn stream_then_silence_the_mini(&self, path: &str) -> (Vec<Result<String, String>>, Duration, Stopped) {
        let request = reqwest::Client::new().get(self.laptop.url(path)).bearer_auth(Daemon::KEY);
        let response = request.timeout(HANG * 2).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let mut chunks = response.bytes_stream();
        assert_eq!(chunks.next().await.unwrap().unwrap(), "{\"chunk\":0}\n");
        let stopped = Stopped::new(self.mini.pid());
        let silenced = Instant::now();
        let mut rest = Vec::new();
        let mut after = None;
        while let Some(chunk) = chunks.next().await {
            after.get_or_insert_with(|| silenced.elapsed());
            let broke = chunk.is_err();
            rest.push(chunk.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).map_err(|e| e.to_string()));
            if broke {
                break;
            }
        }
        (rest, after.unwrap_or_else(|| silenced.elapsed()), stopped)
    }
}
