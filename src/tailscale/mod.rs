//! Tailscale (design section 6): what tailscaled knows about the tailnet, read
//! from its LocalAPI. The peer prober learns peers' tailnet IPs and online state
//! from [`TailscaleClient::status`] (MagicDNS may fail where the IPs work); the
//! API lets a caller in on its Tailscale identity ([`TailscaleClient::whois`]);
//! the daemon binds to this node's tailnet IP by default.
//!
//! The LocalAPI is reached over tailscaled's unix socket, over loopback TCP
//! with a token for the macOS apps (`discover` finds which), or through the
//! `tailscale` command where there is neither. Its JSON stays in
//! `wire`; callers see [`TailnetStatus`] and [`Identity`].

mod command;
mod discover;
mod localapi;
mod wire;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hyper::StatusCode;
use tokio::time::Instant;

use crate::manifest::kinds::TailscaleIdentity;
use crate::net::IpPrefix;

/// The tailnet as this node's tailscaled sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TailnetStatus {
    /// Whether tailscaled is connected (`BackendState` is `Running`); stopped,
    /// logged out or starting, the addresses below may be stale.
    pub running: bool,
    /// This node's tailnet addresses.
    pub self_ips: Vec<IpAddr>,
    /// The tailnet's MagicDNS domain, e.g. `tail1234.ts.net`.
    pub magic_dns_suffix: Option<String>,
    /// This node's MagicDNS name without the trailing dot (`Self.DNSName`).
    pub self_dns_name: Option<String>,
    /// Every other node of the tailnet, by DNS name.
    pub peers: Vec<TailnetPeer>,
}

/// Another node of the tailnet.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TailnetPeer {
    /// The machine's OS host name: not a DNS name, and not necessarily unique.
    pub host_name: String,
    /// Its MagicDNS name without the trailing dot, e.g. `mac-mini.tail1234.ts.net`.
    pub dns_name: String,
    pub ips: Vec<IpAddr>,
    /// Whether the coordination server sees it connected.
    pub online: bool,
    pub tags: Vec<String>,
    /// The networks it routes for the tailnet (`PrimaryRoutes`, `AllowedIPs`;
    /// its own addresses among them, as host prefixes).
    pub routes: Vec<IpPrefix>,
    /// Where its PeerAPI answers (`http://100.101.3.4:40123`), the way to ask
    /// it for a Wake-on-LAN.
    pub peerapi_urls: Vec<String>,
}

impl TailnetStatus {
    /// The peer a Node's `address` names: its MagicDNS name in full or its
    /// first label, else its host name (any case), or one of its IPs. A DNS name
    /// wins over a host name, which is not unique in a tailnet.
    pub fn peer_for(&self, address: &str) -> Option<&TailnetPeer> {
        let wanted = address.trim().trim_end_matches('.');
        if wanted.is_empty() {
            return None;
        }
        if let Ok(ip) = wanted.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            let ip = ip.to_canonical();
            return self.peers.iter().find(|peer| peer.ips.contains(&ip));
        }
        let find = |matches: fn(&TailnetPeer, &str) -> bool| self.peers.iter().find(|peer| matches(peer, wanted));
        find(|peer, name| peer.dns_name.eq_ignore_ascii_case(name))
            .or_else(|| find(|peer, name| peer.short_name().eq_ignore_ascii_case(name)))
            .or_else(|| find(|peer, name| peer.host_name.eq_ignore_ascii_case(name)))
    }

    /// This node's tailnet IPv4 (from 100.64.0.0/10) while Tailscale is up:
    /// the address the API binds to by default.
    pub fn tailnet_ipv4(&self) -> Option<Ipv4Addr> {
        if !self.running {
            return None;
        }
        self.self_ips.iter().find_map(|ip| match ip {
            IpAddr::V4(v4) if is_cgnat(*v4) => Some(*v4),
            _ => None,
        })
    }
}

impl TailnetPeer {
    /// The first label of the DNS name: what MagicDNS resolves unqualified.
    pub fn short_name(&self) -> &str {
        self.dns_name.split('.').next().unwrap_or_default()
    }
}

/// 100.64.0.0/10, the shared address space Tailscale takes its IPv4s from.
fn is_cgnat(ip: Ipv4Addr) -> bool {
    let [first, second, ..] = ip.octets();
    first == 100 && second & 0b1100_0000 == 64
}

