//! `meshctl daemon`: assembles the controller, its sources, the supervisor and
//! the API, and runs them until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use axum::serve::ListenerExt as _;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

use crate::api::{self, ApiState};
use crate::config::{self, DaemonConfig};
use crate::controller::{Controller, Input};
use crate::identity::NodeEnv;
use crate::mesh::prober::{self, HttpProbe};
use crate::mesh::router::{self, MeshRouter};
use crate::source::{self, SourceUpdate};
use crate::supervisor::Supervisor;
use crate::tailscale;

/// The peers before any set of manifests loads (a JSON list).
const MESH_PEERS: &str = "MESH_PEERS";
/// The port a peer named in `MESH_PEERS` without one is called on: the
/// default `apiPort` of a Node.
const DEFAULT_API_PORT: u16 = 8000;

/// Runs the daemon with `env`, read from `env_file` (or `./.env`), which SIGHUP
/// reads again.
pub async fn serve(config: DaemonConfig, env: NodeEnv, env_file: Option<PathBuf>) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.state_dir)
        .with_context(|| format!("cannot create the state folder {}", config.state_dir.display()))?;
    let (supervisor_events, mut supervisor_rx) = mpsc::unbounded_channel();
    let supervisor = Supervisor::new(config.state_dir.clone(), supervisor_events)
        .await
        .context("cannot start the process supervisor")?;
    let (controller, shared, inbox) =
        Controller::new(config.node_id.clone(), Arc::new(env), supervisor, config.state_dir.clone());

    if let Some(peers) = shared.env().get(MESH_PEERS) {
        match prober::bootstrap_peers(&peers.value, DEFAULT_API_PORT) {
            Ok(peers) => shared.peers.set_members(peers),
            Err(error) => tracing::warn!("{error}; no peers until a set of manifests loads"),
        }
    }

    let forward = inbox.clone();
    tokio::spawn(async move {
        while let Some(event) = supervisor_rx.recv().await {
            if forward.send(Input::Supervisor(event)).await.is_err() {
                return;
            }
        }
    });

    let (updates, mut updates_rx) = mpsc::channel::<SourceUpdate>(16);
    let (nudge, nudges) = mpsc::channel::<()>(1);
    let fetch_now = nudge.clone();
    let folder_watch = match &config.git {
        Some(git) => {
            tracing::info!(remote = git.remote, branch = git.branch, path = git.path, "reading manifests from Git");
            tokio::spawn(source::git::run(git.clone(), config.state_dir.join("git"), updates, nudges));
            None
        }
        None => {
            tracing::info!(folder = %config.manifests.display(), "watching the manifests folder");
            drop(nudges);
            let watch = source::folder::watch(config.manifests.clone(), updates, shared.settle_time.subscribe())
                .with_context(|| format!("cannot watch the manifests folder {}", config.manifests.display()))?;
            Some(watch)
        }
    };
    let inbox_for_reload = inbox.clone();
    let forward = inbox.clone();
    tokio::spawn(async move {
        while let Some(update) = updates_rx.recv().await {
            if forward.send(Input::Source(update)).await.is_err() {
                return;
            }
        }
    });

    let (listen, chosen_by) = match config.listen {
        Some(listen) => (listen, "MESH_LISTEN"),
        None => {
            (config::default_listen(tailscale::local_tailnet_ipv4().await), "the default; set MESH_LISTEN to choose")
        }
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} ({chosen_by})"))?;
    tracing::info!(node = config.node_id, %listen, "mesh API listening");
    let (stop, stopped) = watch::channel(false);
    if shared.api_key.get().is_none() {
        tracing::warn!(
            "MESH_API_KEY is not set: until the Mesh's auth.apiKey gives a key, only callers with an allowed \
             Tailscale identity are let in"
        );
    }
    tokio::spawn(prober::run(shared.clone(), HttpProbe::default(), stopped.clone()));
    let set_in_force = {
        let shared = shared.clone();
        Arc::new(move || shared.applied_set())
    };
    let mesh_router = MeshRouter::new(
        config.node_id.clone(),
        shared.api_key.clone(),
        shared.peers.clone(),
        shared.placements.clone(),
        shared.metrics.clone(),
        set_in_force,
        router::DEFAULT_TIMEOUT,
    );
    let router = api::router(ApiState {
        shared,
        inbox,
        nudge: Some(nudge),
        tailscale: tailscale::Connector::default(),
        router: mesh_router,
    });
    let mut api_stopped = stopped.clone();
    // Answers go out as soon as they are written: with Nagle's algorithm a
    // response written in two pieces waits a round trip for the first's ACK.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
    });
    let server = tokio::spawn(async move {
        // The caller's address is what Tailscale identity auth asks whois about.
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                let _ = api_stopped.wait_for(|stop| *stop).await;
            })
            .await
    });
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = stop.send(true);
    });
    let reload_inbox = inbox_for_reload;
    tokio::spawn(async move {
        let mut hangups = signal(SignalKind::hangup()).expect("SIGHUP can be handled");
        while hangups.recv().await.is_some() {
            match NodeEnv::load(env_file.as_deref()) {
                Ok(env) => {
                    tracing::info!("SIGHUP: reading the settings and the manifests again");
                    if reload_inbox.send(Input::Reload(env)).await.is_err() {
                        return;
                    }
                    match &folder_watch {
                        Some(folder) => folder.rescan(),
                        None => {
                            let _ = fetch_now.try_send(());
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "SIGHUP: cannot read the settings; keeping the ones in force"),
            }
        }
    });

    let mut controller_stopped = stopped;
    controller
        .run(async move {
            let _ = controller_stopped.wait_for(|stop| *stop).await;
        })
        .await;
    server.await.context("the API task failed")?.context("the API server failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// SIGTERM (service managers) or SIGINT (Ctrl-C).
async fn wait_for_signal() {
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM can be handled");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
    }
}
