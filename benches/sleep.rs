//! How soon what a user sees falls back when a capability's serving node goes
//! silent, and comes back when it returns (#16, #19 point 1: within 2 s each).
//!
//! Three optimised daemons, node-a, node-b and node-c; the capability (an
//! `ollama` one, so the `/ollama/` proxy serves it) prefers node-c, then
//! node-b, then node-a. Each node has an endpoint the bench runs that answers
//! every request with its node's name. From node-a, which stays awake, four
//! pollers watch at once what a user sees:
//! - `meshctl env`: the printed `OLLAMA_HOST` (`http://{{host}}:{{port}}`,
//!   the serving node's endpoint), read as the node it points at;
//! - `meshctl exec -- sh -c 'echo "$OLLAMA_HOST"'`: the same, as a command gets it;
//! - `POST /mesh/route`: which node's endpoint answered the call;
//! - `GET /ollama/api/version`: which node's endpoint answered through the proxy;
//! - and node-a's status (`servedBy`), for comparison with the figures before.
//!
//! Two more pollers read the other nodes' status (`servedBy`): node-b's
//! always, node-c's once it is back. "Nodes agree" (point 2) is, per round,
//! the later of node-a's and node-b's on a fallback, and the latest of the
//! three on a return: from then on every node that can reach the others
//! names the same serving node.
//!
//! A round silences node-c and times, per poller, the first answer naming
//! node-b among the calls started after that ("fallback"); then ends the
//! silence and times the first naming node-c again ("back"). The silences:
//! - hung: SIGSTOP and SIGCONT (its port still accepts; nothing answers);
//! - stopped: SIGTERM (timed from the signal), then the daemon started again
//!   on the same port (timed from when its API answers);
//! - link down: node-c in a network namespace of its own, its end of the veth
//!   pair set down and up (root and `ip netns` only; else skipped, said so).
//!
//! Hung and stopped run on loopback (127.0.0.2–4); link down on the pair
//! (node-a and node-b outside, node-c inside). Prints the median and p95 of
//! each over the rounds.
//!
//! `cargo bench --bench sleep` (`SLEEP_ROUNDS=N` for another number of rounds
//! than 10).

#![allow(
    unsafe_code,
    reason = "the benches signal and inspect processes with libc; the crate keeps its unsafe in src/sys.rs"
)]

mod common;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher as _, Hasher as _};
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::endpoint::NamedEndpoint;
use common::mesh::{Daemon, KEY, free_port, http_get, wait};
use common::netns::Namespace;
use common::{millis, quantile};
use serde_json::Value;

const PREFERRED: &str = "node-c";
const FALLBACK: &str = "node-b";
const CAPABILITY: &str = "llm_inference";
/// How long a poller may take to see a change before the round gives up on it
/// (and counts this as its figure).
const PATIENCE: Duration = Duration::from_secs(20);
/// Time for the daemons to settle between changes, so each starts from a mesh
/// where every probe is answered (or every probe of node-c fails); a random
/// part is added each time (see [`SILENCE_PHASE`]).
const SETTLE: Duration = Duration::from_secs(2);
/// The random part of the pause before a silence: the prober asks an online
/// peer every 500 ms and a capability is decided again every 5 s without a
/// trigger, so a pause of a fixed length would silence node-c at the same
/// point of those cycles each round, always the best or the worst.
const SILENCE_PHASE: Duration = Duration::from_secs(5);
/// The random part of the pause before a return: an offline peer is asked
/// every second.
const RETURN_PHASE: Duration = Duration::from_secs(1);
/// How often a call through the API starts (each on a thread of its own, as a
/// call to a hung node waits).
const CALL_EVERY: Duration = Duration::from_millis(50);
/// How long one call through the API may wait for its answer.
const CALL_PATIENCE: Duration = Duration::from_secs(3);
/// The pause between two runs of `meshctl` or two status reads.
const RUN_EVERY: Duration = Duration::from_millis(20);

/// What a user looks at: node-a's views, then the other nodes' status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum View {
    Env,
    Exec,
    Route,
    Ollama,
    Status,
    FallbackStatus,
    PreferredStatus,
}

