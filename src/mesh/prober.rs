//! The peer prober: asks every peer's `GET /mesh/health` on an interval and
//! keeps the [`Peers`] table, the metrics and the event log up to date.
//!
//! A peer that goes silent must be noticed within seconds (a capability falls
//! back within 2 s), and one that answers again as soon: so an online peer is
//! asked every [`ONLINE_INTERVAL`] with a [`PROBE_TIMEOUT`] and is offline at
//! its first unanswered probe, and an offline peer is asked once every
//! [`OFFLINE_RETRY`], never less often (no growing backoff delays its return;
//! one small request a second costs a sleeping laptop nothing). Its going and
//! coming back are each logged (and recorded as an event) once, and while it
//! stays away, one reminder every [`REMINDER`]: a peer asleep for a night is
//! not an error storm.
//!
//! Each peer is a [`ProbeState`] whose [`ProbeState::step`] takes the result
//! of one probe and says what changed and when to probe next; the HTTP call is
//! behind [`Probe`], so the state machine is tested without a server. Its
//! schedule runs on the monotonic clock alone; the wall clock only names the
//! time a peer went away, so setting it (NTP after a sleep) moves no probe
//! and no reminder.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::peers::{PeerState, Peers, SLEEP_CANCELLED_AFTER};
use super::router::SetInForce;
use crate::api::wire::{API_VERSION, Health, ReconcileRequest};
use crate::api_key::ApiKey;
use crate::event::{Event, EventSink};
use crate::metrics::Metrics;
use crate::net::{self, root_cause};
use crate::tailscale::TailscaleClient;

/// How often an online peer is asked: with [`PROBE_TIMEOUT`], a peer that
/// goes silent is offline at most 1.5 s later.
pub const ONLINE_INTERVAL: Duration = Duration::from_millis(500);
/// How long one probe may take, connection included: a health answer takes
/// milliseconds, even over a relayed tailnet path.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How often an offline peer is asked, counted from the start of the last
/// probe: a peer that answers again is online within a second or so.
pub const OFFLINE_RETRY: Duration = Duration::from_secs(1);
/// How often a peer that stays away is mentioned again, counted on the
/// monotonic clock from when it went.
pub const REMINDER: Duration = Duration::from_secs(3600);
/// How often tailscaled is asked for the peers' tailnet addresses.
const TAILSCALE_REFRESH: Duration = Duration::from_secs(10);
/// How long tailscaled is waited for before new peers are probed by name, and
/// before a peer's going offline is told without its word: less than the
/// prober's second between two probes of a silent peer, so its return is
/// never told before its going.
const TAILSCALE_WITHIN: Duration = Duration::from_millis(500);
/// The longest the prober sleeps, so a new member of the set is probed soon.
const IDLE: Duration = Duration::from_millis(250);
/// A nudged peer waits for the revision (up to 30 s) before answering.
const NUDGE_TIMEOUT: Duration = Duration::from_secs(35);

/// A revision that became the set in force, and whether the Git source gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedRevision {
    pub revision: String,
    pub from_git: bool,
}

/// What the prober reads and writes, handed over by whoever runs it.
pub struct ProberHandles {
    /// The table it keeps up to date.
    pub peers: Peers,
    pub metrics: Metrics,
    /// The key a nudge is sent with.
    pub api_key: ApiKey,
    /// The set in force, for its Tailscale discovery settings.
    pub set_in_force: SetInForce,
    /// Each revision that becomes the set in force: one from Git is nudged to
    /// the online peers.
    pub applied_revisions: watch::Receiver<Option<AppliedRevision>>,
    /// Where a peer's going offline and coming back are recorded.
    pub events: EventSink,
}

/// A peer's answer to a health probe.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub health: Health,
    pub rtt: Duration,
}

/// One health probe of a peer at `authority` (`host:port`); an error says why
/// it did not answer.
pub trait Probe: Send + Sync + 'static {
    fn probe(&self, authority: &str) -> impl Future<Output = Result<Answer, String>> + Send;
}

/// A change worth one log line and one event.
#[derive(Clone, Debug, PartialEq)]
pub enum Transition {
    /// First answer, or an answer after being offline for `after` (None at start).
    Online { after: Option<Duration> },
    /// It stopped answering (or never answered), for this reason.
    Offline { reason: String },
    /// It still does not answer, `after` (a whole number of [`REMINDER`]s)
    /// since it went at `since` (the wall clock then).
    StillOffline { since: SystemTime, after: Duration },
}

/// What the prober knows of one peer between probes.
#[derive(Clone, Debug)]
pub struct ProbeState {
    /// None until the first probe finished.
    online: Option<bool>,
    /// While it is offline, since when.
    offline: Option<Away>,
    /// When the next probe is due.
    pub next: Instant,
}

/// When a peer went away: on the monotonic clock, which times the
/// reminders, and on the wall clock, which users read.
#[derive(Clone, Copy, Debug)]
struct Away {
    since: Instant,
    wall: SystemTime,
    /// How many reminders were given.
    reminded: u32,
}

impl ProbeState {
    /// A peer to probe now.
    pub fn new(now: Instant) -> Self {
        ProbeState { online: None, offline: None, next: now }
    }

