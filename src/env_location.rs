//! Where the node's `.env` is, so that `meshctl` works from any folder:
//! `--env-file`, else the current folder or its nearest parent holding one,
//! else the node folder the user's context file names (which `init` and
//! `install-service` write).

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};

/// The name of a node's settings file in its folder.
pub(crate) const ENV_FILE: &str = ".env";

/// The env file in use and how it was found, kept for messages that must
/// say which settings they were made with.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Located {
    pub env_file: Option<PathBuf>,
    pub how: How,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum How {
    /// Given with `--env-file`.
    Flag,
    /// In the current folder or the nearest parent holding one.
    Nearby,
    /// In the node folder the context file names.
    Context { context_file: PathBuf },
    /// Nowhere: the search started in `start` and went up; then the context file.
    Nowhere { start: PathBuf, context: ContextFile },
}

/// The context file as the search found it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ContextFile {
    /// No HOME to put it under.
    NoPlace,
    Absent(PathBuf),
    Unreadable {
        path: PathBuf,
        reason: String,
    },
    /// It names a node folder.
    Names {
        path: PathBuf,
        folder: PathBuf,
    },
}

/// Finds the env file: `flag` when given, else the search. Reads the
/// current folder, HOME, XDG_CONFIG_HOME and the context file.
pub(crate) fn locate(flag: Option<&Path>) -> Located {
    if let Some(path) = flag {
        return Located { env_file: Some(path.to_path_buf()), how: How::Flag };
    }
    let start = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let context = read_context_file(context_file_path());
    search(&start, &context, |folder| folder.join(ENV_FILE).is_file())
}

/// The search, pure over which folders hold a `.env`: `start` and each of
/// its parents, nearest first (the path is then relative to `start`), then
/// the folder the context file names.
pub(crate) fn search(start: &Path, context: &ContextFile, has_env: impl Fn(&Path) -> bool) -> Located {
    if let Some(up) = start.ancestors().position(&has_env) {
        // Relative to where the user is, as they would write it: `.env`, `../.env`.
        let env_file = std::iter::repeat_n("..", up).collect::<PathBuf>().join(ENV_FILE);
        return Located { env_file: Some(env_file), how: How::Nearby };
    }
    if let ContextFile::Names { path, folder } = context
        && has_env(folder)
    {
        return Located { env_file: Some(folder.join(ENV_FILE)), how: How::Context { context_file: path.clone() } };
    }
    Located { env_file: None, how: How::Nowhere { start: start.to_path_buf(), context: context.clone() } }
}

/// Where the context file lives for this user: see [`context_file_in`].
pub(crate) fn context_file_path() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    context_file_in(cfg!(target_os = "macos"), home.as_deref(), std::env::var_os("XDG_CONFIG_HOME").as_deref())
}

/// `~/Library/Application Support/agentmesh/context` on macOS;
/// `$XDG_CONFIG_HOME/agentmesh/context` elsewhere, or `~/.config/…` when that
/// is unset, empty or relative (which the XDG rules say to ignore).
pub(crate) fn context_file_in(macos: bool, home: Option<&Path>, xdg_config_home: Option<&OsStr>) -> Option<PathBuf> {
    let base = if macos {
        home?.join("Library/Application Support")
    } else {
        match xdg_config_home.map(Path::new).filter(|path| path.is_absolute()) {
            Some(config) => config.to_path_buf(),
            None => home?.join(".config"),
        }
    };
    Some(base.join("agentmesh").join("context"))
}

fn read_context_file(path: Option<PathBuf>) -> ContextFile {
    let Some(path) = path else { return ContextFile::NoPlace };
    match std::fs::read_to_string(&path) {
        Ok(text) => match text.lines().map(str::trim).find(|line| !line.is_empty()) {
            Some(folder) => ContextFile::Names { folder: PathBuf::from(folder), path },
            None => ContextFile::Unreadable { path, reason: "it is empty".into() },
        },
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => ContextFile::Absent(path),
        Err(error) => ContextFile::Unreadable { path, reason: error.to_string() },
    }
}

