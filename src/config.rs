//! The daemon's typed settings, read from the node's environment (design section
//! 2). Every problem is reported at once, naming the variable.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::identity::{NODE_ID, NodeEnv};
use crate::manifest::{DurationSpec, SecretRef};

/// The API's port when `MESH_LISTEN` is unset.
pub const DEFAULT_PORT: u16 = 8000;

#[derive(Clone, Debug)]
pub struct DaemonConfig {
    pub node_id: String,
    /// `MESH_LISTEN`; when unset, the daemon picks [`default_listen`] as it starts.
    pub listen: Option<SocketAddr>,
    pub manifests: PathBuf,
    pub git: Option<GitSettings>,
    pub state_dir: PathBuf,
}

/// `MESH_GIT_*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitSettings {
    pub remote: String,
    pub branch: String,
    /// The manifests folder inside the repository.
    pub path: String,
    pub interval: Duration,
    /// How long one `git` call may run before it is killed (a fetch from a
    /// server that stopped answering).
    pub timeout: Duration,
}

/// [`GitSettings::timeout`] unless a test needs it shorter: long enough for a
/// slow first fetch of a manifests repository, short enough that a hung one
/// does not hold back the next.
pub const DEFAULT_GIT_TIMEOUT: Duration = Duration::from_secs(120);

impl GitSettings {
    /// `MESH_GIT_*`, None without `MESH_GIT_REMOTE` (the node follows its folder).
    pub fn from_env(env: &NodeEnv) -> Result<Option<GitSettings>, String> {
        let value = |name: &str| env.value(name).map(str::to_owned);
        let Some(written) = value("MESH_GIT_REMOTE") else { return Ok(None) };
        let remote = git_remote(env, written);
        let interval_text = value("MESH_GIT_INTERVAL").unwrap_or_else(|| "30s".into());
        let interval =
            DurationSpec::parse(&interval_text).map_err(|error| format!("MESH_GIT_INTERVAL: {error}"))?.duration;
        Ok(Some(GitSettings {
            remote,
            branch: value("MESH_GIT_BRANCH").unwrap_or_else(|| "main".into()),
            path: value("MESH_GIT_PATH").unwrap_or_else(|| "manifests".into()),
            interval,
            timeout: DEFAULT_GIT_TIMEOUT,
        }))
    }
}

impl DaemonConfig {
    pub fn from_env(env: &NodeEnv) -> Result<DaemonConfig, Vec<String>> {
        let mut problems = Vec::new();
        let value = |name: &str| env.value(name).map(str::to_owned);

        let node_id = value(NODE_ID).unwrap_or_else(|| {
            problems.push(format!("{NODE_ID} is not set: it names this node's Node manifest"));
            String::new()
        });
        let listen = env.listen().unwrap_or_else(|problem| {
            problems.push(problem);
            None
        });
        let git = GitSettings::from_env(env).unwrap_or_else(|problem| {
            problems.push(problem);
            None
        });
        let state_dir = state_dir(env).unwrap_or_else(|| {
            problems.push("MESH_STATE_DIR is not set and there is no HOME to put it under".into());
            PathBuf::new()
        });
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(DaemonConfig { node_id, listen, manifests: env.manifests_dir(), git, state_dir })
    }
}

/// `MESH_GIT_REMOTE`: a relative local path (no URL, no `host:path`) set in
/// the env file is taken from the env file's folder, as every path there is.
fn git_remote(env: &NodeEnv, written: String) -> String {
    if written.contains(':') || Path::new(&written).is_absolute() {
        return written;
    }
    env.path("MESH_GIT_REMOTE").map_or(written, |path| path.display().to_string())
}

/// Where the API listens when `MESH_LISTEN` is unset: this node's tailnet IPv4
/// when Tailscale is up, so peers reach it and nothing else does, else
/// loopback. Never the unspecified address: exposing the API on every
/// interface is something a user asks for.
pub fn default_listen(tailnet_ipv4: Option<Ipv4Addr>) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(tailnet_ipv4.unwrap_or(Ipv4Addr::LOCALHOST)), DEFAULT_PORT)
}

