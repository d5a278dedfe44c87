//! Model pulls against the fake Ollama: a pull that no Capability wants any
//! more (removed, or no longer listing the model, or pointing at another
//! Ollama) is cancelled (its connection closes before the model is written),
//! and one that another Capability still wants goes on.

use std::time::Duration;

use agentmesh::ollama::OllamaClient;
use agentmesh::ollama::pulls::{ModelPulls, PullState};
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::support::ollama::{Config, FakeOllama};

/// Each pull line comes this long after the last; a pull sends eight.
const PULL_DELAY: Duration = Duration::from_millis(250);

async fn fake_with_newmodel() -> FakeOllama {
    let mut config = Config::new("mini", &["tiny"]);
    config.registry = vec!["newmodel".to_owned()];
    config.pull_delay = PULL_DELAY;
    FakeOllama::start(TcpListener::bind("127.0.0.1:0").await.unwrap(), config)
}

fn has_newmodel(fake: &FakeOllama) -> bool {
    fake.models().iter().any(|model| model == "newmodel:latest")
}

/// Waits (at most ten seconds) until `check` holds.
async fn until(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_pull_whose_capability_is_removed_is_cancelled() {
    let fake = fake_with_newmodel().await;
    let client = OllamaClient::new(&fake.url());
    let pulls = ModelPulls::default();
    let wanted = ["newmodel".to_owned()];
    let missing = pulls.ensure("llm_inference", &client, &[], &wanted);
    assert!(matches!(missing["newmodel"], PullState::Pulling(_)), "{missing:?}");
    until("the fake is asked to pull", || fake.seen().iter().any(|seen| seen.path == "/api/pull")).await;

    pulls.forget("llm_inference");
    // Longer than the whole pull would have taken.
    tokio::time::sleep(PULL_DELAY * 10).await;
    assert!(!has_newmodel(&fake), "the pull was cancelled before Ollama wrote the model");
}

#[tokio::test]
async fn a_pull_another_capability_still_wants_goes_on() {
    let fake = fake_with_newmodel().await;
    let client = OllamaClient::new(&fake.url());
    let pulls = ModelPulls::default();
    let wanted = ["newmodel".to_owned()];
    pulls.ensure("llm_inference", &client, &[], &wanted);
    pulls.ensure("embeddings", &client, &[], &wanted);
    until("the fake is asked to pull", || fake.seen().iter().any(|seen| seen.path == "/api/pull")).await;

    pulls.forget("embeddings");
    until("the model is pulled", || has_newmodel(&fake)).await;
    let pulls_sent = fake.seen().iter().filter(|seen| seen.path == "/api/pull").count();
    assert_eq!(pulls_sent, 1, "one pull for both");
}

#[tokio::test]
async fn a_pull_of_a_model_its_capability_no_longer_lists_is_cancelled() {
    let fake = fake_with_newmodel().await;
    let client = OllamaClient::new(&fake.url());
    let pulls = ModelPulls::default();
    pulls.ensure("llm_inference", &client, &[], &["newmodel".to_owned()]);
    until("the fake is asked to pull", || fake.seen().iter().any(|seen| seen.path == "/api/pull")).await;

    let present = fake.models();
    let missing = pulls.ensure("llm_inference", &client, &present, &["tiny".to_owned()]);
    assert!(missing.is_empty(), "tiny is there: {missing:?}");
    tokio::time::sleep(PULL_DELAY * 10).await;
    assert!(!has_newmodel(&fake), "the pull was cancelled before Ollama wrote the model");
}

#[tokio::test]
async fn a_pull_from_an_ollama_its_capability_no_longer_points_at_is_cancelled() {
    let (before, after) = (fake_with_newmodel().await, fake_with_newmodel().await);
    let pulls = ModelPulls::default();
    let wanted = ["newmodel".to_owned()];
    pulls.ensure("llm_inference", &OllamaClient::new(&before.url()), &[], &wanted);
    until("the first fake is asked to pull", || before.seen().iter().any(|seen| seen.path == "/api/pull")).await;

    pulls.ensure("llm_inference", &OllamaClient::new(&after.url()), &[], &wanted);
    until("the model is pulled where the Capability points now", || has_newmodel(&after)).await;
    assert!(!has_newmodel(&before), "the pull from the Ollama left behind was cancelled");
}
