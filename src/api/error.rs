//! The API's errors: JSON `{error, message}` with a status, and every
//! rejection of axum's (body, path, upgrade) turned into that shape, so no
//! input gets a 500 or a plain-text answer.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::wire::{self, ErrorBody};

pub(super) fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
}

/// An error as the API returns it.
pub(super) struct ApiError {
    pub(super) status: StatusCode,
    pub(super) body: ErrorBody,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, error: &str, message: impl Into<String>) -> Self {
        ApiError { status, body: ErrorBody { error: error.into(), message: message.into(), diagnostics: Vec::new() } }
    }
}

/// A body that is too large (413), not sent as JSON (415), not JSON or not
/// the request's shape (400: a wrong type, a missing or an unknown field,
/// which axum alone would answer 422): answered as JSON like every other
/// error, not as axum's plain text. 422 is kept for a request that reads but
/// is refused on its merits (a bundle with manifest errors).
impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let (status, error) = match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            StatusCode::UNPROCESSABLE_ENTITY => (StatusCode::BAD_REQUEST, "bad_request"),
            status => (status, "bad_request"),
        };
        ApiError::new(status, error, rejection.body_text())
    }
}

/// A path parameter that does not read (not UTF-8 once decoded).
impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        let status = if rejection.status().is_server_error() { rejection.status() } else { StatusCode::BAD_REQUEST };
        ApiError::new(status, "bad_request", rejection.body_text())
    }
}

/// `GET /api/v1/events` without a WebSocket handshake.
impl From<WebSocketUpgradeRejection> for ApiError {
    fn from(rejection: WebSocketUpgradeRejection) -> Self {
        let message = format!("{}; /api/v1/events is a WebSocket", rejection.body_text());
        ApiError::new(rejection.status(), "bad_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("a valid header"));
        }
        response
    }
}

impl From<wire::ReadError> for ApiError {
    fn from(error: wire::ReadError) -> Self {
        match error {
            wire::ReadError::NewerProtocol(message) => {
                ApiError::new(StatusCode::BAD_REQUEST, "unsupported_protocol", message)
            }
            wire::ReadError::Malformed(message) => bad_request(message),
        }
    }
}
