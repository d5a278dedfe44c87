//! A fake Ollama server for the tests, faithful to the wire format the real
//! one speaks (the shared reference, section B): NDJSON streams (`stream`
//! missing means streaming) ending in a `done: true` line with `done_reason`
//! and the counters, `{"error"}` bodies with Ollama's status codes, `/api/tags`
//! never null, `/api/pull` status lines, and the DNS-rebinding Host check of a
//! loopback-bound Ollama (403, empty body, for a foreign Host).
//!
//! Each instance has a name it puts in every answer (so a test knows which
//! backend answered), its models, the models a pull can fetch, and a delay
//! between stream chunks; it records each request and when it sent each
//! chunk.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde_json::{Value, json};

/// The version `/api/version` reports.
pub(crate) const VERSION: &str = "0.12.6";

/// How an instance behaves.
#[derive(Clone)]
pub(crate) struct Config {
    /// Put in every answer: generated text starts with `[name]`.
    pub name: String,
    /// The models it has (`tiny` stands for `tiny:latest`).
    pub models: Vec<String>,
    /// The models `/api/pull` can fetch; any other name fails as the real
    /// registry's "file does not exist".
    pub registry: Vec<String>,
    /// How many content chunks a streamed generate or chat sends before its
    /// final line.
    pub chunks: usize,
    /// The pause before each streamed line after the first.
    pub chunk_delay: Duration,
    /// The pause before each line of a streamed pull after the first.
    pub pull_delay: Duration,
}

impl Config {
    pub(crate) fn new(name: &str, models: &[&str]) -> Config {
        Config {
            name: name.to_owned(),
            models: models.iter().map(|m| (*m).to_owned()).collect(),
            registry: Vec::new(),
            chunks: 3,
            chunk_delay: Duration::ZERO,
            pull_delay: Duration::ZERO,
        }
    }
}

/// One request the fake took.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub method: String,
    pub path: String,
    pub host: Option<String>,
    pub authorization: Option<String>,
}

/// A running fake; stops serving on [`stop`] or drop.
///
/// [`stop`]: FakeOllama::stop
pub(crate) struct FakeOllama {
    pub addr: SocketAddr,
    state: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

struct Inner {
    config: Config,
    models: Mutex<BTreeSet<String>>,
    seen: Mutex<Vec<Seen>>,
    /// Unix time (seconds) each streamed generate/chat line was handed to
    /// the connection, per request, in order.
    sent: Mutex<Vec<Vec<f64>>>,
}

impl FakeOllama {
    /// Serves on `listener` (a loopback address: the Host check is on).
    pub(crate) fn start(listener: tokio::net::TcpListener, config: Config) -> FakeOllama {
        let addr = listener.local_addr().expect("a bound listener");
        let models = config.models.iter().map(|m| full_name(m)).collect();
        let state =
            Arc::new(Inner { config, models: Mutex::new(models), seen: Mutex::default(), sent: Mutex::default() });
        let app = Router::new()
            .route("/", get(|| async { ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "Ollama is running") }))
            .route("/api/version", get(|| async { Json(json!({"version": VERSION})) }))
            .route("/api/tags", get(tags))
            .route("/api/show", post(show))
            .route("/api/generate", post(generate))
            .route("/api/chat", post(chat))
            .route("/api/pull", post(pull))
            .route("/v1/chat/completions", post(openai_chat))
            .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found") })
            .layer(middleware::from_fn_with_state(state.clone(), host_check))
            .with_state(state.clone());
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        FakeOllama { addr, state, task, shutdown: Some(shutdown) }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops as a killed Ollama would: the listener closes and so does every
    /// connection (kept-alive ones included, which a client's pool would
    /// otherwise reuse); returns once they are closed.
    pub(crate) async fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if tokio::time::timeout(Duration::from_secs(5), &mut self.task).await.is_err() {
            self.task.abort();
        }
    }

    /// The models it has now, full names.
    pub(crate) fn models(&self) -> Vec<String> {
        self.state.models.lock().unwrap().iter().cloned().collect()
    }

    /// The requests it took, but for `GET /`: the controllers' health probes
    /// of the endpoint, which come on their own schedule.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        let seen = self.state.seen.lock().unwrap();
        seen.iter().filter(|s| !(s.method == "GET" && s.path == "/")).cloned().collect()
    }

    /// When each line of each streamed generate/chat was sent (Unix seconds).
    pub(crate) fn sent(&self) -> Vec<Vec<f64>> {
        self.state.sent.lock().unwrap().clone()
    }
}

