//! One HA connection: connect → register → serve flows → (lost) → back off
//! with jitter → reconnect, rotating over the edge addresses.
//!
//! Protocol `auto`: QUIC first; when the QUIC handshake does not finish in
//! `quic_fallback_after`, log why and connect over HTTP/2. While on HTTP/2,
//! try QUIC again every `quic_retry_every`; when it works, register the QUIC
//! connection and drain the HTTP/2 one (open flows finish on it).

use crate::env::FlowEnv;
use crate::flow;
use crate::{backoff, ConnInfo, ConnectorConfig};
use burrow_config::connector::ProtocolChoice;
use burrow_proto::v2::{Registration, Role};
use burrow_proto::{Frame, RefuseCode};
use burrow_transport::frames::{self, write_frame, Answer, FrameReader};
use burrow_transport::kx::PostQuantum;
use burrow_transport::pki::EdgeTrust;
use burrow_transport::{BoxStream, ConnectorConn, Protocol, TransportError};
use rand::Rng;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn, Instrument};

/// Time for the TLS/HTTP/2 handshake.
const H2_TIMEOUT: Duration = Duration::from_secs(10);
/// Time for the edge to answer the registration.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between the last flow ending and closing a drained connection.
const LINGER: Duration = Duration::from_millis(300);
/// A connection that served this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// A lost connection that served at least this long is redialled at once
/// ([`backoff::after_loss`]); one lost sooner backs off.
const SERVED_AFTER_LOSS: Duration = Duration::from_secs(1);

pub(crate) struct Shared {
    pub(crate) cfg: ConnectorConfig,
    pub(crate) trust: EdgeTrust,
    /// The edge addresses, replaced when a failed connection makes the
    /// connector look them up again ([`Shared::rediscover`]).
    pub(crate) edges: arc_swap::ArcSwap<Vec<SocketAddr>>,
    /// When the edges were last looked up.
    pub(crate) discovered_at: Mutex<Instant>,
    pub(crate) connector_id: uuid::Uuid,
    pub(crate) env: Arc<FlowEnv>,
    pub(crate) fatal: CancellationToken,
    pub(crate) fatal_reason: Mutex<Option<String>>,
    pub(crate) quic_endpoints: Mutex<HashMap<bool, quinn::Endpoint>>,
    /// Edges that speak only protocol version 1 (an upgrade under way).
    pub(crate) older_edges: burrow_transport::frames::OlderEdges,
    /// One per connection, cancelled when its first attempt has ended,
    /// registered or failed: each connection dials after the one before
    /// it ([`run`]).
    pub(crate) tried: Vec<CancellationToken>,
}

/// Longest a connection waits for the one before it to try.
const TURN: Duration = Duration::from_secs(1);

/// Least time between two lookups of the edge addresses.
const REDISCOVER_EVERY: Duration = Duration::from_secs(5);

impl Shared {
    /// Looks the edge addresses up again (the SRV record, or the names
    /// given): nodes come and go, and a connector started before a node
    /// joined would otherwise never use it. At most once per
    /// [`REDISCOVER_EVERY`]; a failed or empty answer keeps the list.
    async fn rediscover(&self) {
        {
            let mut at = self.discovered_at.lock().expect("discovery lock poisoned");
            if at.elapsed() < REDISCOVER_EVERY {
                return;
            }
            *at = Instant::now();
        }
        let cfg = &self.cfg;
        let found = crate::discovery::edge_addrs(
            &cfg.edges,
            &cfg.edge_domain,
            cfg.edge_ip_version,
            cfg.dns_server,
        )
        .await;
        match found {
            Ok(edges) if !edges.is_empty() => {
                if **self.edges.load() != edges {
                    info!(edges = ?edges, "edge addresses changed");
                    self.edges.store(Arc::new(edges));
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "looking the edges up again failed; keeping the list")
            }
        }
    }

    fn quic_endpoint(&self, peer: SocketAddr) -> Result<quinn::Endpoint, TransportError> {
        let mut map = self.quic_endpoints.lock().expect("endpoint lock poisoned");
        if let Some(ep) = map.get(&peer.is_ipv6()) {
            return Ok(ep.clone());
        }
        let ep = burrow_transport::quic::client_endpoint(peer)?;
        map.insert(peer.is_ipv6(), ep.clone());
        Ok(ep)
    }
}

