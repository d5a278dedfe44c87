//! The handoff endpoints: `POST /api/v1/handoff` starts a handoff on this
//! node (`handoff::driver`) and `GET /api/v1/handoff/{handoff}` is its
//! progress; `POST /api/v1/handoff/message[s]` takes the peer's protocol
//! messages (`handoff::io`); `GET /api/v1/sessions[/ID]` lists the
//! conversations (`handoff::view`). Each maps the domain's values to and
//! from their wire shapes (`api/wire.rs`) and the domain's errors to statuses.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::error::{ApiError, bad_request};
use super::state::ApiState;
use super::wire::{
    self, DroppedMessage, ErrorBody, HandoffBatch, HandoffMessage, HandoffProgress, HandoffRequest, Session,
};
use crate::controller::status::ObjectKey;
use crate::controller::{Events, Shared};
use crate::event::Event;
use crate::handoff::driver::{self, Handoffs, StartError, Started};
use crate::handoff::folder;
use crate::handoff::io::HandoffIo;
use crate::handoff::protocol::Phase;
use crate::handoff::view::{self, ConversationView};
use crate::manifest::{Kind, ManifestSet};

pub(super) async fn start(
    State(state): State<ApiState>,
    body: Result<Json<HandoffRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<HandoffProgress>), ApiError> {
    let Json(request) = body?;
    folder::check_conversation_id(&request.id).map_err(bad_request)?;
    let set = applied_set(&state.shared)?;
    let syncthing = crate::reconcile::sync_folder::this_node_client(&set, state.shared.node(), &state.shared.env())
        .map(|(client, _)| client)
        .map_err(|error| error.message);
    let HandoffRequest { id, to, timeout, force } = request;
    let request = driver::Request { id, to, timeout, force };
    match driver::start(&handoffs(&state), &set, syncthing, request).await {
        Ok(Started::TakenOver(progress)) => Ok((StatusCode::OK, Json(progress))),
        Ok(Started::Begun(progress)) => Ok((StatusCode::ACCEPTED, Json(progress))),
        Err(error) => Err(start_error(error)),
    }
}

/// What a handoff needs of the daemon's handles; its events go to the log
/// of the conversation's policy.
fn handoffs(state: &ApiState) -> Handoffs {
    let log = state.shared.events();
    let handles = &state.handles;
    Handoffs {
        io: HandoffIo::new(
            handles.handoff.clone(),
            handles.peers.clone(),
            handles.api_key.get(),
            handles.handoff_tasks.clone(),
        ),
        node: handles.node.clone(),
        events: Arc::new(move |policy: &str, events: Vec<Event>| record_events(&log, policy, events)),
    }
}

/// Records events of HandoffPolicy `policy`.
fn record_events(log: &Events, policy: &str, events: Vec<Event>) {
    let object = ObjectKey::new(Kind::HandoffPolicy, policy).to_string();
    for event in events {
        log.record(&object, event);
    }
}

fn start_error(error: StartError) -> ApiError {
    let (status, code) = match &error {
        StartError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        StartError::ForceNotAllowed(_) => (StatusCode::FORBIDDEN, "force_not_allowed"),
        StartError::OwnerOnline(_) => (StatusCode::CONFLICT, "owner_online"),
        StartError::Rejected(_) => (StatusCode::CONFLICT, "rejected"),
        StartError::NoTarget => (StatusCode::BAD_REQUEST, "no_target"),
        StartError::BadTimeout(_) => (StatusCode::BAD_REQUEST, "bad_request"),
        StartError::UnknownNode(_) => (StatusCode::BAD_REQUEST, "unknown_node"),
        StartError::TargetOffline(_) => (StatusCode::CONFLICT, "target_offline"),
        StartError::NotSaved(_) => (StatusCode::INTERNAL_SERVER_ERROR, "state_not_saved"),
    };
    ApiError::new(status, code, error.to_string())
}

