//! Saying goodbye: this node tells its peers that it is about to sleep, so
//! they mark it asleep and fall back at once rather than after failed probes,
//! and that it woke, so they probe it at once. All peers are told in
//! parallel, within [`BUDGET`] in all: a sleep waits for nothing longer.

use std::time::Duration;

use futures_util::future::join_all;

use super::peers::{PeerState, Peers};
use crate::api::wire::{Goodbye, PowerState};
use crate::client::ApiClient;

/// The longest telling every peer may take, however many there are and
/// however slow they answer.
pub const BUDGET: Duration = Duration::from_secs(1);

/// Tells the peers that `node` (this node) is now `state`: before a sleep,
/// every peer not known to be down; after one, every peer (what this node
/// knew of them is as old as its sleep). Returns the peers that took it, by
/// name, within [`BUDGET`].
pub(crate) async fn tell_peers(peers: &Peers, node: &str, api_key: Option<&str>, state: PowerState) -> Vec<String> {
    let told = recipients(peers, state).into_iter().map(|peer| async move {
        let client = ApiClient::new(&peer.authority(), api_key, BUDGET);
        let goodbye = Goodbye { node: node.to_owned(), state };
        match client.goodbye(&goodbye).await {
            Ok(()) => Some(peer.name),
            Err(error) => {
                tracing::info!(peer = peer.name, %error, "could not tell the peer this node is {state:?}");
                None
            }
        }
    });
    let took = tokio::time::timeout(BUDGET, join_all(told)).await;
    let took: Vec<String> = took.unwrap_or_default().into_iter().flatten().collect();
    tracing::info!(?state, peers = ?took, "told the peers");
    took
}

fn recipients(peers: &Peers, state: PowerState) -> Vec<PeerState> {
    let all = peers.all();
    match state {
        PowerState::Asleep => all.into_iter().filter(|peer| !peers.known_down(&peer.name)).collect(),
        PowerState::Awake => all,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[tokio::test]
    async fn a_peer_that_never_answers_holds_a_goodbye_no_longer_than_the_budget() {
        // It takes the connection and says nothing.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peers = Peers::default();
        peers.set_members(vec![PeerState::new("mini", None, "127.0.0.1", silent.local_addr().unwrap().port())]);
        let started = Instant::now();
        let told = tell_peers(&peers, "laptop", None, PowerState::Asleep).await;
        assert!(told.is_empty());
        assert!(started.elapsed() < BUDGET + Duration::from_millis(500), "{:?}", started.elapsed());
    }

    #[test]
    fn a_goodbye_skips_peers_known_down_and_a_wake_up_tells_them_all() {
        let peers = Peers::default();
        peers.set_members(vec![PeerState::new("mini", None, "mini", 8000), PeerState::new("desk", None, "desk", 8000)]);
        peers.update("desk", |p| p.last_error = Some("Connection refused".into()));
        let names = |state| recipients(&peers, state).into_iter().map(|p| p.name).collect::<Vec<_>>();
        assert_eq!(names(PowerState::Asleep), ["mini"]);
        assert_eq!(names(PowerState::Awake), ["desk", "mini"]);
    }
}
