//! The SyncFolder reconciler: this node's Syncthing folders and the peer devices
//! they are shared with. `plan` is pure (declared + observed -> actions); this
//! module reads Syncthing into `Observed`, learns the peers' device IDs over the
//! mesh, carries the actions out and records what it created in the state dir.
//!
//! Passes are serialised: they share the record and Syncthing's config. A pass
//! for one SyncFolder acts on that folder, on the devices, and on managed
//! folders that no SyncFolder declares any more; another SyncFolder's drift is
//! left to that object's own reconcile, so each event names the right object.

pub(crate) mod plan;
pub(super) mod state;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use self::plan::{Action, DesiredFolder, FolderSettings, ObservedDevice, ObservedFolder, PeerDevice, PeerSync};
pub(crate) use self::state::SyncState;
use super::context::{Context, Outcome, ReconcileError};
use crate::config::resolve_secret;
use crate::controller::status::{ConditionType, Observed as Condition};
use crate::event::Event;
use crate::syncthing::{Client, Device, Folder, FolderDevice, SyncthingError, Versioning};

/// While a folder is not ready, look again this soon (events may also wake it).
const NOT_READY_REQUEUE: Duration = Duration::from_secs(2);
/// A peer's device ID is asked for again after this long.
const RELEARN_AFTER: Duration = Duration::from_secs(60);
/// How long the node with the greater device ID waits for the other to dial.
const DIAL_FIRST_WAIT: Duration = Duration::from_secs(10);
/// How long a peer gets to say its device ID.
const PEER_TIMEOUT: Duration = Duration::from_secs(3);

/// This node's Syncthing client, from its Node manifest and the key it points at.
pub(crate) fn this_node_client(
    ctx_set: &crate::manifest::ManifestSet,
    node: &str,
    env: &crate::identity::NodeEnv,
) -> Result<(Client, String), ReconcileError> {
    let settings = ctx_set.nodes.get(node).and_then(|n| n.spec.syncthing.as_ref()).ok_or_else(|| {
        ReconcileError::new(
            "SyncthingNotConfigured",
            format!("Node/{node} has no spec.syncthing (apiUrl, apiKey, deviceAddress)"),
        )
    })?;
    let key = resolve_secret(env, &settings.api_key).map_err(|error| {
        ReconcileError::new("SyncthingKeyUnreadable", format!("Node/{node} spec.syncthing.apiKey: {error}"))
    })?;
    Ok((Client::new(&settings.api_url.value, &key), settings.device_address.value.clone()))
}

