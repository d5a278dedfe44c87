//! Where each conversation's ownership lives on this node: one
//! [`protocol::Node`](super::protocol::Node) per `(policy, conversation)`, its
//! record persisted as `<state dir>/handoff/<policy>/<id>.json` (written
//! atomically), in memory behind one lock.
//!
//! Every change goes through [`HandoffStore::step`] (or [`HandoffStore::claim`]),
//! which persists the record *before* it returns the `Step`: the caller sends
//! what the step says only afterwards, as `protocol::Step` requires. Both
//! block on the disk (the record is synced), so `handoff::io` calls them on
//! tokio's blocking threads; a change is made on a copy of the node, under a
//! lock of its own, and takes the node's place once it is on disk, so reading
//! a record never waits for the disk nor sees one that is not there. At start,
//! every record is read back and fed `Input::Restart`; what those steps ask to
//! send waits in `pending` until the HandoffPolicy reconciler takes it.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::protocol::{Decision, Envelope, HandoffId, Input, Message, Node, Reason, Record, Step};
use crate::metrics::Metrics;
use crate::sleep_clock::SleepDetector;

/// How many handoffs' progress is kept.
const KEEP_PROGRESS: usize = 64;
/// How many conversations' refusals without a record are remembered.
const KEEP_REFUSALS: usize = 1024;

/// `(policy, conversation id)`.
pub(crate) type Key = (String, String);

struct Entry {
    node: Node,
    /// The content hash each other node last reported for this
    /// conversation, by node.
    hashes: BTreeMap<String, String>,
}

impl Entry {
    fn new(node: Node) -> Entry {
        Entry { node, hashes: BTreeMap::new() }
    }
}

/// Hashing every conversation on every pass would keep an idle node busy: a
/// folder's content is read again only when its fingerprint changed.
#[derive(Default)]
struct ContentCache(BTreeMap<PathBuf, (u64, super::folder::Content)>);

/// How one handoff started on this node goes, for `meshctl handoff` to follow
/// (the API shows it as `wire::HandoffProgress`). Kept in `<state dir>/handoff-progress.json`,
/// so that a follower of a handoff whose daemon restarted learns how it ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "HandoffProgress")]
pub(crate) struct Progress {
    pub handoff: String,
    pub policy: String,
    pub conversation: String,
    pub target: String,
    /// How long the handoff may take, in milliseconds.
    #[serde(default)]
    pub timeout_ms: u64,
    /// What happened so far, one line per step.
    pub lines: Vec<String>,
    pub done: bool,
    pub succeeded: bool,
    /// The step that failed: `freeze`, `barrier`, `accept` or `release`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<String>,
    /// The outcome in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Who owns the conversation now, at which epoch.
    pub owner: String,
    pub epoch: u64,
}

#[derive(Default)]
struct Inner {
    entries: BTreeMap<Key, Entry>,
    /// The handoffs started here, by id.
    progress: BTreeMap<String, Progress>,
    /// When each handoff under way began, since this daemon started: its
    /// duration for the metrics.
    started: BTreeMap<String, Instant>,
    /// Steps of the restart, whose messages are still to be sent.
    pending: Vec<(Key, Step)>,
    /// Handoffs refused because this node had no record of the conversation.
    /// Nothing was written for them; should a record come later (the peer's
    /// `RecordOf`), it starts with these refusals, so a late copy of the same
    /// `Accept` is refused still and the source, which unfroze, stays the
    /// only owner.
    refused_unknown: BTreeMap<Key, Vec<HandoffId>>,
    /// Folders not named like a conversation, by policy, already warned about.
    ignored: BTreeSet<(String, String)>,
    /// The policies of which a peer's record (`RecordOf`) reached this node
    /// since it started or woke: the policy-wide wake gate, for the
    /// conversations it has no record of yet (claims).
    heard_policies: BTreeSet<String>,
    /// Finds the sleeps in the clocks read at each look ([`HandoffStore::notice_sleep`]).
    sleeps: SleepDetector,
}

