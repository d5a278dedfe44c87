//! Wake-on-LAN before falling back: when the node a call would rather use is
//! known to be down and its Node has `wake`, send its magic packet — from
//! this machine when it is on that LAN, else through a Tailscale peer that
//! routes the wake address — and hold the call until the node answers probes
//! or its `timeout` passes. No wake sent, no wait: the usual fallback holds.
//!
//! The decisions are pure and table-tested: whether to send, join a wake
//! already sent or go on ([`plan`]), how to send ([`via`], [`relay_peer`]).
//! [`WakeUp`] does the I/O: one wake per node per `timeout` window, shared by
//! every call that comes meanwhile (single flight, no packet storm).
//!
//! A node that is off gets a wake every [`UNANSWERED_REST`] while calls come;
//! telling each would be an error storm. So in one absence of the node (from
//! its going until the prober sees it answer again) the wakes are told as
//! events (`WakeSent`, then `WakeUnanswered`, or `WakeFailed`), which the event
//! log also logs, only for the first wake and at most once every
//! [`TOLD_AGAIN_AFTER`] after it ([`worth_telling`]); the others go to the
//! debug log.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::peers::Peers;
use crate::api::wire::WakeWait;
use crate::event::{Event, EventSink};
use crate::manifest::ManifestSet;
use crate::manifest::kinds::NodeWake;
use crate::net;
use crate::tailscale::{TailnetPeer, TailnetStatus, TailscaleClient};
use crate::wake;

/// Set on a pass-through's answer when the call waited for a wake: what
/// [`WakeWait::header_value`] says. (A `/mesh/route` answer has its `wake` field.)
pub const WAKE_HEADER: &str = "x-mesh-wake";

/// A node that did not answer its wake is not woken again, and no call waits
/// for it, for this long: a machine that is off (not asleep) must not cost
/// every call its `timeout`.
pub const UNANSWERED_REST: Duration = Duration::from_secs(300);

/// How long a wake may take to go out, all its steps together (resolving the
/// address, listing this machine's interfaces, asking tailscaled, then a
/// Tailscale peer): past that the call goes on without it, since only a wake
/// sent is worth a wait.
pub const SEND_WITHIN: Duration = Duration::from_secs(1);

/// How often the wakes of a node that stays away are told again: as often as
/// the prober's reminder that it is still away.
pub const TOLD_AGAIN_AFTER: Duration = Duration::from_secs(3600);

/// The last wake of one node told in the event log, and in which absence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Told {
    /// When that absence began, which tells it from the next one.
    pub absence: Option<SystemTime>,
    pub at: Instant,
}

/// Whether a wake at `now` of a node away since `absence` is told as events
/// (and info log lines) or only at debug level: the first wake of an
/// absence is, then one per [`TOLD_AGAIN_AFTER`] at most. A new absence (the
/// node answered in between) starts again.
pub fn worth_telling(last: Option<&Told>, absence: Option<SystemTime>, now: Instant) -> bool {
    match last {
        Some(told) if told.absence == absence => now >= told.at + TOLD_AGAIN_AFTER,
        _ => true,
    }
}

/// The last wake of one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastWake {
    /// When the absence it was sent in began: a wake of an earlier absence
    /// (the node came back, then went again) neither opens a window nor
    /// rests the node now.
    pub absence: Option<SystemTime>,
    pub at: Instant,
    /// The end of its window: `at` + the Node's `timeout`.
    pub until: Instant,
    /// How it went out ("LAN", "Tailscale peer lan-box"); None when it could
    /// not be sent.
    pub via: Option<String>,
}

/// What a call does about the node it would rather use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// No wake and no wait: the node is not known down, has no `wake`, was
    /// woken in vain lately, or its last wake could not be sent.
    GoOn,
    /// Send a wake, then wait for the node.
    Send,
    /// A wake went out `via` a moment ago: wait with it until `until`.
    Join { until: Instant, via: String },
}

