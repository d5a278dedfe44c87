//! Syncthing's REST JSON, as 1.19 through 2.x write it (camelCase, and
//! case-sensitive on output: `deviceID`, `fsWatcherDelayS`, `myID`).
//!
//! Config objects (`Folder`, `Device` and their parts) type the fields the
//! controller owns and keep every other field in `other`, so an object read
//! from Syncthing and written back loses nothing a user set in the GUI (the
//! NixOS module's bug, nixpkgs#441818). Status objects are read-only: every
//! field is optional or defaulted, as versions differ in what they send.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

/// One folder of `/rest/config/folders`.
///
/// [`Default`] gives Syncthing's own defaults for the typed fields, so a
/// folder built here and POSTed is what the GUI would make.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Folder {
    pub id: String,
    pub label: String,
    /// Absolute path. Syncthing turns an empty one into `~`, the service
    /// user's home, so callers must never send it empty.
    pub path: String,
    /// `sendreceive`, `sendonly`, `receiveonly` or `receiveencrypted`; a string
    /// so a type a newer Syncthing adds is kept as it is.
    #[serde(rename = "type")]
    pub folder_type: String,
    /// The peers to share with. Syncthing adds this device itself and drops
    /// IDs it does not know; a PATCH replaces the whole list.
    pub devices: Vec<FolderDevice>,
    pub fs_watcher_enabled: bool,
    /// An integer in 1.19, a float in later versions: written as an integer
    /// when whole, as 1.19 rejects `1.0`.
    #[serde(rename = "fsWatcherDelayS", serialize_with = "whole_as_integer")]
    pub fs_watcher_delay_s: f64,
    #[serde(rename = "rescanIntervalS")]
    pub rescan_interval_s: u32,
    pub versioning: Versioning,
    pub paused: bool,
    /// Every field not typed above, written back unchanged.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Default for Folder {
    fn default() -> Folder {
        Folder {
            id: String::new(),
            label: String::new(),
            path: String::new(),
            folder_type: "sendreceive".into(),
            devices: Vec::new(),
            fs_watcher_enabled: true,
            fs_watcher_delay_s: 10.0,
            rescan_interval_s: 3600,
            versioning: Versioning::default(),
            paused: false,
            other: Map::new(),
        }
    }
}

/// A device a folder is shared with.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FolderDevice {
    #[serde(rename = "deviceID", default)]
    pub device_id: String,
    /// `introducedBy`, `encryptionPassword`, …: kept, since losing an
    /// encryption password would break an untrusted peer.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl FolderDevice {
    pub fn new(device_id: &str) -> FolderDevice {
        FolderDevice { device_id: device_id.to_owned(), other: Map::new() }
    }
}

/// A folder's file versioning; `versioning_type` empty means none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Versioning {
    /// ``, `trashcan`, `simple`, `staggered` or `external`.
    #[serde(rename = "type")]
    pub versioning_type: String,
    /// Syncthing sends every parameter as a string, numbers included.
    pub params: BTreeMap<String, String>,
    #[serde(rename = "cleanupIntervalS")]
    pub cleanup_interval_s: u32,
    /// `fsPath`, `fsType`, …
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Default for Versioning {
    fn default() -> Versioning {
        Versioning {
            versioning_type: String::new(),
            params: BTreeMap::new(),
            cleanup_interval_s: 3600,
            other: Map::new(),
        }
    }
}

/// One device of `/rest/config/devices` (this device is in the list too).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Device {
    #[serde(rename = "deviceID")]
    pub device_id: String,
    pub name: String,
    /// `tcp://host:port` or `dynamic`; with discovery off only explicit
    /// addresses are ever dialled.
    pub addresses: Vec<String>,
    /// Every field not typed above, written back unchanged.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Default for Device {
    fn default() -> Device {
        Device { device_id: String::new(), name: String::new(), addresses: vec!["dynamic".into()], other: Map::new() }
    }
}

/// `/rest/system/status`, the parts we read.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SystemStatus {
    #[serde(rename = "myID")]
    pub my_id: String,
    /// RFC 3339. A change means Syncthing restarted, and event ids start
    /// again at 1.
    pub start_time: String,
    /// Seconds since `start_time`.
    pub uptime: Option<u64>,
}

/// `/rest/system/version`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Version {
    /// e.g. `v1.19.2-ds1` or `v2.0.3`.
    pub version: String,
    pub long_version: String,
    pub os: String,
    pub arch: String,
}

/// `/rest/db/status`: a folder's state and counts. Every field is optional,
/// as versions add and drop fields; `error` is absent while all is well.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DbStatus {
    /// `idle`, `scanning`, `syncing`, `error`, …; empty while paused.
    pub state: Option<String>,
    pub state_changed: Option<String>,
    /// Why the folder is in state `error` (path or marker missing, bad ignores).
    pub error: Option<String>,
    pub errors: Option<u64>,
    pub pull_errors: Option<u64>,
    pub global_files: Option<u64>,
    pub global_bytes: Option<u64>,
    pub global_total_items: Option<u64>,
    pub local_files: Option<u64>,
    pub local_bytes: Option<u64>,
    pub in_sync_files: Option<u64>,
    pub in_sync_bytes: Option<u64>,
    pub need_files: Option<u64>,
    pub need_bytes: Option<u64>,
    pub need_deletes: Option<u64>,
    pub need_total_items: Option<u64>,
    pub sequence: Option<i64>,
}

/// `/rest/db/completion`: how far a device is with a folder.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Completion {
    /// 0 to 100.
    pub completion: f64,
    pub global_bytes: u64,
    pub global_items: u64,
    pub need_bytes: u64,
    pub need_items: u64,
    pub need_deletes: u64,
    pub sequence: i64,
}

