//! Edge-to-edge egress (`--peer COLO=HOST:PORT`): a client flow whose
//! dedicated egress IP belongs to another colo is handed to that colo's
//! edge, which dials the destination from the IP and splices.
//!
//! A peer connects to the other edge's tunnel endpoint over QUIC like a
//! connector, verifying its certificate (`--peer-ca`, default this edge's
//! own CA), and registers with the feature [`FEATURE`] and the shared peer
//! secret (`--peer-secret-file`, compared in constant time). Each handed
//! flow is one stream: `StreamOpen` of kind TCP or UDP whose `hostname`
//! is the destination `ip:port` and whose `client_addr` carries the source
//! IP to dial from (port 0; `0.0.0.0` for its shared pool); the peer answers `StreamAccepted` or
//! `StreamRejected` with the reason, then bytes (or framed datagrams)
//! follow. The session log record is written by the edge the client is
//! connected to.

use crate::Shared;
use burrow_proto::{FlowKind, Frame, RefuseCode, Register, StreamOpen};
use burrow_transport::frames::{write_frame, FrameReader};
use burrow_transport::{BoxStream, ConnectorConn, EdgeConn};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

/// Registration feature of peer edges.
pub(crate) const FEATURE: &str = "peer";
/// Time to connect to and register with a peer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a peer has to answer a handed flow (it dials within 10 s).
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(15);

/// Peer settings of this edge.
#[derive(Debug, Clone, Default)]
pub struct PeerConfig {
    /// `COLO → tunnel endpoint address` of other edges.
    pub peers: HashMap<String, SocketAddr>,
    /// Shared secret; without it, no peer flows either way.
    pub secret: Option<burrow_proto::WireSecret>,
    /// CA (PEM) that signed the peers' certificates; `None`: this edge's.
    pub ca_pem: Option<String>,
    /// Where the colos are (`--colo-location`), for the default egress.
    pub sites: Vec<burrow_policy::exits::Site>,
}

/// Open connections to peers, by colo.
#[derive(Default)]
pub(crate) struct Peers {
    slots: std::sync::Mutex<HashMap<String, Arc<Slot>>>,
    /// Colos whose last connection attempt failed, until when to skip them.
    down: std::sync::Mutex<HashMap<String, std::time::Instant>>,
}

/// One colo's connection: flows read it without waiting; a (re)connect
/// holds `connecting`, so flows to that colo share one attempt and flows
/// to other colos never wait for it.
#[derive(Default)]
struct Slot {
    live: std::sync::Mutex<Option<Arc<ConnectorConn>>>,
    connecting: tokio::sync::Mutex<()>,
}

impl Slot {
    fn open(&self) -> Option<Arc<ConnectorConn>> {
        self.live
            .lock()
            .ok()?
            .as_ref()
            .filter(|c| !c.is_closed())
            .cloned()
    }
}

/// How long a peer that could not be reached is skipped (flows take the
/// next exit at once meanwhile).
const DOWN_FOR: Duration = Duration::from_secs(10);

impl Peers {
    /// A live connection to the edge of `colo`, made on first use.
    async fn conn(&self, shared: &Shared, colo: &str) -> Result<Arc<ConnectorConn>, String> {
        if let Some(until) = self
            .down
            .lock()
            .expect("peer state lock poisoned")
            .get(colo)
        {
            if *until > std::time::Instant::now() {
                return Err(format!("peer {colo} was unreachable moments ago"));
            }
        }
        let r = self.connect(shared, colo).await;
        let mut down = self.down.lock().expect("peer state lock poisoned");
        match &r {
            Ok(_) => down.remove(colo),
            Err(_) => down.insert(colo.to_owned(), std::time::Instant::now() + DOWN_FOR),
        };
        r
    }

