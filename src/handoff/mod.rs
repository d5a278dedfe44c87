//! Handoff (design section 7).

pub mod folder;
