//! The zero-trust client (`burrow client`): an enrolled device connects to
//! the edge over QUIC (HTTP/2 over TCP when UDP is blocked) with its device
//! credentials and serves a local SOCKS5
//! proxy (CONNECT); each proxied connection is one stream to the edge,
//! which dials the destination (names are resolved at the edge) and logs
//! the session.
//!
//! Module map: this file — connect and register, the SOCKS5 and HTTP
//! proxies' accept loops, one task per proxied connection; `udp` — SOCKS5
//! UDP ASSOCIATE. The SOCKS5 codec is `burrow_proto::socks5`.

mod udp;

use burrow_config::identity::DeviceCredentials;
use burrow_proto::socks5::{self, Command, Reply};
use burrow_proto::v2::{OpenFlow, Registration, Role, Target};
use burrow_proto::{FlowKind, Frame, StreamOpen};
use burrow_transport::frames::{self, write_frame, Answer, FrameReader, OlderEdges};
use burrow_transport::pki::EdgeTrust;
use burrow_transport::ConnectorConn;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

/// Time to connect and register.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// With `--protocol auto`, how long QUIC may take before HTTP/2 is tried.
const QUIC_FALLBACK_AFTER: Duration = Duration::from_secs(4);
/// Time a local application has to finish the SOCKS5 handshake.
const SOCKS_TIMEOUT: Duration = Duration::from_secs(10);
/// Time the edge has to reach a destination.
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The device's credentials.
    pub credentials: DeviceCredentials,
    /// Edge address.
    pub edge: SocketAddr,
    /// The edge's CA (PEM).
    pub edge_ca_pem: String,
    /// The edge domain (SNI `quic.<domain>`).
    pub edge_domain: String,
    /// Local SOCKS5 listener (loopback).
    pub socks: SocketAddr,
    /// Local HTTP CONNECT proxy listener (loopback), if any.
    pub http_proxy: Option<SocketAddr>,
    /// Virtual network for private routes; `None`: the edge's default.
    pub vnet: Option<String>,
    /// Transport to the edge.
    pub protocol: Protocol,
}

/// Transport to the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// QUIC, else HTTP/2 over TCP when QUIC cannot connect.
    #[default]
    Auto,
    /// QUIC only.
    Quic,
    /// HTTP/2 over TLS over TCP only.
    Http2,
}

/// Why the client stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The edge could not be reached or refused the device.
    #[error("{0}")]
    Edge(String),
    /// The local listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Failure.
        source: std::io::Error,
    },
}

/// The connection to the edge and the protocol version it speaks.
pub(crate) struct Edge {
    conn: ConnectorConn,
    wire: u16,
}

impl std::ops::Deref for Edge {
    type Target = ConnectorConn;
    fn deref(&self) -> &ConnectorConn {
        &self.conn
    }
}

/// Edges this process found speaking only protocol version 1.
static OLDER_EDGES: std::sync::LazyLock<OlderEdges> = std::sync::LazyLock::new(OlderEdges::default);

