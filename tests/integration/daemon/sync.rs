//! SyncFolders end to end: two nodes, each a real Syncthing and a real daemon
//! (on 127.0.0.2 and 127.0.0.3, as in `peers.rs`), configured by nothing but
//! manifests and each Syncthing's API key. The controllers learn each other's
//! device over the mesh, pair the Syncthings and share the folder; the tests
//! look at the files on disk and at each Syncthing through its REST API, and
//! make "GUI" changes there. Every wait is a bounded poll.

use std::collections::BTreeSet;
use std::future::Future;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use agentmesh::syncthing::{Client, Device, Folder, FolderDevice};
use serde_json::{Value, json};

use super::support::{A, B, C, Daemon, IP_A, IP_B, IP_C, eventually_within, free_port_on};
use crate::support::syncthing::Syncthing;
use crate::support::wait::Check;

/// The SyncFolder of every test, and its Syncthing folder ID.
pub(super) const OBJECT: &str = "shared";
const FOLDER_ID: &str = "shared-e2e";
const LABEL: &str = "Shared by agentmesh";

/// The Mesh's resync interval in these tests.
const RESYNC: Duration = Duration::from_secs(5);

/// The longest pairing, sharing and syncing may take: peers are probed every
/// 2 s, a small file takes about 1 s on loopback, the rest is slack for a busy
/// machine.
pub(super) const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `check` until it gives a value, for at most [`PATIENCE`].
fn within<C: Check>(what: &str, check: impl FnMut() -> C) -> C::Value {
    eventually_within(PATIENCE, what, check)
}

// --- the fixture -------------------------------------------------------------------

/// One node: its daemon, its Syncthing and a client of that Syncthing. The
/// daemon is declared first, so it stops before its Syncthing.
pub(super) struct Side {
    pub(super) name: &'static str,
    ip: Ipv4Addr,
    pub(super) daemon: Daemon,
    pub(super) syncthing: Syncthing,
    client: Client,
}

/// The two Syncthings, running, before any daemon starts: a test may change
/// them by hand first.
pub(super) struct Syncthings {
    a: Syncthing,
    b: Syncthing,
    runtime: tokio::runtime::Runtime,
}

/// Two nodes, each a real Syncthing and a real daemon, with the same manifests.
pub(super) struct Pair {
    pub(super) a: Side,
    pub(super) b: Side,
    /// The Mesh and the Nodes, without the SyncFolder.
    mesh: String,
    runtime: tokio::runtime::Runtime,
}

impl Syncthings {
    /// Starts both, one after the other on the test's thread: the fixture has
    /// the kernel kill a Syncthing when the thread that started it ends.
    pub(super) fn start() -> Syncthings {
        let (a, b) = (Syncthing::start("a"), Syncthing::start("b"));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        Syncthings { a, b, runtime }
    }

    fn block<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Starts a daemon per node on the Nodes, the Mesh and the SyncFolder.
    fn start_daemons(self) -> Pair {
        self.start_daemons_with("")
    }

    /// Starts a daemon per node on the Nodes, the Mesh, the SyncFolder and
    /// `extra` manifests (none when empty).
    pub(super) fn start_daemons_with(self, extra: &str) -> Pair {
        self.start_daemons_with_env(extra, &[])
    }

    /// [`Syncthings::start_daemons_with`], each daemon's process with `env` too.
    pub(super) fn start_daemons_with_env(self, extra: &str, env: &[(&str, &str)]) -> Pair {
        let Syncthings { a, b, runtime } = self;
        let (mesh, [a, b]) = start_sides([a, b], extra, env);
        Pair { a, b, mesh, runtime }
    }
}