/// Makes the folder of `env_file` the node `meshctl` uses outside any node
/// folder. Returns the context file when it was written, None when it
/// already named that folder.
pub(crate) fn write_context(env_file: &Path) -> anyhow::Result<Option<PathBuf>> {
    use anyhow::Context as _;
    let env_file = std::path::absolute(env_file)?;
    if env_file.file_name() != Some(OsStr::new(ENV_FILE)) {
        anyhow::bail!("{} is not named {ENV_FILE}, so no context file names its folder", env_file.display());
    }
    let folder = env_file.parent().unwrap_or(Path::new("/"));
    let path = context_file_path().context("there is no HOME to put the context file under")?;
    let text = format!("{}\n", folder.display());
    if std::fs::read_to_string(&path).is_ok_and(|old| old == text) {
        return Ok(None);
    }
    let parent = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    crate::atomic_file::write_atomic(&path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(Some(path))
}

/// Said after an error about reaching the daemon: which settings gave its
/// address and key.
impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |path: &Option<PathBuf>| path.as_deref().map_or_else(String::new, |p| p.display().to_string());
        match &self.how {
            How::Flag => write!(f, "settings from {}, given with --env-file", shown(&self.env_file)),
            How::Nearby => {
                write!(f, "settings from {}, the nearest .env from the current folder up", shown(&self.env_file))
            }
            How::Context { context_file } => write!(
                f,
                "settings from {}, in the node folder named in {}",
                shown(&self.env_file),
                context_file.display()
            ),
            How::Nowhere { start, context } => {
                write!(f, "no .env found: none in {} or any folder above it", start.display())?;
                match context {
                    ContextFile::NoPlace => write!(f, ", and no HOME for a context file"),
                    ContextFile::Absent(path) => write!(f, ", and no context file at {}", path.display()),
                    ContextFile::Unreadable { path, reason } => {
                        write!(f, ", and the context file {} cannot be used: {reason}", path.display())
                    }
                    ContextFile::Names { path, folder } => {
                        write!(f, ", and {} names {}, which holds none", path.display(), folder.display())
                    }
                }?;
                write!(f, "; run `meshctl init` in the node folder, or give --env-file")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_folder_with_an_env_wins_then_the_context_file() {
        let context = ContextFile::Names { path: "/h/.config/agentmesh/context".into(), folder: "/srv/node".into() };
        let cases: &[(&str, &ContextFile, &[&str], Option<&str>)] = &[
            ("/n/a/b", &context, &["/n/a/b", "/n", "/srv/node"], Some(".env")),
            ("/n/a/b", &context, &["/n", "/srv/node"], Some("../../.env")),
            ("/n/a/b", &context, &["/n/a", "/n"], Some("../.env")),
            ("/n/a/b", &context, &["/srv/node"], Some("/srv/node/.env")),
            ("/n/a/b", &context, &["/"], Some("../../../.env")),
            ("/n/a/b", &context, &[], None),
            ("/n/a/b", &ContextFile::Absent("/h/.config/agentmesh/context".into()), &["/srv/node"], None),
            ("/n/a/b", &ContextFile::NoPlace, &["/n/a"], Some("../.env")),
        ];
        for (start, context, with_env, expected) in cases {
            let found = search(Path::new(start), context, |folder| with_env.iter().any(|f| Path::new(f) == folder));
            assert_eq!(found.env_file.as_deref(), expected.map(Path::new), "{start} with {with_env:?}");
        }
    }

    #[test]
    fn what_is_said_names_the_file_and_how_it_was_found() {
        let context = ContextFile::Names { path: "/h/ctx".into(), folder: "/srv/node".into() };
        let through_context = search(Path::new("/tmp/x"), &context, |folder| folder == Path::new("/srv/node"));
        assert_eq!(through_context.to_string(), "settings from /srv/node/.env, in the node folder named in /h/ctx");
        let nearby = search(Path::new("/n/a"), &context, |folder| folder == Path::new("/n"));
        assert_eq!(nearby.to_string(), "settings from ../.env, the nearest .env from the current folder up");
        let nowhere = search(Path::new("/tmp/x"), &context, |_| false).to_string();
        assert!(
            nowhere.starts_with(
                "no .env found: none in /tmp/x or any folder above it, and /h/ctx names /srv/node, which holds none"
            ),
            "{nowhere}"
        );
        let absent = search(Path::new("/tmp/x"), &ContextFile::Absent("/h/ctx".into()), |_| false).to_string();
        assert!(absent.contains(", and no context file at /h/ctx"), "{absent}");
    }

    #[test]
    fn the_context_file_is_in_the_platforms_config_folder() {
        let home = Some(Path::new("/home/al"));
        // (macOS, HOME, XDG_CONFIG_HOME, the context file)
        type Case<'a> = (bool, Option<&'a Path>, Option<&'a str>, Option<&'a str>);
        let cases: &[Case<'_>] = &[
            (false, home, None, Some("/home/al/.config/agentmesh/context")),
            (false, home, Some("/xdg"), Some("/xdg/agentmesh/context")),
            (false, home, Some(""), Some("/home/al/.config/agentmesh/context")),
            (false, home, Some("relative"), Some("/home/al/.config/agentmesh/context")),
            (false, None, Some("/xdg"), Some("/xdg/agentmesh/context")),
            (false, None, None, None),
            (true, home, Some("/xdg"), Some("/home/al/Library/Application Support/agentmesh/context")),
            (true, None, None, None),
        ];
        for (macos, home, xdg, expected) in cases {
            let path = context_file_in(*macos, *home, xdg.map(OsStr::new));
            assert_eq!(path.as_deref(), expected.map(Path::new), "macos {macos}, home {home:?}, xdg {xdg:?}");
        }
    }
}
