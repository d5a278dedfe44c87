//! Sleeps of this machine found in two clocks (pure): one that counts the time
//! asleep and one that does not ([`crate::sys::asleep_and_awake_clocks`]).
//! Neither follows the wall clock, so setting the time (NTP, a person) is no
//! sleep and hides none. The mesh's resume (`mesh::resume`) and the handoff's
//! wake gate (`handoff::store`) both read sleeps so.

use std::time::Duration;

/// The shortest growth of the time asleep taken for a sleep: the two clocks
/// are read one after the other, and a sleep shorter than this loses no peer.
pub(crate) const MIN_SLEEP: Duration = Duration::from_secs(2);

/// The time asleep since boot, from one reading of the clocks (with sleep,
/// without).
pub(crate) fn asleep_since_boot((with_sleep, without_sleep): (Duration, Duration)) -> Duration {
    with_sleep.saturating_sub(without_sleep)
}

/// Finds sleeps in successive readings of the two clocks.
#[derive(Debug, Default)]
pub(crate) struct SleepDetector {
    /// The time asleep since boot at the last reading.
    asleep: Option<Duration>,
}

impl SleepDetector {
    /// Takes one reading of the clocks (with sleep, without); how long the
    /// machine slept since the last reading, if it did.
    pub(crate) fn observe(&mut self, clocks: (Duration, Duration)) -> Option<Duration> {
        let asleep = asleep_since_boot(clocks);
        let before = self.asleep.replace(asleep)?;
        let slept = asleep.saturating_sub(before);
        (slept >= MIN_SLEEP).then_some(slept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sleep_is_the_growth_of_the_gap_between_the_clocks() {
        let s = Duration::from_secs_f64;
        // Readings (with sleep, without), and what the last one finds.
        type Readings<'a> = &'a [(f64, f64)];
        let cases: [(&str, Readings<'_>, Option<Duration>); 7] = [
            ("the first reading finds nothing", &[(100.0, 40.0)], None),
            ("both clocks went on: awake", &[(100.0, 40.0), (101.0, 41.0)], None),
            ("stopped or held up (SIGSTOP): both went on alike", &[(100.0, 40.0), (160.0, 100.0)], None),
            ("asleep for a minute", &[(100.0, 40.0), (161.0, 41.0)], Some(s(60.0))),
            ("the gap it had since boot is no sleep of ours", &[(5000.0, 40.0), (5001.0, 41.0)], None),
            ("a blip below the least sleep", &[(100.0, 40.0), (102.5, 41.0)], None),
            ("only the growth since the last reading", &[(100.0, 40.0), (161.0, 41.0), (162.0, 42.0)], None),
        ];
        for (what, readings, expected) in cases {
            let mut detector = SleepDetector::default();
            let found =
                readings.iter().map(|&(with, without)| detector.observe((s(with), s(without)))).last().flatten();
            assert_eq!(found, expected, "{what}");
        }
    }
}
