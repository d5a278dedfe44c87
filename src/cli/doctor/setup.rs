//! The `.env` and the manifests: this node's settings, its key and its Node.

use super::check::{Check, count};
use crate::diagnostic::Diagnostic;
use crate::identity::{NODE_ID, NodeEnv};
use crate::manifest::{self, ManifestSet, SourceFile, loader};

/// A key shorter than this is easy to guess.
const MIN_KEY_LEN: usize = 32;

/// What was found of the node's settings.
#[derive(Clone, Debug)]
pub(super) struct EnvFound {
    /// Why the env file could not be read or parsed.
    pub(super) problem: Option<String>,
    /// The env file read, if any.
    pub(super) file: Option<String>,
    pub(super) node: Option<String>,
    /// The mesh API key, as `api_key::resolve` found it.
    pub(super) key: Result<Option<String>, String>,
    /// Whether the Mesh lets callers in by Tailscale identity.
    pub(super) identity_auth: bool,
}

pub(super) fn env_check(found: &EnvFound) -> Check {
    const NAME: &str = "env";
    if let Some(problem) = &found.problem {
        return Check::fail(NAME, problem.clone(), "fix the line it names (NAME=value, one a line)");
    }
    let file = found.file.as_deref().unwrap_or("the environment (no .env here)");
    let Some(node) = &found.node else {
        return Check::fail(
            NAME,
            format!("{NODE_ID} is not set in {file}"),
            format!("add {NODE_ID}=<this machine's Node name> to .env"),
        );
    };
    match &found.key {
        Err(problem) => Check::fail(NAME, problem.clone(), "set the variable or file the Mesh's auth.apiKey names"),
        Ok(None) if found.identity_auth => {
            Check::pass(NAME, format!("{file}: {node}, no API key (callers get in by Tailscale identity)"))
        }
        Ok(None) => Check::fail(
            NAME,
            format!("{file}: MESH_API_KEY is not set and Tailscale identity auth is off"),
            "add MESH_API_KEY=$(openssl rand -hex 32) to .env, the same on every node",
        ),
        Ok(Some(key)) if key.chars().count() < MIN_KEY_LEN => Check::warn(
            NAME,
            format!("{file}: {node}, but the API key is {} characters long", key.chars().count()),
            format!("use a key of {MIN_KEY_LEN} characters or more: openssl rand -hex 32, the same on every node"),
        ),
        Ok(Some(_)) => Check::pass(NAME, format!("{file}: {node}, API key set")),
    }
}

/// The local manifests, checked as `meshctl validate` checks them.
pub(super) struct Manifests {
    dir: String,
    /// Why the folder could not be read.
    unreadable: Option<String>,
    files: usize,
    /// The first line of each error, `file:line:col: Kind/name: message`.
    errors: Vec<String>,
    pub(super) set: ManifestSet,
}

impl Manifests {
    pub(super) fn load(env: &NodeEnv) -> Manifests {
        let dir = env.manifests_dir();
        Manifests::read(dir.display().to_string(), loader::load_dir(&dir).map_err(|error| error.to_string()))
    }

    /// The manifests `shown` names, as read (or why they could not be).
    pub(super) fn read(shown: String, loaded: Result<(Vec<SourceFile>, Vec<Diagnostic>), String>) -> Manifests {
        match loaded {
            Err(error) => {
                Manifests { dir: shown, unreadable: Some(error), files: 0, errors: vec![], set: default_set() }
            }
            Ok((files, problems)) => {
                let validation = manifest::validate(&files, problems);
                let errors = validation.diagnostics.iter().filter(|d| d.is_error());
                let errors = errors.map(|d| format!("{}:{}:{}: {}: {}", d.file, d.line, d.column, d.object, d.message));
                Manifests {
                    dir: shown,
                    unreadable: None,
                    files: files.len(),
                    errors: errors.collect(),
                    set: validation.set,
                }
            }
        }
    }

    pub(super) fn check(&self) -> Check {
        const NAME: &str = "manifests";
        if let Some(problem) = &self.unreadable {
            return Check::fail(NAME, problem.clone(), "set MESH_MANIFESTS in .env to the manifests folder");
        }
        match self.errors.as_slice() {
            [] => Check::pass(
                NAME,
                format!("{}: {} in {} are valid", self.dir, count(self.set.len(), "object"), count(self.files, "file")),
            ),
            errors => Check::fail(
                NAME,
                format!("{}: {}: {}", self.dir, count(errors.len(), "error"), errors.join("; ")),
                format!("correct them (meshctl validate {} shows each in context)", self.dir),
            ),
        }
    }
}

fn default_set() -> ManifestSet {
    manifest::validate(&[], Vec::new()).set
}

pub(super) fn node_check(env: &NodeEnv, set: &ManifestSet, node: Option<&str>) -> Check {
    const NAME: &str = "node";
    let Some(node) = node else {
        return Check::fail(NAME, format!("{NODE_ID} is not set"), format!("add {NODE_ID} to .env"));
    };
    match set.nodes.get(node) {
        Some(object) => {
            Check::pass(NAME, format!("Node/{node}: {}, at {}", object.spec.role.as_str(), object.spec.address.value))
        }
        None => {
            let help = env.check_identity(set).into_iter().find_map(|d| d.help);
            let hint = help.map(|help| format!(" ({help})")).unwrap_or_default();
            Check::fail(
                NAME,
                format!("no Node in the manifests is named \"{node}\"{hint}"),
                format!("add a Node named {node} to the manifests, or set {NODE_ID} to one of them"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::doctor::check::Status;

    #[test]
    fn the_env_needs_a_node_and_a_key_unless_tailscale_identity_lets_callers_in() {
        let found = |node: Option<&str>, key: Result<Option<&str>, &str>, identity_auth: bool| EnvFound {
            problem: None,
            file: Some(".env".into()),
            node: node.map(Into::into),
            key: key.map(|k| k.map(Into::into)).map_err(Into::into),
            identity_auth,
        };
        let long = "k".repeat(MIN_KEY_LEN);
        let table = [
            (found(Some("laptop"), Ok(Some(&long)), false), Status::Pass, ".env: laptop, API key set"),
            (found(Some("laptop"), Ok(Some("short")), false), Status::Warn, "the API key is 5 characters long"),
            (found(Some("laptop"), Ok(None), false), Status::Fail, "MESH_API_KEY is not set"),
            (found(Some("laptop"), Ok(None), true), Status::Pass, "by Tailscale identity"),
            (found(Some("laptop"), Err("the Mesh's auth.apiKey: x"), false), Status::Fail, "auth.apiKey"),
            (found(None, Ok(Some(&long)), false), Status::Fail, "AGENT_NODE_ID is not set in .env"),
        ];
        for (found, status, words) in table {
            let check = env_check(&found);
            assert_eq!(check.status, status, "{check:?}");
            assert!(check.message.contains(words), "{check:?}");
        }
        let unreadable = EnvFound { problem: Some(".env: line 3".into()), ..found(None, Ok(None), false) };
        assert_eq!(env_check(&unreadable).status, Status::Fail);
    }
}
