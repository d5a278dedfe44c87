//! The pure planning step of the SyncFolder reconciler: the folders this node's
//! Syncthing should have (`desired_folders`), compared with what it has
//! (`Observed`), gives the actions that make them agree (`plan`). No I/O: the
//! executor reads Syncthing into `Observed`, runs the actions in order and records
//! what it created in `Managed`.
//!
//! Only the fields agentmesh owns are compared and patched (see `FolderSettings`);
//! whatever the user changed elsewhere in the GUI stays. Only folders and devices
//! the controller created (or adopted) are ever removed, and a folder whose
//! directory is missing is never touched, so Syncthing's own guard against data
//! loss keeps working.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::config::expand_home_in;
use crate::controller::status;
use crate::manifest::ManifestSet;
use crate::manifest::kinds::{FolderType, Versioning, VersioningType};

/// The file watcher's delay. Syncthing's default of 10 s makes a small change take
/// about 9 s to reach the peer; with 1 s it took about 1.1 s.
pub(crate) const FS_WATCHER_DELAY_S: u64 = 1;

/// Syncthing's default versioning cleanup interval, used when the manifest sets none.
pub(crate) const DEFAULT_CLEANUP_INTERVAL_S: u64 = 3600;

/// How a peer's Syncthing is known: its device ID and the address to dial.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PeerDevice {
    pub device_id: String,
    /// `tcp://host:port`, or `dynamic`.
    pub address: String,
}

/// The folder fields agentmesh owns, in the shape Syncthing has them. Both sides of
/// the comparison use it, so one `diff` covers every owned field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FolderSettings {
    pub label: String,
    pub path: String,
    /// `sendreceive`, `sendonly` or `receiveonly`.
    pub folder_type: String,
    /// The peers' device IDs, never this node's own (Syncthing adds that itself).
    pub devices: BTreeSet<String>,
    pub versioning: VersioningSettings,
    pub rescan_interval_s: u64,
    pub fs_watcher_enabled: bool,
    pub fs_watcher_delay_s: u64,
}

/// Syncthing's `versioning` object; an empty type means no versioning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct VersioningSettings {
    pub versioning_type: String,
    pub params: BTreeMap<String, String>,
    pub cleanup_interval_s: u64,
}

/// One folder this node's Syncthing should have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DesiredFolder {
    /// The SyncFolder object that declares it, for messages.
    pub object: String,
    pub id: String,
    pub settings: FolderSettings,
    /// The `.stignore` lines.
    pub ignores: Vec<String>,
    /// The other nodes that share it and whose device ID is known: node to device ID.
    pub peers: BTreeMap<String, String>,
    /// The other nodes that share it whose device ID was not learned yet.
    pub pending: Vec<String>,
}

/// One folder as this node's Syncthing has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ObservedFolder {
    pub settings: FolderSettings,
    /// The user's to decide: never patched, shown in status.
    pub paused: bool,
    /// The `.stignore` lines, or `None` when they were not read.
    pub ignores: Option<Vec<String>>,
    /// The folder's error as Syncthing reports it, e.g. "folder path missing".
    pub error: Option<String>,
}

/// A device in Syncthing's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ObservedDevice {
    pub name: String,
    pub addresses: Vec<String>,
}

/// What the controller created in Syncthing (or adopted), kept in its state dir.
/// Only these are patched as devices or removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Managed {
    pub folders: BTreeSet<String>,
    pub devices: BTreeSet<String>,
}

/// This node's Syncthing as the executor read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Observed {
    pub own_device: String,
    /// By folder ID.
    pub folders: BTreeMap<String, ObservedFolder>,
    /// By device ID; this node's own may be among them and is never added or removed.
    pub devices: BTreeMap<String, ObservedDevice>,
    pub managed: Managed,
}

/// What to do, in the order the executor must do it: devices are added before the
/// folders that list them (Syncthing silently drops an unknown device from a
/// folder), and removed after the folders that used them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SyncPlan {
    pub actions: Vec<Action>,
    pub problems: Vec<Problem>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// POST the device; the executor records it as managed.
    AddDevice { device_id: String, name: String, addresses: Vec<String> },
    /// PATCH a managed device's fields that differ.
    PatchDevice { device_id: String, patch: Value, changed: Vec<Change> },
    /// Record an existing folder at the declared path as managed; its owned fields
    /// are then corrected like any other.
    Adopt { id: String },
    /// POST the folder, then its ignores; the executor records it as managed.
    AddFolder { folder: Box<DesiredFolder> },
    /// PATCH only the owned fields that differ; arrays are sent whole.
    PatchFolder { id: String, patch: Value, changed: Vec<Change> },
    /// POST the `.stignore` lines.
    SetIgnores { id: String, lines: Vec<String> },
    /// DELETE a managed folder (Syncthing keeps the files on disk); the executor
    /// then forgets it.
    RemoveFolder { id: String },
    /// DELETE a managed device no folder needs any more; the executor then forgets it.
    RemoveDevice { device_id: String },
}

/// One field set back to the declared value, for the event that says so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Change {
    /// Syncthing's JSON name of the field.
    pub field: &'static str,
    pub from: Value,
    pub to: Value,
}

impl fmt::Display for Change {
    /// `label from "x" to "y"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} from {} to {}", self.field, self.from, self.to)
    }
}

/// Something the controller will not fix by itself; it becomes a Degraded
/// condition and a warning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    pub folder_id: String,
    pub reason: ProblemReason,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProblemReason {
    /// Syncthing has a folder with the declared ID at another path, not made by us.
    Conflict,
    /// The folder's directory or its `.stfolder` marker is gone.
    PathMissing,
}

impl ProblemReason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ProblemReason::Conflict => "Conflict",
            ProblemReason::PathMissing => "PathMissing",
        }
    }
}

/// How one peer node stands with a folder, as the executor read it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PeerSync {
    pub online: bool,
    /// Syncthing's completion for that peer's device, 0 to 100.
    pub completion: Option<f64>,
    pub need_items: Option<u64>,
    /// When this daemon last saw the folder in sync with that peer.
    pub last_in_sync: Option<SystemTime>,
}

impl PeerSync {
    /// Online, everything sent and nothing needed.
    pub(crate) fn in_sync(&self) -> bool {
        self.online && self.completion.is_some_and(|done| done >= 100.0) && self.need_items == Some(0)
    }
}