    async fn connect(&self, shared: &Shared, colo: &str) -> Result<Arc<ConnectorConn>, String> {
        let slot = self
            .slots
            .lock()
            .map_err(|_| "peer state lock poisoned".to_owned())?
            .entry(colo.to_owned())
            .or_default()
            .clone();
        if let Some(c) = slot.open() {
            return Ok(c);
        }
        let _connecting = slot.connecting.lock().await;
        // Another flow may have connected while this one waited.
        if let Some(c) = slot.open() {
            return Ok(c);
        }
        let cfg = &shared.peer_cfg;
        let addr = *cfg
            .peers
            .get(colo)
            .ok_or_else(|| format!("no --peer configured for colo {colo}"))?;
        let secret = cfg
            .secret
            .clone()
            .ok_or("no --peer-secret-file: peer egress is off")?;
        let ca = cfg.ca_pem.as_deref().unwrap_or(&shared.ca_pem);
        let trust = burrow_transport::pki::EdgeTrust::new(ca, &shared.edge_domain)
            .map_err(|e| format!("peer CA: {e}"))?;
        let ep = burrow_transport::quic::client_endpoint(addr).map_err(|e| e.to_string())?;
        let (conn, mut control) =
            burrow_transport::quic::connect(&ep, addr, &trust, CONNECT_TIMEOUT)
                .await
                .map_err(|e| format!("peer {colo} at {addr}: {e}"))?;
        let reg = Frame::Register(Register {
            account_id: *shared.account_id.as_bytes(),
            tunnel_id: [0; 16],
            secret,
            connector_id: *uuid::Uuid::new_v4().as_bytes(),
            conn_index: 0,
            version: format!("burrow-edge {} {}", env!("CARGO_PKG_VERSION"), shared.colo),
            features: vec![FEATURE.into(), format!("colo={}", shared.colo)],
        });
        let mut reader = FrameReader::new();
        let answer = tokio::time::timeout(CONNECT_TIMEOUT, async {
            write_frame(&mut control, &reg, true).await?;
            reader.read_frame(&mut control).await
        })
        .await
        .map_err(|_| format!("peer {colo}: no answer to registration"))?
        .map_err(|e| format!("peer {colo}: {e}"))?;
        match answer {
            Frame::Registered(_) => {}
            Frame::Refused(r) => return Err(format!("peer {colo} refused: {}", r.message)),
            other => return Err(format!("peer {colo}: unexpected answer {other:?}")),
        }
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            while matches!(control.read(&mut buf).await, Ok(n) if n > 0) {}
        });
        info!(colo, %addr, "connected to peer edge");
        let conn = Arc::new(conn);
        if let Ok(mut live) = slot.live.lock() {
            *live = Some(conn.clone());
        }
        Ok(conn)
    }
}

/// What a handed flow came to.
pub(crate) enum Handed {
    /// The peer reached the destination: the stream and bytes read past
    /// its answer.
    Open(BoxStream, bytes::BytesMut),
    /// The peer is up but the destination is not reachable (the reason).
    Refused(String),
    /// The peer could not be reached: try the next exit.
    Down(String),
}

/// Hands a flow to the edge of `colo`; a peer found down is skipped for
/// a while.
pub(crate) async fn hand(
    shared: &Shared,
    colo: &str,
    udp: bool,
    target: SocketAddr,
    source: Option<std::net::Ipv4Addr>,
) -> Handed {
    let r = hand_once(shared, colo, udp, target, source).await;
    if matches!(r, Handed::Down(_)) {
        shared
            .peers
            .down
            .lock()
            .expect("peer state lock poisoned")
            .insert(colo.to_owned(), std::time::Instant::now() + DOWN_FOR);
    }
    r
}

async fn hand_once(
    shared: &Shared,
    colo: &str,
    udp: bool,
    target: SocketAddr,
    source: Option<std::net::Ipv4Addr>,
) -> Handed {
    let conn = match shared.peers.conn(shared, colo).await {
        Ok(c) => c,
        Err(e) => return Handed::Down(e),
    };
    let mut stream = match conn.open_stream().await {
        Ok(s) => s,
        Err(e) => return Handed::Down(format!("peer {colo}: {e}")),
    };
    let open = Frame::StreamOpen(StreamOpen {
        kind: if udp { FlowKind::Udp } else { FlowKind::Tcp },
        flow_id: shared
            .next_flow
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        hostname: target.to_string(),
        edge_port: 0,
        client_addr: SocketAddr::new(source.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED).into(), 0),
    });
    if let Err(e) = write_frame(&mut stream, &open, false).await {
        return Handed::Down(format!("peer {colo}: {e}"));
    }
    let mut reader = FrameReader::new();
    match tokio::time::timeout(ACCEPT_TIMEOUT, reader.read_frame(&mut stream)).await {
        Ok(Ok(Frame::StreamAccepted)) => Handed::Open(stream, reader.into_leftover()),
        Ok(Ok(Frame::StreamRejected(r))) => Handed::Refused(r.message),
        Ok(Ok(other)) => Handed::Down(format!("peer {colo}: unexpected answer {other:?}")),
        Ok(Err(e)) => Handed::Down(format!("peer {colo}: {e}")),
        Err(_) => Handed::Down(format!("peer {colo}: no answer within {ACCEPT_TIMEOUT:?}")),
    }
}

