//! `meshctl install-service`, `uninstall-service` and `service status|restart|logs`:
//! run this node's controller at login, as a systemd user unit on Linux or a
//! LaunchAgent on macOS, and look after it. The files are rendered by pure
//! functions; the steps (folders, the file, the service manager's commands,
//! waiting for the daemon's health) and each `service` verb's command line are
//! planned purely, then printed (`--dry-run`) or done.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};

use super::Outcome;
use super::platform::{Platform, service_path};
use crate::client::ApiClient;
use crate::config::client_addr;
use crate::identity::{NODE_ID, NodeEnv};

/// The systemd unit's name and the LaunchAgent's label.
pub(super) const UNIT_NAME: &str = "agentmesh.service";
pub(super) const LAUNCHD_LABEL: &str = "dev.agentmesh.meshctl";

#[derive(Debug, clap::Args)]
pub(super) struct InstallArgs {
    /// Print the file and the commands; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// The service manager to write for (default: this machine's).
    #[arg(long, value_enum)]
    platform: Option<Platform>,
    /// The meshctl the service runs (default: this one). For tests.
    #[arg(long, hide = true, value_name = "PATH")]
    binary: Option<PathBuf>,
    /// How long to wait for the started daemon to answer its health.
    #[arg(long, hide = true, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "15s")]
    wait: Duration,
}

#[derive(Debug, clap::Args)]
pub(super) struct ServiceArgs {
    #[command(subcommand)]
    action: ServiceAction,
    /// The service manager to ask (default: this machine's).
    #[arg(long, value_enum, global = true)]
    platform: Option<Platform>,
}

/// What `meshctl service` asks of the service manager.
#[derive(Clone, Debug, PartialEq, Eq, clap::Subcommand)]
pub(super) enum ServiceAction {
    /// Whether the controller's service runs (systemctl status, launchctl print).
    Status,
    /// Restart the controller (systemctl restart, launchctl kickstart -k).
    Restart,
    /// The controller's log: the user journal on Linux, the LaunchAgent's log files on macOS.
    Logs {
        /// Keep printing new lines as they come.
        #[arg(short, long)]
        follow: bool,
        /// How many of the last lines to print first.
        #[arg(short = 'n', long, default_value_t = 100)]
        lines: u32,
    },
}

#[derive(Debug, clap::Args)]
pub(super) struct UninstallArgs {
    /// Print the commands; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// The service manager to remove from (default: this machine's).
    #[arg(long, value_enum)]
    platform: Option<Platform>,
}

/// The absolute paths a service definition names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ServicePaths {
    /// The meshctl to run.
    pub binary: PathBuf,
    /// The node's `.env`.
    pub env_file: PathBuf,
    /// The folder the daemon runs in: the `.env`'s.
    pub working_dir: PathBuf,
    /// The user's home folder.
    pub home: PathBuf,
}

/// One thing install or uninstall does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Step {
    CreateDir(PathBuf),
    Write {
        path: PathBuf,
        content: String,
    },
    Remove(PathBuf),
    /// A command; `may_fail` when failing means there was nothing to undo.
    Run {
        argv: Vec<String>,
        may_fail: bool,
    },
    /// Wait up to `within` until this node's daemon answers `/mesh/health` at
    /// `api`, then print `doctor`'s summary for `env_file`.
    AwaitHealth {
        api: SocketAddr,
        node: String,
        within: Duration,
        env_file: PathBuf,
    },
}

/// The daemon the service runs, as its `.env` says: who it is and where it listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ServiceDaemon {
    pub node: String,
    pub api: SocketAddr,
}

