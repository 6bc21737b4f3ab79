//! `burrow edge`: flags and `edge.yaml` resolved into an `EdgeConfig`, then
//! the edge runs until SIGINT/SIGTERM.

use crate::config_err;
use burrow_config::edge::{parse_edge_yaml, validate_colo, EdgeSettings};
use burrow_edge::{AppPools, Edge, EdgeConfig};
use burrow_store::Location;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn parse_addr(field: &str, s: &str) -> anyhow::Result<SocketAddr> {
    s.parse().map_err(|_| {
        config_err(format!(
            "{field}: '{s}' is not an IP:port address (e.g. 127.0.0.1:7844)"
        ))
    })
}

/// Directory beside the state file for certificates and the token:
/// `dir/edge.db` → `dir/edge.d`.
pub(crate) fn pki_dir_for(state: &Path) -> PathBuf {
    let stem = state
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "burrow-edge".into());
    state.with_file_name(format!("{stem}.d"))
}

/// The flags over the `--config` file's settings (flags win, lists add).
pub(crate) async fn settings(flags: &EdgeSettings) -> anyhow::Result<EdgeSettings> {
    let file = match &flags.config {
        Some(p) => {
            let text = tokio::fs::read_to_string(p)
                .await
                .map_err(|e| config_err(format!("--config {}: {e}", p.display())))?;
            parse_edge_yaml(&text).map_err(|e| config_err(format!("{}: {e}", p.display())))?
        }
        None => EdgeSettings::default(),
    };
    Ok(flags.over(&file))
}

/// Checks merged settings and turns them into the edge's typed config,
/// applying the defaults. Errors name the setting (flag and key alike).
pub(crate) fn resolve(s: EdgeSettings) -> anyhow::Result<EdgeConfig> {
    let colo = s.colo.unwrap_or_else(|| "LOCAL".into());
    validate_colo(&colo).map_err(|e| config_err(e.to_string()))?;
    let listen = parse_addr("listen", s.listen.as_deref().unwrap_or("0.0.0.0:7844"))?;
    let admin = parse_addr("admin", s.admin.as_deref().unwrap_or("127.0.0.1:7845"))?;
    if !admin.ip().is_loopback() {
        tracing::warn!(%admin, "the admin API listens beyond loopback; protect it with a firewall");
    }
    let store = match (s.store, s.state) {
        (Some(_), Some(_)) => {
            return Err(config_err(
                "store: give either store (a URL) or state (a SQLite path), not both",
            ))
        }
        (Some(url), None) => {
            Location::parse(&url).map_err(|e| config_err(format!("store: {e}")))?
        }
        (None, Some(path)) => Location::Sqlite(path),
        (None, None) => Location::Sqlite("burrow-edge.db".into()),
    };
    let pki_dir = match (&s.data_dir, &store) {
        (Some(d), _) => d.clone(),
        (None, Location::Sqlite(path)) => pki_dir_for(path),
        (None, Location::Postgres(_)) => PathBuf::from("burrow-edge.d"),
    };
    let edge_domain = s
        .edge_domain
        .unwrap_or_else(|| burrow_transport::pki::DEFAULT_EDGE_DOMAIN.into());
    if burrow_policy::host::HostPattern::parse(&edge_domain)
        .map(|p| !matches!(p, burrow_policy::host::HostPattern::Exact(_)))
        .unwrap_or(true)
    {
        return Err(config_err(format!(
            "edge-domain: '{edge_domain}' is not a DNS name"
        )));
    }
    let app_pools = app_pools(s.app_address, s.app_ipv4_pool, s.app_ipv6_pool)?;
    let logpush = match s.logpush_url.as_deref() {
        Some(url) => Some(
            burrow_edge::LogpushTarget::new(url, s.logpush_ca.as_deref()).map_err(config_err)?,
        ),
        None => None,
    };
    let cluster_secret =
        match (&s.cluster_secret_file, &store) {
            (Some(f), _) => Some(shared_secret("cluster-secret-file", f)?),
            (None, Location::Postgres(_)) => return Err(config_err(
                "cluster-secret-file: a PostgreSQL store is shared by edge nodes, which need the \
                 cluster's secret (the same file on every node, at least 32 characters, e.g. \
                 `openssl rand -hex 32 > cluster.secret`)",
            )),
            (None, Location::Sqlite(_)) => None,
        };
    let mut peers = peer_config(&s.peer, s.peer_secret_file.as_deref(), s.peer_ca.as_deref())?;
    if peers.secret.is_none() {
        // Nodes of one cluster authenticate each other with its secret.
        peers.secret = cluster_secret
            .as_ref()
            .map(|s| s.clone().into_bytes().into());
    }
    peers.sites = s
        .colo_location
        .iter()
        .map(|l| colo_location(l))
        .collect::<anyhow::Result<_>>()?;
    let egress_allow = burrow_config::edge::parse_egress_allow("egress-allow", &s.egress_allow)
        .map_err(|e| config_err(e.to_string()))?;
    if !egress_allow.is_empty() {
        tracing::warn!(ranges = ?egress_allow, "egress-allow: zero-trust clients may reach these ranges through this edge, including services of this host on them");
    }
    let grace_period = match &s.grace_period {
        Some(g) => burrow_config::duration::parse(g)
            .map_err(|r| config_err(format!("grace-period: {r}")))?,
        None => Duration::from_secs(30),
    };
    let addr = |field: &str, v: Option<String>| v.map(|v| parse_addr(field, &v)).transpose();
    Ok(EdgeConfig {
        colo,
        listen,
        admin,
        pki_dir: Some(pki_dir),
        store,
        edge_domain,
        app_pools,
        grace_period,
        disable_quic: s.disable_quic,
        geoip_country: s.geoip_country,
        geoip_asn: s.geoip_asn,
        cert_dir: s.cert_dir,
        origin_ca: s.origin_ca,
        dns_server: addr("dns-server", s.dns_server)?,
        http: addr("http", s.http)?,
        dns: addr("dns", s.dns)?,
        https: addr("https", s.https)?,
        session_log: s.session_log,
        logpush,
        peers,
        egress_allow,
        cluster_secret: cluster_secret.map(burrow_config::Secret::new),
        post_quantum: match s.post_quantum.as_deref() {
            None => burrow_transport::kx::PostQuantum::Prefer,
            Some(v) => burrow_transport::kx::PostQuantum::parse(v)
                .map_err(|r| crate::config_err(format!("post-quantum: {r}")))?,
        },
        wire_version: match s.wire_version {
            None | Some(2) => 2,
            Some(1) => 1,
            Some(v) => {
                return Err(crate::config_err(format!(
                    "wire-version: {v} is not a tunnel protocol version (this build speaks 1 and 2)"
                )))
            }
        },
    })
}

