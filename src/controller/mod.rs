//! The node controller (design section 4): one loop that consumes a closed set
//! of inputs — snapshots from the sources, bundles from `apply`, unit changes
//! from the supervisor, finished reconciles, timers — keeps the last known good
//! set, and hands object keys from the work queue to the reconcilers, a bounded
//! number at a time. Service output does not pass through it: the supervisor
//! sends it to the status stream.

pub(crate) mod queue;
pub(crate) mod shared;
pub(crate) mod state;
pub(crate) mod status;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use self::queue::WorkQueue;
pub(crate) use self::shared::{Events, InForce, Shared};
use self::state::ControllerState;
use self::status::{ObjectKey, StatusStore, StatusStream};
use crate::api::wire::Plan;
use crate::api_key::{self, ApiKey};
use crate::backoff::{Jitter, KeyedBackoff, Policy};
use crate::diagnostic::Diagnostic;
use crate::event::Event;
use crate::handoff::store::HandoffStore;
use crate::identity::{NODE_ID, NodeEnv};
use crate::manifest::Bundle;
use crate::manifest::kinds::ReconcileSettings;
use crate::manifest::{self, ManifestSet};
use crate::mesh::peers::{PeerState, Peers};
use crate::mesh::placement::Placements;
use crate::mesh::prober::AppliedRevision;
use crate::metrics::Metrics;
use crate::ollama::pulls::ModelPulls;
use crate::reconcile::client_env::ClientEnvFile;
use crate::reconcile::plan;
use crate::reconcile::sync_folder::SyncState;
use crate::reconcile::{self, Context, Handles, Outcome, ReconcileError};
use crate::source::{Snapshot, SourceUpdate};
use crate::supervisor::{Supervisor, UnitChanged};
use crate::syncthing::events::Notice;
use crate::tasks::TaskSet;

/// At most this many reconciles run at once.
const MAX_CONCURRENT_RECONCILES: usize = 4;
/// Backoff of a failing object: from 1 s, doubling up to 5 minutes.
const RETRY: Policy = Policy::new(Duration::from_secs(1), Duration::from_secs(300));
/// How the Git source names itself in a snapshot's origin.
const GIT_ORIGIN_PREFIX: &str = "git ";
/// Resync when no Mesh says otherwise.
const DEFAULT_RESYNC: Duration = Duration::from_secs(300);

/// Everything the controller reacts to.
pub(crate) enum Input {
    Source(SourceUpdate),
    Apply {
        bundle: Bundle,
        reply: oneshot::Sender<Result<Plan, Vec<Diagnostic>>>,
    },
    ReconcileAll,
    /// Stop handing keys to reconcilers; sources and triggers still fill the queue.
    Pause,
    Resume,
    /// SIGHUP: the node's settings were read again.
    Reload(NodeEnv),
}

/// A reconcile that finished, as its task returns it.
struct Reconciled {
    key: ObjectKey,
    result: Result<Outcome, ReconcileError>,
    revision: String,
    took: Duration,
}

pub(crate) struct Controller {
    shared: Arc<Shared>,
    handles: Arc<Handles>,
    /// The set in force, as published in `shared`.
    applied: Option<InForce>,
    paused: bool,
    /// Each revision that becomes the set in force, for the prober to nudge
    /// peers when it came from Git.
    applied_revisions: watch::Sender<Option<AppliedRevision>>,
    /// The settle time of the Mesh in force (`reconcile.settleTime`), which
    /// the folder source waits for before a file that shrank takes effect.
    settle_time: watch::Sender<Duration>,
    state_dir: std::path::PathBuf,
    state: ControllerState,
    inbox: mpsc::Receiver<Input>,
    /// The supervisor's units that changed (bounded: the supervisor's).
    unit_changes: mpsc::Receiver<UnitChanged>,
    /// The reconciles under way; each returns its result here.
    reconciles: JoinSet<Reconciled>,
    queue: WorkQueue<ObjectKey>,
    backoff: KeyedBackoff<ObjectKey>,
    /// The last error message per object, so a failure repeating is logged once.
    failing: HashMap<ObjectKey, String>,
    resync_every: Duration,
    next_resync: Instant,
    /// Each Service's restart count when last seen, so a restart is counted once.
    restarts_seen: HashMap<String, u32>,
    /// Syncthing's events, told by the follower the SyncFolder reconciler runs.
    syncthing_notices: mpsc::Receiver<Notice>,
    /// Changes when a peer goes online or offline, or serves a capability
    /// elsewhere.
    peer_changes: watch::Receiver<u64>,
}

