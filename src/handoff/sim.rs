//! A deterministic simulation of the ownership protocol: two nodes, a network that
//! loses, duplicates, delays and reorders messages, crashes of either node
//! (restarting from its persisted record, sometimes after persisting but before
//! sending), agent writes on either node, record exchanges, folder syncs, barrier
//! checks, handoffs in either direction (sometimes retried with the same id) and,
//! in half of the runs, forced takeovers. Every run is a seed; a failing seed is
//! run again with a trace, printed with the failure.
//!
//! Checked after every step: never two owners at one epoch (over the whole run,
//! not only at one instant), each node's epoch never decreases (across restarts
//! too), every record change is persisted, only the owner is ever frozen. At the
//! end, after a quiet phase (no faults, every message delivered, records
//! exchanged): both nodes agree on one owner and epoch and neither is frozen,
//! every allowed write is attributed to the one owner of its epoch, at most the
//! final one, and every allowed write of epoch `e` is in the content the target
//! held when it accepted `e + 1` (no write of an owner is lost by a handoff).

use std::collections::{BTreeMap, BTreeSet};

use super::protocol::{Envelope, HandoffId, Input, Node, Notice, Phase, Reason, Record};

const NAMES: [&str; 2] = ["laptop", "mini"];
const RUNS: u64 = 5_000;
const STEPS: usize = 200;