pub(super) fn install(args: InstallArgs, env_file: Option<&Path>) -> anyhow::Result<Outcome> {
    let platform = args.platform.unwrap_or_else(Platform::current);
    let binary = match args.binary {
        Some(binary) => std::path::absolute(binary)?,
        None => std::env::current_exe().context("cannot tell where this meshctl is")?,
    };
    let env_file = std::path::absolute(env_file.unwrap_or(Path::new(".env")))?;
    if !env_file.is_file() {
        bail!("no env file at {}: run `meshctl init` first (or give --env-file)", env_file.display());
    }
    let working_dir = env_file.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
    let paths = ServicePaths { binary, env_file, working_dir, home: home()? };
    let daemon = super::runtime()?.block_on(service_daemon(&paths.env_file))?;
    let location = service_file(platform, &paths.home);
    let previous = std::fs::read_to_string(&location).ok();
    let steps = install_steps(platform, &paths, &daemon, args.wait, previous.as_deref(), uid())?;
    if !args.dry_run && is_build_output(&paths.binary) {
        eprintln!(
            "warning: the service will run {}, a build output; `cargo install --path .` gives it a lasting path",
            paths.binary.display()
        );
    }
    carry_out(&steps, args.dry_run)?;
    if !args.dry_run {
        println!("installed: the controller runs at login ({})", manager_hint(platform));
        match crate::env_location::write_context(&paths.env_file) {
            Ok(Some(context)) => println!("wrote {} (meshctl in any folder uses this node)", context.display()),
            Ok(None) => {}
            Err(error) => eprintln!("warning: {error:#}; meshctl finds this node from its folder or with --env-file"),
        }
    }
    Ok(Outcome::Success)
}

/// `meshctl service status|restart|logs`: the service manager's own command,
/// its output and exit code passed through.
pub(super) fn service(args: ServiceArgs) -> anyhow::Result<Outcome> {
    let platform = args.platform.unwrap_or_else(Platform::current);
    let argv = manager_argv(platform, &args.action, uid(), &home()?);
    let status = Command::new(&argv[0])
        .args(&argv[1..])
        .status()
        .with_context(|| format!("cannot run `{}` (--platform chooses the service manager)", shell_words(&argv)))?;
    Ok(match status.code() {
        Some(0) => Outcome::Success,
        Some(code) => Outcome::Code(u8::try_from(code).unwrap_or(1)),
        None => Outcome::Failure,
    })
}

/// The command line behind a `meshctl service` verb.
pub(super) fn manager_argv(platform: Platform, action: &ServiceAction, uid: u32, home: &Path) -> Vec<String> {
    let target = format!("gui/{uid}/{LAUNCHD_LABEL}");
    match (platform, action) {
        (Platform::Linux, ServiceAction::Status) => argv(&["systemctl", "--user", "status", "--no-pager", UNIT_NAME]),
        (Platform::Linux, ServiceAction::Restart) => argv(&["systemctl", "--user", "restart", UNIT_NAME]),
        (Platform::Linux, ServiceAction::Logs { follow, lines }) => {
            let lines = lines.to_string();
            let mut words = argv(&["journalctl", "--user", "-u", UNIT_NAME, "--no-pager", "-n", &lines]);
            if *follow {
                words.push("-f".into());
            }
            words
        }
        (Platform::Macos, ServiceAction::Status) => argv(&["launchctl", "print", &target]),
        (Platform::Macos, ServiceAction::Restart) => argv(&["launchctl", "kickstart", "-k", &target]),
        (Platform::Macos, ServiceAction::Logs { follow, lines }) => {
            let mut words = argv(&["tail", "-n", &lines.to_string()]);
            if *follow {
                words.push("-F".into());
            }
            let logs = launchd_log_dir(home);
            words.extend([LAUNCHD_STDOUT, LAUNCHD_STDERR].map(|file| path_string(&logs.join(file))));
            words
        }
    }
}

/// Who the service's daemon is and where it listens, from its `.env`.
async fn service_daemon(env_file: &Path) -> anyhow::Result<ServiceDaemon> {
    let env = NodeEnv::load(Some(env_file)).with_context(|| format!("cannot read {}", env_file.display()))?;
    let node = env.value(NODE_ID).map(str::to_owned);
    let node = node.ok_or_else(|| anyhow!("{NODE_ID} is not set in {}", env_file.display()))?;
    let listen =
        super::doctor::listen_addr(&env).await.map_err(|problem| anyhow!("{}: {problem}", env_file.display()))?;
    Ok(ServiceDaemon { node, api: client_addr(listen) })
}