/// Nodes `A`, `B` (and `C` for three) on their addresses, each with its
/// Syncthing of `syncthings` and a daemon on the Nodes, the Mesh, the
/// SyncFolder (shared by all) and the `extra` manifests (none when empty).
/// Returns the manifest of the Mesh and the Nodes, and the sides.
fn start_sides<const N: usize>(syncthings: [Syncthing; N], extra: &str, env: &[(&str, &str)]) -> (String, [Side; N]) {
    let nodes: [(&'static str, Ipv4Addr); N] = std::array::from_fn(|index| [(A, IP_A), (B, IP_B), (C, IP_C)][index]);
    let ports = nodes.map(|(_, ip)| free_port_on(ip));
    let described: Vec<_> =
        nodes.iter().zip(&ports).zip(&syncthings).map(|(((name, ip), port), st)| (*name, *ip, *port, st)).collect();
    let mesh = mesh(&described);
    let paths: Vec<_> =
        nodes.iter().zip(&syncthings).map(|((name, _), syncthing)| (*name, syncthing.data(OBJECT))).collect();
    let folder = sync_folder(&paths);
    let mut sides = nodes.into_iter().zip(ports).zip(syncthings).map(|(((name, ip), port), syncthing)| {
        let mut builder = Daemon::builder().file("manifests/node.yaml", &mesh).file("manifests/sync.yaml", &folder);
        if !extra.is_empty() {
            builder = builder.file("manifests/extra.yaml", extra);
        }
        for (name, value) in env {
            builder = builder.process_env(name, value);
        }
        let builder = builder.setting("SYNCTHING_API_KEY", syncthing.api_key()).at(name, ip, port);
        let client = Client::new(&syncthing.api_url(), syncthing.api_key());
        Side { name, ip, daemon: builder.start(), syncthing, client }
    });
    let sides = std::array::from_fn(|_| sides.next().expect("a side per node"));
    (mesh, sides)
}

/// Three nodes, each a real Syncthing and a real daemon, sharing the
/// SyncFolder, with the same manifests.
pub(super) struct Trio {
    pub(super) sides: [Side; 3],
}

impl Trio {
    /// Starts three Syncthings, then a daemon per node on the Nodes, the
    /// Mesh, the SyncFolder (shared by all three) and the `extra` manifests.
    pub(super) fn start_with(extra: &str) -> Trio {
        let syncthings = [Syncthing::start("a"), Syncthing::start("b"), Syncthing::start("c")];
        let (_, sides) = start_sides(syncthings, extra, &[]);
        Trio { sides }
    }

    /// Waits until the SyncFolder is Ready on every node.
    pub(super) fn wait_until_ready(&self) {
        for side in &self.sides {
            side.wait_for_sync_folder("ready", |object| object["ready"] == true);
        }
    }
}

impl Pair {
    /// Both nodes, sharing the SyncFolder.
    fn start() -> Pair {
        Syncthings::start().start_daemons()
    }

    fn block<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Has `side`'s Syncthing scan the folder now, not after its watcher's delay.
    pub(super) fn rescan(&self, side: &Side) {
        self.block(side.client.scan(FOLDER_ID)).unwrap_or_else(|error| panic!("rescan on {}: {error}", side.name));
    }

    fn sides(&self) -> [&Side; 2] {
        [&self.a, &self.b]
    }

    /// The folder `id` in `side`'s Syncthing, None when it has none.
    fn folder(&self, side: &Side, id: &str) -> Option<Folder> {
        self.block(side.client.folder(id)).unwrap_or_else(|error| panic!("read folder {id} on {}: {error}", side.name))
    }

    fn devices(&self, side: &Side) -> Vec<Device> {
        self.block(side.client.devices()).unwrap_or_else(|error| panic!("read devices on {}: {error}", side.name))
    }

    /// Waits until the SyncFolder is Ready on both nodes.
    pub(super) fn wait_until_ready(&self) {
        for side in self.sides() {
            side.wait_for_sync_folder("ready", |object| object["ready"] == true);
        }
    }

    /// The names in each node's folder.
    fn files(&self) -> Vec<(PathBuf, BTreeSet<String>)> {
        self.sides()
            .iter()
            .map(|side| {
                let path = side.syncthing.data(OBJECT);
                let names = file_names(&path);
                (path, names)
            })
            .collect()
    }

    /// Waits until neither Syncthing has the folder, nor either daemon the
    /// SyncFolder.
    fn wait_until_unshared(&self) {
        for side in self.sides() {
            within(&format!("{} no longer has the folder", side.name), || {
                self.folder(side, FOLDER_ID).is_none().then_some(())
            });
            within(&format!("{} no longer lists the SyncFolder", side.name), || {
                side.sync_folder().is_none().then_some(())
            });
        }
    }

    /// Writes `name` into `from`'s folder and waits until `to`'s has it.
    fn write_and_wait(&self, from: &Side, to: &Side, name: &str, text: &str) {
        let (source, target) = (from.syncthing.data(OBJECT), to.syncthing.data(OBJECT));
        within(&format!("Syncthing made {}'s folder", from.name), || source.join(".stfolder").exists().then_some(()));
        std::fs::write(source.join(name), text).expect("write a file into the folder");
        within(&format!("{name} written on {} arrives on {}", from.name, to.name), || {
            (std::fs::read_to_string(target.join(name)).ok()? == text).then_some(())
        });
    }
}

impl Side {
    /// The SyncFolder's status on this node, None while it lists none.
    fn sync_folder(&self) -> Option<Value> {
        self.daemon.object("SyncFolder", OBJECT)
    }

    /// Waits until `check` holds for the SyncFolder's status on this node; the
    /// panic shows the last status seen.
    fn wait_for_sync_folder(&self, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        within(&format!("SyncFolder/{OBJECT} on {} is {what}", self.name), || match self.sync_folder() {
            Some(object) if check(&object) => Ok(object),
            Some(object) => Err(object.to_string()),
            None => Err("not listed".to_owned()),
        })
    }

    /// `agentmesh_reconciles_total{kind="SyncFolder",result="ok"}` of this
    /// daemon's `/metrics`.
    fn sync_folder_reconciles(&self) -> f64 {
        self.metric(r#"agentmesh_reconciles_total{kind="SyncFolder",result="ok"}"#).unwrap_or(0.0)
    }

    /// The value of the sample `series` (`name{labels}`) in this daemon's
    /// `/metrics`; None while it has none.
    pub(super) fn metric(&self, series: &str) -> Option<f64> {
        let text = api_text(self.ip, self.daemon.port(), "/metrics").expect("the daemon serves /metrics");
        text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    /// The events of `meshctl events -o json` with `reason`.
    pub(super) fn events(&self, reason: &str) -> Vec<Value> {
        let run = self.daemon.meshctl(&["events", "-o", "json"]);
        assert_eq!(run.code, 0, "{run:?}");
        run.stdout
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).expect("events -o json prints JSON lines"))
            .filter(|message| message["type"] == "event" && message["reason"] == reason)
            .collect()
    }
}

impl Side {
    /// Where this node's daemon serves the mesh API.
    pub(super) fn api_address(&self) -> SocketAddr {
        (self.ip, self.daemon.port()).into()
    }
}

impl Drop for Side {
    /// Shows the end of Syncthing's log when the test is failing (the
    /// daemon's own log follows, as the daemon drops).
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.syncthing.log()).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            eprintln!("--- end of {}'s Syncthing log ---\n{tail}\n---", self.name);
        }
    }
}