/// The address a local client dials for a listen address.
pub fn client_addr(listen: SocketAddr) -> SocketAddr {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

/// The controller's state folder: `MESH_STATE_DIR` (relative: from the env
/// file's folder), else the platform's
/// (None without a HOME). The daemon and the CLI find it the same way.
pub fn state_dir(env: &NodeEnv) -> Option<PathBuf> {
    env.path("MESH_STATE_DIR").or_else(default_state_dir)
}

/// `~/Library/Application Support/agentmesh` on macOS, `$XDG_STATE_HOME/agentmesh`
/// or `~/.local/state/agentmesh` elsewhere.
fn default_state_dir() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from)?;
    if cfg!(target_os = "macos") {
        return Some(home.join("Library/Application Support/agentmesh"));
    }
    let base = std::env::var_os("XDG_STATE_HOME").map(PathBuf::from).unwrap_or_else(|| home.join(".local/state"));
    Some(base.join("agentmesh"))
}

/// Why a secret reference gives no value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret variable {name} is not set")]
    NotSet { name: String },
    #[error("cannot read secret file {}: {source}", path.display())]
    Unreadable { path: PathBuf, source: std::io::Error },
}

/// Reads a secret from where its reference points: a variable of the node's
/// environment (`.env` included) or a file (`~/` is the home folder; a
/// relative path is taken from the env file's folder).
pub fn resolve_secret(env: &NodeEnv, secret: &SecretRef) -> Result<String, SecretError> {
    match secret {
        SecretRef::Env(name) => {
            env.get(name).map(|setting| setting.value.clone()).ok_or_else(|| SecretError::NotSet { name: name.clone() })
        }
        SecretRef::File(path) => {
            let path = env.resolve(&expand_home(path));
            match std::fs::read_to_string(&path) {
                Ok(text) => Ok(text.trim_end_matches(['\n', '\r']).to_owned()),
                Err(source) => Err(SecretError::Unreadable { path, source }),
            }
        }
    }
}

/// `~` and `~/x` under the home folder; anything else as written.
pub fn expand_home(path: &str) -> PathBuf {
    expand_home_in(Path::new(path), std::env::var_os("HOME").map(PathBuf::from))
}