/// A handoff id that no handoff can have is a bad request; one that was not
/// started here is not found.
pub(super) async fn progress(
    State(state): State<ApiState>,
    handoff: Result<Path<String>, PathRejection>,
) -> Result<Json<HandoffProgress>, ApiError> {
    let Path(handoff) = handoff?;
    folder::check_id("handoff id", &handoff).map_err(bad_request)?;
    let progress = state.handles.handoff.progress(&handoff);
    progress
        .map(Json)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no handoff {handoff} started here")))
}

fn applied_set(shared: &Shared) -> Result<Arc<ManifestSet>, ApiError> {
    shared
        .applied_set()
        .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "no manifests are in force yet"))
}

/// A protocol message from the peer's controller: the conversation's node
/// steps, persists, and its replies go back (fire and forget). A message of a
/// newer protocol, about an id that is not a conversation's or not meant for
/// this node is refused (400), and nothing is written for it.
pub(super) async fn message(
    State(state): State<ApiState>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(body) = body?;
    let message = HandoffMessage::read(body)?;
    take_message(&state, message).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Several protocol messages at once: the peer's records of a pass. A batch
/// of a newer protocol is refused whole (400); otherwise each message is
/// taken as if it came alone, and one that is refused is dropped with a
/// warning and named in the answer, so one bad record does not hold up the
/// others (the peer sends them all again next pass).
pub(super) async fn messages(
    State(state): State<ApiState>,
    body: Result<Json<Vec<serde_json::Value>>, JsonRejection>,
) -> Result<(StatusCode, Json<HandoffBatch>), ApiError> {
    let Json(messages) = body?;
    let mut batch = HandoffBatch::default();
    let mut read = Vec::with_capacity(messages.len());
    for (index, value) in messages.into_iter().enumerate() {
        match HandoffMessage::read(value) {
            Ok(message) => read.push((index, message)),
            Err(newer @ wire::ReadError::NewerProtocol(_)) => return Err(newer.into()),
            Err(malformed) => batch.dropped.push(dropped(index, malformed.into())),
        }
    }
    for (index, message) in read {
        match take_message(&state, message).await {
            Ok(()) => batch.taken += 1,
            Err(error) if error.status.is_server_error() => return Err(error),
            Err(error) => batch.dropped.push(dropped(index, error)),
        }
    }
    batch.dropped.sort_by_key(|dropped| dropped.index);
    Ok((StatusCode::ACCEPTED, Json(batch)))
}

/// A message of a batch that was refused: logged, and named in the answer.
fn dropped(index: usize, error: ApiError) -> DroppedMessage {
    let ErrorBody { error, message, .. } = error.body;
    tracing::warn!(index, error, "a handoff message from the peer was dropped: {message}");
    DroppedMessage { index, error, message }
}

async fn take_message(state: &ApiState, message: HandoffMessage) -> Result<(), ApiError> {
    let handles = &state.handles;
    if message.envelope.to != handles.node {
        let text = format!("the message is for {}, this is {}", message.envelope.to, handles.node);
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "wrong_node", text));
    }
    folder::check_conversation_id(&message.conversation).map_err(bad_request)?;
    let set = state.shared.applied_set();
    let Some(set) = set.filter(|set| set.handoff_policies.contains_key(&message.policy)) else {
        return Err(bad_request(format!("no HandoffPolicy {:?} on this node", message.policy)));
    };
    let others = folder::others_of(&set, &message.policy, &handles.node);
    if !others.contains(&message.envelope.from) {
        let text = format!(
            "the message is from {:?}, which does not share HandoffPolicy {} with this node",
            message.envelope.from, message.policy
        );
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "wrong_node", text));
    }
    let policy = message.policy.clone();
    let dir = folder::sessions_root(&set, &policy, &handles.node, &folder::home())
        .map(|root| root.join(&message.conversation));
    let io = HandoffIo::new(
        handles.handoff.clone(),
        handles.peers.clone(),
        handles.api_key.get(),
        handles.handoff_tasks.clone(),
    );
    let events = io.receive(dir, message).await.map_err(|error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "state_not_saved",
            format!("cannot persist the record: {error}"),
        )
    })?;
    record_events(&state.shared.events(), &policy, events);
    Ok(())
}

