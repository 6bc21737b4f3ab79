//! [`Ctx`]: what every task of one edge process shares, grouped by
//! concept. Each group is defined by the module that owns the concept;
//! this file only puts them side by side, so it imports leaves and no
//! module it holds imports it back.

use crate::apps::running::AppManager;
use crate::authz::LiveGrants;
use crate::egress::peers::Peers;
use crate::limits::{LogGate, Rate};
use crate::tables::Tables;
use crate::telemetry::Telemetry;
use crate::tunnel::registry::Registry;
use crate::AppPools;
use burrow_store::Store;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio_util::task::TaskTracker;

/// State shared by every task of one edge process.
pub(crate) struct Ctx {
    /// Who this edge is.
    pub(crate) id: Identity,
    /// The state store (SQLite or PostgreSQL).
    pub(crate) store: Store,
    /// Poked when a store query fails, so the change feed subscribes
    /// again (a silent network leaves it waiting otherwise).
    pub(crate) store_trouble: tokio::sync::Notify,
    /// Routing tables, one snapshot swapped whole.
    pub(crate) tables: Tables,
    /// This node's live tunnel connections.
    pub(crate) registry: Registry,
    /// Tunnels as last read, for registrations while the store is away.
    pub(crate) known_tunnels: crate::known::LastRead<burrow_store::Tunnel>,
    /// Devices and their users' groups as last read, likewise.
    pub(crate) known_devices: crate::known::LastRead<(burrow_store::Device, Option<Vec<String>>)>,
    /// The cluster's nodes, as last read.
    pub(crate) members: crate::cluster::members::Members,
    /// Which other nodes hold which tunnels' connections, as last read.
    pub(crate) forwarding: crate::cluster::holders::Holders,
    /// Grants of the connectors and clients connected now, re-checked
    /// while they stay connected.
    pub(crate) grants: Arc<LiveGrants>,
    /// Running apps and the limits app flows share.
    pub(crate) apps: Apps,
    /// What was loaded from files and reloads on SIGHUP.
    pub(crate) files: Files,
    /// How client flows leave: resolver, built-in deny, peer edges.
    pub(crate) egress: Egress,
    /// Metrics, session log, logpush.
    pub(crate) telemetry: Telemetry,
    /// Background tasks and flows.
    pub(crate) tasks: Tasks,
}

/// Who this edge is.
pub(crate) struct Identity {
    /// Short name of this node's location, e.g. `NRT`.
    pub(crate) colo: String,
    /// This process's id in the connection registry.
    pub(crate) node_id: String,
    pub(crate) account_id: uuid::Uuid,
    /// The admin token's stored (hashed) form.
    pub(crate) admin_token_hash: Vec<u8>,
    /// The CA connectors trust, PEM.
    pub(crate) ca_pem: String,
    pub(crate) edge_domain: String,
    /// Bound tunnel endpoint.
    pub(crate) tunnel_addr: SocketAddr,
    /// Addresses app listeners bind to.
    pub(crate) app_pools: AppPools,
    /// Newest tunnel protocol version this node speaks (1 or 2).
    pub(crate) wire: u16,
}

/// Running apps and the limits their flows share.
pub(crate) struct Apps {
    pub(crate) running: AppManager,
    /// Descriptors app flows and public HTTP connections may take (two
    /// per TCP flow), leaving a reserve for the tunnel endpoint and the
    /// admin API.
    pub(crate) fds: Arc<tokio::sync::Semaphore>,
    /// New UDP app sessions per client address and second.
    pub(crate) udp_rate: Rate,
    /// Warnings about refused app connections: one per app per 10 s.
    pub(crate) refusal_log: LogGate<uuid::Uuid>,
    /// Warnings about listeners out of descriptor permits: one per
    /// listener per 10 s.
    pub(crate) full_log: LogGate<&'static str>,
}

/// What was loaded from files; the reloadable parts are swapped whole on
/// SIGHUP.
pub(crate) struct Files {
    /// TLS config of the HTTP/2 tunnel endpoint.
    pub(crate) h2_tls: Arc<rustls::ServerConfig>,
    /// TLS config of apps that terminate TLS at the edge (`--cert-dir`).
    pub(crate) app_tls: Option<Arc<rustls::ServerConfig>>,
    /// The `--cert-dir` certificates, reloadable.
    pub(crate) cert_resolver: Option<Arc<crate::apps::edge_tls::BySni>>,
    /// TLS client configs toward origins (`tls: full|strict`).
    pub(crate) origin_tls: arc_swap::ArcSwap<crate::apps::origin_tls::OriginTls>,
    /// Country / ASN lookups for access rules.
    pub(crate) geoip: arc_swap::ArcSwap<crate::geoip::GeoIp>,
}

