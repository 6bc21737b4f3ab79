//! `burrow tunnel run`: flags, `config.yml` and the credentials resolved
//! into a `ConnectorConfig` (flags win over the file, the file over the
//! credentials), then the connector runs until SIGINT/SIGTERM.

use crate::cli::RunArgs;
use crate::config_err;
use burrow_config::connector::{
    parse_connector_yaml, ConnectorFile, Ingress, ProtocolChoice, Service,
};
use burrow_config::credentials::Credentials;
use burrow_connector::{ConnectorConfig, IpVersion};
use std::path::Path;
use std::time::Duration;

async fn read(field: &str, p: &Path) -> anyhow::Result<String> {
    tokio::fs::read_to_string(p)
        .await
        .map_err(|e| config_err(format!("{field} {}: {e}", p.display())))
}

fn duration(field: &str, s: &str) -> anyhow::Result<Duration> {
    burrow_config::duration::parse(s).map_err(|r| config_err(format!("{field}: {r}")))
}

/// Loads and validates a connector config file; warnings are logged.
/// Keys named like `tunnel run` flags are applied (or reported) as flags
/// by `tunnel run` itself; with `flag_keys`, those cloudflared flags that
/// mean nothing here are reported by this load (`ingress validate`).
pub(crate) async fn load_file(p: &Path, flag_keys: bool) -> anyhow::Result<ConnectorFile> {
    let text = read("--config", p).await?;
    let file =
        parse_connector_yaml(&text).map_err(|e| config_err(format!("{}: {e}", p.display())))?;
    for w in &file.warnings {
        tracing::warn!(file = %p.display(), "{w}");
    }
    // Keys named like flags were applied (or reported) as those flags.
    let root = <crate::cli::Cli as clap::CommandFactory>::command();
    for k in &file.other_keys {
        let not_applicable = crate::cloudflared_args::NOT_APPLICABLE
            .iter()
            .find(|(n, _, _)| n == k);
        match not_applicable {
            Some((_, _, why)) if flag_keys => tracing::warn!(
                file = %p.display(),
                "key '{k}': cloudflared's flag, not applicable ({why}); ignored"
            ),
            _ if crate::cloudflared_args::is_flag_key(&root, k) => {}
            _ => tracing::warn!(file = %p.display(), "unknown key '{k}' ignored"),
        }
    }
    Ok(file)
}

/// The credentials, first found of: --token (or `TUNNEL_TOKEN`),
/// --token-file, --credentials-contents, --credentials-file,
/// `credentials-file:` in config.yml. burrow's and cloudflared's shapes
/// alike; fields a file has that burrow does not use are warned about.
async fn credentials(a: &RunArgs, file: Option<&ConnectorFile>) -> anyhow::Result<Credentials> {
    // The error names `token` itself (and the field inside it).
    let token = |field: &str, t: &str| {
        Credentials::from_token(t).map_err(|e| match field {
            "--token" => config_err(format!("--{e}")),
            _ => config_err(format!("{field}: {e}")),
        })
    };
    if let Some(t) = &a.token {
        return token("--token", t);
    }
    if let Some(p) = &a.token_file {
        return token(
            &format!("--token-file {}", p.display()),
            &read("--token-file", p).await?,
        );
    }
    let json = |field: String, text: &str| {
        let (c, warnings) = Credentials::from_json_warning(text)
            .map_err(|e| config_err(format!("{field}: {e}")))?;
        for w in warnings {
            tracing::warn!(source = %field, "{w}");
        }
        Ok::<_, anyhow::Error>(c)
    };
    if let Some(text) = &a.credentials_contents {
        return json("--credentials-contents".into(), text);
    }
    let by_id = || {
        let id = a
            .tunnel
            .as_deref()
            .or(file.and_then(|f| f.tunnel.as_deref()))?;
        let id = uuid::Uuid::parse_str(id).ok()?;
        let beside = a
            .config
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf);
        beside
            .into_iter()
            .chain(std::iter::once(std::path::PathBuf::from(".")))
            .chain(config_dirs())
            .map(|d| d.join(format!("{id}.json")))
            .find(|p| p.is_file())
    };
    let path = a
        .credentials_file
        .clone()
        .or_else(|| file.and_then(|f| f.credentials_file.clone()))
        .or_else(by_id)
        .ok_or_else(|| {
            config_err(
                "no credentials: pass --credentials-file (written by `burrow tunnel create`), \
                 --token or --token-file, or set credentials-file in config.yml \
                 (or name the tunnel by id with <ID>.json beside it)",
            )
        })?;
    let text = read("credentials-file", &path).await?;
    json(path.display().to_string(), &text)
}

