//! The crate's only calls into the C library: each `unsafe` block sits behind a
//! safe function with Rust types, and says in a `SAFETY` note why it holds. Pids
//! and process groups are `u32`s, as std hands them out; signals are
//! `libc::SIG*` numbers.

use std::ffi::c_int;
use std::io;
use std::os::fd::AsRawFd;

/// Sends `signal` to process `pid`.
pub(crate) fn kill(pid: u32, signal: c_int) -> io::Result<()> {
    // SAFETY: kill takes plain integers and touches no memory.
    check(unsafe { libc::kill(raw(pid), signal) })
}

/// Sends `signal` to every process of group `pgid`.
pub(crate) fn killpg(pgid: u32, signal: c_int) -> io::Result<()> {
    // SAFETY: killpg takes plain integers and touches no memory.
    check(unsafe { libc::killpg(raw(pgid), signal) })
}

/// The process group of `pid`, None when there is no such process.
pub(crate) fn process_group(pid: u32) -> Option<u32> {
    // SAFETY: getpgid takes a plain integer and touches no memory.
    let pgid = unsafe { libc::getpgid(raw(pid)) };
    u32::try_from(pgid).ok()
}

/// The real user id of this process.
pub(crate) fn getuid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// This machine's host name, bytes that are not UTF-8 replaced.
pub(crate) fn hostname() -> io::Result<String> {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that.
    check(unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) })?;
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    Ok(String::from_utf8_lossy(&buffer[..end]).into_owned())
}

/// Gives `signal` back its default disposition in this process.
pub(crate) fn restore_default_disposition(signal: c_int) {
    // SAFETY: setting a signal's disposition to its default has no
    // preconditions and installs no handler that could run Rust code.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
    }
}

/// Two clocks read one after the other: the first returned counts the time the
/// machine was asleep, the second does not, so their difference grows by
/// each sleep (a process stopped with SIGSTOP moves neither apart). Linux:
/// `CLOCK_BOOTTIME` and `CLOCK_MONOTONIC`; macOS: `CLOCK_MONOTONIC` (which
/// goes on while asleep there) and `CLOCK_UPTIME_RAW`.
pub(crate) fn asleep_and_awake_clocks() -> (std::time::Duration, std::time::Duration) {
    #[cfg(target_os = "linux")]
    let clocks = (libc::CLOCK_BOOTTIME, libc::CLOCK_MONOTONIC);
    #[cfg(target_os = "macos")]
    let clocks = (libc::CLOCK_MONOTONIC, libc::CLOCK_UPTIME_RAW);
    // The one without sleep first: read later, the other is never behind it.
    let without_sleep = clock(clocks.1);
    (clock(clocks.0), without_sleep)
}

fn clock(id: libc::clockid_t) -> std::time::Duration {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes only into `now`; the clock ids are ones
    // the system defines, so it cannot fail.
    check(unsafe { libc::clock_gettime(id, &mut now) }).expect("the system's clocks can be read");
    let seconds = u64::try_from(now.tv_sec).unwrap_or_default();
    let nanos = u32::try_from(now.tv_nsec).unwrap_or_default();
    std::time::Duration::new(seconds, nanos)
}

/// Takes an exclusive `flock` on `file` without waiting: `WouldBlock` when
/// another open file description holds it.
pub(crate) fn try_lock_exclusive(file: &std::fs::File) -> io::Result<()> {
    // SAFETY: flock takes a descriptor `file` keeps open and flags, and touches
    // no memory.
    check(unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) })
}

/// This process's `RLIMIT_NOFILE`.
pub(crate) fn open_file_limit() -> io::Result<libc::rlimit> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes only into `limit`.
    check(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) })?;
    Ok(limit)
}

/// Sets this process's `RLIMIT_NOFILE`.
pub(crate) fn set_open_file_limit(limit: &libc::rlimit) -> io::Result<()> {
    // SAFETY: setrlimit only reads `limit`.
    check(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, limit) })
}

