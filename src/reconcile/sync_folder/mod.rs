//! The SyncFolder reconciler: this node's Syncthing folders and the peer devices
//! they are shared with. `plan` is pure (declared + observed -> actions); the
//! executor that talks to Syncthing's REST API carries the actions out.

pub mod plan;
