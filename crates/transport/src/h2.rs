//! HTTP/2 over TLS over TCP, for networks where UDP is blocked.
//!
//! The connector dials TLS (SNI `h2.<domain>`, certificate verified against
//! the edge CA) and then *serves* HTTP/2 on that socket; the edge is the
//! HTTP/2 client and opens one request stream per flow. The first stream the
//! edge opens is the control stream. Every stream is answered `200` at once
//! and both bodies then carry raw bytes, exactly like a QUIC stream.
//!
//! Zero-trust clients open their flows themselves, so they take the other
//! role: with ALPN [`crate::ALPN_H2_CLIENT`] the client is the HTTP/2
//! client (its first stream is the control stream) and the edge serves.

use crate::pki::EdgeTrust;
use crate::stream::H2Stream;
use crate::{BoxStream, ConnectorConn, EdgeConn, TransportError};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

/// Receive window per stream.
pub const STREAM_WINDOW: u32 = 6 * 1024 * 1024;
/// Receive window per connection.
pub const CONN_WINDOW: u32 = 30 * 1024 * 1024;
/// Most concurrent flow streams one connection carries.
pub const MAX_STREAMS: u32 = 16_384;
/// Largest DATA frame we accept (and so the most one stream buffers on read).
pub const MAX_FRAME: u32 = 64 * 1024;
/// Receive window (per stream and per connection) the edge grants before
/// the peer registers; [`EdgeConn::authorize`] raises it.
pub const PREAUTH_WINDOW: u32 = 64 * 1024;
/// TCP keep-alive idle time on tunnel sockets.
pub const TCP_KEEPALIVE: Duration = Duration::from_secs(15);

fn keepalive(tcp: &TcpStream) {
    let s = socket2::SockRef::from(tcp);
    let ka = socket2::TcpKeepalive::new()
        .with_time(TCP_KEEPALIVE)
        .with_interval(Duration::from_secs(5));
    let _ = s.set_tcp_keepalive(&ka);
    let _ = tcp.set_nodelay(true);
}

/// Whether a connection starts with the pre-registration limits (the
/// edge's side), lifted when `grant` is cancelled, or trusts its peer from
/// the start (the connector's and client's sides).
#[derive(Clone)]
enum Limits {
    Full,
    PreAuth { grant: CancellationToken },
}

impl Limits {
    fn pre_auth() -> Self {
        Self::PreAuth {
            grant: CancellationToken::new(),
        }
    }

    /// (stream window, connection window) to start with.
    fn windows(&self) -> (u32, u32) {
        match self {
            Self::Full => (STREAM_WINDOW, CONN_WINDOW),
            Self::PreAuth { .. } => (PREAUTH_WINDOW, PREAUTH_WINDOW),
        }
    }

    fn grant(&self) {
        if let Self::PreAuth { grant } = self {
            grant.cancel();
        }
    }

    /// Resolves when the limits are lifted; never for [`Limits::Full`].
    async fn granted(&self) {
        match self {
            Self::Full => std::future::pending().await,
            Self::PreAuth { grant } => grant.cancelled().await,
        }
    }

    fn is_granted(&self) -> bool {
        match self {
            Self::Full => true,
            Self::PreAuth { grant } => grant.is_cancelled(),
        }
    }
}

/// The edge's side of an HTTP/2 tunnel connection. Cheap to clone.
#[derive(Clone)]
pub struct EdgeH2 {
    send: ::h2::client::SendRequest<Bytes>,
    closed: CancellationToken,
    driver: AbortHandle,
    limits: Limits,
    /// The TLS handshake's key-exchange group.
    pub(crate) kx: Option<String>,
}

impl EdgeH2 {
    pub(crate) fn authorize(&self) {
        self.limits.grant();
    }

    pub(crate) async fn open_stream(&self) -> Result<BoxStream, TransportError> {
        let mut ready = self.send.clone().ready().await?;
        let req = http::Request::builder()
            .method(http::Method::POST)
            .uri("https://burrow.tunnel/flow")
            .body(())
            .expect("static request is valid");
        let (resp, send) = ready.send_request(req, false)?;
        Ok(Box::new(H2Stream::client(send, resp)))
    }

    pub(crate) async fn closed(&self) {
        self.closed.cancelled().await;
    }

    pub(crate) fn close(&self) {
        self.driver.abort();
        self.closed.cancel();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }
}

/// The connector's side of an HTTP/2 tunnel connection.
pub struct ConnectorH2 {
    streams: mpsc::Receiver<BoxStream>,
    driver: AbortHandle,
    /// The TLS handshake's key-exchange group.
    pub(crate) kx: Option<String>,
}

impl ConnectorH2 {
    pub(crate) async fn accept_stream(&mut self) -> Option<BoxStream> {
        self.streams.recv().await
    }

    pub(crate) fn close(&self) {
        self.driver.abort();
    }
}

