//! burrow's tunnel wire protocol, as a pure codec: bytes in, values out.
//! No sockets, no tasks, no clock.
//!
//! Module map:
//! - this file: [`Frame`] and its messages, [`encode`] / [`decode`], the
//!   connection [`PREFACE`] and [`decode_preface`].
//! - [`datagram`]: UDP datagrams framed on a flow stream.
//! - [`http1`]: HTTP/1.1 body framing and head rewriting for the
//!   connector's lean request path.
//! - [`http_connect`]: the client's HTTP CONNECT proxy request line.
//! - [`socks5`]: the client's local SOCKS5 proxy greeting and request.
//! - [`proxy_header`]: PROXY protocol v1/v2 and Simple Proxy Protocol headers.
//!
//! The protocol is described for humans in `docs/PROTOCOL.md`. In short:
//! every tunnel connection (QUIC or HTTP/2) has one *control stream* on which
//! the connector writes [`PREFACE`] then a [`Frame::Register`], and the edge
//! answers [`Frame::Registered`] or [`Frame::Refused`]. Every proxied flow is
//! one more stream, opened by the edge, that starts with a
//! [`Frame::StreamOpen`]; the connector answers [`Frame::StreamAccepted`] or
//! [`Frame::StreamRejected`], and after that the stream carries the flow's
//! raw bytes.
//!
//! Decoding never allocates more than [`MAX_FRAME_LEN`] per frame and never
//! panics on any input; bytes after a frame stay in the caller's buffer (the
//! decoder reports how many it consumed).

pub mod close;
pub mod datagram;
pub mod http1;
pub mod http_connect;
pub mod proxy_header;
pub mod socks5;
pub mod v2;

use bytes::{BufMut, BytesMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Magic bytes that open every control stream.
pub const MAGIC: [u8; 6] = *b"BURROW";
/// The protocol version this crate speaks.
pub const VERSION: u16 = 1;
/// The full preface: [`MAGIC`] followed by [`VERSION`] as big-endian `u16`.
pub const PREFACE: [u8; 8] = [b'B', b'U', b'R', b'R', b'O', b'W', 0, 1];
/// Largest frame payload accepted, in bytes. Longer lengths are refused
/// before anything is allocated.
pub const MAX_FRAME_LEN: usize = 16 * 1024;
/// Largest string field (hostname, version, message, ...), in bytes.
pub const MAX_STR_LEN: usize = 1024;
/// Largest secret accepted, in bytes.
pub const MAX_SECRET_LEN: usize = 256;
/// Most feature strings in one [`Register`].
pub const MAX_FEATURES: usize = 32;
/// Size of the frame header: type (1 byte) + payload length (4 bytes, BE).
pub const HEADER_LEN: usize = 5;

/// A 16-byte identifier (tunnel, account, connector, connection).
pub type Id = [u8; 16];

/// Why bytes could not be decoded. Every variant means the peer broke the
/// protocol; the connection or stream should be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The stream did not start with [`MAGIC`].
    #[error("bad preface: not a burrow tunnel connection")]
    BadMagic,
    /// The peer speaks a version this build does not.
    #[error("unsupported protocol version {0} (this build speaks {VERSION})")]
    UnsupportedVersion(u16),
    /// The frame type byte is unknown.
    #[error("unknown frame type {0}")]
    UnknownType(u8),
    /// A length field exceeds its maximum.
    #[error("{field} is {len} bytes, more than the maximum {max}")]
    TooLong {
        /// Which field.
        field: &'static str,
        /// Length announced.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The payload ended before a field was complete, or had bytes left over.
    #[error("malformed {frame} frame: {reason}")]
    Malformed {
        /// Frame type name.
        frame: &'static str,
        /// What was wrong.
        reason: &'static str,
    },
    /// A string field is not UTF-8.
    #[error("{0} is not valid UTF-8")]
    NotUtf8(&'static str),
}

/// Secret bytes on the wire (a tunnel, device or peer secret). `Debug`
/// prints `***`, so a frame can be logged with `?frame` without the secret.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct WireSecret(pub Vec<u8>);

impl WireSecret {
    /// The bytes, for the one place that compares or sends them.
    #[must_use]
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for WireSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl From<Vec<u8>> for WireSecret {
    fn from(v: Vec<u8>) -> Self {
        Self(v)
    }
}

/// Registration request, sent by the connector on the control stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Register {
    /// Account the tunnel belongs to.
    pub account_id: Id,
    /// Tunnel to serve.
    pub tunnel_id: Id,
    /// Tunnel secret; compared in constant time by the edge. Its `Debug`
    /// prints `***`.
    pub secret: WireSecret,
    /// Stable id of this connector process (replicas differ).
    pub connector_id: Id,
    /// Index of this connection among the connector's HA connections.
    pub conn_index: u8,
    /// Connector software version, for logs.
    pub version: String,
    /// Optional features the connector supports.
    pub features: Vec<String>,
}

/// Positive answer to [`Register`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// Id the edge gave this connection.
    pub connection_id: Id,
    /// Short name of the edge node (colo), e.g. `NRT`.
    pub colo: String,
}

/// Why a registration or a stream was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefuseCode {
    /// Tunnel secret did not match.
    BadSecret,
    /// No such tunnel (or account) on this edge.
    UnknownTunnel,
    /// Protocol version not supported.
    UnsupportedVersion,
    /// Edge or connector is draining and takes nothing new.
    ShuttingDown,
    /// No ingress rule matched, or the rule refuses the flow.
    NoIngress,
    /// The origin could not be reached.
    OriginUnreachable,
    /// Anything else.
    Internal,
    /// A code from a newer peer.
    Other(u16),
}

