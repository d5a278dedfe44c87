//! A small builder for "these files, these args, expect this output",
//! fixtures for the tests' outside world (Git remotes, Syncthing), and the
//! one way to wait for a condition (`wait`).

pub(crate) mod daemon;
pub(crate) mod ollama;
pub(crate) mod shapes;
#[cfg(target_os = "linux")]
pub(crate) mod sshd;
pub(crate) mod syncthing;
pub(crate) mod wait;

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use assert_cmd::Command;
use tempfile::TempDir;

/// The example manifests shipped in `manifests/`.
pub(crate) fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests")
}

/// A temporary working folder holding files, where `meshctl` runs.
pub(crate) struct Workspace {
    dir: TempDir,
    /// `meshctl`'s config folder (XDG_CONFIG_HOME), so that the context file
    /// `init` writes is the test's own, never the user's.
    config: TempDir,
}

/// What one run of `meshctl` printed and returned.
#[derive(Debug)]
pub(crate) struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Workspace {
    pub(crate) fn new() -> Self {
        Workspace { dir: tempfile::tempdir().expect("temp dir"), config: tempfile::tempdir().expect("temp dir") }
    }

    /// Writes `text` to `relative` (folders are created).
    pub(crate) fn file(self, relative: &str, text: &str) -> Self {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("create folders");
        std::fs::write(path, text).expect("write file");
        self
    }

    /// Copies the example manifests into `manifests/`.
    pub(crate) fn with_examples(self) -> Self {
        copy_tree(&examples_dir(), &self.dir.path().join("manifests"));
        self
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `meshctl args…` in the workspace with a clean agentmesh environment.
    pub(crate) fn run(&self, args: &[&str]) -> Run {
        self.run_with_env(args, &[])
    }

    pub(crate) fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        self.run_full(args, env, "")
    }

    /// Runs `meshctl args…` as [`Workspace::run`] does, with `input` on its
    /// standard input.
    pub(crate) fn run_with_stdin(&self, args: &[&str], input: &str) -> Run {
        self.run_full(args, &[], input)
    }

    fn run_full(&self, args: &[&str], env: &[(&str, &str)], input: &str) -> Run {
        let mut command = Command::cargo_bin("meshctl").expect("meshctl is built");
        command.write_stdin(input);
        command.current_dir(self.dir.path()).args(args).env("XDG_CONFIG_HOME", self.config.path());
        for name in ["AGENT_NODE_ID", "AGENT_ROLE", "MESH_MANIFESTS", "MESH_PEERS", "MESH_API_KEY"] {
            command.env_remove(name);
        }
        for (name, value) in env {
            command.env(name, value);
        }
        command.output().expect("meshctl runs").into()
    }
}

/// A finished `meshctl`'s exit code (-1 when a signal ended it) and what it
/// printed, which must be UTF-8.
impl From<std::process::Output> for Run {
    fn from(output: std::process::Output) -> Self {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
            stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create folder");
    for entry in std::fs::read_dir(from).expect("read folder") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy file");
        }
    }
}

/// Runs `git args…` in `dir` with no user or system configuration, as the
/// `git` command a user has; returns its output, trimmed.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let output = StdCommand::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(output.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("UTF-8 output").trim().to_owned()
}

