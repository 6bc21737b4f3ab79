//! `burrow quick`: an edge and a connector in one process, on loopback,
//! with a temporary SQLite file and an in-memory CA.

use crate::cli::QuickArgs;
use crate::config_err;
use burrow_config::connector::{Ingress, ProtocolChoice, Service};
use burrow_connector::{ConnectorConfig, IpVersion};
use burrow_edge::{Edge, EdgeConfig};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

pub(crate) async fn run(a: QuickArgs) -> anyhow::Result<()> {
    let service = match (&a.url, a.hello_world) {
        (_, true) => Service::HelloWorld,
        (Some(u), false) => Service::parse(u).map_err(|r| config_err(format!("--url: {r}")))?,
        (None, false) => return Err(config_err("give --url SERVICE or --hello-world")),
    };
    if matches!(service, Service::Udp { .. }) {
        return Err(config_err(
            "--url: burrow quick publishes a TCP port; for UDP run an edge and use \
             `burrow app create --protocol udp/PORT --tunnel NAME`",
        ));
    }
    let protocol =
        ProtocolChoice::parse(&a.protocol).map_err(|r| config_err(format!("--protocol: {r}")))?;
    let is_http = match &service {
        Service::HelloWorld | Service::HttpStatus(_) => true,
        Service::Tcp { scheme, .. } => scheme == "http" || scheme == "https",
        Service::Unix { .. } | Service::Udp { .. } | Service::SocksProxy | Service::Bastion => {
            false
        }
    };
    let scheme = match &service {
        Service::Tcp { scheme, .. } if scheme == "https" => "https",
        _ if is_http => "http",
        _ => "tcp",
    };
    let dir = tempfile::Builder::new().prefix("burrow-quick-").tempdir()?;
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let edge = Edge::bind(EdgeConfig {
        colo: "QUICK".into(),
        listen: SocketAddr::new(loopback, 0),
        admin: SocketAddr::new(loopback, 0),
        store: burrow_store::Location::Sqlite(dir.path().join("quick.db")),
        pki_dir: None,
        edge_domain: burrow_transport::pki::DEFAULT_EDGE_DOMAIN.into(),
        app_pools: burrow_edge::AppPools::single(loopback),
        grace_period: Duration::from_secs(5),
        disable_quic: false,
        geoip_country: None,
        geoip_asn: None,
        cert_dir: None,
        origin_ca: None,
        dns_server: None,
        http: None,
        https: None,
        session_log: None,
        logpush: None,
        peers: Default::default(),
        egress_allow: Vec::new(),
        cluster_secret: None,
        wire_version: burrow_proto::v2::VERSION_2,
        post_quantum: burrow_transport::kx::PostQuantum::Prefer,
        dns: None,
    })
    .await?;
    let shutdown = crate::shutdown_on_signals();
    tokio::spawn(async {
        // SIGHUP (a terminal closing, `systemctl reload`) must not end a
        // quick tunnel: there is nothing to reload, so say so.
        if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP received; quick has nothing to reload");
            }
        }
    });
    let (credentials, public) = edge.quick_setup("quick", a.port, &shutdown).await?;
    let info = edge.info().clone();
    let stats = edge.stats();
    let edge_task = tokio::spawn(edge.run(shutdown.clone()));
    let cfg = ConnectorConfig {
        label: None,
        post_quantum: false,
        credentials,
        ingress: Ingress::single(service),
        edges: vec![info.tunnel_addr.to_string()],
        edge_domain: info.edge_domain.clone(),
        edge_ca_pem: info.ca_pem.clone(),
        protocol,
        ha_connections: 1,
        grace_period: Duration::from_secs(5),
        quic_fallback_after: Duration::from_secs(4),
        quic_retry_every: Duration::from_secs(300),
        max_refusals: Some(3),
        origin_connect_timeout: Duration::from_secs(10),
        edge_ip_version: IpVersion::Auto,
        dns_server: None,
        warp_routing: Default::default(),
        metrics: burrow_connector::MetricsAddr::Off,
    };
    let connector_task = tokio::spawn(burrow_connector::run(cfg, shutdown.clone()));
    // Print the address once the tunnel carries traffic.
    let ready = async {
        while stats.tunnel_connections() == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        _ = tokio::time::timeout(Duration::from_secs(15), ready) => {}
        _ = shutdown.cancelled() => {}
    }
    if stats.tunnel_connections() == 0 && !shutdown.is_cancelled() {
        tracing::warn!("the embedded connector has not registered yet; see the log above");
    }
    let url = if scheme == "tcp" {
        format!("tcp://{public}")
    } else {
        format!("{scheme}://{public}/")
    };
    println!("Your quick tunnel is ready: {url}");
    println!("(edge and connector run in this process; press Ctrl-C to stop)");
    let res = connector_task.await;
    shutdown.cancel();
    let _ = edge_task.await;
    drop(dir);
    match res {
        Ok(r) => r.map_err(Into::into),
        Err(e) => Err(anyhow::anyhow!("connector task failed: {e}")),
    }
}
