//! How the page at `/` authenticates: it trades the key (or a `meshctl ui`
//! ticket) for a session cookie (`POST /ui/session`), which the key
//! middleware then accepts like the key; `DELETE /ui/session` forgets it. A
//! cookie is never usable cross-site: `SameSite=Strict`, and a request it
//! authenticates that changes state or opens the event stream must come
//! from the page's own origin. The daemon serves plain HTTP, so the cookie
//! has no `Secure` flag. The page's actions need the key's authority: a
//! browser let in by its Tailscale identity alone reads, and is asked for the
//! key before it acts (`MayAct`).

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::state::ApiState;
use super::ui_tokens::{SESSION_LIFETIME, TICKET_LIFETIME};
use super::wire::{UiAuthority, UiSessionGranted, UiSessionRequest, UiTicket};

/// The session cookie's name.
pub(super) const COOKIE: &str = "mesh_session";

/// What a request's session cookie says to the key middleware.
pub(super) enum Admission {
    /// No live session cookie: the key or a Tailscale identity decides.
    NoSession,
    Admitted,
    /// A live session, used from another origin where that is refused.
    Refused(ApiError),
}

/// Whether the request's session cookie lets it in.
pub(super) fn admission(state: &ApiState, headers: &HeaderMap, method: &Method) -> Admission {
    let Some(token) = session_cookie(headers) else { return Admission::NoSession };
    let key = state.handles.api_key.get();
    if !state.ui_tokens.session_valid(token, Instant::now(), key.as_deref()) {
        return Admission::NoSession;
    }
    if needs_same_origin(method, headers) && !same_origin(headers) {
        return Admission::Refused(cross_origin());
    }
    Admission::Admitted
}

/// How the key middleware let a request in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum LetIn {
    /// The key itself, as a bearer header.
    Key,
    /// A live session cookie; `under_key` when the node has a key, which the
    /// session was opened with (or with a ticket, issued behind it).
    Session { under_key: bool },
    /// An allowed Tailscale identity, without the key.
    Identity,
}

/// Whether a request that was let in may act (change state, intervene on
/// the event stream), set by the key middleware for the handlers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct MayAct(pub(super) bool);

/// Issue #21: the page's actions need the key. A browser (its requests carry
/// `Origin`) let in by its identity alone, or by a session of a node without
/// a key, reads only; a client that is not a browser (the CLI, the peers)
/// acts by its identity as before, and the key always acts.
pub(super) fn may_act(let_in: LetIn, from_browser: bool) -> bool {
    match let_in {
        LetIn::Key => true,
        LetIn::Session { under_key } => under_key,
        LetIn::Identity => !from_browser,
    }
}

/// Whether a request is an action of the mesh's own API (not of the Ollama
/// and capability pass-throughs, whose callers are the agents' own).
pub(super) fn is_action(method: &Method, path: &str) -> bool {
    let changes_state = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    changes_state && (path.starts_with("/api/v1/") || path.starts_with("/ui/"))
}

/// Whether the request comes from a browser, which sends `Origin` with
/// every request that may change state and every WebSocket handshake.
pub(super) fn from_browser(headers: &HeaderMap) -> bool {
    origin(headers).is_some()
}

/// The refusal of an action a browser sent without the key's authority.
pub(super) fn key_required() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "key_required",
        "an action from the page needs the key: open the page with the key (it asks for it on confirming)",
    )
}

/// `GET /ui/authority`: whether this browser's session may act, so that the
/// page asks for the key on confirming an action only when it must.
pub(super) async fn authority(may: Option<axum::Extension<MayAct>>) -> Json<UiAuthority> {
    Json(UiAuthority { may_act: may.is_some_and(|axum::Extension(MayAct(may))| may) })
}

/// `POST /ui/session`: the key (bearer header or body) or a ticket, traded
/// for a session cookie.
pub(super) async fn open(
    State(state): State<ApiState>,
    headers: HeaderMap,
    request: Result<Option<Json<UiSessionRequest>>, JsonRejection>,
) -> Result<Response, ApiError> {
    let request = request?.map(|Json(request)| request).unwrap_or_default();
    if origin(&headers).is_some() && !same_origin(&headers) {
        return Err(cross_origin());
    }
    let now = Instant::now();
    let in_force = state.handles.api_key.get();
    let key = bearer_key(&headers).or(request.key.as_deref());
    let granted = match (key, request.ticket.as_deref()) {
        (Some(key), _) => state.handles.api_key.matches(key).then_some(()).ok_or("the key is wrong"),
        (None, Some(ticket)) => state
            .ui_tokens
            .redeem_ticket(ticket, now, in_force.as_deref())
            .then_some(())
            .ok_or("the ticket is unknown, used or expired"),
        (None, None) => Err("send the key (Authorization: Bearer, or {\"key\"}) or a ticket ({\"ticket\"})"),
    };
    granted.map_err(|message| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message))?;
    let session = state.ui_tokens.open_session(now, in_force).map_err(no_randomness)?;
    let cookie =
        format!("{COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}", SESSION_LIFETIME.as_secs());
    let granted = UiSessionGranted { expires_in_seconds: SESSION_LIFETIME.as_secs() };
    Ok(([(header::SET_COOKIE, header_value(cookie))], Json(granted)).into_response())
}

/// `DELETE /ui/session`: the "forget" button. Ends the cookie's session, if
/// any, and tells the browser to drop the cookie.
pub(super) async fn forget(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if origin(&headers).is_some() && !same_origin(&headers) {
        return Err(cross_origin());
    }
    if let Some(token) = session_cookie(&headers) {
        state.ui_tokens.end_session(token);
    }
    let expired = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, header_value(expired))]).into_response())
}