impl RefuseCode {
    fn to_u16(self) -> u16 {
        match self {
            Self::BadSecret => 1,
            Self::UnknownTunnel => 2,
            Self::UnsupportedVersion => 3,
            Self::ShuttingDown => 4,
            Self::NoIngress => 5,
            Self::OriginUnreachable => 6,
            Self::Internal => 7,
            Self::Other(c) => c,
        }
    }
    fn from_u16(c: u16) -> Self {
        match c {
            1 => Self::BadSecret,
            2 => Self::UnknownTunnel,
            3 => Self::UnsupportedVersion,
            4 => Self::ShuttingDown,
            5 => Self::NoIngress,
            6 => Self::OriginUnreachable,
            7 => Self::Internal,
            c => Self::Other(c),
        }
    }
}

/// A refusal with a human-readable reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Machine-readable cause.
    pub code: RefuseCode,
    /// Human-readable explanation, safe to log (never contains secrets).
    pub message: String,
}

/// The kind of flow a stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlowKind {
    /// A TCP connection, spliced byte for byte.
    Tcp,
    /// A UDP session: datagrams, each framed with [`datagram::encode`].
    Udp,
    /// One HTTP request: an HTTP/1.1 exchange on the stream (the edge is
    /// the client), then, after a `101`, the upgraded connection's bytes.
    Http,
    /// A TCP connection of a zero-trust client into a private network: the
    /// connector dials `StreamOpen::destination` itself (no ingress rule),
    /// then bytes are spliced as for [`FlowKind::Tcp`].
    PrivateTcp,
    /// A UDP session of a zero-trust client into a private network: the
    /// connector sends to `StreamOpen::destination` itself; datagrams
    /// travel as for [`FlowKind::Udp`] (QUIC datagrams when they fit,
    /// framed on the stream otherwise).
    PrivateUdp,
}

/// Header of a proxied flow, sent by the edge as the first frame of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamOpen {
    /// What the stream carries.
    pub kind: FlowKind,
    /// Edge-assigned flow id, for logs on both sides.
    pub flow_id: u64,
    /// Hostname the flow is for (the app's hostname); selects the ingress rule.
    pub hostname: String,
    /// The port the client connected to on the edge.
    pub edge_port: u16,
    /// The client's address as seen by the edge.
    pub client_addr: SocketAddr,
}

impl StreamOpen {
    /// The destination of a private-network flow: `hostname` holds the
    /// address (`10.0.0.5` or `fd00::5`) and `edge_port` the port. `None`
    /// for other kinds, or when `hostname` is not an IP address.
    pub fn destination(&self) -> Option<SocketAddr> {
        matches!(self.kind, FlowKind::PrivateTcp | FlowKind::PrivateUdp)
            .then(|| self.hostname.parse().ok())
            .flatten()
            .map(|ip| SocketAddr::new(ip, self.edge_port))
    }
}

