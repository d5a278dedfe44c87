//! The HandoffPolicy reconciler: the I/O half of `handoff::protocol` for the
//! conversations of one policy on this node. Each pass (every
//! [`EXCHANGE_EVERY`]) finds the conversation folders, claims the new ones
//! that appeared here first, sends the peer this node's record of every
//! conversation (`RecordOf`, with the folder's content hash, all in one
//! `POST /api/v1/handoff/messages`) and what a restart left to send, and keeps
//! stale writes to the conversations it owns aside. Messages from the peer
//! come in through the API (`POST /api/v1/handoff/message[s]`, [`receive`]),
//! whose replies go back at once. Sending is fire and forget: the protocol
//! tolerates loss, and the next pass sends the record again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::context::{Context, Outcome, ReconcileError};
use crate::api::wire::{HandoffMessage, Session};
use crate::controller::status::Observed;
use crate::handoff::folder::{self, Stat};
use crate::handoff::protocol::{Envelope, Input, Notice, Phase, Reason, Record, Stage, Step};
use crate::handoff::shadow::Shadow;
use crate::handoff::stale;
use crate::handoff::store::HandoffStore;
use crate::manifest::ManifestSet;
use crate::mesh::peers::Peers;
use crate::syncthing::{Client, FileRecord};

/// How often the records are sent to the peer (and new folders looked for).
pub const EXCHANGE_EVERY: Duration = Duration::from_secs(2);
/// How long a peer gets to take one message.
const SEND_TIMEOUT: Duration = Duration::from_secs(3);

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

