//! QUIC transport (quinn).
//!
//! Flow-control windows follow cloudflared's sizing (30 MiB per connection,
//! 6 MiB per stream) so a single bulk flow is not window-limited; UDP socket
//! buffers are raised to [`UDP_BUFFER`] where the kernel allows.
//!
//! Congestion control is BBR, not quinn's default CUBIC: a tunnel's
//! connections live long and cross the Internet, where random loss is not
//! congestion. Across an emulated 50 ms RTT link with 1 % loss each way
//! (`bench/impair.sh`) one stream moved 4 Mbit/s with CUBIC and 350 Mbit/s
//! with BBR, against 219 Mbit/s for HTTP/2 over the kernel's TCP; on
//! loopback BBR's pacing costs about 8 % of single-stream throughput.

use crate::pki::EdgeTrust;
use crate::stream::ChunkStream;
use crate::{BoxStream, ConnectorConn, EdgeConn, TransportError};
use bytes::Bytes;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

/// Receive window per stream.
pub const STREAM_WINDOW: u32 = 6 * 1024 * 1024;
/// Receive window per connection.
pub const CONN_WINDOW: u32 = 30 * 1024 * 1024;
/// Most concurrent flow streams one connection carries.
pub const MAX_STREAMS: u32 = 16_384;
/// Concurrent streams a connection allows its peer at first; the limit
/// grows fourfold, up to [`MAX_STREAMS`], when three quarters are in use
/// (see [`Conn`]). quinn keeps a slot per stream the peer may open, so
/// starting at [`MAX_STREAMS`] cost ~2 ms of CPU and ~1 MB per connection
/// before the first flow.
pub const INITIAL_STREAMS: u32 = 256;
/// Idle timeout of a tunnel connection: a peer silent this long is gone
/// (a killed process, a cut path), and its flows move elsewhere. QUIC
/// restarts the timer when a keep-alive goes out, so a silent peer is
/// given up within this plus one [`KEEP_ALIVE`] (under 2 s); a live but
/// lossy link must lose every packet of about seven keep-alive rounds.
pub const IDLE_TIMEOUT: Duration = Duration::from_millis(1750);
/// Keep-alive interval (each side).
pub const KEEP_ALIVE: Duration = Duration::from_millis(250);
/// Largest UDP payload MTU discovery probes for. Paths that do not carry
/// it (most of the Internet stops at 1500-byte frames) simply keep the
/// largest size that got through; loopback and jumbo-frame networks use it.
pub const MTU_UPPER_BOUND: u16 = 1452;
/// Connection receive window of a connection that has not registered yet
/// (the edge side): enough for a registration, not for a flood.
pub const PREAUTH_WINDOW: u32 = 64 * 1024;

/// quinn server config of the QUIC tunnel endpoint: the edge's
/// certificate and the pre-registration transport parameters.
///
/// # Errors
/// When the key does not match the certificate.
pub fn server_config(pki: &crate::pki::EdgePki) -> Result<quinn::ServerConfig, TransportError> {
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(pki.quic_server_tls()?)
        .map_err(crate::pki::tls_err)?;
    let crypto = crate::quic_tls::WatchedServer(Arc::new(crypto));
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    cfg.transport_config(Arc::new(server_transport_config()));
    Ok(cfg)
}

/// The edge's transport parameters before a peer registers: one stream
/// (the control stream) and a [`PREAUTH_WINDOW`]; [`authorize`] raises
/// both to [`transport_config`]'s values once the peer is known.
pub fn server_transport_config() -> quinn::TransportConfig {
    let mut t = transport_config();
    t.receive_window(PREAUTH_WINDOW.into())
        .max_concurrent_bidi_streams(1u32.into());
    t
}

/// Lifts the pre-registration limits of [`server_transport_config`].
pub(crate) fn authorize(conn: &Conn) {
    conn.set_receive_window(CONN_WINDOW.into());
    conn.streams.limit.store(INITIAL_STREAMS, Ordering::Relaxed);
    conn.set_max_concurrent_bi_streams(INITIAL_STREAMS.into());
}

/// A tunnel connection over QUIC: the quinn connection (what it derefs
/// to) and the count of the streams its peer opened that are still open,
/// which raises the peer's stream limit as they fill it.
#[derive(Clone)]
pub struct Conn {
    inner: quinn::Connection,
    streams: Arc<StreamBudget>,
}

/// Peer-opened streams still open, and the limit the peer was given.
struct StreamBudget {
    open: AtomicU32,
    limit: AtomicU32,
}

impl Conn {
    fn new(inner: quinn::Connection, limit: u32) -> Self {
        Conn {
            inner,
            streams: Arc::new(StreamBudget {
                open: AtomicU32::new(0),
                limit: AtomicU32::new(limit),
            }),
        }
    }

