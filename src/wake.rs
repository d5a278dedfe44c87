//! Wake-on-LAN: the magic packet that wakes a sleeping Node, and sending it
//! over UDP to the address and port its `wake` names.

use std::net::{ToSocketAddrs as _, UdpSocket};

use anyhow::Context as _;

use crate::manifest::MacAddress;
use crate::manifest::kinds::NodeWake;

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
    pub(crate) to: std::net::SocketAddr,
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
}
