//! Process groups: a Service's process is spawned as the leader of its own
//! group, so that it and everything it starts can be signalled together; the
//! group is killed when the handle is dropped, and (on Linux) the leader gets
//! SIGKILL when the daemon dies; it gets back the soft descriptor limit the
//! daemon was started with. Also what the OS says about a pid, to find the
//! leftovers of an earlier daemon without mistaking a reused pid for one.

use std::collections::BTreeSet;
use std::io;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::{descriptor_limit, sys};

/// A freshly spawned process and its output pipes.
pub(super) struct Spawned {
    pub group: ProcessGroup,
    pub stdout: ChildStdout,
    pub stderr: ChildStderr,
}

/// Spawns processes from one thread that lives exactly as long as the
/// supervisor.
///
/// Linux delivers the parent-death signal when the *thread* that forked the
/// child exits, not the process. A runtime worker is long-lived, but one that
/// enters `block_in_place` hands its place over and may end up in the blocking
/// pool, whose threads exit when idle, as `spawn_blocking` threads do; each would
/// SIGKILL the Services it had started. This thread ends only when the
/// supervisor is dropped, after it killed its processes anyway.
pub(super) struct Spawner {
    requests: std::sync::mpsc::Sender<Request>,
}

struct Request {
    command: Command,
    reply: oneshot::Sender<io::Result<Spawned>>,
}

impl Spawner {
    /// Must be called inside a tokio runtime: the children are registered with
    /// it, to be awaited there.
    pub(super) fn new() -> io::Result<Spawner> {
        let runtime = tokio::runtime::Handle::current();
        let (requests, incoming) = std::sync::mpsc::channel::<Request>();
        std::thread::Builder::new().name("supervisor-spawn".to_owned()).spawn(move || {
            let _runtime = runtime.enter();
            for Request { command, reply } in incoming {
                // If the asker is gone, the process is dropped: killed.
                let _ = reply.send(spawn(command));
            }
        })?;
        Ok(Spawner { requests })
    }

    /// Spawns `command` (program, arguments, environment and folder set) with
    /// its output piped, as the leader of a new process group.
    pub(super) async fn spawn(&self, command: Command) -> io::Result<Spawned> {
        let gone = || io::Error::other("the supervisor's spawn thread is gone");
        let (reply, answer) = oneshot::channel();
        self.requests.send(Request { command, reply }).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

fn spawn(mut command: Command) -> io::Result<Spawned> {
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0).kill_on_drop(true);
    #[cfg(target_os = "linux")]
    die_with_parent(&mut command);
    restore_descriptor_limit(&mut command);
    let mut child = command.spawn()?;
    let pid = child.id().ok_or_else(|| io::Error::other("the process exited before it had a pid"))?;
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let group = ProcessGroup { child, pid, exit: None };
    match (stdout, stderr) {
        (Some(stdout), Some(stderr)) => Ok(Spawned { group, stdout, stderr }),
        _ => Err(io::Error::other("the process has no output pipes")),
    }
}

/// Makes the kernel SIGKILL the child when the thread that spawns it exits,
/// which includes the daemon being killed with SIGKILL. Only the leader gets
/// it; what the leader started is stopped with its group by the next daemon
/// (`stop_leftovers`). macOS has no such signal: there, a daemon killed with
/// SIGKILL leaves its Services running until the next daemon stops them.
#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    sys::signal_child_when_parent_dies(command, libc::SIGKILL);
}

/// Gives the child the soft descriptor limit the daemon was started with: the
/// daemon raised its own (`descriptor_limit`), and programs expect the usual
/// default (`select` fails past 1,024 descriptors; some size tables by it).
fn restore_descriptor_limit(command: &mut Command) {
    let Some(limit) = descriptor_limit::original() else { return };
    sys::set_open_file_limit_in_child(command, limit);
}

