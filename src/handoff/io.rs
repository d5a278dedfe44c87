//! The handoff protocol's effects on the world. [`HandoffIo`] feeds an input
//! to a conversation's node (`store.rs` persists the record), then carries the
//! step out: the freeze marker and the shadow in the folders, the handoff's
//! progress, events for the log, and the envelopes to the peer. File work and
//! the record's sync run on tokio's blocking threads; a step is on disk before
//! anything of it happens. Sending is fire and forget, in a task of the
//! `TaskSet` the daemon stops: the protocol tolerates loss, and the
//! HandoffPolicy reconciler sends every record again each pass.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::folder;
use super::protocol::{Envelope, Input, Notice, Reason, Step};
use super::shadow::Shadow;
use super::store::HandoffStore;
use crate::api::wire::HandoffMessage;
use crate::client::{ApiClient, ClientError};
use crate::event::Event;
use crate::mesh::peers::Peers;
use crate::tasks::TaskSet;

/// How long a peer gets to take one message.
const SEND_TIMEOUT: Duration = Duration::from_secs(3);
/// How many records go in one message to the peer.
const RECORDS_PER_MESSAGE: usize = 500;

/// One conversation, where its effects land: `dir` is its folder on this
/// node (None when the policy names no folder here).
#[derive(Clone, Debug)]
pub(crate) struct Conversation {
    pub policy: String,
    pub id: String,
    pub dir: Option<PathBuf>,
}

/// The store, how to reach the peer, and who owns the tasks that outlive a
/// step: what carrying out a step needs.
#[derive(Clone)]
pub(crate) struct HandoffIo {
    pub store: Arc<HandoffStore>,
    peers: Peers,
    key: Option<Arc<str>>,
    tasks: TaskSet,
}

impl HandoffIo {
    pub(crate) fn new(store: Arc<HandoffStore>, peers: Peers, key: Option<Arc<str>>, tasks: TaskSet) -> HandoffIo {
        HandoffIo { store, peers, key, tasks }
    }

    /// Runs `task` (a handoff's driver, a message to the peer) until it ends
    /// or the daemon stops.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(task);
    }

    /// The other nodes, and whether they answer.
    pub(crate) fn peers(&self) -> &Peers {
        &self.peers
    }

    /// The mesh API key, to call a peer with.
    pub(crate) fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// Steps the conversation's node and persists its record (on a blocking
    /// thread). None when there is no record for an input that needs one.
    pub(crate) async fn persist(&self, conversation: &Conversation, input: Input) -> std::io::Result<Option<Step>> {
        let (store, policy, id) = (self.store.clone(), conversation.policy.clone(), conversation.id.clone());
        off_thread(move || store.step(&policy, &id, input)).await?
    }

    /// Makes this node the owner of a conversation it has no record of, at
    /// epoch 1 (on a blocking thread). False when it has one.
    pub(crate) async fn claim(&self, policy: &str, id: &str) -> std::io::Result<bool> {
        let (store, policy, id) = (self.store.clone(), policy.to_owned(), id.to_owned());
        off_thread(move || store.claim(&policy, &id)).await?
    }

    /// Persists and carries out `input`; what it told, as events.
    pub(crate) async fn step(&self, conversation: &Conversation, input: Input) -> std::io::Result<Vec<Event>> {
        match self.persist(conversation, input).await? {
            Some(step) => Ok(self.carry_out(conversation, step).await),
            None => Ok(Vec::new()),
        }
    }

    /// A message from another node: stepped, persisted, its hash noted as
    /// that node's, and the replies sent back.
    pub(crate) async fn receive(&self, dir: Option<PathBuf>, message: HandoffMessage) -> std::io::Result<Vec<Event>> {
        let HandoffMessage { policy, conversation: id, envelope, hash, .. } = message;
        let conversation = Conversation { policy, id, dir };
        let from = envelope.from.clone();
        let step = self.persist(&conversation, Input::Received(envelope)).await?;
        if let Some(hash) = hash {
            self.store.set_hash_of(&conversation.policy, &conversation.id, &from, hash);
        }
        match step {
            Some(step) => Ok(self.carry_out(&conversation, step).await),
            None => Ok(Vec::new()),
        }
    }

    /// Carries out a persisted step: sends its messages to the peer, then
    /// carries out its notices' effects on the folders and the progress (on a
    /// blocking thread).
    pub(crate) async fn carry_out(&self, conversation: &Conversation, step: Step) -> Vec<Event> {
        let Step { send, notices, .. } = step;
        for envelope in send {
            self.send(HandoffMessage::new(&conversation.policy, &conversation.id, envelope, None));
        }
        let (store, local) = (self.store.clone(), conversation.clone());
        off_thread(move || notices.iter().flat_map(|notice| act_on(&store, &local, notice)).collect())
            .await
            .unwrap_or_else(|error| {
                vec![Event::warning("HandoffNotCarriedOut", format!("{}: {error}", conversation.id))]
            })
    }

    /// Adds a line to a handoff's progress (on a blocking thread).
    pub(crate) async fn note(&self, handoff: &str, line: String) {
        let (store, handoff) = (self.store.clone(), handoff.to_owned());
        let _ = off_thread(move || store.note(&handoff, line)).await;
    }

    /// Ends a handoff's progress (on a blocking thread).
    pub(crate) async fn finish(&self, handoff: &str, failed_step: &'static str, message: String) {
        let (store, handoff) = (self.store.clone(), handoff.to_owned());
        let _ = off_thread(move || store.finish(&handoff, Some(failed_step), message)).await;
    }

    /// Sends one message to the node it is for, fire and forget.
    fn send(&self, message: HandoffMessage) {
        let Envelope { to, .. } = &message.envelope;
        let Some(peer) = self.peers.get(to) else { return };
        let client = ApiClient::new(&peer.authority(), self.key.as_deref(), SEND_TIMEOUT);
        self.spawn(async move {
            if let Err(error) = client.handoff_message(&message).await {
                tracing::debug!(peer = message.envelope.to, %error, "a handoff message was not delivered");
            }
        });
    }

    /// Sends one message to the node it is for and waits for the outcome: the
    /// handoff's driver must know whether its `Accept` may have arrived.
    pub(crate) async fn deliver(&self, conversation: &Conversation, envelope: Envelope) -> Result<(), ClientError> {
        let Some(peer) = self.peers.get(&envelope.to) else {
            let reason = format!("{} is not a peer", envelope.to);
            return Err(ClientError::Unreachable { base: envelope.to, reason, refused: false });
        };
        let client = ApiClient::new(&peer.authority(), self.key.as_deref(), SEND_TIMEOUT);
        client.handoff_message(&HandoffMessage::new(&conversation.policy, &conversation.id, envelope, None)).await
    }

    /// Sends the records of a policy's conversations to `peer`, fire and
    /// forget: a few messages a pass, however many conversations there are.
    pub(crate) fn send_records(&self, peer: &str, records: Vec<HandoffMessage>) {
        let Some(state) = self.peers.get(peer).filter(|_| !records.is_empty()) else { return };
        let client = ApiClient::new(&state.authority(), self.key.as_deref(), SEND_TIMEOUT);
        let peer = peer.to_owned();
        self.spawn(async move {
            for batch in records.chunks(RECORDS_PER_MESSAGE) {
                if let Err(error) = client.handoff_messages(batch).await {
                    tracing::debug!(peer, %error, "the handoff records were not delivered");
                    return;
                }
            }
        });
    }
}