impl Drop for ConnectorH2 {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Edge side: TLS-accepts `tcp`, starts HTTP/2 as the client and opens the
/// control stream.
///
/// # Errors
/// On TLS or HTTP/2 handshake failure, or when it takes longer than `timeout`.
pub async fn accept(
    tcp: TcpStream,
    tls: Arc<rustls::ServerConfig>,
    timeout: Duration,
) -> Result<(EdgeConn, BoxStream), TransportError> {
    keepalive(&tcp);
    let work = async {
        let tls = tokio_rustls::TlsAcceptor::from(tls)
            .accept(tcp)
            .await
            .map_err(|e| TransportError::Tls(e.to_string()))?;
        let kx = group_of(tls.get_ref().1.negotiated_key_exchange_group());
        if tls.get_ref().1.alpn_protocol() == Some(crate::ALPN_H2_CLIENT) {
            let (parts, control) = serve(tls, Limits::pre_auth()).await?;
            let mut served: Served = parts.into();
            served.kx = kx;
            return Ok((EdgeConn::H2Served(served), control));
        }
        let mut edge = opener(tls, Limits::pre_auth()).await?;
        edge.kx = kx;
        let control = edge.open_stream().await?;
        Ok((EdgeConn::H2(edge), control))
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| TransportError::Timeout(timeout, "waiting for the TLS/HTTP/2 handshake"))?
}

/// The name of a TLS connection's key-exchange group.
fn group_of(g: Option<&'static dyn rustls::crypto::SupportedKxGroup>) -> Option<String> {
    g.map(|g| crate::kx::group_name(u16::from(g.name())))
}

/// TCP to `addr`, then TLS verified for `h2.<domain>` with `alpn`.
async fn dial_tls(
    addr: SocketAddr,
    trust: &EdgeTrust,
    alpn: &[u8],
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, TransportError> {
    let tls_cfg = Arc::new(trust.client_config(alpn, false)?);
    let name = EdgeTrust::server_name(crate::pki::h2_server_name(&trust.domain))?;
    let tcp = TcpStream::connect(addr).await?;
    keepalive(&tcp);
    tokio_rustls::TlsConnector::from(tls_cfg)
        .connect(name, tcp)
        .await
        .map_err(|e| TransportError::Tls(e.to_string()))
}

/// Connector side: dials `addr`, verifies the edge for `h2.<domain>`, serves
/// HTTP/2 and waits for the edge's control stream.
///
/// # Errors
/// On TCP, TLS or HTTP/2 failure, or when it takes longer than `timeout`.
pub async fn connect(
    addr: SocketAddr,
    trust: &EdgeTrust,
    timeout: Duration,
) -> Result<(ConnectorConn, BoxStream), TransportError> {
    let work = async move {
        let tls = dial_tls(addr, trust, crate::ALPN_H2).await?;
        let kx = group_of(tls.get_ref().1.negotiated_key_exchange_group());
        let (parts, control) = serve(tls, Limits::Full).await?;
        Ok((
            ConnectorConn::H2(ConnectorH2 {
                streams: parts.streams,
                driver: parts.driver,
                kx,
            }),
            control,
        ))
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| TransportError::Timeout(timeout, "connecting over TLS/HTTP/2"))?
}

/// The side that opens streams: HTTP/2 client handshake on `io`.
async fn opener<IO>(io: IO, limits: Limits) -> Result<EdgeH2, TransportError>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (stream_window, conn_window) = limits.windows();
    let (send, mut conn) = ::h2::client::Builder::new()
        .initial_window_size(stream_window)
        .initial_connection_window_size(conn_window)
        .max_frame_size(MAX_FRAME)
        .max_concurrent_reset_streams(1024)
        .handshake::<_, Bytes>(io)
        .await?;
    let closed = CancellationToken::new();
    let on_close = closed.clone();
    let grant = limits.clone();
    let driver = crate::run_last::spawn(async move {
        // Until the peer registers the windows stay small; then they grow
        // to the full size (a SETTINGS frame and a WINDOW_UPDATE).
        let end = tokio::select! {
            r = &mut conn => Some(r),
            () = grant.granted() => None,
        };
        let end = match end {
            Some(r) => r,
            None => {
                conn.set_target_window_size(CONN_WINDOW);
                let _ = conn.set_initial_window_size(STREAM_WINDOW);
                conn.await
            }
        };
        if let Err(e) = end {
            tracing::debug!(error = %e, "HTTP/2 tunnel connection ended");
        }
        on_close.cancel();
    })
    .abort_handle();
    Ok(EdgeH2 {
        send,
        closed,
        driver,
        limits,
        kx: None,
    })
}

/// The side that accepts streams, as the edge holds it for zero-trust
/// clients over HTTP/2. Cheap to clone.
#[derive(Clone)]
pub struct Served {
    streams: Arc<tokio::sync::Mutex<mpsc::Receiver<BoxStream>>>,
    closed: CancellationToken,
    driver: AbortHandle,
    limits: Limits,
    /// The TLS handshake's key-exchange group.
    pub(crate) kx: Option<String>,
}

impl Served {
    pub(crate) fn authorize(&self) {
        self.limits.grant();
    }

