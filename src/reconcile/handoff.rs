//! The HandoffPolicy reconciler: one pass (every [`EXCHANGE_EVERY`]) over the
//! conversations of one policy on this node, in phases: retransmit what a
//! restart or an aborted handoff left to send, claim the new folders that
//! appeared here first, guard the owned ones against stale writes, exchange
//! every record with every other node of the policy's SyncFolder (`RecordOf`,
//! with the folder's content hash, all in one `POST /api/v1/handoff/messages`
//! per node), and report the status. The protocol's effects are
//! `handoff::io`'s; messages from the other nodes come in through the API.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::context::{Context, Outcome, ReconcileError};
use crate::api::wire::HandoffMessage;
use crate::controller::status::{ConditionType, Observed};
use crate::event::Event;
use crate::handoff::folder::{self, Content, Stat};
use crate::handoff::io::{Conversation, HandoffIo, off_thread};
use crate::handoff::protocol::{Input, Phase, Record, Stage};
use crate::handoff::shadow::Shadow;
use crate::handoff::stale;
use crate::handoff::store::HandoffStore;
use crate::syncthing::{Client, FileRecord};
use crate::sys;

/// How often the records are sent to the peer (and new folders looked for).
pub(crate) const EXCHANGE_EVERY: Duration = Duration::from_secs(2);

/// Reconciles HandoffPolicy `name` on this node.
pub(crate) async fn reconcile(name: &str, ctx: &Context) -> Result<Outcome, ReconcileError> {
    let Some(mut pass) = Pass::new(name, ctx) else { return Ok(Outcome { tracked: false, ..Outcome::default() }) };
    pass.notice_sleep().await;
    pass.retransmit_restart().await;
    let waiting = pass.claim().await?;
    pass.retransmit_aborts().await;
    let records = ctx.handles.handoff.records(name);
    let unguarded = pass.guard(&records).await;
    let (conflicts, stale) = pass.exchange(&records).await;
    let owned = records.iter().filter(|(_, record)| record.owner == ctx.handles.node).count();
    let found = Found { conversations: records.len(), owned, waiting, conflicts, stale, unguarded };
    let (conditions, details) = status(&found);
    Ok(Outcome { conditions, details, ..pass.outcome })
}

/// One pass over a policy's conversations on this node.
struct Pass<'a> {
    ctx: &'a Context,
    policy: &'a str,
    /// Where the policy's conversation folders are on this node.
    root: PathBuf,
    /// The Syncthing folder they are in, and their path in it.
    folder_id: String,
    sessions_dir: String,
    /// The other nodes of the policy's SyncFolder.
    others: Vec<String>,
    io: HandoffIo,
    /// This node's Syncthing and its short device ID, once asked this pass.
    syncthing: Option<Result<(Client, String), String>>,
    outcome: Outcome,
}