/// Whether a call for a node that is `known_down` (since `absence` began)
/// and `has_wake` sends a wake, joins the one sent in the window still open,
/// or goes on.
pub fn plan(
    known_down: bool,
    has_wake: bool,
    last: Option<&LastWake>,
    absence: Option<SystemTime>,
    now: Instant,
) -> Plan {
    if !known_down || !has_wake {
        return Plan::GoOn;
    }
    match last {
        Some(last) if last.absence != absence => Plan::Send,
        Some(LastWake { until, via: Some(via), .. }) if now < *until => Plan::Join { until: *until, via: via.clone() },
        Some(LastWake { at, .. }) if now < *at + UNANSWERED_REST => Plan::GoOn,
        _ => Plan::Send,
    }
}

/// How a wake goes out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    /// From this machine, which has an interface on the wake address's network.
    Lan(SocketAddr),
    /// Through the PeerAPI at `peerapi` of Tailscale peer `peer`.
    Tailscale { peer: String, peerapi: String },
    /// It cannot go out: why.
    Nowhere(String),
}

/// How a wake to `to` goes out: from here when `on_lan`, else through a
/// Tailscale peer on that LAN (`relay`: its name and PeerAPI URL).
pub fn via(to: SocketAddr, on_lan: bool, relay: Option<(&str, &str)>) -> Via {
    if on_lan {
        return Via::Lan(to);
    }
    match relay {
        Some((peer, peerapi)) => Via::Tailscale { peer: peer.to_owned(), peerapi: peerapi.to_owned() },
        None => Via::Nowhere(format!(
            "no interface of this machine is on the network of {}, and no online Tailscale peer routes it",
            to.ip()
        )),
    }
}

/// The Tailscale peer to ask for a wake of `address`: online, routing a
/// network that holds it (a subnet route: not only its own address, and not
/// an exit node's default route, which says nothing of its LAN), with a
/// PeerAPI, and not the sleeper itself (`sleeper`: its Node's address) — the
/// coordination server may not have seen it go yet. Its IPv4 PeerAPI first.
pub fn relay_peer<'a>(status: &'a TailnetStatus, address: IpAddr, sleeper: &str) -> Option<(&'a TailnetPeer, &'a str)> {
    let sleeper = status.peer_for(sleeper).map(|peer| &peer.dns_name);
    status
        .peers
        .iter()
        .filter(|peer| peer.online && Some(&peer.dns_name) != sleeper)
        .filter(|peer| peer.routes.iter().any(|route| route.len > 0 && !route.is_host() && route.contains(address)))
        .find_map(|peer| {
            let ipv4 = peer.peerapi_urls.iter().find(|url| !url.contains('['));
            ipv4.or(peer.peerapi_urls.first()).map(|url| (peer, url.as_str()))
        })
}

/// The wakes of one node's calls. Cheap to clone; clones share the wakes.
#[derive(Clone)]
pub struct WakeUp {
    peers: Peers,
    events: EventSink,
    http: reqwest::Client,
    /// The last wake of each node. Held while a wake is sent, so calls that
    /// come meanwhile join it rather than send their own.
    last: Arc<Mutex<HashMap<String, LastWake>>>,
    /// The last wake of each node that was told ([`worth_telling`]).
    told: Arc<std::sync::Mutex<HashMap<String, Told>>>,
}

impl WakeUp {
    pub fn new(peers: Peers, events: EventSink) -> WakeUp {
        let http = net::http_client(net::CONNECT_TIMEOUT).build().expect("a plain HTTP client builds");
        WakeUp { peers, events, http, last: Arc::default(), told: Arc::default() }
    }

