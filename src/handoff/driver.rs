//! A handoff started on this node (the source), from the request to its end.
//! [`start`] checks the request against what this node knows (the record,
//! the policy's `allowForce`, whether the target answers), takes the
//! conversation over for `force` (at once with two nodes; with more, once
//! every other node but the owner promised, followed like a handoff), or
//! steps `StartHandoff` (the freeze) and spawns the handoff's [`Driver`].
//!
//! The driver checks the barrier (this node's Syncthing reports the folder
//! 100 % complete for the target's device, and the target's hash of the
//! conversation, from its `GET /api/v1/sessions/{id}`, equals this node's; a
//! rescan of the conversation is asked for first so this takes about a
//! second), then resends `Accept` every second until the target answers or
//! the timeout (each `Accept` in a task of its own, one at a time, so a target
//! that takes the connection and never answers holds up neither the resends'
//! clock nor the timeout): then `Timeout` asks the target to abort, and the
//! HandoffPolicy reconciler keeps asking until it answers. A target that
//! cannot answer fails the handoff sooner, only while no `Accept` can have
//! reached it: at the barrier as soon as the prober knows it down, or its
//! daemon refused every connection for [`REFUSED_FOR`]; after, with
//! `Unreachable`, when every `Accept` was refused at connect and either the
//! prober knows it down or [`REFUSED_FOR`] passed (an `Accept` that may have
//! reached it keeps the wait). The outcome comes through the notices, wherever
//! the step that makes them runs (the target's `Accepted` arrives at the API).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::folder;
use super::io::{Conversation, HandoffIo, failed_step, off_thread, written_after_freeze};
use super::protocol::{Envelope, HandoffId, Input, Message, Notice, Phase, Record, Stage, Step};
use super::store::Progress;
use crate::client::{ApiClient, ClientError};
use crate::event::Event;
use crate::manifest::kinds::HandoffPolicySpec;
use crate::manifest::{DurationSpec, ManifestSet};
use crate::mesh::absence::Absence;
use crate::mesh::peers::{PeerState, Peers};
use crate::syncthing::Client as Syncthing;

/// How often the barrier is looked at, and `Accept` resent.
const POLL: Duration = Duration::from_millis(300);
const RESEND_EVERY: Duration = Duration::from_secs(1);
/// How long one call to the target may take.
const PEER_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a target may refuse every connection before the handoff fails,
/// when the prober does not know it down meanwhile (it knows within a second
/// or so): a handoff to a daemon that is not running fails within 5 s.
const REFUSED_FOR: Duration = Duration::from_secs(3);

/// Where a handoff's events go: the log of the conversation's policy.
pub(crate) type EventSink = Arc<dyn Fn(&str, Vec<Event>) + Send + Sync>;

/// What a handoff needs of the daemon.
#[derive(Clone)]
pub(crate) struct Handoffs {
    pub io: HandoffIo,
    /// This node's name.
    pub node: String,
    pub events: EventSink,
}

/// Hand conversation `id` to `to` (by default the policy's `defaultTarget`,
/// else the other node), or take it over (`force`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Request {
    pub id: String,
    pub to: Option<String>,
    /// A duration as written (`30s`); by default the policy's `timeout`.
    pub timeout: Option<String>,
    pub force: bool,
}

/// How a request went, when it was taken.
#[derive(Debug)]
pub(crate) enum Started {
    /// `force`: this node owns the conversation now; the progress is done.
    TakenOver(Progress),
    /// The conversation is frozen and its driver runs; follow the progress.
    Begun(Progress),
}

/// Why a request was refused; nothing changed but for `NotSaved`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    ForceNotAllowed(String),
    #[error("{0}")]
    OwnerOnline(String),
    #[error("{0}")]
    Rejected(String),
    #[error("no --to, no defaultTarget, no peer")]
    NoTarget,
    #[error("{0}")]
    BadTimeout(String),
    #[error("{0} is not a peer")]
    UnknownNode(String),
    #[error("{0}")]
    TargetOffline(String),
    #[error("{0}")]
    NotSaved(std::io::Error),
}

/// Where a conversation this node has a record of is.
struct Located {
    conversation: Conversation,
    dir: PathBuf,
    folder_id: String,
    /// `<sessionsDir>/<id>`, relative to the SyncFolder.
    sub: String,
}

impl Located {
    /// The first policy of `set` with a record of conversation `id` here.
    fn find(set: &ManifestSet, node: &str, io: &HandoffIo, id: &str) -> Option<(Located, Record)> {
        let (policy, object, record) = set
            .handoff_policies
            .iter()
            .find_map(|(policy, object)| Some((policy, object, io.store.record(policy, id)?)))?;
        let dir = folder::sessions_root(set, policy, node, &folder::home())?.join(id);
        let sync_folder = set.sync_folders.get(&object.spec.sync_folder.value)?;
        let sessions_dir = object.spec.sessions_dir.value.trim_matches('/');
        let located = Located {
            conversation: Conversation { policy: policy.clone(), id: id.to_owned(), dir: Some(dir.clone()) },
            dir,
            folder_id: sync_folder.spec.folder_id_or(sync_folder.name()).to_owned(),
            sub: format!("{sessions_dir}/{id}"),
        };
        Some((located, record))
    }
}

