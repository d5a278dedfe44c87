//! The capability pass-through driven by the real Python `chromadb` client
//! against a real `chroma run` (both from the venv `.ci/run` makes): two
//! daemons, `laptop` on 127.0.0.2 and `mini` on 127.0.0.3; the mini runs
//! Chroma as a Service on an address of its own that the manifests call
//! loopback, and the agent on the laptop, started with `meshctl exec`, finds
//! it at `CHROMA_URL` (its own node's `/cap/vector_db`) with the mesh key as
//! chromadb's token auth settings, as `manifests/vector-db.yaml` declares.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::daemon::{MINI, free_port_on, laptop_and_mini};
use crate::support::venv_python;

/// The version `.ci/run` installs.
const CHROMADB_VERSION: &str = "1.5.9";

/// The interpreter of the venv holding `chromadb` (and its `chroma` server
/// beside it).
fn chroma_python() -> &'static PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| venv_python("AGENTMESH_TEST_CHROMA_PYTHON", ".venv-chroma", "chromadb", CHROMADB_VERSION))
}

/// The agent: creates a collection, adds two documents with their embeddings
/// (given, as the default embedding model would be downloaded), queries the
/// nearest, and reads them back; one JSON line per step.
const AGENT: &str = r#"
import json, os, chromadb
client = chromadb.HttpClient(host=os.environ["CHROMA_URL"])
print(json.dumps({"url": os.environ["CHROMA_URL"], "heartbeat": client.heartbeat() > 0}))
notes = client.create_collection("notes", embedding_function=None)
notes.add(ids=["mini", "laptop"], embeddings=[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
          documents=["the mini serves the LLM", "the laptop travels"],
          metadatas=[{"node": "mini"}, {"node": "laptop"}])
found = notes.query(query_embeddings=[[0.9, 0.1, 0.0]], n_results=1)
print(json.dumps({"ids": found["ids"], "documents": found["documents"], "metadatas": found["metadatas"]}))
got = notes.get(ids=["laptop"])
print(json.dumps({"documents": got["documents"], "count": notes.count(),
                  "collections": [c.name for c in client.list_collections()]}))
"#;

/// The same client with a wrong key: the mesh API refuses it.
const WRONG_KEY: &str = r#"
import json, os, chromadb
os.environ["CHROMA_CLIENT_AUTH_CREDENTIALS"] = "not-the-mesh-key"
try:
    chromadb.HttpClient(host=os.environ["CHROMA_URL"]).heartbeat()
    print(json.dumps("answered"))
except Exception as e:
    print(json.dumps(str(e)))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chromadb_client_on_the_laptop_uses_the_minis_chroma_through_both_daemons() {
    let python = chroma_python();
    let chroma = python.with_file_name("chroma");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port_on(MINI);
    let data = dir.path().join("chroma-data");
    let chroma_yaml = format!(
        "apiVersion: agentmesh/v1alpha1\nkind: Service\nmetadata: {{name: chroma}}\nspec:\n  nodes: [mini]\n  \
         command: [{chroma}, run, --host, {MINI}, --port, \"{port}\", --path, {data}]\n  \
         env: {{ANONYMIZED_TELEMETRY: \"False\"}}\n  \
         healthCheck: {{http: {{host: {MINI}, port: {port}, path: /api/v2/heartbeat}}, interval: 500ms}}\n---\n\
         apiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {{name: vector_db}}\nspec:\n  provider: http\n  \
         service: chroma\n  placement: {{prefer: [mini]}}\n  \
         endpoint: {{host: {MINI}, port: {port}, path: /api/v2, healthPath: /api/v2/heartbeat}}\n  clientEnv:\n    \
         CHROMA_URL: \"{{{{api}}}}/cap/vector_db\"\n    \
         CHROMA_CLIENT_AUTH_PROVIDER: chromadb.auth.token_authn.TokenAuthClientProvider\n    \
         CHROMA_CLIENT_AUTH_CREDENTIALS: \"{{{{apiKey}}}}\"\n",
        chroma = chroma.display(),
        data = data.display(),
    );
    let (laptop, _mini) = laptop_and_mini(&chroma_yaml).await;
    laptop.served_by("vector_db", "mini").await;

    let state = laptop.path().join("state");
    let agent = |script: &'static str| {
        let state = state.clone();
        async move {
            let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_meshctl"));
            command
                .args(["exec", "--"])
                .arg(chroma_python())
                .args(["-c", script])
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("AGENT_NODE_ID", "laptop")
                .env("MESH_STATE_DIR", &state)
                .env("ANONYMIZED_TELEMETRY", "False")
                .kill_on_drop(true);
            let output = tokio::time::timeout(Duration::from_secs(60), command.output())
                .await
                .expect("the agent finishes within 60 s")
                .expect("meshctl exec runs");
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(output.status.success(), "the agent failed:\n{stdout}\n{stderr}");
            stdout
                .lines()
                .map(|line| serde_json::from_str(line).expect("the agent prints JSON"))
                .collect::<Vec<Value>>()
        }
    };
    let lines = agent(AGENT).await;
    assert_eq!(lines[0], json!({"url": laptop.url("/cap/vector_db"), "heartbeat": true}), "{lines:?}");
    assert_eq!(
        lines[1],
        json!({"ids": [["mini"]], "documents": [["the mini serves the LLM"]], "metadatas": [[{"node": "mini"}]]})
    );
    assert_eq!(lines[2], json!({"documents": ["the laptop travels"], "count": 2, "collections": ["notes"]}));
    assert!(std::fs::read_dir(&data).unwrap().next().is_some(), "Chroma wrote its data on the mini");

    let refused = agent(WRONG_KEY).await;
    let message = refused[0].as_str().unwrap();
    assert!(message.contains("the bearer key is wrong"), "the mesh API refused it: {message}");
}
