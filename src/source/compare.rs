//! Which manifest files of a local folder differ from the ones a node follows
//! (the commit its Git source fetched): what pushing the folder would change,
//! file by file. Pure: both sides are read by the caller.

use std::collections::BTreeMap;
use std::fmt;

use crate::manifest::SourceFile;

/// The files a local folder adds, changes and removes against the followed
/// set, by their path inside the manifests folder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Differences {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

impl Differences {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

/// `changes a.yaml; adds b.yaml, c.yaml; removes d.yaml`.
impl fmt::Display for Differences {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = [("changes", &self.changed), ("adds", &self.added), ("removes", &self.removed)];
        let shown: Vec<String> = parts
            .iter()
            .filter(|(_, paths)| !paths.is_empty())
            .map(|(verb, paths)| format!("{verb} {}", paths.join(", ")))
            .collect();
        f.write_str(&shown.join("; "))
    }
}

/// Compares `local` (paths under `local_root`, as the folder loader gives
/// them) with `followed` (paths under `followed_root` in the repository, as
/// the Git source gives them).
pub fn differences(
    local_root: &str,
    local: &[SourceFile],
    followed_root: &str,
    followed: &[SourceFile],
) -> Differences {
    let by_path = |root: &str, files: &[SourceFile]| -> BTreeMap<String, String> {
        files.iter().map(|file| (inside(root, &file.path), file.text.clone())).collect()
    };
    let (local, followed) = (by_path(local_root, local), by_path(followed_root, followed));
    let mut found = Differences::default();
    for (path, text) in &local {
        match followed.get(path) {
            None => found.added.push(path.clone()),
            Some(theirs) if theirs != text => found.changed.push(path.clone()),
            Some(_) => {}
        }
    }
    found.removed = followed.keys().filter(|path| !local.contains_key(*path)).cloned().collect();
    found
}

/// `path` relative to the folder `root`, `/`-separated.
fn inside(root: &str, path: &str) -> String {
    let root = root.trim_start_matches("./").trim_end_matches('/');
    let relative = if root.is_empty() || root == "." { path } else { path.strip_prefix(root).unwrap_or(path) };
    relative.trim_start_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> SourceFile {
        SourceFile { path: path.into(), text: text.into() }
    }

    #[test]
    fn files_are_compared_by_their_path_inside_each_manifests_folder() {
        let followed =
            [file("manifests/a.yaml", "a"), file("manifests/sub/b.yaml", "b"), file("manifests/c.yaml", "c")];
        let cases: [(&str, Vec<SourceFile>, Differences); 4] = [
            (
                "/home/me/mesh/manifests",
                vec![
                    file("/home/me/mesh/manifests/a.yaml", "a"),
                    file("/home/me/mesh/manifests/sub/b.yaml", "b"),
                    file("/home/me/mesh/manifests/c.yaml", "c"),
                ],
                Differences::default(),
            ),
            (
                "manifests/",
                vec![file("manifests/a.yaml", "a2"), file("manifests/sub/b.yaml", "b"), file("manifests/d.yaml", "d")],
                Differences {
                    added: vec!["d.yaml".into()],
                    changed: vec!["a.yaml".into()],
                    removed: vec!["c.yaml".into()],
                },
            ),
            (
                "./m",
                vec![],
                Differences {
                    added: vec![],
                    changed: vec![],
                    removed: vec!["a.yaml".into(), "c.yaml".into(), "sub/b.yaml".into()],
                },
            ),
            (
                "m",
                vec![file("m/a.yaml", "a"), file("m/sub/b.yaml", "b"), file("m/c.yaml", "c"), file("m/x.yml", "x")],
                Differences { added: vec!["x.yml".into()], ..Differences::default() },
            ),
        ];
        for (root, local, expected) in cases {
            assert_eq!(differences(root, &local, "manifests", &followed), expected, "{root}");
        }
    }

    #[test]
    fn a_repository_root_folder_and_the_summary() {
        let found = differences(
            "/w",
            &[file("/w/n.yaml", "2"), file("/w/new.yaml", "")],
            ".",
            &[file("n.yaml", "1"), file("old.yaml", "")],
        );
        assert_eq!(found.to_string(), "changes n.yaml; adds new.yaml; removes old.yaml");
        assert!(!found.is_empty());
        assert!(Differences::default().is_empty());
    }
}
