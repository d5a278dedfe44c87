//! The daemon's open-descriptor limit (`RLIMIT_NOFILE`): raised at start from
//! the service manager's soft default (1,024 under systemd, 256 under launchd)
//! to what the hard limit allows, so that idle API connections cannot use up
//! the descriptors; the original soft limit is remembered and given back to
//! every Service the supervisor starts, which expects the usual default.

use std::io;
use std::sync::OnceLock;

use crate::sys;

/// The soft limit the daemon started with, once [`raise`] changed it.
static ORIGINAL: OnceLock<libc::rlimit> = OnceLock::new();

/// What [`raise`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Raised {
    /// The soft limit the daemon was started with.
    pub original: u64,
    /// The soft limit now in force.
    pub soft: u64,
}

/// Raises the soft limit to [`target`] and remembers the original for
/// [`original`]. Call once, before any Service is started.
pub(crate) fn raise() -> io::Result<Raised> {
    let limit = sys::open_file_limit()?;
    let soft = target(limit.rlim_cur, limit.rlim_max, ceiling());
    if soft != limit.rlim_cur {
        if let Err(error) = sys::set_open_file_limit(&libc::rlimit { rlim_cur: soft, rlim_max: limit.rlim_max }) {
            tracing::warn!(%error, limit = limit.rlim_cur, "cannot raise the open-file limit; keeping it");
            return Ok(Raised { original: limit.rlim_cur, soft: limit.rlim_cur });
        }
        let _ = ORIGINAL.set(limit);
    }
    Ok(Raised { original: limit.rlim_cur, soft })
}

/// The limit a child must be given back (the daemon's original, with the hard
/// limit it has now), None when [`raise`] changed nothing.
pub(crate) fn original() -> Option<libc::rlimit> {
    ORIGINAL.get().copied()
}

/// The soft limit to set: the hard limit, or `ceiling` when that is lower (the
/// kernel's per-process maximum on macOS, where an unlimited hard limit cannot
/// be the soft one). Never lower than `soft`.
pub(crate) fn target(soft: u64, hard: u64, ceiling: Option<u64>) -> u64 {
    let wanted = ceiling.map_or(hard, |ceiling| hard.min(ceiling));
    wanted.max(soft)
}

/// How many API connections may be open at once with `soft` descriptors: half
/// of them, since a connection may hold another one outward (a proxied call to
/// a peer or a model server), and the rest serve the Services' pipes,
/// Syncthing, the state files and the watches.
pub(crate) fn connection_cap(soft: u64) -> usize {
    let half = usize::try_from(soft / 2).unwrap_or(usize::MAX);
    half.clamp(1, tokio::sync::Semaphore::MAX_PERMITS)
}

/// `kern.maxfilesperproc`: the most descriptors a macOS process may have,
/// whatever its hard limit says.
#[cfg(target_os = "macos")]
fn ceiling() -> Option<u64> {
    let value = sys::sysctl_int(c"kern.maxfilesperproc").ok()?;
    u64::try_from(value).ok().filter(|value| *value > 0)
}

/// Elsewhere (Linux) the hard limit is a number the soft one may take.
#[cfg(not(target_os = "macos"))]
fn ceiling() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_goes_up_to_the_hard_one_or_the_ceiling() {
        // (soft, hard, ceiling) -> target
        let cases = [
            ((1024, 524_288, None), 524_288),
            ((256, u64::MAX, Some(24_576)), 24_576),
            ((256, 10_240, Some(24_576)), 10_240),
            ((4096, 4096, None), 4096),
            ((50_000, u64::MAX, Some(24_576)), 50_000),
        ];
        for ((soft, hard, ceiling), expected) in cases {
            assert_eq!(target(soft, hard, ceiling), expected, "soft {soft}, hard {hard}, ceiling {ceiling:?}");
        }
    }

    #[test]
    fn half_the_descriptors_go_to_api_connections() {
        let cases = [(1024, 512), (524_288, 262_144), (1, 1), (0, 1), (u64::MAX, tokio::sync::Semaphore::MAX_PERMITS)];
        for (soft, expected) in cases {
            assert_eq!(connection_cap(soft), expected, "soft {soft}");
        }
    }
}
