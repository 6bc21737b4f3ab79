//! cloudflared's `quic_client_*` families, from quinn's statistics of each
//! live QUIC tunnel connection, read when `/metrics` is scraped.

use super::{CompatCounter, ConnIndexLabels, FrameLabels, LostLabels};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

/// The QUIC connections and the series mirrored from their statistics.
#[derive(Default)]
pub(crate) struct QuicGauges {
    conns: Mutex<HashMap<u8, quinn::Connection>>,
    total: CompatCounter,
    closed: CompatCounter,
    smoothed_rtt: Family<ConnIndexLabels, Gauge<f64, AtomicU64>>,
    cwnd: Family<ConnIndexLabels, Gauge>,
    mtu: Family<ConnIndexLabels, Gauge>,
    sent_bytes: Family<ConnIndexLabels, CompatCounter>,
    received_bytes: Family<ConnIndexLabels, CompatCounter>,
    sent_frames: Family<FrameLabels, CompatCounter>,
    received_frames: Family<FrameLabels, CompatCounter>,
    lost: Family<LostLabels, CompatCounter>,
}

/// Frame counts by cloudflared's `frame_type` names.
fn frames(f: &quinn::FrameStats) -> [(&'static str, u64); 9] {
    [
        ("StreamFrame", f.stream),
        ("DatagramFrame", f.datagram),
        ("AckFrame", f.acks),
        ("PingFrame", f.ping),
        ("CryptoFrame", f.crypto),
        ("MaxDataFrame", f.max_data),
        ("MaxStreamDataFrame", f.max_stream_data),
        ("ResetStreamFrame", f.reset_stream),
        ("ConnectionCloseFrame", f.connection_close),
    ]
}

impl QuicGauges {
    pub(crate) fn register(&self, r: &mut Registry) {
        let c = |s: &str| s.to_owned();
        r.register(
            c("quic_client_total_connections"),
            "Number of QUIC tunnel connections made",
            self.total.clone(),
        );
        r.register(
            c("quic_client_closed_connections"),
            "Number of QUIC tunnel connections closed",
            self.closed.clone(),
        );
        r.register(
            c("quic_client_smoothed_rtt"),
            "Smoothed round trip to the edge, in milliseconds",
            self.smoothed_rtt.clone(),
        );
        r.register(
            c("quic_client_congestion_window"),
            "Congestion window, in bytes",
            self.cwnd.clone(),
        );
        r.register(
            c("quic_client_mtu"),
            "Current path MTU (UDP payload), in bytes",
            self.mtu.clone(),
        );
        r.register(
            c("quic_client_sent_bytes"),
            "Bytes sent on the connection (UDP payloads)",
            self.sent_bytes.clone(),
        );
        r.register(
            c("quic_client_receive_bytes"),
            "Bytes received on the connection (UDP payloads)",
            self.received_bytes.clone(),
        );
        r.register(
            c("quic_client_sent_frames"),
            "Frames sent, by frame type",
            self.sent_frames.clone(),
        );
        r.register(
            c("quic_client_received_frames"),
            "Frames received, by frame type",
            self.received_frames.clone(),
        );
        r.register(
            c("quic_client_lost_packets"),
            "Packets declared lost (quinn does not say why: reason \"lost\")",
            self.lost.clone(),
        );
    }

    pub(crate) fn up(&self, index: u8, conn: quinn::Connection) {
        self.total.inc();
        if let Ok(mut m) = self.conns.lock() {
            m.insert(index, conn);
        }
    }

    pub(crate) fn down(&self, index: u8) {
        let gone = self.conns.lock().ok().and_then(|mut m| m.remove(&index));
        if gone.is_some() {
            self.closed.inc();
        }
    }

    /// Copies each live connection's statistics into the series.
    pub(crate) fn refresh(&self) {
        let conns: Vec<(u8, quinn::Connection)> = match self.conns.lock() {
            Ok(m) => m.iter().map(|(i, c)| (*i, c.clone())).collect(),
            Err(_) => return,
        };
        for (index, conn) in conns {
            let s = conn.stats();
            let idx = ConnIndexLabels {
                conn_index: index.to_string(),
            };
            self.smoothed_rtt
                .get_or_create(&idx)
                .set(s.path.rtt.as_secs_f64() * 1000.0);
            let g = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            self.cwnd.get_or_create(&idx).set(g(s.path.cwnd));
            self.mtu
                .get_or_create(&idx)
                .set(i64::from(s.path.current_mtu));
            self.sent_bytes.get_or_create(&idx).set(s.udp_tx.bytes);
            self.received_bytes.get_or_create(&idx).set(s.udp_rx.bytes);
            self.lost
                .get_or_create(&LostLabels {
                    conn_index: idx.conn_index.clone(),
                    reason: "lost",
                })
                .set(s.path.lost_packets);
            for (family, stats) in [
                (&self.sent_frames, &s.frame_tx),
                (&self.received_frames, &s.frame_rx),
            ] {
                for (frame_type, n) in frames(stats) {
                    family
                        .get_or_create(&FrameLabels {
                            conn_index: idx.conn_index.clone(),
                            frame_type,
                        })
                        .set(n);
                }
            }
        }
    }
}