/// `/rest/db/file`'s `local`: Syncthing's record of this device's copy of a file.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct FileRecord {
    /// The short device ID (the device ID's first block) whose change this is.
    pub modified_by: String,
    pub deleted: bool,
    pub size: u64,
    /// RFC 3339 with nanoseconds, in Syncthing's time zone.
    pub modified: String,
}

impl FileRecord {
    /// `modified` in nanoseconds since the Unix epoch; None when it does not
    /// read as RFC 3339.
    pub fn modified_ns(&self) -> Option<i64> {
        let text = self.modified.as_str();
        // humantime reads UTC only: the offset, if any, is taken off by hand.
        let (utc, offset_s) = match text.strip_suffix('Z') {
            Some(utc) => (utc, 0),
            None => {
                let (utc, offset) = text.split_at(text.len().checked_sub(6)?);
                let sign = match offset.as_bytes()[0] {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                let (hours, minutes) = offset[1..].split_once(':')?;
                (utc, sign * (hours.parse::<i64>().ok()? * 3600 + minutes.parse::<i64>().ok()? * 60))
            }
        };
        let time = humantime::parse_rfc3339_weak(utc).ok()?;
        let since = time.duration_since(std::time::UNIX_EPOCH).ok()?;
        let ns = i64::try_from(since.as_nanos()).ok()?;
        Some(ns - offset_s * 1_000_000_000)
    }
}

/// One item of `/rest/events`. `id` counts per subscription (one per event
/// mask) and restarts at 1 when Syncthing does; `global_id` is shared by all.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Event {
    pub id: u64,
    #[serde(rename = "globalID")]
    pub global_id: u64,
    pub time: String,
    /// `Starting`, `StateChanged`, `DeviceConnected`, …
    #[serde(rename = "type")]
    pub event_type: String,
    pub data: Value,
}

/// `/rest/folder/errors`: the files a folder failed to pull.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct FolderErrors {
    pub folder: String,
    /// `null` when there are none.
    #[serde(deserialize_with = "null_as_empty")]
    pub errors: Vec<FolderError>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct FolderError {
    pub path: String,
    pub error: String,
}

/// `/rest/system/connections`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Connections {
    /// By device ID; this device is listed too, never connected.
    pub connections: BTreeMap<String, Connection>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Connection {
    pub connected: bool,
    pub paused: bool,
    pub address: String,
    /// `tcp-client`, `tcp-server`, `relay-client`, …
    #[serde(rename = "type")]
    pub connection_type: String,
    pub client_version: String,
    pub in_bytes_total: u64,
    pub out_bytes_total: u64,
}

/// `/rest/db/ignores`, both ways.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct Ignores {
    /// `null` when the folder has no `.stignore`.
    #[serde(deserialize_with = "null_as_empty")]
    pub ignore: Vec<String>,
    /// Set when a pattern does not parse (it is written all the same).
    #[serde(skip_serializing)]
    pub error: Option<String>,
}

fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

fn whole_as_integer<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if value.fract() == 0.0 && value.abs() < i64::MAX as f64 {
        serializer.serialize_i64(*value as i64)
    } else {
        serializer.serialize_f64(*value)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_file_records_time_reads_in_utc_or_with_an_offset() {
        let record = |modified: &str| FileRecord { modified: modified.into(), ..FileRecord::default() };
        let utc = record("2026-11-28T14:26:53.472165267Z").modified_ns().unwrap();
        assert_eq!(utc, 1_795_876_013_472_165_267);
        assert_eq!(record("2026-11-28T15:26:53.472165267+01:00").modified_ns(), Some(utc));
        assert_eq!(record("2026-11-28T09:26:53.472165267-05:00").modified_ns(), Some(utc));
        assert_eq!(record("2026-11-28T14:26:53Z").modified_ns(), Some(1_795_876_013_000_000_000));
        assert_eq!(record("yesterday").modified_ns(), None);
        assert_eq!(record("").modified_ns(), None);
    }

    #[test]
    fn a_folder_read_and_written_back_keeps_fields_it_does_not_type() {
        let read = json!({
            "id": "docs", "label": "Docs", "path": "/data/docs", "type": "sendreceive",
            "devices": [{"deviceID": "AAA", "introducedBy": "", "encryptionPassword": "secret"}],
            "fsWatcherEnabled": true, "fsWatcherDelayS": 10, "rescanIntervalS": 3600,
            "versioning": {"type": "simple", "params": {"keep": "5"}, "cleanupIntervalS": 3600, "fsPath": ""},
            "paused": false, "maxConflicts": 3, "minDiskFree": {"value": 1, "unit": "%"}
        });
        let folder: Folder = serde_json::from_value(read.clone()).unwrap();
        assert_eq!(folder.devices[0].device_id, "AAA");
        assert_eq!(folder.versioning.params["keep"], "5");
        assert_eq!(serde_json::to_value(&folder).unwrap(), read);
    }

    #[test]
    fn a_whole_watcher_delay_is_written_as_an_integer() {
        let folder = Folder { fs_watcher_delay_s: 1.0, ..Folder::default() };
        assert_eq!(serde_json::to_value(&folder).unwrap()["fsWatcherDelayS"], json!(1));
        let folder = Folder { fs_watcher_delay_s: 0.5, ..Folder::default() };
        assert_eq!(serde_json::to_value(&folder).unwrap()["fsWatcherDelayS"], json!(0.5));
    }

    #[test]
    fn null_lists_read_as_empty() {
        let ignores: Ignores =
            serde_json::from_value(json!({"ignore": null, "expanded": null, "error": null})).unwrap();
        assert!(ignores.ignore.is_empty());
        let errors: FolderErrors = serde_json::from_value(json!({"errors": null, "folder": "f", "page": 1})).unwrap();
        assert!(errors.errors.is_empty());
    }
}