const VIEWS: [View; 7] =
    [View::Env, View::Exec, View::Route, View::Ollama, View::Status, View::FallbackStatus, View::PreferredStatus];

/// The views whose times say when the nodes agree.
const STATUSES: [View; 3] = [View::Status, View::FallbackStatus, View::PreferredStatus];

impl View {
    fn label(self) -> &'static str {
        match self {
            View::Env => "meshctl env",
            View::Exec => "meshctl exec",
            View::Route => "POST /mesh/route",
            View::Ollama => "/ollama/api/version",
            View::Status => "status servedBy",
            View::FallbackStatus => "node-b's servedBy",
            View::PreferredStatus => "node-c's servedBy",
        }
    }

    /// Whether it is looked at while node-c is silent: node-c's own status
    /// cannot be asked then.
    fn while_silent(self) -> bool {
        self != View::PreferredStatus
    }

    /// Calls through the API start on a cadence, since one may wait for a
    /// hung node; the others run one after another.
    fn calls_api(self) -> bool {
        matches!(self, View::Route | View::Ollama)
    }
}

/// How node-c goes silent.
#[derive(Clone, Copy, Debug)]
enum Silence {
    Hung,
    Stopped,
    LinkDown,
}

impl Silence {
    fn label(self) -> &'static str {
        match self {
            Silence::Hung => "hung",
            Silence::Stopped => "stopped",
            Silence::LinkDown => "link down",
        }
    }
}

/// One look: when it started and ended, and the node it named (None: no
/// answer, or one naming no node).
struct Look {
    view: View,
    started: Instant,
    ended: Instant,
    node: Option<String>,
}

/// Three nodes, each with its daemon and its endpoint.
struct Mesh {
    watcher: Watcher,
    _fallback: Daemon,
    preferred: Preferred,
    _endpoints: [NamedEndpoint; 3],
}

/// node-a, from which the pollers look, and where every node is (their
/// API on port `api`).
struct Watcher {
    daemon: Daemon,
    nodes: [(&'static str, Ipv4Addr); 3],
    api: u16,
}

/// node-c, and its namespace for the link-down silence.
struct Preferred {
    daemon: Daemon,
    namespace: Option<Namespace>,
}

impl Mesh {
    /// Three nodes on loopback.
    fn on_loopback() -> Mesh {
        let nodes = [
            ("node-a", Ipv4Addr::new(127, 0, 0, 2)),
            (FALLBACK, Ipv4Addr::new(127, 0, 0, 3)),
            (PREFERRED, Ipv4Addr::new(127, 0, 0, 4)),
        ];
        let ips = nodes.map(|(_, ip)| ip);
        let (api, endpoint) = (shared_port(&ips), shared_port(&ips));
        let endpoints = nodes.map(|(name, ip)| NamedEndpoint::serve(bind(ip, endpoint), name));
        let text = manifests(&nodes, api, endpoint);
        let [a, b, c] = nodes.map(|(name, ip)| Daemon::start(name, ip, api, "unused", &text));
        Mesh {
            watcher: Watcher { daemon: a, nodes, api },
            _fallback: b,
            preferred: Preferred { daemon: c, namespace: None },
            _endpoints: endpoints,
        }
    }

    /// node-a and node-b outside, node-c inside `namespace`.
    fn across(namespace: Namespace) -> Mesh {
        let nodes = [("node-a", namespace.outside[0]), (FALLBACK, namespace.outside[1]), (PREFERRED, namespace.inside)];
        let (api, endpoint) = (shared_port(&namespace.outside), shared_port(&namespace.outside));
        let inside = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    namespace.enter();
                    bind(namespace.inside, endpoint)
                })
                .join()
                .expect("bind inside the namespace")
        });
        let [a, b, _] = nodes;
        let endpoints = [
            NamedEndpoint::serve(bind(a.1, endpoint), a.0),
            NamedEndpoint::serve(bind(b.1, endpoint), b.0),
            NamedEndpoint::serve(inside, PREFERRED),
        ];
        let text = manifests(&nodes, api, endpoint);
        let (a, b) = (Daemon::start(a.0, a.1, api, "unused", &text), Daemon::start(b.0, b.1, api, "unused", &text));
        let c = Daemon::start_in(Some(&namespace.name), PREFERRED, namespace.inside, api, "unused", &text);
        Mesh {
            watcher: Watcher { daemon: a, nodes, api },
            _fallback: b,
            preferred: Preferred { daemon: c, namespace: Some(namespace) },
            _endpoints: endpoints,
        }
    }
}

