//! The one harness of `meshctl daemon`: a daemon in a temporary workspace of
//! its own (folder, loopback port, state folder, log file), what the tests ask
//! of it through the real CLI and API, and what they look at in `/proc`; and
//! meshes of several daemons, each on its own loopback address (Linux routes
//! all of 127.0.0.0/8 to `lo`, so the same port on 127.0.0.2 and 127.0.0.3 are
//! two machines). Every wait is a bounded poll. The daemon tests are Linux
//! only: elsewhere this compiles for the tests that are not.
#![cfg_attr(not(target_os = "linux"), allow(dead_code, unused_imports, reason = "the daemon tests run on Linux only"))]

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::support::Run;
use crate::support::wait::eventually_async;
pub(crate) use crate::support::wait::{eventually, eventually_within};

/// `AGENT_NODE_ID` of every test daemon, and the one Node of their manifests.
pub(crate) const NODE: &str = "test-node";

const POLL: Duration = Duration::from_millis(50);

/// How long a daemon gets to stop after SIGTERM before the fixture kills it.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A loopback port nothing listens on (the OS picks it; the listener is closed
/// before the port is handed out).
pub(crate) fn free_port() -> u16 {
    free_port_on(Ipv4Addr::LOCALHOST)
}

/// A port nothing listens on at `ip` (any 127/8 address is loopback on Linux).
pub(crate) fn free_port_on(ip: Ipv4Addr) -> u16 {
    TcpListener::bind((ip, 0)).expect("bind a free port").local_addr().expect("an address").port()
}

/// The status code of `GET http://127.0.0.1:port/path`, or None when nothing
/// answers. HTTP/1.0, so the server closes the connection after its answer.
pub(crate) fn http_get(port: u16, path: &str) -> Option<u16> {
    http_get_at(Ipv4Addr::LOCALHOST, port, path)
}

