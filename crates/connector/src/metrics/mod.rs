//! The connector's Prometheus metrics, `/ready` and `/healthcheck`
//! (`burrow tunnel run --metrics ADDR`).
//!
//! Where a cloudflared metric means the same thing, it keeps cloudflared's
//! name so existing dashboards work: `cloudflared_tunnel_*`,
//! `cloudflared_tcp_*`, `cloudflared_udp_*`, `cloudflared_proxy_*`,
//! `build_info`. cloudflared's counters have no `_total` suffix; they are
//! exposed here with their exact names as `unknown`-typed series (OpenMetrics
//! would otherwise rename them), which `rate()` handles the same. What
//! cloudflared lacks is `burrow_connector_*`. Labels are bounded: rule
//! index, direction, reason, protocol, connection index, status code —
//! never client addresses.

mod ports;
mod process;
mod quic;
pub(crate) mod server;

use process::ProcessGauges;
use quic::QuicGauges;

use ports::ports_in_use;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A counter exposed under its exact name (no `_total`), as cloudflared's.
#[derive(Debug, Default, Clone)]
pub(crate) struct CompatCounter(Arc<AtomicU64>);

impl CompatCounter {
    pub(crate) fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Mirrors a count kept elsewhere (quinn's statistics).
    pub(crate) fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
}

impl TypedMetric for CompatCounter {
    const TYPE: MetricType = MetricType::Unknown;
}

impl EncodeMetric for CompatCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let v = i64::try_from(self.0.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
        encoder.encode_gauge(&v)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Unknown
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CodeLabels {
    pub(crate) status_code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct LocationLabels {
    pub(crate) connection_id: String,
    pub(crate) edge_location: String,
}

/// `error` and cloudflared's `rpcName` (`register_connection`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
#[allow(non_snake_case)]
pub(crate) struct ErrorLabels {
    pub(crate) error: String,
    pub(crate) rpcName: &'static str,
}

/// cloudflared's `rpcName` label alone.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
#[allow(non_snake_case)]
pub(crate) struct RpcLabels {
    pub(crate) rpcName: &'static str,
}

/// The `rpcName` of a tunnel registration, as cloudflared labels it.
pub(crate) const REGISTER_CONNECTION: &str = "register_connection";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ConnIdLabels {
    pub(crate) connection_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TunnelIdLabels {
    pub(crate) tunnel_id: String,
    pub(crate) ha_conn_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ConnIndexLabels {
    pub(crate) conn_index: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FrameLabels {
    pub(crate) conn_index: String,
    pub(crate) frame_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct LostLabels {
    pub(crate) conn_index: String,
    pub(crate) reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct BytesLabels {
    /// Ingress rule index, or `private` for private-network flows.
    pub(crate) rule: String,
    /// `to_origin` or `from_origin`.
    pub(crate) direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ProtocolLabels {
    pub(crate) conn_index: String,
    pub(crate) protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabels {
    pub(crate) reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    goversion: &'static str,
    r#type: &'static str,
    revision: &'static str,
    version: &'static str,
}

/// Lets one warning through per `every_ms`, counting the ones held back.
#[derive(Debug, Default)]
pub(crate) struct LogLimiter {
    last_ms: AtomicU64,
    held: AtomicU64,
}

impl LogLimiter {
    /// `Some(held back since the last one)` when a warning may be logged
    /// at `now_ms` (milliseconds since any fixed start, never 0).
    pub(crate) fn allow(&self, now_ms: u64, every_ms: u64) -> Option<u64> {
        let last = self.last_ms.load(Ordering::Relaxed);
        if last != 0 && now_ms.saturating_sub(last) < every_ms {
            self.held.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if self
            .last_ms
            .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            self.held.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.held.swap(0, Ordering::Relaxed))
    }
}

/// Milliseconds since the first call (at least 1).
fn now_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(std::time::Instant::now);
    u64::try_from(start.elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// Every series the connector exports.
pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) ha_connections: Gauge,
    pub(crate) total_requests: CompatCounter,
    pub(crate) concurrent_requests: Gauge,
    pub(crate) request_errors: CompatCounter,
    pub(crate) response_by_code: Family<CodeLabels, CompatCounter>,
    pub(crate) server_locations: Family<LocationLabels, Gauge>,
    pub(crate) register_success: Family<RpcLabels, CompatCounter>,
    pub(crate) register_fail: Family<ErrorLabels, CompatCounter>,
    /// Concurrent requests per tunnel connection (not exported; the
    /// maximum is).
    concurrent_by_conn: Family<ConnIdLabels, Gauge>,
    pub(crate) max_concurrent: Family<ConnIdLabels, Gauge>,
    pub(crate) tunnel_ids: Family<TunnelIdLabels, Gauge>,
    /// Times the ingress rules were (re)loaded: cloudflared's config version.
    pub(crate) config_version: Gauge,
    /// QUIC tunnel connections, read at scrape time.
    quic: QuicGauges,
    /// This process's figures, read at scrape time.
    process: ProcessGauges,
    pub(crate) tcp_active: Gauge,
    pub(crate) tcp_total: CompatCounter,
    pub(crate) udp_active: Gauge,
    pub(crate) udp_total: CompatCounter,
    /// cloudflared's UDP flow families, per tunnel connection.
    pub(crate) udp_flows_active: Family<ConnIndexLabels, Gauge>,
    pub(crate) udp_flows_total: Family<ConnIndexLabels, CompatCounter>,
    pub(crate) udp_flows_failed: Family<ConnIndexLabels, CompatCounter>,
    pub(crate) connect_latency: Histogram,
    pub(crate) connect_errors: CompatCounter,
    pub(crate) bytes: Family<BytesLabels, Counter>,
    pub(crate) protocol: Family<ProtocolLabels, Gauge>,
    pub(crate) fallbacks: Counter,
    pub(crate) reconnects: Counter,
    pub(crate) dial_failures: Family<ReasonLabels, Counter>,
    pub(crate) ephemeral_ports: Gauge,
    pub(crate) ephemeral_ports_in_use: Gauge,
    pub(crate) open_files_limit: Gauge,
    /// One warning per 10 s when origin dials run out of ports or files.
    exhaustion_log: LogLimiter,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut r = Registry::default();
        let m = Self {
            ha_connections: Gauge::default(),
            total_requests: CompatCounter::default(),
            concurrent_requests: Gauge::default(),
            request_errors: CompatCounter::default(),
            response_by_code: Family::default(),
            server_locations: Family::default(),
            register_success: Family::default(),
            register_fail: Family::default(),
            concurrent_by_conn: Family::default(),
            max_concurrent: Family::default(),
            tunnel_ids: Family::default(),
            config_version: Gauge::default(),
            quic: QuicGauges::default(),
            process: ProcessGauges::default(),
            tcp_active: Gauge::default(),
            tcp_total: CompatCounter::default(),
            udp_active: Gauge::default(),
            udp_total: CompatCounter::default(),
            udp_flows_active: Family::default(),
            udp_flows_total: Family::default(),
            udp_flows_failed: Family::default(),
            connect_latency: Histogram::new([
                1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0,
            ]),
            connect_errors: CompatCounter::default(),
            bytes: Family::default(),
            protocol: Family::default(),
            fallbacks: Counter::default(),
            reconnects: Counter::default(),
            dial_failures: Family::default(),
            ephemeral_ports: Gauge::default(),
            ephemeral_ports_in_use: Gauge::default(),
            open_files_limit: Gauge::default(),
            exhaustion_log: LogLimiter::default(),
            registry: Registry::default(),
        };
        let c = |s: &str| s.to_owned();
        r.register(
            c("cloudflared_tunnel_ha_connections"),
            "Number of active HA connections",
            m.ha_connections.clone(),
        );
        r.register(
            c("cloudflared_tunnel_total_requests"),
            "Amount of requests proxied through all the tunnels",
            m.total_requests.clone(),
        );
        r.register(
            c("cloudflared_tunnel_concurrent_requests_per_tunnel"),
            "Concurrent requests proxied through each tunnel",
            m.concurrent_requests.clone(),
        );
        r.register(
            c("cloudflared_tunnel_request_errors"),
            "Amount of requests errors",
            m.request_errors.clone(),
        );
        r.register(
            c("cloudflared_tunnel_response_by_code"),
            "Count of responses by HTTP status code",
            m.response_by_code.clone(),
        );
        r.register(
            c("cloudflared_tunnel_server_locations"),
            "Where each tunnel connection is registered (edge colo)",
            m.server_locations.clone(),
        );
        r.register(
            c("cloudflared_tunnel_tunnel_register_success"),
            "Count of successful tunnel registrations",
            m.register_success.clone(),
        );
        r.register(
            c("cloudflared_tunnel_tunnel_register_fail"),
            "Count of failed tunnel registrations, by error",
            m.register_fail.clone(),
        );
        r.register(
            c("cloudflared_tunnel_max_concurrent_requests_per_tunnel"),
            "Largest number of concurrent requests seen on each tunnel connection",
            m.max_concurrent.clone(),
        );
        r.register(
            c("tunnel_ids"),
            "The tunnel (and its HA connection index) each connection of this connector serves",
            m.tunnel_ids.clone(),
        );
        r.register(
            c("cloudflared_orchestration_config_version"),
            "Times the ingress rules were loaded (1 at start, +1 per reload)",
            m.config_version.clone(),
        );
        m.quic.register(&mut r);
        m.process.register(&mut r);
        r.register(
            c("cloudflared_tcp_active_sessions"),
            "Concurrent TCP sessions being proxied",
            m.tcp_active.clone(),
        );
        r.register(
            c("cloudflared_tcp_total_sessions"),
            "Total TCP sessions proxied",
            m.tcp_total.clone(),
        );
        r.register(
            c("cloudflared_udp_active_sessions"),
            "Concurrent UDP sessions being proxied",
            m.udp_active.clone(),
        );
        r.register(
            c("cloudflared_udp_total_sessions"),
            "Total UDP sessions proxied",
            m.udp_total.clone(),
        );
        r.register(
            c("cloudflared_udp_active_flows"),
            "Concurrent count of UDP flows that are being proxied to any origin",
            m.udp_flows_active.clone(),
        );
        r.register(
            c("cloudflared_udp_total_flows"),
            "Total count of UDP flows that have been proxied to any origin",
            m.udp_flows_total.clone(),
        );
        r.register(
            c("cloudflared_udp_failed_flows"),
            "Total count of flows that errored and closed",
            m.udp_flows_failed.clone(),
        );
        r.register(
            c("cloudflared_proxy_connect_latency"),
            "Time to reach an origin, in milliseconds",
            m.connect_latency.clone(),
        );
        r.register(
            c("cloudflared_proxy_connect_streams_errors"),
            "Flows that could not reach their origin",
            m.connect_errors.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                // cloudflared's labels: the toolchain (Rust, not Go here)
                // and the source revision when the build was told it.
                goversion: "rust",
                r#type: "burrow",
                revision: option_env!("BURROW_REVISION").unwrap_or("unknown"),
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        r.register(c("build_info"), "Build and version information", build);
        r.register(
            c("burrow_connector_bytes"),
            "Bytes proxied, by ingress rule index and direction",
            m.bytes.clone(),
        );
        r.register(
            c("burrow_connector_connection_protocol"),
            "1 for the transport each tunnel connection uses now",
            m.protocol.clone(),
        );
        r.register(
            c("burrow_connector_protocol_fallbacks"),
            "Times a connection fell back from QUIC to HTTP/2",
            m.fallbacks.clone(),
        );
        r.register(
            c("burrow_connector_reconnects"),
            "Tunnel connection attempts after the first",
            m.reconnects.clone(),
        );
        r.register(
            c("burrow_connector_origin_dial_failures"),
            "Origin dials that failed, by reason (port_exhaustion, too_many_open_files, refused, timeout, unreachable)",
            m.dial_failures.clone(),
        );
        r.register(
            c("burrow_connector_ephemeral_ports"),
            "Size of the local ephemeral port range (net.ipv4.ip_local_port_range)",
            m.ephemeral_ports.clone(),
        );
        r.register(
            c("burrow_connector_ephemeral_ports_in_use"),
            "Sockets on this host (network namespace) holding a port of the ephemeral range, read at scrape time",
            m.ephemeral_ports_in_use.clone(),
        );
        r.register(
            c("burrow_connector_open_files_limit"),
            "The process's open-file limit (soft)",
            m.open_files_limit.clone(),
        );
        Self { registry: r, ..m }
    }

    /// Prometheus text exposition (the ports in use, the QUIC connections'
    /// statistics and the process's figures read now).
    pub(crate) fn render(&self) -> String {
        if let Some(n) = ports_in_use() {
            self.ephemeral_ports_in_use
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        self.quic.refresh();
        self.process.refresh();
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Families exposed with cloudflared's exact names whose type is
    /// `counter` in the classic text format (OpenMetrics has them as
    /// `unknown`: it wants counters to end in `_total`).
    pub(crate) const CLASSIC_COUNTERS: &'static [&'static str] = &[
        "cloudflared_tunnel_total_requests",
        "cloudflared_tunnel_request_errors",
        "cloudflared_tunnel_response_by_code",
        "cloudflared_tunnel_tunnel_register_success",
        "cloudflared_tunnel_tunnel_register_fail",
        "cloudflared_tcp_total_sessions",
        "cloudflared_udp_total_sessions",
        "cloudflared_udp_total_flows",
        "cloudflared_udp_failed_flows",
        "cloudflared_proxy_connect_streams_errors",
        "quic_client_total_connections",
        "quic_client_closed_connections",
        "quic_client_sent_frames",
        "quic_client_received_frames",
        "quic_client_sent_bytes",
        "quic_client_receive_bytes",
        "quic_client_lost_packets",
    ];

    /// A request started on connection `id` (cloudflared's concurrent and
    /// per-connection maximum).
    pub(crate) fn request_started(&self, id: uuid::Uuid) {
        self.total_requests.inc();
        self.concurrent_requests.inc();
        let labels = ConnIdLabels {
            connection_id: id.to_string(),
        };
        let now = self.concurrent_by_conn.get_or_create(&labels).inc() + 1;
        let max = self.max_concurrent.get_or_create(&labels);
        if now > max.get() {
            max.set(now);
        }
    }

    /// A request of connection `id` ended.
    pub(crate) fn request_ended(&self, id: uuid::Uuid) {
        self.concurrent_requests.dec();
        self.concurrent_by_conn
            .get_or_create(&ConnIdLabels {
                connection_id: id.to_string(),
            })
            .dec();
    }

    /// A tunnel connection registered: its QUIC statistics are read at
    /// each scrape while it lives.
    pub(crate) fn connection_up(
        &self,
        index: u8,
        tunnel: uuid::Uuid,
        quic: Option<quinn::Connection>,
    ) {
        self.register_success
            .get_or_create(&RpcLabels {
                rpcName: REGISTER_CONNECTION,
            })
            .inc();
        self.tunnel_ids
            .get_or_create(&TunnelIdLabels {
                tunnel_id: tunnel.to_string(),
                ha_conn_id: index.to_string(),
            })
            .set(1);
        // The UDP flow families show for every connection from the start,
        // as cloudflared's do.
        let conn = ConnIndexLabels {
            conn_index: index.to_string(),
        };
        let _ = self.udp_flows_active.get_or_create(&conn);
        let _ = self.udp_flows_total.get_or_create(&conn);
        let _ = self.udp_flows_failed.get_or_create(&conn);
        if let Some(q) = quic {
            self.quic.up(index, q);
        }
    }

    /// The tunnel connection of `index` ended.
    pub(crate) fn connection_down(&self, index: u8, id: uuid::Uuid) {
        self.quic.down(index);
        let labels = ConnIdLabels {
            connection_id: id.to_string(),
        };
        self.concurrent_by_conn.remove(&labels);
        self.max_concurrent.remove(&labels);
    }

    /// Counts an origin dial failure under its reason.
    pub(crate) fn dial_failed(&self, e: &std::io::Error) {
        let failure = burrow_transport::dial::classify(e);
        self.dial_failures
            .get_or_create(&ReasonLabels {
                reason: failure.label(),
            })
            .inc();
        self.connect_errors.inc();
        let Some(fix) = failure.hint() else {
            return;
        };
        if let Some(held) = self.exhaustion_log.allow(now_ms(), 10_000) {
            tracing::warn!(
                reason = failure.label(),
                similar_since_last_warning = held,
                "origin dials are failing: {fix}"
            );
        }
    }

    /// Adds a finished flow's bytes.
    pub(crate) fn flow_bytes(&self, rule: Option<usize>, to_origin: u64, from_origin: u64) {
        let rule = rule.map_or_else(|| "private".to_owned(), |i| i.to_string());
        for (direction, n) in [("to_origin", to_origin), ("from_origin", from_origin)] {
            self.bytes
                .get_or_create(&BytesLabels {
                    rule: rule.clone(),
                    direction,
                })
                .inc_by(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ports::count_in_range;
    use super::*;

    #[test]
    fn ports_in_use_are_counted_from_proc_net() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue\n                     0: 0100007F:9C40 0100007F:1F90 01 00000000:00000000\n                     1: 0100007F:1F90 00000000:0000 0A 00000000:00000000\n                     2: 00000000000000000000000001000000:EA60 00000000000000000000000000000000:0000 07 0\n";
        // 0x9C40 = 40000 and 0xEA60 = 60000 are in range; 0x1F90 = 8080 is not.
        assert_eq!(count_in_range(table, 32768, 60999), 2);
        assert_eq!(count_in_range(table, 40001, 50000), 0);
    }

    #[test]
    fn the_log_limiter_lets_one_through_per_period_and_counts_the_rest() {
        let l = LogLimiter::default();
        assert_eq!(l.allow(5, 10_000), Some(0));
        assert_eq!(l.allow(6, 10_000), None);
        assert_eq!(l.allow(9_000, 10_000), None);
        assert_eq!(l.allow(10_005, 10_000), Some(2));
        assert_eq!(l.allow(10_006, 10_000), None);
    }

    #[test]
    fn cloudflared_names_are_kept_exactly() {
        let m = Metrics::new();
        m.total_requests.inc();
        m.response_by_code
            .get_or_create(&CodeLabels { status_code: 200 })
            .inc();
        m.flow_bytes(Some(2), 10, 20);
        m.dial_failed(&std::io::Error::from_raw_os_error(99));
        let text = m.render();
        assert!(
            text.contains("\ncloudflared_tunnel_total_requests 1\n"),
            "{text}"
        );
        assert!(
            text.contains("cloudflared_tunnel_response_by_code{status_code=\"200\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("burrow_connector_bytes_total{rule=\"2\",direction=\"from_origin\"} 20"),
            "{text}"
        );
        assert!(
            text.contains(
                "burrow_connector_origin_dial_failures_total{reason=\"port_exhaustion\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("build_info{goversion=\"rust\",type=\"burrow\",revision="),
            "{text}"
        );
        // The classic format types cloudflared's counters as counters.
        let classic =
            burrow_transport::exposition::to_prometheus_text_with(&text, Metrics::CLASSIC_COUNTERS);
        assert!(
            classic.contains("# TYPE cloudflared_tunnel_total_requests counter\n"),
            "{classic}"
        );
        assert!(
            classic.contains("# TYPE process_cpu_seconds_total counter\n"),
            "{classic}"
        );
        assert!(classic.contains("process_open_fds "), "{classic}");
    }
}