/// Starts the handoff `request` asks for under the set in force; `syncthing`
/// is this node's (the barrier asks it), or why there is none.
pub(crate) async fn start(
    handoffs: &Handoffs,
    set: &ManifestSet,
    syncthing: Result<Syncthing, String>,
    request: Request,
) -> Result<Started, StartError> {
    let node = &handoffs.node;
    let (located, record) = Located::find(set, node, &handoffs.io, &request.id)
        .ok_or_else(|| StartError::NotFound(format!("no conversation {} on this node", request.id)))?;
    let policy = &located.conversation.policy;
    let Some(spec) = set.handoff_policies.get(policy).map(|object| &object.spec) else {
        return Err(StartError::NotFound(format!("no HandoffPolicy {policy} on this node")));
    };
    let progress = Progress {
        policy: policy.clone(),
        conversation: request.id.clone(),
        owner: record.owner.clone(),
        epoch: record.epoch,
        ..Progress::default()
    };
    if request.force {
        if !spec.allow_force {
            let message = format!("HandoffPolicy/{policy} does not allow --force (allowForce: false)");
            return Err(StartError::ForceNotAllowed(message));
        }
        // Every other node of the folder but the owner promises (none with two).
        let nodes = folder::others_of(set, policy, node);
        let timeout = timeout_of(spec, &request)?;
        return take_over(handoffs, &located, &record, nodes, progress, timeout).await;
    }
    let target = target_of(set, (policy, spec), node, &request)?;
    let timeout = timeout_of(spec, &request)?;
    if target != *node {
        target_answers(handoffs.io.peers(), &target, &request.id, &record).await?;
    }
    let handoff = new_handoff_id(node);
    let driver = Driver { handoffs: handoffs.clone(), located, handoff, target, timeout };
    driver.freeze(progress, spec.require_in_sync, syncthing).await
}

/// Where the handoff goes: `to`, else the policy's `defaultTarget`, else the
/// other node when the folder has exactly two (with more, which one is
/// nobody's guess: none).
fn target_of(
    set: &ManifestSet,
    (policy, spec): (&str, &HandoffPolicySpec),
    node: &str,
    request: &Request,
) -> Result<String, StartError> {
    let default = || spec.default_target.as_ref().map(|target| target.value.clone());
    let only_other = || match folder::others_of(set, policy, node).as_slice() {
        [other] => Some(other.clone()),
        _ => None,
    };
    request.to.clone().or_else(default).or_else(only_other).ok_or(StartError::NoTarget)
}

/// How long the handoff or the force may take: the request's, else the policy's.
fn timeout_of(spec: &HandoffPolicySpec, request: &Request) -> Result<Duration, StartError> {
    match &request.timeout {
        Some(text) => Ok(DurationSpec::parse(text).map_err(StartError::BadTimeout)?.duration),
        None => Ok(spec.timeout.duration),
    }
}

/// `force`: this node takes the conversation over from an owner that does
/// not answer. With two nodes that is at once; with more, the other nodes
/// must promise first ([`Phase::Forcing`]): the force is then followed like a
/// handoff, by [`follow_force`], and done when the record leaves `Forcing`.
async fn take_over(
    handoffs: &Handoffs,
    located: &Located,
    record: &Record,
    nodes: Vec<String>,
    progress: Progress,
    timeout: Duration,
) -> Result<Started, StartError> {
    let id = &located.conversation.id;
    if handoffs.io.peers().get(&record.owner).is_some_and(|peer| peer.online) {
        let message = format!("{} owns {id} and is online: hand it over from there instead", record.owner);
        return Err(StartError::OwnerOnline(message));
    }
    let taken = persist(handoffs, &located.conversation, Input::Force { nodes: nodes.clone() }).await?;
    if let Some(Notice::Rejected { reason }) = taken.notices.first() {
        return Err(StartError::Rejected(failed_step(reason).1));
    }
    carry_out(handoffs, &located.conversation, taken).await;
    // Read again: the record is whatever it is once the step was carried out.
    let now = handoffs
        .io
        .store
        .record(&located.conversation.policy, id)
        .ok_or_else(|| StartError::NotFound(format!("no record of conversation {id} on this node")))?;
    let node = &handoffs.node;
    if let Phase::Forcing { epoch, waiting } = &now.phase {
        let waiting = waiting.iter().map(String::as_str).collect::<Vec<_>>().join(", ");
        let lines = vec![format!("force: asking {waiting} to promise epoch {epoch}")];
        let begun = begin(handoffs, &new_handoff_id(node), node, timeout, Progress { lines, ..progress }).await?;
        let force = Force { handoffs: handoffs.clone(), conversation: located.conversation.clone(), nodes };
        handoffs.io.spawn(follow_force(force, begun.handoff.clone(), Instant::now() + timeout));
        return Ok(Started::Begun(begun));
    }
    Ok(Started::TakenOver(Progress {
        target: node.clone(),
        message: Some(format!("taken over: {node} owns {id} at epoch {}", now.epoch)),
        done: true,
        succeeded: true,
        owner: now.owner,
        epoch: now.epoch,
        ..progress
    }))
}

/// Saves the progress of handoff (or force) `handoff` to `target`, which
/// begins now and may take `timeout`: what `meshctl handoff` follows.
async fn begin(
    handoffs: &Handoffs,
    handoff: &HandoffId,
    target: &str,
    timeout: Duration,
    progress: Progress,
) -> Result<Progress, StartError> {
    let begun = Progress {
        handoff: handoff.0.clone(),
        target: target.to_owned(),
        timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        ..progress
    };
    let (store, saved) = (handoffs.io.store.clone(), begun.clone());
    off_thread(move || store.begin(saved)).await.map_err(StartError::NotSaved)?;
    Ok(begun)
}

/// A force waiting for the other nodes' promises.
struct Force {
    handoffs: Handoffs,
    conversation: Conversation,
    /// The other nodes of the folder, as `Input::Force` takes them.
    nodes: Vec<String>,
}

/// Follows a force under way (progress `handoff`): asks again every second
/// for the promises still missing, steps `Timeout` at `deadline`, and ends
/// the progress once the record leaves `Forcing` (the last promise arrives
/// through the API, a refusal or a newer record ends it too).
async fn follow_force(force: Force, handoff: String, deadline: Instant) {
    let Force { handoffs, conversation, nodes } = force;
    let mut asking = Asking::until(deadline);
    let record = loop {
        tokio::time::sleep(POLL).await;
        let Some(record) = handoffs.io.store.record(&conversation.policy, &conversation.id) else { return };
        if !matches!(record.phase, Phase::Forcing { .. }) {
            break record;
        }
        let input = match asking.due(Instant::now(), true) {
            Due::GiveUp => Input::Timeout,
            Due::AskAgain => Input::Force { nodes: nodes.clone() },
            Due::Nothing => continue,
        };
        match persist(&handoffs, &conversation, input).await {
            Ok(step) => carry_out(&handoffs, &conversation, step).await,
            Err(error) => {
                handoffs.io.finish(&handoff, "force", format!("cannot persist the record: {error}")).await;
                return;
            }
        }
    };
    let (me, id) = (&handoffs.node, &conversation.id);
    let (failed, message) = match record.owner == *me {
        true => (None, format!("taken over: {me} owns {id} at epoch {}", record.epoch)),
        false => (
            Some("force"),
            format!(
                "force: not every other node promised in time, or one knows a newer epoch; {} owns {id} at epoch {}",
                record.owner, record.epoch
            ),
        ),
    };
    let store = handoffs.io.store.clone();
    let _ = off_thread(move || store.finish(&handoff, failed, message)).await;
}

