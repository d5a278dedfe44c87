//! Joining a mesh with a token (#17 point 1, #16 point 4), on real daemons:
//! `meshctl join-token` on a node, `meshctl init --join -` in an empty folder
//! with the token on standard input, then the new node's daemon; each sees
//! the other online within seconds, a restart keeps the registration, a
//! third node joins with a token from either node, and a malformed token, an
//! unreachable node and a wrong key are each refused with its own message,
//! nothing written. `--join` alone on a terminal prompts, echo off.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd as _, FromRawFd as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::support::{A, B, C, Daemon, IP_A, IP_B, IP_C, eventually, eventually_within, free_port_on, node_manifest};
use crate::support::daemon::{finish, meshctl_in};
use crate::support::{Run, Workspace};

/// "Within seconds": a probe every 2 s once online, the first at once; the
/// rest is slack for a busy machine.
const SECONDS: Duration = Duration::from_secs(9);

/// The first node: a daemon whose manifests declare only itself.
fn first_node() -> Daemon {
    let port = free_port_on(IP_A);
    let manifest = node_manifest(A, "primary", (IP_A, port).into());
    Daemon::builder().file("manifests/node.yaml", &manifest).at(A, IP_A, port).start()
}

/// `meshctl join-token` on `daemon`: its one line.
fn join_token(daemon: &Daemon) -> String {
    let run = daemon.meshctl(&["join-token"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout.lines().count(), 1, "one line: {run:?}");
    assert!(run.stdout.starts_with("meshjoin1:"), "{run:?}");
    assert!(!run.stdout.contains(Daemon::KEY) && !run.stderr.contains(Daemon::KEY), "{run:?}");
    run.stdout.trim().to_owned()
}

/// Runs `meshctl init --join - --node NAME --listen IP:PORT` in `dir` with
/// `token` on standard input; asserts, while it waits for the token, that
/// neither the token nor the key is on its command line.
fn join(dir: &Path, name: &str, ip: Ipv4Addr, port: u16, token: &str) -> Run {
    let listen = format!("{ip}:{port}");
    let child = meshctl_in(dir, &["init", "--join", "-", "--node", name, "--listen", &listen]);
    // Empty for a moment as the exec finishes.
    let argv = eventually("meshctl's command line", || {
        let argv = std::fs::read(format!("/proc/{}/cmdline", child.id())).expect("the command line of meshctl");
        Some(String::from_utf8_lossy(&argv).into_owned()).filter(|argv| !argv.is_empty())
    });
    assert!(argv.contains("--join") && !argv.contains(Daemon::KEY) && !argv.contains("meshjoin1:"), "{argv:?}");
    finish(child, &format!("{token}\n"))
}

/// Joins node `name` at `ip` with `token` and starts its daemon.
fn joined_node(name: &str, ip: Ipv4Addr, token: &str) -> Daemon {
    let (dir, port) = (tempfile::tempdir().expect("temp dir"), free_port_on(ip));
    let run = join(dir.path(), name, ip, port, token);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(!run.stdout.contains(Daemon::KEY) && !run.stderr.contains(Daemon::KEY), "the key is never printed");
    Daemon::start_in(dir, ip, port)
}

/// `node`'s entry in `daemon`'s `meshctl status -o json`.
fn status_of(daemon: &Daemon, node: &str) -> Option<Value> {
    let run = daemon.meshctl(&["status", "-o", "json"]);
    let status: Value = serde_json::from_str(&run.stdout).ok()?;
    status["nodes"].as_array()?.iter().find(|n| n["name"] == node).cloned()
}

/// Waits (up to [`SECONDS`]) until `meshctl status` on `daemon` shows `peer` online.
fn sees_online(daemon: &Daemon, peer: &str) {
    let what = format!("{peer} online in `meshctl status` at {}", daemon.api());
    eventually_within(SECONDS, &what, || (status_of(daemon, peer)?["online"] == true).then_some(()));
}

fn env_var(dir: &Path, name: &str) -> Option<String> {
    let vars = dotenvy::from_path_iter(dir.join(".env")).expect("a .env");
    vars.map(|item| item.expect("a variable")).find(|(n, _)| n == name).map(|(_, v)| v)
}

#[test]
fn a_second_node_joins_from_a_token_on_stdin_and_each_sees_the_other_within_seconds() {
    let mut a = first_node();
    let token = join_token(&a);
    let (dir, port_b) = (tempfile::tempdir().expect("temp dir"), free_port_on(IP_B));
    let run = join(dir.path(), B, IP_B, port_b, &token);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains(&format!("kind: Node\nmetadata:\n  name: {B}")), "the new Node to share: {run:?}");
    assert!(!run.stdout.contains(Daemon::KEY) && !run.stderr.contains(Daemon::KEY), "{run:?}");
    assert_eq!(env_var(dir.path(), "MESH_API_KEY").as_deref(), Some(Daemon::KEY));
    assert_eq!(env_var(dir.path(), "MESH_PEERS"), Some(format!("[\"{IP_A}:{}\"]", a.port())));
    for file in [format!("nodes/{A}.yaml"), format!("nodes/{B}.yaml"), "mesh.yaml".into()] {
        assert!(dir.path().join("manifests").join(&file).is_file(), "{file}");
    }
    let peer = a.api_get("/api/v1/mesh").and_then(|mesh| mesh.as_array()?.iter().find(|n| n["name"] == B).cloned());
    assert_eq!(peer.map(|p| p["dial"].clone()), Some(format!("{IP_B}:{port_b}").into()), "registered at once");

    let b = Daemon::start_in(dir, IP_B, port_b);
    assert_eq!(b.meshctl(&["validate"]).code, 0);
    sees_online(&a, B);
    sees_online(&b, A);

    a.kill();
    a.restart();
    sees_online(&a, B);

    // The shared manifests declare B: the registration is forgotten, so a B
    // later removed from them is no peer of A's any more.
    let joined = a.path().join("state/joined-peers.json");
    let only_a = node_manifest(A, "primary", a.api());
    a.write("manifests/node.yaml", &format!("{only_a}{}", node_manifest(B, "satellite", b.api())));
    eventually("A forgets the registration of a B its manifests declare", || {
        let file = std::fs::read_to_string(&joined).expect("the joined peers");
        (!file.contains(B)).then_some(())
    });
    a.write("manifests/node.yaml", &only_a);
    eventually("B, left out of A's manifests, is no peer of A's", || {
        let mesh = a.api_get("/api/v1/mesh")?;
        (!mesh.as_array()?.iter().any(|n| n["name"] == B)).then_some(())
    });
}