/// Makes the child that `command` spawns set its `RLIMIT_NOFILE` to `limit`
/// before it runs the program.
pub(crate) fn set_open_file_limit_in_child(command: &mut tokio::process::Command, limit: libc::rlimit) {
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: setrlimit is, it reads a copy made
    // before the fork, and `last_os_error` only reads errno.
    unsafe {
        command.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Makes the kernel send `signal` to the child that `command` spawns when the
/// thread that spawned it exits. A child whose parent died before the signal
/// was armed exits at once instead.
#[cfg(target_os = "linux")]
pub(crate) fn signal_child_when_parent_dies(command: &mut tokio::process::Command, signal: c_int) {
    // Read before the fork: in the child, a different parent means this one
    // died before the signal was armed, and nothing would ever deliver it.
    let parent = raw(std::process::id());
    let signal = libc::c_ulong::try_from(signal).unwrap_or_default();
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: prctl, getppid and _exit are, and
    // `last_os_error` only reads errno.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// What macOS says about process `pid` (`PROC_PIDTBSDINFO`), None when there is
/// no such process.
#[cfg(target_os = "macos")]
pub(crate) fn bsd_info(pid: u32) -> Option<libc::proc_bsdinfo> {
    // SAFETY: proc_bsdinfo is plain integers, for which zero is a valid value.
    let mut info: libc::proc_bsdinfo = unsafe { std::mem::zeroed() };
    let size = size_of::<libc::proc_bsdinfo>() as c_int;
    // SAFETY: proc_pidinfo writes at most `size` bytes into `info`.
    let written = unsafe { libc::proc_pidinfo(raw(pid), libc::PROC_PIDTBSDINFO, 0, (&raw mut info).cast(), size) };
    (written == size).then_some(info)
}

/// The pids macOS lists in group `pgid` (up to 4,096; possibly some that have
/// left it since, to be checked by the caller).
#[cfg(target_os = "macos")]
pub(crate) fn group_pids(pgid: u32) -> Vec<u32> {
    let mut pids = vec![0 as libc::pid_t; 4096];
    let bytes = size_of_val(pids.as_slice()) as c_int;
    // SAFETY: proc_listpgrppids writes at most `bytes` bytes into `pids`.
    let listed = unsafe { libc::proc_listpgrppids(raw(pgid), pids.as_mut_ptr().cast(), bytes) };
    // Whether it counts pids or bytes, unused slots stay zero and are dropped.
    pids.truncate(usize::try_from(listed).unwrap_or(0).min(pids.len()));
    pids.into_iter().filter_map(|pid| u32::try_from(pid).ok().filter(|pid| *pid > 0)).collect()
}

/// `sysctlbyname` of an integer, such as `kern.maxfilesperproc`.
#[cfg(target_os = "macos")]
pub(crate) fn sysctl_int(name: &std::ffi::CStr) -> io::Result<c_int> {
    let mut value: c_int = 0;
    let mut size = size_of::<c_int>();
    // SAFETY: sysctlbyname writes at most `size` bytes into `value`, and the
    // name is a NUL-terminated string.
    check(unsafe { libc::sysctlbyname(name.as_ptr(), (&raw mut value).cast(), &mut size, std::ptr::null_mut(), 0) })?;
    Ok(value)
}

/// Reaps child `pid` if it has exited, without waiting: its wait status, or
/// None while it runs.
#[cfg(all(test, target_os = "linux"))]
pub(crate) fn try_reap(pid: u32) -> io::Result<Option<c_int>> {
    let mut status = 0;
    // SAFETY: waitpid writes only into `status`.
    match unsafe { libc::waitpid(raw(pid), &mut status, libc::WNOHANG) } {
        0 => Ok(None),
        -1 => Err(io::Error::last_os_error()),
        _ => Ok(Some(status)),
    }
}

/// The terminal on standard input with echo turned off, until dropped: what
/// is typed there (a secret) is not shown.
pub(crate) struct StdinEchoOff {
    saved: libc::termios,
}

/// Turns off echo on the terminal on standard input, a newline still shown;
/// `ENOTTY` when standard input is no terminal.
pub(crate) fn stdin_echo_off() -> io::Result<StdinEchoOff> {
    // SAFETY: termios is plain integers and arrays, for which zero is a valid value.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: tcgetattr writes only into `saved`; descriptor 0 stays open.
    check(unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut saved) })?;
    let mut quiet = saved;
    quiet.c_lflag &= !libc::ECHO;
    quiet.c_lflag |= libc::ECHONL;
    // SAFETY: tcsetattr only reads `quiet`.
    check(unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &quiet) })?;
    Ok(StdinEchoOff { saved })
}

impl Drop for StdinEchoOff {
    fn drop(&mut self) {
        // SAFETY: tcsetattr only reads the settings saved before echo went off.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.saved);
        }
    }
}

/// A pid as the C calls take it. Pids are positive `pid_t`s that std hands
/// out as `u32`, so the conversion never wraps.
fn raw(pid: u32) -> libc::pid_t {
    pid as libc::pid_t
}

/// The C convention: 0 is success, anything else failure with errno set.
fn check(result: c_int) -> io::Result<()> {
    if result == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_that_counts_sleep_is_never_behind_the_one_that_does_not() {
        let (with_sleep, without_sleep) = asleep_and_awake_clocks();
        assert!(with_sleep >= without_sleep, "{with_sleep:?} < {without_sleep:?}");
        let (later, _) = asleep_and_awake_clocks();
        assert!(later >= with_sleep);
    }

    #[test]
    fn this_process_is_in_a_group_and_a_missing_one_is_not() {
        assert!(process_group(std::process::id()).is_some());
        assert_eq!(process_group(i32::MAX as u32), None);
        assert_eq!(kill(i32::MAX as u32, 0).unwrap_err().raw_os_error(), Some(libc::ESRCH));
    }

    #[test]
    fn a_second_exclusive_lock_on_a_file_would_block() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("lock");
        let first = std::fs::File::create(&path).unwrap();
        let second = std::fs::File::open(&path).unwrap();
        try_lock_exclusive(&first).unwrap();
        assert_eq!(try_lock_exclusive(&second).unwrap_err().kind(), io::ErrorKind::WouldBlock);
    }
}
