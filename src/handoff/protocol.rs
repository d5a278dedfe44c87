//! The ownership protocol of one conversation, as one node sees it.
//!
//! Every conversation has an **owner** (a node) and an **epoch** (a number that
//! only grows). Each node keeps a [`Record`] of both in its state folder and
//! shares it with every other node of the policy. Only the owner, and only
//! while it is not handing the conversation over, may write
//! ([`Node::can_write`]); a write attempted on any other node is a stale write,
//! kept aside by the I/O layer.
//!
//! A handoff from the source S (owner at epoch `e`) to the target T, any other
//! node of the policy (the others learn of it by the records):
//!
//! 1. `StartHandoff` on S: S freezes (`Frozen`, stage `Barrier`) and asks the I/O
//!    layer to check the barrier (Syncthing reports the folder complete for T and
//!    T's hash of the folder equals S's).
//! 2. `BarrierPassed`: S records stage `Accepting` and sends `Accept { e }`.
//! 3. T accepts when it knows no epoch above `e` (and, at `e`, S as the owner): it
//!    persists owner T at `e + 1` and the decision for this handoff id, answers
//!    `Accepted`, and tells its agent to resume. **T persisting its acceptance is
//!    the decision point.**
//! 4. S, on `Accepted` (or any record with a higher epoch), takes T as owner at
//!    `e + 1`: it is released.
//!
//! S may go back to writing at `e` only when it knows T will never accept this
//! handoff: before `Accept` went out (a failed barrier, a timeout or a restart in
//! stage `Barrier`), when no `Accept` can have reached T (`Unreachable`: T
//! refused every connection that carried one), or once T has persisted a
//! refusal of its id. So on a timeout
//! after `Accept` went out, S sends `Abort` and stays frozen (stage `Aborting`)
//! until T answers `AbortAcked` or `Refused` (T's refusal is final), `Accepted`
//! (too late: T owns it), or a record exchange shows either. A crash changes
//! nothing of this: the phase and the decisions are persisted before anything is
//! sent, and a restart resumes from them.
//!
//! The messages, and why each exists:
//!
//! - `Accept { handoff, epoch }` (S to T): "I own it at `epoch`, frozen, and you
//!   hold the same content; take it at `epoch + 1`". Resent with the same id, it
//!   gets the same answer: T's decisions are kept by handoff id.
//! - `Accepted { handoff, epoch }` (T to S): "I own it at `epoch`". Also T's answer
//!   to an `Abort` that came too late.
//! - `Refused { handoff, reason }` (T to S): T persisted that it will never accept
//!   this id (it knows a newer epoch, or the handoff was aborted).
//! - `Abort { handoff }` (S to T): "do not accept this id". T persists a refusal
//!   unless it already accepted.
//! - `AbortAcked { handoff }` (T to S): the refusal is persisted; S may unfreeze.
//! - `RecordOf { record }` (from every node to every other, periodically): the
//!   node's record. A higher epoch always wins (the node that sees one takes
//!   its owner and demotes itself), and T's decisions settle an abort whose
//!   answer was lost.
//! - `Prepare`, `Promised`, `PromiseRefused`: a forced takeover's promises
//!   (below).
//!
//! `Force` takes ownership on a node F that is not the owner, when the owner is
//! unreachable (the I/O layer checks that the policy allows it). With two nodes
//! it is immediate, as it always was: F takes the epoch it knows plus one. With
//! more, two forces could pick the same epoch (two nodes that both know owner O
//! at `k` and both take `k + 1`), or a force could pick the epoch a handoff it
//! has not heard of is creating. So a force at epoch `E` needs a **promise**
//! from every node of the policy except F and the owner F knows:
//!
//! - F picks `E` above both its epoch and its own promise, persists the promise
//!   `E` (phase `Forcing`) and sends `Prepare { E }` to those nodes.
//! - A node promises (persists `promised = E`, answers `Promised`) only when
//!   its epoch and its promise are both below `E` and it has no `Accept` out
//!   (frozen past the barrier); otherwise it answers `PromiseRefused`.
//! - A node that promised `p` never accepts a handoff to an epoch `<= p`, never
//!   sends `Accept` from an epoch below `p` (a barrier that passes unfreezes it
//!   instead), and forces only above `p`.
//! - F takes ownership at `E` once every one of them promised; a refusal, a
//!   newer record, a timeout or a restart ends the attempt (the promises stay:
//!   they only ever block epochs nobody owns).
//!
//! Why no two nodes ever own one epoch `E`: a node owns `E` by accepting the
//! handoff from the owner of `E - 1`, or by a force. (1) Two acceptances: the
//! owner of `E - 1` offers it to one target at a time and unfreezes only on
//! that target's persisted refusal. (2) T accepts and F forces: F itself
//! cannot accept (its own promise `E` comes first). If F asked T, T either
//! promised first (then refuses the `Accept`) or accepted first (then refuses
//! the promise). If not, T is the owner O that F knew, at `k`; as O cannot
//! hand to itself, `k < E - 1`, so the sender S of the `Accept` owned `E - 1`,
//! is neither O nor F, and was asked: S promises only with no `Accept` out,
//! and once it promised it sends none from below `E` (nor can it come to own
//! `E - 1`). (3) F and G both force at `E`: one asks the other (G is the owner
//! F knew only if G's known epoch is above F's, and then F is not the owner G
//! knows), and each holds its own promise `E` before it asks, so the one
//! asked refuses, or promised first and then forces above `E`. With two nodes
//! nobody is asked, and the rule is the old one: both records cannot name the
//! other node as owner at one epoch.
//!
//! Why not a majority: a majority would let a force proceed without some
//! non-owner, and a handoff to that node at the same epoch would then need
//! the majority too; asking every node but the owner keeps the handoff as it
//! is and the epoch a plain number, at the price that a force needs every
//! other node up (the user forcing a takeover is on one of them; the owner is
//! the one that is gone). An owner that promised a force that then gave up
//! hands off again only once it learns a newer epoch (a later force, or one
//! it hears of): a promise is never withdrawn, as the force it was given to
//! cannot be told apart from one still under way.
//!
//! Records reach every node of the policy: the I/O layer sends `RecordOf` to
//! all of them each pass, so a node that slept learns of the handoffs it
//! missed (a higher epoch always wins). A node that was down or asleep has not
//! **heard** the current record ([`Node::heard_current`]) until a peer's
//! `RecordOf` reached it: until then the I/O layer neither claims nor guards.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Names one handoff attempt; a retry of the same attempt reuses it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub(crate) struct HandoffId(pub String);