/// Every conversation's ownership as this node knows it.
pub(crate) struct HandoffStore {
    me: String,
    dir: PathBuf,
    inner: Mutex<Inner>,
    /// Taken only on blocking threads; see [`HandoffStore::changing`].
    changes: Mutex<()>,
    /// Held while `handoff-progress.json` is written.
    progress_file: Mutex<()>,
    contents: Mutex<ContentCache>,
    /// Held while a shadow is read or changed (`shadow.rs`): the reconciler
    /// and a handoff's acceptance may both reach for one.
    shadows: Mutex<()>,
    /// Owned conversations last found equal to their shadow: the epoch and
    /// their files' fingerprint then. The same again means nothing to look at.
    quiet: Mutex<BTreeMap<Key, (u64, u64)>>,
    /// Where each handoff's end is counted.
    metrics: Metrics,
}

impl HandoffStore {
    /// Reads every record under `<state_dir>/handoff/` and restarts its node. A
    /// file that cannot be read is logged and left alone (not overwritten).
    pub(crate) fn load(state_dir: &Path, me: &str) -> HandoffStore {
        let store = HandoffStore {
            me: me.to_owned(),
            dir: state_dir.join("handoff"),
            inner: Mutex::default(),
            changes: Mutex::default(),
            progress_file: Mutex::default(),
            contents: Mutex::default(),
            shadows: Mutex::default(),
            quiet: Mutex::default(),
            metrics: Metrics::default(),
        };
        let mut inner = Inner { progress: read_progress(&store.progress_path()), ..Inner::default() };
        for (key, record) in read_all(&store.dir) {
            let mut node = Node::new(me, record);
            let step = node.step(Input::Restart);
            if let Some(record) = &step.persist
                && let Err(error) = store.save(&key, record)
            {
                tracing::warn!(policy = key.0, id = key.1, %error, "cannot persist a restarted handoff record");
                continue;
            }
            inner.entries.insert(key.clone(), Entry::new(node));
            if !step.send.is_empty() || !step.notices.is_empty() {
                inner.pending.push((key, step));
            }
        }
        *store.lock() = inner;
        store
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Held while a record changes, from the step to its file on disk: steps
    /// of the protocol are taken one at a time, and a record's file is never
    /// written by two threads at once.
    fn changing(&self) -> MutexGuard<'_, ()> {
        self.changes.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn path(&self, (policy, id): &Key) -> PathBuf {
        self.dir.join(policy).join(format!("{id}.json"))
    }

    fn progress_path(&self) -> PathBuf {
        self.dir.with_file_name("handoff-progress.json")
    }

    /// Saves every handoff's progress as it is now; a failure costs only what
    /// a follower sees after a restart, so it is logged. Blocking; the file's
    /// own lock is taken before the progress is read, so the last write holds
    /// the latest progress, and readers never wait for the disk.
    fn save_progress(&self) {
        let _file = self.progress_file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let progress = self.lock().progress.clone();
        let written = serde_json::to_vec_pretty(&progress)
            .map_err(io::Error::other)
            .and_then(|bytes| crate::atomic_file::write_atomic(&self.progress_path(), &bytes));
        if let Err(error) = written {
            tracing::warn!(%error, "cannot save the progress of the handoffs");
        }
    }

    fn save(&self, key: &Key, record: &Record) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
        crate::atomic_file::write_atomic(&self.path(key), &bytes)
    }

    /// Makes this node the owner, at epoch 1, of a conversation it knows no
    /// record of. False when it knows one (nothing changes). Blocking: the
    /// record is synced to disk before anyone can read it.
    pub(crate) fn claim(&self, policy: &str, id: &str) -> io::Result<bool> {
        let key = (policy.to_owned(), id.to_owned());
        let _changing = self.changing();
        let record = {
            let inner = self.lock();
            if inner.entries.contains_key(&key) {
                return Ok(false);
            }
            let mut record = Record { epoch: 1, ..Record::new(self.me.clone()) };
            refusals_into(&inner.refused_unknown, &key, &mut record);
            record
        };
        self.save(&key, &record)?;
        let mut inner = self.lock();
        inner.refused_unknown.remove(&key);
        inner.entries.insert(key, Entry::new(Node::new(self.me.clone(), record)));
        Ok(true)
    }

