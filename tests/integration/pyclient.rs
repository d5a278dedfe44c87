//! The agent's Python client (`clients/python`) against two real daemons:
//! `agent-work-laptop` on 127.0.0.2 and `agent-home-mini` on 127.0.0.3, each
//! with a fake Ollama on the same port of its own address standing in for the
//! endpoint of `llm_inference` (an `http` capability on `/api/generate`, as
//! the seed's agent calls it through `/mesh/route`) and of `chat` (an
//! `ollama` capability, behind each node's `/ollama`). Runs the client's
//! pytest suite, then the seed's own call as README.md shows it, output and
//! all; and `mypy --strict` over the client and its tests.

use std::process::Output;
use std::time::Duration;

use crate::support::daemon::{Daemon, LAPTOP, MINI, free_address, mesh_of, node_manifest, same_port_on};
use crate::support::ollama::{Config, FakeOllama};
use crate::support::{agent_client_src, agent_python, pytest_passed};

const LAPTOP_NODE: &str = "agent-work-laptop";
const MINI_NODE: &str = "agent-home-mini";

/// The two daemons and their stand-in endpoints.
struct Pair {
    laptop: Daemon,
    mini: Daemon,
    _endpoints: [FakeOllama; 2],
}

impl Pair {
    async fn start() -> Pair {
        let (laptop_listener, mini_listener) = same_port_on(LAPTOP, MINI).await;
        let port = laptop_listener.local_addr().unwrap().port();
        let endpoints = [
            FakeOllama::start(laptop_listener, Config::new("laptop", &["tiny"])),
            FakeOllama::start(mini_listener, Config::new("mini", &["tiny"])),
        ];
        let (laptop_api, mini_api) = (free_address(LAPTOP), free_address(MINI));
        let placement = format!("placement: {{prefer: [{MINI_NODE}], fallback: [{LAPTOP_NODE}]}}");
        let text = [
            node_manifest(LAPTOP_NODE, "primary", laptop_api),
            node_manifest(MINI_NODE, "satellite", mini_api),
            format!(
                "apiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {{name: llm_inference}}\n\
                 spec: {{provider: http, {placement}, endpoint: {{port: {port}, path: /api/generate, healthPath: /}}}}\n---\n\
                 apiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {{name: chat}}\n\
                 spec: {{provider: ollama, {placement}, endpoint: {{port: {port}}}}}\n"
            ),
        ]
        .concat();
        let [laptop, mini] = mesh_of([(LAPTOP_NODE, laptop_api), (MINI_NODE, mini_api)], &text);
        for daemon in [&laptop, &mini] {
            daemon.ready().await;
            daemon.served_by("llm_inference", MINI_NODE).await;
            daemon.served_by("chat", MINI_NODE).await;
        }
        Pair { laptop, mini, _endpoints: endpoints }
    }
}

/// Runs the client's Python with `args`, the client's source on its path, in
/// a clean environment plus `env`; fails unless it ends within 120 s.
async fn python(args: &[&str], env: &[(&str, String)]) -> Output {
    let mut command = tokio::process::Command::new(agent_python());
    command
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PYTHONPATH", agent_client_src())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("python ends within 120 s")
        .expect("python runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_clients_tests_pass_against_two_daemons() {
    let pair = Pair::start().await;
    let env = [
        ("AGENTMESH_TEST_LAPTOP_URL", pair.laptop.url("")),
        ("AGENTMESH_TEST_MINI_URL", pair.mini.url("")),
        ("AGENTMESH_TEST_LAPTOP_NODE", LAPTOP_NODE.to_owned()),
        ("AGENTMESH_TEST_MINI_NODE", MINI_NODE.to_owned()),
        ("AGENTMESH_TEST_KEY", Daemon::KEY.to_owned()),
    ];
    let output = python(&["-m", "pytest", "-p", "no:cacheprovider", "-q", "clients/python/tests"], &env).await;
    pytest_passed(&output);
}

/// The mypy `.ci/run` pins in the client's venv.
const MYPY_VERSION: &str = "2.4.1";

/// The client is typed to the letter: `mypy --strict` over its source and its
/// tests finds nothing (the cache goes nowhere, so the checkout stays clean).
#[tokio::test]
async fn the_python_client_and_its_tests_are_clean_under_mypy_strict() {
    let args = ["-m", "mypy", "--strict", "--cache-dir=/dev/null", "clients/python/src", "clients/python/tests"];
    let output = python(&args, &[]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("No module named mypy"),
        "{} has no mypy: run `.ci/run`, or pip install mypy=={MYPY_VERSION} into it",
        agent_python().display()
    );
    println!("{stdout}");
    assert!(
        output.status.success() && stdout.starts_with("Success: no issues found"),
        "mypy --strict:\n{stdout}\n{stderr}"
    );
}

/// The seed's call and its output, as README.md's "For the agent" shows them:
/// its ```python block and the ```text block after it.
fn readme_seed_call() -> (String, String) {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md");
    let section = readme.split("\n## For the agent\n").nth(1).expect("README.md has a \"For the agent\" section");
    let block = |text: &str, fence: &str| -> (String, usize) {
        let start = text.find(fence).unwrap_or_else(|| panic!("no {fence:?} block in \"For the agent\"")) + fence.len();
        let length = text[start..].find("```\n").unwrap_or_else(|| panic!("the {fence:?} block is not closed"));
        (text[start..start + length].to_owned(), start + length)
    };
    let (code, end) = block(section, "```python\n");
    let (output, _) = block(&section[end..], "```text\n");
    (code, output)
}

/// `Mesh()` finds the laptop's daemon from `MESH_LISTEN` and `MESH_API_KEY`;
/// then Ollama's own client streams through the laptop's `/ollama`. The
/// output is the README's, to the byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readmes_seed_call_and_ollamas_stream_on_the_laptop_are_answered_by_the_mini() {
    let (code, shown) = readme_seed_call();
    assert!(code.contains("Mesh()") && shown.lines().count() > 2, "the README's blocks: {code}\n{shown}");
    let pair = Pair::start().await;
    let env = [("MESH_LISTEN", pair.laptop.api().to_string()), ("MESH_API_KEY", Daemon::KEY.to_owned())];
    let output = python(&["-c", &code], &env).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    println!("{stdout}");
    assert_eq!(stdout, shown, "the README's output of its seed call");
}