impl fmt::Display for HandoffId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a node knows of one conversation's ownership: persisted (atomically) in
/// its state folder and sent to the peer as `RecordOf`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Record {
    pub owner: String,
    pub epoch: u64,
    /// This node's part in a handoff it started; `Frozen` only on the owner.
    pub phase: Phase,
    /// What this node decided, as a target, for each handoff offered to it. Never
    /// changed once written: that makes retries idempotent and refuses a late
    /// `Accept` after an `Abort`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub decisions: BTreeMap<HandoffId, Decision>,
    /// The highest epoch this node promised a forced takeover: it owns nothing
    /// at or below it by a handoff, and offers nothing below it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub promised: u64,
}

fn is_zero(number: &u64) -> bool {
    *number == 0
}

impl Record {
    /// A conversation `owner` created: epoch 0.
    pub(crate) fn new(owner: impl Into<String>) -> Record {
        Record { owner: owner.into(), epoch: 0, phase: Phase::Owned, decisions: BTreeMap::new(), promised: 0 }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "state", rename_all = "camelCase")]
pub(crate) enum Phase {
    /// No handoff under way on this node.
    Owned,
    /// The owner froze the conversation to hand it to `target`.
    #[serde(rename_all = "camelCase")]
    Frozen { handoff: HandoffId, target: String, stage: Stage },
    /// A node that is not the owner forces a takeover at `epoch` and waits for
    /// the promises of `waiting`.
    #[serde(rename_all = "camelCase")]
    Forcing { epoch: u64, waiting: BTreeSet<String> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Stage {
    /// Waiting for the barrier; `Accept` was not sent, so giving up is safe.
    Barrier,
    /// `Accept` was sent: the target may have accepted.
    Accepting,
    /// `Abort` was sent: waiting for the target to say it refused (or accepted).
    Aborting,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "decision", rename_all = "camelCase")]
pub(crate) enum Decision {
    Accepted { epoch: u64 },
    Refused { reason: Reason },
}

/// Why a handoff did not happen, for the peer, the agent and `meshctl`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub(crate) enum Reason {
    /// The target knows a newer epoch than the source's.
    #[serde(rename_all = "camelCase")]
    StaleEpoch {
        known: u64,
    },
    /// The target knows another owner at the source's epoch (never expected).
    OwnerMismatch,
    /// The source aborted the handoff.
    Aborted,
    BarrierFailed,
    TimedOut,
    /// The target refused every connection that carried the `Accept`: it never
    /// got it.
    Unreachable,
    /// The source restarted before the target was asked.
    Restarted,
    /// A command for a node that is not (or not only) the owner.
    #[serde(rename_all = "camelCase")]
    NotOwner {
        owner: String,
        epoch: u64,
    },
    /// Another handoff of this conversation is under way.
    #[serde(rename_all = "camelCase")]
    Busy {
        handoff: HandoffId,
    },
    /// A handoff to the node itself.
    SameNode,
    /// The target has no record of the conversation: it created none for the
    /// `Accept` (an `Accept` never brings a conversation into being).
    UnknownConversation,
    /// A reason from a newer release that this one does not know.
    #[serde(other)]
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase")]
#[schemars(rename = "HandoffProtocolMessage")]
pub(crate) enum Message {
    Accept {
        handoff: HandoffId,
        epoch: u64,
    },
    Accepted {
        handoff: HandoffId,
        epoch: u64,
    },
    Refused {
        handoff: HandoffId,
        reason: Reason,
    },
    Abort {
        handoff: HandoffId,
    },
    AbortAcked {
        handoff: HandoffId,
    },
    RecordOf {
        record: Record,
    },
    /// (forcer to another node) "promise never to own or offer an epoch at or
    /// below `epoch`".
    Prepare {
        epoch: u64,
    },
    /// The promise is persisted.
    Promised {
        epoch: u64,
    },
    PromiseRefused {
        epoch: u64,
        reason: Reason,
    },
}

/// A message between two nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Envelope {
    pub from: String,
    pub to: String,
    pub message: Message,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Input {
    /// `meshctl handoff ID --to NODE` on this node (the I/O layer refuses at once
    /// when the target is offline).
    StartHandoff {
        handoff: HandoffId,
        target: String,
    },
    BarrierPassed {
        handoff: HandoffId,
    },
    BarrierFailed {
        handoff: HandoffId,
    },
    Received(Envelope),
    /// The handoff's patience ran out; also the retransmission tick.
    Timeout,
    /// The target refused every connection that carried this handoff's
    /// `Accept` for a while: the I/O layer vouches that no `Accept` of it can
    /// have reached the target (none was taken and then lost), so the target
    /// never decided it and the source may unfreeze at its epoch. Ignored in
    /// any stage but `Accepting` of this handoff.
    Unreachable {
        handoff: HandoffId,
    },
    /// The daemon started again with the persisted record.
    Restart,
    /// `--force`: take ownership on this node (the owner is unreachable and the
    /// policy allows it). `nodes`: the other nodes that share the policy's
    /// folder; all but the owner must promise first.
    Force {
        nodes: Vec<String>,
    },
    /// The machine woke from sleep: what it knows may be old.
    Woke,
}

/// What the agent (over the event stream) and `meshctl` are told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Notice {
    /// Stop writing: the conversation is being handed over.
    Frozen { handoff: HandoffId },
    /// The handoff failed; this node still owns it and the agent carries on.
    Unfrozen { handoff: HandoffId, reason: Reason },
    /// `handoff.resume`: this node owns the conversation now.
    Resume { handoff: HandoffId, epoch: u64 },
    /// The handoff succeeded: `owner` owns it at `epoch`.
    Released { handoff: HandoffId, owner: String, epoch: u64 },
    /// Another node owns a newer epoch; what this node wrote since is stale.
    Demoted { owner: String, epoch: u64 },
    /// `--force` made this node the owner.
    TookOver { epoch: u64 },
    /// A command was not carried out.
    Rejected { reason: Reason },
}

/// What one input asks of the I/O layer, in this order: persist the record
/// (atomically) first, then send, tell and check the barrier.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Step {
    pub persist: Option<Record>,
    pub send: Vec<Envelope>,
    pub notices: Vec<Notice>,
    /// Start checking the barrier of this handoff; answer with `BarrierPassed` or
    /// `BarrierFailed`.
    pub check_barrier: Option<HandoffId>,
}

/// One conversation's ownership on the node `me`.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    me: String,
    record: Record,
    /// Whether a peer's record reached this node since it started or woke.
    heard: bool,
}

impl Node {
    /// The node with its persisted record; feed it `Restart` after a restart.
    pub(crate) fn new(me: impl Into<String>, record: Record) -> Node {
        Node { me: me.into(), record, heard: false }
    }

