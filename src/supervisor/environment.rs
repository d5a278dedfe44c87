//! A Service's environment, built from scratch: what its manifest declares on
//! top of an allow-list of the daemon's own variables. The daemon holds keys
//! that can run commands on every node (`MESH_API_KEY`, `SYNCTHING_API_KEY`);
//! a child gets one only when its manifest asks for it by reference.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};

/// The daemon's variables every Service inherits: where programs and the home
/// folder are, who the user is, language and time zone, and the proxies.
pub(super) const INHERITED: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "TMPDIR",
    "TZ",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
];

/// Inherited too: every locale category (`LC_ALL`, `LC_CTYPE`, …).
const INHERITED_PREFIX: &str = "LC_";

/// Whether a child inherits the daemon's variable `name`.
fn inherits(name: &OsStr) -> bool {
    name.to_str().is_some_and(|name| INHERITED.contains(&name) || name.starts_with(INHERITED_PREFIX))
}

/// The whole environment of a Service: the allowed part of `daemon` (the
/// daemon's process environment), then `declared`, which wins.
pub(super) fn build(
    daemon: impl IntoIterator<Item = (OsString, OsString)>,
    declared: &BTreeMap<String, String>,
) -> BTreeMap<OsString, OsString> {
    let mut env: BTreeMap<OsString, OsString> = daemon.into_iter().filter(|(name, _)| inherits(name)).collect();
    env.extend(declared.iter().map(|(name, value)| (OsString::from(name), OsString::from(value))));
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daemon(vars: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        vars.iter().map(|(name, value)| (OsString::from(name), OsString::from(value))).collect()
    }

    #[test]
    fn only_allowed_variables_of_the_daemon_are_inherited() {
        let cases: &[(&str, bool)] = &[
            ("PATH", true),
            ("HOME", true),
            ("USER", true),
            ("LOGNAME", true),
            ("LANG", true),
            ("LC_ALL", true),
            ("LC_CTYPE", true),
            ("TMPDIR", true),
            ("TZ", true),
            ("HTTPS_PROXY", true),
            ("https_proxy", true),
            ("no_proxy", true),
            ("MESH_API_KEY", false),
            ("SYNCTHING_API_KEY", false),
            ("MESH_METRICS_KEY", false),
            ("AGENT_NODE_ID", false),
            ("AWS_SECRET_ACCESS_KEY", false),
            ("path", false),
            ("LC", false),
            ("XLC_ALL", false),
            ("", false),
        ];
        for (name, inherited) in cases {
            assert_eq!(inherits(OsStr::new(name)), *inherited, "{name}");
        }
    }

    #[test]
    fn declared_variables_are_added_and_win() {
        let declared = BTreeMap::from([
            ("PATH".to_owned(), "/opt/ollama/bin".to_owned()),
            ("SYNCTHING_API_KEY".to_owned(), "asked-for-by-reference".to_owned()),
        ]);
        let env = build(
            daemon(&[("PATH", "/usr/bin"), ("HOME", "/home/al"), ("MESH_API_KEY", "k"), ("SYNCTHING_API_KEY", "s")]),
            &declared,
        );
        let expected = BTreeMap::from([
            (OsString::from("HOME"), OsString::from("/home/al")),
            (OsString::from("PATH"), OsString::from("/opt/ollama/bin")),
            (OsString::from("SYNCTHING_API_KEY"), OsString::from("asked-for-by-reference")),
        ]);
        assert_eq!(env, expected);
    }

    #[test]
    fn a_variable_whose_name_is_not_unicode_is_not_inherited() {
        use std::os::unix::ffi::OsStringExt;
        let name = OsString::from_vec(vec![b'P', 0xff]);
        let env = build(vec![(name, OsString::from("x"))], &BTreeMap::new());
        assert!(env.is_empty());
    }
}
