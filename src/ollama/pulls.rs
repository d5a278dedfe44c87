//! Model pulls in the background: a Capability reconcile asks for the models
//! its Ollama lacks and gets back how each one is doing, without waiting for a
//! pull (which can take an hour) or being held up by one that fails. A failed
//! pull is tried again with backoff. The pulls' tasks are owned here: a
//! pull no Capability wants any more is cancelled.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::time::Instant;

use tokio::task::{AbortHandle, JoinSet};

use super::{OllamaClient, PullProgress};
use crate::backoff::{Jitter, Policy};

/// A failed pull is tried again after 10 s, doubling up to 10 minutes.
const RETRY: Policy = Policy::new(Duration::from_secs(10), Duration::from_secs(600));

/// How one missing model is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PullState {
    /// Under way; the last status line Ollama sent.
    Pulling(PullProgress),
    /// Ollama said `success`; `/api/tags` will list it.
    Pulled,
    /// The last try failed; the next one starts at `retry_at`.
    Failed { error: String, failures: u32, retry_at: Instant },
}

impl PullState {
    /// For status: `pulling 40% (1.0 GB of 2.5 GB)`, `failed 2 times: …`.
    pub fn describe(&self, now: Instant) -> String {
        match self {
            PullState::Pulling(line) => match (line.completed, line.total) {
                (Some(done), Some(total)) if total > 0 => {
                    format!("{} {}% ({} of {})", line.status, done * 100 / total, bytes(done), bytes(total))
                }
                _ => line.status.clone(),
            },
            PullState::Pulled => "pulled".into(),
            PullState::Failed { error, failures, retry_at } => {
                let wait = retry_at.saturating_duration_since(now).as_secs();
                format!("pull failed ({failures} time(s)): {error}; trying again in {wait}s")
            }
        }
    }
}

/// What `ensure` should do for a missing model in `state` at `now`.
fn due(state: Option<&PullState>, now: Instant) -> bool {
    match state {
        None => true,
        Some(PullState::Pulling(_) | PullState::Pulled) => false,
        Some(PullState::Failed { retry_at, .. }) => now >= *retry_at,
    }
}

/// The pulls of this controller, by (Ollama, model). Cheap to clone.
#[derive(Clone, Default)]
pub struct ModelPulls(Arc<Mutex<Table>>);

/// An Ollama's base URL and a model.
type PullKey = (String, String);

#[derive(Default)]
struct Table {
    pulls: HashMap<PullKey, Pull>,
    /// Every pull task; dropping the set (with the last clone of
    /// [`ModelPulls`]: the tasks hold only a weak reference) aborts them.
    tasks: JoinSet<()>,
}

struct Pull {
    state: PullState,
    /// The Capabilities that asked for it: once none does, it is cancelled.
    wanted_by: BTreeSet<String>,
    /// The task of the pull under way, if one is.
    task: Option<AbortHandle>,
}

impl ModelPulls {
    /// Starts a pull of each model of `wanted` (by `capability`) that `present`
    /// lacks, unless one runs or a failed one waits for its retry; returns how
    /// each missing model is doing. Models present are forgotten, and so is
    /// `capability`'s claim on any other pull (a model it no longer lists, an
    /// Ollama it no longer points at): one nobody else wants is cancelled.
    pub fn ensure(
        &self,
        capability: &str,
        client: &OllamaClient,
        present: &[String],
        wanted: &[String],
    ) -> BTreeMap<String, PullState> {
        let now = Instant::now();
        let mut table = self.lock();
        // Finished tasks leave the set here, so it holds only running ones.
        while table.tasks.try_join_next().is_some() {}
        let keys: BTreeSet<PullKey> = wanted.iter().map(|model| (client.base().to_owned(), model.clone())).collect();
        table.release(capability, |key| keys.contains(key));
        let mut missing = BTreeMap::new();
        for model in wanted {
            let key = (client.base().to_owned(), model.clone());
            if super::has_model(present, model) {
                table.pulls.remove(&key);
                continue;
            }
            let state = table.pulls.get(&key).map(|pull| &pull.state);
            if due(state, now) {
                let failures = match state {
                    Some(PullState::Failed { failures, .. }) => *failures,
                    _ => 0,
                };
                let task = table.tasks.spawn(pull(Arc::downgrade(&self.0), client.clone(), key.clone(), failures));
                let pull = table.pulls.entry(key.clone()).or_insert_with(|| Pull {
                    state: PullState::Pulled,
                    wanted_by: BTreeSet::new(),
                    task: None,
                });
                pull.state = PullState::Pulling(PullProgress { status: "starting".into(), ..Default::default() });
                pull.task = Some(task);
            }
            if let Some(pull) = table.pulls.get_mut(&key) {
                pull.wanted_by.insert(capability.to_owned());
                missing.insert(model.clone(), pull.state.clone());
            }
        }
        missing
    }

