//! Git mode: the `git` program, the remote the daemon follows, and the local
//! folder against the followed commit.

use std::time::Duration;

use super::check::{Check, TIMEOUT};
use crate::config::GitSettings;
use crate::git::Git;
use crate::identity::NodeEnv;
use crate::manifest::{SourceFile, loader};
use crate::source;
use crate::source::compare::{self, Differences};
use crate::source_status::{SourceStatus, without_credentials};

/// The manifests of the commit the daemon's clone fetched last.
pub(super) struct Followed {
    /// `git REMOTE@BRANCH`.
    source: String,
    commit: String,
    pub(super) files: Vec<SourceFile>,
}

impl Followed {
    /// `git REMOTE@BRANCH at 1a2b3c4d5e6f`.
    pub(super) fn shown(&self) -> String {
        format!("{} at {}", self.source, self.commit.get(..12).unwrap_or(&self.commit))
    }
}

/// Reads what the daemon follows from its clone in the state folder.
pub(super) async fn read_followed(env: &NodeEnv, git: &GitSettings) -> Result<Followed, String> {
    let state_dir = crate::config::state_dir(env).ok_or("there is no state folder (no MESH_STATE_DIR, no HOME)")?;
    let (clone_dir, settings) = (state_dir.join("git"), git.clone());
    let read = tokio::task::spawn_blocking(move || source::git::read_fetched(&clone_dir, &settings)).await;
    let (commit, files) = read.map_err(|error| error.to_string())??;
    Ok(Followed { source: SourceStatus::git(git).followed(), commit, files })
}

/// The remote and branch (`git ls-remote`), and whether the local folder
/// differs from what the daemon follows.
pub(super) async fn git_mode_checks(
    env: &NodeEnv,
    git: &GitSettings,
    followed: &Result<Followed, String>,
) -> Vec<Check> {
    let source = SourceStatus::git(git);
    let mut checks = vec![git_remote_check(&source, &ls_remote(git).await)];
    let dir = env.manifests_dir();
    let local = loader::load_dir(&dir).map_err(|error| error.to_string());
    let compared = match (followed, local) {
        (Ok(followed), Ok((files, _))) => {
            Ok((followed.shown(), compare::differences(&dir.display().to_string(), &files, &git.path, &followed.files)))
        }
        (Err(why), _) => Err(why.clone()),
        (_, Err(why)) => Err(why),
    };
    checks.push(local_folder_check(&dir.display().to_string(), &source, &compared));
    checks
}

/// The branch's commit on the remote (None: no such branch), or why the
/// remote could not be asked.
async fn ls_remote(git: &GitSettings) -> Result<Option<String>, String> {
    let (remote, head) = (git.remote.clone(), format!("refs/heads/{}", git.branch));
    let ask = move || -> Result<Option<String>, String> {
        // Git's message names the command, URL included: never its password.
        let failed = |error: crate::git::GitError| error.to_string().replace(&remote, &without_credentials(&remote));
        let git = Git::new(".", GIT_REMOTE_TIMEOUT).for_remote().map_err(failed)?;
        let listed = git.run(&["ls-remote", &remote, &head]).map_err(failed)?;
        Ok(source::git::listed_commit(&listed, &head).map(str::to_owned))
    };
    tokio::task::spawn_blocking(ask).await.map_err(|error| error.to_string())?
}

/// Asking a remote over ssh or HTTPS takes longer than a local check.
const GIT_REMOTE_TIMEOUT: Duration = Duration::from_secs(10);

/// The remote answers and has the branch.
fn git_remote_check(source: &SourceStatus, found: &Result<Option<String>, String>) -> Check {
    const NAME: &str = "git-remote";
    let remote = source.remote.as_deref().unwrap_or_default();
    let branch = source.branch.as_deref().unwrap_or_default();
    match found {
        Ok(Some(commit)) => {
            Check::pass(NAME, format!("{} answers, at {}", source.followed(), commit.get(..12).unwrap_or(commit)))
        }
        Ok(None) => Check::fail(
            NAME,
            format!("{remote} has no branch {branch}"),
            format!("push it (`git push {remote} HEAD:{branch}`), or set MESH_GIT_BRANCH to a branch it has"),
        ),
        Err(why) => Check::fail(
            NAME,
            format!("cannot reach {remote}: {why}"),
            format!(
                "check MESH_GIT_REMOTE, the network and your Git credentials (`git ls-remote {remote}` must work without a prompt)"
            ),
        ),
    }
}

/// Whether the local folder is what the daemon follows: a difference is
/// work not pushed yet (or stale files), which `apply` would not deploy.
fn local_folder_check(dir: &str, source: &SourceStatus, compared: &Result<(String, Differences), String>) -> Check {
    const NAME: &str = "local-folder";
    match compared {
        Ok((followed, differences)) if differences.is_empty() => {
            Check::pass(NAME, format!("{dir} is what the daemon follows ({followed})"))
        }
        Ok((followed, differences)) => Check::warn(
            NAME,
            format!("{dir} differs from what the daemon follows ({followed}): it {differences}"),
            "commit and `git push` the changes to apply them (`meshctl diff` shows what they change), or discard them",
        ),
        Err(why) => Check::warn(
            NAME,
            format!("cannot compare {dir} with what the daemon follows: {why}; the checks below read {dir}"),
            format!("start the daemon (meshctl daemon) so it fetches {}", source.followed()),
        ),
    }
}

