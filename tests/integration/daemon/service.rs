//! `meshctl install-service`, `uninstall-service` and `service status|restart|logs`
//! against stand-in `systemctl`, `journalctl`, `launchctl` and `tail` that log
//! their arguments (CI has no systemd as PID 1), with a real daemon answering
//! the health the installer waits for.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::support::{Daemon, NODE, free_port};
use crate::support::{Run, Workspace};

/// Stand-ins for the service managers in `dir/fakebin`, each appending
/// `name args…` to `dir/calls.log`; `systemctl status` exits 3 (inactive), as
/// systemd's does. Returns a PATH with them first.
fn stand_ins(dir: &Path) -> String {
    let bin = dir.join("fakebin");
    std::fs::create_dir_all(&bin).expect("fakebin");
    for name in ["systemctl", "journalctl", "launchctl", "tail"] {
        let script = format!(
            "#!/bin/sh\necho \"{name} $*\" >> \"{}\"\ncase \"{name} $*\" in \"systemctl --user status\"*) exit 3;; esac\n",
            dir.join("calls.log").display()
        );
        std::fs::write(bin.join(name), script).expect("script");
        std::fs::set_permissions(bin.join(name), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default())
}

fn calls(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("calls.log")).unwrap_or_default()
}

/// `meshctl args…` in `dir` with only `PATH` and `HOME` set (the node's
/// settings come from `dir/.env`).
fn meshctl(dir: &Path, path: &str, home: &str, args: &[&str]) -> Run {
    Command::new(assert_cmd::cargo::cargo_bin("meshctl"))
        .current_dir(dir)
        .args(args)
        .env_clear()
        .env("PATH", path)
        .env("HOME", home)
        .output()
        .expect("meshctl runs")
        .into()
}

#[test]
fn install_service_waits_for_the_daemons_health_prints_doctors_summary_and_uninstall_undoes_it() {
    let daemon = Daemon::builder().start();
    let dir = daemon.path().to_owned();
    let path = stand_ins(&dir);
    let home = dir.join("home").display().to_string();
    let run = |args: &[&str]| meshctl(&dir, &path, &home, args);
    let install = ["install-service", "--platform", "linux", "--binary", "/opt/meshctl"];

    let run_install = run(&install);
    assert_eq!(run_install.code, 0, "{run_install:?}");
    let unit = std::fs::read_to_string(format!("{home}/.config/systemd/user/agentmesh.service")).expect("the unit");
    assert!(unit.contains(&format!("--env-file {}/.env\n", dir.display())), "{unit}");
    assert!(!unit.contains("EnvironmentFile"), "{unit}");
    assert!(unit.contains("\nExecReload=/bin/kill -HUP $MAINPID\n"), "{unit}");
    assert!(unit.contains(&format!("\nEnvironment=PATH=/opt:{home}/.local/bin:/usr/local/sbin:")), "{unit}");
    assert_eq!(calls(&dir), "systemctl --user daemon-reload\nsystemctl --user enable --now agentmesh.service\n");
    let context = std::fs::read_to_string(format!("{home}/.config/agentmesh/context")).expect("the context file");
    assert_eq!(context, format!("{}\n", dir.display()), "meshctl in any folder uses the installed node");
    let answered = format!("{NODE}'s daemon answers at http://{} (", daemon.api());
    assert!(run_install.stdout.contains(&answered), "{run_install:?}");
    let summary = run_install.stdout.lines().find(|l| l.starts_with("doctor: ")).expect("doctor's summary");
    assert!(summary.contains(" passed, ") && summary.contains(", 0 failed;"), "{run_install:?}");
    assert!(run_install.stdout.contains("\nwarn  env "), "the short test key is named: {run_install:?}");
    let installed = run_install.stdout.lines().position(|l| l.starts_with("installed: "));
    let doctor = run_install.stdout.lines().position(|l| l.starts_with("doctor: "));
    assert!(doctor < installed, "doctor's summary comes before the closing line: {run_install:?}");

    let again = run(&install);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("is up to date"), "{again:?}");
    let changed = run(&["install-service", "--platform", "linux", "--binary", "/usr/bin/meshctl"]);
    assert_eq!(changed.code, 0, "{changed:?}");
    assert!(
        calls(&dir).ends_with("systemctl --user restart agentmesh.service\n"),
        "a changed unit is restarted: {}",
        calls(&dir)
    );

    let uninstall = run(&["uninstall-service", "--platform", "linux"]);
    assert_eq!(uninstall.code, 0, "{uninstall:?}");
    assert!(!Path::new(&format!("{home}/.config/systemd/user/agentmesh.service")).exists());
    assert!(
        calls(&dir).ends_with("systemctl --user disable --now agentmesh.service\nsystemctl --user daemon-reload\n"),
        "{}",
        calls(&dir)
    );

    std::fs::remove_file(dir.join("calls.log")).expect("clear the log");
    let mac = run(&["install-service", "--platform", "macos", "--binary", "/opt/meshctl"]);
    assert_eq!(mac.code, 0, "{mac:?}");
    assert!(mac.stdout.contains(&answered), "{mac:?}");
    assert!(Path::new(&format!("{home}/Library/Logs/agentmesh")).is_dir());
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let plist = format!("{home}/Library/LaunchAgents/dev.agentmesh.meshctl.plist");
    assert_eq!(calls(&dir), format!("launchctl bootstrap gui/{uid} {plist}\n"));
    let uninstall = run(&["uninstall-service", "--platform", "macos"]);
    assert_eq!(uninstall.code, 0, "{uninstall:?}");
    assert!(calls(&dir).ends_with(&format!("launchctl bootout gui/{uid}/dev.agentmesh.meshctl\n")), "{}", calls(&dir));
    assert!(!Path::new(&plist).exists());
}

