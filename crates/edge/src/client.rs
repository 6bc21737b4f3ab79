//! Zero-trust clients (`burrow client`): enrolled devices that connect to
//! the tunnel endpoint like connectors (QUIC), register with the feature
//! [`FEATURE`] and their device credentials, and then open one stream per
//! flow toward the edge. A destination inside a network routed to a tunnel
//! in the client's virtual network goes through that tunnel (the connector
//! dials it); anything else leaves to the Internet from this colo, from
//! the source address the first matching egress policy picks. Each
//! finished flow writes one network session log record.

mod udp;

use crate::session_log::SessionRecord;
use crate::Shared;
use burrow_proto::{FlowKind, Frame, Refusal, RefuseCode, Register};
use burrow_transport::frames::{write_frame, FrameReader};
use burrow_transport::{BoxStream, EdgeConn};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

/// Registration feature of zero-trust clients.
pub(crate) const FEATURE: &str = "client";
/// Time a client has to send a flow header.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Dial timeout toward a destination.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Who a registered client is.
#[derive(Debug, Clone)]
struct Identity {
    device_id: uuid::Uuid,
    device_name: String,
    email: String,
    groups: Vec<String>,
    /// The virtual network the client picked; `None`: the default one at
    /// the time of each flow.
    vnet: Option<(uuid::Uuid, String)>,
    /// Digest of the device secret it registered with.
    secret: crate::authz::SecretDigest,
    /// Its live grant, once admitted: a flow that ends because the grant
    /// was revoked says so in the session log.
    live: Option<Arc<crate::authz::Live>>,
}

