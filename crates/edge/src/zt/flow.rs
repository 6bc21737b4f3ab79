//! One zero-trust client flow, in phases: read the header → resolve →
//! private route of the client's vnet? (then [`super::private`]) →
//! built-in deny → egress policy → exits → dial → splice → session log.

use super::identity::{split_host_port, Identity, HEADER_TIMEOUT};
use super::private::private;
use crate::context::Ctx;
use crate::egress::dial::{dial, guard, refuse, resolve};
use crate::egress::tcp::splice_out;
use crate::egress::udp;
use crate::telemetry::session_log::SessionRecord;
use burrow_proto::close::{CloseReason, FlowError, Side};
use burrow_proto::{FlowKind, Frame};
use burrow_transport::frames::FrameReader;
use burrow_transport::BoxStream;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tracing::{debug, info, warn};

/// A destination's name (or address) and port, or the text that is not one.
type Named = Result<(String, u16), String>;

/// What a client flow's header asks for: its kind and the destination's
/// name (or address) and port, from a version 2 `OpenFlow` or a version 1
/// `StreamOpen` (`host:port` text; `Err` with the text when it is not
/// one). `None` for any other frame or kind.
fn destination(frame: Frame) -> Option<(FlowKind, Named)> {
    let (kind, named) = match frame {
        Frame::OpenFlow(o) => {
            let named = o.host_port().ok_or_else(|| "an ingress target".to_owned());
            (o.kind, named)
        }
        Frame::StreamOpen(o) => {
            let named = split_host_port(&o.hostname).ok_or(o.hostname);
            (o.kind, named)
        }
        _ => return None,
    };
    matches!(kind, FlowKind::Tcp | FlowKind::Udp).then_some((kind, named))
}