    /// Feeds `input` to the conversation's node and persists its record when
    /// it changed, before returning the step. A message about a conversation
    /// this node has no record of starts from a record naming the sender as
    /// owner at epoch 0 (any record it sends is newer); it is kept only once
    /// the step changed it. But an `Accept`, an `Abort` or a `Prepare` about
    /// one creates nothing: it is answered `Refused` (`UnknownConversation`),
    /// `AbortAcked` or `PromiseRefused` at once. None for any other input
    /// about an unknown one.
    ///
    /// Blocking (the record is synced to disk): call it off the async threads.
    /// The step runs on a copy of the node, which takes the node's place once
    /// persisted: readers never wait for the disk and never see a record that
    /// is not on it yet.
    pub(crate) fn step(&self, policy: &str, id: &str, input: Input) -> io::Result<Option<Step>> {
        let key = (policy.to_owned(), id.to_owned());
        let _changing = self.changing();
        let (mut node, known) = {
            let mut inner = self.lock();
            match inner.entries.get(&key) {
                Some(entry) => (entry.node.clone(), true),
                None => {
                    let Input::Received(envelope) = &input else { return Ok(None) };
                    if let Some(step) = self.refuse_unknown(&mut inner, &key, envelope) {
                        return Ok(Some(step));
                    }
                    let mut record = Record { epoch: 0, ..Record::new(envelope.from.clone()) };
                    refusals_into(&inner.refused_unknown, &key, &mut record);
                    (Node::new(self.me.clone(), record), false)
                }
            }
        };
        let record_from_peer = matches!(&input, Input::Received(Envelope { message: Message::RecordOf { .. }, .. }));
        let step = node.step(input);
        if let Some(record) = &step.persist {
            // Not persisted: nothing of the step may happen.
            self.save(&key, record)?;
        }
        let mut inner = self.lock();
        if record_from_peer {
            inner.heard_policies.insert(key.0.clone());
        }
        match inner.entries.get_mut(&key) {
            Some(entry) => entry.node = node,
            None if known || step.persist.is_none() => {}
            None => {
                inner.refused_unknown.remove(&key);
                inner.entries.insert(key, Entry::new(node));
            }
        }
        Ok(Some(step))
    }

    /// The answer to an `Accept`, an `Abort` or a `Prepare` about a
    /// conversation this node has no record of, which writes nothing: a
    /// handoff's refusal is remembered in memory until a record exists. None
    /// for any other message.
    fn refuse_unknown(&self, inner: &mut Inner, key: &Key, envelope: &Envelope) -> Option<Step> {
        let answer = |message| Step {
            send: vec![Envelope { from: self.me.clone(), to: envelope.from.clone(), message }],
            ..Step::default()
        };
        if let Message::Prepare { epoch } = envelope.message {
            // A promise needs the record it binds; a forcer asks again later.
            return Some(answer(Message::PromiseRefused { epoch, reason: Reason::UnknownConversation }));
        }
        let (handoff, reply) = match &envelope.message {
            Message::Accept { handoff, .. } => {
                (handoff, Message::Refused { handoff: handoff.clone(), reason: Reason::UnknownConversation })
            }
            Message::Abort { handoff } => (handoff, Message::AbortAcked { handoff: handoff.clone() }),
            _ => return None,
        };
        if !inner.refused_unknown.contains_key(key) && inner.refused_unknown.len() >= KEEP_REFUSALS {
            inner.refused_unknown.pop_first();
        }
        let refused = inner.refused_unknown.entry(key.clone()).or_default();
        if !refused.contains(handoff) {
            refused.push(handoff.clone());
        }
        Some(answer(reply))
    }

    /// True the first time it is asked about folder `name` of `policy`, which
    /// is not named like a conversation: it is warned about once a daemon.
    pub(crate) fn first_sight_of_ignored(&self, policy: &str, name: &str) -> bool {
        self.lock().ignored.insert((policy.to_owned(), name.to_owned()))
    }