/// Reconciles HandoffPolicy `name` on this node.
pub async fn reconcile(name: &str, ctx: &Context) -> Result<Outcome, ReconcileError> {
    let untracked = Ok(Outcome { tracked: false, ..Outcome::default() });
    let Some(policy) = ctx.set.handoff_policies.get(name) else { return untracked };
    let Some(root) = folder::sessions_root(&ctx.set, name, &ctx.node, &home()) else { return untracked };
    let Some(sync_folder) = ctx.set.sync_folders.get(&policy.spec.sync_folder.value) else { return untracked };
    let folder_id = sync_folder.spec.folder_id_or(sync_folder.name()).to_owned();
    let peer = peer_of(&ctx.set, name, &ctx.node);
    let sessions_dir = policy.spec.sessions_dir.value.trim_matches('/').to_owned();
    let mut outcome = Outcome { requeue_after: Some(EXCHANGE_EVERY), ..Outcome::default() };

    let key = ctx.api_key.get();
    for (id, step) in ctx.handoff.take_pending(name) {
        let events = carry_out(&ctx.handoff, &ctx.peers, &key, (name, &id), Some(&root.join(&id)), step);
        outcome.events.extend(events);
    }

    let folder::Listing { ids, ignored } = folder::conversations(&root).map_err(|error| {
        ReconcileError::new("SessionsUnreadable", format!("cannot list {}: {error}", root.display()))
    })?;
    // A folder whose name is not a conversation id is never claimed; said once.
    for folder_name in ignored.iter().filter(|folder_name| ctx.handoff.first_sight_of_ignored(name, folder_name)) {
        let why = folder::check_conversation_id(folder_name).err().unwrap_or_default();
        let path = root.join(folder_name);
        outcome.event(
            true,
            "handoff.ignoredFolder",
            format!("{}: not a conversation, left alone: {why}", path.display()),
        );
    }
    let unknown: Vec<&String> = ids.iter().filter(|id| ctx.handoff.record(name, id).is_none()).collect();
    let has_syncthing = ctx.set.nodes.get(&ctx.node).is_some_and(|node| node.spec.syncthing.is_some());
    let syncthing = match has_syncthing && !unknown.is_empty() {
        true => Some(own_syncthing(ctx).await.map_err(|error| {
            ReconcileError::new("SyncthingUnreachable", format!("cannot ask who made a conversation: {error}"))
        })?),
        false => None,
    };
    let mut waiting = Vec::new();
    for id in unknown {
        match may_claim(syncthing.as_ref(), &folder_id, &format!("{sessions_dir}/{id}")).await {
            Claim::Mine => match ctx.handoff.claim(name, id) {
                Ok(true) => outcome.event(
                    false,
                    "Claimed",
                    format!("conversation {id} appeared here first: owned here at epoch 1"),
                ),
                Ok(false) => {}
                Err(error) => return Err(not_saved(id, &error)),
            },
            Claim::Wait(why) => waiting.push(format!("{id} ({why})")),
        }
    }

    // A handoff that timed out after Accept went out asks the target to abort
    // until it answers (the protocol's retransmission tick).
    for (id, record) in ctx.handoff.records(name) {
        if matches!(record.phase, Phase::Frozen { stage: Stage::Aborting, .. })
            && let Ok(Some(step)) = ctx.handoff.step(name, &id, Input::Timeout)
        {
            let events = carry_out(&ctx.handoff, &ctx.peers, &key, (name, &id), Some(&root.join(&id)), step);
            outcome.events.extend(events);
        }
    }
    let records = ctx.handoff.records(name);
    // The owner keeps stale writes from the other node aside. Which of its
    // conversations changed since their shadow is looked at in one go.
    let mut owned_here = Vec::new();
    for (id, record) in &records {
        let shadow_dir = ctx.handoff.shadow_dir(name, id);
        if record.owner != ctx.node {
            if shadow_dir.exists() {
                let _ = ctx.handoff.with_shadows(|| Shadow::remove(&shadow_dir));
            }
            continue;
        }
        // A restarted daemon may hold a record the peer has moved past (a
        // forced takeover while it was down): it guards only once the peer
        // told it about the conversation, or while the peer is down.
        let peer_may_know_better = peer.as_ref().is_some_and(|peer| !ctx.peers.known_down(peer));
        if !peer_may_know_better || ctx.handoff.heard_from_peer(name, id) {
            owned_here.push(Guarded {
                policy: name.to_owned(),
                id: id.clone(),
                epoch: record.epoch,
                dir: root.join(id),
            });
        }
    }
    let (changed, mut unguarded) = changed_since_shadow(&ctx.handoff, owned_here).await;
    let mut syncthing = syncthing.map(Ok);
    for (conversation, looked) in changed {
        if syncthing.is_none() && has_syncthing {
            syncthing = Some(own_syncthing(ctx).await);
        }
        let id = &conversation.id;
        let synced = match &syncthing {
            Some(Ok((client, me))) => Some((client, me.as_str(), folder_id.as_str(), format!("{sessions_dir}/{id}"))),
            Some(Err(error)) => {
                unguarded.push(format!("{id}: stale writes are not looked for: Syncthing: {error}"));
                continue;
            }
            None => None,
        };
        match guard(&ctx.handoff, &conversation, looked, synced).await {
            Ok(events) => outcome.events.extend(events),
            Err(error) => unguarded.push(format!("{id}: {error}")),
        }
    }

    let peer_up = peer.as_ref().filter(|peer| !ctx.peers.known_down(peer));
    let (mut conflicts, mut stale, mut outgoing) = (Vec::new(), Vec::new(), Vec::new());
    for (id, _) in &records {
        // Hashing is blocking I/O, but cached: only a changed folder is read.
        let content = ctx.handoff.content(&root.join(id)).ok();
        if let Some(content) = &content {
            conflicts.extend(content.conflicts.iter().map(|path| format!("{id}/{path}")));
            stale.extend(content.stale.iter().map(|path| format!("{id}/{path}")));
        }
        let Some(peer) = peer_up else { continue };
        let Some(envelope) = ctx.handoff.record_for(name, id, peer) else { continue };
        let hash = content.map(|content| content.hash);
        outgoing.push(HandoffMessage::new(name, id, envelope, hash));
    }
    if let Some(peer) = peer_up {
        send_records(&ctx.peers, &key, peer, outgoing);
    }

    let owned = records.iter().filter(|(_, record)| record.owner == ctx.node).count();
    let message = format!("{} conversation(s), {owned} owned here", records.len());
    outcome.conditions = vec![
        Observed::new("Ready", true, "Tracking", message),
        Observed::new(
            "Progressing",
            !waiting.is_empty(),
            if waiting.is_empty() { "Stable" } else { "Waiting" },
            waiting.join(", "),
        ),
        degraded(&conflicts, &stale, &unguarded),
    ];
    outcome.details.insert("conversations".into(), records.len().to_string());
    outcome.details.insert("conflicts".into(), conflicts.len().to_string());
    outcome.details.insert("stale".into(), stale.len().to_string());
    outcome.details.insert("owned".into(), owned.to_string());
    Ok(outcome)
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
        None => Observed::new("Degraded", false, "AsExpected", ""),
        Some((reason, _)) => {
            let message = parts.iter().map(|(_, message)| message.as_str()).collect::<Vec<_>>().join("; ");
            Observed::new("Degraded", true, *reason, message)
        }
    }
}

