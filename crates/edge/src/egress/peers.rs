//! Connections from this edge to its peer edges, made on first use and
//! shared by every flow handed over them: one per colo for egress (a
//! `--peer`, or else a live cluster node of that colo), one per node for
//! flows carried to the node holding a tunnel's connection.

use burrow_proto::v2::{Registration, Role};
use burrow_transport::frames::{self, Answer, FrameReader, OlderEdges};
use burrow_transport::ConnectorConn;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tracing::info;

/// Who this edge is when it registers with a peer.
pub(crate) struct Me {
    pub(crate) account_id: uuid::Uuid,
    pub(crate) node_id: String,
    /// Newest protocol version this node speaks (1: rehearsing an
    /// upgrade, as a node of an older release).
    pub(crate) wire: u16,
    pub(crate) colo: String,
    /// This edge's CA (trusted for peers unless `--peer-ca`).
    pub(crate) ca_pem: String,
    pub(crate) edge_domain: String,
}

/// Peer settings of this edge.
#[derive(Debug, Clone, Default)]
pub struct PeerConfig {
    /// `COLO → tunnel endpoint address` of other edges.
    pub peers: HashMap<String, SocketAddr>,
    /// Shared secret; without it, no peer flows either way.
    pub secret: Option<burrow_proto::WireSecret>,
    /// CA (PEM) that signed the peers' certificates; `None`: this edge's.
    pub ca_pem: Option<String>,
    /// Where the colos are (`--colo-location`), for the default egress.
    pub sites: Vec<burrow_policy::exits::Site>,
}

/// Open connections to peers, by colo.
pub(crate) struct Peers {
    /// `--peer`, `--peer-secret-file`, `--peer-ca`, `--colo-location`.
    pub(crate) cfg: PeerConfig,
    /// Who this edge is to its peers.
    me: Me,
    /// Where the control-stream readers of peer connections run.
    tasks: tokio_util::task::TaskTracker,
    slots: std::sync::Mutex<HashMap<String, Arc<Slot>>>,
    /// Colos whose last connection attempt failed, until when to skip them.
    down: std::sync::Mutex<HashMap<String, std::time::Instant>>,
    /// Nodes that speak only protocol version 1 (an upgrade under way).
    older: OlderEdges,
}

/// A connection to a peer node and the protocol version it speaks there
/// (the version of the flow headers sent on it).
pub(crate) struct Link {
    conn: ConnectorConn,
    pub(crate) wire: u16,
}

impl std::ops::Deref for Link {
    type Target = ConnectorConn;
    fn deref(&self) -> &ConnectorConn {
        &self.conn
    }
}

/// One colo's connection: flows read it without waiting; a (re)connect
/// holds `connecting`, so flows to that colo share one attempt and flows
/// to other colos never wait for it.
#[derive(Default)]
pub(crate) struct Slot {
    live: std::sync::Mutex<Option<Arc<Link>>>,
    connecting: tokio::sync::Mutex<()>,
}

impl Slot {
    fn open(&self) -> Option<Arc<Link>> {
        self.live
            .lock()
            .ok()?
            .as_ref()
            .filter(|c| !c.is_closed())
            .cloned()
    }
}

/// How long a peer that could not be reached is skipped (flows take the
/// next exit at once meanwhile).
pub(crate) const DOWN_FOR: Duration = Duration::from_secs(10);

impl Peers {
    pub(crate) fn new(cfg: PeerConfig, me: Me, tasks: tokio_util::task::TaskTracker) -> Self {
        Self {
            cfg,
            me,
            tasks,
            slots: std::sync::Mutex::default(),
            down: std::sync::Mutex::default(),
            older: OlderEdges::default(),
        }
    }

    /// A live connection to the edge of `colo`, made on first use.
    /// Skips `colo` for [`DOWN_FOR`]: a flow handed to it found it down.
    pub(crate) fn mark_down(&self, colo: &str) {
        self.down
            .lock()
            .expect("peer state lock poisoned")
            .insert(colo.to_owned(), std::time::Instant::now() + DOWN_FOR);
    }

