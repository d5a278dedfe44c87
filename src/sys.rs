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

/// A message of the system's power domain that this node acts on. IOKit's
/// `IOMessage.h` spells each `iokit_common_msg(code)`, that is
/// `sys_iokit | sub_iokit_common | code` = `0xE000_0000 | code`.
#[cfg(target_os = "macos")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SystemPower {
    /// `kIOMessageCanSystemSleep` (0x270): an idle sleep that may be refused; it is allowed.
    CanSleep,
    /// `kIOMessageSystemWillSleep` (0x280): the sleep comes, once answered (or after 30 s).
    WillSleep,
    /// `kIOMessageSystemHasPoweredOn` (0x300): awake again.
    HasPoweredOn,
}

#[cfg(target_os = "macos")]
impl SystemPower {
    fn from_message(message: u32) -> Option<SystemPower> {
        const IOKIT_COMMON_MSG: u32 = 0xE000_0000;
        match message {
            m if m == IOKIT_COMMON_MSG | 0x270 => Some(SystemPower::CanSleep),
            m if m == IOKIT_COMMON_MSG | 0x280 => Some(SystemPower::WillSleep),
            m if m == IOKIT_COMMON_MSG | 0x300 => Some(SystemPower::HasPoweredOn),
            _ => None,
        }
    }
}

#[cfg(target_os = "macos")]
mod apple {
    use std::ffi::c_void;

    pub(super) type CallBack = extern "C" fn(*mut c_void, u32, u32, *mut c_void);

    #[link(name = "IOKit", kind = "framework")]
    unsafe extern "C" {
        // IOPMLib.h
        pub(super) fn IORegisterForSystemPower(
            refcon: *mut c_void,
            port: *mut *mut c_void,
            callback: CallBack,
            notifier: *mut u32,
        ) -> u32;
        pub(super) fn IOAllowPowerChange(kernel_port: u32, notification_id: isize) -> i32;
        pub(super) fn IODeregisterForSystemPower(notifier: *mut u32) -> i32;
        // IOKitLib.h
        pub(super) fn IONotificationPortGetRunLoopSource(port: *mut c_void) -> *mut c_void;
        pub(super) fn IONotificationPortDestroy(port: *mut c_void);
        pub(super) fn IOServiceClose(connect: u32) -> i32;
    }

    #[link(name = "CoreFoundation", kind = "framework")]
    unsafe extern "C" {
        pub(super) static kCFRunLoopDefaultMode: *const c_void;
        pub(super) fn CFRunLoopGetCurrent() -> *mut c_void;
        pub(super) fn CFRunLoopAddSource(run_loop: *mut c_void, source: *mut c_void, mode: *const c_void);
        pub(super) fn CFRunLoopRunInMode(mode: *const c_void, seconds: f64, return_after_source: u8) -> i32;
        pub(super) fn CFRunLoopStop(run_loop: *mut c_void);
        pub(super) fn CFRetain(object: *const c_void) -> *const c_void;
        pub(super) fn CFRelease(object: *const c_void);
    }
}

/// Stops a [`run_system_power`] loop from any thread.
#[cfg(target_os = "macos")]
pub(crate) struct RunLoopStop {
    /// The loop's thread's run loop, retained.
    run_loop: *mut std::ffi::c_void,
    stopped: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

// SAFETY: the run loop is retained until drop, and CFRunLoopStop, CFRelease
// may be called on it from any thread.
#[cfg(target_os = "macos")]
unsafe impl Send for RunLoopStop {}

#[cfg(target_os = "macos")]
impl RunLoopStop {
    pub(crate) fn stop(&self) {
        self.stopped.store(true, std::sync::atomic::Ordering::SeqCst);
        // SAFETY: the run loop is retained by this value; stopping one that
        // is not running does nothing.
        unsafe { apple::CFRunLoopStop(self.run_loop) }
    }
}

#[cfg(target_os = "macos")]
impl Drop for RunLoopStop {
    fn drop(&mut self) {
        // SAFETY: released once, as retained once in run_system_power.
        unsafe { apple::CFRelease(self.run_loop) }
    }
}

/// Registers for the system's power messages (IOKit's
/// `IORegisterForSystemPower`) and runs this thread's run loop until
/// [`RunLoopStop::stop`]; `started` gets the stopper once registered.
/// `on_message` runs on this thread for each message; a sleep it was asked
/// about goes on (`IOAllowPowerChange`) once it returns.
#[cfg(target_os = "macos")]
pub(crate) fn run_system_power(
    started: impl FnOnce(RunLoopStop),
    mut on_message: impl FnMut(SystemPower),
) -> io::Result<()> {
    use std::ffi::c_void;
    use std::sync::atomic::{AtomicBool, Ordering};

    struct Context<'a> {
        root_port: u32,
        on_message: &'a mut dyn FnMut(SystemPower),
    }

