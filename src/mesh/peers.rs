//! The peers of this node — every other Node of the set in force (`MESH_PEERS`
//! before any set loads), and the nodes that joined through the API until the
//! set declares them — and what the prober last learned about each. Shared by
//! the prober (which writes), the router (which skips peers known to be down)
//! and the API (which reports them).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::absence::Absence;
use crate::manifest::ManifestSet;
use crate::net::host_port;
use crate::source_status::SourceStatus;

/// One peer as this node sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerState {
    pub name: String,
    pub role: Option<String>,
    /// What the manifests say: a tailnet name, host name or IP.
    pub address: String,
    pub api_port: u16,
    /// The host actually dialled: the tailnet IP learned from Tailscale when
    /// known (MagicDNS may fail), else `address`.
    pub dial_host: String,
    pub online: bool,
    /// When it last answered (RFC 3339).
    pub last_seen: Option<String>,
    /// Round-trip time of its last answer, in milliseconds.
    pub rtt_ms: Option<f64>,
    pub revision: Option<String>,
    pub version: Option<String>,
    pub api_version: Option<String>,
    /// Why the last probe failed, while it is offline.
    pub last_error: Option<String>,
    /// When it stopped answering (the wall clock at its first unanswered
    /// probe), while it is offline.
    #[serde(skip)]
    pub unreachable_since: Option<SystemTime>,
    /// Whether Tailscale sees it connected, when Tailscale discovery is on: a
    /// hint (it lags a waking laptop), never a verdict; the probe decides.
    pub tailnet_online: Option<bool>,
    /// What it follows, from its last health answer.
    pub source: Option<SourceStatus>,
    /// Which node it has each capability served by, from its last health
    /// answer (capability -> node).
    #[serde(skip)]
    pub placements: BTreeMap<String, String>,
}

impl PeerState {
    /// A peer that has not been probed yet.
    pub fn new(name: &str, role: Option<&str>, address: &str, api_port: u16) -> Self {
        PeerState {
            name: name.to_owned(),
            role: role.map(str::to_owned),
            address: address.to_owned(),
            api_port,
            dial_host: address.to_owned(),
            online: false,
            last_seen: None,
            rtt_ms: None,
            revision: None,
            version: None,
            api_version: None,
            last_error: None,
            unreachable_since: None,
            tailnet_online: None,
            source: None,
            placements: BTreeMap::new(),
        }
    }

    /// Whether it is known to be down: probed, and it did not answer. A peer
    /// never probed yet is not.
    pub fn known_down(&self) -> bool {
        !self.online && self.last_error.is_some()
    }

    /// How it is away, while it is known to be down.
    pub fn absence(&self) -> Option<Absence> {
        self.known_down().then_some(Absence { since: self.unreachable_since, asleep: false })
    }

    /// `host:port` to call its API at (IPv6 in brackets).
    pub fn authority(&self) -> String {
        host_port(&self.dial_host, self.api_port)
    }
}

/// The table of peers. Cheap to clone; clones share the table.
#[derive(Clone)]
pub struct Peers {
    table: Arc<RwLock<Table>>,
    /// Counts the times a peer went online or offline or changed who it has
    /// a capability served by, so what depends on them (a placement, a
    /// handoff) is decided again at once.
    changes: Arc<watch::Sender<u64>>,
}

impl Default for Peers {
    fn default() -> Self {
        Peers { table: Arc::default(), changes: Arc::new(watch::channel(0).0) }
    }
}

#[derive(Default)]
struct Table {
    /// Every peer, declared or joined, by name.
    peers: BTreeMap<String, PeerState>,
    /// The names the set in force (or `MESH_PEERS`) declares: they win over a
    /// joined peer of the same name.
    declared: Vec<String>,
    /// The nodes that joined through the API, as they registered.
    joined: BTreeMap<String, PeerState>,
}

/// `member`, with what was learned about the peer of that name in `old`
/// when its address did not change.
fn keep_learned(old: &mut BTreeMap<String, PeerState>, member: PeerState) -> PeerState {
    old.remove(&member.name)
        .filter(|old| old.address == member.address && old.api_port == member.api_port)
        .map(|old| PeerState { role: member.role.clone(), ..old })
        .unwrap_or(member)
}

impl Peers {
    /// Changes each time a peer goes online or offline, or tells of another
    /// node serving one of its capabilities.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Every peer, by name.
    pub fn all(&self) -> Vec<PeerState> {
        self.read().peers.values().cloned().collect()
    }

    pub fn get(&self, name: &str) -> Option<PeerState> {
        self.read().peers.get(name).cloned()
    }

    /// Where `node`'s mesh API answers (`host:port`): as the prober dials it,
    /// else as its Node manifest in `set` says.
    pub fn authority_of(&self, set: &ManifestSet, node: &str) -> Option<String> {
        match self.get(node) {
            Some(peer) => Some(peer.authority()),
            None => set.nodes.get(node).map(|n| host_port(&n.spec.address.value, n.spec.api_port.0)),
        }
    }

    /// Whether `name` is a peer that is known to be down. A peer never probed
    /// yet is not known to be down.
    pub fn known_down(&self, name: &str) -> bool {
        self.read().peers.get(name).is_some_and(PeerState::known_down)
    }