    /// What the restart asked to send and tell, for one policy; taken once.
    pub(crate) fn take_pending(&self, policy: &str) -> Vec<(String, Step)> {
        let mut inner = self.lock();
        let (mine, rest) = std::mem::take(&mut inner.pending).into_iter().partition(|((p, _), _)| p == policy);
        inner.pending = rest;
        mine.into_iter().map(|((_, id), step)| (id, step)).collect()
    }

    pub(crate) fn record(&self, policy: &str, id: &str) -> Option<Record> {
        self.lock().entries.get(&(policy.to_owned(), id.to_owned())).map(|entry| entry.node.record().clone())
    }

    /// Whether the agent on this node may write to the conversation now
    /// ([`Node::can_write`]): owned here and not frozen.
    pub(crate) fn can_write(&self, policy: &str, id: &str) -> bool {
        self.lock().entries.get(&(policy.to_owned(), id.to_owned())).is_some_and(|entry| entry.node.can_write())
    }

    /// Every conversation of `policy` this node has a record of.
    pub(crate) fn records(&self, policy: &str) -> Vec<(String, Record)> {
        self.lock()
            .entries
            .iter()
            .filter(|((p, _), _)| p == policy)
            .map(|((_, id), entry)| (id.clone(), entry.node.record().clone()))
            .collect()
    }

    /// `RecordOf` of the conversation for `peer`, when there is a record.
    pub(crate) fn record_for(&self, policy: &str, id: &str, peer: &str) -> Option<Envelope> {
        self.lock().entries.get(&(policy.to_owned(), id.to_owned())).map(|entry| entry.node.record_for(peer))
    }

    /// The store, counting each handoff's end (outcome and duration) into `metrics`.
    pub(crate) fn counting_into(mut self, metrics: Metrics) -> HandoffStore {
        self.metrics = metrics;
        self
    }

    /// Starts following a handoff. Blocking (the progress is saved).
    pub(crate) fn begin(&self, progress: Progress) {
        {
            let mut inner = self.lock();
            // Only the recent ones are kept: the oldest finished ones go first.
            while inner.progress.len() >= KEEP_PROGRESS {
                let oldest = inner.progress.iter().find(|(_, p)| p.done).map(|(id, _)| id.clone());
                let Some(oldest) = oldest.or_else(|| inner.progress.keys().next().cloned()) else { break };
                inner.progress.remove(&oldest);
                inner.started.remove(&oldest);
            }
            inner.started.insert(progress.handoff.clone(), Instant::now());
            inner.progress.insert(progress.handoff.clone(), progress);
        }
        self.save_progress();
    }

    /// Adds a line to a handoff's progress. Blocking (the progress is saved).
    pub(crate) fn note(&self, handoff: &str, line: String) {
        let noted = self.lock().progress.get_mut(handoff).map(|progress| progress.lines.push(line)).is_some();
        if noted {
            self.save_progress();
        }
    }

    /// Ends a handoff's progress (the first outcome wins), with the owner and
    /// epoch of the conversation then. Blocking (the progress is saved).
    pub(crate) fn finish(&self, handoff: &str, failed_step: Option<&str>, message: String) {
        {
            let mut inner = self.lock();
            let Some(progress) = inner.progress.get(handoff).filter(|progress| !progress.done) else { return };
            let key = (progress.policy.clone(), progress.conversation.clone());
            let now = inner.entries.get(&key).map(|entry| entry.node.record().clone());
            let Some(progress) = inner.progress.get_mut(handoff) else { return };
            progress.done = true;
            progress.succeeded = failed_step.is_none();
            progress.failed_step = failed_step.map(str::to_owned);
            progress.lines.push(message.clone());
            progress.message = Some(message);
            if let Some(Record { owner, epoch, .. }) = now {
                (progress.owner, progress.epoch) = (owner, epoch);
            }
            let took = inner.started.remove(handoff).map(|started| started.elapsed());
            self.metrics.handoff_ended(failed_step.is_none(), took);
        }
        self.save_progress();
    }

    pub(crate) fn progress(&self, handoff: &str) -> Option<Progress> {
        self.lock().progress.get(handoff).cloned()
    }

