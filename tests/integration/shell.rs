//! What `meshctl` gives the shell and the user's terminal: completion scripts
//! (parsed by bash, zsh and fish), man pages (rendered by groff) and a daemon
//! log without colours under `NO_COLOR`.

use std::path::Path;
use std::process::Command;

use crate::support::Workspace;

/// Verbs every completion script and the man pages must know.
const VERBS: [&str; 6] = ["validate", "status", "events", "describe", "version", "completion"];

/// Runs `program args… script` and fails the test, with its stderr, unless it
/// exits 0.
fn check_with(program: &str, args: &[&str], script: &Path) {
    let output = Command::new(program).args(args).arg(script).output().expect("the checker runs");
    assert!(
        output.status.success(),
        "{program} {args:?} rejects {}: {}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn completion_scripts_parse_in_their_shell_and_name_every_verb() {
    let workspace = Workspace::new();
    for (shell, marker, checker) in [
        ("bash", "complete -F _meshctl", ("bash", &["-n"][..])),
        ("zsh", "#compdef meshctl", ("zsh", &["-n"][..])),
        ("fish", "complete -c meshctl", ("fish", &["--no-execute"][..])),
    ] {
        let run = workspace.run(&["completion", shell]);
        assert_eq!(run.code, 0, "{run:?}");
        assert!(run.stdout.contains(marker), "{shell}: no {marker:?} in\n{}", run.stdout);
        for verb in VERBS {
            assert!(run.stdout.contains(verb), "{shell}: the script does not complete {verb}");
        }
        let script = workspace.path().join(format!("meshctl.{shell}"));
        std::fs::write(&script, &run.stdout).expect("write the script");
        let (program, args) = checker;
        check_with(program, args, &script);
    }
    let run = workspace.run(&["completion", "powershell"]);
    assert_eq!(run.code, 2, "only bash, zsh and fish: {run:?}");
}

#[test]
fn man_writes_a_page_for_meshctl_and_for_each_verb() {
    let workspace = Workspace::new();
    let run = workspace.run(&["man", "--out", "man"]);
    assert_eq!(run.code, 0, "{run:?}");
    let dir = workspace.path().join("man");
    let mut pages = vec!["meshctl.1".to_owned(), "meshctl-service-logs.1".to_owned()];
    pages.extend(VERBS.map(|verb| format!("meshctl-{verb}.1")));
    for page in &pages {
        let text = std::fs::read_to_string(dir.join(page)).unwrap_or_else(|error| panic!("{page}: {error}"));
        assert!(text.lines().any(|line| line.starts_with(".TH meshctl")), "{page} has no .TH header:\n{text}");
    }
    assert!(!dir.join("meshctl-man.1").exists(), "the hidden `man` verb has no page of its own");
    let events = std::fs::read_to_string(dir.join("meshctl-events.1")).expect("the events page");
    assert!(events.contains("meshctl events \\-\\-send pause"), "the page carries the help's examples:\n{events}");

    let output = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(dir.join("meshctl-events.1"))
        .output()
        .expect("groff runs");
    assert!(output.status.success() && output.stderr.is_empty(), "groff warns: {output:?}");
    let output =
        Command::new("groff").args(["-man", "-Tascii", "-P-cbou"]).arg(dir.join("meshctl.1")).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("NAME") && text.contains("SYNOPSIS"), "{text}");
    assert!(VERBS.iter().all(|verb| text.contains(verb)), "meshctl(1) lists the verbs:\n{text}");
}

#[test]
fn help_ends_with_examples_on_the_main_verbs() {
    let workspace = Workspace::new();
    for verb in ["validate", "apply", "diff", "status", "describe", "events", "handoff", "doctor", "version"] {
        let run = workspace.run(&[verb, "--help"]);
        assert_eq!(run.code, 0, "{run:?}");
        let examples = run.stdout.split("\nExamples:\n").nth(1).unwrap_or_else(|| panic!("{verb}: {}", run.stdout));
        assert!(examples.contains(&format!("meshctl {verb}")), "{verb}: {examples}");
    }
}

/// The daemon's log on a terminal (a pseudo-terminal made by `script`): the
/// daemon starts, logs, and exits as its port is taken.
#[cfg(target_os = "linux")]
fn daemon_log_on_a_terminal(no_color: Option<&str>) -> String {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let port = taken.local_addr().expect("its address").port();
    let workspace =
        Workspace::new().file(".env", "AGENT_NODE_ID=laptop\nMESH_STATE_DIR=state\n").file("manifests/.keep", "");
    let meshctl = assert_cmd::cargo::cargo_bin("meshctl");
    let mut command = Command::new("script");
    command
        .args(["--quiet", "--return", "--command"])
        .arg(format!("{} daemon --listen 127.0.0.1:{port}", meshctl.display()))
        .arg("/dev/null")
        .current_dir(workspace.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", workspace.path());
    if let Some(value) = no_color {
        command.env("NO_COLOR", value);
    }
    let output = command.output().expect("script runs (util-linux)");
    let log = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(log.contains("INFO") && log.contains("Address already in use"), "{log}");
    log
}

#[cfg(target_os = "linux")]
#[test]
fn the_daemon_log_has_no_colours_with_no_color() {
    const ESCAPE: char = '\u{1b}';
    assert!(daemon_log_on_a_terminal(None).contains(ESCAPE), "a terminal gets colours");
    assert!(daemon_log_on_a_terminal(Some("")).contains(ESCAPE), "an empty NO_COLOR is no request");
    let log = daemon_log_on_a_terminal(Some("1"));
    assert!(!log.contains(ESCAPE), "NO_COLOR=1 still coloured: {log:?}");
}