impl Identity {
    /// The session log's close reason for a flow that ended with `r`:
    /// `REVOKED` when the device's access was taken away.
    fn close_reason(&self, r: &'static str) -> &'static str {
        if self.live.as_ref().is_some_and(|l| l.reason().is_some()) {
            "REVOKED"
        } else {
            r
        }
    }
}

/// The virtual network a client names with the registration feature
/// `vnet=NAME`, if its user may use it (the default vnet: everyone; any
/// other: the users and groups its access lists name).
fn requested_vnet(
    shared: &Shared,
    reg: &Register,
    email: &str,
    groups: &[String],
) -> Result<Option<(uuid::Uuid, String)>, Refusal> {
    let Some(name) = reg.features.iter().find_map(|f| f.strip_prefix("vnet=")) else {
        return Ok(None);
    };
    let nets = shared.private();
    let Some(v) = nets.vnets.get(name).and_then(|id| nets.rows.get(id)) else {
        return Err(Refusal {
            code: RefuseCode::UnknownTunnel,
            message: format!(
                "virtual network '{name}' does not exist on this edge (see burrow vnet list)"
            ),
        });
    };
    if !v.allows(email, groups) {
        return Err(Refusal {
            code: RefuseCode::BadSecret,
            message: format!(
                "{email} may not use virtual network '{name}' (an operator allows it with \
                 `burrow vnet allow {name} --user EMAIL | --group GROUP`)"
            ),
        });
    }
    Ok(Some((v.id, name.to_owned())))
}

async fn authenticate(shared: &Shared, reg: &Register) -> Result<Identity, Refusal> {
    let refuse = |code, message: String| Refusal { code, message };
    let device_id = uuid::Uuid::from_bytes(reg.tunnel_id);
    let state = |e| refuse(RefuseCode::Internal, format!("edge state unavailable: {e}"));
    let Some(d) = shared.store.device(device_id).await.map_err(state)? else {
        return Err(refuse(
            RefuseCode::UnknownTunnel,
            format!("device {device_id} is not enrolled on this edge"),
        ));
    };
    let secret_ok = burrow_store::secret::verify(&d.secret, reg.secret.expose());
    if !secret_ok || shared.account_id.as_bytes() != &reg.account_id {
        return Err(refuse(
            RefuseCode::BadSecret,
            format!("device secret does not match for device {device_id}"),
        ));
    }
    if d.revoked {
        return Err(refuse(
            RefuseCode::BadSecret,
            format!("device {device_id} is revoked"),
        ));
    }
    let groups = shared
        .store
        .user(&d.user_email)
        .await
        .map_err(state)?
        .map(|u| u.groups)
        .ok_or_else(|| {
            refuse(
                RefuseCode::BadSecret,
                format!("the user of device {device_id} no longer exists"),
            )
        })?;
    let vnet = requested_vnet(shared, reg, &d.user_email, &groups)?;
    Ok(Identity {
        device_id,
        device_name: d.name,
        email: d.user_email,
        groups,
        vnet,
        secret: crate::authz::digest(&d.secret),
        live: None,
    })
}

/// Serves a registered client connection until it closes.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    conn: EdgeConn,
    mut control: BoxStream,
    reg: Register,
    peer: SocketAddr,
    shutdown: CancellationToken,
    pre: crate::tunnel::PreAuth,
) {
    let mut identity = match authenticate(&shared, &reg).await {
        Ok(i) => i,
        Err(refusal) => {
            warn!(client = %peer, reason = %refusal.message, "client refused");
            crate::tunnel::refuse(&mut control, &conn, refusal.code, &refusal.message).await;
            return;
        }
    };
    if matches!(conn, EdgeConn::H2(_)) {
        let why =
            "zero-trust clients over HTTP/2 must use ALPN burrow-h2c/1 (they open the streams)";
        crate::tunnel::refuse(&mut control, &conn, RefuseCode::Internal, why).await;
        return;
    }
    if !crate::tunnel::accept_registration(&mut control, &conn, &shared.colo, pre).await {
        return;
    }
    let (admitted, superseded) = shared.grants.admit(crate::authz::Grant::Client {
        device: identity.device_id,
        email: identity.email.clone(),
        secret: identity.secret,
        vnet: identity.vnet.as_ref().map(|v| v.0),
    });
    if superseded > 0 {
        shared
            .metrics
            .revoked
            .get_or_create(&crate::metrics::RevokedLabels {
                party: "client",
                reason: crate::authz::Revocation::Superseded.label(),
            })
            .inc_by(u64::try_from(superseded).unwrap_or(u64::MAX));
    }
    identity.live = Some(admitted.live.clone());
    info!(client = %peer, device_id = %identity.device_id, user = %identity.email, "client connected");
    let identity = Arc::new(identity);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = conn.closed() => break,
            why = admitted.live.revoked() => {
                warn!(
                    client = %peer, device_id = %identity.device_id, user = %identity.email,
                    reason = why.message(), "access revoked; closing the client connection and its flows"
                );
                crate::tunnel::refuse(&mut control, &conn, RefuseCode::BadSecret, why.message()).await;
                break;
            }
            s = conn.accept_stream() => match s {
                Some(stream) => {
                    let span = tracing::info_span!("client_flow", user = %identity.email);
                    shared.flows.spawn(
                        egress(shared.clone(), identity.clone(), stream, peer).instrument(span),
                    );
                }
                None => break,
            },
        }
    }
    info!(client = %peer, device_id = %identity.device_id, "client disconnected");
}

/// `host:port` or `[v6]:port` → (host, port).
fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_ascii_lowercase(), port))
}

/// Whether the destination is served by this edge ("orange"): a hostname
/// routed to a tunnel or an app's name, or an app listener's address.
fn is_proxied(shared: &Shared, host: &str, target: Option<SocketAddr>) -> bool {
    let name = host.parse::<std::net::IpAddr>().is_err().then_some(host);
    name.is_some_and(|h| shared.routes().find(h).is_some()) || shared.apps.serves(name, target)
}