    pub(crate) async fn accept_stream(&self) -> Option<BoxStream> {
        self.streams.lock().await.recv().await
    }

    pub(crate) async fn closed(&self) {
        self.closed.cancelled().await;
    }

    pub(crate) fn close(&self) {
        self.driver.abort();
        self.closed.cancel();
    }
}

/// What [`serve`] hands back; the connector keeps the parts, the edge
/// wraps them in [`Served`].
struct ServedParts {
    streams: mpsc::Receiver<BoxStream>,
    closed: CancellationToken,
    driver: AbortHandle,
    limits: Limits,
}

impl From<ServedParts> for Served {
    fn from(p: ServedParts) -> Self {
        Self {
            streams: Arc::new(tokio::sync::Mutex::new(p.streams)),
            closed: p.closed,
            driver: p.driver,
            limits: p.limits,
            kx: None,
        }
    }
}

/// The side that accepts streams: HTTP/2 server handshake on `io`; the
/// first stream is the control stream.
async fn serve<IO>(io: IO, limits: Limits) -> Result<(ServedParts, BoxStream), TransportError>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (stream_window, conn_window) = limits.windows();
    let mut conn = ::h2::server::Builder::new()
        .initial_window_size(stream_window)
        .initial_connection_window_size(conn_window)
        .max_frame_size(MAX_FRAME)
        .max_concurrent_streams(MAX_STREAMS)
        .max_concurrent_reset_streams(1024)
        .handshake::<_, Bytes>(io)
        .await?;
    let (req, mut respond) = conn.accept().await.ok_or(TransportError::Closed)??;
    let send = respond.send_response(ok_response(), false)?;
    let control: BoxStream = Box::new(H2Stream::server(send, req.into_body()));
    let cap = usize::try_from(MAX_STREAMS).expect("small constant");
    let (tx, rx) = mpsc::channel::<BoxStream>(cap);
    let closed = CancellationToken::new();
    let on_close = closed.clone();
    let grant = limits.clone();
    let driver = crate::run_last::spawn(async move {
        // Polling accept() drives the whole connection, so never block
        // here: a full queue refuses the stream instead (h2 limits open
        // streams to MAX_STREAMS, so the queue cannot really fill).
        let mut granted = grant.is_granted();
        loop {
            let next = tokio::select! {
                // accept() keeps no state between polls: cancel-safe.
                n = conn.accept() => n,
                () = grant.granted(), if !granted => {
                    granted = true;
                    conn.set_target_window_size(CONN_WINDOW);
                    let _ = conn.set_initial_window_size(STREAM_WINDOW);
                    continue;
                }
            };
            let Some(next) = next else { break };
            let (req, mut respond) = match next {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "HTTP/2 tunnel connection ended");
                    break;
                }
            };
            if !granted {
                // Nothing but the control stream before registration.
                respond.send_reset(::h2::Reason::REFUSED_STREAM);
                continue;
            }
            match respond.send_response(ok_response(), false) {
                Ok(send) => {
                    let s: BoxStream = Box::new(H2Stream::server(send, req.into_body()));
                    if tx.try_send(s).is_err() {
                        tracing::warn!("flow stream refused: accept queue full");
                    }
                }
                Err(e) => tracing::debug!(error = %e, "could not answer a flow stream"),
            }
        }
        on_close.cancel();
    })
    .abort_handle();
    let parts = ServedParts {
        streams: rx,
        closed,
        driver,
        limits,
    };
    Ok((parts, control))
}

fn ok_response() -> http::Response<()> {
    http::Response::builder()
        .status(http::StatusCode::OK)
        .body(())
        .expect("static response is valid")
}

/// Zero-trust client side: dials `addr` with ALPN
/// [`crate::ALPN_H2_CLIENT`], verifies the edge for `h2.<domain>`, and
/// opens the control stream; flows are streams it opens.
///
/// # Errors
/// On TCP, TLS or HTTP/2 failure, or when it takes longer than `timeout`.
pub async fn connect_opener(
    addr: SocketAddr,
    trust: &EdgeTrust,
    timeout: Duration,
) -> Result<(ConnectorConn, BoxStream), TransportError> {
    let work = async move {
        let tls = dial_tls(addr, trust, crate::ALPN_H2_CLIENT).await?;
        let kx = group_of(tls.get_ref().1.negotiated_key_exchange_group());
        let mut h = opener(tls, Limits::Full).await?;
        h.kx = kx;
        let control = h.open_stream().await?;
        Ok((ConnectorConn::H2Opener(h), control))
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| TransportError::Timeout(timeout, "connecting over TLS/HTTP/2"))?
}
