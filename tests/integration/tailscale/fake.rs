//! A fake tailscaled: its LocalAPI on a unix socket in a temporary folder,
//! answering the way the real one does (the shared reference, section A): the
//! Host and browser-header guard, tab-indented PascalCase JSON, and Go's
//! plain-text `http.Error` answers such as `no match for IP:port`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use tempfile::TempDir;
use tokio::net::UnixListener;
use tokio::task::JoinHandle;

/// The wire-format fixtures the fake serves, shared with the unit tests.
pub(crate) const STATUS: &str = include_str!("../../fixtures/tailscale/status.json");
pub(crate) const STATUS_NO_PEERS: &str = include_str!("../../fixtures/tailscale/status-no-peers.json");
pub(crate) const WHOIS_USER: &str = include_str!("../../fixtures/tailscale/whois-user.json");
pub(crate) const WHOIS_OTHER_USER: &str = include_str!("../../fixtures/tailscale/whois-other-user.json");
pub(crate) const WHOIS_TAGGED: &str = include_str!("../../fixtures/tailscale/whois-tagged.json");

/// The fake's socket (or, as the macOS apps serve it, loopback port) and what
/// it answers; the server stops when dropped.
pub(crate) struct FakeTailscaled {
    _dir: TempDir,
    socket: PathBuf,
    port: Option<u16>,
    state: Arc<FakeState>,
    server: JoinHandle<()>,
}

#[derive(Default)]
struct FakeState {
    status: Mutex<String>,
    /// Whois answers by the caller's IP (tailscaled ignores the port but for
    /// proxied connections); any other address is no match.
    whois: Mutex<HashMap<IpAddr, String>>,
    /// Every `addr` whois was asked about, decoded.
    asked: Mutex<Vec<String>>,
}

impl FakeTailscaled {
    /// Serves [`STATUS`] on a unix socket and knows nobody for whois.
    pub(crate) fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("tailscaled.sock");
        let state = Arc::new(FakeState { status: Mutex::new(STATUS.into()), ..FakeState::default() });
        let router = router(state.clone());
        let listener = UnixListener::bind(&socket).expect("bind the fake LocalAPI socket");
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("the fake LocalAPI serves");
        });
        FakeTailscaled { _dir: dir, socket, port: None, state, server }
    }

    /// Serves as the macOS apps do: on a loopback port, to callers whose Basic
    /// auth password is `token` (401 without one, 403 with another).
    pub(crate) async fn start_app(token: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = Arc::new(FakeState { status: Mutex::new(STATUS.into()), ..FakeState::default() });
        let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!(":{token}")));
        let router = router(state.clone()).layer(middleware::from_fn(move |request: Request, next: Next| {
            let expected = expected.clone();
            async move {
                match request.headers().get(header::AUTHORIZATION) {
                    None => go_error(StatusCode::UNAUTHORIZED, "auth required"),
                    Some(given) if given.as_bytes() != expected.as_bytes() => {
                        go_error(StatusCode::FORBIDDEN, "bad password")
                    }
                    Some(_) => next.run(request).await,
                }
            }
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake app's port");
        let port = listener.local_addr().expect("an address").port();
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("the fake LocalAPI serves");
        });
        FakeTailscaled { socket: dir.path().join("no-socket"), _dir: dir, port: Some(port), state, server }
    }

    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }

    /// The loopback port of a fake started with [`FakeTailscaled::start_app`].
    pub(crate) fn port(&self) -> u16 {
        self.port.expect("the fake serves on a port")
    }

    pub(crate) fn set_status(&self, json: &str) {
        *self.state.status.lock().unwrap() = json.into();
    }

    /// Whois of any port on `ip` answers `json`.
    pub(crate) fn answer_whois(&self, ip: IpAddr, json: &str) {
        self.state.whois.lock().unwrap().insert(ip, json.into());
    }

    /// The `addr` of every whois request so far, as tailscaled decoded it.
    pub(crate) fn whois_asked(&self) -> Vec<String> {
        self.state.asked.lock().unwrap().clone()
    }
}

impl Drop for FakeTailscaled {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The LocalAPI's routes behind tailscaled's browser guard.
fn router(state: Arc<FakeState>) -> Router {
    Router::new()
        .route("/", get(|| async { "tailscaled\n" }))
        .route("/localapi/v0/status", get(status))
        .route("/localapi/v0/whois", get(whois))
        .fallback(|| async { go_error(StatusCode::NOT_FOUND, "404 page not found") })
        .layer(middleware::from_fn(localapi_guard))
        .with_state(state)
}

/// A socket that accepts connections and never answers: a hung tailscaled.
pub(crate) struct SilentTailscaled {
    _dir: TempDir,
    socket: PathBuf,
    server: JoinHandle<()>,
}

impl SilentTailscaled {
    pub(crate) fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("tailscaled.sock");
        let listener = UnixListener::bind(&socket).expect("bind the silent socket");
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        SilentTailscaled { _dir: dir, socket, server }
    }

    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for SilentTailscaled {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// tailscaled's guard against browsers and DNS rebinding: the Host must be
/// `local-tailscaled.sock` or empty, and no Origin or Referer may be sent.
async fn localapi_guard(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host_ok =
        headers.get(header::HOST).is_none_or(|host| matches!(host.as_bytes(), b"" | b"local-tailscaled.sock"));
    if !host_ok || headers.contains_key(header::ORIGIN) || headers.contains_key(header::REFERER) {
        return go_error(StatusCode::FORBIDDEN, "invalid localapi request");
    }
    let mut response = next.run(request).await;
    response.headers_mut().insert("Tailscale-Version", HeaderValue::from_static("1.90.0-t1234abcd-g5678ef01"));
    response
}

async fn status(State(state): State<Arc<FakeState>>) -> Response {
    json(state.status.lock().unwrap().clone())
}

async fn whois(State(state): State<Arc<FakeState>>, Query(query): Query<HashMap<String, String>>) -> Response {
    let Some(addr) = query.get("addr").filter(|addr| !addr.is_empty()) else {
        return go_error(StatusCode::BAD_REQUEST, "missing 'addr' parameter");
    };
    state.asked.lock().unwrap().push(addr.clone());
    let ip = match (addr.parse::<SocketAddr>(), addr.parse::<IpAddr>()) {
        (Ok(socket_addr), _) => socket_addr.ip(),
        (_, Ok(ip)) => ip,
        _ if addr.starts_with("nodekey:") => return go_error(StatusCode::NOT_FOUND, "no match for IP:port"),
        _ => return go_error(StatusCode::BAD_REQUEST, "invalid 'addr' parameter"),
    };
    match state.whois.lock().unwrap().get(&ip) {
        Some(answer) => json(answer.clone()),
        None => go_error(StatusCode::NOT_FOUND, "no match for IP:port"),
    }
}

fn json(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// What Go's `http.Error` writes: plain text and a newline.
fn go_error(status: StatusCode, message: &str) -> Response {
    let headers = [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::X_CONTENT_TYPE_OPTIONS, "nosniff")];
    (status, headers, format!("{message}\n")).into_response()
}