/// A new handoff's id: this node's name and the time, in milliseconds.
fn new_handoff_id(node: &str) -> HandoffId {
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
    HandoffId(format!("{node}-{millis}"))
}

/// Refuses at once a target the prober knows down, in the words status uses
/// ("asleep since 09:12", "unreachable since 09:12"). A peer the prober has
/// not reached yet (this daemon just started) is asked now, so an unreachable
/// one is refused here too, not at the barrier.
async fn target_answers(peers: &Peers, target: &str, id: &str, record: &Record) -> Result<(), StartError> {
    let Some(peer) = peers.get(target) else { return Err(StartError::UnknownNode(target.to_owned())) };
    // A peer asleep is known down without a probe: it is not asked.
    let never_probed = !peer.online && !peer.known_down();
    let unanswered = match never_probed {
        true => ApiClient::new(&peer.authority(), None, PEER_TIMEOUT).health().await.err().map(|e| e.to_string()),
        false => None,
    };
    if peer.known_down() || unanswered.is_some() {
        let away = peer.absence().unwrap_or(Absence { since: None, asleep: false });
        let away = away_in_words(&away, unanswered.or(peer.last_error));
        let message =
            format!("{target} is {away}: refused at once; {id} stays with {} at epoch {}", record.owner, record.epoch);
        return Err(StartError::TargetOffline(message));
    }
    Ok(())
}

/// How the prober knows `target` down, in the words status uses ("unreachable
/// since 09:12 (Connection refused)", "asleep since 09:12"); None while it
/// does not.
fn known_down_in_words(peers: &Peers, target: &str) -> Option<String> {
    let peer = peers.get(target)?;
    Some(away_in_words(&peer.absence()?, peer.last_error))
}

/// A node away in the words status uses, with `why` when known.
fn away_in_words(away: &Absence, why: Option<String>) -> String {
    let why = why.map(|why| format!(" ({why})")).unwrap_or_default();
    format!("{}{why}", away.words(crate::clock::local_hh_mm))
}

async fn persist(handoffs: &Handoffs, conversation: &Conversation, input: Input) -> Result<Step, StartError> {
    handoffs
        .io
        .persist(conversation, input)
        .await
        .map_err(StartError::NotSaved)?
        .ok_or_else(|| StartError::NotFound("no record of the conversation".into()))
}

/// Carries out a persisted step; its events go to the policy's log.
async fn carry_out(handoffs: &Handoffs, conversation: &Conversation, step: Step) {
    let events = handoffs.io.carry_out(conversation, step).await;
    (handoffs.events)(&conversation.policy, events);
}

/// The clock of a wait for other nodes' answers (a handoff's `Accept`, a
/// force's promises), looked at every [`POLL`].
struct Asking {
    deadline: Instant,
    last_asked: Instant,
}

/// What is due at a look.
#[derive(Debug, PartialEq, Eq)]
enum Due {
    /// The deadline passed.
    GiveUp,
    /// [`RESEND_EVERY`] passed since the last ask: ask again.
    AskAgain,
    Nothing,
}

impl Asking {
    /// Asked just now; gives up at `deadline`.
    fn until(deadline: Instant) -> Asking {
        Asking { deadline, last_asked: Instant::now() }
    }

    /// What is due at `now`: giving up once the deadline passed, else asking
    /// again every [`RESEND_EVERY`] (when it `may_ask`: not while an ask is
    /// still on its way), which counts as asked.
    fn due(&mut self, now: Instant, may_ask: bool) -> Due {
        if now >= self.deadline {
            Due::GiveUp
        } else if may_ask && now.duration_since(self.last_asked) >= RESEND_EVERY {
            self.last_asked = now;
            Due::AskAgain
        } else {
            Due::Nothing
        }
    }
}

/// The target's refusals of the connection, as calls to it go.
#[derive(Debug, Default)]
struct Refusals {
    /// Since when every call was refused; None once one was not.
    since: Option<Instant>,
    /// Whether a call was not refused at connect: it may have reached the target.
    reached: bool,
    last: String,
}

impl Refusals {
    fn note<T>(&mut self, outcome: &Result<T, ClientError>, now: Instant) {
        match outcome {
            Err(error) if error.refused() => {
                self.since.get_or_insert(now);
                self.last = error.to_string();
            }
            _ => {
                self.since = None;
                self.reached = true;
            }
        }
    }

    /// Why, when every call since the last one that was not refused was
    /// refused, for [`REFUSED_FOR`].
    fn for_long(&self, now: Instant) -> Option<String> {
        let since = self.since.filter(|since| now.duration_since(*since) >= REFUSED_FOR)?;
        let seconds = now.duration_since(since).as_secs();
        Some(format!("refused every connection for {seconds} s ({})", self.last))
    }

    /// Why, when no call was ever taken and every one was refused: none of
    /// them can have reached the target. Given up on at once when the prober
    /// knows the target down (`down`, in its words), else after
    /// [`REFUSED_FOR`].
    fn never_reached(&self, now: Instant, down: Option<String>) -> Option<String> {
        if self.reached || self.since.is_none() {
            return None;
        }
        match down {
            Some(down) => Some(format!("is {down} and refused every Accept ({})", self.last)),
            None => self.for_long(now),
        }
    }
}

