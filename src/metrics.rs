//! The controller's Prometheus metrics, served at `GET /metrics` in
//! OpenMetrics or the Prometheus text format (0.0.4), as the scraper asks. One
//! `Metrics` per daemon, cheap to clone; every part of the daemon records into
//! it through the methods below, and what the daemon holds now (conditions,
//! placements, pulls) is handed to [`Metrics::render`] as a [`Now`], so metric
//! names live here only.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::build_info;

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    commit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandoffLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    method: &'static str,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpRouteLabels {
    route: String,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionLabels {
    kind: String,
    name: String,
    r#type: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServedByLabels {
    capability: String,
    node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: String,
}

type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// What the daemon holds at the moment of a scrape; the gauges read from it
/// show exactly this, nothing older.
#[derive(Clone, Debug, Default)]
pub struct Now {
    /// Every condition of every object in the status store.
    pub conditions: Vec<ConditionNow>,
    /// (capability, node) for each capability served somewhere.
    pub served_by: Vec<(String, String)>,
    /// The model pulls under way.
    pub pulls: Vec<PullNow>,
}

#[derive(Clone, Debug)]
pub struct ConditionNow {
    pub kind: String,
    pub name: String,
    /// `Ready`, `Progressing`, `Degraded`.
    pub condition_type: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
}

#[derive(Clone, Debug)]
pub struct PullNow {
    pub model: String,
    pub completed_bytes: u64,
    /// None until Ollama has said how large the model is.
    pub total_bytes: Option<u64>,
}

/// The values a condition's status takes, one series each as flux's
/// `gotk_reconcile_condition` has them: 1 for the one that holds.
const CONDITION_STATUSES: [&str; 3] = ["True", "False", "Unknown"];

/// The methods a request is counted under; any other is `other`, so a
/// client cannot add series by inventing methods.
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

/// Which text a scrape gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    /// The Prometheus text format 0.0.4, for scrapers that do not ask for OpenMetrics.
    Prometheus,
}

impl Format {
    /// OpenMetrics when `accept` names it, as Prometheus does when it
    /// prefers it; the Prometheus text format for anyone else.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let wants_openmetrics = accept.is_some_and(|accept| {
            accept.split(',').any(|range| {
                let mut parts = range.split(';').map(str::trim);
                let media = parts.next().unwrap_or_default();
                let refused = parts.any(|param| param.replace(' ', "") == "q=0");
                media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
            })
        });
        if wants_openmetrics { Format::OpenMetrics } else { Format::Prometheus }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
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
    peer_rtt_seconds: Family<PeerLabels, FloatGauge>,
    service_restarts: Family<ServiceLabels, Counter>,
    routes: Family<RouteLabels, Counter>,
    snapshots: Family<SnapshotLabels, Counter>,
    handoffs: Family<HandoffLabels, Counter>,
    handoff_seconds: Family<HandoffLabels, Histogram>,
    http_requests: Family<HttpLabels, Counter>,
    http_seconds: Family<HttpRouteLabels, Histogram>,
    /// The gauges of [`Now`], refilled at each scrape under this lock so two
    /// scrapes at once never interleave their clear and fill.
    now: Mutex<NowGauges>,
}

