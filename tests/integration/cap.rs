//! The capability pass-through `/cap/<name>/…` end to end: two real daemons,
//! `laptop` on 127.0.0.2 and `mini` on 127.0.0.3, each with an echo endpoint
//! on the same port of its own address, and a Capability `echo` that prefers
//! the mini and falls back to the laptop. The client always talks to the
//! laptop's `/cap/echo/`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::support::daemon::{Daemon, LAPTOP, MINI, laptop_and_mini, same_port_on};

/// The pause between the chunks of `/stream`.
const CHUNK_DELAY: Duration = Duration::from_millis(300);

/// An HTTP endpoint that answers every request with what it got, as JSON,
/// and streams three chunks at `/stream`, recording when it sent each.
struct Echo {
    sent: Arc<Mutex<Vec<Instant>>>,
    task: tokio::task::JoinHandle<()>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Echo {
    fn start(listener: tokio::net::TcpListener, name: &'static str) -> Echo {
        let sent: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let app = Router::new()
            .route("/health", get(|| async { "ok" }))
            .route("/stream", get(stream))
            .fallback(any(move |request: Request| echo(name, request)))
            .with_state(sent.clone());
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            let _ = serve.await;
        });
        Echo { sent, task, shutdown: Some(shutdown) }
    }

    /// Stops as a killed server would: the listener and every connection close.
    async fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if tokio::time::timeout(Duration::from_secs(5), &mut self.task).await.is_err() {
            self.task.abort();
        }
    }
}

async fn echo(name: &str, request: Request) -> axum::Json<Value> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    let header = |headers: &HeaderMap, name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    axum::Json(json!({
        "node": name,
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "body": String::from_utf8_lossy(&body),
        "authorization": header(&parts.headers, "authorization"),
        "custom": header(&parts.headers, "x-custom"),
        "hop": header(&parts.headers, "x-mesh-route-hop"),
    }))
}

async fn stream(State(sent): State<Arc<Mutex<Vec<Instant>>>>) -> Response {
    let chunks = futures_util::stream::iter(0..3).then(move |index| {
        let sent = sent.clone();
        async move {
            if index > 0 {
                tokio::time::sleep(CHUNK_DELAY).await;
            }
            sent.lock().unwrap().push(Instant::now());
            Ok::<_, std::io::Error>(format!("chunk {index}\n"))
        }
    });
    Body::from_stream(chunks).into_response()
}

struct Mesh {
    laptop: Daemon,
    _mini: Daemon,
    laptop_echo: Echo,
    mini_echo: Echo,
}

impl Mesh {
    async fn start() -> Mesh {
        let (laptop_listener, mini_listener) = same_port_on(LAPTOP, MINI).await;
        let port = laptop_listener.local_addr().unwrap().port();
        let (laptop_echo, mini_echo) = (Echo::start(laptop_listener, "laptop"), Echo::start(mini_listener, "mini"));
        let capability = format!(
            "apiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {{name: echo}}\n\
             spec: {{provider: http, placement: {{prefer: [mini], fallback: [laptop]}}, \
             endpoint: {{port: {port}, path: /base, healthPath: /health}}}}\n"
        );
        let (laptop, mini) = laptop_and_mini(&capability).await;
        let mesh = Mesh { laptop, _mini: mini, laptop_echo, mini_echo };
        mesh.laptop.served_by("echo", "mini").await;
        mesh
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_request_passes_through_to_the_serving_node_and_fails_over_on_a_refused_connection() {
    let mut mesh = Mesh::start().await;
    let http = reqwest::Client::new();
    let url = mesh.laptop.url("/cap/echo/some/path?q=1&r");
    let put = || http.put(&url).bearer_auth(Daemon::KEY).header("x-custom", "kept").body("the body");
    let answer: Value = put().send().await.unwrap().json().await.unwrap();
    assert_eq!(
        answer,
        json!({"node": "mini", "method": "PUT", "path": "/some/path", "query": "q=1&r", "body": "the body",
               "authorization": null, "custom": "kept", "hop": null}),
        "the mesh key and the hop marker never reach the endpoint"
    );
    for (path, expected) in [("/cap/echo", "/"), ("/cap/echo/", "/"), ("/cap/echo/base", "/base")] {
        let answer: Value =
            http.delete(mesh.laptop.url(path)).bearer_auth(Daemon::KEY).send().await.unwrap().json().await.unwrap();
        assert_eq!((answer["method"].as_str(), answer["path"].as_str()), (Some("DELETE"), Some(expected)), "{path}");
    }

    // Streamed through both daemons as it comes, not once it is complete.
    let response = http.get(mesh.laptop.url("/cap/echo/stream")).bearer_auth(Daemon::KEY).send().await.unwrap();
    let mut chunks = response.bytes_stream();
    let first = chunks.next().await.unwrap().unwrap();
    let first_received = Instant::now();
    let mut text = String::from_utf8_lossy(&first).into_owned();
    while let Some(chunk) = chunks.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    assert_eq!(text, "chunk 0\nchunk 1\nchunk 2\n");
    let sent = mesh.mini_echo.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 3, "one stream, from the mini");
    assert!(first_received < sent[2], "the first chunk was held back until the last was sent: {sent:?}");

    // The mesh API's errors, as JSON.
    let unknown = http.get(mesh.laptop.url("/cap/ecoh/x")).bearer_auth(Daemon::KEY).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"], "unknown_capability");
    assert!(body["message"].as_str().unwrap().contains("did you mean \"echo\""), "{body}");
    let refused = http.get(mesh.laptop.url("/cap/echo/x")).bearer_auth("wrong-key").send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.json::<Value>().await.unwrap()["error"], "unauthorized");

    // The mini's endpoint dies, its daemon lives: the mini says it sent
    // nothing, and the laptop's endpoint answers the same request at once.
    mesh.mini_echo.stop().await;
    let answer: Value = put().send().await.unwrap().json().await.unwrap();
    assert_eq!((answer["node"].as_str(), answer["body"].as_str()), (Some("laptop"), Some("the body")), "{answer}");

    // With no endpoint left, the pass-through's own error.
    mesh.laptop_echo.stop().await;
    let none = put().send().await.unwrap();
    assert_eq!(none.status(), 503);
    let body: Value = none.json().await.unwrap();
    assert_eq!(body["error"], "unreachable", "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.starts_with("no node could serve capability \"echo\": "), "{message}");
    assert!(message.contains("laptop: http://127.0.0.2:") && message.contains("Connection refused"), "{message}");
}
