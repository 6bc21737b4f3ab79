//! Reading and writing `burrow-proto` frames on a byte stream.
//!
//! [`FrameReader`] keeps its partial state in its own buffer, so
//! [`FrameReader::read_frame`] is cancel-safe: dropping the future loses no
//! bytes. Bytes that arrive after a frame stay in the buffer; take them with
//! [`FrameReader::into_leftover`] before splicing the stream.

use crate::TransportError;
use burrow_proto::{Frame, HEADER_LEN, MAX_FRAME_LEN, PREFACE};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Incremental frame reader over one stream.
#[derive(Default)]
pub struct FrameReader {
    buf: BytesMut,
}

impl FrameReader {
    /// A reader with an empty buffer.
    pub fn new() -> Self {
        Self {
            buf: BytesMut::with_capacity(512),
        }
    }

    async fn fill<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> Result<(), TransportError> {
        if self.buf.len() >= HEADER_LEN + MAX_FRAME_LEN {
            return Err(TransportError::Protocol("frame larger than allowed".into()));
        }
        self.buf.reserve(4096);
        let n = r.read_buf(&mut self.buf).await?;
        if n == 0 {
            return Err(TransportError::Closed);
        }
        Ok(())
    }

    /// Reads and checks the connection preface. Cancel-safe.
    ///
    /// # Errors
    /// On a bad preface, an unsupported version, or a closed stream.
    pub async fn read_preface<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
    ) -> Result<(), TransportError> {
        loop {
            match burrow_proto::decode_preface(&self.buf) {
                Ok(Some(n)) => {
                    self.buf.advance(n);
                    return Ok(());
                }
                Ok(None) => self.fill(r).await?,
                Err(e) => return Err(TransportError::Protocol(e.to_string())),
            }
        }
    }

    /// Reads the next frame. Cancel-safe.
    ///
    /// # Errors
    /// On a malformed frame or a closed stream.
    pub async fn read_frame<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
    ) -> Result<Frame, TransportError> {
        loop {
            match burrow_proto::decode(&self.buf) {
                Ok(Some((frame, n))) => {
                    self.buf.advance(n);
                    return Ok(frame);
                }
                Ok(None) => self.fill(r).await?,
                Err(e) => return Err(TransportError::Protocol(e.to_string())),
            }
        }
    }

    /// Bytes read past the last frame (the start of a flow's payload).
    pub fn into_leftover(self) -> BytesMut {
        self.buf
    }
}

/// Encodes and writes one frame, optionally preceded by the preface.
///
/// # Errors
/// When a field is too long or the stream fails.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    frame: &Frame,
    with_preface: bool,
) -> Result<(), TransportError> {
    let mut out = BytesMut::with_capacity(128);
    if with_preface {
        out.extend_from_slice(&PREFACE);
    }
    burrow_proto::encode(frame, &mut out).map_err(|e| TransportError::Protocol(e.to_string()))?;
    w.write_all(&out).await?;
    w.flush().await?;
    Ok(())
}
