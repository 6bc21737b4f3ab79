//! UDP sessions of zero-trust clients (SOCKS5 UDP ASSOCIATE on the
//! client): datagrams framed on the client's flow stream, sent from a UDP
//! socket of this edge (Internet egress) or passed on to a tunnel stream
//! (private networks). A session ends when either stream ends or after
//! [`IDLE`] without a datagram either way; bytes are counted as payload.

use burrow_proto::close::{CloseReason, FlowError, Side};
use burrow_transport::datagrams::{write_datagram, DatagramReader};
use burrow_transport::quic_datagrams::{next_from, DatagramMux};
use burrow_transport::BoxStream;
use bytes::BytesMut;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tracing::debug;

/// Silence after which a UDP session ends.
pub(crate) const IDLE: Duration = Duration::from_secs(60);

/// How a session ended, and its payload bytes (to the destination, back).
pub(crate) struct Ended {
    pub(crate) reason: CloseReason,
    pub(crate) sent: u64,
    pub(crate) received: u64,
}

/// A UDP socket connected to `target`, bound to `source` when a dedicated
/// egress IP applies (and the families match).
pub(crate) async fn socket(
    target: SocketAddr,
    source: Option<IpAddr>,
) -> Result<UdpSocket, FlowError> {
    let bind_ip = match source.filter(|ip| ip.is_ipv4() == target.is_ipv4()) {
        Some(ip) => ip,
        None if target.is_ipv4() => IpAddr::from([0u8; 4]),
        None => IpAddr::from([0u16; 8]),
    };
    let sock = burrow_transport::udp::bind(
        SocketAddr::new(bind_ip, 0),
        burrow_transport::udp::SESSION_BUFFER,
    )
    .and_then(UdpSocket::from_std)
    .map_err(|e| {
        let reason = if source.is_some() {
            CloseReason::EgressIpUnavailable
        } else {
            CloseReason::OriginUnreachable
        };
        FlowError::new(
            Side::Origin,
            reason,
            format!("cannot open a UDP socket on {bind_ip}: {e}"),
        )
    })?;
    sock.connect(target).await.map_err(|e| {
        FlowError::new(
            Side::Origin,
            CloseReason::OriginUnreachable,
            format!("cannot reach udp://{target}: {e}"),
        )
    })?;
    Ok(sock)
}

/// Relays between the client's stream and `sock` until either side ends.
pub(crate) async fn relay_socket(stream: BoxStream, leftover: BytesMut, sock: UdpSocket) -> Ended {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut reader = DatagramReader::new(leftover);
    let mut scratch = BytesMut::new();
    let mut buf = vec![0u8; burrow_proto::datagram::MAX_DATAGRAM];
    let (mut sent, mut received) = (0u64, 0u64);
    let reason = loop {
        tokio::select! {
            d = reader.next(&mut rd) => match d {
                Ok(Some(d)) => {
                    sent += d.len() as u64;
                    if let Err(e) = sock.send(&d).await {
                        debug!(error = %e, "datagram to the destination not sent");
                    }
                }
                Ok(None) => break CloseReason::ClientOrOriginClosed,
                Err(_) => break CloseReason::Error,
            },
            r = sock.recv(&mut buf) => match r {
                Ok(n) => {
                    received += n as u64;
                    if write_datagram(&mut wr, &buf[..n], &mut scratch).await.is_err() {
                        break CloseReason::ClientOrOriginClosed;
                    }
                }
                // ICMP port unreachable: this datagram only.
                Err(e) => debug!(error = %e, "datagram from the destination failed"),
            },
            () = tokio::time::sleep(IDLE) => break CloseReason::IdleTimeout,
        }
    };
    let _ = tokio::io::AsyncWriteExt::shutdown(&mut wr).await;
    Ended {
        reason,
        sent,
        received,
    }
}

/// Relays datagrams between the client's framed stream and a far stream
/// (tunnel or peer). With `mux` (a QUIC tunnel connection with datagrams,
/// and the flow id), datagrams to the far side go as QUIC datagrams when
/// they fit and come back either way.
pub(crate) async fn relay_streams(
    client: BoxStream,
    client_left: BytesMut,
    far: BoxStream,
    far_left: BytesMut,
    mux: Option<(Arc<DatagramMux>, u64)>,
) -> Ended {
    let mut from_mux = mux.as_ref().map(|(m, id)| m.register(*id));
    let (mut crd, mut cwr) = tokio::io::split(client);
    let (mut frd, mut fwr) = tokio::io::split(far);
    let (mut from_client, mut from_far) = (
        DatagramReader::new(client_left),
        DatagramReader::new(far_left),
    );
    let mut scratch = BytesMut::new();
    let (mut sent, mut received) = (0u64, 0u64);
    let reason = loop {
        tokio::select! {
            d = from_client.next(&mut crd) => match d {
                Ok(Some(d)) => {
                    sent += d.len() as u64;
                    let quic = mux.as_ref().is_some_and(|(m, id)| m.send(*id, &d));
                    if !quic && write_datagram(&mut fwr, &d, &mut scratch).await.is_err() {
                        break CloseReason::Error;
                    }
                }
                Ok(None) => break CloseReason::ClientOrOriginClosed,
                Err(_) => break CloseReason::Error,
            },
            d = next_from(&mut from_mux) => {
                received += d.len() as u64;
                if write_datagram(&mut cwr, &d, &mut scratch).await.is_err() {
                    break CloseReason::ClientOrOriginClosed;
                }
            },
            d = from_far.next(&mut frd) => match d {
                Ok(Some(d)) => {
                    received += d.len() as u64;
                    if write_datagram(&mut cwr, &d, &mut scratch).await.is_err() {
                        break CloseReason::ClientOrOriginClosed;
                    }
                }
                Ok(None) => break CloseReason::ClientOrOriginClosed,
                Err(_) => break CloseReason::Error,
            },
            () = tokio::time::sleep(IDLE) => break CloseReason::IdleTimeout,
        }
    };
    if let Some((m, id)) = &mux {
        m.unregister(*id);
    }
    let _ = tokio::io::AsyncWriteExt::shutdown(&mut cwr).await;
    let _ = tokio::io::AsyncWriteExt::shutdown(&mut fwr).await;
    Ended {
        reason,
        sent,
        received,
    }
}
