//! What this node knows of each conversation: its folder, content and record,
//! for `GET /api/v1/sessions` (the API maps it to its wire shape). Blocking:
//! it lists and hashes folders.

use std::collections::BTreeMap;
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
    /// The other nodes of the policy's SyncFolder.
    pub others: Vec<String>,
    /// The content hash each other node last reported, by node.
    pub hashes: BTreeMap<String, String>,
    /// The agent on this node may write to it now.
    pub writable: bool,
}

/// Every conversation of every HandoffPolicy on this node: the folders here
/// and the records this node keeps.
pub(crate) fn conversations(set: &ManifestSet, node: &str, store: &HandoffStore) -> Vec<ConversationView> {
    let mut views = Vec::new();
    for policy in set.handoff_policies.keys() {
        let Some(root) = folder::sessions_root(set, policy, node, &folder::home()) else { continue };
        let others = folder::others_of(set, policy, node);
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
                others: others.clone(),
                hashes: store.hashes(policy, &id),
                writable: store.can_write(policy, &id),
                dir,
                id,
            });
        }
    }
    views
}

impl ConversationView {
    /// The content hash here, when the folder is.
    fn hash(&self) -> Option<&str> {
        self.content.as_ref().map(|content| content.hash.as_str())
    }

    /// Every other node reported the same content as here.
    pub(crate) fn in_sync(&self) -> bool {
        let Some(here) = self.hash() else { return false };
        self.others.iter().all(|node| self.hashes.get(node).map(String::as_str) == Some(here))
    }

    /// The nodes that hold the owner's content, by name, `me` (this node)
    /// included when it does: the owner's hash is this node's when it owns
    /// the conversation, else the one the owner last reported. None before
    /// a claim or while the owner's hash is not known here.
    pub(crate) fn holders(&self, me: &str) -> Vec<String> {
        let Some(owner) = self.record.as_ref().map(|record| record.owner.as_str()) else { return Vec::new() };
        let owners = if owner == me { self.hash() } else { self.hashes.get(owner).map(String::as_str) };
        let Some(owners) = owners else { return Vec::new() };
        let mut holders: Vec<String> = self
            .others
            .iter()
            .filter(|node| self.hashes.get(*node).map(String::as_str) == Some(owners))
            .cloned()
            .collect();
        if self.hash() == Some(owners) {
            holders.push(me.to_owned());
        }
        holders.sort();
        holders
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(owner: Option<&str>, here: Option<&str>, reported: &[(&str, &str)]) -> ConversationView {
        ConversationView {
            policy: "chats".into(),
            id: "c-1".into(),
            dir: PathBuf::from("/sessions/c-1"),
            content: here.map(|hash| Content {
                hash: hash.into(),
                files: 0,
                bytes: 0,
                conflicts: vec![],
                stale: vec![],
            }),
            record: owner.map(Record::new),
            others: vec!["desk".into(), "mini".into()],
            hashes: reported.iter().map(|(node, hash)| ((*node).to_owned(), (*hash).to_owned())).collect(),
            writable: false,
        }
    }

    #[test]
    fn the_holders_are_the_nodes_with_the_owners_content_and_in_sync_means_every_other_node() {
        /// Owner, hash here, hashes reported, holders seen from laptop, in sync.
        type Case<'a> = (Option<&'a str>, Option<&'a str>, &'a [(&'a str, &'a str)], &'a [&'a str], bool);
        let cases: [Case<'_>; 8] = [
            (None, Some("h1"), &[("mini", "h1"), ("desk", "h1")], &[], true),
            (Some("laptop"), Some("h1"), &[], &["laptop"], false),
            (Some("laptop"), Some("h1"), &[("mini", "h1")], &["laptop", "mini"], false),
            (Some("laptop"), Some("h1"), &[("mini", "h1"), ("desk", "h0")], &["laptop", "mini"], false),
            (Some("laptop"), Some("h1"), &[("mini", "h1"), ("desk", "h1")], &["desk", "laptop", "mini"], true),
            (Some("mini"), Some("h0"), &[("mini", "h1"), ("desk", "h1")], &["desk", "mini"], false),
            (Some("mini"), None, &[("mini", "h1")], &["mini"], false),
            (Some("desk"), Some("h1"), &[("mini", "h1")], &[], false),
        ];
        for (owner, here, reported, holders, in_sync) in cases {
            let view = view(owner, here, reported);
            assert_eq!(view.holders("laptop"), holders, "{owner:?} {here:?} {reported:?}");
            assert_eq!(view.in_sync(), in_sync, "{owner:?} {here:?} {reported:?}");
        }
    }
}
