//! quinn's rustls crypto, wrapped to learn which key-exchange group each
//! QUIC handshake used: quinn keeps rustls' session to itself, so these
//! wrappers pass every call through and watch the ServerHello go by (the
//! edge writes it, the connector reads it). [`key_exchange`] then names
//! the group of a connection.

use crate::kx::HelloScan;
use quinn_proto::crypto::{
    self, ExportKeyingMaterialError, HeaderKey, KeyPair, Keys, PacketKey, UnsupportedVersion,
};
use quinn_proto::transport_parameters::TransportParameters;
use quinn_proto::{ConnectError, ConnectionId, Side, TransportError};
use std::any::Any;
use std::sync::Arc;

/// A session that passes everything to rustls' and scans the ServerHello.
struct Watched {
    inner: Box<dyn crypto::Session>,
    scan: HelloScan,
    side: Side,
}

/// What [`Watched::handshake_data`] gives (in place of quinn's
/// `HandshakeData`, which nothing here reads): the key-exchange group,
/// once the ServerHello went by.
pub(crate) struct WatchedHandshake {
    pub(crate) group: Option<u16>,
}

impl crypto::Session for Watched {
    fn initial_keys(&self, dst_cid: &ConnectionId, side: Side) -> Keys {
        self.inner.initial_keys(dst_cid, side)
    }
    fn handshake_data(&self) -> Option<Box<dyn Any>> {
        self.inner.handshake_data()?;
        Some(Box::new(WatchedHandshake {
            group: self.scan.group(),
        }))
    }
    fn peer_identity(&self) -> Option<Box<dyn Any>> {
        self.inner.peer_identity()
    }
    fn early_crypto(&self) -> Option<(Box<dyn HeaderKey>, Box<dyn PacketKey>)> {
        self.inner.early_crypto()
    }
    fn early_data_accepted(&self) -> Option<bool> {
        self.inner.early_data_accepted()
    }
    fn is_handshaking(&self) -> bool {
        self.inner.is_handshaking()
    }
    fn read_handshake(&mut self, buf: &[u8]) -> Result<bool, TransportError> {
        // The connector reads the ServerHello.
        if self.side == Side::Client {
            self.scan.feed(buf);
        }
        self.inner.read_handshake(buf)
    }
    fn transport_parameters(&self) -> Result<Option<TransportParameters>, TransportError> {
        self.inner.transport_parameters()
    }
    fn write_handshake(&mut self, buf: &mut Vec<u8>) -> Option<Keys> {
        let from = buf.len();
        let keys = self.inner.write_handshake(buf);
        // The edge writes it.
        if self.side == Side::Server {
            self.scan.feed(&buf[from..]);
        }
        keys
    }
    fn next_1rtt_keys(&mut self) -> Option<KeyPair<Box<dyn PacketKey>>> {
        self.inner.next_1rtt_keys()
    }
    fn is_valid_retry(&self, orig_dst_cid: &ConnectionId, header: &[u8], payload: &[u8]) -> bool {
        self.inner.is_valid_retry(orig_dst_cid, header, payload)
    }
    fn export_keying_material(
        &self,
        output: &mut [u8],
        label: &[u8],
        context: &[u8],
    ) -> Result<(), ExportKeyingMaterialError> {
        self.inner.export_keying_material(output, label, context)
    }
}

/// The edge's QUIC crypto: rustls' ([`quinn::crypto::rustls::QuicServerConfig`]), watched.
pub(crate) struct WatchedServer(pub(crate) Arc<quinn::crypto::rustls::QuicServerConfig>);

impl crypto::ServerConfig for WatchedServer {
    fn initial_keys(
        &self,
        version: u32,
        dst_cid: &ConnectionId,
    ) -> Result<Keys, UnsupportedVersion> {
        self.0.initial_keys(version, dst_cid)
    }
    fn retry_tag(&self, version: u32, orig_dst_cid: &ConnectionId, packet: &[u8]) -> [u8; 16] {
        self.0.retry_tag(version, orig_dst_cid, packet)
    }
    fn start_session(
        self: Arc<Self>,
        version: u32,
        params: &TransportParameters,
    ) -> Box<dyn crypto::Session> {
        Box::new(Watched {
            inner: self.0.clone().start_session(version, params),
            scan: HelloScan::default(),
            side: Side::Server,
        })
    }
}

