//! Integration tests: the `meshctl` binary run as a user runs it, on files in
//! temporary folders. One binary for all of them, so they share one build.

// Like an operator, these tests signal processes, set their limits and enter
// network namespaces with libc directly; the crate keeps its `unsafe` in
// `src/sys.rs`.
#![allow(unsafe_code)]

mod cap;
mod chroma;
mod containment;
mod daemon;
mod daemons;
mod errors;
mod examples;
mod fuzz;
mod git_source;
mod init;
mod ollama;
mod router;
mod scaling;
mod schema;
mod supervisor;
mod support;
mod syncthing;
mod tailscale;