/// The status code of `GET http://ip:port/path`, as [`http_get`].
pub(crate) fn http_get_at(ip: Ipv4Addr, port: u16, path: &str) -> Option<u16> {
    let address = SocketAddr::from((ip, port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.split_whitespace().nth(1)?.parse().ok()
}

/// `python3 -m http.server` on `ip:port`: a capability's endpoint on one
/// node. Killed when dropped.
pub(crate) struct Endpoint(Child);

impl Endpoint {
    pub(crate) fn start(ip: Ipv4Addr, port: u16) -> Endpoint {
        let child = Command::new(python())
            .args(["-m", "http.server", &port.to_string(), "--bind", &ip.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m http.server starts");
        let endpoint = Endpoint(child);
        eventually(&format!("the endpoint on {ip}:{port} answers"), || {
            (http_get_at(ip, port, "/") == Some(200)).then_some(())
        });
        endpoint
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port free on every address of `ips`, so the endpoints of one Capability
/// on several nodes share it as its `endpoint.port`.
pub(crate) fn port_free_on_all(ips: &[Ipv4Addr]) -> u16 {
    eventually("a port free on every address", || {
        let port = free_port_on(ips[0]);
        ips[1..].iter().all(|ip| TcpListener::bind((*ip, port)).is_ok()).then_some(port)
    })
}

/// Sends `signal` to the process `pid`, which must exist.
pub(crate) fn kill(pid: u32, signal: libc::c_int) {
    let target = libc::pid_t::try_from(pid).expect("a pid fits pid_t");
    // SAFETY: kill takes plain integers and touches no memory.
    assert_eq!(unsafe { libc::kill(target, signal) }, 0, "signal {signal} to process {pid}");
}

/// Stops `pid` (SIGSTOP) and returns once every thread of it is stopped.
/// `kill` returning is not enough: the kernel stops the other threads only
/// after one of them takes the signal, and on a busy machine a thread that
/// is running goes on for milliseconds, long enough to answer a request.
pub(crate) fn stop(pid: u32) {
    kill(pid, libc::SIGSTOP);
    let stopped = |task: std::fs::DirEntry| {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        stat.rfind(')').is_none_or(|end| stat[end + 1..].trim_start().starts_with(['T', 't']))
    };
    eventually(&format!("every thread of process {pid} is stopped"), || {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
        tasks.flatten().all(stopped).then_some(())
    });
}

/// Whether `pid` has ended: gone, or a zombie that nobody reaped yet (a child
/// of a killed daemon is reparented to init, which may take its time).
pub(crate) fn is_dead(pid: u32) -> bool {
    process_state(pid).is_none_or(|state| matches!(state, 'Z' | 'X'))
}

/// The state letter of `/proc/PID/stat` (`R`, `S`, `Z`…), None when there is no
/// such process. The command name may hold spaces: the state follows its `)`.
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// A word no other process has on its command line, to count the processes a
/// test started wherever they ended up in the process tree.
pub(crate) struct Marker(String);

impl Marker {
    pub(crate) fn new(name: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        Marker(format!("agentmesh-test-{name}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The live (not zombie) processes with this word as one of their arguments.
    pub(crate) fn processes(&self) -> Vec<u32> {
        let entries = std::fs::read_dir("/proc").expect("read /proc");
        let pids = entries.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok());
        pids.filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            cmdline.split(|byte| *byte == 0).any(|arg| arg == self.0.as_bytes()) && !is_dead(*pid)
        })
        .collect()
    }
}

// --- manifests -------------------------------------------------------------------

/// The Python interpreter `python3` stands for. Services run it directly: a
/// version manager's shim (pyenv) in front of it runs helper processes with the
/// same arguments, which would count as the Service's own.
pub(crate) fn python() -> &'static str {
    static PYTHON: OnceLock<String> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let output =
            Command::new("python3").args(["-c", "import sys; print(sys.executable)"]).output().expect("python3 runs");
        assert!(output.status.success(), "python3 names its interpreter");
        String::from_utf8(output.stdout).expect("a UTF-8 path").trim().to_owned()
    })
}

/// The Node the daemons run as, at 127.0.0.1 (where health checks go).
pub(crate) fn node() -> String {
    format!(
        "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata:\n  name: {NODE}\nspec:\n  role: primary\n  address: 127.0.0.1\n"
    )
}

/// A Service on this node running `command`; `more` is added to its spec as is
/// (two-space indented lines).
pub(crate) fn service(name: &str, command: &[&str], more: &str) -> String {
    let command = serde_json::to_string(command).expect("a command serializes");
    format!(
        "apiVersion: agentmesh/v1alpha1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  nodes: [{NODE}]\n  command: {command}\n{more}"
    )
}

/// A plain process that runs until stopped.
pub(crate) fn sleeper(name: &str) -> String {
    service(name, &["sleep", "1000"], "")
}

/// An HTTP server on `port`, Ready once it answers; quick to restart after a
/// crash.
pub(crate) fn web(name: &str, port: u16) -> String {
    let port = port.to_string();
    let more = format!(
        "  healthCheck:\n    http: {{port: {port}, path: /}}\n    interval: 200ms\n  backoff: {{initial: 100ms, max: 1s}}\n"
    );
    service(name, &[python(), "-m", "http.server", &port, "--bind", "127.0.0.1"], &more)
}

// --- the daemon ------------------------------------------------------------------

/// A workspace to fill before the daemon starts.
pub(crate) struct Builder {
    dir: TempDir,
    settings: Vec<(String, String)>,
    node: String,
    ip: Ipv4Addr,
    port: Option<u16>,
    netns: Option<String>,
    with_key: bool,
    process_env: Vec<(String, String)>,
    soft_descriptor_limit: Option<u64>,
}

impl Builder {
    /// Writes `text` to `relative` in the workspace (folders are created).
    pub(crate) fn file(self, relative: &str, text: &str) -> Self {
        write_file(&self.dir.path().join(relative), text);
        self
    }

    /// Adds `NAME=value` to the workspace's `.env`.
    pub(crate) fn setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Follows the Git remote `remote` (`MESH_GIT_REMOTE`), fetched every
    /// `interval` (`MESH_GIT_INTERVAL`, e.g. `1s`).
    pub(crate) fn git(self, remote: &str, interval: &str) -> Self {
        self.setting("MESH_GIT_REMOTE", remote).setting("MESH_GIT_INTERVAL", interval)
    }

    /// Sets `NAME=value` in the daemon's process environment (as a service
    /// manager would), where it wins over `.env`.
    pub(crate) fn process_env(mut self, name: &str, value: &str) -> Self {
        self.process_env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Runs the daemon as Node `node`, listening on `ip:port` (else it is
    /// [`NODE`] on a free port of 127.0.0.1): for meshes of several daemons.
    pub(crate) fn at(mut self, node: &str, ip: Ipv4Addr, port: u16) -> Self {
        node.clone_into(&mut self.node);
        self.ip = ip;
        self.port = Some(port);
        self
    }

    /// The workspace folder (the daemon's HOME).
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Leaves `MESH_API_KEY` out of `.env`: callers get in by Tailscale identity.
    pub(crate) fn without_api_key(mut self) -> Self {
        self.with_key = false;
        self
    }

    /// Starts the daemon with this soft limit on open descriptors (the hard one
    /// unchanged), as a service manager's default would.
    pub(crate) fn soft_descriptor_limit(mut self, soft: u64) -> Self {
        self.soft_descriptor_limit = Some(soft);
        self
    }

    /// Runs the daemon, and every `meshctl` of the test, in the network
    /// namespace `name` (which the test created), through `ip netns exec`.
    pub(crate) fn netns(mut self, name: &str) -> Self {
        self.netns = Some(name.to_owned());
        self
    }

    /// Writes `.env` and starts the daemon; returns once its API answers.
    pub(crate) fn start(self) -> Daemon {
        let (node, ip) = (self.node, self.ip);
        let port = self.port.unwrap_or_else(|| free_port_on(ip));
        let state = self.dir.path().join("state");
        let mut env = format!("AGENT_NODE_ID={node}\nMESH_LISTEN={ip}:{port}\nMESH_STATE_DIR={}\n", state.display());
        if self.with_key {
            env.push_str(&format!("MESH_API_KEY={}\n", Daemon::KEY));
        }
        for (name, value) in &self.settings {
            env.push_str(&format!("{name}={value}\n"));
        }
        write_file(&self.dir.path().join(".env"), &env);
        let log = self.dir.path().join("daemon.log");
        let mut daemon = Daemon {
            dir: self.dir,
            ip,
            port,
            log,
            child: None,
            netns: self.netns,
            process_env: self.process_env,
            soft_descriptor_limit: self.soft_descriptor_limit,
        };
        daemon.restart();
        daemon
    }
}

/// `meshctl daemon` running in its workspace, reading the workspace's `.env`.
/// Dropping it stops the daemon (SIGTERM, SIGKILL after a few seconds), and
/// prints its log when the test is failing.
pub(crate) struct Daemon {
    dir: TempDir,
    ip: Ipv4Addr,
    port: u16,
    log: PathBuf,
    child: Option<Child>,
    netns: Option<String>,
    process_env: Vec<(String, String)>,
    soft_descriptor_limit: Option<u64>,
}

impl Daemon {
    pub(crate) const KEY: &str = "test-key-3f9a";

    /// An empty workspace with `manifests/node.yaml`.
    pub(crate) fn builder() -> Builder {
        let builder = Builder {
            dir: tempfile::tempdir().expect("temp dir"),
            settings: Vec::new(),
            node: NODE.to_owned(),
            ip: Ipv4Addr::LOCALHOST,
            port: None,
            netns: None,
            with_key: true,
            process_env: Vec::new(),
            soft_descriptor_limit: None,
        };
        builder.file("manifests/node.yaml", &node())
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Starts the daemon on a workspace the test set up as a user does, with
    /// `meshctl init` (see [`meshctl_in`]): its `.env` is kept as written, and
    /// must listen on `ip:port`. Returns once its API answers.
    pub(crate) fn start_in(dir: TempDir, ip: Ipv4Addr, port: u16) -> Daemon {
        let log = dir.path().join("daemon.log");
        let mut daemon = Daemon {
            dir,
            ip,
            port,
            log,
            child: None,
            netns: None,
            process_env: Vec::new(),
            soft_descriptor_limit: None,
        };
        daemon.restart();
        daemon
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The daemon's log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the daemon with SIGKILL, as a crash or a lost machine would.
    pub(crate) fn kill(&mut self) {
        let mut child = self.child.take().expect("the daemon runs");
        child.kill().expect("kill the daemon");
        child.wait().expect("reap the daemon");
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("the daemon runs").id()
    }

    /// Starts the daemon (again, after it exited) on the same workspace, port
    /// and state; returns once its API answers.
    pub(crate) fn restart(&mut self) {
        assert!(self.child.is_none(), "the daemon is still running");
        let log = File::options().create(true).append(true).open(&self.log).expect("open the daemon log");
        let mut command = self.command();
        command.arg("daemon").stdout(log.try_clone().expect("clone the log handle")).stderr(log);
        if let Some(soft) = self.soft_descriptor_limit {
            lower_soft_descriptor_limit(&mut command, soft);
        }
        let child = command.spawn().expect("meshctl daemon starts");
        self.child = Some(child);
        eventually("the daemon's API answers", || {
            if let Some(exit) = self.child.as_mut().and_then(|child| child.try_wait().expect("try_wait")) {
                panic!("the daemon exited at start with {exit}");
            }
            let (ip, port) = (self.ip, self.port);
            (self.in_netns(move || http_get_at(ip, port, "/mesh/health")) == Some(200)).then_some(())
        });
    }

    /// Writes (or replaces) a file of the workspace, e.g. a manifest.
    pub(crate) fn write(&self, relative: &str, text: &str) {
        write_file(&self.dir.path().join(relative), text);
    }

    pub(crate) fn remove(&self, relative: &str) {
        std::fs::remove_file(self.dir.path().join(relative)).expect("remove the file");
    }

    /// Runs `meshctl args…` in the workspace, as a user there would.
    pub(crate) fn meshctl(&self, args: &[&str]) -> Run {
        self.meshctl_from(self.dir.path(), &[], args)
    }

    /// Runs `meshctl args…` in the folder `dir`, with `env` added to the
    /// workspace's clean environment: the user elsewhere on the machine.
    pub(crate) fn meshctl_from(&self, dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Run {
        let mut command = self.command();
        command.current_dir(dir).envs(env.iter().copied());
        command.args(args).output().expect("meshctl runs").into()
    }

    /// `GET path` of the daemon's API with the key; the answer's JSON.
    pub(crate) fn api_get(&self, path: &str) -> Option<Value> {
        let (ip, port, path) = (self.ip, self.port, path.to_owned());
        self.in_netns(move || api_get_at(ip, port, &path))
    }

    /// Runs `work` on a thread in the daemon's network namespace, if it has one
    /// (a thread's namespace is its own: the test's other threads stay put).
    fn in_netns<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> T {
        let Some(netns) = self.netns.clone() else { return work() };
        let thread = std::thread::spawn(move || {
            enter_netns(&netns);
            work()
        });
        thread.join().expect("the thread in the network namespace")
    }

    /// The daemon's API address.
    pub(crate) fn api(&self) -> SocketAddr {
        SocketAddr::from((self.ip, self.port))
    }

    /// `http://ip:port{path}` of the daemon's API.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.api())
    }

    /// Waits until the daemon has a set in force (its health names a revision).
    pub(crate) async fn ready(&self) {
        let (http, url) = (http(), self.url("/mesh/health"));
        eventually_async(&format!("the daemon at {} has a set in force", self.api()), || async {
            let body: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
            body["revision"].is_string().then_some(())
        })
        .await;
    }

    /// Waits until this daemon places `capability` on `node`: a daemon that
    /// started before its peer saw it down for a moment, and places the
    /// capability on the next node until its recheck.
    pub(crate) async fn served_by(&self, capability: &str, node: &str) {
        let (http, url) = (http(), self.url(&format!("/api/v1/objects/Capability/{capability}")));
        eventually_async(&format!("{} places {capability} on {node}", self.api()), || async {
            let object: Value = http.get(&url).bearer_auth(Daemon::KEY).send().await.ok()?.json().await.ok()?;
            (object["status"]["details"]["servedBy"] == node).then_some(())
        })
        .await;
    }

    /// Waits until this daemon's prober has seen `peer` answer: one that
    /// started first saw its peer down for a moment, and skips a node known
    /// to be down until then.
    pub(crate) async fn sees_online(&self, peer: &str) {
        let (http, url) = (http(), self.url("/api/v1/mesh"));
        eventually_async(&format!("{} sees {peer} online", self.api()), || async {
            let mesh: Value = http.get(&url).bearer_auth(Daemon::KEY).send().await.ok()?.json().await.ok()?;
            let nodes = mesh.as_array()?;
            nodes.iter().any(|n| n["name"] == peer && n["online"] == true).then_some(())
        })
        .await;
    }

    /// `node`'s entry in this daemon's `GET /api/v1/mesh`, asked of its API
    /// alone (in its network namespace, if it has one).
    pub(crate) fn view_of(&self, node: &str) -> Option<Value> {
        self.api_get("/api/v1/mesh")?.as_array()?.iter().find(|view| view["name"] == node).cloned()
    }

    /// Waits until this daemon's view shows `peer` online; returns that view.
    pub(crate) fn wait_until_sees_online(&self, peer: &str) -> Value {
        self.wait_for_view(&format!("{} sees {peer} online", self.api()), peer, true)
    }

    /// Waits until this daemon's view shows `peer` offline; returns that view.
    pub(crate) fn wait_until_sees_offline(&self, peer: &str) -> Value {
        self.wait_for_view(&format!("{} sees {peer} offline", self.api()), peer, false)
    }

    fn wait_for_view(&self, what: &str, peer: &str, online: bool) -> Value {
        eventually(what, || self.view_of(peer).filter(|view| view["online"] == online))
    }

    /// Runs `meshctl args…` in the workspace as [`Daemon::meshctl`] does, but
    /// kills it and returns None if it has not ended within `patience`.
    pub(crate) fn meshctl_within(&self, patience: Duration, args: &[&str]) -> Option<Run> {
        let mut child =
            self.command().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("meshctl starts");
        let deadline = Instant::now() + patience;
        while child.try_wait().expect("try_wait").is_none() {
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(POLL);
        }
        Some(child.wait_with_output().expect("meshctl's output").into())
    }

    /// Starts `meshctl args…` in the workspace with its stdout piped, for a
    /// command that runs until stopped (`events -f`).
    pub(crate) fn meshctl_spawn(&self, args: &[&str]) -> Child {
        self.command().args(args).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("meshctl starts")
    }

    /// Starts `meshctl args…` in the workspace, a command that prints until
    /// stopped (`events -f`, `status -w`), and reads what it prints line by line.
    pub(crate) fn meshctl_follow(&self, args: &[&str]) -> Following {
        Following::of(self.meshctl_spawn(args))
    }

    /// This node's entry of `meshctl status -o json`.
    pub(crate) fn status(&self) -> Value {
        let run = self.meshctl(&["status", "-o", "json"]);
        assert_eq!(run.code, 0, "{run:?}");
        let status: Value = serde_json::from_str(&run.stdout).expect("status -o json is JSON");
        status["nodes"][0].clone()
    }

    pub(crate) fn revision(&self) -> Option<String> {
        self.status()["revision"].as_str().map(str::to_owned)
    }

    /// The status of one object, None when the node does not list it.
    pub(crate) fn object(&self, kind: &str, name: &str) -> Option<Value> {
        object_in(&self.status(), kind, name)
    }

    /// Waits until the Service is Ready, and returns its pid.
    pub(crate) fn wait_until_ready(&self, service: &str) -> u32 {
        self.wait_for_service(&format!("Service/{service} is Ready"), service, |object| object["ready"] == true)
    }

    /// Waits until `check` holds for the Service's status, and returns its pid.
    pub(crate) fn wait_for_service(&self, what: &str, service: &str, check: impl Fn(&Value) -> bool) -> u32 {
        eventually(what, || {
            let object = self.object("Service", service).filter(&check)?;
            detail(&object, "pid")
        })
    }

    pub(crate) fn wait_for_revision(&self, revision: &str) {
        eventually(&format!("revision {revision} is applied"), || {
            (self.revision().as_deref() == Some(revision)).then_some(())
        });
    }

    pub(crate) fn signal(&self, signal: libc::c_int) {
        kill(self.pid(), signal);
    }

    /// Waits (bounded) for the daemon to exit, and reaps it.
    pub(crate) fn wait_for_exit(&mut self) -> ExitStatus {
        let child = self.child.as_mut().expect("the daemon was started");
        let exit = eventually("the daemon exits", || child.try_wait().expect("try_wait"));
        self.child = None;
        exit
    }

    /// The shell-free command line of `meshctl` in the workspace: a clean
    /// environment, so only the workspace's `.env` (and the builder's
    /// `process_env`) configures it.
    fn command(&self) -> Command {
        let meshctl = assert_cmd::cargo::cargo_bin("meshctl");
        let mut command = match &self.netns {
            None => Command::new(meshctl),
            Some(netns) => {
                let mut command = Command::new(ip_command());
                command.args(["netns", "exec", netns]).arg(meshctl);
                command
            }
        };
        in_workspace(&mut command, self.dir.path());
        command.envs(self.process_env.iter().map(|(name, value)| (name, value))).stdin(Stdio::null());
        command
    }
}

/// How long a followed `meshctl` may take to print the next line a test waits for.
pub(crate) const FOLLOW_PATIENCE: Duration = Duration::from_secs(20);

/// A `meshctl` that prints until stopped, its standard output read line by
/// line on a thread of its own. Dropping it kills and reaps the command.
pub(crate) struct Following {
    child: Child,
    lines: Receiver<String>,
}

impl Following {
    fn of(mut child: Child) -> Following {
        let (sender, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("a piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        Following { child, lines }
    }

    /// Reads lines until one satisfies `check`, each within [`FOLLOW_PATIENCE`];
    /// returns the lines read, that one last.
    pub(crate) fn until(&self, what: &str, check: impl Fn(&str) -> bool) -> Vec<String> {
        self.until_within(FOLLOW_PATIENCE, what, check)
    }

    /// [`Following::until`], each line within `patience`.
    pub(crate) fn until_within(&self, patience: Duration, what: &str, check: impl Fn(&str) -> bool) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let line =
                self.lines.recv_timeout(patience).unwrap_or_else(|_| panic!("no line with {what}; got {seen:#?}"));
            let done = check(&line);
            seen.push(line);
            if done {
                return seen;
            }
        }
    }

    /// Whether the command still runs.
    pub(crate) fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs in workspace `dir` with a clean environment (but `PATH`), `dir` as
/// HOME: only the workspace's files configure it.
fn in_workspace(command: &mut Command, dir: &Path) {
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("RUST_LOG", "info");
}

/// Starts `meshctl args…` in workspace `dir` as [`Daemon::meshctl`] runs it,
/// its standard streams piped: for a command that reads standard input
/// (`init --join -`) before there is a daemon.
pub(crate) fn meshctl_in(dir: &Path, args: &[&str]) -> Child {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin("meshctl"));
    in_workspace(&mut command, dir);
    command.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    command.spawn().expect("meshctl starts")
}

/// Writes `input` to the standard input of `child` (from [`meshctl_in`]),
/// closes it, and waits for what it printed.
pub(crate) fn finish(mut child: Child, input: &str) -> Run {
    let mut stdin = child.stdin.take().expect("a piped stdin");
    stdin.write_all(input.as_bytes()).expect("write to meshctl's stdin");
    drop(stdin);
    child.wait_with_output().expect("meshctl's output").into()
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(pid) = libc::pid_t::try_from(child.id()) {
                // SAFETY: kill takes plain integers and touches no memory.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let deadline = Instant::now() + STOP_GRACE;
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(POLL);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_else(|error| format!("(no log: {error})"));
            eprintln!("--- daemon log ({}) ---\n{log}--- end of daemon log ---", self.log.display());
        }
    }
}

/// Moves this thread into the network namespace `netns`.
#[cfg(target_os = "linux")]
fn enter_netns(netns: &str) {
    let file = File::open(format!("/var/run/netns/{netns}")).expect("open the network namespace");
    // SAFETY: setns takes an open descriptor and a flag; it moves only this thread.
    let entered = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
    assert_eq!(entered, 0, "enter network namespace {netns}: {}", std::io::Error::last_os_error());
}

#[cfg(not(target_os = "linux"))]
fn enter_netns(netns: &str) {
    panic!("network namespace {netns}: there are network namespaces on Linux only");
}

/// A client for the API on loopback, whatever proxy the environment names.
pub(crate) fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().expect("an HTTP client")
}

/// The same, giving each call at most 5 s: a test waits on its own terms.
pub(crate) fn http_within_5s() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build().expect("an HTTP client")
}

/// `llm`, an http Capability on port `endpoint_port` of each node, served
/// by the laptop, else the mini.
pub(crate) fn llm_on_laptop_then_mini(endpoint_port: u16) -> String {
    format!(
        "apiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {{name: llm}}\n\
         spec:\n  provider: http\n  placement: {{prefer: [laptop], fallback: [mini]}}\n  \
         endpoint: {{port: {endpoint_port}, path: /}}\n"
    )
}

// --- meshes of several daemons ---------------------------------------------------

/// The nodes of the mesh tests that name theirs by letter, and the loopback
/// address each runs on.
pub(crate) const A: &str = "node-a";
pub(crate) const B: &str = "node-b";
pub(crate) const C: &str = "node-c";
pub(crate) const IP_A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
pub(crate) const IP_B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
pub(crate) const IP_C: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);

/// The laptop's and the mini's addresses in the two-node tests.
pub(crate) const LAPTOP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
pub(crate) const MINI: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

/// Node `laptop` (primary, on [`LAPTOP`]) and node `mini` (satellite, on
/// [`MINI`]), each with its daemon, whose manifests are both Nodes, then
/// `objects`. Returns once both have a set in force.
pub(crate) async fn laptop_and_mini(objects: &str) -> (Daemon, Daemon) {
    let (laptop_api, mini_api) = (free_address(LAPTOP), free_address(MINI));
    let text = [node_manifest("laptop", "primary", laptop_api), node_manifest("mini", "satellite", mini_api)].concat();
    let [laptop, mini] = mesh_of([("laptop", laptop_api), ("mini", mini_api)], &(text + objects));
    laptop.ready().await;
    mini.ready().await;
    (laptop, mini)
}

/// One daemon per `(node, api)`, all with `manifests` as their manifests
/// (in place of the lone test Node). Returns once their APIs answer.
pub(crate) fn mesh_of<const N: usize>(nodes: [(&str, SocketAddr); N], manifests: &str) -> [Daemon; N] {
    nodes.map(|(node, api)| {
        let SocketAddr::V4(api) = api else { panic!("{api}: the test daemons listen on IPv4 loopback") };
        Daemon::builder().file("manifests/node.yaml", manifests).at(node, *api.ip(), api.port()).start()
    })
}

/// A free port on `ip`, as an address.
pub(crate) fn free_address(ip: Ipv4Addr) -> SocketAddr {
    SocketAddr::from((ip, free_port_on(ip)))
}

/// Two listeners on one port, one on each of `a` and `b`: the same endpoint
/// port on two nodes.
pub(crate) async fn same_port_on(a: Ipv4Addr, b: Ipv4Addr) -> (tokio::net::TcpListener, tokio::net::TcpListener) {
    loop {
        let first = tokio::net::TcpListener::bind((a, 0)).await.expect("bind a free port");
        if let Ok(second) = tokio::net::TcpListener::bind((b, first.local_addr().expect("an address").port())).await {
            return (first, second);
        }
    }
}

/// Two Node manifests, a primary and a satellite, each at its address and port.
pub(crate) fn two_nodes(primary: (&str, Ipv4Addr, u16), satellite: (&str, Ipv4Addr, u16)) -> String {
    let (a, b) = (primary, satellite);
    format!(
        "{}{}",
        node_manifest(a.0, "primary", (a.1, a.2).into()),
        node_manifest(b.0, "satellite", (b.1, b.2).into())
    )
}

/// `node`'s entry in `daemon`'s `meshctl status -o json`.
pub(crate) fn node_in_status(daemon: &Daemon, node: &str) -> Value {
    let run = daemon.meshctl(&["status", "-o", "json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let status: Value = serde_json::from_str(&run.stdout).expect("status -o json is JSON");
    let nodes = status["nodes"].as_array().expect("nodes");
    nodes.iter().find(|n| n["name"] == node).cloned().unwrap_or_else(|| panic!("{node} in {status}"))
}

/// A Node manifest for `name` at `api` (its address and `apiPort`), ending
/// with the document separator.
pub(crate) fn node_manifest(name: &str, role: &str, api: SocketAddr) -> String {
    format!(
        "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {{name: {name}}}\n\
         spec: {{role: {role}, address: {}, apiPort: {}}}\n---\n",
        api.ip(),
        api.port()
    )
}

/// Makes `command` start with the soft limit `soft` on open descriptors.
fn lower_soft_descriptor_limit(command: &mut Command, soft: u64) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: the closure runs between fork and exec and only calls
    // getrlimit and setrlimit, which are async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            limit.rlim_cur = soft.min(limit.rlim_max);
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// One object of a node's status.
pub(crate) fn object_in(node: &Value, kind: &str, name: &str) -> Option<Value> {
    let objects = node["objects"].as_array()?;
    objects.iter().find(|object| object["kind"] == kind && object["name"] == name).cloned()
}

/// A number of an object's `details` (`pid`, `restarts`).
pub(crate) fn detail(object: &Value, name: &str) -> Option<u32> {
    object["details"][name].as_str()?.parse().ok()
}

fn write_file(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("a parent folder")).expect("create folders");
    std::fs::write(path, text).expect("write the file");
}

/// `GET path` of the API at `ip:port` with the test key; the answer's JSON.
fn api_get_at(ip: Ipv4Addr, port: u16, path: &str) -> Option<Value> {
    let mut stream = TcpStream::connect_timeout(&SocketAddr::from((ip, port)), POLL * 20).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {ip}\r\nAuthorization: Bearer {}\r\n\r\n", Daemon::KEY);
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    serde_json::from_str(answer.split_once("\r\n\r\n")?.1).ok()
}

/// Runs `ip args…`, which must succeed.
pub(crate) fn ip(args: &[&str]) {
    let output = Command::new(ip_command()).args(args).output().unwrap_or_else(|error| {
        panic!("cannot run `ip` ({error}): this test needs iproute2 (apt-get install iproute2) and root")
    });
    assert!(
        output.status.success(),
        "`ip {}` failed: {}this test needs root and iproute2",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Two network namespaces joined by a veth pair (each with its own
/// loopback, as two machines), deleted (with the pair) when
/// dropped, even when the test panics.
pub(crate) struct Link {
    pub netns: [String; 2],
    veth: [String; 2],
    pub ips: [Ipv4Addr; 2],
}

impl Link {
    pub(crate) fn new() -> Link {
        let pid = std::process::id();
        let subnet = u8::try_from(pid % 250).expect("below 250");
        let link = Link {
            netns: [format!("am-a-{pid}"), format!("am-b-{pid}")],
            veth: [format!("am-va-{pid}"), format!("am-vb-{pid}")],
            ips: [Ipv4Addr::new(10, 213, subnet, 1), Ipv4Addr::new(10, 213, subnet, 2)],
        };
        for netns in &link.netns {
            ip(&["netns", "add", netns]);
        }
        let [va, vb] = &link.veth;
        ip(&["link", "add", va, "netns", &link.netns[0], "type", "veth", "peer", "name", vb, "netns", &link.netns[1]]);
        for side in 0..2 {
            let address = format!("{}/30", link.ips[side]);
            link.exec(side, &["ip", "addr", "add", &address, "dev", &link.veth[side]]);
            link.exec(side, &["ip", "link", "set", "lo", "up"]);
            link.set(side, true);
        }
        link
    }

    /// Runs `ip args…` in side `side`'s namespace.
    pub(crate) fn exec(&self, side: usize, args: &[&str]) {
        assert_eq!(args[0], "ip");
        let mut all = vec!["netns", "exec", &self.netns[side], ip_command()];
        all.extend(&args[1..]);
        ip(&all);
    }

    /// Brings side `side`'s end of the pair up or down.
    pub(crate) fn set(&self, side: usize, up: bool) {
        self.exec(side, &["ip", "link", "set", &self.veth[side], if up { "up" } else { "down" }]);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        for netns in &self.netns {
            let _ = Command::new(ip_command()).args(["netns", "del", netns]).output();
        }
    }
}

/// A network namespace with loopback up and nothing else, deleted on drop:
/// nothing a daemon in it dials (a name lookup included) leaves the machine.
pub(crate) struct Namespace(pub String);

impl Namespace {
    /// `<prefix>-<pid>`, so tests of one run do not collide.
    pub(crate) fn new(prefix: &str) -> Namespace {
        let name = format!("{prefix}-{}", std::process::id());
        ip(&["netns", "add", &name]);
        let namespace = Namespace(name);
        ip(&["netns", "exec", &namespace.0, ip_command(), "link", "set", "lo", "up"]);
        namespace
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new(ip_command()).args(["netns", "delete", &self.0]).status();
    }
}

/// `ip` of iproute2: `/usr/sbin/ip` where it is, else whatever PATH finds.
pub(crate) fn ip_command() -> &'static str {
    if Path::new("/usr/sbin/ip").exists() { "/usr/sbin/ip" } else { "ip" }
}