impl Drop for FakeOllama {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Shared = State<Arc<Inner>>;

/// Ollama's `allowedHostsMiddleware` for a loopback listener: records the
/// request, then lets in IP literals that are loopback, private or
/// unspecified, `localhost`, and `*.localhost`, `*.local`, `*.internal`
/// names; anything else is 403 with an empty body.
async fn host_check(State(state): Shared, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let text = |name| headers.get(name).and_then(|v: &header::HeaderValue| v.to_str().ok()).map(str::to_owned);
    let host = text(header::HOST);
    state.seen.lock().unwrap().push(Seen {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
        host: host.clone(),
        authorization: text(header::AUTHORIZATION),
    });
    if host.as_deref().is_none_or(allowed_host) {
        next.run(request).await
    } else {
        StatusCode::FORBIDDEN.into_response()
    }
}

/// Whether a loopback-bound Ollama takes this `Host` header.
pub(crate) fn allowed_host(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.parse::<u16>().is_ok() && !name.ends_with(':') => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = name.parse::<IpAddr>() {
        return match ip {
            IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_unspecified(),
            IpAddr::V6(v6) => v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xfe00) == 0xfc00,
        };
    }
    let name = name.to_ascii_lowercase();
    name.is_empty()
        || name == "localhost"
        || [".localhost", ".local", ".internal"].iter().any(|suffix| name.ends_with(suffix))
}

fn full_name(model: &str) -> String {
    if model.contains(':') { model.to_owned() } else { format!("{model}:latest") }
}

/// `{"error": message}` with `status`, as Ollama's handlers answer.
fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

/// An error answer, for `?`.
struct Failed(StatusCode, String);

impl IntoResponse for Failed {
    fn into_response(self) -> Response {
        error(self.0, &self.1)
    }
}

/// The request body as JSON, or Ollama's 400s for a missing or broken one.
fn body_json(body: &Bytes) -> Result<Value, Failed> {
    if body.is_empty() {
        return Err(Failed(StatusCode::BAD_REQUEST, "missing request body".into()));
    }
    serde_json::from_slice(body).map_err(|e| Failed(StatusCode::BAD_REQUEST, e.to_string()))
}

/// The `model` of a request (the legacy `name` too), or 400.
fn model_of(request: &Value) -> Result<String, Failed> {
    let model = request["model"].as_str().or(request["name"].as_str()).unwrap_or_default();
    if model.is_empty() {
        Err(Failed(StatusCode::BAD_REQUEST, "model is required".into()))
    } else {
        Ok(model.to_owned())
    }
}

fn now() -> String {
    "2026-01-01T00:00:00.000000000Z".to_owned()
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs_f64()
}

