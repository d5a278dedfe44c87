//! The node's identity and settings (design section 2): a `.env` file, then the
//! process environment, which wins; relative paths in the file are taken from
//! its folder. Every value remembers where it came from, so
//! a problem with it can point at its line.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::env_location;
use crate::manifest::kinds::Role;
use crate::manifest::{ManifestSet, Pos};

/// The variables this program reads.
pub const NODE_ID: &str = "AGENT_NODE_ID";
pub const ROLE: &str = "AGENT_ROLE";
pub const MANIFESTS: &str = "MESH_MANIFESTS";
pub const LISTEN: &str = "MESH_LISTEN";

/// The manifests folder when `MESH_MANIFESTS` is unset.
pub const DEFAULT_MANIFESTS: &str = "manifests";

/// One setting and where it was found.
#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    pub value: String,
    pub source: Source,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// A line of an env file.
    EnvFile { file: Arc<str>, at: Pos, line_text: String },
    /// The process environment.
    Process,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("cannot read env file {path}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
}

/// The settings of this node.
#[derive(Clone, Debug, Default)]
pub struct NodeEnv {
    settings: BTreeMap<String, Setting>,
    /// The env file that was read, if any.
    env_file: Option<PathBuf>,
}

impl NodeEnv {
    /// Reads `env_file` (which must exist) or, without one, the `.env` that
    /// [`env_location::locate`] finds; then overlays the process environment.
    pub fn load(env_file: Option<&Path>) -> Result<NodeEnv, EnvError> {
        let file = match env_location::locate(env_file).env_file {
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|source| EnvError::Read { path: path.display().to_string(), source })?;
                Some((path, text))
            }
            None => None,
        };
        NodeEnv::from_parts(file, std::env::vars())
    }

    /// Builds the settings from an env file's text and the process environment.
    pub fn from_parts(
        file: Option<(PathBuf, String)>,
        process: impl IntoIterator<Item = (String, String)>,
    ) -> Result<NodeEnv, EnvError> {
        let mut settings = BTreeMap::new();
        let env_file = match file {
            Some((path, text)) => {
                let shown: Arc<str> = path.display().to_string().into();
                for item in dotenvy::from_read_iter(text.as_bytes()) {
                    let (name, value) =
                        item.map_err(|error| EnvError::Parse { path: shown.to_string(), message: error.to_string() })?;
                    let source = locate(&shown, &text, &name);
                    settings.insert(name, Setting { value, source });
                }
                Some(path)
            }
            None => None,
        };
        for (name, value) in process {
            settings.insert(name, Setting { value, source: Source::Process });
        }
        Ok(NodeEnv { settings, env_file })
    }

    /// The env file that was read, if any.
    pub fn env_file(&self) -> Option<&Path> {
        self.env_file.as_deref()
    }

    pub fn get(&self, name: &str) -> Option<&Setting> {
        self.settings.get(name)
    }

    /// A setting's value without the blanks around it; None when unset or
    /// blank, which mean the same.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).map(|setting| setting.value.trim()).filter(|value| !value.is_empty())
    }

    /// `MESH_LISTEN`, when set: where the daemon listens.
    pub fn listen(&self) -> Result<Option<SocketAddr>, String> {
        let Some(text) = self.value(LISTEN) else { return Ok(None) };
        let addr =
            text.parse().map_err(|_| format!("{LISTEN} \"{text}\" is not an address:port such as 127.0.0.1:8000"))?;
        Ok(Some(addr))
    }

    /// The manifests folder: `MESH_MANIFESTS` (see [`NodeEnv::path`]), else
    /// `./manifests` (`init` always writes `MESH_MANIFESTS`).
    pub fn manifests_dir(&self) -> PathBuf {
        self.path(MANIFESTS).unwrap_or_else(|| PathBuf::from(DEFAULT_MANIFESTS))
    }

    /// A setting that names a path, None when unset or blank. A relative path
    /// set in the env file is taken from the env file's folder, so that the
    /// file means the same from any folder; one from the process environment
    /// from the current folder, as a shell would.
    pub fn path(&self, name: &str) -> Option<PathBuf> {
        let setting = self.get(name)?;
        let value = Path::new(setting.value.trim());
        if value.as_os_str().is_empty() {
            return None;
        }
        Some(match setting.source {
            Source::EnvFile { .. } => self.resolve(value),
            Source::Process => value.to_path_buf(),
        })
    }

    /// `path` taken from the env file's folder when it is relative (as
    /// written without an env file).
    pub fn resolve(&self, path: &Path) -> PathBuf {
        match self.env_file.as_deref().and_then(Path::parent) {
            Some(folder) if path.is_relative() => folder.join(path),
            _ => path.to_path_buf(),
        }
    }

    /// Whether this node's identity is configured at all (an env file was read, or
    /// `AGENT_NODE_ID` is set), so that it should be checked against the manifests.
    pub fn is_configured(&self) -> bool {
        self.env_file.is_some() || self.get(NODE_ID).is_some()
    }

    /// Checks the identity against the manifests: `AGENT_NODE_ID` must name a
    /// Node, and an `AGENT_ROLE` that disagrees with it is reported (the Node
    /// wins).
    pub fn check_identity(&self, set: &ManifestSet) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        let Some(node_id) = self.get(NODE_ID) else {
            let file: Arc<str> =
                self.env_file.as_deref().map_or_else(|| "(environment)".into(), |p| p.display().to_string().into());
            out.push(Diagnostic::error(
                &file,
                Pos::default(),
                NODE_ID,
                "AGENT_NODE_ID is not set: it names this node's Node manifest",
            ));
            return out;
        };
        let node = set.nodes.get(&node_id.value);
        if node.is_none() {
            let help = did_you_mean(&node_id.value, set.nodes.keys().map(String::as_str));
            out.push(setting_diagnostic(
                node_id,
                NODE_ID,
                format!("names no Node in the manifests: \"{}\"", node_id.value),
                false,
                help,
            ));
        }
        if let Some(role) = self.get(ROLE) {
            match (Role::parse(&role.value), node) {
                (None, _) => out.push(setting_diagnostic(
                    role,
                    ROLE,
                    format!("\"{}\" is not a role: use primary or satellite", role.value),
                    false,
                    did_you_mean(&role.value, ["primary", "satellite"]),
                )),
                (Some(parsed), Some(node)) if parsed != node.spec.role => out.push(setting_diagnostic(
                    role,
                    ROLE,
                    format!(
                        "is \"{}\" but Node/{} says role {}; the Node manifest wins",
                        role.value,
                        node.name(),
                        node.spec.role.as_str()
                    ),
                    true,
                    None,
                )),
                _ => {}
            }
        }
        out
    }
}