/// The interpreter of a venv holding the Python `package` at `version`:
/// `$variable` when it is set (`.ci/run` sets it), else `<venv>/bin/python` in
/// the repository. A test fails, never skips, when it cannot import the
/// package: the message says how to make the venv.
pub(crate) fn venv_python(variable: &str, venv: &str, package: &str, version: &str) -> PathBuf {
    let python = std::env::var_os(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(venv).join("bin/python"));
    let how = format!(
        "the test needs the Python `{package}` {version}: run `.ci/run`, or `python3 -m venv {venv} && \
         {venv}/bin/pip install {package}=={version}`, or set {variable} to a python that has it"
    );
    let output = StdCommand::new(&python)
        .args(["-c", &format!("import importlib.metadata as m, {package}; print(m.version('{package}'))")])
        .output()
        .unwrap_or_else(|error| panic!("{} does not run ({error}); {how}", python.display()));
    assert!(
        output.status.success(),
        "{} cannot import {package}: {}; {how}",
        python.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    python
}

/// A tool's executable: `$variable` when it is set (`.ci/run` sets it), else
/// `fallback`, where `.ci/run` installs it. A test fails, never skips, when it
/// does not run or `--version` does not say `version`: the message says how to
/// install it. (Its tests are the daemon's, which are Linux only.)
#[cfg(target_os = "linux")]
pub(crate) fn tool(variable: &str, fallback: PathBuf, version: &str, install: &str) -> PathBuf {
    let program = std::env::var_os(variable).map_or(fallback, PathBuf::from);
    let how = format!("the test needs `{version}`: run `.ci/run`, or {install}, or set {variable} to it");
    let output = StdCommand::new(&program)
        .arg("--version")
        .output()
        .unwrap_or_else(|error| panic!("{} does not run ({error}); {how}", program.display()));
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && said.contains(version), "{} --version says {said:?}; {how}", program.display());
    program
}

/// The summary line of a pytest run (`-q`) that passed with nothing
/// skipped, printed for the test's output; fails the test with pytest's
/// output otherwise.
pub(crate) fn pytest_passed(output: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "pytest failed:\n{stdout}\n{stderr}");
    let summary = stdout.lines().last().unwrap_or_default().to_owned();
    println!("pytest: {summary}");
    assert!(summary.contains(" passed") && !summary.contains("skipped"), "{stdout}");
    summary
}

/// The interpreter of the CI venv (`.ci/run`) with what the agent's Python
/// client and its tests need: httpx, websockets, pytest, pytest-asyncio and
/// the real `ollama` client. The client itself is run from
/// `clients/python/src` (see [`agent_client_src`]), so the tests always
/// drive this checkout's client, whatever the venv holds.
pub(crate) fn agent_python() -> &'static Path {
    static PYTHON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PYTHON.get_or_init(|| {
        let python = venv_python("AGENTMESH_TEST_PYTHON", ".venv-ci", "ollama", "0.6.3");
        let modules = "httpx, websockets, pytest, pytest_asyncio";
        let output = StdCommand::new(&python).args(["-c", &format!("import {modules}")]).output().expect("python runs");
        assert!(
            output.status.success(),
            "{} cannot import {modules}: {}; run `.ci/run`, which installs them",
            python.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        python
    })
}

/// The source of the agent's Python client, put on `PYTHONPATH`.
pub(crate) fn agent_client_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/python/src")
}

/// A bare Git remote (`remote.git`, branch `main`) and a work clone to push to it
/// from, in a temporary folder; for the daemon's tests, which are Linux only.
#[cfg(target_os = "linux")]
pub(crate) struct GitRemote {
    _dir: TempDir,
    pub work: PathBuf,
    pub remote: PathBuf,
}

#[cfg(target_os = "linux")]
impl GitRemote {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        git(dir.path(), &["init", "--quiet", "--bare", "-b", "main", "remote.git"]);
        git(dir.path(), &["init", "--quiet", "-b", "main", "work"]);
        let (work, remote) = (dir.path().join("work"), dir.path().join("remote.git"));
        git(&work, &["config", "user.name", "Test User"]);
        git(&work, &["config", "user.email", "test@example.invalid"]);
        git(&work, &["remote", "add", "origin", &remote.display().to_string()]);
        GitRemote { _dir: dir, work, remote }
    }

    /// Writes `path` (relative to the work clone), commits everything and pushes;
    /// returns the new commit id.
    pub(crate) fn push(&self, path: &str, text: &str) -> String {
        let file = self.work.join(path);
        std::fs::create_dir_all(file.parent().expect("a parent")).expect("create folders");
        std::fs::write(file, text).expect("write file");
        git(&self.work, &["add", "--all"]);
        git(&self.work, &["commit", "--quiet", "-m", "change manifests"]);
        git(&self.work, &["push", "--quiet", "origin", "main"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }
}