    /// Wakes `node` if it is known down and its Node in `set` has `wake`,
    /// and waits until it answers probes or its window ends. None when no
    /// wake was sent, so the call goes on at once.
    pub async fn before_fallback(&self, set: &ManifestSet, node: &str) -> Option<WakeWait> {
        let wake = set.nodes.get(node).and_then(|object| object.spec.wake.as_ref());
        let absence = || self.peers.absence(node).and_then(|absence| absence.since);
        if plan(self.peers.known_down(node), wake.is_some(), None, absence(), Instant::now()) == Plan::GoOn {
            return None;
        }
        let wake = wake?;
        let started = Instant::now();
        let mut last = self.last.lock().await;
        let absence = absence();
        // Whether this call sent the wake, and then whether it is told.
        let (until, via, sent_here) =
            match plan(self.peers.known_down(node), true, last.get(node), absence, Instant::now()) {
                Plan::GoOn => return None,
                Plan::Join { until, via } => (until, via, None),
                Plan::Send => {
                    let at = Instant::now();
                    let tell = self.tell(node, absence, at);
                    let via = self.send(set, node, wake, tell).await;
                    let until = at + wake.timeout.duration;
                    last.insert(node.to_owned(), LastWake { absence, at, until, via: via.clone() });
                    (until, via?, Some(tell))
                }
            };
        drop(last);
        let answered = self.until_online(node, until).await;
        let waited = started.elapsed();
        if answered {
            self.last.lock().await.remove(node);
        } else if let Some(tell) = sent_here {
            let message = format!(
                "{node} did not answer within {} of its wake",
                humantime::format_duration(wake.timeout.duration)
            );
            self.record(node, tell, Event::warning("WakeUnanswered", message));
        }
        let waited_ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
        Some(WakeWait { node: node.to_owned(), via, waited_ms, answered })
    }

    /// Whether the wake of `node` (away since `absence` began) sent at `now`
    /// is told ([`worth_telling`]); if so, it is the last told.
    fn tell(&self, node: &str, absence: Option<SystemTime>, now: Instant) -> bool {
        let mut told = self.told.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let tell = worth_telling(told.get(node), absence, now);
        if tell {
            told.insert(node.to_owned(), Told { absence, at: now });
        }
        tell
    }

    /// Records `event` on `node` when its wake is told (the event log logs it
    /// too), else logs it at debug level only.
    fn record(&self, node: &str, tell: bool, event: Event) {
        if tell {
            (self.events)(&format!("Node/{node}"), event);
        } else {
            tracing::debug!(node, reason = event.reason, "{}", event.message);
        }
    }

    /// Sends `node`'s wake the way [`via`] picks, within [`SEND_WITHIN`], and
    /// records the event when it is told: how it went out, or None when it
    /// could not.
    async fn send(&self, set: &ManifestSet, node: &str, wake: &NodeWake, tell: bool) -> Option<String> {
        let sent = tokio::time::timeout(SEND_WITHIN, self.try_send(set, node, wake))
            .await
            .unwrap_or_else(|_| Err(format!("it did not go out within {}", humantime::format_duration(SEND_WITHIN))));
        let event = match &sent {
            Ok((via, detail)) => {
                Event::normal("WakeSent", format!("magic packet for {} {detail}, via {via}", wake.mac))
            }
            Err(reason) => {
                Event::warning("WakeFailed", format!("cannot send the magic packet for {}: {reason}", wake.mac))
            }
        };
        self.record(node, tell, event);
        sent.ok().map(|(via, _)| via)
    }

    /// The I/O of a send: where the address is, whether this machine is on
    /// its LAN, which Tailscale peer could relay. How it went out and what
    /// was done, or why not.
    async fn try_send(&self, set: &ManifestSet, node: &str, wake: &NodeWake) -> Result<(String, String), String> {
        let address = wake.address.value.as_str();
        let to = tokio::net::lookup_host((address, wake.port.0))
            .await
            .map_err(|error| format!("cannot resolve wake address {address}: {error}"))?
            .next()
            .ok_or_else(|| format!("wake address {address} resolves to no address"))?;
        let interfaces = tokio::task::spawn_blocking(crate::sys::interface_addresses)
            .await
            .map_err(|error| format!("listing the interfaces failed: {error}"))?
            .map_err(|error| format!("cannot list this machine's interfaces: {error}"))?;
        let on_lan = wake::on_lan(&interfaces, to.ip());
        let status = if on_lan { None } else { self.tailnet_status(set).await };
        let sleeper = set.nodes.get(node).map(|object| object.spec.address.value.as_str()).unwrap_or(node);
        let relay = status.as_ref().and_then(|status| relay_peer(status, to.ip(), sleeper));
        match via(to, on_lan, relay.map(|(peer, url)| (peer.short_name(), url))) {
            Via::Lan(to) => {
                let bytes =
                    wake::send_async(&wake.mac, to).await.map_err(|error| format!("sending to {to}: {error}"))?;
                Ok(("LAN".to_owned(), format!("sent to {to} ({bytes} bytes)")))
            }
            Via::Tailscale { peer, peerapi } => {
                let sent_on =
                    wake::relay(&self.http, &peerapi, &wake.mac).await.map_err(|error| format!("{error:#}"))?;
                Ok((format!("Tailscale peer {peer}"), format!("sent by {peer} on {}", sent_on.join(", "))))
            }
            Via::Nowhere(reason) => Err(reason),
        }
    }

