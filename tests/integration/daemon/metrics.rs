//! `GET /metrics` (issue #21, point 6) scraped from a live daemon of a
//! two-node mesh with a Service, a Capability, a peer and a routed call: the
//! Prometheus text format unless the scraper asks for OpenMetrics, every
//! family the issue names with samples, the read-only `MESH_METRICS_KEY` that
//! opens `/metrics` and nothing else, and `promtool check metrics` (Debian's
//! `prometheus` package) on both formats: `AGENTMESH_TEST_PROMTOOL`, else
//! where `.ci/run` unpacks it; the test fails without it.

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use axum::Json;
use axum::routing::get;
use serde_json::{Value, json};

use super::support::{Daemon, IP_A, IP_B, free_address, mesh_of, node_manifest};
use crate::support::tool;
use crate::support::wait::eventually_async;

const METRICS_KEY: &str = "metrics-only-5c1e";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// An HTTP endpoint on `ip` for the Capability `echo`, its port: GET is its
/// health check, POST echoes the payload. It lives as long as the test's runtime.
async fn echo_endpoint(ip: Ipv4Addr) -> u16 {
    let endpoint = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let port = endpoint.local_addr().unwrap().port();
    let echo = axum::Router::new()
        .route("/echo", get(|| async { "ok" }).post(|Json(payload): Json<Value>| async move { Json(payload) }));
    tokio::spawn(async move { axum::serve(endpoint, echo).await });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_shows_the_mesh_in_either_format_to_the_metrics_key_alone() {
    let endpoint_port = echo_endpoint(IP_A).await;
    let (a_api, b_api) = (free_address(IP_A), free_address(IP_B));
    let manifests = [
        node_manifest("a", "primary", a_api),
        node_manifest("b", "satellite", b_api),
        format!(
            "apiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {{name: echo}}\n\
             spec: {{provider: http, placement: {{prefer: [a], fallback: [b]}}, endpoint: {{port: {endpoint_port}, path: /echo}}}}\n---\n"
        ),
        "apiVersion: agentmesh/v1alpha1\nkind: Service\nmetadata: {name: worker}\n\
         spec: {nodes: [a], command: [sleep, '1000']}\n"
            .to_owned(),
    ]
    .concat();
    let a = Daemon::builder()
        .file("manifests/node.yaml", &manifests)
        .setting("MESH_METRICS_KEY", METRICS_KEY)
        .at("a", IP_A, a_api.port())
        .start();
    let b = Daemon::builder().file("manifests/node.yaml", &manifests).at("b", IP_B, b_api.port()).start();
    a.ready().await;
    b.ready().await;
    a.sees_online("b").await;
    a.served_by("echo", "a").await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let routed = http
        .post(a.url("/mesh/route"))
        .bearer_auth(Daemon::KEY)
        .json(&json!({"capability": "echo", "payload": {"hello": "mesh"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(routed.status(), 200);

    let scrape = |accept: Option<&'static str>, key: Option<&'static str>| {
        let mut request = http.get(a.url("/metrics"));
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
            (status, content_type, response.text().await.unwrap())
        }
    };
    let text = eventually_async("the Service is Ready and the routed call counted", || async {
        let (status, content_type, text) = scrape(None, Some(METRICS_KEY)).await;
        assert_eq!((status, content_type.as_deref()), (200, Some(PROMETHEUS_TEXT)), "{text}");
        let ready = r#"agentmesh_object_condition{kind="Service",name="worker",type="Ready",status="True"} 1"#;
        (text.contains(ready) && text.contains("agentmesh_http_requests_total{route=\"/mesh/route\"")).then_some(text)
    })
    .await;
    for expected in [
        format!("agentmesh_build_info{{version=\"{}\",", env!("CARGO_PKG_VERSION")),
        r#"agentmesh_object_condition{kind="Service",name="worker",type="Ready",status="False"} 0"#.into(),
        r#"agentmesh_object_condition{kind="Capability",name="echo",type="Ready",status="True"} 1"#.into(),
        r#"agentmesh_capability_served_by{capability="echo",node="a"} 1"#.into(),
        r#"agentmesh_peer_rtt_seconds{peer="b"} "#.into(),
        r#"agentmesh_route_calls_total{capability="echo",node="a",result="ok"} "#.into(),
        r#"agentmesh_http_requests_total{route="/mesh/route",method="POST",code="200"} 1"#.into(),
        r#"agentmesh_http_request_duration_seconds_count{route="/mesh/route",method="POST"} 1"#.into(),
        "# TYPE agentmesh_http_requests_total counter".into(),
    ] {
        assert!(text.contains(&expected), "missing {expected} in\n{text}");
    }
    assert!(!text.contains("# EOF"), "{text}");

    let (status, content_type, openmetrics) = scrape(Some("application/openmetrics-text"), Some(METRICS_KEY)).await;
    assert_eq!((status, content_type.as_deref()), (200, Some(OPENMETRICS)));
    assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");
    assert!(openmetrics.contains("# TYPE agentmesh_http_requests counter"), "{openmetrics}");
    assert!(openmetrics.contains(r#"agentmesh_capability_served_by{capability="echo",node="a"} 1"#));

    // The metrics key reads /metrics and nothing else; the mesh key reads it too.
    let (status, _, _) = scrape(None, Some(Daemon::KEY)).await;
    assert_eq!(status, 200);
    let (status, _, _) = scrape(None, None).await;
    assert_eq!(status, 401);
    let (status, _, _) = scrape(None, Some("not-the-metrics-key")).await;
    assert_eq!(status, 401);
    for path in ["/api/v1/status", "/api/v1/mesh", "/api/v1/sessions"] {
        let answer = http.get(a.url(path)).bearer_auth(METRICS_KEY).send().await.unwrap();
        assert_eq!(answer.status(), 401, "{path} let the metrics key in");
    }
    let route = http.post(a.url("/mesh/route")).bearer_auth(METRICS_KEY).json(&json!({"capability": "echo"}));
    assert_eq!(route.send().await.unwrap().status(), 401);
    // Its own peer has no metrics key: the metrics key of one node opens no other.
    let on_b = http.get(b.url("/metrics")).bearer_auth(METRICS_KEY).send().await.unwrap();
    assert_eq!(on_b.status(), 401);
    for secret in [METRICS_KEY, Daemon::KEY] {
        assert!(!a.log().contains(secret), "a key is in the daemon's log");
    }

    let promtool = promtool();
    let complaints = promtool_check(&promtool, &text);
    assert!(complaints.is_empty(), "promtool check metrics on the Prometheus text format:\n{complaints}\n{text}");
    // promtool reads the Prometheus text format only: in OpenMetrics a
    // counter's HELP names its family, whose samples end in `_total`, which
    // it takes for samples without help. That is all it may say.
    let complaints = promtool_check(&promtool, &openmetrics);
    for complaint in complaints.lines() {
        let family = complaint.strip_suffix("_total no help text");
        let counter = family.is_some_and(|family| openmetrics.contains(&format!("# TYPE {family} counter\n")));
        assert!(counter, "promtool check metrics on OpenMetrics: {complaint}\n{openmetrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_check_through_a_peer_is_no_routed_call_and_a_clients_call_is_one() {
    // On loopback, as Ollama.app on a Mac: node a checks b's endpoint through
    // b's pass-through (b's word), as often as it reconciles the Capability.
    let endpoint_port = echo_endpoint(Ipv4Addr::LOCALHOST).await;
    let (a_api, b_api) = (free_address(IP_A), free_address(IP_B));
    let manifests = [
        node_manifest("a", "primary", a_api),
        node_manifest("b", "satellite", b_api),
        format!(
            "apiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {{name: echo}}\n\
             spec: {{provider: http, placement: {{prefer: [b], fallback: [a]}}, \
             endpoint: {{host: 127.0.0.1, port: {endpoint_port}, path: /echo}}}}\n"
        ),
    ]
    .concat();
    let [a, b] = mesh_of([("a", a_api), ("b", b_api)], &manifests);
    a.ready().await;
    b.ready().await;
    a.sees_online("b").await;
    // Placed on b by b's word: b answered a's health check.
    a.served_by("echo", "b").await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let scrape_b = || async {
        let response = http.get(b.url("/metrics")).bearer_auth(Daemon::KEY).send().await.unwrap();
        response.text().await.unwrap()
    };
    let checked = r#"agentmesh_http_requests_total{route="/cap/{name}/{*rest}",method="GET",code="200"} "#;
    let text = scrape_b().await;
    assert!(text.contains(checked), "b answered a's health check:\n{text}");
    assert!(!text.contains("agentmesh_route_calls_total{"), "a health check is no routed call:\n{text}");

    let called = http
        .post(a.url("/cap/echo/echo"))
        .bearer_auth(Daemon::KEY)
        .json(&json!({"hello": "mesh"}))
        .send()
        .await
        .unwrap();
    assert_eq!(called.status(), 200);
    let counted = r#"agentmesh_route_calls_total{capability="echo",node="b",result="ok"} 1"#;
    let text = scrape_b().await;
    let on_b: Vec<&str> = text.lines().filter(|line| line.starts_with("agentmesh_route_calls_total{")).collect();
    assert_eq!(on_b, [counted], "the client's call, handed to b, and nothing else:\n{text}");
}

/// promtool from Debian's `prometheus` package, where `.ci/run` unpacks it:
/// `${XDG_CACHE_HOME:-$HOME/.cache}/agentmesh/promtool`.
fn promtool() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
        .expect("HOME or XDG_CACHE_HOME is set");
    tool(
        "AGENTMESH_TEST_PROMTOOL",
        cache.join("agentmesh/promtool/usr/bin/promtool"),
        "promtool, version",
        "`apt-get download prometheus && dpkg-deb -x prometheus_*.deb .` in ~/.cache/agentmesh/promtool",
    )
}

/// What `promtool check metrics` says of `text`: nothing when it passes.
fn promtool_check(promtool: &Path, text: &str) -> String {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", promtool.display()));
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    match (output.status.success(), said.trim()) {
        (true, "") => String::new(),
        (_, "") => format!("promtool failed without a word: {}", output.status),
        (_, said) => said.to_owned(),
    }
}
