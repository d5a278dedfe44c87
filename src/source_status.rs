//! What a node follows for its manifests — a folder, or a Git remote and
//! branch — and what it last read of it: the `source` object of `status`, which
//! the sources write, the API serves, peers pass on in their health and the CLI
//! shows. A remote's credentials never appear in it.

use std::time::SystemTime;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::GitSettings;

/// Which kind of source a node follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Folder,
    Git,
}

/// A node's source and its last reading, in the shape of `status -o json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceStatus {
    #[serde(rename = "type")]
    pub kind: SourceKind,
    /// The manifests folder: on disk for a folder, inside the repository for Git.
    pub path: String,
    /// The Git remote, without a password or token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// The revision last read from the source (the commit fetched, or the
    /// folder's revision); the node's own `revision` is the one in force.
    #[serde(default)]
    pub revision: Option<String>,
    /// When the source was last read successfully (RFC 3339).
    #[serde(default)]
    pub last_fetched: Option<String>,
    /// Why the last fetch failed; null once one succeeds. A rejected snapshot
    /// is the node's `lastError`, not this.
    #[serde(default)]
    pub last_fetch_error: Option<String>,
}

impl SourceStatus {
    pub fn folder(path: &str) -> SourceStatus {
        SourceStatus::new(SourceKind::Folder, path.to_owned(), None, None)
    }

    pub fn git(settings: &GitSettings) -> SourceStatus {
        let remote = without_credentials(&settings.remote);
        SourceStatus::new(SourceKind::Git, settings.path.clone(), Some(remote), Some(settings.branch.clone()))
    }

    fn new(kind: SourceKind, path: String, remote: Option<String>, branch: Option<String>) -> SourceStatus {
        SourceStatus { kind, path, remote, branch, revision: None, last_fetched: None, last_fetch_error: None }
    }

    /// A successful reading at `at`, of `revision` when it names one.
    pub fn fetched(&mut self, revision: Option<String>, at: SystemTime) {
        if revision.is_some() {
            self.revision = revision;
        }
        self.last_fetched = Some(humantime::format_rfc3339_seconds(at).to_string());
        self.last_fetch_error = None;
    }

    /// A failed reading; the last good revision stays.
    pub fn failed(&mut self, message: String) {
        self.last_fetch_error = Some(message);
    }

    /// Why a folder may not be applied (without `--force`) to a node that
    /// follows Git, and what to do instead; None for a folder.
    pub fn apply_refusal(&self) -> Option<String> {
        let remote = self.remote.as_deref().filter(|_| self.kind == SourceKind::Git)?;
        let branch = self.branch.as_deref().unwrap_or_default();
        Some(format!(
            "this node follows {remote}@{branch} (MESH_GIT_REMOTE): a folder applied here would be replaced by the next commit.\n\
             To change the manifests, commit them and `git push` to {branch}; every node applies the push (`meshctl diff` shows what it changes).\n\
             `meshctl apply --force` applies the folder anyway, until the next commit."
        ))
    }

    /// `git REMOTE@BRANCH` or `folder PATH`, as the CLI names what a node follows.
    pub fn followed(&self) -> String {
        match self.kind {
            SourceKind::Folder => format!("folder {}", self.path),
            SourceKind::Git => format!(
                "git {}@{}",
                self.remote.as_deref().unwrap_or_default(),
                self.branch.as_deref().unwrap_or_default()
            ),
        }
    }
}

/// The URL with any password or token in its user part replaced by `***`
/// (`https://me:TOKEN@host/x.git` -> `https://me:***@host/x.git`); anything
/// else (paths, `git@host:x.git`) as it is.
pub fn without_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((user, host)) = authority.rsplit_once('@') else { return url.to_owned() };
    let user = match user.split_once(':') {
        Some((name, _secret)) => format!("{name}:***"),
        // A user part alone is a token as often as a name (`https://TOKEN@github.com`).
        None if scheme.starts_with("http") => "***".to_owned(),
        None => user.to_owned(),
    };
    format!("{scheme}://{user}@{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_a_remote_are_never_shown() {
        let cases = [
            ("https://me:s3cret@example.com/mesh.git", "https://me:***@example.com/mesh.git"),
            ("https://ghp_token@github.com/me/mesh.git", "https://***@github.com/me/mesh.git"),
            ("ssh://git@example.com:22/mesh.git", "ssh://git@example.com:22/mesh.git"),
            ("https://example.com/a@b.git", "https://example.com/a@b.git"),
            ("git@example.com:mesh.git", "git@example.com:mesh.git"),
            ("/srv/mesh.git", "/srv/mesh.git"),
            ("file:///srv/mesh.git", "file:///srv/mesh.git"),
        ];
        for (url, shown) in cases {
            assert_eq!(without_credentials(url), shown, "{url}");
        }
    }

    #[test]
    fn a_failed_fetch_keeps_the_last_revision_and_a_good_one_clears_the_error() {
        let settings = GitSettings {
            remote: "https://me:pw@example.com/mesh.git".into(),
            branch: "main".into(),
            path: "manifests".into(),
            interval: std::time::Duration::from_secs(30),
            timeout: crate::config::DEFAULT_GIT_TIMEOUT,
        };
        let mut status = SourceStatus::git(&settings);
        assert_eq!(status.followed(), "git https://me:***@example.com/mesh.git@main");
        status.fetched(Some("a".repeat(40)), SystemTime::UNIX_EPOCH);
        status.failed("cannot fetch: no route to host".into());
        assert_eq!(status.revision, Some("a".repeat(40)));
        assert_eq!(status.last_fetched.as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(status.last_fetch_error.as_deref(), Some("cannot fetch: no route to host"));
        status.fetched(None, SystemTime::UNIX_EPOCH);
        assert_eq!((status.revision, status.last_fetch_error), (Some("a".repeat(40)), None));
        let json = serde_json::to_value(SourceStatus::folder("/m")).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({"type": "folder", "path": "/m", "revision": null, "lastFetched": null, "lastFetchError": null})
        );
    }
}
