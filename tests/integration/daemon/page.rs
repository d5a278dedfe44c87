//! The status page at `/` and its auth, against a real daemon: the shell
//! loads without a key and holds no data; the key or a `meshctl ui` ticket
//! is traded for a session cookie that the API and the event stream accept
//! from the page's own origin only; forgetting ends it; the key never shows
//! in the daemon's log.

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, SET_COOKIE};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::support::{Daemon, http};

/// The `mesh_session=…` pair of a `Set-Cookie` answer, as a browser sends it back.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    let set = headers.get(SET_COOKIE)?.to_str().unwrap();
    let pair = set.split(';').next().unwrap().trim();
    (pair.len() > "mesh_session=".len()).then(|| pair.to_owned())
}

async fn open_session(daemon: &Daemon, body: Value) -> reqwest::Response {
    http().post(daemon.url("/ui/session")).json(&body).send().await.unwrap()
}

async fn status_with_cookie(daemon: &Daemon, cookie: &str) -> StatusCode {
    http().get(daemon.url("/api/v1/status")).header("cookie", cookie).send().await.unwrap().status()
}

/// Opens the event stream with `cookie`, sent from `origin`; the HTTP status of a refusal.
async fn stream_with_cookie(daemon: &Daemon, cookie: &str, origin: &str) -> Result<(), u16> {
    let mut request = format!("ws://127.0.0.1:{}/api/v1/events", daemon.port()).into_client_request().unwrap();
    request.headers_mut().insert("cookie", cookie.parse().unwrap());
    request.headers_mut().insert("origin", origin.parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => Ok(()),
        Err(tokio_tungstenite::tungstenite::Error::Http(answer)) => Err(answer.status().as_u16()),
        Err(other) => panic!("the stream failed otherwise: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shell_loads_without_a_key_with_a_strict_policy_and_holds_no_data() {
    let daemon = Daemon::builder().start();
    daemon.ready().await;
    let node = daemon.api_get("/api/v1/status").unwrap()["name"].as_str().unwrap().to_owned();
    let revision = daemon.revision().expect("a revision in force");
    let shell = http().get(daemon.url("/")).send().await.unwrap().text().await.unwrap();
    let assets: Vec<&str> = shell.split('"').filter(|part| part.starts_with("/ui/")).collect();
    assert!(assets.len() >= 3, "the shell loads its script, style and modules: {assets:?}");
    assert_eq!(http().get(daemon.url("/ui/none.js")).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    let mut total = 0;
    for path in ["/"].into_iter().chain(assets) {
        let answer = http().get(daemon.url(path)).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "{path}");
        let headers = answer.headers().clone();
        let csp = headers["content-security-policy"].to_str().unwrap();
        for directive in ["default-src 'self'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(headers["cache-control"], "no-cache", "{path}");
        let etag = headers["etag"].clone();
        let body = answer.text().await.unwrap();
        total += body.len();
        for data in [Daemon::KEY, &node, &revision] {
            assert!(!body.contains(data), "{path} holds {data:?}");
        }
        let again = http().get(daemon.url(path)).header("if-none-match", etag).send().await.unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path} revalidates");
    }
    assert!(total < 150 * 1024, "the page transfers {total} bytes");
    assert_eq!(http().get(daemon.url("/api/v1/status")).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(http().get(daemon.url("/api/v1/mesh")).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_buys_a_session_cookie_that_works_until_forgotten_and_only_from_the_page() {
    // At debug level, so that the log holds every line that could leak the key.
    let daemon = Daemon::builder().process_env("RUST_LOG", "debug").start();
    daemon.ready().await;
    let page = format!("http://{}", daemon.api());

    let wrong = open_session(&daemon, json!({"key": "not-the-key"})).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(session_cookie(wrong.headers()), None);
    let refused = open_session(&daemon, json!({})).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(status_with_cookie(&daemon, "mesh_session=00").await, StatusCode::UNAUTHORIZED);

    let granted = open_session(&daemon, json!({"key": Daemon::KEY})).await;
    assert_eq!(granted.status(), StatusCode::OK);
    let set = granted.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(set.contains(attribute), "{set}");
    }
    let cookie = session_cookie(granted.headers()).unwrap();
    assert_eq!(cookie.len(), "mesh_session=".len() + 64, "256 random bits: {cookie}");
    assert_eq!(status_with_cookie(&daemon, &cookie).await, StatusCode::OK);
    stream_with_cookie(&daemon, &cookie, &page).await.expect("the stream takes the cookie from the page");
    assert_eq!(stream_with_cookie(&daemon, &cookie, "http://evil.example").await, Err(403));

    // A cross-site form post carries the cookie where SameSite does not hold; the Origin check refuses it.
    let cross = http()
        .post(daemon.url("/api/v1/reconcile"))
        .header("cookie", &cookie)
        .header("origin", "http://evil.example")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    assert_eq!(cross.json::<Value>().await.unwrap()["error"], "cross_origin");
    let own = http()
        .post(daemon.url("/api/v1/reconcile"))
        .header("cookie", &cookie)
        .header("origin", &page)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::OK);

    let forgotten = http().delete(daemon.url("/ui/session")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(forgotten.status(), StatusCode::NO_CONTENT);
    assert!(forgotten.headers()[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(status_with_cookie(&daemon, &cookie).await, StatusCode::UNAUTHORIZED);
    assert_eq!(stream_with_cookie(&daemon, &cookie, &page).await, Err(401));

    let by_header = http().post(daemon.url("/ui/session")).bearer_auth(Daemon::KEY).send().await.unwrap();
    assert_eq!(by_header.status(), StatusCode::OK, "the key as a bearer header");
    let log = daemon.log();
    assert!(log.contains("DEBUG"), "the daemon logs at debug level");
    assert!(!log.contains(Daemon::KEY), "the key is in the daemon's log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_from_meshctl_ui_opens_one_session_and_never_carries_the_key() {
    let daemon = Daemon::builder().start();
    daemon.ready().await;
    let without_key = http().post(daemon.url("/ui/ticket")).send().await.unwrap();
    assert_eq!(without_key.status(), StatusCode::UNAUTHORIZED);

    let run = daemon.meshctl(&["ui", "--print"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stdout.contains(Daemon::KEY) && !run.stderr.contains(Daemon::KEY), "{}", run.stdout);
    let url = run.stdout.trim();
    let (page, ticket) = url.split_once("/#ticket=").unwrap_or_else(|| panic!("no ticket in {url:?}"));
    assert_eq!(page, format!("http://{}", daemon.api()));
    assert_eq!(ticket.len(), 64, "{ticket}");

    let traded = open_session(&daemon, json!({"ticket": ticket})).await;
    assert_eq!(traded.status(), StatusCode::OK);
    let cookie = session_cookie(traded.headers()).unwrap();
    assert_eq!(status_with_cookie(&daemon, &cookie).await, StatusCode::OK);
    let again = open_session(&daemon, json!({"ticket": ticket})).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED, "a ticket works once");
    assert_eq!(session_cookie(again.headers()), None);
    assert!(!daemon.log().contains(Daemon::KEY));
}