    /// Takes the result of a probe started at `started` and finished at `now`
    /// (`wall` being the wall clock then): schedules the next one and returns
    /// the transition, if the peer's state changed or a reminder is due.
    pub fn step(
        &mut self,
        started: Instant,
        now: Instant,
        wall: SystemTime,
        result: &Result<Answer, String>,
    ) -> Option<Transition> {
        match result {
            Ok(_) => {
                self.next = now + ONLINE_INTERVAL;
                let was = self.online.replace(true);
                let after = self.offline.take().map(|away| now - away.since);
                (was != Some(true)).then_some(Transition::Online { after })
            }
            Err(reason) => {
                self.next = (started + OFFLINE_RETRY).max(now);
                let was = self.online.replace(false);
                match &mut self.offline {
                    Some(away) if was == Some(false) => {
                        let due = REMINDER * (away.reminded + 1);
                        if now - away.since < due {
                            return None;
                        }
                        away.reminded += 1;
                        Some(Transition::StillOffline { since: away.wall, after: due })
                    }
                    _ => {
                        self.offline = Some(Away { since: now, wall, reminded: 0 });
                        Some(Transition::Offline { reason: reason.clone() })
                    }
                }
            }
        }
    }

    /// When the peer stopped answering, on the wall clock, while it is offline.
    pub fn unreachable_since(&self) -> Option<SystemTime> {
        self.offline.map(|away| away.wall)
    }
}

/// The probe over HTTP, with [`PROBE_TIMEOUT`] and the mesh key.
#[derive(Clone)]
pub struct HttpProbe {
    http: reqwest::Client,
    key: ApiKey,
}

impl HttpProbe {
    /// Probes with `key`, so a peer adds what only the mesh may see (its
    /// source) to its answer.
    pub fn new(key: ApiKey) -> Self {
        let http = net::http_client(PROBE_TIMEOUT).timeout(PROBE_TIMEOUT).build().expect("a plain HTTP client builds");
        HttpProbe { http, key }
    }
}

impl Probe for HttpProbe {
    async fn probe(&self, authority: &str) -> Result<Answer, String> {
        let started = Instant::now();
        let mut request = self.http.get(format!("http://{authority}/mesh/health"));
        if let Some(key) = self.key.get() {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(|e| root_cause(&e))?;
        if !response.status().is_success() {
            return Err(format!("health answered {}", response.status()));
        }
        let health: Health = response.json().await.map_err(|e| format!("unexpected health answer: {e}"))?;
        Ok(Answer { health, rtt: started.elapsed() })
    }
}

/// Probes the peers in `handles.peers` until `shutdown` turns true, and tells
/// online peers to fetch when a revision from the Git source is applied here.
pub async fn run<P: Probe>(handles: ProberHandles, probe: P, mut shutdown: watch::Receiver<bool>) {
    let probe = Arc::new(probe);
    let mut states: HashMap<String, ProbeState> = HashMap::new();
    let mut probing = JoinSet::new();
    // The nudges under way: aborted when the prober returns.
    let mut nudges = JoinSet::new();
    // The probes under way, by task, with their peer and start: the peer is
    // not due again until the probe reports back (or its task fails).
    let mut in_flight: HashMap<tokio::task::Id, (String, Instant)> = HashMap::new();
    // The Tailscale lookups under way, each in a task of its own (the
    // periodic refresh, one at a time, and one per peer gone offline): a slow
    // tailscaled holds up no probe and no verdict. Aborted when the prober
    // returns.
    let mut refreshing = JoinSet::new();
    let mut revisions = handles.applied_revisions.clone();
    // Before the first probes, and when a new set may turn discovery on or
    // name new peers.
    let mut look_up_first = true;
    let mut next_tailscale = Instant::now();
    loop {
        if std::mem::take(&mut look_up_first) {
            look_up_before_probing(&handles).await;
            next_tailscale = Instant::now() + TAILSCALE_REFRESH;
        }
        let now = Instant::now();
        if now >= next_tailscale && refreshing.is_empty() {
            next_tailscale = now + TAILSCALE_REFRESH;
            refreshing.spawn(refresh_tailnet_addresses(handles.peers.clone(), handles.set_in_force.clone()));
        }
        let peers = handles.peers.all();
        states.retain(|name, _| peers.iter().any(|p| &p.name == name));
        for peer in &peers {
            let state = states.entry(peer.name.clone()).or_insert_with(|| ProbeState::new(now));
            if state.next <= now && !in_flight.values().any(|(name, _)| *name == peer.name) {
                let (probe, authority) = (probe.clone(), peer.authority());
                let task = probing.spawn(async move { probe.probe(&authority).await });
                in_flight.insert(task.id(), (peer.name.clone(), now));
            }
        }
        let waiting = states.iter().filter(|(name, _)| !in_flight.values().any(|(n, _)| n == *name));
        let wake = waiting.map(|(_, s)| s.next).min().unwrap_or(now + IDLE).min(now + IDLE);
        let done = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            Some(done) = probing.join_next_with_id() => done,
            Some(_nudged) = nudges.join_next() => continue,
            Some(_refreshed) = refreshing.join_next() => continue,
            Ok(()) = revisions.changed() => {
                look_up_first = true;
                let applied = revisions.borrow_and_update().clone();
                if let Some(revision) = applied.filter(|a| a.from_git).map(|a| a.revision) {
                    nudge(&handles.peers, &revision, handles.api_key.get().as_deref(), &mut nudges);
                }
                continue;
            }
            asked = handles.peers.probe_requested() => {
                // One that woke, or every one after this node resumed: due now.
                let now = Instant::now();
                for (_, state) in states.iter_mut().filter(|(name, _)| asked.contains(*name)) {
                    state.next = now;
                }
                continue;
            }
            () = tokio::time::sleep_until(wake) => continue,
        };
        let (id, result) = match done {
            Ok((id, result)) => (id, result),
            Err(error) => (error.id(), Err(format!("the probe failed: {error}"))),
        };
        if let Some((name, started)) = in_flight.remove(&id)
            && let Some(state) = states.get_mut(&name)
        {
            let transition = state.step(started, Instant::now(), SystemTime::now(), &result);
            // Down first: what waits on it (a fallback, a handoff) must not
            // wait for tailscaled.
            let untold = record(&handles, &name, &result, state.unreachable_since(), transition);
            if let Some(reason) = untold {
                // Tailscale may know why (asleep) or where it went.
                let (peers, set_in_force, events) =
                    (handles.peers.clone(), handles.set_in_force.clone(), handles.events.clone());
                refreshing.spawn(tell_offline(peers, set_in_force, events, name, reason));
                next_tailscale = Instant::now() + TAILSCALE_REFRESH;
            }
        }
    }
}

