//! UDP flows on the connector: one socket per session, connected to the
//! `udp://` origin, relaying datagrams one for one between it and the flow
//! stream. The session ends when the edge closes the stream (its idle
//! timer) or after [`SESSION_IDLE`] without a datagram either way.

use burrow_proto::{Frame, Refusal, RefuseCode};
use burrow_transport::datagrams::{write_datagram, DatagramReader};
use burrow_transport::frames::write_frame;
use burrow_transport::quic_datagrams::next_from;
use burrow_transport::BoxStream;
use bytes::BytesMut;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::UdpSocket;
use tracing::{debug, info};

/// Longest silence before the connector ends a session on its own (the
/// edge normally ends it first, after one minute).
const SESSION_IDLE: Duration = Duration::from_secs(120);

async fn origin_socket(addr: &str) -> Result<UdpSocket, String> {
    let target: SocketAddr = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| format!("cannot resolve origin {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("origin {addr} has no address"))?;
    use burrow_transport::udp;
    let sock = udp::bind(udp::any_for(target), udp::SESSION_BUFFER)
        .and_then(UdpSocket::from_std)
        .map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    sock.connect(target)
        .await
        .map_err(|e| format!("cannot reach origin udp://{target}: {e}"))?;
    Ok(sock)
}

/// Relays one UDP session between `stream` and the origin at `addr`.
pub(crate) async fn relay(
    mut stream: BoxStream,
    addr: &str,
    leftover: BytesMut,
    rule: Option<usize>,
    conn: &crate::ConnInfo,
    flow_id: u64,
    metrics: &crate::metrics::Metrics,
) {
    let mux = conn.mux.clone();
    let labels = crate::metrics::ConnIndexLabels {
        conn_index: conn.index.to_string(),
    };
    let sock = match origin_socket(addr).await {
        Ok(s) => s,
        Err(msg) => {
            metrics.udp_flows_failed.get_or_create(&labels).inc();
            info!(rule = ?rule, reason = %msg, "origin unreachable");
            let f = Frame::StreamRejected(Refusal {
                code: RefuseCode::OriginUnreachable,
                message: msg,
            });
            let _ = write_frame(&mut stream, &f, false).await;
            let _ = stream.shutdown().await;
            return;
        }
    };
    // Registered before the answer: the edge may send a QUIC datagram the
    // moment it reads `StreamAccepted`.
    let mut from_mux = mux.as_ref().map(|m| m.register(flow_id));
    if write_frame(&mut stream, &Frame::StreamAccepted, false)
        .await
        .is_err()
    {
        if let Some(m) = &mux {
            m.unregister(flow_id);
        }
        return;
    }
    metrics.udp_total.inc();
    metrics.udp_active.inc();
    metrics.udp_flows_total.get_or_create(&labels).inc();
    metrics.udp_flows_active.get_or_create(&labels).inc();
    let mut failed = false;
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut reader = DatagramReader::new(leftover);
    let (mut up, mut down) = (0u64, 0u64);
    let mut scratch = BytesMut::new();
    loop {
        tokio::select! {
            d = reader.next(&mut rd) => match d {
                Ok(Some(d)) => {
                    up += 1;
                    // A refused send (no listener yet) loses this datagram only.
                    if let Err(e) = sock.send(&d).await {
                        debug!(error = %e, "datagram to the origin not sent");
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    debug!(error = %e, "flow stream failed");
                    failed = true;
                    break;
                }
            },
            d = next_from(&mut from_mux) => {
                up += 1;
                if let Err(e) = sock.send(&d).await {
                    debug!(error = %e, "datagram to the origin not sent");
                }
            }
            r = sock.readable() => {
                if r.is_err() {
                    break;
                }
                // One receive buffer per burst, not per idle session.
                let mut buf = BytesMut::with_capacity(burrow_proto::datagram::MAX_DATAGRAM);
                loop {
                    buf.clear();
                    match sock.try_recv_buf(&mut buf) {
                        Ok(_) => {
                            down += 1;
                            // QUIC datagram when it fits; framed on the stream otherwise.
                            let sent = mux.as_ref().is_some_and(|m| m.send(flow_id, &buf));
                            if !sent && write_datagram(&mut wr, &buf, &mut scratch).await.is_err() {
                                break;
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        // ICMP unreachable from the origin: keep the session.
                        Err(_) => break,
                    }
                }
            }
            _ = tokio::time::sleep(SESSION_IDLE) => break,
        }
    }
    if let Some(m) = &mux {
        m.unregister(flow_id);
    }
    let _ = wr.shutdown().await;
    metrics.udp_active.dec();
    metrics.udp_flows_active.get_or_create(&labels).dec();
    if failed {
        metrics.udp_flows_failed.get_or_create(&labels).inc();
    }
    debug!(
        rule = ?rule,
        datagrams_to_origin = up,
        datagrams_from_origin = down,
        "UDP session finished"
    );
}
