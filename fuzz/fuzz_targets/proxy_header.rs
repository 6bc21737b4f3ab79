//! PROXY v1, PROXY v2 and Simple Proxy Protocol headers: any pair of
//! addresses encodes and parses back to the same pair (v1 and v2 read by
//! the `ppp` crate, an independent parser), and parsing arbitrary bytes
//! never panics.
#![no_main]

use burrow_proto::proxy_header::{
    parse_simple, proxy_header, simple_header, ProxyVersion, Transport,
};
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

fn addr(b: &[u8]) -> SocketAddr {
    let port = u16::from_be_bytes([b[0], b[1]]);
    if b[2] & 1 == 0 {
        SocketAddr::from(([b[3], b[4], b[5], b[6]], port))
    } else {
        let mut a = [0u8; 16];
        a.copy_from_slice(&b[3..19]);
        SocketAddr::new(IpAddr::V6(Ipv6Addr::from(a)), port)
    }
}

fn norm(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V6(v6) => SocketAddr::new(
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            a.port(),
        ),
        IpAddr::V4(_) => a,
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = parse_simple(data);
    let _ = ppp::v2::Header::try_from(data);
    if data.len() < 38 {
        return;
    }
    let (c, p) = (addr(&data[..19]), addr(&data[19..38]));
    let h = simple_header(c, p);
    let (c2, p2, rest) = parse_simple(&h).expect("own simple header parses");
    assert_eq!((c2, p2), (norm(c), norm(p)));
    assert!(rest.is_empty());
    let want = (norm(c), norm(p));
    for transport in [Transport::Stream, Transport::Datagram] {
        let v2 = proxy_header(ProxyVersion::V2, transport, c, p);
        let h = ppp::v2::Header::try_from(v2.as_slice()).expect("own v2 header parses");
        let got = match h.addresses {
            ppp::v2::Addresses::IPv4(a) => (
                SocketAddr::from((a.source_address, a.source_port)),
                SocketAddr::from((a.destination_address, a.destination_port)),
            ),
            ppp::v2::Addresses::IPv6(a) => (
                SocketAddr::from((a.source_address, a.source_port)),
                SocketAddr::from((a.destination_address, a.destination_port)),
            ),
            other => panic!("v2 header without the addresses: {other:?}"),
        };
        assert_eq!((norm(got.0), norm(got.1)), want, "v2 addresses");
    }
    let v1 = proxy_header(ProxyVersion::V1, Transport::Stream, c, p);
    let text = std::str::from_utf8(&v1).expect("v1 is text");
    let h = ppp::v1::Header::try_from(text).expect("own v1 header parses");
    let got = match h.addresses {
        ppp::v1::Addresses::Tcp4(a) => (
            SocketAddr::from((a.source_address, a.source_port)),
            SocketAddr::from((a.destination_address, a.destination_port)),
        ),
        ppp::v1::Addresses::Tcp6(a) => (
            SocketAddr::from((a.source_address, a.source_port)),
            SocketAddr::from((a.destination_address, a.destination_port)),
        ),
        ppp::v1::Addresses::Unknown => panic!("v1 header says UNKNOWN"),
    };
    assert_eq!((norm(got.0), norm(got.1)), want, "v1 addresses");
});