#[test]
fn a_third_node_joins_with_a_token_from_the_second_and_all_three_see_each_other() {
    let a = first_node();
    let b = joined_node(B, IP_B, &join_token(&a));
    let c = joined_node(C, IP_C, &join_token(&b));
    for (daemon, peers) in [(&a, [B, C]), (&b, [A, C]), (&c, [A, B])] {
        for peer in peers {
            sees_online(daemon, peer);
        }
    }
}

/// A token's fields, and a token of changed fields.
fn fields(token: &str) -> Value {
    let body = token.strip_prefix("meshjoin1:").expect("the prefix");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).expect("base64url")).expect("JSON")
}

fn token_of(fields: &Value) -> String {
    format!("meshjoin1:{}", URL_SAFE_NO_PAD.encode(serde_json::to_vec(fields).expect("JSON")))
}

#[test]
fn a_malformed_token_an_unreachable_node_and_a_wrong_key_are_each_refused_nothing_written() {
    let a = first_node();
    let token = join_token(&a);
    let mut unreachable = fields(&token);
    unreachable["apiPort"] = free_port_on(IP_A).into();
    let mut wrong_key = fields(&token);
    wrong_key["key"] = "another-key-0123456789abcdef0123456789".into();
    let cases = [
        ("malformed", "meshjoin1:not base64!".to_owned(), "the join token from standard input is malformed"),
        ("unreachable", token_of(&unreachable), "cannot reach node-a at 127.0.0.2:"),
        ("wrong key", token_of(&wrong_key), "node-a at 127.0.0.2:"),
    ];
    let mut messages = Vec::new();
    for (what, token, message) in cases {
        let dir = tempfile::tempdir().expect("temp dir");
        let run = join(dir.path(), B, IP_B, free_port_on(IP_B), &token);
        assert_eq!(run.code, 1, "{what}: {run:?}");
        assert!(run.stderr.contains(message) && run.stderr.contains("nothing was written"), "{what}: {run:?}");
        assert!(!run.stderr.contains(Daemon::KEY), "{what}: the key is not printed: {run:?}");
        let written: Vec<_> = std::fs::read_dir(dir.path()).expect("the folder").collect();
        assert!(written.is_empty(), "{what}: {written:?}");
        messages.push(run.stderr);
    }
    assert!(messages[2].contains("refused the join token's key"), "{}", messages[2]);

    let dir = tempfile::tempdir().expect("temp dir");
    let env = "AGENT_ROLE=leader\n";
    std::fs::write(dir.path().join(".env"), env).expect("the .env");
    let listen = format!("{IP_B}:{}", free_port_on(IP_B));
    let child = meshctl_in(dir.path(), &["init", "--join", "-", "--node", B, "--listen", &listen, "--force"]);
    let run = finish(child, &format!("{token}\n"));
    assert_eq!(run.code, 1, "a .env whose AGENT_ROLE is no role: {run:?}");
    assert!(run.stderr.contains("\"leader\"") && run.stderr.contains("nothing was written"), "{run:?}");
    assert_eq!(std::fs::read_to_string(dir.path().join(".env")).expect("the .env"), env);
    assert_eq!(std::fs::read_dir(dir.path()).expect("the folder").count(), 1);
    assert!(a.api_get("/api/v1/mesh").is_some_and(|mesh| !mesh.to_string().contains(B)), "no node joined");

    let dir = tempfile::tempdir().expect("temp dir");
    let child = meshctl_in(dir.path(), &["init", "--join", &token, "--node", B]);
    let run = finish(child, "");
    assert_eq!(run.code, 2, "a token on the command line: {run:?}");
    assert!(run.stderr.contains("--join -") && !run.stderr.contains(&token), "{run:?}");
    assert_eq!(std::fs::read_dir(dir.path()).expect("the folder").count(), 0);
}