/// Everything that can travel in a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Frame {
    /// Connector → edge on the control stream.
    Register(Register),
    /// Edge → connector: registration accepted.
    Registered(Registered),
    /// Edge → connector: registration refused.
    Refused(Refusal),
    /// Either side on the control stream: no new flows on this connection.
    GoAway,
    /// Edge → connector, first frame of a flow stream.
    StreamOpen(StreamOpen),
    /// Connector → edge: origin reached, raw bytes follow.
    StreamAccepted,
    /// Connector → edge: flow refused; the stream ends.
    StreamRejected(Refusal),
    /// Edge → connector: a [`Frame::StreamOpen`] that the connector
    /// acknowledges with [`Frame::StreamReceived`] as soon as it reads it,
    /// before it reaches the origin. Sent only on connections whose
    /// connector registered [`FEATURE_STREAM_ACK`].
    StreamOpenAcked(StreamOpen),
    /// Connector → edge: the [`Frame::StreamOpenAcked`] arrived and is being
    /// handled; `StreamAccepted` or `StreamRejected` follows.
    StreamReceived,
    /// Edge node → edge node on the peer link, first frame of a flow
    /// stream: carry this flow into tunnel `tunnel_id` through a connection
    /// the receiving node holds (never onward to a third node). Answered
    /// like a [`Frame::StreamOpen`] (`StreamAccepted` or `StreamRejected`),
    /// then the flow's bytes, as on a connector's stream.
    ForwardOpen(ForwardOpen),
    /// Version 2, party → edge: the typed registration of a role
    /// ([`v2::Registration`]).
    Registration(v2::Registration),
    /// Version 2, edge → party: registration accepted ([`v2::Welcome`]).
    Welcome(v2::Welcome),
    /// Version 2, first frame of a flow stream ([`v2::OpenFlow`]).
    OpenFlow(v2::OpenFlow),
}

/// A flow one edge node carries to another for a tunnel it holds no
/// connection of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardOpen {
    /// The tunnel to carry the flow into.
    pub tunnel_id: Id,
    /// The flow's header, as the connector will get it (the receiving
    /// node gives it a flow id of its own).
    pub open: StreamOpen,
}

/// Registration feature: "acknowledge [`Frame::StreamOpenAcked`] with
/// [`Frame::StreamReceived`]", so the edge learns at once that a
/// connection still carries flows and moves a flow elsewhere when it does
/// not.
pub const FEATURE_STREAM_ACK: &str = "stream-ack";

mod ty {
    pub(crate) const REGISTER: u8 = 1;
    pub(crate) const REGISTERED: u8 = 2;
    pub(crate) const REFUSED: u8 = 3;
    pub(crate) const GOAWAY: u8 = 4;
    pub(crate) const STREAM_OPEN: u8 = 16;
    pub(crate) const STREAM_ACCEPTED: u8 = 17;
    pub(crate) const STREAM_REJECTED: u8 = 18;
    pub(crate) const STREAM_OPEN_ACKED: u8 = 19;
    pub(crate) const STREAM_RECEIVED: u8 = 20;
    pub(crate) const FORWARD_OPEN: u8 = 21;
    pub(crate) const REGISTRATION: u8 = 6;
    pub(crate) const WELCOME: u8 = 7;
    pub(crate) const OPEN_FLOW: u8 = 22;
}

impl Frame {
    /// The frame's type name, for logs (never its contents).
    #[must_use]
    pub fn kind_name(&self) -> &'static str {
        match self {
            Frame::Register(_) => "Register",
            Frame::Registered(_) => "Registered",
            Frame::Refused(_) => "Refused",
            Frame::GoAway => "GoAway",
            Frame::StreamOpen(_) => "StreamOpen",
            Frame::StreamAccepted => "StreamAccepted",
            Frame::StreamRejected(_) => "StreamRejected",
            Frame::StreamOpenAcked(_) => "StreamOpenAcked",
            Frame::StreamReceived => "StreamReceived",
            Frame::ForwardOpen(_) => "ForwardOpen",
            Frame::Registration(_) => "Registration",
            Frame::Welcome(_) => "Welcome",
            Frame::OpenFlow(_) => "OpenFlow",
        }
    }

    fn type_byte(&self) -> u8 {
        match self {
            Frame::Register(_) => ty::REGISTER,
            Frame::Registered(_) => ty::REGISTERED,
            Frame::Refused(_) => ty::REFUSED,
            Frame::GoAway => ty::GOAWAY,
            Frame::StreamOpen(_) => ty::STREAM_OPEN,
            Frame::StreamAccepted => ty::STREAM_ACCEPTED,
            Frame::StreamRejected(_) => ty::STREAM_REJECTED,
            Frame::StreamOpenAcked(_) => ty::STREAM_OPEN_ACKED,
            Frame::StreamReceived => ty::STREAM_RECEIVED,
            Frame::ForwardOpen(_) => ty::FORWARD_OPEN,
            Frame::Registration(_) => ty::REGISTRATION,
            Frame::Welcome(_) => ty::WELCOME,
            Frame::OpenFlow(_) => ty::OPEN_FLOW,
        }
    }
}

