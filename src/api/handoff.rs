//! `POST /api/v1/handoff` and `GET /api/v1/handoff/{handoff}`: a handoff
//! started on this node (the source) and driven by a task of its own, which
//! the request starts and `meshctl handoff` follows.
//!
//! The task checks the barrier (this node's Syncthing reports the folder 100 %
//! complete for the target's device, and the target's hash of the conversation,
//! from its `GET /api/v1/sessions/{id}`, equals this node's; a rescan of the
//! conversation is asked for first so this takes about a second), then resends
//! `Accept` every second until the target answers or the timeout: then
//! `Timeout` asks the target to abort, and the HandoffPolicy reconciler keeps
//! asking until it answers. The outcome comes through the notices, wherever
//! the step that makes them runs (the target's `Accepted` arrives at the API).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use tokio::time::Instant;

use super::wire::HandoffRequest;
use super::{ApiError, ApiState};
use crate::client::ApiClient;
use crate::controller::Shared;
use crate::handoff::folder;
use crate::handoff::protocol::{HandoffId, Input, Notice, Phase, Stage, Step};
use crate::handoff::store::Progress;
use crate::manifest::{Kind, ManifestSet};
use crate::reconcile::handoff::{carry_out, failed_step, home, peer_of};

/// How often the barrier is looked at, and `Accept` resent.
const POLL: Duration = Duration::from_millis(300);
const RESEND_EVERY: Duration = Duration::from_secs(1);
/// How long one call to the target may take.
const PEER_TIMEOUT: Duration = Duration::from_secs(3);

/// Where a conversation is on this node.
struct Conversation {
    policy: String,
    id: String,
    dir: PathBuf,
    folder_id: String,
    /// `<sessionsDir>/<id>`, relative to the SyncFolder.
    sub: String,
}

fn find(set: &ManifestSet, node: &str, shared: &Shared, id: &str) -> Option<Conversation> {
    for (policy, object) in &set.handoff_policies {
        if shared.handoff.record(policy, id).is_none() {
            continue;
        }
        let root = folder::sessions_root(set, policy, node, &home())?;
        let sync_folder = set.sync_folders.get(&object.spec.sync_folder.value)?;
        let sessions_dir = object.spec.sessions_dir.value.trim_matches('/');
        return Some(Conversation {
            policy: policy.clone(),
            id: id.to_owned(),
            dir: root.join(id),
            folder_id: sync_folder.spec.folder_id_or(sync_folder.name()).to_owned(),
            sub: format!("{sessions_dir}/{id}"),
        });
    }
    None
}

fn conflict(error: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, error, message)
}

/// Emits a step's notices as events of the conversation's policy.
fn emit(shared: &Shared, policy: &str, events: Vec<(bool, &'static str, String)>) {
    let object = format!("{}/{policy}", Kind::HandoffPolicy);
    let mut inner = shared.lock();
    for (warning, reason, message) in events {
        inner.status.event(warning, reason, &object, message);
    }
}

fn carry(shared: &Shared, conversation: &Conversation, step: Step) {
    let key = shared.api_key.get();
    let events = carry_out(
        &shared.handoff,
        &shared.peers,
        &key,
        (&conversation.policy, &conversation.id),
        Some(&conversation.dir),
        step,
    );
    emit(shared, &conversation.policy, events);
}

fn step(shared: &Shared, conversation: &Conversation, input: Input) -> Result<Step, ApiError> {
    shared
        .handoff
        .step(&conversation.policy, &conversation.id, input)
        .map_err(|error| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "state_not_saved", error.to_string()))?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no record of the conversation"))
}

