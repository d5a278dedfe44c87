//! What the controller publishes for the rest of the daemon to read without
//! going through its loop: the set in force (a `watch`), the status store and
//! the sink its events go to, the node's settings and its report (the last
//! rejected snapshot, whether reconciles are paused).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::status::StatusStore;
use crate::event::Event;
use crate::identity::NodeEnv;
use crate::manifest::ManifestSet;
use crate::metrics::Metrics;
use crate::source::Snapshot;

/// The set in force: what the last applied snapshot became.
#[derive(Clone, Debug)]
pub(crate) struct InForce {
    pub revision: String,
    /// Where it came from (`apply`, `folder …`, `git …`).
    pub origin: String,
    pub set: Arc<ManifestSet>,
}

/// The controller's state that the API reads; only the controller writes it.
pub(crate) struct Shared {
    node: String,
    /// The node's settings; SIGHUP puts newly read ones in place.
    env: RwLock<Arc<NodeEnv>>,
    started: Instant,
    metrics: Metrics,
    in_force: watch::Sender<Option<InForce>>,
    status: Arc<Mutex<StatusStore>>,
    /// The errors of the last rejected snapshot; None once one applies.
    last_error: Mutex<Option<String>>,
    paused: AtomicBool,
    /// The last snapshot from the Git source: what the node follows, which a
    /// folder applied with `--force` runs in place of until the next commit.
    followed: Mutex<Option<Snapshot>>,
}

impl Shared {
    pub(super) fn new(node: String, env: Arc<NodeEnv>, status: StatusStore, metrics: Metrics) -> Shared {
        Shared {
            node,
            env: RwLock::new(env),
            started: Instant::now(),
            metrics,
            in_force: watch::channel(None).0,
            status: Arc::new(Mutex::new(status)),
            last_error: Mutex::new(None),
            paused: AtomicBool::new(false),
            followed: Mutex::new(None),
        }
    }

    /// This node's name.
    pub(crate) fn node(&self) -> &str {
        &self.node
    }

    /// The node's settings as last read.
    pub(crate) fn env(&self) -> Arc<NodeEnv> {
        self.env.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub(super) fn replace_env(&self, env: NodeEnv) {
        *self.env.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(env);
    }

    /// How long the controller has run.
    pub(crate) fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The set in force, if any.
    pub(crate) fn in_force(&self) -> Option<InForce> {
        self.in_force.borrow().clone()
    }

    /// Follows the set in force: the receiver sees each new one.
    pub(crate) fn watch_in_force(&self) -> watch::Receiver<Option<InForce>> {
        self.in_force.subscribe()
    }

    /// The set in force's manifests, if any.
    pub(crate) fn applied_set(&self) -> Option<Arc<ManifestSet>> {
        self.in_force.borrow().as_ref().map(|in_force| in_force.set.clone())
    }

    pub(super) fn publish(&self, in_force: InForce) {
        self.in_force.send_replace(Some(in_force));
    }

    /// The conditions of every object and the recent events.
    pub(crate) fn status(&self) -> MutexGuard<'_, StatusStore> {
        lock(&self.status)
    }

    /// Where events are recorded, for parts of the daemon that only report.
    pub(crate) fn events(&self) -> Events {
        Events { status: self.status.clone() }
    }

    /// The errors of the last rejected snapshot, until one applies.
    pub(crate) fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }

    pub(super) fn set_last_error(&self, error: Option<String>) {
        *lock(&self.last_error) = error;
    }

    /// Whether reconciles are paused from the event stream.
    pub(crate) fn paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    pub(super) fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }

    /// The last snapshot the Git source sent; None without Git.
    pub(crate) fn followed(&self) -> Option<Snapshot> {
        lock(&self.followed).clone()
    }

    pub(super) fn set_followed(&self, snapshot: Snapshot) {
        *lock(&self.followed) = Some(snapshot);
    }
}

/// The event sink: records an event in the status store's log and stream.
/// Cheap to clone.
#[derive(Clone)]
pub(crate) struct Events {
    status: Arc<Mutex<StatusStore>>,
}

impl Events {
    pub(crate) fn record(&self, object: &str, event: Event) {
        lock(&self.status).event(object, event);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