async fn register(cfg: &ClientConfig) -> Result<Edge, ClientError> {
    let e = |m: String| ClientError::Edge(m);
    let trust = EdgeTrust::new(&cfg.edge_ca_pem, &cfg.edge_domain)
        .map_err(|x| e(format!("edge CA: {x}")))?;
    // In auto mode QUIC gets less time: blocked UDP shows as silence.
    let quic_limit = if cfg.protocol == Protocol::Auto {
        QUIC_FALLBACK_AFTER
    } else {
        CONNECT_TIMEOUT
    };
    let c = &cfg.credentials;
    let reg = Registration {
        account_id: *c.account_id.as_bytes(),
        secret: c.secret.0.clone().into(),
        role: Role::Client {
            device_id: *c.device_id.as_bytes(),
            vnet: cfg.vnet.clone(),
        },
        version: format!("burrow-client {}", env!("CARGO_PKG_VERSION")),
        features: Vec::new(),
    };
    // A second try only when an edge of an older release dropped the
    // version 2 registration: then in version 1.
    for tries in 1..=2 {
        let quic = async {
            let ep =
                burrow_transport::quic::client_endpoint(cfg.edge).map_err(|x| e(x.to_string()))?;
            burrow_transport::quic::connect(&ep, cfg.edge, &trust, quic_limit)
                .await
                .map_err(|x| e(format!("QUIC to {}: {x}", cfg.edge)))
        };
        let h2 = || async {
            burrow_transport::h2::connect_opener(cfg.edge, &trust, CONNECT_TIMEOUT)
                .await
                .map_err(|x| e(format!("HTTP/2 to {}: {x}", cfg.edge)))
        };
        let (conn, mut control) = match cfg.protocol {
            Protocol::Quic => quic.await?,
            Protocol::Http2 => h2().await?,
            Protocol::Auto => match quic.await {
                Ok(c) => c,
                Err(q) => {
                    warn!(reason = %q, "QUIC to the edge failed; falling back to HTTP/2 over TCP");
                    h2().await?
                }
            },
        };
        let wire = OLDER_EDGES.version(cfg.edge);
        let mut reader = FrameReader::new();
        let answer = frames::register(&mut control, &mut reader, &reg, wire, CONNECT_TIMEOUT).await;
        if OLDER_EDGES.learn(cfg.edge, wire, &answer) && tries < 2 {
            conn.close();
            continue;
        }
        return match answer.map_err(|x| e(format!("registration: {x}")))? {
            Answer::Welcome(w) => {
                info!(edge = %cfg.edge, colo = %w.colo, device_id = %c.device_id, protocol = conn.protocol().as_str(), wire, "client connected to the edge");
                // The control stream must stay open for the connection's
                // life; the edge says on it why it ends the connection, if
                // it does.
                tokio::spawn(async move {
                    let mut control = control;
                    loop {
                        match reader.read_frame(&mut control).await {
                            Ok(Frame::Refused(r)) => {
                                warn!(reason = %r.message, "the edge ended this device's connection");
                                break;
                            }
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                });
                Ok(Edge { conn, wire })
            }
            Answer::Refused(r) => Err(e(format!("the edge refused this device: {}", r.message))),
        };
    }
    unreachable!("the loop returns on its last try")
}

/// Connects, then serves the SOCKS5 proxy until `shutdown`.
///
/// # Errors
/// [`ClientError`] when the edge refuses the device or the listener cannot
/// be bound.
pub async fn run(cfg: ClientConfig, shutdown: CancellationToken) -> Result<(), ClientError> {
    let first = register(&cfg).await?;
    let conn = Arc::new(arc_swap::ArcSwap::from_pointee(first));
    // Every task of this client (reconnection, the HTTP proxy, one per
    // proxied connection) runs here, so shutdown can wait for them.
    let tasks = TaskTracker::new();
    tasks.spawn(reconnect(cfg.clone(), conn.clone(), shutdown.clone()));
    let listener = TcpListener::bind(cfg.socks)
        .await
        .map_err(|source| ClientError::Bind {
            addr: cfg.socks,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| ClientError::Bind {
        addr: cfg.socks,
        source,
    })?;
    println!("SOCKS5 proxy: socks5h://{local}");
    let next = Arc::new(AtomicU64::new(1));
    if let Some(addr) = cfg.http_proxy {
        let l = TcpListener::bind(addr)
            .await
            .map_err(|source| ClientError::Bind { addr, source })?;
        let bound = l
            .local_addr()
            .map_err(|source| ClientError::Bind { addr, source })?;
        println!("HTTP proxy: http://{bound}");
        tasks.spawn(serve_http_proxy(
            l,
            conn.clone(),
            next.clone(),
            shutdown.clone(),
            tasks.clone(),
        ));
    }
    loop {
        let (app, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = burrow_transport::accept_tcp(&listener) => r,
        };
        let (conn, next) = (conn.load_full(), next.clone());
        tasks.spawn(async move {
            if let Err(reason) = proxy(conn, app, peer, next).await {
                debug!(%peer, %reason, "SOCKS connection ended");
            }
        });
    }
    // Closing the connection ends every flow on it.
    conn.load().close();
    tasks.close();
    if tokio::time::timeout(SHUTDOWN_WAIT, tasks.wait())
        .await
        .is_err()
    {
        warn!(
            open = tasks.len(),
            "flows still open at shutdown; leaving them"
        );
    }
    Ok(())
}

/// How long shutdown waits for the flows once the connection is closed.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// The edge connection, replaced when it is lost.
type Shared = Arc<arc_swap::ArcSwap<Edge>>;

/// Waits for the connection to drop and connects again, with backoff
/// (1 s doubling to 30 s); proxied connections fail meanwhile.
async fn reconnect(cfg: ClientConfig, conn: Shared, shutdown: CancellationToken) {
    loop {
        let current = conn.load_full();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = current.closed() => {}
        }
        warn!("connection to the edge lost; reconnecting");
        // The first redial at once (spread over 250 ms, so many clients of
        // a restarted edge do not arrive in one instant), then backing off.
        let mut wait = Duration::from_millis(u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
                % 250,
        ));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            match register(&cfg).await {
                Ok(c) => {
                    conn.store(Arc::new(c));
                    break;
                }
                Err(e) => {
                    wait = (wait * 2).clamp(Duration::from_secs(1), Duration::from_secs(30));
                    warn!(error = %e, retry_in = ?wait, "reconnecting to the edge failed");
                }
            }
        }
    }
}

