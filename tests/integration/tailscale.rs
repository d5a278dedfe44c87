//! The Tailscale LocalAPI client against a fake tailscaled that keeps the real
//! wire format and rules, the `tailscale` command fallback against a script, and
//! Tailscale identity auth end to end through a real `meshctl daemon`.

pub(crate) mod fake;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use agentmesh::tailscale::{Endpoint, Error, TailscaleClient};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use self::fake::{FakeTailscaled, SilentTailscaled};
use crate::support::daemon::{Daemon, free_port, http};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn client(socket: &Path) -> TailscaleClient {
    TailscaleClient::new(Endpoint::Socket(socket.to_owned()))
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

#[tokio::test]
async fn status_over_the_socket_lists_the_peers_with_their_ips_and_online_state() {
    let tailscaled = FakeTailscaled::start();
    let status = client(tailscaled.socket()).status().await.unwrap();
    assert!(status.running);
    assert_eq!(status.tailnet_ipv4(), Some(Ipv4Addr::new(100, 101, 1, 2)));
    let mini = status.peer_for("mac-mini").expect("the Mac mini is a peer");
    assert_eq!((mini.dns_name.as_str(), mini.online), ("mac-mini.tail1234.ts.net", true));
    assert_eq!(mini.ips[0], "100.101.3.4".parse::<IpAddr>().unwrap());
    let build_box = status.peer_for("build-box").expect("found by host name");
    assert!(!build_box.online);
}

#[tokio::test]
async fn the_macos_apps_localapi_is_reached_over_loopback_with_its_token() {
    let app = FakeTailscaled::start_app("4e9b1fd7a08c5f2e").await;
    app.answer_whois("100.101.3.4".parse().unwrap(), fake::WHOIS_USER);
    let client = TailscaleClient::new(Endpoint::Tcp { port: app.port(), token: "4e9b1fd7a08c5f2e".into() });
    let status = client.status().await.unwrap();
    assert_eq!(status.tailnet_ipv4(), Some(Ipv4Addr::new(100, 101, 1, 2)));
    let user = client.whois(addr("100.101.3.4:41000")).await.unwrap().expect("a user");
    assert_eq!(user.login, "me@example.com");

    let wrong = TailscaleClient::new(Endpoint::Tcp { port: app.port(), token: "stale".into() });
    let error = wrong.status().await.unwrap_err();
    assert!(matches!(error, Error::Refused { status, .. } if status == 403), "{error}");
    assert!(!format!("{:?}", wrong.endpoint()).contains("stale"), "the token is never printed");
}

#[tokio::test]
async fn status_with_no_peers_has_an_empty_peer_list() {
    let tailscaled = FakeTailscaled::start();
    tailscaled.set_status(fake::STATUS_NO_PEERS);
    let status = client(tailscaled.socket()).status().await.unwrap();
    assert!(status.running);
    assert!(status.peers.is_empty());
    assert_eq!(status.peer_for("mac-mini"), None);
}

#[tokio::test]
async fn whois_names_a_user_a_tagged_node_or_nobody() {
    let tailscaled = FakeTailscaled::start();
    tailscaled.answer_whois("100.101.3.4".parse().unwrap(), fake::WHOIS_USER);
    tailscaled.answer_whois("fd7a:115c:a1e0::a01:506".parse().unwrap(), fake::WHOIS_TAGGED);
    let client = client(tailscaled.socket());

    let user = client.whois(addr("100.101.3.4:41000")).await.unwrap().expect("a user");
    assert_eq!((user.login.as_str(), user.node_name.as_str()), ("me@example.com", "mac-mini.tail1234.ts.net"));
    assert!(user.tags.is_empty());

    let tagged = client.whois(addr("[fd7a:115c:a1e0::a01:506]:443")).await.unwrap().expect("a tagged node");
    assert_eq!(tagged.login, "tagged-devices");
    assert_eq!(tagged.tags, ["tag:agent", "tag:server"]);

    assert_eq!(client.whois(addr("100.101.9.9:41000")).await.unwrap(), None, "404 no match for IP:port");
    assert_eq!(
        tailscaled.whois_asked(),
        ["100.101.3.4:41000", "[fd7a:115c:a1e0::a01:506]:443", "100.101.9.9:41000"],
        "the address arrives whole: escaped, IPv6 in brackets"
    );
}

#[tokio::test]
async fn an_ipv4_caller_seen_through_a_dual_stack_socket_is_asked_about_as_ipv4() {
    let tailscaled = FakeTailscaled::start();
    tailscaled.answer_whois("100.101.3.4".parse().unwrap(), fake::WHOIS_USER);
    let identity = client(tailscaled.socket()).whois(addr("[::ffff:100.101.3.4]:41000")).await.unwrap();
    assert!(identity.is_some());
    assert_eq!(tailscaled.whois_asked(), ["100.101.3.4:41000"]);
}

#[tokio::test]
async fn whois_asks_tailscaled_once_per_connection_within_a_minute() {
    let tailscaled = FakeTailscaled::start();
    tailscaled.answer_whois("100.101.3.4".parse().unwrap(), fake::WHOIS_USER);
    let client = client(tailscaled.socket());
    for _ in 0..3 {
        assert!(client.clone().whois(addr("100.101.3.4:41000")).await.unwrap().is_some());
        assert_eq!(client.whois(addr("100.101.7.7:41000")).await.unwrap(), None);
    }
    assert!(client.whois(addr("100.101.3.4:41001")).await.unwrap().is_some());
    assert_eq!(tailscaled.whois_asked(), ["100.101.3.4:41000", "100.101.7.7:41000", "100.101.3.4:41001"]);
}

/// The fake is only worth testing against if it refuses what tailscaled
/// refuses; the client's calls above pass its guard.
#[tokio::test]
async fn the_fake_refuses_browsers_foreign_hosts_and_a_whois_without_addr_as_tailscaled_does() {
    let tailscaled = FakeTailscaled::start();
    let socket = tailscaled.socket();
    let status = "GET /localapi/v0/status HTTP/1.1\r\n";
    let with_origin =
        raw(socket, &format!("{status}Host: local-tailscaled.sock\r\nOrigin: http://evil.example\r\n")).await;
    assert!(with_origin.starts_with("HTTP/1.1 403"), "{with_origin}");
    assert!(with_origin.ends_with("\r\n\r\ninvalid localapi request\n"), "{with_origin}");
    let with_referer = raw(socket, &format!("{status}Referer: http://evil.example/\r\n")).await;
    assert!(with_referer.starts_with("HTTP/1.1 403"), "{with_referer}");
    let foreign_host = raw(socket, &format!("{status}Host: localhost\r\n")).await;
    assert!(foreign_host.starts_with("HTTP/1.1 403"), "{foreign_host}");
    let no_host = raw(socket, status).await;
    assert!(no_host.starts_with("HTTP/1.1 200"), "{no_host}");
    assert!(no_host.contains("\n\t\"BackendState\": \"Running\",\n"), "tab-indented JSON: {no_host}");
    let no_addr = raw(socket, "GET /localapi/v0/whois HTTP/1.1\r\nHost: local-tailscaled.sock\r\n").await;
    assert!(no_addr.starts_with("HTTP/1.1 400") && no_addr.ends_with("missing 'addr' parameter\n"), "{no_addr}");
}

/// Sends a request head (the request line and headers) on its own connection
/// and returns the whole answer.
async fn raw(socket: &Path, head: &str) -> String {
    let mut stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    stream.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

#[tokio::test]
async fn a_tailscaled_that_never_answers_fails_within_the_timeout() {
    let tailscaled = SilentTailscaled::start();
    let client = client(tailscaled.socket()).with_timeout(Duration::from_millis(300));
    let started = std::time::Instant::now();
    assert!(matches!(client.status().await, Err(Error::Timeout(_))));
    assert!(matches!(client.whois(addr("100.101.3.4:41000")).await, Err(Error::Timeout(_))));
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

/// A stand-in for the `tailscale` command of the macOS app: prints the
/// fixtures as the CLI does, fails whois with the CLI's message.
fn fake_command(dir: &Path, script_body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tailscale");
    let path = dir.join("tailscale");
    let script = format!("#!/bin/sh\nFIXTURES='{}'\n{script_body}\n", fixtures.display());
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test]
async fn the_tailscale_command_is_the_way_in_without_a_socket() {
    let dir = tempfile::tempdir().unwrap();
    let program = fake_command(
        dir.path(),
        r#"case "$1 $2 $3" in
  "status --json ") cat "$FIXTURES/cli-status.json" ;;
  "whois --json 100.101.3.4:41000") cat "$FIXTURES/cli-whois.json" ;;
  "whois --json "*) echo "peer not found" >&2; exit 1 ;;
  *) echo "unexpected arguments: $*" >&2; exit 2 ;;
esac"#,
    );
    let client = TailscaleClient::new(Endpoint::Command(program));
    let status = client.status().await.unwrap();
    assert_eq!(status.peer_for("mac-mini").map(|peer| peer.online), Some(true));
    let identity = client.whois(addr("100.101.3.4:41000")).await.unwrap().expect("a user");
    assert_eq!(identity.login, "me@example.com");
    assert_eq!(client.whois(addr("100.101.9.9:41000")).await.unwrap(), None);
}