impl Watcher {
    /// The node whose address `url` (`http://ip:port`) names.
    fn node_at(&self, url: &str) -> Option<String> {
        let host = url.trim().strip_prefix("http://")?.split(':').next()?;
        self.nodes.iter().find(|(_, ip)| ip.to_string() == host).map(|(name, _)| (*name).to_owned())
    }

    /// One look of `view` from node-a.
    fn look(&self, view: View) -> Option<String> {
        let a = &self.daemon;
        match view {
            View::Env => {
                let printed = String::from_utf8(a.meshctl(&["env"]).stdout).ok()?;
                self.node_at(printed.lines().find_map(|line| line.strip_prefix("OLLAMA_HOST="))?)
            }
            View::Exec => {
                let output = a.meshctl(&["exec", "--", "sh", "-c", "echo \"$OLLAMA_HOST\""]);
                self.node_at(&String::from_utf8(output.stdout).ok()?)
            }
            View::Route => {
                let call = format!(r#"{{"capability": "{CAPABILITY}", "payload": {{}}}}"#);
                let (status, body) = a.call("POST /mesh/route", &call, CALL_PATIENCE)?;
                let routed: Value = serde_json::from_str(&body).ok().filter(|_| status == 200)?;
                Some(routed["body"]["node"].as_str()?.to_owned())
            }
            View::Ollama => {
                let (status, body) = a.call("GET /ollama/api/version", "", CALL_PATIENCE)?;
                let answer: Value = serde_json::from_str(&body).ok().filter(|_| status == 200)?;
                Some(answer["node"].as_str()?.to_owned())
            }
            View::Status => served_by(&a.get("/api/v1/status")?),
            View::FallbackStatus => self.status_of(1),
            View::PreferredStatus => self.status_of(2),
        }
    }

    /// The node that node `index` names as serving the capability.
    fn status_of(&self, index: usize) -> Option<String> {
        let auth = format!("Authorization: Bearer {KEY}\r\n");
        served_by(&http_get(self.nodes[index].1, self.api, "/api/v1/status", &auth)?)
    }
}

/// The capability's `servedBy` in a node's status.
fn served_by(status: &str) -> Option<String> {
    let status: Value = serde_json::from_str(status).ok()?;
    let objects = status["objects"].as_array()?;
    let capability = objects.iter().find(|o| o["kind"] == "Capability" && o["name"] == CAPABILITY)?;
    Some(capability["details"]["servedBy"].as_str()?.to_owned())
}

impl Preferred {
    /// Silences node-c (`silent`) or ends its silence; the moment to time from.
    fn set_silent(&mut self, silence: Silence, silent: bool) -> Instant {
        let now = Instant::now();
        match (silence, silent) {
            (Silence::Hung, true) => self.daemon.signal(libc::SIGSTOP),
            (Silence::Hung, false) => self.daemon.signal(libc::SIGCONT),
            (Silence::Stopped, true) => self.daemon.stop(),
            (Silence::Stopped, false) => {
                self.daemon.restart();
                return Instant::now();
            }
            (Silence::LinkDown, silent) => self.namespace.as_ref().expect("a namespace").set_link(!silent),
        }
        now
    }
}

/// The Nodes (all on API port `api`) and the capability (its endpoint on
/// port `endpoint` of each node's address).
fn manifests(nodes: &[(&str, Ipv4Addr); 3], api: u16, endpoint: u16) -> String {
    let mut text = String::new();
    for (name, ip) in nodes {
        text.push_str(&format!(
            "apiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata: {{name: {name}}}\n\
             spec: {{role: satellite, address: {ip}, apiPort: {api}}}\n---\n"
        ));
    }
    text.push_str(&format!(
        "apiVersion: agentmesh/v1alpha1\nkind: Capability\nmetadata: {{name: {CAPABILITY}}}\n\
         spec:\n  provider: ollama\n  placement: {{prefer: [{PREFERRED}], fallback: [{FALLBACK}, node-a]}}\n  \
         endpoint: {{port: {endpoint}, path: /, healthPath: /api/version}}\n  \
         clientEnv: {{OLLAMA_HOST: \"http://{{{{host}}}}:{{{{port}}}}\"}}\n"
    ));
    text
}

/// A port free on every address of `ips`.
fn shared_port(ips: &[Ipv4Addr]) -> u16 {
    wait("a port free on every node's address", || {
        let port = free_port(ips[0]);
        ips[1..].iter().all(|ip| TcpListener::bind((*ip, port)).is_ok()).then_some(port)
    })
}

fn bind(ip: Ipv4Addr, port: u16) -> TcpListener {
    TcpListener::bind((ip, port)).unwrap_or_else(|error| panic!("bind the endpoint at {ip}:{port}: {error}"))
}

/// What the pollers saw, shared with the thread that times the rounds.
#[derive(Default)]
struct Seen {
    looks: Mutex<Vec<Look>>,
}

impl Seen {
    fn record(&self, view: View, started: Instant, node: Option<String>) {
        let look = Look { view, started, ended: Instant::now(), node };
        self.looks.lock().expect("the looks").push(look);
    }

