//! burrow's tunnel transports: QUIC (quinn) and HTTP/2 over TLS (h2 +
//! rustls), behind one small interface.
//!
//! Module map:
//! - [`http_headers`]: hop-by-hop and upgrade header rules for HTTP proxying.
//! - [`pki`]: the edge's self-signed CA and server certificate (rcgen), and
//!   rustls configs for both ends.
//! - [`kx`]: post-quantum key agreement (X25519MLKEM768) and the group a
//!   handshake used; [`quic_tls`] watches QUIC handshakes for it.
//! - [`quic`]: QUIC endpoints with large flow-control windows.
//! - [`h2`]: HTTP/2 over TLS; the connector *serves* HTTP/2 on the socket it
//!   dialled, so the edge (the HTTP/2 client) opens one stream per flow.
//! - [`stream`]: [`BoxStream`], the byte stream every flow and the control
//!   channel use, and the h2 adapter behind it.
//! - [`datagrams`]: UDP datagrams framed on a flow stream.
//! - [`dns`]: hickory resolvers (system or one given server).
//! - [`frames`]: reading and writing `burrow-proto` frames on a stream.
//! - [`quic_datagrams`]: UDP-session datagrams as QUIC datagrams.
//! - [`socks`]: the server side of a SOCKS5 handshake.
//! - [`splice`]: copying a flow both ways with adaptive buffers.
//! - [`udp`]: UDP sockets with buffers sized for bursts.
//! - [`ws_tcp`]: a TCP stream carried over a WebSocket (`burrow access`).
//! - [`same_task`]: futures polled by the task serving a connection
//!   (its upstream HTTP/1.1 connections).
//!
//! Roles: the connector dials ([`quic::connect`], [`h2::connect`]) and gets a
//! [`ConnectorConn`] plus the control stream; the edge accepts
//! ([`quic::accept`], [`h2::accept`]) and gets an [`EdgeConn`] plus the
//! control stream. After registration on the control stream, the edge calls
//! [`EdgeConn::open_stream`] once per flow and the connector receives each
//! with [`ConnectorConn::accept_stream`].

pub mod datagrams;
pub mod dial;
pub mod dns;
pub mod exposition;
pub mod frames;
pub mod h2;
pub mod http1_relay;
pub mod http_headers;
pub mod kx;
pub mod pki;
pub mod probe;
pub mod quic;
pub mod quic_datagrams;
pub mod quic_tls;
pub mod replay;
mod run_last;
pub mod same_task;
pub mod socks;
pub mod splice;
pub mod stream;
pub mod udp;
pub mod ws_tcp;

pub use stream::BoxStream;

use std::fmt;

/// ALPN protocol of the QUIC transport.
pub const ALPN_QUIC: &[u8] = b"burrow/1";
/// ALPN protocol of the HTTP/2-over-TLS transport.
pub const ALPN_H2: &[u8] = b"burrow-h2/1";
/// ALPN protocol of HTTP/2-over-TLS with the roles swapped: the dialing
/// side (a zero-trust client) opens the streams.
pub const ALPN_H2_CLIENT: &[u8] = b"burrow-h2c/1";

/// The transport a tunnel connection runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// QUIC over UDP.
    Quic,
    /// HTTP/2 over TLS over TCP.
    Http2,
}

