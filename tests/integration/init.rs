//! `meshctl init` in an empty folder and again; `install-service --dry-run` for
//! both platforms, its unit checked by `systemd-analyze verify` and its plist
//! read by Python's `plistlib`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::Workspace;

/// The variables of a `.env`, as the program reads them.
fn env_vars(path: &Path) -> Vec<(String, String)> {
    dotenvy::from_path_iter(path).expect("a .env").map(|item| item.expect("a variable")).collect()
}

fn env_var(path: &Path, name: &str) -> Option<String> {
    env_vars(path).into_iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

/// Every file under `dir` with its bytes and modification time.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let modified = std::fs::metadata(&path).and_then(|m| m.modified()).expect("mtime");
                out.push((path.clone(), std::fs::read(&path).expect("read"), modified));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn init_in_an_empty_folder_writes_an_owner_only_env_with_a_new_key_and_valid_manifests() {
    let (first, second) = (Workspace::new(), Workspace::new());
    let run = first.run(&["init"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("Next steps:") && run.stdout.contains("meshctl install-service"), "{run:?}");
    let mini = ["init", "--node", "agent-home-mini", "--role", "primary", "--listen", "127.0.0.5:8100"];
    assert_eq!(second.run(&mini).code, 0);

    let env = first.path().join(".env");
    let mode = std::fs::metadata(&env).expect(".env").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "mode {mode:o}");
    let key = env_var(&env, "MESH_API_KEY").expect("a key");
    assert!(key.len() >= 32 && key.chars().all(|c| c.is_ascii_hexdigit()), "{key}");
    assert_ne!(Some(key), env_var(&second.path().join(".env"), "MESH_API_KEY"));
    let node = env_var(&env, "AGENT_NODE_ID").expect("a node id");
    let laptop = std::fs::read_to_string(first.path().join(format!("manifests/nodes/{node}.yaml"))).expect("its Node");
    assert!(laptop.contains(&format!("\n  address: {node}\n")), "dialled by its name: {laptop}");
    let mini = std::fs::read_to_string(second.path().join("manifests/nodes/agent-home-mini.yaml")).expect("its Node");
    assert!(mini.contains("\n  address: 127.0.0.5\n  apiPort: 8100\n"), "at the IP --listen gives: {mini}");

    for workspace in [&first, &second] {
        let run = workspace.run(&["validate"]);
        assert_eq!(run.code, 0, "{run:?}");
        assert!(run.stdout.contains("2 objects in 2 files are valid"), "{run:?}");
        assert!(run.stderr.is_empty(), "no warnings: {run:?}");
    }
}

#[test]
fn a_second_init_changes_nothing_and_says_so() {
    let workspace = Workspace::new();
    assert_eq!(workspace.run(&["init", "--node", "agent-work-laptop"]).code, 0);
    let before = snapshot(workspace.path());
    std::thread::sleep(std::time::Duration::from_millis(20));

    let run = workspace.run(&["init", "--node", "agent-work-laptop"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.starts_with("already set up: nothing changed\n"), "{run:?}");
    assert_eq!(workspace.run(&["init"]).code, 0, "left-out flags keep what the file says");
    assert_eq!(snapshot(workspace.path()), before, "bytes and modification times");
}

#[test]
fn a_different_role_is_refused_without_force_and_applied_with_it_keeping_the_key() {
    let workspace = Workspace::new();
    assert_eq!(workspace.run(&["init", "--node", "agent-work-laptop"]).code, 0);
    let env = workspace.path().join(".env");
    let before = std::fs::read(&env).expect(".env");
    let key = env_var(&env, "MESH_API_KEY");

    let run = workspace.run(&["init", "--role", "primary"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("AGENT_ROLE: \"satellite\" in the file, \"primary\" asked"), "{run:?}");
    assert!(run.stderr.contains("--force"), "{run:?}");
    assert_eq!(std::fs::read(&env).expect(".env"), before);

    let other_key = "0123456789abcdef0123456789abcdef";
    let run = workspace.run(&["init", "--api-key", other_key]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("MESH_API_KEY differs (values not shown)"), "{run:?}");
    assert!(!run.stderr.contains(other_key) && !run.stderr.contains(key.as_deref().unwrap_or("-")), "{run:?}");

    let run = workspace.run(&["init", "--role", "primary", "--force"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(env_var(&env, "AGENT_ROLE").as_deref(), Some("primary"));
    assert_eq!(env_var(&env, "MESH_API_KEY"), key, "--force without --api-key keeps the key");
    let mode = std::fs::metadata(&env).expect(".env").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "mode {mode:o}");
}

#[test]
fn init_reads_the_syncthing_key_from_a_config_syncthing_generated() {
    let home = tempfile::tempdir().expect("temp dir");
    let output = Command::new("syncthing")
        .args(["generate", "--no-default-folder", "--skip-port-probing"])
        .arg(format!("--home={}", home.path().display()))
        .output()
        .expect("syncthing runs");
    assert!(output.status.success(), "{output:?}");
    let config = home.path().join("config.xml");
    let xml = std::fs::read_to_string(&config).expect("config.xml");
    let gui = &xml[xml.find("<gui").expect("a gui element")..];
    let start = gui.find("<apikey>").expect("an apikey") + "<apikey>".len();
    let expected = &gui[start..start + gui[start..].find('<').expect("its end")];

    let workspace = Workspace::new();
    let run =
        workspace.run(&["init", "--node", "agent-work-laptop", "--syncthing-from-config", &config.to_string_lossy()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(env_var(&workspace.path().join(".env"), "SYNCTHING_API_KEY").as_deref(), Some(expected));
    let node = std::fs::read_to_string(workspace.path().join("manifests/nodes/agent-work-laptop.yaml")).expect("Node");
    assert!(node.contains("\n  syncthing:\n") && node.contains("apiKey: {env: SYNCTHING_API_KEY}"), "{node}");
    let run = workspace.run(&["validate"]);
    assert_eq!(run.code, 0, "{run:?}");
}

/// A workspace with a `.env` and its canonical path, as the program sees it.
fn set_up() -> (Workspace, String) {
    let workspace = Workspace::new().file(".env", "AGENT_NODE_ID=agent-work-laptop\n");
    let dir = workspace.path().canonicalize().expect("canonical").display().to_string();
    (workspace, dir)
}

fn dry_run(workspace: &Workspace, platform: &str, home: &str, binary: &str) -> crate::support::Run {
    let args = ["install-service", "--dry-run", "--platform", platform, "--binary", binary];
    workspace.run_with_env(&args, &[("HOME", home), ("XDG_CONFIG_HOME", "")])
}

/// The file a dry run would write.
fn written_file(stdout: &str) -> String {
    let start = stdout.find("\nwrite ").expect("a file");
    let body = &stdout[start + 1..];
    let body = &body[body.find(":\n").expect("its content") + 2..];
    body[..body.find("\nrun: ").expect("the commands") + 1].to_owned()
}

#[test]
fn install_service_dry_run_prints_the_systemd_unit_and_commands() {
    let (workspace, dir) = set_up();
    let run = dry_run(&workspace, "linux", "/home/alice", "/opt/agent mesh/bin/meshctl");
    assert_eq!(run.code, 0, "{run:?}");
    let expected = r#"Dry run: nothing is changed. Without --dry-run, meshctl would:
create the folder /home/alice/.config/systemd/user
write /home/alice/.config/systemd/user/agentmesh.service:
# This node's agentmesh controller, written by `meshctl install-service`.
# `meshctl uninstall-service` removes it; logs: journalctl --user -u agentmesh.service
[Unit]
Description=agentmesh controller (meshctl daemon)
After=network-online.target

[Service]
Type=simple
WorkingDirectory={dir}
# The daemon reads its .env itself (--env-file): loaded here, its keys would
# reach every Service's environment.
ExecStart="/opt/agent mesh/bin/meshctl" daemon --env-file {dir}/.env
# SIGHUP: the daemon reads its .env and the manifests again (`systemctl --user reload`).
ExecReload=/bin/kill -HUP $MAINPID
# The PATH the daemon and its Services find programs on (`meshctl doctor` checks them).
Environment="PATH=/opt/agent mesh/bin:/home/alice/.local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
Restart=on-failure
RestartSec=5
StandardOutput=journal
StandardError=journal

[Install]
WantedBy=default.target

run: systemctl --user daemon-reload
run: systemctl --user enable --now agentmesh.service
wait until agent-work-laptop's daemon answers http://127.0.0.1:8000/mesh/health (up to 15s), then print `meshctl doctor`'s summary
"#;
    assert_eq!(run.stdout, expected.replace("{dir}", &dir));
    assert!(!Path::new("/home/alice/.config/systemd/user/agentmesh.service").exists());
}

#[test]
fn install_service_dry_run_prints_the_launch_agent_and_commands() {
    let (workspace, dir) = set_up();
    let run = dry_run(&workspace, "macos", "/Users/alice", "/opt/agent mesh/bin/meshctl");
    assert_eq!(run.code, 0, "{run:?}");
    let expected = r#"Dry run: nothing is changed. Without --dry-run, meshctl would:
create the folder /Users/alice/Library/LaunchAgents
create the folder /Users/alice/Library/Logs/agentmesh
write /Users/alice/Library/LaunchAgents/dev.agentmesh.meshctl.plist:
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<!-- This node's agentmesh controller, written by `meshctl install-service`. -->
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>dev.agentmesh.meshctl</string>
	<key>ProgramArguments</key>
	<array>
		<string>/opt/agent mesh/bin/meshctl</string>
		<string>daemon</string>
		<string>--env-file</string>
		<string>{dir}/.env</string>
	</array>
	<key>WorkingDirectory</key>
	<string>{dir}</string>
	<key>EnvironmentVariables</key>
	<dict>
		<key>PATH</key>
		<string>/opt/agent mesh/bin:/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin</string>
	</dict>
	<key>RunAtLoad</key>
	<true/>
	<key>KeepAlive</key>
	<true/>
	<key>ProcessType</key>
	<string>Interactive</string>
	<key>SoftResourceLimits</key>
	<dict>
		<key>NumberOfFiles</key>
		<integer>10240</integer>
	</dict>
	<key>HardResourceLimits</key>
	<dict>
		<key>NumberOfFiles</key>
		<integer>10240</integer>
	</dict>
	<key>StandardOutPath</key>
	<string>/Users/alice/Library/Logs/agentmesh/meshctl.log</string>
	<key>StandardErrorPath</key>
	<string>/Users/alice/Library/Logs/agentmesh/meshctl.err.log</string>
</dict>
</plist>

run: launchctl bootstrap gui/{uid} /Users/alice/Library/LaunchAgents/dev.agentmesh.meshctl.plist
wait until agent-work-laptop's daemon answers http://127.0.0.1:8000/mesh/health (up to 15s), then print `meshctl doctor`'s summary
"#;
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    assert_eq!(run.stdout, expected.replace("{dir}", &dir).replace("{uid}", &uid.to_string()));
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    // Paths with spaces and a `%`, and a binary that exists: verify checks it.
    let root = tempfile::tempdir().expect("temp dir");
    let node = root.path().join("my node 100%");
    let bin = root.path().join("bin dir");
    std::fs::create_dir_all(&node).expect("node folder");
    std::fs::create_dir_all(&bin).expect("bin folder");
    std::fs::write(node.join(".env"), "AGENT_NODE_ID=agent-work-laptop\n").expect(".env");
    let meshctl = bin.join("meshctl");
    std::os::unix::fs::symlink(assert_cmd::cargo::cargo_bin("meshctl"), &meshctl).expect("symlink");

    let output = assert_cmd::Command::cargo_bin("meshctl")
        .expect("meshctl")
        .current_dir(&node)
        .args(["install-service", "--dry-run", "--platform", "linux", "--binary"])
        .arg(&meshctl)
        .env("HOME", root.path())
        .env("XDG_CONFIG_HOME", "")
        .output()
        .expect("meshctl runs");
    assert!(output.status.success(), "{output:?}");
    let unit = written_file(&String::from_utf8(output.stdout).expect("UTF-8"));
    assert!(unit.contains("my node 100%%"), "{unit}");
    let units = tempfile::tempdir().expect("temp dir");
    let file = units.path().join("agentmesh.service");
    std::fs::write(&file, &unit).expect("unit");

    // `--user` needs a runtime folder; Debian's systemd package brings systemd-analyze.
    let runtime = tempfile::tempdir().expect("temp dir");
    let output = Command::new("systemd-analyze")
        .args(["verify", "--user", "--man=no"])
        .arg(&file)
        .env("XDG_RUNTIME_DIR", runtime.path())
        .output()
        .expect("systemd-analyze (Debian's systemd package) is installed");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "verify failed: {stderr}\n{unit}");
    assert!(stderr.trim().is_empty() && output.stdout.is_empty(), "verify warned: {stderr}\n{unit}");
}

#[test]
fn the_launch_agent_parses_as_a_property_list_with_the_expected_keys() {
    let (workspace, dir) = set_up();
    let run = dry_run(&workspace, "macos", "/Users/a&b", "/opt/agent <mesh>/meshctl");
    assert_eq!(run.code, 0, "{run:?}");
    let plist = written_file(&run.stdout);
    let file = workspace.path().join("agent.plist");
    std::fs::write(&file, plist).expect("plist");

    let script =
        "import json, plistlib, sys\nprint(json.dumps(plistlib.load(open(sys.argv[1], 'rb')), sort_keys=True))";
    let output = Command::new("python3").args(["-c", script]).arg(&file).output().expect("python3 runs");
    assert!(output.status.success(), "plistlib: {}", String::from_utf8_lossy(&output.stderr));
    let parsed: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let expected = serde_json::json!({
        "Label": "dev.agentmesh.meshctl",
        "ProgramArguments": ["/opt/agent <mesh>/meshctl", "daemon", "--env-file", format!("{dir}/.env")],
        "WorkingDirectory": dir,
        "EnvironmentVariables": {"PATH": "/opt/agent <mesh>:/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"},
        "RunAtLoad": true,
        "KeepAlive": true,
        "ProcessType": "Interactive",
        "SoftResourceLimits": {"NumberOfFiles": 10240},
        "HardResourceLimits": {"NumberOfFiles": 10240},
        "StandardOutPath": "/Users/a&b/Library/Logs/agentmesh/meshctl.log",
        "StandardErrorPath": "/Users/a&b/Library/Logs/agentmesh/meshctl.err.log",
    });
    assert_eq!(parsed, expected);
}

#[test]
fn install_service_needs_an_env_file_and_uninstall_without_a_service_does_nothing() {
    let workspace = Workspace::new();
    let run = workspace.run_with_env(&["install-service", "--dry-run", "--platform", "linux"], &[("HOME", "/nowhere")]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("run `meshctl init` first"), "{run:?}");

    let home = workspace.path().display().to_string();
    let args = ["uninstall-service", "--dry-run", "--platform", "linux"];
    let run = workspace.run_with_env(&args, &[("HOME", &home), ("XDG_CONFIG_HOME", "")]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.starts_with("not installed:"), "{run:?}");

    let workspace = workspace.file(".config/systemd/user/agentmesh.service", "[Unit]\n");
    let run = workspace.run_with_env(&args, &[("HOME", &home), ("XDG_CONFIG_HOME", "")]);
    assert_eq!(run.code, 0, "{run:?}");
    let expected = format!(
        "Dry run: nothing is changed. Without --dry-run, meshctl would:\n\
         run: systemctl --user disable --now agentmesh.service  (a failure means it was not loaded and is ignored)\n\
         remove {home}/.config/systemd/user/agentmesh.service\n\
         run: systemctl --user daemon-reload\n"
    );
    assert_eq!(run.stdout, expected);
    assert!(workspace.path().join(".config/systemd/user/agentmesh.service").exists());
}

#[test]
fn init_finds_syncthing_config_in_its_default_place_and_warns_about_a_weak_kept_env() {
    let workspace = Workspace::new()
        .file(
            "home/.config/syncthing/config.xml",
            "<configuration>\n<gui enabled=\"true\">\n<apikey>KeyFromTheGui</apikey>\n</gui>\n</configuration>\n",
        )
        .file(
            "node/.env",
            "AGENT_NODE_ID=agent-work-laptop\nMESH_API_KEY=change-me\nMESH_PEERS='[\"agent-home-mini:8000\"]'\n",
        );
    let home = workspace.path().join("home").display().to_string();
    let env = [("HOME", home.as_str()), ("XDG_CONFIG_HOME", ""), ("XDG_STATE_HOME", "")];
    let run = workspace.run_with_env(&["init", "--dir", "node", "--syncthing-from-config", "--force"], &env);
    assert_eq!(run.code, 0, "{run:?}");
    let file = workspace.path().join("node/.env");
    assert_eq!(env_var(&file, "SYNCTHING_API_KEY").as_deref(), Some("KeyFromTheGui"));
    assert_eq!(env_var(&file, "MESH_API_KEY").as_deref(), Some("change-me"), "a key is never replaced unasked");
    assert_eq!(env_var(&file, "MESH_PEERS").as_deref(), Some("[\"agent-home-mini:8000\"]"), "other settings kept");
    assert!(run.stderr.contains("MESH_API_KEY is shorter than 32 characters"), "{run:?}");
    assert!(workspace.path().join("node/manifests/nodes/agent-work-laptop.yaml").is_file());
}

#[test]
fn the_env_example_reads_back_with_mesh_peers_a_json_list() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join(".env.example");
    let peers = env_var(&example, "MESH_PEERS").expect("MESH_PEERS");
    let peers: Vec<String> = serde_json::from_str(&peers).unwrap_or_else(|e| panic!("{peers}: {e}"));
    assert_eq!(peers, ["agent-home-mini:8000"]);
}

#[test]
fn a_key_on_the_command_line_is_taken_with_a_warning_and_one_in_a_file_without() {
    let key = "0123456789abcdef0123456789abcdef";
    let workspace = Workspace::new();
    let run = workspace.run(&["init", "--api-key", key]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr.contains("warning:") && run.stderr.contains("visible") && run.stderr.contains("`ps`"),
        "{run:?}"
    );
    assert_eq!(env_var(&workspace.path().join(".env"), "MESH_API_KEY").as_deref(), Some(key));

    let workspace = Workspace::new().file("key.txt", &format!("{key}\n"));
    let run = workspace.run(&["init", "--api-key-file", "key.txt"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.is_empty(), "no warning: {run:?}");
    assert_eq!(env_var(&workspace.path().join(".env"), "MESH_API_KEY").as_deref(), Some(key));

    let workspace = Workspace::new().file("key.txt", "short\n");
    let run = workspace.run(&["init", "--api-key-file", "key.txt"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("key.txt: the key is shorter than 32 characters"), "{run:?}");
    assert!(!workspace.path().join(".env").exists());
}
