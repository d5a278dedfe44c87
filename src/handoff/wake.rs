//! Whether this machine slept between two passes (pure): the wall clock keeps
//! moving while a machine sleeps, the monotonic clock does not (Linux's
//! `CLOCK_MONOTONIC`, macOS's `CLOCK_UPTIME_RAW`, which `Instant` reads). A
//! node that slept may have missed handoffs, so it closes its wake gate
//! (`protocol::Input::Woke`).

use std::time::{Duration, Instant, SystemTime};

/// How much further the wall clock may move than the monotonic clock between
/// two passes before it counts as a sleep: more than a busy machine's jitter
/// or a small correction of the clock.
pub(crate) const SLEEP_AFTER: Duration = Duration::from_secs(10);

/// Both clocks as read at one pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Clocks {
    pub wall: SystemTime,
    pub monotonic: Instant,
}

impl Clocks {
    pub(crate) fn now() -> Clocks {
        Clocks { wall: SystemTime::now(), monotonic: Instant::now() }
    }
}

/// How long the machine slept between the passes that read `before` and
/// `now`: None unless the wall clock moved more than [`SLEEP_AFTER`] further
/// than the monotonic clock. A wall clock set back is no sleep.
pub(crate) fn slept(before: Clocks, now: Clocks) -> Option<Duration> {
    let wall = now.wall.duration_since(before.wall).ok()?;
    let awake = now.monotonic.saturating_duration_since(before.monotonic);
    wall.checked_sub(awake).filter(|asleep| *asleep > SLEEP_AFTER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sleep_is_the_wall_clock_moving_more_than_ten_seconds_further_than_the_monotonic_clock() {
        let before =
            Clocks { wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000), monotonic: Instant::now() };
        let secs = Duration::from_secs;
        let millis = Duration::from_millis;
        // (wall clock moved forward or back, monotonic clock moved, the sleep)
        let cases: [(bool, Duration, Duration, Option<Duration>); 8] = [
            (true, secs(2), secs(2), None),
            (true, secs(40), secs(40), None),
            (true, secs(12), secs(2), None),
            (true, secs(12) + millis(1), secs(2), Some(secs(10) + millis(1))),
            (true, secs(3_602), secs(2), Some(secs(3_600))),
            (true, secs(0), secs(2), None),
            (false, secs(3_600), secs(2), None),
            (true, secs(30), secs(0), Some(secs(30))),
        ];
        for (forward, wall_moved, monotonic_moved, expected) in cases {
            let wall = if forward { before.wall + wall_moved } else { before.wall - wall_moved };
            let now = Clocks { wall, monotonic: before.monotonic + monotonic_moved };
            assert_eq!(slept(before, now), expected, "wall {forward} {wall_moved:?}, monotonic {monotonic_moved:?}");
        }
    }
}
