//! What the controller keeps in `MESH_STATE_DIR`: the last applied set (so a
//! restart without a reachable source runs the last known good) and the last
//! revision a source produced. Written atomically.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::atomic_file::write_atomic;
use crate::manifest::Bundle;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ControllerState {
    /// The set running now and where it came from (`folder …`, `git …`, `apply`).
    pub applied: Option<Bundle>,
    pub applied_origin: Option<String>,
    /// The last revision the folder or Git source produced: an applied bundle
    /// stays until the source moves past it.
    pub source_revision: Option<String>,
}

const STATE_FILE: &str = "controller.json";

impl ControllerState {
    /// The saved state, or an empty one when there is none or it cannot be read
    /// (a broken file is moved aside, not trusted).
    pub(crate) fn load(state_dir: &Path) -> ControllerState {
        let path = state_dir.join(STATE_FILE);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return ControllerState::default();
        };
        serde_json::from_str(&text).unwrap_or_else(|error| {
            tracing::warn!("ignoring unreadable {}: {error}", path.display());
            let _ = std::fs::rename(&path, path.with_extension("json.broken"));
            ControllerState::default()
        })
    }

    pub(crate) fn save(&self, state_dir: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        write_atomic(&state_dir.join(STATE_FILE), &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::BundleFile;

    #[test]
    fn state_round_trips_and_a_broken_file_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let state = ControllerState {
            applied: Some(Bundle {
                revision: "r1".into(),
                files: vec![BundleFile { path: "m/a.yaml".into(), text: "x".into() }],
            }),
            applied_origin: Some("apply".into()),
            source_revision: Some("r0".into()),
        };
        state.save(dir.path()).unwrap();
        assert_eq!(ControllerState::load(dir.path()), state);

        std::fs::write(dir.path().join(STATE_FILE), "{not json").unwrap();
        assert_eq!(ControllerState::load(dir.path()), ControllerState::default());
        assert!(dir.path().join("controller.json.broken").exists());
    }
}