impl<'a> Pass<'a> {
    /// None when the policy is nothing to this node.
    fn new(policy: &'a str, ctx: &'a Context) -> Option<Pass<'a>> {
        let spec = &ctx.set.handoff_policies.get(policy)?.spec;
        let root = folder::sessions_root(&ctx.set, policy, &ctx.handles.node, &folder::home())?;
        let sync_folder = ctx.set.sync_folders.get(&spec.sync_folder.value)?;
        Some(Pass {
            ctx,
            policy,
            root,
            folder_id: sync_folder.spec.folder_id_or(sync_folder.name()).to_owned(),
            sessions_dir: spec.sessions_dir.value.trim_matches('/').to_owned(),
            others: folder::others_of(&ctx.set, policy, &ctx.handles.node),
            io: HandoffIo::new(
                ctx.handles.handoff.clone(),
                ctx.handles.peers.clone(),
                ctx.handles.api_key.get(),
                ctx.handles.handoff_tasks.clone(),
            ),
            syncthing: None,
            outcome: Outcome { requeue_after: Some(EXCHANGE_EVERY), ..Outcome::default() },
        })
    }

    fn conversation(&self, id: &str) -> Conversation {
        Conversation { policy: self.policy.to_owned(), id: id.to_owned(), dir: Some(self.root.join(id)) }
    }

    /// Whether this node runs Syncthing (a node without it shares nothing).
    fn has_syncthing(&self) -> bool {
        self.ctx.set.nodes.get(&self.ctx.handles.node).is_some_and(|node| node.spec.syncthing.is_some())
    }

    /// Asks this node's Syncthing who it is, once a pass (not without one).
    async fn ask_syncthing(&mut self) {
        if self.syncthing.is_none() && self.has_syncthing() {
            self.syncthing = Some(own_syncthing(self.ctx).await);
        }
    }

    /// A machine that slept may have missed handoffs: once the clocks that
    /// count sleep and not (as the mesh's resume reads them) show a sleep,
    /// every conversation's wake gate closes until a peer's record comes
    /// again (the first pass of any policy after the sleep notices it).
    async fn notice_sleep(&mut self) {
        let store = &self.ctx.handles.handoff;
        let Some(asleep) = store.notice_sleep(sys::asleep_and_awake_clocks()) else { return };
        let store = store.clone();
        let _ = off_thread(move || store.woke()).await;
        self.outcome.event(Event::normal(
            "Woke",
            format!(
                "this node slept for about {} s: it claims and guards again once a peer's record reaches it",
                asleep.as_secs()
            ),
        ));
    }

    /// Carries out what the restart left to send and tell.
    async fn retransmit_restart(&mut self) {
        for (id, step) in self.ctx.handles.handoff.take_pending(self.policy) {
            let events = self.io.carry_out(&self.conversation(&id), step).await;
            self.outcome.events.extend(events);
        }
    }

    /// A handoff that timed out after `Accept` went out asks the target to
    /// abort until it answers (the protocol's retransmission tick).
    async fn retransmit_aborts(&mut self) {
        for (id, record) in self.ctx.handles.handoff.records(self.policy) {
            if !matches!(record.phase, Phase::Frozen { stage: Stage::Aborting, .. }) {
                continue;
            }
            if let Ok(events) = self.io.step(&self.conversation(&id), Input::Timeout).await {
                self.outcome.events.extend(events);
            }
        }
    }

    /// Lists the conversation folders and claims the new ones that appeared
    /// here first; what it waits for, by conversation.
    async fn claim(&mut self) -> Result<Vec<String>, ReconcileError> {
        let root = self.root.clone();
        let listing = off_thread(move || folder::conversations(&root)).await.and_then(|listed| listed);
        let folder::Listing { ids, ignored } = listing.map_err(|error| {
            ReconcileError::new("SessionsUnreadable", format!("cannot list {}: {error}", self.root.display()))
        })?;
        self.warn_ignored(&ignored);
        let unknown: Vec<String> =
            ids.into_iter().filter(|id| self.ctx.handles.handoff.record(self.policy, id).is_none()).collect();
        if unknown.is_empty() {
            return Ok(Vec::new());
        }
        let heard = self.ctx.handles.handoff.heard_policy(self.policy);
        if !may_claim_any(&self.others, |node| self.ctx.handles.peers.known_down(node), heard) {
            let why = "no other node answers and none sent its records since this node started or woke";
            return Ok(unknown.into_iter().map(|id| format!("{id} ({why})")).collect());
        }
        self.ask_syncthing().await;
        if let Some(Err(error)) = &self.syncthing {
            let message = format!("cannot ask who made a conversation: {error}");
            return Err(ReconcileError::new("SyncthingUnreachable", message));
        }
        let mut waiting = Vec::new();
        for id in unknown {
            let path = format!("{}/{id}", self.sessions_dir);
            let syncthing = self.syncthing.as_ref().and_then(|syncthing| syncthing.as_ref().ok());
            match may_claim(syncthing, &self.folder_id, &path).await {
                Claim::Mine => match self.io.claim(self.policy, &id).await {
                    Ok(true) => self.outcome.event(Event::normal(
                        "Claimed",
                        format!("conversation {id} appeared here first: owned here at epoch 1"),
                    )),
                    Ok(false) => {}
                    Err(error) => return Err(not_saved(&id, &error)),
                },
                Claim::Wait(why) => waiting.push(format!("{id} ({why})")),
            }
        }
        Ok(waiting)
    }

    /// A folder whose name is not a conversation id is never claimed; said once.
    fn warn_ignored(&mut self, ignored: &[String]) {
        for folder_name in ignored {
            if !self.ctx.handles.handoff.first_sight_of_ignored(self.policy, folder_name) {
                continue;
            }
            let why = folder::check_conversation_id(folder_name).err().unwrap_or_default();
            let path = self.root.join(folder_name);
            let message = format!("{}: not a conversation, left alone: {why}", path.display());
            self.outcome.event(Event::warning("handoff.ignoredFolder", message));
        }
    }

    /// The owner keeps stale writes from the other node aside: which of its
    /// conversations changed since their shadow is looked at in one go, and
    /// the shadows of those it no longer owns are dropped. What could not be
    /// guarded, by conversation.
    async fn guard(&mut self, records: &[(String, Record)]) -> Vec<String> {
        let (mut owned, mut dropped) = (Vec::new(), Vec::new());
        for (id, record) in records {
            if record.owner != self.ctx.handles.node {
                dropped.push(self.ctx.handles.handoff.shadow_dir(self.policy, id));
            } else if self.may_guard(id) {
                let dir = self.root.join(id);
                owned.push(Guarded { policy: self.policy.to_owned(), id: id.clone(), epoch: record.epoch, dir });
            }
        }
        let (changed, mut unguarded) = changed_since_shadow(&self.ctx.handles.handoff, owned, dropped).await;
        if !changed.is_empty() {
            self.ask_syncthing().await;
        }
        let mut events = Vec::new();
        for (conversation, looked) in changed {
            let id = &conversation.id;
            let sub = format!("{}/{id}", self.sessions_dir);
            let synced = match &self.syncthing {
                Some(Ok((client, me))) => Some(Synced { client, me, folder_id: &self.folder_id, sub }),
                Some(Err(error)) => {
                    unguarded.push(format!("{id}: stale writes are not looked for: Syncthing: {error}"));
                    continue;
                }
                None => None,
            };
            match keep_stale_aside(&self.ctx.handles.handoff, &conversation, looked, synced.as_ref()).await {
                Ok(told) => events.extend(told),
                Err(error) => unguarded.push(format!("{id}: {error}")),
            }
        }
        self.outcome.events.extend(events);
        unguarded
    }

    /// A daemon that restarted or woke may hold a record the others have
    /// moved past (a forced takeover while it was away): it guards only once
    /// a peer's record of the conversation reached it since, unless it shares
    /// the folder with nobody.
    fn may_guard(&self, id: &str) -> bool {
        self.others.is_empty() || self.ctx.handles.handoff.heard_current(self.policy, id)
    }

    /// Sends every record, with its folder's content hash, to every other
    /// node of the folder but the ones known down (each pass: the retry for a
    /// node that slept or was cut off); returns the conflict copies and the
    /// stale writes kept aside, as `<id>/<path>`.
    async fn exchange(&self, records: &[(String, Record)]) -> (Vec<String>, Vec<String>) {
        let ids: Vec<String> = records.iter().map(|(id, _)| id.clone()).collect();
        let contents = contents_of(&self.ctx.handles.handoff, &self.root, ids).await;
        let up: Vec<&String> = self.others.iter().filter(|node| !self.ctx.handles.peers.known_down(node)).collect();
        let (mut conflicts, mut stale) = (Vec::new(), Vec::new());
        let mut outgoing: Vec<Vec<HandoffMessage>> = vec![Vec::new(); up.len()];
        for (id, content) in contents {
            if let Some(content) = &content {
                conflicts.extend(content.conflicts.iter().map(|path| format!("{id}/{path}")));
                stale.extend(content.stale.iter().map(|path| format!("{id}/{path}")));
            }
            let hash = content.map(|content| content.hash);
            for (node, messages) in up.iter().zip(&mut outgoing) {
                let Some(envelope) = self.ctx.handles.handoff.record_for(self.policy, &id, node) else { continue };
                messages.push(HandoffMessage::new(self.policy, &id, envelope, hash.clone()));
            }
        }
        for (node, messages) in up.into_iter().zip(outgoing) {
            self.io.send_records(node, messages);
        }
        (conflicts, stale)
    }
}

