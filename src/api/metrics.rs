//! `GET /metrics` and what feeds it from the API: the scrape (the format the
//! scraper asks for, the daemon's state read at that moment), the read-only
//! `MESH_METRICS_KEY` that may scrape and do nothing else, and the layer that
//! counts every request by the route template it matched.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::state::ApiState;
use crate::controller::status::ObjectStatus;
use crate::mesh::placement::Served;
use crate::metrics::{ConditionNow, Format, Now, PullNow};
use crate::ollama::PullProgress;

/// The scrape's path, the only one the metrics key opens.
pub(super) const PATH: &str = "/metrics";

/// The variable of the node's environment (or `.env`) that holds the key
/// which may read `/metrics` and nothing else.
pub(crate) const MESH_METRICS_KEY: &str = "MESH_METRICS_KEY";

/// What a request counts under when it matched no route.
const UNMATCHED: &str = "unmatched";

pub(super) async fn scrape(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|accept| accept.to_str().ok());
    let format = Format::negotiate(accept);
    let objects = state.shared.status().objects();
    let now = now_of(&objects, state.handles.placements.all(), state.handles.pulls.under_way());
    let text = state.shared.metrics().render(&now, format);
    ([(header::CONTENT_TYPE, format.content_type())], text).into_response()
}

/// Whether `request` is a scrape of `/metrics` with the metrics key as its
/// bearer. The key is read from the node's settings as last loaded, so a
/// SIGHUP puts a new one in force; unset, no key opens `/metrics` but the
/// mesh key.
pub(super) fn metrics_key_opens(state: &ApiState, request: &Request, presented: Option<&str>) -> bool {
    let scrape = request.extensions().get::<MatchedPath>().is_some_and(|path| path.as_str() == PATH);
    let (true, Some(presented)) = (scrape, presented) else { return false };
    let env = state.shared.env();
    let key = env.value(MESH_METRICS_KEY);
    key.is_some_and(|key| bool::from(presented.as_bytes().ct_eq(key.as_bytes())))
}

/// Counts a request and times it to its answer's head, under the route
/// template it matched (never its path: `/cap/{name}/{*rest}`, not the URL).
pub(super) async fn count_request(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or(UNMATCHED, MatchedPath::as_str).to_owned();
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    let code = response.status().as_u16();
    state.shared.metrics().http_request(&route, method.as_str(), code, started.elapsed());
    response
}

/// The gauges' view of the daemon: every object's conditions, where each
/// capability is served, the pulls under way.
fn now_of(
    objects: &[ObjectStatus],
    served: impl IntoIterator<Item = (String, Served)>,
    pulls: Vec<(String, PullProgress)>,
) -> Now {
    let conditions = objects
        .iter()
        .flat_map(|object| {
            object.conditions.iter().map(|condition| ConditionNow {
                kind: object.kind.clone(),
                name: object.name.clone(),
                condition_type: condition.condition_type.clone(),
                status: condition.status.clone(),
            })
        })
        .collect();
    let served_by = served.into_iter().map(|(capability, served)| (capability, served.node)).collect();
    let pulls = pulls
        .into_iter()
        .map(|(model, progress)| PullNow {
            model,
            completed_bytes: progress.completed.unwrap_or(0),
            total_bytes: progress.total,
        })
        .collect();
    Now { conditions, served_by, pulls }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::controller::status::Condition;

    #[test]
    fn the_daemon_state_becomes_the_gauges_of_now() {
        let condition = |condition_type: &str, status: &str| Condition {
            condition_type: condition_type.into(),
            status: status.into(),
            reason: "R".into(),
            message: "m".into(),
            last_transition_time: String::new(),
            revision: String::new(),
        };
        let objects = vec![ObjectStatus {
            kind: "Capability".into(),
            name: "llm".into(),
            ready: false,
            conditions: vec![condition("Ready", "False"), condition("Degraded", "True")],
            details: BTreeMap::new(),
        }];
        let served = [("llm".to_owned(), Served { node: "mini".into(), host: "10.0.0.2".into(), port: 11434 })];
        let pulls = vec![(
            "qwen3:8b".to_owned(),
            PullProgress { status: "pulling".into(), digest: None, total: None, completed: None },
        )];
        let now = now_of(&objects, served, pulls);
        let conditions: Vec<_> = now
            .conditions
            .iter()
            .map(|c| (c.kind.as_str(), c.name.as_str(), c.condition_type.as_str(), c.status.as_str()))
            .collect();
        assert_eq!(conditions, [("Capability", "llm", "Ready", "False"), ("Capability", "llm", "Degraded", "True")]);
        assert_eq!(now.served_by, [("llm".to_owned(), "mini".to_owned())]);
        assert_eq!(now.pulls.len(), 1);
        assert_eq!(
            (now.pulls[0].model.as_str(), now.pulls[0].completed_bytes, now.pulls[0].total_bytes),
            ("qwen3:8b", 0, None)
        );
    }
}