    /// How `name` is away, while it is a peer known to be down.
    pub fn absence(&self, name: &str) -> Option<Absence> {
        self.read().peers.get(name).and_then(PeerState::absence)
    }

    /// Makes the table hold exactly `members` (name, role, address, port) and
    /// the joined peers they do not name, keeping what was learned about peers
    /// whose address did not change.
    pub fn set_members(&self, members: Vec<PeerState>) {
        let mut table = self.write();
        table.declared = members.iter().map(|member| member.name.clone()).collect();
        // A joined node the set declares is the set's from now on: should a
        // later set leave it out, it is no peer any more.
        let Table { declared, joined, .. } = &mut *table;
        joined.retain(|name, _| !declared.contains(name));
        let joined: Vec<PeerState> = table.joined.values().cloned().collect();
        let mut old = std::mem::take(&mut table.peers);
        for member in members.into_iter().chain(joined) {
            let peer = keep_learned(&mut old, member);
            table.peers.insert(peer.name.clone(), peer);
        }
    }

    /// Adds (or moves) a node that joined through the API, unless the set in
    /// force declares a node of that name, which wins.
    pub fn join(&self, member: PeerState) {
        let mut table = self.write();
        if !table.declared.contains(&member.name) {
            table.joined.insert(member.name.clone(), member.clone());
            let peer = keep_learned(&mut table.peers, member);
            table.peers.insert(peer.name.clone(), peer);
        }
    }

    /// Whether the set in force (or `MESH_PEERS`) names `name`.
    pub fn declares(&self, name: &str) -> bool {
        self.read().declared.iter().any(|declared| declared == name)
    }

    /// Changes one peer's state, if it is still a peer.
    pub fn update(&self, name: &str, change: impl FnOnce(&mut PeerState)) {
        let changed = match self.write().peers.get_mut(name) {
            Some(peer) => {
                let (was_online, placements) = (peer.online, peer.placements.clone());
                change(peer);
                peer.online != was_online || peer.placements != placements
            }
            None => false,
        };
        if changed {
            self.changes.send_modify(|count| *count += 1);
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_keep_their_state_unless_their_address_changed() {
        let peers = Peers::default();
        peers.set_members(vec![PeerState::new("mini", Some("primary"), "mini", 8000)]);
        peers.update("mini", |p| p.online = true);
        peers.set_members(vec![
            PeerState::new("mini", Some("primary"), "mini", 8000),
            PeerState::new("laptop", None, "laptop", 8000),
        ]);
        assert!(peers.get("mini").unwrap().online, "same address: state kept");
        peers.set_members(vec![PeerState::new("mini", Some("primary"), "mini.lan", 8000)]);
        assert!(!peers.get("mini").unwrap().online, "new address: probed afresh");
        assert!(peers.get("laptop").is_none(), "no longer a member");
    }

    #[test]
    fn going_online_or_offline_or_serving_elsewhere_is_told_and_nothing_else_is() {
        let peers = Peers::default();
        peers.set_members(vec![PeerState::new("mini", None, "mini", 8000)]);
        let mut changes = peers.changes();
        peers.update("mini", |p| p.rtt_ms = Some(1.0));
        assert!(!changes.has_changed().unwrap());
        peers.update("mini", |p| p.online = true);
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        peers.update("mini", |p| p.online = true);
        assert!(!changes.has_changed().unwrap());
        peers.update("mini", |p| p.online = false);
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        let serving = |node: &str| [("llm".to_owned(), node.to_owned())].into();
        peers.update("mini", |p| p.placements = serving("mini"));
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        peers.update("mini", |p| p.placements = serving("mini"));
        assert!(!changes.has_changed().unwrap());
    }

    #[test]
    fn a_joined_peer_stays_until_the_set_declares_its_name() {
        let peers = Peers::default();
        peers.set_members(vec![PeerState::new("mini", Some("primary"), "mini", 8000)]);
        peers.join(PeerState::new("desk", Some("satellite"), "10.0.0.9", 8100));
        assert_eq!(peers.get("desk").map(|p| p.authority()).as_deref(), Some("10.0.0.9:8100"));
        peers.update("desk", |p| p.online = true);

        peers.set_members(vec![PeerState::new("mini", Some("primary"), "mini", 8000)]);
        assert!(peers.get("desk").is_some_and(|p| p.online), "a new set without it keeps it, and what was learned");

        peers.set_members(vec![PeerState::new("desk", Some("primary"), "desk.lan", 8000)]);
        assert_eq!(peers.get("desk").map(|p| p.authority()).as_deref(), Some("desk.lan:8000"), "the set wins");
        assert!(peers.get("mini").is_none());
        peers.join(PeerState::new("desk", None, "10.0.0.10", 8100));
        assert_eq!(peers.get("desk").map(|p| p.authority()).as_deref(), Some("desk.lan:8000"), "still declared");

        peers.set_members(vec![PeerState::new("mini", Some("primary"), "mini", 8000)]);
        assert!(peers.get("desk").is_none(), "declared once, then left out: no peer any more");
    }

    #[test]
    fn authority_brackets_ipv6() {
        let mut peer = PeerState::new("a", None, "fd7a:115c:a1e0::1", 8000);
        assert_eq!(peer.authority(), "[fd7a:115c:a1e0::1]:8000");
        peer.dial_host = "100.64.0.5".into();
        assert_eq!(peer.authority(), "100.64.0.5:8000");
    }
}