    extern "C" fn callback(refcon: *mut c_void, _service: u32, message: u32, argument: *mut c_void) {
        let Some(message) = SystemPower::from_message(message) else { return };
        // SAFETY: refcon is the boxed Context below, alive and used by this
        // thread alone while its run loop runs.
        let context = unsafe { &mut *refcon.cast::<Context<'_>>() };
        (context.on_message)(message);
        if matches!(message, SystemPower::CanSleep | SystemPower::WillSleep) {
            // SAFETY: plain integers: the port IORegisterForSystemPower gave
            // and the notification's own id.
            unsafe { apple::IOAllowPowerChange(context.root_port, argument as isize) };
        }
    }

    let context = Box::into_raw(Box::new(Context { root_port: 0, on_message: &mut on_message }));
    let mut port: *mut c_void = std::ptr::null_mut();
    let mut notifier: u32 = 0;
    // SAFETY: the call writes `port` and `notifier`; the context outlives the
    // registration, which ends below before the context is freed.
    let root_port = unsafe { apple::IORegisterForSystemPower(context.cast(), &mut port, callback, &mut notifier) };
    if root_port == 0 {
        // SAFETY: not registered: the context is ours alone again.
        drop(unsafe { Box::from_raw(context) });
        return Err(io::Error::other("IORegisterForSystemPower refused to register"));
    }
    // SAFETY: no message is handled before the run loop runs, on this thread.
    unsafe { (*context).root_port = root_port };
    let stopped = std::sync::Arc::new(AtomicBool::new(false));
    // SAFETY: the port is valid until destroyed below; this thread's run loop
    // is retained for the stopper, which releases it.
    unsafe {
        let mode = apple::kCFRunLoopDefaultMode;
        let run_loop = apple::CFRunLoopGetCurrent();
        apple::CFRunLoopAddSource(run_loop, apple::IONotificationPortGetRunLoopSource(port), mode);
        apple::CFRetain(run_loop);
        started(RunLoopStop { run_loop, stopped: stopped.clone() });
        // A stop that came before the loop ran is seen within a second.
        while !stopped.load(Ordering::SeqCst) {
            apple::CFRunLoopRunInMode(mode, 1.0, 0);
        }
        apple::IODeregisterForSystemPower(&mut notifier);
        apple::IOServiceClose(root_port);
        apple::IONotificationPortDestroy(port);
        drop(Box::from_raw(context));
    }
    Ok(())
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

/// How far this machine's local time is ahead of UTC at `at`, in seconds
/// (negative west of Greenwich), daylight saving included; 0 when the C
/// library cannot tell.
pub(crate) fn utc_offset(at: std::time::SystemTime) -> i64 {
    let seconds = match at.duration_since(std::time::UNIX_EPOCH) {
        Ok(after) => after.as_secs() as libc::time_t,
        Err(before) => -(before.duration().as_secs() as libc::time_t),
    };
    // SAFETY: tm is plain integers and a pointer, for which zero is a valid value.
    let mut local: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: localtime_r reads `seconds` and writes only into `local`; it is
    // the reentrant form, safe to call from any thread.
    if unsafe { libc::localtime_r(&seconds, &mut local) }.is_null() {
        return 0;
    }
    local.tm_gmtoff as i64
}

/// One address of one network interface, as `getifaddrs` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InterfaceAddress {
    pub(crate) interface: String,
    pub(crate) address: std::net::IpAddr,
    /// The network's mask, None when the interface has none (a point-to-point link).
    pub(crate) netmask: Option<std::net::IpAddr>,
}

/// Every IPv4 and IPv6 address of this machine's interfaces, loopback too.
pub(crate) fn interface_addresses() -> io::Result<Vec<InterfaceAddress>> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list it allocates into `list`; it is freed
    // below with freeifaddrs, once, after the last read.
    check(unsafe { libc::getifaddrs(&mut list) })?;
    let mut addresses = Vec::new();
    let mut entry = list;
    while !entry.is_null() {
        // SAFETY: `entry` is a non-null node of the list getifaddrs made, alive until freeifaddrs.
        let ifaddr = unsafe { &*entry };
        // SAFETY: ifa_addr and ifa_netmask are null or point at a sockaddr of
        // the family they say, which `ip_of` reads only as that family.
        let (address, netmask) = unsafe { (ip_of(ifaddr.ifa_addr), ip_of(ifaddr.ifa_netmask)) };
        if let Some(address) = address {
            // SAFETY: ifa_name is a NUL-terminated string of the same list.
            let name = unsafe { std::ffi::CStr::from_ptr(ifaddr.ifa_name) };
            let interface = name.to_string_lossy().into_owned();
            addresses.push(InterfaceAddress { interface, address, netmask });
        }
        entry = ifaddr.ifa_next;
    }
    // SAFETY: `list` came from getifaddrs and nothing reads it after this.
    unsafe { libc::freeifaddrs(list) };
    Ok(addresses)
}