/// Writes a probe's result (and since when the peer is unreachable) into the
/// table and the metrics; a transition is logged and recorded as an event,
/// once, but for a going offline: its reason is returned, for
/// [`tell_offline`] (a peer that said goodbye has none: that was the event of
/// its going).
fn record(
    handles: &ProberHandles,
    name: &str,
    result: &Result<Answer, String>,
    unreachable_since: Option<SystemTime>,
    transition: Option<Transition>,
) -> Option<String> {
    let last_seen = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let (mut was_asleep, mut asleep_since) = (false, None);
    handles.peers.update(name, |peer| {
        was_asleep = peer.asleep_since.is_some();
        take_result(peer, result, last_seen, unreachable_since);
        peer.probed_while_asleep(result.is_ok(), Instant::now());
        // It said it goes to sleep: down, though it may answer for a moment.
        asleep_since = peer.asleep_since;
        peer.online &= asleep_since.is_none();
    });
    let asleep = asleep_since.is_some();
    if was_asleep && !asleep {
        let grace = humantime::format_duration(SLEEP_CANCELLED_AFTER);
        tracing::info!(peer = name, "the peer answered for {grace} after its goodbye: its sleep was cancelled");
    }
    handles.metrics.peer(name, result.is_ok(), result.as_ref().ok().map(|a| a.rtt));
    let object = format!("Node/{name}");
    match transition {
        // Its goodbye was the event of its going.
        Some(Transition::Offline { .. }) if asleep => {}
        Some(Transition::Offline { reason }) => return Some(reason),
        Some(Transition::StillOffline { since, after }) => {
            // A peer that said goodbye is asleep since then: expected, not a
            // warning.
            let (state, since) = asleep_since.map_or(("unreachable", since), |at| ("asleep", at));
            let message = format!(
                "peer {name} still {state}, since {} ({})",
                crate::clock::local_hh_mm(since),
                humantime::format_duration(after)
            );
            let event = if asleep { Event::normal } else { Event::warning };
            (handles.events)(&object, event("PeerStillOffline", message));
        }
        Some(Transition::Online { after }) => {
            let mut message = match after {
                Some(after) => format!("peer {name} online again after {}", humantime::format_duration(round(after))),
                None => format!("peer {name} online"),
            };
            if let Ok(answer) = result
                && answer.health.api_version != API_VERSION
            {
                message.push_str(&format!(
                    "; it speaks API {} and this node {API_VERSION}: incompatible",
                    answer.health.api_version
                ));
            }
            (handles.events)(&object, Event::normal("PeerOnline", message));
        }
        None => {}
    }
    None
}

/// Asks Tailscale where the peers are before new ones are probed by name
/// (MagicDNS may fail where the tailnet IP works), waiting [`TAILSCALE_WITHIN`]
/// at most.
async fn look_up_before_probing(handles: &ProberHandles) {
    let lookup = refresh_tailnet_addresses(handles.peers.clone(), handles.set_in_force.clone());
    let _ = tokio::time::timeout(TAILSCALE_WITHIN, lookup).await;
}

/// Tells of peer `name`'s going offline (`reason`) once Tailscale was asked,
/// for [`TAILSCALE_WITHIN`] at most, where it is and whether it sees it
/// offline too: the table already says it is down, so a slow tailscaled
/// delays this event alone, and never past the peer's next probe.
async fn tell_offline(peers: Peers, set_in_force: SetInForce, events: EventSink, name: String, mut reason: String) {
    let _ = tokio::time::timeout(TAILSCALE_WITHIN, refresh_tailnet_addresses(peers.clone(), set_in_force)).await;
    if peers.get(&name).and_then(|p| p.tailnet_online) == Some(false) {
        reason.push_str("; Tailscale sees it offline too (asleep?)");
    }
    events(&format!("Node/{name}"), Event::warning("PeerOffline", format!("peer {name} offline: {reason}")));
}

/// Writes what one probe found into the peer's state.
fn take_result(
    peer: &mut PeerState,
    result: &Result<Answer, String>,
    last_seen: String,
    unreachable_since: Option<SystemTime>,
) {
    match result {
        Ok(answer) => {
            peer.online = true;
            peer.last_seen = Some(never_earlier(peer.last_seen.as_deref(), last_seen));
            peer.rtt_ms = Some(answer.rtt.as_secs_f64() * 1000.0);
            peer.revision.clone_from(&answer.health.revision);
            peer.version = Some(answer.health.version.clone());
            peer.api_version = Some(answer.health.api_version.clone());
            peer.source = answer.health.source.as_deref().cloned();
            peer.placements.clone_from(&answer.health.placements);
            if answer.health.role.is_some() {
                peer.role = answer.health.role;
            }
            peer.last_error = None;
            peer.unreachable_since = None;
        }
        Err(reason) => {
            peer.online = false;
            peer.last_error = Some(reason.clone());
            peer.unreachable_since = unreachable_since;
        }
    }
}