/// The two Nodes, each with its Syncthing, and a Mesh that resyncs every 5 s.
fn mesh(nodes: &[(&str, Ipv4Addr, u16, &Syncthing)]) -> String {
    let mut text = format!(
        "apiVersion: agentmesh/v1alpha1\nkind: Mesh\nmetadata:\n  name: mesh\nspec:\n  reconcile:\n    \
         resyncInterval: {}s\n",
        RESYNC.as_secs()
    );
    for (index, (name, ip, port, syncthing)) in nodes.iter().enumerate() {
        let role = if index == 0 { "primary" } else { "satellite" };
        text.push_str(&format!(
            "---\napiVersion: agentmesh/v1alpha1\nkind: Node\nmetadata:\n  name: {name}\nspec:\n  role: {role}\n  \
             address: {ip}\n  apiPort: {port}\n  syncthing:\n    apiUrl: {}\n    apiKey: {{env: SYNCTHING_API_KEY}}\n    \
             deviceAddress: {}\n",
            syncthing.api_url(),
            syncthing.device_address()
        ));
    }
    text
}

/// The SyncFolder, at each node's path of `paths`; `*.tmp` is not synced.
fn sync_folder(paths: &[(&str, PathBuf)]) -> String {
    let mut text = format!(
        "apiVersion: agentmesh/v1alpha1\nkind: SyncFolder\nmetadata:\n  name: {OBJECT}\nspec:\n  folderId: {FOLDER_ID}\n  \
         label: {LABEL}\n  paths:\n"
    );
    for (node, path) in paths {
        text.push_str(&format!("    {node}: {}\n", path.display()));
    }
    text.push_str("  type: sendreceive\n  ignore:\n    - \"*.tmp\"\n");
    text
}