/// Each conversation's content, from the store's cache (only a changed
/// folder is read), on a blocking thread. None for one that does not read.
async fn contents_of(store: &Arc<HandoffStore>, root: &Path, ids: Vec<String>) -> Vec<(String, Option<Content>)> {
    let (store, root) = (store.clone(), root.to_owned());
    let read = off_thread(move || {
        ids.into_iter()
            .map(|id| {
                let content = store.content(&root.join(&id)).ok();
                (id, content)
            })
            .collect::<Vec<_>>()
    });
    read.await.unwrap_or_default()
}

/// What a pass found, for the policy's status.
struct Found {
    conversations: usize,
    owned: usize,
    /// The new conversations not claimed yet, and why.
    waiting: Vec<String>,
    conflicts: Vec<String>,
    stale: Vec<String>,
    unguarded: Vec<String>,
}

/// The policy's conditions and details.
fn status(found: &Found) -> (Vec<Observed>, BTreeMap<String, String>) {
    let message = format!("{} conversation(s), {} owned here", found.conversations, found.owned);
    let waiting = !found.waiting.is_empty();
    let conditions = vec![
        Observed::ready("Tracking", message),
        Observed::new(
            ConditionType::Progressing,
            waiting,
            if waiting { "Waiting" } else { "Stable" },
            found.waiting.join(", "),
        ),
        degraded(&found.conflicts, &found.stale, &found.unguarded),
    ];
    let details = [
        ("conversations", found.conversations),
        ("conflicts", found.conflicts.len()),
        ("stale", found.stale.len()),
        ("owned", found.owned),
    ];
    (conditions, details.into_iter().map(|(name, count)| (name.to_owned(), count.to_string())).collect())
}