/// `now` (RFC 3339, UTC, whole seconds), unless the wall clock was set back
/// (NTP after a sleep) and `previous` is later: a peer's `lastSeen` never
/// goes backwards. Such times order as strings.
fn never_earlier(previous: Option<&str>, now: String) -> String {
    match previous {
        Some(previous) if previous > now.as_str() => previous.to_owned(),
        _ => now,
    }
}

/// Whole seconds: "online again after 12s", not after 12.003417s.
fn round(duration: Duration) -> Duration {
    Duration::from_secs(duration.as_secs().max(1))
}

/// With `Mesh.spec.discovery.tailscale` on, dials each peer Tailscale knows at
/// its tailnet IPv4: MagicDNS may fail where the IP works. Tailscale's own
/// online flag is only a hint (it lags a waking laptop), so probing goes on.
async fn refresh_tailnet_addresses(peers: Peers, set_in_force: SetInForce) {
    let set = set_in_force();
    let discovery = set.as_ref().and_then(|set| set.mesh.as_ref()).map(|m| m.spec.discovery.clone());
    let Some(discovery) = discovery.filter(|d| d.tailscale) else { return };
    let socket = discovery.local_api_socket.as_deref().map(crate::config::expand_home);
    let Some(client) = TailscaleClient::locate(socket.as_deref()).await else { return };
    let status = match client.status().await {
        Ok(status) => status,
        Err(error) => {
            tracing::debug!(%error, "Tailscale status unavailable; dialling peers at their addresses");
            return;
        }
    };
    for peer in peers.all() {
        let tailnet = status.peer_for(&peer.address);
        let ipv4 = tailnet.and_then(|p| p.ips.iter().find(|ip| matches!(ip, IpAddr::V4(_)))).map(ToString::to_string);
        let tailnet_online = tailnet.map(|p| p.online);
        let dial = ipv4.unwrap_or_else(|| peer.address.clone());
        if dial != peer.dial_host {
            tracing::info!(peer = peer.name, dial, "dialling the peer at its tailnet address");
        }
        peers.update(&peer.name, |p| {
            p.dial_host = dial;
            p.tailnet_online = tailnet_online;
        });
    }
}

/// Tells every online peer to fetch `revision` now, so a push reaches it in
/// seconds rather than at its Git interval. Fire and forget, in `nudges`; a
/// failure is logged once per peer and revision.
fn nudge(peers: &Peers, revision: &str, api_key: Option<&str>, nudges: &mut JoinSet<()>) {
    for peer in peers.all().into_iter().filter(|p| p.online) {
        let client = crate::client::ApiClient::new(&peer.authority(), api_key, NUDGE_TIMEOUT);
        let request = ReconcileRequest { revision: Some(revision.to_owned()) };
        let revision = revision.to_owned();
        nudges.spawn(async move {
            match client.reconcile(&request).await {
                Ok(_) => tracing::info!(peer = peer.name, revision, "peer nudged to fetch"),
                Err(error) => tracing::warn!(peer = peer.name, revision, %error, "could not nudge the peer"),
            }
        });
    }
}

