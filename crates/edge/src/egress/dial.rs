//! Dialing a destination for a client or peer flow: resolving (with
//! `--dns-server` when given), the built-in deny, binding a dedicated
//! egress IP, and the close reason when it fails.

use crate::context::Ctx;
use crate::egress::udp;
use burrow_proto::close::{CloseReason, FlowError, Side};
use burrow_proto::{Frame, Refusal, RefuseCode};
use burrow_transport::frames::{write_frame, FrameReader};
use burrow_transport::BoxStream;
use std::net::SocketAddr;
use std::time::Duration;

/// Dial timeout toward a destination.
pub(crate) const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Dials `target` within [`DIAL_TIMEOUT`], from `source` when a dedicated
/// egress IP of the same family applies.
///
/// # Errors
/// Why not, with the close reason the flow ends with (the message is the
/// one the client is told).
pub(crate) async fn dial(
    target: SocketAddr,
    source: Option<std::net::IpAddr>,
) -> Result<tokio::net::TcpStream, FlowError> {
    let fail = |reason, e: &dyn std::fmt::Display| {
        FlowError::new(Side::Origin, reason, format!("cannot reach {target}: {e}"))
    };
    let socket = if target.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(|e| fail(dial_failure(&e), &e))?;
    if let Some(ip) = source.filter(|ip| ip.is_ipv4() == target.is_ipv4()) {
        socket.bind(SocketAddr::new(ip, 0)).map_err(|e| {
            fail(
                CloseReason::EgressIpUnavailable,
                &format!("egress IP {ip} is not an address of this edge: {e}"),
            )
        })?;
    }
    match tokio::time::timeout(DIAL_TIMEOUT, socket.connect(target)).await {
        Ok(Ok(o)) => Ok(o),
        Ok(Err(e)) => Err(fail(dial_failure(&e), &e)),
        Err(_) => Err(FlowError::new(
            Side::Origin,
            CloseReason::OriginTimeout,
            format!("{target} did not answer within {DIAL_TIMEOUT:?}"),
        )),
    }
}

/// The close reason of a failed dial.
fn dial_failure(e: &std::io::Error) -> CloseReason {
    burrow_transport::dial::classify(e).close_reason()
}

/// A TCP connection to `target` from `source` (for peer flows); the
/// message when it fails.
pub(crate) async fn dial_from(
    target: SocketAddr,
    source: Option<std::net::IpAddr>,
) -> Result<tokio::net::TcpStream, String> {
    dial(target, source).await.map_err(|u| u.detail)
}

/// A UDP socket to `target` from `source` (for peer flows).
pub(crate) async fn udp_socket(
    target: SocketAddr,
    source: Option<std::net::IpAddr>,
) -> Result<tokio::net::UdpSocket, String> {
    udp::socket(target, source).await.map_err(|u| u.detail)
}

/// Relays a UDP session between a stream and a socket (for peer flows).
pub(crate) async fn udp_relay(
    stream: BoxStream,
    leftover: bytes::BytesMut,
    sock: tokio::net::UdpSocket,
) {
    udp::relay_socket(stream, leftover, sock).await;
}

/// Resolves `host` to the one address the flow will dial: with the edge's
/// `--dns-server` when given, else the system's resolver.
pub(crate) async fn resolve(ctx: &Ctx, host: &str, port: u16) -> Option<SocketAddr> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Some(SocketAddr::new(ip, port));
    }
    match (&ctx.egress.dns_server, &ctx.egress.resolver) {
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

/// The built-in deny ([`burrow_policy::dial_guard`]) for `target`, the
/// address that will actually be dialled.
pub(crate) fn guard(
    ctx: &Ctx,
    target: SocketAddr,
) -> Result<(), burrow_policy::dial_guard::Denied> {
    let edge_host = is_host_address(target.ip());
    let facts = burrow_policy::dial_guard::DialFacts {
        edge_host,
        app_listener: ctx.apps.running.listens_on(target, edge_host),
    };
    ctx.egress.dial_guard.check(target, facts)
}

/// Whether `ip` is an address of this host: binding a socket to it works.
pub(crate) fn is_host_address(ip: std::net::IpAddr) -> bool {
    let ip = burrow_policy::dial_guard::canonical(ip);
    ip.is_loopback() || std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// Accepts a client or peer flow (its origin is ready): answers
/// `StreamAccepted` and returns the bytes the reader took past the open
/// frame, or `None` when the stream is gone.
pub(crate) async fn accept(stream: &mut BoxStream, reader: FrameReader) -> Option<bytes::BytesMut> {
    write_frame(stream, &Frame::StreamAccepted, false)
        .await
        .ok()
        .map(|()| reader.into_leftover())
}

/// Refuses a client flow with `message`.
pub(crate) async fn refuse(stream: &mut BoxStream, message: String) {
    let f = Frame::StreamRejected(Refusal {
        code: RefuseCode::OriginUnreachable,
        message,
    });
    let _ = write_frame(stream, &f, false).await;
}
