//! UDP datagrams on a flow stream (framing from
//! [`burrow_proto::datagram`]): a cancel-safe reader and a writer.
//!
//! Memory: the reader's buffer holds at most one datagram plus one read
//! (≈ 68 KiB) and starts at 4 KiB; small datagrams never grow it.

use burrow_proto::datagram;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Reads datagrams off one stream.
pub struct DatagramReader {
    buf: BytesMut,
}

impl DatagramReader {
    /// A reader starting with bytes already read past the flow header.
    pub fn new(leftover: BytesMut) -> Self {
        Self { buf: leftover }
    }

    /// The next datagram; `None` when the stream ended cleanly between
    /// datagrams. Cancel-safe: partial bytes stay in the reader.
    ///
    /// # Errors
    /// When reading fails or the stream ends inside a datagram.
    pub async fn next<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
    ) -> std::io::Result<Option<Bytes>> {
        loop {
            if let Some(d) = datagram::decode(&mut self.buf) {
                return Ok(Some(d));
            }
            if self.buf.capacity() == self.buf.len() {
                self.buf.reserve(4096);
            }
            if r.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(std::io::ErrorKind::UnexpectedEof.into())
                };
            }
        }
    }
}

/// Writes one datagram, framed, using `scratch` as the send buffer.
///
/// # Errors
/// When the datagram is too long or writing fails.
pub async fn write_datagram<W: AsyncWrite + Unpin>(
    w: &mut W,
    payload: &[u8],
    scratch: &mut BytesMut,
) -> std::io::Result<()> {
    scratch.clear();
    datagram::encode(payload, scratch).map_err(std::io::Error::other)?;
    w.write_all(scratch).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn datagrams_cross_a_stream_whole() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let sent: Vec<Vec<u8>> = vec![vec![], b"one".to_vec(), vec![9u8; 5000]];
        let to_send = sent.clone();
        let writer = tokio::spawn(async move {
            let mut scratch = BytesMut::new();
            for d in &to_send {
                write_datagram(&mut a, d, &mut scratch).await.unwrap();
            }
        });
        let mut r = DatagramReader::new(BytesMut::new());
        let mut got = Vec::new();
        while let Some(d) = r.next(&mut b).await.unwrap() {
            got.push(d.to_vec());
        }
        writer.await.unwrap();
        assert_eq!(got, sent);
    }

    #[tokio::test]
    async fn a_stream_cut_inside_a_datagram_is_an_error() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&[0, 10, 1, 2]).await.unwrap();
        drop(a);
        let mut r = DatagramReader::new(BytesMut::new());
        assert!(r.next(&mut b).await.is_err());
    }
}
