//! The peers of this node — every other Node of the set in force (`MESH_PEERS`
//! before any set loads), and the nodes that joined through the API until the
//! set declares them — and what the prober last learned about each. Shared by
//! the prober (which writes), the router (which skips peers known to be down)
//! and the API (which reports them). A peer that said it goes to sleep
//! (`POST /mesh/goodbye`) is down from that moment, without waiting for
//! probes to fail.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::absence::Absence;
use crate::manifest::ManifestSet;
use crate::manifest::kinds::Role;
use crate::net::host_port;
use crate::source_status::SourceStatus;

/// One peer as this node sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerState {
    pub name: String,
    pub role: Option<Role>,
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
    pub unreachable_since: Option<SystemTime>,
    /// Whether Tailscale sees it connected, when Tailscale discovery is on: a
    /// hint (it lags a waking laptop), never a verdict; the probe decides.
    pub tailnet_online: Option<bool>,
    /// What it follows, from its last health answer.
    pub source: Option<SourceStatus>,
    /// Which node it has each capability served by, from its last health
    /// answer (capability -> node).
    pub placements: BTreeMap<String, String>,
    /// When it said it was going to sleep (the wall clock here): down from
    /// then until it says it woke, or answers for longer than
    /// [`SLEEP_CANCELLED_AFTER`].
    pub asleep_since: Option<SystemTime>,
    /// Since when it has answered every probe while taken as asleep.
    pub answering_since: Option<Instant>,
}

/// How long a peer that said goodbye must answer every probe before its sleep
/// counts as cancelled: a machine keeps answering for a moment after it says
/// goodbye (logind waits up to 5 s for its delay locks, a Mac a few seconds
/// after it is allowed to sleep), and should not flap back meanwhile.
pub const SLEEP_CANCELLED_AFTER: Duration = Duration::from_secs(10);

impl PeerState {
    /// A peer that has not been probed yet.
    pub fn new(name: &str, role: Option<Role>, address: &str, api_port: u16) -> Self {
        PeerState {
            name: name.to_owned(),
            role,
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
            asleep_since: None,
            answering_since: None,
        }
    }

    /// Takes a probe's result (`answered`, at `now`) while the peer is taken
    /// as asleep: it wakes only after answering every probe for longer than
    /// [`SLEEP_CANCELLED_AFTER`]; one unanswered probe starts the count again.
    pub fn probed_while_asleep(&mut self, answered: bool, now: Instant) {
        if self.asleep_since.is_none() {
            return;
        }
        if !answered {
            self.answering_since = None;
            return;
        }
        let since = *self.answering_since.get_or_insert(now);
        if now - since > SLEEP_CANCELLED_AFTER {
            self.asleep_since = None;
            self.answering_since = None;
        }
    }

    /// Whether it is known to be down: it said it goes to sleep, or it was
    /// probed and did not answer. A peer never probed yet is not.
    pub fn known_down(&self) -> bool {
        self.asleep_since.is_some() || (!self.online && self.last_error.is_some())
    }

