//! Plain HTTP plumbing every client of the crate shares: one client builder,
//! `host:port` and the innermost cause of a transport error. A leaf: it
//! imports nothing else from the crate.

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
}