/// Why a frame could not be encoded: a field exceeds its protocol maximum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} is {len} bytes, more than the maximum {max}")]
pub struct EncodeError {
    /// Which field.
    pub field: &'static str,
    /// Its length.
    pub len: usize,
    /// The limit.
    pub max: usize,
}

pub(crate) fn put_bytes(
    out: &mut BytesMut,
    field: &'static str,
    b: &[u8],
    max: usize,
) -> Result<(), EncodeError> {
    if b.len() > max {
        return Err(EncodeError {
            field,
            len: b.len(),
            max,
        });
    }
    // Checked above: max <= MAX_STR_LEN < u16::MAX.
    out.put_u16(u16::try_from(b.len()).expect("length bounded by max"));
    out.put_slice(b);
    Ok(())
}

/// A features list: a count (at most [`MAX_FEATURES`]) then the strings.
pub(crate) fn put_features(out: &mut BytesMut, features: &[String]) -> Result<(), EncodeError> {
    if features.len() > MAX_FEATURES {
        return Err(EncodeError {
            field: "features",
            len: features.len(),
            max: MAX_FEATURES,
        });
    }
    out.put_u8(u8::try_from(features.len()).expect("bounded by MAX_FEATURES"));
    for f in features {
        put_bytes(out, "feature", f.as_bytes(), MAX_STR_LEN)?;
    }
    Ok(())
}

/// Reads a features list written by [`put_features`].
pub(crate) fn features(r: &mut Reader<'_>) -> Result<Vec<String>, DecodeError> {
    let n = usize::from(r.u8()?);
    if n > MAX_FEATURES {
        return Err(DecodeError::TooLong {
            field: "features",
            len: n,
            max: MAX_FEATURES,
        });
    }
    (0..n).map(|_| r.string("feature")).collect()
}

pub(crate) fn put_addr(out: &mut BytesMut, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => {
            out.put_u8(4);
            out.put_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.put_u8(6);
            out.put_slice(&ip.octets());
        }
    }
    out.put_u16(addr.port());
}

/// Appends `frame` to `out`: type byte, payload length, payload.
///
/// # Errors
/// [`EncodeError`] when a field is longer than the protocol allows; nothing
/// is appended then.
pub fn encode(frame: &Frame, out: &mut BytesMut) -> Result<(), EncodeError> {
    let mut payload = BytesMut::new();
    match frame {
        Frame::Register(r) => {
            payload.put_slice(&r.account_id);
            payload.put_slice(&r.tunnel_id);
            put_bytes(&mut payload, "secret", r.secret.expose(), MAX_SECRET_LEN)?;
            payload.put_slice(&r.connector_id);
            payload.put_u8(r.conn_index);
            put_bytes(&mut payload, "version", r.version.as_bytes(), MAX_STR_LEN)?;
            put_features(&mut payload, &r.features)?;
        }
        Frame::Registered(r) => {
            payload.put_slice(&r.connection_id);
            put_bytes(&mut payload, "colo", r.colo.as_bytes(), MAX_STR_LEN)?;
        }
        Frame::Refused(r) | Frame::StreamRejected(r) => {
            payload.put_u16(r.code.to_u16());
            put_bytes(&mut payload, "message", r.message.as_bytes(), MAX_STR_LEN)?;
        }
        Frame::GoAway | Frame::StreamAccepted | Frame::StreamReceived => {}
        Frame::StreamOpen(s) | Frame::StreamOpenAcked(s) => put_open(&mut payload, s)?,
        Frame::ForwardOpen(f) => {
            payload.put_slice(&f.tunnel_id);
            put_open(&mut payload, &f.open)?;
        }
        Frame::Registration(g) => v2::put_registration(&mut payload, g)?,
        Frame::Welcome(w) => v2::put_welcome(&mut payload, w)?,
        Frame::OpenFlow(f) => v2::put_open_flow(&mut payload, f)?,
    }
    if payload.len() > MAX_FRAME_LEN {
        return Err(EncodeError {
            field: "frame",
            len: payload.len(),
            max: MAX_FRAME_LEN,
        });
    }
    out.reserve(HEADER_LEN + payload.len());
    out.put_u8(frame.type_byte());
    out.put_u32(u32::try_from(payload.len()).expect("bounded by MAX_FRAME_LEN"));
    out.put_slice(&payload);
    Ok(())
}

