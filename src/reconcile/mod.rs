//! Reconcilers, one per kind this node acts on: `reconcile(key, ctx) -> Outcome`.
//! A reconciler is not told why it runs (a new snapshot, a resync, a process
//! exit): it compares what is declared with what is, every time, which keeps it
//! idempotent. Planning is pure and shared with `meshctl diff`.

pub mod capability;
pub mod handoff;
pub mod plan;
pub mod service;
pub mod sync_folder;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use self::capability::ClientEnvFile;
use self::sync_folder::SyncState;
use crate::api_key::ApiKey;
use crate::controller::status::{ObjectKey, Observed};
use crate::handoff::store::HandoffStore;
use crate::identity::NodeEnv;
use crate::manifest::{Kind, ManifestSet};
use crate::mesh::peers::Peers;
use crate::mesh::placement::Placements;
use crate::ollama::pulls::ModelPulls;
use crate::supervisor::Supervisor;

/// What every reconcile gets: the set in force and the handles to act with.
#[derive(Clone)]
pub struct Context {
    pub set: Arc<ManifestSet>,
    pub revision: String,
    /// This node's name.
    pub node: String,
    pub env: Arc<NodeEnv>,
    pub supervisor: Supervisor,
    /// The other nodes and whether they answer, to ask them over the mesh.
    pub peers: Peers,
    /// The mesh API key, to call peers with.
    pub api_key: ApiKey,
    pub syncthing: Arc<SyncState>,
    /// Which node serves each capability, as the Capability reconciler decides.
    pub placements: Placements,
    /// `client.env` in the state folder, which the Capability reconciler writes.
    pub client_env: ClientEnvFile,
    /// Ollama models being pulled for the capabilities this node may serve.
    pub pulls: ModelPulls,
    /// Every conversation's ownership record (the HandoffPolicy reconciler's).
    pub handoff: Arc<HandoffStore>,
}

/// What a reconcile found and did.
#[derive(Debug)]
pub struct Outcome {
    pub conditions: Vec<Observed>,
    pub details: BTreeMap<String, String>,
    /// Events to record: (warning, reason, message).
    pub events: Vec<(bool, &'static str, String)>,
    /// Run again after this long even without a change.
    pub requeue_after: Option<Duration>,
    /// False when the object is nothing to this node (its status is dropped).
    pub tracked: bool,
}

impl Default for Outcome {
    fn default() -> Self {
        Outcome {
            conditions: Vec::new(),
            details: BTreeMap::new(),
            events: Vec::new(),
            requeue_after: None,
            tracked: true,
        }
    }
}

impl Outcome {
    fn event(&mut self, warning: bool, reason: &'static str, message: impl Into<String>) {
        self.events.push((warning, reason, message.into()));
    }
}

/// A reconcile that failed; it is retried with backoff, and shown as Degraded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ReconcileError {
    pub reason: &'static str,
    pub message: String,
}

impl ReconcileError {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        ReconcileError { reason, message: message.into() }
    }

    /// The conditions an object shows while its reconcile fails.
    pub fn conditions(&self) -> Vec<Observed> {
        vec![
            Observed::new("Ready", false, self.reason, self.message.clone()),
            Observed::new("Progressing", false, "RetryingWithBackoff", ""),
            Observed::new("Degraded", true, self.reason, self.message.clone()),
        ]
    }
}

/// The keys of every object this node may have to act on in `set`.
pub fn keys(set: &ManifestSet, node: &str) -> Vec<ObjectKey> {
    let mut keys: Vec<ObjectKey> = set.services.keys().map(|name| (Kind::Service, name.clone())).collect();
    if set.nodes.contains_key(node) {
        keys.push((Kind::Node, node.to_owned()));
    }
    // Every SyncFolder, not only this node's: one that no longer names this
    // node is reconciled to un-share it here.
    keys.extend(set.sync_folders.keys().map(|name| (Kind::SyncFolder, name.clone())));
    // Every Capability: each node renders every capability's client env.
    keys.extend(set.capabilities.keys().map(|name| (Kind::Capability, name.clone())));
    // Every HandoffPolicy: one whose folder is not on this node is untracked.
    keys.extend(set.handoff_policies.keys().map(|name| (Kind::HandoffPolicy, name.clone())));
    keys
}

pub async fn reconcile(key: &ObjectKey, ctx: &Context) -> Result<Outcome, ReconcileError> {
    match key.0 {
        Kind::Service => service::reconcile(&key.1, ctx).await,
        Kind::SyncFolder => sync_folder::reconcile(&key.1, ctx).await,
        Kind::Capability => capability::reconcile(&key.1, ctx).await,
        Kind::HandoffPolicy => handoff::reconcile(&key.1, ctx).await,
        Kind::Node if key.1 == ctx.node => Ok(this_node(ctx)),
        _ => Ok(Outcome { tracked: false, ..Outcome::default() }),
    }
}

/// This node's own Node object: present, and whether `AGENT_ROLE` agrees with it.
fn this_node(ctx: &Context) -> Outcome {
    let mut outcome = Outcome::default();
    let Some(node) = ctx.set.nodes.get(&ctx.node) else {
        outcome.tracked = false;
        return outcome;
    };
    let role = node.spec.role.as_str();
    let hint = ctx.env.get(crate::identity::ROLE).map(|s| s.value.clone());
    let mismatch = hint
        .as_deref()
        .filter(|hint| *hint != role)
        .map(|hint| format!("AGENT_ROLE is \"{hint}\" but the Node manifest says {role}; the manifest wins"));
    outcome.conditions = vec![
        Observed::new("Ready", true, "Registered", format!("this node, role {role}")),
        Observed::new("Progressing", false, "Stable", ""),
        Observed::new(
            "Degraded",
            mismatch.is_some(),
            if mismatch.is_some() { "RoleMismatch" } else { "AsExpected" },
            mismatch.unwrap_or_default(),
        ),
    ];
    outcome.details.insert("role".into(), role.into());
    outcome.details.insert("address".into(), format!("{}:{}", node.spec.address.value, node.spec.api_port));
    outcome
}