/// Whether the policy's conversations need a look: Syncthing conflict copies,
/// stale writes kept aside (both left for a person to read and delete), or
/// owned conversations whose stale writes could not be looked for.
fn degraded(conflicts: &[String], stale: &[String], unguarded: &[String]) -> Observed {
    let mut parts = Vec::new();
    if !conflicts.is_empty() {
        parts.push((
            "ConflictCopies",
            format!("{} Syncthing conflict copies: {}", conflicts.len(), conflicts.join(", ")),
        ));
    }
    if !stale.is_empty() {
        parts.push(("StaleWrites", format!("{} stale writes kept aside: {}", stale.len(), stale.join(", "))));
    }
    if !unguarded.is_empty() {
        parts.push(("StaleWritesUnchecked", unguarded.join(", ")));
    }
    match parts.first() {
        None => Observed::as_expected(),
        Some((reason, _)) => {
            let message = parts.iter().map(|(_, message)| message.as_str()).collect::<Vec<_>>().join("; ");
            Observed::degraded(*reason, message)
        }
    }
}

/// Whether this node may claim the new conversations of a policy shared with
/// `others` at all: a node alone (none of them answers) that has not `heard`
/// a peer's record since it started or woke may not know of the claims made
/// while it was away, so it waits for one. A policy shared with nobody is
/// claimed at once.
fn may_claim_any(others: &[String], known_down: impl Fn(&str) -> bool, heard: bool) -> bool {
    others.is_empty() || heard || others.iter().any(|node| !known_down(node))
}

/// Whether this node may claim a conversation folder it has no record of.
#[derive(Debug, PartialEq, Eq)]
enum Claim {
    Mine,
    /// Wait for the peer's record, or for Syncthing to scan the folder.
    Wait(String),
}

/// Who owns a new conversation: the node where its folder appeared first.
///
/// The folder is Syncthing-mirrored, so both nodes see it; only one may claim
/// it, or there would be two owners at epoch 1. Syncthing knows who made it:
/// its database entry for `<sessionsDir>/<id>` names, in `local.modifiedBy`,
/// the short device ID (the first block of the device ID) of the device whose
/// change this copy is. When that is this node's Syncthing, the folder was
/// made here and this node claims it (owner = this node, epoch 1). When it is
/// the peer's, the folder came over from the peer, which claims it: this node
/// waits for the peer's record (`RecordOf`). While Syncthing has not scanned the
/// folder yet (404), nobody can tell, so this node asks for a scan and waits.
/// A node without Syncthing shares the folder with nobody: it claims at once.
async fn may_claim(syncthing: Option<&(Client, String)>, folder_id: &str, path: &str) -> Claim {
    let Some((client, own_short)) = syncthing else { return Claim::Mine };
    match client.file_record(folder_id, path).await {
        Ok(Some(record)) if record.modified_by == *own_short => Claim::Mine,
        Ok(Some(FileRecord { modified_by: by, .. })) => {
            Claim::Wait(format!("made by device {by}; waiting for the peer's record"))
        }
        Ok(None) => {
            let _ = client.scan_sub(folder_id, path).await;
            Claim::Wait("Syncthing has not scanned it yet".into())
        }
        Err(error) => Claim::Wait(format!("cannot ask Syncthing who made it: {error}")),
    }
}

