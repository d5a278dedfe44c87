//! What this node knows of each conversation: its folder, content and record,
//! for `GET /api/v1/sessions` (the API maps it to its wire shape). Blocking:
//! it lists and hashes folders.

use std::path::PathBuf;

use super::folder::{self, Content};
use super::protocol::Record;
use super::store::HandoffStore;
use crate::manifest::ManifestSet;

/// One conversation as this node sees it.
#[derive(Clone, Debug)]
pub(crate) struct ConversationView {
    pub policy: String,
    pub id: String,
    /// Its folder on this node.
    pub dir: PathBuf,
    /// None while the folder is not (yet) here.
    pub content: Option<Content>,
    /// None while no node has claimed it, as far as this node knows.
    pub record: Option<Record>,
    /// The content hash the peer last reported.
    pub peer_hash: Option<String>,
    /// The agent on this node may write to it now.
    pub writable: bool,
}

/// Every conversation of every HandoffPolicy on this node: the folders here
/// and the records this node keeps.
pub(crate) fn conversations(set: &ManifestSet, node: &str, store: &HandoffStore) -> Vec<ConversationView> {
    let mut views = Vec::new();
    for policy in set.handoff_policies.keys() {
        let Some(root) = folder::sessions_root(set, policy, node, &folder::home()) else { continue };
        let mut ids = folder::conversations(&root).unwrap_or_default().ids;
        ids.extend(store.records(policy).into_iter().map(|(id, _)| id));
        ids.sort();
        ids.dedup();
        for id in ids {
            let dir = root.join(&id);
            views.push(ConversationView {
                policy: policy.clone(),
                content: store.content(&dir).ok(),
                record: store.record(policy, &id),
                peer_hash: store.peer_hash(policy, &id),
                writable: store.can_write(policy, &id),
                dir,
                id,
            });
        }
    }
    views
}