#[test]
fn random_interleavings_of_faults_keep_one_owner_per_epoch_and_lose_no_owners_write() {
    let mut seen = BTreeMap::<&str, u64>::new();
    for seed in 0..RUNS {
        let mut world = World::new(seed, false);
        if let Err(failure) = world.run() {
            let mut traced = World::new(seed, true);
            let again = traced.run().err().unwrap_or_default();
            panic!("seed {seed}: {failure}\n(again with trace: {again})\n{}", traced.trace.join("\n"));
        }
        for (what, count) in world.seen {
            *seen.entry(what).or_default() += count;
        }
    }
    // The runs reach every outcome that matters, each many times.
    for what in [
        "resume",
        "released",
        "unfrozen after barrier failed",
        "unfrozen after abort",
        "unfrozen after refusal",
        "unfrozen after restart",
        "demoted",
        "took over",
        "stale write",
        "allowed write",
        "crash",
    ] {
        let count = seen.get(what).copied().unwrap_or_default();
        assert!(count >= 100, "only {count} × {what} in {RUNS} runs: {seen:?}");
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
    highest_epoch: u64,
}

struct AgentWrite {
    id: u64,
    node: usize,
    epoch: u64,
    allowed: bool,
}

struct World {
    rng: Rng,
    nodes: [SimNode; 2],
    network: Vec<Envelope>,
    writes: Vec<AgentWrite>,
    /// Every node that ever believed it owned an epoch, by epoch.
    owners: BTreeMap<u64, usize>,
    /// The target's folder when it accepted an epoch by handoff.
    accepted_content: BTreeMap<u64, BTreeSet<u64>>,
    next_id: u64,
    last_handoff: Option<HandoffId>,
    force_allowed: bool,
    tracing: bool,
    trace: Vec<String>,
    /// How often each outcome happened, to show the runs reach them.
    seen: BTreeMap<&'static str, u64>,
}

impl World {
    fn new(seed: u64, tracing: bool) -> World {
        let start = Record::new(NAMES[0]);
        let node = |name: &str| SimNode {
            node: Node::new(name, start.clone()),
            persisted: start.clone(),
            folder: BTreeSet::new(),
            barrier: None,
            highest_epoch: 0,
        };
        World {
            rng: Rng(seed),
            nodes: [node(NAMES[0]), node(NAMES[1])],
            network: Vec::new(),
            writes: Vec::new(),
            owners: BTreeMap::from([(0, 0)]),
            accepted_content: BTreeMap::new(),
            next_id: 0,
            last_handoff: None,
            force_allowed: seed % 2 == 0,
            tracing,
            trace: Vec::new(),
            seen: BTreeMap::new(),
        }
    }

    fn run(&mut self) -> Result<(), String> {
        for _ in 0..STEPS {
            self.random_step()?;
        }
        self.quiet()?;
        self.check_end()
    }

    fn random_step(&mut self) -> Result<(), String> {
        let i = self.rng.below(2);
        let other = 1 - i;
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
            40..=47 => self.apply(i, Input::Timeout, false)?,
            48..=50 => self.crash(i)?,
            51..=65 => self.write(i)?,
            66..=73 => {
                let envelope = self.nodes[i].node.record_for(NAMES[other]);
                self.network.push(envelope);
            }
            74..=79 => {
                let handoff = match &self.last_handoff {
                    Some(last) if self.rng.percent(25) => last.clone(),
                    _ => {
                        self.next_id += 1;
                        HandoffId(format!("h{}", self.next_id))
                    }
                };
                self.last_handoff = Some(handoff.clone());
                let lose_sends = self.rng.percent(3);
                self.apply(i, Input::StartHandoff { handoff, target: NAMES[other].to_owned() }, lose_sends)?;
            }
            80..=81 if self.force_allowed => self.apply(i, Input::Force, false)?,
            82..=89 => self.sync(),
            90..=99 => {
                if let Some(handoff) = self.nodes[i].barrier.take() {
                    let passed = !self.rng.percent(20) && self.nodes[i].folder == self.nodes[other].folder;
                    let input =
                        if passed { Input::BarrierPassed { handoff } } else { Input::BarrierFailed { handoff } };
                    let lose_sends = self.rng.percent(3);
                    self.apply(i, input, lose_sends)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// No more faults: every barrier passes, every message arrives, records are
    /// exchanged, until nothing changes.
    fn quiet(&mut self) -> Result<(), String> {
        self.note(|| "quiet".to_owned());
        for _ in 0..20 {
            self.sync();
            for i in 0..2 {
                if let Some(handoff) = self.nodes[i].barrier.take() {
                    self.apply(i, Input::BarrierPassed { handoff }, false)?;
                }
            }
            self.deliver_all()?;
            for i in 0..2 {
                self.apply(i, Input::Timeout, false)?;
            }
            self.deliver_all()?;
            for i in 0..2 {
                let envelope = self.nodes[i].node.record_for(NAMES[1 - i]);
                self.network.push(envelope);
            }
            self.deliver_all()?;
            if self.settled() {
                return Ok(());
            }
        }
        Err(format!("not settled after the quiet phase: {:?} / {:?}", self.record(0), self.record(1)))
    }

    fn settled(&self) -> bool {
        let (a, b) = (self.record(0), self.record(1));
        a.owner == b.owner && a.epoch == b.epoch && a.phase == Phase::Owned && b.phase == Phase::Owned
    }

    fn check_end(&self) -> Result<(), String> {
        let epoch = self.record(0).epoch;
        let owner = NAMES.iter().position(|name| *name == self.record(0).owner).expect("a known node");
        if !self.nodes[owner].node.can_write() || self.nodes[1 - owner].node.can_write() {
            return Err("after the quiet phase, only the owner may write".into());
        }
        for write in self.writes.iter().filter(|write| write.allowed) {
            if write.epoch > epoch {
                return Err(format!("write {} at epoch {} above the final {epoch}", write.id, write.epoch));
            }
            if self.owners.get(&write.epoch) != Some(&write.node) {
                return Err(format!("write {} by {} at epoch {}, not its owner", write.id, write.node, write.epoch));
            }
            if let Some(content) = self.accepted_content.get(&(write.epoch + 1))
                && !content.contains(&write.id)
            {
                return Err(format!(
                    "write {} by {} at epoch {} is missing from what was accepted at epoch {}",
                    write.id,
                    NAMES[write.node],
                    write.epoch,
                    write.epoch + 1
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

    fn deliver(&mut self, envelope: Envelope, lose_sends: bool) -> Result<(), String> {
        let to = NAMES.iter().position(|name| *name == envelope.to).expect("a known node");
        self.apply(to, Input::Received(envelope), lose_sends)
    }

    /// One input on node `i`. With `lose_sends`, the node crashes after persisting,
    /// before anything was sent.
    fn apply(&mut self, i: usize, input: Input, lose_sends: bool) -> Result<(), String> {
        let traced = self.tracing.then(|| format!("{input:?}"));
        let sim = &mut self.nodes[i];
        let step = sim.node.step(input);
        if let Some(record) = &step.persist {
            sim.persisted = record.clone();
        }
        if *sim.node.record() != sim.persisted {
            return Err(format!("{} changed its record without persisting it", NAMES[i]));
        }
        for notice in &step.notices {
            let what = match notice {
                Notice::Resume { epoch, .. } => {
                    self.accepted_content.insert(*epoch, sim.folder.clone());
                    "resume"
                }
                Notice::Released { .. } => "released",
                Notice::Unfrozen { reason: Reason::BarrierFailed, .. } => "unfrozen after barrier failed",
                Notice::Unfrozen { reason: Reason::Aborted, .. } => "unfrozen after abort",
                Notice::Unfrozen { reason: Reason::Restarted, .. } => "unfrozen after restart",
                Notice::Unfrozen { .. } => "unfrozen after refusal",
                Notice::Demoted { .. } => "demoted",
                Notice::TookOver { .. } => "took over",
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
        self.network.extend(step.send);
        self.check(i)
    }

    fn crash(&mut self, i: usize) -> Result<(), String> {
        self.note(|| format!("{} crashed", NAMES[i]));
        *self.seen.entry("crash").or_default() += 1;
        let sim = &mut self.nodes[i];
        sim.node = Node::new(NAMES[i], sim.persisted.clone());
        sim.barrier = None;
        self.apply(i, Input::Restart, false)
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
        *self.seen.entry(if allowed { "allowed write" } else { "stale write" }).or_default() += 1;
        self.writes.push(write);
        self.check(i)
    }

    /// Syncthing brings both folders to the union of their files.
    fn sync(&mut self) {
        let union: BTreeSet<u64> = self.nodes[0].folder.union(&self.nodes[1].folder).copied().collect();
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
        sim.highest_epoch = record.epoch;
        if record.owner == NAMES[i] {
            let owner = *self.owners.entry(record.epoch).or_insert(i);
            if owner != i {
                return Err(format!("two owners at epoch {}: {} and {}", record.epoch, NAMES[owner], NAMES[i]));
            }
        } else if record.phase != Phase::Owned {
            return Err(format!("{} is frozen but not the owner", NAMES[i]));
        }
        Ok(())
    }

    fn record(&self, i: usize) -> &Record {
        self.nodes[i].node.record()
    }

    fn note(&mut self, line: impl FnOnce() -> String) {
        if self.tracing {
            self.trace.push(line());
        }
    }
}