/// This node's Syncthing, and its short device ID (what `modifiedBy` says).
async fn own_syncthing(ctx: &Context) -> Result<(Client, String), String> {
    let (client, _) =
        super::sync_folder::this_node_client(&ctx.set, &ctx.handles.node, &ctx.env).map_err(|error| error.message)?;
    let own = client.system_status().await.map_err(|error| error.to_string())?;
    let short = own.my_id.split('-').next().unwrap_or_default().to_owned();
    Ok((client, short))
}

/// A conversation this node owns, at `epoch`.
struct Guarded {
    policy: String,
    id: String,
    epoch: u64,
    dir: PathBuf,
}

/// A conversation's shadow (each file's `Stat`) and its files on disk.
struct Looked {
    shadow: BTreeMap<String, Stat>,
    disk: BTreeMap<String, Stat>,
}

/// This node's Syncthing as a guarded conversation sees it: the client, its
/// short device ID, the folder ID and the conversation's path in the folder.
struct Synced<'a> {
    client: &'a Client,
    me: &'a str,
    folder_id: &'a str,
    sub: String,
}

/// The owned conversations whose files differ from their shadow (taking the
/// shadow of any at a new epoch), in one trip to the blocking threads, where
/// the shadows in `dropped` go too: an idle node with many conversations
/// stays idle. Also what could not be read.
async fn changed_since_shadow(
    store: &Arc<HandoffStore>,
    owned: Vec<Guarded>,
    dropped: Vec<PathBuf>,
) -> (Vec<(Guarded, Looked)>, Vec<String>) {
    let store = store.clone();
    let looked = off_thread(move || {
        for shadow_dir in dropped.iter().filter(|shadow_dir| shadow_dir.exists()) {
            let _ = store.with_shadows(|| Shadow::remove(shadow_dir));
        }
        let (mut changed, mut unreadable) = (Vec::new(), Vec::new());
        for conversation in owned {
            match look(&store, &conversation) {
                Ok(Some(looked)) => changed.push((conversation, looked)),
                Ok(None) => {}
                Err(error) => unreadable.push(format!("{}: {error}", conversation.id)),
            }
        }
        (changed, unreadable)
    });
    looked.await.unwrap_or_else(|error| (Vec::new(), vec![error.to_string()]))
}

/// The shadow and files of an owned conversation when they differ; None when
/// they are equal (noted, so the same files are not looked at again) or the
/// shadow was taken now, from these very files. Blocking.
fn look(store: &HandoffStore, conversation: &Guarded) -> std::io::Result<Option<Looked>> {
    let key = (conversation.policy.as_str(), conversation.id.as_str());
    let disk = folder::files_if_any(&conversation.dir)?;
    let fingerprint = folder::fingerprint_of(&disk);
    if store.is_quiet(key, conversation.epoch, fingerprint) {
        return Ok(None);
    }
    let shadow_dir = store.shadow_dir(key.0, key.1);
    let (shadow, taken) =
        store.with_shadows(|| Shadow::at_epoch(&shadow_dir, &conversation.dir, conversation.epoch))?;
    if !taken && !stale::changed(&disk, &shadow.files).is_empty() {
        return Ok(Some(Looked { shadow: shadow.files, disk }));
    }
    store.set_quiet(key, conversation.epoch, fingerprint);
    Ok(None)
}

/// Keeps the stale writes to an owned conversation aside (`handoff::stale`)
/// once `looked` found files that differ from the shadow. A changed file is
/// looked at after a rescan of the conversation, so a change made here is
/// this device's in Syncthing's records (`synced` None: a node without
/// Syncthing, whose changes are all its own). What was set aside and put
/// back is rescanned at once, so the other node sees it within a second, and
/// told as `handoff.stale` events.
async fn keep_stale_aside(
    store: &Arc<HandoffStore>,
    conversation: &Guarded,
    looked: Looked,
    synced: Option<&Synced<'_>>,
) -> Result<Vec<Event>, String> {
    let Looked { shadow, disk } = looked;
    let (me, records, disk) = match synced {
        None => (String::new(), BTreeMap::new(), disk),
        Some(synced) => {
            let (records, disk) = whose_changes(synced, &conversation.dir, &shadow).await?;
            (synced.me.to_owned(), records, disk)
        }
    };
    let plan = stale::plan(&disk, &shadow, &records, &me, conversation.epoch);
    if plan.actions.is_empty() {
        return Ok(Vec::new());
    }
    apply_to_shadow(store, conversation, plan.actions.clone()).await?;
    let events = stale_events(&conversation.id, conversation.epoch, &plan.actions);
    if let (false, Some(synced)) = (events.is_empty(), synced) {
        let _ = synced.client.scan_sub(synced.folder_id, &synced.sub).await;
    }
    Ok(events)
}

