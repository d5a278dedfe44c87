//! Waking up. A real suspend stops the monotonic clock that tokio's timers
//! run on (SIGSTOP stops no clock), so a sleep shows as a jump in the gap
//! between a clock that counts the time asleep and one that does not
//! ([`crate::sys::asleep_and_awake_clocks`]), read every [`CHECK`]. On a
//! resume (found so, or told by the system: [`follow`]) every
//! peer is probed at once and told that this node woke. Nothing is replayed:
//! every timer of the daemon runs on the clock that stopped, so none fell due
//! while asleep, and the resume itself starts no reconcile (peers that went
//! or came back while this node slept do, once each, as any change of a peer).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use super::goodbye::tell_peers;
use super::peers::Peers;
use crate::api::wire::PowerState;
use crate::api_key::ApiKey;
use crate::sleep_notice::Notice;

/// How often the clocks are compared: a resume is acted on within this.
pub const CHECK: Duration = Duration::from_secs(1);
/// The shortest gap taken for a sleep: the two clocks are read one after
/// the other, and a sleep shorter than this loses no peer.
pub const MIN_SLEEP: Duration = Duration::from_secs(2);
/// A resume told within this of the last one handled is the same one (the
/// system's notice and the clocks both tell it).
const SAME_RESUME: Duration = Duration::from_secs(5);

/// Finds sleeps in readings of the two clocks.
#[derive(Debug, Default)]
pub struct ResumeDetector {
    /// The time asleep counted so far: the first clock less the second.
    asleep: Option<Duration>,
}

impl ResumeDetector {
    /// Takes one reading of the clock that counts sleep and the one that does
    /// not; how long the machine slept since the last reading, if it did.
    pub fn observe(&mut self, with_sleep: Duration, without_sleep: Duration) -> Option<Duration> {
        let asleep = with_sleep.saturating_sub(without_sleep);
        let before = self.asleep.replace(asleep)?;
        let slept = asleep.saturating_sub(before);
        (slept >= MIN_SLEEP).then_some(slept)
    }
}

/// What going to sleep and waking act on: the peers, told and probed.
#[derive(Clone)]
pub struct Power {
    peers: Peers,
    /// This node's name, as the peers know it.
    node: String,
    api_key: ApiKey,
    /// When the last resume was handled.
    last_resume: Arc<Mutex<Option<Instant>>>,
}

impl Power {
    pub fn new(peers: Peers, node: String, api_key: ApiKey) -> Power {
        Power { peers, node, api_key, last_resume: Arc::default() }
    }

    /// Tells the peers this node is about to sleep, within the goodbye's budget.
    pub async fn going_to_sleep(&self) {
        tracing::info!("going to sleep: telling the peers");
        tell_peers(&self.peers, &self.node, self.api_key.get().as_deref(), PowerState::Asleep).await;
    }

    /// This node woke (after `slept`, when known): probes every peer at once
    /// and tells them, once per resume however many tell of it.
    pub async fn resumed(&self, slept: Option<Duration>) {
        let now = Instant::now();
        {
            let mut last = self.last_resume.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if last.is_some_and(|last| now - last < SAME_RESUME) {
                return;
            }
            *last = Some(now);
        }
        match slept {
            Some(slept) => {
                let slept = humantime::format_duration(Duration::from_secs(slept.as_secs()));
                tracing::info!("resumed after sleeping {slept}: probing every peer now");
            }
            None => tracing::info!("resumed: probing every peer now"),
        }
        self.peers.probe_all_now();
        tell_peers(&self.peers, &self.node, self.api_key.get().as_deref(), PowerState::Awake).await;
    }
}

/// Compares the clocks (`clocks` reads them: with sleep, without) every
/// [`CHECK`] until `shutdown` turns true, and acts on each resume.
pub async fn watch(
    power: Power,
    mut clocks: impl FnMut() -> (Duration, Duration) + Send,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut detector = ResumeDetector::default();
    let (with_sleep, without_sleep) = clocks();
    detector.observe(with_sleep, without_sleep);
    let mut checks = tokio::time::interval(CHECK);
    // A daemon held up (SIGSTOP, a busy machine) compares once, not once per missed tick.
    checks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            _ = checks.tick() => {}
        }
        let (with_sleep, without_sleep) = clocks();
        if let Some(slept) = detector.observe(with_sleep, without_sleep) {
            power.resumed(Some(slept)).await;
        }
    }
}

