//! Model pulls against a real daemon and the fake Ollama: a pull under way is
//! cancelled when the Capability that declared the model is removed, stops
//! listing the model, or is no longer placed on this node.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::support::{Daemon, NODE, eventually_within, free_port, node_manifest};
use crate::support::ollama::{Config, FakeOllama};
use crate::support::wait::eventually_async;

/// Each pull line comes this long after the last; a pull sends eight.
const PULL_DELAY: Duration = Duration::from_millis(500);

/// A fake Ollama with `tiny`, from which `newmodel` can be pulled, slowly.
async fn fake_with_newmodel() -> FakeOllama {
    let mut config = Config::new("here", &["tiny"]);
    config.registry = vec!["newmodel".to_owned()];
    config.pull_delay = PULL_DELAY;
    FakeOllama::start(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(), config)
}

/// Capability `llm_inference` on the fake, preferring `node`, with `models`.
fn capability(fake: &FakeOllama, node: &str, models: &str) -> String {
    format!(
        "apiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {{name: llm_inference}}\n\
         spec: {{provider: ollama, placement: {{prefer: [{node}]}}, endpoint: {{host: 127.0.0.1, port: {}}}, \
         ollama: {{models: [{models}]}}}}\n",
        fake.addr.port()
    )
}

/// Starts a daemon with `capability` and waits until it asks the fake to pull.
fn daemon_pulling(fake: &FakeOllama, capability: &str) -> Daemon {
    let daemon = Daemon::builder().file("manifests/llm.yaml", capability).start();
    eventually_within(Duration::from_secs(20), "the daemon asks the fake to pull", || (pulls(fake) > 0).then_some(()));
    daemon
}

fn pulls(fake: &FakeOllama) -> usize {
    fake.seen().iter().filter(|seen| seen.path == "/api/pull").count()
}

/// Waits longer than the whole pull would have taken, then checks that the
/// fake never wrote the model and was asked once.
async fn assert_cancelled(fake: &FakeOllama) {
    tokio::time::sleep(PULL_DELAY * 10).await;
    assert!(
        !fake.models().iter().any(|model| model == "newmodel:latest"),
        "the pull was cancelled before Ollama wrote the model"
    );
    assert_eq!(pulls(fake), 1);
}

/// This daemon's `/metrics`.
async fn metrics(daemon: &Daemon) -> String {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = http.get(daemon.url("/metrics")).bearer_auth(Daemon::KEY).send().await.unwrap();
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_the_capability_cancels_its_ollama_model_pull() {
    let fake = fake_with_newmodel().await;
    let daemon = daemon_pulling(&fake, &capability(&fake, NODE, "newmodel"));
    // The fake's layer is 3000 bytes, pulled 1000 at a time.
    let size = r#"agentmesh_model_pull_size_bytes{model="newmodel"} 3000"#;
    let text = eventually_async("the metrics show the pull's bytes", || async {
        let text = metrics(&daemon).await;
        text.contains(size).then_some(text)
    })
    .await;
    assert!(text.contains(r#"agentmesh_model_pull_completed_bytes{model="newmodel"} "#), "{text}");

    daemon.remove("manifests/llm.yaml");
    eventually_within(Duration::from_secs(20), "the Capability is gone", || {
        daemon.object("Capability", "llm_inference").is_none().then_some(())
    });
    assert_cancelled(&fake).await;
    let text = metrics(&daemon).await;
    assert!(!text.contains("agentmesh_model_pull"), "a cancelled pull is still shown:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capability_that_stops_listing_the_model_cancels_its_pull() {
    let fake = fake_with_newmodel().await;
    let daemon = daemon_pulling(&fake, &capability(&fake, NODE, "newmodel"));

    daemon.write("manifests/llm.yaml", &capability(&fake, NODE, "tiny"));
    eventually_within(Duration::from_secs(20), "the Capability has every model it lists", || {
        let capability = daemon.object("Capability", "llm_inference")?;
        (capability["details"]["models"] == "1 of 1 present").then_some(())
    });
    assert_cancelled(&fake).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capability_no_longer_placed_on_this_node_cancels_its_pull() {
    let fake = fake_with_newmodel().await;
    let daemon = daemon_pulling(&fake, &capability(&fake, NODE, "newmodel"));

    let elsewhere = node_manifest("elsewhere", "satellite", (Ipv4Addr::LOCALHOST, free_port()).into());
    daemon.write("manifests/elsewhere.yaml", &elsewhere);
    daemon.write("manifests/llm.yaml", &capability(&fake, "elsewhere", "newmodel"));
    eventually_within(Duration::from_secs(20), "the Capability no longer counts models here", || {
        let capability = daemon.object("Capability", "llm_inference")?;
        let placed_elsewhere = capability["details"].get("models").is_none();
        placed_elsewhere.then_some(())
    });
    assert_cancelled(&fake).await;
}