/// Who is behind a tailnet address, as `whois` tells.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Identity {
    /// The owner's login, e.g. `alice@example.com`; `tagged-devices` for a
    /// tagged node, whose identity is its tags instead.
    pub login: String,
    pub display_name: String,
    /// The node's MagicDNS name without the trailing dot.
    pub node_name: String,
    pub tags: Vec<String>,
}

impl Identity {
    /// Whether the Mesh lets this caller in without the key: its login is in
    /// `allowUsers` (any case, as logins are e-mail addresses), or one of its
    /// tags is in `allowTags`. A tagged node is judged by its tags alone: its
    /// login is a placeholder every tagged node shares.
    pub fn allowed(&self, settings: &TailscaleIdentity) -> bool {
        if !settings.enabled {
            return false;
        }
        if self.tags.is_empty() {
            settings.allow_users.iter().any(|user| user.eq_ignore_ascii_case(&self.login))
        } else {
            self.tags.iter().any(|tag| settings.allow_tags.iter().any(|allowed| allowed.value == *tag))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to tailscaled at {}: {error}", socket.display())]
    Connect { socket: PathBuf, error: std::io::Error },
    #[error("HTTP to tailscaled failed: {0}")]
    Http(String),
    #[error("tailscaled answered {status}: {message}")]
    Refused { status: StatusCode, message: String },
    #[error("tailscaled's answer is not the JSON expected: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("`{command}` failed: {message}")]
    Command { command: String, message: String },
    #[error("tailscaled did not answer within {0:?}")]
    Timeout(Duration),
}

/// How a [`TailscaleClient`] reaches the LocalAPI.
#[derive(Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// tailscaled's unix socket.
    Socket(PathBuf),
    /// The macOS app's LocalAPI on `127.0.0.1:port`, which wants its same-user
    /// token as the Basic auth password.
    Tcp { port: u16, token: String },
    /// The `tailscale` command, when nothing else is found.
    Command(PathBuf),
}

/// The token stays out of logs.
impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Socket(socket) => f.debug_tuple("Socket").field(socket).finish(),
            Endpoint::Tcp { port, .. } => f.debug_struct("Tcp").field("port", port).finish_non_exhaustive(),
            Endpoint::Command(program) => f.debug_tuple("Command").field(program).finish(),
        }
    }
}

/// The LocalAPI sockets tailscaled uses on this platform, in the order tried:
/// Linux's default and the path the shipped systemd unit passes (the same
/// socket where /var/run links to /run); the open-source daemon's on macOS.
const SOCKETS: &[&str] = if cfg!(target_os = "macos") {
    &["/var/run/tailscaled.socket"]
} else {
    &["/var/run/tailscale/tailscaled.sock", "/run/tailscale/tailscaled.sock"]
};

/// The CLI inside the macOS app, for when `tailscale` is not in PATH.
const APP_COMMAND: &str = "/Applications/Tailscale.app/Contents/MacOS/Tailscale";

/// Long enough for a busy tailscaled (or the CLI's start-up), short enough
/// that a request waiting on whois is not left hanging.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a whois answer is reused: a burst of requests from one connection
/// asks tailscaled once, and a changed ACL or login is seen within a minute.
const WHOIS_TTL: Duration = Duration::from_secs(60);
/// More cached answers than this are dropped wholesale: a bound, not an LRU.
const WHOIS_CACHE_LIMIT: usize = 1024;

/// A client of tailscaled's LocalAPI. Cheap to clone; clones share the whois
/// cache.
#[derive(Clone, Debug)]
pub struct TailscaleClient {
    endpoint: Arc<Endpoint>,
    timeout: Duration,
    whois_cache: Arc<Mutex<HashMap<SocketAddr, Cached>>>,
}

#[derive(Debug)]
struct Cached {
    at: Instant,
    identity: Option<Identity>,
}

impl TailscaleClient {
    pub fn new(endpoint: Endpoint) -> Self {
        TailscaleClient { endpoint: Arc::new(endpoint), timeout: DEFAULT_TIMEOUT, whois_cache: Arc::default() }
    }

    /// The client for `socket` when given (`Mesh.spec.discovery.localApiSocket`),
    /// else (on macOS) for the App Store or Standalone app's LocalAPI, else for
    /// the platform's socket that exists, else for the `tailscale` command (in
    /// PATH, or the macOS app's); None when there is no Tailscale.
    pub async fn locate(socket: Option<&Path>) -> Option<Self> {
        discover::choose(discover::gather(socket, SOCKETS).await).map(TailscaleClient::new)
    }