/// How an attempt ended.
enum Failure {
    /// The edge refused the registration: count toward `max_refusals`.
    Refused(RefuseCode, String),
    /// Anything else: back off and retry.
    Transport(String),
}

/// A connection attempt in progress.
type Attempt<'a> = Pin<Box<dyn Future<Output = Result<Live, Failure>> + Send + 'a>>;

/// A registered tunnel connection with its control stream.
struct Live {
    conn: ConnectorConn,
    control: BoxStream,
    reader: FrameReader,
    info: Arc<ConnInfo>,
    _counted: Counted,
}

/// A registered connection's share of the metrics, given back on drop.
struct Counted {
    metrics: Arc<crate::metrics::Metrics>,
    location: crate::metrics::LocationLabels,
    protocol: crate::metrics::ProtocolLabels,
    index: u8,
    connection_id: uuid::Uuid,
}

impl Counted {
    fn new(
        metrics: Arc<crate::metrics::Metrics>,
        info: &ConnInfo,
        tunnel: uuid::Uuid,
        quic: Option<quinn::Connection>,
    ) -> Self {
        let location = crate::metrics::LocationLabels {
            connection_id: info.connection_id.to_string(),
            edge_location: info.colo.clone(),
        };
        let protocol = crate::metrics::ProtocolLabels {
            conn_index: info.index.to_string(),
            protocol: info.protocol.as_str(),
        };
        metrics.ha_connections.inc();
        metrics.connection_up(info.index, tunnel, quic);
        metrics.server_locations.get_or_create(&location).set(1);
        metrics.protocol.get_or_create(&protocol).set(1);
        Self {
            metrics,
            location,
            protocol,
            index: info.index,
            connection_id: info.connection_id,
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.metrics.ha_connections.dec();
        self.metrics.connection_down(self.index, self.connection_id);
        self.metrics.server_locations.remove(&self.location);
        self.metrics.protocol.get_or_create(&self.protocol).set(0);
    }
}

/// Keeps connection `index` up until `shutdown`. It first dials once the
/// connection before it has registered (or failed, or [`TURN`] passed), as
/// cloudflared dials its first connection before the others: each
/// handshake then has the CPU to itself, and the first flow is served
/// sooner after start.
pub(crate) async fn run(shared: Arc<Shared>, index: u8, shutdown: CancellationToken) {
    if let Some(before) = usize::from(index)
        .checked_sub(1)
        .and_then(|i| shared.tried.get(i))
    {
        tokio::select! {
            () = before.cancelled() => {}
            () = tokio::time::sleep(TURN) => {}
            () = shutdown.cancelled() => return,
        }
    }
    let span = tracing::info_span!("tunnel_conn", conn_index = index);
    run_inner(shared, index, shutdown).instrument(span).await;
}

async fn run_inner(shared: Arc<Shared>, index: u8, shutdown: CancellationToken) {
    let mut attempt: u32 = 0;
    let mut refusals: u32 = 0;
    // In `auto`, skip QUIC until this instant after it failed.
    let mut quic_blocked_until: Option<Instant> = None;
    let drains = TaskTracker::new();
    let mut rotation = 0usize;
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        // Set when a connection that had served well was just lost.
        let mut lost_stable = false;
        let addr = {
            let edges = shared.edges.load();
            edges[(usize::from(index) + rotation) % edges.len()]
        };
        let result = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = connect(&shared, index, addr, &mut quic_blocked_until) => r,
        };
        if let Some(t) = shared.tried.get(usize::from(index)) {
            t.cancel();
        }
        match result {
            Ok(live) => {
                refusals = 0;
                let started = Instant::now();
                serve(
                    &shared,
                    live,
                    index,
                    addr,
                    &mut quic_blocked_until,
                    &shutdown,
                    &drains,
                )
                .await;
                if started.elapsed() >= STABLE_AFTER {
                    attempt = 0;
                }
                // A connection that worked and was lost (the edge
                // restarted, the path changed): redial at once, unless it
                // keeps being lost at once.
                lost_stable = started.elapsed() >= SERVED_AFTER_LOSS;
            }
            Err(Failure::Refused(code, msg)) => {
                refusals += 1;
                warn!(edge = %addr, ?code, reason = %msg, refusals, "edge refused registration");
                if matches!(shared.cfg.max_refusals, Some(max) if refusals >= max) {
                    let mut r = shared
                        .fatal_reason
                        .lock()
                        .expect("fatal reason lock poisoned");
                    r.get_or_insert_with(|| msg.clone());
                    shared.fatal.cancel();
                    break;
                }
            }
            Err(Failure::Transport(msg)) => {
                warn!(edge = %addr, reason = %msg, "tunnel connection failed");
                shared
                    .env
                    .metrics
                    .register_fail
                    .get_or_create(&crate::metrics::ErrorLabels {
                        error: "transport".into(),
                        rpcName: crate::metrics::REGISTER_CONNECTION,
                    })
                    .inc();
                rotation += 1;
                shared.rediscover().await;
            }
        }
        if shutdown.is_cancelled() {
            break;
        }
        let jitter = rand::thread_rng().gen::<f64>();
        let d = if lost_stable {
            backoff::after_loss(jitter)
        } else {
            let d = backoff::delay(attempt, jitter);
            attempt = attempt.saturating_add(1);
            d
        };
        shared.env.metrics.reconnects.inc();
        info!(retry_in = ?d, "reconnecting");
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(d) => {}
        }
    }
    drains.close();
    drains.wait().await;
}