pub(super) fn uninstall(args: UninstallArgs) -> anyhow::Result<Outcome> {
    let platform = args.platform.unwrap_or_else(Platform::current);
    let location = service_file(platform, &home()?);
    if !location.exists() {
        println!("not installed: {} does not exist; nothing to do", location.display());
        return Ok(Outcome::Success);
    }
    let steps = uninstall_steps(platform, &location, uid());
    carry_out(&steps, args.dry_run)?;
    if !args.dry_run {
        println!("uninstalled: the controller no longer runs at login");
    }
    Ok(Outcome::Success)
}

/// Where the service definition lives: `~/.config/systemd/user/agentmesh.service`
/// (or under `$XDG_CONFIG_HOME`), `~/Library/LaunchAgents/dev.agentmesh.meshctl.plist`.
pub(super) fn service_file(platform: Platform, home: &Path) -> PathBuf {
    match platform {
        Platform::Linux => {
            let config = std::env::var_os("XDG_CONFIG_HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .unwrap_or_else(|| home.join(".config"));
            config.join("systemd/user").join(UNIT_NAME)
        }
        Platform::Macos => home.join("Library/LaunchAgents").join(format!("{LAUNCHD_LABEL}.plist")),
    }
}

/// The LaunchAgent's log folder, `~/Library/Logs/agentmesh`.
pub(super) fn launchd_log_dir(home: &Path) -> PathBuf {
    home.join("Library/Logs/agentmesh")
}

/// What installing does, given the file there now (if any).
pub(super) fn install_steps(
    platform: Platform,
    paths: &ServicePaths,
    daemon: &ServiceDaemon,
    wait: Duration,
    previous: Option<&str>,
    uid: u32,
) -> anyhow::Result<Vec<Step>> {
    let file = service_file(platform, &paths.home);
    let parent = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut steps = Vec::new();
    match platform {
        Platform::Linux => {
            let content = systemd_unit(paths)?;
            let replaced = previous.is_some_and(|p| p != content);
            steps.push(Step::CreateDir(parent));
            steps.push(Step::Write { path: file, content });
            steps.push(run(&["systemctl", "--user", "daemon-reload"]));
            steps.push(run(&["systemctl", "--user", "enable", "--now", UNIT_NAME]));
            if replaced {
                steps.push(run(&["systemctl", "--user", "restart", UNIT_NAME]));
            }
        }
        Platform::Macos => {
            let content = launchd_plist(paths);
            steps.push(Step::CreateDir(parent));
            steps.push(Step::CreateDir(launchd_log_dir(&paths.home)));
            steps.push(Step::Write { path: file.clone(), content });
            if previous.is_some() {
                let argv = vec!["launchctl".into(), "bootout".into(), format!("gui/{uid}/{LAUNCHD_LABEL}")];
                steps.push(Step::Run { argv, may_fail: true });
            }
            let argv = vec!["launchctl".into(), "bootstrap".into(), format!("gui/{uid}"), path_string(&file)];
            steps.push(Step::Run { argv, may_fail: false });
        }
    }
    steps.push(Step::AwaitHealth {
        api: daemon.api,
        node: daemon.node.clone(),
        within: wait,
        env_file: paths.env_file.clone(),
    });
    Ok(steps)
}

/// What uninstalling does: stop, unload, remove the file.
pub(super) fn uninstall_steps(platform: Platform, file: &Path, uid: u32) -> Vec<Step> {
    match platform {
        Platform::Linux => vec![
            Step::Run { argv: argv(&["systemctl", "--user", "disable", "--now", UNIT_NAME]), may_fail: true },
            Step::Remove(file.to_owned()),
            run(&["systemctl", "--user", "daemon-reload"]),
        ],
        Platform::Macos => vec![
            Step::Run {
                argv: vec!["launchctl".into(), "bootout".into(), format!("gui/{uid}/{LAUNCHD_LABEL}")],
                may_fail: true,
            },
            Step::Remove(file.to_owned()),
        ],
    }
}

/// The systemd user unit. Paths are written as systemd reads them: `%`
/// doubled everywhere, and `ExecStart`'s words quoted when they need it.
pub(super) fn systemd_unit(paths: &ServicePaths) -> anyhow::Result<String> {
    for path in [&paths.binary, &paths.env_file, &paths.working_dir, &paths.home] {
        let text = path_string(path);
        if text.contains(['\n', '\r']) || text.trim() != text {
            bail!("{text:?} cannot be written in a systemd unit (a line break, or spaces at an end)");
        }
    }
    let exec = [path_string(&paths.binary), "daemon".into(), "--env-file".into(), path_string(&paths.env_file)]
        .iter()
        .map(|word| systemd_word(word))
        .collect::<Vec<_>>()
        .join(" ");
    Ok(format!(
        "# This node's agentmesh controller, written by `meshctl install-service`.\n\
         # `meshctl uninstall-service` removes it; logs: journalctl --user -u {UNIT_NAME}\n\
         [Unit]\n\
         Description=agentmesh controller (meshctl daemon)\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         WorkingDirectory={}\n\
         # The daemon reads its .env itself (--env-file): loaded here, its keys would\n\
         # reach every Service's environment.\n\
         ExecStart={exec}\n\
         # SIGHUP: the daemon reads its .env and the manifests again (`systemctl --user reload`).\n\
         ExecReload=/bin/kill -HUP $MAINPID\n\
         # The PATH the daemon and its Services find programs on (`meshctl doctor` checks them).\n\
         Environment={path}\n\
         Restart=on-failure\n\
         RestartSec=5\n\
         StandardOutput=journal\n\
         StandardError=journal\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n",
        systemd_specifiers(&path_string(&paths.working_dir)),
        path = systemd_assignment(&format!("PATH={}", service_path(Platform::Linux, &paths.binary, &paths.home))),
    ))
}

/// The open files a LaunchAgent may have, soft and hard: launchd's default
/// soft limit is 256, which a few hundred idle API connections exhaust; this is
/// `kern.maxfilesperproc`'s long-standing default.
const LAUNCHD_OPEN_FILES: u32 = 10_240;

/// The LaunchAgent property list. `ProcessType` `Interactive`: launchd
/// throttles the CPU and I/O of a `Standard` job, and this one serves the
/// agent.
pub(super) fn launchd_plist(paths: &ServicePaths) -> String {
    let log_dir = launchd_log_dir(&paths.home);
    let string = |value: &str| format!("<string>{}</string>", xml_escape(value));
    let arguments = [path_string(&paths.binary), "daemon".into(), "--env-file".into(), path_string(&paths.env_file)];
    let arguments: String = arguments.iter().map(|a| format!("\t\t{}\n", string(a))).collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         <!-- This node's agentmesh controller, written by `meshctl install-service`. -->\n\
         <plist version=\"1.0\">\n\
         <dict>\n\
         \t<key>Label</key>\n\
         \t{label}\n\
         \t<key>ProgramArguments</key>\n\
         \t<array>\n\
         {arguments}\
         \t</array>\n\
         \t<key>WorkingDirectory</key>\n\
         \t{working_dir}\n\
         \t<key>EnvironmentVariables</key>\n\
         \t<dict>\n\
         \t\t<key>PATH</key>\n\
         \t\t{path}\n\
         \t</dict>\n\
         \t<key>RunAtLoad</key>\n\
         \t<true/>\n\
         \t<key>KeepAlive</key>\n\
         \t<true/>\n\
         \t<key>ProcessType</key>\n\
         \t<string>Interactive</string>\n\
         \t<key>SoftResourceLimits</key>\n\
         \t<dict>\n\
         \t\t<key>NumberOfFiles</key>\n\
         \t\t<integer>{LAUNCHD_OPEN_FILES}</integer>\n\
         \t</dict>\n\
         \t<key>HardResourceLimits</key>\n\
         \t<dict>\n\
         \t\t<key>NumberOfFiles</key>\n\
         \t\t<integer>{LAUNCHD_OPEN_FILES}</integer>\n\
         \t</dict>\n\
         \t<key>StandardOutPath</key>\n\
         \t{stdout}\n\
         \t<key>StandardErrorPath</key>\n\
         \t{stderr}\n\
         </dict>\n\
         </plist>\n",
        label = string(LAUNCHD_LABEL),
        working_dir = string(&path_string(&paths.working_dir)),
        path = string(&service_path(Platform::Macos, &paths.binary, &paths.home)),
        stdout = string(&path_string(&log_dir.join(LAUNCHD_STDOUT))),
        stderr = string(&path_string(&log_dir.join(LAUNCHD_STDERR))),
    )
}

