//! Revisions name what was applied: the commit when the manifests are a clean Git
//! checkout, else a hash of their content.

use std::path::Path;
use std::time::Duration;

use crate::git::Git;
use crate::git::blob::blob_hex;
use crate::manifest::SourceFile;

/// Each local `git` call here answers in milliseconds; past this, the folder
/// is taken as not a clean checkout.
const LOCAL_TIMEOUT: Duration = Duration::from_secs(10);

/// `local-<12 hex>`: a hash of every file's path (relative to `root`) and text,
/// so the same content always has the same revision.
pub fn content_revision(root: &Path, files: &[SourceFile]) -> String {
    let prefix = root.display().to_string();
    let mut bytes = Vec::new();
    for file in files {
        let relative = file.path.strip_prefix(prefix.as_str()).unwrap_or(&file.path);
        bytes.extend_from_slice(relative.trim_start_matches('/').as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(file.text.as_bytes());
        bytes.push(0);
    }
    format!("local-{}", &blob_hex(&bytes)[..12])
}

/// The commit id when `dir` lies in a Git work tree with no change under it,
/// else the content revision. The second value says whether the commit is not
/// on the branch's upstream yet (unpushed), when known.
pub fn folder_revision(dir: &Path, files: &[SourceFile]) -> (String, Option<String>) {
    match clean_commit(dir) {
        Some((commit, unpushed)) => (commit, unpushed),
        None => (content_revision(dir, files), None),
    }
}

/// The commit of the Git work tree `dir` lies in, when nothing under `dir` has
/// changed, and the unpushed note. `None` when the system's `git` is missing,
/// `dir` is not in a work tree, or something under it changed. One `git`
/// process: its `#` lines name the commit, the upstream and how far ahead.
fn clean_commit(dir: &Path) -> Option<(String, Option<String>)> {
    let git = Git::new(dir, LOCAL_TIMEOUT);
    // Untracked files count as changes; ignored ones do not. Paths are `dir`'s.
    let status = git.run(&["status", "--porcelain=v2", "--branch", "--untracked-files=all", "--", "."]).ok()?;
    clean_status(&status)
}

/// The commit and "N commit(s) not pushed to origin/main" from `git status
/// --porcelain=v2 --branch`; None when a path changed or there is no commit.
fn clean_status(status: &str) -> Option<(String, Option<String>)> {
    let (mut commit, mut upstream, mut ahead) = (None, None, 0_u64);
    for line in status.lines() {
        // Any line but a `#` header is a changed path.
        let header = line.strip_prefix("# ")?;
        if let Some(oid) = header.strip_prefix("branch.oid ") {
            commit = Some(oid);
        } else if let Some(name) = header.strip_prefix("branch.upstream ") {
            upstream = Some(name);
        } else if let Some(counts) = header.strip_prefix("branch.ab +") {
            ahead = counts.split(' ').next()?.parse().ok()?;
        }
    }
    let commit = commit.filter(|oid| *oid != "(initial)")?;
    let unpushed = upstream.filter(|_| ahead > 0).map(|name| format!("{ahead} commit(s) not pushed to {name}"));
    Some((commit.to_owned(), unpushed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_content_revision_is_gits_blob_id_of_paths_and_texts() {
        let files = [
            SourceFile { path: "/m/manifests/a.yaml".into(), text: "kind: Node\n".into() },
            SourceFile { path: "/m/b.yml".into(), text: "x: 1\n".into() },
        ];
        // Pinned from `git hash-object` of `manifests/a.yaml\0kind: Node\n\0b.yml\0x: 1\n\0`.
        assert_eq!(content_revision(Path::new("/m"), &files), "local-14bb31a6ab2e");
    }

    #[test]
    fn a_folder_outside_any_repository_has_its_content_revision() {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = [SourceFile { path: "x.yaml".into(), text: "x: 1\n".into() }];
        assert_eq!(folder_revision(dir.path(), &files), (content_revision(dir.path(), &files), None));
    }

    #[test]
    fn a_clean_checkout_is_its_commit_with_what_is_not_pushed_and_a_changed_one_its_content() {
        let root = tempfile::tempdir().expect("temp dir");
        let git = |dir: &Path, args: &[&str]| {
            let mut all =
                vec!["-c", "user.name=Test", "-c", "user.email=test@example.invalid", "-c", "commit.gpgsign=false"];
            all.extend(args);
            Git::new(dir, LOCAL_TIMEOUT).run(&all).expect("git runs").trim_end().to_owned()
        };
        git(root.path(), &["init", "--quiet", "--bare", "-b", "main", "remote.git"]);
        git(root.path(), &["clone", "--quiet", "remote.git", "work"]);
        let work = root.path().join("work");
        let manifests = work.join("manifests");
        std::fs::create_dir(&manifests).expect("mkdir");
        std::fs::write(manifests.join("node.yaml"), "kind: Node\n").expect("write");
        git(&work, &["add", "--all"]);
        git(&work, &["commit", "--quiet", "-m", "one"]);
        git(&work, &["push", "--quiet", "origin", "HEAD:main"]);
        git(&work, &["branch", "--quiet", "--set-upstream-to", "origin/main"]);
        let files = [SourceFile { path: "x.yaml".into(), text: "x: 1\n".into() }];
        let pushed = git(&work, &["rev-parse", "HEAD"]);
        assert_eq!(folder_revision(&manifests, &files), (pushed, None));

        git(&work, &["commit", "--quiet", "--allow-empty", "-m", "two"]);
        let ahead = git(&work, &["rev-parse", "HEAD"]);
        assert_eq!(folder_revision(&manifests, &files), (ahead, Some("1 commit(s) not pushed to origin/main".into())));

        // A change elsewhere in the repository does not count; one under the folder does.
        std::fs::write(work.join("README.md"), "draft\n").expect("write");
        assert!(!folder_revision(&manifests, &files).0.starts_with("local-"));
        std::fs::write(manifests.join("draft.yaml"), "kind: Draft\n").expect("write");
        assert_eq!(folder_revision(&manifests, &files), (content_revision(&manifests, &files), None));
    }
}