/// A spawned process that leads its own group. Dropping it SIGKILLs the group
/// (the leader is then reaped in the background), so no process it started is
/// left behind.
pub(super) struct ProcessGroup {
    child: Child,
    /// The leader's pid, which is also the group's id.
    pid: u32,
    /// Set once the leader is reaped.
    exit: Option<ExitStatus>,
}

impl ProcessGroup {
    pub(super) fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits for the leader to exit, then kills what is left of its group: as
    /// with a container and its first process, the group does not outlive its
    /// leader. Cancel safe.
    pub(super) async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(exit) = self.exit {
            return Ok(exit);
        }
        let exit = self.child.wait().await?;
        self.exit = Some(exit);
        // The leader is reaped, so the group id is only reserved while members
        // remain. Were it already empty, its id could in theory be reused by a
        // new group leader, but only after the kernel cycled through every other
        // pid; this signal follows the reaping at once.
        signal_group(self.pid, libc::SIGKILL);
        Ok(exit)
    }

    /// SIGTERM to the group, SIGKILL to whatever is left after `grace`, and
    /// the leader reaped.
    pub(super) async fn terminate(&mut self, grace: Duration) -> io::Result<ExitStatus> {
        if self.exit.is_none() {
            self.signal(libc::SIGTERM);
        }
        match tokio::time::timeout(grace, self.wait()).await {
            Ok(exit) => exit,
            Err(_elapsed) => {
                self.signal(libc::SIGKILL);
                self.wait().await
            }
        }
    }

    /// Signals the group, and the leader itself should it have left the group
    /// (`setsid`). Only while the leader is not reaped: until then its pid cannot
    /// belong to anyone else.
    fn signal(&self, signal: libc::c_int) {
        signal_group(self.pid, signal);
        if sys::process_group(self.pid) != Some(self.pid) {
            let _ = sys::kill(self.pid, signal);
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if self.exit.is_none() {
            self.signal(libc::SIGKILL);
        }
    }
}

/// Sends `signal` to every process of group `pgid`. A group that is gone
/// (ESRCH) is what we wanted anyway.
fn signal_group(pgid: u32, signal: libc::c_int) {
    let _ = sys::killpg(pgid, signal);
}

/// A process group an earlier daemon recorded: its leader's pid and start time.
#[derive(Clone, Copy, Debug)]
pub(super) struct Leftover {
    pub pid: u32,
    pub start_time: u64,
}

impl Leftover {
    /// The processes of this group still running. A leader (even a zombie) with
    /// another start time means the pid was reused: nothing of ours is there.
    /// Otherwise the leader, if it still runs, and the members of its group
    /// started no earlier than it. The group id cannot have been reused while
    /// any member remained, so those members are ours unless the pid was
    /// reused as a new group's leader that then died leaving its own members:
    /// a pid reuse and a group leader exiting first, in the time the daemon
    /// was down.
    fn processes(&self) -> BTreeSet<u32> {
        let leader = info(self.pid);
        if leader.is_some_and(|leader| leader.start_time != self.start_time) {
            return BTreeSet::new();
        }
        let running_leader = leader.filter(|leader| !leader.zombie).map(|_| self.pid);
        group_members(self.pid)
            .into_iter()
            .filter(|(_, member)| member.start_time >= self.start_time)
            .map(|(pid, _)| pid)
            .chain(running_leader)
            .collect()
    }
}

/// Stops the processes left over from `groups`: SIGTERM, then SIGKILL to those
/// still running after `grace`.
pub(super) async fn stop_leftovers(groups: &[Leftover], grace: Duration) {
    let running = || -> BTreeSet<u32> { groups.iter().flat_map(Leftover::processes).collect() };
    let found = running();
    if found.is_empty() {
        return;
    }
    tracing::warn!(pids = ?found, "stopping processes an earlier daemon left running");
    signal_each(&found, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let left = running();
        if left.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            tracing::warn!(pids = ?left, "leftover processes ignored SIGTERM: SIGKILL");
            signal_each(&left, libc::SIGKILL);
            return;
        }
    }
}

