//! A real OpenSSH server (Debian's `openssh-server`) on a free loopback port,
//! with host and user keys made for the test, serving Git over SSH as any
//! server does; and an ssh config file naming it by a `Host` alias, as a user
//! writes one.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use super::wait::eventually_within;

/// How long sshd may take to listen and write its pid.
const START_PATIENCE: Duration = Duration::from_secs(10);

/// A running `sshd`; dropping it stops it.
pub(crate) struct Sshd {
    dir: TempDir,
    pid: libc::pid_t,
    pub port: u16,
}

impl Sshd {
    /// The `Host` alias of [`Sshd::ssh_config`].
    pub(crate) const ALIAS: &str = "mesh-remote";

    /// Starts `/usr/sbin/sshd` on 127.0.0.1, accepting the user key only.
    pub(crate) fn start() -> Sshd {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = |name: &str| dir.path().join(name);
        for key in ["host_key", "user_key"] {
            run("ssh-keygen", &["-q", "-t", "ed25519", "-N", "", "-f", &shown(&path(key))]);
        }
        std::fs::copy(path("user_key.pub"), path("authorized_keys")).expect("authorized_keys");
        // The privilege separation folder Debian's sshd expects.
        std::fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()).expect("free port").port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nStrictModes no\nUsePAM no\nPidFile {}\n",
            shown(&path("host_key")),
            shown(&path("authorized_keys")),
            shown(&path("sshd.pid")),
        );
        std::fs::write(path("sshd_config"), config).expect("write sshd_config");
        let user = std::env::var("USER").ok().filter(|user| !user.is_empty()).unwrap_or_else(|| "root".into());
        let client = format!(
            "Host {}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {}\n  IdentitiesOnly yes\n  \
             UserKnownHostsFile {}\n  StrictHostKeyChecking accept-new\n",
            Sshd::ALIAS,
            shown(&path("user_key")),
            shown(&path("known_hosts")),
        );
        std::fs::write(path("ssh_config"), client).expect("write ssh_config");
        // It forks into the background once it listens.
        run("/usr/sbin/sshd", &["-f", &shown(&path("sshd_config")), "-E", &shown(&path("sshd.log"))]);
        let pid = eventually_within(START_PATIENCE, "sshd listens", || {
            let pid =
                std::fs::read_to_string(path("sshd.pid")).ok().and_then(|pid| pid.trim().parse::<libc::pid_t>().ok());
            match pid.filter(|_| TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()) {
                Some(pid) => Ok(pid),
                None => Err(format!("its log: {}", std::fs::read_to_string(path("sshd.log")).unwrap_or_default())),
            }
        });
        Sshd { dir, pid, port }
    }

    /// An ssh config file with `Host` [`Sshd::ALIAS`]: the address, port, user,
    /// key and known-hosts file are all there, none in the Git URL.
    pub(crate) fn ssh_config(&self) -> PathBuf {
        self.dir.path().join("ssh_config")
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        // SAFETY: kill takes plain integers and touches no memory.
        unsafe { libc::kill(self.pid, libc::SIGTERM) };
    }
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

fn run(program: &str, args: &[&str]) {
    let output = Command::new(program).args(args).output().unwrap_or_else(|error| panic!("{program} runs: {error}"));
    assert!(output.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}
