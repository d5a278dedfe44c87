//! Integration tests: the `meshctl` binary run as a user runs it, on files in
//! temporary folders. One binary for all of them, so they share one build.

mod cap;
mod chroma;
mod containment;
mod daemon;
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