/// Connects to `addr` with the configured protocol (auto: QUIC, falling
/// back to HTTP/2) and registers.
async fn connect(
    shared: &Shared,
    index: u8,
    addr: SocketAddr,
    quic_blocked_until: &mut Option<Instant>,
) -> Result<Live, Failure> {
    match shared.cfg.protocol {
        ProtocolChoice::Quic => connect_with(shared, index, addr, Protocol::Quic).await,
        ProtocolChoice::Http2 => connect_with(shared, index, addr, Protocol::Http2).await,
        ProtocolChoice::Auto => {
            let skip_quic = quic_blocked_until.is_some_and(|t| Instant::now() < t);
            if skip_quic {
                return connect_with(shared, index, addr, Protocol::Http2).await;
            }
            // While QUIC is tried, a plain TCP connect to the same address
            // says whether the edge is there at all.
            let tcp_probe = async {
                tokio::time::timeout(
                    shared.cfg.quic_fallback_after,
                    tokio::net::TcpStream::connect(addr),
                )
                .await
                .is_ok_and(|r| r.is_ok())
            };
            let (quic, tcp_answers) =
                tokio::join!(connect_with(shared, index, addr, Protocol::Quic), tcp_probe);
            let quic_failed = match quic {
                Ok(live) => {
                    *quic_blocked_until = None;
                    return Ok(live);
                }
                Err(Failure::Transport(reason)) => reason,
                Err(refused) => return Err(refused),
            };
            // Fall back only on evidence that UDP is what fails: TCP to the
            // same edge answered while QUIC did not. When neither did, the
            // edge is down or unreachable: this attempt fails, and the next
            // one (after the backoff) tries QUIC again.
            if !tcp_answers {
                return Err(Failure::Transport(format!(
                    "{quic_failed}; TCP to {addr} did not answer either (the edge looks down, not UDP blocked)"
                )));
            }
            match connect_with(shared, index, addr, Protocol::Http2).await {
                Ok(live) => {
                    warn!(
                        edge = %addr, quic = %quic_failed,
                        evidence = "QUIC failed while TCP to the same edge answered",
                        "UDP looks blocked; falling back to HTTP/2 (QUIC is retried every {:?})",
                        shared.cfg.quic_retry_every
                    );
                    *quic_blocked_until = Some(Instant::now() + shared.cfg.quic_retry_every);
                    shared.env.metrics.fallbacks.inc();
                    Ok(live)
                }

                Err(Failure::Transport(h2)) => {
                    tracing::debug!(edge = %addr, quic = %quic_failed, http2 = %h2, "both transports failed; not treating UDP as blocked");
                    Err(Failure::Transport(format!("{quic_failed}; {h2}")))
                }
                Err(refused) => Err(refused),
            }
        }
    }
}