async fn proxy(
    conn: Arc<Edge>,
    mut app: TcpStream,
    peer: SocketAddr,
    next: Arc<AtomicU64>,
) -> Result<(), String> {
    let (req, early) = burrow_transport::socks::accept(&mut app, SOCKS_TIMEOUT).await?;
    if req.command == Command::UdpAssociate {
        return udp::associate(conn, app, peer, req.dest, next).await;
    }
    if req.command != Command::Connect {
        let _ = app
            .write_all(&socks5::reply(Reply::CommandNotSupported, None))
            .await;
        return Err(format!("{:?} is not supported yet", req.command));
    }
    let (mut stream, leftover) =
        match open_flow(&conn, FlowKind::Tcp, req.dest.to_string(), peer, &next).await {
            Ok(x) => x,
            Err(reason) => {
                let _ = app
                    .write_all(&socks5::reply(Reply::HostUnreachable, None))
                    .await;
                return Err(reason);
            }
        };
    app.write_all(&socks5::reply(Reply::Succeeded, None))
        .await
        .map_err(|e| e.to_string())?;
    if !leftover.is_empty() {
        app.write_all(&leftover).await.map_err(|e| e.to_string())?;
    }
    if !early.is_empty() {
        stream.write_all(&early).await.map_err(|e| e.to_string())?;
    }
    burrow_transport::splice::splice(&mut app, &mut stream)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Opens a flow to `dest` (`host:port`) through the edge and waits until
/// the edge reached it. Returns the stream and bytes read past the answer.
pub(crate) async fn open_flow(
    conn: &Edge,
    kind: FlowKind,
    dest: String,
    peer: SocketAddr,
    next: &AtomicU64,
) -> Result<(burrow_transport::BoxStream, bytes::BytesMut), String> {
    let mut stream = conn.open_stream().await.map_err(|e| format!("edge: {e}"))?;
    let flow_id = next.fetch_add(1, Ordering::Relaxed);
    let header = match (conn.wire, destination(&dest)) {
        (burrow_proto::v2::VERSION_2.., Some(target)) => Frame::OpenFlow(OpenFlow {
            kind,
            flow_id,
            target,
            client: peer,
            source: None,
            tunnel: None,
        }),
        // Version 1 names the destination as `host:port` text.
        _ => Frame::StreamOpen(StreamOpen {
            kind,
            flow_id,
            hostname: dest.clone(),
            edge_port: 0,
            client_addr: peer,
        }),
    };
    write_frame(&mut stream, &header, false)
        .await
        .map_err(|e| e.to_string())?;
    let mut reader = FrameReader::new();
    let answer = tokio::time::timeout(ACCEPT_TIMEOUT, reader.read_frame(&mut stream))
        .await
        .map_err(|_| "the edge did not answer in time".to_owned())?
        .map_err(|e| e.to_string())?;
    match answer {
        Frame::StreamAccepted => Ok((stream, reader.into_leftover())),
        Frame::StreamRejected(r) => Err(format!("{dest}: {}", r.message)),
        other => Err(format!("unexpected answer {other:?}")),
    }
}

/// `host:port` (IPv6 in brackets) as a typed target; `None` when it is
/// not one (the edge then says why).
fn destination(dest: &str) -> Option<Target> {
    if let Ok(a) = dest.parse::<SocketAddr>() {
        return Some(Target::Addr(a));
    }
    let (name, port) = dest.rsplit_once(':')?;
    let port = port.parse().ok()?;
    (!name.is_empty() && !name.contains(':')).then(|| Target::Host {
        name: name.to_owned(),
        port,
    })
}

async fn serve_http_proxy(
    listener: TcpListener,
    conn: Shared,
    next: Arc<AtomicU64>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        let (app, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = burrow_transport::accept_tcp(&listener) => r,
        };
        let (conn, next) = (conn.load_full(), next.clone());
        tasks.spawn(async move {
            if let Err(reason) = http_connect(&conn, app, peer, &next).await {
                debug!(%peer, %reason, "HTTP proxy connection ended");
            }
        });
    }
}