/// The `(status, reason)` of one condition of an object.
fn condition(object: &Value, kind: &str) -> (String, String) {
    let conditions = object["conditions"].as_array().expect("conditions");
    let found = conditions.iter().find(|c| c["type"] == kind).unwrap_or_else(|| panic!("{kind} in {object}"));
    (found["status"].as_str().unwrap_or_default().to_owned(), found["reason"].as_str().unwrap_or_default().to_owned())
}

/// The names in a folder, sorted.
fn file_names(folder: &Path) -> BTreeSet<String> {
    let entries = std::fs::read_dir(folder).unwrap_or_else(|error| panic!("read {}: {error}", folder.display()));
    entries.map(|entry| entry.expect("an entry").file_name().into_string().expect("a UTF-8 name")).collect()
}

/// The body of `GET path` of a daemon's API with the key, when it answers 200.
fn api_text(ip: Ipv4Addr, port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&SocketAddr::from((ip, port)), Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {ip}\r\nAuthorization: Bearer {}\r\n\r\n", Daemon::KEY);
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    (head.split_whitespace().nth(1)? == "200").then(|| body.to_owned())
}

/// The device ID of a new Syncthing identity that never runs: a device
/// someone added by hand.
fn another_device_id() -> String {
    let home = tempfile::tempdir().expect("temp dir");
    let output = Command::new("syncthing")
        .arg("generate")
        .arg(format!("--home={}", home.path().display()))
        .env("STNODEFAULTFOLDER", "1")
        .output()
        .expect("syncthing generate runs");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let id = text.split("Device ID: ").nth(1).and_then(|rest| rest.split_whitespace().next());
    id.unwrap_or_else(|| panic!("no device ID in {text}")).to_owned()
}

// --- the tests ---------------------------------------------------------------------

#[test]
fn the_controllers_pair_the_syncthings_and_files_flow_both_ways() {
    let pair = Pair::start();

    // Each daemon serves its own device, read from its Syncthing.
    for side in pair.sides() {
        let device = within(&format!("{} serves its device", side.name), || {
            side.daemon.api_get("/api/v1/syncthing/device").filter(|device| device["deviceId"].is_string())
        });
        assert_eq!(device["node"], side.name, "{device}");
        assert_eq!(device["deviceId"], side.syncthing.device_id(), "{device}");
        assert_eq!(device["deviceAddress"], side.syncthing.device_address().as_str(), "{device}");
    }

    pair.write_and_wait(&pair.a, &pair.b, "from-a.txt", "written on node-a");
    pair.write_and_wait(&pair.b, &pair.a, "from-b.txt", "written on node-b");
    pair.wait_until_ready();

    for (side, peer) in [(&pair.a, &pair.b), (&pair.b, &pair.a)] {
        let devices = pair.devices(side);
        let known = devices.iter().find(|device| device.device_id == peer.syncthing.device_id());
        let known = known.unwrap_or_else(|| panic!("{} has {}'s device: {devices:?}", side.name, peer.name));
        assert_eq!(known.addresses, [peer.syncthing.device_address()], "{known:?}");
        let folder = pair.folder(side, FOLDER_ID).unwrap_or_else(|| panic!("{} has the folder", side.name));
        assert_eq!(folder.label, LABEL);
        assert_eq!(folder.path, side.syncthing.data(OBJECT).display().to_string());
        assert!(folder.devices.iter().any(|device| device.device_id == peer.syncthing.device_id()), "{folder:?}");
        assert_eq!(pair.block(side.client.ignores(FOLDER_ID)).unwrap(), ["*.tmp"]);
        let object = side.sync_folder().unwrap();
        assert_eq!(condition(&object, "Ready").0, "True", "{object}");
        assert_eq!(condition(&object, "Degraded"), ("False".into(), "AsExpected".into()), "{object}");
    }
}

