//! Health checks: one http or tcp probe, and how a series of verdicts moves a
//! unit between Starting, Running and Unhealthy.

use std::time::Duration;

use tokio::time::Instant;

use super::spec::Probe;
use super::status::Phase;
use crate::net::root_cause;

/// A just-started process gets the time of this many failed probes at its
/// interval before it counts as unhealthy: servers take a moment to listen.
const START_FAILURES: u32 = 3;

/// How often a process that has not answered yet is probed (at most): a
/// server is Ready within a second of listening, not a whole interval later.
pub(super) const STARTING_INTERVAL: Duration = Duration::from_secs(1);

/// The client the http probes share. It ignores proxy settings (a probe asks
/// the Service itself) and keeps no idle connections, so each probe proves the
/// server still accepts new ones.
pub(super) fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder().no_proxy().pool_max_idle_per_host(0).build()
}

pub(super) fn interval(probe: &Probe) -> Duration {
    match probe {
        Probe::Http { interval, .. } | Probe::Tcp { interval, .. } => *interval,
    }
}

/// Runs `probe` once: Ok when healthy, else why not.
pub(super) async fn check(probe: &Probe, http: &reqwest::Client) -> Result<(), String> {
    match probe {
        Probe::Http { host, port, path, timeout, .. } => {
            let url = url(host, *port, path);
            match http.get(&url).timeout(*timeout).send().await {
                Ok(answer) if answer.status().is_success() => Ok(()),
                Ok(answer) => Err(format!("GET {url}: HTTP {}", answer.status())),
                Err(error) if error.is_timeout() => {
                    Err(format!("GET {url}: no answer within {}", humantime::format_duration(*timeout)))
                }
                Err(error) => Err(format!("GET {url}: {}", root_cause(&error))),
            }
        }
        Probe::Tcp { host, port, timeout, .. } => connect(host, *port, *timeout).await,
    }
}

/// The probe's port when something accepts TCP connections on it. Asked once
/// the unit's own process group is gone, an answer means a stranger holds it.
pub(super) async fn held_port(probe: &Probe) -> Option<u16> {
    let (Probe::Http { host, port, timeout, .. } | Probe::Tcp { host, port, timeout, .. }) = probe;
    connect(host, *port, *timeout).await.ok().map(|()| *port)
}

/// A TCP connection to `host:port` within `timeout`, or why not.
async fn connect(host: &str, port: u16, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port))).await {
        Ok(Ok(_connection)) => Ok(()),
        Ok(Err(error)) => Err(format!("tcp {host}:{port}: {error}")),
        Err(_elapsed) => {
            Err(format!("tcp {host}:{port}: no connection within {}", humantime::format_duration(timeout)))
        }
    }
}

/// `http://host:port/path`, with an IPv6 address in brackets and the path
/// starting with a slash.
fn url(host: &str, port: u16, path: &str) -> String {
    let host = if host.contains(':') { format!("[{host}]") } else { host.to_owned() };
    let slash = if path.starts_with('/') { "" } else { "/" };
    format!("http://{host}:{port}{slash}{path}")
}

/// The innermost error, e.g. "Connection refused (os error 111)": reqwest's
/// own layers only repeat the url.
/// Turns probe verdicts into a phase: Starting until the first success (or
/// until the start grace has passed), then Running while probes pass and
/// Unhealthy when one fails; and says when to probe next.
pub(super) struct HealthTracker {
    healthy_once: bool,
    /// When the first probe ran.
    first_probe: Option<Instant>,
    /// How long after the first probe a process that never answered is
    /// unhealthy: as long as [`START_FAILURES`] probes at its interval take.
    grace: Duration,
    interval: Duration,
}

impl HealthTracker {
    pub(super) fn new(interval: Duration) -> HealthTracker {
        let grace = interval.saturating_mul(START_FAILURES - 1);
        HealthTracker { healthy_once: false, first_probe: None, grace, interval }
    }

    /// The phase after a probe that ran at `now`.
    pub(super) fn observe(&mut self, healthy: bool, now: Instant) -> Phase {
        let first_probe = *self.first_probe.get_or_insert(now);
        if healthy {
            self.healthy_once = true;
            return Phase::Running;
        }
        if self.healthy_once || now.saturating_duration_since(first_probe) >= self.grace {
            Phase::Unhealthy
        } else {
            Phase::Starting
        }
    }

    /// The wait before the next probe: short until the process first answers.
    pub(super) fn next_probe_in(&self) -> Duration {
        if self.healthy_once { self.interval } else { STARTING_INTERVAL.min(self.interval) }
    }

    /// Whether the process passed its probe at least once.
    pub(super) fn became_healthy(&self) -> bool {
        self.healthy_once
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The phases of probes at the seconds of `at` with the verdicts of `ok`,
    /// and the wait after each, for a probe interval of 10 s.
    fn run(probes: &[(u64, bool)]) -> (Vec<Phase>, Vec<u64>) {
        let start = Instant::now();
        let mut health = HealthTracker::new(Duration::from_secs(10));
        probes
            .iter()
            .map(|&(at, ok)| (health.observe(ok, start + Duration::from_secs(at)), health.next_probe_in().as_secs()))
            .unzip()
    }

    #[test]
    fn a_new_process_is_probed_each_second_with_the_grace_of_three_intervals_probes() {
        let (phases, waits) = run(&[(0, false), (1, false), (19, false), (20, false)]);
        assert_eq!(phases, [Phase::Starting, Phase::Starting, Phase::Starting, Phase::Unhealthy]);
        assert_eq!(waits, [1, 1, 1, 1]);
    }

    #[test]
    fn after_its_first_success_it_is_probed_at_its_interval_and_one_failure_makes_it_unhealthy() {
        let (phases, waits) = run(&[(0, false), (1, true), (11, false), (21, true)]);
        assert_eq!(phases, [Phase::Starting, Phase::Running, Phase::Unhealthy, Phase::Running]);
        assert_eq!(waits, [1, 10, 10, 10]);
    }

    #[test]
    fn urls_bracket_ipv6_hosts_and_start_paths_with_a_slash() {
        assert_eq!(url("127.0.0.1", 80, "/health"), "http://127.0.0.1:80/health");
        assert_eq!(url("::1", 8080, "health"), "http://[::1]:8080/health");
        assert_eq!(url("agent-home-mini", 11434, ""), "http://agent-home-mini:11434/");
    }

    #[tokio::test]
    async fn probes_fail_with_a_reason_when_nothing_listens() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let timeout = Duration::from_secs(2);
        let host = "127.0.0.1".to_owned();
        let interval = Duration::from_secs(1);
        let tcp = Probe::Tcp { host: host.clone(), port, interval, timeout };
        let http = Probe::Http { host, port, path: "/".into(), interval, timeout };
        let client = client().unwrap();
        let tcp_error = check(&tcp, &client).await.unwrap_err();
        assert!(tcp_error.starts_with(&format!("tcp 127.0.0.1:{port}: ")), "{tcp_error}");
        let http_error = check(&http, &client).await.unwrap_err();
        assert!(http_error.starts_with(&format!("GET http://127.0.0.1:{port}/: ")), "{http_error}");
    }

    #[tokio::test]
    async fn a_tcp_probe_passes_when_something_listens() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let probe = Probe::Tcp {
            host: "127.0.0.1".into(),
            port,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
        };
        assert_eq!(check(&probe, &client().unwrap()).await, Ok(()));
    }
}