/// One `CONNECT host:port` through the edge.
async fn http_connect(
    conn: &Edge,
    mut app: TcpStream,
    peer: SocketAddr,
    next: &AtomicU64,
) -> Result<(), String> {
    use burrow_proto::http_connect::{parse, ConnectError, MAX_HEAD};
    let mut buf = Vec::with_capacity(512);
    let head = tokio::time::timeout(SOCKS_TIMEOUT, async {
        loop {
            match parse(&buf) {
                Ok(Some(x)) => return Ok(x),
                Ok(None) => {}
                Err(e) => return Err(e),
            }
            let mut chunk = [0u8; 1024];
            match app.read(&mut chunk).await {
                Ok(0) | Err(_) => {
                    return Err(ConnectError::Malformed("closed before the request ended"))
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if buf.len() > MAX_HEAD + 1024 {
                return Err(ConnectError::TooLong);
            }
        }
    })
    .await
    .map_err(|_| "proxy request timed out".to_owned())?;
    let (host, port, used) = match head {
        Ok(x) => x,
        Err(e) => {
            let status = if matches!(e, ConnectError::Method(_)) {
                "405 Method Not Allowed"
            } else {
                "400 Bad Request"
            };
            let _ = app
                .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                .await;
            return Err(e.to_string());
        }
    };
    let (mut stream, leftover) =
        match open_flow(conn, FlowKind::Tcp, format!("{host}:{port}"), peer, next).await {
            Ok(x) => x,
            Err(reason) => {
                let body = format!("{reason}\n");
                let _ = app
                    .write_all(
                        format!(
                            "HTTP/1.1 502 Bad Gateway\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
                return Err(reason);
            }
        };
    app.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    if !leftover.is_empty() {
        app.write_all(&leftover).await.map_err(|e| e.to_string())?;
    }
    if buf.len() > used {
        stream
            .write_all(&buf[used..])
            .await
            .map_err(|e| e.to_string())?;
    }
    burrow_transport::splice::splice(&mut app, &mut stream)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}