#[test]
fn install_service_says_so_when_the_daemon_does_not_answer_in_time() {
    let port = free_port();
    let workspace = Workspace::new().file(".env", &format!("AGENT_NODE_ID={NODE}\nMESH_LISTEN=127.0.0.1:{port}\n"));
    let path = stand_ins(workspace.path());
    let home = workspace.path().join("home").display().to_string();
    let started = Instant::now();
    let args = ["install-service", "--platform", "linux", "--binary", "/opt/meshctl", "--wait", "1s"];
    let run = meshctl(workspace.path(), &path, &home, &args);
    assert!(started.elapsed() < Duration::from_secs(5), "the wait is bounded: {:?}", started.elapsed());
    assert_eq!(run.code, 1, "{run:?}");
    let expected = format!(
        "error: the service is installed, but {NODE}'s daemon does not answer http://127.0.0.1:{port}/mesh/health after 1s: cannot reach the controller"
    );
    assert!(run.stderr.starts_with(&expected), "{run:?}");
    assert!(run.stderr.contains("`meshctl service status` and `meshctl service logs` show why"), "{run:?}");
    assert!(!run.stdout.contains("installed: "), "{run:?}");
}

#[test]
fn service_status_restart_and_logs_are_the_service_managers_commands() {
    let workspace = Workspace::new();
    let dir = workspace.path();
    let path = stand_ins(dir);
    let home = dir.join("home").display().to_string();
    let run = |args: &[&str]| meshctl(dir, &path, &home, args);
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let logs = format!("{home}/Library/Logs/agentmesh");
    let table: [(&[&str], i32, String); 8] = [
        (
            &["service", "status", "--platform", "linux"],
            3,
            "systemctl --user status --no-pager agentmesh.service".into(),
        ),
        (&["service", "restart", "--platform", "linux"], 0, "systemctl --user restart agentmesh.service".into()),
        (
            &["service", "logs", "--platform", "linux"],
            0,
            "journalctl --user -u agentmesh.service --no-pager -n 100".into(),
        ),
        (
            &["service", "logs", "-f", "-n", "5", "--platform", "linux"],
            0,
            "journalctl --user -u agentmesh.service --no-pager -n 5 -f".into(),
        ),
        (&["service", "status", "--platform", "macos"], 0, format!("launchctl print gui/{uid}/dev.agentmesh.meshctl")),
        (
            &["service", "restart", "--platform", "macos"],
            0,
            format!("launchctl kickstart -k gui/{uid}/dev.agentmesh.meshctl"),
        ),
        (
            &["service", "logs", "--platform", "macos"],
            0,
            format!("tail -n 100 {logs}/meshctl.log {logs}/meshctl.err.log"),
        ),
        (
            &["service", "logs", "--follow", "--platform", "macos"],
            0,
            format!("tail -n 100 -F {logs}/meshctl.log {logs}/meshctl.err.log"),
        ),
    ];
    for (args, code, argv) in table {
        let _ = std::fs::remove_file(dir.join("calls.log"));
        let ran = run(args);
        assert_eq!(ran.code, code, "the service manager's exit code is meshctl's: {args:?} {ran:?}");
        assert_eq!(calls(dir), format!("{argv}\n"), "{args:?}");
    }
    let without = meshctl(dir, "/nonexistent", &home, &["service", "status", "--platform", "linux"]);
    assert_eq!(without.code, 1, "{without:?}");
    let expected = "error: cannot run `systemctl --user status --no-pager agentmesh.service` (--platform chooses the service manager): ";
    assert!(without.stderr.starts_with(expected), "{without:?}");
}