struct NowGauges {
    conditions: Family<ConditionLabels, Gauge>,
    served_by: Family<ServedByLabels, Gauge>,
    pull_completed: Family<ModelLabels, Gauge>,
    pull_total: Family<ModelLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("agentmesh");
        let build = Family::<BuildLabels, Gauge>::default();
        build.get_or_create(&BuildLabels { version: build_info::VERSION, commit: build_info::COMMIT }).set(1);
        registry.register("build_info", "The version and commit of this meshctl, always 1", build);
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register("reconciles", "Reconciles by kind and result (ok, error)", reconciles.clone());
        let reconcile_seconds = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_1, 4.0, 10))
        });
        registry.register("reconcile_duration_seconds", "Time one reconcile took", reconcile_seconds.clone());
        let peer_online = Family::<PeerLabels, Gauge>::default();
        registry.register("peer_online", "Whether a peer answers its health probe (1) or not (0)", peer_online.clone());
        let peer_rtt_seconds = Family::<PeerLabels, FloatGauge>::default();
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
        registry.register(
            "route_calls",
            "Calls clients made through the mesh by capability, node tried and result; not health checks",
            routes.clone(),
        );
        let snapshots = Family::<SnapshotLabels, Counter>::default();
        registry.register("snapshots", "Manifest snapshots by result (applied, rejected)", snapshots.clone());
        let handoffs = Family::<HandoffLabels, Counter>::default();
        registry.register(
            "handoffs",
            "Handoffs started here that ended, by outcome (succeeded, failed)",
            handoffs.clone(),
        );
        let handoff_seconds = Family::<HandoffLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.05, 2.0, 12))
        });
        registry.register(
            "handoff_duration_seconds",
            "Time from a handoff's start here to its outcome",
            handoff_seconds.clone(),
        );
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "Requests to the mesh API by route template, method and status code",
            http_requests.clone(),
        );
        let http_seconds = Family::<HttpRouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_5, 4.0, 9))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time the mesh API took to answer a request, until its head",
            http_seconds.clone(),
        );
        let now = NowGauges {
            conditions: Family::default(),
            served_by: Family::default(),
            pull_completed: Family::default(),
            pull_total: Family::default(),
        };
        registry.register(
            "object_condition",
            "Each condition of each object: 1 for the status that holds, 0 for the others",
            now.conditions.clone(),
        );
        registry.register(
            "capability_served_by",
            "The node serving each capability, as this node decided or heard",
            now.served_by.clone(),
        );
        registry.register(
            "model_pull_completed_bytes",
            "Bytes Ollama has downloaded of the layer a model pull under way is on",
            now.pull_completed.clone(),
        );
        registry.register(
            "model_pull_size_bytes",
            "Size of the layer a model pull under way is on, once Ollama has said it",
            now.pull_total.clone(),
        );
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
                handoffs,
                handoff_seconds,
                http_requests,
                http_seconds,
                now: Mutex::new(now),
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

    /// A handoff started on this node ended after `took`, which is None when
    /// it began before this daemon started (it is counted, not timed).
    pub fn handoff_ended(&self, succeeded: bool, took: Option<Duration>) {
        let labels = HandoffLabels { outcome: if succeeded { "succeeded" } else { "failed" } };
        self.inner.handoffs.get_or_create(&labels).inc();
        if let Some(took) = took {
            self.inner.handoff_seconds.get_or_create(&labels).observe(took.as_secs_f64());
        }
    }

    /// One request answered: `route` is the template it matched (never the
    /// path it was sent to), `unmatched` when none did.
    pub fn http_request(&self, route: &str, method: &str, code: u16, took: Duration) {
        let method = METHODS.into_iter().find(|known| *known == method).unwrap_or("other");
        let route = route.to_owned();
        self.inner.http_requests.get_or_create(&HttpLabels { route: route.clone(), method, code }).inc();
        self.inner.http_seconds.get_or_create(&HttpRouteLabels { route, method }).observe(took.as_secs_f64());
    }

    /// Everything, with the gauges of `now`, in `format`.
    pub fn render(&self, now: &Now, format: Format) -> String {
        let gauges = self.inner.now.lock().unwrap_or_else(PoisonError::into_inner);
        gauges.fill(now);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.inner.registry)
            .expect("writing to a String cannot fail");
        drop(gauges);
        match format {
            Format::OpenMetrics => text,
            Format::Prometheus => to_prometheus_text(&text),
        }
    }
}

