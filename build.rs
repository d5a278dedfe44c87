//! Sets `AGENTMESH_COMMIT` to the short hash of the Git checkout's HEAD, for
//! `meshctl version` and `/mesh/health`. A value set in the environment wins
//! (a packager building from a tarball); outside a checkout it is "unknown". Git is asked again only when HEAD or the branch
//! it names moves, so a build stays cheap and a commit gives one binary.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=AGENTMESH_COMMIT");
    if std::env::var_os("AGENTMESH_COMMIT").is_some() {
        return;
    }
    let Some(commit) = git(&["rev-parse", "--short", "HEAD"]) else {
        println!("cargo:rustc-env=AGENTMESH_COMMIT=unknown");
        return;
    };
    println!("cargo:rustc-env=AGENTMESH_COMMIT={commit}");
    let mut watched = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(git(&["rev-parse", "--git-path", &branch]));
        watched.push(git(&["rev-parse", "--git-path", "packed-refs"]));
    }
    // A missing path would make Cargo run this script on every build.
    for path in watched.into_iter().flatten().map(PathBuf::from).filter(|path| path.exists()) {
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// Git's answer, trimmed, or None when Git is missing or this is no checkout.
fn git(args: &[&str]) -> Option<String> {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")?;
    let output = Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}
