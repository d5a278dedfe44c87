//! Capped exponential backoff with jitter: the one retry schedule of the work
//! queue, Service restarts, model pulls, the Git source, the Syncthing event
//! follower and the peer prober. A leaf: it imports nothing else from the crate.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::time::Duration;

/// How far jitter moves a delay: by up to a fifth of it, either way.
const SPREAD_PERCENT: u64 = 20;

/// Retry delays: `initial` after the first failure, doubling with each failure
/// in a row, never more than `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    initial: Duration,
    max: Duration,
}

impl Policy {
    /// A `max` shorter than `initial` is read as `initial`.
    pub const fn new(initial: Duration, max: Duration) -> Policy {
        Policy { initial, max }
    }

    /// The delay before the try that follows `failures` failures in a row (1:
    /// the first failure). Zero failures count as one.
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1);
        self.initial.saturating_mul(2u32.saturating_pow(doublings)).min(self.max())
    }

    fn max(&self) -> Duration {
        self.max.max(self.initial)
    }
}

/// Spreads delays, so that tries that failed together (every SyncFolder when
/// Syncthing went down, the Services of one crashed dependency) do not all
/// come back at the same moment. A delay is moved by up to a fifth either way,
/// to whole milliseconds, and never leaves its policy's `[initial, max]`.
///
/// Tests pick [`Jitter::none`] (exact delays) or [`Jitter::seeded`] (the same
/// delays on every run).
#[derive(Clone, Debug)]
pub struct Jitter(Source);

#[derive(Clone, Debug)]
enum Source {
    None,
    /// Every draw fresh from the OS-seeded hasher keys: clones do not repeat
    /// each other.
    Random,
    /// A splitmix64 state.
    Seeded(u64),
}

impl Jitter {
    /// Delays as the policy gives them.
    pub const fn none() -> Jitter {
        Jitter(Source::None)
    }

    /// Random spread, different for every clone: for the daemon.
    pub const fn random() -> Jitter {
        Jitter(Source::Random)
    }

    /// A spread that is the same on every run for the same `seed`.
    pub const fn seeded(seed: u64) -> Jitter {
        Jitter(Source::Seeded(seed))
    }

    /// `policy`'s delay after `failures` failures in a row, spread.
    pub fn delay(&mut self, policy: &Policy, failures: u32) -> Duration {
        let nominal = policy.delay(failures);
        let Some(draw) = self.draw() else { return nominal };
        let nominal_ms = u64::try_from(nominal.as_millis()).unwrap_or(u64::MAX);
        let spread_ms = nominal_ms / 100 * SPREAD_PERCENT + nominal_ms % 100 * SPREAD_PERCENT / 100;
        // A value in [nominal - spread, nominal + spread].
        let offset = draw % (2 * spread_ms + 1);
        let jittered = Duration::from_millis((nominal_ms - spread_ms).saturating_add(offset));
        jittered.clamp(policy.initial, policy.max())
    }

    fn draw(&mut self) -> Option<u64> {
        match &mut self.0 {
            Source::None => None,
            Source::Random => Some(RandomState::new().hash_one(0u8)),
            Source::Seeded(state) => {
                *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = *state;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                Some(z ^ (z >> 31))
            }
        }
    }
}

/// One thing retried: its failures in a row, and the delay before its next try.
#[derive(Clone, Debug)]
pub struct Backoff {
    policy: Policy,
    jitter: Jitter,
    failures: u32,
}

impl Backoff {
    pub fn new(policy: Policy, jitter: Jitter) -> Backoff {
        Backoff { policy, jitter, failures: 0 }
    }

    /// Counts one more failure; returns the delay before the next try.
    pub fn failed(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.jitter.delay(&self.policy, self.failures)
    }

    /// The next failure waits `initial` again.
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }
}

/// A [`Backoff`] per key, sharing one policy and one jitter: keys back off
/// independently, and a key that succeeded is forgotten.
pub struct KeyedBackoff<K> {
    policy: Policy,
    jitter: Jitter,
    failures: HashMap<K, u32>,
}

impl<K: Eq + Hash> KeyedBackoff<K> {
    pub fn new(policy: Policy, jitter: Jitter) -> Self {
        KeyedBackoff { policy, jitter, failures: HashMap::new() }
    }

    /// Counts one more failure of `key`; returns the delay before its next try.
    pub fn failed(&mut self, key: K) -> Duration {
        let failures = self.failures.entry(key).or_insert(0);
        *failures = failures.saturating_add(1);
        self.jitter.delay(&self.policy, *failures)
    }