/// The oldest `git` the Git source is tested with (Debian 11's).
const GIT_MIN: (u32, u32) = (2, 30);

/// What `git --version` prints, or why it could not run.
pub(super) async fn git_version() -> Result<String, String> {
    let version = || Git::new(".", TIMEOUT).run(&["--version"]).map(|out| out.trim().to_owned());
    match tokio::task::spawn_blocking(version).await {
        Ok(found) => found.map_err(|error| error.to_string()),
        Err(error) => Err(error.to_string()),
    }
}

/// The Git source (`MESH_GIT_REMOTE`) runs the system's `git`.
pub(super) fn git_check(found: &Result<String, String>) -> Check {
    const NAME: &str = "git";
    let install = "install Git (Debian: `apt-get install git`; macOS: `xcode-select --install` or `brew install git`)";
    match found {
        Err(why) => Check::fail(NAME, format!("{why}; MESH_GIT_REMOTE is set and the Git source runs git"), install),
        Ok(version) => match git_version_number(version) {
            Some(number) if number >= GIT_MIN => Check::pass(NAME, format!("{version}, for MESH_GIT_REMOTE")),
            Some(_) => Check::warn(
                NAME,
                format!(
                    "{version} is older than {}.{}, the oldest the Git source is tested with",
                    GIT_MIN.0, GIT_MIN.1
                ),
                install,
            ),
            None => Check::warn(
                NAME,
                format!("`git --version` printed \"{version}\", not a Git version"),
                "check which `git` is first on PATH",
            ),
        },
    }
}

/// `(major, minor)` of `git version 2.39.3 (Apple Git-145)`.
fn git_version_number(version: &str) -> Option<(u32, u32)> {
    let number = version.strip_prefix("git version ")?.split_whitespace().next()?;
    let mut parts = number.split('.').map(str::parse::<u32>);
    Some((parts.next()?.ok()?, parts.next()?.ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::doctor::check::Status;

    #[test]
    fn git_passes_from_2_30_warns_older_and_fails_when_missing() {
        let table = [
            (Ok("git version 2.47.3"), Status::Pass, "git version 2.47.3, for MESH_GIT_REMOTE"),
            (Ok("git version 2.39.3 (Apple Git-145)"), Status::Pass, "Apple Git-145"),
            (Ok("git version 2.30.0.windows.1"), Status::Pass, "2.30.0"),
            (Ok("git version 2.29.2"), Status::Warn, "older than 2.30"),
            (Ok("git version 1.9.1"), Status::Warn, "older than 2.30"),
            (Ok("hub version 2.14"), Status::Warn, "not a Git version"),
            (Err("`git --version` failed: git is not installed or not on PATH"), Status::Fail, "not installed"),
        ];
        for (found, status, words) in table {
            let check = git_check(&found.map(str::to_owned).map_err(str::to_owned));
            assert_eq!(check.status, status, "{found:?}");
            assert!(check.message.contains(words), "{found:?}: {}", check.message);
            assert_eq!(check.fix.is_some(), status != Status::Pass, "{found:?}");
        }
    }

    fn git_source() -> SourceStatus {
        SourceStatus::git(&GitSettings {
            remote: "https://me:pw@example.com/mesh.git".into(),
            branch: "main".into(),
            path: "manifests".into(),
            interval: Duration::from_secs(30),
            timeout: crate::config::DEFAULT_GIT_TIMEOUT,
        })
    }

    #[test]
    fn the_remote_must_answer_and_have_the_branch() {
        let cases = [
            (
                Ok(Some("a".repeat(40))),
                Status::Pass,
                "git https://me:***@example.com/mesh.git@main answers, at aaaaaaaaaaaa",
            ),
            (Ok(None), Status::Fail, "https://me:***@example.com/mesh.git has no branch main"),
            (Err("`git ls-remote` failed: Could not resolve host".to_owned()), Status::Fail, "cannot reach"),
        ];
        for (found, status, message) in cases {
            let check = git_remote_check(&git_source(), &found);
            assert_eq!(check.status, status, "{check:?}");
            assert!(check.message.contains(message), "{check:?}");
            assert_eq!(check.name, "git-remote");
            assert!(!format!("{check:?}").contains(":pw@"), "no password shown: {check:?}");
        }
    }

    #[test]
    fn a_local_folder_that_differs_from_the_followed_commit_is_a_warning() {
        let differs = Differences { changed: vec!["llm.yaml".into()], ..Differences::default() };
        let cases = [
            (
                Ok(("git x@main at 1".to_owned(), Differences::default())),
                Status::Pass,
                "is what the daemon follows (git x@main at 1)",
            ),
            (
                Ok(("git x@main at 1".to_owned(), differs)),
                Status::Warn,
                "differs from what the daemon follows (git x@main at 1): it changes llm.yaml",
            ),
            (Err("the daemon has not fetched branch main yet".to_owned()), Status::Warn, "cannot compare"),
        ];
        for (compared, status, message) in cases {
            let check = local_folder_check("/m", &git_source(), &compared);
            assert_eq!(check.status, status, "{check:?}");
            assert!(check.message.contains(message), "{check:?}");
        }
    }
}