    /// Bounds every call, the connection and the whole answer included.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// `GET /localapi/v0/status`: this node, the tailnet and every peer.
    pub async fn status(&self) -> Result<TailnetStatus, Error> {
        let body = self
            .bounded(async {
                match &*self.endpoint {
                    Endpoint::Command(program) => command::status(program).await,
                    endpoint => expect_ok(localapi::get(endpoint, "/localapi/v0/status").await?),
                }
            })
            .await?;
        Ok(serde_json::from_slice::<wire::Status>(&body)?.into())
    }

    /// Who calls from `addr` (`GET /localapi/v0/whois?addr=IP:port`); None
    /// when it is no tailnet node. Answers are cached for a minute per
    /// address. The cache is keyed by IP and port, not IP alone: with
    /// userspace networking, tailscaled proxies connections from loopback and
    /// tells them apart by port.
    pub async fn whois(&self, addr: SocketAddr) -> Result<Option<Identity>, Error> {
        let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
        if let Some(identity) = self.cached(addr) {
            return Ok(identity);
        }
        let body = self
            .bounded(async {
                match &*self.endpoint {
                    Endpoint::Command(program) => command::whois(program, addr).await,
                    endpoint => {
                        let query = format!("/localapi/v0/whois?addr={}", localapi::query_escape(&addr.to_string()));
                        match localapi::get(endpoint, &query).await? {
                            (StatusCode::NOT_FOUND, _) => Ok(None),
                            answer => expect_ok(answer).map(Some),
                        }
                    }
                }
            })
            .await?;
        let identity = body.map(|body| serde_json::from_slice::<wire::WhoIs>(&body)).transpose()?.map(Identity::from);
        self.remember(addr, identity.clone());
        Ok(identity)
    }

    async fn bounded<T>(&self, call: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
        tokio::time::timeout(self.timeout, call).await.map_err(|_| Error::Timeout(self.timeout))?
    }

    fn cached(&self, addr: SocketAddr) -> Option<Option<Identity>> {
        let cache = self.cache();
        cache.get(&addr).filter(|hit| hit.at.elapsed() < WHOIS_TTL).map(|hit| hit.identity.clone())
    }

    fn remember(&self, addr: SocketAddr, identity: Option<Identity>) {
        let mut cache = self.cache();
        if cache.len() >= WHOIS_CACHE_LIMIT {
            cache.retain(|_, hit| hit.at.elapsed() < WHOIS_TTL);
            if cache.len() >= WHOIS_CACHE_LIMIT {
                cache.clear();
            }
        }
        cache.insert(addr, Cached { at: Instant::now(), identity });
    }

    fn cache(&self) -> MutexGuard<'_, HashMap<SocketAddr, Cached>> {
        self.whois_cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The body of a 200 answer; any other status is an error carrying
/// tailscaled's message.
fn expect_ok((status, body): (StatusCode, hyper::body::Bytes)) -> Result<Vec<u8>, Error> {
    if status == StatusCode::OK {
        Ok(body.to_vec())
    } else {
        Err(Error::Refused { status, message: localapi::error_message(&body) })
    }
}

/// `tailscale` in PATH, else the macOS app's CLI.
fn find_command() -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let executable =
        |path: &Path| path.metadata().is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0);
    let in_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join("tailscale")).find(|path| executable(path)));
    in_path.or_else(|| Some(PathBuf::from(APP_COMMAND)).filter(|path| executable(path)))
}

/// This node's tailnet IPv4 when Tailscale is up, from the platform's LocalAPI;
/// None when it is down, missing or does not answer in time.
pub async fn local_tailnet_ipv4() -> Option<Ipv4Addr> {
    let client = TailscaleClient::locate(None).await?;
    match client.status().await {
        Ok(status) => status.tailnet_ipv4(),
        Err(error) => {
            tracing::debug!(%error, "Tailscale status unavailable; not using a tailnet address");
            None
        }
    }
}

/// The API's way to Tailscale identities: a client for the socket the Mesh in
/// force names, kept while it names the same one so its whois cache outlives
/// a request. Cheap to clone; clones share it.
#[derive(Clone, Debug, Default)]
pub struct Connector {
    state: Arc<Mutex<ConnectorState>>,
}