    /// The quinn connection.
    #[must_use]
    pub fn connection(&self) -> &quinn::Connection {
        &self.inner
    }
}

impl std::ops::Deref for Conn {
    type Target = quinn::Connection;
    fn deref(&self) -> &quinn::Connection {
        &self.inner
    }
}

/// The next limit when `open` peer streams are open under `limit`: four
/// times as many once three quarters are taken, up to [`MAX_STREAMS`].
/// A limit of 0 stands for a peer not yet registered, which gets none.
fn grown_limit(open: u32, limit: u32) -> Option<u32> {
    (limit > 0 && limit < MAX_STREAMS && open.saturating_mul(4) >= limit.saturating_mul(3))
        .then(|| limit.saturating_mul(4).min(MAX_STREAMS))
}

/// One QUIC bidirectional stream as a byte stream. A stream the peer
/// opened counts as open in its connection's [`StreamBudget`] until dropped.
///
/// Besides `AsyncRead`/`AsyncWrite` it hands its bytes over as `Bytes`
/// ([`ChunkStream`]), which [`crate::splice`] uses to skip a copy each way.
pub(crate) struct QuicStream {
    recv: quinn::RecvStream,
    send: quinn::SendStream,
    budget: Option<Arc<StreamBudget>>,
}

impl Drop for QuicStream {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl tokio::io::AsyncRead for QuicStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.recv).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for QuicStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        tokio::io::AsyncWrite::poll_write(Pin::new(&mut self.send), cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::io::AsyncWrite::poll_flush(Pin::new(&mut self.send), cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::io::AsyncWrite::poll_shutdown(Pin::new(&mut self.send), cx)
    }
}

impl ChunkStream for QuicStream {
    fn poll_read_chunks(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &mut [Bytes],
    ) -> Poll<io::Result<usize>> {
        // quinn's read futures are cancel-safe: one made and polled per
        // call leaves the waker registered and loses nothing when dropped.
        let read = std::pin::pin!(self.recv.read_chunks(bufs));
        match ready!(read.poll(cx)) {
            Ok(n) => Poll::Ready(Ok(n.unwrap_or(0))),
            Err(e) => Poll::Ready(Err(e.into())),
        }
    }

    fn poll_write_chunk(
        &mut self,
        cx: &mut Context<'_>,
        chunk: &mut Bytes,
    ) -> Poll<io::Result<()>> {
        // `write_chunks` takes what flow control allows (at least one
        // byte when ready) and leaves the rest in `chunk`; nothing is
        // written when it is pending.
        let write = std::pin::pin!(self.send.write_chunks(std::slice::from_mut(chunk)));
        match ready!(write.poll(cx)) {
            Ok(_) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(e.into())),
        }
    }
}

/// Requested UDP socket buffer size.
pub const UDP_BUFFER: usize = crate::udp::SHARED_BUFFER;

/// Transport parameters shared by both ends.
pub fn transport_config() -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(MTU_UPPER_BOUND);
    t.mtu_discovery_config(Some(mtu));
    t.stream_receive_window(STREAM_WINDOW.into())
        .receive_window(CONN_WINDOW.into())
        .send_window(u64::from(CONN_WINDOW))
        .max_concurrent_bidi_streams(INITIAL_STREAMS.into())
        .max_concurrent_uni_streams(0u32.into())
        .congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default()))
        .keep_alive_interval(Some(KEEP_ALIVE))
        .max_idle_timeout(Some(
            IDLE_TIMEOUT
                .try_into()
                .expect("1.75 s fits a QUIC idle timeout"),
        ));
    t
}

/// Largest UDP payload accepted: as large as MTU discovery may reach.
const MAX_UDP_PAYLOAD: u16 = 65_527;

fn endpoint_config() -> quinn::EndpointConfig {
    let mut c = quinn::EndpointConfig::default();
    c.max_udp_payload_size(MAX_UDP_PAYLOAD)
        .expect("within QUIC's allowed range");
    c
}

fn udp_socket(addr: SocketAddr) -> Result<std::net::UdpSocket, TransportError> {
    let s = crate::udp::bind(addr, UDP_BUFFER)?;
    // Linux reports twice the usable size; half of what we asked is fine.
    if let Ok(got) = socket2::SockRef::from(&s).recv_buffer_size() {
        if got < UDP_BUFFER / 2 {
            tracing::warn!(
                requested = UDP_BUFFER,
                got,
                "small UDP receive buffer limits QUIC throughput; raise it with \
                 sysctl -w net.core.rmem_max=8388608 net.core.wmem_max=8388608"
            );
        }
    }
    Ok(s)
}

/// Tokio for quinn, except that the connection and endpoint drivers run
/// last ([`crate::run_last`]), so one driver turn sends what many flow
/// tasks wrote.
#[derive(Debug)]
struct BatchingRuntime;

