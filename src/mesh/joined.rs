//! The nodes that joined through this node's API (`POST /api/v1/peers`),
//! kept in `joined-peers.json` in the state folder so a restart keeps them,
//! and peers until the manifests declare a Node of the same name: then the
//! registration is forgotten, so a Node later removed from the manifests is
//! no peer any more.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tokio::sync::Mutex;

use super::peers::{PeerState, Peers};
use crate::api::wire::PeerRegistration;
use crate::atomic_file::write_atomic;

/// The file in the state folder.
pub(crate) const JOINED_PEERS_FILE: &str = "joined-peers.json";

/// The registrations, on disk and here: their one record. `Peers` keeps no
/// list of them, only a peer for each one it was handed (which the set in
/// force ends by declaring its name).
pub(crate) struct JoinedPeers {
    path: PathBuf,
    peers: Peers,
    /// By name, as on disk; the lock also orders the writes of the file.
    registrations: Mutex<BTreeMap<String, PeerRegistration>>,
}

impl JoinedPeers {
    /// Reads the file of `state_dir` (none yet: no registrations) and puts
    /// each node it holds in `peers`. A file that cannot be read is logged
    /// and left for the next registration to replace.
    pub(crate) fn load(state_dir: &Path, peers: Peers) -> JoinedPeers {
        let path = state_dir.join(JOINED_PEERS_FILE);
        let registrations = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Vec<PeerRegistration>>(&bytes).unwrap_or_else(|error| {
                tracing::warn!(file = %path.display(), %error, "cannot read the joined peers; starting without them");
                Vec::new()
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(error) => {
                tracing::warn!(file = %path.display(), %error, "cannot read the joined peers; starting without them");
                Vec::new()
            }
        };
        for registration in &registrations {
            peers.join(peer_of(registration));
        }
        let registrations = registrations.into_iter().map(|r| (r.name.clone(), r)).collect();
        JoinedPeers { path, peers, registrations: Mutex::new(registrations) }
    }

    /// Records `registration` (replacing one of the same name) on disk, then
    /// makes it a peer: what the API acknowledged survives a restart. A node
    /// the manifests declare needs no record: they say where it is.
    pub(crate) async fn add(&self, registration: PeerRegistration) -> std::io::Result<()> {
        if self.peers.declares(&registration.name) {
            return Ok(());
        }
        let mut registrations = self.registrations.lock().await;
        let mut next = registrations.clone();
        next.insert(registration.name.clone(), registration.clone());
        self.write(&next).await?;
        *registrations = next;
        self.peers.join(peer_of(&registration));
        Ok(())
    }

    /// Forgets the registrations of the nodes `declared` names: the manifests
    /// say where those are now.
    pub(crate) async fn forget_declared(&self, declared: &[String]) -> std::io::Result<()> {
        let mut registrations = self.registrations.lock().await;
        if !declared.iter().any(|name| registrations.contains_key(name)) {
            return Ok(());
        }
        let mut next = registrations.clone();
        next.retain(|name, _| !declared.contains(name));
        self.write(&next).await?;
        *registrations = next;
        Ok(())
    }

    /// Replaces the file with `registrations`, on a blocking thread.
    async fn write(&self, registrations: &BTreeMap<String, PeerRegistration>) -> std::io::Result<()> {
        let bytes =
            serde_json::to_vec_pretty(&registrations.values().collect::<Vec<_>>()).map_err(std::io::Error::other)?;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_atomic(&path, &bytes))
            .await
            .map_err(|failed| std::io::Error::other(failed.to_string()))?
    }
}

fn peer_of(registration: &PeerRegistration) -> PeerState {
    PeerState::new(&registration.name, registration.role, &registration.address, registration.api_port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::kinds::Role;

    fn registration(name: &str, port: u16) -> PeerRegistration {
        PeerRegistration { name: name.into(), role: Some(Role::Satellite), address: "127.0.0.1".into(), api_port: port }
    }

    #[tokio::test]
    async fn registrations_survive_a_restart_and_replace_their_namesake() {
        let dir = tempfile::tempdir().unwrap();
        let joined = JoinedPeers::load(dir.path(), Peers::default());
        joined.add(registration("desk", 8100)).await.unwrap();
        joined.add(registration("nas", 8200)).await.unwrap();
        joined.add(registration("desk", 8101)).await.unwrap();

        let peers = Peers::default();
        JoinedPeers::load(dir.path(), peers.clone());
        let dialled: Vec<String> = peers.all().iter().map(PeerState::authority).collect();
        assert_eq!(dialled, ["127.0.0.1:8101", "127.0.0.1:8200"]);
    }

    #[tokio::test]
    async fn a_registration_the_manifests_declare_is_forgotten_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let joined = JoinedPeers::load(dir.path(), Peers::default());
        joined.add(registration("desk", 8100)).await.unwrap();
        joined.add(registration("nas", 8200)).await.unwrap();
        joined.forget_declared(&["desk".into(), "mini".into()]).await.unwrap();

        let peers = Peers::default();
        JoinedPeers::load(dir.path(), peers.clone());
        let names: Vec<String> = peers.all().into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["nas"]);
    }

    #[test]
    fn an_unreadable_file_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(JOINED_PEERS_FILE), "not json").unwrap();
        let peers = Peers::default();
        JoinedPeers::load(dir.path(), peers.clone());
        assert!(peers.all().is_empty());
    }
}
