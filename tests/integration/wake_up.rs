//! Wake-on-LAN before falling back, end to end: two real daemons, `laptop` on
//! 127.0.0.2 and `mini` on 127.0.0.3, an `echo` capability preferring `mini`
//! with `laptop` as fallback, served by endpoints inside the test. Mini's
//! daemon is stopped (it "sleeps"); a call on the laptop wakes it — a magic
//! packet to a UDP listener of the test on loopback, or a `POST /v0/wol` to a
//! fake Tailscale peer's PeerAPI on loopback — and waits for it. Nothing is
//! sent outside loopback.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::routing::{any, post};
use serde_json::{Value, json};
use tokio::net::UdpSocket;

use crate::support::daemon::{Daemon, LAPTOP, MINI, free_address, mesh_of, same_port_on};
use crate::support::wait::eventually_async;
use crate::tailscale::fake::FakeTailscaled;

const MAC: &str = "aa:bb:cc:dd:ee:0f";

struct Mesh {
    laptop: Daemon,
    mini: Daemon,
}

/// The two daemons, both seeing each other; mini's Node has `wake` when given,
/// and `mesh` is one more manifest (a Mesh) when given.
async fn start(wake: Option<String>, mesh: &str) -> Mesh {
    let (laptop_endpoint, mini_endpoint) = same_port_on(LAPTOP, MINI).await;
    let port = laptop_endpoint.local_addr().unwrap().port();
    serve_echo("laptop", laptop_endpoint);
    serve_echo("mini", mini_endpoint);
    let (laptop_api, mini_api) = (free_address(LAPTOP), free_address(MINI));
    let wake = wake.map(|wake| format!(", wake: {wake}")).unwrap_or_default();
    let text = format!(
        "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {{name: laptop}}\n\
         spec: {{role: primary, address: {LAPTOP}, apiPort: {}}}\n---\n\
         apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {{name: mini}}\n\
         spec: {{role: satellite, address: {MINI}, apiPort: {}{wake}}}\n---\n\
         apiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {{name: echo}}\n\
         spec: {{provider: http, placement: {{prefer: [mini], fallback: [laptop]}}, endpoint: {{port: {port}, path: /echo}}}}\n{mesh}",
        laptop_api.port(),
        mini_api.port()
    );
    let [laptop, mini] = mesh_of([("laptop", laptop_api), ("mini", mini_api)], &text);
    laptop.ready().await;
    mini.ready().await;
    laptop.sees_online("mini").await;
    Mesh { laptop, mini }
}

/// An endpoint that answers `{node}`.
fn serve_echo(node: &'static str, listener: tokio::net::TcpListener) {
    let app = axum::Router::new().route("/echo", any(move || async move { axum::Json(json!({"node": node})) }));
    tokio::spawn(async move { axum::serve(listener, app).await });
}

/// Stops mini's daemon and waits until the laptop knows it is down.
async fn put_mini_to_sleep(mesh: &mut Mesh) {
    mesh.mini.kill();
    let (http, url) = (reqwest::Client::new(), mesh.laptop.url("/api/v1/mesh"));
    eventually_async("the laptop knows mini is down", || async {
        let peers: Value = http.get(&url).bearer_auth(Daemon::KEY).send().await.ok()?.json().await.ok()?;
        let mini = peers.as_array()?.iter().find(|peer| peer["name"] == "mini")?.clone();
        (mini["online"] == false && mini["lastError"].is_string()).then_some(())
    })
    .await;
}

/// `POST /mesh/route` for `echo` on the laptop, in the background.
fn call_echo(laptop: &Daemon) -> tokio::task::JoinHandle<(Duration, Value)> {
    let url = laptop.url("/mesh/route");
    tokio::spawn(async move {
        let started = Instant::now();
        let response = reqwest::Client::new()
            .post(url)
            .bearer_auth(Daemon::KEY)
            .json(&json!({"capability": "echo", "payload": {}}))
            .send()
            .await
            .expect("the laptop answers");
        assert_eq!(response.status(), 200);
        (started.elapsed(), response.json().await.expect("a route answer"))
    })
}

