//! The event stream (`GET /api/v1/events`), its interventions, `meshctl events`
//! and `GET /metrics`, against a real daemon. Every read from the stream is
//! bounded by a deadline.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::support::{Daemon, Marker, eventually, python, service, sleeper};
use crate::support::wait::eventually_async_within;

type Stream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The longest a message the test waits for may take.
const STREAM_PATIENCE: Duration = Duration::from_secs(15);

/// Connects to the daemon's event stream with `key`; the error of a refused
/// upgrade carries the HTTP answer.
async fn connect(daemon: &Daemon, key: Option<&str>) -> Result<Stream, WsError> {
    let mut request = format!("ws://127.0.0.1:{}/api/v1/events", daemon.port()).into_client_request()?;
    if let Some(key) = key {
        request.headers_mut().insert("authorization", format!("Bearer {key}").parse().unwrap());
    }
    tokio_tungstenite::connect_async(request).await.map(|(stream, _)| stream)
}

/// Connected with the key, past the recent events.
async fn connect_live(daemon: &Daemon) -> Stream {
    let mut stream = connect(daemon, Some(Daemon::KEY)).await.expect("the stream accepts the key");
    next_matching(&mut stream, "the live marker", |m| m["type"] == "live").await;
    stream
}

/// Reads messages until one satisfies `check`, for at most [`STREAM_PATIENCE`].
async fn next_matching(stream: &mut Stream, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + STREAM_PATIENCE;
    loop {
        let frame = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .unwrap_or_else(|| panic!("the stream ended before {what}"))
            .expect("a frame");
        let Message::Text(text) = frame else { continue };
        let message: Value = serde_json::from_str(&text).expect("a JSON message");
        if check(&message) {
            return message;
        }
    }
}

async fn send(stream: &mut Stream, text: &str) {
    stream.send(Message::Text(text.into())).await.expect("send a frame");
}

