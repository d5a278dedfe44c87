//! `meshctl daemon`: assembles the controller, its sources, the supervisor and
//! the API, and runs them until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use axum::Router;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use crate::api::{self, ApiState};
use crate::config::{self, DaemonConfig, GitSettings};
use crate::controller::status::StatusStream;
use crate::controller::{Controller, InForce, Input, Shared};
use crate::descriptor_limit;
use crate::event::EventSink;
use crate::identity::NodeEnv;
use crate::mesh::failover::Failover;
use crate::mesh::joined::JoinedPeers;
use crate::mesh::prober::{self, AppliedRevision, HttpProbe, ProberHandles};
use crate::mesh::resume::{self, Power};
use crate::mesh::router::{self, MeshRouter, SetInForce};
use crate::mesh::wake_up::WakeUp;
use crate::reconcile::Handles;
use crate::source::checkout::{self, CheckoutWatch};
use crate::source::folder::FolderSource;
use crate::source::{self, SourceUpdate};
use crate::source_status::SourceStatus;
use crate::state_lock::{self, FolderChange, StateFolder};
use crate::supervisor::Supervisor;
use crate::{sleep_notice, sys, tailscale};

/// The peers before any set of manifests loads (a JSON list).
const MESH_PEERS: &str = "MESH_PEERS";
/// The port a peer named in `MESH_PEERS` without one is called on: the
/// default `apiPort` of a Node.
const DEFAULT_API_PORT: u16 = 8000;
/// How often the daemon looks whether its state folder was deleted.
const STATE_FOLDER_CHECK: Duration = Duration::from_secs(2);
/// The open-file limit assumed when it cannot be read: systemd's
/// default soft limit.
const ASSUMED_DESCRIPTOR_LIMIT: u64 = 1024;

