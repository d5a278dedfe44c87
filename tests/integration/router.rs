//! The MeshRouter end to end: two real daemons, `a` on 127.0.0.2 and `b` on
//! 127.0.0.3, and on each the same port an `http` capability endpoint that
//! says which node it is (a server inside the test, counting its calls). Calls
//! go through `POST /mesh/route` and `meshctl route` as the agent and a user
//! make them.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use crate::support::Workspace;
use crate::support::daemon::{Daemon, free_address, free_port_on, mesh_of, node_manifest, same_port_on};
use crate::support::wait::eventually_async;
use axum::Json;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};

const A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

/// Calls each endpoint took, by "node path".
type Calls = Arc<Mutex<BTreeMap<String, usize>>>;

/// Nodes `a` (primary) and `b` with their daemons up and four capabilities,
/// each placed `prefer: [a], fallback: [b]`:
/// - `echo`: both nodes' endpoints answer `{node, payload}`;
/// - `fails`: both endpoints answer 500;
/// - `only_b`: only `b` has a server on the endpoint port;
/// - `nowhere`: no node has one.
struct Mesh {
    a: Daemon,
    b: Daemon,
    calls: Calls,
}

impl Mesh {
    async fn start() -> Mesh {
        let calls = Calls::default();
        let (a_endpoint, b_endpoint) = same_port_on(A, B).await;
        let port = a_endpoint.local_addr().unwrap().port();
        serve_endpoint("a", a_endpoint, calls.clone());
        serve_endpoint("b", b_endpoint, calls.clone());
        let only_b = tokio::net::TcpListener::bind((B, 0)).await.unwrap();
        let only_b_port = only_b.local_addr().unwrap().port();
        serve_endpoint("b", only_b, calls.clone());
        let nowhere_port = free_port_on(A);
        let (a_api, b_api) = (free_address(A), free_address(B));
        let capability = |name: &str, port: u16, path: &str| {
            format!(
                "apiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {{name: {name}}}\n\
                 spec: {{provider: http, placement: {{prefer: [a], fallback: [b]}}, endpoint: {{port: {port}, path: {path}}}}}\n---\n"
            )
        };
        let text = [
            node_manifest("a", "primary", a_api),
            node_manifest("b", "satellite", b_api),
            capability("echo", port, "/echo"),
            capability("fails", port, "/fail"),
            capability("only_b", only_b_port, "/echo"),
            capability("nowhere", nowhere_port, "/echo"),
        ]
        .concat();

        let [a, b] = mesh_of([("a", a_api), ("b", b_api)], &text);
        a.ready().await;
        b.ready().await;
        a.sees_online("b").await;
        b.sees_online("a").await;
        Mesh { a, b, calls }
    }

    fn calls(&self) -> BTreeMap<String, usize> {
        self.calls.lock().unwrap().clone()
    }

    /// Runs `meshctl args…` as a user on node `a` would (its listen address and key).
    async fn meshctl_on_a(&self, args: &[&str]) -> crate::support::Run {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let listen = self.a.api().to_string();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            Workspace::new().run_with_env(&args, &[("MESH_LISTEN", &listen), ("MESH_API_KEY", Daemon::KEY)])
        })
        .await
        .unwrap()
    }
}