impl quinn::Runtime for BatchingRuntime {
    fn new_timer(&self, i: std::time::Instant) -> std::pin::Pin<Box<dyn quinn::AsyncTimer>> {
        quinn::TokioRuntime.new_timer(i)
    }

    fn spawn(&self, future: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>) {
        tokio::spawn(crate::run_last::RunLast::new(future));
    }

    fn wrap_udp_socket(
        &self,
        t: std::net::UdpSocket,
    ) -> std::io::Result<Arc<dyn quinn::AsyncUdpSocket>> {
        quinn::TokioRuntime.wrap_udp_socket(t)
    }
}

/// Binds the edge's QUIC endpoint on `addr` (UDP).
///
/// # Errors
/// When the UDP port cannot be bound.
pub fn server_endpoint(
    addr: SocketAddr,
    config: quinn::ServerConfig,
    reset_key: &[u8],
) -> Result<quinn::Endpoint, TransportError> {
    let socket = udp_socket(addr)?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, reset_key);
    // Connection ids are checked with a key too (a packet whose id this
    // endpoint could not have issued is dropped unanswered): derived from
    // the reset key, so a restarted edge recognises its previous run's ids
    // and answers them with a stateless reset.
    let tag = ring::hmac::sign(&key, b"burrow connection-id key");
    let cid_key = u64::from_le_bytes(tag.as_ref()[..8].try_into().expect("8 bytes"));
    let mut endpoint = quinn::EndpointConfig::new(Arc::new(key));
    endpoint
        .max_udp_payload_size(MAX_UDP_PAYLOAD)
        .expect("within QUIC's allowed range")
        .cid_generator(move || {
            Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
        });
    quinn::Endpoint::new(endpoint, Some(config), socket, Arc::new(BatchingRuntime))
        .map_err(TransportError::Io)
}

/// A client endpoint for a connector, bound to an ephemeral port of the
/// right address family.
///
/// # Errors
/// When no UDP socket can be bound.
pub fn client_endpoint(for_peer: SocketAddr) -> Result<quinn::Endpoint, TransportError> {
    let bind: SocketAddr = if for_peer.is_ipv6() {
        "[::]:0".parse().expect("valid literal")
    } else {
        "0.0.0.0:0".parse().expect("valid literal")
    };
    let socket = udp_socket(bind)?;
    quinn::Endpoint::new(endpoint_config(), None, socket, Arc::new(BatchingRuntime))
        .map_err(TransportError::Io)
}

/// Edge side: completes the handshake of an incoming QUIC connection and
/// waits for the connector to open the control stream.
///
/// # Errors
/// On handshake failure, or when no control stream arrives within `timeout`.
pub async fn accept(
    incoming: quinn::Incoming,
    timeout: Duration,
) -> Result<(EdgeConn, BoxStream), TransportError> {
    let work = async {
        let conn = incoming
            .await
            .map_err(|e| TransportError::Quic(e.to_string()))?;
        // Until the peer registers: the control stream only (the limit of
        // `server_transport_config`), which accepting it does not raise.
        let conn = Conn::new(conn, 0);
        let control = tokio::select! {
            c = accept_stream(&conn) => c?,
            never = drop_datagrams(&conn) => match never {},
        };
        Ok((EdgeConn::Quic(conn), control))
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| TransportError::Timeout(timeout, "waiting for the QUIC handshake"))?
}

/// Reads and drops the peer's QUIC datagrams; never returns. The edge runs
/// it until a peer has registered: datagrams are not flow-controlled, and
/// quinn keeps up to 1.25 MB of them per connection for the application,
/// so a peer that never registers could otherwise make every connection it
/// holds open cost that much.
pub async fn drop_datagrams(conn: &quinn::Connection) -> std::convert::Infallible {
    while conn.read_datagram().await.is_ok() {}
    std::future::pending().await
}

/// Connector side: dials the edge over QUIC, verifying its certificate for
/// `quic.<domain>`, and opens the control stream.
///
/// # Errors
/// On TLS or QUIC failure, or when the handshake takes longer than `timeout`.
pub async fn connect(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    trust: &EdgeTrust,
    timeout: Duration,
) -> Result<(ConnectorConn, BoxStream), TransportError> {
    let tls = trust.client_config(crate::ALPN_QUIC, true)?;
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| TransportError::Tls(e.to_string()))?;
    let crypto = crate::quic_tls::WatchedClient(Arc::new(crypto));
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    cfg.transport_config(Arc::new(transport_config()));
    let sni = crate::pki::quic_server_name(&trust.domain);
    let connecting = endpoint
        .connect_with(cfg, addr, &sni)
        .map_err(|e| TransportError::Quic(e.to_string()))?;
    let conn = tokio::time::timeout(timeout, connecting)
        .await
        .map_err(|_| TransportError::Timeout(timeout, "waiting for the QUIC handshake"))?
        .map_err(|e| TransportError::Quic(e.to_string()))?;
    let control = open_stream(&conn).await?;
    Ok((
        ConnectorConn::Quic(Conn::new(conn, INITIAL_STREAMS)),
        control,
    ))
}

