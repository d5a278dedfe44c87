//! The Ollama proxy end to end, driven by the real Python `ollama` client (the
//! venv `.ci/run` makes): two real daemons, `laptop` on 127.0.0.2 and `mini`
//! on 127.0.0.3, each with a fake Ollama on the same port of its own address,
//! and a Capability `llm_inference` that prefers the mini and falls back to
//! the laptop. The client always talks to the laptop's `/ollama`.

use std::future::ready;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::daemon::{Daemon, LAPTOP, MINI, laptop_and_mini, same_port_on};
use crate::support::ollama::{Config, FakeOllama, allowed_host};
use crate::support::venv_python;
use crate::support::wait::eventually_async_within;

/// The version of the client `.ci/run` installs.
const CLIENT_VERSION: &str = "0.6.3";

/// The interpreter of the venv holding the real `ollama` client.
fn client_python() -> &'static PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| venv_python("AGENTMESH_TEST_PYTHON", ".venv-ci", "ollama", CLIENT_VERSION))
}

/// What one client script printed: one JSON value per line.
#[derive(Debug)]
struct ClientRun {
    lines: Vec<Value>,
    stderr: String,
}

/// Runs `script` (after `import json, time, ollama`) in the real client's
/// Python with `OLLAMA_HOST` and, when given, `OLLAMA_API_KEY`, in a clean
/// environment (no proxy variables for httpx to follow). Fails unless it
/// exits 0 within 60 s.
async fn client(host: &str, key: Option<&str>, script: &str) -> ClientRun {
    let mut command = tokio::process::Command::new(client_python());
    command
        .arg("-c")
        .arg(format!("import json, time, ollama\n{script}"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("OLLAMA_HOST", host)
        .kill_on_drop(true);
    if let Some(key) = key {
        command.env("OLLAMA_API_KEY", key);
    }
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("the client script finishes within 60 s")
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "the client script failed:\n{script}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    let lines = stdout.lines().map(|line| serde_json::from_str(line).expect("the script prints JSON")).collect();
    ClientRun { lines, stderr }
}

/// Python that prints a `ResponseError`'s status and error as JSON.
const PRINT_ERROR: &str = "print(json.dumps({'status_code': e.status_code, 'error': e.error}))";

/// The two nodes, their daemons and their fake Ollamas.
struct Mesh {
    laptop: Daemon,
    mini: Daemon,
    laptop_ollama: FakeOllama,
    mini_ollama: FakeOllama,
}

impl Mesh {
    /// Both fakes have `tiny`; the mini's can pull `newmodel`. `mini` sets
    /// the mini's fake further.
    async fn start(mini: impl FnOnce(&mut Config)) -> Mesh {
        Mesh::start_with(mini, "").await
    }

    /// As `start`, with `more` added to the Capability's spec (flow style,
    /// starting with a comma). Both fakes can pull `newmodel`.
    async fn start_with(mini: impl FnOnce(&mut Config), more: &str) -> Mesh {
        let (laptop_listener, mini_listener) = same_port_on(LAPTOP, MINI).await;
        let port = laptop_listener.local_addr().unwrap().port();
        let mut laptop_config = Config::new("laptop", &["tiny"]);
        laptop_config.registry = vec!["newmodel".into()];
        let laptop_ollama = FakeOllama::start(laptop_listener, laptop_config);
        let mut mini_config = Config::new("mini", &["tiny"]);
        mini_config.registry = vec!["newmodel".into()];
        mini(&mut mini_config);
        let mini_ollama = FakeOllama::start(mini_listener, mini_config);
        let capability = format!(
            "apiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {{name: llm_inference}}\n\
             spec: {{provider: ollama, placement: {{prefer: [mini], fallback: [laptop]}}, endpoint: {{port: {port}}}{more}}}\n"
        );
        let (laptop, mini) = laptop_and_mini(&capability).await;
        laptop.served_by("llm_inference", "mini").await;
        Mesh { laptop, mini, laptop_ollama, mini_ollama }
    }

    /// `OLLAMA_HOST` for the laptop's proxy.
    fn laptop_host(&self) -> String {
        self.laptop.url("/ollama")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_on_the_laptop_is_answered_by_the_minis_backend() {
    let mesh = Mesh::start(|_| {}).await;
    let script = format!(
        "r = ollama.generate(model='tiny', prompt='hi')\n\
         print(json.dumps({{'response': r.response, 'done': r.done, 'done_reason': r.done_reason, 'eval_count': r.eval_count}}))\n\
         print(json.dumps([m.model for m in ollama.list().models]))\n\
         print(json.dumps(ollama.show('tiny').modelinfo))\n\
         try:\n    ollama.generate(model='absent', prompt='hi')\nexcept ollama.ResponseError as e:\n    {PRINT_ERROR}\n"
    );
    let run = client(&mesh.laptop_host(), Some(Daemon::KEY), &script).await;
    assert_eq!(
        run.lines[0],
        json!({"response": "[mini] w1 w2", "done": true, "done_reason": "stop", "eval_count": 3}),
        "{run:?}"
    );
    assert_eq!(run.lines[1], json!(["tiny:latest"]));
    assert_eq!(run.lines[2]["general.basename"], "mini");
    assert_eq!(
        run.lines[3],
        json!({"status_code": 404, "error": "model \"absent\" not found, try pulling it first"}),
        "the backend's error passes through unchanged"
    );
    assert!(mesh.laptop_ollama.seen().is_empty(), "the laptop's backend was not asked");

    // Every request reached the mini's backend with a Host its check takes and
    // without the mesh key.
    let seen = mesh.mini_ollama.seen();
    let calls: Vec<String> = seen.iter().map(|s| format!("{} {}", s.method, s.path)).collect();
    assert_eq!(calls, ["POST /api/generate", "GET /api/tags", "POST /api/show", "POST /api/generate"]);
    let backend = mesh.mini_ollama.addr.to_string();
    assert!(seen.iter().all(|s| s.host.as_deref() == Some(backend.as_str()) && s.authorization.is_none()), "{seen:?}");

    // A client's foreign Host (a tailnet name) is not passed on: the fake
    // refuses that Host, the proxy's request passes.
    assert!(!allowed_host("agent-work-laptop.tail1234.ts.net:8000") && allowed_host(&backend));
    let http = reqwest::Client::new();
    let foreign = "agent-work-laptop.tail1234.ts.net";
    let direct = http.get(format!("{}/api/tags", mesh.mini_ollama.url())).header("host", foreign).send().await.unwrap();
    assert_eq!((direct.status().as_u16(), direct.text().await.unwrap()), (403, String::new()));
    let proxied = http.get(mesh.laptop.url("/ollama/api/tags")).header("host", foreign).bearer_auth(Daemon::KEY);
    let proxied = proxied.send().await.unwrap();
    assert_eq!(proxied.status(), 200);
    assert_eq!(proxied.json::<Value>().await.unwrap()["models"][0]["name"], "tiny:latest");

    // Ollama's root and its OpenAI-compatible API go through as well.
    let root = http.get(mesh.laptop.url("/ollama/")).bearer_auth(Daemon::KEY).send().await.unwrap();
    assert_eq!(root.text().await.unwrap(), "Ollama is running");
    let openai = http
        .post(mesh.laptop.url("/ollama/v1/chat/completions"))
        .bearer_auth(Daemon::KEY)
        .json(&json!({"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(openai.json::<Value>().await.unwrap()["choices"][0]["message"]["content"], "[mini]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_chat_reaches_the_client_before_the_backend_has_finished() {
    let mesh = Mesh::start(|config| {
        config.chunks = 5;
        config.chunk_delay = Duration::from_millis(300);
    })
    .await;
    let script = "for part in ollama.chat(model='tiny', messages=[{'role': 'user', 'content': 'hello'}], stream=True):\n    \
                  print(json.dumps({'t': time.time(), 'content': part.message.content, 'done': part.done}), flush=True)\n";
    let run = client(&mesh.laptop_host(), Some(Daemon::KEY), script).await;
    let contents: Vec<&str> = run.lines.iter().map(|line| line["content"].as_str().unwrap()).collect();
    assert_eq!(contents, ["[mini]", " w1", " w2", " w3", " w4", ""], "{run:?}");
    assert_eq!(run.lines.last().unwrap()["done"], true);
    let sent = mesh.mini_ollama.sent();
    assert_eq!(sent.len(), 1, "one stream");
    let (first_sent, last_sent) = (sent[0][0], *sent[0].last().unwrap());
    let first_received = run.lines[0]["t"].as_f64().unwrap();
    assert!(last_sent - first_sent >= 1.4, "the backend took 5 pauses of 300 ms: {sent:?}");
    assert!(
        first_received < last_sent - 1.0,
        "the first chunk arrived {:.3} s after the backend sent it and {:.3} s before its last: it was held back",
        first_received - first_sent,
        last_sent - first_received
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_minis_daemon_and_backend_die_the_laptops_fallback_answers() {
    let mut mesh = Mesh::start(|_| {}).await;
    let generate = "print(json.dumps(ollama.generate(model='tiny', prompt='hi').response))\n";
    let run = client(&mesh.laptop_host(), Some(Daemon::KEY), generate).await;
    assert_eq!(run.lines, [json!("[mini] w1 w2")]);

    // The mini's backend dies, its daemon lives: the mini says it sent nothing.
    mesh.mini_ollama.stop().await;
    let run = client(&mesh.laptop_host(), Some(Daemon::KEY), generate).await;
    assert_eq!(run.lines, [json!("[laptop] w1 w2")], "{run:?}");

    // Both die. At once (the prober has not noticed: the refused connection
    // moves on), and again once the mini may be known to be down.
    mesh.mini.kill();
    let twice = format!("{generate}time.sleep(2.5)\n{generate}");
    let run = client(&mesh.laptop_host(), Some(Daemon::KEY), &twice).await;
    assert_eq!(run.lines, [json!("[laptop] w1 w2"), json!("[laptop] w1 w2")], "{run:?}");
    assert_eq!(mesh.laptop_ollama.seen().len(), 3);
    assert_eq!(mesh.mini_ollama.seen().len(), 1, "only the first call reached the mini");

    // With no backend left, the client gets the proxy's error as Ollama's.
    mesh.laptop_ollama.stop().await;
    let script = format!(
        "try:\n    ollama.generate(model='tiny', prompt='hi')\nexcept ollama.ResponseError as e:\n    {PRINT_ERROR}\n"
    );
    let run = client(&mesh.laptop_host(), Some(Daemon::KEY), &script).await;
    assert_eq!(run.lines[0]["status_code"], 503, "{run:?}");
    let error = run.lines[0]["error"].as_str().unwrap();
    assert!(error.starts_with("no node could serve capability \"llm_inference\": "), "{error}");
    assert!(error.contains("laptop: http://127.0.0.2:") && error.contains("Connection refused"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_model_is_pulled_through_the_proxy_and_then_listed() {
    let mesh = Mesh::start(|_| {}).await;
    let script = format!(
        "print(json.dumps([m.model for m in ollama.list().models]))\n\
         for p in ollama.pull('newmodel', stream=True):\n    \
             print(json.dumps({{'status': p.status, 'digest': p.digest, 'total': p.total, 'completed': p.completed}}))\n\
         print(json.dumps([m.model for m in ollama.list().models]))\n\
         print(json.dumps(ollama.generate(model='newmodel', prompt='hi').response))\n\
         try:\n    list(ollama.pull('nosuchmodel', stream=True))\nexcept ollama.ResponseError as e:\n    {PRINT_ERROR}\n\
         try:\n    ollama.pull('nosuchmodel')\nexcept ollama.ResponseError as e:\n    {PRINT_ERROR}\n"
    );
    let run = client(&mesh.laptop_host(), Some(Daemon::KEY), &script).await;
    let lines = &run.lines;
    assert_eq!(lines[0], json!(["tiny:latest"]), "{run:?}");
    let statuses: Vec<&str> = lines[1..9].iter().map(|line| line["status"].as_str().unwrap()).collect();
    let pulling = statuses[1];
    assert!(pulling.starts_with("pulling ") && pulling.len() == "pulling ".len() + 12, "{statuses:?}");
    let expected = [
        "pulling manifest",
        pulling,
        pulling,
        pulling,
        pulling,
        "verifying sha256 digest",
        "writing manifest",
        "success",
    ];
    assert_eq!(statuses, expected);
    assert_eq!(lines[2]["digest"].as_str().unwrap().len(), "sha256:".len() + 64);
    let progress: Vec<&Value> = lines[2..6].iter().map(|line| &line["completed"]).collect();
    assert_eq!(progress, [&Value::Null, &json!(1000), &json!(2000), &json!(3000)]);
    assert_eq!(lines[9], json!(["newmodel:latest", "tiny:latest"]), "listed after the pull");
    assert_eq!(lines[10], json!("[mini] w1 w2"));
    let missing = "pull model manifest: file does not exist";
    assert_eq!(lines[11], json!({"status_code": -1, "error": missing}), "an error line in the stream");
    assert_eq!(lines[12], json!({"status_code": 500, "error": missing}));
    assert_eq!(mesh.mini_ollama.models(), ["newmodel:latest", "tiny:latest"]);
    assert_eq!(mesh.laptop_ollama.models(), ["tiny:latest"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_the_key_gets_a_401_response_error() {
    let mesh = Mesh::start(|_| {}).await;
    let script = format!("try:\n    ollama.list()\nexcept ollama.ResponseError as e:\n    {PRINT_ERROR}\n");
    for key in [None, Some("wrong-key")] {
        let run = client(&mesh.laptop_host(), key, &script).await;
        assert_eq!(run.lines, [json!({"status_code": 401, "error": "unauthorized"})], "key {key:?}: {run:?}");
        assert!(run.stderr.is_empty(), "{}", run.stderr);
    }
    assert!(mesh.mini_ollama.seen().is_empty() && mesh.laptop_ollama.seen().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meshctl_exec_gives_the_agent_the_proxy_and_the_declared_models_are_pulled_on_both_nodes() {
    let more = r#", clientEnv: {OLLAMA_HOST: "{{api}}/ollama", OLLAMA_API_KEY: "{{apiKey}}"}, ollama: {models: [tiny, newmodel]}"#;
    let mesh = Mesh::start_with(|_| {}, more).await;
    // The model the manifests name and neither fake has is pulled on each
    // node that may serve the capability, without anyone asking.
    let pulled = |ollama: &FakeOllama| ollama.models().contains(&"newmodel:latest".to_owned());
    eventually_async_within(Duration::from_secs(20), "newmodel is pulled on both nodes", || {
        ready((pulled(&mesh.mini_ollama) && pulled(&mesh.laptop_ollama)).then_some(()))
    })
    .await;
    let pulls: Vec<String> = mesh.mini_ollama.seen().iter().map(|s| format!("{} {}", s.method, s.path)).collect();
    assert_eq!(pulls.iter().filter(|call| *call == "POST /api/pull").count(), 1, "pulled once: {pulls:?}");

    // The agent is started the way the README says: `meshctl exec -- python …`
    // on the laptop, with the env the laptop's controller rendered.
    let state = mesh.laptop.path().join("state");
    let env_file = state.join("client.env");
    eventually_async_within(Duration::from_secs(20), "client.env is written", || {
        ready(std::fs::read_to_string(&env_file).is_ok_and(|text| text.contains("OLLAMA_API_KEY")).then_some(()))
    })
    .await;
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&env_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "client.env holds the key: owner only");
    let script = "import json, os, ollama\n\
                  r = ollama.generate(model='newmodel', prompt='hi')\n\
                  print(json.dumps({'response': r.response, 'host': os.environ['OLLAMA_HOST']}))";
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .args(["exec", "--"])
        .arg(client_python())
        .args(["-c", script])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AGENT_NODE_ID", "laptop")
        .env("MESH_STATE_DIR", &state)
        .output()
        .await
        .expect("meshctl exec runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let answer: Value = serde_json::from_str(stdout.trim()).expect("the script prints JSON");
    assert_eq!(answer["host"], mesh.laptop_host(), "the agent talks to its own node's proxy");
    assert!(answer["response"].as_str().unwrap().starts_with("[mini]"), "answered by the mini: {answer}");
}
