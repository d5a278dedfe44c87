//! Revisions name what was applied: the commit when the manifests are a clean Git
//! checkout, else a hash of their content.

use std::path::Path;

use crate::manifest::SourceFile;

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
    let oid = git2::Oid::hash_object(git2::ObjectType::Blob, &bytes).expect("hashing a buffer cannot fail");
    format!("local-{}", &oid.to_string()[..12])
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

fn clean_commit(dir: &Path) -> Option<(String, Option<String>)> {
    let repo = git2::Repository::discover(dir).ok()?;
    let workdir = repo.workdir()?.canonicalize().ok()?;
    let dir = dir.canonicalize().ok()?;
    let relative = dir.strip_prefix(&workdir).ok()?;
    let mut options = git2::StatusOptions::new();
    options.include_untracked(true).recurse_untracked_dirs(true);
    if !relative.as_os_str().is_empty() {
        options.pathspec(relative);
    }
    let statuses = repo.statuses(Some(&mut options)).ok()?;
    if statuses.iter().any(|s| s.status() != git2::Status::CURRENT && s.status() != git2::Status::IGNORED) {
        return None;
    }
    let head = repo.head().ok()?;
    let commit = head.peel_to_commit().ok()?.id();
    let unpushed = unpushed_note(&repo, &head, commit);
    Some((commit.to_string(), unpushed))
}

/// "N commits not pushed to origin/main" when HEAD is ahead of its upstream.
fn unpushed_note(repo: &git2::Repository, head: &git2::Reference, commit: git2::Oid) -> Option<String> {
    let branch = git2::Branch::wrap(repo.find_reference(head.name().ok()?).ok()?);
    let upstream = branch.upstream().ok()?;
    let upstream_commit = upstream.get().peel_to_commit().ok()?.id();
    let (ahead, _) = repo.graph_ahead_behind(commit, upstream_commit).ok()?;
    let name = upstream.name().ok().flatten()?.to_owned();
    (ahead > 0).then(|| format!("{ahead} commit(s) not pushed to {name}"))
}
