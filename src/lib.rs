//! agentmesh: a declarative mesh of one person's machines for their AI agent.
//! See `docs/ARCHITECTURE.md` for the map.

pub mod api;
pub mod api_key;
pub mod atomic_file;
pub mod backoff;
pub mod cli;
pub mod client;
pub mod config;
pub mod controller;
pub mod daemon;
pub mod descriptor_limit;
pub mod diagnostic;
pub mod event;
pub mod git;
pub mod handoff;
pub mod identity;
pub mod manifest;
pub mod mesh;
pub mod metrics;
pub mod net;
pub mod ollama;
pub mod reconcile;
pub mod source;
pub mod state_lock;
pub mod supervisor;
pub mod syncthing;
#[allow(unsafe_code, reason = "the safe wrappers over the C library live here")]
mod sys;
pub mod tailscale;
pub mod tasks;
pub mod template;
