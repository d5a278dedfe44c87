//! The edge client of one Ollama server, for what the controller itself asks of
//! it: which models it has (`/api/tags`) and pulling one (`/api/pull`, NDJSON
//! status lines). Wire facts: the shared reference, section B.

pub mod pulls;

use std::time::Duration;

use futures_util::StreamExt;
use serde::Deserialize;

use crate::net::{self, root_cause};

/// `/api/tags` answers at once.
const TAGS_TIMEOUT: Duration = Duration::from_secs(5);
/// A pull sends a status line at least this often while it works.
const PULL_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OllamaError {
    #[error("Ollama at {url} is not reachable: {reason}")]
    Unreachable { url: String, reason: String },
    /// Ollama's own `{"error": …}`, before or during a stream.
    #[error("Ollama at {url} says: {message}")]
    Refused { url: String, message: String },
    #[error("Ollama at {url} gave an unexpected answer: {reason}")]
    Decode { url: String, reason: String },
}

/// One status line of a pull.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct PullProgress {
    pub status: String,
    #[serde(default)]
    pub digest: Option<String>,
    #[serde(default)]
    pub total: Option<u64>,
    #[serde(default)]
    pub completed: Option<u64>,
}

#[derive(Clone)]
pub struct OllamaClient {
    base: String,
    http: reqwest::Client,
}

impl OllamaClient {
    /// A client of the Ollama at `base` (`http://host:port`).
    pub fn new(base: &str) -> OllamaClient {
        let http = net::http_client(net::CONNECT_TIMEOUT).build().expect("a plain HTTP client builds");
        OllamaClient { base: base.trim_end_matches('/').to_owned(), http }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The names of the models present (`name:tag`).
    pub async fn models(&self) -> Result<Vec<String>, OllamaError> {
        #[derive(Deserialize)]
        struct Tags {
            models: Vec<Tag>,
        }
        #[derive(Deserialize)]
        struct Tag {
            name: String,
        }
        let response = self
            .http
            .get(format!("{}/api/tags", self.base))
            .timeout(TAGS_TIMEOUT)
            .send()
            .await
            .map_err(|error| self.unreachable(&error))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|error| self.unreachable(&error))?;
        if !status.is_success() {
            return Err(self.refused(&bytes, status));
        }
        let tags: Tags = serde_json::from_slice(&bytes)
            .map_err(|error| OllamaError::Decode { url: self.base.clone(), reason: error.to_string() })?;
        Ok(tags.models.into_iter().map(|tag| tag.name).collect())
    }

    /// Pulls `model`, telling each status line to `progress`; Ok once Ollama
    /// said `success`.
    pub async fn pull(&self, model: &str, mut progress: impl FnMut(PullProgress)) -> Result<(), OllamaError> {
        let response = self
            .http
            .post(format!("{}/api/pull", self.base))
            .json(&serde_json::json!({ "model": model, "stream": true }))
            .send()
            .await
            .map_err(|error| self.unreachable(&error))?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response.bytes().await.map_err(|error| self.unreachable(&error))?;
            return Err(self.refused(&bytes, status));
        }
        let mut body = response.bytes_stream();
        let mut pending = Vec::new();
        let mut succeeded = false;
        loop {
            let chunk = match tokio::time::timeout(PULL_IDLE_TIMEOUT, body.next()).await {
                Ok(Some(chunk)) => chunk.map_err(|error| self.unreachable(&error))?,
                Ok(None) => break,
                Err(_) => {
                    let reason = format!("no progress for {}s", PULL_IDLE_TIMEOUT.as_secs());
                    return Err(OllamaError::Unreachable { url: self.base.clone(), reason });
                }
            };
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|byte| *byte == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                succeeded |= self.pull_line(&line[..end], &mut progress)?;
            }
        }
        if !pending.is_empty() {
            succeeded |= self.pull_line(&pending, &mut progress)?;
        }
        if succeeded {
            Ok(())
        } else {
            Err(OllamaError::Decode { url: self.base.clone(), reason: "the pull ended without success".into() })
        }
    }

    /// One NDJSON line of a pull: true when it says `success`.
    fn pull_line(&self, line: &[u8], progress: &mut impl FnMut(PullProgress)) -> Result<bool, OllamaError> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(false);
        }
        let value: serde_json::Value = serde_json::from_slice(line)
            .map_err(|error| OllamaError::Decode { url: self.base.clone(), reason: error.to_string() })?;
        if let Some(message) = value.get("error").and_then(|e| e.as_str()) {
            return Err(OllamaError::Refused { url: self.base.clone(), message: message.to_owned() });
        }
        let line: PullProgress = serde_json::from_value(value)
            .map_err(|error| OllamaError::Decode { url: self.base.clone(), reason: error.to_string() })?;
        let success = line.status == "success";
        progress(line);
        Ok(success)
    }

    fn unreachable(&self, error: &reqwest::Error) -> OllamaError {
        OllamaError::Unreachable { url: self.base.clone(), reason: root_cause(error) }
    }

    fn refused(&self, body: &[u8], status: reqwest::StatusCode) -> OllamaError {
        let message = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|value| value.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or_else(|| format!("{status}: {}", String::from_utf8_lossy(body).trim()));
        OllamaError::Refused { url: self.base.clone(), message }
    }
}

