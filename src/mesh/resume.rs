//! Waking up. A real suspend stops the monotonic clock that tokio's timers
//! run on (SIGSTOP stops no clock), so a sleep shows as a jump in the time
//! asleep that two clocks tell ([`crate::sleep_clock`]), read every
//! [`CHECK`]. On a resume (found so, or told by the system:
//! [`crate::sleep_notice`]) every peer is probed at once and told that this
//! node woke; those that did not take it (the network is often not back yet)
//! are told again every [`TELL_AGAIN_EVERY`] for up to [`TELL_AGAIN_FOR`].
//! Nothing is replayed: every timer of the daemon runs on the clock that
//! stopped, so none fell due while asleep, and the resume itself starts no
//! reconcile (peers that went or came back while this node slept do, once
//! each, as any change of a peer).

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use super::goodbye::tell;
use super::peers::{PeerState, Peers};
use crate::api::wire::PowerState;
use crate::api_key::ApiKey;
use crate::sleep_clock::{MIN_SLEEP, SleepDetector, asleep_since_boot};
use crate::sleep_notice::Notice;

/// How often the clocks are compared: a resume is acted on within this.
pub const CHECK: Duration = Duration::from_secs(1);
/// How often a peer that did not take that this node woke is told again: it
/// sees this node awake within this of its network coming back.
pub const TELL_AGAIN_EVERY: Duration = Duration::from_secs(1);
/// How long after a resume the peers are told again: longer than Wi-Fi or the
/// tailnet take to come back. A peer told nothing takes this node back once
/// its probes have reached it for `peers::SLEEP_CANCELLED_AFTER`.
pub const TELL_AGAIN_FOR: Duration = Duration::from_secs(30);

/// Reads the clock that counts sleep and the one that does not.
pub type Clocks = Box<dyn FnMut() -> (Duration, Duration) + Send>;

/// Telling the peers that this node woke: dropped, it stops.
type Telling = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What going to sleep and waking act on: the peers, told and probed.
pub struct Power {
    peers: Peers,
    /// This node's name, as the peers know it.
    node: String,
    api_key: ApiKey,
    clocks: Clocks,
    /// The time asleep since boot when the last resume was handled; None
    /// before the first and after a goodbye.
    resumed_at: Option<Duration>,
}

impl Power {
    pub fn new(peers: Peers, node: String, api_key: ApiKey, clocks: Clocks) -> Power {
        Power { peers, node, api_key, clocks, resumed_at: None }
    }

    /// Tells the peers this node is about to sleep, within the goodbye's
    /// budget. Whatever the system tells after it is another resume.
    async fn going_to_sleep(&mut self) {
        self.resumed_at = None;
        tracing::info!("going to sleep: telling the peers");
        let took = tell(self.peers.all(), &self.node, self.api_key.get().as_deref(), PowerState::Asleep).await;
        tracing::info!(peers = ?took, "told the peers this node goes to sleep");
    }

    /// This node woke (after `slept`, when known): probes every peer at once;
    /// the telling of the peers, unless this resume was handled already (the
    /// system's notice and the clocks both tell of it).
    fn resumed(&mut self, slept: Option<Duration>) -> Option<Telling> {
        let asleep = asleep_since_boot((self.clocks)());
        if same_resume(self.resumed_at, asleep) {
            return None;
        }
        self.resumed_at = Some(asleep);
        match slept {
            Some(slept) => {
                let slept = humantime::format_duration(Duration::from_secs(slept.as_secs()));
                tracing::info!("resumed after sleeping {slept}: probing every peer now");
            }
            None => tracing::info!("resumed: probing every peer now"),
        }
        self.peers.probe_all_now();
        Some(Box::pin(tell_awake(self.peers.clone(), self.node.clone(), self.api_key.clone())))
    }
}

/// Whether a resume found when the time asleep since boot is `asleep` is the
/// one handled at `resumed_at`: the machine slept less than [`MIN_SLEEP`]
/// since. On the clocks that count sleep, not tokio's, which stood still
/// while asleep: a sleep soon after a resume is another.
fn same_resume(resumed_at: Option<Duration>, asleep: Duration) -> bool {
    resumed_at.is_some_and(|at| asleep.saturating_sub(at) < MIN_SLEEP)
}

