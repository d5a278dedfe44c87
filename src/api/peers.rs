//! What peers tell this node about themselves. `POST /api/v1/peers`: a node
//! joining the mesh (`meshctl init --join`) registers where its API answers.
//! The registration is written to the state folder before it is
//! acknowledged, and the node is probed at once, until the manifests declare
//! a Node of that name. `POST /mesh/goodbye`: a peer about to sleep, or back
//! from it.

use std::time::SystemTime;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;

use super::error::{ApiError, bad_request};
use super::state::ApiState;
use super::wire::{Goodbye, PeerRegistered, PeerRegistration, PowerState};
use crate::event::Event;
use crate::manifest::name_problem;

pub(super) async fn register(
    State(state): State<ApiState>,
    request: Result<Json<PeerRegistration>, JsonRejection>,
) -> Result<Json<PeerRegistered>, ApiError> {
    let Json(registration) = request?;
    let node = state.shared.node().to_owned();
    if let Some(problem) = problem(&registration, &node) {
        return Err(match problem {
            Problem::ThisNode => ApiError::new(
                StatusCode::CONFLICT,
                "name_taken",
                format!("{node} is this node's own name: give the joining node another (`meshctl init --node NAME`)"),
            ),
            Problem::Invalid(message) => bad_request(message),
        });
    }
    let name = registration.name.clone();
    state.joined.add(registration).await.map_err(|error| {
        let message = format!("cannot record the peer in the state folder: {error}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "state_unwritable", message)
    })?;
    tracing::info!(peer = name, "a node joined: probing it until the manifests declare it");
    Ok(Json(PeerRegistered { node }))
}

/// A peer says it is about to sleep (it is down here from now: whatever it
/// serves falls back at once) or that it woke (it is probed now). Like a
/// handoff message, it takes the mesh key and must name a peer of this node,
/// the caller itself; this node's own name is refused.
pub(super) async fn goodbye(
    State(state): State<ApiState>,
    request: Result<Json<Goodbye>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(Goodbye { node, state: said }) = request?;
    let peers = &state.handles.peers;
    let known = match said {
        PowerState::Asleep => peers.said_goodbye(&node, SystemTime::now()),
        PowerState::Awake => peers.said_awake(&node),
    };
    if !known {
        let this = state.shared.node();
        let message = if node == this {
            format!("{node} is this node: a goodbye comes from a peer")
        } else {
            format!("{node:?} is no peer of {this}")
        };
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "unknown_node", message));
    }
    let object = format!("Node/{node}");
    let event = match said {
        PowerState::Asleep => Event::normal("PeerAsleep", format!("peer {node} said it is going to sleep")),
        PowerState::Awake => Event::normal("PeerAwake", format!("peer {node} said it woke")),
    };
    state.shared.events().record(&object, event);
    Ok(StatusCode::NO_CONTENT)
}

/// Why a registration is refused.
#[derive(Debug, PartialEq)]
enum Problem {
    /// It names the node that takes it.
    ThisNode,
    Invalid(String),
}

fn problem(registration: &PeerRegistration, this_node: &str) -> Option<Problem> {
    // A role that is neither primary nor satellite is refused by its type, as
    // the body is read (a 400 naming it).
    let PeerRegistration { name, role: _, address, api_port } = registration;
    if let Some(problem) = name_problem(name) {
        return Some(Problem::Invalid(format!("{name:?} cannot name a node: {problem}")));
    }
    if name == this_node {
        return Some(Problem::ThisNode);
    }
    let plain = |c: char| c.is_ascii_alphanumeric() || "-._:[]".contains(c);
    if address.is_empty() || !address.chars().all(plain) {
        return Some(Problem::Invalid(format!("address {address:?} is not a host name or an IP")));
    }
    if *api_port == 0 {
        return Some(Problem::Invalid("apiPort 0 is not a port".into()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::kinds::Role;

    #[test]
    fn registrations_are_checked_before_they_are_kept() {
        let good = PeerRegistration {
            name: "desk".into(),
            role: Some(Role::Satellite),
            address: "100.64.0.7".into(),
            api_port: 8000,
        };
        let with = |change: fn(&mut PeerRegistration)| {
            let mut registration = good.clone();
            change(&mut registration);
            problem(&registration, "mini")
        };
        assert_eq!(problem(&good, "mini"), None);
        assert_eq!(with(|r| r.role = None), None);
        assert_eq!(with(|r| r.address = "fd7a:115c:a1e0::1".into()), None);
        assert_eq!(with(|r| r.name = "mini".into()), Some(Problem::ThisNode));
        for (what, refused) in [
            ("a bad name", with(|r| r.name = "Desk!".into())),
            ("an empty address", with(|r| r.address = String::new())),
            ("a URL for an address", with(|r| r.address = "http://desk/".into())),
            ("port 0", with(|r| r.api_port = 0)),
        ] {
            assert!(matches!(refused, Some(Problem::Invalid(_))), "{what}: {refused:?}");
        }
    }
}