pub(crate) fn kind_byte(kind: FlowKind) -> u8 {
    match kind {
        FlowKind::Tcp => 1,
        FlowKind::Udp => 2,
        FlowKind::Http => 3,
        FlowKind::PrivateTcp => 4,
        FlowKind::PrivateUdp => 5,
    }
}

pub(crate) fn kind_of(r: &mut Reader<'_>) -> Result<FlowKind, DecodeError> {
    Ok(match r.u8()? {
        1 => FlowKind::Tcp,
        2 => FlowKind::Udp,
        3 => FlowKind::Http,
        4 => FlowKind::PrivateTcp,
        5 => FlowKind::PrivateUdp,
        _ => {
            return Err(DecodeError::Malformed {
                frame: r.frame,
                reason: "unknown flow kind",
            })
        }
    })
}

fn put_open(payload: &mut BytesMut, s: &StreamOpen) -> Result<(), EncodeError> {
    payload.put_u8(kind_byte(s.kind));
    payload.put_u64(s.flow_id);
    put_bytes(payload, "hostname", s.hostname.as_bytes(), MAX_STR_LEN)?;
    payload.put_u16(s.edge_port);
    put_addr(payload, &s.client_addr);
    Ok(())
}

/// Checks the connection preface at the start of `buf`.
///
/// Returns `Ok(None)` when `buf` is a strict prefix of a preface (read more),
/// `Ok(Some(n))` with the number of bytes consumed when it is complete.
///
/// # Errors
/// [`DecodeError::BadMagic`] or [`DecodeError::UnsupportedVersion`].
pub fn decode_preface(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    let n = buf.len().min(MAGIC.len());
    if buf[..n] != MAGIC[..n] {
        return Err(DecodeError::BadMagic);
    }
    if buf.len() < PREFACE.len() {
        return Ok(None);
    }
    let version = u16::from_be_bytes([buf[6], buf[7]]);
    if version != VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    Ok(Some(PREFACE.len()))
}

/// Decodes one frame from the start of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed, `Ok(Some((frame, n)))` when
/// a frame was decoded from the first `n` bytes. Bytes after `n` belong to the
/// caller (the next frame, or a flow's payload).
///
/// # Errors
/// [`DecodeError`] when the bytes can never become a valid frame; the length
/// is checked against [`MAX_FRAME_LEN`] before the payload is awaited.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, DecodeError> {
    if buf.len() < HEADER_LEN {
        // Reject unknown types early, even before the length is complete.
        if let Some(&t) = buf.first() {
            check_type(t)?;
        }
        return Ok(None);
    }
    let t = buf[0];
    check_type(t)?;
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    if len > MAX_FRAME_LEN {
        return Err(DecodeError::TooLong {
            field: "frame",
            len,
            max: MAX_FRAME_LEN,
        });
    }
    let Some(payload) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
        return Ok(None);
    };
    let frame = decode_payload(t, payload)?;
    Ok(Some((frame, HEADER_LEN + len)))
}

fn check_type(t: u8) -> Result<(), DecodeError> {
    match t {
        ty::REGISTER
        | ty::REGISTERED
        | ty::REFUSED
        | ty::GOAWAY
        | ty::STREAM_OPEN
        | ty::STREAM_ACCEPTED
        | ty::STREAM_REJECTED
        | ty::STREAM_OPEN_ACKED
        | ty::STREAM_RECEIVED
        | ty::FORWARD_OPEN
        | ty::REGISTRATION
        | ty::WELCOME
        | ty::OPEN_FLOW => Ok(()),
        t => Err(DecodeError::UnknownType(t)),
    }
}

/// A cursor over a frame payload that never reads past its end.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pub(crate) frame: &'static str,
}