/// Without `--config`, the first config file where cloudflared looks.
fn find_config(a: &mut RunArgs) {
    if a.config.is_none() {
        a.config = default_config();
        if let Some(p) = &a.config {
            tracing::info!(config = %p.display(), "no --config given; using the first config file found where cloudflared looks");
        }
    }
}

pub(crate) async fn resolve(mut a: RunArgs) -> anyhow::Result<ConnectorConfig> {
    find_config(&mut a);
    let file = match &a.config {
        Some(p) => Some(load_file(p, false).await?),
        None => None,
    };
    let credentials = credentials(&a, file.as_ref()).await?;
    if let Some(t) = a.tunnel.as_deref() {
        let matches =
            t == credentials.tunnel_id.to_string() || credentials.tunnel_name.as_deref() == Some(t);
        if !matches {
            return Err(config_err(format!(
                "TUNNEL: '{t}' is not the tunnel of the credentials ({})",
                credentials.tunnel_id
            )));
        }
    }
    if let Some(t) = file.as_ref().and_then(|f| f.tunnel.as_deref()) {
        let matches =
            t == credentials.tunnel_id.to_string() || credentials.tunnel_name.as_deref() == Some(t);
        if !matches {
            return Err(config_err(format!(
                "tunnel: config.yml names tunnel '{t}' but the credentials are for {}",
                credentials.tunnel_id
            )));
        }
    }
    if a.origin.any() && a.url.is_none() {
        tracing::warn!("origin flags (--http-host-header, --no-tls-verify, ...) apply to --url only; with ingress rules set originRequest in config.yml");
    }
    let ingress = if a.hello_world {
        Ingress::single(Service::HelloWorld)
    } else if let Some(u) = &a.url {
        let mut single = Ingress::single(
            Service::parse(&with_scheme(u)).map_err(|r| config_err(format!("--url: {r}")))?,
        );
        // cloudflared's origin flags shape the --url origin; the file's
        // top-level originRequest comes first.
        if let Some(base) = file.as_ref().map(|f| f.base_origin.clone()) {
            single.rules[0].origin = base;
        }
        apply_origin_flags(&a.origin, &mut single.rules[0].origin)?;
        single
    } else {
        file.as_ref().and_then(|f| f.ingress.clone()).ok_or_else(|| {
            config_err("no ingress: pass --url SERVICE or --hello-world, or list ingress rules in config.yml")
        })?
    };
    let mut edges = a.edge.clone();
    if edges.is_empty() {
        edges = file.as_ref().map(|f| f.edge.clone()).unwrap_or_default();
    }
    // An explicit DNS server means: find the edges through SRV.
    if edges.is_empty() && a.dns_server.is_none() {
        edges = credentials.edges.clone();
    }
    let ca_path = a
        .edge_ca
        .clone()
        .or_else(|| file.as_ref().and_then(|f| f.edge_ca.clone()));
    let edge_ca_pem = match ca_path {
        Some(p) => read("edge-ca", &p).await?,
        None => credentials.edge_ca_pem.clone().ok_or_else(|| {
            config_err("no edge CA: pass --edge-ca FILE (the edge's ca.pem); verification cannot be turned off")
        })?,
    };
    let edge_domain = a
        .edge_domain
        .clone()
        .or_else(|| credentials.edge_domain.clone())
        .unwrap_or_else(|| burrow_transport::pki::DEFAULT_EDGE_DOMAIN.into());
    let protocol = match (&a.protocol, file.as_ref().and_then(|f| f.protocol)) {
        (Some(p), _) if p == "h2mux" => {
            tracing::info!("--protocol h2mux: cloudflared's retired transport; using auto (QUIC, falling back to HTTP/2)");
            ProtocolChoice::Auto
        }
        (Some(p), _) => {
            ProtocolChoice::parse(p).map_err(|r| config_err(format!("--protocol: {r}")))?
        }
        (None, Some(p)) => p,
        (None, None) => ProtocolChoice::Auto,
    };
    let ha_connections = a
        .ha_connections
        .or_else(|| file.as_ref().and_then(|f| f.ha_connections))
        .unwrap_or(4);
    if ha_connections == 0 {
        return Err(config_err("--ha-connections: must be at least 1"));
    }
    let grace_period = match &a.grace_period {
        Some(g) => duration("--grace-period", g)?,
        None => file
            .as_ref()
            .and_then(|f| f.grace_period)
            .unwrap_or(Duration::from_secs(30)),
    };
    let edge_ip_version = match a.edge_ip_version.as_str() {
        "4" => IpVersion::V4,
        "6" => IpVersion::V6,
        "auto" => IpVersion::Auto,
        other => {
            return Err(config_err(format!(
                "--edge-ip-version: '{other}' (expected 4, 6 or auto)"
            )))
        }
    };
    let dns_server = a
        .dns_server
        .as_deref()
        .map(|s| {
            s.parse::<std::net::SocketAddr>()
                .map_err(|_| config_err(format!("--dns-server: '{s}' is not an IP:port address")))
        })
        .transpose()?;
    let warp_routing = file
        .as_ref()
        .map(|f| f.warp_routing.clone())
        .unwrap_or_default();
    let metrics = match a
        .metrics
        .as_deref()
        .or(file.as_ref().and_then(|f| f.metrics.as_deref()))
    {
        None | Some("auto") => burrow_connector::MetricsAddr::Auto,
        Some("off") => burrow_connector::MetricsAddr::Off,
        Some(s) => burrow_connector::MetricsAddr::At(
            std::net::ToSocketAddrs::to_socket_addrs(s)
                .ok()
                .and_then(|mut it| it.next())
                .ok_or_else(|| {
                    config_err(format!(
                        "--metrics: '{s}' is not IP:PORT, HOST:PORT, auto or off"
                    ))
                })?,
        ),
    };
    Ok(ConnectorConfig {
        metrics,
        warp_routing,
        dns_server,
        credentials,
        ingress,
        edges,
        edge_domain,
        edge_ca_pem,
        protocol,
        ha_connections,
        grace_period,
        quic_fallback_after: duration("--quic-fallback-after", &a.quic_fallback_after)?,
        quic_retry_every: duration("--quic-retry-every", &a.quic_retry_every)?,
        max_refusals: if a.retry_forever {
            None
        } else {
            Some(a.max_refusals.max(1))
        },
        origin_connect_timeout: duration("--origin-connect-timeout", &a.origin_connect_timeout)?,
        edge_ip_version,
        label: a.label.clone(),
        post_quantum: a.post_quantum,
    })
}