/// Every conversation of every HandoffPolicy on this node.
pub(super) async fn sessions(State(state): State<ApiState>) -> Result<Json<Vec<Session>>, ApiError> {
    let set = applied_set(&state.shared)?;
    let handles = state.handles.clone();
    let listed = tokio::task::spawn_blocking(move || view::conversations(&set, &handles.node, &handles.handoff))
        .await
        .map_err(|error| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", error.to_string()))?;
    let me = &state.handles.node;
    Ok(Json(listed.into_iter().map(|view| session_to_wire(me, view)).collect()))
}

/// One conversation, by id (the first policy that has it); an id no
/// conversation can have is a bad request.
pub(super) async fn session(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Session>, ApiError> {
    let Path(id) = id?;
    folder::check_conversation_id(&id).map_err(bad_request)?;
    let Json(all) = sessions(State(state)).await?;
    all.into_iter()
        .find(|session| session.id == id)
        .map(Json)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no conversation {id} on this node")))
}

fn session_to_wire(me: &str, view: ConversationView) -> Session {
    let (in_sync, holders) = (view.in_sync(), view.holders(me));
    let peer_hash = view.others.first().and_then(|node| view.hashes.get(node)).cloned();
    let ConversationView { policy, id, dir, content, record, writable, .. } = view;
    let hash = content.as_ref().map(|content| content.hash.clone());
    let (handoff, target) = match record.as_ref().map(|record| &record.phase) {
        Some(Phase::Frozen { handoff, target, .. }) => (Some(handoff.to_string()), Some(target.clone())),
        _ => (None, None),
    };
    let phase = match record.as_ref().map(|record| &record.phase) {
        None => "unclaimed",
        Some(Phase::Owned) => "owned",
        Some(Phase::Frozen { .. }) => "frozen",
        Some(Phase::Forcing { .. }) => "forcing",
    };
    Session {
        id,
        policy,
        owner: record.as_ref().map(|record| record.owner.clone()),
        epoch: record.as_ref().map(|record| record.epoch),
        phase: phase.into(),
        path: dir.display().to_string(),
        in_sync,
        holders,
        files: content.as_ref().map_or(0, |content| content.files),
        stale: content.as_ref().map(|content| content.stale.clone()).unwrap_or_default(),
        conflicts: content.map(|content| content.conflicts).unwrap_or_default(),
        hash,
        peer_hash,
        writable,
        handoff,
        target,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handoff::protocol::{HandoffId, Record, Stage};

    fn view(phase: Option<Phase>) -> ConversationView {
        ConversationView {
            policy: "chats".into(),
            id: "c-1".into(),
            dir: "/sessions/c-1".into(),
            content: None,
            record: phase.map(|phase| Record { phase, ..Record::new("a") }),
            others: vec!["b".into()],
            hashes: Default::default(),
            writable: false,
        }
    }

    /// The page follows a handoff under way from the conversation it froze.
    #[test]
    fn a_frozen_conversation_names_its_handoff_and_target_and_no_other_does() {
        let frozen = Phase::Frozen { handoff: HandoffId("h-7".into()), target: "b".into(), stage: Stage::Barrier };
        let cases = [
            (Some(frozen), "frozen", Some("h-7"), Some("b")),
            (Some(Phase::Owned), "owned", None, None),
            (None, "unclaimed", None, None),
        ];
        for (phase, expected_phase, handoff, target) in cases {
            let session = session_to_wire("a", view(phase));
            assert_eq!(session.phase, expected_phase);
            assert_eq!((session.handoff.as_deref(), session.target.as_deref()), (handoff, target), "{expected_phase}");
        }
    }
}