/// How client flows leave the edge.
pub(crate) struct Egress {
    /// Resolver of `origin_dns` names and, with `--dns-server`, of client
    /// destinations (the error if it could not be set up).
    pub(crate) resolver: Result<hickory_resolver::TokioResolver, String>,
    /// `--dns-server`, when given.
    pub(crate) dns_server: Option<SocketAddr>,
    /// The built-in deny for destinations dialled for clients.
    pub(crate) dial_guard: burrow_policy::dial_guard::DialGuard,
    /// Peer edges of other colos.
    pub(crate) peers: Peers,
}

/// Where the edge's tasks run: `background` (accept loops, sweeps,
/// connection drivers) and `flows` (one per flow, drained on shutdown).
pub(crate) struct Tasks {
    pub(crate) background: TaskTracker,
    pub(crate) flows: TaskTracker,
    /// Cancelled when the grace period is over: every flow still open
    /// ends then (see [`Tasks::spawn_flow`]).
    pub(crate) end_flows: tokio_util::sync::CancellationToken,
    next_flow: AtomicU64,
}

impl Default for Tasks {
    fn default() -> Self {
        Self {
            background: TaskTracker::new(),
            flows: TaskTracker::new(),
            end_flows: tokio_util::sync::CancellationToken::new(),
            next_flow: AtomicU64::new(1),
        }
    }
}

impl Tasks {
    /// A new flow id (unique in this process; logs and stream headers).
    pub(crate) fn next_flow(&self) -> u64 {
        self.next_flow.fetch_add(1, Ordering::Relaxed)
    }

    /// Runs a flow: tracked (shutdown drains it) and ended when
    /// [`Tasks::end_flows`] is cancelled.
    pub(crate) fn spawn_flow<F>(&self, f: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let end = self.end_flows.clone();
        self.flows.spawn(async move {
            tokio::select! {
                () = f => {}
                () = end.cancelled() => {}
            }
        });
    }

    /// [`spawn_flow`](Self::spawn_flow), keeping `held` (a descriptor
    /// permit, a connection slot) until the flow ends.
    pub(crate) fn spawn_flow_holding<H, F>(&self, held: H, f: F)
    where
        H: Send + 'static,
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.spawn_flow(async move {
            let _held = held;
            f.await;
        });
    }

    /// Runs a background task.
    pub(crate) fn spawn<F>(&self, f: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.background.spawn(f)
    }
}

impl Ctx {
    /// After an admin change to `what` (the API resource) commits:
    /// announces it to the nodes sharing the store, rebuilds the routing
    /// tables, and has live grants re-checked.
    pub(crate) async fn committed(&self, what: &str) {
        let change = burrow_store::Change {
            node: self.id.node_id.clone(),
            what: what.to_owned(),
        };
        if let Err(e) = self.store.announce(&change).await {
            tracing::warn!(error = %e, "could not announce the change to the other nodes");
        }
        self.tables.reload(&self.store).await;
        self.grants.changed.notify_one();
    }
}

/// This node's id in the connection registry: the same for every run on
/// one host and tunnel address, so a restarted edge finds (and removes) the
/// connections its previous run registered.
pub(crate) fn node_id(colo: &str, host: &str, tunnel_addr: std::net::SocketAddr) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{host}|{tunnel_addr}"));
    format!("{colo}-{}", hex::encode(&digest[..4]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_id_is_stable_per_host_and_address() {
        let a: std::net::SocketAddr = "0.0.0.0:7844".parse().unwrap();
        let b: std::net::SocketAddr = "0.0.0.0:7845".parse().unwrap();
        assert_eq!(node_id("NRT", "h1", a), node_id("NRT", "h1", a));
        assert!(node_id("NRT", "h1", a).starts_with("NRT-"));
        assert_ne!(node_id("NRT", "h1", a), node_id("NRT", "h2", a));
        assert_ne!(node_id("NRT", "h1", a), node_id("NRT", "h1", b));
    }
}