fn digest_of(model: &str) -> String {
    let mut hex = String::new();
    for byte in model.bytes().cycle().take(32) {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

async fn tags(State(state): Shared) -> Json<Value> {
    let models: Vec<Value> = state
        .models
        .lock()
        .unwrap()
        .iter()
        .map(|name| {
            json!({
                "name": name, "model": name, "modified_at": "2026-01-01T08:06:48.639712648-07:00",
                "size": 1_234_567, "digest": digest_of(name),
                "details": {"parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"],
                            "parameter_size": "1B", "quantization_level": "Q4_0"}
            })
        })
        .collect();
    Json(json!({ "models": models }))
}

async fn show(State(state): Shared, body: Bytes) -> Result<Response, Failed> {
    let model = model_of(&body_json(&body)?)?;
    if !state.models.lock().unwrap().contains(&full_name(&model)) {
        return Err(Failed(StatusCode::NOT_FOUND, format!("model '{model}' not found")));
    }
    Ok(Json(json!({
        "modelfile": format!("FROM {model}\n"), "parameters": "", "template": "{{ .Prompt }}",
        "details": {"format": "gguf", "family": "llama", "parameter_size": "1B", "quantization_level": "Q4_0"},
        "model_info": {"general.architecture": "llama", "general.basename": state.config.name},
        "capabilities": ["completion"], "modified_at": "2026-01-01T08:06:48.639712648-07:00"
    }))
    .into_response())
}

/// The final object's counters (nanoseconds and token counts).
fn counters(line: &mut Value, tokens: usize) {
    let extra = json!({
        "done": true, "done_reason": "stop", "total_duration": 1_500_000_000u64, "load_duration": 1_000_000,
        "prompt_eval_count": 4, "prompt_eval_duration": 2_000_000, "eval_count": tokens,
        "eval_duration": 500_000_000
    });
    for (key, value) in extra.as_object().expect("an object") {
        line[key] = value.clone();
    }
}

/// Generate (`response`) and chat (`message`): validation, then one answer
/// (`stream: false`) or an NDJSON stream of `chunks` lines `chunk_delay`
/// apart and a final `done: true` line with the counters.
async fn answer(state: Arc<Inner>, body: Bytes, chat: bool) -> Result<Response, Failed> {
    let request = body_json(&body)?;
    let model = model_of(&request)?;
    if !state.models.lock().unwrap().contains(&full_name(&model)) {
        return Err(Failed(StatusCode::NOT_FOUND, format!("model \"{model}\" not found, try pulling it first")));
    }
    let name = state.config.name.clone();
    let words: Vec<String> =
        (0..state.config.chunks).map(|i| if i == 0 { format!("[{name}]") } else { format!(" w{i}") }).collect();
    let line = move |text: &str| {
        let mut line = json!({"model": model, "created_at": now()});
        if chat {
            line["message"] = json!({"role": "assistant", "content": text});
        } else {
            line["response"] = json!(text);
        }
        line["done"] = json!(false);
        line
    };
    let finish = |mut last: Value, tokens: usize| {
        counters(&mut last, tokens);
        if !chat {
            last["context"] = json!([1, 2, 3]);
        }
        last
    };
    if request["stream"] == json!(false) {
        let whole = finish(line(&words.concat()), words.len());
        return Ok(Json(whole).into_response());
    }
    let mut lines: Vec<Value> = words.iter().map(|word| line(word)).collect();
    lines.push(finish(line(""), words.len()));
    let delay = state.config.chunk_delay;
    let times = {
        let mut sent = state.sent.lock().unwrap();
        sent.push(Vec::new());
        sent.len() - 1
    };
    let stream = futures_util::stream::iter(lines.into_iter().enumerate()).then(move |(i, line)| {
        let state = state.clone();
        async move {
            if i > 0 {
                tokio::time::sleep(delay).await;
            }
            state.sent.lock().unwrap()[times].push(unix_now());
            Ok::<_, std::convert::Infallible>(format!("{line}\n"))
        }
    });
    Ok(ndjson(Body::from_stream(stream)))
}

fn ndjson(body: Body) -> Response {
    ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}

async fn generate(State(state): Shared, body: Bytes) -> Result<Response, Failed> {
    answer(state, body, false).await
}

async fn chat(State(state): Shared, body: Bytes) -> Result<Response, Failed> {
    answer(state, body, true).await
}

/// The status lines of a pull, `pull_delay` apart; the model is added once
/// `writing manifest` is sent, so a client that hangs up before gets none. A
/// name the registry lacks fails after `pulling manifest`, as the real server
/// does.
async fn pull(State(state): Shared, body: Bytes) -> Result<Response, Failed> {
    let request = body_json(&body)?;
    let model = model_of(&request)?;
    let full = full_name(&model);
    let known = state.config.registry.iter().any(|m| full_name(m) == full);
    let missing = "pull model manifest: file does not exist";
    if request["stream"] == json!(false) {
        if !known {
            return Err(Failed(StatusCode::INTERNAL_SERVER_ERROR, missing.into()));
        }
        state.models.lock().unwrap().insert(full);
        return Ok(Json(json!({"status": "success"})).into_response());
    }
    let mut lines = vec![json!({"status": "pulling manifest"})];
    if known {
        let digest = format!("sha256:{}", digest_of(&full));
        let total = 3000;
        lines.push(json!({"status": format!("pulling {}", &digest[7..19]), "digest": digest, "total": total}));
        for completed in [1000, 2000, 3000] {
            lines.push(json!({"status": format!("pulling {}", &digest[7..19]), "digest": digest, "total": total, "completed": completed}));
        }
        lines.push(json!({"status": "verifying sha256 digest"}));
        lines.push(json!({"status": "writing manifest"}));
        lines.push(json!({"status": "success"}));
    } else {
        lines.push(json!({"error": missing}));
    }
    let delay = state.config.pull_delay;
    let stream = futures_util::stream::iter(lines.into_iter().enumerate()).then(move |(i, line)| {
        let (state, full) = (state.clone(), full.clone());
        async move {
            if i > 0 {
                tokio::time::sleep(delay).await;
            }
            if line["status"] == "writing manifest" {
                state.models.lock().unwrap().insert(full);
            }
            Ok::<_, std::convert::Infallible>(format!("{line}\n"))
        }
    });
    Ok(ndjson(Body::from_stream(stream)))
}

/// OpenAI's chat completions, the non-streamed answer and, with
/// `stream: true`, SSE frames ending in `[DONE]`.
async fn openai_chat(State(state): Shared, body: Bytes) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            let error = json!({"error": {"message": e.to_string(), "type": "invalid_request_error", "param": null, "code": null}});
            return (StatusCode::BAD_REQUEST, Json(error)).into_response();
        }
    };
    let model = request["model"].as_str().unwrap_or_default().to_owned();
    if !state.models.lock().unwrap().contains(&full_name(&model)) {
        let message = format!("model \"{model}\" not found, try pulling it first");
        let error = json!({"error": {"message": message, "type": "not_found_error", "param": null, "code": null}});
        return (StatusCode::NOT_FOUND, Json(error)).into_response();
    }
    let content = format!("[{}]", state.config.name);
    if request["stream"] == json!(true) {
        let chunk = |delta: Value, finish: Value| {
            json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_767_225_600, "model": model,
                   "system_fingerprint": "fp_ollama", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        let frames = [
            chunk(json!({"role": "assistant", "content": content}), Value::Null),
            chunk(json!({"role": "assistant", "content": ""}), json!("stop")),
        ];
        let mut text: String = frames.iter().map(|frame| format!("data: {frame}\n\n")).collect();
        text.push_str("data: [DONE]\n\n");
        return ([(header::CONTENT_TYPE, "text/event-stream")], text).into_response();
    }
    Json(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1_767_225_600, "model": model,
        "system_fingerprint": "fp_ollama",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 1, "total_tokens": 5}
    }))
    .into_response()
}