    /// `capability` is gone, or wants no model of this node: the pulls no
    /// other Capability asked for are cancelled and forgotten.
    pub fn forget(&self, capability: &str) {
        self.lock().release(capability, |_| false);
    }

    /// The model and the last progress line of each pull under way, for the
    /// metrics; a model pulled from two Ollamas appears twice.
    pub fn under_way(&self) -> Vec<(String, PullProgress)> {
        let table = self.lock();
        let pulling = table.pulls.iter().filter_map(|((_, model), pull)| match &pull.state {
            PullState::Pulling(progress) => Some((model.clone(), progress.clone())),
            PullState::Pulled | PullState::Failed { .. } => None,
        });
        pulling.collect()
    }

    /// Cancels every pull and waits until each task is gone (the daemon stops).
    pub async fn cancel_all(&self) {
        let mut tasks = {
            let mut table = self.lock();
            table.pulls.clear();
            std::mem::take(&mut table.tasks)
        };
        tasks.shutdown().await;
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        lock(&self.0)
    }
}

impl Table {
    /// Drops `capability`'s claim on every pull but those `keep` names; a
    /// pull nobody claims any more is cancelled (its connection to Ollama
    /// closes) and forgotten.
    fn release(&mut self, capability: &str, keep: impl Fn(&PullKey) -> bool) {
        self.pulls.retain(|key, pull| {
            if !keep(key) {
                pull.wanted_by.remove(capability);
            }
            let wanted = !pull.wanted_by.is_empty();
            if let (false, Some(task)) = (wanted, &pull.task) {
                task.abort();
            }
            wanted
        });
    }
}

fn lock(table: &Mutex<Table>) -> MutexGuard<'_, Table> {
    table.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One try at pulling `key`, the `failures + 1`th, reporting into `table`.
async fn pull(table: Weak<Mutex<Table>>, client: OllamaClient, key: PullKey, failures: u32) {
    // Sets the state of the pull, unless it was forgotten meanwhile; a final
    // state ends the task's claim on it.
    let set = |state: PullState, done: bool| {
        let Some(table) = table.upgrade() else { return };
        if let Some(pull) = lock(&table).pulls.get_mut(&key) {
            pull.state = state;
            if done {
                pull.task = None;
            }
        }
    };
    tracing::info!(model = key.1, ollama = key.0, "pulling a model");
    let result = client.pull(&key.1, |line| set(PullState::Pulling(line), false)).await;
    match result {
        Ok(()) => {
            tracing::info!(model = key.1, ollama = key.0, "model pulled");
            set(PullState::Pulled, true);
        }
        Err(error) => {
            let failures = failures + 1;
            tracing::warn!(model = key.1, %error, failures, "model pull failed");
            let retry_at = Instant::now() + Jitter::random().delay(&RETRY, failures);
            set(PullState::Failed { error: error.to_string(), failures, retry_at }, true);
        }
    }
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pull_starts_when_none_runs_and_a_failed_one_waits_for_its_retry() {
        let now = Instant::now();
        let failed = |retry_at| PullState::Failed { error: "x".into(), failures: 1, retry_at };
        let cases = [
            ("never tried", None, true),
            ("under way", Some(PullState::Pulling(PullProgress::default())), false),
            ("pulled, not listed yet", Some(PullState::Pulled), false),
            ("failed, retry later", Some(failed(now + Duration::from_secs(5))), false),
            ("failed, retry due", Some(failed(now)), true),
        ];
        for (case, state, expected) in cases {
            assert_eq!(due(state.as_ref(), now), expected, "{case}");
        }
    }

    #[test]
    fn retries_back_off_to_a_cap() {
        let waits: Vec<u64> = (1..=8).map(|n| RETRY.delay(n).as_secs()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 600, 600]);
    }

    #[test]
    fn progress_reads_as_a_person_would_say_it() {
        let now = Instant::now();
        let line = |status: &str, completed, total| {
            PullState::Pulling(PullProgress { status: status.into(), digest: None, total, completed })
        };
        assert_eq!(line("pulling manifest", None, None).describe(now), "pulling manifest");
        assert_eq!(
            line("pulling 6a0746a1ec1a", Some(1_000_000_000), Some(2_500_000_000)).describe(now),
            "pulling 6a0746a1ec1a 40% (1.0 GB of 2.5 GB)"
        );
        let failed =
            PullState::Failed { error: "no space".into(), failures: 2, retry_at: now + Duration::from_secs(20) };
        assert_eq!(failed.describe(now), "pull failed (2 time(s)): no space; trying again in 20s");
    }
}