#[derive(Debug, Default)]
struct ConnectorState {
    /// The client and the socket setting it was made for.
    client: Option<(Option<PathBuf>, TailscaleClient)>,
    /// The last failure logged, so a failure that repeats is logged once.
    failing: Option<String>,
}

impl Connector {
    /// Who calls from `addr`, asked of the LocalAPI at `socket` (the
    /// platform's when None). None when it is no tailnet node or Tailscale
    /// cannot tell; a failure is logged once until it changes or clears.
    pub async fn whois(&self, socket: Option<&Path>, addr: SocketAddr) -> Option<Identity> {
        let Some(client) = self.client(socket).await else {
            self.failed("Tailscale identity auth is on, but there is no tailscaled socket or tailscale command".into());
            return None;
        };
        match client.whois(addr).await {
            Ok(identity) => {
                let mut state = self.lock();
                if state.failing.take().is_some() {
                    tracing::info!("Tailscale whois answers again");
                }
                identity
            }
            Err(error) => {
                // The app's port and token change when it restarts: look
                // again next time.
                self.lock().client = None;
                self.failed(format!("Tailscale whois failed: {error}"));
                None
            }
        }
    }

    async fn client(&self, socket: Option<&Path>) -> Option<TailscaleClient> {
        {
            let state = self.lock();
            if let Some((_, client)) = state.client.as_ref().filter(|(made_for, _)| made_for.as_deref() == socket) {
                return Some(client.clone());
            }
        }
        let client = TailscaleClient::locate(socket).await?;
        self.lock().client = Some((socket.map(Path::to_owned), client.clone()));
        Some(client)
    }

    fn failed(&self, message: String) {
        let mut state = self.lock();
        if state.failing.as_deref() != Some(message.as_str()) {
            tracing::warn!("{message}; callers need the bearer key");
            state.failing = Some(message);
        }
    }

    fn lock(&self) -> MutexGuard<'_, ConnectorState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Located, Pos};

    /// Fixtures in the LocalAPI's wire format (see the reference's section A).
    const STATUS: &str = include_str!("../../tests/fixtures/tailscale/status.json");
    const STATUS_NO_PEERS: &str = include_str!("../../tests/fixtures/tailscale/status-no-peers.json");
    const WHOIS_USER: &str = include_str!("../../tests/fixtures/tailscale/whois-user.json");
    const WHOIS_TAGGED: &str = include_str!("../../tests/fixtures/tailscale/whois-tagged.json");
    /// As `tailscale status --json` and `whois --json` print them.
    const CLI_STATUS: &str = include_str!("../../tests/fixtures/tailscale/cli-status.json");
    const CLI_WHOIS: &str = include_str!("../../tests/fixtures/tailscale/cli-whois.json");

    fn status(json: &str) -> TailnetStatus {
        serde_json::from_str::<wire::Status>(json).expect("status parses").into()
    }