/// `MESH_PEERS`: a JSON list of node names or `host:port`, the peers before
/// any set loads. A name is dialled on `default_port`.
pub fn bootstrap_peers(json: &str, default_port: u16) -> Result<Vec<PeerState>, String> {
    let entries: Vec<String> =
        serde_json::from_str(json).map_err(|e| format!("MESH_PEERS is not a JSON list of strings: {e}"))?;
    entries
        .iter()
        .map(|entry| {
            let (host, port) = match entry.rsplit_once(':') {
                Some((host, port)) if !host.ends_with(':') && !port.is_empty() => {
                    let port = port.parse().map_err(|_| format!("MESH_PEERS: \"{entry}\" has no valid port"))?;
                    (host.trim_start_matches('[').trim_end_matches(']'), port)
                }
                _ => (entry.as_str(), default_port),
            };
            Ok(PeerState::new(host, None, host, port))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::kinds::Role;
    use crate::mesh::wake_up::{TOLD_AGAIN_AFTER, UNANSWERED_REST, WakeUp};

    fn ok() -> Result<Answer, String> {
        let health = Health {
            node: "b".into(),
            role: Some(Role::Satellite),
            version: "0.1.0".into(),
            commit: "1a2b3c4".into(),
            api_version: API_VERSION.into(),
            revision: Some("r1".into()),
            uptime_seconds: 1,
            source: None,
            placements: Default::default(),
        };
        Ok(Answer { health, rtt: Duration::from_millis(3) })
    }

    /// Every peer answers every probe.
    struct AlwaysAnswers;

    impl Probe for AlwaysAnswers {
        async fn probe(&self, _authority: &str) -> Result<Answer, String> {
            ok()
        }
    }

    /// The prober's handles over `peers`, its events given to `events`, and
    /// the sender of the revisions it is told were applied.
    fn prober_handles(peers: &Peers, events: EventSink) -> (watch::Sender<Option<AppliedRevision>>, ProberHandles) {
        let (revisions, applied_revisions) = watch::channel(None);
        let handles = ProberHandles {
            peers: peers.clone(),
            metrics: Metrics::default(),
            api_key: ApiKey::default(),
            set_in_force: Arc::new(|| None),
            applied_revisions,
            events,
        };
        (revisions, handles)
    }

    #[tokio::test]
    async fn a_nudge_under_way_ends_with_the_prober() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peers = Peers::default();
        peers.set_members(vec![PeerState::new("b", None, "127.0.0.1", listener.local_addr().unwrap().port())]);
        let (revisions, handles) = prober_handles(&peers, Arc::new(|_, _| {}));
        let (stop, stopped) = watch::channel(false);
        let prober = tokio::spawn(run(handles, AlwaysAnswers, stopped));
        let within = Duration::from_secs(5);
        tokio::time::timeout(within, async {
            while !peers.get("b").is_some_and(|peer| peer.online) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the peer is online");
        revisions.send_replace(Some(AppliedRevision { revision: "abc".into(), from_git: true }));
        // The peer takes the nudge's connection and never answers.
        let (mut nudge, _) = tokio::time::timeout(within, listener.accept()).await.unwrap().unwrap();

        stop.send_replace(true);
        tokio::time::timeout(within, prober).await.unwrap().unwrap();
        // Closed now, not at the nudge's own timeout.
        let mut rest = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(1), tokio::io::AsyncReadExt::read_to_end(&mut nudge, &mut rest));
        assert!(closed.await.is_ok(), "the nudge's connection closed when the prober returned");
    }

    fn refused() -> Result<Answer, String> {
        Err("Connection refused".into())
    }

    /// Moves the clock to the next probe the state asks for, lets the probe
    /// take `took`, and gives it `result`, as the prober does.
    async fn probe_when_due(
        state: &mut ProbeState,
        took: Duration,
        result: &Result<Answer, String>,
    ) -> Option<Transition> {
        tokio::time::advance(state.next.saturating_duration_since(Instant::now())).await;
        let started = Instant::now();
        tokio::time::advance(took).await;
        state.step(started, Instant::now(), SystemTime::now(), result)
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_is_asked_once_a_second_however_long_it_sleeps() {
        let mut state = ProbeState::new(Instant::now());
        let started = Instant::now();
        let mut probes = Vec::new();
        // Refused at once, or timed out after the whole probe timeout.
        for took in [Duration::ZERO, PROBE_TIMEOUT, Duration::ZERO, Duration::ZERO, PROBE_TIMEOUT, Duration::ZERO] {
            probes.push((Instant::now().max(state.next) - started).as_millis());
            probe_when_due(&mut state, took, &refused()).await;
        }
        assert_eq!(probes, [0, 1000, 2000, 3000, 4000, 5000]);
    }

    #[tokio::test(start_paused = true)]
    async fn each_transition_is_reported_once() {
        let mut state = ProbeState::new(Instant::now());
        let mut transitions = Vec::new();
        for result in [ok(), ok(), refused(), refused(), refused(), ok(), ok()] {
            transitions.push(probe_when_due(&mut state, Duration::ZERO, &result).await);
        }
        assert_eq!(transitions[0], Some(Transition::Online { after: None }));
        assert_eq!(transitions[1], None);
        assert_eq!(transitions[2], Some(Transition::Offline { reason: "Connection refused".into() }));
        assert_eq!(transitions[3..5], [None, None]);
        // Offline from the first failed probe to the answer: three retries.
        assert_eq!(transitions[5], Some(Transition::Online { after: Some(OFFLINE_RETRY * 3) }));
        assert_eq!(transitions[6], None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_goes_silent_is_offline_within_one_and_a_half_seconds() {
        let mut state = ProbeState::new(Instant::now());
        probe_when_due(&mut state, Duration::ZERO, &ok()).await;
        // It hangs right after answering: the next probe times out.
        let hung = Instant::now();
        let went = probe_when_due(&mut state, PROBE_TIMEOUT, &Err("timed out".into())).await;
        assert!(matches!(went, Some(Transition::Offline { .. })));
        assert_eq!(Instant::now() - hung, ONLINE_INTERVAL + PROBE_TIMEOUT);
        assert!(ONLINE_INTERVAL + PROBE_TIMEOUT <= Duration::from_millis(1500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_answering_again_is_online_within_a_second() {
        let mut state = ProbeState::new(Instant::now());
        for _ in 0..50 {
            probe_when_due(&mut state, PROBE_TIMEOUT, &refused()).await;
        }
        // It wakes up right after a failed probe: the next one finds it.
        let woke = Instant::now();
        assert!(matches!(probe_when_due(&mut state, Duration::ZERO, &ok()).await, Some(Transition::Online { .. })));
        assert!(Instant::now() - woke <= OFFLINE_RETRY);
        assert_eq!(state.next - Instant::now(), ONLINE_INTERVAL);
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_never_answered_is_reported_offline_once() {
        let mut state = ProbeState::new(Instant::now());
        assert!(matches!(
            probe_when_due(&mut state, Duration::ZERO, &refused()).await,
            Some(Transition::Offline { .. })
        ));
        assert_eq!(probe_when_due(&mut state, Duration::ZERO, &refused()).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_away_for_hours_is_mentioned_when_it_goes_once_an_hour_and_when_it_returns() {
        let mut state = ProbeState::new(Instant::now());
        probe_when_due(&mut state, Duration::ZERO, &ok()).await;
        let went = Instant::now();
        let mut told = Vec::new();
        // Three and a half hours asleep, some probes timing out.
        while Instant::now() - went < REMINDER * 7 / 2 {
            let took = if told.len() % 2 == 0 { Duration::ZERO } else { PROBE_TIMEOUT };
            if let Some(transition) = probe_when_due(&mut state, took, &refused()).await {
                told.push(((Instant::now() - went).as_secs(), transition));
            }
        }
        let reminders: Vec<u64> =
            told.iter().filter_map(|(at, t)| matches!(t, Transition::StillOffline { .. }).then_some(*at)).collect();
        assert!(matches!(told[0], (0, Transition::Offline { .. })), "{told:?}");
        assert_eq!(reminders.len(), 3, "{told:?}");
        for (hour, at) in (1..).zip(&reminders) {
            assert!(hour * 3600 <= *at && *at <= hour * 3600 + 1, "reminder {hour} at {at}s");
        }
        assert_eq!(told.len(), 4, "nothing else: {told:?}");
        let Transition::StillOffline { after, .. } = &told[1].1 else { unreachable!() };
        assert_eq!(*after, REMINDER);
        assert!(matches!(probe_when_due(&mut state, Duration::ZERO, &ok()).await, Some(Transition::Online { .. })));
        assert_eq!(state.unreachable_since(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wall_clock_jump_moves_no_probe_and_no_reminder() {
        // Two peers probed at the same monotonic times; the wall clock of the
        // second is set forward a day, then back two, while it is away.
        let (mut steady, mut jumped) = (ProbeState::new(Instant::now()), ProbeState::new(Instant::now()));
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_548_379);
        let mut seen = (Vec::new(), Vec::new());
        for probe in 0..4000u64 {
            tokio::time::advance(steady.next.saturating_duration_since(Instant::now())).await;
            let (started, now) = (Instant::now(), Instant::now());
            let result = if probe < 2 { ok() } else { refused() };
            let steady_wall = wall + Duration::from_secs(probe);
            let day = Duration::from_secs(86_400);
            let jumped_wall = match probe {
                0..1000 => steady_wall,
                1000..2000 => steady_wall + day,
                _ => steady_wall - day,
            };
            let a = steady.step(started, now, steady_wall, &result);
            let b = jumped.step(started, now, jumped_wall, &result);
            assert_eq!(steady.next, jumped.next, "probe {probe} scheduled alike");
            seen.0.push(a.map(|t| std::mem::discriminant(&t)));
            seen.1.push(b.map(|t| std::mem::discriminant(&t)));
        }
        assert_eq!(seen.0, seen.1, "the same transitions at the same probes");
        assert_eq!(seen.0.iter().flatten().count(), 3, "online, offline, one reminder");
        assert_eq!(jumped.unreachable_since(), steady.unreachable_since(), "the time it went is kept as it was");
    }

    /// Every probe fails while `asleep` holds, as a sleeping peer's would.
    struct Sleeper {
        asleep: Arc<std::sync::atomic::AtomicBool>,
    }

    /// The sleeper answers again; 5 s later the prober is stopped.
    async fn back_then_stopped(
        asleep: &std::sync::atomic::AtomicBool,
        stop: watch::Sender<bool>,
        prober: tokio::task::JoinHandle<()>,
    ) {
        asleep.store(false, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(5)).await;
        stop.send_replace(true);
        prober.await.unwrap();
    }

    impl Probe for Sleeper {
        async fn probe(&self, _authority: &str) -> Result<Answer, String> {
            if self.asleep.load(std::sync::atomic::Ordering::SeqCst) { refused() } else { ok() }
        }
    }

    /// What the daemon's log would hold: a buffer for a tracing subscriber.
    #[derive(Clone, Default)]
    struct LogLines(Arc<std::sync::Mutex<Vec<u8>>>);

    impl LogLines {
        /// What this thread logs at info level from now on, while the guard lives.
        fn capture() -> (LogLines, tracing::subscriber::DefaultGuard) {
            let lines = LogLines::default();
            let writer = lines.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::INFO)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish();
            (lines, tracing::subscriber::set_default(subscriber))
        }

        /// The events recorded on `Node/mini` and the log lines that name it.
        fn told_about_mini(
            &self,
            store: &std::sync::Mutex<crate::controller::status::StatusStore>,
        ) -> (Vec<crate::controller::status::EventRecord>, Vec<String>) {
            let events = store.lock().unwrap().events(Some("Node/mini"), 1000);
            let log = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            (events, log.lines().filter(|line| line.contains("mini")).map(str::to_owned).collect())
        }
    }

    impl std::io::Write for LogLines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The figure of issue #19 point 4, on a paused clock: the prober's own
    /// loop, with the daemon's event log (which logs each event once), over
    /// an hour and a half of a peer asleep, then its return. Prints the counts
    /// (`cargo nextest run --no-capture quiet`).
    #[tokio::test(start_paused = true)]
    async fn quiet_a_peer_asleep_for_an_hour_and_a_half_is_told_when_it_goes_once_more_and_when_it_returns() {
        let (lines, _logging) = LogLines::capture();
        let store = Arc::new(std::sync::Mutex::new(crate::controller::status::StatusStore::default()));
        let peers = Peers::default();
        peers.set_members(vec![PeerState::new("mini", None, "127.0.0.1", 9)]);
        let recorder = store.clone();
        let (_revisions, handles) =
            prober_handles(&peers, Arc::new(move |object, event| recorder.lock().unwrap().event(object, event)));
        let asleep = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (stop, stopped) = watch::channel(false);
        let prober = tokio::spawn(run(handles, Sleeper { asleep: asleep.clone() }, stopped));
        tokio::time::sleep(Duration::from_secs(5)).await;
        asleep.store(true, std::sync::atomic::Ordering::SeqCst);
        let away = Duration::from_secs(5400);
        tokio::time::sleep(away).await;
        let probed = peers.get("mini").unwrap();
        assert!(!probed.online && probed.unreachable_since.is_some(), "{probed:?}");
        back_then_stopped(&asleep, stop, prober).await;

        let (events, about) = lines.told_about_mini(&store);
        let reasons: Vec<&str> = events.iter().map(|e| e.reason.as_str()).collect();
        eprintln!(
            "a peer asleep {} (probed every second), then back: {} log lines and {} events about it: {reasons:?}",
            humantime::format_duration(away),
            about.len(),
            events.len(),
        );
        assert_eq!(reasons, ["PeerOnline", "PeerOffline", "PeerStillOffline", "PeerOnline"]);
        assert!(events[2].message.starts_with("peer mini still unreachable, since "), "{}", events[2].message);
        assert!(events[2].message.ends_with(" (1h)"), "{}", events[2].message);
        assert_eq!(about.len(), events.len(), "one line per event and nothing else:\n{}", about.join("\n"));
    }

    /// Issue #19 point 4 with Wake-on-LAN: the prober's loop and the wakes
    /// of calls through the mesh, with the daemon's event log, over an hour
    /// and a half of a node with `wake` that never answers it (it is off), a
    /// call every minute, then its return. Its magic packets go to a
    /// loopback listener. Prints the counts
    /// (`cargo nextest run --no-capture quiet`).
    #[tokio::test(start_paused = true)]
    async fn quiet_a_node_woken_in_vain_for_an_hour_and_a_half_is_told_of_one_wake_and_one_an_hour_later() {
        let (lines, _logging) = LogLines::capture();
        let store = Arc::new(std::sync::Mutex::new(crate::controller::status::StatusStore::default()));
        let recorder = store.clone();
        let events: EventSink = Arc::new(move |object, event| recorder.lock().unwrap().event(object, event));
        let packets = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        packets.set_nonblocking(true).unwrap();
        let text = format!(
            "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {{name: here}}\nspec: {{role: primary, address: 127.0.0.1}}\n\
             ---\napiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {{name: mini}}\n\
             spec: {{role: satellite, address: 127.0.0.1, apiPort: 9, \
             wake: {{mac: \"aa:bb:cc:dd:ee:0f\", address: 127.0.0.1, port: {}, timeout: 15s}}}}\n",
            packets.local_addr().unwrap().port()
        );
        let validation =
            crate::manifest::validate(&[crate::manifest::SourceFile { path: "m.yaml".into(), text }], Vec::new());
        assert!(validation.is_valid(), "{:?}", validation.diagnostics);
        let set = validation.set;
        let peers = Peers::default();
        peers.set_members(vec![PeerState::new("mini", None, "127.0.0.1", 9)]);
        let (_revisions, handles) = prober_handles(&peers, events.clone());
        let asleep = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (stop, stopped) = watch::channel(false);
        let prober = tokio::spawn(run(handles, Sleeper { asleep: asleep.clone() }, stopped));
        let wake_up = WakeUp::new(peers.clone(), events);
        tokio::time::sleep(Duration::from_secs(5)).await;
        asleep.store(true, std::sync::atomic::Ordering::SeqCst);
        let went = Instant::now();
        let away = Duration::from_secs(5400);
        let (mut calls, mut waited, mut sent) = (0, 0, 0);
        for minute in 1..=away.as_secs() / 60 {
            tokio::time::sleep_until(went + Duration::from_secs(60 * minute)).await;
            calls += 1;
            if let Some(wait) = wake_up.before_fallback(&set, "mini").await {
                assert!(!wait.answered, "{wait:?}");
                waited += 1;
            }
            while packets.recv(&mut [0; 200]).is_ok() {
                sent += 1;
            }
        }
        tokio::time::sleep_until(went + away).await;
        back_then_stopped(&asleep, stop, prober).await;

        let (events, about) = lines.told_about_mini(&store);
        let reasons: Vec<&str> = events.iter().map(|e| e.reason.as_str()).collect();
        eprintln!(
            "a node with wake off for {}, a call a minute ({calls} calls, {waited} waited for {sent} wakes), then back: \
             {} log lines and {} events about it: {reasons:?}",
            humantime::format_duration(away),
            about.len(),
            events.len(),
        );
        assert_eq!(TOLD_AGAIN_AFTER, REMINDER, "wakes are told again as often as the prober reminds");
        assert_eq!(sent, 18, "a wake every {} while calls come", humantime::format_duration(UNANSWERED_REST));
        let count = |reason: &str| reasons.iter().filter(|r| **r == reason).count();
        assert_eq!(reasons[..4], ["PeerOnline", "PeerOffline", "WakeSent", "WakeUnanswered"], "{reasons:?}");
        assert_eq!(reasons.last(), Some(&"PeerOnline"), "{reasons:?}");
        assert_eq!((count("WakeSent"), count("WakeUnanswered"), count("PeerStillOffline")), (2, 2, 1), "{reasons:?}");
        assert_eq!(events.len(), 8, "{reasons:?}");
        assert_eq!(about.len(), events.len(), "one line per event and nothing else:\n{}", about.join("\n"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_is_down_at_its_first_refused_probe_however_long_tailscaled_takes_to_answer() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("tailscaled.sock");
        // tailscaled takes the connections and never answers: each status
        // call waits for its whole timeout.
        let _tailscaled = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let text = format!(
            "apiVersion: agentmesh/v1alpha1\nkind: Mesh\nmetadata: {{name: mesh}}\n\
             spec: {{discovery: {{tailscale: true, localApiSocket: '{}'}}}}\n",
            socket.display()
        );
        let validation =
            crate::manifest::validate(&[crate::manifest::SourceFile { path: "m.yaml".into(), text }], vec![]);
        assert!(validation.is_valid(), "{:?}", validation.diagnostics);
        let set = Arc::new(validation.set);
        let store = Arc::new(std::sync::Mutex::new(crate::controller::status::StatusStore::default()));
        let peers = Peers::default();
        peers.set_members(vec![PeerState::new("mini", None, "127.0.0.1", 9)]);
        let recorder = store.clone();
        let (_revisions, mut handles) =
            prober_handles(&peers, Arc::new(move |object, event| recorder.lock().unwrap().event(object, event)));
        handles.set_in_force = Arc::new(move || Some(set.clone()));
        let (stop, stopped) = watch::channel(false);
        let asleep = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let prober = tokio::spawn(run(handles, Sleeper { asleep }, stopped));

        // Tailscale is waited for TAILSCALE_WITHIN before the first probe,
        // not for its own 3 s timeout; the probe is refused at once.
        let first_probe = TAILSCALE_WITHIN + Duration::from_millis(100);
        let down = tokio::time::timeout(first_probe, peers.until("mini", PeerState::known_down)).await;
        assert!(down.is_ok(), "known down at its first refused probe, not after tailscaled's timeout");
        // Its going is told once tailscaled was given up on, before its next probe.
        tokio::time::sleep(TAILSCALE_WITHIN + Duration::from_millis(100)).await;
        let events = store.lock().unwrap().events(Some("Node/mini"), 10);
        let reasons: Vec<&str> = events.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(reasons, ["PeerOffline"]);
        assert_eq!(events[0].message, "peer mini offline: Connection refused");
        stop.send_replace(true);
        prober.await.unwrap();
    }

    #[test]
    fn the_hourly_reminder_calls_a_peer_that_said_goodbye_asleep_since_then_not_unreachable() {
        let store = Arc::new(std::sync::Mutex::new(crate::controller::status::StatusStore::default()));
        let peers = Peers::default();
        peers.set_members(vec![
            PeerState::new("mini", None, "127.0.0.1", 9),
            PeerState::new("desk", None, "127.0.0.1", 9),
        ]);
        let recorder = store.clone();
        let events: EventSink = Arc::new(move |object, event| recorder.lock().unwrap().event(object, event));
        let (_revisions, handles) = prober_handles(&peers, events);
        let went_to_sleep = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_548_379);
        let went_silent = went_to_sleep + Duration::from_secs(300);
        assert!(peers.said_goodbye("mini", went_to_sleep));
        let reminder = Transition::StillOffline { since: went_silent, after: REMINDER };
        for name in ["mini", "desk"] {
            record(&handles, name, &refused(), Some(went_silent), Some(reminder.clone()));
        }

        let store = store.lock().unwrap();
        let told = |name: &str| store.events(Some(&format!("Node/{name}")), 10).pop().unwrap();
        let (asleep, unreachable) = (told("mini"), told("desk"));
        let hh_mm = crate::clock::local_hh_mm;
        assert_eq!(asleep.message, format!("peer mini still asleep, since {} (1h)", hh_mm(went_to_sleep)));
        assert_eq!(asleep.event_type, "Normal", "a peer that said goodbye is expected away");
        assert_eq!(unreachable.message, format!("peer desk still unreachable, since {} (1h)", hh_mm(went_silent)));
        assert_eq!(unreachable.event_type, "Warning");
    }

    #[test]
    fn last_seen_never_goes_backwards_when_the_wall_clock_is_set_back() {
        let cases = [
            (None, "2026-12-06T09:00:00Z", "2026-12-06T09:00:00Z"),
            (Some("2026-12-06T08:59:59Z"), "2026-12-06T09:00:00Z", "2026-12-06T09:00:00Z"),
            (Some("2026-12-06T09:00:05Z"), "2026-12-06T09:00:00Z", "2026-12-06T09:00:05Z"),
            (Some("2026-12-06T09:00:00Z"), "2026-12-06T09:00:00Z", "2026-12-06T09:00:00Z"),
        ];
        for (previous, now, expected) in cases {
            assert_eq!(never_earlier(previous, now.to_owned()), expected, "{previous:?} then {now}");
        }
    }

    #[test]
    fn mesh_peers_take_names_and_host_port() {
        let peers = bootstrap_peers(r#"["mini", "127.0.0.3:8100", "[::1]:9000"]"#, 8000).unwrap();
        let dialled: Vec<String> = peers.iter().map(PeerState::authority).collect();
        assert_eq!(dialled, ["mini:8000", "127.0.0.3:8100", "[::1]:9000"]);
        assert!(bootstrap_peers("mini", 8000).is_err());
        assert!(bootstrap_peers(r#"["a:b"]"#, 8000).is_err());
    }
}