/// `--colo-location COLO=LAT,LON[,CC]`.
fn colo_location(s: &str) -> anyhow::Result<burrow_policy::exits::Site> {
    let bad = |why: &str| {
        config_err(format!(
            "--colo-location '{s}': {why} (e.g. NRT=35.76,140.38,JP)"
        ))
    };
    let (colo, rest) = s
        .split_once('=')
        .ok_or_else(|| bad("not COLO=LAT,LON[,CC]"))?;
    burrow_config::edge::validate_colo(colo).map_err(|e| bad(&e.reason))?;
    let parts: Vec<&str> = rest.split(',').map(str::trim).collect();
    let num = |i: usize, lim: f64| {
        parts
            .get(i)
            .and_then(|p| p.parse::<f64>().ok())
            .filter(|v| v.abs() <= lim)
    };
    let (Some(lat), Some(lon)) = (num(0, 90.0), num(1, 180.0)) else {
        return Err(bad("latitude must be -90..90 and longitude -180..180"));
    };
    let country = match parts.get(2) {
        Some(cc) if cc.len() == 2 && cc.bytes().all(|b| b.is_ascii_alphabetic()) => {
            Some(cc.to_ascii_uppercase())
        }
        Some(_) => return Err(bad("the country must be a two-letter code")),
        None => None,
    };
    if parts.len() > 3 {
        return Err(bad("too many fields"));
    }
    Ok(burrow_policy::exits::Site {
        colo: colo.to_owned(),
        lat,
        lon,
        country,
    })
}

/// A secret shared by edges, read from `file` (setting `field`): at least
/// 32 characters, surrounding whitespace dropped.
fn shared_secret(field: &str, file: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| config_err(format!("{field}: {}: {e}", file.display())))?;
    let secret = text.trim();
    if secret.len() < 32 {
        return Err(config_err(format!(
            "{field}: {}: the secret must be at least 32 characters (e.g. openssl rand -hex 32)",
            file.display()
        )));
    }
    Ok(secret.to_owned())
}

/// `--peer COLO=HOST:PORT` (repeated), `--peer-secret-file`, `--peer-ca`.
fn peer_config(
    peers: &[String],
    secret_file: Option<&std::path::Path>,
    ca: Option<&std::path::Path>,
) -> anyhow::Result<burrow_edge::PeerConfig> {
    let mut cfg = burrow_edge::PeerConfig::default();
    for p in peers {
        let (colo, addr) = p
            .split_once('=')
            .ok_or_else(|| config_err(format!("--peer: '{p}' is not COLO=HOST:PORT")))?;
        burrow_config::edge::validate_colo(colo)
            .map_err(|e| config_err(format!("--peer: {}", e.reason)))?;
        let addr = std::net::ToSocketAddrs::to_socket_addrs(addr)
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| config_err(format!("--peer: '{addr}' is not a reachable HOST:PORT")))?;
        cfg.peers.insert(colo.to_owned(), addr);
    }
    if let Some(f) = secret_file {
        cfg.secret = Some(shared_secret("peer-secret-file", f)?.into_bytes().into());
    } else if !cfg.peers.is_empty() {
        return Err(config_err(
            "--peer needs --peer-secret-file (the secret shared by the peer edges)",
        ));
    }
    if let Some(f) = ca {
        cfg.ca_pem = Some(
            std::fs::read_to_string(f)
                .map_err(|e| config_err(format!("--peer-ca {}: {e}", f.display())))?,
        );
    }
    Ok(cfg)
}