    /// Whether a peer's `RecordOf` reached this node since it started or woke:
    /// until then it may not know the current owner, and neither claims nor
    /// guards.
    pub(crate) fn heard_current(&self) -> bool {
        self.heard
    }

    pub(crate) fn record(&self) -> &Record {
        &self.record
    }

    /// Whether the agent on this node may write to the conversation now.
    pub(crate) fn can_write(&self) -> bool {
        self.record.owner == self.me && self.record.phase == Phase::Owned
    }

    /// This node's record as a message for `peer`.
    pub(crate) fn record_for(&self, peer: &str) -> Envelope {
        self.envelope(peer, Message::RecordOf { record: self.record.clone() })
    }

    pub(crate) fn step(&mut self, input: Input) -> Step {
        let before = self.record.clone();
        let mut step = Step::default();
        match input {
            Input::StartHandoff { handoff, target } => self.start(handoff, target, &mut step),
            Input::BarrierPassed { handoff } => {
                if let Some(target) = self.frozen_at(&handoff, Stage::Barrier) {
                    if self.record.promised > self.record.epoch {
                        // A forced takeover was promised an epoch this handoff would reach.
                        let known = self.record.promised;
                        return self.finish(before, Reason::StaleEpoch { known }, step);
                    }
                    self.set_stage(Stage::Accepting);
                    let epoch = self.record.epoch;
                    step.send.push(self.envelope(&target, Message::Accept { handoff, epoch }));
                }
            }
            Input::BarrierFailed { handoff } => {
                if self.frozen_at(&handoff, Stage::Barrier).is_some() {
                    self.unfreeze(Reason::BarrierFailed, &mut step);
                }
            }
            Input::Timeout => self.give_up(Reason::TimedOut, &mut step),
            Input::Unreachable { handoff } => {
                if self.frozen_at(&handoff, Stage::Accepting).is_some() {
                    self.unfreeze(Reason::Unreachable, &mut step);
                }
            }
            Input::Restart => {
                self.heard = false;
                self.give_up(Reason::Restarted, &mut step);
            }
            Input::Force { nodes } => self.force(nodes, &mut step),
            Input::Woke => self.heard = false,
            Input::Received(Envelope { from, to: _, message }) => self.receive(from, message, &mut step),
        }
        self.persisted(before, step)
    }

    /// Unfreezes for `reason`, as the last thing an input does.
    fn finish(&mut self, before: Record, reason: Reason, mut step: Step) -> Step {
        self.unfreeze(reason, &mut step);
        self.persisted(before, step)
    }

    /// The step, with the record to persist when it changed.
    fn persisted(&self, before: Record, mut step: Step) -> Step {
        debug_assert!(self.record.epoch >= before.epoch, "an epoch never decreases");
        if self.record != before {
            step.persist = Some(self.record.clone());
        }
        step
    }

    fn start(&mut self, handoff: HandoffId, target: String, step: &mut Step) {
        if target == self.me {
            return step.notices.push(Notice::Rejected { reason: Reason::SameNode });
        }
        if self.record.owner == target {
            // A retry of a handoff that already succeeded.
            let (owner, epoch) = (target, self.record.epoch);
            return step.notices.push(Notice::Released { handoff, owner, epoch });
        }
        if self.record.owner != self.me {
            let reason = Reason::NotOwner { owner: self.record.owner.clone(), epoch: self.record.epoch };
            return step.notices.push(Notice::Rejected { reason });
        }
        match &self.record.phase {
            Phase::Owned => {
                self.record.phase = Phase::Frozen { handoff: handoff.clone(), target, stage: Stage::Barrier };
                step.notices.push(Notice::Frozen { handoff: handoff.clone() });
                step.check_barrier = Some(handoff);
            }
            Phase::Frozen { handoff: current, target: current_target, stage }
                if *current == handoff && *current_target == target && *stage != Stage::Aborting =>
            {
                // The same attempt again: carry on where it is.
                if *stage == Stage::Barrier {
                    step.check_barrier = Some(handoff);
                } else {
                    let epoch = self.record.epoch;
                    step.send.push(self.envelope(&target, Message::Accept { handoff, epoch }));
                }
            }
            Phase::Frozen { handoff: current, .. } => {
                step.notices.push(Notice::Rejected { reason: Reason::Busy { handoff: current.clone() } });
            }
            Phase::Forcing { .. } => {
                let reason = Reason::NotOwner { owner: self.record.owner.clone(), epoch: self.record.epoch };
                step.notices.push(Notice::Rejected { reason });
            }
        }
    }

    /// A forced takeover: at once when every other node is the owner (two
    /// nodes), else once every node but the owner promised (the module doc).
    /// Forced again while it waits, it asks the silent nodes again.
    fn force(&mut self, nodes: Vec<String>, step: &mut Step) {
        if self.record.owner == self.me {
            let reason = Reason::NotOwner { owner: self.me.clone(), epoch: self.record.epoch };
            return step.notices.push(Notice::Rejected { reason });
        }
        if let Phase::Forcing { epoch, waiting } = &self.record.phase {
            let epoch = *epoch;
            let prepares: Vec<Envelope> =
                waiting.iter().map(|node| self.envelope(node, Message::Prepare { epoch })).collect();
            return step.send.extend(prepares);
        }
        let epoch = self.record.epoch.max(self.record.promised) + 1;
        let waiting: BTreeSet<String> =
            nodes.into_iter().filter(|node| *node != self.me && *node != self.record.owner).collect();
        if waiting.is_empty() {
            return self.take_over(epoch, step);
        }
        self.record.promised = epoch;
        for node in &waiting {
            step.send.push(self.envelope(node, Message::Prepare { epoch }));
        }
        self.record.phase = Phase::Forcing { epoch, waiting };
    }

    fn take_over(&mut self, epoch: u64, step: &mut Step) {
        self.record.owner = self.me.clone();
        self.record.epoch = epoch;
        self.record.phase = Phase::Owned;
        step.notices.push(Notice::TookOver { epoch });
    }

    fn stop_forcing(&mut self, reason: Reason, step: &mut Step) {
        if let Phase::Forcing { .. } = std::mem::replace(&mut self.record.phase, Phase::Owned) {
            step.notices.push(Notice::Rejected { reason });
        }
    }