fn is_event(message: &Value, reason: &str, object: &str) -> bool {
    message["type"] == "event" && message["reason"] == reason && message["object"] == object
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_delivers_the_applied_snapshot_the_service_start_and_its_output() {
    let daemon = Daemon::builder().start();
    eventually("the first revision is applied", || daemon.revision());
    let mut stream = connect(&daemon, Some(Daemon::KEY)).await.expect("the stream accepts the key");
    let first = next_matching(&mut stream, "the recent events", |_| true).await;
    assert!(is_event(&first, "Applied", ""), "the recent events come first: {first}");
    next_matching(&mut stream, "the live marker", |m| m["type"] == "live").await;

    let command = ["sh", "-c", "echo hello-from-service; sleep 100"];
    daemon.write("manifests/hello.yaml", &service("hello", &command, ""));
    let applied = next_matching(&mut stream, "the new snapshot", |m| is_event(m, "Applied", "")).await;
    assert_eq!(applied["eventType"], "Normal");
    let (mut started, mut said_hello) = (false, false);
    while !(started && said_hello) {
        let message = next_matching(&mut stream, "the start and the output", |m| {
            is_event(m, "Starting", "Service/hello") || m["type"] == "log"
        })
        .await;
        if message["type"] == "log" {
            assert_eq!((&message["service"], &message["stream"]), (&"hello".into(), &"stdout".into()));
            said_hello |= message["line"] == "hello-from-service";
        } else {
            started = true;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_wants_the_key_before_the_upgrade() {
    let daemon = Daemon::builder().start();
    for key in [None, Some("wrong-key")] {
        match connect(&daemon, key).await {
            Err(WsError::Http(response)) => assert_eq!(response.status(), 401, "key {key:?}"),
            other => panic!("key {key:?} was not refused with 401: {:?}", other.map(|_| ())),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_controller_starts_nothing_until_it_is_resumed() {
    let daemon = Daemon::builder().start();
    eventually("the first revision is applied", || daemon.revision());
    let mut stream = connect_live(&daemon).await;

    send(&mut stream, r#"{"action":"pause"}"#).await;
    let ack = next_matching(&mut stream, "the ack", |m| m["type"] == "ack").await;
    assert_eq!(ack["action"], "pause");
    next_matching(&mut stream, "the Paused event", |m| is_event(m, "Paused", "")).await;
    assert_eq!(daemon.status()["paused"], true);

    let marker = Marker::new("paused");
    let command = [python(), "-c", "import time; time.sleep(1000)", marker.as_str()];
    daemon.write("manifests/late.yaml", &service("late", &command, ""));
    next_matching(&mut stream, "the snapshot applied while paused", |m| is_event(m, "Applied", "")).await;
    // A reconcile asked for now goes through the same loop: once it is
    // recorded, anything the loop would have dispatched has been.
    send(&mut stream, r#"{"action":"reconcile"}"#).await;
    next_matching(&mut stream, "the recorded request", |m| is_event(m, "ReconcileRequested", "")).await;
    assert_eq!(daemon.object("Service", "late"), None);
    assert!(marker.processes().is_empty(), "nothing started while paused");

    send(&mut stream, r#"{"action":"launch"}"#).await;
    let error = next_matching(&mut stream, "the error", |m| m["type"] == "error").await;
    assert!(error["message"].as_str().unwrap().contains("launch"), "{error}");

    send(&mut stream, r#"{"action":"resume"}"#).await;
    next_matching(&mut stream, "the ack", |m| m["type"] == "ack" && m["action"] == "resume").await;
    next_matching(&mut stream, "the start", |m| is_event(m, "Starting", "Service/late")).await;
    daemon.wait_until_ready("late");
    assert_eq!(marker.processes().len(), 1);
    assert_eq!(daemon.status().get("paused"), None, "the usual status shape is back");
}

/// The value of the sample `name{labels}` in the metrics text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_snapshots_reconciles_and_restarts_and_want_the_key() {
    let crash = service("crash", &["sh", "-c", "exit 1"], "  backoff: {initial: 100ms, max: 200ms}\n");
    let daemon = Daemon::builder()
        .file("manifests/crash.yaml", &crash)
        .file("manifests/worker.yaml", &sleeper("worker"))
        .start();
    daemon.wait_until_ready("worker");
    let url = format!("http://127.0.0.1:{}/metrics", daemon.port());
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);

    let text = eventually_async_within(STREAM_PATIENCE, "two restarts are counted", || async {
        let request = http.get(&url).bearer_auth(Daemon::KEY).header("accept", "application/openmetrics-text");
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert_eq!(content_type, "application/openmetrics-text; version=1.0.0; charset=utf-8");
        let text = response.text().await.unwrap();
        match sample(&text, r#"agentmesh_service_restarts_total{service="crash"}"#) {
            Some(restarts) if restarts >= 2.0 => Ok(text),
            _ => Err(format!("\n{text}")),
        }
    })
    .await;
    assert_eq!(sample(&text, r#"agentmesh_snapshots_total{result="applied"}"#), Some(1.0), "{text}");
    let node_reconciles = sample(&text, r#"agentmesh_reconciles_total{kind="Node",result="ok"}"#);
    assert!(node_reconciles.is_some_and(|n| n >= 1.0), "{text}");
    let service_reconciles = sample(&text, r#"agentmesh_reconciles_total{kind="Service",result="ok"}"#);
    assert!(service_reconciles.is_some_and(|n| n >= 2.0), "{text}");
    assert!(text.contains("agentmesh_reconcile_duration_seconds_count{kind=\"Service\"}"), "{text}");
}

#[test]
fn meshctl_events_prints_the_recent_events_and_can_intervene() {
    let daemon = Daemon::builder().file("manifests/worker.yaml", &sleeper("worker")).start();
    daemon.wait_until_ready("worker");

    let run = daemon.meshctl(&["events"]);
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines.iter().any(|l| l.contains("Normal") && l.contains("Applied")), "{run:?}");
    assert!(lines.iter().any(|l| l.contains("Starting") && l.contains("Service/worker")), "{run:?}");

    let run = daemon.meshctl(&["events", "-o", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    for line in run.stdout.lines() {
        let message: Value = serde_json::from_str(line).expect("one JSON message a line");
        assert_eq!(message["type"], "event", "{line}");
    }

    let run = daemon.meshctl(&["events", "--send", "pause"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "\"pause\" acknowledged\n", "only the acknowledgement, not the history: {run:?}");
    assert_eq!(daemon.status()["paused"], true);
    let table = daemon.meshctl(&["status"]);
    assert!(table.stdout.contains("reconciles paused"), "{table:?}");
}

/// The column each header word of `header` starts at.
fn column_starts(header: &str) -> Vec<usize> {
    header
        .match_indices(|c: char| c != ' ')
        .filter(|(i, _)| *i == 0 || header.as_bytes()[i - 1] == b' ')
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn meshctl_events_lines_its_columns_up_whatever_their_lengths() {
    let long = "a-service-whose-name-is-longer-than-a-column";
    let daemon = Daemon::builder().file("manifests/worker.yaml", &sleeper(long)).start();
    daemon.wait_until_ready(long);

    let run = daemon.meshctl(&["events"]);
    assert_eq!(run.code, 0, "{run:?}");
    let mut lines = run.stdout.lines();
    let header = lines.next().expect("a header");
    assert_eq!(header.split_whitespace().collect::<Vec<_>>(), ["TIME", "TYPE", "REASON", "OBJECT", "MESSAGE"]);
    let starts = column_starts(header);
    let rows: Vec<&str> = lines.collect();
    assert!(rows.iter().any(|row| row.contains(&format!("Service/{long}"))), "{run:?}");
    for row in &rows {
        for &start in &starts[1..] {
            let (before, at) = (&row[..start], &row[start..]);
            assert!(before.ends_with("  ") && !at.starts_with(' '), "not lined up with the header:\n{header}\n{row}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_daemon_closes_the_stream_instead_of_waiting_on_it() {
    let mut daemon = Daemon::builder().start();
    let mut stream = connect_live(&daemon).await;
    daemon.signal(libc::SIGTERM);
    let ended = tokio::time::timeout(STREAM_PATIENCE, async {
        while let Some(Ok(frame)) = stream.next().await {
            if frame.is_close() {
                break;
            }
        }
    });
    ended.await.expect("the stream ends when the daemon stops");
    assert!(daemon.wait_for_exit().success());
}

#[test]
fn meshctl_events_follow_prints_events_and_output_as_they_happen() {
    let daemon = Daemon::builder().start();
    eventually("the first revision is applied", || daemon.revision());
    let follow = daemon.meshctl_follow(&["events", "-f"]);
    // The recent events come first: once one is printed, the client follows.
    follow.until_within(STREAM_PATIENCE, "the recent Applied event", |l| l.contains("Applied"));

    let command = ["sh", "-c", "while true; do echo tick; sleep 0.2; done"];
    daemon.write("manifests/ticker.yaml", &service("ticker", &command, ""));
    follow.until_within(STREAM_PATIENCE, "the start", |l| l.contains("Starting") && l.contains("Service/ticker"));
    follow.until_within(STREAM_PATIENCE, "the output", |l| l == "ticker | tick");
}