    /// How long after `since` each of `views` first named `node`, in a look
    /// started then or later; None for a view that has not yet.
    fn first(&self, views: &[View], since: Instant, node: &str) -> Vec<Option<Duration>> {
        let looks = self.looks.lock().expect("the looks");
        let named = |view| {
            looks
                .iter()
                .filter(|look| look.view == view && look.started >= since && look.node.as_deref() == Some(node))
                .map(|look| look.ended - since)
                .min()
        };
        views.iter().copied().map(named).collect()
    }

    /// Waits until every one of `views` named `node` after `since`; the
    /// figures, a view that did not within [`PATIENCE`] counted at it (and
    /// said so).
    fn until_all_name(&self, views: &[View], since: Instant, node: &str) -> Vec<Duration> {
        loop {
            let found = self.first(views, since, node);
            if found.iter().all(Option::is_some) || since.elapsed() > PATIENCE {
                return views
                    .iter()
                    .zip(found)
                    .map(|(view, found)| {
                        found.unwrap_or_else(|| {
                            println!("  {} did not name {node} within {PATIENCE:?}", view.label());
                            PATIENCE
                        })
                    })
                    .collect();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The fallback and back times of one view over the rounds (no fallback
/// times for a view not looked at while node-c is silent).
#[derive(Clone, Default)]
struct Times {
    fallback: Vec<Duration>,
    back: Vec<Duration>,
}

/// What the rounds of one silence measured: per view (in [`VIEWS`]' order),
/// and when the nodes agreed.
struct Measured {
    views: Vec<Times>,
    agree: Times,
}

/// The latest of the status views' times among `times` (of `views`).
fn latest_status(views: &[View], times: &[Duration]) -> Duration {
    views.iter().zip(times).filter(|(view, _)| STATUSES.contains(view)).map(|(_, took)| *took).max().unwrap_or_default()
}

/// Times `rounds` silences of node-c of `silence`.
fn measure(mesh: &mut Mesh, silence: Silence, rounds: usize) -> Measured {
    let seen = Seen::default();
    let stopping = AtomicBool::new(false);
    let silent_views: Vec<View> = VIEWS.into_iter().filter(|view| view.while_silent()).collect();
    let mut measured = Measured { views: vec![Times::default(); VIEWS.len()], agree: Times::default() };
    let (watcher, preferred) = (&mesh.watcher, &mut mesh.preferred);
    std::thread::scope(|scope| {
        for view in VIEWS {
            let (seen, stopping) = (&seen, &stopping);
            scope.spawn(move || {
                std::thread::scope(|calls| {
                    while !stopping.load(Ordering::SeqCst) {
                        let started = Instant::now();
                        if view.calls_api() {
                            calls.spawn(move || seen.record(view, started, watcher.look(view)));
                            std::thread::sleep(CALL_EVERY);
                        } else {
                            seen.record(view, started, watcher.look(view));
                            std::thread::sleep(RUN_EVERY);
                        }
                    }
                });
            });
        }
        // A panic below still ends the pollers, so the scope can end.
        let _stop = StopOnDrop(&stopping);
        let ready = seen.until_all_name(&VIEWS, Instant::now(), PREFERRED);
        assert!(ready.iter().all(|took| *took < PATIENCE), "every view names {PREFERRED} at the start");
        for round in 1..=rounds {
            settle(SILENCE_PHASE);
            let silenced = preferred.set_silent(silence, true);
            let fell_back = seen.until_all_name(&silent_views, silenced, FALLBACK);
            settle(RETURN_PHASE);
            let returned = preferred.set_silent(silence, false);
            let came_back = seen.until_all_name(&VIEWS, returned, PREFERRED);
            for (view, took) in silent_views.iter().zip(&fell_back) {
                measured.views[position(*view)].fallback.push(*took);
            }
            for (times, took) in measured.views.iter_mut().zip(&came_back) {
                times.back.push(*took);
            }
            measured.agree.fallback.push(latest_status(&silent_views, &fell_back));
            measured.agree.back.push(latest_status(&VIEWS, &came_back));
            eprintln!("{} round {round}: fallback {:?}, back {:?}", silence.label(), ms(&fell_back), ms(&came_back));
        }
    });
    measured
}

fn position(view: View) -> usize {
    VIEWS.iter().position(|known| *known == view).expect("every view is in VIEWS")
}

/// Sets its flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Sleeps [`SETTLE`] and a random part of `phase`.
fn settle(phase: Duration) {
    let random = RandomState::new().build_hasher().finish();
    std::thread::sleep(SETTLE + phase.mul_f64((random % 1_000) as f64 / 1_000.0));
}

/// The `q` quantile of `times` in whole milliseconds; "-" when there are none.
fn figure(times: &[Duration], q: f64) -> String {
    if times.is_empty() { "-".to_owned() } else { format!("{:.0}", millis(quantile(times, q))) }
}

fn ms(figures: &[Duration]) -> Vec<u128> {
    figures.iter().map(Duration::as_millis).collect()
}

fn main() {
    let rounds: usize = std::env::var("SLEEP_ROUNDS").ok().and_then(|n| n.parse().ok()).unwrap_or(10);
    let mut table = Vec::new();
    {
        let mut mesh = Mesh::on_loopback();
        for silence in [Silence::Hung, Silence::Stopped] {
            table.push((silence, measure(&mut mesh, silence, rounds)));
        }
    }
    let skipped = Namespace::unavailable();
    if skipped.is_none() {
        let mut mesh = Mesh::across(Namespace::new());
        table.push((Silence::LinkDown, measure(&mut mesh, Silence::LinkDown, rounds)));
    }

    println!("what the nodes show when {PREFERRED}, the preferred node, goes silent and returns");
    println!("({rounds} rounds of each silence; goal: fallback and back within 2 s each; ms)");
    println!(
        "  {:<20} {:<10} {:>16} {:>8} {:>12} {:>8}",
        "view", "silence", "fallback median", "p95", "back median", "p95"
    );
    for (silence, measured) in &table {
        let rows = VIEWS.iter().map(|view| view.label()).zip(&measured.views);
        for (label, times) in rows.chain([("nodes agree", &measured.agree)]) {
            println!(
                "  {:<20} {:<10} {:>16} {:>8} {:>12} {:>8}",
                label,
                silence.label(),
                figure(&times.fallback, 0.5),
                figure(&times.fallback, 0.95),
                figure(&times.back, 0.5),
                figure(&times.back, 0.95),
            );
        }
    }
    if let Some(why) = skipped {
        println!("  link down: skipped ({why}; it needs root and `ip netns`)");
    }
}