async fn connect_with(
    shared: &Shared,
    index: u8,
    addr: SocketAddr,
    protocol: Protocol,
) -> Result<Live, Failure> {
    let t = |e: TransportError| {
        let text = e.to_string();
        // With --post-quantum, a handshake the edge cannot agree to is a
        // refusal of our terms: counted like one, and named.
        let no_common_group = text.contains("NoKxGroupsInCommon")
            || text.contains("HandshakeFailure")
            || text.contains("handshake failed");
        if shared.trust.post_quantum == PostQuantum::Require && no_common_group {
            return Failure::Refused(
                RefuseCode::UnsupportedVersion,
                format!(
                    "post-quantum key agreement ({}) is required (--post-quantum) and the edge at \
                     {addr} does not offer it ({protocol}: {text})",
                    burrow_transport::kx::PQ_GROUP
                ),
            );
        }
        Failure::Transport(format!("{protocol}: {text}"))
    };
    let creds = &shared.cfg.credentials;
    let reg = Registration {
        account_id: *creds.account_id.as_bytes(),
        secret: creds.secret.0.clone().into(),
        role: Role::Connector {
            tunnel_id: *creds.tunnel_id.as_bytes(),
            connector_id: *shared.connector_id.as_bytes(),
            conn_index: index,
        },
        version: match &shared.cfg.label {
            Some(l) => format!("burrow {} ({l})", env!("CARGO_PKG_VERSION")),
            None => format!("burrow {}", env!("CARGO_PKG_VERSION")),
        },
        features: vec![
            burrow_transport::quic_datagrams::FEATURE.into(),
            burrow_proto::FEATURE_STREAM_ACK.into(),
        ],
    };
    // A second try only when an edge of an older release dropped the
    // version 2 registration: then in version 1.
    let mut tries = 0;
    let (conn, control, reader, welcome, wire) = loop {
        tries += 1;
        let (conn, mut control) = match protocol {
            Protocol::Quic => {
                let ep = shared.quic_endpoint(addr).map_err(t)?;
                burrow_transport::quic::connect(
                    &ep,
                    addr,
                    &shared.trust,
                    shared.cfg.quic_fallback_after,
                )
                .await
                .map_err(t)?
            }
            Protocol::Http2 => burrow_transport::h2::connect(addr, &shared.trust, H2_TIMEOUT)
                .await
                .map_err(t)?,
        };
        let wire = shared.older_edges.version(addr);
        let mut reader = FrameReader::new();
        let answer =
            frames::register(&mut control, &mut reader, &reg, wire, REGISTER_TIMEOUT).await;
        if shared.older_edges.learn(addr, wire, &answer) && tries < 2 {
            conn.close();
            continue;
        }
        match answer.map_err(t)? {
            Answer::Welcome(w) => break (conn, control, reader, w, wire),
            Answer::Refused(r) => {
                conn.close();
                shared
                    .env
                    .metrics
                    .register_fail
                    .get_or_create(&crate::metrics::ErrorLabels {
                        error: format!("{:?}", r.code),
                        rpcName: crate::metrics::REGISTER_CONNECTION,
                    })
                    .inc();
                return Err(Failure::Refused(r.code, r.message));
            }
        }
    };
    let mux = match &conn {
        ConnectorConn::Quic(q) => {
            let mux = burrow_transport::quic_datagrams::DatagramMux::new(q.connection().clone());
            shared.env.tasks.spawn(mux.clone().run());
            Some(mux)
        }
        ConnectorConn::H2(_) | ConnectorConn::H2Opener(_) => None,
    };
    let info = Arc::new(ConnInfo {
        index,
        protocol,
        colo: welcome.colo,
        connection_id: uuid::Uuid::from_bytes(welcome.connection_id),
        wire,
        acks: welcome
            .features
            .iter()
            .any(|f| f == burrow_proto::FEATURE_STREAM_ACK),
        mux,
        draining: CancellationToken::new(),
    });
    let kx = conn.key_exchange().unwrap_or_default();
    info!(
        edge = %addr, %protocol, colo = %info.colo, node = %welcome.node_id,
        connection_id = %info.connection_id, wire, key_exchange = %kx, "registered tunnel connection"
    );
    let quic = match &conn {
        ConnectorConn::Quic(q) => Some(q.connection().clone()),
        ConnectorConn::H2(_) | ConnectorConn::H2Opener(_) => None,
    };
    let counted = Counted::new(
        shared.env.metrics.clone(),
        &info,
        shared.cfg.credentials.tunnel_id,
        quic,
    );
    Ok(Live {
        conn,
        control,
        reader,
        info,
        _counted: counted,
    })
}