    /// The content of the conversation folder `dir`, read again only when
    /// its fingerprint changed (blocking I/O: call it off the async threads
    /// when the folder may be large).
    pub(crate) fn content(&self, dir: &Path) -> io::Result<super::folder::Content> {
        let fingerprint = super::folder::fingerprint(dir)?;
        let mut cache = self.contents.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((seen, content)) = cache.0.get(dir)
            && *seen == fingerprint
        {
            return Ok(content.clone());
        }
        let content = super::folder::content(dir)?;
        cache.0.insert(dir.to_owned(), (fingerprint, content.clone()));
        Ok(content)
    }

    /// Where the owner keeps its shadow of a conversation (`shadow.rs`).
    pub(crate) fn shadow_dir(&self, policy: &str, id: &str) -> PathBuf {
        self.dir.with_file_name("handoff-shadow").join(policy).join(id)
    }

    /// Runs `f` on the shadows alone (blocking I/O: off the async threads).
    pub(crate) fn with_shadows<T>(&self, f: impl FnOnce() -> T) -> T {
        let _held = self.shadows.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f()
    }

    /// Whether conversation `id`, owned at `epoch`, was found equal to its
    /// shadow when its files had this `fingerprint`.
    pub(crate) fn is_quiet(&self, (policy, id): (&str, &str), epoch: u64, fingerprint: u64) -> bool {
        let quiet = self.quiet.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        quiet.get(&(policy.to_owned(), id.to_owned())) == Some(&(epoch, fingerprint))
    }

    /// Notes that conversation `id`, owned at `epoch`, equals its shadow with
    /// its files at this `fingerprint`.
    pub(crate) fn set_quiet(&self, (policy, id): (&str, &str), epoch: u64, fingerprint: u64) {
        let mut quiet = self.quiet.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        quiet.insert((policy.to_owned(), id.to_owned()), (epoch, fingerprint));
    }

    /// Notes the content hash `node` reported for the conversation.
    pub(crate) fn set_hash_of(&self, policy: &str, id: &str, node: &str, hash: String) {
        if let Some(entry) = self.lock().entries.get_mut(&(policy.to_owned(), id.to_owned())) {
            entry.hashes.insert(node.to_owned(), hash);
        }
    }

    /// Whether a peer's record of the conversation reached this node since it
    /// started or woke ([`Node::heard_current`]): until then this node may hold
    /// a record the others have moved past, and does not guard it.
    pub(crate) fn heard_current(&self, policy: &str, id: &str) -> bool {
        self.lock().entries.get(&(policy.to_owned(), id.to_owned())).is_some_and(|entry| entry.node.heard_current())
    }

    /// Whether a peer's record of any conversation of `policy` reached this
    /// node since it started or woke: until then it may not know of the
    /// conversations the others claimed meanwhile, and claims none alone.
    pub(crate) fn heard_policy(&self, policy: &str) -> bool {
        self.lock().heard_policies.contains(policy)
    }

    /// Looks for a sleep since the last look, with `clocks` read now (with
    /// sleep, without: [`crate::sys::asleep_and_awake_clocks`]); how long it
    /// slept, once, when it did (the caller then calls [`HandoffStore::woke`]).
    /// The wall clock is not read: setting it is no sleep and hides none.
    pub(crate) fn notice_sleep(&self, clocks: (Duration, Duration)) -> Option<Duration> {
        self.lock().sleeps.observe(clocks)
    }

    /// This node slept: every conversation's node is fed `Input::Woke` and
    /// every policy's gate closes, until a peer's record comes again. Blocking
    /// (it waits for a change under way to reach the disk).
    pub(crate) fn woke(&self) {
        let _changing = self.changing();
        let mut inner = self.lock();
        inner.heard_policies.clear();
        for entry in inner.entries.values_mut() {
            // Waking changes nothing persisted and sends nothing.
            let _ = entry.node.step(Input::Woke);
        }
    }