/// Runs the daemon with `env`, read from `env_file` (or `./.env`), which SIGHUP
/// reads again.
pub(crate) async fn serve(config: DaemonConfig, env: NodeEnv, env_file: Option<PathBuf>) -> anyhow::Result<()> {
    // Held until the daemon returns: before it, nothing in the folder is ours.
    let (_state_lock, state_folder) = state_lock::acquire(&config.state_dir)?;
    let max_connections = descriptor_limit::connection_cap(raise_descriptor_limit());
    let stream = StatusStream::default();
    let (supervisor, unit_changes) = Supervisor::new(config.state_dir.clone(), Arc::new(stream.clone()))
        .await
        .context("cannot start the process supervisor")?;
    let (controller, inbox) = Controller::new(
        config.node_id.clone(),
        Arc::new(env),
        supervisor.clone(),
        unit_changes,
        stream,
        config.state_dir.clone(),
    );
    let (shared, handles) = (controller.shared(), controller.handles());
    seed_peers(&shared, &handles);
    let joined = Arc::new(JoinedPeers::load(&config.state_dir, handles.peers.clone()));

    // The tasks that run until the daemon returns; dropping the set aborts
    // them, on an early error too.
    let mut tasks = JoinSet::new();
    let source = start_source(&config, controller.settle_times(), inbox.clone(), &mut tasks).await?;
    let listener = bind_api(&config).await?;
    warn_without_api_key(&handles);

    let (stop, stopped) = watch::channel(false);
    // Awaited below, after the controller: the API drains its connections, and
    // the folder is not written after the lock goes.
    let folder_keeper = tokio::spawn(keep_state_folder(state_folder, supervisor, stopped.clone()));
    let prober = prober_handles(&shared, &handles, controller.applied_revisions());
    let probe = HttpProbe::new(handles.api_key.clone());
    tasks.spawn(prober::run(prober, probe, stopped.clone()));
    let clocks = Box::new(sys::asleep_and_awake_clocks);
    let power = Power::new(handles.peers.clone(), handles.node.clone(), handles.api_key.clone(), clocks);
    let (notices, notices_in) = mpsc::channel(1);
    tasks.spawn(sleep_notice::run(notices, stopped.clone()));
    tasks.spawn(resume::run(power, notices_in, stopped.clone()));
    let watch_in_force = shared.watch_in_force();
    let router = api_router(&config, shared, handles, joined.clone(), inbox.clone(), &source);
    let server = tokio::spawn(api::serve::run(listener, router, max_connections, stopped.clone()));
    tasks.spawn(async move {
        wait_for_signal().await;
        let _ = stop.send(true);
    });
    tasks.spawn(reload_on_hangup(env_file, inbox, source));
    tasks.spawn(forget_declared_joins(joined, watch_in_force));

    let mut controller_stopped = stopped;
    controller
        .run(async move {
            let _ = controller_stopped.wait_for(|stop| *stop).await;
        })
        .await;
    server.await.context("the API task failed")?;
    folder_keeper.await.context("the state folder task failed")?;
    tasks.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// Forgets each joined node once a set in force declares it (the manifests
/// say where it is from then on), until the set stops changing.
async fn forget_declared_joins(joined: Arc<JoinedPeers>, mut in_force: watch::Receiver<Option<InForce>>) {
    loop {
        let declared: Vec<String> =
            in_force.borrow_and_update().as_ref().map(|f| f.set.nodes.keys().cloned().collect()).unwrap_or_default();
        if let Err(error) = joined.forget_declared(&declared).await {
            tracing::warn!(%error, "cannot forget the joined nodes the manifests now declare; they stay peers");
        }
        if in_force.changed().await.is_err() {
            return;
        }
    }
}

/// Where manifests come from, and how to ask it to look again.
struct Source {
    /// Asks the Git source to fetch now; nobody listens without Git.
    nudge: mpsc::Sender<()>,
    /// The watched folder, without Git.
    folder: Option<FolderSource>,
    /// What the source follows and last read, for `status`.
    status: watch::Receiver<SourceStatus>,
    /// With Git, the user's checkout whose pushes nudge the source; watched
    /// while this lives.
    _checkout: Option<CheckoutWatch>,
}

/// The peers before any set of manifests loads, from `MESH_PEERS`.
fn seed_peers(shared: &Shared, handles: &Handles) {
    if let Some(peers) = shared.env().get(MESH_PEERS) {
        match prober::bootstrap_peers(&peers.value, DEFAULT_API_PORT) {
            Ok(peers) => handles.peers.set_members(peers),
            Err(error) => tracing::warn!("{error}; no peers until a set of manifests loads"),
        }
    }
}

/// Starts the Git source (and the watch of the user's checkout) or the folder
/// watch, and the task that hands what it reads to the controller.
async fn start_source(
    config: &DaemonConfig,
    settle_times: watch::Receiver<Duration>,
    inbox: mpsc::Sender<Input>,
    tasks: &mut JoinSet<()>,
) -> anyhow::Result<Source> {
    let (updates, mut updates_rx) = mpsc::channel::<SourceUpdate>(16);
    let (nudge, nudges) = mpsc::channel::<()>(1);
    // The folder's status is written here; the Git source writes its own.
    let (folder, checkout, status, folder_status) = match &config.git {
        Some(git) => {
            tracing::info!(remote = git.remote, branch = git.branch, path = git.path, "reading manifests from Git");
            let (status, status_rx) = watch::channel(SourceStatus::git(git));
            tasks.spawn(source::git::run(git.clone(), config.state_dir.join("git"), updates, nudges, status));
            (None, watch_checkout(config, git, nudge.clone()).await, status_rx, None)
        }
        None => {
            tracing::info!(folder = %config.manifests.display(), "watching the manifests folder");
            drop(nudges);
            let watch = source::folder::watch(config.manifests.clone(), updates, settle_times)
                .with_context(|| format!("cannot watch the manifests folder {}", config.manifests.display()))?;
            let shown = std::path::absolute(&config.manifests).unwrap_or_else(|_| config.manifests.clone());
            let (status, status_rx) = watch::channel(SourceStatus::folder(&shown.display().to_string()));
            (Some(watch), None, status_rx, Some(status))
        }
    };
    tasks.spawn(async move {
        while let Some(update) = updates_rx.recv().await {
            if let Some(folder_status) = &folder_status {
                match &update {
                    SourceUpdate::Snapshot(snapshot) => {
                        let revision = Some(snapshot.revision.clone());
                        folder_status.send_modify(|status| status.fetched(revision, SystemTime::now()));
                    }
                    SourceUpdate::Unavailable { message, .. } => {
                        folder_status.send_modify(|status| status.failed(message.clone()));
                    }
                    SourceUpdate::Notice { .. } => {}
                }
            }
            if inbox.send(Input::Source(update)).await.is_err() {
                return;
            }
        }
    });
    Ok(Source { nudge, folder, status, _checkout: checkout })
}

/// Watches the checkout `MESH_MANIFESTS` lies in, when it is a clone of the
/// remote: a push from there nudges the Git source at once.
async fn watch_checkout(config: &DaemonConfig, git: &GitSettings, nudge: mpsc::Sender<()>) -> Option<CheckoutWatch> {
    let (manifests, settings) = (config.manifests.clone(), git.clone());
    let found = tokio::task::spawn_blocking(move || checkout::find(&manifests, &settings)).await.ok().flatten();
    let Some(found) = found else {
        tracing::debug!(folder = %config.manifests.display(), "MESH_MANIFESTS is not in a checkout of MESH_GIT_REMOTE");
        return None;
    };
    let shown = format!("{} {}", found.git_dir.display(), found.tracking_ref);
    match checkout::watch(found, nudge) {
        Ok(watch) => {
            tracing::info!(checkout = shown, "a git push from this checkout is fetched at once");
            Some(watch)
        }
        Err(error) => {
            tracing::warn!(checkout = shown, %error, "cannot watch the checkout; pushes arrive at the Git interval");
            None
        }
    }
}

/// Binds the mesh API's address: `MESH_LISTEN`, or the default.
async fn bind_api(config: &DaemonConfig) -> anyhow::Result<TcpListener> {
    let (listen, chosen_by) = match config.listen {
        Some(listen) => (listen, "MESH_LISTEN"),
        None => {
            (config::default_listen(tailscale::local_tailnet_ipv4().await), "the default; set MESH_LISTEN to choose")
        }
    };
    let listener =
        TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen} ({chosen_by})"))?;
    tracing::info!(node = config.node_id, %listen, "mesh API listening");
    Ok(listener)
}