/// The reasons and messages of the events on `object` in `daemon`'s describe.
fn events_of(daemon: &Daemon, object: &str) -> Vec<(String, String)> {
    let described = daemon.api_get(&format!("/api/v1/objects/{object}")).expect("described");
    let events = described["events"].as_array().cloned().unwrap_or_default();
    events
        .iter()
        .map(|event| {
            (event["reason"].as_str().unwrap_or_default().into(), event["message"].as_str().unwrap_or_default().into())
        })
        .collect()
}

/// The broadcast address of a TEST-NET /24 that no network this machine is
/// directly on (a route of `/proc/net/route` without a gateway) holds, so a
/// wake to it can only go through a Tailscale peer: the daemon never sends
/// it. Some sandboxes put their own LAN on a TEST-NET.
fn off_every_link() -> Ipv4Addr {
    let routes = std::fs::read_to_string("/proc/net/route").expect("this test reads Linux's routes");
    let links: Vec<(u32, u32)> = routes
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let hex = |field: &str| u32::from_str_radix(field, 16).ok().map(u32::from_be);
            let (destination, gateway, mask) = (hex(fields.get(1)?)?, hex(fields.get(2)?)?, hex(fields.get(7)?)?);
            (gateway == 0 && mask != 0).then_some((destination, mask))
        })
        .collect();
    let candidates = [Ipv4Addr::new(198, 51, 100, 255), Ipv4Addr::new(203, 0, 113, 255), Ipv4Addr::new(192, 0, 2, 255)];
    *candidates
        .iter()
        .find(|address| links.iter().all(|(network, mask)| u32::from(**address) & mask != *network & mask))
        .expect("this machine is on every TEST-NET; the test would send outside loopback")
}

/// A loopback listener for magic packets, and the Node's `wake` that sends
/// them there: no packet leaves the machine.
async fn wake_on_loopback() -> (UdpSocket, String) {
    let listener = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, format!("{{mac: \"{MAC}\", address: 127.0.0.1, port: {port}, timeout: 10s}}"))
}