/// Where cloudflared looks for its config and credentials, in its order,
/// then burrow's own `/etc/burrow`.
pub(crate) fn config_dirs() -> Vec<std::path::PathBuf> {
    let mut dirs = Vec::new();
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        let home = std::path::PathBuf::from(home);
        for d in [".cloudflared", ".cloudflare-warp", "cloudflare-warp"] {
            dirs.push(home.join(d));
        }
    }
    for d in [
        "/etc/cloudflared",
        "/usr/local/etc/cloudflared",
        "/etc/burrow",
    ] {
        dirs.push(d.into());
    }
    dirs
}

/// The first `config.yml` (or `config.yaml`) in [`config_dirs`], for a
/// `tunnel run` without `--config`.
pub(crate) fn default_config() -> Option<std::path::PathBuf> {
    config_dirs()
        .into_iter()
        .flat_map(|d| [d.join("config.yml"), d.join("config.yaml")])
        .find(|p| p.is_file())
}

/// cloudflared's origin flags onto the `--url` rule's origin settings.
fn apply_origin_flags(
    f: &crate::cli::OriginFlags,
    o: &mut burrow_config::origin_request::OriginRequest,
) -> anyhow::Result<()> {
    if let Some(h) = &f.http_host_header {
        o.http_host_header = Some(h.clone());
    }
    if let Some(n) = &f.origin_server_name {
        o.origin_server_name = Some(n.clone());
    }
    if let Some(p) = &f.origin_ca_pool {
        o.ca_pool = Some(p.clone());
    }
    o.no_tls_verify |= f.no_tls_verify;
    o.disable_chunked_encoding |= f.no_chunked_encoding;
    o.http2_origin |= f.http2_origin;
    o.no_happy_eyeballs |= f.proxy_no_happy_eyeballs;
    for (flag, value, slot) in [
        (
            "--proxy-connect-timeout",
            &f.proxy_connect_timeout,
            &mut o.connect_timeout,
        ),
        (
            "--proxy-tls-timeout",
            &f.proxy_tls_timeout,
            &mut o.tls_timeout,
        ),
        (
            "--proxy-tcp-keepalive",
            &f.proxy_tcp_keepalive,
            &mut o.tcp_keep_alive,
        ),
        (
            "--proxy-keepalive-timeout",
            &f.proxy_keepalive_timeout,
            &mut o.keep_alive_timeout,
        ),
    ] {
        if let Some(v) = value {
            *slot = duration(flag, v)?;
        }
    }
    if let Some(n) = f.proxy_keepalive_connections {
        o.keep_alive_connections = n;
    }
    Ok(())
}