pub async fn start(
    State(state): State<ApiState>,
    body: Result<Json<HandoffRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Progress>), ApiError> {
    let Json(request) = body?;
    folder::check_conversation_id(&request.id).map_err(super::bad_request)?;
    let shared = state.shared.clone();
    let Some(set) = shared.applied_set() else {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "no manifests are in force yet"));
    };
    let node = shared.node.clone();
    let conversation = find(&set, &node, &shared, &request.id).ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no conversation {} on this node", request.id))
    })?;
    let spec = set.handoff_policies[&conversation.policy].spec.clone();
    let record = shared.handoff.record(&conversation.policy, &conversation.id).ok_or_else(|| no_record(&request.id))?;
    let mut progress = Progress {
        policy: conversation.policy.clone(),
        conversation: conversation.id.clone(),
        owner: record.owner.clone(),
        epoch: record.epoch,
        ..Progress::default()
    };

    if request.force {
        if !spec.allow_force {
            let message = format!("HandoffPolicy/{} does not allow --force (allowForce: false)", conversation.policy);
            return Err(ApiError::new(StatusCode::FORBIDDEN, "force_not_allowed", message));
        }
        if shared.peers.get(&record.owner).is_some_and(|peer| peer.online) {
            let message =
                format!("{} owns {} and is online: hand it over from there instead", record.owner, request.id);
            return Err(conflict("owner_online", message));
        }
        let taken = step(&shared, &conversation, Input::Force)?;
        if let Some(Notice::Rejected { reason }) = taken.notices.first() {
            return Err(conflict("rejected", failed_step(reason).1));
        }
        carry(&shared, &conversation, taken);
        let now =
            shared.handoff.record(&conversation.policy, &conversation.id).ok_or_else(|| no_record(&request.id))?;
        progress.target.clone_from(&node);
        progress.message = Some(format!("taken over: {node} owns {} at epoch {}", request.id, now.epoch));
        (progress.done, progress.succeeded, progress.owner, progress.epoch) = (true, true, now.owner, now.epoch);
        return Ok((StatusCode::OK, Json(progress)));
    }

    let target = request
        .to
        .clone()
        .or_else(|| spec.default_target.as_ref().map(|target| target.value.clone()))
        .or_else(|| peer_of(&set, &conversation.policy, &node))
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "no_target", "no --to, no defaultTarget, no peer"))?;
    let timeout = match &request.timeout {
        Some(text) => {
            crate::manifest::DurationSpec::parse(text)
                .map_err(|error| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", error))?
                .duration
        }
        None => spec.timeout.duration,
    };
    if target != node {
        let Some(peer) = shared.peers.get(&target) else {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "unknown_node", format!("{target} is not a peer")));
        };
        // A peer the prober has not reached yet (this daemon just started)
        // is asked now, so an offline one is refused here too, not at the barrier.
        let never_probed = !peer.online && peer.last_error.is_none();
        let unanswered = match never_probed {
            true => ApiClient::new(&peer.authority(), None, PEER_TIMEOUT).health().await.err().map(|e| e.to_string()),
            false => None,
        };
        if shared.peers.known_down(&target) || unanswered.is_some() {
            let why = unanswered.or(peer.last_error).unwrap_or_else(|| "it does not answer".into());
            let message = format!(
                "{target} is offline ({why}): refused at once; {} stays with {} at epoch {}",
                request.id, record.owner, record.epoch
            );
            return Err(conflict("target_offline", message));
        }
    }

    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
    let handoff = HandoffId(format!("{node}-{millis}"));
    progress.handoff = handoff.0.clone();
    progress.target = target.clone();
    progress.timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    let begun = progress.clone();
    shared.handoff.begin(progress);
    let started =
        step(&shared, &conversation, Input::StartHandoff { handoff: handoff.clone(), target: target.clone() })?;
    if let Some(Notice::Rejected { reason }) = started.notices.first() {
        let (step, why) = failed_step(reason);
        return Err(conflict("rejected", format!("refused at the {step} step: {why}")));
    }
    let check_barrier = started.check_barrier.is_some();
    carry(&shared, &conversation, started);
    if check_barrier {
        let driver = Driver { shared: shared.clone(), conversation, handoff: handoff.clone(), target, timeout };
        tokio::spawn(driver.run(spec.require_in_sync));
    }
    // Gone only when 64 more handoffs began meanwhile; its progress then is
    // what was known when it began.
    let progress = shared.handoff.progress(&handoff.0).unwrap_or(begun);
    Ok((StatusCode::ACCEPTED, Json(progress)))
}

fn no_record(id: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no record of conversation {id} on this node"))
}

/// A handoff id that no handoff can have is a bad request; one that was not
/// started here is not found.
pub async fn progress(
    State(state): State<ApiState>,
    handoff: Result<Path<String>, PathRejection>,
) -> Result<Json<Progress>, ApiError> {
    let Path(handoff) = handoff?;
    folder::check_id("handoff id", &handoff).map_err(super::bad_request)?;
    state
        .shared
        .handoff
        .progress(&handoff)
        .map(Json)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no handoff {handoff} started here")))
}

/// The files of the conversation folder `dir` changed after its freeze marker
/// was written: an agent that did not stop at `handoff.freeze`.
fn written_after_freeze(dir: &std::path::Path) -> Vec<String> {
    let Ok(marker) = std::fs::metadata(crate::reconcile::handoff::marker(dir)) else { return Vec::new() };
    let frozen_at = folder::Stat::of(&marker).mtime_ns;
    let files = folder::files_if_any(dir).unwrap_or_default();
    files.into_iter().filter(|(_, stat)| stat.mtime_ns > frozen_at).map(|(path, _)| path).collect()
}

struct Driver {
    shared: Arc<Shared>,
    conversation: Conversation,
    handoff: HandoffId,
    target: String,
    timeout: Duration,
}

