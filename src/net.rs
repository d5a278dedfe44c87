//! Plain network plumbing every client of the crate shares: one HTTP client
//! builder, `host:port`, the innermost cause of a transport error and IP
//! networks ([`IpPrefix`]). A leaf: it imports nothing else from the crate.

use std::net::IpAddr;
use std::time::Duration;

/// A host that has not taken the connection by then is treated as down. Long
/// enough for a tailnet path through a relay, short enough that a sleeping
/// laptop delays a failover by seconds, not by a whole call's timeout.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The builder every HTTP client of the crate starts from: `connect_timeout`
/// to take the connection, and no proxy from the environment, since every
/// peer, endpoint and daemon is reached at the address the manifests (or the
/// user) give and a proxy would break that, and would see the keys sent.
pub(crate) fn http_client(connect_timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder().connect_timeout(connect_timeout).no_proxy()
}

/// The innermost cause of a transport error: "Connection refused", not
/// "error sending request".
pub(crate) fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

/// `host:port`, with an IPv6 host in brackets.
pub(crate) fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// An IP network: an address and how many leading bits of it name the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpPrefix {
    pub address: IpAddr,
    pub len: u8,
}

impl IpPrefix {
    /// `192.168.1.0/24` or `fd7a::/48`; None for anything else.
    pub(crate) fn parse(text: &str) -> Option<IpPrefix> {
        let (address, len) = text.split_once('/')?;
        let address: IpAddr = address.parse().ok()?;
        let len: u8 = len.parse().ok()?;
        (len <= max_len(address)).then_some(IpPrefix { address, len })
    }

    /// The network of an interface's `address` and `netmask`, counting the
    /// mask's leading ones; None when the families differ.
    pub(crate) fn of_interface(address: IpAddr, netmask: IpAddr) -> Option<IpPrefix> {
        let len = match (address, netmask) {
            (IpAddr::V4(_), IpAddr::V4(mask)) => u32::from(mask).leading_ones(),
            (IpAddr::V6(_), IpAddr::V6(mask)) => u128::from(mask).leading_ones(),
            _ => return None,
        };
        Some(IpPrefix { address, len: u8::try_from(len).ok()? })
    }

    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.address.to_canonical(), ip.to_canonical()) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(network) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.len)).unwrap_or(0);
                u128::from(network) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    /// Whether it names one host only (`/32`, `/128`).
    pub(crate) fn is_host(&self) -> bool {
        self.len == max_len(self.address)
    }
}

fn max_len(address: IpAddr) -> u8 {
    if address.is_ipv4() { 32 } else { 128 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_brackets_a_bare_ipv6_host_only() {
        let table = [
            ("127.0.0.1", 80, "127.0.0.1:80"),
            ("mini.tail1234.ts.net", 8000, "mini.tail1234.ts.net:8000"),
            ("::1", 11434, "[::1]:11434"),
            ("[fd7a:115c:a1e0::1]", 1, "[fd7a:115c:a1e0::1]:1"),
        ];
        for (host, port, expected) in table {
            assert_eq!(host_port(host, port), expected, "{host}");
        }
    }

    #[test]
    fn root_cause_is_the_innermost_error() {
        #[derive(Debug, thiserror::Error)]
        #[error("error sending request")]
        struct Outer(#[source] std::io::Error);
        let error = Outer(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused"));
        assert_eq!(root_cause(&error), "Connection refused");
        assert_eq!(root_cause(&std::io::Error::other("alone")), "alone");
    }

    #[test]
    fn a_prefix_contains_the_addresses_of_its_network_only() {
        // (prefix, address, contained)
        let table = [
            ("192.168.1.0/24", "192.168.1.255", true),
            ("192.168.1.0/24", "192.168.1.7", true),
            ("192.168.1.0/24", "192.168.2.1", false),
            ("192.168.1.77/24", "192.168.1.1", true),
            ("127.0.0.0/8", "127.0.0.1", true),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("100.101.3.4/32", "100.101.3.4", true),
            ("100.101.3.4/32", "100.101.3.5", false),
            ("192.0.2.0/24", "::ffff:192.0.2.255", true),
            ("fd7a:115c:a1e0::/48", "fd7a:115c:a1e0::a01:304", true),
            ("fd7a:115c:a1e0::/48", "fd7a:115c:a1e1::1", false),
            ("192.168.1.0/24", "fd7a:115c:a1e0::1", false),
        ];
        for (prefix, address, contained) in table {
            let prefix = IpPrefix::parse(prefix).expect(prefix);
            assert_eq!(prefix.contains(address.parse().unwrap()), contained, "{prefix:?} {address}");
        }
    }

    #[test]
    fn a_prefix_parses_from_text_or_an_interfaces_netmask() {
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert_eq!(IpPrefix::parse("10.0.0.0/8"), Some(IpPrefix { address: ip("10.0.0.0"), len: 8 }));
        for bad in ["10.0.0.0", "10.0.0.0/33", "::/129", "mini/24", "10.0.0.0/x"] {
            assert_eq!(IpPrefix::parse(bad), None, "{bad}");
        }
        let of = |address: &str, mask: &str| IpPrefix::of_interface(ip(address), ip(mask)).map(|p| p.len);
        assert_eq!(of("192.168.1.20", "255.255.255.0"), Some(24));
        assert_eq!(of("127.0.0.1", "255.0.0.0"), Some(8));
        assert_eq!(of("fe80::1", "ffff:ffff:ffff:ffff::"), Some(64));
        assert_eq!(of("192.168.1.20", "ffff::"), None);
        assert!(IpPrefix::parse("100.101.3.4/32").unwrap().is_host());
        assert!(!IpPrefix::parse("192.0.2.0/24").unwrap().is_host());
    }
}