impl<'a> Reader<'a> {
    fn short(&self) -> DecodeError {
        DecodeError::Malformed {
            frame: self.frame,
            reason: "payload ends inside a field",
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(self.short());
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    fn id(&mut self) -> Result<Id, DecodeError> {
        let b = self.take(16)?;
        let mut a = [0u8; 16];
        a.copy_from_slice(b);
        Ok(a)
    }
    fn bytes(&mut self, field: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let len = usize::from(self.u16()?);
        if len > max {
            return Err(DecodeError::TooLong { field, len, max });
        }
        self.take(len)
    }
    fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let b = self.bytes(field, MAX_STR_LEN)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| DecodeError::NotUtf8(field))
    }
    fn addr(&mut self) -> Result<SocketAddr, DecodeError> {
        let ip = match self.u8()? {
            4 => {
                let b = self.take(4)?;
                IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
            }
            6 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(self.take(16)?);
                IpAddr::V6(Ipv6Addr::from(a))
            }
            _ => {
                return Err(DecodeError::Malformed {
                    frame: self.frame,
                    reason: "address family must be 4 or 6",
                })
            }
        };
        Ok(SocketAddr::new(ip, self.u16()?))
    }
    fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Malformed {
                frame: self.frame,
                reason: "trailing bytes after the last field",
            })
        }
    }
}

fn refusal(r: &mut Reader<'_>) -> Result<Refusal, DecodeError> {
    Ok(Refusal {
        code: RefuseCode::from_u16(r.u16()?),
        message: r.string("message")?,
    })
}

fn stream_open(r: &mut Reader<'_>) -> Result<StreamOpen, DecodeError> {
    let kind = kind_of(r)?;
    Ok(StreamOpen {
        kind,
        flow_id: r.u64()?,
        hostname: r.string("hostname")?,
        edge_port: r.u16()?,
        client_addr: r.addr()?,
    })
}

fn decode_payload(t: u8, payload: &[u8]) -> Result<Frame, DecodeError> {
    let name = match t {
        ty::REGISTER => "Register",
        ty::REGISTERED => "Registered",
        ty::REFUSED => "Refused",
        ty::GOAWAY => "GoAway",
        ty::STREAM_OPEN => "StreamOpen",
        ty::STREAM_ACCEPTED => "StreamAccepted",
        ty::STREAM_OPEN_ACKED => "StreamOpenAcked",
        ty::STREAM_RECEIVED => "StreamReceived",
        ty::FORWARD_OPEN => "ForwardOpen",
        ty::REGISTRATION => "Registration",
        ty::WELCOME => "Welcome",
        ty::OPEN_FLOW => "OpenFlow",
        _ => "StreamRejected",
    };
    let mut r = Reader {
        buf: payload,
        frame: name,
    };
    let frame = match t {
        ty::REGISTER => {
            let account_id = r.id()?;
            let tunnel_id = r.id()?;
            let secret = WireSecret(r.bytes("secret", MAX_SECRET_LEN)?.to_vec());
            let connector_id = r.id()?;
            let conn_index = r.u8()?;
            let version = r.string("version")?;
            let features = features(&mut r)?;
            Frame::Register(Register {
                account_id,
                tunnel_id,
                secret,
                connector_id,
                conn_index,
                version,
                features,
            })
        }
        ty::REGISTERED => Frame::Registered(Registered {
            connection_id: r.id()?,
            colo: r.string("colo")?,
        }),
        ty::REFUSED => Frame::Refused(refusal(&mut r)?),
        ty::GOAWAY => Frame::GoAway,
        ty::REGISTRATION => Frame::Registration(v2::registration(&mut r)?),
        ty::WELCOME => Frame::Welcome(v2::welcome(&mut r)?),
        ty::OPEN_FLOW => Frame::OpenFlow(v2::open_flow(&mut r)?),
        ty::FORWARD_OPEN => Frame::ForwardOpen(ForwardOpen {
            tunnel_id: r.id()?,
            open: stream_open(&mut r)?,
        }),
        ty::STREAM_OPEN | ty::STREAM_OPEN_ACKED => {
            let open = stream_open(&mut r)?;
            if t == ty::STREAM_OPEN {
                Frame::StreamOpen(open)
            } else {
                Frame::StreamOpenAcked(open)
            }
        }
        ty::STREAM_ACCEPTED => Frame::StreamAccepted,
        ty::STREAM_RECEIVED => Frame::StreamReceived,
        _ => Frame::StreamRejected(refusal(&mut r)?),
    };
    r.finish()?;
    Ok(frame)
}

#[cfg(test)]
mod tests;
