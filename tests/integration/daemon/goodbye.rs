//! A peer saying goodbye (`POST /mesh/goodbye`, as a node about to sleep
//! sends it): the mini prefers the laptop for a capability; when the laptop
//! says it goes to sleep, the mini names its fallback (itself) at once, not
//! after failed probes, and keeps it while the laptop still answers probes;
//! when the laptop says it woke, the mini places the capability on it again
//! at once. A goodbye that names this node or no peer is refused.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::support::{
    Daemon, Endpoint, LAPTOP, MINI, http_within_5s, laptop_and_mini, llm_on_laptop_then_mini, port_free_on_all,
};

/// The figure: the fallback is named within half a second.
const AT_ONCE: Duration = Duration::from_millis(500);
/// Longer than a few probes of the laptop, which answers all along.
const STILL_ASLEEP: Duration = Duration::from_secs(3);

async fn api_get(daemon: &Daemon, path: &str) -> Value {
    let response = http_within_5s().get(daemon.url(path)).bearer_auth(Daemon::KEY).send().await.unwrap();
    response.json().await.unwrap()
}

async fn served_by(daemon: &Daemon) -> Value {
    api_get(daemon, "/api/v1/objects/Capability/llm").await["status"]["details"]["servedBy"].clone()
}

async fn goodbye(daemon: &Daemon, key: Option<&str>, node: &str, state: &str) -> reqwest::StatusCode {
    let mut request = http_within_5s().post(daemon.url("/mesh/goodbye")).json(&json!({"node": node, "state": state}));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap().status()
}

/// Polls until `daemon` places the capability on `node`.
async fn until_served_by(daemon: &Daemon, node: &str) {
    let started = Instant::now();
    while served_by(daemon).await != node {
        assert!(started.elapsed() < Duration::from_secs(10), "never served by {node}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn laptop_as_the_mini_sees_it(mini: &Daemon) -> Value {
    let mesh = api_get(mini, "/api/v1/mesh").await;
    mesh.as_array().unwrap().iter().find(|node| node["name"] == "laptop").unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_that_says_goodbye_is_fallen_back_from_at_once_and_returned_to_when_it_says_it_woke() {
    let port = port_free_on_all(&[LAPTOP, MINI]);
    let _endpoints = [Endpoint::start(LAPTOP, port), Endpoint::start(MINI, port)];
    let (_laptop, mini) = laptop_and_mini(&llm_on_laptop_then_mini(port)).await;
    mini.sees_online("laptop").await;
    mini.served_by("llm", "laptop").await;

    let said = Instant::now();
    assert_eq!(goodbye(&mini, Some(Daemon::KEY), "laptop", "asleep").await, 204);
    until_served_by(&mini, "mini").await;
    let fell_back = said.elapsed();
    let view = laptop_as_the_mini_sees_it(&mini).await;
    assert_eq!(view["knownDown"], true, "{view}");
    assert_eq!(view["online"], false, "{view}");
    assert!(view["asleepSince"].as_str().is_some_and(|since| since.ends_with('Z')), "{view}");

    // The laptop's daemon answers every probe: still asleep, no flapping.
    tokio::time::sleep(STILL_ASLEEP).await;
    assert_eq!(served_by(&mini).await, "mini");
    let view = laptop_as_the_mini_sees_it(&mini).await;
    assert_eq!((&view["online"], &view["knownDown"]), (&json!(false), &json!(true)), "answering, yet asleep: {view}");

    let said = Instant::now();
    assert_eq!(goodbye(&mini, Some(Daemon::KEY), "laptop", "awake").await, 204);
    until_served_by(&mini, "laptop").await;
    let came_back = said.elapsed();
    let view = laptop_as_the_mini_sees_it(&mini).await;
    assert!(view.get("asleepSince").is_none(), "{view}");
    eprintln!("the mini named its fallback {fell_back:?} after the goodbye, the laptop {came_back:?} after it woke");
    assert!(fell_back < AT_ONCE, "fell back after {fell_back:?}");
    assert!(came_back < AT_ONCE, "came back after {came_back:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_goodbye_must_carry_the_key_and_name_a_peer() {
    let (_laptop, mini) = laptop_and_mini("").await;
    assert_eq!(goodbye(&mini, None, "laptop", "asleep").await, 401);
    assert_eq!(goodbye(&mini, Some(Daemon::KEY), "mini", "asleep").await, 400, "this node itself");
    assert_eq!(goodbye(&mini, Some(Daemon::KEY), "desk", "asleep").await, 400, "no peer");
    assert_eq!(goodbye(&mini, Some(Daemon::KEY), "laptop", "dozing").await, 400, "no such state");
    assert_eq!(laptop_as_the_mini_sees_it(&mini).await.get("asleepSince"), None);
}