    fn whois(json: &str) -> Identity {
        serde_json::from_str::<wire::WhoIs>(json).expect("whois parses").into()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn prefix(text: &str) -> IpPrefix {
        IpPrefix::parse(text).unwrap()
    }

    fn peer(host_name: &str, dns_name: &str, ips: &[&str]) -> TailnetPeer {
        TailnetPeer {
            host_name: host_name.into(),
            dns_name: dns_name.into(),
            ips: ips.iter().map(|text| ip(text)).collect(),
            online: true,
            tags: Vec::new(),
            routes: Vec::new(),
            peerapi_urls: Vec::new(),
        }
    }

    fn settings(users: &[&str], tags: &[&str]) -> TailscaleIdentity {
        TailscaleIdentity {
            enabled: true,
            allow_users: users.iter().map(|user| user.to_string()).collect(),
            allow_tags: tags.iter().map(|tag| Located::new(tag.to_string(), Pos::default())).collect(),
        }
    }

    #[test]
    fn status_gives_this_node_the_suffix_and_every_peer_without_trailing_dots() {
        let status = status(STATUS);
        assert!(status.running);
        assert_eq!(status.self_ips, [ip("100.101.1.2"), ip("fd7a:115c:a1e0::a01:102")]);
        assert_eq!(status.magic_dns_suffix.as_deref(), Some("tail1234.ts.net"));
        assert_eq!(
            status.peers,
            [
                TailnetPeer {
                    host_name: "build-box".into(),
                    dns_name: "build-box-1.tail1234.ts.net".into(),
                    ips: vec![ip("100.101.5.6"), ip("fd7a:115c:a1e0::a01:506")],
                    online: false,
                    tags: vec!["tag:agent".into(), "tag:server".into()],
                    routes: vec![prefix("100.101.5.6/32"), prefix("fd7a:115c:a1e0::a01:506/128")],
                    peerapi_urls: vec![
                        "http://100.101.5.6:40123".into(),
                        "http://[fd7a:115c:a1e0::a01:506]:40123".into(),
                    ],
                },
                TailnetPeer {
                    host_name: "Mac-mini".into(),
                    dns_name: "mac-mini.tail1234.ts.net".into(),
                    ips: vec![ip("100.101.3.4"), ip("fd7a:115c:a1e0::a01:304")],
                    online: true,
                    tags: Vec::new(),
                    routes: vec![prefix("100.101.3.4/32"), prefix("fd7a:115c:a1e0::a01:304/128")],
                    peerapi_urls: vec![
                        "http://100.101.3.4:40123".into(),
                        "http://[fd7a:115c:a1e0::a01:304]:40123".into(),
                    ],
                },
            ]
        );
    }

    #[test]
    fn a_subnet_router_lists_its_primary_routes_and_allowed_ips_once_each() {
        let json = r#"{"BackendState": "Running", "Peer": {"nodekey:c": {
            "HostName": "lan-box", "DNSName": "lan-box.tail1234.ts.net.", "Online": true,
            "TailscaleIPs": ["100.101.7.8"], "PrimaryRoutes": ["192.168.1.0/24"],
            "AllowedIPs": ["100.101.7.8/32", "192.168.1.0/24", "not a prefix"],
            "PeerAPIURL": ["http://100.101.7.8:41000"]}}}"#;
        let status = status(json);
        assert_eq!(status.peers[0].routes, [prefix("192.168.1.0/24"), prefix("100.101.7.8/32")]);
        assert_eq!(status.peers[0].peerapi_urls, ["http://100.101.7.8:41000"]);
    }

    #[test]
    fn a_null_peer_map_is_no_peers() {
        let status = status(STATUS_NO_PEERS);
        assert!(status.running);
        assert!(status.peers.is_empty());
    }

    #[test]
    fn a_stopped_daemon_with_null_addresses_is_not_running_and_has_no_tailnet_ip() {
        let status = status(
            r#"{"Version": "1.90.0", "BackendState": "Stopped", "TailscaleIPs": null, "Health": null,
                "Self": {"ID": "", "HostName": "work-laptop", "DNSName": "", "TailscaleIPs": null, "Tags": null,
                         "LastSeen": "0001-01-01T00:00:00Z", "Online": false},
                "MagicDNSSuffix": "", "CurrentTailnet": null, "Peer": null, "User": null}"#,
        );
        assert_eq!(status, TailnetStatus::default());
        assert_eq!(status.tailnet_ipv4(), None);
    }

    #[test]
    fn the_tailnet_ipv4_is_the_first_cgnat_address_while_running() {
        let mut status = status(STATUS);
        assert_eq!(status.tailnet_ipv4(), Some(Ipv4Addr::new(100, 101, 1, 2)));
        status.self_ips = vec![ip("fd7a:115c:a1e0::1"), ip("10.0.0.1"), ip("100.128.0.1"), ip("100.127.255.254")];
        assert_eq!(status.tailnet_ipv4(), Some(Ipv4Addr::new(100, 127, 255, 254)), "100.64.0.0/10 only");
        status.running = false;
        assert_eq!(status.tailnet_ipv4(), None);
    }

    #[test]
    fn peer_for_matches_the_dns_name_with_or_without_suffix_the_host_name_in_any_case_or_an_ip() {
        let status = status(STATUS);
        let found = |address: &str| status.peer_for(address).map(|peer| peer.dns_name.as_str());
        let mini = Some("mac-mini.tail1234.ts.net");
        let build_box = Some("build-box-1.tail1234.ts.net");
        assert_eq!(found("mac-mini"), mini);
        assert_eq!(found("mac-mini.tail1234.ts.net"), mini);
        assert_eq!(found("Mac-Mini.tail1234.ts.net."), mini);
        assert_eq!(found("MAC-MINI"), mini);
        assert_eq!(found("build-box-1"), build_box);
        assert_eq!(found("BUILD-BOX"), build_box, "by host name");
        assert_eq!(found("100.101.3.4"), mini);
        assert_eq!(found("fd7a:115c:a1e0::a01:506"), build_box);
        assert_eq!(found("[fd7a:115c:a1e0::a01:506]"), build_box);
        assert_eq!(found("mac-mini.other.ts.net"), None);
        assert_eq!(found("100.101.9.9"), None);
        assert_eq!(found(""), None);
    }

    #[test]
    fn a_dns_name_wins_over_another_peers_host_name() {
        let status = TailnetStatus {
            running: true,
            peers: vec![peer("mini", "old-mac.tail1234.ts.net", &[]), peer("Mac", "mini.tail1234.ts.net", &[])],
            ..TailnetStatus::default()
        };
        assert_eq!(status.peer_for("mini").unwrap().dns_name, "mini.tail1234.ts.net");
    }

    #[test]
    fn whois_gives_the_login_and_the_node_name_without_its_trailing_dot() {
        assert_eq!(
            whois(WHOIS_USER),
            Identity {
                login: "me@example.com".into(),
                display_name: "Me".into(),
                node_name: "mac-mini.tail1234.ts.net".into(),
                tags: Vec::new(),
            }
        );
        let tagged = whois(WHOIS_TAGGED);
        assert_eq!(tagged.login, "tagged-devices");
        assert_eq!(tagged.tags, ["tag:agent", "tag:server"]);
    }

    #[test]
    fn a_user_is_allowed_by_login_in_any_case_and_a_tagged_node_by_its_tags_only() {
        let user = whois(WHOIS_USER);
        let tagged = whois(WHOIS_TAGGED);
        assert!(user.allowed(&settings(&["Me@Example.com"], &[])));
        assert!(!user.allowed(&settings(&["you@example.com"], &["tag:agent"])));
        assert!(tagged.allowed(&settings(&[], &["tag:server"])));
        assert!(
            !tagged.allowed(&settings(&["tagged-devices"], &["tag:other"])),
            "the placeholder login is no identity"
        );
        let disabled = TailscaleIdentity { enabled: false, ..settings(&["me@example.com"], &[]) };
        assert!(!user.allowed(&disabled));
    }

    #[test]
    fn the_cli_prints_the_same_json_with_another_indent() {
        let status = status(CLI_STATUS);
        assert!(status.running);
        assert_eq!(status.tailnet_ipv4(), Some(Ipv4Addr::new(100, 101, 1, 2)));
        assert_eq!(status.peer_for("mac-mini").map(|peer| peer.ips[0]), Some(ip("100.101.3.4")));
        assert_eq!(whois(CLI_WHOIS), whois(WHOIS_USER));
    }

    #[tokio::test(start_paused = true)]
    async fn a_whois_answer_is_reused_for_a_minute_per_address_and_port() {
        let client = TailscaleClient::new(Endpoint::Socket("/nonexistent".into()));
        let caller: SocketAddr = "100.101.3.4:50000".parse().unwrap();
        client.remember(caller, Some(whois(WHOIS_USER)));
        client.remember("100.101.5.6:50000".parse().unwrap(), None);
        assert_eq!(client.cached(caller), Some(Some(whois(WHOIS_USER))));
        assert_eq!(client.cached("100.101.5.6:50000".parse().unwrap()), Some(None), "no match is remembered too");
        assert_eq!(client.cached("100.101.3.4:50001".parse().unwrap()), None, "another connection asks again");
        tokio::time::advance(WHOIS_TTL).await;
        assert_eq!(client.cached(caller), None);
    }

    #[tokio::test]
    async fn a_missing_socket_is_a_connect_error() {
        let client = TailscaleClient::new(Endpoint::Socket("/nonexistent/tailscaled.sock".into()));
        let error = client.status().await.unwrap_err();
        assert!(matches!(error, Error::Connect { .. }), "{error}");
        assert!(error.to_string().contains("/nonexistent/tailscaled.sock"), "{error}");
    }

    #[tokio::test]
    async fn an_explicit_socket_is_used_as_given() {
        let client = TailscaleClient::locate(Some(Path::new("/srv/ts/tailscaled.sock"))).await.unwrap();
        assert_eq!(client.endpoint(), &Endpoint::Socket("/srv/ts/tailscaled.sock".into()));
    }
}
