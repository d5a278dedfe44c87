//! The capabilities: each is served where its placement says, and its endpoint
//! is healthy.

use super::check::{Check, TIMEOUT};
use super::daemon::START_DAEMON;
use crate::controller::status::{ConditionType, NodeStatus};
use crate::manifest::ManifestSet;
use crate::net::{self, root_cause};
use crate::reconcile::capability::{HealthCheck, health_check, health_url, health_url_by_node};

/// This node, as the capability checks reach endpoints from it.
pub(super) struct CapabilityProbe<'a> {
    pub(super) node: &'a str,
    /// This node's mesh API (`http://host:port`) and its key.
    pub(super) api: &'a str,
    pub(super) key: Option<&'a str>,
}

/// Where a capability served by `served_by` is checked from this node: its
/// endpoint directly, as the Capability reconciler probes it, or, for a
/// peer's loopback endpoint that only the peer can reach, through this
/// node's own `/cap/<name>/` (the way a client reaches it; true: send the key).
fn capability_health_target(
    set: &ManifestSet,
    name: &str,
    served_by: &str,
    this: &CapabilityProbe<'_>,
) -> Option<(String, bool)> {
    let spec = &set.capabilities.get(name)?.spec;
    let address = set.nodes.get(served_by).map(|n| n.spec.address.value.as_str());
    let host = spec.endpoint_host(address)?;
    Some(match health_check(host, served_by, this.node) {
        HealthCheck::Direct => (health_url(spec, host), false),
        HealthCheck::ByItsNode => {
            let api = this.api.trim_start_matches("http://");
            (health_url_by_node(api, name, spec), true)
        }
    })
}

/// A `capability/<name>` check per Capability the daemon reconciles: where it
/// is placed now, and whether its endpoint there is healthy.
pub(super) async fn capability_checks(
    set: &ManifestSet,
    status: Option<&NodeStatus>,
    this: &CapabilityProbe<'_>,
) -> Vec<Check> {
    let Some(status) = status else {
        let names = set.capabilities.keys();
        return names
            .map(|name| {
                Check::warn(
                    &format!("capability/{name}"),
                    "cannot tell where it is placed: the daemon does not answer",
                    START_DAEMON,
                )
            })
            .collect();
    };
    let http = net::http_client(TIMEOUT).timeout(TIMEOUT).build().expect("a plain HTTP client builds");
    let capabilities = status.objects.iter().filter(|object| object.kind == "Capability");
    let checks = capabilities.map(|object| {
        let http = http.clone();
        async move {
            let served_by = object.details.get("servedBy");
            let target = served_by.and_then(|node| capability_health_target(set, &object.name, node, this));
            let (url, with_key) = match target {
                Some((url, with_key)) => (Some(url), with_key),
                None => (object.details.get("endpoint").cloned(), false),
            };
            let health = match &url {
                Some(url) => Some(endpoint_health(&http, url, this.key.filter(|_| with_key)).await),
                None => None,
            };
            let reason = object.condition(ConditionType::Ready).map(|c| c.message.clone());
            capability_verdict(&object.name, served_by.map(String::as_str), url.as_deref(), health, reason)
        }
    });
    futures_util::future::join_all(checks).await
}

async fn endpoint_health(http: &reqwest::Client, url: &str, key: Option<&str>) -> Result<(), String> {
    let mut request = http.get(url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    match request.send().await {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => Err(format!("it answered {}", response.status())),
        Err(error) => Err(root_cause(&error)),
    }
}

fn capability_verdict(
    name: &str,
    served_by: Option<&str>,
    url: Option<&str>,
    health: Option<Result<(), String>>,
    reason: Option<String>,
) -> Check {
    let check = format!("capability/{name}");
    let describe = format!("meshctl describe capability {name}");
    match (served_by, url, health) {
        (None, _, _) => Check::fail(
            &check,
            reason.filter(|r| !r.is_empty()).unwrap_or_else(|| "no node serves it yet".into()),
            format!("start its service on a node of its placement ({describe})"),
        ),
        (Some(node), Some(url), Some(Ok(()))) => Check::pass(&check, format!("served by {node}, healthy at {url}")),
        (Some(node), Some(url), Some(Err(why))) => Check::fail(
            &check,
            format!("served by {node}, but {url} is not healthy: {why}"),
            format!(
                "check its service on {node} ({describe}); the mesh moves it within seconds if another node can serve it"
            ),
        ),
        (Some(node), _, _) => Check::warn(
            &check,
            format!("served by {node}, at an endpoint this meshctl cannot tell"),
            "apply the manifests again so this node and its daemon agree",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::doctor::check::Status;

    #[test]
    fn a_peers_loopback_endpoint_is_checked_through_this_nodes_pass_through() {
        use crate::manifest::{SourceFile, validate};
        let node = |name: &str, ip: &str| {
            format!(
                "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {{name: {name}}}\nspec: {{role: satellite, address: {ip}}}\n---\n"
            )
        };
        let capability = |name: &str, endpoint: &str| {
            format!(
                "apiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {{name: {name}}}\n\
                 spec: {{provider: http, placement: {{prefer: [mini], fallback: [laptop]}}, endpoint: {endpoint}}}\n---\n"
            )
        };
        let text = [
            node("mini", "100.64.0.1"),
            node("laptop", "100.64.0.2"),
            capability("llm", "{host: 127.0.0.1, port: 11434, healthPath: /api/version}"),
            capability("db", "{port: 8001, healthPath: /api/v2/heartbeat}"),
        ]
        .concat();
        let validation = validate(&[SourceFile { path: "m.yaml".into(), text }], Vec::new());
        assert!(validation.is_valid(), "{:?}", validation.diagnostics);
        let this = CapabilityProbe { node: "laptop", api: "http://100.64.0.2:8000", key: Some("k") };
        let target = |name: &str, served_by: &str| capability_health_target(&validation.set, name, served_by, &this);
        let table = [
            ("llm", "mini", Some(("http://100.64.0.2:8000/cap/llm/api/version", true))),
            ("llm", "laptop", Some(("http://127.0.0.1:11434/api/version", false))),
            ("db", "mini", Some(("http://100.64.0.1:8001/api/v2/heartbeat", false))),
            ("gone", "mini", None),
        ];
        for (name, served_by, expected) in table {
            let expected = expected.map(|(url, key)| (url.to_owned(), key));
            assert_eq!(target(name, served_by), expected, "{name} served by {served_by}");
        }
    }

    #[test]
    fn a_capability_passes_only_where_it_is_served_and_healthy() {
        let url = Some("http://mini:11434/api/tags");
        let table = [
            (Some("mini"), url, Some(Ok(())), Status::Pass),
            (Some("mini"), url, Some(Err("refused".to_owned())), Status::Fail),
            (None, None, None, Status::Fail),
            (Some("mini"), None, None, Status::Warn),
        ];
        for (served_by, url, health, status) in table {
            let check = capability_verdict("llm", served_by, url, health.clone(), Some("mini is offline".into()));
            assert_eq!((check.name.as_str(), check.status), ("capability/llm", status), "{check:?}");
        }
        let none = capability_verdict("llm", None, None, None, Some("no node can serve it: mini is offline".into()));
        assert_eq!(none.message, "no node can serve it: mini is offline");
        assert_eq!(capability_verdict("llm", None, None, None, None).message, "no node serves it yet");
    }
}