impl Controller {
    /// A controller for `node` that reads the changes of `supervisor`'s units
    /// from `unit_changes` and reports to `stream` (which the supervisor sends
    /// Service output to), and the sender its sources and API use.
    pub(crate) fn new(
        node: String,
        env: Arc<NodeEnv>,
        supervisor: Supervisor,
        unit_changes: mpsc::Receiver<UnitChanged>,
        stream: StatusStream,
        state_dir: std::path::PathBuf,
    ) -> (Controller, mpsc::Sender<Input>) {
        let (outbox, inbox) = mpsc::channel(256);
        // Without a Mesh, the key can only come from MESH_API_KEY, which cannot fail.
        let api_key = ApiKey::new(api_key::resolve(&env, None).unwrap_or_default());
        let (notices, syncthing_notices) = mpsc::channel(4);
        let metrics = Metrics::default();
        let handles = Arc::new(Handles {
            syncthing: Arc::new(SyncState::load(&state_dir, notices)),
            handoff: Arc::new(HandoffStore::load(&state_dir, &node).counting_into(metrics.clone())),
            node: node.clone(),
            supervisor,
            peers: Peers::default(),
            api_key,
            placements: Placements::default(),
            client_env: ClientEnvFile::in_state_dir(&state_dir),
            pulls: ModelPulls::default(),
            handoff_tasks: TaskSet::default(),
        });
        let peer_changes = handles.peers.changes();
        let shared = Arc::new(Shared::new(node, env, StatusStore::new(stream), metrics));
        let state = ControllerState::load(&state_dir);
        let controller = Controller {
            shared,
            handles,
            applied: None,
            paused: false,
            applied_revisions: watch::channel(None).0,
            settle_time: watch::channel(ReconcileSettings::default().settle_time.duration).0,
            state_dir,
            state,
            inbox,
            unit_changes,
            reconciles: JoinSet::new(),
            queue: WorkQueue::default(),
            backoff: KeyedBackoff::new(RETRY, Jitter::random()),
            failing: HashMap::new(),
            resync_every: DEFAULT_RESYNC,
            next_resync: Instant::now() + DEFAULT_RESYNC,
            restarts_seen: HashMap::new(),
            syncthing_notices,
            peer_changes,
        };
        (controller, outbox)
    }

    /// What the API and the daemon read of the controller.
    pub(crate) fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// The handles the reconcilers act with, for the parts of the daemon
    /// that act on the same peers, placements and stores.
    pub(crate) fn handles(&self) -> Arc<Handles> {
        self.handles.clone()
    }

    /// Follows the settle time of the Mesh in force.
    pub(crate) fn settle_times(&self) -> watch::Receiver<Duration> {
        self.settle_time.subscribe()
    }

    /// Follows each revision that becomes the set in force.
    pub(crate) fn applied_revisions(&self) -> watch::Receiver<Option<AppliedRevision>> {
        self.applied_revisions.subscribe()
    }

    /// Runs until `shutdown` resolves, then lets the reconciles under way
    /// finish (so none starts a process after this), stops every supervised
    /// process and cancels the model pulls.
    pub(crate) async fn run(mut self, shutdown: impl Future<Output = ()>) {
        self.resume_last_applied().await;
        tokio::pin!(shutdown);
        loop {
            self.dispatch_due();
            // While paused, due keys wait; waking for them would only spin.
            let next_due = if self.paused { None } else { self.queue.next_due() };
            tokio::select! {
                () = &mut shutdown => break,
                input = self.inbox.recv() => match input {
                    Some(input) => self.handle(input).await,
                    None => break,
                },
                Some(change) = self.unit_changes.recv() => self.on_unit_changed(change),
                Some(finished) = self.reconciles.join_next() => self.on_reconcile_task(finished),
                Some(notice) = self.syncthing_notices.recv() => self.on_syncthing(notice),
                Ok(()) = self.peer_changes.changed() => self.on_peer_changed(),
                () = tokio::time::sleep_until(next_due.unwrap_or(self.next_resync)), if next_due.is_some() => {}
                () = tokio::time::sleep_until(self.next_resync) => {
                    self.next_resync = Instant::now() + self.resync_every;
                    self.schedule_all();
                }
            }
        }
        self.shut_down().await;
    }