/// This node's Syncthing, and its short device ID (what `modifiedBy` says).
async fn own_syncthing(ctx: &Context) -> Result<(Client, String), String> {
    let (client, _) =
        super::sync_folder::this_node_client(&ctx.set, &ctx.node, &ctx.env).map_err(|error| error.message)?;
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

/// The owned conversations whose files differ from their shadow (taking the
/// shadow of any at a new epoch), in one trip to the blocking threads: an
/// idle node with many conversations stays idle. Also what could not be read.
async fn changed_since_shadow(store: &Arc<HandoffStore>, owned: Vec<Guarded>) -> (Vec<(Guarded, Looked)>, Vec<String>) {
    if owned.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let store = store.clone();
    let looked = off_thread(move || {
        let (mut changed, mut unreadable) = (Vec::new(), Vec::new());
        for conversation in owned {
            let key = (conversation.policy.as_str(), conversation.id.as_str());
            let shadow_dir = store.shadow_dir(key.0, key.1);
            let look = folder::files_if_any(&conversation.dir).and_then(|disk| {
                let fingerprint = folder::fingerprint_of(&disk);
                if store.is_quiet(key, conversation.epoch, fingerprint) {
                    return Ok(None);
                }
                let (shadow, taken) =
                    store.with_shadows(|| Shadow::at_epoch(&shadow_dir, &conversation.dir, conversation.epoch))?;
                Ok(Some((shadow.files, taken, disk, fingerprint)))
            });
            match look {
                Ok(Some((shadow, false, disk, _))) if !stale::changed(&disk, &shadow).is_empty() => {
                    changed.push((conversation, Looked { shadow, disk }));
                }
                // Taken now, from these very files, or equal to them.
                Ok(Some((_, _, _, fingerprint))) => store.set_quiet(key, conversation.epoch, fingerprint),
                Ok(None) => {}
                Err(error) => unreadable.push(format!("{}: {error}", conversation.id)),
            }
        }
        Ok((changed, unreadable))
    })
    .await;
    looked.unwrap_or_else(|error| (Vec::new(), vec![error]))
}

/// Keeps the stale writes to an owned conversation aside (`handoff::stale`)
/// once `looked` found files that differ from the shadow. A changed file is
/// looked at after a rescan of the conversation, so a change made here is
/// this device's in Syncthing's records; `synced` is this node's Syncthing,
/// its short device ID, the folder ID and the conversation's path in the
/// folder (None: a node without Syncthing, whose changes are all its own).
/// What was set aside and put back is rescanned at once, so the other node
/// sees it within a second, and told as `handoff.stale` events.
async fn guard(
    store: &Arc<HandoffStore>,
    conversation: &Guarded,
    looked: Looked,
    synced: Option<(&Client, &str, &str, String)>,
) -> Result<Vec<(bool, &'static str, String)>, String> {
    let (dir, epoch) = (conversation.dir.clone(), conversation.epoch);
    let shadow_dir = store.shadow_dir(&conversation.policy, &conversation.id);
    let Looked { shadow, disk } = looked;
    let (me, records, disk) = match &synced {
        None => (String::new(), BTreeMap::new(), disk),
        Some((client, me, folder_id, sub)) => {
            client.scan_sub(folder_id, sub).await.map_err(|error| format!("cannot rescan it: {error}"))?;
            let dir = dir.clone();
            let disk = off_thread(move || folder::files_if_any(&dir)).await?;
            let mut records = BTreeMap::new();
            for path in stale::changed(&disk, &shadow) {
                let record = client
                    .file_record(folder_id, &format!("{sub}/{path}"))
                    .await
                    .map_err(|error| format!("cannot ask Syncthing whose {path} is: {error}"))?;
                if let Some(record) = record {
                    records.insert(path, synced_of(&record));
                }
            }
            ((*me).to_owned(), records, disk)
        }
    };
    let plan = stale::plan(&disk, &shadow, &records, &me, epoch);
    if plan.actions.is_empty() {
        return Ok(Vec::new());
    }
    let actions = plan.actions.clone();
    {
        let (store, dir) = (store.clone(), dir.clone());
        off_thread(move || {
            store.with_shadows(|| {
                // Taken again at another epoch meanwhile: this plan is void.
                let Some(mut shadow) = Shadow::load(&shadow_dir).filter(|shadow| shadow.epoch == epoch) else {
                    return Ok(());
                };
                let done = shadow.apply_all(&dir, &actions);
                shadow.save()?;
                done
            })
        })
        .await?;
    }
    let id = &conversation.id;
    let mut events = Vec::new();
    for action in &plan.actions {
        match action {
            stale::Action::SetAside { path, to, by } => events.push((
                true,
                "handoff.stale",
                format!(
                    "conversation {id}: {path} was written by device {by}, which does not own it at epoch {epoch}; \
                     kept aside as {to}"
                ),
            )),
            stale::Action::Restore { path, .. } => events.push((
                true,
                "handoff.stale",
                format!("conversation {id}: {path} is back to this owner's version (epoch {epoch})"),
            )),
            stale::Action::Adopt(_) | stale::Action::Forget(_) => {}
        }
    }
    if let (false, Some((client, _, folder_id, sub))) = (events.is_empty(), &synced) {
        let _ = client.scan_sub(folder_id, sub).await;
    }
    Ok(events)
}

/// Runs blocking file work on tokio's blocking threads.
async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(|error| error.to_string()),
        Err(error) => Err(error.to_string()),
    }
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

