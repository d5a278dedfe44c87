//! The capability pass-through at `/cap/<name>/…` (design section 5): any
//! HTTP request (any method, path, query, headers and body) goes to the node
//! that serves capability `<name>` now, `/cap/<name>/x` to its endpoint's
//! `/x` (the server's root, whatever `endpoint.path` says, so `healthPath`
//! and a client's own paths read the same through it), so a client of an HTTP capability
//! (Chroma's) talks to its own node's mesh API, with the mesh key, and the
//! endpoint itself can stay on its node's loopback. Which node, how, failover
//! and streaming: [`passthrough`](super::passthrough). Errors of the
//! pass-through itself are the mesh API's `{error, message}`.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::passthrough::{ErrorShape, Target, pass_through, read_body};
use super::state::ApiState;
use super::wire::CAP_PREFIX as PREFIX;
use crate::diagnostic::did_you_mean;

/// Splits a path under [`PREFIX`] into the capability's name and the rest
/// (empty, or starting with `/`): `/cap/vector_db/api/v2` is
/// `("vector_db", "/api/v2")`.
pub(crate) fn name_and_rest(path: &str) -> Option<(&str, &str)> {
    let after = path.strip_prefix(PREFIX)?.strip_prefix('/')?;
    let (name, rest) = after.find('/').map_or((after, ""), |slash| after.split_at(slash));
    (!name.is_empty()).then_some((name, rest))
}

/// Passes one request through to the node serving the capability it names.
pub(crate) async fn proxy(State(state): State<ApiState>, request: Request) -> Response {
    let shape = ErrorShape::Mesh;
    let (parts, body) = request.into_parts();
    let Some((name, rest)) = name_and_rest(parts.uri.path()) else {
        return shape.error(StatusCode::NOT_FOUND, "not_found", "name a capability: /cap/<name>/...");
    };
    let Some(set) = state.shared.applied_set() else {
        let here = state.router.node();
        return shape.not_sent(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_set",
            &format!("node \"{here}\" has no manifests in force yet"),
        );
    };
    let Some((capability, object)) = set.capabilities.get_key_value(name) else {
        let help = did_you_mean(name, set.capabilities.keys().map(String::as_str));
        let help = help.map(|help| format!("; {help}")).unwrap_or_default();
        // A peer that does not know it (another revision) sent nothing.
        let message = format!("unknown capability \"{name}\"{help}");
        return shape.not_sent(StatusCode::NOT_FOUND, "unknown_capability", &message);
    };
    // Read only once there is somewhere to send it.
    let body = match read_body(body, shape).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let mount = format!("{PREFIX}/{capability}");
    let target = Target { set: &set, capability, spec: &object.spec, mount, base: "/", shape };
    pass_through(&state, target, &parts, rest, body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_names_the_capability_then_the_rest() {
        let table = [
            ("/cap/vector_db/api/v2/heartbeat", Some(("vector_db", "/api/v2/heartbeat"))),
            ("/cap/vector_db/", Some(("vector_db", "/"))),
            ("/cap/vector_db", Some(("vector_db", ""))),
            ("/cap/", None),
            ("/cap", None),
            ("/capx/a", None),
            ("/ollama/api", None),
        ];
        for (path, expected) in table {
            assert_eq!(name_and_rest(path), expected, "{path}");
        }
    }
}
