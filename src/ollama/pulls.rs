//! Model pulls in the background: a Capability reconcile asks for the models
//! its Ollama lacks and gets back how each one is doing, without waiting for a
//! pull (which can take an hour) or being held up by one that fails. A failed
//! pull is tried again with backoff.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

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
pub struct ModelPulls(Arc<Mutex<HashMap<(String, String), PullState>>>);

impl ModelPulls {
    /// Starts a pull of each model of `wanted` that `present` lacks, unless one
    /// runs or a failed one waits for its retry; returns how each missing model
    /// is doing. Models present are forgotten.
    pub fn ensure(&self, client: &OllamaClient, present: &[String], wanted: &[String]) -> BTreeMap<String, PullState> {
        let now = Instant::now();
        let mut table = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut missing = BTreeMap::new();
        for model in wanted {
            let key = (client.base().to_owned(), model.clone());
            if super::has_model(present, model) {
                table.remove(&key);
                continue;
            }
            if due(table.get(&key), now) {
                let failures = match table.get(&key) {
                    Some(PullState::Failed { failures, .. }) => *failures,
                    _ => 0,
                };
                table.insert(
                    key.clone(),
                    PullState::Pulling(PullProgress { status: "starting".into(), ..Default::default() }),
                );
                self.spawn(client.clone(), key.clone(), failures);
            }
            if let Some(state) = table.get(&key) {
                missing.insert(model.clone(), state.clone());
            }
        }
        missing
    }

    fn spawn(&self, client: OllamaClient, key: (String, String), failures: u32) {
        let table = self.0.clone();
        tokio::spawn(async move {
            let set = |state: PullState| {
                table.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(key.clone(), state);
            };
            tracing::info!(model = key.1, ollama = key.0, "pulling a model");
            let result = client.pull(&key.1, |line| set(PullState::Pulling(line))).await;
            match result {
                Ok(()) => {
                    tracing::info!(model = key.1, ollama = key.0, "model pulled");
                    set(PullState::Pulled);
                }
                Err(error) => {
                    let failures = failures + 1;
                    tracing::warn!(model = key.1, %error, failures, "model pull failed");
                    let retry_at = Instant::now() + Jitter::random().delay(&RETRY, failures);
                    set(PullState::Failed { error: error.to_string(), failures, retry_at });
                }
            }
        });
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