    /// The content hash each other node last reported for the conversation.
    pub(crate) fn hashes(&self, policy: &str, id: &str) -> BTreeMap<String, String> {
        self.lock()
            .entries
            .get(&(policy.to_owned(), id.to_owned()))
            .map(|entry| entry.hashes.clone())
            .unwrap_or_default()
    }
}

/// Writes the refusals of handoffs made while there was no record of the
/// conversation into its first record.
fn refusals_into(refused: &BTreeMap<Key, Vec<HandoffId>>, key: &Key, record: &mut Record) {
    for handoff in refused.get(key).into_iter().flatten() {
        let refusal = Decision::Refused { reason: Reason::UnknownConversation };
        record.decisions.entry(handoff.clone()).or_insert(refusal);
    }
}

/// The handoffs' progress saved in `path`; none when there is no such file
/// or it does not read.
fn read_progress(path: &Path) -> BTreeMap<String, Progress> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return BTreeMap::new(),
        Err(error) => {
            tracing::warn!(file = %path.display(), %error, "cannot read the progress of the handoffs");
            return BTreeMap::new();
        }
    };
    serde_json::from_slice(&bytes).unwrap_or_else(|error| {
        tracing::warn!(file = %path.display(), %error, "cannot read the progress of the handoffs");
        BTreeMap::new()
    })
}