fn warn_without_api_key(handles: &Handles) {
    if handles.api_key.get().is_none() {
        tracing::warn!(
            "MESH_API_KEY is not set: until the Mesh's auth.apiKey gives a key, only callers with an allowed \
             Tailscale identity are let in"
        );
    }
}

/// The mesh API's routes over the controller's state, with the router that
/// forwards requests to whichever node serves a capability.
fn api_router(
    config: &DaemonConfig,
    shared: Arc<Shared>,
    handles: Arc<Handles>,
    joined: Arc<JoinedPeers>,
    inbox: mpsc::Sender<Input>,
    source: &Source,
) -> Router {
    let failover = Failover::new(
        config.node_id.clone(),
        handles.api_key.clone(),
        handles.peers.clone(),
        shared.metrics().clone(),
        WakeUp::new(handles.peers.clone(), event_sink(&shared)),
    );
    let mesh_router =
        MeshRouter::new(failover, handles.placements.clone(), set_in_force(&shared), router::DEFAULT_TIMEOUT);
    api::router(ApiState {
        shared,
        handles,
        inbox,
        nudge: Some(source.nudge.clone()),
        source: source.status.clone(),
        tailscale: tailscale::Connector::default(),
        router: mesh_router,
        joined,
        ui_tokens: Default::default(),
    })
}

