//! Feeds arbitrary bytes to the SOCKS5 greeting and request parsers: they
//! must never panic nor claim more bytes than given, and a parsed request
//! re-encoded as its destination string parses back the same.
#![no_main]

use burrow_proto::socks5::{parse_greeting, parse_request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((_, n))) = parse_greeting(data) {
        assert!(n <= data.len());
    }
    if let Ok(Some((req, n))) = parse_request(data) {
        assert!(n <= data.len());
        let again = parse_request(&data[..n]).expect("same bytes parse again");
        assert_eq!(again, Some((req, n)));
    }
});
