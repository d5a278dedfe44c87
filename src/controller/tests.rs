//! The controller loop on a paused clock: when objects are reconciled again
//! (resync, backoff after a failure, triggers arriving together), read from the
//! reconcile metric (`agentmesh_reconciles_total`, by kind and result). The clock moves only when a test advances it; work done
//! outside the runtime (spawning a process) is awaited without moving it.

use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::status::{ConditionType, ObjectKey, ObjectStatus, StatusStream};
use super::{Controller, Input, Shared};
use crate::backoff::{Jitter, KeyedBackoff};
use crate::identity::{NODE_ID, NodeEnv};
use crate::manifest::{Kind, SourceFile};
use crate::metrics::{Format, Now};
use crate::reconcile::Handles;
use crate::source::{Snapshot, SourceUpdate};
use crate::supervisor::{Phase, Supervisor};

/// Node `a` (this one) and node `b`.
const NODES: &str = "\
apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: a}\nspec: {role: primary, address: 127.0.0.1}\n---
apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {name: b}\nspec: {role: satellite, address: 127.0.0.2}\n";

/// A Service on `node` with the given flow-style `spec` entries after `nodes`.
fn service(name: &str, node: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: agentmesh/v1alpha1\nkind: Service\nmetadata: {{name: {name}}}\nspec: {{nodes: [{node}], {spec}}}\n"
    )
}

/// A Service placed on node `b`: nothing for this node to run, so its
/// reconcile does no I/O.
fn elsewhere(name: &str) -> String {
    service(name, "b", "command: [sleep, '1000']")
}

fn mesh(resync: &str) -> String {
    format!(
        "---\napiVersion: agentmesh/v1alpha1\nkind: Mesh\nmetadata: {{name: home}}\nspec: {{reconcile: {{resyncInterval: {resync}}}}}\n"
    )
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Scheduling rounds that are plenty for a trigger to be handled, its
/// reconciles to run and their results to come back.
const SETTLE_ROUNDS: usize = 50;

/// A controller for node `a` over a fresh state folder, run as the daemon runs
/// it (reading its supervisor's changes), with no source: the test sends
/// snapshots.
struct Harness {
    shared: Arc<Shared>,
    /// The daemon's handles, as the reconcilers get them.
    handles: Arc<Handles>,
    supervisor: Supervisor,
    inbox: mpsc::Sender<Input>,
    stop: oneshot::Sender<()>,
    controller: JoinHandle<()>,
    _state: TempDir,
}

impl Harness {
    async fn start() -> Harness {
        let state = tempfile::tempdir().unwrap();
        let stream = StatusStream::default();
        let (supervisor, changes) = Supervisor::new(state.path().to_owned(), Arc::new(stream.clone())).await.unwrap();
        let env = NodeEnv::from_parts(None, [(NODE_ID.to_owned(), "a".to_owned())]).unwrap();
        let (mut controller, inbox) =
            Controller::new("a".into(), Arc::new(env), supervisor.clone(), changes, stream, state.path().to_owned());
        let shared = controller.shared();
        let handles = controller.handles();
        // Exact retry times, so the tests can name them.
        controller.backoff = KeyedBackoff::new(super::RETRY, Jitter::none());
        let (stop, stopped) = oneshot::channel();
        let controller = tokio::spawn(controller.run(async {
            let _ = stopped.await;
        }));
        Harness { shared, handles, supervisor, inbox, stop, controller, _state: state }
    }

    /// Sends a folder snapshot of `text` and lets it be handled (validated on
    /// a blocking thread, so waited for in real time).
    async fn apply(&self, revision: &str, text: &str) {
        self.inbox.send(snapshot(revision, text)).await.unwrap();
        let in_force = |h: &Harness| h.shared.in_force().is_some_and(|in_force| in_force.revision == revision);
        self.until(&format!("{revision} is in force"), in_force).await;
        assert_eq!(self.shared.last_error(), None, "{revision} is applied");
    }

    /// Reconciles of `kind` that ended with `result` (`ok` or `error`), read
    /// from the metrics as `/metrics` renders them.
    fn reconciles(&self, kind: Kind, result: &str) -> u64 {
        let sample = format!("agentmesh_reconciles_total{{kind=\"{kind}\",result=\"{result}\"}} ");
        let text = self.shared.metrics().render(&Now::default(), Format::OpenMetrics);
        text.lines().find_map(|line| line.strip_prefix(&sample)).map_or(0, |count| count.parse().unwrap())
    }

    fn succeeded(&self, kind: Kind) -> u64 {
        self.reconciles(kind, "ok")
    }

    fn failed(&self, kind: Kind) -> u64 {
        self.reconciles(kind, "error")
    }

    /// The status the controller shows for Service `name`.
    fn service_status(&self, name: &str) -> Option<ObjectStatus> {
        self.shared.status().object(&ObjectKey::new(Kind::Service, name)).cloned()
    }

    /// Moves the clock by `by` and lets what came due run.
    async fn advance(&self, by: Duration) {
        tokio::time::advance(by).await;
        settle().await;
    }

    /// Waits, in real time and at most five seconds, for `check` to hold while
    /// the clock stands still: for work the runtime does not drive, such as
    /// the supervisor's thread spawning a process.
    async fn until(&self, what: &str, check: impl Fn(&Harness) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !check(self) {
            assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}");
            tokio::task::yield_now().await;
        }
        settle().await;
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.controller.await.unwrap();
    }
}