    /// What this node's tailscaled knows, when the set's Mesh turns
    /// Tailscale discovery on; None otherwise or when it does not answer.
    async fn tailnet_status(&self, set: &ManifestSet) -> Option<TailnetStatus> {
        let discovery = &set.mesh.as_ref()?.spec.discovery;
        if !discovery.tailscale {
            return None;
        }
        let socket = discovery.local_api_socket.as_deref().map(crate::config::expand_home);
        let client = TailscaleClient::locate(socket.as_deref()).await?;
        client.status().await.inspect_err(|error| tracing::debug!(%error, "no Tailscale status for a wake")).ok()
    }

    /// Waits until `node` answers probes (true) or `until` passes (false).
    async fn until_online(&self, node: &str, until: Instant) -> bool {
        tokio::time::timeout_at(until, self.peers.until(node, |peer| peer.online)).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::IpPrefix;

    #[test]
    fn a_call_sends_a_wake_joins_the_open_window_or_goes_on() {
        // Later than any wake of the table, whenever the machine booted.
        let now = Instant::now() + UNANSWERED_REST + Duration::from_secs(10);
        let secs = Duration::from_secs;
        let went = Some(SystemTime::UNIX_EPOCH + secs(1_796_548_379));
        let went_again = Some(SystemTime::UNIX_EPOCH + secs(1_796_548_679));
        let sent = |ago: u64, window: u64| LastWake {
            absence: went,
            at: now - secs(ago),
            until: now - secs(ago) + secs(window),
            via: Some("LAN".into()),
        };
        let failed = |ago: u64| LastWake { via: None, ..sent(ago, 15) };
        let join = |ago: u64, window: u64| Plan::Join { until: now - secs(ago) + secs(window), via: "LAN".into() };
        // (known down, has wake, last wake, absence now, plan)
        let table = [
            (false, true, None, went, Plan::GoOn),
            (true, false, None, went, Plan::GoOn),
            (false, false, Some(sent(1, 15)), went, Plan::GoOn),
            (true, true, None, went, Plan::Send),
            (true, true, Some(sent(3, 15)), went, join(3, 15)),
            (true, true, Some(sent(15, 15)), went, Plan::GoOn),
            (true, true, Some(sent(299, 15)), went, Plan::GoOn),
            (true, true, Some(sent(300, 15)), went, Plan::Send),
            (true, true, Some(failed(1)), went, Plan::GoOn),
            (true, true, Some(failed(301)), went, Plan::Send),
            // The node came back and went again: the last wake was of the
            // absence before, and neither rests it nor is joined.
            (true, true, Some(sent(60, 15)), went_again, Plan::Send),
            (true, true, Some(sent(3, 15)), went_again, Plan::Send),
            (true, true, Some(failed(1)), went_again, Plan::Send),
        ];
        for (index, (known_down, has_wake, last, absence, expected)) in table.into_iter().enumerate() {
            assert_eq!(plan(known_down, has_wake, last.as_ref(), absence, now), expected, "case {index}");
        }
    }

    #[test]
    fn the_first_wake_of_an_absence_is_told_then_one_an_hour_at_most() {
        // Later than any told wake of the table, whenever the machine booted.
        let now = Instant::now() + TOLD_AGAIN_AFTER;
        let went = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_548_379);
        let went_again = went + Duration::from_secs(7200);
        let told = |absence: Option<SystemTime>, ago: u64| Told { absence, at: now - Duration::from_secs(ago) };
        // (last told, absence of this wake, told)
        let table = [
            (None, Some(went), true),
            (None, None, true),
            (Some(told(Some(went), 0)), Some(went), false),
            (Some(told(Some(went), 300)), Some(went), false),
            (Some(told(Some(went), 3599)), Some(went), false),
            (Some(told(Some(went), 3600)), Some(went), true),
            (Some(told(Some(went), 300)), Some(went_again), true),
            (Some(told(None, 300)), None, false),
            (Some(told(None, 300)), Some(went), true),
        ];
        for (index, (last, absence, expected)) in table.into_iter().enumerate() {
            assert_eq!(worth_telling(last.as_ref(), absence, now), expected, "case {index}");
        }
    }