/// Whether `ip` is an address of this host: binding a socket to it works.
fn is_host_address(ip: std::net::IpAddr) -> bool {
    let ip = burrow_policy::dial_guard::canonical(ip);
    ip.is_loopback() || std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// The built-in deny ([`burrow_policy::dial_guard`]) for `target`, the
/// address that will actually be dialled.
pub(crate) fn guard(
    shared: &Shared,
    target: SocketAddr,
) -> Result<(), burrow_policy::dial_guard::Denied> {
    let edge_host = is_host_address(target.ip());
    let facts = burrow_policy::dial_guard::DialFacts {
        edge_host,
        app_listener: shared.apps.listens_on(target, edge_host),
    };
    shared.dial_guard.check(target, facts)
}

/// Resolves `host` to the one address the flow will dial: with the edge's
/// `--dns-server` when given, else the system's resolver.
async fn resolve(shared: &Shared, host: &str, port: u16) -> Option<SocketAddr> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Some(SocketAddr::new(ip, port));
    }
    match (&shared.dns_server, &shared.resolver) {
        (Some(_), Ok(r)) => r
            .lookup_ip(host)
            .await
            .ok()?
            .iter()
            .next()
            .map(|ip| SocketAddr::new(ip, port)),
        _ => tokio::net::lookup_host((host, port)).await.ok()?.next(),
    }
}

/// Why a flow did not reach its destination: the session log's close
/// reason and the message for the client.
struct Unreachable {
    reason: &'static str,
    message: String,
}

/// Dials `target` within [`DIAL_TIMEOUT`], from `source` when a dedicated
/// egress IP of the same family applies.
async fn dial(
    target: SocketAddr,
    source: Option<std::net::IpAddr>,
) -> Result<tokio::net::TcpStream, Unreachable> {
    let fail = |reason, e: &dyn std::fmt::Display| Unreachable {
        reason,
        message: format!("cannot reach {target}: {e}"),
    };
    let socket = if target.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(|e| fail("ORIGIN_UNREACHABLE", &e))?;
    if let Some(ip) = source.filter(|ip| ip.is_ipv4() == target.is_ipv4()) {
        socket.bind(SocketAddr::new(ip, 0)).map_err(|e| {
            fail(
                "EGRESS_IP_UNAVAILABLE",
                &format!("egress IP {ip} is not an address of this edge: {e}"),
            )
        })?;
    }
    match tokio::time::timeout(DIAL_TIMEOUT, socket.connect(target)).await {
        Ok(Ok(o)) => Ok(o),
        Ok(Err(e)) => {
            let reason = if e.raw_os_error() == Some(99) {
                "PORT_EXHAUSTION"
            } else if e.kind() == std::io::ErrorKind::ConnectionRefused {
                "ORIGIN_REFUSED"
            } else {
                "ORIGIN_UNREACHABLE"
            };
            Err(fail(reason, &e))
        }
        Err(_) => Err(Unreachable {
            reason: "ORIGIN_TIMEOUT",
            message: format!("{target} did not answer within {DIAL_TIMEOUT:?}"),
        }),
    }
}

/// Refuses a client flow with `message`.
pub(crate) async fn refuse(stream: &mut BoxStream, message: String) {
    let f = Frame::StreamRejected(Refusal {
        code: RefuseCode::OriginUnreachable,
        message,
    });
    let _ = write_frame(stream, &f, false).await;
}