/// Every `<dir>/<policy>/<id>.json` that reads as a record.
fn read_all(dir: &Path) -> Vec<(Key, Record)> {
    let mut found = Vec::new();
    let Ok(policies) = std::fs::read_dir(dir) else { return found };
    for policy in policies.flatten() {
        let Ok(files) = std::fs::read_dir(policy.path()) else { continue };
        let policy_name = policy.file_name().to_string_lossy().into_owned();
        for file in files.flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".json").filter(|id| !id.starts_with('.')) else { continue };
            if let Err(why) = super::folder::check_conversation_id(id) {
                tracing::warn!(file = %file.path().display(), "a handoff record left alone: {why}");
                continue;
            }
            let read = std::fs::read(file.path()).map_err(|e| e.to_string());
            match read.and_then(|bytes| serde_json::from_slice::<Record>(&bytes).map_err(|e| e.to_string())) {
                Ok(record) => found.push(((policy_name.clone(), id.to_owned()), record)),
                Err(error) => tracing::warn!(file = %file.path().display(), error, "cannot read a handoff record"),
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::protocol::{Message, Phase, Stage};
    use super::*;

    #[test]
    fn a_claim_is_persisted_and_read_back_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = HandoffStore::load(dir.path(), "a");
        assert!(store.claim("chats", "c1").unwrap());
        assert!(!store.claim("chats", "c1").unwrap(), "a second claim changes nothing");
        assert!(dir.path().join("handoff/chats/c1.json").exists());

        let again = HandoffStore::load(dir.path(), "a");
        let record = again.record("chats", "c1").unwrap();
        assert_eq!((record.owner.as_str(), record.epoch, record.phase), ("a", 1, Phase::Owned));
        assert!(again.take_pending("chats").is_empty());
    }

    #[test]
    fn a_step_that_cannot_be_persisted_leaves_the_record_as_it_was_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = HandoffStore::load(dir.path(), "a");
        store.claim("chats", "c1").unwrap();
        let before = store.record("chats", "c1").unwrap();
        // The record's folder becomes a file: no record can be written there.
        std::fs::remove_dir_all(dir.path().join("handoff/chats")).unwrap();
        std::fs::write(dir.path().join("handoff/chats"), "").unwrap();
        let start = Input::StartHandoff { handoff: HandoffId("a-1".into()), target: "b".into() };
        assert!(store.step("chats", "c1", start).is_err());
        assert_eq!(store.record("chats", "c1"), Some(before), "not frozen: the freeze was never persisted");
        assert!(store.can_write("chats", "c1"));

        let from_b = Envelope {
            from: "b".into(),
            to: "a".into(),
            message: Message::RecordOf { record: Record { epoch: 1, ..Record::new("b") } },
        };
        assert!(store.step("chats", "c2", Input::Received(from_b)).is_err());
        assert_eq!(store.record("chats", "c2"), None, "a record that is not on disk is not known");
    }

    #[test]
    fn a_record_whose_name_is_not_a_conversation_id_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = HandoffStore::load(dir.path(), "a");
        store.claim("chats", "c-1").unwrap();
        let older = dir.path().join("handoff/chats/2026-11-28 chat.json");
        std::fs::copy(dir.path().join("handoff/chats/c-1.json"), &older).unwrap();
        let again = HandoffStore::load(dir.path(), "a");
        assert_eq!(again.records("chats").into_iter().map(|(id, _)| id).collect::<Vec<_>>(), ["c-1"]);
        assert!(older.exists(), "kept as it is");
    }

    #[test]
    fn the_wake_gates_open_with_a_peers_record_and_close_when_the_clocks_show_a_sleep() {
        let dir = tempfile::tempdir().unwrap();
        let store = HandoffStore::load(dir.path(), "b");
        let from_a = |message| Input::Received(Envelope { from: "a".into(), to: "b".into(), message });
        store.claim("chats", "c-2").unwrap();
        assert!(!store.heard_policy("chats") && !store.heard_current("chats", "c-2"), "just started");
        store.step("chats", "c-2", from_a(Message::Abort { handoff: HandoffId("a-9".into()) })).unwrap();
        assert!(!store.heard_policy("chats") && !store.heard_current("chats", "c-2"), "a message, not a record");
        let record = Record { epoch: 1, ..Record::new("a") };
        store.step("chats", "c-1", from_a(Message::RecordOf { record })).unwrap();
        assert!(store.heard_policy("chats") && !store.heard_policy("other"));
        assert!(store.heard_current("chats", "c-1"));
        assert!(!store.heard_current("chats", "c-2"), "nothing was heard of c-2");

        let secs = Duration::from_secs;
        assert_eq!(store.notice_sleep((secs(100), secs(40))), None, "the first look only reads the clocks");
        assert_eq!(store.notice_sleep((secs(102), secs(42))), None, "awake");
        assert!(store.heard_policy("chats"));
        assert_eq!(store.notice_sleep((secs(704), secs(44))), Some(secs(600)), "asleep for ten minutes");
        assert_eq!(store.notice_sleep((secs(705), secs(45))), None, "told once");
        store.woke();
        assert!(!store.heard_policy("chats") && !store.heard_current("chats", "c-1"), "closed by the sleep");
        assert_eq!(store.record("chats", "c-1").map(|record| record.epoch), Some(1), "the record stays");
    }

    #[test]
    fn a_handoffs_progress_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = HandoffStore::load(dir.path(), "a");
        let progress = Progress { handoff: "a-1".into(), policy: "chats".into(), ..Progress::default() };
        store.begin(progress);
        store.note("a-1", "freeze: the conversation is frozen".into());
        let again = HandoffStore::load(dir.path(), "a");
        again.finish("a-1", Some("barrier"), "this daemon restarted during the handoff".into());
        let ended = HandoffStore::load(dir.path(), "a").progress("a-1").expect("kept");
        assert_eq!(ended.lines, ["freeze: the conversation is frozen", "this daemon restarted during the handoff"]);
        assert_eq!((ended.done, ended.succeeded, ended.failed_step.as_deref()), (true, false, Some("barrier")));
        assert_eq!(again.progress("nope"), None);
    }

    #[test]
    fn each_handoff_end_is_counted_once_by_outcome_and_timed_when_it_began_here() {
        use crate::metrics::{Format, Now};
        let dir = tempfile::tempdir().unwrap();
        let metrics = Metrics::default();
        let store = HandoffStore::load(dir.path(), "a").counting_into(metrics.clone());
        let progress = |id: &str| Progress { handoff: id.into(), policy: "chats".into(), ..Progress::default() };
        store.begin(progress("a-1"));
        store.begin(progress("a-2"));
        store.finish("a-1", None, "release: b owns the conversation".into());
        store.finish("a-1", Some("accept"), "a late outcome of the same handoff".into());
        store.finish("a-2", Some("barrier"), "the target did not hold the same content".into());
        let text = metrics.render(&Now::default(), Format::OpenMetrics);
        for line in [
            "agentmesh_handoffs_total{outcome=\"succeeded\"} 1",
            "agentmesh_handoffs_total{outcome=\"failed\"} 1",
            "agentmesh_handoff_duration_seconds_count{outcome=\"succeeded\"} 1",
            "agentmesh_handoff_duration_seconds_count{outcome=\"failed\"} 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }

    #[test]
    fn an_accept_abort_or_prepare_about_an_unknown_conversation_writes_nothing_and_a_later_record_keeps_the_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let store = HandoffStore::load(dir.path(), "b");
        let from_a = |message| Input::Received(Envelope { from: "a".into(), to: "b".into(), message });
        let handoff = HandoffId("a-1".into());
        let accept = || from_a(Message::Accept { handoff: handoff.clone(), epoch: 1 });

        let step = store.step("chats", "ghost", accept()).unwrap().expect("an answer");
        let refused = Message::Refused { handoff: handoff.clone(), reason: Reason::UnknownConversation };
        assert_eq!(step.send, [Envelope { from: "b".into(), to: "a".into(), message: refused.clone() }]);
        assert_eq!((step.persist, step.notices), (None, Vec::new()));
        let abort = store.step("chats", "ghost", from_a(Message::Abort { handoff: handoff.clone() })).unwrap();
        assert_eq!(abort.unwrap().send[0].message, Message::AbortAcked { handoff: handoff.clone() });
        let prepare = store.step("chats", "ghost", from_a(Message::Prepare { epoch: 3 })).unwrap().unwrap();
        let not_promised = Message::PromiseRefused { epoch: 3, reason: Reason::UnknownConversation };
        assert_eq!((prepare.send[0].message.clone(), prepare.persist), (not_promised, None));
        assert_eq!(store.record("chats", "ghost"), None);
        assert!(!dir.path().join("handoff").exists(), "no record file, no folder");

        // The peer's record arrives, then a late copy of the same Accept: still refused.
        let record = Record { epoch: 1, ..Record::new("a") };
        store.step("chats", "ghost", from_a(Message::RecordOf { record })).unwrap();
        let saved = std::fs::read(dir.path().join("handoff/chats/ghost.json")).unwrap();
        let saved: Record = serde_json::from_slice(&saved).unwrap();
        assert_eq!(saved.decisions[&handoff], Decision::Refused { reason: Reason::UnknownConversation });
        let late = store.step("chats", "ghost", accept()).unwrap().unwrap();
        assert_eq!(late.send[0].message, refused);
        assert_eq!(store.record("chats", "ghost").unwrap().owner, "a", "not accepted");
    }

    #[test]
    fn the_peers_record_makes_a_record_here_and_a_restart_aborts_an_accept_sent() {
        let dir = tempfile::tempdir().unwrap();
        let store = HandoffStore::load(dir.path(), "b");
        assert_eq!(store.step("chats", "c1", Input::Timeout).unwrap(), None);
        let record = Record { epoch: 1, ..Record::new("a") };
        let envelope = Envelope { from: "a".into(), to: "b".into(), message: Message::RecordOf { record } };
        store.step("chats", "c1", Input::Received(envelope)).unwrap().unwrap();
        let learned = store.record("chats", "c1").unwrap();
        assert_eq!((learned.owner.as_str(), learned.epoch), ("a", 1));

        // A node frozen after Accept went out, restarted: it sends Abort.
        let frozen = Record {
            phase: Phase::Frozen { handoff: HandoffId("h".into()), target: "a".into(), stage: Stage::Accepting },
            ..Record { epoch: 2, ..Record::new("b") }
        };
        store.save(&("chats".into(), "c2".into()), &frozen).unwrap();
        let restarted = HandoffStore::load(dir.path(), "b");
        let pending = restarted.take_pending("chats");
        assert_eq!(pending.len(), 1);
        assert!(matches!(pending[0].1.send[0].message, Message::Abort { .. }), "{pending:?}", pending = pending[0].1);
        assert!(restarted.take_pending("chats").is_empty());
    }
}