    #[test]
    fn a_wake_goes_out_on_the_lan_else_through_a_tailscale_peer_else_nowhere() {
        let to: SocketAddr = "192.168.1.255:9".parse().unwrap();
        assert_eq!(via(to, true, Some(("lan-box", "http://100.101.7.8:41000"))), Via::Lan(to));
        assert_eq!(
            via(to, false, Some(("lan-box", "http://100.101.7.8:41000"))),
            Via::Tailscale { peer: "lan-box".into(), peerapi: "http://100.101.7.8:41000".into() }
        );
        assert_eq!(
            via(to, false, None),
            Via::Nowhere(
                "no interface of this machine is on the network of 192.168.1.255, and no online Tailscale \
                 peer routes it"
                    .into()
            )
        );
    }

    #[test]
    fn the_relay_is_an_online_peer_routing_the_wake_address_with_a_peerapi() {
        let peer = |name: &str, online: bool, routes: &[&str], urls: &[&str]| TailnetPeer {
            host_name: name.into(),
            dns_name: format!("{name}.tail1234.ts.net"),
            ips: Vec::new(),
            online,
            tags: Vec::new(),
            routes: routes.iter().map(|route| IpPrefix::parse(route).unwrap()).collect(),
            peerapi_urls: urls.iter().map(|url| (*url).to_owned()).collect(),
        };
        let lan = "192.168.1.0/24";
        let api = "http://100.101.7.8:41000";
        let v6 = "http://[fd7a:115c:a1e0::a01:708]:41000";
        let status = |peers: Vec<TailnetPeer>| TailnetStatus { running: true, peers, ..TailnetStatus::default() };
        let wake: IpAddr = "192.168.1.255".parse().unwrap();
        // (peers, sleeper's address, the relay chosen: name and PeerAPI)
        type Case<'a> = (Vec<TailnetPeer>, &'a str, Option<(&'a str, &'a str)>);
        let table: [Case<'_>; 9] = [
            (vec![peer("lan-box", true, &[lan], &[v6, api])], "mini", Some(("lan-box", api))),
            (vec![peer("lan-box", true, &[lan], &[v6])], "mini", Some(("lan-box", v6))),
            (vec![peer("lan-box", false, &[lan], &[api])], "mini", None),
            (vec![peer("lan-box", true, &["192.168.2.0/24"], &[api])], "mini", None),
            (vec![peer("lan-box", true, &["192.168.1.255/32"], &[api])], "mini", None),
            (vec![peer("lan-box", true, &[lan], &[])], "mini", None),
            (vec![peer("mini", true, &[lan], &[api])], "mini.tail1234.ts.net", None),
            (
                vec![peer("a-box", true, &["10.0.0.0/8"], &[api]), peer("b-box", true, &["192.168.0.0/16"], &[api])],
                "mini",
                Some(("b-box", api)),
            ),
            (vec![peer("exit", true, &["0.0.0.0/0"], &[api])], "mini", None),
        ];
        for (index, (peers, sleeper, expected)) in table.into_iter().enumerate() {
            let status = status(peers);
            let chosen = relay_peer(&status, wake, sleeper).map(|(peer, url)| (peer.host_name.as_str(), url));
            assert_eq!(chosen, expected, "case {index}");
        }
    }

    #[test]
    fn the_header_says_who_was_woken_how_and_how_long_the_call_waited() {
        let waited =
            WakeWait { node: "mini".into(), via: "Tailscale peer lan-box".into(), waited_ms: 3120, answered: false };
        assert_eq!(waited.header_value(), "node=mini; via=Tailscale peer lan-box; waited-ms=3120; answered=false");
    }
}
