//! What every reconciler is given and gives back: the [`Context`] to act
//! with, the [`Outcome`] it found and the [`ReconcileError`] it failed with.
//! Apart from the reconcilers, so each imports these without the dispatch in
//! `reconcile/mod.rs` importing it back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::client_env::ClientEnvFile;
use super::sync_folder::state::SyncState;
use crate::api_key::ApiKey;
use crate::controller::status::{ConditionType, Observed};
use crate::event::Event;
use crate::handoff::store::HandoffStore;
use crate::identity::NodeEnv;
use crate::manifest::ManifestSet;
use crate::mesh::peers::Peers;
use crate::mesh::placement::Placements;
use crate::ollama::pulls::ModelPulls;
use crate::supervisor::Supervisor;
use crate::tasks::TaskSet;

/// What every reconcile gets: the set in force, the settings, and the
/// daemon's handles, shared through one `Arc` rather than copied per dispatch.
#[derive(Clone)]
pub(crate) struct Context {
    pub set: Arc<ManifestSet>,
    pub revision: String,
    pub env: Arc<NodeEnv>,
    pub handles: Arc<Handles>,
}

/// The handles the reconcilers act with, made once per daemon.
pub(crate) struct Handles {
    /// This node's name.
    pub node: String,
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
    /// Where handoff drivers and messages to peers run, stopped with the controller.
    pub handoff_tasks: TaskSet,
}

/// What a reconcile found and did.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub conditions: Vec<Observed>,
    pub details: BTreeMap<String, String>,
    /// Events to record about the object.
    pub events: Vec<Event>,
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
    pub(super) fn event(&mut self, event: Event) {
        self.events.push(event);
    }
}

/// A reconcile that failed; it is retried with backoff, and shown as Degraded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub(crate) struct ReconcileError {
    pub reason: &'static str,
    pub message: String,
}

impl ReconcileError {
    pub(crate) fn new(reason: &'static str, message: impl Into<String>) -> Self {
        ReconcileError { reason, message: message.into() }
    }

    /// The conditions an object shows while its reconcile fails.
    pub(crate) fn conditions(&self) -> Vec<Observed> {
        vec![
            Observed::not_ready(self.reason, self.message.clone()),
            Observed::new(ConditionType::Progressing, false, "RetryingWithBackoff", ""),
            Observed::degraded(self.reason, self.message.clone()),
        ]
    }
}