/// Acts on the system's notices until they end: goodbye before a sleep,
/// then lets it go on; the resume after it.
pub async fn follow(power: Power, mut notices: mpsc::Receiver<Notice>) {
    while let Some(notice) = notices.recv().await {
        match notice {
            Notice::Sleeping(done) => {
                power.going_to_sleep().await;
                done.finish();
            }
            Notice::Woke => power.resumed(None).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::mesh::peers::PeerState;

    #[test]
    fn a_sleep_is_the_growth_of_the_gap_between_the_clocks() {
        let s = Duration::from_secs_f64;
        // Readings (with sleep, without), and what the last one finds.
        type Readings<'a> = &'a [(f64, f64)];
        let cases: [(&str, Readings<'_>, Option<Duration>); 7] = [
            ("the first reading finds nothing", &[(100.0, 40.0)], None),
            ("both clocks went on: awake", &[(100.0, 40.0), (101.0, 41.0)], None),
            ("stopped or held up (SIGSTOP): both went on alike", &[(100.0, 40.0), (160.0, 100.0)], None),
            ("asleep for a minute", &[(100.0, 40.0), (161.0, 41.0)], Some(s(60.0))),
            ("the gap it had since boot is no sleep of ours", &[(5000.0, 40.0), (5001.0, 41.0)], None),
            ("a blip below the least sleep", &[(100.0, 40.0), (102.5, 41.0)], None),
            ("only the growth since the last reading", &[(100.0, 40.0), (161.0, 41.0), (162.0, 42.0)], None),
        ];
        for (what, readings, expected) in cases {
            let mut detector = ResumeDetector::default();
            let found = readings.iter().map(|&(with, without)| detector.observe(s(with), s(without))).last().flatten();
            assert_eq!(found, expected, "{what}");
        }
    }

    /// The clocks the test moves: (with sleep, without), in seconds.
    fn injected(clocks: &Arc<Mutex<(f64, f64)>>) -> impl FnMut() -> (Duration, Duration) + Send + use<> {
        let clocks = clocks.clone();
        move || {
            let (with, without) = *clocks.lock().unwrap();
            (Duration::from_secs_f64(with), Duration::from_secs_f64(without))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_resume_found_in_the_clocks_probes_every_peer_once_and_nothing_more() {
        let peers = Peers::default();
        // Nobody listens there: telling them fails at once.
        peers.set_members(vec![
            PeerState::new("mini", None, "127.0.0.1", 9),
            PeerState::new("desk", None, "127.0.0.1", 9),
        ]);
        let clocks = Arc::new(Mutex::new((100.0, 40.0)));
        let (stop, stopped) = watch::channel(false);
        let power = Power::new(peers.clone(), "laptop".into(), ApiKey::default());
        let watcher = tokio::spawn(watch(power, injected(&clocks), stopped));

        // Awake for a while: ticking clocks ask for nothing.
        for _ in 0..5 {
            tokio::time::advance(CHECK).await;
            let mut clocks = clocks.lock().unwrap();
            *clocks = (clocks.0 + 1.0, clocks.1 + 1.0);
        }
        assert!(tokio::time::timeout(CHECK * 2, peers.probe_requested()).await.is_err(), "no probe asked for");

        // An hour asleep: the clock without sleep stood still.
        clocks.lock().unwrap().0 += 3600.0;
        let asked = tokio::time::timeout(CHECK * 2, peers.probe_requested()).await.expect("probes asked for");
        assert_eq!(asked, BTreeSet::from(["desk".to_owned(), "mini".to_owned()]));
        // The 5 s after it: the clocks tick on, nothing more is asked.
        let more = tokio::time::timeout(Duration::from_secs(5), peers.probe_requested()).await;
        assert!(more.is_err(), "one resume, one round of probes: {more:?}");

        stop.send_replace(true);
        tokio::time::timeout(CHECK, watcher).await.expect("the watcher stops").unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_resume_told_twice_is_acted_on_once() {
        let peers = Peers::default();
        peers.set_members(vec![PeerState::new("mini", None, "127.0.0.1", 9)]);
        let power = Power::new(peers.clone(), "laptop".into(), ApiKey::default());
        power.resumed(None).await;
        power.resumed(Some(Duration::from_secs(60))).await;
        assert_eq!(peers.probe_requested().await.len(), 1);
        assert!(tokio::time::timeout(CHECK, peers.probe_requested()).await.is_err(), "the second is the same resume");
        tokio::time::advance(SAME_RESUME).await;
        power.resumed(None).await;
        assert_eq!(peers.probe_requested().await.len(), 1, "a later one is another");
    }
}
