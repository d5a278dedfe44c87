//! agentmesh: a declarative mesh of one person's machines for their AI agent.
//! See `docs/ARCHITECTURE.md` for the map.

pub mod cli;
pub mod controller;
pub mod diagnostic;
pub mod identity;
pub mod manifest;
pub mod source;
pub mod supervisor;