    /// Stops in order: nothing new reaches the loop, the reconciles under way
    /// finish, then the handoff tasks, the Syncthing event follower, and the
    /// processes and model pulls the reconciles asked for are stopped.
    async fn shut_down(&mut self) {
        // Units that change while stopping must not wait for a loop that ended.
        self.unit_changes.close();
        while let Some(finished) = self.reconciles.join_next().await {
            self.on_reconcile_task(finished);
        }
        self.handles.handoff_tasks.shutdown().await;
        self.handles.syncthing.stop_following();
        self.handles.supervisor.shutdown().await;
        self.handles.pulls.cancel_all().await;
        self.shared.status().close_stream();
    }

    /// A restarted controller runs what it applied last, until a source speaks.
    async fn resume_last_applied(&mut self) {
        let Some(bundle) = self.state.applied.clone() else { return };
        let origin = self.state.applied_origin.clone().unwrap_or_else(|| "state".into());
        let files = bundle.source_files();
        let snapshot = Snapshot { revision: bundle.revision, files, problems: Vec::new(), origin };
        let _ = self.apply_snapshot(snapshot).await;
    }

    async fn handle(&mut self, input: Input) {
        match input {
            Input::Source(SourceUpdate::Snapshot(snapshot)) => self.on_source_snapshot(snapshot).await,
            Input::Source(SourceUpdate::Unavailable { origin, message }) => {
                self.shared.events().record(
                    "",
                    Event::warning("SourceUnavailable", format!("{origin}: {message}; keeping the last good revision")),
                );
            }
            Input::Source(SourceUpdate::Notice { origin, message }) => {
                self.shared.events().record("", Event::normal("SourceNotice", format!("{origin}: {message}")));
            }
            Input::Apply { bundle, reply } => {
                let snapshot = Snapshot {
                    revision: bundle.revision.clone(),
                    files: bundle.source_files(),
                    problems: Vec::new(),
                    origin: "apply".into(),
                };
                let result = self.apply_snapshot(snapshot).await;
                let _ = reply.send(result);
            }
            Input::ReconcileAll => {
                self.shared.events().record("", Event::normal("ReconcileRequested", "reconciling every object now"));
                self.schedule_all();
            }
            Input::Reload(env) => self.reload(env),
            Input::Pause => self.set_paused(true),
            Input::Resume => self.set_paused(false),
        }
    }

    /// The supervisor logged the change at info level already.
    /// A Service started, exited or changed health: its status, and where
    /// each capability is served (its endpoint may be that Service's), are
    /// looked at again now.
    fn on_unit_changed(&mut self, change: UnitChanged) {
        self.count_restarts(&change.service);
        self.queue.schedule(ObjectKey::new(manifest::Kind::Service, change.service), Instant::now());
        self.schedule_kinds(&[manifest::Kind::Capability]);
    }

    /// A reconcile task ended. A panic (a bug) was reported by the panic hook
    /// already; the loop goes on without that result.
    fn on_reconcile_task(&mut self, finished: Result<Reconciled, tokio::task::JoinError>) {
        let Ok(Reconciled { key, result, revision, took }) = finished else { return };
        self.shared.metrics().reconciled(key.kind.as_str(), result.is_ok(), took);
        self.on_reconciled(key, result, &revision);
    }

    /// A peer went online or offline, or serves a capability elsewhere: who
    /// serves each capability and what each handoff may do are decided again
    /// now, not at their next recheck.
    fn on_peer_changed(&mut self) {
        self.schedule_kinds(&[manifest::Kind::Capability, manifest::Kind::HandoffPolicy]);
    }

    /// Syncthing's config or a folder's state changed, or Syncthing is back:
    /// every SyncFolder is looked at again (drift is put back at once). Files
    /// changed: every HandoffPolicy is (an owner keeps stale writes aside).
    fn on_syncthing(&mut self, notice: Notice) {
        if notice == Notice::Back {
            tracing::info!("Syncthing answers again");
        }
        match notice {
            Notice::Files => self.schedule_kinds(&[manifest::Kind::HandoffPolicy]),
            Notice::Changed | Notice::Back => {
                self.schedule_kinds(&[manifest::Kind::SyncFolder, manifest::Kind::HandoffPolicy]);
            }
        }
    }

