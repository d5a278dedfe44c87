//! Two real Syncthings and real optimised daemons on loopback (node-a on
//! 127.0.0.2, node-b on 127.0.0.3), configured by manifests and keys only:
//! the fixture of the benches that need a mesh.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::netns::ip_command;

pub(crate) const KEY: &str = "bench-key";
pub(crate) const NODES: [(&str, Ipv4Addr); 2] =
    [("node-a", Ipv4Addr::new(127, 0, 0, 2)), ("node-b", Ipv4Addr::new(127, 0, 0, 3))];
/// The longest anything awaited may take before the bench gives up.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

/// Polls `check` every 10 ms until it gives a value; panics after [`PATIENCE`].
pub(crate) fn wait<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    wait_within(PATIENCE, what, check)
}

/// Polls `check` every 10 ms until it gives a value; panics after `patience`.
pub(crate) fn wait_within<T>(patience: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {patience:?} waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub(crate) fn free_port(ip: Ipv4Addr) -> u16 {
    TcpListener::bind((ip, 0)).expect("bind a free port").local_addr().expect("an address").port()
}

/// The body of a 200 answer to `GET path` at `ip:port`, with `headers`.
pub(crate) fn http_get(ip: Ipv4Addr, port: u16, path: &str, headers: &str) -> Option<String> {
    let (status, body) = http_exchange(ip, port, &format!("GET {path}"), headers, "", Duration::from_secs(5))?;
    (status == 200).then_some(body)
}

/// The status code of `POST path` (no body) at `ip:port`, with `headers`.
pub(crate) fn http_post(ip: Ipv4Addr, port: u16, path: &str, headers: &str) -> Option<u16> {
    http_exchange(ip, port, &format!("POST {path}"), headers, "", Duration::from_secs(30)).map(|(status, _)| status)
}

/// The status and body of one HTTP/1.0 exchange at `ip:port`: `request` is
/// the method and path, `body` is sent with its length; `None` when no
/// connection was made within a second or no whole answer came within `patience`.
pub(crate) fn http_exchange(
    ip: Ipv4Addr,
    port: u16,
    request: &str,
    headers: &str,
    body: &str,
    patience: Duration,
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&SocketAddr::from((ip, port)), Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(patience)).ok()?;
    let length = body.len();
    write!(stream, "{request} HTTP/1.0\r\nHost: {ip}\r\nContent-Length: {length}\r\n{headers}\r\n{body}").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    Some((head.split_whitespace().nth(1)?.parse().ok()?, body.to_owned()))
}

/// The two nodes of a bench: a Syncthing each, and a port for each daemon.
pub(crate) struct Mesh {
    pub syncthings: [Syncthing; 2],
    pub ports: [u16; 2],
}

impl Mesh {
    pub(crate) fn start() -> Mesh {
        Mesh { syncthings: [Syncthing::start("a"), Syncthing::start("b")], ports: NODES.map(|(_, ip)| free_port(ip)) }
    }

    /// The Node manifests of both nodes, each naming its Syncthing.
    pub(crate) fn nodes(&self) -> String {
        let mut nodes = String::new();
        for (((name, ip), port), syncthing) in NODES.iter().zip(self.ports).zip(&self.syncthings) {
            nodes.push_str(&format!(
                "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {{name: {name}}}\nspec:\n  role: satellite\n  \
                 address: {ip}\n  apiPort: {port}\n  syncthing:\n    apiUrl: http://127.0.0.1:{}\n    \
                 apiKey: {{env: SYNCTHING_API_KEY}}\n    deviceAddress: tcp://127.0.0.1:{}\n---\n",
                syncthing.gui_port, syncthing.listen_port
            ));
        }
        nodes
    }

    /// A daemon per node on `manifests`, returned once each sees the other online.
    pub(crate) fn start_daemons(&self, manifests: &str) -> Vec<Daemon> {
        let daemons: Vec<Daemon> = NODES
            .iter()
            .zip(self.ports)
            .zip(&self.syncthings)
            .map(|(((name, ip), port), syncthing)| Daemon::start(name, *ip, port, &syncthing.key, manifests))
            .collect();
        for (daemon, (peer, _)) in daemons.iter().zip(NODES.iter().rev()) {
            wait("the daemons see each other", || {
                let mesh: serde_json::Value = serde_json::from_str(&daemon.get("/api/v1/mesh")?).ok()?;
                mesh.as_array()?.iter().any(|node| node["name"] == *peer && node["online"] == true).then_some(())
            });
        }
        daemons
    }
}

