//! What a unit runs: a Service rendered for this node, and its health check.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::manifest::kinds::RestartPolicy;

/// A Service rendered for this node: everything needed to run it, with
/// placeholders substituted and secrets resolved.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessSpec {
    pub name: String,
    pub command: Vec<String>,
    /// Added to the allowed part of the daemon's environment
    /// (`environment::INHERITED`).
    #[serde(skip_serializing)]
    pub env: BTreeMap<String, String>,
    pub working_dir: Option<PathBuf>,
    pub probe: Option<Probe>,
    pub restart: RestartPolicy,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub stop_grace: Duration,
}

impl ProcessSpec {
    /// A short stable hash of the whole spec (env included): a different
    /// fingerprint means the running process must be replaced.
    ///
    /// It is recorded in `processes.json` and compared across daemon versions, so
    /// it is FNV-1a over the spec's JSON, not std's `DefaultHasher`, whose output
    /// may change with the Rust version.
    pub fn fingerprint(&self) -> String {
        // Env values may hold resolved secrets: only their hash leaves this
        // function, and JSON serialization of these plain types cannot fail.
        let bytes = serde_json::to_vec(&(self, &self.env)).expect("a ProcessSpec serializes");
        let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        format!("{hash:016x}")[..12].to_owned()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum Probe {
    /// Healthy when `GET http://host:port/path` answers 2xx.
    Http { host: String, port: u16, path: String, interval: Duration, timeout: Duration },
    /// Healthy when a TCP connection to host:port succeeds.
    Tcp { host: String, port: u16, interval: Duration, timeout: Duration },
}