impl NowGauges {
    fn fill(&self, now: &Now) {
        self.conditions.clear();
        for condition in &now.conditions {
            for status in CONDITION_STATUSES {
                let labels = ConditionLabels {
                    kind: condition.kind.clone(),
                    name: condition.name.clone(),
                    r#type: condition.condition_type.clone(),
                    status,
                };
                self.conditions.get_or_create(&labels).set(i64::from(condition.status == status));
            }
        }
        self.served_by.clear();
        for (capability, node) in &now.served_by {
            self.served_by.get_or_create(&ServedByLabels { capability: capability.clone(), node: node.clone() }).set(1);
        }
        self.pull_completed.clear();
        self.pull_total.clear();
        for pull in &now.pulls {
            let labels = ModelLabels { model: pull.model.clone() };
            self.pull_completed.get_or_create(&labels).inc_by(gauge_value(pull.completed_bytes));
            if let Some(total) = pull.total_bytes {
                self.pull_total.get_or_create(&labels).inc_by(gauge_value(total));
            }
        }
    }
}

fn gauge_value(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

/// OpenMetrics as prometheus-client writes it, in the Prometheus text format
/// 0.0.4: a counter family's `HELP` and `TYPE` name its samples (`…_total`),
/// and there is no `# EOF`. Nothing else we write differs.
fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: BTreeSet<&str> =
        openmetrics.lines().filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    let mut text = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].into_iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(name).then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(line) => text.push_str(&line),
            None => text.push_str(line),
        }
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(metrics: &Metrics, now: &Now) -> String {
        metrics.render(now, Format::OpenMetrics)
    }

    #[test]
    fn recorded_values_appear_in_the_text_format() {
        let metrics = Metrics::default();
        metrics.reconciled("Service", true, Duration::from_millis(2));
        metrics.reconciled("Service", false, Duration::from_millis(2));
        metrics.peer("agent-home-mini", true, Some(Duration::from_millis(3)));
        metrics.service_restarted("ollama");
        metrics.routed("llm_inference", "agent-home-mini", true);
        metrics.snapshot(false);
        metrics.handoff_ended(true, Some(Duration::from_millis(300)));
        metrics.handoff_ended(false, None);
        metrics.http_request("/api/v1/objects/{kind}/{name}", "GET", 404, Duration::from_millis(1));
        metrics.http_request("/api/v1/status", "BREW", 405, Duration::from_millis(1));
        let text = render(&metrics, &Now::default());
        for line in [
            "agentmesh_reconciles_total{kind=\"Service\",result=\"ok\"} 1",
            "agentmesh_reconciles_total{kind=\"Service\",result=\"error\"} 1",
            "agentmesh_peer_online{peer=\"agent-home-mini\"} 1",
            "agentmesh_peer_rtt_seconds{peer=\"agent-home-mini\"} 0.003",
            "agentmesh_service_restarts_total{service=\"ollama\"} 1",
            "agentmesh_route_calls_total{capability=\"llm_inference\",node=\"agent-home-mini\",result=\"ok\"} 1",
            "agentmesh_snapshots_total{result=\"rejected\"} 1",
            "agentmesh_handoffs_total{outcome=\"succeeded\"} 1",
            "agentmesh_handoff_duration_seconds_bucket{le=\"0.4\",outcome=\"succeeded\"} 1",
            "agentmesh_handoffs_total{outcome=\"failed\"} 1",
            "agentmesh_http_requests_total{route=\"/api/v1/objects/{kind}/{name}\",method=\"GET\",code=\"404\"} 1",
            "agentmesh_http_requests_total{route=\"/api/v1/status\",method=\"other\",code=\"405\"} 1",
            "agentmesh_http_request_duration_seconds_count{route=\"/api/v1/status\",method=\"other\"} 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        let build =
            format!("agentmesh_build_info{{version=\"{}\",commit=\"{}\"}} 1", build_info::VERSION, build_info::COMMIT);
        assert!(text.contains(&build), "missing {build} in\n{text}");
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn the_gauges_of_now_show_what_is_held_at_the_scrape_and_nothing_older() {
        let metrics = Metrics::default();
        let condition = |name: &str, status: &str| ConditionNow {
            kind: "Service".into(),
            name: name.into(),
            condition_type: "Ready".into(),
            status: status.into(),
        };
        let first = Now {
            conditions: vec![condition("ollama", "True"), condition("web", "Unknown")],
            served_by: vec![("llm_inference".into(), "mini".into())],
            pulls: vec![
                PullNow { model: "qwen3:8b".into(), completed_bytes: 1_000, total_bytes: Some(5_000) },
                PullNow { model: "llama3".into(), completed_bytes: 0, total_bytes: None },
            ],
        };
        let text = render(&metrics, &first);
        for line in [
            "agentmesh_object_condition{kind=\"Service\",name=\"ollama\",type=\"Ready\",status=\"True\"} 1",
            "agentmesh_object_condition{kind=\"Service\",name=\"ollama\",type=\"Ready\",status=\"False\"} 0",
            "agentmesh_object_condition{kind=\"Service\",name=\"ollama\",type=\"Ready\",status=\"Unknown\"} 0",
            "agentmesh_object_condition{kind=\"Service\",name=\"web\",type=\"Ready\",status=\"Unknown\"} 1",
            "agentmesh_capability_served_by{capability=\"llm_inference\",node=\"mini\"} 1",
            "agentmesh_model_pull_completed_bytes{model=\"qwen3:8b\"} 1000",
            "agentmesh_model_pull_size_bytes{model=\"qwen3:8b\"} 5000",
            "agentmesh_model_pull_completed_bytes{model=\"llama3\"} 0",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(!text.contains("agentmesh_model_pull_size_bytes{model=\"llama3\"}"), "{text}");

        let moved = Now { served_by: vec![("llm_inference".into(), "laptop".into())], ..Now::default() };
        let text = render(&metrics, &moved);
        assert!(text.contains("agentmesh_capability_served_by{capability=\"llm_inference\",node=\"laptop\"} 1"));
        for gone in ["node=\"mini\"", "name=\"ollama\"", "model=\"qwen3:8b\""] {
            assert!(!text.contains(gone), "{gone} is still shown in\n{text}");
        }
    }

    #[test]
    fn the_prometheus_text_format_names_counters_by_their_samples_and_has_no_eof() {
        let metrics = Metrics::default();
        metrics.snapshot(true);
        metrics.peer("mini", true, Some(Duration::from_millis(3)));
        metrics.reconciled("Service", true, Duration::from_millis(2));
        let text = metrics.render(&Now::default(), Format::Prometheus);
        assert!(text.contains("# HELP agentmesh_snapshots_total Manifest snapshots"), "{text}");
        assert!(text.contains("# TYPE agentmesh_snapshots_total counter\n"), "{text}");
        assert!(text.contains("agentmesh_snapshots_total{result=\"applied\"} 1\n"), "{text}");
        assert!(text.contains("# TYPE agentmesh_peer_rtt_seconds gauge\n"), "{text}");
        assert!(text.contains("# TYPE agentmesh_reconcile_duration_seconds histogram\n"), "{text}");
        assert!(!text.contains("# EOF"), "{text}");
        assert!(!text.contains("# TYPE agentmesh_snapshots counter"), "{text}");
    }

    #[test]
    fn a_scraper_gets_openmetrics_only_when_it_asks_for_it() {
        let cases = [
            (None, Format::Prometheus),
            (Some("*/*"), Format::Prometheus),
            (Some("text/plain;version=0.0.4"), Format::Prometheus),
            (
                Some(
                    "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;\
                     q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
                ),
                Format::OpenMetrics,
            ),
            (Some("Application/OpenMetrics-Text"), Format::OpenMetrics),
            (Some("application/openmetrics-text; q=0, text/plain"), Format::Prometheus),
        ];
        for (accept, expected) in cases {
            assert_eq!(Format::negotiate(accept), expected, "Accept: {accept:?}");
        }
        assert!(Format::Prometheus.content_type().starts_with("text/plain; version=0.0.4"));
        assert!(Format::OpenMetrics.content_type().starts_with("application/openmetrics-text"));
    }
}