/// Reconciles SyncFolder `name` on this node.
pub(crate) async fn reconcile(name: &str, ctx: &Context) -> Result<Outcome, ReconcileError> {
    let declared_here = ctx
        .set
        .sync_folders
        .get(name)
        .is_some_and(|folder| folder.spec.paths.keys().any(|node| node.value == ctx.handles.node));
    let has_syncthing = ctx.set.nodes.get(&ctx.handles.node).is_some_and(|node| node.spec.syncthing.is_some());
    if !declared_here && !has_syncthing {
        return Ok(Outcome { tracked: false, ..Outcome::default() });
    }
    let (client, _) = this_node_client(&ctx.set, &ctx.handles.node, &ctx.env)?;
    ctx.handles.syncthing.follow(&client);
    let mut record = ctx.handles.syncthing.lock().await;
    let own = client.system_status().await.map_err(unreachable)?.my_id;
    learn_peer_devices(ctx, &mut record).await;
    let wire_devices = client.devices().await.map_err(unreachable)?;
    let known: BTreeSet<&str> = wire_devices.iter().map(|device| device.device_id.as_str()).collect();
    let deferred = defer_dialling(ctx, &client, &own, &record.peer_devices, &known).await;
    let pairing: BTreeMap<String, PeerDevice> = record
        .peer_devices
        .iter()
        .filter(|(node, _)| !deferred.contains(*node))
        .map(|(n, d)| (n.clone(), d.clone()))
        .collect();
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let desired = plan::desired_folders(&ctx.set, &ctx.handles.node, &home, &pairing);
    let this_folder = desired.iter().find(|folder| folder.object == name).cloned();

    let wire_folders: BTreeMap<String, Folder> =
        client.folders().await.map_err(unreachable)?.into_iter().map(|f| (f.id.clone(), f)).collect();
    let mut observed = plan::Observed {
        own_device: own.clone(),
        folders: wire_folders.iter().map(|(id, folder)| (id.clone(), observe_folder(folder, &own))).collect(),
        devices: wire_devices
            .into_iter()
            .filter(|device| device.device_id != own)
            .map(|device| (device.device_id, ObservedDevice { name: device.name, addresses: device.addresses }))
            .collect(),
        managed: plan::Managed { folders: record.managed_folders.clone(), devices: record.managed_devices.clone() },
    };
    if let Some(folder) = &this_folder
        && let Some(seen) = observed.folders.get_mut(&folder.id)
    {
        seen.ignores = Some(client.ignores(&folder.id).await.map_err(unreachable)?);
        seen.error = folder_error(&client, &folder.id).await;
    }
    for id in record.managed_folders.iter().filter(|id| !desired.iter().any(|d| &d.id == *id)) {
        if let Some(seen) = observed.folders.get_mut(id) {
            seen.error = folder_error(&client, id).await;
        }
    }

    // What a folder is seen shared with, it was shared with: losing one later is drift.
    for folder in &desired {
        if let Some(seen) = observed.folders.get(&folder.id) {
            let kept = seen.settings.devices.intersection(&folder.settings.devices).cloned();
            ctx.handles.syncthing.shared(&folder.id, kept);
        }
    }
    let declared: BTreeSet<&str> = desired.iter().map(|folder| folder.id.as_str()).collect();
    let mine = this_folder.as_ref().map(|folder| folder.id.as_str());
    let planned = plan::plan(&desired, &pairing, &observed);
    let mut outcome = Outcome::default();
    let mut failure = None;
    for action in planned.actions.into_iter().filter(|action| concerns(action, mine, &declared)) {
        if let Err(error) =
            execute(&client, &action, &wire_folders, &mut record, &ctx.handles.syncthing, &mut outcome).await
        {
            failure = Some(error);
            break;
        }
    }
    if let Err(error) = ctx.handles.syncthing.save(&record) {
        outcome.event(Event::warning(
            "StateNotSaved",
            format!("cannot record the Syncthing folders and devices: {error}"),
        ));
    }
    drop(record);
    if let Some(error) = failure {
        return Err(error);
    }
    let Some(folder) = this_folder.filter(|_| declared_here) else {
        return Ok(Outcome { tracked: false, ..outcome });
    };
    observe_status(&client, &folder, &own, &ctx.handles.peers, &ctx.handles.syncthing, &mut outcome).await?;
    Ok(outcome)
}

/// Whether a pass for folder `mine` carries `action` out: its own folder's
/// actions, the devices, and the removal of folders nothing declares.
fn concerns(action: &Action, mine: Option<&str>, declared: &BTreeSet<&str>) -> bool {
    match action {
        Action::AddDevice { .. } | Action::PatchDevice { .. } | Action::RemoveDevice { .. } => true,
        Action::RemoveFolder { id } => !declared.contains(id.as_str()),
        Action::Adopt { id } | Action::PatchFolder { id, .. } | Action::SetIgnores { id, .. } => {
            Some(id.as_str()) == mine
        }
        Action::AddFolder { folder } => Some(folder.id.as_str()) == mine,
    }
}