/// Whether a peer counts as online for a folder: the mesh's word when it has
/// one (it notices a sleeping machine within seconds, while Syncthing trusts a
/// dead connection for minutes), else whether Syncthing is connected to it.
pub(crate) fn peer_online(syncthing_connected: bool, mesh_online: Option<bool>) -> bool {
    mesh_online.unwrap_or(syncthing_connected)
}

/// "agent-home-mini offline; last in sync 09:12:03 UTC": the time of day when
/// that was within a day of `now`, else the date and time.
fn offline_message(node: &str, last_in_sync: Option<SystemTime>, now: SystemTime) -> String {
    let Some(at) = last_in_sync else {
        return format!("{node} offline; not seen in sync since this daemon started");
    };
    let stamp = humantime::format_rfc3339_seconds(at).to_string();
    let recent = now.duration_since(at).is_ok_and(|ago| ago < Duration::from_secs(24 * 3600));
    match stamp.split_once('T') {
        Some((_, time)) if recent => format!("{node} offline; last in sync {} UTC", time.trim_end_matches('Z')),
        _ => format!("{node} offline; last in sync {stamp}"),
    }
}

/// The folders of `set` that `node` takes part in, with `~` expanded against
/// `home` and the other nodes' devices taken from `peer_devices` (by node name).
pub(crate) fn desired_folders(
    set: &ManifestSet,
    node: &str,
    home: &Path,
    peer_devices: &BTreeMap<String, PeerDevice>,
) -> Vec<DesiredFolder> {
    set.sync_folders
        .values()
        .filter_map(|object| {
            let spec = &object.spec;
            let path = spec.paths.iter().find(|(name, _)| name.value == node).map(|(_, path)| &path.value)?;
            let mut peers = BTreeMap::new();
            let mut pending = Vec::new();
            for peer in spec.paths.keys().map(|name| &name.value).filter(|name| *name != node) {
                match peer_devices.get(peer) {
                    Some(device) => {
                        peers.insert(peer.clone(), device.device_id.clone());
                    }
                    None => pending.push(peer.clone()),
                }
            }
            let settings = FolderSettings {
                label: spec.label.clone().unwrap_or_else(|| object.name().to_owned()),
                path: syncthing_path(path, home),
                folder_type: folder_type_name(spec.folder_type).to_owned(),
                devices: peers.values().cloned().collect(),
                versioning: versioning_settings(spec.versioning.as_ref()),
                rescan_interval_s: whole_seconds(spec.rescan_interval.duration),
                fs_watcher_enabled: true,
                fs_watcher_delay_s: FS_WATCHER_DELAY_S,
            };
            Some(DesiredFolder {
                object: object.name().to_owned(),
                id: spec.folder_id_or(object.name()).to_owned(),
                settings,
                ignores: spec.ignore.clone(),
                peers,
                pending,
            })
        })
        .collect()
}

/// The actions that bring `observed` to `desired`, and what stands in the way.
/// `peers` are the known peer devices by node name, as given to `desired_folders`.
pub(crate) fn plan(desired: &[DesiredFolder], peers: &BTreeMap<String, PeerDevice>, observed: &Observed) -> SyncPlan {
    let mut actions = Vec::new();
    let mut problems = Vec::new();

    let needed_devices: BTreeSet<&str> =
        desired.iter().flat_map(|folder| folder.settings.devices.iter().map(String::as_str)).collect();
    for (node, peer) in peers.iter().filter(|(_, peer)| needed_devices.contains(peer.device_id.as_str())) {
        let addresses = vec![peer.address.clone()];
        match observed.devices.get(&peer.device_id) {
            None => {
                actions.push(Action::AddDevice { device_id: peer.device_id.clone(), name: node.clone(), addresses });
            }
            Some(device) if observed.managed.devices.contains(&peer.device_id) && device.addresses != addresses => {
                let change = Change { field: "addresses", from: json!(device.addresses), to: json!(addresses) };
                actions.push(Action::PatchDevice {
                    device_id: peer.device_id.clone(),
                    patch: json!({ "addresses": addresses }),
                    changed: vec![change],
                });
            }
            Some(_) => {}
        }
    }

    for folder in desired {
        let Some(current) = observed.folders.get(&folder.id) else {
            actions.push(Action::AddFolder { folder: Box::new(folder.clone()) });
            continue;
        };
        let managed = observed.managed.folders.contains(&folder.id);
        if !managed && !same_path(&current.settings.path, &folder.settings.path) {
            problems.push(Problem {
                folder_id: folder.id.clone(),
                reason: ProblemReason::Conflict,
                message: format!(
                    "Syncthing already has a folder \"{}\" at {} that agentmesh did not create; \
                     remove it or change folderId",
                    folder.id, current.settings.path
                ),
            });
            continue;
        }
        // Missing at the declared path: never touched. Missing at a path the
        // GUI set: the declared one is put back, like any other drift.
        if same_path(&current.settings.path, &folder.settings.path)
            && let Some(problem) = path_missing(&folder.id, current)
        {
            problems.push(problem);
            continue;
        }
        if !managed {
            actions.push(Action::Adopt { id: folder.id.clone() });
        }
        let changed = diff(&current.settings, &folder.settings);
        if !changed.is_empty() {
            let patch = changed.iter().map(|change| (change.field.to_owned(), change.to.clone())).collect();
            actions.push(Action::PatchFolder { id: folder.id.clone(), patch: Value::Object(patch), changed });
        }
        if current.ignores.as_ref().is_some_and(|lines| *lines != folder.ignores) {
            actions.push(Action::SetIgnores { id: folder.id.clone(), lines: folder.ignores.clone() });
        }
    }

    let desired_ids: BTreeSet<&str> = desired.iter().map(|folder| folder.id.as_str()).collect();
    for id in observed.managed.folders.iter().filter(|id| !desired_ids.contains(id.as_str())) {
        match observed.folders.get(id).and_then(|current| path_missing(id, current)) {
            Some(problem) => problems.push(problem),
            None => actions.push(Action::RemoveFolder { id: id.clone() }),
        }
    }

    // Deleting a device takes it out of every folder, so a device stays while a
    // folder the plan must not touch (the user's, or one whose path is missing) lists it.
    let used_by_untouchable_folders: BTreeSet<&str> = observed
        .folders
        .iter()
        .filter(|(id, folder)| !observed.managed.folders.contains(*id) || path_missing(id, folder).is_some())
        .flat_map(|(_, folder)| folder.settings.devices.iter().map(String::as_str))
        .collect();
    for device_id in observed.managed.devices.iter() {
        if !needed_devices.contains(device_id.as_str()) && !used_by_untouchable_folders.contains(device_id.as_str()) {
            actions.push(Action::RemoveDevice { device_id: device_id.clone() });
        }
    }

    SyncPlan { actions, problems }
}

