//! Real `meshctl daemon`s for end-to-end tests, each on its own loopback
//! address (Linux routes all of 127.0.0.0/8 to `lo`), so two of them stand for
//! two machines: the same port on 127.0.0.2 and 127.0.0.3 are different nodes.

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

/// The mesh API key every test daemon takes.
pub const KEY: &str = "test-mesh-key";

/// A daemon process, killed and reaped on drop. Its log is written to
/// `daemon.log` in its state folder and shown when it fails to come up.
pub struct Daemon {
    pub name: String,
    pub api: SocketAddr,
    log: std::path::PathBuf,
    child: Option<Child>,
}

impl Daemon {
    /// Starts node `name` listening on `api`, watching `manifests`, keeping its
    /// state in `state` (created).
    pub fn start(name: &str, api: SocketAddr, manifests: &Path, state: &Path) -> Daemon {
        std::fs::create_dir_all(state).expect("create the state folder");
        let log = state.join("daemon.log");
        let child = Command::new(env!("CARGO_BIN_EXE_meshctl"))
            .arg("daemon")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AGENT_NODE_ID", name)
            .env("MESH_API_KEY", KEY)
            .env("MESH_LISTEN", api.to_string())
            .env("MESH_MANIFESTS", manifests)
            .env("MESH_STATE_DIR", state)
            .env("RUST_LOG", "info")
            .current_dir(state)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create the log"))
            .spawn()
            .expect("meshctl daemon starts");
        Daemon { name: name.to_owned(), api, log, child: Some(child) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.api)
    }

    /// Waits until the daemon answers and has a set in force.
    pub async fn ready(&self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let health = client.get(self.url("/mesh/health")).send().await;
            if let Ok(response) = health {
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                if body["revision"].is_string() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "daemon {} did not come up with a set in force; its log:\n{}",
                self.name,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until this daemon places `capability` on `node`: a daemon that
    /// started before its peer saw it down for a moment, and places the
    /// capability on the next node until its recheck.
    pub async fn served_by(&self, capability: &str, node: &str) {
        let client = reqwest::Client::new();
        let url = self.url(&format!("/api/v1/objects/Capability/{capability}"));
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let object: serde_json::Value =
                client.get(&url).bearer_auth(KEY).send().await.unwrap().json().await.unwrap_or_default();
            if object["status"]["details"]["servedBy"] == node {
                return;
            }
            assert!(Instant::now() < deadline, "{} does not place {capability} on {node}: {object}", self.name);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until this daemon's prober has seen `peer` answer: one that
    /// started first saw its peer down for a moment, and skips a node known
    /// to be down until then.
    pub async fn sees_online(&self, peer: &str) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let mesh: serde_json::Value =
                client.get(self.url("/api/v1/mesh")).bearer_auth(KEY).send().await.unwrap().json().await.unwrap();
            let online =
                mesh.as_array().is_some_and(|nodes| nodes.iter().any(|n| n["name"] == peer && n["online"] == true));
            if online {
                return;
            }
            assert!(Instant::now() < deadline, "{} does not see {peer} online: {mesh}", self.name);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, as a crash or a pulled plug; returns once the process is gone
    /// (and its sockets with it).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The laptop's and the mini's addresses in the two-node tests.
pub const LAPTOP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
pub const MINI: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 3));

/// Node `laptop` (primary, on [`LAPTOP`]) and node `mini` (satellite, on
/// [`MINI`]), each with its daemon, reading `manifests/mesh.yaml` in `dir`:
/// both Nodes, then `objects`. Returns once both have a set in force.
pub async fn laptop_and_mini(dir: &Path, objects: &str) -> (Daemon, Daemon) {
    let (laptop_api, mini_api) = (SocketAddr::new(LAPTOP, free_port(LAPTOP)), SocketAddr::new(MINI, free_port(MINI)));
    let manifests = dir.join("manifests");
    std::fs::create_dir(&manifests).expect("create the manifests folder");
    let text = [node_manifest("laptop", "primary", laptop_api), node_manifest("mini", "satellite", mini_api)].concat();
    std::fs::write(manifests.join("mesh.yaml"), text + objects).expect("write the manifests");
    let laptop = Daemon::start("laptop", laptop_api, &manifests, &dir.join("state-laptop"));
    let mini = Daemon::start("mini", mini_api, &manifests, &dir.join("state-mini"));
    laptop.ready().await;
    mini.ready().await;
    (laptop, mini)
}

/// Two listeners on one port, one on each of `a` and `b`: the same endpoint
/// port on two nodes.
pub async fn same_port_on(a: IpAddr, b: IpAddr) -> (tokio::net::TcpListener, tokio::net::TcpListener) {
    loop {
        let first = tokio::net::TcpListener::bind((a, 0)).await.expect("bind a free port");
        if let Ok(second) = tokio::net::TcpListener::bind((b, first.local_addr().expect("an address").port())).await {
            return (first, second);
        }
    }
}

/// A port that is free on `ip` now.
pub fn free_port(ip: IpAddr) -> u16 {
    TcpListener::bind((ip, 0)).expect("bind a free port").local_addr().expect("an address").port()
}

/// A Node manifest for `name` at `api` (its address and `apiPort`), ending
/// with the document separator.
pub fn node_manifest(name: &str, role: &str, api: SocketAddr) -> String {
    format!(
        "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {{name: {name}}}\n\
         spec: {{role: {role}, address: {}, apiPort: {}}}\n---\n",
        api.ip(),
        api.port()
    )
}
