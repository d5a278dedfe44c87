//! The peers: each answers where this node dials it, speaks our API version,
//! and keeps a clock close to ours.

use std::time::{Duration, SystemTime};

use super::check::{Check, TIMEOUT};
use crate::api::wire::{API_VERSION, Health};
use crate::manifest::ManifestSet;
use crate::net::{self, host_port, root_cause};
use crate::tailscale::TailnetStatus;

/// Clock skew with a peer above which a check warns, and fails.
const SKEW_WARN: Duration = Duration::from_secs(5);
const SKEW_FAIL: Duration = Duration::from_secs(60);

/// What asking a peer's `/mesh/health` found.
#[derive(Clone, Debug, PartialEq)]
enum PeerFound {
    Unreachable(String),
    Answered {
        api_version: String,
        version: String,
        /// The peer's clock minus ours, in seconds, from its `Date` header.
        skew: Option<f64>,
    },
}

/// A `peer/<name>` and, when it answered, a `clock/<name>` check per other Node.
pub(super) async fn peer_checks(
    set: &ManifestSet,
    node: &str,
    tailnet: Option<&TailnetStatus>,
    key: Option<&str>,
) -> Vec<Check> {
    let http = net::http_client(TIMEOUT).timeout(TIMEOUT).build().expect("a plain HTTP client builds");
    let peers = set.nodes.iter().filter(|(name, _)| name.as_str() != node);
    let asks = peers.map(|(name, object)| {
        let address = &object.spec.address.value;
        let tailnet_ip = tailnet.and_then(|t| t.peer_for(address)).and_then(|p| p.ips.iter().find(|ip| ip.is_ipv4()));
        let host = tailnet_ip.map_or_else(|| address.clone(), ToString::to_string);
        let dial = host_port(&host, object.spec.api_port.0);
        let http = http.clone();
        async move {
            let found = ask_peer(&http, &dial, key).await;
            let mut checks = vec![peer_check(name, &dial, &found)];
            if let PeerFound::Answered { skew: Some(skew), .. } = found {
                checks.push(clock_check(name, skew));
            }
            checks
        }
    });
    futures_util::future::join_all(asks).await.into_iter().flatten().collect()
}

async fn ask_peer(http: &reqwest::Client, dial: &str, key: Option<&str>) -> PeerFound {
    let request = http.get(format!("http://{dial}/mesh/health"));
    let request = match key {
        Some(key) => request.bearer_auth(key),
        None => request,
    };
    let sent = SystemTime::now();
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => return PeerFound::Unreachable(root_cause(&error)),
    };
    let received = SystemTime::now();
    let date = response.headers().get(reqwest::header::DATE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if !response.status().is_success() {
        return PeerFound::Unreachable(format!("it answered {}", response.status()));
    }
    let health: Health = match response.json().await {
        Ok(health) => health,
        Err(error) => return PeerFound::Unreachable(format!("not a mesh API: {}", root_cause(&error))),
    };
    let skew = date.as_deref().and_then(parse_http_date).map(|peer| skew_seconds(peer, sent, received));
    PeerFound::Answered { api_version: health.api_version, version: health.version, skew }
}

fn peer_check(name: &str, dial: &str, found: &PeerFound) -> Check {
    let check = format!("peer/{name}");
    match found {
        PeerFound::Unreachable(why) => Check::warn(
            &check,
            format!("{name} does not answer at {dial} ({why}); normal while it sleeps"),
            format!("if it should be up: start meshctl daemon on {name}, and check {dial} reaches it"),
        ),
        PeerFound::Answered { api_version, version, .. } if api_version != API_VERSION => Check::fail(
            &check,
            format!(
                "{name} at {dial} speaks mesh API {api_version} (meshctl {version}); this node speaks {API_VERSION}"
            ),
            "run the same meshctl version on every node",
        ),
        PeerFound::Answered { version, .. } => {
            Check::pass(&check, format!("{name} answers at {dial}: meshctl {version}, API {API_VERSION}"))
        }
    }
}

