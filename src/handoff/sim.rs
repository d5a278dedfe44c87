//! A deterministic simulation of the ownership protocol: two or three nodes, a
//! network that loses, duplicates, delays and reorders messages, partitions
//! (a cut link loses what crosses it) and sleeps (a sleeping node does nothing
//! and hears nothing, and wakes with what it knew), crashes of any node
//! (restarting from its persisted record, sometimes after persisting but before
//! sending), agent writes on any node, record exchanges (a node sends its record
//! to every other, as the I/O layer does each pass), folder syncs between two
//! nodes that reach each other, barrier checks (source and target only),
//! handoffs between any pair (sometimes retried with the same id), `Accept`s
//! whose connection the target refuses (never delivered; a source whose every
//! `Accept` of a handoff was refused may step `Unreachable`, as the driver
//! does) and, in half of the runs, forced takeovers. Every run is a seed; a failing seed is run
//! again with a trace, printed with the failure.
//!
//! Checked after every step: never two owners at one epoch (over the whole run,
//! not only at one instant), each node's epoch and promise never decrease
//! (across restarts too), every record change is persisted, only the owner is
//! ever frozen and only a node that is not the owner forces. At the end, after
//! a quiet phase (links healed, everyone awake, no faults, every message
//! delivered, records exchanged): all nodes agree on one owner and epoch, none
//! is frozen or forcing, all have heard a peer's record, every allowed write is
//! attributed to the one owner of its epoch, at most the final one, and every
//! allowed write of epoch `e` is in the content the target held when it
//! accepted the handoff from `e` (no write of an owner is lost by a handoff).
//!
//! `HANDOFF_SIM_RUNS=10000 cargo nextest run --locked sim --no-capture` runs
//! each test that many seeds and prints the figures.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use super::protocol::{Envelope, HandoffId, Input, Message, Node, Notice, Phase, Reason, Record, Stage};

const NAMES: [&str; 3] = ["laptop", "mini", "desktop"];
const STEPS: usize = 200;

/// The outcomes every run of any size reaches, each many times.
const EVERY_MESH_SEES: [&str; 13] = [
    "resume",
    "released",
    "unfrozen after barrier failed",
    "unfrozen after abort",
    "unfrozen after refusal",
    "unfrozen after restart",
    "unfrozen after unreachable",
    "accept refused",
    "demoted",
    "took over",
    "stale write",
    "allowed write",
    "crash",
];

#[test]
fn two_nodes_under_random_faults_keep_one_owner_per_epoch_and_lose_no_owners_write() {
    let seen = run_seeds(2, 5_000);
    expect_seen(&seen, &EVERY_MESH_SEES);
}

#[test]
fn three_nodes_under_random_faults_keep_one_owner_per_epoch_and_lose_no_owners_write() {
    let seen = run_seeds(3, 20_000);
    expect_seen(&seen, &EVERY_MESH_SEES);
    // What only a third node brings: promises for a force, sleeps, cut links.
    expect_seen(
        &seen,
        &["promised", "promise refused", "force given up", "slept", "partitioned", "handoff to the third node"],
    );
}

/// Runs `default_runs` seeds (or `HANDOFF_SIM_RUNS`) of `nodes` nodes; panics
/// with the trace of the first failing seed; how often each outcome happened.
fn run_seeds(nodes: usize, default_runs: u64) -> (u64, BTreeMap<&'static str, u64>) {
    let runs = std::env::var("HANDOFF_SIM_RUNS").ok().and_then(|runs| runs.parse().ok()).unwrap_or(default_runs);
    let started = Instant::now();
    let mut seen = BTreeMap::<&str, u64>::new();
    for seed in 0..runs {
        let mut world = World::new(seed, nodes, false);
        if let Err(failure) = world.run() {
            let mut traced = World::new(seed, nodes, true);
            let again = traced.run().err().unwrap_or_default();
            panic!("seed {seed}: {failure}\n(again with trace: {again})\n{}", traced.trace.join("\n"));
        }
        for (what, count) in world.seen {
            *seen.entry(what).or_default() += count;
        }
    }
    let steps = seen.get("step").copied().unwrap_or_default();
    println!("{nodes} nodes: {runs} runs, {steps} steps, {:.1} s: {seen:?}", started.elapsed().as_secs_f64());
    (runs, seen)
}

/// Each outcome happened at least once every 50 runs.
fn expect_seen((runs, seen): &(u64, BTreeMap<&str, u64>), outcomes: &[&str]) {
    for what in outcomes {
        let count = seen.get(what).copied().unwrap_or_default();
        assert!(count >= runs / 50, "only {count} × {what} in {runs} runs: {seen:?}");
    }
}