pub fn home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default()
}

/// The other node of the policy's SyncFolder.
pub fn peer_of(set: &ManifestSet, policy: &str, me: &str) -> Option<String> {
    let spec = &set.handoff_policies.get(policy)?.spec;
    let folder = set.sync_folders.get(&spec.sync_folder.value)?;
    folder.spec.paths.keys().map(|node| node.value.clone()).find(|node| node != me)
}

/// A message from the peer: stepped, persisted, and the replies sent back.
pub fn receive(
    store: &HandoffStore,
    peers: &Peers,
    key: &Option<Arc<str>>,
    dir: Option<&Path>,
    message: HandoffMessage,
) -> Result<Vec<(bool, &'static str, String)>, std::io::Error> {
    let HandoffMessage { policy, conversation, envelope, hash, .. } = message;
    let step = store.step(&policy, &conversation, Input::Received(envelope))?;
    if let Some(hash) = hash {
        store.set_peer_hash(&policy, &conversation, hash);
    }
    let Some(step) = step else { return Ok(Vec::new()) };
    Ok(carry_out(store, peers, key, (&policy, &conversation), dir, step))
}

/// The file that marks a conversation frozen for a handoff: a write after
/// it is detectable (it is newer), and the agent can see it.
pub fn marker(dir: &Path) -> PathBuf {
    dir.join(format!("{}frozen", folder::MARKER_PREFIX))
}

