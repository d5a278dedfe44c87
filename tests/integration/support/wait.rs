//! Waiting for a condition: `check` is polled until it gives a value, for a
//! bounded time, and the test fails naming what it waited for (and what the
//! check last saw, when it says). One helper with two entry points:
//! [`eventually`] blocks, for plain tests; [`eventually_async`] awaits, for
//! `#[tokio::test]`s, whose checks may await and whose waits must not hold up
//! the runtime (an in-process server or supervisor runs on it).

use std::future::Future;
use std::time::{Duration, Instant};

/// The longest any awaited condition may take unless a test says otherwise;
/// tests finish far sooner.
pub(crate) const PATIENCE: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(50);

/// What a check gives: `Some(value)` or `Ok(value)` once the condition holds;
/// until then `None`, or `Err(what it saw instead)`, which a timeout shows.
pub(crate) trait Check {
    type Value;
    fn held(self) -> Result<Self::Value, Option<String>>;
}

impl<T> Check for Option<T> {
    type Value = T;
    fn held(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T> Check for Result<T, String> {
    type Value = T;
    fn held(self) -> Result<T, Option<String>> {
        self.map_err(Some)
    }
}

/// Polls `check` every 50 ms until it gives a value, for at most 15 s.
pub(crate) fn eventually<C: Check>(what: &str, check: impl FnMut() -> C) -> C::Value {
    eventually_within(PATIENCE, what, check)
}

/// Polls `check` every 50 ms until it gives a value, for at most `patience`.
pub(crate) fn eventually_within<C: Check>(patience: Duration, what: &str, mut check: impl FnMut() -> C) -> C::Value {
    let deadline = Deadline::after(patience);
    loop {
        let seen = match check().held() {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        deadline.assert_not_passed(what, seen);
        std::thread::sleep(POLL);
    }
}

/// [`eventually`] for async tests: awaits `check`'s future every 50 ms until it
/// gives a value, for at most 15 s. A check that does not await is written
/// `|| std::future::ready(…)`.
pub(crate) async fn eventually_async<F: Future<Output: Check>>(
    what: &str,
    check: impl FnMut() -> F,
) -> <F::Output as Check>::Value {
    eventually_async_within(PATIENCE, what, check).await
}

/// [`eventually_async`] for at most `patience`.
pub(crate) async fn eventually_async_within<F: Future<Output: Check>>(
    patience: Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) -> <F::Output as Check>::Value {
    let deadline = Deadline::after(patience);
    loop {
        let seen = match check().await.held() {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        deadline.assert_not_passed(what, seen);
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

    /// Fails the test once the deadline has passed, with what the check
    /// last `seen`, if it said.
    fn assert_not_passed(&self, what: &str, seen: Option<String>) {
        if Instant::now() >= self.at {
            let seen = seen.map(|seen| format!("; last seen: {seen}")).unwrap_or_default();
            panic!("timed out after {:?} waiting until {what}{seen}", self.patience);
        }
    }
}

#[test]
fn a_wait_returns_the_value_once_the_check_gives_one() {
    let mut polls = 0;
    let value = eventually("the third poll", || {
        polls += 1;
        (polls == 3).then_some(polls)
    });
    assert_eq!(value, 3);
}

#[test]
#[should_panic(expected = "timed out after 100ms waiting until the count is 2; last seen: count 1")]
fn a_wait_that_times_out_names_what_it_waited_for_and_last_saw() {
    eventually_within(Duration::from_millis(100), "the count is 2", || Err::<(), _>("count 1".to_owned()));
}

#[tokio::test]
#[should_panic(expected = "timed out after 100ms waiting until never")]
async fn an_async_wait_times_out_too() {
    eventually_async_within(Duration::from_millis(100), "never", || std::future::ready(None::<()>)).await;
}