async fn execute(
    client: &Client,
    action: &Action,
    wire_folders: &BTreeMap<String, Folder>,
    record: &mut state::Record,
    sync_state: &SyncState,
    outcome: &mut Outcome,
) -> Result<(), ReconcileError> {
    let failed =
        |what: String| move |error: SyncthingError| ReconcileError::new(reason_of(&error), format!("{what}: {error}"));
    match action {
        Action::AddDevice { device_id, name, addresses } => {
            let device = Device {
                device_id: device_id.clone(),
                name: name.clone(),
                addresses: addresses.clone(),
                ..Device::default()
            };
            client.add_device(&device).await.map_err(failed(format!("cannot add {name}'s device")))?;
            record.managed_devices.insert(device_id.clone());
            outcome
                .event(Event::normal("Paired", format!("paired with {name}'s Syncthing device {}", short(device_id))));
        }
        Action::PatchDevice { device_id, patch, changed } => {
            client
                .patch_device(device_id, patch)
                .await
                .map_err(failed(format!("cannot update device {}", short(device_id))))?;
            let changes: Vec<String> = changed.iter().map(ToString::to_string).collect();
            outcome
                .event(Event::normal("DeviceUpdated", format!("device {}: {}", short(device_id), changes.join(", "))));
        }
        Action::Adopt { id } => {
            record.managed_folders.insert(id.clone());
            outcome.event(Event::normal(
                "Adopted",
                format!("folder {id} was already in Syncthing at the declared path; managing it"),
            ));
        }
        Action::AddFolder { folder } => {
            client.add_folder(&new_folder(folder)).await.map_err(failed(format!("cannot add folder {}", folder.id)))?;
            record.managed_folders.insert(folder.id.clone());
            sync_state.shared(&folder.id, folder.settings.devices.iter().cloned());
            if !folder.ignores.is_empty() {
                client
                    .set_ignores(&folder.id, &folder.ignores)
                    .await
                    .map_err(failed(format!("cannot set the ignores of {}", folder.id)))?;
            }
            outcome.event(Event::normal(
                "Shared",
                format!("folder {} at {} shared with {}", folder.id, folder.settings.path, peers_text(folder)),
            ));
        }
        Action::PatchFolder { id, patch, changed } => {
            let patch = keep_device_fields(patch.clone(), wire_folders.get(id));
            match wire_folders.get(id).filter(|_| patch.get("versioning").is_some()) {
                // A PATCH merges maps: a versioning parameter the manifest
                // dropped would stay. The whole folder, as read, is written back.
                Some(current) => {
                    let folder =
                        overlay(current, &patch).map_err(|error| ReconcileError::new("SyncthingError", error))?;
                    client.add_folder(&folder).await.map_err(failed(format!("cannot update folder {id}")))?;
                }
                None => client.patch_folder(id, &patch).await.map_err(failed(format!("cannot update folder {id}")))?,
            }
            let changes: Vec<String> = changed.iter().map(ToString::to_string).collect();
            let never_shared = |added: &Vec<String>| !added.iter().any(|device| sync_state.was_shared(id, device));
            let sharing = only_adds_devices(changed).filter(never_shared);
            if let Some(devices) = patch.get("devices") {
                sync_state.shared(id, device_ids(devices));
            }
            if let Some(added) = sharing {
                let added: Vec<&str> = added.iter().map(|id| short(id)).collect();
                outcome
                    .event(Event::normal("Shared", format!("folder {id} now shared with device {}", added.join(", "))));
            } else {
                outcome.event(Event::warning(
                    "DriftCorrected",
                    format!("folder {id}: changed back {}", changes.join(", ")),
                ));
            }
        }
        Action::SetIgnores { id, lines } => {
            client.set_ignores(id, lines).await.map_err(failed(format!("cannot set the ignores of {id}")))?;
            outcome.event(Event::normal(
                "IgnoresSet",
                format!("folder {id}: ignore patterns set ({} lines)", lines.len()),
            ));
        }
        Action::RemoveFolder { id } => {
            client.delete_folder(id).await.map_err(failed(format!("cannot remove folder {id}")))?;
            record.managed_folders.remove(id);
            outcome.event(Event::normal(
                "Unshared",
                format!("folder {id} removed from Syncthing; its files stay on disk"),
            ));
        }
        Action::RemoveDevice { device_id } => {
            client
                .delete_device(device_id)
                .await
                .map_err(failed(format!("cannot remove device {}", short(device_id))))?;
            record.managed_devices.remove(device_id);
            outcome.event(Event::normal(
                "Unpaired",
                format!("device {} removed: no folder is shared with it", short(device_id)),
            ));
        }
    }
    Ok(())
}

