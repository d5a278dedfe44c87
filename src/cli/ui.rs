//! `meshctl ui`: opens this node's status page, signed in. It asks the
//! daemon (with the key) for a one-time ticket and puts only that in the
//! page's URL fragment, which the browser never sends to the server; the
//! key stays out of the URL and so out of `ps` and the browser's history.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::Context;

use super::{Outcome, local_client, runtime};
use crate::identity::NodeEnv;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Print the page's URL (with its ticket, valid once for 60 s) instead of opening a browser.
    #[arg(long)]
    print: bool,
}

pub(super) fn run(args: Args, env_file: Option<&Path>) -> anyhow::Result<Outcome> {
    let env = NodeEnv::load(env_file)?;
    let (client, _) = local_client(&env)?;
    let ticket = runtime()?.block_on(client.ui_ticket()).context("cannot get a ticket for the page")?;
    let url = format!("{}/#ticket={}", client.base(), ticket.ticket);
    let found = |program: &str| on_path(program, std::env::var_os("PATH").as_deref());
    let opener = if args.print { None } else { opener(std::env::consts::OS, found) };
    let Some(opener) = opener else {
        println!("{url}");
        return Ok(Outcome::Success);
    };
    let opened = Command::new(opener).arg(&url).stdin(Stdio::null()).stdout(Stdio::null()).status();
    match opened {
        Ok(status) if status.success() => {
            eprintln!("opened {}/ in the browser (signed in with a one-time ticket)", client.base());
        }
        // The browser could not be started: the URL still works, once, for 60 s.
        _ => println!("{url}"),
    }
    Ok(Outcome::Success)
}

/// The program that opens a URL in the user's browser on `os`, if `found`
/// finds it.
fn opener(os: &str, found: impl Fn(&str) -> bool) -> Option<&'static str> {
    let program = if os == "macos" { "open" } else { "xdg-open" };
    found(program).then_some(program)
}

/// Whether an executable file named `program` is in one of `path`'s folders.
fn on_path(program: &str, path: Option<&OsStr>) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = path else { return false };
    std::env::split_paths(path).any(|folder| {
        std::fs::metadata(folder.join(program))
            .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_browser_is_opened_by_the_system_s_own_opener_when_there_is_one() {
        let cases = [
            ("linux", &["xdg-open"][..], Some("xdg-open")),
            ("macos", &["open"][..], Some("open")),
            ("linux", &[][..], None),
            ("macos", &["xdg-open"][..], None),
        ];
        for (os, installed, expected) in cases {
            assert_eq!(opener(os, |program| installed.contains(&program)), expected, "{os} {installed:?}");
        }
    }

    #[test]
    fn a_program_is_on_the_path_only_as_an_executable_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("runs"), "").unwrap();
        std::fs::set_permissions(dir.path().join("runs"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.path().join("plain"), "").unwrap();
        let path = std::env::join_paths([Path::new("/nonexistent"), dir.path()]).unwrap();
        assert!(on_path("runs", Some(&path)));
        assert!(!on_path("plain", Some(&path)));
        assert!(!on_path("missing", Some(&path)));
        assert!(!on_path("runs", None));
    }
}
