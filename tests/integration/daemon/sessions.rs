//! Conversations' ownership end to end, on the two- and three-node fixtures
//! of `sync.rs` (real Syncthings, real daemons) with a HandoffPolicy on their
//! SyncFolder: a conversation folder is claimed by the node where it appeared
//! first, and every node shows the same owner, epoch and content.

use serde_json::Value;

use super::support::{eventually, eventually_within};
use std::time::{Duration, Instant};

use super::support::{A, B, C};
use super::sync::{OBJECT, PATIENCE, Pair, Side, Syncthings, Trio};

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

/// Both nodes with the policy, and conversation `c-1` written on node-a,
/// owned by node-a and in sync on both.
fn pair_with_a_conversation() -> Pair {
    pair_with_a_conversation_under(&policy())
}

/// [`pair_with_a_conversation`] with `policy` as the HandoffPolicy.
fn pair_with_a_conversation_under(policy: &str) -> Pair {
    let pair = Syncthings::start().start_daemons_with(policy);
    pair.wait_until_ready();
    let conversation = pair.a.syncthing.data(OBJECT).join("sessions/c-1");
    std::fs::create_dir_all(conversation.join("attachments")).expect("make the conversation folder");
    std::fs::write(conversation.join("messages.jsonl"), "{\"role\":\"user\",\"content\":\"hello\"}\n").unwrap();
    std::fs::write(conversation.join("attachments/notes.md"), "# notes\n").unwrap();
    for side in [&pair.a, &pair.b] {
        wait_for_session(side, "c-1", "owned by node-a, in sync", |s| s["owner"] == A && s["inSync"] == true);
    }
    pair
}

/// Every file of a folder, by relative path, with its bytes.
fn files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return found,
        Err(error) => panic!("read {}: {error}", dir.display()),
    };
    for entry in entries {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            found.extend(files(&path).into_iter().map(|(relative, bytes)| (format!("{name}/{relative}"), bytes)));
        } else {
            // Syncthing's temporary files and the files it replaces come and
            // go while the folder is read: one gone since the listing is skipped.
            match std::fs::read(&path) {
                Ok(bytes) => found.push((path.file_name().unwrap().to_string_lossy().into_owned(), bytes)),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => panic!("read {}: {error}", path.display()),
            }
        }
    }
    found.sort();
    found
}

#[test]
fn a_handoff_from_node_a_to_node_b_makes_node_b_the_owner_at_epoch_2_with_the_same_content() {
    let pair = pair_with_a_conversation();

    let started = Instant::now();
    let run = pair.a.daemon.meshctl(&["handoff", "c-1", "--to", B, "--timeout", "30s"]);
    let took = started.elapsed();
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains(&format!(" of c-1 to {B} started\n")), "{run:?}");
    assert!(run.stdout.contains("  freeze: the conversation is frozen"), "{run:?}");
    assert!(run.stdout.contains("  barrier: the target holds the same content"), "{run:?}");
    assert!(run.stdout.ends_with(&format!("{B} now owns c-1 at epoch 2\n")), "{run:?}");
    assert!(took < Duration::from_secs(15), "the handoff took {took:?}");

    for side in [&pair.a, &pair.b] {
        let session =
            wait_for_session(side, "c-1", "owned by node-b at epoch 2", |s| s["owner"] == B && s["epoch"] == 2);
        assert_eq!(session["writable"], side.name == B, "only the owner's agent may write: {session}");
    }
    let (dir_a, dir_b) =
        (pair.a.syncthing.data(OBJECT).join("sessions/c-1"), pair.b.syncthing.data(OBJECT).join("sessions/c-1"));
    let conversation = |dir: &std::path::Path| {
        files(dir).into_iter().filter(|(name, _)| !name.starts_with(".agentmesh-")).collect::<Vec<_>>()
    };
    assert_eq!(conversation(&dir_b), conversation(&dir_a), "byte-identical content");
    assert_eq!(conversation(&dir_b).len(), 2);
    let resumed = pair.b.events("handoff.resume");
    assert_eq!(resumed.len(), 1, "{resumed:?}");
    assert!(resumed[0]["message"].as_str().unwrap().contains("owned here at epoch 2"), "{resumed:?}");
    assert_eq!(pair.a.events("handoff.freeze").len(), 1);
    assert_eq!(pair.a.events("handoff.released").len(), 1);
    assert!(!dir_b.join(".agentmesh-frozen").exists(), "the new owner is not frozen");
    let saved = |side: &Side| -> Value {
        let path = side.daemon.path().join("state/handoff/chats/c-1.json");
        serde_json::from_slice(&std::fs::read(path).expect("the record in the state folder")).unwrap()
    };
    assert_eq!((&saved(&pair.a)["owner"], &saved(&pair.a)["epoch"]), (&B.into(), &2.into()));
    assert_eq!((&saved(&pair.b)["owner"], &saved(&pair.b)["epoch"]), (&B.into(), &2.into()));

    // The same handoff again, from node-a, which no longer owns it, is done already.
    let again = pair.a.daemon.meshctl(&["handoff", "c-1", "--to", B]);
    assert!(again.code == 0 && again.stdout.contains("now owns c-1 at epoch 2"), "already done: {again:?}");
}