/// Reads the set in force from its `watch` when asked, so a reader follows
/// every new revision without knowing the controller.
fn set_in_force(shared: &Shared) -> SetInForce {
    let in_force = shared.watch_in_force();
    Arc::new(move || in_force.borrow().as_ref().map(|in_force| in_force.set.clone()))
}

/// What the prober needs of the daemon, and nothing more.
fn prober_handles(
    shared: &Shared,
    handles: &Handles,
    applied_revisions: watch::Receiver<Option<AppliedRevision>>,
) -> ProberHandles {
    ProberHandles {
        peers: handles.peers.clone(),
        metrics: shared.metrics().clone(),
        api_key: handles.api_key.clone(),
        set_in_force: set_in_force(shared),
        applied_revisions,
        events: event_sink(shared),
    }
}

/// Records events about objects (`Node/<name>`) in the daemon's event log.
fn event_sink(shared: &Shared) -> EventSink {
    let events = shared.events();
    Arc::new(move |object, event| events.record(object, event))
}

/// On each SIGHUP, reads the settings again and the manifests too.
async fn reload_on_hangup(env_file: Option<PathBuf>, inbox: mpsc::Sender<Input>, source: Source) {
    let mut hangups = signal(SignalKind::hangup()).expect("SIGHUP can be handled");
    while hangups.recv().await.is_some() {
        match NodeEnv::load(env_file.as_deref()) {
            Ok(env) => {
                tracing::info!("SIGHUP: reading the settings and the manifests again");
                if inbox.send(Input::Reload(env)).await.is_err() {
                    return;
                }
                match &source.folder {
                    Some(folder) => folder.rescan(),
                    None => {
                        let _ = source.nudge.try_send(());
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "SIGHUP: cannot read the settings; keeping the ones in force"),
        }
    }
}

/// Raises the soft limit on open descriptors (see `descriptor_limit`) and
/// returns the one in force.
fn raise_descriptor_limit() -> u64 {
    match descriptor_limit::raise() {
        Ok(raised) if raised.soft > raised.original => {
            tracing::info!(
                from = raised.original,
                to = raised.soft,
                "raised the open-file limit; Services get {} back",
                raised.original
            );
            raised.soft
        }
        Ok(raised) => {
            tracing::debug!(limit = raised.soft, "the open-file limit is already the highest allowed");
            raised.soft
        }
        Err(error) => {
            tracing::warn!(%error, "cannot read the open-file limit; assuming {ASSUMED_DESCRIPTOR_LIMIT}");
            ASSUMED_DESCRIPTOR_LIMIT
        }
    }
}

/// Looks every few seconds whether the state folder is still there; when it
/// was deleted, creates it again and writes `processes.json` again. (The lock
/// is beside the folder, so it holds all the while.)
async fn keep_state_folder(mut folder: StateFolder, supervisor: Supervisor, mut stopped: watch::Receiver<bool>) {
    let mut checks = tokio::time::interval(STATE_FOLDER_CHECK);
    checks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => return,
            _ = checks.tick() => {}
        }
        let supervisor = supervisor.clone();
        let checked = tokio::task::spawn_blocking(move || {
            let change = folder.ensure();
            if matches!(change, Ok(change) if change != FolderChange::Unchanged) {
                supervisor.record_again();
            }
            (folder, change)
        })
        .await;
        let Ok((checked_folder, change)) = checked else {
            tracing::error!("the state folder check failed; the folder is no longer watched");
            return;
        };
        folder = checked_folder;
        if let Err(error) = change {
            tracing::warn!(%error, "cannot look at or create the state folder");
        }
    }
}

/// SIGTERM (service managers) or SIGINT (Ctrl-C).
async fn wait_for_signal() {
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM can be handled");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
    }
}