/// The peers this node waits for before adding their device. When both nodes
/// add each other at once, both dial at once and Syncthing's handshake stalls
/// for 20 s; so the node with the greater device ID lets the other dial first
/// and adds it once it shows as pending here (it dialled), or after a while.
async fn defer_dialling(
    ctx: &Context,
    client: &Client,
    own: &str,
    peers: &BTreeMap<String, PeerDevice>,
    known: &BTreeSet<&str>,
) -> BTreeSet<String> {
    let waiting: Vec<(&String, &PeerDevice)> = peers
        .iter()
        .filter(|(_, peer)| !known.contains(peer.device_id.as_str()) && peer.device_id.as_str() < own)
        .collect();
    if waiting.is_empty() {
        return BTreeSet::new();
    }
    let pending = client.pending_devices().await.unwrap_or_default();
    waiting
        .into_iter()
        .filter(|(_, peer)| {
            !pending.contains(&peer.device_id)
                && ctx.handles.syncthing.still_deferring(&peer.device_id, DIAL_FIRST_WAIT)
        })
        .map(|(node, _)| node.clone())
        .collect()
}

/// Asks each peer this node shares a folder with for its Syncthing device,
/// when it is online and was not asked lately. What it says is recorded, so a
/// peer that is offline later is still paired.
async fn learn_peer_devices(ctx: &Context, record: &mut state::Record) {
    let mut sharing: BTreeSet<&str> = BTreeSet::new();
    for folder in ctx.set.sync_folders.values() {
        let nodes: Vec<&str> = folder.spec.paths.keys().map(|n| n.value.as_str()).collect();
        if nodes.contains(&ctx.handles.node.as_str()) {
            sharing.extend(nodes.into_iter().filter(|n| *n != ctx.handles.node));
        }
    }
    for node in sharing {
        let Some(peer) = ctx.handles.peers.get(node).filter(|peer| peer.online) else { continue };
        if record.peer_devices.contains_key(node) && !ctx.handles.syncthing.due_to_ask(node, RELEARN_AFTER) {
            continue;
        }
        let key = ctx.handles.api_key.get();
        let client = crate::client::ApiClient::new(&peer.authority(), key.as_deref(), PEER_TIMEOUT);
        match client.syncthing_device().await {
            Ok(device) => {
                ctx.handles.syncthing.asked(node);
                let learned = PeerDevice { device_id: device.device_id, address: device.device_address };
                if record.peer_devices.get(node) != Some(&learned) {
                    tracing::info!(
                        peer = node,
                        device = short(&learned.device_id),
                        "learned the peer's Syncthing device"
                    );
                    record.peer_devices.insert(node.to_owned(), learned);
                }
            }
            Err(error) => tracing::debug!(peer = node, %error, "cannot learn the peer's Syncthing device yet"),
        }
    }
}

/// The folder's state and completion with each peer, as conditions and details.
async fn observe_status(
    client: &Client,
    folder: &DesiredFolder,
    own: &str,
    peers: &crate::mesh::peers::Peers,
    sync_state: &SyncState,
    outcome: &mut Outcome,
) -> Result<(), ReconcileError> {
    let observed = client.folder(&folder.id).await.map_err(unreachable)?.map(|f| observe_folder(&f, own));
    let mut observed = observed;
    let db = client.db_status(&folder.id).await.ok();
    if let Some(seen) = observed.as_mut() {
        seen.error = db.as_ref().and_then(|db| db.error.clone()).filter(|e| !e.is_empty());
    }
    let connections = client.connections().await.map(|c| c.connections).unwrap_or_default();
    let mut completion = BTreeMap::new();
    let now = SystemTime::now();
    for (node, device) in &folder.peers {
        let connected = connections.get(device).is_some_and(|c| c.connected);
        // A peer the mesh sees that Syncthing has not reached yet is not
        // offline: the folder is not in sync with it yet.
        let online = plan::peer_online(connected, peers.get(node).map(|peer| peer.online));
        let done = if connected && online { client.completion(&folder.id, device).await.ok() } else { None };
        if let Some(done) = &done {
            outcome.details.insert(format!("completion/{node}"), format!("{:.0}%", done.completion));
        }
        let mut peer = PeerSync {
            online,
            completion: done.as_ref().map(|d| d.completion),
            need_items: done.as_ref().map(|d| d.need_items),
            last_in_sync: None,
        };
        if peer.in_sync() {
            sync_state.saw_in_sync(&folder.id, node, now);
        }
        peer.last_in_sync = sync_state.last_in_sync(&folder.id, node);
        completion.insert(node.clone(), peer);
    }
    let state = db.as_ref().and_then(|db| db.state.clone());
    outcome.conditions = plan::folder_status(folder, observed.as_ref(), state.as_deref(), &completion, now);
    outcome.details.insert("folderId".into(), folder.id.clone());
    outcome.details.insert("path".into(), folder.settings.path.clone());
    if let Some(state) = state {
        outcome.details.insert("state".into(), state);
    }
    let ready = outcome.conditions.iter().any(|c: &Condition| c.holds(ConditionType::Ready));
    if !ready {
        outcome.requeue_after = Some(NOT_READY_REQUEUE);
    }
    Ok(())
}

