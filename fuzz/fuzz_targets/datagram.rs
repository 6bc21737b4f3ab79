//! Feeds arbitrary bytes to the UDP-session datagram decoders: framed
//! (length-prefixed) and QUIC-datagram (flow-id tagged). They must never
//! panic, and what they decode must re-encode to the bytes consumed.
#![no_main]

use burrow_proto::datagram::{decode, encode, tag, untag, LEN_PREFIX};
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    let mut consumed = 0;
    while let Some(d) = decode(&mut buf) {
        let mut again = BytesMut::new();
        encode(&d, &mut again).expect("a decoded datagram fits");
        assert_eq!(&again[..], &data[consumed..consumed + LEN_PREFIX + d.len()]);
        consumed += LEN_PREFIX + d.len();
    }
    assert_eq!(&buf[..], &data[consumed..], "undecoded bytes must stay");
    if let Some((id, payload)) = untag(Bytes::copy_from_slice(data)) {
        assert_eq!(&tag(id, &payload)[..], data);
    }
});