/// `Ready`, `Progressing` and `Degraded` for one desired folder, from Syncthing's
/// view after the plan ran: `db_state` is the folder's state (`idle`, `syncing`…)
/// when it could be read, `completion` is by peer node (a peer without an entry
/// counts as offline). A path that still differs from the declared one is a
/// conflict, since the plan corrects the path of every folder it manages.
pub(crate) fn folder_status(
    desired: &DesiredFolder,
    observed: Option<&ObservedFolder>,
    db_state: Option<&str>,
    completion: &BTreeMap<String, PeerSync>,
    now: SystemTime,
) -> Vec<status::Observed> {
    verdict(desired, observed, db_state, completion, now).conditions()
}

/// The one state a folder is in, most serious first.
enum Verdict {
    Degraded(&'static str, String),
    /// Stopped by the user: not ready, but nothing to fix and nothing under way.
    Paused,
    Progressing(&'static str, String),
    Ready(String),
}

impl Verdict {
    fn conditions(self) -> Vec<status::Observed> {
        use status::Observed;
        match self {
            Verdict::Degraded(reason, message) => {
                vec![
                    Observed::not_ready(reason, message.clone()),
                    Observed::stable(),
                    Observed::degraded(reason, message),
                ]
            }
            Verdict::Paused => vec![
                Observed::not_ready("Paused", "paused in Syncthing; agentmesh leaves that to you"),
                Observed::stable(),
                Observed::as_expected(),
            ],
            Verdict::Progressing(reason, message) => vec![
                Observed::not_ready(reason, message.clone()),
                Observed::progressing(reason, message),
                Observed::as_expected(),
            ],
            Verdict::Ready(message) => {
                vec![Observed::ready("InSync", message), Observed::stable(), Observed::as_expected()]
            }
        }
    }
}

fn verdict(
    desired: &DesiredFolder,
    observed: Option<&ObservedFolder>,
    db_state: Option<&str>,
    completion: &BTreeMap<String, PeerSync>,
    now: SystemTime,
) -> Verdict {
    let Some(current) = observed else {
        return Verdict::Progressing("Creating", format!("adding folder \"{}\" to Syncthing", desired.id));
    };
    if let Some(problem) = path_missing(&desired.id, current) {
        return Verdict::Degraded(problem.reason.as_str(), problem.message);
    }
    if !same_path(&current.settings.path, &desired.settings.path) {
        return Verdict::Degraded(
            ProblemReason::Conflict.as_str(),
            format!(
                "Syncthing has folder \"{}\" at {}, not at {}",
                desired.id, current.settings.path, desired.settings.path
            ),
        );
    }
    let state_error = (db_state == Some("error")).then_some("the folder is in state error");
    if let Some(error) = current.error.as_deref().or(state_error) {
        return Verdict::Degraded("FolderError", format!("Syncthing reports: {error}"));
    }
    if current.paused {
        return Verdict::Paused;
    }

    let mut waiting = Vec::new();
    let mut offline = Vec::new();
    let mut in_sync = Vec::new();
    for (node, device_id) in &desired.peers {
        match completion.get(node).filter(|peer| peer.online) {
            None => offline.push(offline_message(node, completion.get(node).and_then(|peer| peer.last_in_sync), now)),
            Some(_) if !current.settings.devices.contains(device_id) => {
                waiting.push(format!("not shared with {node} yet"));
            }
            Some(peer) if peer.in_sync() => in_sync.push(node.as_str()),
            Some(PeerSync { completion: done, need_items: need, .. }) => waiting.push(format!(
                "{node} at {}% ({} items to go)",
                done.map_or("?".into(), |done| format!("{done:.0}")),
                need.map_or("?".into(), |need| need.to_string())
            )),
        }
    }
    // Offline peers never block Ready, but every message names them.
    let with_offline = |mut parts: Vec<String>| {
        parts.extend(offline.iter().cloned());
        parts.join("; ")
    };
    if !desired.pending.is_empty() {
        let names = desired.pending.iter().map(|node| format!("waiting to learn {node}'s device ID")).collect();
        return Verdict::Progressing("WaitingForDeviceId", with_offline(names));
    }
    match db_state {
        None => Verdict::Progressing(
            "StateUnknown",
            with_offline(vec!["Syncthing did not report the folder's state".into()]),
        ),
        Some(state) if state.starts_with("scan") => {
            Verdict::Progressing("Scanning", with_offline(vec![format!("Syncthing is {state}")]))
        }
        Some("idle") if waiting.is_empty() => {
            let synced = if in_sync.is_empty() { vec![] } else { vec![format!("in sync with {}", in_sync.join(", "))] };
            let message = with_offline(synced);
            Verdict::Ready(if message.is_empty() { "not shared with another node".into() } else { message })
        }
        Some("idle") => Verdict::Progressing("Syncing", with_offline(waiting)),
        Some(state) => {
            Verdict::Progressing("Syncing", with_offline([vec![format!("Syncthing is {state}")], waiting].concat()))
        }
    }
}

/// The owned fields that differ, with the declared value as `to`.
fn diff(observed: &FolderSettings, desired: &FolderSettings) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut compare = |field: &'static str, same: bool, from: Value, to: Value| {
        if !same {
            changes.push(Change { field, from, to });
        }
    };
    compare("label", observed.label == desired.label, json!(observed.label), json!(desired.label));
    compare("path", same_path(&observed.path, &desired.path), json!(observed.path), json!(desired.path));
    compare(
        "type",
        observed.folder_type == desired.folder_type,
        json!(observed.folder_type),
        json!(desired.folder_type),
    );
    compare(
        "devices",
        observed.devices == desired.devices,
        devices_json(&observed.devices),
        devices_json(&desired.devices),
    );
    compare(
        "versioning",
        same_versioning(&observed.versioning, &desired.versioning),
        versioning_json(&observed.versioning),
        versioning_json(&desired.versioning),
    );
    compare(
        "rescanIntervalS",
        observed.rescan_interval_s == desired.rescan_interval_s,
        json!(observed.rescan_interval_s),
        json!(desired.rescan_interval_s),
    );
    compare(
        "fsWatcherEnabled",
        observed.fs_watcher_enabled == desired.fs_watcher_enabled,
        json!(observed.fs_watcher_enabled),
        json!(desired.fs_watcher_enabled),
    );
    compare(
        "fsWatcherDelayS",
        observed.fs_watcher_delay_s == desired.fs_watcher_delay_s,
        json!(observed.fs_watcher_delay_s),
        json!(desired.fs_watcher_delay_s),
    );
    changes
}

