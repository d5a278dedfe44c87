//! The controller's Prometheus metrics, served at `GET /metrics` in the text
//! format. One `Metrics` per daemon, cheap to clone; every part of the daemon
//! records into it through the methods below, so metric names live here only.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    kind: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    capability: String,
    node: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SnapshotLabels {
    result: &'static str,
}

#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_seconds: Family<KindLabels, Histogram>,
    peer_online: Family<PeerLabels, Gauge>,
    peer_rtt_seconds: Family<PeerLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    service_restarts: Family<ServiceLabels, Counter>,
    routes: Family<RouteLabels, Counter>,
    snapshots: Family<SnapshotLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("agentmesh");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register("reconciles", "Reconciles by kind and result (ok, error)", reconciles.clone());
        let reconcile_seconds = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_1, 4.0, 10))
        });
        registry.register("reconcile_duration_seconds", "Time one reconcile took", reconcile_seconds.clone());
        let peer_online = Family::<PeerLabels, Gauge>::default();
        registry.register("peer_online", "Whether a peer answers its health probe (1) or not (0)", peer_online.clone());
        let peer_rtt_seconds = Family::<PeerLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "peer_rtt_seconds",
            "Round-trip time of the last answered health probe",
            peer_rtt_seconds.clone(),
        );
        let service_restarts = Family::<ServiceLabels, Counter>::default();
        registry.register(
            "service_restarts",
            "Times a Service was started again after it exited",
            service_restarts.clone(),
        );
        let routes = Family::<RouteLabels, Counter>::default();
        registry.register("route_calls", "MeshRouter calls by capability, serving node and result", routes.clone());
        let snapshots = Family::<SnapshotLabels, Counter>::default();
        registry.register("snapshots", "Manifest snapshots by result (applied, rejected)", snapshots.clone());
        Metrics {
            inner: Arc::new(Inner {
                registry,
                reconciles,
                reconcile_seconds,
                peer_online,
                peer_rtt_seconds,
                service_restarts,
                routes,
                snapshots,
            }),
        }
    }
}

impl Metrics {
    pub fn reconciled(&self, kind: &str, ok: bool, took: Duration) {
        let result = if ok { "ok" } else { "error" };
        self.inner.reconciles.get_or_create(&ReconcileLabels { kind: kind.to_owned(), result }).inc();
        self.inner.reconcile_seconds.get_or_create(&KindLabels { kind: kind.to_owned() }).observe(took.as_secs_f64());
    }

    /// A peer's state after a probe; `rtt` when it answered.
    pub fn peer(&self, peer: &str, online: bool, rtt: Option<Duration>) {
        let labels = PeerLabels { peer: peer.to_owned() };
        self.inner.peer_online.get_or_create(&labels).set(i64::from(online));
        if let Some(rtt) = rtt {
            self.inner.peer_rtt_seconds.get_or_create(&labels).set(rtt.as_secs_f64());
        }
    }

    pub fn service_restarted(&self, service: &str) {
        self.inner.service_restarts.get_or_create(&ServiceLabels { service: service.to_owned() }).inc();
    }

    pub fn routed(&self, capability: &str, node: &str, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        let labels = RouteLabels { capability: capability.to_owned(), node: node.to_owned(), result };
        self.inner.routes.get_or_create(&labels).inc();
    }

    pub fn snapshot(&self, applied: bool) {
        let result = if applied { "applied" } else { "rejected" };
        self.inner.snapshots.get_or_create(&SnapshotLabels { result }).inc();
    }

    /// Everything in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.inner.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_values_appear_in_the_text_format() {
        let metrics = Metrics::default();
        metrics.reconciled("Service", true, Duration::from_millis(2));
        metrics.reconciled("Service", false, Duration::from_millis(2));
        metrics.peer("agent-home-mini", true, Some(Duration::from_millis(3)));
        metrics.service_restarted("ollama");
        metrics.routed("llm_inference", "agent-home-mini", true);
        metrics.snapshot(false);
        let text = metrics.render();
        for line in [
            "agentmesh_reconciles_total{kind=\"Service\",result=\"ok\"} 1",
            "agentmesh_reconciles_total{kind=\"Service\",result=\"error\"} 1",
            "agentmesh_peer_online{peer=\"agent-home-mini\"} 1",
            "agentmesh_peer_rtt_seconds{peer=\"agent-home-mini\"} 0.003",
            "agentmesh_service_restarts_total{service=\"ollama\"} 1",
            "agentmesh_route_calls_total{capability=\"llm_inference\",node=\"agent-home-mini\",result=\"ok\"} 1",
            "agentmesh_snapshots_total{result=\"rejected\"} 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