/// The `Accept`s sent to the target, each delivered in a task of its own
/// (a target that takes the connection and never answers would hold the
/// driver for the send's timeout): how they went, and whether one is out.
#[derive(Clone, Default)]
struct Accepts(Arc<Mutex<AcceptsSent>>);

#[derive(Default)]
struct AcceptsSent {
    refusals: Refusals,
    /// How many are still on their way.
    out: usize,
}

impl Accepts {
    fn lock(&self) -> std::sync::MutexGuard<'_, AcceptsSent> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Delivers `offer` to its node in a task of `io`, noting how it went.
    fn send(&self, io: &HandoffIo, conversation: &Conversation, offer: Envelope) {
        self.lock().out += 1;
        let (accepts, task_io, conversation) = (self.clone(), io.clone(), conversation.clone());
        io.spawn(async move {
            let outcome = task_io.deliver(&conversation, offer).await;
            let mut sent = accepts.lock();
            sent.refusals.note(&outcome, Instant::now());
            sent.out -= 1;
        });
    }

    /// Whether an `Accept` is still on its way.
    fn out(&self) -> bool {
        self.lock().out > 0
    }

    /// Why, when none is out and every one was refused (and the prober knows
    /// the target `down`, or that lasted [`REFUSED_FOR`]): none of them can
    /// have reached the target.
    fn never_reached(&self, now: Instant, down: Option<String>) -> Option<String> {
        let sent = self.lock();
        if sent.out > 0 { None } else { sent.refusals.never_reached(now, down) }
    }
}

/// One handoff under way on this node, the source: from the barrier to the
/// target's answer or the deadline.
struct Driver {
    handoffs: Handoffs,
    located: Located,
    handoff: HandoffId,
    target: String,
    timeout: Duration,
}

impl Driver {
    /// Follows the handoff, freezes the conversation (`StartHandoff`) and,
    /// when the step asks for the barrier, runs on in a task of its own.
    async fn freeze(
        self,
        progress: Progress,
        require_in_sync: bool,
        syncthing: Result<Syncthing, String>,
    ) -> Result<Started, StartError> {
        let begun = begin(&self.handoffs, &self.handoff, &self.target, self.timeout, progress).await?;
        let input = Input::StartHandoff { handoff: self.handoff.clone(), target: self.target.clone() };
        let started = persist(&self.handoffs, &self.located.conversation, input).await?;
        if let Some(Notice::Rejected { reason }) = started.notices.first() {
            let (step, why) = failed_step(reason);
            return Err(StartError::Rejected(format!("refused at the {step} step: {why}")));
        }
        let check_barrier = started.check_barrier.is_some();
        carry_out(&self.handoffs, &self.located.conversation, started).await;
        let store = self.handoffs.io.store.clone();
        let handoff = self.handoff.0.clone();
        if check_barrier {
            let io = self.handoffs.io.clone();
            io.spawn(self.run(require_in_sync, syncthing));
        }
        // Gone only when 64 more handoffs began meanwhile; its progress then
        // is what was known when it began.
        Ok(Started::Begun(store.progress(&handoff).unwrap_or(begun)))
    }

    async fn run(self, require_in_sync: bool, syncthing: Result<Syncthing, String>) {
        let deadline = Instant::now() + self.timeout;
        let peers = self.handoffs.io.peers().clone();
        // No `Accept` went out yet: the handoff may fail as soon as the
        // prober knows the target down, whatever the barrier is waiting for.
        let barrier = tokio::select! {
            biased;
            () = peers.until(&self.target, PeerState::known_down) => {
                let down = known_down_in_words(&peers, &self.target).unwrap_or_else(|| "down".into());
                Err(format!("{} is {down}", self.target))
            }
            passed = async {
                match (require_in_sync, syncthing) {
                    (false, _) => Ok(()),
                    (true, Ok(syncthing)) => self.barrier(&syncthing, deadline).await,
                    (true, Err(why)) => Err(why),
                }
            } => passed,
        };
        let input = match barrier {
            Ok(()) => {
                self.tell_late_writes().await;
                self.note("barrier: the target holds the same content; asking it to accept".into()).await;
                Input::BarrierPassed { handoff: self.handoff.clone() }
            }
            Err(why) => {
                self.note(format!("barrier: {why}")).await;
                Input::BarrierFailed { handoff: self.handoff.clone() }
            }
        };
        let accepts = Accepts::default();
        if self.feed(input, &accepts).await {
            self.await_answer(deadline, &accepts).await;
        }
    }

    /// Names the files written after the freeze: they are handed over too.
    async fn tell_late_writes(&self) {
        let dir = self.located.dir.clone();
        let late = off_thread(move || written_after_freeze(&dir)).await.unwrap_or_default();
        if late.is_empty() {
            return;
        }
        let files = late.join(", ");
        self.note(format!("barrier: written after the freeze, handed over with the rest: {files}")).await;
        let message = format!(
            "conversation {}: {files} written after the freeze for handoff {}; handed over with the rest",
            self.located.conversation.id, self.handoff
        );
        (self.handoffs.events)(&self.located.conversation.policy, vec![Event::warning("handoff.lateWrite", message)]);
    }

    /// Resends `Accept` every second (not while one is out) while the record
    /// says it is awaited, steps `Unreachable` when the target refused every
    /// one and the prober knows it down (or that lasted [`REFUSED_FOR`]), and
    /// `Timeout` at the deadline.
    async fn await_answer(&self, deadline: Instant, accepts: &Accepts) {
        let mut asking = Asking::until(deadline);
        loop {
            tokio::time::sleep(POLL).await;
            let Conversation { policy, id, .. } = &self.located.conversation;
            let record = self.handoffs.io.store.record(policy, id);
            let accepting = record.is_some_and(|record| {
                matches!(record.phase, Phase::Frozen { handoff, stage: Stage::Accepting, .. } if handoff == self.handoff)
            });
            if !accepting {
                return;
            }
            let due = asking.due(Instant::now(), !accepts.out());
            if due == Due::GiveUp {
                self.note("accept: no answer in time; asking the target to abort".into()).await;
                self.feed(Input::Timeout, accepts).await;
                return;
            }
            let down = known_down_in_words(self.handoffs.io.peers(), &self.target);
            if let Some(why) = accepts.never_reached(Instant::now(), down) {
                self.note(format!("accept: {} {why}; no Accept reached it", self.target)).await;
                self.feed(Input::Unreachable { handoff: self.handoff.clone() }, accepts).await;
                return;
            }
            if due == Due::AskAgain {
                let resend = Input::StartHandoff { handoff: self.handoff.clone(), target: self.target.clone() };
                self.feed(resend, accepts).await;
            }
        }
    }