/// `POST /ui/ticket` (behind the key): a one-time ticket `meshctl ui` puts
/// in the page's URL fragment instead of the key.
pub(super) async fn ticket(State(state): State<ApiState>) -> Result<Json<UiTicket>, ApiError> {
    let ticket = state.ui_tokens.issue_ticket(Instant::now(), state.handles.api_key.get()).map_err(no_randomness)?;
    Ok(Json(UiTicket { ticket, expires_in_seconds: TICKET_LIFETIME.as_secs() }))
}

/// The key of an `Authorization: Bearer` header.
pub(super) fn bearer_key(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(str::trim)
}

/// The value of the `mesh_session` cookie, in any `Cookie` header.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .filter(|token| !token.is_empty())
}

/// Whether a request must come from the page's origin to use a cookie: it
/// may change state (every method but GET, HEAD and OPTIONS) or opens the
/// event stream, on which the client may intervene.
fn needs_same_origin(method: &Method, headers: &HeaderMap) -> bool {
    let upgrade = headers.get(header::UPGRADE).is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"websocket"));
    same_origin_required(method, upgrade)
}

/// [`needs_same_origin`] by method and whether the request is a WebSocket
/// handshake, for the OpenAPI document's list of who may answer `cross_origin`.
pub(super) fn same_origin_required(method: &Method, websocket: bool) -> bool {
    websocket || !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn origin(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::ORIGIN)?.to_str().ok()
}

/// Whether the `Origin` header names the host the request was sent to. A
/// missing or `null` origin is not the same origin.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|host| host.to_str().ok()) else { return false };
    let Some(origin) = origin(headers) else { return false };
    let authority = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
    authority.is_some_and(|authority| authority.eq_ignore_ascii_case(host))
}

fn cross_origin() -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "cross_origin", "a session cookie is accepted from the page's own origin only")
}

fn no_randomness(error: getrandom::Error) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "no_randomness", format!("no random bytes for a token: {error}"))
}

/// A header value made of a token and fixed text: always valid.
fn header_value(text: String) -> HeaderValue {
    HeaderValue::try_from(text).expect("a cookie of hex and fixed text is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    type Pairs = &'static [(&'static str, &'static str)];

    fn headers(pairs: Pairs) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let cases: [(Pairs, Option<&str>); 5] = [
            (&[("cookie", "mesh_session=abc")], Some("abc")),
            (&[("cookie", "theme=dark; mesh_session=abc; x=y")], Some("abc")),
            (&[("cookie", "theme=dark"), ("cookie", "mesh_session=abc")], Some("abc")),
            (&[("cookie", "mesh_sessionx=abc; mesh_session=")], None),
            (&[], None),
        ];
        for (pairs, expected) in cases {
            assert_eq!(session_cookie(&headers(pairs)), expected, "{pairs:?}");
        }
    }

    #[test]
    fn only_the_page_s_own_origin_is_the_same_origin() {
        let cases: [(Pairs, bool); 6] = [
            (&[("host", "127.0.0.1:7000"), ("origin", "http://127.0.0.1:7000")], true),
            (&[("host", "mini.tail:7000"), ("origin", "https://MINI.tail:7000")], true),
            (&[("host", "127.0.0.1:7000"), ("origin", "http://evil.example")], false),
            (&[("host", "127.0.0.1:7000"), ("origin", "http://127.0.0.1:7001")], false),
            (&[("host", "127.0.0.1:7000"), ("origin", "null")], false),
            (&[("host", "127.0.0.1:7000")], false),
        ];
        for (pairs, expected) in cases {
            assert_eq!(same_origin(&headers(pairs)), expected, "{pairs:?}");
        }
    }

    #[test]
    fn only_the_key_s_authority_acts_from_a_browser() {
        let cases = [
            (LetIn::Key, true, true),
            (LetIn::Key, false, true),
            (LetIn::Session { under_key: true }, true, true),
            (LetIn::Session { under_key: false }, true, false),
            (LetIn::Identity, true, false),
            (LetIn::Identity, false, true),
        ];
        for (let_in, browser, expected) in cases {
            assert_eq!(may_act(let_in, browser), expected, "{let_in:?} from a browser: {browser}");
        }
    }

    #[test]
    fn the_actions_are_the_mesh_api_s_changes_of_state() {
        let cases = [
            (Method::POST, "/api/v1/reconcile", true),
            (Method::POST, "/api/v1/handoff", true),
            (Method::POST, "/ui/ticket", true),
            (Method::DELETE, "/api/v1/x", true),
            (Method::GET, "/api/v1/status", false),
            (Method::GET, "/api/v1/events", false),
            (Method::HEAD, "/api/v1/mesh", false),
            (Method::POST, "/ollama/api/generate", false),
            (Method::POST, "/cap/chroma/api", false),
            (Method::POST, "/mesh/route", false),
        ];
        for (method, path, expected) in cases {
            assert_eq!(is_action(&method, path), expected, "{method} {path}");
        }
    }

    #[test]
    fn a_cookie_must_be_same_origin_to_change_state_or_open_the_stream() {
        let upgrade = headers(&[("upgrade", "websocket")]);
        let plain = HeaderMap::new();
        let cases = [
            (Method::GET, &plain, false),
            (Method::HEAD, &plain, false),
            (Method::GET, &upgrade, true),
            (Method::POST, &plain, true),
            (Method::DELETE, &plain, true),
            (Method::PUT, &plain, true),
        ];
        for (method, headers, expected) in cases {
            assert_eq!(needs_same_origin(&method, headers), expected, "{method} {headers:?}");
        }
    }
}
