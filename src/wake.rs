//! Wake-on-LAN: the magic packet that wakes a sleeping Node, sending it over
//! UDP to the address and port its `wake` names, whether this machine is on
//! that LAN, and asking a Tailscale peer on it to send one (its PeerAPI).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs as _, UdpSocket};
use std::time::Duration;

use anyhow::Context as _;

use crate::manifest::MacAddress;
use crate::manifest::kinds::NodeWake;
use crate::net::IpPrefix;
use crate::sys::InterfaceAddress;

/// The length of a magic packet: 6 bytes of 0xFF, then the MAC 16 times.
pub(crate) const MAGIC_PACKET_LEN: usize = 6 + 16 * 6;

/// The packet a network card set to wake on LAN listens for.
pub(crate) fn magic_packet(mac: &MacAddress) -> [u8; MAGIC_PACKET_LEN] {
    let mut packet = [0xFF; MAGIC_PACKET_LEN];
    for copy in packet[6..].chunks_exact_mut(6) {
        copy.copy_from_slice(&mac.octets);
    }
    packet
}

/// What was sent, and where.
#[derive(Debug)]
pub(crate) struct Sent {
    pub(crate) to: SocketAddr,
    pub(crate) bytes: usize,
}

/// Sends the magic packet for `wake` once, broadcast allowed (the usual
/// address is the LAN's broadcast address). Blocking: for the command line.
pub(crate) fn send(wake: &NodeWake) -> anyhow::Result<Sent> {
    let address = wake.address.value.as_str();
    let to = (address, wake.port.0)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve wake address {address}"))?
        .next()
        .with_context(|| format!("wake address {address} resolves to no address"))?;
    let local = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let socket = UdpSocket::bind(local).context("cannot open a UDP socket")?;
    socket.set_broadcast(true).context("cannot allow broadcast on the UDP socket")?;
    let bytes = socket.send_to(&magic_packet(&wake.mac), to).with_context(|| format!("cannot send to {to}"))?;
    Ok(Sent { to, bytes })
}

/// Sends the magic packet for `mac` once to `to`, broadcast allowed, from
/// the async runtime.
pub(crate) async fn send_async(mac: &MacAddress, to: SocketAddr) -> std::io::Result<usize> {
    let local: SocketAddr = if to.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socket = tokio::net::UdpSocket::bind(local).await?;
    socket.set_broadcast(true)?;
    socket.send_to(&magic_packet(mac), to).await
}

/// Whether a packet to `wake_address` stays on a link of this machine: some
/// interface's network contains it (its broadcast address, or a host on it).
/// An interface without a netmask counts for its own address only.
pub(crate) fn on_lan(interfaces: &[InterfaceAddress], wake_address: IpAddr) -> bool {
    interfaces.iter().any(|interface| {
        let network = interface.netmask.and_then(|mask| IpPrefix::of_interface(interface.address, mask));
        match network {
            Some(network) => network.contains(wake_address),
            None => interface.address.to_canonical() == wake_address.to_canonical(),
        }
    })
}

/// How long a Tailscale peer gets to answer a Wake-on-LAN request.
pub(crate) const RELAY_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks the Tailscale peer whose PeerAPI is at `peerapi` to send the magic
/// packet for `mac` on its LAN: `POST /v0/wol` with the form field `mac`.
/// The peer lets in a node of the same user (or one granted the
/// `wake-on-lan` peer capability) by the tailnet address the request comes
/// from, so no key is sent; it broadcasts on each of its IPv4 interfaces and
/// answers `{"SentTo": [interface…], "Errors": [message…]}`. The interfaces
/// it sent on, or why it sent on none.
pub(crate) async fn relay(http: &reqwest::Client, peerapi: &str, mac: &MacAddress) -> anyhow::Result<Vec<String>> {
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "PascalCase", default)]
    struct Answer {
        sent_to: Option<Vec<String>>,
        errors: Option<Vec<String>>,
    }
    let url = format!("{}/v0/wol", peerapi.trim_end_matches('/'));
    let hex: Vec<String> = mac.octets.iter().map(|octet| format!("{octet:02x}")).collect();
    let body = format!("mac={}", hex.join("%3A"));
    let response = http
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .timeout(RELAY_TIMEOUT)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let text = response.text().await.with_context(|| format!("POST {url}: reading the answer"))?;
    anyhow::ensure!(status.is_success(), "POST {url} answered {status}: {}", text.trim());
    let answer: Answer =
        serde_json::from_str(&text).with_context(|| format!("POST {url}: not a Wake-on-LAN answer: {text}"))?;
    let sent_to = answer.sent_to.unwrap_or_default();
    if sent_to.is_empty() {
        let errors = answer.errors.unwrap_or_default();
        anyhow::bail!(
            "POST {url}: sent on no interface: {}",
            if errors.is_empty() { "no IPv4 interface".to_owned() } else { errors.join("; ") }
        );
    }
    Ok(sent_to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_magic_packet_is_six_ff_then_the_mac_sixteen_times() {
        // (MAC as written, its bytes)
        let cases = [
            ("aa:bb:cc:dd:ee:ff", [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]),
            ("00-11-22-33-44-55", [0x00, 0x11, 0x22, 0x33, 0x44, 0x55]),
            ("A0:b1:C2:d3:E4:f5", [0xa0, 0xb1, 0xc2, 0xd3, 0xe4, 0xf5]),
            ("ff:ff:ff:ff:ff:ff", [0xff; 6]),
        ];
        for (text, octets) in cases {
            let packet = magic_packet(&MacAddress::parse(text).expect("a valid MAC"));
            assert_eq!(packet.len(), 102, "{text}");
            assert_eq!(packet[..6], [0xFF; 6], "{text}");
            for (index, copy) in packet[6..].chunks(6).enumerate() {
                assert_eq!(copy, octets, "{text}: copy {index}");
            }
        }
    }

    #[test]
    fn a_wake_address_is_on_the_lan_of_an_interface_whose_network_holds_it() {
        let interface = |name: &str, address: &str, mask: Option<&str>| InterfaceAddress {
            interface: name.into(),
            address: address.parse().unwrap(),
            netmask: mask.map(|mask| mask.parse().unwrap()),
        };
        let machine = [
            interface("lo", "127.0.0.1", Some("255.0.0.0")),
            interface("en0", "192.168.1.20", Some("255.255.255.0")),
            interface("en0", "fe80::1", Some("ffff:ffff:ffff:ffff::")),
            interface("utun3", "100.101.1.2", None),
        ];
        // (wake address, on the LAN)
        let table = [
            ("192.168.1.255", true),
            ("192.168.1.77", true),
            ("127.0.0.1", true),
            ("fe80::aabb:ccff:fedd:eeff", true),
            ("100.101.1.2", true),
            ("100.101.1.3", false),
            ("192.168.2.255", false),
            ("192.0.2.255", false),
            ("255.255.255.255", false),
        ];
        for (address, expected) in table {
            assert_eq!(on_lan(&machine, address.parse().unwrap()), expected, "{address}");
        }
        assert!(!on_lan(&[], "127.0.0.1".parse().unwrap()), "no interfaces, no LAN");
    }
}