    pub fn succeeded(&mut self, key: &K) {
        self.failures.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn delays_double_from_initial_up_to_max() {
        let table = [
            ("seconds", Policy::new(secs(1), secs(10)), vec![1000, 2000, 4000, 8000, 10_000, 10_000]),
            ("a max that is no power of two", Policy::new(ms(50), ms(300)), vec![50, 100, 200, 300, 300, 300]),
            ("max below initial", Policy::new(secs(2), secs(1)), vec![2000, 2000, 2000, 2000, 2000, 2000]),
            ("zero", Policy::new(Duration::ZERO, Duration::ZERO), vec![0; 6]),
        ];
        for (case, policy, expected) in table {
            let delays: Vec<u128> = (1..=6).map(|failures| policy.delay(failures).as_millis()).collect();
            assert_eq!(delays, expected, "{case}");
        }
        assert_eq!(Policy::new(secs(1), secs(10)).delay(0), secs(1), "zero failures count as one");
        assert_eq!(Policy::new(Duration::MAX, Duration::MAX).delay(3), Duration::MAX, "no overflow");
    }

    #[test]
    fn a_backoff_starts_over_after_a_success() {
        let mut backoff = Backoff::new(Policy::new(ms(50), ms(400)), Jitter::none());
        let delays: Vec<_> = (0..5).map(|_| backoff.failed()).collect();
        assert_eq!(delays, [ms(50), ms(100), ms(200), ms(400), ms(400)]);
        backoff.succeeded();
        assert_eq!(backoff.failed(), ms(50));
        assert_eq!(backoff.failed(), ms(100));
    }

    #[test]
    fn keys_back_off_independently_and_reset_on_success() {
        let mut backoff = KeyedBackoff::new(Policy::new(secs(1), secs(10)), Jitter::none());
        let delays: Vec<u64> = (0..6).map(|_| backoff.failed("a").as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 10, 10]);
        assert_eq!(backoff.failed("b").as_secs(), 1, "keys back off independently");
        backoff.succeeded(&"a");
        assert_eq!(backoff.failed("a").as_secs(), 1);
        assert_eq!(backoff.failed("b").as_secs(), 2, "a success of one key leaves the others");
    }

    #[test]
    fn jitter_keeps_each_delay_within_a_fifth_and_within_the_policy() {
        let policy = Policy::new(secs(1), secs(30));
        for seed in 0..200 {
            let mut jitter = Jitter::seeded(seed);
            for failures in 1..=8 {
                let nominal = policy.delay(failures);
                let delay = jitter.delay(&policy, failures);
                let (low, high) = (nominal.mul_f64(0.8).max(secs(1)), nominal.mul_f64(1.2).min(secs(30)));
                assert!((low..=high).contains(&delay), "seed {seed}, failure {failures}: {delay:?}");
                assert_eq!(delay.subsec_nanos() % 1_000_000, 0, "whole milliseconds");
            }
        }
    }

    #[test]
    fn jitter_spreads_tries_that_failed_together() {
        let policy = Policy::new(secs(1), secs(300));
        let fourth: Vec<Duration> = (0..50).map(|seed| Jitter::seeded(seed).delay(&policy, 4)).collect();
        let distinct: std::collections::BTreeSet<_> = fourth.iter().collect();
        assert!(distinct.len() > 40, "{} distinct delays of 50", distinct.len());
        let (shortest, longest) = (fourth.iter().min().unwrap(), fourth.iter().max().unwrap());
        assert!(*longest - *shortest > secs(2), "spread over more than a quarter of 8 s: {shortest:?}..{longest:?}");

        let random: std::collections::BTreeSet<_> = (0..20).map(|_| Jitter::random().delay(&policy, 4)).collect();
        assert!(random.len() > 1, "random jitter differs between draws");
    }

    #[test]
    fn seeded_jitter_is_the_same_on_every_run_and_none_is_exact() {
        let policy = Policy::new(ms(100), ms(800));
        let run = |mut jitter: Jitter| (1..=5).map(|n| jitter.delay(&policy, n).as_millis()).collect::<Vec<_>>();
        assert_eq!(run(Jitter::seeded(7)), run(Jitter::seeded(7)));
        assert_ne!(run(Jitter::seeded(7)), run(Jitter::seeded(8)));
        assert_eq!(run(Jitter::none()), [100, 200, 400, 800, 800]);
    }
}
