//! The mesh (design sections 5 and 6): peers and their health, routing calls to
//! the node that serves a capability.

pub mod absence;
pub mod failover;
pub mod goodbye;
pub mod joined;
pub mod peers;
pub mod placement;
pub mod prober;
pub mod resume;
pub mod router;
pub mod wake_up;