/// When to tell the peers in `untold` again after an attempt begun at
/// `attempt`, for a resume handled at `resumed`: None when every peer took
/// it or [`TELL_AGAIN_FOR`] is up.
fn tell_again_at(resumed: Instant, attempt: Instant, untold: &BTreeSet<String>) -> Option<Instant> {
    let next = attempt + TELL_AGAIN_EVERY;
    (!untold.is_empty() && next.duration_since(resumed) < TELL_AGAIN_FOR).then_some(next)
}

/// Tells every peer that this node woke, and again those that did not take
/// it (and are peers still) until [`tell_again_at`] says no more.
async fn tell_awake(peers: Peers, node: String, api_key: ApiKey) {
    let resumed = Instant::now();
    let mut untold: BTreeSet<String> = peers.all().into_iter().map(|peer| peer.name).collect();
    let mut attempt = resumed;
    loop {
        let to: Vec<PeerState> = peers.all().into_iter().filter(|peer| untold.contains(&peer.name)).collect();
        untold = to.iter().map(|peer| peer.name.clone()).collect();
        let took = tell(to, &node, api_key.get().as_deref(), PowerState::Awake).await;
        untold.retain(|name| !took.contains(name));
        if attempt == resumed {
            tracing::info!(peers = ?took, not_yet = ?untold, "told the peers this node is awake");
        } else if !took.is_empty() {
            tracing::info!(peers = ?took, after = ?attempt.duration_since(resumed), "told more peers this node is awake");
        }
        let Some(next) = tell_again_at(resumed, attempt, &untold) else {
            if !untold.is_empty() {
                tracing::info!(
                    peers = ?untold,
                    "these peers did not take it that this node is awake within {TELL_AGAIN_FOR:?}: \
                     they take it back once their probes reach it"
                );
            }
            return;
        };
        tokio::time::sleep_until(next).await;
        attempt = Instant::now();
    }
}