/// One client flow: dial the destination, splice, log the session.
async fn egress(shared: Arc<Shared>, who: Arc<Identity>, mut stream: BoxStream, peer: SocketAddr) {
    let started = SystemTime::now();
    let mut reader = FrameReader::new();
    let open = match tokio::time::timeout(HEADER_TIMEOUT, reader.read_frame(&mut stream)).await {
        Ok(Ok(Frame::StreamOpen(o))) if matches!(o.kind, FlowKind::Tcp | FlowKind::Udp) => o,
        Ok(Ok(other)) => {
            debug!(
                frame = other.kind_name(),
                "client flow did not start with a TCP or UDP StreamOpen"
            );
            return;
        }
        _ => return,
    };
    let mut record = SessionRecord::new(&shared, started, peer);
    record.device(&who.device_id.to_string(), &who.device_name, &who.email);
    let udp = open.kind == FlowKind::Udp;
    if udp {
        record.protocol("UDP");
    }
    let rule_started = Instant::now();
    let Some((host, port)) = split_host_port(&open.hostname) else {
        refuse(&mut stream, format!("'{}' is not host:port", open.hostname)).await;
        return;
    };
    let target = resolve(&shared, &host, port).await;
    // A private route of the client's vnet wins over Internet egress.
    let nets = shared.private();
    let vnet = who.vnet.as_ref().map(|v| v.0).or(nets.default_vnet);
    let vnet_name = vnet.and_then(|v| {
        nets.vnets
            .iter()
            .find(|(_, id)| **id == v)
            .map(|(n, _)| n.clone())
    });
    if let Some(v) = vnet {
        record.vnet(v);
    }
    if let (Some(t), Some(v)) = (target, vnet) {
        if let Some(route) = nets.table.lookup(&v, t.ip()) {
            record.rule_evaluation(rule_started.elapsed());
            record.origin(t);
            record.tunnel(route.target);
            let tunnel = route.target;
            drop(nets);
            private(
                &shared,
                &who,
                stream,
                reader,
                record,
                (tunnel, t, udp),
                peer,
            )
            .await;
            return;
        }
    }
    drop(nets);
    // The built-in deny comes before any policy, on the resolved address.
    if let Some(t) = target {
        if let Err(d) = guard(&shared, t) {
            info!(destination = %t, host = %host, reason = d.message(), "client flow refused");
            record.rule_evaluation(rule_started.elapsed());
            record.origin(t);
            record.close("DESTINATION_DENIED");
            shared.log_session(record);
            refuse(&mut stream, format!("{t} {}", d.message())).await;
            return;
        }
    }
    // Egress policy, first match, once per flow.
    let facts = burrow_policy::egress::Facts {
        user_email: Some(who.email.clone()),
        groups: who.groups.clone(),
        device_id: Some(who.device_id.to_string()),
        src_ip: peer.ip(),
        dst_ip: target.map(|t| t.ip()),
        dst_port: port,
        protocol: if udp {
            burrow_policy::egress::Protocol::Udp
        } else {
            burrow_policy::egress::Protocol::Tcp
        },
        hostname: host
            .parse::<std::net::IpAddr>()
            .is_err()
            .then(|| host.clone()),
        proxied: is_proxied(&shared, &host, target),
        vnet: vnet_name,
    };
    let policies = shared.policies();
    let decision = burrow_policy::egress::decide(&policies, &facts);
    record.rule_evaluation(rule_started.elapsed());
    shared
        .metrics
        .egress_decisions
        .get_or_create(&crate::metrics::RuleLabels {
            rule: decision
                .index
                .map_or_else(|| "default".to_owned(), |i| policies[i].id.clone()),
        })
        .inc();
    if let Some(i) = decision.index {
        record.rule(&policies[i].id, &policies[i].name);
    }
    if *decision.action == burrow_policy::egress::Action::Block {
        let id = decision.index.map_or("", |i| policies[i].id.as_str());
        info!(host = %host, port, rule = %id, "client flow blocked by egress policy");
        if let Some(t) = target {
            record.origin(t);
        }
        record.close("BLOCKED_BY_POLICY");
        shared.log_session(record);
        refuse(&mut stream, format!("blocked by egress policy '{id}'")).await;
        return;
    }
    let Some(target) = target else {
        record.close("DNS_FAILURE");
        shared.log_session(record);
        refuse(&mut stream, format!("cannot resolve {host}")).await;
        return;
    };
    record.origin(target);
    let owners = shared.egress_ips();
    let exits = if decision.index.is_some() {
        burrow_policy::exits::plan(
            decision.action,
            target.ip(),
            facts.proxied,
            &shared.colo,
            |ip| owners.get(&ip).map(String::as_str),
        )
    } else {
        let dedicated: Vec<_> = owners.iter().map(|(ip, c)| (*ip, c.clone())).collect();
        let country = shared.geoip.load().facts(peer.ip()).country;
        burrow_policy::exits::default_plan(
            target.ip(),
            facts.proxied,
            &shared.colo,
            &shared.peer_cfg.sites,
            country.as_deref(),
            &dedicated,
        )
    };
    let out = match leave(&shared, &exits, target, udp, &mut record).await {
        Ok(o) => o,
        Err(u) => {
            record.close(u.reason);
            shared.log_session(record);
            refuse(&mut stream, u.message).await;
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
    let end = match out {
        Out::Udp(sock) => {
            let e = udp::relay_socket(stream, leftover, sock).await;
            (e.reason, e.sent, e.received)
        }
        Out::Peer(far, far_left) if udp => {
            let e = udp::relay_streams(stream, leftover, far, far_left, None).await;
            (e.reason, e.sent, e.received)
        }
        Out::Tcp(mut origin) => {
            splice_out(&mut stream, leftover, &mut origin, bytes::BytesMut::new()).await
        }
        Out::Peer(mut far, far_left) => splice_out(&mut stream, leftover, &mut far, far_left).await,
    };
    record.bytes(end.1, end.2);
    record.close(who.close_reason(end.0));
    shared.log_session(record);
}

/// Where a client flow leaves.
enum Out {
    Tcp(tokio::net::TcpStream),
    Udp(tokio::net::UdpSocket),
    /// A stream to the peer edge that dialled, and bytes past its answer.
    Peer(BoxStream, bytes::BytesMut),
}

/// Tries the exits in order: a local dial from the dedicated IP, or the
/// owning colo's peer edge; an exit that cannot be used (IP not bindable
/// here, peer down) moves on to the next, a destination that refuses ends
/// the flow. Fills in the egress fields of `record`.
async fn leave(
    shared: &Shared,
    exits: &[burrow_policy::exits::Exit],
    target: SocketAddr,
    udp: bool,
    record: &mut SessionRecord,
) -> Result<Out, Unreachable> {
    use burrow_policy::exits::Exit;
    let mut last = Unreachable {
        reason: "ORIGIN_UNREACHABLE",
        message: "no way out".into(),
    };
    for (i, exit) in exits.iter().enumerate() {
        let more = i + 1 < exits.len();
        match exit {
            Exit::Local { source } => {
                let out = if udp {
                    udp::socket(target, *source).await.map(Out::Udp)
                } else {
                    dial(target, *source).await.map(Out::Tcp)
                };
                match out {
                    Ok(o) => {
                        let local = match &o {
                            Out::Tcp(t) => t.local_addr().ok(),
                            Out::Udp(u) => u.local_addr().ok(),
                            Out::Peer(..) => None,
                        };
                        if let Some(l) = local {
                            record.egress(l);
                        }
                        return Ok(o);
                    }
                    Err(u) if u.reason == "EGRESS_IP_UNAVAILABLE" && more => {
                        warn!(reason = %u.message, "egress IP unusable here; trying the next");
                        last = u;
                    }
                    Err(u) => return Err(u),
                }
            }
            Exit::Peer { colo, source } => {
                match crate::peer::hand(shared, colo, udp, target, *source).await {
                    crate::peer::Handed::Open(far, left) => {
                        if let Some(ip) = source {
                            record.egress(SocketAddr::new((*ip).into(), 0));
                        }
                        record.egress_colo(colo);
                        return Ok(Out::Peer(far, left));
                    }
                    crate::peer::Handed::Refused(message) => {
                        return Err(Unreachable {
                            reason: "ORIGIN_UNREACHABLE",
                            message,
                        })
                    }
                    crate::peer::Handed::Down(message) => {
                        warn!(%colo, reason = %message, "peer edge unreachable; trying the next exit");
                        last = Unreachable {
                            reason: "EGRESS_IP_UNAVAILABLE",
                            message,
                        };
                    }
                }
            }
        }
    }
    Err(last)
}

/// Splices a TCP flow; (close reason, bytes sent, bytes received).
async fn splice_out<O>(
    stream: &mut BoxStream,
    leftover: bytes::BytesMut,
    out: &mut O,
    out_left: bytes::BytesMut,
) -> (&'static str, u64, u64)
where
    O: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if !leftover.is_empty() && out.write_all(&leftover).await.is_err() {
        return ("ERROR", 0, 0);
    }
    if !out_left.is_empty() && stream.write_all(&out_left).await.is_err() {
        return ("ERROR", leftover.len() as u64, 0);
    }
    match burrow_transport::splice::splice(stream, out).await {
        Ok((up, down)) => (
            "CLIENT_OR_ORIGIN_CLOSED",
            up + leftover.len() as u64,
            down + out_left.len() as u64,
        ),
        Err(e) => {
            debug!(error = %e, "client flow ended with an error");
            ("ERROR", leftover.len() as u64, out_left.len() as u64)
        }
    }
}

/// A TCP connection to `target` from `source` (for peer flows); the
/// message when it fails.
pub(crate) async fn dial_from(
    target: SocketAddr,
    source: Option<std::net::IpAddr>,
) -> Result<tokio::net::TcpStream, String> {
    dial(target, source).await.map_err(|u| u.message)
}

/// A UDP socket to `target` from `source` (for peer flows).
pub(crate) async fn udp_socket(
    target: SocketAddr,
    source: Option<std::net::IpAddr>,
) -> Result<tokio::net::UdpSocket, String> {
    udp::socket(target, source).await.map_err(|u| u.message)
}

/// Relays a UDP session between a stream and a socket (for peer flows).
pub(crate) async fn udp_relay(
    stream: BoxStream,
    leftover: bytes::BytesMut,
    sock: tokio::net::UdpSocket,
) {
    udp::relay_socket(stream, leftover, sock).await;
}

/// A flow into a private network: through a connector of `tunnel`, which
/// dials `target` itself.
async fn private(
    shared: &Shared,
    who: &Identity,
    mut stream: BoxStream,
    reader: FrameReader,
    mut record: SessionRecord,
    (tunnel, target, udp): (uuid::Uuid, SocketAddr, bool),
    peer: SocketAddr,
) {
    let header = burrow_proto::StreamOpen {
        kind: if udp {
            FlowKind::PrivateUdp
        } else {
            FlowKind::PrivateTcp
        },
        flow_id: shared
            .next_flow
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        hostname: target.ip().to_string(),
        edge_port: target.port(),
        client_addr: peer,
    };
    let flow_id = header.flow_id;
    let (mut far, far_leftover, via) = match crate::apps::open_tunnel_stream(shared, tunnel, header)
        .await
    {
        Ok(x) => x,
        Err(e) => {
            let reason = if e.starts_with("tunnel:") {
                "TUNNEL_UNAVAILABLE"
            } else {
                "ORIGIN_UNREACHABLE"
            };
            info!(destination = %target, tunnel_id = %tunnel, reason = %e, "private-network flow failed");
            record.close(reason);
            shared.log_session(record);
            refuse(
                &mut stream,
                format!("cannot reach {target} through tunnel {tunnel}: {e}"),
            )
            .await;
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
    if udp {
        // QUIC datagrams toward the connector when the connection has them.
        let end = udp::relay_streams(
            stream,
            leftover,
            far,
            far_leftover,
            via.mux.clone().map(|m| (m, flow_id)),
        )
        .await;
        record.bytes(end.sent, end.received);
        record.close(who.close_reason(end.reason));
        shared.log_session(record);
        return;
    }
    if !leftover.is_empty() && far.write_all(&leftover).await.is_err() {
        return;
    }
    if !far_leftover.is_empty() && stream.write_all(&far_leftover).await.is_err() {
        return;
    }
    match burrow_transport::splice::splice(&mut stream, &mut far).await {
        Ok((up, down)) => {
            record.bytes(up + leftover.len() as u64, down + far_leftover.len() as u64);
            record.close(who.close_reason("CLIENT_OR_ORIGIN_CLOSED"));
        }
        Err(e) => {
            debug!(error = %e, "private-network flow ended with an error");
            record.close(who.close_reason("ERROR"));
        }
    }
    shared.log_session(record);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_splits() {
        assert_eq!(
            split_host_port("Example.com:443"),
            Some(("example.com".into(), 443))
        );
        assert_eq!(split_host_port("[::1]:80"), Some(("::1".into(), 80)));
        assert_eq!(split_host_port("example.com"), None);
        assert_eq!(split_host_port("example.com:0"), None);
        assert_eq!(split_host_port(":80"), None);
    }
}