/// Restarts mini's daemon ("it woke") from the async test.
async fn wake_mini(mesh: &mut Mesh) {
    tokio::task::block_in_place(|| mesh.mini.restart());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_wakes_the_sleeping_preferred_node_on_the_lan_and_waits_for_it() {
    let (listener, wake) = wake_on_loopback().await;
    let port = listener.local_addr().unwrap().port();
    let mut mesh = start(Some(wake), "").await;
    put_mini_to_sleep(&mut mesh).await;

    // Three calls at once: one wake between them.
    let started = Instant::now();
    let calls: Vec<_> = (0..3).map(|_| call_echo(&mesh.laptop)).collect();
    let mut packet = [0u8; 200];
    let (length, _) = tokio::time::timeout(Duration::from_secs(5), listener.recv_from(&mut packet))
        .await
        .expect("a magic packet within 5 s")
        .unwrap();
    let to_packet = started.elapsed();
    assert_eq!(length, 102);
    assert_eq!(packet[..6], [0xFF; 6]);
    for copy in packet[6..102].chunks(6) {
        assert_eq!(copy, [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x0f]);
    }

    let asleep_for = Duration::from_secs(2);
    tokio::time::sleep(asleep_for).await;
    wake_mini(&mut mesh).await;
    for call in calls {
        let (took, answer) = call.await.unwrap();
        assert_eq!(answer["node"], "mini", "answered by the woken node, not the fallback: {answer}");
        assert_eq!(answer["body"], json!({"node": "mini"}));
        let wake = &answer["wake"];
        assert_eq!(
            (&wake["node"], &wake["via"], &wake["answered"]),
            (&json!("mini"), &json!("LAN"), &json!(true)),
            "{answer}"
        );
        assert!(wake["waitedMs"].as_u64().unwrap() >= 1_000, "{answer}");
        assert!(took < Duration::from_secs(10), "within the wake's timeout: {took:?}");
        println!(
            "wake on LAN: packet after {to_packet:?}, call answered after {took:?} (asleep {asleep_for:?} after the packet)"
        );
    }
    let mut more = [0u8; 200];
    let second = tokio::time::timeout(Duration::from_millis(300), listener.recv_from(&mut more)).await;
    assert!(second.is_err(), "one magic packet for three calls");
    let events = events_of(&mesh.laptop, "Node/mini");
    let sent: Vec<_> = events.iter().filter(|(reason, _)| reason == "WakeSent").collect();
    assert_eq!(sent.len(), 1, "{events:?}");
    assert!(
        sent[0].1.starts_with(&format!("magic packet for {MAC} sent to 127.0.0.1:{port} (102 bytes), via LAN")),
        "{sent:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_wake_the_fallback_answers_at_once() {
    let listener = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let mut mesh = start(None, "").await;
    put_mini_to_sleep(&mut mesh).await;
    let (took, answer) = call_echo(&mesh.laptop).await.unwrap();
    assert_eq!(answer["node"], "laptop", "{answer}");
    assert!(answer.get("wake").is_none(), "no wake, no wait: {answer}");
    assert!(took < Duration::from_secs(2), "the fallback answers within 2 s: {took:?}");
    let mut packet = [0u8; 200];
    let sent = tokio::time::timeout(Duration::from_millis(300), listener.recv_from(&mut packet)).await;
    assert!(sent.is_err(), "no magic packet");
    assert!(!events_of(&mesh.laptop, "Node/mini").iter().any(|(reason, _)| reason.starts_with("Wake")));
}

/// A Tailscale peer `lan-box` routing a TEST-NET /24 on no network of this
/// machine, with its PeerAPI on loopback, answering after `delay`, and the
/// fake tailscaled that lists it.
struct Relay {
    /// The `POST /v0/wol` requests it was sent.
    asked: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    /// mini's `wake`: a broadcast address on that /24, sent to through lan-box.
    wake: String,
    /// The Mesh manifest that turns Tailscale discovery on with `tailscaled`.
    mesh: String,
    _tailscaled: FakeTailscaled,
}

async fn relay_on_loopback(delay: Duration) -> Relay {
    let asked: Arc<Mutex<Vec<(HeaderMap, String)>>> = Arc::default();
    let record = asked.clone();
    let peerapi = axum::Router::new().route(
        "/v0/wol",
        post(move |headers: HeaderMap, body: String| async move {
            record.lock().unwrap().push((headers, body));
            tokio::time::sleep(delay).await;
            axum::Json(json!({"SentTo": ["eth0"], "Errors": null}))
        }),
    );
    let peerapi_listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let peerapi_port = peerapi_listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(peerapi_listener, peerapi).await });
    let address = off_every_link();
    let network = Ipv4Addr::from(u32::from(address) & 0xFFFF_FF00);
    let tailscaled = FakeTailscaled::start();
    tailscaled.set_status(&format!(
        r#"{{"BackendState": "Running", "TailscaleIPs": ["100.101.1.2"], "Peer": {{"nodekey:c": {{
            "HostName": "lan-box", "DNSName": "lan-box.tail1234.ts.net.", "Online": true,
            "TailscaleIPs": ["100.101.7.8"], "PrimaryRoutes": ["{network}/24"],
            "AllowedIPs": ["100.101.7.8/32", "{network}/24"],
            "PeerAPIURL": ["http://127.0.0.1:{peerapi_port}"]}}}}}}"#
    ));
    let mesh = format!(
        "---\napiVersion: agentmesh/v1alpha1\nkind: Mesh\nmetadata: {{name: mesh}}\n\
         spec: {{discovery: {{tailscale: true, localApiSocket: {}}}}}\n",
        tailscaled.socket().display()
    );
    // A TEST-NET address on no network of this machine: nothing is sent to it.
    let wake = format!("{{mac: \"{MAC}\", address: {address}, port: 9, timeout: 10s}}");
    Relay { asked, wake, mesh, _tailscaled: tailscaled }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_the_lan_a_tailscale_peer_routing_the_wake_address_is_asked_through_its_peerapi() {
    let relay = relay_on_loopback(Duration::ZERO).await;
    let asked = relay.asked.clone();
    let mut mesh = start(Some(relay.wake.clone()), &relay.mesh).await;
    put_mini_to_sleep(&mut mesh).await;

    let started = Instant::now();
    let call = call_echo(&mesh.laptop);
    eventually_async("lan-box is asked to wake mini", || async { (!asked.lock().unwrap().is_empty()).then_some(()) })
        .await;
    let to_request = started.elapsed();
    let (headers, body) = asked.lock().unwrap()[0].clone();
    assert_eq!(body, "mac=aa%3Abb%3Acc%3Add%3Aee%3A0f");
    assert_eq!(headers["content-type"], "application/x-www-form-urlencoded");
    assert!(headers.get("authorization").is_none(), "the PeerAPI lets a node in by its tailnet address");

    wake_mini(&mut mesh).await;
    let (took, answer) = call.await.unwrap();
    assert_eq!(answer["node"], "mini", "{answer}");
    assert_eq!(answer["wake"]["via"], "Tailscale peer lan-box", "not sent from here: {answer}");
    assert_eq!(asked.lock().unwrap().len(), 1);
    let events = events_of(&mesh.laptop, "Node/mini");
    let sent: Vec<_> = events.iter().filter(|(reason, _)| reason == "WakeSent").collect();
    assert_eq!(sent.len(), 1, "{events:?}");
    assert_eq!(sent[0].1, format!("magic packet for {MAC} sent by lan-box on eth0, via Tailscale peer lan-box"));
    println!("wake through a Tailscale peer: request after {to_request:?}, call answered after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_through_call_wakes_too_and_its_answer_says_it_waited() {
    let (listener, wake) = wake_on_loopback().await;
    let mut mesh = start(Some(wake), "").await;
    put_mini_to_sleep(&mut mesh).await;

    let url = mesh.laptop.url("/cap/echo/echo");
    let call = tokio::spawn(async move { reqwest::Client::new().post(url).bearer_auth(Daemon::KEY).send().await });
    let mut packet = [0u8; 200];
    let (length, _) = tokio::time::timeout(Duration::from_secs(5), listener.recv_from(&mut packet))
        .await
        .expect("a magic packet within 5 s")
        .unwrap();
    assert_eq!(length, 102);
    wake_mini(&mut mesh).await;
    let response = call.await.unwrap().expect("the laptop answers");
    assert_eq!(response.status(), 200, "{:?}", response.headers());
    let header = response.headers()["x-mesh-wake"].to_str().unwrap().to_owned();
    assert!(header.starts_with("node=mini; via=LAN; waited-ms="), "{header}");
    assert!(header.ends_with("; answered=true"), "{header}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"node": "mini"}), "answered by the woken node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wake_that_cannot_be_sent_holds_no_call_and_is_told_once() {
    // A TEST-NET address on no network of this machine, and no Tailscale
    // peer to relay: the wake cannot go out, and nothing is sent.
    let wake = format!("{{mac: \"{MAC}\", address: {}, port: 9, timeout: 10s}}", off_every_link());
    let mut mesh = start(Some(wake), "").await;
    put_mini_to_sleep(&mut mesh).await;

    for call in ["first", "second"] {
        let (took, answer) = call_echo(&mesh.laptop).await.unwrap();
        assert_eq!(answer["node"], "laptop", "the {call} call falls back: {answer}");
        assert!(answer.get("wake").is_none(), "no wake sent, no wait: {answer}");
        assert!(took < Duration::from_secs(2), "the {call} call falls back within 2 s: {took:?}");
        println!("wake that cannot be sent: the {call} call answered by the fallback after {took:?}");
    }
    let events = events_of(&mesh.laptop, "Node/mini");
    let wakes: Vec<_> = events.iter().filter(|(reason, _)| reason.starts_with("Wake")).collect();
    assert_eq!(wakes.len(), 1, "{events:?}");
    assert_eq!(wakes[0].0, "WakeFailed", "{events:?}");
    assert!(
        wakes[0].1.starts_with(&format!("cannot send the magic packet for {MAC}: no interface of this machine")),
        "{wakes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wake_unanswered_holds_the_call_its_timeout_then_none_for_a_while() {
    let (listener, wake) = wake_on_loopback().await;
    let wake = wake.replace("timeout: 10s", "timeout: 2s");
    let mut mesh = start(Some(wake), "").await;
    put_mini_to_sleep(&mut mesh).await;

    let (took, answer) = call_echo(&mesh.laptop).await.unwrap();
    let mut packet = [0u8; 200];
    let (length, _) = tokio::time::timeout(Duration::from_millis(300), listener.recv_from(&mut packet))
        .await
        .expect("the magic packet went out")
        .unwrap();
    assert_eq!(length, 102);
    assert_eq!(answer["node"], "laptop", "the fallback answers once the wake's timeout passed: {answer}");
    let wake = &answer["wake"];
    assert_eq!((&wake["node"], &wake["via"], &wake["answered"]), (&json!("mini"), &json!("LAN"), &json!(false)));
    let waited = Duration::from_millis(wake["waitedMs"].as_u64().unwrap());
    assert!(waited >= Duration::from_millis(1_900) && waited < Duration::from_secs(3), "{answer}");
    assert!(took >= Duration::from_millis(1_900) && took < Duration::from_secs(4), "about the timeout: {took:?}");

    // Woken in vain a moment ago: the next call does not wait, nor wake again.
    let (again, answer) = call_echo(&mesh.laptop).await.unwrap();
    assert_eq!(answer["node"], "laptop", "{answer}");
    assert!(answer.get("wake").is_none(), "no wait: {answer}");
    assert!(again < Duration::from_secs(2), "the next call falls back within 2 s: {again:?}");
    let second = tokio::time::timeout(Duration::from_millis(300), listener.recv_from(&mut packet)).await;
    assert!(second.is_err(), "one magic packet");
    println!("wake unanswered: the call answered by the fallback after {took:?}, the next one after {again:?}");

    let events = events_of(&mesh.laptop, "Node/mini");
    let wakes: Vec<&str> =
        events.iter().map(|(reason, _)| reason.as_str()).filter(|reason| reason.starts_with("Wake")).collect();
    assert_eq!(wakes, ["WakeSent", "WakeUnanswered"], "{events:?}");
    let unanswered = events.iter().find(|(reason, _)| reason == "WakeUnanswered").unwrap();
    assert_eq!(unanswered.1, "mini did not answer within 2s of its wake");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wake_that_does_not_go_out_within_a_second_holds_the_call_no_longer() {
    // lan-box takes the request but answers only after the call is long over.
    let relay = relay_on_loopback(Duration::from_secs(10)).await;
    let mut mesh = start(Some(relay.wake.clone()), &relay.mesh).await;
    put_mini_to_sleep(&mut mesh).await;

    let (took, answer) = call_echo(&mesh.laptop).await.unwrap();
    assert_eq!(relay.asked.lock().unwrap().len(), 1, "lan-box was asked");
    assert_eq!(answer["node"], "laptop", "{answer}");
    assert!(answer.get("wake").is_none(), "not sent, no wait: {answer}");
    assert!(took < Duration::from_secs(2), "the fallback answers within 2 s: {took:?}");
    println!("wake through a Tailscale peer that does not answer: the fallback answered after {took:?}");
    let events = events_of(&mesh.laptop, "Node/mini");
    let wakes: Vec<_> = events.iter().filter(|(reason, _)| reason.starts_with("Wake")).collect();
    assert_eq!(
        wakes,
        [&("WakeFailed".to_owned(), format!("cannot send the magic packet for {MAC}: it did not go out within 1s"))],
        "{events:?}"
    );
}