    /// Puts newly read settings in place and reconciles every object with them:
    /// only what they change is touched (a Service whose rendered env is the
    /// same keeps running). The node's name, listen address and state folder
    /// are fixed for the process's life.
    fn reload(&mut self, env: NodeEnv) {
        let before = self.shared.env();
        let fixed: Vec<&str> = [NODE_ID, "MESH_LISTEN", "MESH_STATE_DIR", "MESH_MANIFESTS", "MESH_GIT_REMOTE"]
            .into_iter()
            .filter(|name| before.get(name).map(|s| &s.value) != env.get(name).map(|s| &s.value))
            .collect();
        self.shared.replace_env(env);
        let events = self.shared.events();
        if !fixed.is_empty() {
            events.record(
                "",
                Event::warning(
                    "RestartNeeded",
                    format!("{} changed in the settings; they take effect when the daemon restarts", fixed.join(", ")),
                ),
            );
        }
        events.record("", Event::normal("Reloaded", "settings read again; reconciling every object"));
        if let Some(set) = self.applied.as_ref().map(|applied| applied.set.clone()) {
            self.put_api_key_in_force(&set);
        } else if let Ok(key) = api_key::resolve(&self.shared.env(), None) {
            self.handles.api_key.replace(key);
        }
        self.schedule_all();
    }

    fn set_paused(&mut self, paused: bool) {
        if self.paused == paused {
            return;
        }
        self.paused = paused;
        self.shared.set_paused(paused);
        let (reason, message) = if paused {
            ("Paused", format!("reconciles paused; {} object(s) waiting", self.queue.waiting()))
        } else {
            ("Resumed", format!("reconciles resumed; {} object(s) waiting", self.queue.waiting()))
        };
        self.shared.events().record("", Event::normal(reason, message));
    }

    /// Counts the restarts a unit made since its status was last seen: the
    /// supervisor restarts a process on its own and only tells us it changed.
    fn count_restarts(&mut self, service: &str) {
        let Some(unit) = self.handles.supervisor.status(service) else {
            self.restarts_seen.remove(service);
            return;
        };
        let seen = self.restarts_seen.insert(service.to_owned(), unit.restarts).unwrap_or(0);
        // A unit started anew (a changed spec) counts from zero again.
        for _ in seen..unit.restarts {
            self.shared.metrics().service_restarted(service);
        }
        if unit.restarts > seen {
            let exit = unit.last_exit.as_deref().unwrap_or("it exited");
            self.shared.events().record(
                &ObjectKey::new(manifest::Kind::Service, service).to_string(),
                Event::warning("Restarted", format!("{exit}; restart {}", unit.restarts)),
            );
        }
    }

    /// A snapshot from the folder or Git. An applied bundle is kept until the
    /// source moves to a revision it had not produced before.
    async fn on_source_snapshot(&mut self, snapshot: Snapshot) {
        if snapshot.origin.starts_with(GIT_ORIGIN_PREFIX) {
            self.shared.set_followed(snapshot.clone());
        }
        let seen_before = self.state.source_revision.as_deref() == Some(snapshot.revision.as_str());
        let applied_by_hand = self.state.applied_origin.as_deref() == Some("apply");
        if seen_before && applied_by_hand {
            tracing::info!(
                revision = snapshot.revision,
                "keeping the applied bundle until the source has a new revision"
            );
            return;
        }
        self.state.source_revision = Some(snapshot.revision.clone());
        let unchanged =
            self.applied.as_ref().is_some_and(|a| a.revision == snapshot.revision && a.origin == snapshot.origin);
        if unchanged {
            // The source is back at the set in force (a bad edit was undone):
            // nothing it offers is rejected any more.
            self.shared.set_last_error(None);
            self.save_state().await;
            return;
        }
        let _ = self.apply_snapshot(snapshot).await;
    }