/// Serves a registered peer edge: dials the flows it hands over.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    conn: EdgeConn,
    mut control: BoxStream,
    reg: Register,
    from: SocketAddr,
    shutdown: CancellationToken,
    pre: crate::tunnel::PreAuth,
) {
    let ok = shared
        .peer_cfg
        .secret
        .as_ref()
        .is_some_and(|s| bool::from(s.expose().ct_eq(reg.secret.expose())));
    let colo = reg
        .features
        .iter()
        .find_map(|f| f.strip_prefix("colo="))
        .unwrap_or("?")
        .to_owned();
    if !ok || !matches!(conn, EdgeConn::Quic(_)) {
        let message = if ok {
            "peer edges connect over QUIC".to_owned()
        } else {
            "peer secret does not match (or this edge has no --peer-secret-file)".to_owned()
        };
        warn!(peer = %from, %colo, reason = %message, "peer edge refused");
        crate::tunnel::refuse(&mut control, &conn, RefuseCode::BadSecret, &message).await;
        return;
    }
    if !crate::tunnel::accept_registration(&mut control, &conn, &shared.colo, pre).await {
        return;
    }
    info!(peer = %from, %colo, "peer edge connected");
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = conn.closed() => break,
            s = conn.accept_stream() => match s {
                Some(stream) => {
                    let span = tracing::info_span!("peer_flow", from_colo = %colo);
                    shared.flows.spawn(egress(shared.clone(), stream).instrument(span));
                }
                None => break,
            },
        }
    }
    info!(peer = %from, %colo, "peer edge disconnected");
}

/// One handed flow: dial from the named source, splice.
async fn egress(shared: Arc<Shared>, mut stream: BoxStream) {
    let mut reader = FrameReader::new();
    let open = match tokio::time::timeout(ACCEPT_TIMEOUT, reader.read_frame(&mut stream)).await {
        Ok(Ok(Frame::StreamOpen(o))) if matches!(o.kind, FlowKind::Tcp | FlowKind::Udp) => o,
        _ => return,
    };
    let Ok(target) = open.hostname.parse::<SocketAddr>() else {
        let _ =
            crate::client::refuse(&mut stream, format!("'{}' is not ip:port", open.hostname)).await;
        return;
    };
    // The handing edge checked too; this host's own addresses are known
    // only here.
    if let Err(d) = crate::client::guard(&shared, target) {
        info!(destination = %target, reason = d.message(), "peer egress refused");
        crate::client::refuse(&mut stream, format!("{target} {}", d.message())).await;
        return;
    }
    // 0.0.0.0: this edge's shared pool (its default source).
    let source = Some(open.client_addr.ip()).filter(|ip| !ip.is_unspecified());
    info!(destination = %target, source = %open.client_addr.ip(), "peer egress");
    if open.kind == FlowKind::Udp {
        match crate::client::udp_socket(target, source).await {
            Ok(sock) => {
                if write_frame(&mut stream, &Frame::StreamAccepted, false)
                    .await
                    .is_ok()
                {
                    crate::client::udp_relay(stream, reader.into_leftover(), sock).await;
                }
            }
            Err(message) => crate::client::refuse(&mut stream, message).await,
        }
        return;
    }
    let mut origin = match crate::client::dial_from(target, source).await {
        Ok(o) => o,
        Err(message) => {
            crate::client::refuse(&mut stream, message).await;
            return;
        }
    };
    if write_frame(&mut stream, &Frame::StreamAccepted, false)
        .await
        .is_err()
    {
        return;
    }
    let leftover = reader.into_leftover();
    if !leftover.is_empty() && origin.write_all(&leftover).await.is_err() {
        return;
    }
    if let Err(e) = burrow_transport::splice::splice(&mut stream, &mut origin).await {
        debug!(error = %e, "peer flow ended with an error");
    }
}