/// splitmix64: small, fast and good enough to pick among actions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn percent(&mut self, p: u64) -> bool {
        self.next() % 100 < p
    }
}

struct SimNode {
    node: Node,
    /// What survives a crash.
    persisted: Record,
    /// The conversation folder on disk: the ids of the writes it holds.
    folder: BTreeSet<u64>,
    /// The barrier check under way; lost in a crash.
    barrier: Option<HandoffId>,
    /// By handoff, whether the target refused the connection of every `Accept`
    /// this node sent for it since it started (what a driver knows; lost in a crash).
    accepts_all_refused: BTreeMap<HandoffId, bool>,
    asleep: bool,
    highest_epoch: u64,
    highest_promise: u64,
}

struct AgentWrite {
    id: u64,
    node: usize,
    epoch: u64,
    allowed: bool,
}

struct World {
    rng: Rng,
    nodes: Vec<SimNode>,
    network: Vec<Envelope>,
    /// The links that lose what crosses them, as (lower, higher) node index.
    cut: BTreeSet<(usize, usize)>,
    writes: Vec<AgentWrite>,
    /// Every node that ever believed it owned an epoch, by epoch.
    owners: BTreeMap<u64, usize>,
    /// The target's folder when it accepted the handoff from an epoch, by that epoch.
    accepted_content: BTreeMap<u64, BTreeSet<u64>>,
    next_id: u64,
    last_handoff: Option<(HandoffId, usize)>,
    force_allowed: bool,
    /// False in the quiet phase: no connection is refused.
    faults: bool,
    tracing: bool,
    trace: Vec<String>,
    /// How often each outcome happened, to show the runs reach them.
    seen: BTreeMap<&'static str, u64>,
}

impl World {
    fn new(seed: u64, count: usize, tracing: bool) -> World {
        let start = Record::new(NAMES[0]);
        let node = |name: &str| SimNode {
            node: Node::new(name, start.clone()),
            persisted: start.clone(),
            folder: BTreeSet::new(),
            barrier: None,
            accepts_all_refused: BTreeMap::new(),
            asleep: false,
            highest_epoch: 0,
            highest_promise: 0,
        };
        World {
            rng: Rng(seed),
            nodes: NAMES[..count].iter().map(|name| node(name)).collect(),
            network: Vec::new(),
            cut: BTreeSet::new(),
            writes: Vec::new(),
            owners: BTreeMap::from([(0, 0)]),
            accepted_content: BTreeMap::new(),
            next_id: 0,
            last_handoff: None,
            force_allowed: seed % 2 == 0,
            faults: true,
            tracing,
            trace: Vec::new(),
            seen: BTreeMap::new(),
        }
    }

    fn run(&mut self) -> Result<(), String> {
        let steps = STEPS * self.nodes.len() / 2;
        for _ in 0..steps {
            self.count("step");
            self.random_step()?;
        }
        self.quiet()?;
        self.check_end()
    }