    /// A live connection to the edge of `colo`: its `--peer`, or else
    /// `member` (a live cluster node of that colo, when the caller found
    /// one).
    pub(crate) async fn conn(
        &self,
        colo: &str,
        member: Option<SocketAddr>,
    ) -> Result<Arc<Link>, String> {
        let addr = self
            .cfg
            .peers
            .get(colo)
            .copied()
            .or(member)
            .ok_or_else(|| format!("no live edge node of colo {colo} (and no --peer for it)"))?;
        self.conn_to(colo, addr).await
    }

    /// A live connection to the edge at `addr`, kept under `key` (a colo,
    /// or a node id), made on first use. A peer that could not be reached
    /// is skipped for [`DOWN_FOR`].
    pub(crate) async fn conn_to(&self, key: &str, addr: SocketAddr) -> Result<Arc<Link>, String> {
        if let Some(until) = self.down.lock().expect("peer state lock poisoned").get(key) {
            if *until > std::time::Instant::now() {
                return Err(format!("peer {key} was unreachable moments ago"));
            }
        }
        let r = self.connect(key, addr).await;
        let mut down = self.down.lock().expect("peer state lock poisoned");
        match &r {
            Ok(_) => down.remove(key),
            Err(_) => down.insert(key.to_owned(), std::time::Instant::now() + DOWN_FOR),
        };
        r
    }

    /// The measured round trip to the peer kept under `key`, while its
    /// connection is open.
    pub(crate) fn rtt(&self, key: &str) -> Option<Duration> {
        let slot = self.slots.lock().ok()?.get(key)?.clone();
        slot.open()?.rtt()
    }

    async fn connect(&self, colo: &str, addr: SocketAddr) -> Result<Arc<Link>, String> {
        let slot = self
            .slots
            .lock()
            .map_err(|_| "peer state lock poisoned".to_owned())?
            .entry(colo.to_owned())
            .or_default()
            .clone();
        if let Some(c) = slot.open() {
            return Ok(c);
        }
        let _connecting = slot.connecting.lock().await;
        // Another flow may have connected while this one waited.
        if let Some(c) = slot.open() {
            return Ok(c);
        }
        let cfg = &self.cfg;
        let secret = cfg
            .secret
            .clone()
            .ok_or("no --peer-secret-file or --cluster-secret-file: peer links are off")?;
        let ca = cfg.ca_pem.as_deref().unwrap_or(&self.me.ca_pem);
        let trust = burrow_transport::pki::EdgeTrust::new(ca, &self.me.edge_domain)
            .map_err(|e| format!("peer CA: {e}"))?;
        let ep = burrow_transport::quic::client_endpoint(addr).map_err(|e| e.to_string())?;
        let reg = Registration {
            account_id: *self.me.account_id.as_bytes(),
            secret,
            role: Role::Node {
                node_id: self.me.node_id.clone(),
                colo: self.me.colo.clone(),
            },
            version: format!("burrow-edge {} {}", env!("CARGO_PKG_VERSION"), self.me.colo),
            features: Vec::new(),
        };
        // A second try only when a node of an older release dropped the
        // version 2 registration: then in version 1.
        let mut tries = 0;
        let (conn, mut control, wire) = loop {
            tries += 1;
            let (conn, mut control) =
                burrow_transport::quic::connect(&ep, addr, &trust, CONNECT_TIMEOUT)
                    .await
                    .map_err(|e| format!("peer {colo} at {addr}: {e}"))?;
            let wire = self.older.version(addr).min(self.me.wire);
            let mut reader = FrameReader::new();
            let answer =
                frames::register(&mut control, &mut reader, &reg, wire, CONNECT_TIMEOUT).await;
            if self.older.learn(addr, wire, &answer) && tries < 2 {
                conn.close();
                continue;
            }
            match answer.map_err(|e| format!("peer {colo}: {e}"))? {
                Answer::Welcome(_) => break (conn, control, wire),
                Answer::Refused(r) => return Err(format!("peer {colo} refused: {}", r.message)),
            }
        };
        self.tasks.spawn(async move {
            let mut buf = [0u8; 64];
            while matches!(control.read(&mut buf).await, Ok(n) if n > 0) {}
        });
        info!(colo, %addr, wire, "connected to peer edge");
        let conn = Arc::new(Link { conn, wire });
        if let Ok(mut live) = slot.live.lock() {
            *live = Some(conn.clone());
        }
        Ok(conn)
    }
}

/// Time to connect to and register with a peer.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