/// Rescans the conversation, then reads its files again and asks Syncthing
/// whose each file that differs from the shadow is.
async fn whose_changes(
    synced: &Synced<'_>,
    dir: &Path,
    shadow: &BTreeMap<String, Stat>,
) -> Result<(BTreeMap<String, stale::Synced>, BTreeMap<String, Stat>), String> {
    let Synced { client, folder_id, sub, .. } = synced;
    client.scan_sub(folder_id, sub).await.map_err(|error| format!("cannot rescan it: {error}"))?;
    let dir = dir.to_owned();
    let disk = off_thread(move || folder::files_if_any(&dir)).await.and_then(|read| read).map_err(|e| e.to_string())?;
    let mut records = BTreeMap::new();
    for path in stale::changed(&disk, shadow) {
        let record = client
            .file_record(folder_id, &format!("{sub}/{path}"))
            .await
            .map_err(|error| format!("cannot ask Syncthing whose {path} is: {error}"))?;
        if let Some(record) = record {
            records.insert(path, synced_of(&record));
        }
    }
    Ok((records, disk))
}

/// Carries out a stale plan's actions on the folder and the shadow, on a
/// blocking thread, unless the shadow was taken at another epoch meanwhile.
async fn apply_to_shadow(
    store: &Arc<HandoffStore>,
    conversation: &Guarded,
    actions: Vec<stale::Action>,
) -> Result<(), String> {
    let (store, dir, epoch) = (store.clone(), conversation.dir.clone(), conversation.epoch);
    let shadow_dir = store.shadow_dir(&conversation.policy, &conversation.id);
    let applied = off_thread(move || {
        store.with_shadows(|| {
            // Taken again at another epoch meanwhile: this plan is void.
            let Some(mut shadow) = Shadow::load(&shadow_dir).filter(|shadow| shadow.epoch == epoch) else {
                return Ok(());
            };
            let done = shadow.apply_all(&dir, &actions);
            shadow.save()?;
            done
        })
    });
    applied.await.and_then(|done| done).map_err(|error| error.to_string())
}

/// What a stale plan did, as `handoff.stale` events.
fn stale_events(id: &str, epoch: u64, actions: &[stale::Action]) -> Vec<Event> {
    let told = actions.iter().filter_map(|action| match action {
        stale::Action::SetAside { path, to, by } => Some(format!(
            "conversation {id}: {path} was written by device {by}, which does not own it at epoch {epoch}; \
             kept aside as {to}"
        )),
        stale::Action::Restore { path, .. } => {
            Some(format!("conversation {id}: {path} is back to this owner's version (epoch {epoch})"))
        }
        stale::Action::Adopt(_) | stale::Action::Forget(_) => None,
    });
    told.map(|message| Event::warning("handoff.stale", message)).collect()
}

/// Syncthing's record as `handoff::stale` reads it. A time that does not
/// read never equals a file's, so such a file waits.
fn synced_of(record: &FileRecord) -> stale::Synced {
    stale::Synced {
        modified_by: record.modified_by.clone(),
        deleted: record.deleted,
        stat: Stat { size: record.size, mtime_ns: record.modified_ns().unwrap_or(i64::MIN) },
    }
}