/// Whether `wanted` (as a manifest names it) is among `present` (as
/// `/api/tags` names them): a name without a tag means `:latest`.
pub fn has_model(present: &[String], wanted: &str) -> bool {
    let full = |name: &str| if name.contains(':') { name.to_owned() } else { format!("{name}:latest") };
    let wanted = full(wanted);
    present.iter().any(|name| full(name) == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_without_a_tag_is_its_latest() {
        let present = vec!["llama3.2:latest".to_owned(), "qwen2.5:7b".to_owned()];
        let cases = [
            ("llama3.2", true),
            ("llama3.2:latest", true),
            ("qwen2.5:7b", true),
            ("qwen2.5", false),
            ("llama3.2:1b", false),
            ("mistral", false),
        ];
        for (wanted, expected) in cases {
            assert_eq!(has_model(&present, wanted), expected, "{wanted}");
        }
    }

    /// A one-route server on loopback answering with `body` and `status`.
    async fn serve(route: &'static str, status: u16, body: &'static str) -> String {
        use axum::routing::any;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let status = axum::http::StatusCode::from_u16(status).unwrap();
        let app = axum::Router::new().route(route, any(move || async move { (status, body) }));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn tags_are_listed_and_an_error_body_is_read() {
        let base = serve("/api/tags", 200, r#"{"models":[{"name":"llama3.2:latest","size":1}]}"#).await;
        assert_eq!(OllamaClient::new(&base).models().await.unwrap(), ["llama3.2:latest"]);
        let base = serve("/api/tags", 500, r#"{"error":"disk on fire"}"#).await;
        let error = OllamaClient::new(&base).models().await.unwrap_err();
        assert_eq!(error, OllamaError::Refused { url: base, message: "disk on fire".into() });
    }

    #[tokio::test]
    async fn a_pull_reports_each_line_and_ends_at_success_or_an_error_line() {
        let lines = "{\"status\":\"pulling manifest\"}\n\
                     {\"status\":\"pulling 6a0746a1ec1a\",\"digest\":\"sha256:6a07\",\"total\":100,\"completed\":40}\n\
                     {\"status\":\"verifying sha256 digest\"}\n{\"status\":\"writing manifest\"}\n{\"status\":\"success\"}\n";
        let base = serve("/api/pull", 200, lines).await;
        let mut seen = Vec::new();
        OllamaClient::new(&base).pull("llama3.2", |line| seen.push(line)).await.unwrap();
        assert_eq!(seen.len(), 5);
        assert_eq!((seen[1].total, seen[1].completed), (Some(100), Some(40)));

        let failing = "{\"status\":\"pulling manifest\"}\n{\"error\":\"pull model manifest: file does not exist\"}\n";
        let base = serve("/api/pull", 200, failing).await;
        let error = OllamaClient::new(&base).pull("nope", |_| {}).await.unwrap_err();
        assert!(matches!(error, OllamaError::Refused { ref message, .. } if message.contains("file does not exist")));

        let base = serve("/api/pull", 200, "{\"status\":\"pulling manifest\"}\n").await;
        assert!(OllamaClient::new(&base).pull("cut", |_| {}).await.is_err(), "no success line, no success");
        let error = OllamaClient::new("http://127.0.0.1:9").models().await.unwrap_err();
        assert!(matches!(error, OllamaError::Unreachable { .. }), "{error:?}");
    }
}