impl Driver {
    async fn run(self, require_in_sync: bool) {
        let deadline = Instant::now() + self.timeout;
        let barrier = if require_in_sync { self.barrier(deadline).await } else { Ok(()) };
        let input = match barrier {
            Ok(()) => {
                let late = written_after_freeze(&self.conversation.dir);
                if !late.is_empty() {
                    let files = late.join(", ");
                    self.note(format!("barrier: written after the freeze, handed over with the rest: {files}"));
                    let message = format!(
                        "conversation {}: {files} written after the freeze for handoff {}; handed over with the rest",
                        self.conversation.id, self.handoff
                    );
                    emit(&self.shared, &self.conversation.policy, vec![(true, "handoff.lateWrite", message)]);
                }
                self.note("barrier: the target holds the same content; asking it to accept".into());
                Input::BarrierPassed { handoff: self.handoff.clone() }
            }
            Err(why) => {
                self.note(format!("barrier: {why}"));
                Input::BarrierFailed { handoff: self.handoff.clone() }
            }
        };
        if !self.feed(input) {
            return;
        }
        let mut last_sent = Instant::now();
        loop {
            tokio::time::sleep(POLL).await;
            let record = self.shared.handoff.record(&self.conversation.policy, &self.conversation.id);
            let accepting = record.is_some_and(|record| {
                matches!(record.phase, Phase::Frozen { handoff, stage: Stage::Accepting, .. } if handoff == self.handoff)
            });
            if !accepting {
                return;
            }
            if Instant::now() >= deadline {
                self.note("accept: no answer in time; asking the target to abort".into());
                self.feed(Input::Timeout);
                return;
            }
            if last_sent.elapsed() >= RESEND_EVERY {
                last_sent = Instant::now();
                let again = Input::StartHandoff { handoff: self.handoff.clone(), target: self.target.clone() };
                self.feed(again);
            }
        }
    }

    fn note(&self, line: String) {
        self.shared.handoff.note(&self.handoff.0, line);
    }

    /// Steps and carries out; false when the record could not be persisted.
    fn feed(&self, input: Input) -> bool {
        match step(&self.shared, &self.conversation, input) {
            Ok(step) => {
                carry(&self.shared, &self.conversation, step);
                true
            }
            Err(error) => {
                let message = format!("cannot persist the record: {}", error.body.message);
                self.shared.handoff.finish(&self.handoff.0, Some("freeze"), message);
                false
            }
        }
    }

    /// Until `deadline`: Syncthing reports the folder complete for the target,
    /// and the target's hash of the conversation equals this node's.
    async fn barrier(&self, deadline: Instant) -> Result<(), String> {
        let shared = &self.shared;
        let set = shared.applied_set().ok_or("no manifests are in force")?;
        let (syncthing, _) = crate::reconcile::sync_folder::this_node_client(&set, &shared.node, &shared.env())
            .map_err(|e| e.message)?;
        let peer = shared.peers.get(&self.target).ok_or_else(|| format!("{} is not a peer", self.target))?;
        let key = shared.api_key.get();
        let client = ApiClient::new(&peer.authority(), key.as_deref(), PEER_TIMEOUT);
        let (folder_id, sub) = (&self.conversation.folder_id, &self.conversation.sub);
        let _ = syncthing.scan_sub(folder_id, sub).await;
        let mut device = None;
        let mut why = String::from("not checked");
        while Instant::now() < deadline {
            if device.is_none() {
                match client.syncthing_device().await {
                    Ok(found) => device = Some(found.device_id),
                    Err(error) => why = format!("cannot learn {}'s Syncthing device: {error}", self.target),
                }
            }
            if let Some(device) = &device {
                match self.check(&syncthing, &client, device).await {
                    Ok(()) => return Ok(()),
                    Err(reason) => why = reason,
                }
            }
            tokio::time::sleep(POLL).await;
        }
        Err(format!("not passed within {}: {why}", humantime::format_duration(self.timeout)))
    }

    async fn check(
        &self,
        syncthing: &crate::syncthing::Client,
        client: &ApiClient,
        device: &str,
    ) -> Result<(), String> {
        let completion = syncthing
            .completion(&self.conversation.folder_id, device)
            .await
            .map_err(|error| format!("cannot read Syncthing's completion: {error}"))?;
        if completion.completion < 100.0 {
            return Err(format!("Syncthing reports the target {:.0}% complete", completion.completion));
        }
        let dir = self.conversation.dir.clone();
        let ours = tokio::task::spawn_blocking(move || folder::content(&dir))
            .await
            .map_err(|error| error.to_string())?
            .map_err(|error| format!("cannot hash the conversation here: {error}"))?;
        let theirs = client
            .session(&self.conversation.id)
            .await
            .map_err(|error| format!("cannot ask {} for its hash: {error}", self.target))?;
        if theirs.hash.as_deref() != Some(ours.hash.as_str()) {
            return Err(format!("{}'s content differs from this node's", self.target));
        }
        Ok(())
    }
}