/// The Problem for a folder whose directory or marker is gone, if it is. The
/// controller must not recreate either: an empty directory would look to Syncthing
/// like every file was deleted, and the peer would delete them too.
fn path_missing(id: &str, folder: &ObservedFolder) -> Option<Problem> {
    let error = folder.error.as_deref()?;
    if !(error.contains("folder path missing") || error.contains("folder marker missing")) {
        return None;
    }
    Some(Problem {
        folder_id: id.to_owned(),
        reason: ProblemReason::PathMissing,
        message: format!(
            "folder \"{id}\": {} is missing on this node ({error}); agentmesh will not recreate it: \
             restore the directory (mount the disk) and Syncthing resumes",
            folder.settings.path
        ),
    })
}

/// Paths as Syncthing compares them in practice: a trailing `/` is no difference.
fn same_path(a: &str, b: &str) -> bool {
    let trim = |path: &str| if path.len() > 1 { path.trim_end_matches('/').to_owned() } else { path.to_owned() };
    trim(a) == trim(b)
}

/// With versioning off, Syncthing keeps whatever params were left: they mean nothing.
fn same_versioning(a: &VersioningSettings, b: &VersioningSettings) -> bool {
    (a.versioning_type.is_empty() && b.versioning_type.is_empty()) || a == b
}

fn devices_json(devices: &BTreeSet<String>) -> Value {
    Value::Array(devices.iter().map(|id| json!({ "deviceID": id })).collect())
}

fn versioning_json(versioning: &VersioningSettings) -> Value {
    json!({
        "type": versioning.versioning_type,
        "params": versioning.params,
        "cleanupIntervalS": versioning.cleanup_interval_s,
    })
}

/// The folder's path on this node: `~` expanded, no trailing `/` (`~` alone gives
/// the home folder itself).
fn syncthing_path(path: &str, home: &Path) -> String {
    let expanded = expand_home_in(Path::new(path), Some(home.to_owned()));
    expanded.components().collect::<std::path::PathBuf>().to_string_lossy().into_owned()
}

fn folder_type_name(folder_type: FolderType) -> &'static str {
    match folder_type {
        FolderType::SendReceive => "sendreceive",
        FolderType::SendOnly => "sendonly",
        FolderType::ReceiveOnly => "receiveonly",
    }
}

fn versioning_settings(versioning: Option<&Versioning>) -> VersioningSettings {
    let Some(versioning) = versioning else {
        return VersioningSettings {
            versioning_type: String::new(),
            params: BTreeMap::new(),
            cleanup_interval_s: DEFAULT_CLEANUP_INTERVAL_S,
        };
    };
    let versioning_type = match versioning.versioning_type {
        VersioningType::Simple => "simple",
        VersioningType::Staggered => "staggered",
        VersioningType::Trashcan => "trashcan",
        VersioningType::External => "external",
    };
    VersioningSettings {
        versioning_type: versioning_type.to_owned(),
        params: versioning.params.clone(),
        cleanup_interval_s: versioning
            .cleanup_interval
            .as_ref()
            .map_or(DEFAULT_CLEANUP_INTERVAL_S, |interval| whole_seconds(interval.duration)),
    }
}

