//! What every handler of the mesh API is given: the controller's shared
//! state and the handles to reach the rest of the daemon.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::controller::{Input, Shared};
use crate::mesh::router::MeshRouter;
use crate::tailscale;

/// The largest request body: an `apply` bundle of a whole manifests folder.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

#[derive(Clone)]
pub struct ApiState {
    pub shared: Arc<Shared>,
    pub inbox: mpsc::Sender<Input>,
    /// Asks the Git source to fetch now, when there is one.
    pub nudge: Option<mpsc::Sender<()>>,
    /// Asks tailscaled who a caller without the key is.
    pub tailscale: tailscale::Connector,
    pub router: MeshRouter,
}