/// A pseudo-terminal: the master the test reads and types on, and the
/// terminal a command gets as its standard input and error.
fn pseudo_terminal() -> (File, File) {
    let (mut master, mut terminal) = (0, 0);
    // SAFETY: openpty writes two descriptors; the name, settings and size are optional.
    let opened =
        unsafe { libc::openpty(&mut master, &mut terminal, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
    assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened, and each is owned once.
    unsafe { (File::from_raw_fd(master), File::from_raw_fd(terminal)) }
}

/// Reads from the terminal's master until `text` shows (or it closes).
fn read_until(master: &mut File, text: &str) -> String {
    let mut seen = Vec::new();
    let mut buffer = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).contains(text) {
        match master.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => seen.extend_from_slice(&buffer[..read]),
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

#[test]
fn join_alone_on_a_terminal_prompts_for_the_token_and_does_not_echo_it() {
    let a = first_node();
    let token = join_token(&a);
    let (dir, port) = (tempfile::tempdir().expect("temp dir"), free_port_on(IP_B));
    let (mut master, terminal) = pseudo_terminal();
    let listen = format!("{IP_B}:{port}");
    let mut command = Command::new(assert_cmd::cargo::cargo_bin("meshctl"));
    command
        .current_dir(dir.path())
        .env_clear()
        .env("HOME", dir.path())
        .args(["init", "--join", "--node", B, "--listen", &listen])
        .stdin(terminal.try_clone().expect("the terminal"))
        .stderr(terminal)
        .stdout(Stdio::piped());
    let child = command.spawn().expect("meshctl starts");
    drop(command);
    let prompt = read_until(&mut master, "Join token");
    assert!(prompt.contains("not shown"), "{prompt:?}");
    master.write_all(format!("{token}\n").as_bytes()).expect("type the token");
    let output = child.wait_with_output().expect("meshctl ends");
    let shown = read_until(&mut master, "\u{0}");
    assert!(output.status.success(), "{output:?} {shown}");
    assert!(!shown.contains("meshjoin1:") && !shown.contains(Daemon::KEY), "echoed: {shown:?}");
    let mut settings = std::mem::MaybeUninit::<libc::termios>::uninit();
    // SAFETY: tcgetattr writes the terminal's settings into `settings`.
    assert_eq!(unsafe { libc::tcgetattr(master.as_raw_fd(), settings.as_mut_ptr()) }, 0);
    // SAFETY: tcgetattr succeeded, so it wrote them.
    let settings = unsafe { settings.assume_init() };
    assert_ne!(settings.c_lflag & libc::ECHO, 0, "echo is back on");
    assert_eq!(env_var(dir.path(), "MESH_API_KEY").as_deref(), Some(Daemon::KEY));
}

#[test]
fn a_join_into_existing_manifests_leaves_them_and_names_the_nodes_they_lack() {
    let a = first_node();
    let (dir, port) = (tempfile::tempdir().expect("temp dir"), free_port_on(IP_B));
    let own = node_manifest(B, "satellite", (IP_B, port).into());
    std::fs::create_dir_all(dir.path().join("manifests")).expect("the manifests folder");
    std::fs::write(dir.path().join("manifests/node.yaml"), &own).expect("a manifest");
    let run = join(dir.path(), B, IP_B, port, &join_token(&a));
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains(&format!("does not declare Node/{A} (role primary, address {IP_A}")), "{run:?}");
    let files: Vec<_> = std::fs::read_dir(dir.path().join("manifests")).expect("the folder").collect();
    assert_eq!(files.len(), 1, "left as it was");
}

#[test]
fn join_token_takes_another_address_and_needs_a_key() {
    let key = "0123456789abcdef0123456789abcdef";
    let env = format!("AGENT_NODE_ID=mini\nAGENT_ROLE=primary\nMESH_API_KEY={key}\nMESH_LISTEN=0.0.0.0:8100\n");
    let workspace = Workspace::new().file(".env", &env);
    let run = workspace.run(&["join-token", "--address", "mini.tail1234.ts.net"]);
    assert_eq!(run.code, 0, "{run:?}");
    let expected =
        json!({"node": "mini", "role": "primary", "address": "mini.tail1234.ts.net", "apiPort": 8100, "key": key});
    assert_eq!(fields(run.stdout.trim()), expected);

    let run = workspace.run(&["join-token"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_ne!(fields(run.stdout.trim())["address"], "0.0.0.0", "never the unspecified address: {run:?}");
    let declared = "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: mini}\n\
                    spec: {role: primary, address: mini.tail1234.ts.net, apiPort: 8100}\n";
    let declaring = Workspace::new().file(".env", &env).file("manifests/mini.yaml", declared);
    let run = declaring.run(&["join-token"]);
    assert_eq!(fields(run.stdout.trim())["address"], "mini.tail1234.ts.net", "what the mesh dials: {run:?}");

    let run = workspace.run(&["join-token", "--address", "http://mini/"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("cannot make a join token: its address") && run.stdout.is_empty(), "{run:?}");

    let workspace = Workspace::new().file(".env", "AGENT_NODE_ID=mini\n");
    let run = workspace.run(&["join-token"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("this node has no mesh API key"), "{run:?}");
}