#[test]
fn removing_the_sync_folder_unshares_it_on_both_nodes_and_keeps_every_file() {
    let pair = Pair::start();
    pair.write_and_wait(&pair.a, &pair.b, "kept.txt", "keep me");
    pair.wait_until_ready();
    let before = pair.files();

    for side in pair.sides() {
        side.daemon.remove("manifests/sync.yaml");
    }
    pair.wait_until_unshared();

    assert_every_file_kept(before);
}

#[test]
fn an_apply_without_the_sync_folder_on_one_node_unshares_it_on_both() {
    let pair = Pair::start();
    pair.write_and_wait(&pair.b, &pair.a, "kept.txt", "keep me");
    pair.wait_until_ready();
    let before = pair.files();

    pair.a.daemon.write("other/node.yaml", &pair.mesh);
    let run = pair.a.daemon.meshctl(&["apply", "-f", "other"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains(&format!("- SyncFolder/{OBJECT}")), "the plan names the removal: {run:?}");
    pair.wait_until_unshared();

    assert_every_file_kept(before);
}

/// Every file of `before` is still there but Syncthing's marker.
fn assert_every_file_kept(before: Vec<(PathBuf, BTreeSet<String>)>) {
    for (path, names) in before {
        let expected: BTreeSet<String> = names.into_iter().filter(|name| name != ".stfolder").collect();
        assert!(expected.contains("kept.txt"), "{expected:?}");
        assert_eq!(file_names(&path), expected, "only Syncthing's marker goes from {}", path.display());
        assert_eq!(std::fs::read_to_string(path.join("kept.txt")).unwrap(), "keep me");
    }
}

#[test]
fn a_folder_and_a_device_made_by_hand_are_left_exactly_as_they_were() {
    let syncthings = Syncthings::start();
    let client = Client::new(&syncthings.a.api_url(), syncthings.a.api_key());
    let by_hand = Device { device_id: another_device_id(), name: "made-by-hand".into(), ..Device::default() };
    syncthings.block(client.add_device(&by_hand)).expect("add a device by hand");
    let hand_folder = Folder {
        id: "by-hand".into(),
        label: "Made by hand".into(),
        path: syncthings.a.data("by-hand").display().to_string(),
        devices: vec![FolderDevice::new(&by_hand.device_id)],
        ..Folder::default()
    };
    syncthings.block(client.add_folder(&hand_folder)).expect("add a folder by hand");
    let folder_before = syncthings.block(client.folder("by-hand")).unwrap().expect("the folder made by hand");
    let devices = syncthings.block(client.devices()).unwrap();
    let device_before = devices.into_iter().find(|device| device.device_id == by_hand.device_id).expect("the device");

    let pair = syncthings.start_daemons();
    pair.wait_until_ready();
    // A change of an owned field of the managed folder is put back: node-a's
    // controller has looked at its Syncthing since.
    pair.block(pair.a.client.patch_folder(FOLDER_ID, &json!({"label": "changed in the GUI"}))).unwrap();
    within("the managed folder's label is put back", || {
        (pair.folder(&pair.a, FOLDER_ID)?.label == LABEL).then_some(())
    });
    // And through at least one resync more.
    let (reconciles, since) = (pair.a.sync_folder_reconciles(), Instant::now());
    within("node-a reconciled its SyncFolder again after a resync interval", || {
        (since.elapsed() > RESYNC + Duration::from_secs(1) && pair.a.sync_folder_reconciles() > reconciles)
            .then_some(())
    });

    let untouched = |when: &str| {
        assert_eq!(pair.folder(&pair.a, "by-hand").as_ref(), Some(&folder_before), "{when}");
        let devices = pair.devices(&pair.a);
        let device_after = devices.iter().find(|device| device.device_id == by_hand.device_id);
        assert_eq!(device_after, Some(&device_before), "the device made by hand is untouched {when}");
    };
    untouched("after reconciles and a resync");
    assert_eq!(pair.folder(&pair.b, "by-hand"), None, "nothing was copied to node-b");

    // Removing the SyncFolder prunes what the controllers made, only that.
    // With no SyncFolder left nothing reconciles after the removal's own
    // pass, which the metrics count once it is over.
    let reconciles = pair.a.sync_folder_reconciles();
    for side in pair.sides() {
        side.daemon.remove("manifests/sync.yaml");
    }
    pair.wait_until_unshared();
    within("node-a's removal pass is over", || (pair.a.sync_folder_reconciles() > reconciles).then_some(()));
    untouched("after the SyncFolder was removed");
}

#[test]
fn a_gui_change_of_an_owned_field_is_put_back_and_one_of_another_field_is_kept() {
    let pair = Pair::start();
    pair.wait_until_ready();
    let a = &pair.a;

    pair.block(a.client.patch_folder(FOLDER_ID, &json!({"maxConflicts": 7}))).unwrap();
    pair.block(a.client.patch_folder(FOLDER_ID, &json!({"label": "Renamed in the GUI"}))).unwrap();
    let changed = Instant::now();
    let folder = within("the label is put back", || pair.folder(a, FOLDER_ID).filter(|folder| folder.label == LABEL));
    let took = changed.elapsed();
    assert_eq!(folder.other["maxConflicts"], json!(7), "a field agentmesh does not own is kept: {folder:?}");

    let event = within("a DriftCorrected event", || a.events("DriftCorrected").pop());
    let message = event["message"].as_str().unwrap_or_default();
    assert!(message.contains("label") && message.contains("Renamed in the GUI"), "{event}");
    assert_eq!(event["object"], format!("SyncFolder/{OBJECT}"), "{event}");
    assert!(took < RESYNC + Duration::from_secs(5), "put back after {took:?}");

    // Still kept after a resync.
    let (reconciles, since) = (a.sync_folder_reconciles(), Instant::now());
    within("node-a reconciled its SyncFolder again after a resync interval", || {
        (since.elapsed() > RESYNC + Duration::from_secs(1) && a.sync_folder_reconciles() > reconciles).then_some(())
    });
    let folder = pair.folder(a, FOLDER_ID).unwrap();
    assert_eq!((folder.label.as_str(), &folder.other["maxConflicts"]), (LABEL, &json!(7)));
}

#[test]
fn a_dead_syncthing_degrades_the_folder_and_its_return_makes_it_ready_without_restarting_the_daemon() {
    let mut pair = Pair::start();
    pair.wait_until_ready();
    let pid = pair.a.daemon.pid();

    pair.a.syncthing.kill();
    let object = pair.a.wait_for_sync_folder("Degraded", |object| condition(object, "Degraded").0 == "True");
    assert_eq!(condition(&object, "Degraded"), ("True".into(), "SyncthingUnreachable".into()), "{object}");
    assert_eq!(object["ready"], false, "{object}");

    pair.a.syncthing.start_again();
    let object = pair.a.wait_for_sync_folder("ready again", |object| object["ready"] == true);
    assert_eq!(condition(&object, "Degraded"), ("False".into(), "AsExpected".into()), "{object}");
    assert_eq!(pair.a.daemon.pid(), pid, "the same daemon");
    pair.write_and_wait(&pair.a, &pair.b, "after.txt", "after the restart");
}

#[test]
fn a_folder_whose_peer_is_stopped_says_when_it_was_last_in_sync_with_it() {
    let mut pair = Pair::start();
    pair.write_and_wait(&pair.a, &pair.b, "before.txt", "before node-b stops");
    let object = pair.a.wait_for_sync_folder("in sync with node-b", |object| {
        object["conditions"][0]["message"].as_str().is_some_and(|m| m.contains(&format!("in sync with {B}")))
    });
    assert_eq!(condition(&object, "Ready").0, "True", "{object}");
    let in_sync_by = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();

    pair.b.daemon.kill();
    pair.b.syncthing.kill();
    let object = pair.a.wait_for_sync_folder("node-b offline", |object| {
        object["conditions"][0]["message"].as_str().is_some_and(|m| m.contains(&format!("{B} offline")))
    });
    let message = object["conditions"][0]["message"].as_str().unwrap().to_owned();
    assert!(!message.contains("in sync with"), "{object}");
    let time = message
        .strip_prefix(&format!("{B} offline; last in sync "))
        .and_then(|rest| rest.strip_suffix(" UTC"))
        .unwrap_or_else(|| panic!("the time it was last in sync: {message}"));
    // Seen in sync once the file had arrived, and no later than just before node-b stopped.
    let (_, by) = in_sync_by.trim_end_matches('Z').split_once('T').unwrap();
    assert!(time.len() == 8 && time <= by, "last in sync {time}, checked by {by}: {message}");
    assert_eq!(condition(&object, "Ready").0, "True", "an offline peer does not block Ready: {object}");
}

#[test]
fn a_gui_unshare_from_the_peer_is_put_back_as_drift() {
    let pair = Pair::start();
    pair.wait_until_ready();
    let (a, peer) = (&pair.a, pair.b.syncthing.device_id());

    // What the GUI sends when the peer is unticked: the list without it.
    pair.block(a.client.patch_folder(FOLDER_ID, &json!({"devices": [{"deviceID": a.syncthing.device_id()}]}))).unwrap();
    within("node-a's folder is shared with node-b again", || {
        pair.folder(a, FOLDER_ID)?.devices.iter().any(|device| device.device_id == peer).then_some(())
    });

    let event = within("a DriftCorrected event naming the devices", || {
        a.events("DriftCorrected")
            .into_iter()
            .find(|event| event["message"].as_str().unwrap_or_default().contains("devices"))
    });
    assert_eq!(event["object"], format!("SyncFolder/{OBJECT}"), "{event}");
}

#[test]
fn every_owned_field_changed_in_the_gui_is_put_back() {
    let pair = Pair::start();
    pair.wait_until_ready();
    let a = &pair.a;
    let declared = pair.folder(a, FOLDER_ID).unwrap();

    let changes = json!({
        "type": "sendonly",
        "fsWatcherDelayS": 30,
        "rescanIntervalS": 60,
        "versioning": {"type": "trashcan", "params": {"cleanoutDays": "3"}, "cleanupIntervalS": 3600},
    });
    pair.block(a.client.patch_folder(FOLDER_ID, &changes)).unwrap();
    let folder = within("every owned field is put back", || {
        let folder = pair.folder(a, FOLDER_ID)?;
        (folder.folder_type == declared.folder_type
            && folder.fs_watcher_delay_s == declared.fs_watcher_delay_s
            && folder.rescan_interval_s == declared.rescan_interval_s
            && folder.versioning.versioning_type == declared.versioning.versioning_type)
            .then_some(folder)
    });
    assert_eq!(folder.label, LABEL);
    assert_eq!(folder.devices.len(), declared.devices.len(), "{folder:?}");

    let events = within("DriftCorrected events", || Some(a.events("DriftCorrected")).filter(|e| !e.is_empty()));
    let messages: Vec<&str> = events.iter().filter_map(|event| event["message"].as_str()).collect();
    for field in ["type", "fsWatcherDelayS", "rescanIntervalS", "versioning"] {
        assert!(messages.iter().any(|message| message.contains(field)), "{field} is named in {messages:?}");
    }
}

#[test]
fn a_path_changed_in_the_gui_is_put_back() {
    let pair = Pair::start();
    pair.write_and_wait(&pair.a, &pair.b, "kept.txt", "keep me");
    pair.wait_until_ready();
    let a = &pair.a;
    let declared = a.syncthing.data(OBJECT).display().to_string();

    let elsewhere = a.syncthing.data("elsewhere").display().to_string();
    pair.block(a.client.patch_folder(FOLDER_ID, &json!({"path": elsewhere}))).unwrap();
    // The status shows why, should it not be put back.
    a.wait_for_sync_folder("back at its declared path and ready", |object| {
        object["ready"] == true && pair.folder(a, FOLDER_ID).is_some_and(|folder| folder.path == declared)
    });
    assert_eq!(std::fs::read_to_string(a.syncthing.data(OBJECT).join("kept.txt")).unwrap(), "keep me");
    assert_eq!(std::fs::read_to_string(pair.b.syncthing.data(OBJECT).join("kept.txt")).unwrap(), "keep me");
}

#[test]
fn a_daemon_restarted_after_sigkill_still_prunes_the_folder_it_made() {
    let mut pair = Pair::start();
    pair.write_and_wait(&pair.a, &pair.b, "kept.txt", "keep me");
    pair.wait_until_ready();
    let before = pair.files();

    pair.a.daemon.kill();
    pair.a.daemon.remove("manifests/sync.yaml");
    pair.a.daemon.restart();
    pair.b.daemon.remove("manifests/sync.yaml");
    pair.wait_until_unshared();

    assert_every_file_kept(before);
}