/// One client flow: dial the destination, splice, log the session.
pub(crate) async fn run(
    ctx: Arc<Ctx>,
    who: Arc<Identity>,
    mut stream: BoxStream,
    peer: SocketAddr,
) {
    let started = SystemTime::now();
    let mut reader = FrameReader::new();
    let frame = match tokio::time::timeout(HEADER_TIMEOUT, reader.read_frame(&mut stream)).await {
        Ok(Ok(f)) => f,
        _ => return,
    };
    let Some((kind, named)) = destination(frame) else {
        debug!("client flow did not start with a TCP or UDP flow header");
        return;
    };
    let mut record = SessionRecord::new(ctx.id.account_id, &ctx.id.colo, started, peer);
    record.device(&who.device_id.to_string(), &who.device_name, &who.email);
    let udp = kind == FlowKind::Udp;
    if udp {
        record.protocol("UDP");
    }
    let rule_started = Instant::now();
    let (host, port) = match named {
        Ok(hp) => hp,
        Err(text) => {
            refuse(&mut stream, format!("'{text}' is not host:port")).await;
            return;
        }
    };
    let target = resolve(&ctx, &host, port).await;
    // A private route of the client's vnet wins over Internet egress.
    // One version of the routing tables for the whole flow.
    let tables = ctx.tables.now();
    let nets = &tables.private;
    let vnet = who.vnet.as_ref().map(|v| v.0).or(nets.default_vnet);
    let vnet_name = vnet.and_then(|v| nets.name_of(v)).map(str::to_owned);
    if let Some(v) = vnet {
        record.vnet(v);
    }
    if let (Some(t), Some(v)) = (target, vnet) {
        if let Some(route) = nets.table.lookup(&v, t.ip()) {
            record.rule_evaluation(rule_started.elapsed());
            record.origin(t);
            record.tunnel(route.target);
            let tunnel = route.target;
            private(&ctx, &who, stream, reader, record, (tunnel, t, udp), peer).await;
            return;
        }
    }
    // The built-in deny comes before any policy, on the resolved address.
    if let Some(t) = target {
        if let Err(d) = guard(&ctx, t) {
            info!(destination = %t, host = %host, reason = d.message(), "client flow refused");
            record.rule_evaluation(rule_started.elapsed());
            record.origin(t);
            record.close(CloseReason::DestinationDenied);
            ctx.telemetry.log_session(record);
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
        proxied: is_proxied(&ctx, &host, target),
        vnet: vnet_name,
    };
    let policies = &tables.policies;
    let decision = burrow_policy::egress::decide(policies, &facts);
    record.rule_evaluation(rule_started.elapsed());
    ctx.telemetry
        .metrics
        .egress_decisions
        .get_or_create(&crate::telemetry::metrics::RuleLabels {
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
        record.close(CloseReason::BlockedByPolicy);
        ctx.telemetry.log_session(record);
        refuse(&mut stream, format!("blocked by egress policy '{id}'")).await;
        return;
    }
    let Some(target) = target else {
        record.close(CloseReason::DnsFailure);
        ctx.telemetry.log_session(record);
        refuse(&mut stream, format!("cannot resolve {host}")).await;
        return;
    };
    record.origin(target);
    let owners = &tables.egress_ips;
    let exits = if decision.index.is_some() {
        burrow_policy::exits::plan(
            decision.action,
            target.ip(),
            facts.proxied,
            &ctx.id.colo,
            |ip| owners.get(&ip).map(String::as_str),
        )
    } else {
        let dedicated: Vec<_> = owners.iter().map(|(ip, c)| (*ip, c.clone())).collect();
        let country = ctx.files.geoip.load().facts(peer.ip()).country;
        burrow_policy::exits::default_plan(
            target.ip(),
            facts.proxied,
            &ctx.id.colo,
            &ctx.egress.peers.cfg.sites,
            country.as_deref(),
            &dedicated,
        )
    };
    let out = match leave(&ctx, &exits, target, udp, &mut record).await {
        Ok(o) => o,
        Err(u) => {
            record.close(u.reason);
            ctx.telemetry.log_session(record);
            refuse(&mut stream, u.detail).await;
            return;
        }
    };
    let Some(leftover) = crate::egress::dial::accept(&mut stream, reader).await else {
        return;
    };
    let end = match out {
        Out::Udp(sock) => {
            let e = udp::relay_socket(stream, leftover, sock).await;
            (e.reason, e.sent, e.received, "")
        }
        Out::Peer(far, far_left) if udp => {
            let e = udp::relay_streams(stream, leftover, far, far_left, None).await;
            (e.reason, e.sent, e.received, "")
        }
        Out::Tcp(mut origin) => {
            let e = splice_out(stream, leftover, &mut origin, bytes::BytesMut::new()).await;
            (e.reason, e.sent, e.received, e.protocol)
        }
        Out::Peer(mut far, far_left) => {
            let e = splice_out(stream, leftover, &mut far, far_left).await;
            (e.reason, e.sent, e.received, e.protocol)
        }
    };
    record.bytes(end.1, end.2);
    record.detected_protocol(end.3);
    record.close(who.close_reason(end.0));
    ctx.telemetry.log_session(record);
}

/// Where a client flow leaves.
pub(crate) enum Out {
    Tcp(tokio::net::TcpStream),
    Udp(tokio::net::UdpSocket),
    /// A stream to the peer edge that dialled, and bytes past its answer.
    Peer(BoxStream, bytes::BytesMut),
}

/// Tries the exits in order: a local dial from the dedicated IP, or the
/// owning colo's peer edge; an exit that cannot be used (IP not bindable
/// here, peer down) moves on to the next, a destination that refuses ends
/// the flow. Fills in the egress fields of `record`.
pub(crate) async fn leave(
    ctx: &Ctx,
    exits: &[burrow_policy::exits::Exit],
    target: SocketAddr,
    udp: bool,
    record: &mut SessionRecord,
) -> Result<Out, FlowError> {
    use burrow_policy::exits::Exit;
    let mut last = FlowError::new(Side::Origin, CloseReason::OriginUnreachable, "no way out");
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
                    Err(u) if u.reason == CloseReason::EgressIpUnavailable && more => {
                        warn!(reason = %u.detail, "egress IP unusable here; trying the next");
                        last = u;
                    }
                    Err(u) => return Err(u),
                }
            }
            Exit::Peer { colo, source } => {
                match crate::egress::peer::hand(ctx, colo, udp, target, *source).await {
                    crate::egress::peer::Handed::Open(far, left) => {
                        if let Some(ip) = source {
                            record.egress(SocketAddr::new((*ip).into(), 0));
                        }
                        record.egress_colo(colo);
                        return Ok(Out::Peer(far, left));
                    }
                    crate::egress::peer::Handed::Refused(message) => {
                        return Err(FlowError::new(
                            Side::Origin,
                            CloseReason::OriginUnreachable,
                            message,
                        ))
                    }
                    crate::egress::peer::Handed::Down(message) => {
                        warn!(%colo, reason = %message, "peer edge unreachable; trying the next exit");
                        last =
                            FlowError::new(Side::Origin, CloseReason::EgressIpUnavailable, message);
                    }
                }
            }
        }
    }
    Err(last)
}

/// Whether the destination is served by this edge ("orange"): a hostname
/// routed to a tunnel or an app's name, or an app listener's address.
pub(crate) fn is_proxied(ctx: &Ctx, host: &str, target: Option<SocketAddr>) -> bool {
    let name = host.parse::<std::net::IpAddr>().is_err().then_some(host);
    name.is_some_and(|h| ctx.tables.now().routes.find(h).is_some())
        || ctx.apps.running.serves(name, target)
}
