//! Integration tests: the `meshctl` binary run as a user runs it, on files in
//! temporary folders. One binary for all of them, so they share one build.

#![allow(
    unsafe_code,
    reason = "the tests signal and inspect processes with libc; the crate keeps its unsafe in src/sys.rs"
)]

mod architecture;
mod cap;
mod chroma;
mod containment;
mod daemon;
mod errors;
mod examples;
mod files;
mod fuzz;
mod git_source;
mod in_flight;
mod init;
mod ollama;
mod ollama_pulls;
mod openapi;
mod pyclient;
mod router;
mod scaling;
mod schema;
mod shell;
mod supervisor;
mod support;
mod syncthing;
mod tailscale;
mod wake;
mod wake_up;