/// The folder's error while it is in state `error` (a missing path among them),
/// if its state can be read at all.
async fn folder_error(client: &Client, id: &str) -> Option<String> {
    let db = client.db_status(id).await.ok()?;
    db.error.filter(|error| !error.is_empty())
}

fn observe_folder(folder: &Folder, own: &str) -> ObservedFolder {
    ObservedFolder {
        settings: FolderSettings {
            label: folder.label.clone(),
            path: folder.path.clone(),
            folder_type: folder.folder_type.clone(),
            devices: folder.devices.iter().map(|d| d.device_id.clone()).filter(|id| id != own).collect(),
            versioning: plan::VersioningSettings {
                versioning_type: folder.versioning.versioning_type.clone(),
                params: folder.versioning.params.clone(),
                cleanup_interval_s: u64::from(folder.versioning.cleanup_interval_s),
            },
            rescan_interval_s: u64::from(folder.rescan_interval_s),
            fs_watcher_enabled: folder.fs_watcher_enabled,
            fs_watcher_delay_s: folder.fs_watcher_delay_s.round() as u64,
        },
        paused: folder.paused,
        ignores: None,
        error: None,
    }
}

fn new_folder(folder: &DesiredFolder) -> Folder {
    let settings = &folder.settings;
    Folder {
        id: folder.id.clone(),
        label: settings.label.clone(),
        path: settings.path.clone(),
        folder_type: settings.folder_type.clone(),
        devices: settings.devices.iter().map(|id| FolderDevice::new(id)).collect(),
        fs_watcher_enabled: settings.fs_watcher_enabled,
        fs_watcher_delay_s: settings.fs_watcher_delay_s as f64,
        rescan_interval_s: u32::try_from(settings.rescan_interval_s).unwrap_or(u32::MAX),
        versioning: Versioning {
            versioning_type: settings.versioning.versioning_type.clone(),
            params: settings.versioning.params.clone(),
            cleanup_interval_s: u32::try_from(settings.versioning.cleanup_interval_s).unwrap_or(u32::MAX),
            ..Versioning::default()
        },
        ..Folder::default()
    }
}

/// `current` with the fields of `patch` put in whole, as one object to write.
fn overlay(current: &Folder, patch: &Value) -> Result<Folder, String> {
    let mut whole = serde_json::to_value(current).map_err(|error| error.to_string())?;
    if let (Some(whole), Some(patch)) = (whole.as_object_mut(), patch.as_object()) {
        for (field, value) in patch {
            whole.insert(field.clone(), value.clone());
        }
    }
    serde_json::from_value(whole).map_err(|error| format!("the folder to write back does not read: {error}"))
}

/// A PATCH replaces the devices list whole: the entries that stay keep what
/// Syncthing holds for them (an encryption password, who introduced them).
fn keep_device_fields(mut patch: Value, current: Option<&Folder>) -> Value {
    let (Some(current), Some(devices)) = (current, patch.get_mut("devices").and_then(Value::as_array_mut)) else {
        return patch;
    };
    for entry in devices.iter_mut() {
        let id = entry.get("deviceID").and_then(Value::as_str).unwrap_or_default();
        if let Some(existing) = current.devices.iter().find(|d| d.device_id == id) {
            *entry = serde_json::to_value(existing).unwrap_or_else(|_| entry.clone());
        }
    }
    patch
}

