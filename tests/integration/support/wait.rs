//! Waiting for a condition: `check` is polled until it gives a value, for a
//! bounded time, and the test fails naming what it waited for. One helper with
//! two entry points: [`eventually`] blocks, for plain tests; [`eventually_async`]
//! awaits, for `#[tokio::test]`s, whose checks may await and whose waits must
//! not hold up the runtime (an in-process server or supervisor runs on it).

use std::future::Future;
use std::time::{Duration, Instant};

/// The longest any awaited condition may take unless a test says otherwise;
/// tests finish far sooner.
pub const PATIENCE: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(50);

/// Polls `check` every 50 ms until it gives a value, for at most 15 s.
pub fn eventually<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    eventually_within(PATIENCE, what, check)
}

/// Polls `check` every 50 ms until it gives a value, for at most `patience`.
pub fn eventually_within<T>(patience: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Deadline::after(patience);
    loop {
        if let Some(value) = check() {
            return value;
        }
        deadline.assert_not_passed(what);
        std::thread::sleep(POLL);
    }
}

/// [`eventually`] for async tests: awaits `check`'s future every 50 ms until it
/// gives a value, for at most 15 s. A check that does not await is written
/// `|| std::future::ready(…)`.
pub async fn eventually_async<T, F: Future<Output = Option<T>>>(what: &str, check: impl FnMut() -> F) -> T {
    eventually_async_within(PATIENCE, what, check).await
}

/// [`eventually_async`] for at most `patience`.
pub async fn eventually_async_within<T, F: Future<Output = Option<T>>>(
    patience: Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Deadline::after(patience);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        deadline.assert_not_passed(what);
        tokio::time::sleep(POLL).await;
    }
}

/// The end of a wait, in real time: a test's waits are for other processes
/// and threads, which a paused tokio clock would not wait for.
struct Deadline {
    at: Instant,
    patience: Duration,
}

impl Deadline {
    fn after(patience: Duration) -> Deadline {
        Deadline { at: Instant::now() + patience, patience }
    }

    fn assert_not_passed(&self, what: &str) {
        assert!(Instant::now() < self.at, "timed out after {:?} waiting until {what}", self.patience);
    }
}