/// Clock skew in seconds (the peer's clock minus ours, measured from a `Date`
/// header of 1 s resolution, so up to about a second off).
fn clock_check(name: &str, skew: f64) -> Check {
    let check = format!("clock/{name}");
    let size = Duration::from_secs_f64(skew.abs());
    let direction = if skew > 0.0 { "ahead of" } else { "behind" };
    let message = format!("{name}'s clock is {:.0}s {direction} this node's (to within 1 s)", skew.abs());
    let fix = "turn on network time on both machines (macOS: System Settings > General > Date & Time)";
    if size > SKEW_FAIL {
        Check::fail(&check, message, fix)
    } else if size > SKEW_WARN {
        Check::warn(&check, message, fix)
    } else {
        Check::pass(&check, format!("{name}'s clock agrees with this node's to within {}s", SKEW_WARN.as_secs()))
    }
}

/// The peer's clock minus ours: its `Date` (truncated to the second, so half
/// a second is added) against the middle of the round trip.
fn skew_seconds(peer: SystemTime, sent: SystemTime, received: SystemTime) -> f64 {
    let seconds = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let ours = (seconds(sent) + seconds(received)) / 2.0;
    seconds(peer) + 0.5 - ours
}

/// An HTTP `Date` (IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`).
fn parse_http_date(text: &str) -> Option<SystemTime> {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let words: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = words.as_slice() else { return None };
    let month = MONTHS.iter().position(|m| m == month)? + 1;
    let day: u8 = day.parse().ok()?;
    humantime::parse_rfc3339(&format!("{year}-{month:02}-{day:02}T{time}Z")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::doctor::check::Status;

    #[test]
    fn clock_skew_passes_to_5_s_warns_to_60_s_and_fails_beyond() {
        let table = [
            (0.4, Status::Pass),
            (-5.0, Status::Pass),
            (5.6, Status::Warn),
            (-59.0, Status::Warn),
            (61.0, Status::Fail),
            (-3600.0, Status::Fail),
        ];
        for (skew, status) in table {
            assert_eq!(clock_check("mini", skew).status, status, "{skew}");
        }
        assert_eq!(clock_check("mini", -90.2).message, "mini's clock is 90s behind this node's (to within 1 s)");
    }

    #[test]
    fn skew_is_the_peer_date_against_the_middle_of_the_round_trip() {
        let at = |s: u64, ms: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s) + Duration::from_millis(ms);
        // Sent at 100.2 s, answered at 100.4 s: the peer's 100 s means 100.5 s.
        let skew = skew_seconds(at(100, 0), at(100, 200), at(100, 400));
        assert!((skew - 0.2).abs() < 1e-6, "{skew}");
        assert!((skew_seconds(at(40, 0), at(100, 0), at(100, 0)) + 59.5).abs() < 1e-6);
    }

    #[test]
    fn http_dates_are_read_and_anything_else_is_not() {
        let date = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(date.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(), 784_111_777);
        for text in ["Sunday, 06-Nov-94 08:49:37 GMT", "Sun, 06 Foo 1994 08:49:37 GMT", "", "Sun, 06 Nov 1994 08:49:37"]
        {
            assert_eq!(parse_http_date(text), None, "{text}");
        }
    }

    #[test]
    fn a_peer_that_does_not_answer_is_a_warning_and_another_api_version_fails() {
        let answered = |api: &str| PeerFound::Answered { api_version: api.into(), version: "0.2.0".into(), skew: None };
        let table = [
            (PeerFound::Unreachable("refused".into()), Status::Warn, "mini does not answer at mini:8000 (refused)"),
            (answered(API_VERSION), Status::Pass, "mini answers at mini:8000: meshctl 0.2.0, API v1"),
            (answered("v2"), Status::Fail, "mini at mini:8000 speaks mesh API v2 (meshctl 0.2.0)"),
        ];
        for (found, status, words) in table {
            let check = peer_check("mini", "mini:8000", &found);
            assert_eq!((check.name.as_str(), check.status), ("peer/mini", status));
            assert!(check.message.starts_with(words), "{check:?}");
        }
    }
}