/// Carries out a (persisted) step: sends its messages, writes or removes the
/// freeze marker in the conversation folder `dir`, follows the handoff's
/// progress, and returns its notices as events.
pub fn carry_out(
    store: &HandoffStore,
    peers: &Peers,
    key: &Option<Arc<str>>,
    (policy, id): (&str, &str),
    dir: Option<&Path>,
    step: Step,
) -> Vec<(bool, &'static str, String)> {
    for envelope in step.send {
        send(peers, key, HandoffMessage::new(policy, id, envelope, None));
    }
    let mut events = Vec::new();
    for notice in &step.notices {
        events.push(notice_event(id, notice));
        match notice {
            Notice::Frozen { handoff } => {
                let written = dir.map(|dir| std::fs::write(marker(dir), format!("{handoff}\n")));
                if let Some(Err(error)) = written {
                    events.push((true, "MarkerNotWritten", format!("conversation {id}: {error}")));
                }
                store.note(&handoff.0, "freeze: the conversation is frozen (marker written, agent told)".into());
            }
            Notice::Unfrozen { handoff, reason } => {
                if let Some(dir) = dir {
                    let _ = std::fs::remove_file(marker(dir));
                }
                let (step, why) = failed_step(reason);
                store.finish(
                    &handoff.0,
                    Some(step),
                    format!("handoff failed at the {step} step: {why}; still owned here"),
                );
            }
            Notice::Resume { epoch, .. } | Notice::TookOver { epoch } => {
                if let Some(dir) = dir {
                    let _ = std::fs::remove_file(marker(dir));
                    // At once, not at the next pass: a stale write that comes
                    // in from now on must find the accepted content to go back to.
                    let shadow_dir = store.shadow_dir(policy, id);
                    if let Err(error) = store.with_shadows(|| Shadow::at_epoch(&shadow_dir, dir, *epoch)) {
                        events.push((true, "ShadowNotTaken", format!("conversation {id}: {error}")));
                    }
                }
            }
            Notice::Released { handoff, owner, epoch } => {
                store.finish(&handoff.0, None, format!("release: {owner} owns the conversation at epoch {epoch}"));
            }
            Notice::Demoted { .. } | Notice::Rejected { .. } => {}
        }
    }
    events
}

