//! `kind: SyncFolder`: a folder Syncthing mirrors between nodes.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::manifest::values::{DurationSpec, Located};

/// A folder that Syncthing mirrors between nodes.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SyncFolderSpec {
    /// Syncthing's folder ID (default: the object's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder_id: Option<Located<String>>,
    /// The label Syncthing shows (default: the object's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Node name to the folder's path on that node; `~` is that node's home.
    #[schemars(extend("minProperties" = 1))]
    pub paths: Located<BTreeMap<Located<String>, Located<String>>>,
    /// Which way changes flow from this folder (default: `sendreceive`).
    #[serde(default, rename = "type")]
    pub folder_type: FolderType,
    /// Syncthing ignore patterns (`.stignore` lines).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<String>,
    /// How Syncthing keeps older versions of changed files (default: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versioning: Option<Versioning>,
    /// How often Syncthing rescans in full, besides its file watcher.
    #[serde(default = "default_rescan_interval")]
    pub rescan_interval: DurationSpec,
}

impl SyncFolderSpec {
    /// The Syncthing folder ID: `folderId`, or else the object's name.
    pub fn folder_id_or<'a>(&'a self, name: &'a str) -> &'a str {
        self.folder_id.as_ref().map_or(name, |id| id.value.as_str())
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FolderType {
    #[default]
    SendReceive,
    SendOnly,
    ReceiveOnly,
}

/// Syncthing file versioning.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Versioning {
    /// Syncthing's versioning type.
    #[serde(rename = "type")]
    pub versioning_type: VersioningType,
    /// Syncthing's parameters for that type, e.g. `keep: "5"` or `cleanoutDays: "30"`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// How often Syncthing removes expired versions (default: Syncthing's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleanup_interval: Option<DurationSpec>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VersioningType {
    Simple,
    Staggered,
    Trashcan,
    External,
}

fn default_rescan_interval() -> DurationSpec {
    DurationSpec::fixed("1h")
}