    /// Validates `snapshot` (on a blocking thread); when valid it becomes the
    /// set in force and every object of the old and new sets is reconciled.
    /// Returns the plan, or the errors that kept it out.
    async fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<Plan, Vec<Diagnostic>> {
        let node = self.handles.node.clone();
        let (snapshot, validated) = validate_off_runtime(snapshot, self.shared.env()).await;
        let set = match validated {
            Ok(set) => set,
            Err(errors) => {
                let kept = self
                    .applied
                    .as_ref()
                    .map_or_else(|| "nothing applied yet".to_owned(), |a| format!("keeping {}", a.revision));
                let first_lines: Vec<String> =
                    errors.iter().map(|d| d.to_string().lines().next().unwrap_or_default().to_owned()).collect();
                self.shared.events().record(
                    "",
                    Event::warning(
                        "SnapshotRejected",
                        format!(
                            "revision {} from {} has {} error(s); {kept}:\n{}",
                            snapshot.revision,
                            snapshot.origin,
                            errors.len(),
                            first_lines.join("\n")
                        ),
                    ),
                );
                self.shared.set_last_error(Some(first_lines.join("\n")));
                self.shared.metrics().snapshot(false);
                return Err(errors);
            }
        };
        let set = Arc::new(set);
        let supervisor = &self.handles.supervisor;
        let current = self.applied.as_ref().map(|a| (a.set.as_ref(), a.revision.as_str()));
        let plan =
            plan::plan(current, (&set, &snapshot.revision), &node, &self.shared.env(), |name| supervisor.status(name));
        let mut keys = reconcile::keys(&set, &node);
        if let Some(old) = &self.applied {
            keys.extend(reconcile::keys(&old.set, &node));
        }
        keys.extend(supervisor.services().into_iter().map(|name| ObjectKey::new(manifest::Kind::Service, name)));
        let events = self.shared.events();
        events.record("", Event::normal("Applied", format!("revision {} from {}", snapshot.revision, snapshot.origin)));
        self.shared.set_last_error(None);
        self.shared.metrics().snapshot(true);
        let bundle = Bundle::from_files(snapshot.revision.clone(), &snapshot.files);
        self.resync_every = set.mesh.as_ref().map_or(DEFAULT_RESYNC, |m| m.spec.reconcile.resync_interval.duration);
        self.next_resync = Instant::now() + self.resync_every;
        let reconcile = set.mesh.as_ref().map(|m| m.spec.reconcile.clone()).unwrap_or_default();
        self.settle_time.send_replace(reconcile.settle_time.duration);
        let peers = set
            .nodes
            .values()
            .filter(|n| n.name() != node)
            .map(|n| PeerState::new(n.name(), Some(n.spec.role), &n.spec.address.value, n.spec.api_port.0))
            .collect();
        self.handles.peers.set_members(peers);
        self.put_api_key_in_force(&set);
        let from_git = snapshot.origin.starts_with(GIT_ORIGIN_PREFIX);
        self.applied_revisions.send_replace(Some(AppliedRevision { revision: snapshot.revision.clone(), from_git }));
        let in_force = InForce { revision: snapshot.revision, origin: snapshot.origin.clone(), set };
        self.applied = Some(in_force.clone());
        self.state.applied = Some(bundle);
        self.state.applied_origin = Some(snapshot.origin);
        let now = Instant::now();
        for key in keys {
            self.queue.schedule(key, now);
        }
        self.save_state().await;
        // Last: a reader that sees the revision in force knows its objects are queued.
        self.shared.publish(in_force);
        Ok(plan)
    }

    /// Reads the key where the Mesh of `set` points; a key that cannot be read
    /// keeps the one in force, and no key at all is a warning unless Tailscale
    /// identity auth lets callers in.
    fn put_api_key_in_force(&self, set: &ManifestSet) {
        let mesh = set.mesh.as_ref().map(|mesh| &mesh.spec);
        let events = self.shared.events();
        match api_key::resolve(&self.shared.env(), mesh) {
            Ok(key) => {
                let had_key = self.handles.api_key.get().is_some();
                let present = key.is_some();
                if self.handles.api_key.replace(key) && had_key && present {
                    events.record("", Event::normal("ApiKeyChanged", "the mesh API key in force changed"));
                }
                let identity_auth = mesh.is_some_and(|mesh| mesh.auth.tailscale_identity.enabled);
                if !present && !identity_auth {
                    events.record(
                        "",
                        Event::warning(
                            "NoApiKey",
                            format!(
                                "no mesh API key ({} is not set) and Tailscale identity auth is off: \
                             every endpoint but /mesh/health refuses callers",
                                api_key::MESH_API_KEY
                            ),
                        ),
                    );
                }
            }
            Err(error) => {
                events.record("", Event::warning("ApiKeyUnreadable", format!("{error}; keeping the key in force")));
            }
        }
    }

    /// Writes the controller's state (with an fsync) on a blocking thread.
    async fn save_state(&self) {
        let (state, dir) = (self.state.clone(), self.state_dir.clone());
        let saved = tokio::task::spawn_blocking(move || state.save(&dir)).await.map_err(std::io::Error::other);
        if let Err(error) = saved.and_then(|saved| saved) {
            self.shared.events().record(
                "",
                Event::warning("StateNotSaved", format!("cannot write {}: {error}", self.state_dir.display())),
            );
        }
    }