/// The step a failed handoff stopped at, and why, for `meshctl handoff`.
pub fn failed_step(reason: &Reason) -> (&'static str, String) {
    match reason {
        Reason::BarrierFailed => ("barrier", "the target did not hold the same content in time".into()),
        Reason::TimedOut => ("accept", "the target did not answer in time".into()),
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

/// Sends one message to the node it is for, fire and forget.
fn send(peers: &Peers, key: &Option<Arc<str>>, message: HandoffMessage) {
    let Envelope { to, .. } = &message.envelope;
    let Some(peer) = peers.get(to) else { return };
    let client = crate::client::ApiClient::new(&peer.authority(), key.as_deref(), SEND_TIMEOUT);
    tokio::spawn(async move {
        if let Err(error) = client.handoff_message(&message).await {
            tracing::debug!(peer = message.envelope.to, %error, "a handoff message was not delivered");
        }
    });
}

/// How many records go in one message to the peer.
const RECORDS_PER_MESSAGE: usize = 500;

/// Sends the records of a policy's conversations to `peer`, fire and forget:
/// a few messages a pass, however many conversations there are.
fn send_records(peers: &Peers, key: &Option<Arc<str>>, peer: &str, records: Vec<HandoffMessage>) {
    let Some(state) = peers.get(peer).filter(|_| !records.is_empty()) else { return };
    let client = crate::client::ApiClient::new(&state.authority(), key.as_deref(), SEND_TIMEOUT);
    let peer = peer.to_owned();
    tokio::spawn(async move {
        for batch in records.chunks(RECORDS_PER_MESSAGE) {
            if let Err(error) = client.handoff_messages(batch).await {
                tracing::debug!(peer, %error, "the handoff records were not delivered");
                return;
            }
        }
    });
}

/// A notice as an event of the controller's log (and so of the event stream).
pub fn notice_event(id: &str, notice: &Notice) -> (bool, &'static str, String) {
    match notice {
        Notice::Frozen { handoff } => {
            (false, "handoff.freeze", format!("conversation {id}: frozen for handoff {handoff}"))
        }
        Notice::Unfrozen { handoff, reason } => (
            true,
            "handoff.unfreeze",
            format!("conversation {id}: handoff {handoff} failed ({reason:?}); still owned here"),
        ),
        Notice::Resume { handoff, epoch } => {
            (false, "handoff.resume", format!("conversation {id}: owned here at epoch {epoch} (handoff {handoff})"))
        }
        Notice::Released { handoff, owner, epoch } => (
            false,
            "handoff.released",
            format!("conversation {id}: {owner} owns it at epoch {epoch} (handoff {handoff})"),
        ),
        Notice::Demoted { owner, epoch } => (
            true,
            "handoff.demoted",
            format!("conversation {id}: {owner} owns it at epoch {epoch}; writes here are stale"),
        ),
        Notice::TookOver { epoch } => {
            (true, "handoff.tookOver", format!("conversation {id}: taken over at epoch {epoch}"))
        }
        Notice::Rejected { reason } => (true, "handoff.rejected", format!("conversation {id}: {reason:?}")),
    }
}

/// Every conversation of every HandoffPolicy on this node: the folders here
/// and the records this node keeps.
pub fn sessions(set: &ManifestSet, node: &str, store: &HandoffStore) -> Vec<Session> {
    let mut sessions = Vec::new();
    for policy in set.handoff_policies.keys() {
        let Some(root) = folder::sessions_root(set, policy, node, &home()) else { continue };
        let mut ids = folder::conversations(&root).unwrap_or_default().ids;
        ids.extend(store.records(policy).into_iter().map(|(id, _)| id));
        ids.sort();
        ids.dedup();
        for id in ids {
            let content = store.content(&root.join(&id)).ok();
            let (record, peer_hash) = (store.record(policy, &id), store.peer_hash(policy, &id));
            sessions.push(session(policy, &id, &root, content, record, peer_hash, store.can_write(policy, &id)));
        }
    }
    sessions
}

fn session(
    policy: &str,
    id: &str,
    root: &Path,
    content: Option<folder::Content>,
    record: Option<Record>,
    peer_hash: Option<String>,
    writable: bool,
) -> Session {
    let path = root.join(id);
    let hash = content.as_ref().map(|content| content.hash.clone());
    let phase = match record.as_ref().map(|record| &record.phase) {
        None => "unclaimed",
        Some(Phase::Owned) => "owned",
        Some(Phase::Frozen { .. }) => "frozen",
    };
    Session {
        id: id.into(),
        policy: policy.into(),
        owner: record.as_ref().map(|record| record.owner.clone()),
        epoch: record.as_ref().map(|record| record.epoch),
        phase: phase.into(),
        path: path.display().to_string(),
        in_sync: hash.is_some() && hash == peer_hash,
        files: content.as_ref().map_or(0, |content| content.files),
        stale: content.as_ref().map(|content| content.stale.clone()).unwrap_or_default(),
        conflicts: content.map(|content| content.conflicts).unwrap_or_default(),
        hash,
        peer_hash,
        writable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
