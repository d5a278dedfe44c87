//! Where this node's LocalAPI is, found the way Tailscale's own client finds it:
//! the socket the Mesh names; on macOS the App Store app's port and token (from
//! the files its network extension holds open, as `lsof` lists them), then the
//! Standalone app's (`/Library/Tailscale/ipnport` and its `sameuserproof`
//! file); then tailscaled's socket; else the `tailscale` command. The facts are
//! gathered at the edge; reading them is pure and tested on fixture files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Endpoint;

/// Where the Standalone app keeps its LocalAPI port and token.
const STANDALONE_DIR: &str = "/Library/Tailscale";

/// What marks the App Store app's token file in `lsof` output; the rest of the
/// line is `<port>-<token>`.
const APP_STORE_MARK: &str = ".tailscale.ipn.macos/sameuserproof-";

/// A port file may outlive the app that wrote it: the port must take a
/// connection this soon to count.
const DIAL_TIMEOUT: Duration = Duration::from_secs(1);

/// `lsof` should answer in well under this; a hung one is given up on.
const LSOF_TIMEOUT: Duration = Duration::from_secs(3);

/// What was found of each way to the LocalAPI.
#[derive(Debug, Default)]
pub(super) struct Found {
    /// The socket the Mesh names (`discovery.localApiSocket`).
    pub configured: Option<PathBuf>,
    /// The App Store app's port and token, when its port answers.
    pub app_store: Option<(u16, String)>,
    /// The Standalone app's port and token, when its port answers.
    pub standalone: Option<(u16, String)>,
    /// The first of the platform's sockets that exists.
    pub socket: Option<PathBuf>,
    /// `tailscale` in PATH, or the macOS app's own CLI.
    pub command: Option<PathBuf>,
}

/// The way to use, in Tailscale's own order: a socket the user named wins,
/// the apps' TCP LocalAPI beats a socket (a Mac with both runs the app), and
/// the command is the last resort.
pub(super) fn choose(found: Found) -> Option<Endpoint> {
    let tcp = |(port, token)| Endpoint::Tcp { port, token };
    found
        .configured
        .map(Endpoint::Socket)
        .or_else(|| found.app_store.map(tcp))
        .or_else(|| found.standalone.map(tcp))
        .or_else(|| found.socket.map(Endpoint::Socket))
        .or_else(|| found.command.map(Endpoint::Command))
}

/// Gathers what [`choose`] needs: the apps only on macOS.
pub(super) async fn gather(configured: Option<&Path>, sockets: &[&str]) -> Found {
    if let Some(socket) = configured {
        return Found { configured: Some(socket.to_owned()), ..Found::default() };
    }
    let mut found = Found::default();
    if cfg!(target_os = "macos") {
        found.app_store = answering(app_store_lsof().await.as_deref().and_then(app_store_token)).await;
        if found.app_store.is_none() {
            let standalone = tokio::task::spawn_blocking(|| standalone_token(Path::new(STANDALONE_DIR)));
            found.standalone = answering(standalone.await.ok().flatten()).await;
        }
    }
    found.socket = sockets.iter().map(Path::new).find(|path| path.exists()).map(Path::to_owned);
    found.command = super::find_command();
    found
}

/// The App Store app's `<port>-<token>` from `lsof -F` output: the name of the
/// token file its network extension holds open.
pub(super) fn app_store_token(lsof: &str) -> Option<(u16, String)> {
    lsof.lines().find_map(|line| {
        let rest = &line[line.find(APP_STORE_MARK)? + APP_STORE_MARK.len()..];
        let (port, token) = rest.trim_end().split_once('-')?;
        Some((port.parse().ok()?, token.to_owned())).filter(|(_, token)| !token.is_empty())
    })
}

/// The Standalone app's port (the target of the `ipnport` symlink in `dir`)
/// and token (the trimmed `sameuserproof-<port>` beside it, readable by admin
/// users only).
pub(super) fn standalone_token(dir: &Path) -> Option<(u16, String)> {
    let port: u16 = std::fs::read_link(dir.join("ipnport")).ok()?.to_str()?.parse().ok()?;
    let token = std::fs::read_to_string(dir.join(format!("sameuserproof-{port}"))).ok()?;
    let token = token.trim();
    (!token.is_empty()).then(|| (port, token.to_owned()))
}