/// `--url` as cloudflared reads it: `localhost:8080` is
/// `http://localhost:8080`.
fn with_scheme(u: &str) -> String {
    let plain = !u.contains("://")
        && !u.starts_with("unix:")
        && !u.starts_with("unix+tls:")
        && !u.starts_with("http_status:")
        && u != "hello_world";
    if plain {
        format!("http://{u}")
    } else {
        u.to_owned()
    }
}

pub(crate) async fn run(mut a: Box<RunArgs>) -> anyhow::Result<()> {
    find_config(&mut a);
    // Rules from --url / --hello-world are fixed; config.yml rules reload.
    let watch = a
        .config
        .clone()
        .filter(|_| a.url.is_none() && !a.hello_world);
    let pidfile = a.pidfile.clone();
    let cfg = resolve(*a).await?;
    if let Some(p) = &pidfile {
        tokio::fs::write(p, format!("{}\n", std::process::id()))
            .await
            .map_err(|e| config_err(format!("--pidfile {}: {e}", p.display())))?;
    }
    let shutdown = crate::shutdown_on_signals();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    if let Some(path) = watch {
        tokio::spawn(watch_config(path, tx, shutdown.clone()));
    }
    let ran = burrow_connector::run_with_updates(cfg, shutdown, rx).await;
    if let Some(p) = &pidfile {
        let _ = tokio::fs::remove_file(p).await;
    }
    ran?;
    Ok(())
}

/// How often config.yml is checked for changes.
const CONFIG_POLL: Duration = Duration::from_secs(2);