#[test]
fn the_agent_hands_its_conversation_over_with_the_python_script_of_the_docs() {
    let pair = pair_with_a_conversation();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/handoff_from_agent.py");
    let run = |args: &[&str]| {
        // The script's client finds node-a's daemon as meshctl would.
        let output = std::process::Command::new(crate::support::agent_python())
            .arg(&script)
            .args(args)
            .env("PYTHONPATH", crate::support::agent_client_src())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("MESH_LISTEN", pair.a.api_address().to_string())
            .env("MESH_API_KEY", super::support::Daemon::KEY)
            .output()
            .expect("python runs");
        (output.status.code(), String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let (code, stdout) = run(&["c-1", B]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("  freeze: the conversation is frozen"), "{stdout}");
    assert!(stdout.ends_with(&format!("{B} now owns c-1 at epoch 2\n")), "{stdout}");
    wait_for_session(&pair.b, "c-1", "owned by node-b at epoch 2", |s| s["owner"] == B && s["writable"] == true);
    // The source counts and times the handoff it started.
    assert_eq!(pair.a.metric(r#"agentmesh_handoffs_total{outcome="succeeded"}"#), Some(1.0));
    assert_eq!(pair.a.metric(r#"agentmesh_handoff_duration_seconds_count{outcome="succeeded"}"#), Some(1.0));
    assert_eq!(pair.b.metric(r#"agentmesh_handoffs_total{outcome="succeeded"}"#), None, "node-b started none");

    // Again, from node-a, which no longer owns it.
    let (code, stdout) = run(&["c-1"]);
    assert_eq!((code, stdout.as_str()), (Some(1), "c-1 is not this node's to hand over (owner: node-b)\n"));
}

#[test]
fn a_barrier_that_does_not_pass_in_time_fails_the_handoff_at_that_step_and_node_a_keeps_it() {
    let mut pair = pair_with_a_conversation();
    // The fixture's SyncFolder ignores `*.tmp`: node-b holds content node-a never gets.
    let dir_b = pair.b.syncthing.data(OBJECT).join("sessions/c-1");
    std::fs::write(dir_b.join("only-here.tmp"), "not synced").unwrap();
    wait_for_session(&pair.a, "c-1", "out of sync", |s| s["inSync"] == false);

    let run = pair.a.daemon.meshctl(&["handoff", "c-1", "--to", B, "--timeout", "3s"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains("  barrier: not passed within 3s: node-b's content differs from this node's"),
        "{run:?}"
    );
    assert!(run.stderr.contains("handoff failed at the barrier step; node-a still owns c-1 at epoch 1"), "{run:?}");
    let session = pair.a.daemon.api_get("/api/v1/sessions/c-1").unwrap();
    assert_eq!((&session["owner"], &session["epoch"], &session["phase"]), (&A.into(), &1.into(), &"owned".into()));
    assert!(!pair.a.syncthing.data(OBJECT).join("sessions/c-1/.agentmesh-frozen").exists(), "unfrozen");
    assert_eq!(pair.a.events("handoff.unfreeze").len(), 1);
    assert!(pair.b.events("handoff.resume").is_empty());
    assert_eq!(pair.a.metric(r#"agentmesh_handoffs_total{outcome="failed"}"#), Some(1.0));
    assert_eq!(pair.a.metric(r#"agentmesh_handoffs_total{outcome="succeeded"}"#), None);

    // The record is in the state folder, and read back by a restarted daemon.
    let saved: Value =
        serde_json::from_slice(&std::fs::read(pair.a.daemon.path().join("state/handoff/chats/c-1.json")).unwrap())
            .unwrap();
    assert_eq!(saved, serde_json::json!({"owner": A, "epoch": 1, "phase": {"state": "owned"}}));
    pair.a.daemon.kill();
    pair.a.daemon.restart();
    let session = wait_for_session(&pair.a, "c-1", "read back", |s| s["owner"].is_string());
    assert_eq!((&session["owner"], &session["epoch"]), (&A.into(), &1.into()));
}

#[test]
fn a_handoff_to_a_stopped_node_is_refused_at_once_and_changes_nothing() {
    let mut pair = pair_with_a_conversation();
    pair.b.daemon.kill();
    eventually_within(PATIENCE, "node-a knows node-b is down", || {
        let mesh = pair.a.daemon.api_get("/api/v1/mesh")?;
        mesh.as_array()?.iter().any(|node| node["name"] == B && node["knownDown"] == true).then_some(())
    });

    let started = Instant::now();
    let run = pair.a.daemon.meshctl(&["handoff", "c-1", "--to", B]);
    let took = started.elapsed();
    println!("a handoff to a node known down was refused after {took:?}");
    assert_eq!(run.code, 1, "{run:?}");
    assert!(took < Duration::from_secs(3), "refused at once, not after {took:?}");
    assert!(run.stderr.contains(&format!("{B} is unreachable")), "{run:?}");
    assert!(run.stderr.contains("c-1 stays with node-a at epoch 1"), "{run:?}");
    let session = pair.a.daemon.api_get("/api/v1/sessions/c-1").unwrap();
    assert_eq!((&session["owner"], &session["epoch"], &session["phase"]), (&A.into(), &1.into(), &"owned".into()));
    assert!(pair.a.events("handoff.freeze").is_empty(), "nothing was frozen");
}

#[test]
fn a_handoff_to_a_node_the_prober_has_not_heard_from_yet_is_refused_without_freezing() {
    let mut pair = pair_with_a_conversation();
    // node-b's API address now takes connections and never answers, and
    // node-a starts again: its prober waits 2 s for node-b's first answer.
    pair.b.daemon.kill();
    let _silent = std::net::TcpListener::bind(pair.b.api_address()).expect("take node-b's API address");
    pair.a.daemon.kill();
    pair.a.daemon.restart();
    // Its API answers before its manifests are in force; a handoff asked then is refused for that.
    eventually("node-a has its set in force again", || pair.a.daemon.revision());

    let started = Instant::now();
    let run = pair.a.daemon.meshctl(&["handoff", "c-1", "--to", B]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains(&format!("{B} is unreachable")), "{run:?}");
    assert!(run.stderr.contains("c-1 stays with node-a at epoch 1"), "{run:?}");
    assert!(started.elapsed() < Duration::from_secs(8), "refused after {:?}", started.elapsed());
    assert!(pair.a.events("handoff.freeze").is_empty(), "nothing was frozen");
    let session = pair.a.daemon.api_get("/api/v1/sessions/c-1").unwrap();
    assert_eq!((&session["owner"], &session["epoch"], &session["phase"]), (&A.into(), &1.into(), &"owned".into()));
}

#[test]
fn a_handoff_started_right_after_the_target_daemon_died_fails_within_5_s_naming_the_refused_connection() {
    let mut pair = pair_with_a_conversation();
    pair.b.daemon.kill();
    // At once: node-a's prober may not know yet (then the barrier fails as
    // soon as it does), or knows already (then it is refused at once).
    let started = Instant::now();
    let run = pair.a.daemon.meshctl(&["handoff", "c-1", "--to", B, "--timeout", "60s"]);
    let took = started.elapsed();
    println!("a handoff to a daemon killed just before failed after {took:?}");
    assert_eq!(run.code, 1, "{run:?}");
    assert!(took < Duration::from_secs(5), "failed after {took:?}, not within 5 s");
    assert!(format!("{}{}", run.stdout, run.stderr).contains("Connection refused"), "{run:?}");
    assert!(
        run.stderr.contains("node-a still owns c-1 at epoch 1")
            || run.stderr.contains("c-1 stays with node-a at epoch 1")
    );
    let session = pair.a.daemon.api_get("/api/v1/sessions/c-1").unwrap();
    assert_eq!((&session["owner"], &session["epoch"], &session["phase"]), (&A.into(), &1.into(), &"owned".into()));
    assert!(!pair.a.syncthing.data(OBJECT).join("sessions/c-1/.agentmesh-frozen").exists(), "unfrozen");
}

#[test]
fn without_the_barrier_a_handoff_whose_every_accept_is_refused_fails_within_5_s_and_node_a_keeps_it() {
    let mut pair = pair_with_a_conversation_under(&format!("{}  requireInSync: false\n", policy()));
    pair.b.daemon.kill();
    let started = Instant::now();
    let run = pair.a.daemon.meshctl(&["handoff", "c-1", "--to", B, "--timeout", "60s"]);
    let took = started.elapsed();
    let path = match () {
        () if run.stderr.contains("refused at once") => "the prober knew before it began",
        () if run.stdout.contains("refused every Accept") => "every Accept refused, then the prober knew",
        () => "the prober knew before the Accept went out, or every Accept refused for 3 s",
    };
    println!("a handoff without the barrier to a daemon killed just before failed after {took:?} ({path})");
    assert_eq!(run.code, 1, "{run:?}");
    assert!(took < Duration::from_secs(5), "failed after {took:?}, not within 5 s");
    assert!(format!("{}{}", run.stdout, run.stderr).contains("Connection refused"), "{run:?}");
    let session = pair.a.daemon.api_get("/api/v1/sessions/c-1").unwrap();
    assert_eq!((&session["owner"], &session["epoch"], &session["phase"]), (&A.into(), &1.into(), &"owned".into()));
    assert!(!pair.a.syncthing.data(OBJECT).join("sessions/c-1/.agentmesh-frozen").exists(), "unfrozen");
}

#[test]
fn a_handoff_whose_target_daemon_dies_at_the_barrier_fails_within_5_s_of_its_death_not_at_the_timeout() {
    let mut pair = pair_with_a_conversation();
    // The barrier cannot pass (node-b holds a file node-a never gets): the
    // handoff waits at it when node-b's daemon dies; its timeout is 60 s.
    std::fs::write(pair.b.syncthing.data(OBJECT).join("sessions/c-1/only-here.tmp"), "not synced").unwrap();
    wait_for_session(&pair.a, "c-1", "out of sync", |s| s["inSync"] == false);
    let follower = pair.a.daemon.meshctl_spawn(&["handoff", "c-1", "--to", B, "--timeout", "60s"]);
    wait_for_session(&pair.a, "c-1", "frozen for the handoff", |s| s["phase"] == "frozen");
    pair.b.daemon.kill();
    let killed = Instant::now();
    let outcome = follower.wait_with_output().expect("meshctl handoff ends");
    let took = killed.elapsed();
    println!("a handoff whose target daemon died at the barrier failed {took:?} after its death");
    assert_eq!(outcome.status.code(), Some(1), "the handoff failed");
    assert!(took < Duration::from_secs(5), "failed {took:?} after node-b died");
    let stdout = String::from_utf8_lossy(&outcome.stdout);
    // The prober knows within a second, before the barrier's own 3 s of refusals.
    assert!(stdout.contains("barrier: node-b is unreachable since "), "{stdout}");
    assert!(stdout.contains("Connection refused"), "{stdout}");
    let session = pair.a.daemon.api_get("/api/v1/sessions/c-1").unwrap();
    assert_eq!((&session["owner"], &session["epoch"], &session["phase"]), (&A.into(), &1.into(), &"owned".into()));
    assert!(!pair.a.syncthing.data(OBJECT).join("sessions/c-1/.agentmesh-frozen").exists(), "unfrozen");
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
        assert_eq!(session["holders"], serde_json::json!([A, B]), "both hold the owner's content: {session}");
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
        [
            vec!["ID", "POLICY", "OWNER", "EPOCH", "HOLDERS", "IN", "SYNC", "CONFLICTS", "STALE"],
            vec!["c-1", POLICY, A, "1", "node-a,node-b", "yes", "0", "0"]
        ]
    );
    let json = pair.a.daemon.meshctl(&["sessions", "-o", "json"]);
    let json: Value = serde_json::from_str(&json.stdout).expect("sessions -o json prints JSON");
    assert_eq!(json.as_array().map(Vec::len), Some(1), "{json}");
    assert_eq!((&json[0]["id"], &json[0]["owner"]), (&"c-1".into(), &A.into()));
    let fields: std::collections::BTreeSet<&str> = json[0].as_object().unwrap().keys().map(String::as_str).collect();
    let documented = [
        "id",
        "policy",
        "owner",
        "epoch",
        "phase",
        "path",
        "hash",
        "files",
        "conflicts",
        "stale",
        "peerHash",
        "inSync",
        "holders",
        "writable",
    ];
    assert_eq!(fields, documented.into(), "the shape docs/cli.md documents");
    let yaml = pair.a.daemon.meshctl(&["sessions", "-o", "yaml"]);
    let yaml: Value = serde_saphyr::from_str(&yaml.stdout).expect("sessions -o yaml prints YAML");
    assert_eq!(yaml, json, "the same data as JSON");
    let object = pair.a.daemon.object("HandoffPolicy", POLICY).expect("the policy in node-a's status");
    assert_eq!((&object["details"]["conversations"], &object["details"]["owned"]), (&"1".into(), &"1".into()));

    // A conflict copy is reported, not hashed: the content is still in sync.
    let copy = "messages.sync-conflict-20261128-101500-ABCDEFG.jsonl";
    std::fs::write(conversation.join(copy), "{}\n").unwrap();
    for side in [&pair.a, &pair.b] {
        wait_for_session(side, "c-1", "with its conflict copy", |s| s["conflicts"] == serde_json::json!([copy]));
    }
    let object = eventually_within(PATIENCE, "the policy reports the conflict copy", || {
        pair.b.daemon.object("HandoffPolicy", POLICY).filter(|object| object["details"]["conflicts"] == "1")
    });
    assert!(object.to_string().contains("ConflictCopies"), "{object}");

    let unknown = pair.a.daemon.api_get("/api/v1/sessions/nope").expect("an answer");
    assert_eq!(unknown["error"], "not_found", "an unknown conversation is a 404: {unknown}");
}

/// Waits until `side` sees `peer`'s daemon as offline.
fn wait_until_offline(side: &Side, peer: &str) {
    eventually_within(PATIENCE, &format!("{} sees {peer} offline", side.name), || {
        side.daemon.view_of(peer).filter(|view| view["online"] == false)
    });
}

/// `(owner, epoch, phase)` of conversation `id` on `side`, None while it has no answer.
fn ownership(side: &Side, id: &str) -> Option<(Value, Value, Value)> {
    let session = side.daemon.api_get(&format!("/api/v1/sessions/{id}"))?;
    session["owner"].is_string().then(|| (session["owner"].clone(), session["epoch"].clone(), session["phase"].clone()))
}

#[test]
fn a_forced_takeover_from_a_stopped_owner_makes_node_b_the_owner_at_epoch_2_on_both_nodes_once_node_a_is_back() {
    let mut pair = pair_with_a_conversation_under(&format!("{}  allowForce: true\n", policy()));
    pair.a.daemon.kill();
    wait_until_offline(&pair.b, A);

    let run = pair.b.daemon.meshctl(&["handoff", "c-1", "--to", B, "--force"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains(&format!("taken over: {B} owns c-1 at epoch 2")), "{run:?}");
    let session = pair.b.daemon.api_get("/api/v1/sessions/c-1").unwrap();
    assert_eq!((&session["owner"], &session["epoch"], &session["phase"]), (&B.into(), &2.into(), &"owned".into()));

    pair.a.daemon.restart();
    // Until node-a hears of epoch 2 it may still name itself at epoch 1 (its
    // saved record); node-b never goes back, and both end at node-b, epoch 2.
    let expected = (Value::from(B), Value::from(2), Value::from("owned"));
    eventually_within(PATIENCE, "node-a shows node-b as the owner at epoch 2", || {
        assert_eq!(ownership(&pair.b, "c-1").as_ref(), Some(&expected), "node-b keeps it");
        (ownership(&pair.a, "c-1").as_ref() == Some(&expected)).then_some(())
    });
    // A few record exchanges later, still one owner at one epoch.
    std::thread::sleep(Duration::from_secs(5));
    for side in [&pair.a, &pair.b] {
        assert_eq!(ownership(side, "c-1"), Some(expected.clone()), "on {}", side.name);
        assert!(!side.syncthing.data(OBJECT).join("sessions/c-1/.agentmesh-frozen").exists(), "{} unfrozen", side.name);
    }
    let saved: Value =
        serde_json::from_slice(&std::fs::read(pair.a.daemon.path().join("state/handoff/chats/c-1.json")).unwrap())
            .unwrap();
    assert_eq!((&saved["owner"], &saved["epoch"]), (&B.into(), &2.into()), "node-a persisted the demotion");
}

#[test]
fn force_is_refused_naming_the_policy_when_it_does_not_allow_force() {
    let pair = pair_with_a_conversation();
    let run = pair.b.daemon.meshctl(&["handoff", "c-1", "--to", B, "--force"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains(&format!("HandoffPolicy/{POLICY} does not allow --force (allowForce: false)")),
        "{run:?}"
    );
    for side in [&pair.a, &pair.b] {
        let expected = (Value::from(A), Value::from(1), Value::from("owned"));
        assert_eq!(ownership(side, "c-1"), Some(expected), "nothing changed on {}", side.name);
    }
}

#[test]
fn a_source_daemon_killed_mid_handoff_comes_back_with_one_owner_at_one_epoch_on_both_nodes_and_unfrozen() {
    let mut pair = pair_with_a_conversation();
    // The fixture's SyncFolder ignores `*.tmp`: node-b holds content node-a
    // never gets, so the barrier cannot pass and the handoff stays frozen.
    std::fs::write(pair.b.syncthing.data(OBJECT).join("sessions/c-1/only-here.tmp"), "not synced").unwrap();
    wait_for_session(&pair.a, "c-1", "out of sync", |s| s["inSync"] == false);

    let follower = pair.a.daemon.meshctl_follow(&["handoff", "c-1", "--to", B, "--timeout", "5m"]);
    let started = follower.until("the handoff's start", |_| true).remove(0);
    let handoff = started.split_whitespace().nth(1).expect("`handoff ID of c-1 to node-b started`").to_owned();
    let frozen = wait_for_session(&pair.a, "c-1", "frozen for the handoff", |s| s["phase"] == "frozen");
    assert_eq!(frozen["writable"], false, "no writing while frozen: {frozen}");
    assert!(pair.a.syncthing.data(OBJECT).join("sessions/c-1/.agentmesh-frozen").exists(), "frozen on disk");
    pair.a.daemon.kill();
    drop(follower);

    pair.a.daemon.restart();
    let settled = eventually_within(PATIENCE, "both nodes agree on one owner at one epoch, unfrozen", || {
        let (a, b) = (ownership(&pair.a, "c-1")?, ownership(&pair.b, "c-1")?);
        (a == b && a.2 == "owned").then_some(a)
    });
    assert!([(A, 1), (B, 2)].iter().any(|(owner, epoch)| settled.0 == *owner && settled.1 == *epoch), "{settled:?}");
    // A few record exchanges later, still the same on both.
    std::thread::sleep(Duration::from_secs(5));
    for side in [&pair.a, &pair.b] {
        assert_eq!(ownership(side, "c-1"), Some(settled.clone()), "on {}", side.name);
        assert!(!side.syncthing.data(OBJECT).join("sessions/c-1/.agentmesh-frozen").exists(), "{} unfrozen", side.name);
    }
    assert_eq!(pair.a.events("handoff.unfreeze").len(), 1, "node-a unfroze it after the restart");
    // `meshctl handoff` finds how it ended, though the daemon restarted.
    let progress = pair.a.daemon.api_get(&format!("/api/v1/handoff/{handoff}")).expect("the handoff's progress");
    assert_eq!((&progress["done"], &progress["succeeded"]), (&true.into(), &false.into()), "{progress}");
    assert!(progress["message"].as_str().is_some_and(|m| m.contains("restarted during the handoff")), "{progress}");
    assert!(pair.b.events("handoff.resume").is_empty(), "node-b never accepted");
}

#[test]
fn a_target_daemon_killed_mid_handoff_leaves_node_a_the_owner_at_epoch_1_on_both_nodes_after_its_restart() {
    let mut pair = pair_with_a_conversation();
    // The barrier cannot pass (node-b holds a file node-a never gets), so the
    // handoff is frozen when node-b's daemon dies.
    std::fs::write(pair.b.syncthing.data(OBJECT).join("sessions/c-1/only-here.tmp"), "not synced").unwrap();
    wait_for_session(&pair.a, "c-1", "out of sync", |s| s["inSync"] == false);
    let mut follower = pair.a.daemon.meshctl_spawn(&["handoff", "c-1", "--to", B, "--timeout", "6s"]);
    wait_for_session(&pair.a, "c-1", "frozen for the handoff", |s| s["phase"] == "frozen");
    pair.b.daemon.kill();
    let outcome = follower.wait().expect("meshctl handoff ends");
    assert_eq!(outcome.code(), Some(1), "the handoff failed");

    pair.b.daemon.restart();
    let expected = (Value::from(A), Value::from(1), Value::from("owned"));
    for side in [&pair.a, &pair.b] {
        eventually_within(PATIENCE, &format!("{} shows node-a the owner at epoch 1", side.name), || {
            (ownership(side, "c-1").as_ref() == Some(&expected)).then_some(())
        });
    }
    std::thread::sleep(Duration::from_secs(5));
    for side in [&pair.a, &pair.b] {
        assert_eq!(ownership(side, "c-1"), Some(expected.clone()), "still, on {}", side.name);
        assert!(!side.syncthing.data(OBJECT).join("sessions/c-1/.agentmesh-frozen").exists(), "{} unfrozen", side.name);
    }
    assert!(pair.b.events("handoff.resume").is_empty(), "node-b never took it");
}

#[test]
fn a_write_on_node_a_after_the_freeze_is_detected_and_handed_over_with_the_rest() {
    let pair = pair_with_a_conversation();
    // The barrier waits while node-b holds a file node-a never gets.
    let (dir_a, dir_b) =
        (pair.a.syncthing.data(OBJECT).join("sessions/c-1"), pair.b.syncthing.data(OBJECT).join("sessions/c-1"));
    std::fs::write(dir_b.join("only-here.tmp"), "not synced").unwrap();
    wait_for_session(&pair.a, "c-1", "out of sync", |s| s["inSync"] == false);
    let follower = pair.a.daemon.meshctl_spawn(&["handoff", "c-1", "--to", B, "--timeout", "60s"]);
    wait_for_session(&pair.a, "c-1", "frozen for the handoff", |s| s["phase"] == "frozen");

    // node-a's agent writes on after the freeze; then the barrier may pass.
    append(&dir_a.join("messages.jsonl"), STALE, std::time::SystemTime::now());
    pair.rescan(&pair.a);
    std::fs::remove_file(dir_b.join("only-here.tmp")).unwrap();
    let outcome = follower.wait_with_output().expect("meshctl handoff ends");
    let stdout = String::from_utf8_lossy(&outcome.stdout);
    assert_eq!(outcome.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("  barrier: written after the freeze, handed over with the rest: messages.jsonl\n"),
        "{stdout}"
    );
    let late = pair.a.events("handoff.lateWrite");
    assert_eq!(late.len(), 1, "{late:?}");
    assert!(late[0]["message"].as_str().unwrap().contains("messages.jsonl written after the freeze"), "{late:?}");
    // Nothing is lost: node-b, the owner now, has it.
    assert_eq!(read(&dir_b.join("messages.jsonl")), Some(format!("{HELLO}{STALE}")));
    wait_for_session(&pair.b, "c-1", "owned by node-b at epoch 2", |s| s["owner"] == B && s["epoch"] == 2);
}

/// Appends `text` to `path`, giving it modification time `mtime`.
fn append(path: &std::path::Path, text: &str, mtime: std::time::SystemTime) {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new().append(true).open(path).expect("open to append");
    file.write_all(text.as_bytes()).expect("append");
    file.set_modified(mtime).expect("set the modification time");
}

fn read(path: &std::path::Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// Waits until `side` holds each `(file, text)` of conversation c-1, no
/// Syncthing conflict copy, and no other stale copy.
fn wait_for_files(side: &Side, expected: &[(&str, &str)]) {
    let dir = side.syncthing.data(OBJECT).join("sessions/c-1");
    // A Syncthing that wakes up may reach its peer only at its next redial,
    // up to a minute later when the first attempt fails on a busy machine.
    eventually_within(PATIENCE * 3, &format!("{} holds {expected:?}", side.name), || {
        let names: Vec<String> = files(&dir).into_iter().map(|(name, _)| name).collect();
        let stale_or_conflicts =
            names.iter().filter(|name| name.contains(".stale-") || name.contains(".sync-conflict-"));
        let expected_aside = expected.iter().filter(|(name, _)| name.contains(".stale-")).count();
        let all_there = expected.iter().all(|(name, text)| read(&dir.join(name)).as_deref() == Some(*text));
        (all_there && stale_or_conflicts.count() == expected_aside).then_some(())
    });
}

/// Waits until the owner `side` has taken its version of `file` of c-1 into
/// its shadow (what it goes back to when a stale write replaces the file).
/// It does within a moment of its Syncthing's scan; a test's stale write can
/// come faster than any real agent's, so the test waits.
fn wait_until_kept(side: &Side, file: &str, text: &str) {
    let copy = side.daemon.path().join("state/handoff-shadow").join(POLICY).join("c-1/files").join(file);
    eventually_within(PATIENCE, &format!("{} keeps its {file}", side.name), || {
        (read(&copy).as_deref() == Some(text)).then_some(())
    });
}

const HELLO: &str = "{\"role\":\"user\",\"content\":\"hello\"}\n";
const ON_B: &str = "{\"role\":\"assistant\",\"content\":\"answered on node-b\"}\n";
const STALE: &str = "{\"role\":\"user\",\"content\":\"typed on node-a after the handoff\"}\n";

#[test]
fn a_write_on_node_a_after_it_handed_the_conversation_over_is_kept_aside_and_node_bs_version_stays() {
    let pair = pair_with_a_conversation();
    let run = pair.a.daemon.meshctl(&["handoff", "c-1", "--to", B, "--timeout", "30s"]);
    assert_eq!(run.code, 0, "{run:?}");
    for side in [&pair.a, &pair.b] {
        wait_for_session(side, "c-1", "owned by node-b at epoch 2", |s| s["owner"] == B && s["epoch"] == 2);
    }
    let (dir_a, dir_b) =
        (pair.a.syncthing.data(OBJECT).join("sessions/c-1"), pair.b.syncthing.data(OBJECT).join("sessions/c-1"));
    let now = std::time::SystemTime::now();

    // The new owner answers; node-a gets it.
    append(&dir_b.join("messages.jsonl"), ON_B, now);
    pair.rescan(&pair.b);
    let owners = format!("{HELLO}{ON_B}");
    wait_until_kept(&pair.b, "messages.jsonl", &owners);
    wait_for_files(&pair.a, &[("messages.jsonl", &owners)]);

    // node-a's agent ignored the handoff and writes on.
    append(&dir_a.join("messages.jsonl"), STALE, now + Duration::from_secs(1));
    pair.rescan(&pair.a);
    let stale = format!("{owners}{STALE}");
    let expected = [("messages.jsonl", owners.as_str()), ("messages.jsonl.stale-2", stale.as_str())];
    for side in [&pair.a, &pair.b] {
        wait_for_files(side, &expected);
        let session = wait_for_session(side, "c-1", "with the stale copy, in sync", |s| s["inSync"] == true);
        assert_eq!(session["stale"], serde_json::json!(["messages.jsonl.stale-2"]), "{session}");
        assert_eq!((&session["owner"], &session["epoch"]), (&B.into(), &2.into()));
    }
    let kept = pair.b.events("handoff.stale");
    let said = |text: &str| kept.iter().any(|event| event["message"].as_str().is_some_and(|m| m.contains(text)));
    assert!(said("messages.jsonl was written by device"), "{kept:?}");
    assert!(said("kept aside as messages.jsonl.stale-2"), "{kept:?}");
    assert!(said("messages.jsonl is back to this owner's version (epoch 2)"), "{kept:?}");
    assert!(pair.a.events("handoff.stale").is_empty(), "only the owner keeps writes aside");
    let object = eventually_within(PATIENCE, "the policy reports the stale write", || {
        pair.b.daemon.object("HandoffPolicy", POLICY).filter(|object| object["details"]["stale"] == "1")
    });
    assert!(object.to_string().contains("StaleWrites"), "{object}");
    let table = pair.a.daemon.meshctl(&["sessions"]);
    let row: Vec<&str> = table.stdout.lines().nth(1).unwrap_or_default().split_whitespace().collect();
    assert_eq!(row, ["c-1", POLICY, B, "2", "node-a,node-b", "yes", "0", "1"], "{table:?}");

    // Settled: the owner's next write is its own, nothing more is set aside.
    append(&dir_b.join("messages.jsonl"), ON_B, std::time::SystemTime::now());
    pair.rescan(&pair.b);
    let owners = format!("{owners}{ON_B}");
    let expected = [("messages.jsonl", owners.as_str()), ("messages.jsonl.stale-2", stale.as_str())];
    for side in [&pair.a, &pair.b] {
        wait_for_files(side, &expected);
    }
    std::thread::sleep(Duration::from_secs(3));
    for side in [&pair.a, &pair.b] {
        wait_for_files(side, &expected);
    }
    assert_eq!(pair.b.events("handoff.stale").len(), kept.len(), "nothing more was set aside");

    // A deletion on node-a is a stale write too: node-b puts the file back.
    std::fs::remove_file(dir_a.join("attachments/notes.md")).unwrap();
    pair.rescan(&pair.a);
    eventually_within(PATIENCE, "node-b puts notes.md back", || {
        let events = pair.b.events("handoff.stale");
        events
            .iter()
            .any(|e| e["message"].as_str().is_some_and(|m| m.contains("attachments/notes.md is back")))
            .then_some(())
    });
    for side in [&pair.a, &pair.b] {
        let dir = side.syncthing.data(OBJECT).join("sessions/c-1");
        eventually_within(PATIENCE, &format!("{} holds notes.md again", side.name), || {
            (read(&dir.join("attachments/notes.md")).as_deref() == Some("# notes\n")).then_some(())
        });
    }
}

#[test]
fn writes_on_node_a_while_it_slept_through_a_forced_takeover_are_kept_aside_when_it_wakes_up() {
    let mut pair = pair_with_a_conversation_under(&format!("{}  allowForce: true\n", policy()));
    // node-a goes to sleep: its daemon and its Syncthing stop.
    pair.a.daemon.kill();
    pair.a.syncthing.kill();
    wait_until_offline(&pair.b, A);
    let run = pair.b.daemon.meshctl(&["handoff", "c-1", "--to", B, "--force"]);
    assert_eq!(run.code, 0, "{run:?}");

    // Both write to both files. Syncthing keeps the newer of two clashing
    // versions: node-a's messages (written later) and node-b's notes.
    let (dir_a, dir_b) =
        (pair.a.syncthing.data(OBJECT).join("sessions/c-1"), pair.b.syncthing.data(OBJECT).join("sessions/c-1"));
    let now = std::time::SystemTime::now();
    append(&dir_b.join("messages.jsonl"), ON_B, now);
    append(&dir_b.join("attachments/notes.md"), "- from node-b\n", now);
    pair.rescan(&pair.b);
    wait_until_kept(&pair.b, "messages.jsonl", &format!("{HELLO}{ON_B}"));
    append(&dir_a.join("messages.jsonl"), STALE, now + Duration::from_secs(60));
    append(&dir_a.join("attachments/notes.md"), "- from node-a\n", now - Duration::from_secs(60));

    // node-a wakes up.
    pair.a.syncthing.start_again();
    pair.a.daemon.restart();
    let (owners, stale) = (format!("{HELLO}{ON_B}"), format!("{HELLO}{STALE}"));
    let expected = [
        ("messages.jsonl", owners.as_str()),
        ("messages.jsonl.stale-2", stale.as_str()),
        ("attachments/notes.md", "# notes\n- from node-b\n"),
        ("attachments/notes.md.stale-2", "# notes\n- from node-a\n"),
    ];
    for side in [&pair.a, &pair.b] {
        wait_for_files(side, &expected);
        wait_for_session(side, "c-1", "owned by node-b at epoch 2, in sync", |s| {
            s["owner"] == B && s["epoch"] == 2 && s["inSync"] == true
        });
    }
    assert!(pair.a.events("handoff.stale").is_empty(), "node-a, restarted at epoch 1, set nothing aside");
    // Each clash went the way the times say: node-a's notes lost (its conflict
    // copy is set aside), node-a's messages won (set aside, node-b's back).
    let kept: Vec<String> =
        pair.b.events("handoff.stale").iter().filter_map(|e| e["message"].as_str().map(str::to_owned)).collect();
    for text in [
        "attachments/notes.sync-conflict-",
        "kept aside as attachments/notes.md.stale-2",
        "kept aside as messages.jsonl.stale-2",
        "messages.jsonl is back to this owner's version",
    ] {
        assert!(kept.iter().any(|message| message.contains(text)), "{text}: {kept:#?}");
    }
}

#[test]
fn a_conversation_handed_a_to_b_to_c_then_c_to_a_while_b_is_down_has_one_owner_on_all_three_and_the_same_bytes() {
    let mut trio = Trio::start_with(&policy());
    trio.wait_until_ready();
    let [a, b, c] = &trio.sides;
    let conversation = a.syncthing.data(OBJECT).join("sessions/c-1");
    std::fs::create_dir_all(conversation.join("attachments")).expect("make the conversation folder");
    std::fs::write(conversation.join("messages.jsonl"), "{\"role\":\"user\",\"content\":\"hello\"}\n").unwrap();
    std::fs::write(conversation.join("attachments/notes.md"), "# notes\n").unwrap();
    let everyone = serde_json::json!([A, B, C]);
    for side in &trio.sides {
        wait_for_session(side, "c-1", "owned by node-a at epoch 1, held by all", |s| {
            s["owner"] == A && s["epoch"] == 1 && s["inSync"] == true && s["holders"] == everyone
        });
    }
    for (from, to, epoch) in [(a, B, 2), (b, C, 3)] {
        let run = from.daemon.meshctl(&["handoff", "c-1", "--to", to, "--timeout", "30s"]);
        assert_eq!(run.code, 0, "{run:?}");
        for side in &trio.sides {
            wait_for_session(side, "c-1", &format!("owned by {to} at epoch {epoch}, held by all"), |s| {
                s["owner"] == to && s["epoch"] == epoch && s["inSync"] == true && s["holders"] == everyone
            });
        }
    }
    // The freeze marker node-c removed on accepting reaches the others by Syncthing.
    let held = eventually_within(PATIENCE, "the same files and bytes on all three", || {
        let held: Vec<_> =
            trio.sides.iter().map(|side| files(&side.syncthing.data(OBJECT).join("sessions/c-1"))).collect();
        held.iter().all(|files| *files == held[0]).then_some(held)
    });
    let names: Vec<&str> = held[0].iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["attachments/notes.md", "messages.jsonl"]);
    assert_eq!(c.events("Claimed").len() + b.events("Claimed").len(), 0, "only node-a claims it");

    // node-b stops; node-c hands the conversation to node-a meanwhile.
    let b = &mut trio.sides[1];
    b.daemon.kill();
    b.syncthing.kill();
    let [a, b, c] = &mut trio.sides;
    wait_until_offline(c, B);
    let run = c.daemon.meshctl(&["handoff", "c-1", "--to", A, "--timeout", "30s"]);
    assert_eq!(run.code, 0, "{run:?}");
    for side in [&*a, &*c] {
        wait_for_session(side, "c-1", "owned by node-a at epoch 4", |s| s["owner"] == A && s["epoch"] == 4);
    }
    b.syncthing.start_again();
    b.daemon.restart();
    eventually_within(Duration::from_secs(10), "node-b, restarted, shows node-a at epoch 4", || {
        b.daemon.api_get("/api/v1/sessions/c-1").filter(|s| s["owner"] == A && s["epoch"] == 4)
    });
}

#[test]
fn a_forced_takeover_with_three_nodes_completes_once_the_third_promised_and_the_owner_learns_it_when_back() {
    let mut trio = Trio::start_with(&format!("{}  allowForce: true\n", policy()));
    trio.wait_until_ready();
    let conversation = trio.sides[0].syncthing.data(OBJECT).join("sessions/c-1");
    std::fs::create_dir_all(&conversation).expect("make the conversation folder");
    std::fs::write(conversation.join("messages.jsonl"), "{\"role\":\"user\",\"content\":\"hello\"}\n").unwrap();
    for side in &trio.sides {
        wait_for_session(side, "c-1", "owned by node-a, in sync", |s| s["owner"] == A && s["inSync"] == true);
    }
    // node-a goes away; node-c takes over, which needs node-b's promise.
    let [a, b, c] = &mut trio.sides;
    a.daemon.kill();
    a.syncthing.kill();
    wait_until_offline(c, A);
    let run = c.daemon.meshctl(&["handoff", "c-1", "--force", "--timeout", "20s"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("force ") && run.stdout.contains("node-c now owns c-1 at epoch 2"), "{run:?}");
    for side in [&*b, &*c] {
        wait_for_session(side, "c-1", "owned by node-c at epoch 2", |s| {
            s["owner"] == C && s["epoch"] == 2 && s["phase"] == "owned"
        });
    }
    a.syncthing.start_again();
    a.daemon.restart();
    wait_for_session(a, "c-1", "owned by node-c at epoch 2", |s| s["owner"] == C && s["epoch"] == 2);
}