/// `meshctl daemon` in a workspace of its own, in the bench's network
/// namespace or one it made; stopped (SIGTERM) when dropped.
pub(crate) struct Daemon {
    dir: TempDir,
    name: String,
    ip: Ipv4Addr,
    port: u16,
    netns: Option<String>,
    child: Child,
}

impl Daemon {
    /// Starts it on `manifests` (its `manifests/nodes.yaml`); returns once its API answers.
    pub(crate) fn start(name: &str, ip: Ipv4Addr, port: u16, syncthing_key: &str, manifests: &str) -> Daemon {
        Daemon::start_in(None, name, ip, port, syncthing_key, manifests)
    }

    /// As [`Daemon::start`], in network namespace `netns` when it is given
    /// (through `ip netns exec`, which execs the daemon: its pid is the daemon's).
    pub(crate) fn start_in(
        netns: Option<&str>,
        name: &str,
        ip: Ipv4Addr,
        port: u16,
        syncthing_key: &str,
        manifests: &str,
    ) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let env = format!(
            "AGENT_NODE_ID={name}\nMESH_LISTEN={ip}:{port}\nMESH_STATE_DIR={}\nMESH_API_KEY={KEY}\n\
             SYNCTHING_API_KEY={syncthing_key}\n",
            dir.path().join("state").display()
        );
        fs::write(dir.path().join(".env"), env).expect("write .env");
        fs::create_dir(dir.path().join("manifests")).expect("create manifests");
        fs::write(dir.path().join("manifests/nodes.yaml"), manifests).expect("write the Nodes");
        Daemon::launch(dir, netns, name, ip, port)
    }

    /// Runs it in `dir`, whose `.env` says the rest, listening on `ip:port`;
    /// returns once its API answers.
    pub(crate) fn run_in(dir: TempDir, name: &str, ip: Ipv4Addr, port: u16) -> Daemon {
        Daemon::launch(dir, None, name, ip, port)
    }

    fn launch(dir: TempDir, netns: Option<&str>, name: &str, ip: Ipv4Addr, port: u16) -> Daemon {
        let child = spawn_daemon(dir.path(), netns);
        let daemon = Daemon { dir, name: name.to_owned(), ip, port, netns: netns.map(str::to_owned), child };
        daemon.wait_until_answering();
        daemon
    }

    fn wait_until_answering(&self) {
        wait(&format!("{}'s API answers", self.name), || http_get(self.ip, self.port, "/mesh/health", ""));
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the daemon.
    pub(crate) fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill takes plain integers and touches no memory.
        assert_eq!(unsafe { libc::kill(self.child.id() as libc::pid_t, signal) }, 0, "signal {signal}");
    }

    /// Stops it as a service manager does: SIGTERM, then SIGKILL after 5 s
    /// (a daemon the bench SIGSTOPped is continued first);
    /// returns once it exited. Its workspace stays for [`Daemon::restart`].
    pub(crate) fn stop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill takes plain integers and touches no memory. SIGCONT
        // first, as a stopped process would not act on SIGTERM.
        unsafe { (libc::kill(pid, libc::SIGCONT), libc::kill(pid, libc::SIGTERM)) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the stopped daemon again in the same workspace, on the same
    /// address and port; returns once its API answers.
    pub(crate) fn restart(&mut self) {
        self.child = spawn_daemon(self.dir.path(), self.netns.as_deref());
        self.wait_until_answering();
    }

    pub(crate) fn get(&self, path: &str) -> Option<String> {
        http_get(self.ip, self.port, path, &format!("Authorization: Bearer {KEY}\r\n"))
    }

    /// The status and body of `request` (method and path) with the JSON
    /// `body` and the mesh key; `None` when no whole answer came within `patience`.
    pub(crate) fn call(&self, request: &str, body: &str, patience: Duration) -> Option<(u16, String)> {
        let headers = format!("Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n");
        http_exchange(self.ip, self.port, request, &headers, body, patience)
    }

    pub(crate) fn meshctl(&self, args: &[&str]) -> std::process::Output {
        command(self.dir.path()).args(args).output().expect("meshctl runs")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `meshctl daemon` in `workspace` (in network namespace `netns`, if given),
/// its output in the workspace's `daemon.log`.
fn spawn_daemon(workspace: &Path, netns: Option<&str>) -> Child {
    let log = OpenOptions::new().create(true).append(true).open(workspace.join("daemon.log")).expect("open the log");
    let mut daemon = command_in(workspace, netns);
    daemon
        .arg("daemon")
        .stdout(log.try_clone().expect("clone the log"))
        .stderr(log)
        .spawn()
        .expect("meshctl daemon starts")
}

/// The optimised `meshctl` in `workspace`, configured by its `.env` only.
pub(crate) fn command(workspace: &Path) -> Command {
    command_in(workspace, None)
}

/// [`command`], in network namespace `netns` when it is given.
fn command_in(workspace: &Path, netns: Option<&str>) -> Command {
    let meshctl = env!("CARGO_BIN_EXE_meshctl");
    let mut command = match netns {
        None => Command::new(meshctl),
        Some(netns) => {
            let mut command = Command::new(ip_command());
            command.args(["netns", "exec", netns, meshctl]);
            command
        }
    };
    command
        .current_dir(workspace)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", workspace)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    command
}

/// The installed `syncthing`, loopback only (no discovery, relays, NAT,
/// usage reports or upgrades), in a home of its own; killed when dropped.
pub(crate) struct Syncthing {
    _dir: TempDir,
    pub gui_port: u16,
    pub listen_port: u16,
    pub key: String,
    child: Child,
}

impl Syncthing {
    /// Has Syncthing scan `folder` now (it answers once the scan is done).
    pub(crate) fn scan(&self, folder: &str) {
        let headers = format!("X-API-Key: {}\r\n", self.key);
        let status = http_post(Ipv4Addr::LOCALHOST, self.gui_port, &format!("/rest/db/scan?folder={folder}"), &headers);
        assert_eq!(status, Some(200), "scan of {folder}");
    }

    pub(crate) fn start(name: &str) -> Syncthing {
        let dir = tempfile::Builder::new().prefix(&format!("bench-syncthing-{name}-")).tempdir().expect("temp dir");
        let home = dir.path().join("home");
        let version = Command::new("syncthing").arg("--version").output().expect("syncthing --version runs");
        let v2 =
            String::from_utf8_lossy(&version.stdout).split_whitespace().nth(1).is_some_and(|v| v.starts_with("v2"));
        let flags: &[&str] = if v2 { &["--no-port-probing"] } else { &["--no-default-folder", "--skip-port-probing"] };
        let generated = Command::new("syncthing")
            .arg("generate")
            .arg(format!("--home={}", home.display()))
            .args(flags)
            .env("STNODEFAULTFOLDER", "1")
            .output()
            .expect("syncthing generate runs");
        assert!(generated.status.success(), "syncthing generate: {}", String::from_utf8_lossy(&generated.stderr));

        let (gui_port, listen_port) = (free_port(Ipv4Addr::LOCALHOST), free_port(Ipv4Addr::LOCALHOST));
        let key = format!("bench-syncthing-key-{name}-{}", std::process::id());
        let config = home.join("config.xml");
        let mut xml = fs::read_to_string(&config).expect("read config.xml");
        for (element, value) in [
            ("listenAddress", format!("tcp://127.0.0.1:{listen_port}")),
            ("globalAnnounceEnabled", "false".into()),
            ("localAnnounceEnabled", "false".into()),
            ("relaysEnabled", "false".into()),
            ("natEnabled", "false".into()),
            ("urAccepted", "-1".into()),
            ("autoUpgradeIntervalH", "0".into()),
            ("startBrowser", "false".into()),
            ("crashReportingEnabled", "false".into()),
            ("apikey", key.clone()),
        ] {
            let (open, close) = (format!("<{element}>"), format!("</{element}>"));
            let start = xml.find(&open).unwrap_or_else(|| panic!("config.xml has no {open}")) + open.len();
            let end = start + xml[start..].find(&close).expect("a closing tag");
            xml.replace_range(start..end, &value);
        }
        fs::write(&config, xml).expect("write config.xml");

        let log = OpenOptions::new().create(true).append(true).open(dir.path().join("syncthing.log")).expect("log");
        let child = Command::new("syncthing")
            .arg("serve")
            .arg(format!("--home={}", home.display()))
            .args(["--no-browser", "--no-upgrade", "--no-restart"])
            .arg(format!("--gui-address=http://127.0.0.1:{gui_port}"))
            .arg(format!("--gui-apikey={key}"))
            .env("STNODEFAULTFOLDER", "1")
            // No monitor process: the real Syncthing is this child.
            .env("STMONITORED", "yes")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log"))
            .stderr(log)
            .spawn()
            .expect("syncthing serve starts");
        let syncthing = Syncthing { _dir: dir, gui_port, listen_port, key, child };
        wait(&format!("Syncthing {name} answers"), || {
            http_get(Ipv4Addr::LOCALHOST, gui_port, "/rest/system/ping", &format!("X-API-Key: {}\r\n", syncthing.key))
        });
        syncthing
    }
}

impl Drop for Syncthing {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