/// The LaunchAgent's output files, in [`launchd_log_dir`].
const LAUNCHD_STDOUT: &str = "meshctl.log";
const LAUNCHD_STDERR: &str = "meshctl.err.log";

/// `&`, `<`, `>`, `"` and `'` as XML entities.
pub(super) fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A value with systemd's specifiers (`%x`) made literal.
fn systemd_specifiers(text: &str) -> String {
    text.replace('%', "%%")
}

/// An `Environment=` assignment: specifiers made literal, and quoted (C
/// escapes inside) when it holds a space, a quote or a backslash.
fn systemd_assignment(assignment: &str) -> String {
    let text = systemd_specifiers(assignment);
    if !text.contains(|c: char| c.is_whitespace() || "\"'\\".contains(c)) {
        return text;
    }
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// One word of `ExecStart`: specifiers and `$` made literal, and quoted (C
/// escapes inside) when it holds a space, a quote or a backslash.
fn systemd_word(word: &str) -> String {
    let word = systemd_specifiers(word).replace('$', "$$");
    if !word.is_empty() && !word.contains(|c: char| c.is_whitespace() || "\"'\\;".contains(c)) {
        return word;
    }
    format!("\"{}\"", word.replace('\\', "\\\\").replace('"', "\\\""))
}

fn carry_out(steps: &[Step], dry_run: bool) -> anyhow::Result<()> {
    if dry_run {
        println!("Dry run: nothing is changed. Without --dry-run, meshctl would:");
        for step in steps {
            match step {
                Step::CreateDir(dir) => println!("create the folder {}", dir.display()),
                Step::Write { path, content } => println!("write {}:\n{content}", path.display()),
                Step::Remove(path) => println!("remove {}", path.display()),
                Step::Run { argv, may_fail } => {
                    let note = if *may_fail { "  (a failure means it was not loaded and is ignored)" } else { "" };
                    println!("run: {}{note}", shell_words(argv));
                }
                Step::AwaitHealth { api, node, within, .. } => println!(
                    "wait until {node}'s daemon answers http://{api}/mesh/health (up to {}), then print `meshctl doctor`'s summary",
                    humantime::format_duration(*within)
                ),
            }
        }
        return Ok(());
    }
    for step in steps {
        match step {
            Step::CreateDir(dir) => {
                std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            }
            Step::Write { path, content } => {
                if std::fs::read_to_string(path).is_ok_and(|old| &old == content) {
                    println!("{} is up to date", path.display());
                } else {
                    std::fs::write(path, content).with_context(|| format!("cannot write {}", path.display()))?;
                    println!("wrote {}", path.display());
                }
            }
            Step::Remove(path) => {
                std::fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display()))?;
                println!("removed {}", path.display());
            }
            Step::Run { argv, may_fail } => {
                println!("running: {}", shell_words(argv));
                let status = Command::new(&argv[0])
                    .args(&argv[1..])
                    .status()
                    .with_context(|| format!("cannot run {}", argv[0]))?;
                if !status.success() && !may_fail {
                    return Err(anyhow!("`{}` failed ({status})", shell_words(argv)));
                }
            }
            Step::AwaitHealth { api, node, within, env_file } => {
                let runtime = super::runtime()?;
                let took = runtime.block_on(await_health(*api, node, *within))?;
                println!("{node}'s daemon answers at http://{api} (after {})", whole_ms(took));
                print!("{}", runtime.block_on(super::doctor::summary(env_file)));
            }
        }
    }
    Ok(())
}