fn signal_each(pids: &BTreeSet<u32>, signal: libc::c_int) {
    for &pid in pids {
        let _ = sys::kill(pid, signal);
    }
}

/// What the OS says about a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ProcessInfo {
    pub pgid: u32,
    /// When it started, in a unit of the OS's (clock ticks since boot on Linux,
    /// microseconds since the epoch on macOS): with the pid, it names one process.
    pub start_time: u64,
    /// Exited but not reaped: no longer running.
    pub zombie: bool,
}

/// None when there is no such process (or the OS is not one we know).
#[cfg(target_os = "linux")]
pub(super) fn info(pid: u32) -> Option<ProcessInfo> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

/// Reads `pid (comm) state ppid pgrp … starttime …` (proc(5)). The command
/// name may hold spaces and parentheses, so fields are counted after its last
/// `)`: state is field 3, pgrp field 5, starttime field 22.
#[cfg(target_os = "linux")]
fn parse_stat(stat: &str) -> Option<ProcessInfo> {
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    Some(ProcessInfo {
        zombie: matches!(*fields.first()?, "Z" | "X"),
        pgid: fields.get(2)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// The running (not zombie) processes of group `pgid`.
#[cfg(target_os = "linux")]
fn group_members(pgid: u32) -> Vec<(u32, ProcessInfo)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, info(pid)?)))
        .filter(|(_, info)| info.pgid == pgid && !info.zombie)
        .collect()
}

#[cfg(target_os = "macos")]
pub(super) fn info(pid: u32) -> Option<ProcessInfo> {
    let info = sys::bsd_info(pid)?;
    Some(ProcessInfo {
        pgid: info.pbi_pgid,
        start_time: info.pbi_start_tvsec * 1_000_000 + info.pbi_start_tvusec,
        zombie: info.pbi_status == libc::SZOMB,
    })
}

/// The running (not zombie) processes of group `pgid`.
#[cfg(target_os = "macos")]
fn group_members(pgid: u32) -> Vec<(u32, ProcessInfo)> {
    // Every pid listed is checked again: it may have left the group since.
    sys::group_pids(pgid)
        .into_iter()
        .filter_map(|pid| Some((pid, info(pid)?)))
        .filter(|(_, info)| info.pgid == pgid && !info.zombie)
        .collect()
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
pub(super) fn info(_pid: u32) -> Option<ProcessInfo> {
    None
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn group_members(_pgid: u32) -> Vec<(u32, ProcessInfo)> {
    Vec::new()
}

#[cfg(target_os = "linux")]
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "4242 (my (odd) name) S 1 4240 4240 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_stat(stat), Some(ProcessInfo { pgid: 4240, start_time: 987654, zombie: false }));
        let zombie = "7 (sh) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 0 0";
        assert!(parse_stat(zombie).unwrap().zombie);
        assert_eq!(parse_stat("7 (sh) S 1"), None);
    }

    #[test]
    fn info_reads_this_process() {
        let me = info(std::process::id()).unwrap();
        assert!(!me.zombie);
        assert!(me.start_time > 0);
    }

    /// The parent-death signal follows the thread that forked: this is why the
    /// supervisor spawns from a thread of its own. The test thread spawns a
    /// `sleep` and exits, leaking the handle so nothing but the kernel kills it.
    #[tokio::test]
    async fn a_child_is_killed_when_the_thread_that_spawned_it_exits() {
        let runtime = tokio::runtime::Handle::current();
        let pid = std::thread::spawn(move || {
            let _runtime = runtime.enter();
            let mut sleep = Command::new("sleep");
            sleep.arg("30");
            let spawned = spawn(sleep).unwrap();
            let pid = spawned.group.pid();
            std::mem::forget(spawned);
            pid
        })
        .join()
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Some(status) = sys::try_reap(pid).unwrap() {
                break status;
            }
            assert!(std::time::Instant::now() < deadline, "sleep {pid} survived its spawning thread");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL);
    }
}
