//! The node controller (design section 4).

pub mod queue;
