//! UDP datagrams on a flow stream: after `StreamAccepted`, a
//! [`FlowKind::Udp`](crate::FlowKind::Udp) stream carries one frame per
//! datagram, in both directions: a 2-byte big-endian length, then that many
//! bytes. Datagrams are never merged or split; an empty datagram is a valid
//! frame. Pure functions; the caller owns the buffers.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Largest datagram carried (the largest a `u16` length can say).
pub const MAX_DATAGRAM: usize = u16::MAX as usize;
/// Bytes before each datagram.
pub const LEN_PREFIX: usize = 2;

/// A datagram longer than [`MAX_DATAGRAM`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("datagram of {0} bytes is longer than the maximum {MAX_DATAGRAM}")]
pub struct TooLong(pub usize);

/// Appends one framed datagram to `out`.
///
/// # Errors
/// [`TooLong`] when `payload` exceeds [`MAX_DATAGRAM`]; `out` is unchanged.
pub fn encode(payload: &[u8], out: &mut BytesMut) -> Result<(), TooLong> {
    let len = u16::try_from(payload.len()).map_err(|_| TooLong(payload.len()))?;
    out.reserve(LEN_PREFIX + payload.len());
    out.put_u16(len);
    out.put_slice(payload);
    Ok(())
}

/// Takes the next whole datagram off the front of `buf`, or `None` when
/// `buf` does not hold one yet (the caller reads more and calls again).
/// Never fails: every length is valid.
pub fn decode(buf: &mut BytesMut) -> Option<Bytes> {
    if buf.len() < LEN_PREFIX {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
    if buf.len() < LEN_PREFIX + len {
        // Make room for the rest of this datagram at once.
        buf.reserve(LEN_PREFIX + len - buf.len());
        return None;
    }
    buf.advance(LEN_PREFIX);
    Some(buf.split_to(len).freeze())
}

/// Bytes of the flow id before a datagram sent as a QUIC datagram.
pub const FLOW_TAG: usize = 8;

/// A UDP-session datagram as one QUIC datagram: the flow id (8 bytes, big
/// endian), then the payload.
pub fn tag(flow_id: u64, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(FLOW_TAG + payload.len());
    b.put_u64(flow_id);
    b.put_slice(payload);
    b.freeze()
}

/// Splits a QUIC datagram into flow id and payload; `None` when shorter
/// than the tag.
pub fn untag(mut datagram: Bytes) -> Option<(u64, Bytes)> {
    if datagram.len() < FLOW_TAG {
        return None;
    }
    let id = datagram.get_u64();
    Some((id, datagram))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_and_largest_datagrams_frame() {
        let mut b = BytesMut::new();
        encode(b"", &mut b).unwrap();
        encode(&vec![7u8; MAX_DATAGRAM], &mut b).unwrap();
        assert_eq!(decode(&mut b).unwrap().len(), 0);
        assert_eq!(decode(&mut b).unwrap().len(), MAX_DATAGRAM);
        assert!(decode(&mut b).is_none());
        assert_eq!(
            encode(&vec![0u8; MAX_DATAGRAM + 1], &mut b),
            Err(TooLong(MAX_DATAGRAM + 1))
        );
        assert!(b.is_empty());
    }

    #[test]
    fn tags_round_trip_and_short_datagrams_are_refused() {
        let t = tag(0x0102_0304_0506_0708, b"payload");
        assert_eq!(&t[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            untag(t),
            Some((0x0102_0304_0506_0708, Bytes::from_static(b"payload")))
        );
        assert_eq!(untag(tag(9, b"")), Some((9, Bytes::new())));
        assert_eq!(untag(Bytes::from_static(&[1, 2, 3])), None);
    }

    proptest! {
        /// Datagrams come out whole and in order however the bytes are cut.
        #[test]
        fn round_trip_across_any_cut(
            grams in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 0..12),
            cut in 1usize..700,
        ) {
            let mut wire = BytesMut::new();
            for g in &grams {
                encode(g, &mut wire).unwrap();
            }
            let mut rx = BytesMut::new();
            let mut out = Vec::new();
            for chunk in wire.chunks(cut) {
                rx.extend_from_slice(chunk);
                while let Some(d) = decode(&mut rx) {
                    out.push(d.to_vec());
                }
            }
            prop_assert_eq!(out, grams);
            prop_assert!(rx.is_empty());
        }
    }
}
