//! Reading and writing `burrow-proto` frames on a byte stream.
//!
//! [`FrameReader`] keeps its partial state in its own buffer, so
//! [`FrameReader::read_frame`] is cancel-safe: dropping the future loses no
//! bytes. Bytes that arrive after a frame stay in the buffer; take them with
//! [`FrameReader::into_leftover`] before splicing the stream.

use crate::TransportError;
use burrow_proto::v2::{Registration, Welcome, VERSION_2};
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

    /// Reads and checks the connection preface; the protocol version the
    /// party speaks (1 or 2). Cancel-safe.
    ///
    /// # Errors
    /// On a bad preface, an unsupported version
    /// ([`TransportError::Version`]), or a closed stream.
    pub async fn read_preface<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
    ) -> Result<u16, TransportError> {
        loop {
            match burrow_proto::v2::decode_preface_any(&self.buf) {
                Ok(Some((n, version))) => {
                    self.buf.advance(n);
                    return Ok(version);
                }
                Err(burrow_proto::DecodeError::UnsupportedVersion(v)) => {
                    return Err(TransportError::Version(v))
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

/// Encodes and writes one frame, optionally preceded by the version 1
/// preface.
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

/// Encodes and writes the first frame of a control stream after the
/// preface of protocol `version` (1 or 2).
///
/// # Errors
/// When a field is too long or the stream fails.
pub async fn write_opening<W: AsyncWrite + Unpin>(
    w: &mut W,
    frame: &Frame,
    version: u16,
) -> Result<(), TransportError> {
    let mut out = BytesMut::with_capacity(128);
    out.extend_from_slice(if version >= burrow_proto::v2::VERSION_2 {
        &burrow_proto::v2::PREFACE_V2
    } else {
        &PREFACE
    });
    burrow_proto::encode(frame, &mut out).map_err(|e| TransportError::Protocol(e.to_string()))?;
    w.write_all(&out).await?;
    w.flush().await?;
    Ok(())
}

/// The edge's answer to a registration, in either version (version 1's
/// `Registered` read as a [`Welcome`] naming no node and no features).
#[derive(Debug)]
pub enum Answer {
    /// Accepted.
    Welcome(Welcome),
    /// Refused, with the reason.
    Refused(burrow_proto::Refusal),
}

/// Sends `reg` on a fresh control stream in protocol `version` (1: as
/// [`Registration::to_v1`] spells it) and reads the answer, within
/// `limit`.
///
/// # Errors
/// When the stream fails or closes, the answer is not a registration
/// answer, or none came within `limit` ([`TransportError::Timeout`]). An
/// edge of an older release closes the connection on a version 2 preface:
/// see [`OlderEdges`].
pub async fn register<S: AsyncRead + AsyncWrite + Unpin>(
    control: &mut S,
    reader: &mut FrameReader,
    reg: &Registration,
    version: u16,
    limit: std::time::Duration,
) -> Result<Answer, TransportError> {
    tokio::time::timeout(limit, exchange(control, reader, reg, version))
        .await
        .unwrap_or(Err(TransportError::Timeout(
            limit,
            "waiting for the answer to registration",
        )))
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    control: &mut S,
    reader: &mut FrameReader,
    reg: &Registration,
    version: u16,
) -> Result<Answer, TransportError> {
    let frame = if version >= VERSION_2 {
        Frame::Registration(reg.clone())
    } else {
        Frame::Register(reg.to_v1())
    };
    write_opening(control, &frame, version).await?;
    match reader.read_frame(control).await? {
        Frame::Welcome(w) => Ok(Answer::Welcome(w)),
        Frame::Registered(r) => Ok(Answer::Welcome(Welcome::from_v1(r))),
        Frame::Refused(r) => Ok(Answer::Refused(r)),
        other => Err(TransportError::Protocol(format!(
            "unexpected answer to registration: {}",
            other.kind_name()
        ))),
    }
}

/// Edges found to speak only version 1, by address, remembered for
/// [`OlderEdges::FOR`] (an upgrade in progress ends): an edge of an older
/// release closes the connection on a version 2 preface without an
/// answer, and a newer one refuses an unknown version with
/// `UnsupportedVersion`; either way the next attempt speaks version 1.
#[derive(Debug, Default)]
pub struct OlderEdges {
    until: std::sync::Mutex<std::collections::HashMap<std::net::SocketAddr, std::time::Instant>>,
}

impl OlderEdges {
    /// How long an edge is spoken to in version 1 before version 2 is
    /// tried again.
    pub const FOR: std::time::Duration = std::time::Duration::from_secs(600);

    /// The version to speak to the edge at `addr`.
    pub fn version(&self, addr: std::net::SocketAddr) -> u16 {
        let mut until = self.until.lock().unwrap_or_else(|p| p.into_inner());
        match until.get(&addr) {
            Some(t) if *t > std::time::Instant::now() => burrow_proto::VERSION,
            Some(_) => {
                until.remove(&addr);
                VERSION_2
            }
            None => VERSION_2,
        }
    }

    /// Notes how a registration spoken in `version` to `addr` went: a
    /// version 2 registration that got no answer, or an
    /// `UnsupportedVersion` refusal, means an older edge. `true` when the
    /// caller should try again at once in version 1.
    pub fn learn(
        &self,
        addr: std::net::SocketAddr,
        version: u16,
        outcome: &Result<Answer, TransportError>,
    ) -> bool {
        let older = version >= VERSION_2
            && match outcome {
                Err(TransportError::Timeout(..)) | Ok(Answer::Welcome(_)) => false,
                Err(_) => true,
                Ok(Answer::Refused(r)) => r.code == burrow_proto::RefuseCode::UnsupportedVersion,
            };
        if older {
            tracing::warn!(edge = %addr, "the edge did not take a version 2 registration: speaking version 1 to it (an edge of an older release)");
            self.until
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(addr, std::time::Instant::now() + Self::FOR);
        }
        older
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edge_that_drops_version_2_is_spoken_to_in_version_1() {
        let older = OlderEdges::default();
        let a: std::net::SocketAddr = "127.0.0.1:7844".parse().unwrap();
        let b: std::net::SocketAddr = "127.0.0.2:7844".parse().unwrap();
        assert_eq!(older.version(a), 2);
        // A timeout says nothing about versions; a close without answer does.
        let timeout = Err(TransportError::Timeout(
            std::time::Duration::from_secs(1),
            "x",
        ));
        assert!(!older.learn(a, 2, &timeout));
        assert_eq!(older.version(a), 2);
        assert!(older.learn(a, 2, &Err(TransportError::Closed)));
        assert_eq!((older.version(a), older.version(b)), (1, 2));
        // A refusal for another reason is not about versions.
        let refused = |code| {
            Ok(Answer::Refused(burrow_proto::Refusal {
                code,
                message: String::new(),
            }))
        };
        assert!(!older.learn(b, 2, &refused(burrow_proto::RefuseCode::BadSecret)));
        assert!(older.learn(b, 2, &refused(burrow_proto::RefuseCode::UnsupportedVersion)));
        // Already speaking version 1: nothing older to fall back to.
        assert!(!older.learn(b, 1, &Err(TransportError::Closed)));
    }
}
