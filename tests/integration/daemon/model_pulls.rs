//! Model pulls against a real daemon and the fake Ollama: removing the
//! Capability that declared a model cancels its pull under way.

use std::time::Duration;

use super::support::{Daemon, NODE, eventually_within};
use crate::support::ollama::{Config, FakeOllama};

/// Each pull line comes this long after the last; a pull sends eight.
const PULL_DELAY: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_the_capability_cancels_its_ollama_model_pull() {
    let mut config = Config::new("here", &["tiny"]);
    config.registry = vec!["newmodel".to_owned()];
    config.pull_delay = PULL_DELAY;
    let fake = FakeOllama::start(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(), config);
    let capability = format!(
        "apiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {{name: llm_inference}}\n\
         spec: {{provider: ollama, placement: {{prefer: [{NODE}]}}, endpoint: {{host: 127.0.0.1, port: {}}}, \
         ollama: {{models: [newmodel]}}}}\n",
        fake.addr.port()
    );
    let daemon = Daemon::builder().file("manifests/llm.yaml", &capability).start();
    let pulls = || fake.seen().iter().filter(|seen| seen.path == "/api/pull").count();
    eventually_within(Duration::from_secs(20), "the daemon asks the fake to pull", || (pulls() > 0).then_some(()));

    daemon.remove("manifests/llm.yaml");
    eventually_within(Duration::from_secs(20), "the Capability is gone", || {
        daemon.object("Capability", "llm_inference").is_none().then_some(())
    });
    // Longer than the whole pull would have taken.
    tokio::time::sleep(PULL_DELAY * 10).await;
    assert!(
        !fake.models().iter().any(|model| model == "newmodel:latest"),
        "the pull was cancelled before Ollama wrote the model"
    );
    assert_eq!(pulls(), 1);
}