    async fn note(&self, line: String) {
        self.handoffs.io.note(&self.handoff.0, line).await;
    }

    /// Steps and carries out `input`, the step's `Accept` through `accepts`
    /// (which note whether the target refused it); false when the record
    /// could not be persisted.
    async fn feed(&self, input: Input, accepts: &Accepts) -> bool {
        let conversation = &self.located.conversation;
        let mut step = match persist(&self.handoffs, conversation, input).await {
            Ok(step) => step,
            Err(error) => {
                let message = format!("cannot persist the record: {error}");
                self.handoffs.io.finish(&self.handoff.0, "freeze", message).await;
                return false;
            }
        };
        let (offers, others) = std::mem::take(&mut step.send)
            .into_iter()
            .partition(|envelope| matches!(envelope.message, Message::Accept { .. }));
        step.send = others;
        carry_out(&self.handoffs, conversation, step).await;
        for offer in offers {
            accepts.send(&self.handoffs.io, conversation, offer);
        }
        true
    }

    /// Until `deadline`: Syncthing reports the folder complete for the target,
    /// and the target's hash of the conversation equals this node's.
    async fn barrier(&self, syncthing: &Syncthing, deadline: Instant) -> Result<(), String> {
        let peer =
            self.handoffs.io.peers().get(&self.target).ok_or_else(|| format!("{} is not a peer", self.target))?;
        let client = ApiClient::new(&peer.authority(), self.handoffs.io.key(), PEER_TIMEOUT);
        let _ = syncthing.scan_sub(&self.located.folder_id, &self.located.sub).await;
        let mut device = None;
        let mut why = String::from("not checked");
        let mut refusals = Refusals::default();
        while Instant::now() < deadline {
            if device.is_none() {
                let found = client.syncthing_device().await;
                refusals.note(&found, Instant::now());
                match found {
                    Ok(found) => device = Some(found.device_id),
                    Err(error) => why = format!("cannot learn {}'s Syncthing device: {error}", self.target),
                }
            }
            if let Some(device) = &device {
                match self.check(syncthing, &client, device, &mut refusals).await {
                    Ok(()) => return Ok(()),
                    Err(reason) => why = reason,
                }
            }
            if let Some(refused) = refusals.for_long(Instant::now()) {
                return Err(format!("{} {refused}", self.target));
            }
            tokio::time::sleep(POLL).await;
        }
        Err(format!("not passed within {}: {why}", humantime::format_duration(self.timeout)))
    }

