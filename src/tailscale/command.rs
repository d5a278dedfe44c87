//! The `tailscale` command as a way in when there is no socket: the macOS app
//! runs its daemon in a network extension that serves the LocalAPI on a
//! token-guarded TCP port, which the bundled CLI knows how to find. Its `--json`
//! output is the LocalAPI's own JSON, re-indented.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

use super::Error;

/// What the CLI prints (and exits 1 with) when whois finds nobody: the Go
/// client's `ErrPeerNotFound`.
const PEER_NOT_FOUND: &str = "peer not found";

/// `tailscale status --json`.
pub(super) async fn status(program: &Path) -> Result<Vec<u8>, Error> {
    output(program, &["status", "--json"]).await
}

/// `tailscale whois --json ADDR`; `None` when it names no peer.
pub(super) async fn whois(program: &Path, addr: SocketAddr) -> Result<Option<Vec<u8>>, Error> {
    match output(program, &["whois", "--json", &addr.to_string()]).await {
        Ok(stdout) => Ok(Some(stdout)),
        Err(Error::Command { message, .. }) if message.contains(PEER_NOT_FOUND) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Runs `program args…` and returns its standard output. The child is killed
/// if the caller's timeout drops this future.
async fn output(program: &Path, args: &[&str]) -> Result<Vec<u8>, Error> {
    let failed =
        |message: String| Error::Command { command: format!("{} {}", program.display(), args.join(" ")), message };
    let output = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|error| failed(error.to_string()))?;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(failed(format!("{}: {}", output.status, String::from_utf8_lossy(&output.stderr).trim())))
    }
}
