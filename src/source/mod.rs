//! Sources of manifests. Each produces snapshots `{revision, files}` on a channel:
//! the watched folder, or the controller's own clone of a Git remote. Snapshots
//! are checked by the controller, not here: a source only reads.

pub mod checkout;
pub mod compare;
pub mod folder;
pub mod git;
mod revision;
pub mod settle;

pub use revision::{content_revision, folder_revision};

use crate::diagnostic::Diagnostic;
use crate::manifest::SourceFile;

/// One complete reading of the manifests.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// A commit id, or `local-<hash>` of the content.
    pub revision: String,
    pub files: Vec<SourceFile>,
    /// Files that could not be read; they make the snapshot invalid.
    pub problems: Vec<Diagnostic>,
    /// Where it came from, for events: `folder manifests`, `git <remote>`, `apply`.
    pub origin: String,
}

/// What a source tells the controller.
#[derive(Debug)]
pub enum SourceUpdate {
    Snapshot(Snapshot),
    /// The source could not produce a snapshot (a remote that cannot be reached,
    /// a folder that vanished). The last good snapshot keeps running.
    Unavailable {
        origin: String,
        message: String,
    },
    /// Something the user should know that is not a failure (a force-pushed
    /// remote that the clone was reset to).
    Notice {
        origin: String,
        message: String,
    },
}
