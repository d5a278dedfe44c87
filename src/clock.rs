//! Times of day as a user reads them: `09:12` on this machine's local clock.

use std::time::{SystemTime, UNIX_EPOCH};

/// `at` as `HH:MM` on a clock `utc_offset` seconds ahead of UTC.
pub(crate) fn hh_mm(at: SystemTime, utc_offset: i64) -> String {
    let seconds = match at.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_secs() as i64,
        Err(before) => -(before.duration().as_secs() as i64),
    };
    let of_day = (seconds + utc_offset).rem_euclid(24 * 3600);
    format!("{:02}:{:02}", of_day / 3600, of_day % 3600 / 60)
}

/// `at` as `HH:MM` on this machine's local clock.
pub(crate) fn local_hh_mm(at: SystemTime) -> String {
    hh_mm(at, crate::sys::utc_offset(at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_time_of_day_is_read_on_the_local_clock() {
        // 2026-12-06T09:12:59Z
        let at = UNIX_EPOCH + Duration::from_secs(1_796_548_379);
        let table = [(0, "09:12"), (3600, "10:12"), (-5 * 3600, "04:12"), (-10 * 3600, "23:12"), (15 * 3600, "00:12")];
        for (offset, expected) in table {
            assert_eq!(hh_mm(at, offset), expected, "offset {offset}");
        }
    }
}
