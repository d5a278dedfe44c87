//! The Ollama-compatible proxy at `/ollama/` (design section 5): any Ollama
//! request (`/ollama/api/generate`, `/ollama/api/tags`, `/ollama/v1/...`) goes
//! to the node that serves the Ollama capability now, so a client pointed at
//! any node (`OLLAMA_HOST=http://<node>:8000/ollama`) reaches the LLM wherever
//! it runs. It sits behind the API's auth like every other route; the Python
//! `ollama` client sends `OLLAMA_API_KEY` as the bearer key.
//!
//! Which capability: the one with `provider: ollama`; of several, the one
//! named `llm_inference`, else the first by name ([`ollama_capability`]).
//! Which node, how, failover and streaming: [`passthrough`](super::passthrough).
//! Errors of the proxy itself are Ollama's shape, `{"error": "..."}`, since
//! Ollama clients show that field.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::passthrough::{ErrorShape, Target, pass_through, read_body};
use super::state::ApiState;
use crate::manifest::ManifestSet;
use crate::manifest::kinds::{CapabilitySpec, Provider};

/// Where the proxy is mounted on the mesh API.
pub(crate) const PREFIX: &str = "/ollama";

/// The capability a mesh with several Ollama capabilities proxies to.
pub(crate) const LLM_INFERENCE: &str = "llm_inference";

/// The Capability the proxy serves: the one with `provider: ollama`; of
/// several, the one named [`LLM_INFERENCE`], else the first by name.
pub(crate) fn ollama_capability(set: &ManifestSet) -> Option<(&str, &CapabilitySpec)> {
    let mut ollama = set.capabilities.iter().filter(|(_, object)| object.spec.provider == Provider::Ollama);
    let first = ollama.clone().next()?;
    let chosen = ollama.find(|(name, _)| name.as_str() == LLM_INFERENCE).unwrap_or(first);
    Some((chosen.0.as_str(), &chosen.1.spec))
}

/// Proxies one request (any method, any path under [`PREFIX`]).
pub(crate) async fn proxy(State(state): State<ApiState>, request: Request) -> Response {
    let shape = ErrorShape::Ollama;
    let (parts, body) = request.into_parts();
    let rest = parts.uri.path().strip_prefix(PREFIX).unwrap_or_default();
    let Some(set) = state.shared.applied_set() else {
        let here = state.router.node();
        let message = format!("node \"{here}\" has no manifests in force yet, so it knows no Ollama capability");
        return shape.not_sent(StatusCode::SERVICE_UNAVAILABLE, "no_set", &message);
    };
    let Some((capability, spec)) = ollama_capability(&set) else {
        return shape.not_sent(
            StatusCode::SERVICE_UNAVAILABLE,
            "unknown_capability",
            "no Capability with provider: ollama is declared",
        );
    };
    // Read only once there is somewhere to send it.
    let body = match read_body(body, shape).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let base = &spec.endpoint.path.value;
    let target = Target { set: &set, capability, spec, mount: PREFIX.to_owned(), base, shape };
    pass_through(&state, target, &parts, rest, body).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{SourceFile, validate};

    fn set(capabilities: &[(&str, &str)]) -> ManifestSet {
        let mut text = "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: a}\nspec: {role: primary, address: 127.0.0.1}\n".to_owned();
        for (name, provider) in capabilities {
            text.push_str(&format!(
                "---\napiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {{name: {name}}}\n\
                 spec: {{provider: {provider}, placement: {{prefer: [a]}}, endpoint: {{port: 11434}}}}\n"
            ));
        }
        let validation = validate(&[SourceFile { path: "m.yaml".into(), text }], Vec::new());
        assert!(validation.is_valid(), "{:?}", validation.diagnostics);
        validation.set
    }

    #[test]
    fn the_ollama_capability_is_llm_inference_else_the_first_ollama_one_by_name() {
        let name = |caps: &[(&str, &str)]| ollama_capability(&set(caps)).map(|(name, _)| name.to_owned());
        assert_eq!(
            name(&[("a_http", "http"), ("llm_inference", "ollama"), ("b_llm", "ollama")]).unwrap(),
            "llm_inference"
        );
        assert_eq!(name(&[("a_http", "http"), ("z_llm", "ollama"), ("b_llm", "ollama")]).unwrap(), "b_llm");
        assert_eq!(name(&[("llm_inference", "http")]), None);
        assert_eq!(name(&[]), None);
    }
}