/// The devices added, when a change only shares the folder with more of them:
/// with a peer paired since the folder was added, it is no setting someone changed.
fn only_adds_devices(changed: &[plan::Change]) -> Option<Vec<String>> {
    let [change] = changed else { return None };
    let (from, to) = (device_ids(&change.from), device_ids(&change.to));
    (change.field == "devices" && from.is_subset(&to)).then(|| to.difference(&from).cloned().collect())
}

/// The IDs in a folder's `devices` JSON.
fn device_ids(devices: &Value) -> BTreeSet<String> {
    devices.as_array().into_iter().flatten().filter_map(|d| d["deviceID"].as_str().map(str::to_owned)).collect()
}

fn peers_text(folder: &DesiredFolder) -> String {
    let mut names: Vec<&str> = folder.peers.keys().map(String::as_str).collect();
    names.extend(folder.pending.iter().map(|n| n.as_str()));
    if names.is_empty() { "no other node".into() } else { names.join(", ") }
}

/// The first block of a device ID, as Syncthing's GUI shows it.
fn short(device_id: &str) -> &str {
    device_id.split('-').next().unwrap_or(device_id)
}

fn reason_of(error: &SyncthingError) -> &'static str {
    match error {
        SyncthingError::Unreachable { .. } => "SyncthingUnreachable",
        SyncthingError::WrongKey { .. } => "SyncthingKeyRejected",
        _ => "SyncthingError",
    }
}

fn unreachable(error: SyncthingError) -> ReconcileError {
    ReconcileError::new(reason_of(&error), error.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_folder_written_back_whole_takes_the_patch_and_keeps_the_rest() {
        let mut current: Folder = serde_json::from_value(json!({
            "id": "docs", "label": "Docs", "path": "/d", "type": "sendreceive",
            "devices": [{"deviceID": "AAA", "encryptionPassword": "s3cret"}],
            "versioning": {"type": "simple", "params": {"keep": "5", "extra": "1"}, "cleanupIntervalS": 3600},
            "maxConflicts": 7
        }))
        .unwrap();
        current.fs_watcher_delay_s = 1.0;
        let patch = json!({"versioning": {"type": "simple", "params": {"keep": "5"}, "cleanupIntervalS": 3600}});
        let written = overlay(&current, &patch).unwrap();
        assert_eq!(written.versioning.params, [("keep".to_owned(), "5".to_owned())].into(), "the dropped param goes");
        assert_eq!(written.other["maxConflicts"], 7, "a field we do not own stays");
        assert_eq!(written.devices[0].other["encryptionPassword"], "s3cret");
        assert_eq!(written.label, "Docs");
    }

    #[test]
    fn devices_kept_in_a_patch_keep_what_syncthing_holds_for_them() {
        let current: Folder = serde_json::from_value(json!({
            "id": "docs", "devices": [{"deviceID": "AAA", "introducedBy": "BBB"}, {"deviceID": "OLD"}]
        }))
        .unwrap();
        let patch = json!({"devices": [{"deviceID": "AAA"}, {"deviceID": "NEW"}], "label": "x"});
        let kept = keep_device_fields(patch, Some(&current));
        assert_eq!(kept["devices"], json!([{"deviceID": "AAA", "introducedBy": "BBB"}, {"deviceID": "NEW"}]));
        assert_eq!(kept["label"], "x");
    }

    #[test]
    fn a_change_that_only_adds_devices_is_sharing_not_drift() {
        let change = |from: Value, to: Value| plan::Change { field: "devices", from, to };
        let added = only_adds_devices(&[change(json!([]), json!([{"deviceID": "AAA"}]))]);
        assert_eq!(added, Some(vec!["AAA".to_owned()]));
        assert_eq!(only_adds_devices(&[change(json!([{"deviceID": "AAA"}]), json!([]))]), None, "a removal is drift");
        let label = plan::Change { field: "label", from: json!("a"), to: json!("b") };
        assert_eq!(only_adds_devices(&[label]), None);
    }
}