/// A folder snapshot of `text`, as the source sends it.
fn snapshot(revision: &str, text: &str) -> Input {
    let files = vec![SourceFile { path: "m.yaml".into(), text: text.to_owned() }];
    let snapshot = Snapshot { revision: revision.into(), files, problems: Vec::new(), origin: "folder m".into() };
    Input::Source(SourceUpdate::Snapshot(snapshot))
}

/// Lets every task that can run, run, without moving the paused clock: a
/// yielding task keeps the runtime from idling, and only an idle runtime
/// advances a paused clock by itself.
async fn settle() {
    for _ in 0..SETTLE_ROUNDS {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn every_object_is_reconciled_again_after_the_resync_interval() {
    let h = Harness::start().await;
    h.apply("r1", &format!("{NODES}{}{}{}", elsewhere("one"), elsewhere("two"), mesh("30s"))).await;
    // Node `a` alone of the Nodes, and the two Services, `one` and `two`.
    let succeeded = || [Kind::Node, Kind::Service].map(|kind| h.succeeded(kind));
    assert_eq!(succeeded(), [1, 2], "each once for the new snapshot");

    h.advance(Duration::from_secs(30) - ms(1)).await;
    assert_eq!(succeeded(), [1, 2], "nothing before the interval");
    h.advance(ms(1)).await;
    assert_eq!(succeeded(), [2, 4], "everything at the interval");
    h.advance(Duration::from_secs(30)).await;
    assert_eq!(succeeded(), [3, 6], "and at every interval after");
    // One Node reconcile per round: node b's Node is not acted on.
    assert_eq!((h.succeeded(Kind::Node), h.failed(Kind::Node)), (3, 0), "another node's Node is not acted on");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_failing_object_is_retried_with_doubling_backoff_and_holds_up_no_other() {
    let h = Harness::start().await;
    let broken = service("broken", "a", "command: [sleep, '1000'], env: {TOKEN: {env: MISSING}}");
    let worker = service("worker", "a", "command: [sleep, '1000']");
    h.apply("r1", &format!("{NODES}{broken}{worker}")).await;
    h.until("the worker runs", |h| h.supervisor.status("worker").is_some_and(|status| status.phase == Phase::Running))
        .await;
    // Only `broken` fails, and it never succeeds: the Service failures are
    // its own, the Service successes the worker's.
    assert_eq!(h.failed(Kind::Service), 1, "broken failed once and the worker not at all");
    let worker_reconciles = h.succeeded(Kind::Service);

    for (gap, failures) in [(1, 2), (2, 3), (4, 4), (8, 5)] {
        h.advance(Duration::from_secs(gap) - ms(1)).await;
        assert_eq!(h.failed(Kind::Service), failures - 1, "no retry before {gap} s");
        h.advance(ms(1)).await;
        assert_eq!(h.failed(Kind::Service), failures, "a retry {gap} s after the last failure");
    }
    assert_eq!(h.succeeded(Kind::Service), worker_reconciles, "the worker is not reconciled with it");
    assert_eq!(h.supervisor.status("broken"), None, "nothing was started for it");
    let status = h.service_status("broken").unwrap();
    let degraded = status.condition(ConditionType::Degraded).unwrap();
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str(), degraded.message.as_str()),
        ("True", "SecretUnavailable", "env.TOKEN: secret variable MISSING is not set")
    );

    // A success resets its backoff: the next failure is retried after 1 s again.
    let fixed = service("broken", "a", "command: [sleep, '1000'], env: {TOKEN: plain}");
    h.apply("r2", &format!("{NODES}{fixed}{worker}")).await;
    h.until("the fixed Service reconciled", |h| {
        h.service_status("broken").is_some_and(|status| {
            status.condition(ConditionType::Degraded).is_none_or(|degraded| degraded.status != "True")
        })
    })
    .await;
    h.apply("r3", &format!("{NODES}{broken}{worker}")).await;
    assert_eq!(h.failed(Kind::Service), 6);
    h.advance(Duration::from_secs(1)).await;
    assert_eq!(h.failed(Kind::Service), 7);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn triggers_that_arrive_while_an_object_is_reconciled_run_it_once_more_not_once_each() {
    let h = Harness::start().await;
    h.apply("r1", &format!("{NODES}{}", elsewhere("x"))).await;
    assert_eq!(h.succeeded(Kind::Service), 1, "x, the only Service");

    for _ in 0..5 {
        h.inbox.try_send(Input::ReconcileAll).unwrap();
    }
    settle().await;
    // The first trigger starts a reconcile; the four that come while it runs
    // ask for one more.
    assert_eq!(h.succeeded(Kind::Service), 3);
    assert_eq!(h.succeeded(Kind::Node), 3, "node a's, the only Node acted on");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn paused_reconciles_wait_in_the_queue_and_run_once_resumed() {
    let h = Harness::start().await;
    h.apply("r1", &format!("{NODES}{}{}", elsewhere("x"), mesh("30s"))).await;
    h.inbox.send(Input::Pause).await.unwrap();
    settle().await;
    assert!(h.shared.paused());

    h.apply("r2", &format!("{NODES}{}{}{}", elsewhere("x"), elsewhere("z"), mesh("30s"))).await;
    h.advance(Duration::from_secs(60)).await;
    // x's first reconcile alone: neither the new object z nor x's resyncs ran.
    assert_eq!(h.succeeded(Kind::Service), 1, "the new object waits, and so do resyncs");

    h.inbox.send(Input::Resume).await.unwrap();
    settle().await;
    assert!(!h.shared.paused());
    // The queue holds a key once: x and z ran once each.
    assert_eq!(h.succeeded(Kind::Service), 3, "each queued once");
    let reasons: Vec<String> = h.shared.status().events(None, 50).into_iter().map(|e| e.reason).collect();
    assert!(reasons.contains(&"Paused".to_owned()) && reasons.contains(&"Resumed".to_owned()), "{reasons:?}");
    let metrics = h.shared.metrics().render(&Now::default(), Format::OpenMetrics);
    assert!(metrics.contains("agentmesh_snapshots_total{result=\"applied\"} 2"), "{metrics}");
    assert!(metrics.contains("agentmesh_reconciles_total{kind=\"Service\",result=\"ok\"} 3"), "{metrics}");
    h.stop().await;
}

/// A snapshot and the shutdown arrive together. When the loop takes the
/// snapshot first, it hands the Service to a reconcile task and then sees the
/// shutdown: that reconcile finishes before the supervisor stops, so the
/// process it starts is stopped too instead of outliving the controller. The
/// loop picks among ready inputs at random, so the race is run many times.
#[tokio::test(start_paused = true)]
async fn a_service_reconcile_under_way_at_shutdown_cannot_start_a_process_after_it() {
    for round in 0..20 {
        let h = Harness::start().await;
        let supervisor = h.supervisor.clone();
        let web = service("web", "a", "command: [sleep, '1000']");
        h.inbox.try_send(snapshot("r1", &format!("{NODES}{web}"))).unwrap();
        h.stop().await;
        settle().await;
        assert_eq!(supervisor.services(), Vec::<String>::new(), "round {round}: nothing runs after shutdown");
    }
}

/// Syncthing's event follower, started by a SyncFolder reconcile, long-polls
/// until the controller stops; `Shared` (which holds it) lives on in the API.
#[tokio::test]
async fn the_syncthing_event_follower_ends_with_the_controller() {
    let syncthing = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let h = Harness::start().await;
    let handles = h.handles.clone();
    let url = format!("http://{}", syncthing.local_addr().unwrap());
    handles.syncthing.follow(&crate::syncthing::Client::new(&url, "key"));
    // Syncthing takes the long poll and never answers.
    let accepted = tokio::time::timeout(Duration::from_secs(5), syncthing.accept()).await;
    let (mut poll, _) = accepted.expect("the follower asks for events").unwrap();

    h.stop().await;
    let mut rest = Vec::new();
    let closed =
        tokio::time::timeout(Duration::from_secs(1), tokio::io::AsyncReadExt::read_to_end(&mut poll, &mut rest));
    assert!(closed.await.is_ok(), "the follower's connection closed when the controller stopped");
    drop(handles);
}
