//! The shared key of the mesh API in force. The Mesh's `auth.apiKey` says
//! where it is read from (default: `MESH_API_KEY`), so it can change when a new
//! set applies; it may be absent, when Tailscale identity auth lets callers in.

use std::sync::{Arc, RwLock};

use subtle::ConstantTimeEq;

use crate::config::resolve_secret;
use crate::identity::NodeEnv;
use crate::manifest::kinds::MeshSpec;

/// The variable that holds the key when the Mesh does not point elsewhere.
pub const MESH_API_KEY: &str = "MESH_API_KEY";

/// The key in force, shared by the API (to check callers), the router and the
/// prober (to call peers). Cheap to clone; clones share the value.
#[derive(Clone, Default)]
pub struct ApiKey(Arc<RwLock<Option<Arc<str>>>>);

impl ApiKey {
    pub fn new(key: Option<String>) -> ApiKey {
        ApiKey(Arc::new(RwLock::new(key.map(Into::into))))
    }

    pub fn get(&self) -> Option<Arc<str>> {
        self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Puts `key` in force; true when it differs from the one before.
    pub fn replace(&self, key: Option<String>) -> bool {
        let mut current = self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        let changed = current.as_deref() != key.as_deref();
        *current = key.map(Into::into);
        changed
    }

    /// Whether `presented` is the key, compared in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        self.get().is_some_and(|key| bool::from(presented.as_bytes().ct_eq(key.as_bytes())))
    }
}

/// The key for a node with `env` under `mesh`: where `auth.apiKey` points, or
/// else `MESH_API_KEY`; None when neither gives one. An error says why a key
/// the Mesh points at cannot be read.
pub fn resolve(env: &NodeEnv, mesh: Option<&MeshSpec>) -> Result<Option<String>, String> {
    match mesh.and_then(|mesh| mesh.auth.api_key.as_ref()) {
        Some(secret) => {
            let key = resolve_secret(env, secret).map_err(|error| format!("the Mesh's auth.apiKey: {error}"))?;
            let key = key.trim().to_owned();
            if key.is_empty() {
                return Err("the Mesh's auth.apiKey points at an empty value".into());
            }
            Ok(Some(key))
        }
        None => Ok(env.value(MESH_API_KEY).map(str::to_owned)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::SecretRef;

    fn env(pairs: &[(&str, &str)]) -> NodeEnv {
        NodeEnv::from_parts(None, pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap()
    }

    fn mesh_pointing_at(secret: SecretRef) -> MeshSpec {
        let mut mesh = MeshSpec::default();
        mesh.auth.api_key = Some(secret);
        mesh
    }

    #[test]
    fn where_the_key_comes_from() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("key");
        std::fs::write(&key_file, "from-file\n").unwrap();
        let empty_file = dir.path().join("empty");
        std::fs::write(&empty_file, "\n").unwrap();
        let file = |path: &std::path::Path| SecretRef::File(path.display().to_string());
        type Expected = Result<Option<&'static str>, &'static str>;
        let cases: Vec<(&str, NodeEnv, Option<MeshSpec>, Expected)> = vec![
            ("no Mesh: MESH_API_KEY", env(&[(MESH_API_KEY, "k1")]), None, Ok(Some("k1"))),
            ("no Mesh, no key", env(&[]), None, Ok(None)),
            ("blank MESH_API_KEY is no key", env(&[(MESH_API_KEY, "  ")]), None, Ok(None)),
            (
                "Mesh without apiKey: MESH_API_KEY",
                env(&[(MESH_API_KEY, "k1")]),
                Some(MeshSpec::default()),
                Ok(Some("k1")),
            ),
            (
                "Mesh points at a file",
                env(&[(MESH_API_KEY, "k1")]),
                Some(mesh_pointing_at(file(&key_file))),
                Ok(Some("from-file")),
            ),
            (
                "Mesh points at another variable",
                env(&[("OTHER", "k2")]),
                Some(mesh_pointing_at(SecretRef::Env("OTHER".into()))),
                Ok(Some("k2")),
            ),
            (
                "Mesh points at an unset variable",
                env(&[(MESH_API_KEY, "k1")]),
                Some(mesh_pointing_at(SecretRef::Env("OTHER".into()))),
                Err("the Mesh's auth.apiKey: secret variable OTHER is not set"),
            ),
            (
                "Mesh points at an empty file",
                env(&[]),
                Some(mesh_pointing_at(file(&empty_file))),
                Err("the Mesh's auth.apiKey points at an empty value"),
            ),
        ];
        for (case, env, mesh, expected) in cases {
            let got = resolve(&env, mesh.as_ref());
            assert_eq!(got.as_ref().map(|k| k.as_deref()).map_err(String::as_str), expected, "{case}");
        }
    }

    #[test]
    fn a_key_in_force_is_compared_and_replaced() {
        let key = ApiKey::new(None);
        assert!(!key.matches(""), "no key matches nothing");
        assert!(key.replace(Some("secret".into())));
        assert!(key.matches("secret") && !key.matches("secreT") && !key.matches("secret2"));
        assert!(!key.replace(Some("secret".into())), "the same key is no change");
        assert!(key.clone().replace(None));
        assert!(!key.matches("secret"), "clones share the key");
    }
}