    /// Every object of `kinds` in the set in force, due now.
    fn schedule_kinds(&mut self, kinds: &[manifest::Kind]) {
        let Some(applied) = &self.applied else { return };
        let keys: Vec<ObjectKey> = kinds
            .iter()
            .flat_map(|&kind| applied.set.names(kind).into_iter().map(move |name| ObjectKey::new(kind, name)))
            .collect();
        let now = Instant::now();
        for key in keys {
            self.queue.schedule(key, now);
        }
    }

    fn schedule_all(&mut self) {
        let Some(applied) = &self.applied else { return };
        let mut keys = reconcile::keys(&applied.set, &self.handles.node);
        keys.extend(
            self.handles.supervisor.services().into_iter().map(|name| ObjectKey::new(manifest::Kind::Service, name)),
        );
        let now = Instant::now();
        for key in keys {
            self.queue.schedule(key, now);
        }
    }

    /// Hands due keys to reconcile tasks while there is room.
    fn dispatch_due(&mut self) {
        if self.paused {
            return;
        }
        let Some(applied) = &self.applied else { return };
        while self.queue.running() < MAX_CONCURRENT_RECONCILES {
            let Some(key) = self.queue.pop_due(Instant::now()) else { break };
            let ctx = Context {
                set: applied.set.clone(),
                revision: applied.revision.clone(),
                env: self.shared.env(),
                handles: self.handles.clone(),
            };
            self.reconciles.spawn(async move {
                let started = Instant::now();
                let result = reconcile::reconcile(&key, &ctx).await;
                Reconciled { key, result, revision: ctx.revision, took: started.elapsed() }
            });
        }
    }

    fn on_reconciled(&mut self, key: ObjectKey, result: Result<Outcome, ReconcileError>, revision: &str) {
        let object = key.to_string();
        let now = Instant::now();
        let events = self.shared.events();
        match result {
            Ok(outcome) => {
                self.backoff.succeeded(&key);
                if self.failing.remove(&key).is_some() {
                    events.record(&object, Event::normal("Recovered", "reconciles again"));
                }
                for event in outcome.events {
                    events.record(&object, event);
                }
                let mut status = self.shared.status();
                if outcome.tracked {
                    status.set(&key, outcome.conditions, outcome.details, revision);
                } else {
                    status.remove(&key);
                }
                drop(status);
                self.queue.finish(&key, outcome.requeue_after.map(|d| now + d));
            }
            Err(error) => {
                let delay = self.backoff.failed(key.clone());
                if self.failing.get(&key) != Some(&error.message) {
                    events.record(&object, Event::warning(error.reason, format!("{error}; retrying with backoff")));
                    self.failing.insert(key.clone(), error.message.clone());
                }
                self.shared.status().set(&key, error.conditions(), BTreeMap::new(), revision);
                self.queue.finish(&key, Some(now + delay));
            }
        }
    }
}

/// [`validate_for_node`] on a blocking thread: validating a whole set is too
/// much work for the runtime's threads. Gives the snapshot back with the result.
pub(crate) async fn validate_off_runtime(
    snapshot: Snapshot,
    env: Arc<NodeEnv>,
) -> (Snapshot, Result<ManifestSet, Vec<Diagnostic>>) {
    let validated = tokio::task::spawn_blocking(move || {
        let result = validate_for_node(&snapshot, &env);
        (snapshot, result)
    })
    .await;
    validated.unwrap_or_else(|failed| std::panic::resume_unwind(failed.into_panic()))
}

/// Checks a snapshot as a set for this node: the manifests, the files that could
/// not be read, and that this node is one of the set's Nodes.
fn validate_for_node(snapshot: &Snapshot, env: &NodeEnv) -> Result<ManifestSet, Vec<Diagnostic>> {
    let mut validation = manifest::validate(&snapshot.files, snapshot.problems.clone());
    let identity: Vec<Diagnostic> =
        env.check_identity(&validation.set).into_iter().filter(|d| d.object == NODE_ID && d.is_error()).collect();
    validation.extend(identity, &snapshot.files);
    if validation.is_valid() {
        Ok(validation.set)
    } else {
        Err(validation.diagnostics.into_iter().filter(Diagnostic::is_error).collect())
    }
}

#[cfg(test)]
mod tests;