/// One notice's effects: the marker written or removed, the shadow taken at
/// a new epoch, the progress followed. Blocking. Returns its events.
fn act_on(store: &HandoffStore, conversation: &Conversation, notice: &Notice) -> Vec<Event> {
    let (id, dir) = (&conversation.id, conversation.dir.as_deref());
    let mut events = vec![notice_event(id, notice)];
    match notice {
        Notice::Frozen { handoff } => {
            if let Some(Err(error)) = dir.map(|dir| std::fs::write(marker(dir), format!("{handoff}\n"))) {
                events.push(Event::warning("MarkerNotWritten", format!("conversation {id}: {error}")));
            }
            store.note(&handoff.0, "freeze: the conversation is frozen (marker written, agent told)".into());
        }
        Notice::Unfrozen { handoff, reason } => {
            if let Some(dir) = dir {
                let _ = std::fs::remove_file(marker(dir));
            }
            let (step, why) = failed_step(reason);
            store.finish(&handoff.0, Some(step), format!("handoff failed at the {step} step: {why}; still owned here"));
        }
        Notice::Resume { epoch, .. } | Notice::TookOver { epoch } => {
            if let Some(dir) = dir {
                let _ = std::fs::remove_file(marker(dir));
                // At once, not at the next pass: a stale write that comes
                // in from now on must find the accepted content to go back to.
                let shadow_dir = store.shadow_dir(&conversation.policy, id);
                if let Err(error) = store.with_shadows(|| Shadow::at_epoch(&shadow_dir, dir, *epoch)) {
                    events.push(Event::warning("ShadowNotTaken", format!("conversation {id}: {error}")));
                }
            }
        }
        Notice::Released { handoff, owner, epoch } => {
            store.finish(&handoff.0, None, format!("release: {owner} owns the conversation at epoch {epoch}"));
        }
        Notice::Demoted { .. } | Notice::Rejected { .. } => {}
    }
    events
}

/// Runs blocking work on tokio's blocking threads.
pub(crate) async fn off_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(std::io::Error::other)
}