#[tokio::test]
async fn a_failing_or_hanging_tailscale_command_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let failing = fake_command(dir.path(), "echo 'failed to connect to local tailscaled' >&2; exit 1");
    let error = TailscaleClient::new(Endpoint::Command(failing)).status().await.unwrap_err();
    assert!(error.to_string().contains("failed to connect to local tailscaled"), "{error}");

    let dir = tempfile::tempdir().unwrap();
    let hanging = fake_command(dir.path(), "exec sleep 30");
    let client = TailscaleClient::new(Endpoint::Command(hanging)).with_timeout(Duration::from_millis(300));
    let started = std::time::Instant::now();
    assert!(matches!(client.status().await, Err(Error::Timeout(_))));
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// A real `meshctl daemon` on loopback whose Mesh enables Tailscale identity
/// auth (allowing `me@example.com` and `tag:agent`) through the fake's socket,
/// logging at debug level, so that "the key is never logged" covers the most.
async fn daemon_with_tailscale_auth(socket: &Path) -> Daemon {
    let port = free_port();
    let node = format!(
        "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata:\n  name: n1\n\
         spec:\n  role: primary\n  address: 127.0.0.1\n  apiPort: {port}\n"
    );
    let mesh = format!(
        "apiVersion: agentmesh/v1alpha1\nkind: Mesh\nmetadata:\n  name: mesh\nspec:\n  auth:\n    \
         tailscaleIdentity:\n      enabled: true\n      allowUsers: [me@example.com]\n      \
         allowTags: [\"tag:agent\"]\n  discovery:\n    localApiSocket: {}\n",
        socket.display()
    );
    let daemon = Daemon::builder()
        .file("manifests/node.yaml", &node)
        .file("manifests/mesh.yaml", &mesh)
        .process_env("RUST_LOG", "debug")
        .at("n1", Ipv4Addr::LOCALHOST, port)
        .start();
    daemon.ready().await;
    daemon
}