/// Follows the system's notices and compares the clocks every [`CHECK`]
/// until `shutdown` turns true: says goodbye before a sleep, then lets it go
/// on; acts on each resume. The telling of the peers that this node woke is
/// this loop's: the next sleep or the shutdown stops it.
pub async fn run(mut power: Power, mut notices: mpsc::Receiver<Notice>, mut shutdown: watch::Receiver<bool>) {
    let mut detector = SleepDetector::default();
    detector.observe((power.clocks)());
    let mut checks = tokio::time::interval(CHECK);
    // A daemon held up (SIGSTOP, a busy machine) compares once, not once per missed tick.
    checks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut telling: Option<Telling> = None;
    let mut notices_open = true;
    loop {
        tokio::select! {
            // The guard it gives is dropped here: it is not `Send`.
            () = async { let _ = shutdown.wait_for(|stop| *stop).await; } => return,
            () = async { telling.as_mut().expect("telling, as the branch's condition says").await },
                if telling.is_some() => telling = None,
            _ = checks.tick() => {
                if let Some(slept) = detector.observe((power.clocks)()) {
                    telling = power.resumed(Some(slept)).or(telling);
                }
            }
            notice = notices.recv(), if notices_open => match notice {
                None => notices_open = false,
                Some(Notice::Sleeping(done)) => {
                    telling = None;
                    power.going_to_sleep().await;
                    done.finish();
                }
                Some(Notice::Woke) => telling = power.resumed(None).or(telling),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::mesh::goodbye::BUDGET;
    use crate::sleep_notice::Done;

    #[test]
    fn a_resume_is_the_one_handled_only_while_the_machine_slept_less_than_the_least_sleep_since() {
        let s = Duration::from_secs_f64;
        // (the time asleep at the resume handled, at this one, the same resume)
        let cases = [
            (None, s(100.0), false),
            (Some(s(100.0)), s(100.0), true),
            (Some(s(100.0)), s(101.9), true),
            (Some(s(100.0)), s(102.0), false),
            (Some(s(100.0)), s(3700.0), false),
            (Some(s(100.0)), s(40.0), true),
        ];
        for (resumed_at, asleep, expected) in cases {
            assert_eq!(same_resume(resumed_at, asleep), expected, "{resumed_at:?} then {asleep:?}");
        }
    }

    #[test]
    fn the_peers_that_did_not_take_it_are_told_again_every_second_for_thirty_seconds() {
        let resumed = Instant::now();
        let s = Duration::from_secs_f64;
        let names = |names: &[&str]| names.iter().map(|name| (*name).to_owned()).collect::<BTreeSet<_>>();
        // (attempt begun this long after the resume, untold after it, told again this long after the resume)
        let cases = [
            (0.0, names(&["mini"]), Some(1.0)),
            (0.0, names(&[]), None),
            (1.0, names(&["mini", "desk"]), Some(2.0)),
            (12.4, names(&["mini"]), Some(13.4)),
            (28.9, names(&["mini"]), Some(29.9)),
            (29.0, names(&["mini"]), None),
            (40.0, names(&["mini"]), None),
        ];
        for (attempt, untold, expected) in cases {
            let next = tell_again_at(resumed, resumed + s(attempt), &untold);
            assert_eq!(next, expected.map(|after| resumed + s(after)), "attempt at {attempt} s, {untold:?} untold");
        }
    }

    /// The clocks the test moves: (with sleep, without), in seconds.
    fn injected(clocks: &Arc<Mutex<(f64, f64)>>) -> Clocks {
        let clocks = clocks.clone();
        Box::new(move || {
            let (with, without) = *clocks.lock().unwrap();
            (Duration::from_secs_f64(with), Duration::from_secs_f64(without))
        })
    }

    /// Awake for `seconds`: both clocks go on, and tokio's.
    async fn awake_for(clocks: &Arc<Mutex<(f64, f64)>>, seconds: u64) {
        for _ in 0..seconds {
            tokio::time::advance(Duration::from_secs(1)).await;
            let mut clocks = clocks.lock().unwrap();
            *clocks = (clocks.0 + 1.0, clocks.1 + 1.0);
        }
    }

    /// Peers nobody listens for: telling them fails at once.
    fn unreachable_peers(names: &[&str]) -> Peers {
        let peers = Peers::default();
        peers.set_members(names.iter().map(|name| PeerState::new(name, None, "127.0.0.1", 9)).collect());
        peers
    }

    #[tokio::test(start_paused = true)]
    async fn a_resume_found_in_the_clocks_probes_every_peer_once_and_nothing_more() {
        let peers = unreachable_peers(&["mini", "desk"]);
        let clocks = Arc::new(Mutex::new((100.0, 40.0)));
        let (stop, stopped) = watch::channel(false);
        let (_notices, notices_in) = mpsc::channel(1);
        let power = Power::new(peers.clone(), "laptop".into(), ApiKey::default(), injected(&clocks));
        let resumes = tokio::spawn(run(power, notices_in, stopped));

        // Awake for a while: ticking clocks ask for nothing.
        awake_for(&clocks, 5).await;
        assert!(tokio::time::timeout(CHECK * 2, peers.probe_requested()).await.is_err(), "no probe asked for");

        // An hour asleep: the clock without sleep stood still.
        clocks.lock().unwrap().0 += 3600.0;
        let asked = tokio::time::timeout(CHECK * 2, peers.probe_requested()).await.expect("probes asked for");
        assert_eq!(asked, BTreeSet::from(["desk".to_owned(), "mini".to_owned()]));
        // The 5 s after it: the clocks tick on, nothing more is asked.
        let more = tokio::time::timeout(Duration::from_secs(5), peers.probe_requested()).await;
        assert!(more.is_err(), "one resume, one round of probes: {more:?}");

        stop.send_replace(true);
        tokio::time::timeout(CHECK, resumes).await.expect("the resume loop stops").unwrap();
    }

    /// A peer whose network is not there yet: it reads each request, notes
    /// which state it tells ("awake", "asleep") and closes the connection
    /// without an answer.
    async fn unanswering_peer() -> (PeerState, Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = PeerState::new("mini", None, "127.0.0.1", listener.local_addr().unwrap().port());
        let told = Arc::new(Mutex::new(Vec::new()));
        let heard = told.clone();
        let serving = tokio::spawn(async move {
            loop {
                let (mut connection, _) = listener.accept().await.unwrap();
                // Read until the body says which, as the head and the body
                // may come apart; the client ends the connection by its timeout.
                let (mut request, mut buffer) = (Vec::new(), [0; 4096]);
                let state = loop {
                    let read = connection.read(&mut buffer).await.unwrap_or_default();
                    request.extend_from_slice(&buffer[..read]);
                    let text = String::from_utf8_lossy(&request);
                    let said = ["awake", "asleep"].into_iter().find(|state| text.contains(&format!("\"{state}\"")));
                    if let Some(state) = said.or((read == 0).then_some("?")) {
                        break state;
                    }
                };
                heard.lock().unwrap().push(state.to_owned());
            }
        });
        (peer, told, serving)
    }

    #[tokio::test]
    async fn a_peer_that_did_not_take_awake_is_told_again_until_the_next_sleep() {
        let (mini, told, serving) = unanswering_peer().await;
        let peers = Peers::default();
        peers.set_members(vec![mini]);
        let clocks = Arc::new(Mutex::new((100.0, 40.0)));
        let (stop, stopped) = watch::channel(false);
        let (notices, notices_in) = mpsc::channel(1);
        let power = Power::new(peers, "laptop".into(), ApiKey::default(), injected(&clocks));
        let resumes = tokio::spawn(run(power, notices_in, stopped));

        notices.send(Notice::Woke).await.unwrap();
        tokio::time::sleep(TELL_AGAIN_EVERY * 2 + TELL_AGAIN_EVERY / 2).await;
        let awake = told.lock().unwrap().clone();
        assert!(awake.len() >= 2 && awake.iter().all(|state| state == "awake"), "told again: {awake:?}");

        let (done, sleep_goes_on) = Done::new();
        notices.send(Notice::Sleeping(done)).await.unwrap();
        tokio::time::timeout(BUDGET * 2, sleep_goes_on).await.expect("the sleep goes on").unwrap();
        tokio::time::sleep(TELL_AGAIN_EVERY * 2).await;
        let after = told.lock().unwrap()[awake.len()..].to_vec();
        assert_eq!(after, ["asleep"], "the goodbye, and no awake after it");

        stop.send_replace(true);
        tokio::time::timeout(CHECK, resumes).await.expect("the resume loop stops").unwrap();
        serving.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_resume_told_twice_is_acted_on_once() {
        let peers = unreachable_peers(&["mini"]);
        let clocks = Arc::new(Mutex::new((100.0, 40.0)));
        let mut power = Power::new(peers.clone(), "laptop".into(), ApiKey::default(), injected(&clocks));
        assert!(power.resumed(None).is_some());
        assert!(power.resumed(Some(Duration::from_secs(60))).is_none(), "the second is the same resume");
        assert_eq!(peers.probe_requested().await.len(), 1);
        assert!(tokio::time::timeout(CHECK, peers.probe_requested()).await.is_err(), "one round of probes");
        clocks.lock().unwrap().0 += 3600.0;
        assert!(power.resumed(None).is_some(), "a later one is another");
        assert_eq!(peers.probe_requested().await.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_sleep_soon_after_a_resume_is_another_resume() {
        let peers = unreachable_peers(&["mini"]);
        let clocks = Arc::new(Mutex::new((100.0, 40.0)));
        let mut power = Power::new(peers.clone(), "laptop".into(), ApiKey::default(), injected(&clocks));
        assert!(power.resumed(Some(Duration::from_secs(600))).is_some());
        // The lid is open for 3 s, then shut for an hour: tokio's clock saw 3 s.
        awake_for(&clocks, 3).await;
        clocks.lock().unwrap().0 += 3600.0;
        assert!(power.resumed(Some(Duration::from_secs(3600))).is_some(), "slept an hour since: another resume");
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_goodbye_the_systems_notice_of_a_resume_is_another_however_short_the_sleep() {
        let peers = unreachable_peers(&["mini"]);
        let clocks = Arc::new(Mutex::new((100.0, 40.0)));
        let mut power = Power::new(peers.clone(), "laptop".into(), ApiKey::default(), injected(&clocks));
        assert!(power.resumed(None).is_some());
        awake_for(&clocks, 1).await;
        power.going_to_sleep().await;
        assert!(power.resumed(None).is_some(), "it said goodbye since");
        assert!(power.resumed(None).is_none(), "and no goodbye after that one");
    }
}
