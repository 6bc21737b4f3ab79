//! SOCKS5 UDP ASSOCIATE: the client binds a UDP socket next to its SOCKS
//! listener and tells the application its address; each datagram the
//! application sends there names its destination in a SOCKS UDP header.
//! Datagrams to one destination ride one flow stream (`FlowKind::Udp`) to
//! the edge, framed; answers come back with the destination's header. Only
//! the application that asked (its IP address, and its port once seen) may
//! use the association, which lives as long as the SOCKS TCP connection.

use burrow_proto::socks5::{self, Dest, Reply};
use burrow_proto::FlowKind;
use burrow_transport::datagrams::{write_datagram, DatagramReader};
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tracing::debug;

/// Destinations one association may reach at a time.
pub(crate) const MAX_DESTINATIONS: usize = 256;
/// Datagrams waiting for one destination's stream; more are dropped (UDP).
const QUEUE: usize = 256;

/// Serves one association until the SOCKS connection closes.
pub(crate) async fn associate(
    conn: Arc<crate::Edge>,
    mut app: TcpStream,
    peer: SocketAddr,
    asked: Dest,
    next: Arc<AtomicU64>,
) -> Result<(), String> {
    let local = app.local_addr().map_err(|e| e.to_string())?;
    let sock = match UdpSocket::bind((local.ip(), 0)).await {
        Ok(s) => Arc::new(s),
        Err(e) => {
            let _ = app
                .write_all(&socks5::reply(Reply::GeneralFailure, None))
                .await;
            return Err(format!("cannot bind a UDP socket on {}: {e}", local.ip()));
        }
    };
    let bound = sock.local_addr().map_err(|e| e.to_string())?;
    app.write_all(&socks5::reply(Reply::Succeeded, Some(bound)))
        .await
        .map_err(|e| e.to_string())?;
    // The application's UDP address: as announced, or its first datagram's.
    let mut app_udp = match asked {
        Dest::Ip(a) if a.port() != 0 && !a.ip().is_unspecified() => Some(a),
        _ => None,
    };
    let mut flows: HashMap<String, mpsc::Sender<Bytes>> = HashMap::new();
    let mut buf = vec![0u8; burrow_proto::datagram::MAX_DATAGRAM];
    let mut tcp = [0u8; 64];
    loop {
        tokio::select! {
            r = app.read(&mut tcp) => match r {
                // The association ends with its TCP connection.
                Ok(0) | Err(_) => return Ok(()),
                Ok(_) => {}
            },
            r = sock.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { continue };
                if from.ip() != peer.ip() || app_udp.is_some_and(|a| a != from) {
                    debug!(%from, "datagram from another address than the association's; dropped");
                    continue;
                }
                app_udp = Some(from);
                let (dest, at) = match socks5::parse_udp(&buf[..n]) {
                    Ok(x) => x,
                    Err(e) => {
                        debug!(reason = %e, "bad SOCKS UDP datagram; dropped");
                        continue;
                    }
                };
                let payload = Bytes::copy_from_slice(&buf[at..n]);
                let key = dest.to_string();
                if let Some(tx) = flows.get(&key) {
                    match tx.try_send(payload) {
                        Ok(()) => continue,
                        Err(mpsc::error::TrySendError::Full(_)) => continue,
                        // The flow failed; the next datagram opens a new one.
                        Err(mpsc::error::TrySendError::Closed(_)) => {
                            flows.remove(&key);
                            continue;
                        }
                    }
                }
                if flows.len() >= MAX_DESTINATIONS {
                    flows.retain(|_, tx| !tx.is_closed());
                    if flows.len() >= MAX_DESTINATIONS {
                        debug!(limit = MAX_DESTINATIONS, "too many UDP destinations on one association; dropped");
                        continue;
                    }
                }
                let (tx, rx) = mpsc::channel(QUEUE);
                let _ = tx.try_send(payload);
                flows.insert(key, tx);
                tokio::spawn(destination(
                    conn.clone(),
                    sock.clone(),
                    from,
                    dest,
                    rx,
                    peer,
                    next.clone(),
                ));
            }
        }
    }
}

/// One destination's flow: datagrams from the application out, answers
/// back to `app_udp` under the destination's header.
async fn destination(
    conn: Arc<crate::Edge>,
    sock: Arc<UdpSocket>,
    app_udp: SocketAddr,
    dest: Dest,
    mut rx: mpsc::Receiver<Bytes>,
    peer: SocketAddr,
    next: Arc<AtomicU64>,
) {
    let (stream, leftover) =
        match crate::open_flow(&conn, FlowKind::Udp, dest.to_string(), peer, &next).await {
            Ok(x) => x,
            Err(reason) => {
                debug!(%reason, "UDP flow not opened");
                return;
            }
        };
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut reader = DatagramReader::new(leftover);
    let mut scratch = BytesMut::new();
    let mut out = Vec::with_capacity(socks5::MAX_UDP_HEADER + 1500);
    loop {
        tokio::select! {
            d = rx.recv() => match d {
                Some(d) => {
                    if write_datagram(&mut wr, &d, &mut scratch).await.is_err() {
                        return;
                    }
                }
                None => break,
            },
            d = reader.next(&mut rd) => match d {
                Ok(Some(d)) => {
                    socks5::udp_header(&dest, &mut out);
                    out.extend_from_slice(&d);
                    let _ = sock.send_to(&out, app_udp).await;
                }
                _ => return,
            },
        }
    }
    let _ = wr.shutdown().await;
}
