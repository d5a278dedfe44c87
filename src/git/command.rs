//! Runs the system's `git` as a child process, the way a daemon must: stdin
//! closed, no terminal prompt, ssh in batch mode unless the user chose their own
//! ssh command, the C locale so messages read the same everywhere, and a timeout
//! after which the whole process group (git and its ssh or helpers) is killed.
//! A failure names the command and the line of git's stderr that says why.
//!
//! Calls block: callers run them on a blocking thread.

use std::ffi::OsStr;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// What git prints after a transport's own error, whatever the cause: never
/// the line that says why.
const BOILERPLATE: [&str; 3] = [
    "fatal: Could not read from remote repository.",
    "Please make sure you have the correct access rights",
    "and the repository exists.",
];

/// Variables that point git at another repository than the folder it runs in
/// (set when the daemon itself is started from a Git hook, say).
const REPOSITORY_VARIABLES: [&str; 6] = [
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
];

/// The ssh command used when the user set none: it fails where it would ask.
const BATCH_SSH: &str = "ssh -o BatchMode=yes";

/// `git` in one folder, with a timeout per call.
#[derive(Clone, Debug)]
pub(crate) struct Git {
    dir: PathBuf,
    timeout: Duration,
    /// Look for the repository in `dir` only, not in the folders above it.
    here_only: bool,
    batch_ssh: bool,
}

/// Why a git command did not succeed, with the command as it was run.
#[derive(Debug, thiserror::Error)]
#[error("`{command}` {failure}")]
pub(crate) struct GitError {
    command: String,
    failure: Failure,
}

#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("failed: git is not installed or not on PATH")]
    NotInstalled,
    #[error("could not run: {0}")]
    Io(#[source] io::Error),
    #[error("failed ({status}): {cause}")]
    Exited { status: ExitStatus, cause: String },
    #[error("failed: {0}")]
    Unexpected(String),
    #[error("was killed after {} without finishing", humantime::format_duration(*.0))]
    TimedOut(Duration),
}

impl GitError {
    /// Whether git ran and ended with `code` (as `git config --get` does for a
    /// missing key), rather than failing to run or timing out.
    pub(crate) fn exited_with(&self, code: i32) -> bool {
        matches!(&self.failure, Failure::Exited { status, .. } if status.code() == Some(code))
    }
}

impl Git {
    pub(crate) fn new(dir: impl Into<PathBuf>, timeout: Duration) -> Git {
        Git { dir: dir.into(), timeout, here_only: false, batch_ssh: false }
    }

    /// Git in `dir` only: a folder inside someone's repository is not taken
    /// for that repository.
    pub(crate) fn here_only(mut self) -> Git {
        self.here_only = true;
        self
    }

    /// For commands that reach a remote: ssh fails instead of asking for a
    /// password or a host key, unless the user set their own ssh command
    /// (`GIT_SSH_COMMAND`, `GIT_SSH` or `core.sshCommand`), which is theirs to
    /// configure.
    pub(crate) fn for_remote(mut self) -> Result<Git, GitError> {
        let own_variable = ["GIT_SSH_COMMAND", "GIT_SSH"].iter().any(|name| std::env::var_os(name).is_some());
        self.batch_ssh = !own_variable && self.config("core.sshCommand")?.is_none();
        Ok(self)
    }