fn not_saved(id: &str, error: &std::io::Error) -> ReconcileError {
    ReconcileError::new("StateNotSaved", format!("cannot persist the record of conversation {id}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_counts_the_conversations_and_says_what_a_claim_waits_for() {
        let found = Found {
            conversations: 3,
            owned: 1,
            waiting: vec!["c-3 (Syncthing has not scanned it yet)".into()],
            conflicts: Vec::new(),
            stale: vec!["c-1/m.jsonl.stale-2".into()],
            unguarded: Vec::new(),
        };
        let (conditions, details) = status(&found);
        let seen: Vec<_> =
            conditions.iter().map(|c| (c.condition_type, c.status, c.reason.as_str(), c.message.as_str())).collect();
        assert_eq!(
            seen,
            [
                (ConditionType::Ready, true, "Tracking", "3 conversation(s), 1 owned here"),
                (ConditionType::Progressing, true, "Waiting", "c-3 (Syncthing has not scanned it yet)"),
                (ConditionType::Degraded, true, "StaleWrites", "1 stale writes kept aside: c-1/m.jsonl.stale-2"),
            ]
        );
        let details: Vec<_> = details.iter().map(|(name, count)| (name.as_str(), count.as_str())).collect();
        assert_eq!(details, [("conflicts", "0"), ("conversations", "3"), ("owned", "1"), ("stale", "1")]);

        let idle = Found { waiting: Vec::new(), stale: Vec::new(), ..found };
        let (conditions, _) = status(&idle);
        assert_eq!((conditions[1].status, conditions[1].reason.as_str()), (false, "Stable"));
    }

    #[test]
    fn a_node_alone_claims_only_once_a_peers_record_reached_it_since_it_started_or_woke() {
        let nodes = |names: &[&str]| names.iter().map(|name| (*name).to_owned()).collect::<Vec<_>>();
        // (other nodes, the ones known down, heard a peer's record, may claim)
        let cases = [
            (nodes(&[]), nodes(&[]), false, true),
            (nodes(&["mini"]), nodes(&[]), false, true),
            (nodes(&["mini"]), nodes(&["mini"]), false, false),
            (nodes(&["mini"]), nodes(&["mini"]), true, true),
            (nodes(&["mini", "desk"]), nodes(&["mini"]), false, true),
            (nodes(&["mini", "desk"]), nodes(&["mini", "desk"]), false, false),
            (nodes(&["mini", "desk"]), nodes(&["mini", "desk"]), true, true),
        ];
        for (others, down, heard, expected) in cases {
            let known_down = |node: &str| down.iter().any(|name| name == node);
            assert_eq!(may_claim_any(&others, known_down, heard), expected, "{others:?}, down {down:?}, heard {heard}");
        }
    }

    #[test]
    fn only_what_was_set_aside_or_put_back_is_told() {
        let actions = [
            stale::Action::Adopt("a.jsonl".into()),
            stale::Action::SetAside { path: "m.jsonl".into(), to: "m.jsonl.stale-2".into(), by: "BBBBBBB".into() },
            stale::Action::Restore { path: "m.jsonl".into(), from: stale::Source::Shadow },
            stale::Action::Forget("gone.jsonl".into()),
        ];
        let told = stale_events("c-1", 2, &actions);
        assert_eq!(
            told,
            [
                Event::warning(
                    "handoff.stale",
                    "conversation c-1: m.jsonl was written by device BBBBBBB, which does not own it at epoch 2; \
                     kept aside as m.jsonl.stale-2"
                        .to_owned()
                ),
                Event::warning(
                    "handoff.stale",
                    "conversation c-1: m.jsonl is back to this owner's version (epoch 2)".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn degraded_names_the_first_problem_and_tells_them_all() {
        let list = |items: &[&str]| items.iter().map(|item| (*item).to_owned()).collect::<Vec<_>>();
        let cases = [
            (list(&[]), list(&[]), list(&[]), false, "AsExpected", ""),
            (
                list(&["c-1/m.sync-conflict-20261128-101500-ABCDEFG.jsonl"]),
                list(&[]),
                list(&[]),
                true,
                "ConflictCopies",
                "1 Syncthing conflict copies: c-1/m.sync-conflict-20261128-101500-ABCDEFG.jsonl",
            ),
            (
                list(&[]),
                list(&["c-1/m.jsonl.stale-2"]),
                list(&["c-2: cannot rescan it"]),
                true,
                "StaleWrites",
                "1 stale writes kept aside: c-1/m.jsonl.stale-2; c-2: cannot rescan it",
            ),
            (
                list(&[]),
                list(&[]),
                list(&["c-2: cannot rescan it"]),
                true,
                "StaleWritesUnchecked",
                "c-2: cannot rescan it",
            ),
        ];
        for (conflicts, stale, unguarded, status, reason, message) in cases {
            let observed = degraded(&conflicts, &stale, &unguarded);
            assert_eq!(
                (observed.status, observed.reason.as_str(), observed.message.as_str()),
                (status, reason, message)
            );
        }
    }
}