    fn random_step(&mut self) -> Result<(), String> {
        let count = self.nodes.len();
        let i = self.rng.below(count);
        let other = (i + 1 + self.rng.below(count - 1)) % count;
        let awake = !self.nodes[i].asleep;
        match self.rng.below(100) {
            0..=29 if !self.network.is_empty() => {
                let envelope = self.network.swap_remove(self.rng.below(self.network.len()));
                let lose_sends = self.rng.percent(3);
                self.deliver(envelope, lose_sends)?;
            }
            30..=34 if !self.network.is_empty() => {
                let lost = self.network.swap_remove(self.rng.below(self.network.len()));
                self.note(|| format!("lost {lost:?}"));
            }
            35..=39 if !self.network.is_empty() && self.network.len() < 30 => {
                let copy = self.network[self.rng.below(self.network.len())].clone();
                self.note(|| format!("duplicated {copy:?}"));
                self.network.push(copy);
            }
            40..=46 if awake => {
                // The driver of a handoff with an `Accept` out: it resends it,
                // gives up when every one was refused, or times out.
                let accepting = match &self.record(i).phase {
                    Phase::Frozen { handoff, target, stage: Stage::Accepting } => {
                        Some((handoff.clone(), target.clone()))
                    }
                    _ => None,
                };
                let all_refused = |handoff: &HandoffId| self.nodes[i].accepts_all_refused.get(handoff) == Some(&true);
                let input = match accepting {
                    Some((handoff, _)) if all_refused(&handoff) && self.rng.percent(40) => {
                        Input::Unreachable { handoff }
                    }
                    Some((handoff, target)) if self.rng.percent(50) => Input::StartHandoff { handoff, target },
                    _ => Input::Timeout,
                };
                self.apply(i, input, false)?;
            }
            47..=49 => self.crash(i)?,
            50..=63 if awake => self.write(i)?,
            64..=71 if awake => self.send_records(i),
            72..=77 if awake => {
                // A retry of the same attempt; an id is never used for a new one.
                let same_attempt = |last: &HandoffId| match &self.record(i).phase {
                    Phase::Frozen { handoff, .. } => handoff == last,
                    _ => self.record(i).owner != NAMES[i],
                };
                let handoff = match &self.last_handoff {
                    Some((last, source)) if *source == i && same_attempt(last) && self.rng.percent(25) => last.clone(),
                    _ => {
                        self.next_id += 1;
                        HandoffId(format!("h{}", self.next_id))
                    }
                };
                self.last_handoff = Some((handoff.clone(), i));
                if other == 2 {
                    self.count("handoff to the third node");
                }
                let lose_sends = self.rng.percent(3);
                self.apply(i, Input::StartHandoff { handoff, target: NAMES[other].to_owned() }, lose_sends)?;
            }
            78..=79 if awake && self.force_allowed => {
                let nodes = self.names().filter(|name| *name != NAMES[i]).map(str::to_owned).collect();
                self.apply(i, Input::Force { nodes }, false)?;
            }
            80..=86 => self.sync(i, other),
            87..=95 if awake => self.check_barrier(i)?,
            96..=97 if count > 2 => {
                let link = (i.min(other), i.max(other));
                if !self.cut.remove(&link) {
                    self.note(|| format!("cut {} - {}", NAMES[link.0], NAMES[link.1]));
                    self.count("partitioned");
                    self.cut.insert(link);
                }
            }
            98..=99 if count > 2 => {
                if awake {
                    self.note(|| format!("{} sleeps", NAMES[i]));
                    self.count("slept");
                    self.nodes[i].asleep = true;
                } else {
                    self.wake(i)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// No more faults: links heal, every node wakes, every barrier passes,
    /// every message arrives, records are exchanged, until nothing changes.
    fn quiet(&mut self) -> Result<(), String> {
        self.note(|| "quiet".to_owned());
        self.faults = false;
        self.cut.clear();
        for i in 0..self.nodes.len() {
            if self.nodes[i].asleep {
                self.wake(i)?;
            }
        }
        for _ in 0..20 {
            self.sync_all();
            for i in 0..self.nodes.len() {
                if let Some(handoff) = self.nodes[i].barrier.take() {
                    self.apply(i, Input::BarrierPassed { handoff }, false)?;
                }
            }
            self.deliver_all()?;
            for i in 0..self.nodes.len() {
                self.apply(i, Input::Timeout, false)?;
            }
            self.deliver_all()?;
            for i in 0..self.nodes.len() {
                self.send_records(i);
            }
            self.deliver_all()?;
            if self.settled() {
                return Ok(());
            }
        }
        let records: Vec<&Record> = (0..self.nodes.len()).map(|i| self.record(i)).collect();
        Err(format!("not settled after the quiet phase: {records:?}"))
    }

    fn settled(&self) -> bool {
        let first = self.record(0);
        (0..self.nodes.len()).all(|i| {
            let record = self.record(i);
            record.owner == first.owner && record.epoch == first.epoch && record.phase == Phase::Owned
        })
    }

    fn check_end(&self) -> Result<(), String> {
        let epoch = self.record(0).epoch;
        let owner = NAMES.iter().position(|name| *name == self.record(0).owner).expect("a known node");
        for (i, sim) in self.nodes.iter().enumerate() {
            if sim.node.can_write() != (i == owner) {
                return Err("after the quiet phase, only the owner may write".into());
            }
            if !sim.node.heard_current() {
                return Err(format!("{} has not heard a peer's record after the quiet phase", NAMES[i]));
            }
        }
        for write in self.writes.iter().filter(|write| write.allowed) {
            if write.epoch > epoch {
                return Err(format!("write {} at epoch {} above the final {epoch}", write.id, write.epoch));
            }
            if self.owners.get(&write.epoch) != Some(&write.node) {
                return Err(format!("write {} by {} at epoch {}, not its owner", write.id, write.node, write.epoch));
            }
            if let Some(content) = self.accepted_content.get(&write.epoch)
                && !content.contains(&write.id)
            {
                return Err(format!(
                    "write {} by {} at epoch {} is missing from what was accepted from epoch {}",
                    write.id, NAMES[write.node], write.epoch, write.epoch
                ));
            }
        }
        Ok(())
    }

    fn deliver_all(&mut self) -> Result<(), String> {
        for _ in 0..10_000 {
            if self.network.is_empty() {
                return Ok(());
            }
            let envelope = self.network.remove(0);
            self.deliver(envelope, false)?;
        }
        Err("messages never stop".into())
    }

    /// Delivers `envelope`, unless its receiver sleeps or the link is cut.
    fn deliver(&mut self, envelope: Envelope, lose_sends: bool) -> Result<(), String> {
        let from = index(&envelope.from);
        let to = index(&envelope.to);
        if self.nodes[to].asleep || self.cut.contains(&(from.min(to), from.max(to))) {
            self.note(|| format!("unreachable: {envelope:?}"));
            return Ok(());
        }
        match &envelope.message {
            Message::Promised { .. } => self.count("promised"),
            Message::PromiseRefused { .. } => self.count("promise refused"),
            _ => {}
        }
        self.apply(to, Input::Received(envelope), lose_sends)
    }

    /// One input on node `i`. With `lose_sends`, the node crashes after persisting,
    /// before anything was sent.
    fn apply(&mut self, i: usize, input: Input, lose_sends: bool) -> Result<(), String> {
        let traced = self.tracing.then(|| format!("{input:?}"));
        let offered_from = match &input {
            Input::Received(Envelope { message: Message::Accept { epoch, .. }, .. }) => Some(*epoch),
            _ => None,
        };
        let sim = &mut self.nodes[i];
        let was_forcing = matches!(sim.node.record().phase, Phase::Forcing { .. });
        let step = sim.node.step(input);
        if let Some(record) = &step.persist {
            sim.persisted = record.clone();
        }
        if *sim.node.record() != sim.persisted {
            return Err(format!("{} changed its record without persisting it", NAMES[i]));
        }
        for notice in &step.notices {
            let what = match notice {
                Notice::Resume { .. } => {
                    let from = offered_from.expect("a node resumes only when it accepts a handoff");
                    self.accepted_content.insert(from, sim.folder.clone());
                    "resume"
                }
                Notice::Released { .. } => "released",
                Notice::Unfrozen { reason: Reason::BarrierFailed, .. } => "unfrozen after barrier failed",
                Notice::Unfrozen { reason: Reason::Aborted, .. } => "unfrozen after abort",
                Notice::Unfrozen { reason: Reason::Restarted, .. } => "unfrozen after restart",
                Notice::Unfrozen { reason: Reason::Unreachable, .. } => "unfrozen after unreachable",
                Notice::Unfrozen { .. } => "unfrozen after refusal",
                Notice::Demoted { .. } => "demoted",
                Notice::TookOver { .. } => "took over",
                Notice::Rejected { .. } if was_forcing => "force given up",
                Notice::Frozen { .. } | Notice::Rejected { .. } => continue,
            };
            *self.seen.entry(what).or_default() += 1;
        }
        if let Some(handoff) = &step.check_barrier {
            sim.barrier = Some(handoff.clone());
        }
        if let Some(input) = traced {
            let sent = if lose_sends { " (crashed before sending)" } else { "" };
            self.trace.push(format!("{}: {input}\n    -> {step:?}{sent}", NAMES[i]));
        }
        if lose_sends {
            return self.crash(i);
        }
        for envelope in step.send {
            self.send(i, envelope);
        }
        self.check(i)
    }

    /// Puts a message of node `i` on the network, unless it is an `Accept` whose
    /// connection the target refuses (more often when it sleeps or the link is
    /// cut): that one is never delivered, and `i` knows it.
    fn send(&mut self, i: usize, envelope: Envelope) {
        let Message::Accept { handoff, .. } = &envelope.message else { return self.network.push(envelope) };
        let to = index(&envelope.to);
        let cut = self.nodes[to].asleep || self.cut.contains(&(i.min(to), i.max(to)));
        let refused = self.faults && self.rng.percent(if cut { 60 } else { 15 });
        let all_refused = self.nodes[i].accepts_all_refused.entry(handoff.clone()).or_insert(true);
        *all_refused &= refused;
        if refused {
            self.note(|| format!("refused: {envelope:?}"));
            self.count("accept refused");
        } else {
            self.network.push(envelope);
        }
    }

    /// The barrier check under way on `i` ends: it passes when the folders of
    /// the source and of the target hold the same writes (and 4 times in 5).
    fn check_barrier(&mut self, i: usize) -> Result<(), String> {
        let Some(handoff) = self.nodes[i].barrier.take() else { return Ok(()) };
        let target = match &self.record(i).phase {
            Phase::Frozen { target, .. } => Some(index(target)),
            _ => None,
        };
        let same = target.is_some_and(|target| self.nodes[i].folder == self.nodes[target].folder);
        let passed = !self.rng.percent(20) && same;
        let input = if passed { Input::BarrierPassed { handoff } } else { Input::BarrierFailed { handoff } };
        let lose_sends = self.rng.percent(3);
        self.apply(i, input, lose_sends)
    }

    fn crash(&mut self, i: usize) -> Result<(), String> {
        self.note(|| format!("{} crashed", NAMES[i]));
        self.count("crash");
        let sim = &mut self.nodes[i];
        sim.node = Node::new(NAMES[i], sim.persisted.clone());
        sim.barrier = None;
        sim.accepts_all_refused.clear();
        sim.asleep = false;
        self.apply(i, Input::Restart, false)
    }

    fn wake(&mut self, i: usize) -> Result<(), String> {
        self.note(|| format!("{} wakes", NAMES[i]));
        self.nodes[i].asleep = false;
        self.apply(i, Input::Woke, false)
    }

    fn write(&mut self, i: usize) -> Result<(), String> {
        self.next_id += 1;
        let sim = &mut self.nodes[i];
        let allowed = sim.node.can_write();
        let write = AgentWrite { id: self.next_id, node: i, epoch: sim.node.record().epoch, allowed };
        if allowed {
            // A stale write is kept aside by the I/O layer, never put in the folder.
            sim.folder.insert(write.id);
        }
        self.note(|| format!("{} writes {} at epoch {} (allowed: {allowed})", NAMES[i], write.id, write.epoch));
        self.count(if allowed { "allowed write" } else { "stale write" });
        self.writes.push(write);
        self.check(i)
    }

    /// Node `i`'s record to every other node, as the I/O layer sends it each pass.
    fn send_records(&mut self, i: usize) {
        let records: Vec<Envelope> =
            self.names().filter(|name| *name != NAMES[i]).map(|to| self.nodes[i].node.record_for(to)).collect();
        self.network.extend(records);
    }

    /// Syncthing brings the folders of two nodes that reach each other to the
    /// union of their files.
    fn sync(&mut self, a: usize, b: usize) {
        if self.nodes[a].asleep || self.nodes[b].asleep || self.cut.contains(&(a.min(b), a.max(b))) {
            return;
        }
        let union: BTreeSet<u64> = self.nodes[a].folder.union(&self.nodes[b].folder).copied().collect();
        self.nodes[a].folder.clone_from(&union);
        self.nodes[b].folder = union;
    }

    fn sync_all(&mut self) {
        let union: BTreeSet<u64> = self.nodes.iter().flat_map(|sim| sim.folder.iter().copied()).collect();
        for sim in &mut self.nodes {
            sim.folder.clone_from(&union);
        }
    }

    fn check(&mut self, i: usize) -> Result<(), String> {
        let sim = &mut self.nodes[i];
        let record = sim.node.record();
        if record.epoch < sim.highest_epoch {
            return Err(format!("{}'s epoch went from {} down to {}", NAMES[i], sim.highest_epoch, record.epoch));
        }
        if record.promised < sim.highest_promise {
            let (was, now) = (sim.highest_promise, record.promised);
            return Err(format!("{}'s promise went from {was} down to {now}", NAMES[i]));
        }
        sim.highest_epoch = record.epoch;
        sim.highest_promise = record.promised;
        if record.owner == NAMES[i] {
            if matches!(record.phase, Phase::Forcing { .. }) {
                return Err(format!("{} forces a takeover of what it owns", NAMES[i]));
            }
            let owner = *self.owners.entry(record.epoch).or_insert(i);
            if owner != i {
                return Err(format!("two owners at epoch {}: {} and {}", record.epoch, NAMES[owner], NAMES[i]));
            }
        } else if matches!(record.phase, Phase::Frozen { .. }) {
            return Err(format!("{} is frozen but not the owner", NAMES[i]));
        }
        Ok(())
    }

    fn names(&self) -> impl Iterator<Item = &'static str> {
        NAMES[..self.nodes.len()].iter().copied()
    }

    fn record(&self, i: usize) -> &Record {
        self.nodes[i].node.record()
    }

    fn count(&mut self, what: &'static str) {
        *self.seen.entry(what).or_default() += 1;
    }

    fn note(&mut self, line: impl FnOnce() -> String) {
        if self.tracing {
            self.trace.push(line());
        }
    }
}

fn index(name: &str) -> usize {
    NAMES.iter().position(|known| *known == name).expect("a known node")
}
