//! The edge's Prometheus metrics, served as text at `GET /metrics` on the
//! admin listener (no token: it holds no secrets, and the listener is on
//! loopback by default). Labels are bounded: protocol, origin kind,
//! decision, side — never client addresses.
//!
//! Names: `burrow_edge_*`. Per-tunnel series are labelled by tunnel id
//! (bounded by the tunnels that exist), egress decisions by policy rule id.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// TCP or UDP.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub(crate) enum L4 {
    tcp,
    udp,
}

/// Where an app sends its flows.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub(crate) enum OriginKind {
    direct,
    dns,
    tunnel,
}

/// An IP access rule's verdict.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub(crate) enum Decision {
    allow,
    block,
}

/// Which TLS handshake.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub(crate) enum Side {
    /// Client → edge (termination).
    client,
    /// Edge → origin (`full` / `strict`).
    origin,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FlowLabels {
    pub(crate) protocol: L4,
    pub(crate) origin: OriginKind,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct AccessLabels {
    pub(crate) protocol: L4,
    pub(crate) decision: Decision,
}

/// Which path of the HTTP listeners served a request: `lean` (bodiless
/// HTTP/1.1, relayed as framed) or `hyper` (everything else).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PathLabels {
    pub(crate) path: &'static str,
}

/// A listener that waited for a descriptor permit.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ListenerLabels {
    /// `app`, `http`, `client` or `peer`.
    pub(crate) listener: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StatusLabels {
    /// `2xx`, `3xx`, `4xx`, `5xx` (or `1xx`).
    pub(crate) code: &'static str,
}

