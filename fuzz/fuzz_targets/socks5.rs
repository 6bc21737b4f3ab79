//! Feeds arbitrary bytes to the SOCKS5 greeting, request and UDP header
//! parsers: they must never panic nor claim more bytes than given; a
//! parsed request and a parsed UDP header, encoded again, parse back to
//! the same value and length.
#![no_main]

use burrow_proto::socks5::{encode_request, parse_greeting, parse_request, parse_udp, udp_header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A UDP datagram's header parses within bounds and re-encodes the same.
    if let Ok((dest, at)) = parse_udp(data) {
        assert!(at <= data.len());
        let mut out = Vec::new();
        udp_header(&dest, &mut out);
        assert_eq!(parse_udp(&out), Ok((dest, out.len())));
    }
    if let Ok(Some((_, n))) = parse_greeting(data) {
        assert!(n <= data.len());
    }
    if let Ok(Some((req, n))) = parse_request(data) {
        assert!(n <= data.len());
        let mut out = Vec::new();
        encode_request(&req, &mut out);
        assert_eq!(out.len(), n, "the encoding is as long as what was read");
        assert_eq!(parse_request(&out), Ok(Some((req, n))));
    }
});
