//! What this binary is: its crate version and the commit it was built from
//! (set by `build.rs`), as `meshctl version` and `/mesh/health` report them.

/// The crate's version, e.g. `0.1.0`.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The short hash of the commit built, or `unknown` when built outside a Git
/// checkout without `AGENTMESH_COMMIT`.
pub(crate) const COMMIT: &str = env!("AGENTMESH_COMMIT");

/// What `meshctl --version` prints after the name.
pub(crate) const VERSION_AND_COMMIT: &str =
    concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("AGENTMESH_COMMIT"), ")");

/// What stands for a commit nobody recorded: `build.rs` outside a checkout,
/// and daemons older than the `commit` field of `/mesh/health`.
pub(crate) const UNKNOWN_COMMIT: &str = "unknown";