/// GETs `/api/v1/status` on one fresh connection, with `key` when given.
async fn get_status(client: &reqwest::Client, daemon: &Daemon, key: Option<&str>) -> reqwest::StatusCode {
    let mut request = client.get(daemon.url("/api/v1/status"));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.expect("the daemon answers").status()
}

#[tokio::test]
async fn a_caller_without_the_key_is_let_in_when_whois_names_an_allowed_user() {
    let tailscaled = FakeTailscaled::start();
    tailscaled.answer_whois(LOOPBACK, fake::WHOIS_USER);
    let daemon = daemon_with_tailscale_auth(tailscaled.socket()).await;
    let client = http();
    for _ in 0..3 {
        assert_eq!(get_status(&client, &daemon, None).await, 200, "{}", daemon.log());
    }
    let asked = tailscaled.whois_asked();
    assert_eq!(asked.len(), 1, "one connection, one whois: {asked:?}");
    assert_eq!(addr(&asked[0]).ip(), LOOPBACK, "whois of the caller's IP:port");
}

#[tokio::test]
async fn a_caller_without_the_key_is_let_in_when_whois_names_a_node_with_an_allowed_tag() {
    let tailscaled = FakeTailscaled::start();
    tailscaled.answer_whois(LOOPBACK, fake::WHOIS_TAGGED);
    let daemon = daemon_with_tailscale_auth(tailscaled.socket()).await;
    assert_eq!(get_status(&http(), &daemon, None).await, 200, "{}", daemon.log());
}

