//! What every handler of the mesh API is given: what the controller
//! publishes, the daemon's handles, and the ways to reach the rest of it.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use super::ui_tokens::UiTokens;
use crate::controller::{Input, Shared};
use crate::mesh::joined::JoinedPeers;
use crate::mesh::router::MeshRouter;
use crate::reconcile::Handles;
use crate::source_status::SourceStatus;
use crate::tailscale;

/// The largest request body: an `apply` bundle of a whole manifests folder.
pub(super) const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

#[derive(Clone)]
pub(crate) struct ApiState {
    /// What the controller publishes: the set in force, status, events.
    pub shared: Arc<Shared>,
    /// The peers, key, placements, supervisor and stores the reconcilers act
    /// with, which the API reads and the handoff endpoints act with too.
    pub handles: Arc<Handles>,
    pub inbox: mpsc::Sender<Input>,
    /// Asks the Git source to fetch now, when there is one.
    pub nudge: Option<mpsc::Sender<()>>,
    /// What the node's source follows and last read.
    pub source: watch::Receiver<SourceStatus>,
    /// Asks tailscaled who a caller without the key is.
    pub tailscale: tailscale::Connector,
    pub router: MeshRouter,
    /// The nodes that joined through `POST /api/v1/peers`.
    pub joined: Arc<JoinedPeers>,
    /// The status page's sessions and `meshctl ui` tickets.
    pub ui_tokens: Arc<UiTokens>,
}
