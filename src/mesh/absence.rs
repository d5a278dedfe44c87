//! How a peer this node cannot reach is named to users: `unreachable since
//! 09:12`, or `asleep since 09:12` once it said it was going to sleep; never
//! a stale "online".

use std::time::SystemTime;

/// A peer this node cannot reach, as its prober knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Absence {
    /// When it stopped answering (its first unanswered probe): None when
    /// not known.
    pub since: Option<SystemTime>,
    /// Whether it told its peers it was going to sleep before it went.
    pub asleep: bool,
}

impl Absence {
    /// "unreachable since 09:12", "asleep since 09:12" (times of day as
    /// `clock` reads them), or "unreachable" when the time is not known.
    pub fn words(&self, clock: impl Fn(SystemTime) -> String) -> String {
        let state = if self.asleep { "asleep" } else { "unreachable" };
        match self.since {
            Some(since) => format!("{state} since {}", clock(since)),
            None => state.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn an_absent_peer_is_unreachable_or_asleep_since_a_time_of_day() {
        let nine_twelve = UNIX_EPOCH + Duration::from_secs(1_796_548_379);
        let clock = |at: SystemTime| crate::clock::hh_mm(at, 0);
        let table = [
            (Some(nine_twelve), false, "unreachable since 09:12"),
            (Some(nine_twelve), true, "asleep since 09:12"),
            (None, false, "unreachable"),
            (None, true, "asleep"),
        ];
        for (since, asleep, expected) in table {
            assert_eq!(Absence { since, asleep }.words(clock), expected, "{since:?} asleep {asleep}");
        }
    }
}
