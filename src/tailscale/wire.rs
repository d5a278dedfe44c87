//! The LocalAPI's JSON, as tailscaled writes it (Go's encoding: PascalCase field
//! names, nil slices and maps as `null`), and its conversion to the domain
//! types. Only the fields we use are declared; serde skips the rest, so a newer
//! tailscaled that adds fields still parses. `tailscale status --json` and
//! `tailscale whois --json` print the same structs.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer};

use super::{Identity, TailnetPeer, TailnetStatus};
use crate::net::IpPrefix;

/// `GET /localapi/v0/status` (ipnstate.Status).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct Status {
    backend_state: String,
    #[serde(rename = "TailscaleIPs", deserialize_with = "nullable")]
    tailscale_ips: Vec<IpAddr>,
    #[serde(rename = "Self")]
    this_node: Option<PeerStatus>,
    /// Deprecated upstream in favour of `CurrentTailnet.MagicDNSSuffix`.
    #[serde(rename = "MagicDNSSuffix")]
    magic_dns_suffix: String,
    current_tailnet: Option<CurrentTailnet>,
    /// Keyed by node public key; `null` when there are no peers.
    #[serde(deserialize_with = "nullable")]
    peer: BTreeMap<String, PeerStatus>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CurrentTailnet {
    #[serde(rename = "MagicDNSSuffix")]
    magic_dns_suffix: String,
}

/// ipnstate.PeerStatus, for `Self` and each peer.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct PeerStatus {
    host_name: String,
    #[serde(rename = "DNSName")]
    dns_name: String,
    #[serde(rename = "TailscaleIPs", deserialize_with = "nullable")]
    tailscale_ips: Vec<IpAddr>,
    #[serde(deserialize_with = "nullable")]
    tags: Vec<String>,
    online: bool,
    /// The subnet routes it serves; absent when none.
    #[serde(deserialize_with = "nullable")]
    primary_routes: Vec<String>,
    #[serde(rename = "AllowedIPs", deserialize_with = "nullable")]
    allowed_ips: Vec<String>,
    #[serde(rename = "PeerAPIURL", deserialize_with = "nullable")]
    peerapi_url: Vec<String>,
}

/// `GET /localapi/v0/whois` (apitype.WhoIsResponse).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct WhoIs {
    node: Node,
    user_profile: UserProfile,
}

/// tailcfg.Node.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Node {
    /// The MagicDNS name with a trailing dot.
    name: String,
    #[serde(deserialize_with = "nullable")]
    tags: Vec<String>,
}

/// tailcfg.UserProfile.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct UserProfile {
    login_name: String,
    display_name: String,
}

impl From<Status> for TailnetStatus {
    fn from(status: Status) -> Self {
        let self_dns_name = status.this_node.as_ref().map(|node| node.dns_name.trim_end_matches('.').to_owned());
        let self_ips = if status.tailscale_ips.is_empty() {
            status.this_node.map(|node| node.tailscale_ips).unwrap_or_default()
        } else {
            status.tailscale_ips
        };
        let suffix = status
            .current_tailnet
            .map(|tailnet| tailnet.magic_dns_suffix)
            .filter(|suffix| !suffix.is_empty())
            .unwrap_or(status.magic_dns_suffix);
        let mut peers: Vec<TailnetPeer> = status.peer.into_values().map(TailnetPeer::from).collect();
        peers.sort_by(|a, b| a.dns_name.cmp(&b.dns_name));
        TailnetStatus {
            running: status.backend_state == "Running",
            self_ips,
            magic_dns_suffix: Some(suffix.trim_matches('.').to_owned()).filter(|s| !s.is_empty()),
            self_dns_name: self_dns_name.filter(|name| !name.is_empty()),
            peers,
        }
    }
}

impl From<PeerStatus> for TailnetPeer {
    fn from(peer: PeerStatus) -> Self {
        TailnetPeer {
            host_name: peer.host_name,
            dns_name: without_trailing_dot(peer.dns_name),
            ips: peer.tailscale_ips,
            online: peer.online,
            tags: peer.tags,
            routes: routes(&peer.primary_routes, &peer.allowed_ips),
            peerapi_urls: peer.peerapi_url,
        }
    }
}

impl From<WhoIs> for Identity {
    fn from(whois: WhoIs) -> Self {
        Identity {
            login: whois.user_profile.login_name,
            display_name: whois.user_profile.display_name,
            node_name: without_trailing_dot(whois.node.name),
            tags: whois.node.tags,
        }
    }
}

/// Every prefix of `primary` then `allowed` that parses, each once.
fn routes(primary: &[String], allowed: &[String]) -> Vec<IpPrefix> {
    let mut routes = Vec::new();
    for prefix in primary.iter().chain(allowed).filter_map(|text| IpPrefix::parse(text)) {
        if !routes.contains(&prefix) {
            routes.push(prefix);
        }
    }
    routes
}

/// MagicDNS names come fully qualified (`mini.tail1234.ts.net.`); we compare
/// and show them as people write them.
fn without_trailing_dot(mut name: String) -> String {
    if name.ends_with('.') {
        name.pop();
    }
    name
}

/// Go writes a nil slice or map as `null`; read that as empty.
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}