/// The IP in `address`, None when it is null or neither IPv4 nor IPv6.
///
/// # Safety
/// `address` is null or points at a sockaddr as large as its family says.
unsafe fn ip_of(address: *const libc::sockaddr) -> Option<std::net::IpAddr> {
    if address.is_null() {
        return None;
    }
    // SAFETY: non-null, so a sockaddr, whose family field every family shares.
    let family = c_int::from(unsafe { (*address).sa_family });
    match family {
        libc::AF_INET => {
            // SAFETY: the family says it is a sockaddr_in.
            let ipv4 = unsafe { &*address.cast::<libc::sockaddr_in>() };
            Some(std::net::Ipv4Addr::from(u32::from_be(ipv4.sin_addr.s_addr)).into())
        }
        libc::AF_INET6 => {
            // SAFETY: the family says it is a sockaddr_in6.
            let ipv6 = unsafe { &*address.cast::<libc::sockaddr_in6>() };
            Some(std::net::Ipv6Addr::from(ipv6.sin6_addr.s6_addr).into())
        }
        _ => None,
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

    #[cfg(target_os = "macos")]
    #[test]
    fn the_power_messages_are_iokit_common_messages_of_their_codes() {
        // IOMessage.h: iokit_common_msg(code) = sys_iokit | sub_iokit_common | code,
        // sys_iokit = err_system(0x38) = (0x38 & 0x3f) << 26, sub_iokit_common = 0.
        let common = |code: u32| ((0x38 & 0x3f) << 26) | code;
        assert_eq!(SystemPower::from_message(common(0x270)), Some(SystemPower::CanSleep));
        assert_eq!(SystemPower::from_message(common(0x280)), Some(SystemPower::WillSleep));
        assert_eq!(SystemPower::from_message(common(0x300)), Some(SystemPower::HasPoweredOn));
        // kIOMessageSystemWillNotSleep, kIOMessageSystemWillPowerOn: nothing to do.
        assert_eq!(SystemPower::from_message(common(0x290)), None);
        assert_eq!(SystemPower::from_message(common(0x320)), None);
    }

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
    fn loopback_is_among_the_interface_addresses() {
        let addresses = interface_addresses().unwrap();
        let loopback = addresses.iter().find(|a| a.address == std::net::Ipv4Addr::LOCALHOST).expect("127.0.0.1 listed");
        assert_eq!(loopback.netmask, Some(std::net::Ipv4Addr::new(255, 0, 0, 0).into()), "{loopback:?}");
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
