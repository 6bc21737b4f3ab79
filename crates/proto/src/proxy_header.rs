//! Headers that tell an origin who the real client is.
//!
//! - PROXY protocol v1 (text, TCP) and v2 (binary, TCP and UDP), built with
//!   the `ppp` crate.
//! - Spectrum's Simple Proxy Protocol for UDP: 38 bytes before each
//!   datagram, network byte order: magic `0x56EC`, client address (16 bytes,
//!   IPv4 as IPv4-mapped IPv6), proxy address (16), client port (2), proxy
//!   port (2).
//!
//! When the client and proxy addresses are of different families, both are
//! written as IPv6 (IPv4-mapped), so a header never mixes families.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// Which PROXY protocol header to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyVersion {
    /// Text header `PROXY TCP4 …\r\n` (TCP only).
    V1,
    /// Binary header.
    V2,
}

/// Transport the v2 header describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP.
    Stream,
    /// UDP.
    Datagram,
}

/// Magic of the Simple Proxy Protocol header.
pub const SIMPLE_MAGIC: u16 = 0x56EC;
/// Length of the Simple Proxy Protocol header.
pub const SIMPLE_LEN: usize = 38;

fn mapped(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), a.port()),
        IpAddr::V6(_) => a,
    }
}

/// Puts both addresses in one family (IPv6 when they differ).
fn same_family(client: SocketAddr, proxy: SocketAddr) -> (SocketAddr, SocketAddr) {
    if client.is_ipv4() == proxy.is_ipv4() {
        (client, proxy)
    } else {
        (mapped(client), mapped(proxy))
    }
}

/// A PROXY protocol header for a connection from `client` that reached the
/// proxy at `proxy`.
pub fn proxy_header(
    version: ProxyVersion,
    transport: Transport,
    client: SocketAddr,
    proxy: SocketAddr,
) -> Vec<u8> {
    let (client, proxy) = same_family(client, proxy);
    match version {
        ProxyVersion::V1 => ppp::v1::Addresses::from((client, proxy))
            .to_string()
            .into_bytes(),
        ProxyVersion::V2 => {
            let protocol = match transport {
                Transport::Stream => ppp::v2::Protocol::Stream,
                Transport::Datagram => ppp::v2::Protocol::Datagram,
            };
            ppp::v2::Builder::with_addresses(
                ppp::v2::Version::Two | ppp::v2::Command::Proxy,
                protocol,
                (client, proxy),
            )
            .build()
            .expect("a header with two addresses of one family always builds")
        }
    }
}

/// The Simple Proxy Protocol header for a datagram from `client` that
/// reached the proxy at `proxy`.
pub fn simple_header(client: SocketAddr, proxy: SocketAddr) -> [u8; SIMPLE_LEN] {
    let mut out = [0u8; SIMPLE_LEN];
    out[0..2].copy_from_slice(&SIMPLE_MAGIC.to_be_bytes());
    let v6 = |a: SocketAddr| match a.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    out[2..18].copy_from_slice(&v6(client).octets());
    out[18..34].copy_from_slice(&v6(proxy).octets());
    out[34..36].copy_from_slice(&client.port().to_be_bytes());
    out[36..38].copy_from_slice(&proxy.port().to_be_bytes());
    out
}

/// Reads a Simple Proxy Protocol header: `(client, proxy, payload)`, or
/// `None` when `datagram` does not start with one. IPv4-mapped addresses
/// come back as IPv4.
pub fn parse_simple(datagram: &[u8]) -> Option<(SocketAddr, SocketAddr, &[u8])> {
    let head = datagram.get(..SIMPLE_LEN)?;
    if head[0..2] != SIMPLE_MAGIC.to_be_bytes() {
        return None;
    }
    let ip = |b: &[u8]| {
        let mut a = [0u8; 16];
        a.copy_from_slice(b);
        let v6 = Ipv6Addr::from(a);
        v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
    };
    let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    let client = SocketAddr::new(ip(&head[2..18]), port(&head[34..36]));
    let proxy = SocketAddr::new(ip(&head[18..34]), port(&head[36..38]));
    Some((client, proxy, &datagram[SIMPLE_LEN..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn v1_is_the_text_haproxy_expects() {
        let h = proxy_header(
            ProxyVersion::V1,
            Transport::Stream,
            "192.0.2.7:40000".parse().unwrap(),
            "198.51.100.1:25".parse().unwrap(),
        );
        assert_eq!(h, b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n");
    }

    #[test]
    fn v2_parses_back_with_the_same_addresses() {
        let client: SocketAddr = "[2001:db8::7]:40000".parse().unwrap();
        let proxy: SocketAddr = "[2001:db8::1]:25".parse().unwrap();
        let h = proxy_header(ProxyVersion::V2, Transport::Stream, client, proxy);
        let parsed = ppp::v2::Header::try_from(h.as_slice()).unwrap();
        assert_eq!(parsed.addresses, ppp::v2::Addresses::from((client, proxy)));
        assert_eq!(parsed.protocol, ppp::v2::Protocol::Stream);
    }

    #[test]
    fn mixed_families_become_ipv6() {
        let h = proxy_header(
            ProxyVersion::V1,
            Transport::Stream,
            "192.0.2.7:1".parse().unwrap(),
            "[2001:db8::1]:2".parse().unwrap(),
        );
        assert_eq!(h, b"PROXY TCP6 ::ffff:192.0.2.7 2001:db8::1 1 2\r\n");
    }

    #[test]
    fn simple_header_layout() {
        let h = simple_header(
            "192.0.2.7:4000".parse().unwrap(),
            "198.51.100.1:53".parse().unwrap(),
        );
        assert_eq!(&h[0..2], &[0x56, 0xEC]);
        assert_eq!(
            &h[2..18],
            &Ipv6Addr::from([0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0207]).octets()
        );
        assert_eq!(&h[34..36], &4000u16.to_be_bytes());
        assert_eq!(&h[36..38], &53u16.to_be_bytes());
    }

    fn addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(a, p)| SocketAddr::from((a, p))),
            (any::<[u8; 16]>(), any::<u16>()).prop_map(|(a, p)| SocketAddr::from((a, p))),
        ]
    }

    proptest! {
        #[test]
        fn simple_round_trips(c in addr(), p in addr(), payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut d = simple_header(c, p).to_vec();
            d.extend_from_slice(&payload);
            let (c2, p2, rest) = parse_simple(&d).unwrap();
            let norm = |a: SocketAddr| match a.ip() {
                IpAddr::V6(v6) => SocketAddr::new(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4), a.port()),
                IpAddr::V4(_) => a,
            };
            prop_assert_eq!(c2, norm(c));
            prop_assert_eq!(p2, norm(p));
            prop_assert_eq!(rest, &payload[..]);
        }

        #[test]
        fn v2_round_trips(c in addr(), p in addr(), udp in any::<bool>()) {
            let t = if udp { Transport::Datagram } else { Transport::Stream };
            let h = proxy_header(ProxyVersion::V2, t, c, p);
            let parsed = ppp::v2::Header::try_from(h.as_slice()).unwrap();
            let (c, p) = same_family(c, p);
            prop_assert_eq!(parsed.addresses, ppp::v2::Addresses::from((c, p)));
        }
    }
}