/// Syncthing counts in whole seconds and reads 0 as "never": round up.
fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{SourceFile, validate};

    const LAPTOP: &str = "agent-work-laptop";
    const MINI: &str = "agent-home-mini";
    const LAPTOP_ID: &str = "LAPTOP-ID";
    const MINI_ID: &str = "MINI-ID";
    const MINI_ADDRESS: &str = "tcp://agent-home-mini:22000";

    fn set(sync_folders: &str) -> ManifestSet {
        let node = |name: &str, role: &str| {
            format!(
                "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {{name: {name}}}\n\
                 spec: {{role: {role}, address: {name}}}\n---\n"
            )
        };
        let text = format!("{}{}{sync_folders}", node(LAPTOP, "primary"), node(MINI, "satellite"));
        let validation = validate(&[SourceFile { path: "m.yaml".into(), text }], Vec::new());
        assert!(validation.is_valid(), "{:?}", validation.diagnostics);
        validation.set
    }

    fn sync_folder(name: &str, spec: &str) -> String {
        format!("apiVersion: agentmesh/v1alpha1\nkind: SyncFolder\nmetadata: {{name: {name}}}\nspec: {spec}\n---\n")
    }

    fn known_peers() -> BTreeMap<String, PeerDevice> {
        BTreeMap::from([(MINI.to_owned(), PeerDevice { device_id: MINI_ID.into(), address: MINI_ADDRESS.into() })])
    }

    /// `notes`, shared by the laptop and the mini, as the laptop sees it.
    fn notes(peers: &BTreeMap<String, PeerDevice>) -> Vec<DesiredFolder> {
        let spec = format!("{{paths: {{{LAPTOP}: ~/notes, {MINI}: /Volumes/data/notes}}, ignore: ['*.tmp']}}");
        desired_folders(&set(&sync_folder("notes", &spec)), LAPTOP, Path::new("/home/agent"), peers)
    }

    /// Syncthing holding exactly what is desired, all of it created by the controller.
    fn converged(desired: &[DesiredFolder]) -> Observed {
        let folders = desired
            .iter()
            .map(|folder| {
                let observed = ObservedFolder {
                    settings: folder.settings.clone(),
                    paused: false,
                    ignores: Some(folder.ignores.clone()),
                    error: None,
                };
                (folder.id.clone(), observed)
            })
            .collect();
        let devices = known_peers()
            .into_iter()
            .map(|(node, peer)| (peer.device_id, ObservedDevice { name: node, addresses: vec![peer.address] }))
            .chain([(LAPTOP_ID.to_owned(), ObservedDevice { name: LAPTOP.into(), addresses: vec!["dynamic".into()] })])
            .collect();
        Observed {
            own_device: LAPTOP_ID.into(),
            folders,
            devices,
            managed: Managed {
                folders: desired.iter().map(|folder| folder.id.clone()).collect(),
                devices: BTreeSet::from([MINI_ID.to_owned()]),
            },
        }
    }

    fn empty_syncthing() -> Observed {
        let own = ObservedDevice { name: LAPTOP.into(), addresses: vec!["dynamic".into()] };
        Observed {
            own_device: LAPTOP_ID.into(),
            folders: BTreeMap::new(),
            devices: BTreeMap::from([(LAPTOP_ID.to_owned(), own)]),
            managed: Managed::default(),
        }
    }

    /// A user's own folder, made in the GUI, shared with the mini.
    fn user_folder(devices: &[&str]) -> ObservedFolder {
        ObservedFolder {
            settings: FolderSettings {
                label: "Photos".into(),
                path: "/home/agent/Photos".into(),
                folder_type: "sendreceive".into(),
                devices: devices.iter().map(|id| id.to_string()).collect(),
                versioning: versioning_settings(None),
                rescan_interval_s: 3600,
                fs_watcher_enabled: true,
                fs_watcher_delay_s: 10,
            },
            paused: false,
            ignores: None,
            error: None,
        }
    }

    fn summary(action: &Action) -> String {
        match action {
            Action::AddDevice { device_id, name, addresses } => format!("add device {device_id} {name} {addresses:?}"),
            Action::PatchDevice { device_id, patch, .. } => format!("patch device {device_id} {patch}"),
            Action::Adopt { id } => format!("adopt {id}"),
            Action::AddFolder { folder } => format!("add folder {} at {}", folder.id, folder.settings.path),
            Action::PatchFolder { id, changed, .. } => {
                let fields: Vec<&str> = changed.iter().map(|change| change.field).collect();
                format!("patch folder {id} {}", fields.join(","))
            }
            Action::SetIgnores { id, lines } => format!("set ignores {id} {lines:?}"),
            Action::RemoveFolder { id } => format!("remove folder {id}"),
            Action::RemoveDevice { device_id } => format!("remove device {device_id}"),
        }
    }

    #[test]
    fn desired_folders_take_this_nodes_path_and_the_peers_devices() {
        let folders = format!(
            "{}{}{}",
            sync_folder(
                "notes",
                &format!(
                    "{{paths: {{{LAPTOP}: ~/notes, {MINI}: /srv/notes}}, rescanInterval: 90s, \
                     versioning: {{type: simple, params: {{keep: '5'}}}}}}"
                )
            ),
            sync_folder(
                "home",
                &format!(
                    "{{folderId: home-dir, label: Home, type: sendonly, paths: {{{LAPTOP}: '~', {MINI}: /srv/home}}}}"
                )
            ),
            sync_folder("mini-only", &format!("{{paths: {{{MINI}: /srv/a}}}}")),
        );
        let desired = desired_folders(&set(&folders), LAPTOP, Path::new("/home/agent"), &known_peers());
        let seen: Vec<_> = desired
            .iter()
            .map(|f| {
                let s = &f.settings;
                (f.object.as_str(), f.id.as_str(), s.label.as_str(), s.path.as_str(), s.folder_type.as_str())
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("home", "home-dir", "Home", "/home/agent", "sendonly"),
                ("notes", "notes", "notes", "/home/agent/notes", "sendreceive"),
            ]
        );
        let notes = &desired[1].settings;
        assert_eq!(notes.devices, BTreeSet::from([MINI_ID.to_owned()]));
        assert_eq!((notes.rescan_interval_s, notes.fs_watcher_enabled, notes.fs_watcher_delay_s), (90, true, 1));
        assert_eq!(
            versioning_json(&notes.versioning),
            json!({"type": "simple", "params": {"keep": "5"}, "cleanupIntervalS": 3600})
        );
        assert_eq!(desired[0].settings.versioning.versioning_type, "", "no versioning declared: off");
        assert_eq!(desired[0].settings.rescan_interval_s, 3600, "the default rescan interval is 1h");
    }

    #[test]
    fn a_peer_whose_device_id_is_unknown_is_pending_and_gets_no_device() {
        let desired = notes(&BTreeMap::new());
        assert_eq!(desired[0].pending, [MINI]);
        assert!(desired[0].settings.devices.is_empty());
        let plan = plan(&desired, &BTreeMap::new(), &empty_syncthing());
        let actions: Vec<String> = plan.actions.iter().map(summary).collect();
        assert_eq!(actions, ["add folder notes at /home/agent/notes"]);
    }

    /// One row of the plan table: how Syncthing differs from the converged world,
    /// and what the plan must then do.
    struct PlanCase {
        case: &'static str,
        /// Whether the SyncFolder is still in the manifests.
        declared: bool,
        edit: fn(&mut Observed),
        actions: &'static [&'static str],
        problems: &'static [ProblemReason],
    }

    fn notes_folder(observed: &mut Observed) -> &mut ObservedFolder {
        observed.folders.get_mut("notes").unwrap()
    }

    #[test]
    fn plan_compares_the_owned_fields_and_prunes_only_what_it_made() {
        let row = |case, declared, edit, actions, problems| PlanCase { case, declared, edit, actions, problems };
        let table = [
            row(
                "fresh node: devices first, then the folder",
                true,
                |o| *o = empty_syncthing(),
                &[
                    "add device MINI-ID agent-home-mini [\"tcp://agent-home-mini:22000\"]",
                    "add folder notes at /home/agent/notes",
                ],
                &[],
            ),
            row("already converged", true, |_| {}, &[], &[]),
            row(
                "drift on label, type, watcher delay and devices",
                true,
                |o| {
                    let settings = &mut notes_folder(o).settings;
                    settings.label = "Old".into();
                    settings.folder_type = "receiveonly".into();
                    settings.fs_watcher_delay_s = 10;
                    settings.devices.clear();
                },
                &["patch folder notes label,type,devices,fsWatcherDelayS"],
                &[],
            ),
            row(
                "a trailing slash on the path is no drift",
                true,
                |o| notes_folder(o).settings.path.push('/'),
                &[],
                &[],
            ),
            row(
                "the user paused the folder: not owned, not touched",
                true,
                |o| notes_folder(o).paused = true,
                &[],
                &[],
            ),
            row(
                "ignores differ",
                true,
                |o| notes_folder(o).ignores = Some(vec!["*.bak".into()]),
                &["set ignores notes [\"*.tmp\"]"],
                &[],
            ),
            row("ignores not read: left alone", true, |o| notes_folder(o).ignores = None, &[], &[]),
            row(
                "the user deleted the managed folder in the GUI",
                true,
                |o| drop(o.folders.remove("notes")),
                &["add folder notes at /home/agent/notes"],
                &[],
            ),
            row(
                "managed device with another address is patched",
                true,
                |o| o.devices.get_mut(MINI_ID).unwrap().addresses = vec!["dynamic".into()],
                &["patch device MINI-ID {\"addresses\":[\"tcp://agent-home-mini:22000\"]}"],
                &[],
            ),
            row(
                "hand-added device with another address is used as it is",
                true,
                |o| {
                    o.devices.get_mut(MINI_ID).unwrap().addresses = vec!["dynamic".into()];
                    o.managed.devices.clear();
                },
                &[],
                &[],
            ),
            row(
                "unmanaged folder with the same id and path is adopted",
                true,
                |o| o.managed = Managed::default(),
                &["adopt notes"],
                &[],
            ),
            row(
                "adopted folder with drift is then corrected",
                true,
                |o| {
                    o.managed.folders.clear();
                    notes_folder(o).settings.label = "Old".into();
                },
                &["adopt notes", "patch folder notes label"],
                &[],
            ),
            row(
                "unmanaged folder at another path is a conflict",
                true,
                |o| {
                    o.managed.folders.clear();
                    notes_folder(o).settings.path = "/elsewhere".into();
                },
                &[],
                &[ProblemReason::Conflict],
            ),
            row(
                "path missing: nothing touches it, not even drift or ignores",
                true,
                |o| {
                    let folder = notes_folder(o);
                    folder.error = Some("folder path missing".into());
                    folder.settings.label = "Old".into();
                    folder.ignores = Some(Vec::new());
                },
                &[],
                &[ProblemReason::PathMissing],
            ),
            row(
                "path changed in the GUI to one that is missing: the declared path is put back",
                true,
                |o| {
                    let folder = notes_folder(o);
                    folder.settings.path = "/typo".into();
                    folder.error = Some("folder path missing".into());
                },
                &["patch folder notes path"],
                &[],
            ),
            row(
                "SyncFolder removed: the managed folder and device go, the user's folder stays",
                false,
                |o| drop(o.folders.insert("photos".into(), user_folder(&[]))),
                &["remove folder notes", "remove device MINI-ID"],
                &[],
            ),
            row(
                "SyncFolder removed: a user's folder still shares the device",
                false,
                |o| drop(o.folders.insert("photos".into(), user_folder(&[MINI_ID]))),
                &["remove folder notes"],
                &[],
            ),
            row(
                "SyncFolder removed while its marker is missing: folder and device stay until it is back",
                false,
                |o| notes_folder(o).error = Some("folder marker missing (this indicates potential data loss)".into()),
                &[],
                &[ProblemReason::PathMissing],
            ),
            row(
                "a managed device recorded but gone from Syncthing is forgotten",
                false,
                |o| {
                    o.folders.clear();
                    o.devices.remove(MINI_ID);
                    o.managed.folders.clear();
                },
                &["remove device MINI-ID"],
                &[],
            ),
        ];
        let declared = notes(&known_peers());
        for PlanCase { case, declared: still_declared, edit, actions: expected_actions, problems: expected_problems } in
            table
        {
            let mut observed = converged(&declared);
            edit(&mut observed);
            let desired = if still_declared { declared.clone() } else { Vec::new() };
            let plan = plan(&desired, &known_peers(), &observed);
            let actions: Vec<String> = plan.actions.iter().map(summary).collect();
            let problems: Vec<ProblemReason> = plan.problems.iter().map(|problem| problem.reason).collect();
            assert_eq!(actions, expected_actions, "{case}");
            assert_eq!(problems, expected_problems, "{case}");
        }
    }

    #[test]
    fn drift_is_patched_with_only_the_fields_that_differ_and_named_for_the_event() {
        let desired = notes(&known_peers());
        let mut observed = converged(&desired);
        let settings = &mut observed.folders.get_mut("notes").unwrap().settings;
        settings.label = "Old".into();
        settings.fs_watcher_delay_s = 10;
        settings.devices = BTreeSet::from(["STRANGER-ID".to_owned()]);
        let plan = plan(&desired, &known_peers(), &observed);
        let [Action::PatchFolder { id, patch, changed }] = plan.actions.as_slice() else {
            panic!("one PatchFolder expected: {:?}", plan.actions);
        };
        assert_eq!(id, "notes");
        assert_eq!(*patch, json!({"label": "notes", "devices": [{"deviceID": MINI_ID}], "fsWatcherDelayS": 1}));
        let events: Vec<String> = changed.iter().map(Change::to_string).collect();
        assert_eq!(
            events,
            [
                "label from \"Old\" to \"notes\"",
                "devices from [{\"deviceID\":\"STRANGER-ID\"}] to [{\"deviceID\":\"MINI-ID\"}]",
                "fsWatcherDelayS from 10 to 1",
            ]
        );
    }

    #[test]
    fn problems_say_what_is_wrong_and_what_to_do() {
        let desired = notes(&known_peers());
        let mut observed = converged(&desired);
        observed.managed.folders.clear();
        observed.folders.get_mut("notes").unwrap().settings.path = "/other/path".into();
        let conflict = plan(&desired, &known_peers(), &observed).problems;
        assert_eq!(
            conflict[0].message,
            "Syncthing already has a folder \"notes\" at /other/path that agentmesh did not create; \
             remove it or change folderId"
        );

        let mut observed = converged(&desired);
        observed.folders.get_mut("notes").unwrap().error = Some("folder path missing".into());
        let missing = plan(&desired, &known_peers(), &observed).problems;
        assert_eq!(
            missing[0].message,
            "folder \"notes\": /home/agent/notes is missing on this node (folder path missing); \
             agentmesh will not recreate it: restore the directory (mount the disk) and Syncthing resumes"
        );
    }

    /// Carries a plan out the way Syncthing and the executor would, on `observed`.
    fn execute(actions: &[Action], observed: &mut Observed) {
        for action in actions {
            match action {
                Action::AddDevice { device_id, name, addresses } => {
                    let device = ObservedDevice { name: name.clone(), addresses: addresses.clone() };
                    observed.devices.insert(device_id.clone(), device);
                    observed.managed.devices.insert(device_id.clone());
                }
                Action::PatchDevice { device_id, patch, .. } => {
                    let addresses = serde_json::from_value(patch["addresses"].clone()).unwrap();
                    observed.devices.get_mut(device_id).unwrap().addresses = addresses;
                }
                Action::Adopt { id } => {
                    observed.managed.folders.insert(id.clone());
                }
                Action::AddFolder { folder } => {
                    let added = ObservedFolder {
                        settings: folder.settings.clone(),
                        paused: false,
                        ignores: Some(folder.ignores.clone()),
                        error: None,
                    };
                    observed.folders.insert(folder.id.clone(), added);
                    observed.managed.folders.insert(folder.id.clone());
                }
                Action::PatchFolder { id, patch, .. } => {
                    let settings = &mut observed.folders.get_mut(id).unwrap().settings;
                    for (field, value) in patch.as_object().unwrap() {
                        match field.as_str() {
                            "label" => settings.label = value.as_str().unwrap().into(),
                            "path" => settings.path = value.as_str().unwrap().into(),
                            "type" => settings.folder_type = value.as_str().unwrap().into(),
                            "devices" => {
                                let ids = value.as_array().unwrap().iter();
                                settings.devices = ids.map(|d| d["deviceID"].as_str().unwrap().into()).collect();
                            }
                            "versioning" => {
                                settings.versioning = VersioningSettings {
                                    versioning_type: value["type"].as_str().unwrap().into(),
                                    params: serde_json::from_value(value["params"].clone()).unwrap(),
                                    cleanup_interval_s: value["cleanupIntervalS"].as_u64().unwrap(),
                                }
                            }
                            "rescanIntervalS" => settings.rescan_interval_s = value.as_u64().unwrap(),
                            "fsWatcherEnabled" => settings.fs_watcher_enabled = value.as_bool().unwrap(),
                            "fsWatcherDelayS" => settings.fs_watcher_delay_s = value.as_u64().unwrap(),
                            other => panic!("not an owned field: {other}"),
                        }
                    }
                }
                Action::SetIgnores { id, lines } => observed.folders.get_mut(id).unwrap().ignores = Some(lines.clone()),
                Action::RemoveFolder { id } => {
                    observed.folders.remove(id);
                    observed.managed.folders.remove(id);
                }
                Action::RemoveDevice { device_id } => {
                    observed.devices.remove(device_id);
                    observed.managed.devices.remove(device_id);
                    for folder in observed.folders.values_mut() {
                        folder.settings.devices.remove(device_id);
                    }
                }
            }
        }
    }

    #[test]
    fn a_second_plan_after_the_first_was_carried_out_does_nothing() {
        let versioned = format!(
            "{{label: Notes, type: sendonly, rescanInterval: 10m, paths: {{{LAPTOP}: ~/notes, {MINI}: /srv/notes}}, \
             ignore: [a], versioning: {{type: staggered, params: {{maxAge: '86400'}}, cleanupInterval: 1m}}}}"
        );
        let desired = desired_folders(&set(&sync_folder("notes", &versioned)), LAPTOP, Path::new("/h"), &known_peers());
        let mut drifted = converged(&desired);
        let folder = drifted.folders.get_mut("notes").unwrap();
        folder.settings = user_folder(&["STRANGER-ID"]).settings;
        folder.ignores = Some(Vec::new());
        drifted.managed.folders.insert("gone".into());
        drifted.folders.insert("gone".into(), user_folder(&[]));
        let starts = [("empty Syncthing", empty_syncthing()), ("every owned field drifted", drifted)];
        for (case, mut observed) in starts {
            let first = plan(&desired, &known_peers(), &observed);
            assert!(!first.actions.is_empty(), "{case}");
            execute(&first.actions, &mut observed);
            assert_eq!(
                plan(&desired, &known_peers(), &observed),
                SyncPlan { actions: vec![], problems: vec![] },
                "{case}"
            );
        }
    }

    fn in_sync(online: bool) -> PeerSync {
        PeerSync { online, completion: Some(100.0), need_items: Some(0), last_in_sync: None }
    }

    /// 2026-12-06T09:12:03Z, and a moment `seconds` after it.
    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_548_323 + seconds)
    }

    /// One row of the status table: the folder as Syncthing shows it, the mini's
    /// sync state, and the conditions with a part of Ready's message.
    struct StatusCase {
        case: &'static str,
        edit: fn(&mut Option<ObservedFolder>),
        mini_device_known: bool,
        db_state: Option<&'static str>,
        mini: PeerSync,
        conditions: &'static str,
        message: &'static str,
    }

    #[test]
    fn folder_status_follows_syncthing_and_the_peers() {
        let row = |case, edit, mini_device_known, db_state, mini, conditions, message| StatusCase {
            case,
            edit,
            mini_device_known,
            db_state,
            mini,
            conditions,
            message,
        };
        let unchanged: fn(&mut Option<ObservedFolder>) = |_| {};
        let ready = "Ready=true InSync, Progressing=false Stable, Degraded=false AsExpected";
        let syncing = "Ready=false Syncing, Progressing=true Syncing, Degraded=false AsExpected";
        let table = [
            row(
                "idle and in sync",
                unchanged,
                true,
                Some("idle"),
                in_sync(true),
                ready,
                "in sync with agent-home-mini",
            ),
            row(
                "an offline peer does not block Ready",
                unchanged,
                true,
                Some("idle"),
                in_sync(false),
                ready,
                "agent-home-mini offline; not seen in sync since this daemon started",
            ),
            row(
                "an offline peer is not in sync, whatever Syncthing last said: when it last was",
                unchanged,
                true,
                Some("idle"),
                PeerSync { last_in_sync: Some(at(0)), ..in_sync(false) },
                ready,
                "agent-home-mini offline; last in sync 09:12:03 UTC",
            ),
            row(
                "the peer is behind",
                unchanged,
                true,
                Some("idle"),
                PeerSync { online: true, completion: Some(40.0), need_items: Some(17), last_in_sync: None },
                syncing,
                "agent-home-mini at 40% (17 items to go)",
            ),
            row("syncing", unchanged, true, Some("syncing"), in_sync(true), syncing, "Syncthing is syncing"),
            row(
                "scanning",
                unchanged,
                true,
                Some("scan-waiting"),
                in_sync(true),
                "Ready=false Scanning, Progressing=true Scanning, Degraded=false AsExpected",
                "Syncthing is scan-waiting",
            ),
            row(
                "state not read",
                unchanged,
                true,
                None,
                in_sync(true),
                "Ready=false StateUnknown, Progressing=true StateUnknown, Degraded=false AsExpected",
                "did not report",
            ),
            row(
                "the peer's device ID is not known yet",
                unchanged,
                false,
                Some("idle"),
                in_sync(true),
                "Ready=false WaitingForDeviceId, Progressing=true WaitingForDeviceId, Degraded=false AsExpected",
                "waiting to learn agent-home-mini's device ID",
            ),
            row(
                "not in Syncthing yet",
                |o| *o = None,
                true,
                None,
                in_sync(true),
                "Ready=false Creating, Progressing=true Creating, Degraded=false AsExpected",
                "adding folder \"notes\"",
            ),
            row(
                "not shared with the online peer yet",
                |o| o.as_mut().unwrap().settings.devices.clear(),
                true,
                Some("idle"),
                in_sync(true),
                syncing,
                "not shared with agent-home-mini yet",
            ),
            row(
                "path missing",
                |o| o.as_mut().unwrap().error = Some("folder path missing".into()),
                true,
                Some("error"),
                in_sync(true),
                "Ready=false PathMissing, Progressing=false Stable, Degraded=true PathMissing",
                "will not recreate it",
            ),
            row(
                "another Syncthing error",
                |o| o.as_mut().unwrap().error = Some("folder path not a directory".into()),
                true,
                Some("error"),
                in_sync(true),
                "Ready=false FolderError, Progressing=false Stable, Degraded=true FolderError",
                "Syncthing reports: folder path not a directory",
            ),
            row(
                "Syncthing says error without a message",
                unchanged,
                true,
                Some("error"),
                in_sync(true),
                "Ready=false FolderError, Progressing=false Stable, Degraded=true FolderError",
                "the folder is in state error",
            ),
            row(
                "a folder with our id at another path",
                |o| o.as_mut().unwrap().settings.path = "/other".into(),
                true,
                Some("idle"),
                in_sync(true),
                "Ready=false Conflict, Progressing=false Stable, Degraded=true Conflict",
                "at /other, not at /home/agent/notes",
            ),
        ];
        for StatusCase { case, edit, mini_device_known, db_state, mini, conditions: expected, message } in table {
            let desired = notes(&if mini_device_known { known_peers() } else { BTreeMap::new() });
            let mut observed = converged(&notes(&known_peers())).folders.remove("notes");
            edit(&mut observed);
            let completion = BTreeMap::from([(MINI.to_owned(), mini)]);
            let conditions = folder_status(&desired[0], observed.as_ref(), db_state, &completion, at(60));
            let seen: Vec<String> =
                conditions.iter().map(|c| format!("{}={} {}", c.condition_type, c.status, c.reason)).collect();
            assert_eq!(seen.join(", "), expected, "{case}");
            assert!(conditions[0].message.contains(message), "{case}: {:?}", conditions[0].message);
            let claims_sync = conditions[0].message.contains("in sync with");
            assert_eq!(claims_sync, case == "idle and in sync", "{case}: {:?}", conditions[0].message);
        }
    }

    #[test]
    fn an_offline_peer_says_when_it_was_last_in_sync() {
        let day = 24 * 3600;
        let table = [
            (Some(at(0)), at(5), "mini offline; last in sync 09:12:03 UTC"),
            (Some(at(0)), at(day - 1), "mini offline; last in sync 09:12:03 UTC"),
            (Some(at(0)), at(day), "mini offline; last in sync 2026-12-06T09:12:03Z"),
            (None, at(5), "mini offline; not seen in sync since this daemon started"),
        ];
        for (last, now, expected) in table {
            assert_eq!(offline_message("mini", last, now), expected, "{last:?} {now:?}");
        }
    }

    #[test]
    fn the_mesh_says_whether_a_peer_is_online_before_syncthing_does() {
        let table = [
            (true, Some(false), false),
            (false, Some(true), true),
            (true, Some(true), true),
            (true, None, true),
            (false, None, false),
        ];
        for (connected, mesh, online) in table {
            assert_eq!(peer_online(connected, mesh), online, "{connected} {mesh:?}");
        }
        assert!(in_sync(true).in_sync());
        assert!(!in_sync(false).in_sync(), "an offline peer is never in sync");
        assert!(!PeerSync { need_items: Some(1), ..in_sync(true) }.in_sync());
    }

    #[test]
    fn a_paused_folder_is_not_ready_and_not_degraded() {
        let desired = notes(&known_peers());
        let mut observed = converged(&desired).folders.remove("notes").unwrap();
        observed.paused = true;
        let completion = BTreeMap::from([(MINI.to_owned(), in_sync(true))]);
        let conditions = folder_status(&desired[0], Some(&observed), Some(""), &completion, at(0));
        let seen: Vec<(bool, &str)> = conditions.iter().map(|c| (c.status, c.reason.as_str())).collect();
        assert_eq!(seen, [(false, "Paused"), (false, "Stable"), (false, "AsExpected")]);
    }

    #[test]
    fn a_folder_on_this_node_alone_is_ready_when_idle() {
        let alone = sync_folder("scratch", &format!("{{paths: {{{LAPTOP}: /srv/scratch}}}}"));
        let desired = desired_folders(&set(&alone), LAPTOP, Path::new("/home/agent"), &known_peers());
        let observed = converged(&desired).folders.remove("scratch");
        let conditions = folder_status(&desired[0], observed.as_ref(), Some("idle"), &BTreeMap::new(), at(0));
        assert_eq!((conditions[0].status, conditions[0].message.as_str()), (true, "not shared with another node"));
    }
}