#[tokio::test]
async fn a_caller_whois_does_not_know_gets_401_and_the_key_still_works() {
    let tailscaled = FakeTailscaled::start();
    let daemon = daemon_with_tailscale_auth(tailscaled.socket()).await;
    let response = http().get(daemon.url("/api/v1/status")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    assert_eq!(get_status(&http(), &daemon, Some("wrong-key")).await, 401);
    assert_eq!(get_status(&http(), &daemon, Some(Daemon::KEY)).await, 200);
    assert_eq!(tailscaled.whois_asked().len(), 2, "asked for the two callers without the right key");
    assert!(!daemon.log().contains(Daemon::KEY), "the key is never logged");
}

#[tokio::test]
async fn a_caller_whose_login_is_not_allowed_gets_401() {
    let tailscaled = FakeTailscaled::start();
    tailscaled.answer_whois(LOOPBACK, fake::WHOIS_OTHER_USER);
    let daemon = daemon_with_tailscale_auth(tailscaled.socket()).await;
    assert_eq!(get_status(&http(), &daemon, None).await, 401);
    assert_eq!(tailscaled.whois_asked().len(), 1);
}

/// Opens the event stream from `origin` (with `cookie` when given), sends
/// one intervention and returns the answer to it.
async fn intervene(daemon: &Daemon, origin: &str, cookie: Option<&str>, action: &str) -> serde_json::Value {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut request = format!("ws://127.0.0.1:{}/api/v1/events", daemon.port()).into_client_request().unwrap();
    request.headers_mut().insert("origin", origin.parse().unwrap());
    if let Some(cookie) = cookie {
        request.headers_mut().insert("cookie", cookie.parse().unwrap());
    }
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("the stream opens");
    socket.send(Message::text(format!("{{\"action\":\"{action}\"}}"))).await.unwrap();
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), socket.next()).await.expect("an answer within 5 s");
        let Some(Ok(Message::Text(text))) = frame else { panic!("the stream ended: {frame:?}") };
        let message: serde_json::Value = serde_json::from_str(&text).unwrap();
        if message["type"] == "ack" || message["type"] == "error" {
            return message;
        }
    }
}

/// Issue #21: the page's actions need the key. A browser let in by its
/// Tailscale identity reads the mesh and follows the stream, but its actions
/// and interventions are refused until it trades the key for a session; the
/// CLI (no `Origin`) acts by identity as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_let_in_by_its_identity_reads_but_acts_only_with_the_key() {
    let tailscaled = FakeTailscaled::start();
    tailscaled.answer_whois(LOOPBACK, fake::WHOIS_USER);
    let daemon = daemon_with_tailscale_auth(tailscaled.socket()).await;
    let page = format!("http://{}", daemon.api());
    let authority = |origin: Option<&str>, cookie: Option<&str>| {
        let mut request = http().get(daemon.url("/ui/authority"));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        async move { request.send().await.unwrap().json::<serde_json::Value>().await.unwrap()["mayAct"].clone() }
    };
    let reconcile = |origin: Option<&str>, cookie: Option<&str>| {
        let mut request = http().post(daemon.url("/api/v1/reconcile")).json(&serde_json::json!({}));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        async move { request.send().await.unwrap() }
    };

    assert_eq!(get_status(&http(), &daemon, None).await, 200, "the browser reads by identity");
    assert_eq!(authority(Some(&page), None).await, false);
    let refused = reconcile(Some(&page), None).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(refused.json::<serde_json::Value>().await.unwrap()["error"], "key_required");
    let answer = intervene(&daemon, &page, None, "pause").await;
    assert_eq!(answer["type"], "error", "{answer}");
    assert!(answer["message"].as_str().unwrap().starts_with("key_required"), "{answer}");
    assert_ne!(daemon.status()["paused"], true, "the refused pause changed nothing");

    assert_eq!(authority(None, None).await, true, "the CLI acts by identity");
    assert_eq!(reconcile(None, None).await.status(), 200);

    let granted = http()
        .post(daemon.url("/ui/session"))
        .header("origin", &page)
        .json(&serde_json::json!({"key": Daemon::KEY}))
        .send()
        .await
        .unwrap();
    assert_eq!(granted.status(), 200);
    let set = granted.headers()["set-cookie"].to_str().unwrap();
    let cookie = set.split(';').next().unwrap().to_owned();
    assert_eq!(authority(Some(&page), Some(&cookie)).await, true);
    assert_eq!(reconcile(Some(&page), Some(&cookie)).await.status(), 200);
    let answer = intervene(&daemon, &page, Some(&cookie), "pause").await;
    assert_eq!((&answer["type"], &answer["action"]), (&"ack".into(), &"pause".into()), "{answer}");
    crate::support::wait::eventually("the node is paused", || (daemon.status()["paused"] == true).then_some(()));
    assert!(!daemon.log().contains(Daemon::KEY), "the key is never logged");
}
