//! Handing a conversation from one node to the other (design section 7).
//!
//! `protocol.rs` is the pure half: one conversation's ownership as one node sees
//! it, a state machine that takes inputs (a local command, a barrier result, a
//! message from the peer, a timeout, a restart) and returns what to persist, what
//! to send and what to tell the agent. No I/O, no clock, no async: the daemon's
//! handoff task (state files, the mesh API, Syncthing's completion and the folder
//! hash) drives it: `store.rs` keeps each conversation's record in the state
//! folder, the HandoffPolicy reconciler (`reconcile/handoff.rs`) claims and
//! exchanges them. `sim.rs` is its deterministic simulation under message loss,
//! duplication, reordering and crashes of either node. `folder.rs` finds the
//! conversation folders and hashes their content for the barrier. `stale.rs`
//! (pure) and `shadow.rs` (the owner's copy of its files) keep a stale write
//! from the other node aside instead of letting it replace the owner's.

pub mod driver;
pub mod folder;
pub mod io;
pub mod protocol;
pub mod shadow;
pub mod stale;
pub mod store;
pub mod view;

#[cfg(test)]
mod sim;