/// The app address pools from `--app-address` or the two pool flags.
fn app_pools(
    single: Option<String>,
    v4: Option<String>,
    v6: Option<String>,
) -> anyhow::Result<AppPools> {
    if let Some(ip) = single {
        if v4.is_some() || v6.is_some() {
            return Err(config_err(
                "app-address: give either app-address or the app-ipv4-pool / app-ipv6-pool lists",
            ));
        }
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| config_err(format!("app-address: '{ip}' is not an IP address")))?;
        return Ok(AppPools::single(ip));
    }
    let mut pools = AppPools::default();
    if let Some(list) = v4 {
        pools.v4 = AppPools::parse_pool(&list, false)
            .map_err(|r| config_err(format!("app-ipv4-pool: {r}")))?;
    }
    if let Some(list) = v6 {
        pools.v6 = AppPools::parse_pool(&list, true)
            .map_err(|r| config_err(format!("app-ipv6-pool: {r}")))?;
    }
    if pools.v4.is_empty() && pools.v6.is_empty() {
        return Err(config_err(
            "app-ipv4-pool: both address pools are empty; apps would have nowhere to listen",
        ));
    }
    Ok(pools)
}

pub(crate) async fn run(flags: EdgeSettings) -> anyhow::Result<()> {
    let merged = settings(&flags).await?;
    let cfg = resolve(merged.clone())?;
    let store = cfg.store.clone();
    let edge = Edge::bind(cfg.clone()).await?;
    let info = edge.info().clone();
    let created = |p: &Option<PathBuf>| match p {
        Some(p) if info.created.contains(p) => format!("{} (created)", p.display()),
        Some(p) => p.display().to_string(),
        None => "-".into(),
    };
    println!("burrow edge {} ready", cfg.colo);
    println!(
        "tunnel endpoint: {} ({})",
        info.tunnel_addr,
        if cfg.disable_quic {
            "HTTP/2 over TLS on TCP"
        } else {
            "QUIC on UDP, HTTP/2 over TLS on TCP"
        }
    );
    println!("admin API: http://{}", info.admin_addr);
    if let Some(a) = info.http_addr {
        println!("HTTP: http://{a}");
    }
    if let Some(a) = info.https_addr {
        println!("HTTPS: https://{a}");
    }
    if let Some(a) = info.dns_addr {
        println!("DNS: {a} (UDP and TCP)");
    }
    println!("state: {store}");
    println!("edge CA: {}", created(&info.ca_path));
    println!("admin token: {}", created(&info.token_path));
    for p in &info.created {
        tracing::info!(path = %p.display(), "created");
    }
    let shutdown = crate::shutdown_on_signals();
    tokio::spawn(reload_on_sighup(flags, merged, edge.reloader()));
    edge.run(shutdown).await;
    Ok(())
}

/// SIGHUP: reads `edge.yaml` again and says which changed settings need a
/// restart, then reloads what can be reloaded in place (certificates in
/// `--cert-dir`, `--origin-ca`, GeoIP files). Never ends the process.
async fn reload_on_sighup(
    flags: EdgeSettings,
    running: EdgeSettings,
    reloader: burrow_edge::EdgeReloader,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "no SIGHUP handler; reloading needs a restart");
            return;
        }
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP received; reloading");
        match settings(&flags)
            .await
            .and_then(|new| resolve(new.clone()).map(|_| new))
        {
            Ok(new) => {
                let changed: Vec<String> = new
                    .entries()
                    .into_iter()
                    .zip(running.entries())
                    .filter(|(n, o)| n != o)
                    .map(|(n, _)| n.0)
                    .collect();
                if !changed.is_empty() {
                    tracing::warn!(settings = ?changed, "changed in the configuration; these take effect after a restart");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "the configuration no longer loads; nothing of it was applied")
            }
        }
        for line in reloader.reload().await {
            tracing::info!(result = %line, "reload");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colo_locations_parse_with_clear_errors() {
        let s = colo_location("NRT=35.76,140.38,jp").unwrap();
        assert_eq!((s.colo.as_str(), s.country.as_deref()), ("NRT", Some("JP")));
        assert!(colo_location("KIX=34.4,135.2").unwrap().country.is_none());
        for bad in [
            "NRT",
            "NRT=95,1",
            "NRT=1,200",
            "NRT=1,2,JPN",
            "bad colo=1,2",
            "NRT=1,2,JP,x",
        ] {
            let e = colo_location(bad).unwrap_err().to_string();
            assert!(e.contains("--colo-location"), "{bad}: {e}");
        }
    }

    #[test]
    fn pki_dir_sits_beside_the_state_file() {
        assert_eq!(
            pki_dir_for(Path::new("./x/edge.db")),
            PathBuf::from("./x/edge.d")
        );
        assert_eq!(pki_dir_for(Path::new("edge.db")), PathBuf::from("edge.d"));
    }
}