/// The files the App Store app's network extension has open, as `lsof -F`
/// lists them for this user; None when lsof fails or is not there.
async fn app_store_lsof() -> Option<String> {
    let uid = crate::sys::getuid();
    let lsof = tokio::process::Command::new("lsof")
        .args(["-n", "-a", &format!("-u{uid}"), "-c", "IPNExtension", "-F"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(LSOF_TIMEOUT, lsof).await.ok()?.ok()?;
    String::from_utf8(output.stdout).ok()
}

/// `candidate` when something takes connections on its loopback port.
async fn answering(candidate: Option<(u16, String)>) -> Option<(u16, String)> {
    let (port, token) = candidate?;
    let dial = tokio::net::TcpStream::connect((std::net::Ipv4Addr::LOCALHOST, port));
    matches!(tokio::time::timeout(DIAL_TIMEOUT, dial).await, Ok(Ok(_))).then_some((port, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `lsof -n -a -u501 -c IPNExtension -F` of a running App Store app,
    /// trimmed to the kinds of line it prints.
    const LSOF: &str = "p812\ncIPNExtension\nu501\nfcwd\nn/\nftxt\nn/Applications/Tailscale.app/Contents/PlugIns/IPNExtension.appex/Contents/MacOS/IPNExtension\nf7\nn/Users/al/Library/Group Containers/io.tailscale.ipn.macos/sameuserproof-49321-4e9b1fd7a08c5f2e\nf9\nn127.0.0.1:49321\n";

    #[test]
    fn the_app_store_token_is_read_from_the_file_lsof_lists() {
        let table = [
            ("a running app", LSOF, Some((49321, "4e9b1fd7a08c5f2e"))),
            ("no app", "", None),
            ("the extension without the file", "p812\ncIPNExtension\nf9\nn127.0.0.1:49321\n", None),
            ("no token", "n/x/io.tailscale.ipn.macos/sameuserproof-49321-\n", None),
            ("no port", "n/x/io.tailscale.ipn.macos/sameuserproof-abc-def\n", None),
        ];
        for (case, lsof, expected) in table {
            let expected = expected.map(|(port, token)| (port, token.to_owned()));
            assert_eq!(app_store_token(lsof), expected, "{case}");
        }
    }

    #[test]
    fn the_standalone_token_is_read_beside_the_port_link() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(standalone_token(dir.path()), None, "no app");
        std::os::unix::fs::symlink("41112", dir.path().join("ipnport")).unwrap();
        assert_eq!(standalone_token(dir.path()), None, "a port without its token file (not an admin user)");
        std::fs::write(dir.path().join("sameuserproof-41112"), "7c0ffee1d2\n").unwrap();
        assert_eq!(standalone_token(dir.path()), Some((41112, "7c0ffee1d2".to_owned())));
        std::fs::remove_file(dir.path().join("ipnport")).unwrap();
        std::os::unix::fs::symlink("not-a-port", dir.path().join("ipnport")).unwrap();
        assert_eq!(standalone_token(dir.path()), None, "a link that names no port");
    }

    #[test]
    fn a_named_socket_wins_then_the_apps_then_the_socket_then_the_command() {
        let all = || Found {
            configured: Some("/srv/ts.sock".into()),
            app_store: Some((49321, "a".into())),
            standalone: Some((41112, "s".into())),
            socket: Some("/var/run/tailscaled.socket".into()),
            command: Some("/usr/local/bin/tailscale".into()),
        };
        type Case = (&'static str, fn(&mut Found), Option<Endpoint>);
        let table: [Case; 6] = [
            ("everything", |_| {}, Some(Endpoint::Socket("/srv/ts.sock".into()))),
            ("no named socket", |f| f.configured = None, Some(Endpoint::Tcp { port: 49321, token: "a".into() })),
            (
                "the Standalone app",
                |f| (f.configured, f.app_store) = (None, None),
                Some(Endpoint::Tcp { port: 41112, token: "s".into() }),
            ),
            (
                "tailscaled",
                |f| (f.configured, f.app_store, f.standalone) = (None, None, None),
                Some(Endpoint::Socket("/var/run/tailscaled.socket".into())),
            ),
            (
                "only the command",
                |f| (f.configured, f.app_store, f.standalone, f.socket) = (None, None, None, None),
                Some(Endpoint::Command("/usr/local/bin/tailscale".into())),
            ),
            ("nothing", |f| *f = Found::default(), None),
        ];
        for (case, change, expected) in table {
            let mut found = all();
            change(&mut found);
            assert_eq!(choose(found), expected, "{case}");
        }
    }

    #[tokio::test]
    async fn a_port_that_takes_no_connection_is_stale() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live = listener.local_addr().unwrap().port();
        assert_eq!(answering(Some((live, "t".into()))).await, Some((live, "t".into())));
        drop(listener);
        assert_eq!(answering(Some((live, "t".into()))).await, None);
    }
}
