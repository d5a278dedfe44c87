//! Which service manager runs the controller (systemd on Linux, launchd on
//! macOS), and the PATH it gives the daemon: `install-service` writes it into
//! the unit or LaunchAgent, and `doctor` looks each Service's program up on it.

use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum Platform {
    /// launchd, a LaunchAgent in ~/Library/LaunchAgents.
    Macos,
    /// systemd, a user unit in ~/.config/systemd/user.
    Linux,
}

impl Platform {
    pub(super) fn current() -> Platform {
        if cfg!(target_os = "macos") { Platform::Macos } else { Platform::Linux }
    }
}

/// The PATH the service manager gives the daemon, and so every Service that
/// sets none of its own: written into the unit and the LaunchAgent, and the one
/// `meshctl doctor` looks each Service's program up on. launchd's default
/// (`/usr/bin:/bin:/usr/sbin:/sbin`) misses Homebrew, and a systemd user
/// manager's misses `~/.local/bin`; meshctl's own folder comes first.
pub(super) fn service_path(platform: Platform, binary: &Path, home: &Path) -> String {
    let mut folders: Vec<String> = Vec::new();
    if let Some(dir) = binary.parent() {
        folders.push(path_string(dir));
    }
    let usual: Vec<String> = match platform {
        Platform::Linux => [path_string(&home.join(".local/bin"))]
            .into_iter()
            .chain(["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(String::from))
            .collect(),
        Platform::Macos => {
            ["/opt/homebrew/bin", "/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"].map(String::from).to_vec()
        }
    };
    for dir in usual {
        if !folders.contains(&dir) {
            folders.push(dir);
        }
    }
    folders.join(":")
}

/// Whose PATH [`service_path`] is, for messages.
pub(super) fn path_owner(platform: Platform) -> &'static str {
    match platform {
        Platform::Linux => "the systemd unit's PATH",
        Platform::Macos => "the LaunchAgent's PATH",
    }
}

fn path_string(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_path_starts_with_meshctls_folder_and_holds_each_folder_once() {
        let home = Path::new("/home/al");
        let table = [
            (
                Platform::Linux,
                "/home/al/.cargo/bin/meshctl",
                "/home/al/.cargo/bin:/home/al/.local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            ),
            (
                Platform::Linux,
                "/usr/local/bin/meshctl",
                "/usr/local/bin:/home/al/.local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
            ),
            (
                Platform::Macos,
                "/opt/homebrew/bin/meshctl",
                "/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            ),
            (
                Platform::Macos,
                "/Users/al/bin/meshctl",
                "/Users/al/bin:/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            ),
        ];
        for (platform, binary, expected) in table {
            assert_eq!(service_path(platform, Path::new(binary), home), expected, "{platform:?} {binary}");
        }
        assert_eq!(path_owner(Platform::Linux), "the systemd unit's PATH");
        assert_eq!(path_owner(Platform::Macos), "the LaunchAgent's PATH");
    }
}