    async fn check(
        &self,
        syncthing: &Syncthing,
        client: &ApiClient,
        device: &str,
        refusals: &mut Refusals,
    ) -> Result<(), String> {
        let completion = syncthing
            .completion(&self.located.folder_id, device)
            .await
            .map_err(|error| format!("cannot read Syncthing's completion: {error}"))?;
        if completion.completion < 100.0 {
            return Err(format!("Syncthing reports the target {:.0}% complete", completion.completion));
        }
        let dir = self.located.dir.clone();
        let ours = off_thread(move || folder::content(&dir))
            .await
            .map_err(|error| error.to_string())?
            .map_err(|error| format!("cannot hash the conversation here: {error}"))?;
        let theirs = client.session(&self.located.conversation.id).await;
        refusals.note(&theirs, Instant::now());
        let theirs = theirs.map_err(|error| format!("cannot ask {} for its hash: {error}", self.target))?;
        if theirs.hash.as_deref() != Some(ours.hash.as_str()) {
            return Err(format!("{}'s content differs from this node's", self.target));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::SystemTime;

    use super::*;
    use crate::handoff::protocol::{Envelope, Message};
    use crate::handoff::store::HandoffStore;
    use crate::manifest::{SourceFile, validate};
    use crate::mesh::peers::PeerState;
    use crate::tasks::TaskSet;

    /// node-a and node-b share SyncFolder `shared` (at `dir` on node-a);
    /// HandoffPolicy `chats` keeps its conversations in its `sessions`, and
    /// hands over without waiting for Syncthing.
    fn set(dir: &Path) -> ManifestSet {
        set_of(dir, &["node-a", "node-b"], "")
    }

    /// `nodes` share SyncFolder `shared` (at `dir` on the first one, the node
    /// under test) as HandoffPolicy `chats`, which allows `--force`; `extra`
    /// is more of the policy's spec.
    fn set_of(dir: &Path, nodes: &[&str], extra: &str) -> ManifestSet {
        let node = |name: &str| {
            format!(
                "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {{name: {name}}}\nspec: {{role: satellite, address: 127.0.0.1}}\n---\n"
            )
        };
        let paths: Vec<String> = nodes
            .iter()
            .enumerate()
            .map(|(at, name)| match at {
                0 => format!("{name}: '{}'", dir.display()),
                _ => format!("{name}: /elsewhere"),
            })
            .collect();
        let text = format!(
            "{}apiVersion: agentmesh/v1alpha1\nkind: SyncFolder\nmetadata: {{name: shared}}\n\
             spec: {{paths: {{{}}}}}\n---\n\
             apiVersion: agentmesh/v1alpha1\nkind: HandoffPolicy\nmetadata: {{name: chats}}\n\
             spec: {{syncFolder: shared, sessionsDir: sessions, requireInSync: false, allowForce: true{extra}}}\n",
            nodes.iter().map(|name| node(name)).collect::<String>(),
            paths.join(", "),
        );
        let validation = validate(&[SourceFile { path: "m.yaml".into(), text }], Vec::new());
        assert!(validation.is_valid(), "{:?}", validation.diagnostics);
        validation.set
    }

    #[test]
    fn a_wait_asks_again_every_second_unless_an_ask_is_out_and_gives_up_at_its_deadline() {
        let start = Instant::now();
        let at = |millis: u64| start + Duration::from_millis(millis);
        // (looked at, may ask, due), in turn, with a deadline at 3 s.
        let looks = [
            (300, true, Due::Nothing),
            (1_000, false, Due::Nothing),
            (1_200, true, Due::AskAgain),
            (1_500, true, Due::Nothing),
            (2_200, true, Due::AskAgain),
            (2_900, true, Due::Nothing),
            (3_000, true, Due::GiveUp),
            (3_300, false, Due::GiveUp),
        ];
        let mut asking = Asking { deadline: at(3_000), last_asked: start };
        for (millis, may_ask, due) in looks {
            assert_eq!(asking.due(at(millis), may_ask), due, "at {millis} ms, may ask {may_ask}");
        }
    }

    #[test]
    fn without_to_the_target_is_the_default_one_else_the_only_other_node() {
        let dir = tempfile::tempdir().unwrap();
        let two = ["node-a", "node-b"];
        let three = ["node-a", "node-b", "node-c"];
        // (nodes, the policy's spec, --to, the target)
        let cases = [
            (&two[..], "", None, Some("node-b")),
            (&three, "", None, None),
            (&three, ", defaultTarget: node-c", None, Some("node-c")),
            (&three, ", defaultTarget: node-c", Some("node-b"), Some("node-b")),
            (&three, "", Some("node-c"), Some("node-c")),
        ];
        for (nodes, extra, to, expected) in cases {
            let set = set_of(dir.path(), nodes, extra);
            let spec = &set.handoff_policies["chats"].spec;
            let request = Request { id: "c-1".into(), to: to.map(str::to_owned), ..Request::default() };
            let target = target_of(&set, ("chats", spec), "node-a", &request);
            assert_eq!(target.ok().as_deref(), expected, "{nodes:?} {extra:?} {to:?}");
        }
    }

    #[tokio::test]
    async fn a_force_with_three_nodes_waits_for_the_promise_and_gives_up_at_its_timeout() {
        let (state, synced) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::create_dir_all(synced.path().join("sessions/c-1")).unwrap();
        let store = Arc::new(HandoffStore::load(state.path(), "node-c"));
        let record = Message::RecordOf { record: Record { epoch: 1, ..Record::new("node-a") } };
        let from_a = Input::Received(Envelope { from: "node-a".into(), to: "node-c".into(), message: record });
        store.step("chats", "c-1", from_a).unwrap();
        let peers = Peers::default();
        // node-a, the owner, is offline; node-b is online at a port where
        // nothing answers: it never promises.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        peers.set_members(vec![
            PeerState::new("node-a", None, "127.0.0.1", port),
            PeerState::new("node-b", None, "127.0.0.1", port),
        ]);
        peers.update("node-b", |peer| peer.online = true);
        let tasks = TaskSet::default();
        let io = HandoffIo::new(store.clone(), peers, None, tasks.clone());
        let handoffs = Handoffs { io, node: "node-c".into(), events: Arc::new(|_: &str, _: Vec<Event>| {}) };
        let request = Request { id: "c-1".into(), to: None, timeout: Some("1s".into()), force: true };
        let set = set_of(synced.path(), &["node-c", "node-a", "node-b"], "");
        let started = start(&handoffs, &set, Err("no Syncthing".into()), request).await;
        let Ok(Started::Begun(begun)) = started else { panic!("not followed: {started:?}") };
        assert_eq!(begun.lines, ["force: asking node-b to promise epoch 2"]);
        let forcing = store.record("chats", "c-1").expect("the record");
        assert_eq!(forcing.phase, Phase::Forcing { epoch: 2, waiting: ["node-b".to_owned()].into() });
        assert!(!store.progress(&begun.handoff).expect("followed").done, "not done while node-b has not answered");

        tokio::time::sleep(Duration::from_secs(2)).await;
        let ended = store.progress(&begun.handoff).expect("followed");
        assert_eq!((ended.done, ended.succeeded, ended.failed_step.as_deref()), (true, false, Some("force")));
        assert_eq!((ended.owner.as_str(), ended.epoch), ("node-a", 1));
        let record = store.record("chats", "c-1").expect("the record");
        assert_eq!((record.owner.as_str(), record.epoch, record.phase), ("node-a", 1, Phase::Owned));
        tasks.shutdown().await;
    }