/// How often the installer asks the daemon for its health while it starts.
const HEALTH_POLL: Duration = Duration::from_millis(100);

/// Waits until `node`'s daemon answers its health at `api`; how long it took.
async fn await_health(api: SocketAddr, node: &str, within: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let client = ApiClient::new(&api.to_string(), None, HEALTH_POLL.max(Duration::from_secs(1)));
    loop {
        let problem = match client.health().await {
            Ok(health) if health.node == node => return Ok(started.elapsed()),
            Ok(health) => format!("it answers as Node {}, not {node}", health.node),
            Err(error) => error.to_string(),
        };
        if started.elapsed() >= within {
            bail!(
                "the service is installed, but {node}'s daemon does not answer http://{api}/mesh/health after {}: {problem}; \
                 `meshctl service status` and `meshctl service logs` show why",
                humantime::format_duration(within)
            );
        }
        tokio::time::sleep(HEALTH_POLL).await;
    }
}

/// A duration to the millisecond, `1.234s`.
fn whole_ms(duration: Duration) -> String {
    humantime::format_duration(Duration::from_millis(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)))
        .to_string()
}

fn manager_hint(platform: Platform) -> &'static str {
    match platform {
        Platform::Linux => {
            "logs: meshctl service logs (the user journal); to keep it running while logged out: loginctl enable-linger"
        }
        Platform::Macos => "logs: meshctl service logs (~/Library/Logs/agentmesh)",
    }
}