    /// An error for `git command` that succeeded with output that cannot be
    /// understood.
    pub(crate) fn unexpected(&self, command: &str, why: &str) -> GitError {
        GitError { command: format!("git {command}"), failure: Failure::Unexpected(why.to_owned()) }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// `git config --get name`, `None` when unset.
    pub(crate) fn config(&self, name: &str) -> Result<Option<String>, GitError> {
        match self.run(&["config", "--get", name]) {
            Ok(value) => Ok(Some(value.trim_end().to_owned())),
            Err(error) if error.exited_with(1) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Runs `git args…` and returns its standard output as text.
    pub(crate) fn run(&self, args: &[&str]) -> Result<String, GitError> {
        let output = self.run_with_input(args, None)?;
        Ok(String::from_utf8_lossy(&output).into_owned())
    }

    /// Runs `git args…` with `input` on its standard input (closed when
    /// `None`) and returns its standard output.
    pub(crate) fn run_with_input(&self, args: &[&str], input: Option<Vec<u8>>) -> Result<Vec<u8>, GitError> {
        let failed = |failure| GitError { command: shown(args), failure };
        let mut command = self.command(args);
        command.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
        let mut child = command.spawn().map_err(|error| match error.kind() {
            io::ErrorKind::NotFound => failed(Failure::NotInstalled),
            _ => failed(Failure::Io(error)),
        })?;
        let group = child.id();
        if let (Some(mut stdin), Some(input)) = (child.stdin.take(), input) {
            // Written on its own thread: git answers while it reads, and both
            // pipes are bounded. The thread ends when the input is written or
            // the pipe breaks: git exits, or its group is killed below.
            std::thread::spawn(move || stdin.write_all(&input));
        }
        let (done, outcome) = mpsc::channel();
        // Reads until git's pipes close and reports on `outcome`, which is
        // always received: on a timeout after the group is killed.
        std::thread::spawn(move || {
            let mut stderr = Vec::new();
            let err_pipe = child.stderr.take();
            let reader =
                std::thread::spawn(move || err_pipe.map(|mut pipe| pipe.read_to_end(&mut stderr).map(|_| stderr)));
            let mut stdout = Vec::new();
            let read = child.stdout.take().map(|mut pipe| pipe.read_to_end(&mut stdout));
            let stderr = reader.join().ok().flatten().and_then(Result::ok).unwrap_or_default();
            let _ = done.send(read.transpose().and_then(|_| child.wait()).map(|status| (status, stdout, stderr)));
        });
        match outcome.recv_timeout(self.timeout) {
            Ok(Ok((status, stdout, _))) if status.success() => Ok(stdout),
            Ok(Ok((status, _, stderr))) => {
                Err(failed(Failure::Exited { status, cause: cause(&String::from_utf8_lossy(&stderr)) }))
            }
            Ok(Err(error)) => Err(failed(Failure::Io(error))),
            Err(_) => {
                kill_group(group);
                // The pipes close with the group; the reading thread ends.
                let _ = outcome.recv();
                Err(failed(Failure::TimedOut(self.timeout)))
            }
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("git");
        command
            .args(args)
            .current_dir(&self.dir)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("LC_ALL", "C")
            // Reading commands must not write the index (a watched folder
            // would see its own reading as a change).
            .env("GIT_OPTIONAL_LOCKS", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for name in REPOSITORY_VARIABLES {
            command.env_remove(name);
        }
        if self.here_only {
            let above = self.dir.canonicalize().ok().and_then(|dir| dir.parent().map(Path::to_owned));
            command.env("GIT_CEILING_DIRECTORIES", above.as_deref().unwrap_or(OsStr::new("/").as_ref()));
        }
        if self.batch_ssh {
            command.env("GIT_SSH_COMMAND", BATCH_SSH);
        }
        // Its own process group: a timeout kills ssh and the helpers too.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        command
    }
}

/// The command as the user would type it, for messages.
fn shown(args: &[&str]) -> String {
    std::iter::once("git").chain(args.iter().copied()).collect::<Vec<_>>().join(" ")
}

/// The line of git's stderr that says why it failed: the last one, past the
/// advice git prints after any transport error.
fn cause(stderr: &str) -> String {
    let mut lines = stderr.lines().map(str::trim).filter(|line| !line.is_empty());
    let telling = lines.clone().rfind(|line| !BOILERPLATE.contains(line));
    match telling.or_else(|| lines.next_back()) {
        Some(line) => line.to_owned(),
        None => "no message".to_owned(),
    }
}

fn kill_group(pgid: u32) {
    let _ = crate::sys::killpg(pgid, libc::SIGKILL);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cause_is_the_last_line_that_is_not_gits_advice() {
        let cases = [
            (
                "fatal: '/srv/mesh.git' does not appear to be a git repository\nfatal: Could not read from remote repository.\n\nPlease make sure you have the correct access rights\nand the repository exists.\n",
                "fatal: '/srv/mesh.git' does not appear to be a git repository",
            ),
            (
                "ssh: connect to host example.invalid port 22: Connection refused\nfatal: Could not read from remote repository.\n\nPlease make sure you have the correct access rights\nand the repository exists.\n",
                "ssh: connect to host example.invalid port 22: Connection refused",
            ),
            (
                "fatal: unable to connect to 127.0.0.1:\n127.0.0.1[0: 127.0.0.1]: errno=Connection refused\n\n",
                "127.0.0.1[0: 127.0.0.1]: errno=Connection refused",
            ),
            ("fatal: couldn't find remote ref refs/heads/nope\n", "fatal: couldn't find remote ref refs/heads/nope"),
            ("fatal: Could not read from remote repository.\n", "fatal: Could not read from remote repository."),
            ("", "no message"),
        ];
        for (stderr, expected) in cases {
            assert_eq!(cause(stderr), expected, "{stderr:?}");
        }
    }

    #[test]
    fn a_failure_names_the_command_and_the_cause() {
        let dir = tempfile::tempdir().expect("temp dir");
        let error = Git::new(dir.path(), Duration::from_secs(10))
            .run(&["ls-remote", "/nonexistent/mesh.git"])
            .expect_err("no such remote");
        assert_eq!(
            error.to_string(),
            "`git ls-remote /nonexistent/mesh.git` failed (exit status: 128): fatal: '/nonexistent/mesh.git' does not appear to be a git repository"
        );
    }

    #[test]
    fn a_folder_inside_a_repository_is_not_that_repository_when_asked() {
        let dir = tempfile::tempdir().expect("temp dir");
        let git = Git::new(dir.path(), Duration::from_secs(10));
        git.run(&["init", "--quiet"]).expect("git init");
        let inner = dir.path().join("inner");
        std::fs::create_dir(&inner).expect("mkdir");
        let inside = Git::new(&inner, Duration::from_secs(10));
        assert!(inside.run(&["rev-parse", "--git-dir"]).is_ok(), "found from above");
        let error = inside.here_only().run(&["rev-parse", "--git-dir"]).expect_err("only here");
        assert!(error.exited_with(128), "{error}");
    }

    #[test]
    fn a_command_past_its_timeout_is_killed_with_its_children() {
        let dir = tempfile::tempdir().expect("temp dir");
        let git = Git::new(dir.path(), Duration::from_millis(300));
        let started = std::time::Instant::now();
        // An alias runs a shell, as ssh would run under git: a child of git.
        let error = git.run(&["-c", "alias.hang=!sleep 30", "hang"]).expect_err("killed");
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert_eq!(error.to_string(), "`git -c alias.hang=!sleep 30 hang` was killed after 300ms without finishing");
    }
}