/// `~` and `~/x` under `home`; anything else as written.
pub(crate) fn expand_home_in(path: &Path, home: Option<PathBuf>) -> PathBuf {
    match (path.strip_prefix("~"), home) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn working_dir_expands_a_leading_tilde_only() {
        let home = Some(PathBuf::from("/home/agent"));
        assert_eq!(expand_home_in(Path::new("~/models"), home.clone()), Path::new("/home/agent/models"));
        assert_eq!(expand_home_in(Path::new("~"), home.clone()), Path::new("/home/agent"));
        assert_eq!(expand_home_in(Path::new("/srv/~/x"), home.clone()), Path::new("/srv/~/x"));
        assert_eq!(expand_home_in(Path::new("~other/x"), home), Path::new("~other/x"));
        assert_eq!(expand_home_in(Path::new("~/models"), None), Path::new("~/models"));
    }

    fn env(vars: &[(&str, &str)]) -> NodeEnv {
        NodeEnv::from_parts(None, vars.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap()
    }

    #[test]
    fn every_missing_or_bad_setting_is_reported_at_once() {
        let problems = DaemonConfig::from_env(&env(&[("MESH_LISTEN", "everywhere")])).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("AGENT_NODE_ID is not set"));
        assert!(problems[1].starts_with("MESH_LISTEN \"everywhere\""));
    }

    #[test]
    fn git_settings_take_their_defaults() {
        let config = DaemonConfig::from_env(&env(&[
            ("AGENT_NODE_ID", "a"),
            ("MESH_GIT_REMOTE", "file:///srv/mesh.git"),
            ("MESH_STATE_DIR", "/tmp/state"),
        ]))
        .unwrap();
        let git = config.git.unwrap();
        assert_eq!(
            (git.branch.as_str(), git.path.as_str(), git.interval),
            ("main", "manifests", Duration::from_secs(30))
        );
        assert_eq!(config.listen, None, "decided when the daemon starts");
    }

    #[test]
    fn without_mesh_listen_the_api_binds_to_the_tailnet_ip_when_tailscale_is_up_else_loopback() {
        assert_eq!(default_listen(Some(Ipv4Addr::new(100, 101, 1, 2))).to_string(), "100.101.1.2:8000");
        assert_eq!(default_listen(None).to_string(), "127.0.0.1:8000");
    }

    #[test]
    fn an_unspecified_listen_address_is_dialled_on_loopback() {
        assert_eq!(client_addr("0.0.0.0:8000".parse().unwrap()).to_string(), "127.0.0.1:8000");
        assert_eq!(client_addr("[::]:9".parse().unwrap()).to_string(), "[::1]:9");
        assert_eq!(client_addr("100.64.0.5:8000".parse().unwrap()).to_string(), "100.64.0.5:8000");
    }

    #[test]
    fn secrets_come_from_the_node_environment() {
        let env = env(&[("TOKEN", "s3cret")]);
        assert_eq!(resolve_secret(&env, &SecretRef::Env("TOKEN".into())).ok(), Some("s3cret".into()));
        let missing = resolve_secret(&env, &SecretRef::Env("NOPE".into())).unwrap_err();
        assert!(matches!(&missing, SecretError::NotSet { name } if name == "NOPE"), "{missing:?}");
        assert_eq!(missing.to_string(), "secret variable NOPE is not set");
        let unreadable = resolve_secret(&env, &SecretRef::File("/nonexistent/agentmesh-secret".into())).unwrap_err();
        assert!(
            unreadable.to_string().starts_with("cannot read secret file /nonexistent/agentmesh-secret: "),
            "{unreadable}"
        );
    }

    #[test]
    fn relative_paths_in_the_env_file_are_taken_from_its_folder() {
        let text = "AGENT_NODE_ID=a\nMESH_STATE_DIR=state\nMESH_MANIFESTS=../shared/m\nMESH_GIT_REMOTE=../mesh.git\n";
        let file = NodeEnv::from_parts(Some(("/node/.env".into(), text.into())), std::iter::empty()).unwrap();
        let config = DaemonConfig::from_env(&file).unwrap();
        assert_eq!(config.state_dir, Path::new("/node/state"));
        assert_eq!(config.manifests, Path::new("/node/../shared/m"));
        assert_eq!(config.git.unwrap().remote, "/node/../mesh.git");

        let remotes = [
            ("/srv/mesh.git", "/srv/mesh.git"),
            ("git@github.com:me/mesh.git", "git@github.com:me/mesh.git"),
            ("https://example.com/mesh.git", "https://example.com/mesh.git"),
            ("mesh.git", "/node/mesh.git"),
        ];
        for (written, expected) in remotes {
            let text = format!("AGENT_NODE_ID=a\nMESH_STATE_DIR=/s\nMESH_GIT_REMOTE={written}\n");
            let env = NodeEnv::from_parts(Some(("/node/.env".into(), text)), std::iter::empty()).unwrap();
            assert_eq!(DaemonConfig::from_env(&env).unwrap().git.unwrap().remote, expected, "{written}");
        }

        let process = env(&[("AGENT_NODE_ID", "a"), ("MESH_STATE_DIR", "state"), ("MESH_GIT_REMOTE", "mesh.git")]);
        let config = DaemonConfig::from_env(&process).unwrap();
        assert_eq!(config.state_dir, Path::new("state"), "the process environment's paths stay as written");
        assert_eq!(config.git.unwrap().remote, "mesh.git");

        let secret_dir = tempfile::tempdir().unwrap();
        std::fs::write(secret_dir.path().join("key"), "k3y\n").unwrap();
        let env_file = secret_dir.path().join(".env");
        let env = NodeEnv::from_parts(Some((env_file, String::new())), std::iter::empty()).unwrap();
        assert_eq!(resolve_secret(&env, &SecretRef::File("key".into())).ok(), Some("k3y".into()));
    }
}
