//! A network namespace joined to the bench's own by a veth pair, as a machine
//! on a LAN whose link the bench can cut (`ip link set down` on the pair's
//! inner end). Needs root and iproute2 (`ip`).

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

/// The namespace and the pair, deleted when dropped (even on a panic).
pub(crate) struct Namespace {
    pub name: String,
    /// The pair's end in the bench's namespace, then its end inside.
    veth: [String; 2],
    /// The addresses of the outer end: other machines on the same LAN.
    pub outside: [Ipv4Addr; 2],
    /// The address of the inner end: the machine inside.
    pub inside: Ipv4Addr,
}

impl Namespace {
    /// Why no namespace can be made here (not root, or no working `ip netns`);
    /// `None` when one can.
    pub(crate) fn unavailable() -> Option<String> {
        // SAFETY: geteuid reads a number and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Some("not root".to_owned());
        }
        match Command::new(ip_command()).args(["netns", "list"]).output() {
            Ok(output) if output.status.success() => None,
            Ok(output) => Some(format!("`ip netns list` failed: {}", String::from_utf8_lossy(&output.stderr).trim())),
            Err(error) => Some(format!("cannot run `ip` ({error}): install iproute2")),
        }
    }

    pub(crate) fn new() -> Namespace {
        let pid = std::process::id();
        let subnet = u8::try_from(pid % 250).expect("below 250");
        let at = |host| Ipv4Addr::new(10, 214, subnet, host);
        let namespace = Namespace {
            name: format!("bench-sleep-{pid}"),
            veth: [format!("bs-out-{pid}"), format!("bs-in-{pid}")],
            outside: [at(1), at(3)],
            inside: at(2),
        };
        let [outer, inner] = &namespace.veth;
        ip(&["netns", "add", &namespace.name]);
        ip(&["link", "add", outer, "type", "veth", "peer", "name", inner, "netns", &namespace.name]);
        for address in namespace.outside {
            ip(&["addr", "add", &format!("{address}/29"), "dev", outer]);
        }
        ip(&["link", "set", outer, "up"]);
        namespace.inside_ip(&["addr", "add", &format!("{}/29", namespace.inside), "dev", inner]);
        namespace.inside_ip(&["link", "set", "lo", "up"]);
        namespace.set_link(true);
        namespace
    }

    /// Brings the inner end of the pair up or down: the machine inside gains
    /// or loses its link; the outer addresses stay usable.
    pub(crate) fn set_link(&self, up: bool) {
        self.inside_ip(&["link", "set", &self.veth[1], if up { "up" } else { "down" }]);
    }

    /// Moves the calling thread into the namespace (a socket it binds then
    /// lives there).
    #[cfg(target_os = "linux")]
    pub(crate) fn enter(&self) {
        use std::os::fd::AsRawFd as _;
        let path = Path::new("/var/run/netns").join(&self.name);
        let file = std::fs::File::open(path).expect("open the network namespace");
        // SAFETY: setns takes a descriptor we hold open and a flag.
        let entered = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(entered, 0, "enter network namespace {}: {}", self.name, std::io::Error::last_os_error());
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn enter(&self) {
        panic!("network namespace {}: there are network namespaces on Linux only", self.name);
    }

    fn inside_ip(&self, args: &[&str]) {
        let mut all = vec!["netns", "exec", &self.name, ip_command()];
        all.extend(args);
        ip(&all);
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Deleting the namespace deletes the inner end, and the pair with it.
        let _ = Command::new(ip_command()).args(["netns", "del", &self.name]).output();
        let _ = Command::new(ip_command()).args(["link", "del", &self.veth[0]]).output();
    }
}

/// Runs `ip args…`, which must succeed.
fn ip(args: &[&str]) {
    let output = Command::new(ip_command()).args(args).output().expect("`ip` runs");
    assert!(output.status.success(), "`ip {}` failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
}

/// `ip` of iproute2: `/usr/sbin/ip` where it is, else whatever PATH finds.
pub(crate) fn ip_command() -> &'static str {
    if Path::new("/usr/sbin/ip").exists() { "/usr/sbin/ip" } else { "ip" }
}