    /// Another node's `Prepare`: promised when nothing this node knows or did
    /// could make an owner at or below `epoch`.
    fn promise(&mut self, epoch: u64, step: &mut Step) -> Message {
        let refusal = match &self.record.phase {
            _ if self.record.epoch >= epoch || self.record.promised >= epoch => {
                Some(Reason::StaleEpoch { known: self.record.epoch.max(self.record.promised) })
            }
            Phase::Frozen { handoff, stage: Stage::Accepting | Stage::Aborting, .. } => {
                Some(Reason::Busy { handoff: handoff.clone() })
            }
            _ => None,
        };
        if let Some(reason) = refusal {
            return Message::PromiseRefused { epoch, reason };
        }
        // A force of this node's own at a lower epoch gives way.
        self.stop_forcing(Reason::StaleEpoch { known: epoch }, step);
        self.record.promised = epoch;
        Message::Promised { epoch }
    }

    /// A timeout or a restart: before `Accept` went out the handoff simply fails;
    /// after, the target is asked to abort, as often as it takes.
    fn give_up(&mut self, reason: Reason, step: &mut Step) {
        if matches!(self.record.phase, Phase::Forcing { .. }) {
            return self.stop_forcing(reason, step);
        }
        let Phase::Frozen { handoff, target, stage } = self.record.phase.clone() else { return };
        match stage {
            Stage::Barrier => self.unfreeze(reason, step),
            Stage::Accepting | Stage::Aborting => {
                self.set_stage(Stage::Aborting);
                step.send.push(self.envelope(&target, Message::Abort { handoff }));
            }
        }
    }

    fn receive(&mut self, from: String, message: Message, step: &mut Step) {
        match message {
            Message::Accept { handoff, epoch } => {
                let answer = self.decide(&from, handoff.clone(), epoch, step);
                let reply = match answer {
                    Decision::Accepted { epoch } => Message::Accepted { handoff, epoch },
                    Decision::Refused { reason } => Message::Refused { handoff, reason },
                };
                step.send.push(self.envelope(&from, reply));
            }
            Message::Abort { handoff } => {
                let decision = self
                    .record
                    .decisions
                    .entry(handoff.clone())
                    .or_insert(Decision::Refused { reason: Reason::Aborted })
                    .clone();
                let reply = match decision {
                    Decision::Accepted { epoch } => Message::Accepted { handoff, epoch },
                    Decision::Refused { .. } => Message::AbortAcked { handoff },
                };
                step.send.push(self.envelope(&from, reply));
            }
            Message::Accepted { epoch, .. } => self.learn(&from, epoch, step),
            Message::Refused { handoff, reason } => {
                if self.frozen_after_accept(&handoff, &from) {
                    self.unfreeze(reason, step);
                }
            }
            Message::AbortAcked { handoff } => {
                if self.frozen_after_accept(&handoff, &from) {
                    self.unfreeze(Reason::Aborted, step);
                }
            }
            Message::Prepare { epoch } => {
                let answer = self.promise(epoch, step);
                step.send.push(self.envelope(&from, answer));
            }
            Message::Promised { epoch } => {
                if let Phase::Forcing { epoch: forcing, waiting } = &mut self.record.phase
                    && *forcing == epoch
                {
                    waiting.remove(&from);
                    if waiting.is_empty() {
                        self.take_over(epoch, step);
                    }
                }
            }
            Message::PromiseRefused { epoch, reason } => {
                if matches!(self.record.phase, Phase::Forcing { epoch: forcing, .. } if forcing == epoch) {
                    self.stop_forcing(reason, step);
                }
            }
            Message::RecordOf { record } => {
                self.heard = true;
                if record.epoch > self.record.epoch {
                    return self.learn(&record.owner, record.epoch, step);
                }
                let refused = match &self.record.phase {
                    Phase::Frozen { handoff, target, stage: Stage::Accepting | Stage::Aborting } if *target == from => {
                        record.decisions.get(handoff).and_then(|decision| match decision {
                            Decision::Refused { reason } => Some(reason.clone()),
                            Decision::Accepted { .. } => None,
                        })
                    }
                    _ => None,
                };
                if let Some(reason) = refused {
                    self.unfreeze(reason, step);
                }
            }
        }
    }

    /// The target's answer to `Accept`, persisted before it is sent.
    fn decide(&mut self, from: &str, handoff: HandoffId, epoch: u64, step: &mut Step) -> Decision {
        if let Some(decision) = self.record.decisions.get(&handoff) {
            return decision.clone();
        }
        let refusal = if self.record.epoch > epoch {
            Some(Reason::StaleEpoch { known: self.record.epoch })
        } else if self.record.promised > epoch {
            Some(Reason::StaleEpoch { known: self.record.promised })
        } else if self.record.epoch == epoch && self.record.owner != from {
            Some(Reason::OwnerMismatch)
        } else {
            None
        };
        let decision = match refusal {
            Some(reason) => Decision::Refused { reason },
            None => {
                // This node may still be frozen at an older epoch it owned, for a
                // handoff the peer overtook: that one is over.
                match std::mem::replace(&mut self.record.phase, Phase::Owned) {
                    Phase::Frozen { handoff: own, .. } => step
                        .notices
                        .push(Notice::Unfrozen { handoff: own, reason: Reason::StaleEpoch { known: epoch } }),
                    Phase::Forcing { .. } => {
                        step.notices.push(Notice::Rejected { reason: Reason::StaleEpoch { known: epoch } });
                    }
                    Phase::Owned => {}
                }
                self.record.owner = self.me.clone();
                self.record.epoch = epoch + 1;
                step.notices.push(Notice::Resume { handoff: handoff.clone(), epoch: epoch + 1 });
                Decision::Accepted { epoch: epoch + 1 }
            }
        };
        self.record.decisions.insert(handoff, decision.clone());
        decision
    }

    /// `owner` owns the conversation at `epoch`: a higher epoch always wins.
    fn learn(&mut self, owner: &str, epoch: u64, step: &mut Step) {
        // A record naming this node at an epoch it does not know cannot exist: a
        // node persists its ownership before anyone can learn of it.
        if epoch <= self.record.epoch || owner == self.me {
            return;
        }
        let was_owner = self.record.owner == self.me;
        let phase = std::mem::replace(&mut self.record.phase, Phase::Owned);
        self.record.owner = owner.to_owned();
        self.record.epoch = epoch;
        match phase {
            Phase::Frozen { handoff, .. } => {
                step.notices.push(Notice::Released { handoff, owner: owner.to_owned(), epoch });
            }
            Phase::Forcing { .. } => {
                step.notices.push(Notice::Rejected { reason: Reason::StaleEpoch { known: epoch } });
            }
            Phase::Owned if was_owner => step.notices.push(Notice::Demoted { owner: owner.to_owned(), epoch }),
            Phase::Owned => {}
        }
    }

    fn unfreeze(&mut self, reason: Reason, step: &mut Step) {
        if let Phase::Frozen { handoff, .. } = std::mem::replace(&mut self.record.phase, Phase::Owned) {
            step.notices.push(Notice::Unfrozen { handoff, reason });
        }
    }

