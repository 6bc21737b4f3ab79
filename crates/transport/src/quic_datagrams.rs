//! UDP sessions over QUIC datagrams.
//!
//! A UDP session through a tunnel always has a flow stream (its header,
//! the connector's answer, its lifetime, and datagrams too large for a QUIC
//! datagram). On a QUIC connection whose connector listed [`FEATURE`] in its
//! registration, both sides also send the session's datagrams as QUIC
//! datagrams, each tagged with the flow id
//! ([`burrow_proto::datagram::tag`]): unreliable and unordered like UDP
//! itself, with no head-of-line blocking behind a lost packet.
//!
//! [`DatagramMux`] is one connection's demultiplexer: [`DatagramMux::run`]
//! reads the connection's datagrams and hands each to the session
//! registered for its flow id (a bounded queue; when full, the datagram is
//! dropped, as a congested link would).

use burrow_proto::datagram::{tag, untag, FLOW_TAG};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Registration feature: "this connector takes UDP datagrams as QUIC
/// datagrams".
pub const FEATURE: &str = "quic-datagrams";

/// Datagrams waiting for one session's task; more are dropped.
const SESSION_QUEUE: usize = 256;

/// The UDP-session datagrams of one QUIC connection.
pub struct DatagramMux {
    conn: quinn::Connection,
    flows: Mutex<HashMap<u64, mpsc::Sender<Bytes>>>,
}

impl DatagramMux {
    /// A mux for `conn`; call [`run`](Self::run) to start receiving.
    pub fn new(conn: quinn::Connection) -> Arc<Self> {
        Arc::new(Self {
            conn,
            flows: Mutex::new(HashMap::new()),
        })
    }

    /// Delivers incoming datagrams until the connection closes. Datagrams
    /// for unknown flows, and short ones, are dropped.
    pub async fn run(self: Arc<Self>) {
        while let Ok(d) = self.conn.read_datagram().await {
            let Some((flow_id, payload)) = untag(d) else {
                continue;
            };
            let tx = self
                .flows
                .lock()
                .expect("datagram mux lock poisoned")
                .get(&flow_id)
                .cloned();
            if let Some(tx) = tx {
                let _ = tx.try_send(payload);
            }
        }
    }

    /// Starts taking datagrams for `flow_id`.
    pub fn register(&self, flow_id: u64) -> mpsc::Receiver<Bytes> {
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        self.flows
            .lock()
            .expect("datagram mux lock poisoned")
            .insert(flow_id, tx);
        rx
    }

    /// Stops taking datagrams for `flow_id`.
    pub fn unregister(&self, flow_id: u64) {
        self.flows
            .lock()
            .expect("datagram mux lock poisoned")
            .remove(&flow_id);
    }

    /// Sends `payload` as one QUIC datagram. `false` when it cannot go that
    /// way (larger than the path allows, or the peer takes no datagrams):
    /// the caller sends it framed on the flow stream instead. A datagram
    /// QUIC drops under congestion counts as sent.
    pub fn send(&self, flow_id: u64, payload: &[u8]) -> bool {
        match self.conn.max_datagram_size() {
            Some(max) if payload.len() + FLOW_TAG <= max => {}
            _ => return false,
        }
        match self.conn.send_datagram(tag(flow_id, payload)) {
            Ok(()) => true,
            Err(quinn::SendDatagramError::TooLarge) => false,
            Err(quinn::SendDatagramError::UnsupportedByPeer)
            | Err(quinn::SendDatagramError::Disabled) => false,
            Err(quinn::SendDatagramError::ConnectionLost(_)) => true,
        }
    }
}

/// The next datagram from an optional session queue; waits forever when
/// there is none (so it can sit in a `select!` next to the stream).
/// Cancel-safe.
pub async fn next_from(rx: &mut Option<mpsc::Receiver<Bytes>>) -> Bytes {
    loop {
        match rx {
            Some(r) => match r.recv().await {
                Some(d) => return d,
                None => *rx = None,
            },
            None => std::future::pending::<()>().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ConnectorConn, EdgeConn};
    use std::time::Duration;

    /// A QUIC connection on loopback: (edge side, connector side).
    async fn pair() -> (quinn::Connection, quinn::Connection, quinn::Endpoint) {
        let pki = crate::pki::EdgePki::ephemeral("burrow.internal").unwrap();
        let trust = crate::pki::EdgeTrust::new(&pki.ca_pem, "burrow.internal").unwrap();
        let (EdgeConn::Quic(s), ConnectorConn::Quic(c), client) =
            crate::quic::testing::loopback(&pki, &trust).await.unwrap()
        else {
            panic!("not QUIC")
        };
        (s.connection().clone(), c.connection().clone(), client)
    }

    /// What `rx` holds after a moment, in arrival order.
    async fn drain(rx: &mut mpsc::Receiver<Bytes>) -> Vec<Bytes> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut got = Vec::new();
        while let Ok(d) = rx.try_recv() {
            got.push(d);
        }
        got
    }

    #[tokio::test]
    async fn each_flow_gets_only_its_own_datagrams_and_strays_are_dropped() {
        let (edge, connector, _ep) = pair().await;
        let mux = DatagramMux::new(edge.clone());
        tokio::spawn(mux.clone().run());
        let mut seven = mux.register(7);
        let send = |flow: u64, p: &'static [u8]| connector.send_datagram(tag(flow, p)).unwrap();
        send(7, b"a");
        send(9, b"not registered");
        connector
            .send_datagram(Bytes::from_static(b"short"))
            .unwrap();
        send(7, b"c");
        let got = drain(&mut seven).await;
        assert_eq!(got, [Bytes::from_static(b"a"), Bytes::from_static(b"c")]);
        // Unregistered: the queue ends, nothing more arrives.
        mux.unregister(7);
        send(7, b"late");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let end = tokio::time::timeout(Duration::from_secs(1), seven.recv()).await;
        assert_eq!(end, Ok(None), "the queue outlived unregister");
    }

    #[tokio::test]
    async fn a_full_session_queue_drops_and_never_stalls_the_others() {
        let (edge, connector, _ep) = pair().await;
        let mux = DatagramMux::new(edge.clone());
        tokio::spawn(mux.clone().run());
        let mut slow = mux.register(1);
        let mut other = mux.register(2);
        for i in 0..(SESSION_QUEUE as u32 + 200) {
            connector.send_datagram(tag(1, &i.to_be_bytes())).unwrap();
            if i % 64 == 0 {
                // Let QUIC's own datagram buffer drain into the mux.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        connector.send_datagram(tag(2, b"through")).unwrap();
        let theirs = drain(&mut other).await;
        assert_eq!(theirs, [Bytes::from_static(b"through")]);
        let queued = drain(&mut slow).await;
        assert!(
            !queued.is_empty() && queued.len() <= SESSION_QUEUE,
            "{} queued",
            queued.len()
        );
    }

    #[tokio::test]
    async fn datagrams_too_large_for_the_path_go_framed_instead() {
        let (_edge, connector, _ep) = pair().await;
        let mux = DatagramMux::new(connector.clone());
        let max = connector.max_datagram_size().expect("datagrams enabled");
        assert!(
            mux.send(3, &vec![0u8; max - FLOW_TAG]),
            "the largest that fits"
        );
        assert!(
            !mux.send(3, &vec![0u8; max - FLOW_TAG + 1]),
            "one byte more"
        );
    }
}