    #[test]
    fn a_target_is_unreachable_after_refusing_every_call_for_3_s_or_at_once_when_known_down_never_if_one_was_taken() {
        let start = Instant::now();
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        let refused = || -> Result<(), ClientError> {
            Err(ClientError::Unreachable { base: "b".into(), reason: "Connection refused".into(), refused: true })
        };
        let taken = || -> Result<(), ClientError> {
            Err(ClientError::Unreachable { base: "b".into(), reason: "timed out".into(), refused: false })
        };
        let down = || Some("unreachable since 09:12 (Connection refused)".to_owned());
        // (outcomes at seconds, checked at, refused for long, never reached,
        // never reached when the prober knows the target down)
        type Outcome = fn() -> Result<(), ClientError>;
        type Case<'a> = (&'a [(u64, Outcome)], u64, bool, bool, bool);
        let cases: [Case<'_>; 8] = [
            (&[], 9, false, false, false),
            (&[(0, refused), (1, refused)], 2, false, false, true),
            (&[(0, refused), (1, refused)], 3, true, true, true),
            (&[(0, refused), (1, taken), (2, refused)], 4, false, false, false),
            (&[(0, refused), (1, taken), (2, refused)], 5, true, false, false),
            (&[(0, taken)], 1, false, false, false),
            (&[(0, taken)], 9, false, false, false),
            (&[(0, || Ok(())), (1, refused)], 9, true, false, false),
        ];
        for (outcomes, checked, long, never, never_when_down) in cases {
            let mut refusals = Refusals::default();
            for (second, outcome) in outcomes {
                refusals.note(&outcome(), at(*second));
            }
            let why = refusals.for_long(at(checked));
            assert_eq!(why.is_some(), long, "{outcomes:?} at {checked}");
            assert_eq!(refusals.never_reached(at(checked), None).is_some(), never, "{outcomes:?} at {checked}");
            let when_down = refusals.never_reached(at(checked), down());
            assert_eq!(when_down.is_some(), never_when_down, "{outcomes:?} at {checked}, known down");
            if let Some(why) = why {
                assert!(why.starts_with("refused every connection for "), "{why}");
                assert!(why.contains("Connection refused"), "{why}");
            }
            if let Some(why) = when_down {
                assert!(
                    why.starts_with("is unreachable since 09:12 (Connection refused) and refused every Accept ("),
                    "{why}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_target_known_down_is_refused_as_asleep_or_unreachable_since_a_time_as_status_says() {
        let went = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_548_379);
        let peers = Peers::default();
        peers.set_members(vec![
            PeerState::new("node-b", None, "127.0.0.1", 9),
            PeerState::new("node-c", None, "127.0.0.1", 9),
        ]);
        assert!(peers.said_goodbye("node-b", went));
        peers.update("node-c", |peer| {
            peer.last_error = Some("connection refused".into());
            peer.unreachable_since = Some(went);
        });
        let record = Record { epoch: 3, ..Record::new("node-a") };
        let hh_mm = crate::clock::local_hh_mm(went);
        let stays = "refused at once; c-1 stays with node-a at epoch 3";
        let cases = [
            ("node-b", format!("node-b is asleep since {hh_mm}: {stays}")),
            ("node-c", format!("node-c is unreachable since {hh_mm} (connection refused): {stays}")),
        ];
        for (target, expected) in cases {
            let refused = target_answers(&peers, target, "c-1", &record).await;
            assert!(matches!(&refused, Err(StartError::TargetOffline(message)) if *message == expected), "{refused:?}");
        }
    }

    /// A handoff of c-1 from node-a to node-b under way.
    struct Begun {
        store: Arc<HandoffStore>,
        tasks: TaskSet,
        handoff: String,
        /// node-a's peers, node-b online in them.
        peers: Peers,
        _dirs: (tempfile::TempDir, tempfile::TempDir),
    }

    impl Begun {
        /// How the handoff ended once, 100 ms in, the prober learned node-b
        /// is down; it must end within a second of that.
        async fn ended_once_known_down(&self) -> Progress {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let known = Instant::now();
            probe_refused(&self.peers);
            let ended = ended(&self.store, &self.handoff).await;
            let took = known.elapsed();
            assert!(took < Duration::from_secs(1), "failed {took:?} after the prober knew, not at once");
            ended
        }

        /// Asserts that node-a still owns c-1 at epoch 1, unfrozen; then
        /// stops the handoff's tasks.
        async fn still_owned_unfrozen(self) {
            let record = self.store.record("chats", "c-1").expect("the record");
            assert_eq!((record.owner.as_str(), record.epoch, record.phase), ("node-a", 1, Phase::Owned));
            self.tasks.shutdown().await;
        }

        /// Asserts that the handoff waits, frozen at Accepting, for the
        /// target's answer or its timeout; then stops its tasks.
        async fn still_waiting_frozen(self) {
            let done = self.store.progress(&self.handoff).expect("followed").done;
            assert!(!done, "still waiting for the answer or the timeout");
            let record = self.store.record("chats", "c-1").expect("the record");
            assert!(matches!(record.phase, Phase::Frozen { stage: Stage::Accepting, .. }), "{record:?}");
            self.tasks.shutdown().await;
        }
    }

    /// A handoff of c-1 from node-a to node-b at `port` (requireInSync off,
    /// `timeout`).
    async fn handoff_to_port(port: u16, timeout: &str) -> Begun {
        handoff_through(port, timeout, Err("no Syncthing".into())).await
    }

    /// A handoff of c-1 from node-a to node-b at `port` (`timeout`), with
    /// the barrier when node-a has `syncthing`.
    async fn handoff_through(port: u16, timeout: &str, syncthing: Result<Syncthing, String>) -> Begun {
        let (state, synced) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::create_dir_all(synced.path().join("sessions/c-1")).unwrap();
        let store = Arc::new(HandoffStore::load(state.path(), "node-a"));
        assert!(store.claim("chats", "c-1").unwrap());
        let peers = Peers::default();
        peers.set_members(vec![PeerState::new("node-b", None, "127.0.0.1", port)]);
        // The prober does not know it is down yet.
        peers.update("node-b", |peer| peer.online = true);
        let tasks = TaskSet::default();
        let io = HandoffIo::new(store.clone(), peers.clone(), None, tasks.clone());
        let handoffs = Handoffs { io, node: "node-a".into(), events: Arc::new(|_: &str, _: Vec<Event>| {}) };
        let request =
            Request { id: "c-1".into(), to: Some("node-b".into()), timeout: Some(timeout.into()), force: false };
        let mut set = set(synced.path());
        if let Some(policy) = set.handoff_policies.get_mut("chats") {
            policy.spec.require_in_sync = syncthing.is_ok();
        }
        let started = start(&handoffs, &set, syncthing, request).await;
        let Ok(Started::Begun(begun)) = started else { panic!("not begun: {started:?}") };
        Begun { store, tasks, handoff: begun.handoff, peers, _dirs: (state, synced) }
    }

    /// node-b as the prober sees it once its probe was refused.
    fn probe_refused(peers: &Peers) {
        peers.update("node-b", |peer| {
            peer.online = false;
            peer.last_error = Some("Connection refused".into());
            peer.unreachable_since = Some(SystemTime::now());
        });
    }

    /// The progress of `handoff` once it is done, or after 15 s.
    async fn ended(store: &HandoffStore, handoff: &str) -> Progress {
        let started = Instant::now();
        loop {
            let progress = store.progress(handoff).expect("followed");
            if progress.done || started.elapsed() > Duration::from_secs(15) {
                return progress;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn a_target_that_refuses_every_accept_fails_the_handoff_within_4_s_and_the_source_keeps_it_unfrozen() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let started = Instant::now();
        let begun = handoff_to_port(closed, "60s").await;
        let ended = ended(&begun.store, &begun.handoff).await;
        let took = started.elapsed();
        assert!(took < Duration::from_secs(4), "failed after {took:?}, not at once after 3 s of refusals");
        assert_eq!((ended.done, ended.succeeded, ended.failed_step.as_deref()), (true, false, Some("accept")));
        assert!(ended.message.as_deref().is_some_and(|m| m.contains("refused every connection")), "{ended:?}");
        assert!(ended.lines.iter().any(|line| line.contains("Connection refused")), "{ended:?}");
        begun.still_owned_unfrozen().await;
    }

    #[tokio::test]
    async fn a_target_the_prober_learns_is_down_fails_the_handoff_at_the_barrier_at_once_whatever_it_waits_for() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // node-a's Syncthing takes the barrier's calls and never answers.
        let syncthing = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = Syncthing::new(&format!("http://{}", syncthing.local_addr().unwrap()), "key");
        let begun = handoff_through(closed, "60s", Ok(client)).await;
        let ended = begun.ended_once_known_down().await;
        assert_eq!((ended.done, ended.succeeded), (true, false), "{ended:?}");
        let line = ended.lines.iter().find(|line| line.starts_with("barrier: ")).expect("why");
        assert!(line.starts_with("barrier: node-b is unreachable since "), "{line}");
        assert!(line.ends_with(" (Connection refused)"), "{line}");
        begun.still_owned_unfrozen().await;
    }

    #[tokio::test]
    async fn a_target_the_prober_knows_down_fails_the_handoff_at_once_once_every_accept_was_refused() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // The first Accept is refused at once; then the prober learns it too.
        let begun = handoff_to_port(closed, "60s").await;
        let ended = begun.ended_once_known_down().await;
        assert_eq!((ended.done, ended.succeeded, ended.failed_step.as_deref()), (true, false, Some("accept")));
        let line = ended.lines.iter().find(|line| line.contains("refused every Accept")).expect("why");
        assert!(line.starts_with("accept: node-b is unreachable since "), "{line}");
        assert!(line.contains("(Connection refused) and refused every Accept ("), "{line}");
        begun.still_owned_unfrozen().await;
    }

    #[tokio::test]
    async fn a_target_the_prober_knows_down_after_it_may_have_taken_an_accept_keeps_the_source_waiting_frozen() {
        // The kernel takes the connections; nothing reads them: the Accept may have arrived.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let begun = handoff_to_port(silent.local_addr().unwrap().port(), "60s").await;
        let (store, peers) = (&begun.store, &begun.peers);
        // Known down once the Accept went out (before, the barrier fails).
        tokio::time::timeout(Duration::from_secs(5), async {
            while !store
                .record("chats", "c-1")
                .is_some_and(|r| matches!(r.phase, Phase::Frozen { stage: Stage::Accepting, .. }))
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the Accept goes out");
        probe_refused(peers);
        // Past the Accept's own timeout (3 s) and REFUSED_FOR.
        tokio::time::sleep(Duration::from_secs(5)).await;
        begun.still_waiting_frozen().await;
    }

    #[tokio::test]
    async fn a_target_that_took_an_accept_and_never_answered_keeps_the_source_waiting_frozen() {
        // The kernel takes the connections; nothing reads them: the Accept may have arrived.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let begun = handoff_to_port(silent.local_addr().unwrap().port(), "60s").await;
        tokio::time::sleep(Duration::from_secs(8)).await;
        begun.still_waiting_frozen().await;
    }

    #[tokio::test]
    async fn a_target_that_never_answers_an_accept_holds_up_neither_the_resends_nor_the_timeout() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let started = Instant::now();
        let Begun { store, tasks, .. } = handoff_to_port(silent.local_addr().unwrap().port(), "1s").await;
        let aborting = loop {
            let record = store.record("chats", "c-1").expect("the record");
            if matches!(record.phase, Phase::Frozen { stage: Stage::Aborting, .. })
                || started.elapsed() > Duration::from_secs(6)
            {
                break record;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let took = started.elapsed();
        assert!(matches!(aborting.phase, Phase::Frozen { stage: Stage::Aborting, .. }), "{aborting:?}");
        // Each Accept waits up to 3 s for its answer: inline, the first alone
        // would have held the timeout back until then.
        assert!(took < Duration::from_millis(2_500), "Timeout stepped after {took:?}, not at the 1 s deadline");
        tasks.shutdown().await;
    }

    #[tokio::test]
    async fn a_handoffs_driver_stops_when_the_handoff_tasks_shut_down() {
        let (state, synced) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::create_dir_all(synced.path().join("sessions/c-1")).unwrap();
        let store = Arc::new(HandoffStore::load(state.path(), "node-a"));
        assert!(store.claim("chats", "c-1").unwrap());
        let peers = Peers::default();
        // Online, at a port where nothing answers: the target never accepts.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        peers.set_members(vec![PeerState::new("node-b", None, "127.0.0.1", port)]);
        peers.update("node-b", |peer| peer.online = true);
        let tasks = TaskSet::default();
        let io = HandoffIo::new(store.clone(), peers, None, tasks.clone());
        let handoffs = Handoffs { io, node: "node-a".into(), events: Arc::new(|_: &str, _: Vec<Event>| {}) };
        let request = Request { id: "c-1".into(), to: Some("node-b".into()), timeout: Some("1s".into()), force: false };
        let started = start(&handoffs, &set(synced.path()), Err("no Syncthing".into()), request).await;
        assert!(matches!(started, Ok(Started::Begun(_))), "{started:?}");
        let frozen = store.record("chats", "c-1").expect("the record");
        assert!(matches!(frozen.phase, Phase::Frozen { .. }), "{frozen:?}");

        tasks.shutdown().await;
        // Past the deadline, where a driver still running would have passed
        // the barrier, resent `Accept` and stepped `Timeout`.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let record = store.record("chats", "c-1").expect("the record");
        assert_eq!(record, frozen, "the driver stopped with the handoff's tasks");
    }
}