impl StatusLabels {
    /// The labels of `status`'s class.
    pub(crate) fn of(status: http::StatusCode) -> Self {
        let code = match status.as_u16() / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        };
        Self { code }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutcomeLabels {
    /// The session log's `ConnectionCloseReason`.
    pub(crate) reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct AppRefusedLabels {
    pub(crate) app: String,
    /// `app_cap`, `source_cap`, `source_rate`.
    pub(crate) limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RevokedLabels {
    /// `connector` or `client`.
    pub(crate) party: &'static str,
    /// `tunnel_deleted`, `secret_rotated`, `device_revoked`,
    /// `device_deleted`, `user_deleted`.
    pub(crate) reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct KxLabels {
    /// `X25519MLKEM768` (post-quantum), `X25519`, ... or `unknown`.
    pub(crate) group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TlsLabels {
    pub(crate) side: Side,
}

/// Every edge metric, and the registry that encodes them.
pub(crate) struct Metrics {
    registry: Registry,
    /// App flows (TCP connections, UDP sessions) started.
    pub(crate) flows: Family<FlowLabels, Counter>,
    /// App flows that ended with an error (origin unreachable, TLS, ...).
    pub(crate) flow_errors: Family<FlowLabels, Counter>,
    /// IP access rule decisions for apps with `ip_firewall`.
    pub(crate) access: Family<AccessLabels, Counter>,
    /// Failed TLS handshakes.
    pub(crate) tls_failures: Family<TlsLabels, Counter>,
    /// Flows being spliced now.
    pub(crate) active_flows: Gauge,
    /// UDP sessions open now.
    pub(crate) udp_sessions: Gauge,
    /// Registered tunnel connections on this node.
    pub(crate) tunnel_connections: Gauge,
    /// 1 while the state store answers, 0 while this node serves on the
    /// state it read last.
    pub(crate) store_up: Gauge,
    /// Session log records dropped because the writer fell behind.
    pub(crate) session_log_dropped: Counter,
    /// Logpush: records sent, dropped, failed requests.
    pub(crate) logpush: crate::telemetry::logpush::LogpushStats,
    /// HTTP requests on the public listeners, by status class.
    pub(crate) http_requests: Family<StatusLabels, Counter>,
    pub(crate) http_requests_by_path: Family<PathLabels, Counter>,
    /// Zero-trust client sessions, by close reason.
    pub(crate) client_sessions: Family<OutcomeLabels, Counter>,
    /// Connections of connectors and clients ended because their access
    /// was taken away, by party and reason.
    pub(crate) revoked: Family<RevokedLabels, Counter>,
    /// App connections and UDP sessions refused by a limit, by app and
    /// limit.
    pub(crate) app_refused: Family<AppRefusedLabels, Counter>,
    pub(crate) listener_full: Family<ListenerLabels, Counter>,
    /// App flows (TCP connections, UDP sessions) closed after the app's
    /// idle timeout.
    pub(crate) app_idle_closed: Counter,
    /// Flows a tunnel connection did not acknowledge in time (each was
    /// tried on another connection).
    pub(crate) unacknowledged_flows: Counter,
    /// Flows this node carried to another node holding the tunnel.
    pub(crate) forwarded_out: Counter,
    /// Flows another node carried here into a tunnel.
    pub(crate) forwarded_in: Counter,
    /// Measured round trip to each other live node, seconds.
    pub(crate) node_rtt: Family<NodeLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Registered tunnel connections by tunnel id (and this colo).
    pub(crate) tunnel_connections_by_tunnel: Family<TunnelLabels, Gauge>,
    /// Tunnel connections registered, by their handshake's key-exchange
    /// group.
    pub(crate) key_exchanges: Family<KxLabels, Counter>,
    /// Egress policy decisions by rule id (`default` when none matched).
    pub(crate) egress_decisions: Family<RuleLabels, Counter>,
    /// Records waiting in the session log queue.
    pub(crate) session_log_queue: Gauge,
    /// Completed TLS handshakes by side.
    pub(crate) tls_handshakes: Family<TlsLabels, Counter>,
    /// TCP flows being spliced now, by app id.
    pub(crate) app_active: Family<AppLabels, Gauge>,
    /// Bytes of finished TCP flows, by app id and direction.
    pub(crate) app_bytes: Family<AppBytesLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct AppLabels {
    pub(crate) app: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct AppBytesLabels {
    pub(crate) app: String,
    /// `to_origin` or `from_origin`.
    pub(crate) direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TunnelLabels {
    pub(crate) tunnel_id: String,
    pub(crate) colo: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct NodeLabels {
    pub(crate) node: String,
    pub(crate) colo: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RuleLabels {
    pub(crate) rule: String,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("burrow_edge");
        let flows = Family::<FlowLabels, Counter>::default();
        registry.register(
            "app_flows",
            "App flows (TCP connections, UDP sessions) started",
            flows.clone(),
        );
        let flow_errors = Family::<FlowLabels, Counter>::default();
        registry.register(
            "app_flow_errors",
            "App flows that ended with an error",
            flow_errors.clone(),
        );
        let access = Family::<AccessLabels, Counter>::default();
        registry.register(
            "access_decisions",
            "IP access rule decisions on apps with ip_firewall (block: closed before any origin byte)",
            access.clone(),
        );
        let tls_failures = Family::<TlsLabels, Counter>::default();
        registry.register(
            "tls_handshake_failures",
            "Failed TLS handshakes by side",
            tls_failures.clone(),
        );
        let active_flows = Gauge::default();
        registry.register(
            "active_flows",
            "Flows being spliced now",
            active_flows.clone(),
        );
        let udp_sessions = Gauge::default();
        registry.register(
            "udp_sessions",
            "UDP sessions open now",
            udp_sessions.clone(),
        );
        let tunnel_connections = Gauge::default();
        registry.register(
            "tunnel_connections",
            "Registered tunnel connections on this node",
            tunnel_connections.clone(),
        );
        let store_up = Gauge::default();
        registry.register(
            "store_up",
            "1 while the state store answers; 0 while this node serves on the state it read last",
            store_up.clone(),
        );
        let session_log_dropped = Counter::default();
        registry.register(
            "session_log_dropped",
            "Network session log records dropped because the writer queue was full",
            session_log_dropped.clone(),
        );
        let tunnel_connections_by_tunnel = Family::<TunnelLabels, Gauge>::default();
        registry.register(
            "tunnel_connections_by_tunnel",
            "Registered tunnel connections on this node, by tunnel",
            tunnel_connections_by_tunnel.clone(),
        );
        let key_exchanges = Family::<KxLabels, Counter>::default();
        registry.register(
            "tunnel_key_exchanges",
            "Connector connections registered, by the key-exchange group of their handshake (X25519MLKEM768: post-quantum)",
            key_exchanges.clone(),
        );
        let egress_decisions = Family::<RuleLabels, Counter>::default();
        registry.register(
            "egress_decisions",
            "Zero-trust client flows by the egress policy rule that matched (default: none)",
            egress_decisions.clone(),
        );
        let session_log_queue = Gauge::default();
        registry.register(
            "session_log_queue",
            "Session log records waiting to be written",
            session_log_queue.clone(),
        );
        let tls_handshakes = Family::<TlsLabels, Counter>::default();
        registry.register(
            "tls_handshakes",
            "Completed TLS handshakes by side (client: termination at the edge; origin: full/strict)",
            tls_handshakes.clone(),
        );
        let app_active = Family::<AppLabels, Gauge>::default();
        registry.register(
            "app_active_flows",
            "TCP flows being spliced now, by app id",
            app_active.clone(),
        );
        let app_bytes = Family::<AppBytesLabels, Counter>::default();
        registry.register(
            "app_bytes",
            "Bytes of finished TCP flows, by app id and direction",
            app_bytes.clone(),
        );
        let logpush = crate::telemetry::logpush::LogpushStats::default();
        registry.register(
            "logpush_records_sent",
            "Network session log records accepted by the logpush endpoint",
            logpush.sent.clone(),
        );
        registry.register(
            "logpush_records_dropped",
            "Network session log records not delivered by logpush (queue full, batch given up, shutdown)",
            logpush.dropped.clone(),
        );
        registry.register(
            "logpush_failed_requests",
            "Logpush requests that failed (each retry counts)",
            logpush.failed_requests.clone(),
        );
        let http_requests = Family::<StatusLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests on the public listeners, by status class",
            http_requests.clone(),
        );
        let http_requests_by_path = Family::<PathLabels, Counter>::default();
        registry.register(
            "http_requests_by_path",
            "HTTP requests on the public listeners, by the path that served them (lean or hyper)",
            http_requests_by_path.clone(),
        );
        let client_sessions = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "client_sessions",
            "Zero-trust client sessions, by close reason",
            client_sessions.clone(),
        );
        let revoked = Family::<RevokedLabels, Counter>::default();
        registry.register(
            "revoked_connections",
            "Connections of connectors and clients ended because their access was revoked",
            revoked.clone(),
        );
        let listener_full = Family::<ListenerLabels, Counter>::default();
        registry.register(
            "listener_full",
            "Times a listener had no descriptor permit left and waited before accepting (the budget is the open-file limit less a reserve)",
            listener_full.clone(),
        );
        let app_refused = Family::<AppRefusedLabels, Counter>::default();
        registry.register(
            "app_refused",
            "App connections and UDP sessions refused by a limit (max_connections, max_connections_per_ip, new-session rate)",
            app_refused.clone(),
        );
        let forwarded_out = Counter::default();
        registry.register(
            "forwarded_flows_out",
            "Flows carried to another edge node that holds the tunnel's connection",
            forwarded_out.clone(),
        );
        let forwarded_in = Counter::default();
        registry.register(
            "forwarded_flows_in",
            "Flows another edge node carried here into a tunnel",
            forwarded_in.clone(),
        );
        let node_rtt = Family::<NodeLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "node_rtt_seconds",
            "Measured round trip to each other live edge node of the cluster",
            node_rtt.clone(),
        );
        let unacknowledged_flows = Counter::default();
        registry.register(
            "tunnel_unacknowledged_flows",
            "Flows a tunnel connection did not acknowledge in time; each was tried on another connection",
            unacknowledged_flows.clone(),
        );
        let app_idle_closed = Counter::default();
        registry.register(
            "app_idle_closed",
            "App flows (TCP connections, UDP sessions) closed after the app's idle_timeout",
            app_idle_closed.clone(),
        );
        Self {
            http_requests,
            http_requests_by_path,
            client_sessions,
            revoked,
            app_refused,
            listener_full,
            app_idle_closed,
            unacknowledged_flows,
            forwarded_out,
            forwarded_in,
            node_rtt,
            session_log_dropped,
            logpush,
            tunnel_connections_by_tunnel,
            key_exchanges,
            egress_decisions,
            session_log_queue,
            app_active,
            app_bytes,
            tls_handshakes,
            registry,
            flows,
            flow_errors,
            access,
            tls_failures,
            active_flows,
            udp_sessions,
            tunnel_connections,
            store_up,
        }
    }

    /// The Prometheus/OpenMetrics text exposition.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl FlowLabels {
    /// The labels of an app's flows.
    pub(crate) fn of(spec: &burrow_config::app::AppSpec) -> Self {
        use burrow_config::app::Origin;
        Self {
            protocol: L4::of(spec.l4),
            origin: match spec.origin {
                Origin::Direct(_) => OriginKind::direct,
                Origin::Dns { .. } => OriginKind::dns,
                Origin::Tunnel { .. } => OriginKind::tunnel,
            },
        }
    }
}

impl L4 {
    pub(crate) fn of(l4: burrow_config::app::L4) -> Self {
        match l4 {
            burrow_config::app::L4::Tcp => Self::tcp,
            burrow_config::app::L4::Udp => Self::udp,
        }
    }
}

impl Metrics {
    /// Counts an access-rule verdict.
    pub(crate) fn access_decision(&self, l4: burrow_config::app::L4, allowed: bool) {
        self.access
            .get_or_create(&AccessLabels {
                protocol: L4::of(l4),
                decision: if allowed {
                    Decision::allow
                } else {
                    Decision::block
                },
            })
            .inc();
    }

    /// Counts a failed TLS handshake.
    pub(crate) fn tls_failure(&self, side: Side) {
        self.tls_failures.get_or_create(&TlsLabels { side }).inc();
    }

    /// Counts a completed TLS handshake.
    pub(crate) fn tls_handshake(&self, side: Side) {
        self.tls_handshakes.get_or_create(&TlsLabels { side }).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_appear_with_their_labels() {
        let m = Metrics::new();
        m.access
            .get_or_create(&AccessLabels {
                protocol: L4::tcp,
                decision: Decision::block,
            })
            .inc();
        m.tunnel_connections.set(3);
        let text = m.encode();
        assert!(
            text.contains(
                r#"burrow_edge_access_decisions_total{protocol="tcp",decision="block"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("burrow_edge_tunnel_connections 3"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