/// Opens a bidirectional stream as one byte stream.
///
/// # Errors
/// When the connection is gone or refuses more streams.
pub(crate) async fn open_stream(conn: &quinn::Connection) -> Result<BoxStream, TransportError> {
    let (send, recv) = conn
        .open_bi()
        .await
        .map_err(|e| TransportError::Quic(e.to_string()))?;
    Ok(Box::new(QuicStream {
        recv,
        send,
        budget: None,
    }))
}

/// Accepts the peer's next bidirectional stream as one byte stream.
///
/// # Errors
/// When the connection is closed.
pub(crate) async fn accept_stream(conn: &Conn) -> Result<BoxStream, TransportError> {
    let (send, recv) = conn
        .accept_bi()
        .await
        .map_err(|e| TransportError::Quic(e.to_string()))?;
    let budget = &conn.streams;
    let open = budget.open.fetch_add(1, Ordering::Relaxed) + 1;
    let limit = budget.limit.load(Ordering::Relaxed);
    if let Some(more) = grown_limit(open, limit) {
        if budget
            .limit
            .compare_exchange(limit, more, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            conn.set_max_concurrent_bi_streams(more.into());
        }
    }
    Ok(Box::new(QuicStream {
        recv,
        send,
        budget: Some(budget.clone()),
    }))
}

#[cfg(test)]
mod budget_tests {
    use super::*;

    #[test]
    fn the_stream_limit_grows_fourfold_at_three_quarters_up_to_the_maximum() {
        assert_eq!(grown_limit(191, 256), None);
        assert_eq!(grown_limit(192, 256), Some(1024));
        assert_eq!(grown_limit(768, 1024), Some(4096));
        assert_eq!(grown_limit(3072, 4096), Some(MAX_STREAMS));
        assert_eq!(grown_limit(MAX_STREAMS, MAX_STREAMS), None);
        // A peer that has not registered never gets more.
        assert_eq!(grown_limit(1, 0), None);
    }

    #[tokio::test]
    async fn thousands_of_concurrent_flows_open_past_the_initial_limit() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let pki = crate::pki::EdgePki::ephemeral("burrow.internal").unwrap();
        let trust = EdgeTrust::new(&pki.ca_pem, "burrow.internal").unwrap();
        let (edge, mut connector, _ep) = testing::loopback(&pki, &trust).await.unwrap();
        const N: usize = 3000;
        // The connector holds every flow open until all have arrived.
        let held = tokio::spawn(async move {
            let mut held = Vec::new();
            while held.len() < N {
                let mut s = connector.accept_stream().await.expect("a stream");
                let mut b = [0u8; 1];
                s.read_exact(&mut b).await.unwrap();
                held.push(s);
            }
            held
        });
        let edge = Arc::new(edge);
        let opened: Vec<_> = (0..N)
            .map(|_| {
                let edge = edge.clone();
                tokio::spawn(async move {
                    let mut s = edge.open_stream().await.unwrap();
                    s.write_all(b"x").await.unwrap();
                    s
                })
            })
            .collect();
        let held = tokio::time::timeout(Duration::from_secs(20), held)
            .await
            .expect("all flows accepted in time (the limit grew)")
            .unwrap();
        assert_eq!(held.len(), N);
        for o in opened {
            o.await.unwrap();
        }
    }
}

/// Test helpers shared by this crate's unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// One QUIC tunnel connection on loopback between an edge with `pki`
    /// and a connector trusting `trust`: (edge side, connector side, the
    /// client endpoint), or the connector's error.
    pub(crate) async fn loopback(
        pki: &crate::pki::EdgePki,
        trust: &EdgeTrust,
    ) -> Result<(EdgeConn, ConnectorConn, quinn::Endpoint), String> {
        const T: Duration = Duration::from_secs(5);
        let server = server_endpoint(
            "127.0.0.1:0".parse().unwrap(),
            server_config(pki).unwrap(),
            pki.reset_key(),
        )
        .unwrap();
        let addr = server.local_addr().unwrap();
        let accepting = tokio::spawn(async move {
            let incoming = server.accept().await?;
            Some(accept(incoming, T).await)
        });
        let client = client_endpoint(addr).unwrap();
        let (conn, mut control) = connect(&client, addr, trust, T)
            .await
            .map_err(|e| e.to_string())?;
        // The edge sees the control stream once a byte is on it.
        control.write_all(b"x").await.unwrap();
        let (edge, _) = accepting
            .await
            .unwrap()
            .expect("an incoming connection")
            .map_err(|e| e.to_string())?;
        Ok((edge, conn, client))
    }
}
