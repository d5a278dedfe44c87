//! agentmesh: a declarative mesh of one person's machines for their AI agent.
//! See `docs/ARCHITECTURE.md` for the map.

mod api;
pub mod api_key;
mod atomic_file;
pub mod backoff;
mod build_info;
pub mod cli;
mod client;
mod clock;
pub mod config;
mod controller;
mod daemon;
mod descriptor_limit;
pub mod diagnostic;
mod env_location;
mod event;
mod git;
mod handoff;
pub mod identity;
pub mod manifest;
pub mod mesh;
pub mod metrics;
mod net;
pub mod ollama;
mod reconcile;
mod sleep_clock;
pub mod sleep_notice;
pub mod source;
pub mod source_status;
mod state_lock;
pub mod supervisor;
pub mod syncthing;
#[allow(unsafe_code, reason = "the safe wrappers over the C library live here")]
mod sys;
pub mod tailscale;
mod tasks;
mod template;
mod wake;
