//! Feeds arbitrary bytes to the tunnel frame decoder: it must never panic,
//! and whatever it decodes must re-encode to the bytes it consumed.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = burrow_proto::decode_preface(data);
    if let Ok(Some((frame, n))) = burrow_proto::decode(data) {
        let mut out = bytes::BytesMut::new();
        burrow_proto::encode(&frame, &mut out).expect("a decoded frame re-encodes");
        assert_eq!(&out[..], &data[..n], "decode/encode round trip differs");
    }
});
