//! The peers of this node — every other Node of the set in force, and
//! `MESH_PEERS` before any set loads — and what the prober last learned about
//! each. Shared by the prober (which writes), the router (which skips peers known
//! to be down) and the API (which reports them).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

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
    /// Whether Tailscale sees it connected, when Tailscale discovery is on: a
    /// hint (it lags a waking laptop), never a verdict; the probe decides.
    pub tailnet_online: Option<bool>,
    /// What it follows, from its last health answer.
    pub source: Option<SourceStatus>,
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
            tailnet_online: None,
            source: None,
        }
    }

    /// `host:port` to call its API at (IPv6 in brackets).
    pub fn authority(&self) -> String {
        host_port(&self.dial_host, self.api_port)
    }
}

/// The table of peers. Cheap to clone; clones share the table.
#[derive(Clone, Default)]
pub struct Peers {
    table: Arc<RwLock<BTreeMap<String, PeerState>>>,
}

impl Peers {
    /// Every peer, by name.
    pub fn all(&self) -> Vec<PeerState> {
        self.read().values().cloned().collect()
    }

    pub fn get(&self, name: &str) -> Option<PeerState> {
        self.read().get(name).cloned()
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
        self.read().get(name).is_some_and(|p| !p.online && p.last_error.is_some())
    }

    /// Makes the table hold exactly `members` (name, role, address, port),
    /// keeping what was learned about peers whose address did not change.
    pub fn set_members(&self, members: Vec<PeerState>) {
        let mut table = self.write();
        let mut next = BTreeMap::new();
        for member in members {
            let kept = table
                .remove(&member.name)
                .filter(|old| old.address == member.address && old.api_port == member.api_port)
                .map(|old| PeerState { role: member.role.clone(), ..old });
            next.insert(member.name.clone(), kept.unwrap_or(member));
        }
        *table = next;
    }

    /// Changes one peer's state, if it is still a peer.
    pub fn update(&self, name: &str, change: impl FnOnce(&mut PeerState)) {
        if let Some(peer) = self.write().get_mut(name) {
            change(peer);
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, PeerState>> {
        self.table.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, PeerState>> {
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
    fn authority_brackets_ipv6() {
        let mut peer = PeerState::new("a", None, "fd7a:115c:a1e0::1", 8000);
        assert_eq!(peer.authority(), "[fd7a:115c:a1e0::1]:8000");
        peer.dial_host = "100.64.0.5".into();
        assert_eq!(peer.authority(), "100.64.0.5:8000");
    }
}
