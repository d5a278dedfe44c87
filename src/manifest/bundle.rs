//! A set of manifest files with its revision: what `apply` sends, what a peer
//! receives, and what the controller remembers it applied.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::parse::SourceFile;

/// The files and the revision they were read at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    pub revision: String,
    pub files: Vec<BundleFile>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BundleFile {
    pub path: String,
    pub text: String,
}

impl Bundle {
    pub fn from_files(revision: String, files: &[SourceFile]) -> Bundle {
        let files = files.iter().map(|f| BundleFile { path: f.path.to_string(), text: f.text.clone() }).collect();
        Bundle { revision, files }
    }

    pub fn source_files(&self) -> Vec<SourceFile> {
        self.files.iter().map(|f| SourceFile { path: f.path.as_str().into(), text: f.text.clone() }).collect()
    }
}