    /// The target, when this node is frozen for `handoff` at `stage`.
    fn frozen_at(&self, handoff: &HandoffId, stage: Stage) -> Option<String> {
        match &self.record.phase {
            Phase::Frozen { handoff: current, target, stage: current_stage }
                if current == handoff && *current_stage == stage =>
            {
                Some(target.clone())
            }
            _ => None,
        }
    }

    /// Whether this node sent `Accept` for `handoff` to `target` and waits for the answer.
    fn frozen_after_accept(&self, handoff: &HandoffId, from: &str) -> bool {
        matches!(&self.record.phase, Phase::Frozen { handoff: current, target, stage }
            if current == handoff && target == from && *stage != Stage::Barrier)
    }

    fn set_stage(&mut self, new: Stage) {
        if let Phase::Frozen { stage, .. } = &mut self.record.phase {
            *stage = new;
        }
    }

    fn envelope(&self, to: &str, message: Message) -> Envelope {
        Envelope { from: self.me.clone(), to: to.to_owned(), message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAPTOP: &str = "laptop";
    const MINI: &str = "mini";
    const DESKTOP: &str = "desktop";

    fn h(id: &str) -> HandoffId {
        HandoffId(id.into())
    }

    fn record(owner: &str, epoch: u64) -> Record {
        Record { epoch, ..Record::new(owner) }
    }

    fn frozen(owner: &str, epoch: u64, stage: Stage) -> Record {
        let phase = Phase::Frozen { handoff: h("h1"), target: MINI.into(), stage };
        Record { phase, ..record(owner, epoch) }
    }

    fn promised(epoch: u64, record: Record) -> Record {
        Record { promised: epoch, ..record }
    }

    fn decided(mut record: Record, handoff: &str, decision: Decision) -> Record {
        record.decisions.insert(h(handoff), decision);
        record
    }

    /// A message to this node from the peer.
    fn from(peer: &str, message: Message) -> Input {
        let to = if peer == LAPTOP { MINI } else { LAPTOP };
        Input::Received(Envelope { from: peer.into(), to: to.into(), message })
    }

    fn force(nodes: &[&str]) -> Input {
        Input::Force { nodes: nodes.iter().map(|node| node.to_string()).collect() }
    }

    fn start(handoff: &str, target: &str) -> Input {
        Input::StartHandoff { handoff: h(handoff), target: target.into() }
    }

    fn passed() -> Input {
        Input::BarrierPassed { handoff: h("h1") }
    }

    fn unreachable(handoff: &str) -> Input {
        Input::Unreachable { handoff: h(handoff) }
    }

    fn accept(epoch: u64) -> Message {
        Message::Accept { handoff: h("h1"), epoch }
    }

    fn accepted(epoch: u64) -> Message {
        Message::Accepted { handoff: h("h1"), epoch }
    }

    fn record_of(record: Record) -> Message {
        Message::RecordOf { record }
    }

    fn summary(step: &Step) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(record) = &step.persist {
            let phase = match &record.phase {
                Phase::Owned => "owned".to_owned(),
                Phase::Frozen { handoff, target, stage } => format!("frozen {handoff} to {target} {stage:?}"),
                Phase::Forcing { epoch, waiting } => format!("forcing {epoch} waiting {waiting:?}"),
            };
            let promised = if record.promised > 0 { format!(" promised {}", record.promised) } else { String::new() };
            let decisions: Vec<String> =
                record.decisions.iter().map(|(id, decision)| format!(" {id}={decision:?}")).collect();
            lines.push(format!("persist {}@{} {phase}{}{promised}", record.owner, record.epoch, decisions.concat()));
        }
        for envelope in &step.send {
            lines.push(format!("send {} {:?}", envelope.to, envelope.message).replace("HandoffId(\"h1\")", "h1"));
        }
        for notice in &step.notices {
            lines.push(format!("notice {notice:?}").replace("HandoffId(\"h1\")", "h1"));
        }
        if let Some(handoff) = &step.check_barrier {
            lines.push(format!("check barrier {handoff}"));
        }
        lines
    }

    struct Case {
        name: &'static str,
        me: &'static str,
        record: Record,
        inputs: Vec<Input>,
        /// What the last input asks for.
        last: &'static [&'static str],
        /// Owner and epoch at the end, and whether this node may write.
        then: (&'static str, u64, bool),
    }

    #[test]
    fn transitions_of_one_node() {
        let cases = [
            Case {
                name: "the source freezes and asks for the barrier",
                me: LAPTOP,
                record: record(LAPTOP, 0),
                inputs: vec![start("h1", MINI)],
                last: &[
                    "persist laptop@0 frozen h1 to mini Barrier",
                    "notice Frozen { handoff: h1 }",
                    "check barrier h1",
                ],
                then: (LAPTOP, 0, false),
            },
            Case {
                name: "the barrier passed: the stage is persisted, then Accept sent",
                me: LAPTOP,
                record: record(LAPTOP, 0),
                inputs: vec![start("h1", MINI), passed()],
                last: &["persist laptop@0 frozen h1 to mini Accepting", "send mini Accept { handoff: h1, epoch: 0 }"],
                then: (LAPTOP, 0, false),
            },
            Case {
                name: "happy path, target: accepts at epoch + 1 and resumes",
                me: MINI,
                record: record(LAPTOP, 0),
                inputs: vec![from(LAPTOP, accept(0))],
                last: &[
                    "persist mini@1 owned h1=Accepted { epoch: 1 }",
                    "send laptop Accepted { handoff: h1, epoch: 1 }",
                    "notice Resume { handoff: h1, epoch: 1 }",
                ],
                then: (MINI, 1, true),
            },
            Case {
                name: "happy path, source: released on Accepted",
                me: LAPTOP,
                record: record(LAPTOP, 0),
                inputs: vec![start("h1", MINI), passed(), from(MINI, accepted(1))],
                last: &["persist mini@1 owned", "notice Released { handoff: h1, owner: \"mini\", epoch: 1 }"],
                then: (MINI, 1, false),
            },
            Case {
                name: "a failed barrier unfreezes at once: Accept was never sent",
                me: LAPTOP,
                record: record(LAPTOP, 0),
                inputs: vec![start("h1", MINI), Input::BarrierFailed { handoff: h("h1") }],
                last: &["persist laptop@0 owned", "notice Unfrozen { handoff: h1, reason: BarrierFailed }"],
                then: (LAPTOP, 0, true),
            },
            Case {
                name: "the target refuses an epoch older than it knows, and says so again on a retry",
                me: MINI,
                record: record(MINI, 2),
                inputs: vec![from(LAPTOP, accept(1)), from(LAPTOP, accept(1))],
                last: &["send laptop Refused { handoff: h1, reason: StaleEpoch { known: 2 } }"],
                then: (MINI, 2, true),
            },
            Case {
                name: "the source unfreezes on a refusal",
                me: LAPTOP,
                record: frozen(LAPTOP, 1, Stage::Accepting),
                inputs: vec![from(
                    MINI,
                    Message::Refused { handoff: h("h1"), reason: Reason::StaleEpoch { known: 2 } },
                )],
                last: &["persist laptop@1 owned", "notice Unfrozen { handoff: h1, reason: StaleEpoch { known: 2 } }"],
                then: (LAPTOP, 1, true),
            },
            Case {
                name: "a timeout after Accept went out sends Abort and stays frozen",
                me: LAPTOP,
                record: frozen(LAPTOP, 0, Stage::Accepting),
                inputs: vec![Input::Timeout],
                last: &["persist laptop@0 frozen h1 to mini Aborting", "send mini Abort { handoff: h1 }"],
                then: (LAPTOP, 0, false),
            },
            Case {
                name: "another timeout sends Abort again",
                me: LAPTOP,
                record: frozen(LAPTOP, 0, Stage::Aborting),
                inputs: vec![Input::Timeout],
                last: &["send mini Abort { handoff: h1 }"],
                then: (LAPTOP, 0, false),
            },
            Case {
                name: "the target persists its refusal before it acknowledges an abort",
                me: MINI,
                record: record(LAPTOP, 0),
                inputs: vec![from(LAPTOP, Message::Abort { handoff: h("h1") })],
                last: &[
                    "persist laptop@0 owned h1=Refused { reason: Aborted }",
                    "send laptop AbortAcked { handoff: h1 }",
                ],
                then: (LAPTOP, 0, false),
            },
            Case {
                name: "an abort acknowledged unfreezes the source at its epoch",
                me: LAPTOP,
                record: frozen(LAPTOP, 0, Stage::Aborting),
                inputs: vec![from(MINI, Message::AbortAcked { handoff: h("h1") })],
                last: &["persist laptop@0 owned", "notice Unfrozen { handoff: h1, reason: Aborted }"],
                then: (LAPTOP, 0, true),
            },
            Case {
                name: "a late Accept after the abort is refused",
                me: MINI,
                record: record(LAPTOP, 0),
                inputs: vec![from(LAPTOP, Message::Abort { handoff: h("h1") }), from(LAPTOP, accept(0))],
                last: &["send laptop Refused { handoff: h1, reason: Aborted }"],
                then: (LAPTOP, 0, false),
            },
            Case {
                name: "an abort that came too late is answered with the acceptance",
                me: MINI,
                record: record(LAPTOP, 0),
                inputs: vec![from(LAPTOP, accept(0)), from(LAPTOP, Message::Abort { handoff: h("h1") })],
                last: &["send laptop Accepted { handoff: h1, epoch: 1 }"],
                then: (MINI, 1, true),
            },
            Case {
                name: "a node still frozen at an older epoch it owned ends that handoff when it accepts",
                me: LAPTOP,
                record: frozen(LAPTOP, 0, Stage::Aborting),
                inputs: vec![from(MINI, Message::Accept { handoff: h("h2"), epoch: 1 })],
                last: &[
                    "persist laptop@2 owned h2=Accepted { epoch: 2 }",
                    "send mini Accepted { handoff: HandoffId(\"h2\"), epoch: 2 }",
                    "notice Unfrozen { handoff: h1, reason: StaleEpoch { known: 1 } }",
                    "notice Resume { handoff: HandoffId(\"h2\"), epoch: 2 }",
                ],
                then: (LAPTOP, 2, true),
            },
            Case {
                name: "the same Accept again gets the same answer and changes nothing",
                me: MINI,
                record: record(LAPTOP, 0),
                inputs: vec![from(LAPTOP, accept(0)), from(LAPTOP, accept(0))],
                last: &["send laptop Accepted { handoff: h1, epoch: 1 }"],
                then: (MINI, 1, true),
            },
            Case {
                name: "abort lost: the target's record without a decision settles nothing",
                me: LAPTOP,
                record: frozen(LAPTOP, 0, Stage::Aborting),
                inputs: vec![from(MINI, record_of(record(LAPTOP, 0)))],
                last: &[],
                then: (LAPTOP, 0, false),
            },
            Case {
                name: "abort lost: the target's record with its refusal unfreezes the source",
                me: LAPTOP,
                record: frozen(LAPTOP, 0, Stage::Aborting),
                inputs: vec![from(
                    MINI,
                    record_of(decided(record(LAPTOP, 0), "h1", Decision::Refused { reason: Reason::Aborted })),
                )],
                last: &["persist laptop@0 owned", "notice Unfrozen { handoff: h1, reason: Aborted }"],
                then: (LAPTOP, 0, true),
            },
            Case {
                name: "abort lost: the target's record at a higher epoch releases the source",
                me: LAPTOP,
                record: frozen(LAPTOP, 0, Stage::Aborting),
                inputs: vec![from(MINI, record_of(record(MINI, 1)))],
                last: &["persist mini@1 owned", "notice Released { handoff: h1, owner: \"mini\", epoch: 1 }"],
                then: (MINI, 1, false),
            },
            Case {
                name: "a retry of the same handoff while Accepting sends Accept again",
                me: LAPTOP,
                record: frozen(LAPTOP, 0, Stage::Accepting),
                inputs: vec![start("h1", MINI)],
                last: &["send mini Accept { handoff: h1, epoch: 0 }"],
                then: (LAPTOP, 0, false),
            },
            Case {
                name: "a retry after the handoff succeeded reports it done",
                me: LAPTOP,
                record: record(MINI, 1),
                inputs: vec![start("h1", MINI)],
                last: &["notice Released { handoff: h1, owner: \"mini\", epoch: 1 }"],
                then: (MINI, 1, false),
            },
            Case {
                name: "another handoff while one is under way is rejected",
                me: LAPTOP,
                record: frozen(LAPTOP, 0, Stage::Accepting),
                inputs: vec![start("h2", MINI)],
                last: &["notice Rejected { reason: Busy { handoff: h1 } }"],
                then: (LAPTOP, 0, false),
            },
            Case {
                name: "a handoff on the other node, to the owner, is done already",
                me: MINI,
                record: record(LAPTOP, 3),
                inputs: vec![start("h1", LAPTOP)],
                last: &["notice Released { handoff: h1, owner: \"laptop\", epoch: 3 }"],
                then: (LAPTOP, 3, false),
            },
            Case {
                name: "a handoff to the node itself is rejected",
                me: LAPTOP,
                record: record(LAPTOP, 3),
                inputs: vec![start("h1", LAPTOP)],
                last: &["notice Rejected { reason: SameNode }"],
                then: (LAPTOP, 3, true),
            },
            Case {
                name: "a source restarted before the barrier passed unfreezes",
                me: LAPTOP,
                record: frozen(LAPTOP, 0, Stage::Barrier),
                inputs: vec![Input::Restart],
                last: &["persist laptop@0 owned", "notice Unfrozen { handoff: h1, reason: Restarted }"],
                then: (LAPTOP, 0, true),
            },
            Case {
                name: "a source restarted after Accept went out aborts and stays frozen",
                me: LAPTOP,
                record: frozen(LAPTOP, 0, Stage::Accepting),
                inputs: vec![Input::Restart],
                last: &["persist laptop@0 frozen h1 to mini Aborting", "send mini Abort { handoff: h1 }"],
                then: (LAPTOP, 0, false),
            },
            Case {
                name: "a target restarted after accepting, before replying, answers the retry the same",
                me: MINI,
                record: decided(record(MINI, 1), "h1", Decision::Accepted { epoch: 1 }),
                inputs: vec![Input::Restart, from(LAPTOP, accept(0))],
                last: &["send laptop Accepted { handoff: h1, epoch: 1 }"],
                then: (MINI, 1, true),
            },
            Case {
                name: "an Accept that never reached the target unfreezes the source at its epoch",
                me: LAPTOP,
                record: frozen(LAPTOP, 0, Stage::Accepting),
                inputs: vec![unreachable("h1")],
                last: &["persist laptop@0 owned", "notice Unfrozen { handoff: h1, reason: Unreachable }"],
                then: (LAPTOP, 0, true),
            },
            Case {
                name: "unreachable after the abort went out changes nothing: the Accept may have arrived before",
                me: LAPTOP,
                record: frozen(LAPTOP, 0, Stage::Aborting),
                inputs: vec![unreachable("h1")],
                last: &[],
                then: (LAPTOP, 0, false),
            },
            Case {
                name: "unreachable for another handoff changes nothing",
                me: LAPTOP,
                record: frozen(LAPTOP, 0, Stage::Accepting),
                inputs: vec![unreachable("h0")],
                last: &[],
                then: (LAPTOP, 0, false),
            },
            Case {
                name: "unreachable in stage Barrier changes nothing: the barrier decides there",
                me: LAPTOP,
                record: frozen(LAPTOP, 0, Stage::Barrier),
                inputs: vec![unreachable("h1")],
                last: &[],
                then: (LAPTOP, 0, false),
            },
            Case {
                name: "a late barrier result after a timeout changes nothing",
                me: LAPTOP,
                record: record(LAPTOP, 0),
                inputs: vec![start("h1", MINI), Input::Timeout, passed()],
                last: &[],
                then: (LAPTOP, 0, true),
            },
            Case {
                name: "force takes ownership at the known epoch + 1",
                me: MINI,
                record: record(LAPTOP, 3),
                inputs: vec![force(&[LAPTOP])],
                last: &["persist mini@4 owned", "notice TookOver { epoch: 4 }"],
                then: (MINI, 4, true),
            },
            Case {
                name: "force on the owner is rejected",
                me: LAPTOP,
                record: record(LAPTOP, 3),
                inputs: vec![force(&[MINI])],
                last: &["notice Rejected { reason: NotOwner { owner: \"laptop\", epoch: 3 } }"],
                then: (LAPTOP, 3, true),
            },
            Case {
                name: "the old owner, seeing the forced epoch, demotes itself",
                me: LAPTOP,
                record: record(LAPTOP, 3),
                inputs: vec![from(MINI, record_of(record(MINI, 4)))],
                last: &["persist mini@4 owned", "notice Demoted { owner: \"mini\", epoch: 4 }"],
                then: (MINI, 4, false),
            },
            Case {
                name: "a handoff offered by the old owner after a force is refused",
                me: MINI,
                record: record(MINI, 4),
                inputs: vec![from(LAPTOP, accept(3))],
                last: &[
                    "persist mini@4 owned h1=Refused { reason: StaleEpoch { known: 4 } }",
                    "send laptop Refused { handoff: h1, reason: StaleEpoch { known: 4 } }",
                ],
                then: (MINI, 4, true),
            },
            Case {
                name: "an older record changes nothing",
                me: MINI,
                record: record(MINI, 4),
                inputs: vec![from(LAPTOP, record_of(record(LAPTOP, 3)))],
                last: &[],
                then: (MINI, 4, true),
            },
            Case {
                name: "with three nodes, a force asks every node but the owner to promise, its own promise first",
                me: DESKTOP,
                record: record(LAPTOP, 3),
                inputs: vec![force(&[LAPTOP, MINI])],
                last: &["persist laptop@3 forcing 4 waiting {\"mini\"} promised 4", "send mini Prepare { epoch: 4 }"],
                then: (LAPTOP, 3, false),
            },
            Case {
                name: "forced again while it waits, it asks the silent nodes again",
                me: DESKTOP,
                record: record(LAPTOP, 3),
                inputs: vec![force(&[LAPTOP, MINI]), force(&[LAPTOP, MINI])],
                last: &["send mini Prepare { epoch: 4 }"],
                then: (LAPTOP, 3, false),
            },
            Case {
                name: "the promise of every node asked makes the forcer the owner",
                me: DESKTOP,
                record: record(LAPTOP, 3),
                inputs: vec![force(&[LAPTOP, MINI]), from(MINI, Message::Promised { epoch: 4 })],
                last: &["persist desktop@4 owned promised 4", "notice TookOver { epoch: 4 }"],
                then: (DESKTOP, 4, true),
            },
            Case {
                name: "a force picks an epoch above its own promise",
                me: DESKTOP,
                record: promised(6, record(LAPTOP, 3)),
                inputs: vec![force(&[LAPTOP, MINI])],
                last: &["persist laptop@3 forcing 7 waiting {\"mini\"} promised 7", "send mini Prepare { epoch: 7 }"],
                then: (LAPTOP, 3, false),
            },
            Case {
                name: "a refused promise ends the force; the forcer's own promise stays",
                me: DESKTOP,
                record: record(LAPTOP, 3),
                inputs: vec![
                    force(&[LAPTOP, MINI]),
                    from(MINI, Message::PromiseRefused { epoch: 4, reason: Reason::StaleEpoch { known: 4 } }),
                ],
                last: &["persist laptop@3 owned promised 4", "notice Rejected { reason: StaleEpoch { known: 4 } }"],
                then: (LAPTOP, 3, false),
            },
            Case {
                name: "a force times out",
                me: DESKTOP,
                record: record(LAPTOP, 3),
                inputs: vec![force(&[LAPTOP, MINI]), Input::Timeout],
                last: &["persist laptop@3 owned promised 4", "notice Rejected { reason: TimedOut }"],
                then: (LAPTOP, 3, false),
            },
            Case {
                name: "a newer record ends a force",
                me: DESKTOP,
                record: record(LAPTOP, 3),
                inputs: vec![force(&[LAPTOP, MINI]), from(MINI, record_of(record(MINI, 4)))],
                last: &["persist mini@4 owned promised 4", "notice Rejected { reason: StaleEpoch { known: 4 } }"],
                then: (MINI, 4, false),
            },
            Case {
                name: "a node promises an epoch above all it knows, persisted before it answers",
                me: MINI,
                record: record(LAPTOP, 3),
                inputs: vec![from(DESKTOP, Message::Prepare { epoch: 4 })],
                last: &["persist laptop@3 owned promised 4", "send desktop Promised { epoch: 4 }"],
                then: (LAPTOP, 3, false),
            },
            Case {
                name: "a node refuses to promise an epoch it knows",
                me: MINI,
                record: record(LAPTOP, 3),
                inputs: vec![from(DESKTOP, Message::Prepare { epoch: 3 })],
                last: &["send desktop PromiseRefused { epoch: 3, reason: StaleEpoch { known: 3 } }"],
                then: (LAPTOP, 3, false),
            },
            Case {
                name: "a node refuses to promise an epoch it promised already",
                me: MINI,
                record: promised(4, record(LAPTOP, 3)),
                inputs: vec![from(DESKTOP, Message::Prepare { epoch: 4 })],
                last: &["send desktop PromiseRefused { epoch: 4, reason: StaleEpoch { known: 4 } }"],
                then: (LAPTOP, 3, false),
            },
            Case {
                name: "an owner with an Accept out refuses to promise",
                me: LAPTOP,
                record: frozen(LAPTOP, 3, Stage::Accepting),
                inputs: vec![from(DESKTOP, Message::Prepare { epoch: 4 })],
                last: &["send desktop PromiseRefused { epoch: 4, reason: Busy { handoff: h1 } }"],
                then: (LAPTOP, 3, false),
            },
            Case {
                name: "a forcer that promises a higher epoch to another gives its own force up",
                me: DESKTOP,
                record: record(LAPTOP, 3),
                inputs: vec![force(&[LAPTOP, MINI]), from(MINI, Message::Prepare { epoch: 5 })],
                last: &[
                    "persist laptop@3 owned promised 5",
                    "send mini Promised { epoch: 5 }",
                    "notice Rejected { reason: StaleEpoch { known: 5 } }",
                ],
                then: (LAPTOP, 3, false),
            },
            Case {
                name: "a target that promised refuses a handoff to that epoch",
                me: MINI,
                record: promised(4, record(LAPTOP, 3)),
                inputs: vec![from(LAPTOP, accept(3))],
                last: &[
                    "persist laptop@3 owned h1=Refused { reason: StaleEpoch { known: 4 } } promised 4",
                    "send laptop Refused { handoff: h1, reason: StaleEpoch { known: 4 } }",
                ],
                then: (LAPTOP, 3, false),
            },
            Case {
                name: "an owner that promised a higher epoch sends no Accept when the barrier passes",
                me: LAPTOP,
                record: promised(4, record(LAPTOP, 3)),
                inputs: vec![start("h1", MINI), passed()],
                last: &[
                    "persist laptop@3 owned promised 4",
                    "notice Unfrozen { handoff: h1, reason: StaleEpoch { known: 4 } }",
                ],
                then: (LAPTOP, 3, true),
            },
        ];
        for case in cases {
            let mut node = Node::new(case.me, case.record);
            let mut last = Step::default();
            for input in case.inputs {
                last = node.step(input);
            }
            assert_eq!(summary(&last), case.last, "{}", case.name);
            let (owner, epoch, can_write) = case.then;
            assert_eq!(
                (node.record().owner.as_str(), node.record().epoch, node.can_write()),
                (owner, epoch, can_write),
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn a_node_has_heard_the_current_record_once_a_peers_record_reached_it_since_it_started_or_woke() {
        let mut node = Node::new(MINI, record(LAPTOP, 3));
        assert!(!node.heard_current(), "a node just started");
        node.step(from(LAPTOP, Message::Prepare { epoch: 9 }));
        assert!(!node.heard_current(), "a message that is not a record");
        node.step(from(LAPTOP, record_of(record(LAPTOP, 2))));
        assert!(node.heard_current(), "an older record: this node knows at least what the peer knows");
        assert_eq!(node.step(Input::Woke), Step::default(), "waking changes nothing persisted");
        assert!(!node.heard_current(), "woken");
        node.step(from(DESKTOP, record_of(record(LAPTOP, 3))));
        assert!(node.heard_current());
        node.step(Input::Restart);
        assert!(!node.heard_current(), "restarted");
    }

    #[test]
    fn a_record_is_camel_case_json_and_reads_back() {
        let record = decided(frozen(LAPTOP, 2, Stage::Aborting), "h0", Decision::Accepted { epoch: 1 });
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "owner": "laptop",
                "epoch": 2,
                "phase": {"state": "frozen", "handoff": "h1", "target": "mini", "stage": "aborting"},
                "decisions": {"h0": {"decision": "accepted", "epoch": 1}},
            })
        );
        assert_eq!(serde_json::from_value::<Record>(json).unwrap(), record);
        let message = Message::Refused { handoff: h("h1"), reason: Reason::StaleEpoch { known: 4 } };
        let json = serde_json::to_string(&message).unwrap();
        assert_eq!(json, r#"{"type":"refused","handoff":"h1","reason":{"reason":"staleEpoch","known":4}}"#);
        assert_eq!(serde_json::from_str::<Message>(&json).unwrap(), message);

        let phase = Phase::Forcing { epoch: 4, waiting: [MINI.to_owned()].into() };
        let forcing = Record { phase, epoch: 3, promised: 4, ..Record::new(LAPTOP) };
        let json = serde_json::to_value(&forcing).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "owner": "laptop",
                "epoch": 3,
                "phase": {"state": "forcing", "epoch": 4, "waiting": ["mini"]},
                "promised": 4,
            })
        );
        assert_eq!(serde_json::from_value::<Record>(json).unwrap(), forcing);
        let json = serde_json::to_string(&Message::Prepare { epoch: 4 }).unwrap();
        assert_eq!(json, r#"{"type":"prepare","epoch":4}"#);
    }
}