/// The connector's QUIC crypto, watched.
pub(crate) struct WatchedClient(pub(crate) Arc<quinn::crypto::rustls::QuicClientConfig>);

impl crypto::ClientConfig for WatchedClient {
    fn start_session(
        self: Arc<Self>,
        version: u32,
        server_name: &str,
        params: &TransportParameters,
    ) -> Result<Box<dyn crypto::Session>, ConnectError> {
        Ok(Box::new(Watched {
            inner: self.0.clone().start_session(version, server_name, params)?,
            scan: HelloScan::default(),
            side: Side::Client,
        }))
    }
}

/// The key-exchange group a QUIC connection's handshake used (`None`
/// before the ServerHello, or for a connection not made with these
/// wrappers).
#[must_use]
pub fn key_exchange(conn: &quinn::Connection) -> Option<String> {
    let data = conn.handshake_data()?;
    let watched = data.downcast_ref::<WatchedHandshake>()?;
    watched.group.map(crate::kx::group_name)
}

#[cfg(test)]
mod tests {
    use crate::kx::{PostQuantum, PQ_GROUP};
    use crate::pki::{EdgePki, EdgeTrust};
    use crate::{ConnectorConn, EdgeConn};
    use std::time::Duration;

    const T: Duration = Duration::from_secs(5);

    /// One connection over `quic` (else HTTP/2) between an edge and a
    /// connector with these policies: both sides' view of the group, or
    /// the connector's error.
    async fn handshake(
        quic: bool,
        edge: PostQuantum,
        connector: PostQuantum,
    ) -> Result<(Option<String>, Option<String>), String> {
        let mut pki = EdgePki::ephemeral("burrow.internal").unwrap();
        pki.post_quantum = edge;
        let mut trust = EdgeTrust::new(&pki.ca_pem, "burrow.internal").unwrap();
        trust.post_quantum = connector;
        if quic {
            let (edge_conn, conn, _client) = crate::quic::testing::loopback(&pki, &trust).await?;
            Ok((edge_conn.key_exchange(), conn.key_exchange()))
        } else {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let tls = pki.h2_server_config().unwrap();
            let accepting = tokio::spawn(async move {
                let (tcp, _) = listener.accept().await.unwrap();
                crate::h2::accept(tcp, tls, T).await.ok()
            });
            let (conn, _control) = crate::h2::connect(addr, &trust, T)
                .await
                .map_err(|e| e.to_string())?;
            let (edge_conn, _) = accepting.await.unwrap().unwrap();
            assert!(matches!(conn, ConnectorConn::H2(_)));
            assert!(matches!(edge_conn, EdgeConn::H2(_)));
            Ok((edge_conn.key_exchange(), conn.key_exchange()))
        }
    }

    #[tokio::test]
    async fn both_transports_agree_on_post_quantum_and_fall_back_to_classical() {
        for quic in [true, false] {
            let pq = Some(PQ_GROUP.to_owned());
            let classical = Some("X25519".to_owned());
            // Offered by default on both sides: the hybrid group, seen by both.
            let both = handshake(quic, PostQuantum::Prefer, PostQuantum::Prefer).await;
            assert_eq!(both.unwrap(), (pq.clone(), pq.clone()), "quic {quic}");
            // An edge without it: the default connector falls back.
            let fallback = handshake(quic, PostQuantum::Off, PostQuantum::Prefer).await;
            assert_eq!(
                fallback.unwrap(),
                (classical.clone(), classical),
                "quic {quic}"
            );
            // Required by the connector: only the hybrid group.
            let required = handshake(quic, PostQuantum::Prefer, PostQuantum::Require).await;
            assert_eq!(required.unwrap(), (pq.clone(), pq), "quic {quic}");
            // Required against an edge without it: no connection.
            let refused = handshake(quic, PostQuantum::Off, PostQuantum::Require).await;
            assert!(refused.is_err(), "quic {quic}: {refused:?}");
        }
    }
}