/// The file that marks a conversation frozen for a handoff: a write after
/// it is detectable (it is newer), and the agent can see it.
pub(crate) fn marker(dir: &Path) -> PathBuf {
    dir.join(format!("{}frozen", folder::MARKER_PREFIX))
}

/// The files of the conversation folder `dir` changed after its freeze marker
/// was written: an agent that did not stop at `handoff.freeze`. Blocking.
pub(crate) fn written_after_freeze(dir: &Path) -> Vec<String> {
    let Ok(marker) = std::fs::metadata(marker(dir)) else { return Vec::new() };
    let frozen_at = folder::Stat::of(&marker).mtime_ns;
    let files = folder::files_if_any(dir).unwrap_or_default();
    files.into_iter().filter(|(_, stat)| stat.mtime_ns > frozen_at).map(|(path, _)| path).collect()
}

/// The step a failed handoff stopped at, and why, for `meshctl handoff`.
pub(crate) fn failed_step(reason: &Reason) -> (&'static str, String) {
    match reason {
        Reason::BarrierFailed => ("barrier", "the target did not hold the same content in time".into()),
        Reason::TimedOut => ("accept", "the target did not answer in time".into()),
        Reason::Unreachable => (
            "accept",
            "the target refused every connection (its daemon is not running); it never got the Accept".into(),
        ),
        Reason::Aborted => ("accept", "the target did not accept in time; the handoff was aborted".into()),
        Reason::Restarted => ("barrier", "this daemon restarted during the handoff".into()),
        Reason::StaleEpoch { known } => ("accept", format!("the target refused: it knows a newer epoch ({known})")),
        Reason::OwnerMismatch => ("accept", "the target refused: it knows another owner at this epoch".into()),
        Reason::NotOwner { owner, epoch } => ("freeze", format!("{owner} owns the conversation at epoch {epoch}")),
        Reason::Busy { handoff } => ("freeze", format!("handoff {handoff} of this conversation is under way")),
        Reason::SameNode => ("freeze", "the target is this node".into()),
        Reason::UnknownConversation => ("accept", "the target refused: it has no record of the conversation".into()),
        Reason::Other => ("accept", "the target refused for a reason this release does not know".into()),
    }
}

/// A notice as an event of the controller's log (and so of the event stream).
pub(crate) fn notice_event(id: &str, notice: &Notice) -> Event {
    match notice {
        Notice::Frozen { handoff } => {
            Event::normal("handoff.freeze", format!("conversation {id}: frozen for handoff {handoff}"))
        }
        Notice::Unfrozen { handoff, reason } => Event::warning(
            "handoff.unfreeze",
            format!("conversation {id}: handoff {handoff} failed ({reason:?}); still owned here"),
        ),
        Notice::Resume { handoff, epoch } => Event::normal(
            "handoff.resume",
            format!("conversation {id}: owned here at epoch {epoch} (handoff {handoff})"),
        ),
        Notice::Released { handoff, owner, epoch } => Event::normal(
            "handoff.released",
            format!("conversation {id}: {owner} owns it at epoch {epoch} (handoff {handoff})"),
        ),
        Notice::Demoted { owner, epoch } => Event::warning(
            "handoff.demoted",
            format!("conversation {id}: {owner} owns it at epoch {epoch}; writes here are stale"),
        ),
        Notice::TookOver { epoch } => {
            Event::warning("handoff.tookOver", format!("conversation {id}: taken over at epoch {epoch}"))
        }
        Notice::Rejected { reason } => Event::warning("handoff.rejected", format!("conversation {id}: {reason:?}")),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    use super::*;
    use crate::handoff::protocol::{HandoffId, Message};
    use crate::mesh::peers::PeerState;

    #[tokio::test]
    async fn a_message_to_the_peer_under_way_ends_when_its_tasks_shut_down() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peers = Peers::default();
        peers.set_members(vec![PeerState::new("node-b", None, "127.0.0.1", listener.local_addr().unwrap().port())]);
        let state = tempfile::tempdir().unwrap();
        let store = Arc::new(HandoffStore::load(state.path(), "node-a"));
        let tasks = TaskSet::default();
        let io = HandoffIo::new(store, peers, None, tasks.clone());
        let message = Message::Abort { handoff: HandoffId("h-1".into()) };
        let envelope = Envelope { from: "node-a".into(), to: "node-b".into(), message };
        io.send(HandoffMessage::new("chats", "c-1", envelope, None));
        // The peer takes the connection and never answers.
        let accepted = tokio::time::timeout(Duration::from_secs(5), listener.accept()).await;
        let (mut connection, _) = accepted.expect("the message is sent").unwrap();

        tasks.shutdown().await;
        // Closed now, not at the send's own timeout.
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(1), connection.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "the message's connection closed when the tasks shut down");
    }
}