/// Node `node`'s endpoint: `/echo` answers `{node, payload}`, `/fail` a 500.
fn serve_endpoint(node: &'static str, listener: tokio::net::TcpListener, calls: Calls) {
    let count = move |path: &str| *calls.lock().unwrap().entry(format!("{node} {path}")).or_default() += 1;
    let echo = count.clone();
    let app = axum::Router::new()
        .route(
            "/echo",
            post(move |Json(payload): Json<Value>| async move {
                echo("/echo");
                Json(json!({"node": node, "payload": payload}))
            }),
        )
        .route(
            "/fail",
            post(move || async move {
                count("/fail");
                (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": "boom", "node": node})))
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
}

/// `POST /mesh/route` on `daemon` with `key`; the status and the JSON answer.
async fn route(daemon: &Daemon, body: Value, key: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(daemon.url("/mesh/route")).json(&body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.expect("the daemon answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON answer"))
}

/// The node that served a call, after checking it went through.
async fn served_by(daemon: &Daemon, body: Value) -> String {
    let (status, answer) = route(daemon, body, Some(Daemon::KEY)).await;
    assert_eq!(status, 200, "{answer}");
    answer["node"].as_str().expect("a node").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_follows_placement_and_the_preferred_node() {
    let mesh = Mesh::start().await;
    let (status, answer) = route(&mesh.b, json!({"capability": "echo", "payload": {"n": 1}}), Some(Daemon::KEY)).await;
    assert_eq!(status, 200);
    assert_eq!(answer, json!({"node": "a", "status": 200, "body": {"node": "a", "payload": {"n": 1}}}));
    assert_eq!(served_by(&mesh.a, json!({"capability": "echo", "payload": 2})).await, "a");
    assert_eq!(served_by(&mesh.a, json!({"capability": "echo", "payload": 3, "preferNode": "b"})).await, "b");
    assert_eq!(served_by(&mesh.b, json!({"capability": "echo", "payload": 4, "preferNode": "b"})).await, "b");
    let calls = mesh.calls();
    assert_eq!((calls["a /echo"], calls["b /echo"]), (2, 2), "each call reached one endpoint once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meshctl_route_prints_the_answer_and_the_node_that_served_it() {
    let mesh = Mesh::start().await;
    let run = mesh.meshctl_on_a(&["route", "echo", "--data", r#"{"n": 1}"#, "--prefer", "b"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let printed: Value = serde_json::from_str(&run.stdout).expect("JSON on stdout");
    assert_eq!(printed, json!({"node": "b", "payload": {"n": 1}}));
    assert!(run.stdout.contains("\n  \"node\": \"b\""), "pretty-printed: {}", run.stdout);
    assert_eq!(run.stderr, "served by b (HTTP 200)\n");

    let run = mesh.meshctl_on_a(&["route", "fails", "--data", "{}"]).await;
    assert_eq!((run.code, run.stderr.as_str()), (1, "served by a (HTTP 500)\n"), "{run:?}");
    assert!(run.stdout.contains("boom"));

    let run = mesh.meshctl_on_a(&["route", "ecko", "--data", "{}"]).await;
    assert_eq!(run.code, 1);
    assert_eq!(run.stderr, "error: unknown capability \"ecko\"; did you mean \"echo\"? (404 Not Found)\n");

    let run = mesh.meshctl_on_a(&["route", "echo", "--data", "{oops"]).await;
    assert_eq!(run.code, 2, "a payload that is not JSON is a usage error: {run:?}");
    assert!(run.stderr.contains("not JSON"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_preferred_node_is_failed_over_and_used_again_once_back() {
    let mut mesh = Mesh::start().await;
    mesh.a.kill();
    assert_eq!(served_by(&mesh.b, json!({"capability": "echo", "payload": 1})).await, "b");
    assert_eq!(served_by(&mesh.b, json!({"capability": "echo", "payload": 2, "preferNode": "a"})).await, "b");
    mesh.a.restart();
    mesh.a.ready().await;
    // Once b's prober sees a again (at once if it never saw it down; after
    // its next probe, 2 to 5 s, if it did), calls go back to a.
    let mut payload = 2;
    eventually_async("b routes to a again", || {
        payload += 1;
        let body = json!({"capability": "echo", "payload": payload});
        let b = &mesh.b;
        async move { (served_by(b, body).await == "a").then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_node_whose_endpoint_refuses_is_failed_over() {
    let mesh = Mesh::start().await;
    // From b, a's daemon answers that its endpoint refused: nothing was sent.
    assert_eq!(served_by(&mesh.b, json!({"capability": "only_b", "payload": 1})).await, "b");
    // From a, its own endpoint refuses.
    assert_eq!(served_by(&mesh.a, json!({"capability": "only_b", "payload": 2})).await, "b");
    let (status, answer) = route(&mesh.b, json!({"capability": "nowhere", "payload": 3}), Some(Daemon::KEY)).await;
    assert_eq!((status, answer["error"].as_str()), (503, Some("unreachable")), "{answer}");
    let message = answer["message"].as_str().unwrap();
    let start = "no node could take the call for capability \"nowhere\": a: node \"a\" cannot reach its endpoint: ";
    assert!(message.starts_with(start), "{message}");
    assert!(message.contains("; b: http://127.0.0.3:"), "{message}");
    assert_eq!(message.matches("Connection refused").count(), 2, "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_answers_500_is_not_tried_elsewhere() {
    let mesh = Mesh::start().await;
    let (status, answer) = route(&mesh.b, json!({"capability": "fails", "payload": {}}), Some(Daemon::KEY)).await;
    assert_eq!(status, 200, "the route worked; the endpoint's status is in the answer");
    assert_eq!(answer, json!({"node": "a", "status": 500, "body": {"error": "boom", "node": "a"}}));
    assert_eq!(mesh.calls().get("b /fail"), None, "b was not called");
    assert_eq!(mesh.calls()["a /fail"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_calls_and_wrong_keys_get_json_errors_and_reach_no_endpoint() {
    let mesh = Mesh::start().await;
    let echo = json!({"capability": "echo", "payload": 1});
    let cases = [
        (echo.clone(), None, 401, "unauthorized"),
        (echo.clone(), Some("wrong-key"), 401, "unauthorized"),
        (json!({"capability": "ecko", "payload": 1}), Some(Daemon::KEY), 404, "unknown_capability"),
        (json!({"capability": "echo", "payload": 1, "preferNode": "c"}), Some(Daemon::KEY), 400, "bad_prefer_node"),
        (json!({"capability": "echo", "payload": 1, "prefer_node": "b"}), Some(Daemon::KEY), 400, "bad_request"),
    ];
    for (body, key, status, error) in cases {
        let (got, answer) = route(&mesh.b, body.clone(), key).await;
        assert_eq!((got, answer["error"].as_str()), (status, Some(error)), "{body} with {key:?}: {answer}");
        assert!(answer["message"].is_string(), "{answer}");
    }
    let (_, answer) = route(&mesh.b, json!({"capability": "ecko", "payload": 1}), Some(Daemon::KEY)).await;
    assert_eq!(answer["message"], "unknown capability \"ecko\"; did you mean \"echo\"?");
    let (_, answer) =
        route(&mesh.b, json!({"capability": "echo", "payload": 1, "prefer_node": "b"}), Some(Daemon::KEY)).await;
    assert!(answer["message"].as_str().unwrap().contains("unknown field `prefer_node`"), "{answer}");
    assert!(mesh.calls().is_empty(), "no endpoint was called: {:?}", mesh.calls());
}