/// Serves flows on `live` until it is lost, the edge drains it, shutdown is
/// requested, or (auto on HTTP/2) QUIC works again. Hands the draining of
/// the old connection to `drains` so the caller can reconnect at once.
async fn serve(
    shared: &Arc<Shared>,
    mut live: Live,
    index: u8,
    addr: SocketAddr,
    quic_blocked_until: &mut Option<Instant>,
    shutdown: &CancellationToken,
    drains: &TaskTracker,
) {
    let mut flows = TaskTracker::new();
    let mut probe_quic =
        shared.cfg.protocol == ProtocolChoice::Auto && live.info.protocol == Protocol::Http2;
    let mut probing: Option<Attempt<'_>> = None;
    let mut probe = tokio::time::interval_at(
        tokio::time::Instant::now() + shared.cfg.quic_retry_every,
        shared.cfg.quic_retry_every,
    );
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                info!("draining: no new flows; open flows get {:?}", shared.cfg.grace_period);
                drain(live, flows, shared.cfg.grace_period).await;
                return;
            }
            s = live.conn.accept_stream() => match s {
                Some(stream) => {
                    flows.spawn(flow::handle(shared.env.clone(), live.info.clone(), stream));
                }
                None => {
                    warn!(connection_id = %live.info.connection_id, "tunnel connection lost");
                    return;
                }
            },
            f = live.reader.read_frame(&mut live.control) => match f {
                Ok(Frame::GoAway) => {
                    info!("edge asked us to move; reconnecting");
                    let grace = shared.cfg.grace_period;
                    drains.spawn(drain(live, flows, grace));
                    return;
                }
                Ok(Frame::Refused(r)) => {
                    // The edge took this tunnel's access away (deleted, or
                    // its secret rotated): open flows end with it.
                    warn!(code = ?r.code, reason = %r.message, "the edge ended this tunnel connection");
                    live.conn.close();
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(error = %e, "control stream ended");
                    live.conn.close();
                    return;
                }
            },
            _ = probe.tick(), if probe_quic && probing.is_none() => {
                // Probe in the background of this loop: flows keep being
                // accepted while the QUIC handshake is tried.
                probing = Some(Box::pin(connect_with(shared, index, addr, Protocol::Quic)));
            }
            r = async { probing.as_mut().expect("guarded by is_some").await }, if probing.is_some() => {
                probing = None;
                match r {
                    Ok(new_live) => {
                        info!("QUIC works again; moving this connection back from HTTP/2 to QUIC");
                        *quic_blocked_until = None;
                        let old = std::mem::replace(&mut live, new_live);
                        let old_flows = std::mem::replace(&mut flows, TaskTracker::new());
                        drains.spawn(drain(old, old_flows, shared.cfg.grace_period));
                        probe_quic = false;
                    }
                    Err(_) => tracing::debug!("QUIC still unreachable; staying on HTTP/2"),
                }
            }
        }
    }
}

/// Tells the edge `GoAway`, waits up to `grace` for open flows, closes.
async fn drain(mut live: Live, flows: TaskTracker, grace: Duration) {
    let _ = write_frame(&mut live.control, &Frame::GoAway, false).await;
    live.info.draining.cancel();
    flows.close();
    // The edge stops sending new flows on GoAway; a stream it opened just
    // before is refused as ShuttingDown, so the edge retries it on another
    // connection at once (no request fails during a rolling restart).
    let conn = &mut live.conn;
    let refuse_late = async {
        while let Some(stream) = conn.accept_stream().await {
            flows.spawn(crate::reply::refuse_shutting_down(stream));
        }
    };
    let finish = async {
        let _ = tokio::time::timeout(grace, flows.wait()).await;
        // A flow's last bytes may still be unacknowledged when its task
        // ends; closing a QUIC connection drops them, so linger briefly.
        tokio::time::sleep(LINGER).await;
    };
    tokio::select! {
        _ = finish => {}
        _ = refuse_late => {}
    }
    live.conn.close();
}