    /// How it is away, while it is known to be down: asleep since it said
    /// goodbye, else unreachable since its first unanswered probe.
    pub fn absence(&self) -> Option<Absence> {
        let asleep = self.asleep_since.is_some();
        let since = if asleep { self.asleep_since } else { self.unreachable_since };
        self.known_down().then_some(Absence { since, asleep })
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
    /// Counts the times a peer went online or offline, became known to be
    /// down or stopped being so, or changed who it has a capability served
    /// by, so what depends on them (a placement, a handoff) is decided again
    /// at once.
    changes: Arc<watch::Sender<u64>>,
    /// The peers to probe at once (one that woke, every one after a resume),
    /// which the prober takes.
    probe_requests: Arc<ProbeRequests>,
}

#[derive(Default)]
struct ProbeRequests {
    names: Mutex<BTreeSet<String>>,
    added: Notify,
}

impl Default for Peers {
    fn default() -> Self {
        Peers { table: Arc::default(), changes: Arc::new(watch::channel(0).0), probe_requests: Arc::default() }
    }
}

#[derive(Default)]
struct Table {
    /// Every peer, declared or joined, by name, with what was learned about
    /// it: a peer whose name `declared` lacks is a joined one (`JoinedPeers`
    /// keeps their registrations and hands each one in with [`Peers::join`]).
    peers: BTreeMap<String, PeerState>,
    /// The names the set in force (or `MESH_PEERS`) declares: they win over a
    /// joined peer of the same name.
    declared: Vec<String>,
}

/// `member`, with what was learned about the peer of that name in `old`
/// when its address did not change.
fn keep_learned(old: &mut BTreeMap<String, PeerState>, member: PeerState) -> PeerState {
    old.remove(&member.name)
        .filter(|old| old.address == member.address && old.api_port == member.api_port)
        .map(|old| PeerState { role: member.role, ..old })
        .unwrap_or(member)
}

impl Peers {
    /// Changes each time a peer goes online or offline, becomes known to be
    /// down (a peer never answered yet whose first probe fails) or stops being
    /// so, says it goes to sleep or woke, or tells of another node serving one
    /// of its capabilities.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Resolves once `holds` is true of peer `name` (at once when it is now);
    /// never, once no one updates the table. Subscribed before the first look,
    /// so no change in between is missed. The one way to wait on a peer.
    pub async fn until(&self, name: &str, holds: impl Fn(&PeerState) -> bool) {
        let mut changes = self.changes();
        loop {
            if self.read().peers.get(name).is_some_and(&holds) {
                return;
            }
            if changes.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
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

    /// Whether `name` is a peer that is known to be down: it said it is going
    /// to sleep, or it was probed and did not answer. A peer never probed yet
    /// is not known to be down.
    pub fn known_down(&self, name: &str) -> bool {
        self.read().peers.get(name).is_some_and(PeerState::known_down)
    }

    /// How `name` is away, while it is a peer known to be down.
    pub fn absence(&self, name: &str) -> Option<Absence> {
        self.read().peers.get(name).and_then(PeerState::absence)
    }

    /// `name` said it is going to sleep, at `now`: it is down at once. False
    /// when it is no peer of this node.
    pub fn said_goodbye(&self, name: &str, now: SystemTime) -> bool {
        let mut known = false;
        self.update(name, |peer| {
            known = true;
            peer.online = false;
            peer.answering_since = None;
            peer.asleep_since.get_or_insert(now);
        });
        known
    }

    /// `name` said it woke: it is no longer taken as asleep, and is probed at
    /// once. False when it is no peer of this node.
    pub fn said_awake(&self, name: &str) -> bool {
        let mut known = false;
        self.update(name, |peer| {
            known = true;
            peer.asleep_since = None;
            peer.answering_since = None;
        });
        if known {
            self.probe_now([name.to_owned()]);
        }
        known
    }

    /// Asks the prober to probe these peers now rather than when due.
    pub fn probe_now(&self, names: impl IntoIterator<Item = String>) {
        self.probe_requests.names.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).extend(names);
        self.probe_requests.added.notify_one();
    }

    /// Asks the prober to probe every peer now (after this node resumed).
    pub fn probe_all_now(&self) {
        let names: Vec<String> = self.read().peers.keys().cloned().collect();
        self.probe_now(names);
    }

    /// Waits until a probe is asked for, then takes the names asked for: the
    /// prober's end of [`Peers::probe_now`].
    pub async fn probe_requested(&self) -> BTreeSet<String> {
        self.probe_requests.added.notified().await;
        std::mem::take(&mut *self.probe_requests.names.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// Makes the table hold exactly `members` (name, role, address, port) and
    /// the joined peers they do not name, keeping what was learned about peers
    /// whose address did not change.
    pub fn set_members(&self, members: Vec<PeerState>) {
        let mut table = self.write();
        let was_declared =
            std::mem::replace(&mut table.declared, members.iter().map(|member| member.name.clone()).collect());
        let mut old = std::mem::take(&mut table.peers);
        // A joined node the set declares is the set's from now on: should a
        // later set leave it out, it is no peer any more.
        let joined: Vec<PeerState> = old
            .values()
            .filter(|peer| !was_declared.contains(&peer.name) && !table.declared.contains(&peer.name))
            .cloned()
            .collect();
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
                let (was_online, placements, asleep, was_down) =
                    (peer.online, peer.placements.clone(), peer.asleep_since.is_some(), peer.known_down());
                change(peer);
                peer.online != was_online
                    || peer.placements != placements
                    || peer.asleep_since.is_some() != asleep
                    || peer.known_down() != was_down
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
        peers.set_members(vec![PeerState::new("mini", Some(Role::Primary), "mini", 8000)]);
        peers.update("mini", |p| p.online = true);
        peers.set_members(vec![
            PeerState::new("mini", Some(Role::Primary), "mini", 8000),
            PeerState::new("laptop", None, "laptop", 8000),
        ]);
        assert!(peers.get("mini").unwrap().online, "same address: state kept");
        peers.set_members(vec![PeerState::new("mini", Some(Role::Primary), "mini.lan", 8000)]);
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

    #[tokio::test]
    async fn a_peer_never_answered_whose_first_probe_fails_is_told_as_known_down() {
        let peers = Peers::default();
        peers.set_members(vec![PeerState::new("mini", None, "mini", 8000)]);
        let mut changes = peers.changes();
        let waiting = tokio::spawn({
            let peers = peers.clone();
            async move { peers.until("mini", PeerState::known_down).await }
        });
        tokio::task::yield_now().await;
        // Still offline, as it was: only "known down" flips.
        peers.update("mini", |p| p.last_error = Some("connection refused".into()));
        assert!(changes.has_changed().unwrap(), "known down is told");
        tokio::time::timeout(Duration::from_secs(5), waiting).await.expect("the waiter wakes").unwrap();
        changes.mark_unchanged();
        peers.update("mini", |p| p.last_error = Some("timed out".into()));
        assert!(!changes.has_changed().unwrap(), "another reason while down is not");
    }

    #[test]
    fn a_joined_peer_stays_until_the_set_declares_its_name() {
        let peers = Peers::default();
        peers.set_members(vec![PeerState::new("mini", Some(Role::Primary), "mini", 8000)]);
        peers.join(PeerState::new("desk", Some(Role::Satellite), "10.0.0.9", 8100));
        assert_eq!(peers.get("desk").map(|p| p.authority()).as_deref(), Some("10.0.0.9:8100"));
        peers.update("desk", |p| p.online = true);

        peers.set_members(vec![PeerState::new("mini", Some(Role::Primary), "mini", 8000)]);
        assert!(peers.get("desk").is_some_and(|p| p.online), "a new set without it keeps it, and what was learned");

        peers.set_members(vec![PeerState::new("desk", Some(Role::Primary), "desk.lan", 8000)]);
        assert_eq!(peers.get("desk").map(|p| p.authority()).as_deref(), Some("desk.lan:8000"), "the set wins");
        assert!(peers.get("mini").is_none());
        peers.join(PeerState::new("desk", None, "10.0.0.10", 8100));
        assert_eq!(peers.get("desk").map(|p| p.authority()).as_deref(), Some("desk.lan:8000"), "still declared");

        peers.set_members(vec![PeerState::new("mini", Some(Role::Primary), "mini", 8000)]);
        assert!(peers.get("desk").is_none(), "declared once, then left out: no peer any more");
    }

    #[test]
    fn a_peer_that_said_goodbye_is_down_at_once_and_told_until_it_says_it_woke() {
        let peers = Peers::default();
        peers.set_members(vec![PeerState::new("mini", None, "mini", 8000)]);
        peers.update("mini", |p| p.online = true);
        let mut changes = peers.changes();
        assert!(!peers.known_down("mini"));

        let at = |rfc3339: &str| humantime::parse_rfc3339(rfc3339).unwrap();
        assert!(peers.said_goodbye("mini", at("2026-12-06T09:12:00Z")));
        assert!(peers.known_down("mini"), "down without a failed probe");
        assert!(changes.has_changed().unwrap(), "placements are decided again at once");
        changes.mark_unchanged();
        assert!(peers.said_goodbye("mini", at("2026-12-06T09:12:01Z")));
        assert_eq!(peers.get("mini").unwrap().asleep_since, Some(at("2026-12-06T09:12:00Z")), "the first one");
        assert!(!changes.has_changed().unwrap(), "a second goodbye changes nothing");

        assert!(peers.said_awake("mini"));
        assert!(!peers.known_down("mini"), "back at once, before a probe");
        assert!(changes.has_changed().unwrap());
        assert!(!peers.said_goodbye("desk", at("2026-12-06T09:12:00Z")), "no peer of ours");
        assert!(!peers.said_awake("desk"));
    }

    #[test]
    fn a_peer_asleep_wakes_only_after_answering_every_probe_for_longer_than_the_grace() {
        let start = Instant::now();
        let at = |seconds: f64| start + Duration::from_secs_f64(seconds);
        let grace = SLEEP_CANCELLED_AFTER.as_secs_f64();
        // Probes (at seconds, answered), and whether it is still asleep after the last.
        type Probes<'a> = &'a [(f64, bool)];
        let cases: [(&str, Probes<'_>, bool); 6] = [
            ("no probe yet", &[], true),
            ("answers for a moment after its goodbye", &[(0.0, true), (0.5, true), (1.0, true)], true),
            ("answers for exactly the grace", &[(0.0, true), (grace, true)], true),
            ("answers for longer than the grace: the sleep was cancelled", &[(0.0, true), (grace + 0.5, true)], false),
            (
                "one unanswered probe starts the count again",
                &[(0.0, true), (5.0, false), (6.0, true), (grace + 0.5, true)],
                true,
            ),
            ("silent, then answering for longer", &[(0.0, false), (1.0, true), (grace + 1.5, true)], false),
        ];
        for (what, probes, asleep) in cases {
            let mut peer = PeerState::new("mini", None, "mini", 8000);
            peer.asleep_since = Some(SystemTime::UNIX_EPOCH);
            for &(seconds, answered) in probes {
                peer.probed_while_asleep(answered, at(seconds));
            }
            assert_eq!(peer.asleep_since.is_some(), asleep, "{what}");
        }
        let mut awake = PeerState::new("mini", None, "mini", 8000);
        awake.probed_while_asleep(true, start);
        assert_eq!(awake.answering_since, None, "a peer awake keeps no count");
    }

    #[tokio::test]
    async fn a_probe_asked_for_before_the_prober_waits_is_not_lost() {
        let peers = Peers::default();
        peers.set_members(vec![PeerState::new("mini", None, "mini", 8000), PeerState::new("desk", None, "desk", 8000)]);
        peers.probe_now(["mini".to_owned()]);
        peers.probe_all_now();
        let asked = tokio::time::timeout(Duration::from_secs(5), peers.probe_requested()).await.unwrap();
        assert_eq!(asked, BTreeSet::from(["desk".to_owned(), "mini".to_owned()]));
    }

    #[test]
    fn authority_brackets_ipv6() {
        let mut peer = PeerState::new("a", None, "fd7a:115c:a1e0::1", 8000);
        assert_eq!(peer.authority(), "[fd7a:115c:a1e0::1]:8000");
        peer.dial_host = "100.64.0.5".into();
        assert_eq!(peer.authority(), "100.64.0.5:8000");
    }
}
