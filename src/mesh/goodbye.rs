//! Saying goodbye: this node tells its peers that it is about to sleep, so
//! they mark it asleep and fall back at once rather than after failed probes,
//! and that it woke, so they take it back at once. The peers are told in
//! parallel, within [`BUDGET`] in all: a sleep waits for nothing longer (the
//! resume tells again those that did not take it: `mesh::resume`).

use std::time::Duration;

use futures_util::future::join_all;

use super::peers::PeerState;
use crate::api::wire::{Goodbye, PowerState};
use crate::client::ApiClient;

/// The longest telling every peer may take, however many there are and
/// however slow they answer.
pub const BUDGET: Duration = Duration::from_secs(1);

/// Tells each of `to` that `node` (this node) is now `state`, those it sees
/// down too: what it knows of them may be a probe old, or as old as its
/// sleep, and one that is down costs only a refused connection within the
/// budget. Returns the peers that took it, by name, within [`BUDGET`]; why
/// each other one did not is logged at debug level (a peer told again every
/// second would fill the log).
pub(crate) async fn tell(to: Vec<PeerState>, node: &str, api_key: Option<&str>, state: PowerState) -> Vec<String> {
    let told = to.into_iter().map(|peer| async move {
        let client = ApiClient::new(&peer.authority(), api_key, BUDGET);
        let goodbye = Goodbye { node: node.to_owned(), state };
        match tokio::time::timeout(BUDGET, client.goodbye(&goodbye)).await {
            Ok(Ok(())) => Some(peer.name),
            Ok(Err(error)) => {
                tracing::debug!(peer = peer.name, %error, "could not tell the peer this node is {state:?}");
                None
            }
            Err(_) => {
                tracing::debug!(peer = peer.name, "the peer did not take it within {BUDGET:?}: this node is {state:?}");
                None
            }
        }
    });
    join_all(told).await.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[tokio::test]
    async fn a_peer_that_never_answers_holds_a_goodbye_no_longer_than_the_budget() {
        // It takes the connection and says nothing.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mini = PeerState::new("mini", None, "127.0.0.1", silent.local_addr().unwrap().port());
        let started = Instant::now();
        let told = tell(vec![mini], "laptop", None, PowerState::Asleep).await;
        assert!(told.is_empty());
        assert!(started.elapsed() < BUDGET + Duration::from_millis(500), "{:?}", started.elapsed());
    }
}