fn setting_diagnostic(
    setting: &Setting,
    name: &str,
    message: String,
    warning: bool,
    help: Option<String>,
) -> Diagnostic {
    let (file, at, line_text) = match &setting.source {
        Source::EnvFile { file, at, line_text } => (file.clone(), *at, Some(line_text.clone())),
        Source::Process => (Arc::from("(environment)"), Pos::default(), None),
    };
    let mut diagnostic = if warning {
        Diagnostic::warning(&file, at, name, message)
    } else {
        Diagnostic::error(&file, at, name, message)
    }
    .with_help(help);
    diagnostic.source_line = line_text;
    diagnostic
}

/// Where `name` is assigned in an env file: the last line that sets it (the one
/// that counts), pointing at its value.
fn locate(file: &Arc<str>, text: &str, name: &str) -> Source {
    let assignment = text.lines().collect::<Vec<_>>().into_iter().enumerate().rev().find_map(|(index, line)| {
        let trimmed = line.trim_start();
        let rest = trimmed.strip_prefix("export ").map_or(trimmed, str::trim_start);
        let after = rest.strip_prefix(name)?.trim_start().strip_prefix('=')?;
        let value_start = line.len() - after.trim_start().len();
        Some((index, value_start, after.trim().len(), line))
    });
    let (index, value_start, value_len, line) = assignment.unwrap_or((0, 0, 1, ""));
    let at = Pos {
        line: u32::try_from(index + 1).unwrap_or(u32::MAX),
        column: u32::try_from(value_start + 1).unwrap_or(u32::MAX),
        len: u32::try_from(value_len).unwrap_or(1),
    };
    Source::EnvFile { file: file.clone(), at, line_text: line.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(text: &str, process: &[(&str, &str)]) -> NodeEnv {
        let process = process.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        NodeEnv::from_parts(Some((PathBuf::from("conf/.env"), text.into())), process).unwrap()
    }

    #[test]
    fn process_environment_wins_over_the_file() {
        let env = env("AGENT_NODE_ID=a\nAGENT_ROLE=primary\n", &[("AGENT_NODE_ID", "b")]);
        assert_eq!(env.get(NODE_ID).unwrap().value, "b");
        assert_eq!(env.get(NODE_ID).unwrap().source, Source::Process);
        assert_eq!(env.get(ROLE).unwrap().value, "primary");
    }

    #[test]
    fn file_settings_point_at_their_value() {
        let env = env("# node\nexport AGENT_NODE_ID = agent-home-mini\n", &[]);
        let Source::EnvFile { at, .. } = &env.get(NODE_ID).unwrap().source else {
            panic!("expected a file source");
        };
        assert_eq!((at.line, at.column, at.len), (2, 24, 15));
    }

    #[test]
    fn manifests_dir_is_relative_to_the_env_file() {
        assert_eq!(env("MESH_MANIFESTS=m\n", &[]).manifests_dir(), PathBuf::from("conf/m"));
        assert_eq!(env("", &[("MESH_MANIFESTS", "x")]).manifests_dir(), PathBuf::from("x"));
        assert_eq!(env("", &[]).manifests_dir(), PathBuf::from("manifests"));
    }

    #[test]
    fn a_blank_setting_is_an_unset_one_and_listen_is_an_address() {
        let env = env("AGENT_NODE_ID=  mini \nAGENT_ROLE=  \nMESH_LISTEN=127.0.0.1:8001\n", &[]);
        assert_eq!(env.value(NODE_ID), Some("mini"));
        assert_eq!(env.value(ROLE), None);
        assert_eq!(env.listen(), Ok(Some("127.0.0.1:8001".parse().unwrap())));
        let wrong = self::env("", &[(LISTEN, "everywhere")]);
        assert_eq!(
            wrong.listen(),
            Err("MESH_LISTEN \"everywhere\" is not an address:port such as 127.0.0.1:8000".into())
        );
        assert_eq!(self::env("", &[]).listen(), Ok(None));
    }
}