impl Protocol {
    /// `quic` or `http2`, as shown to users and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quic => "quic",
            Self::Http2 => "http2",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transport failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// Socket-level failure.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// TLS setup or handshake failure.
    #[error("TLS: {0}")]
    Tls(String),
    /// QUIC connection failure.
    #[error("QUIC: {0}")]
    Quic(String),
    /// HTTP/2 failure.
    #[error("HTTP/2: {0}")]
    H2(#[from] ::h2::Error),
    /// The peer closed the connection.
    #[error("connection closed")]
    Closed,
    /// A step did not finish in time.
    #[error("timed out after {0:?} {1}")]
    Timeout(std::time::Duration, &'static str),
    /// The peer broke the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The peer's preface names a protocol version this build does not
    /// speak.
    #[error("protocol version {0} is not spoken here (this build speaks 1 and 2)")]
    Version(u16),
}

/// The next TCP connection on `listener`. A failed accept (say, out of
/// file descriptors) is logged and retried after 100 ms instead of ending
/// the accept loop. Cancel-safe.
pub async fn accept_tcp(
    listener: &tokio::net::TcpListener,
) -> (tokio::net::TcpStream, std::net::SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(x) => return x,
            Err(e) => {
                let at = listener.local_addr().ok();
                tracing::warn!(error = %e, listener = ?at, "accept failed; backing off");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// The edge's handle on one registered tunnel connection.
///
/// Cheap to clone; all clones share the connection.
#[derive(Clone)]
pub enum EdgeConn {
    /// Over QUIC.
    Quic(quic::Conn),
    /// Over HTTP/2 (the edge is the client).
    H2(h2::EdgeH2),
    /// Over HTTP/2 with a zero-trust client as the HTTP/2 client: it opens
    /// the streams, the edge accepts them.
    H2Served(h2::Served),
}

impl EdgeConn {
    /// The key-exchange group of the connection's handshake
    /// (`X25519MLKEM768` when post-quantum), when known.
    #[must_use]
    pub fn key_exchange(&self) -> Option<String> {
        match self {
            Self::Quic(c) => quic_tls::key_exchange(c),
            Self::H2(h) => h.kx.clone(),
            Self::H2Served(h) => h.kx.clone(),
        }
    }

    /// Drops the peer's QUIC datagrams ([`quic::drop_datagrams`]; HTTP/2
    /// has none); never returns. For the time before the peer registers,
    /// and for the life of a connection whose datagrams nothing reads.
    pub async fn drop_datagrams(&self) -> std::convert::Infallible {
        match self {
            Self::Quic(c) => quic::drop_datagrams(c).await,
            Self::H2(_) | Self::H2Served(_) => std::future::pending().await,
        }
    }

    /// Lifts the limits a connection has until its peer registers (small
    /// flow-control windows, no streams but the control stream): call it
    /// once the peer is authenticated, before answering `Registered`.
    pub fn authorize(&self) {
        match self {
            Self::Quic(c) => quic::authorize(c),
            Self::H2(h) => h.authorize(),
            Self::H2Served(h) => h.authorize(),
        }
    }

    /// Opens a new stream for one flow. Not cancel-safe for HTTP/2 while
    /// waiting for stream capacity (the request is simply not sent).
    ///
    /// # Errors
    /// When the connection is gone or refuses more streams.
    pub async fn open_stream(&self) -> Result<BoxStream, TransportError> {
        match self {
            Self::Quic(c) => quic::open_stream(c).await,
            Self::H2(h) => h.open_stream().await,
            Self::H2Served(_) => Err(TransportError::Protocol(
                "this HTTP/2 connection carries client-opened streams only".into(),
            )),
        }
    }

    /// Waits for a stream the peer opened (zero-trust clients open their
    /// flows toward the edge); `None` once the connection is closed or on
    /// HTTP/2, where only the edge opens streams. Cancel-safe.
    pub async fn accept_stream(&self) -> Option<BoxStream> {
        match self {
            Self::Quic(c) => quic::accept_stream(c).await.ok(),
            Self::H2(_) => None,
            Self::H2Served(h) => h.accept_stream().await,
        }
    }

    /// Resolves when the connection has closed, for any reason. Cancel-safe.
    pub async fn closed(&self) {
        match self {
            Self::Quic(c) => {
                c.closed().await;
            }
            Self::H2(h) => h.closed().await,
            Self::H2Served(h) => h.closed().await,
        }
    }

    /// Closes the connection at once; open streams fail.
    pub fn close(&self) {
        match self {
            Self::Quic(c) => c.close(0u32.into(), b"closing"),
            Self::H2(h) => h.close(),
            Self::H2Served(h) => h.close(),
        }
    }

    /// The smoothed round-trip time QUIC measures; `None` over HTTP/2.
    #[must_use]
    pub fn rtt(&self) -> Option<std::time::Duration> {
        match self {
            Self::Quic(c) => Some(c.rtt()),
            _ => None,
        }
    }

    /// Which transport this is.
    pub fn protocol(&self) -> Protocol {
        match self {
            Self::Quic(_) => Protocol::Quic,
            Self::H2(_) | Self::H2Served(_) => Protocol::Http2,
        }
    }
}

/// The connector's handle on one tunnel connection.
pub enum ConnectorConn {
    /// Over QUIC.
    Quic(quic::Conn),
    /// Over HTTP/2 (the connector is the server).
    H2(h2::ConnectorH2),
    /// Over HTTP/2 as the stream-opening side (zero-trust clients).
    H2Opener(h2::EdgeH2),
}

impl ConnectorConn {
    /// The key-exchange group of the connection's handshake
    /// (`X25519MLKEM768` when post-quantum), when known.
    #[must_use]
    pub fn key_exchange(&self) -> Option<String> {
        match self {
            Self::Quic(c) => quic_tls::key_exchange(c),
            Self::H2(h) => h.kx.clone(),
            Self::H2Opener(h) => h.kx.clone(),
        }
    }

    /// Waits for the next flow stream the edge opens; `None` once the
    /// connection is closed. Cancel-safe.
    pub async fn accept_stream(&mut self) -> Option<BoxStream> {
        match self {
            Self::Quic(c) => quic::accept_stream(c).await.ok(),
            Self::H2(h) => h.accept_stream().await,
            Self::H2Opener(_) => None,
        }
    }

    /// Closes the connection at once.
    pub fn close(&self) {
        match self {
            Self::Quic(c) => c.close(0u32.into(), b"closing"),
            Self::H2(h) => h.close(),
            Self::H2Opener(h) => h.close(),
        }
    }

    /// Resolves when a QUIC connection has closed; never for HTTP/2 (its
    /// loss shows in [`accept_stream`](Self::accept_stream)). Cancel-safe.
    pub async fn closed(&self) {
        match self {
            Self::Quic(c) => {
                c.closed().await;
            }
            Self::H2(_) => std::future::pending().await,
            Self::H2Opener(h) => h.closed().await,
        }
    }

    /// Whether a QUIC connection has closed (HTTP/2: never reported here).
    pub fn is_closed(&self) -> bool {
        match self {
            Self::Quic(c) => c.close_reason().is_some(),
            Self::H2(_) => false,
            Self::H2Opener(h) => h.is_closed(),
        }
    }

    /// Opens a stream toward the edge (zero-trust client flows). QUIC
    /// only: on HTTP/2 the edge is the side that opens streams.
    ///
    /// # Errors
    /// When the connection is gone, or on HTTP/2.
    pub async fn open_stream(&self) -> Result<BoxStream, TransportError> {
        match self {
            Self::Quic(c) => quic::open_stream(c).await,
            Self::H2Opener(h) => h.open_stream().await,
            Self::H2(_) => Err(TransportError::Protocol(
                "client flows need QUIC; HTTP/2 connections carry edge-opened streams only".into(),
            )),
        }
    }

    /// The smoothed round-trip time QUIC measures; `None` over HTTP/2.
    #[must_use]
    pub fn rtt(&self) -> Option<std::time::Duration> {
        match self {
            Self::Quic(c) => Some(c.rtt()),
            _ => None,
        }
    }

    /// Which transport this is.
    pub fn protocol(&self) -> Protocol {
        match self {
            Self::Quic(_) => Protocol::Quic,
            Self::H2(_) | Self::H2Opener(_) => Protocol::Http2,
        }
    }
}