fn run(words: &[&str]) -> Step {
    Step::Run { argv: argv(words), may_fail: false }
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

/// A command as a shell reads it back: words with anything but plain
/// characters single-quoted.
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|word| {
            if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c)) {
                word.clone()
            } else {
                format!("'{}'", word.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn path_string(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn home() -> anyhow::Result<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .filter(|h| h.is_absolute())
        .ok_or_else(|| anyhow!("HOME is not set to an absolute path"))
}

fn uid() -> u32 {
    crate::sys::getuid()
}

/// A binary under a Cargo `target/` folder moves or disappears with the next build.
fn is_build_output(binary: &Path) -> bool {
    let components: Vec<OsString> = binary.components().map(|c| c.as_os_str().to_owned()).collect();
    components.windows(2).any(|w| w[0] == "target" && (w[1] == "debug" || w[1] == "release"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths() -> ServicePaths {
        ServicePaths {
            binary: "/opt/agent mesh/bin/meshctl".into(),
            env_file: "/home/al%ice/my node/.env".into(),
            working_dir: "/home/al%ice/my node".into(),
            home: "/home/al%ice".into(),
        }
    }

    #[test]
    fn the_unit_quotes_exec_words_and_doubles_percent_signs() {
        let unit = systemd_unit(&paths()).expect("unit");
        assert!(unit.contains("WorkingDirectory=/home/al%%ice/my node\n"), "{unit}");
        assert!(!unit.contains("EnvironmentFile"), "the daemon reads .env itself: {unit}");
        assert!(
            unit.contains(
                "ExecStart=\"/opt/agent mesh/bin/meshctl\" daemon --env-file \"/home/al%%ice/my node/.env\"\n"
            ),
            "{unit}"
        );
    }

    #[test]
    fn exec_words_escape_quotes_backslashes_and_dollars() {
        assert_eq!(systemd_word("/usr/bin/meshctl"), "/usr/bin/meshctl");
        assert_eq!(systemd_word("/a\"b\\c"), "\"/a\\\"b\\\\c\"");
        assert_eq!(systemd_word("/a$HOME"), "/a$$HOME");
    }

    #[test]
    fn a_path_with_a_line_break_is_refused() {
        let mut paths = paths();
        paths.binary = "/opt/x\nExecStartPre=/bin/evil".into();
        assert!(systemd_unit(&paths).is_err());
    }

    #[test]
    fn the_plist_escapes_xml() {
        let mut paths = paths();
        paths.working_dir = "/Users/a&b <c>".into();
        let plist = launchd_plist(&paths);
        assert!(plist.contains("<string>/Users/a&amp;b &lt;c&gt;</string>"), "{plist}");
        assert!(plist.contains("<string>/opt/agent mesh/bin:/opt/homebrew/bin:/usr/local/bin:"), "{plist}");
    }

    fn daemon() -> ServiceDaemon {
        ServiceDaemon { node: "laptop".into(), api: "127.0.0.1:8000".parse().unwrap() }
    }

    fn steps(platform: Platform, previous: Option<&str>) -> Vec<Step> {
        install_steps(platform, &paths(), &daemon(), Duration::from_secs(15), previous, 501).expect("steps")
    }

    /// The steps before the wait for the daemon's health, which is always last.
    fn before_the_wait(mut steps: Vec<Step>) -> Vec<Step> {
        let wait = Step::AwaitHealth {
            api: daemon().api,
            node: "laptop".into(),
            within: Duration::from_secs(15),
            env_file: paths().env_file,
        };
        assert_eq!(steps.pop(), Some(wait));
        steps
    }

    #[test]
    fn reinstalling_a_changed_unit_restarts_it_and_a_launch_agent_is_booted_out_first() {
        let linux = before_the_wait(steps(Platform::Linux, Some("old")));
        assert_eq!(linux.last(), Some(&run(&["systemctl", "--user", "restart", UNIT_NAME])));
        let unchanged = systemd_unit(&paths()).expect("unit");
        let linux = before_the_wait(steps(Platform::Linux, Some(&unchanged)));
        assert_eq!(linux.last(), Some(&run(&["systemctl", "--user", "enable", "--now", UNIT_NAME])));
        let mac = before_the_wait(steps(Platform::Macos, Some("old")));
        assert!(mac.contains(&Step::Run {
            argv: argv(&["launchctl", "bootout", "gui/501/dev.agentmesh.meshctl"]),
            may_fail: true
        }));
    }

    #[test]
    fn every_install_ends_waiting_for_the_daemons_health() {
        for platform in [Platform::Linux, Platform::Macos] {
            for previous in [None, Some("old")] {
                let steps = before_the_wait(steps(platform, previous));
                assert!(!steps.iter().any(|step| matches!(step, Step::AwaitHealth { .. })), "{steps:?}");
            }
        }
    }

    #[test]
    fn the_unit_reloads_with_sighup_and_sets_the_path_it_gives_services() {
        let unit = systemd_unit(&paths()).expect("unit");
        assert!(unit.contains("\nExecReload=/bin/kill -HUP $MAINPID\n"), "{unit}");
        let path = "\"PATH=/opt/agent mesh/bin:/home/al%%ice/.local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"";
        assert!(unit.contains(&format!("\nEnvironment={path}\n")), "{unit}");
    }

    #[test]
    fn environment_assignments_are_quoted_only_when_they_must_be() {
        assert_eq!(systemd_assignment("PATH=/usr/bin:/bin"), "PATH=/usr/bin:/bin");
        assert_eq!(systemd_assignment("PATH=/a b:/c%d"), "\"PATH=/a b:/c%%d\"");
        assert_eq!(systemd_assignment("PATH=/a\"b\\c"), "\"PATH=/a\\\"b\\\\c\"");
    }

    #[test]
    fn each_service_verb_is_the_service_managers_own_command() {
        let home = Path::new("/Users/al");
        let logs = |follow, lines| ServiceAction::Logs { follow, lines };
        let table: [(Platform, ServiceAction, &str); 8] = [
            (Platform::Linux, ServiceAction::Status, "systemctl --user status --no-pager agentmesh.service"),
            (Platform::Linux, ServiceAction::Restart, "systemctl --user restart agentmesh.service"),
            (Platform::Linux, logs(false, 100), "journalctl --user -u agentmesh.service --no-pager -n 100"),
            (Platform::Linux, logs(true, 5), "journalctl --user -u agentmesh.service --no-pager -n 5 -f"),
            (Platform::Macos, ServiceAction::Status, "launchctl print gui/501/dev.agentmesh.meshctl"),
            (Platform::Macos, ServiceAction::Restart, "launchctl kickstart -k gui/501/dev.agentmesh.meshctl"),
            (
                Platform::Macos,
                logs(false, 100),
                "tail -n 100 /Users/al/Library/Logs/agentmesh/meshctl.log /Users/al/Library/Logs/agentmesh/meshctl.err.log",
            ),
            (
                Platform::Macos,
                logs(true, 20),
                "tail -n 20 -F /Users/al/Library/Logs/agentmesh/meshctl.log /Users/al/Library/Logs/agentmesh/meshctl.err.log",
            ),
        ];
        for (platform, action, expected) in table {
            assert_eq!(manager_argv(platform, &action, 501, home).join(" "), expected, "{platform:?} {action:?}");
        }
    }

    #[test]
    fn build_outputs_are_recognised() {
        assert!(is_build_output(Path::new("/src/agentmesh/target/debug/meshctl")));
        assert!(!is_build_output(Path::new("/home/a/.cargo/bin/meshctl")));
    }
}
