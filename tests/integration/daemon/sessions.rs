//! Conversations' ownership end to end, on the two-node fixture of `sync.rs`
//! (real Syncthings, real daemons) with a HandoffPolicy on its SyncFolder: a
//! conversation folder is claimed by the node where it appeared first, and
//! both nodes show the same owner, epoch and content.

use serde_json::Value;

use super::support::eventually_within;
use super::sync::{A, OBJECT, PATIENCE, Side, Syncthings};

const POLICY: &str = "chats";

fn policy() -> String {
    format!(
        "apiVersion: agentmesh/v1alpha1\nkind: HandoffPolicy\nmetadata:\n  name: {POLICY}\nspec:\n  syncFolder: {OBJECT}\n  \
         sessionsDir: sessions\n"
    )
}

/// Waits until `side` shows conversation `id` as `check` wants it.
fn wait_for_session(side: &Side, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    eventually_within(PATIENCE, &format!("{} shows {id} {what}", side.name), || {
        side.daemon.api_get(&format!("/api/v1/sessions/{id}")).filter(|session| check(session))
    })
}

#[test]
fn a_conversation_written_on_node_a_is_owned_by_node_a_on_both_nodes_and_node_b_never_claims_it() {
    let pair = Syncthings::start().start_daemons_with(&policy());
    pair.wait_until_ready();
    let conversation = pair.a.syncthing.data(OBJECT).join("sessions/c-1");
    std::fs::create_dir_all(&conversation).expect("make the conversation folder");
    std::fs::write(conversation.join("messages.jsonl"), "{\"role\":\"user\",\"content\":\"hello\"}\n").unwrap();

    let mut hashes = Vec::new();
    for side in [&pair.a, &pair.b] {
        let session = wait_for_session(side, "c-1", "owned by node-a at epoch 1, in sync", |session| {
            session["owner"] == A && session["inSync"] == true
        });
        assert_eq!(
            (&session["epoch"], &session["phase"], &session["policy"]),
            (&1.into(), &"owned".into(), &POLICY.into())
        );
        assert_eq!(session["files"], 1, "{session}");
        assert_eq!(session["conflicts"], Value::Array(Vec::new()), "{session}");
        assert_eq!(session["path"], side.syncthing.data(OBJECT).join("sessions/c-1").display().to_string());
        hashes.push(session["hash"].clone());
    }
    assert!(hashes[0].is_string() && hashes[0] == hashes[1], "{hashes:?}");
    assert_eq!(pair.a.events("Claimed").len(), 1, "node-a claims it once");
    assert!(pair.b.events("Claimed").is_empty(), "node-b never claims it");

    let table = pair.b.daemon.meshctl(&["sessions"]);
    assert_eq!(table.code, 0, "{table:?}");
    let lines: Vec<Vec<&str>> = table.stdout.lines().map(|line| line.split_whitespace().collect()).collect();
    assert_eq!(
        lines,
        [vec!["ID", "POLICY", "OWNER", "EPOCH", "IN", "SYNC", "CONFLICTS"], vec!["c-1", POLICY, A, "1", "yes", "0"]]
    );
    let json = pair.a.daemon.meshctl(&["sessions", "-o", "json"]);
    let json: Value = serde_json::from_str(&json.stdout).expect("sessions -o json prints JSON");
    assert_eq!(json.as_array().map(Vec::len), Some(1), "{json}");
    assert_eq!((&json[0]["id"], &json[0]["owner"]), (&"c-1".into(), &A.into()));
    let unknown = pair.a.daemon.api_get("/api/v1/sessions/nope").expect("an answer");
    assert_eq!(unknown["error"], "not_found", "an unknown conversation is a 404: {unknown}");
}