/// Re-reads config.yml on SIGHUP or when its modification time or size
/// changes. A valid file's ingress rules are sent on; an invalid one is
/// logged (naming the field) and the running rules stay.
async fn watch_config(
    path: std::path::PathBuf,
    tx: tokio::sync::mpsc::Sender<Ingress>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let stamp = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.modified().ok(), m.len()))
    };
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "no SIGHUP handler; config.yml is still watched for changes");
            None
        }
    };
    let mut last = stamp(&path);
    let mut tick = tokio::time::interval(CONFIG_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let why = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = async { match hup.as_mut() { Some(h) => { h.recv().await; } None => std::future::pending().await } } => "SIGHUP",
            _ = tick.tick() => {
                let now = stamp(&path);
                if now == last {
                    continue;
                }
                last = now;
                "config.yml changed"
            }
        };
        match load_file(&path, false).await {
            Ok(file) => match file.ingress {
                Some(ingress) => {
                    tracing::info!(file = %path.display(), trigger = why, rules = ingress.rules.len(), "config reloaded");
                    if tx.send(ingress).await.is_err() {
                        return;
                    }
                }
                None => {
                    tracing::error!(file = %path.display(), trigger = why, "config reload rejected: ingress: no rules; keeping the running rules")
                }
            },
            Err(e) => tracing::error!(
                trigger = why,
                "config reload rejected: {e}; keeping the running rules"
            ),
        }
    }
}

pub(crate) async fn ingress(cmd: crate::cli::IngressCommand) -> anyhow::Result<()> {
    use crate::cli::IngressCommand;
    let (given, url) = match &cmd {
        IngressCommand::Validate { config } => (config, None),
        IngressCommand::Rule { url, config } => (config, Some(url.as_str())),
    };
    let path = &given.clone().or_else(default_config).ok_or_else(|| {
        config_err(
            "--config: not given, and no config.yml where cloudflared looks \
             (~/.cloudflared, /etc/cloudflared, ...) or in /etc/burrow",
        )
    })?;
    let file = load_file(path, true).await?;
    let ingress = file
        .ingress
        .ok_or_else(|| config_err(format!("{}: ingress: no rules", path.display())))?;
    match url {
        None => {
            println!("OK: {} ingress rules", ingress.rules.len());
            for (i, r) in ingress.rules.iter().enumerate() {
                println!(
                    "  rule {i}: {} -> {}",
                    r.hostname.as_deref().unwrap_or("*"),
                    r.service
                );
            }
        }
        Some(u) => {
            let rest = u.split_once("://").map_or(u, |(_, r)| r);
            let (host, path) = match rest.find('/') {
                Some(i) => (&rest[..i], Some(&rest[i..])),
                None => (rest, None),
            };
            let (i, r) = ingress
                .find(host, path.or(Some("/")))
                .ok_or_else(|| anyhow::anyhow!("no rule matches {u}"))?;
            println!(
                "Matched rule #{i}: {} -> {}",
                r.hostname.as_deref().unwrap_or("*"),
                r.service
            );
        }
    }
    Ok(())
}

/// `GET /ready` on `addr`: the status code and body.
async fn get_ready(addr: std::net::SocketAddr) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let work = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(b"GET /ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await?;
        let mut buf = Vec::new();
        s.take(64 * 1024).read_to_end(&mut buf).await?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let code = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.trim().to_owned())
            .unwrap_or_default();
        Ok((code, body))
    };
    tokio::time::timeout(Duration::from_secs(5), work)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// `burrow tunnel ready`: exit 0 when /ready says 200, else an error (exit 1).
pub(crate) async fn ready(metrics: Option<String>) -> anyhow::Result<()> {
    let addrs: Vec<std::net::SocketAddr> = match &metrics {
        Some(s) => vec![std::net::ToSocketAddrs::to_socket_addrs(s.as_str())
            .ok()
            .and_then(|mut it| it.next())
            .ok_or_else(|| config_err(format!("--metrics: '{s}' is not IP:PORT")))?],
        None => burrow_connector::METRICS_AUTO_PORTS
            .map(|p| std::net::SocketAddr::from(([127, 0, 0, 1], p)))
            .collect(),
    };
    for addr in addrs {
        match get_ready(addr).await {
            Ok((200, body)) => {
                println!("ready: {body}");
                return Ok(());
            }
            Ok((code, body)) => anyhow::bail!("not ready ({code}): {body}"),
            Err(_) => continue,
        }
    }
    anyhow::bail!("not ready: no connector metrics server answered (pass --metrics IP:PORT)")
}

