//! Handing a conversation from one node to another (design section 7).
//!
//! `protocol.rs` is the pure half: one conversation's ownership as one node sees
//! it, a state machine that takes inputs (a local command, a barrier result, a
//! message from another node, a timeout, a restart, a wake) and returns what to
//! persist, what to send and what to tell the agent. No I/O, no clock, no
//! async. `sim.rs` is its deterministic simulation with two and three nodes
//! under message loss, duplication, reordering, partitions, sleeps and
//! crashes. `stale.rs` (pure) plans how a stale write from another node is
//! kept aside instead of replacing the owner's. A sleep of the machine is told
//! by `sleep_clock`, from the clocks that count sleep and not.
//!
//! The I/O half: `store.rs` keeps each conversation's node and persists its
//! record in the state folder before a step is acted on; `io.rs` carries a step
//! out (envelopes to the peer, the freeze marker, the shadow, the progress) off
//! the async threads; `driver.rs` is a handoff started on this node, from the
//! request to its end; `shadow.rs` is the owner's copy of its files;
//! `folder.rs` finds the conversation folders and hashes their content;
//! `view.rs` is what `GET /api/v1/sessions` shows. The HandoffPolicy reconciler
//! (`reconcile/handoff.rs`) claims, guards and exchanges the records each pass;
//! the API (`api/handoff.rs`) starts handoffs and takes the peer's messages.

pub(crate) mod driver;
pub(crate) mod folder;
pub(crate) mod io;
pub(crate) mod protocol;
pub(crate) mod shadow;
pub(crate) mod stale;
pub(crate) mod store;
pub(crate) mod view;

#[cfg(test)]
mod sim;