/// `burrow tunnel diag`'s flags.
pub(crate) struct DiagArgs {
    pub(crate) edge_domain: Option<String>,
    pub(crate) edges: Vec<String>,
    pub(crate) dns_server: Option<String>,
    pub(crate) credentials_file: Option<std::path::PathBuf>,
    pub(crate) edge_ca: Option<std::path::PathBuf>,
    pub(crate) ports: Vec<u16>,
}

/// `burrow tunnel diag`.
pub(crate) async fn diag(a: DiagArgs, json: bool) -> anyhow::Result<()> {
    use burrow_connector::diag::{self, Verdict};
    let DiagArgs {
        edge_domain,
        edges,
        dns_server,
        credentials_file,
        edge_ca,
        ports,
    } = a;
    if ports.contains(&0) {
        return Err(config_err("--port: 0 is not a port"));
    }
    let dns_server = dns_server
        .map(|s| {
            s.parse::<std::net::SocketAddr>()
                .map_err(|_| config_err(format!("--dns-server: '{s}' is not an IP:port address")))
        })
        .transpose()?;
    // The credentials give what `tunnel run` would use: their edge CA,
    // their edges (unless --edge, or --dns-server: then SRV), their domain.
    let creds = match &credentials_file {
        Some(p) => {
            let text = tokio::fs::read_to_string(p)
                .await
                .map_err(|e| config_err(format!("--credentials-file {}: {e}", p.display())))?;
            Some(
                Credentials::from_json(&text)
                    .map_err(|e| config_err(format!("{}: {e}", p.display())))?,
            )
        }
        None => None,
    };
    let ca_pem = match &edge_ca {
        Some(p) => Some(
            tokio::fs::read_to_string(p)
                .await
                .map_err(|e| config_err(format!("--edge-ca {}: {e}", p.display())))?,
        ),
        None => creds.as_ref().and_then(|c| c.edge_ca_pem.clone()),
    };
    let edges = match (&creds, edges.is_empty() && dns_server.is_none()) {
        (Some(c), true) => c.edges.clone(),
        _ => edges,
    };
    let edge_domain = edge_domain
        .or_else(|| creds.as_ref().and_then(|c| c.edge_domain.clone()))
        .unwrap_or_else(|| burrow_transport::pki::DEFAULT_EDGE_DOMAIN.into());
    let opts = diag::DiagOptions {
        edges,
        edge_domain,
        dns_server,
        ca_pem,
        timeout: Duration::from_secs(3),
        extra_ports: ports,
    };
    let checks = diag::run(&opts).await;
    let failed = checks.iter().any(|c| c.verdict == Verdict::Fail);
    if json {
        let v: Vec<serde_json::Value> = checks
            .iter()
            .map(|c| {
                serde_json::json!({"check": c.check, "target": c.target, "verdict": c.verdict.as_str(),
                                   "detail": c.detail, "hint": c.hint})
            })
            .collect();
        println!("{}", serde_json::json!({"ok": !failed, "checks": v}));
    } else {
        println!("{:<24} {:<40} {:<5} DETAIL", "CHECK", "TARGET", "OK?");
        for c in &checks {
            println!(
                "{:<24} {:<40} {:<5} {}",
                c.check,
                c.target,
                c.verdict.as_str(),
                c.detail
            );
            if let Some(h) = &c.hint {
                println!("{:<24} {:<40} {:<5}   hint: {h}", "", "", "");
            }
        }
    }
    if failed {
        anyhow::bail!("some checks failed (see the hints above)");
    }
    Ok(())
}
