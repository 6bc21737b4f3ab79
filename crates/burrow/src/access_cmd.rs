//! `burrow access tcp|ssh|rdp|smb`: cloudflared's `access` client. One TCP
//! stream (stdin/stdout, or each connection to a local `--url` listener)
//! is carried over a WebSocket to the edge's HTTPS listener, with the
//! hostname as TLS name and `Host`; the edge routes it into the tunnel and
//! the connector's `ssh://`/`tcp://` rule dials the origin
//! (`burrow_connector`'s stream origins). Service tokens and JWTs go in
//! the headers Cloudflare Access reads.
//!
//! `burrow access service-token` makes a service token pair.
//!
//! [`target`] and [`request_headers`] are the pure parts; the rest dials
//! and copies ([`burrow_transport::ws_tcp`]).

use crate::cli::{AccessClientCommand, AccessTcpArgs};
use crate::config_err;
use anyhow::Context as _;
use burrow_transport::BoxStream;
use http::{HeaderName, HeaderValue};
use sha2::Digest;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::WebSocketStream;
use tracing::{debug, info, warn};

/// How long dialing the edge and the WebSocket handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Connections a `--url` listener carries at once; more wait.
const MAX_CONNECTIONS: usize = 1024;

/// Where and how to reach the edge for one hostname.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// TLS (wss) or, with an `http://` edge, plain (ws).
    tls: bool,
    /// `host:port` to dial.
    connect: String,
    /// The service's name: TLS server name, and (with `port`) the Host.
    host: String,
    /// A port given with --hostname, kept in the Host header.
    port: Option<u16>,
}

/// Splits `host[:port]` (an IPv6 literal in brackets).
fn host_port(s: &str, field: &str) -> Result<(String, Option<u16>), String> {
    let bad = |why: &str| format!("{field} '{s}': {why}");
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => (
            h,
            Some(p.parse::<u16>().map_err(|_| bad("not a port number"))?),
        ),
        _ => (s, None),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(['/', ' ', '@']) {
        return Err(bad("not a host name"));
    }
    Ok((host.to_ascii_lowercase(), port))
}

/// Resolves `--hostname` and `--edge` into a [`Target`]. As cloudflared,
/// the hostname may carry a scheme and a path (dropped); `--edge` (its
/// `--connect-to`) replaces only where to dial.
fn target(hostname: &str, edge: Option<&str>) -> Result<Target, String> {
    let bare = hostname
        .split_once("://")
        .map_or(hostname, |(_, rest)| rest);
    let bare = bare.split('/').next().unwrap_or_default();
    let (host, port) = host_port(bare, "--hostname")?;
    let (tls, connect) = match edge {
        None => (true, format!("{host}:{}", port.unwrap_or(443))),
        Some(e) => {
            let (tls, rest) = match e.split_once("://") {
                None => (true, e),
                Some(("https" | "wss", rest)) => (true, rest),
                Some(("http" | "ws", rest)) => (false, rest),
                Some((scheme, _)) => {
                    return Err(format!(
                        "--edge '{e}': scheme {scheme} is not https:// or http://"
                    ))
                }
            };
            let (h, p) = host_port(rest.trim_end_matches('/'), "--edge")?;
            let p = p.unwrap_or(if tls { 443 } else { 80 });
            let h = if h.contains(':') { format!("[{h}]") } else { h };
            (tls, format!("{h}:{p}"))
        }
    };
    Ok(Target {
        tls,
        connect,
        host,
        port,
    })
}

/// The headers every WebSocket request carries: `--header`s first, then
/// the service token, the JWT and the bastion destination (these win).
fn request_headers(a: &AccessTcpArgs) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let mut out = Vec::new();
    let value = |field: &str, v: &str| {
        HeaderValue::from_str(v.trim()).map_err(|_| format!("{field}: not a valid header value"))
    };
    for h in &a.header {
        let (name, v) = h
            .split_once(':')
            .ok_or_else(|| format!("--header '{h}': expected NAME: VALUE"))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("--header '{h}': '{}' is not a header name", name.trim()))?;
        out.push((name, value("--header", v)?));
    }
    match (&a.service_token_id, &a.service_token_secret) {
        (Some(id), Some(secret)) => {
            out.push((
                HeaderName::from_static("cf-access-client-id"),
                value("--service-token-id", id)?,
            ));
            out.push((
                HeaderName::from_static("cf-access-client-secret"),
                value("--service-token-secret", secret)?,
            ));
        }
        (None, None) => {}
        (Some(_), None) => {
            return Err("--service-token-secret: missing (the id was given)".into());
        }
        (None, Some(_)) => return Err("--service-token-id: missing (the secret was given)".into()),
    }
    if let Some(jwt) = &a.access_token {
        out.push((
            HeaderName::from_static("cf-access-jwt-assertion"),
            value("--access-token", jwt)?,
        ));
    }
    if let Some(d) = &a.destination {
        out.push((
            HeaderName::from_static("cf-access-jump-destination"),
            value("--destination", d)?,
        ));
    }
    Ok(out)
}

/// Everything needed to open one carried stream.
struct Dialer {
    target: Target,
    headers: Vec<(HeaderName, HeaderValue)>,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl Dialer {
    fn new(a: &AccessTcpArgs) -> anyhow::Result<Self> {
        let target = target(&a.hostname, a.edge.as_deref()).map_err(config_err)?;
        let headers = request_headers(a).map_err(config_err)?;
        let tls = if target.tls {
            let mut roots = burrow_transport::pki::system_roots();
            if let Some(p) = &a.edge_ca {
                let extra = burrow_transport::pki::roots_from_pem_file("--edge-ca", p)
                    .map_err(config_err)?;
                roots.roots.extend(extra.roots);
            }
            let mut cfg =
                rustls::ClientConfig::builder_with_provider(burrow_transport::pki::provider())
                    .with_protocol_versions(rustls::DEFAULT_VERSIONS)?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
            cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
            Some(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
        } else {
            let loopback = target
                .connect
                .rsplit_once(':')
                .map(|(h, _)| h.trim_matches(['[', ']']))
                .and_then(|h| h.parse::<std::net::IpAddr>().ok())
                .is_some_and(|ip| ip.is_loopback())
                || target.connect.starts_with("localhost:");
            if !loopback && !headers.is_empty() {
                warn!(edge = %target.connect, "--edge is plain http://: the access token crosses the network unencrypted");
            }
            None
        };
        Ok(Self {
            target,
            headers,
            tls,
        })
    }

    /// Dials the edge and completes the WebSocket handshake.
    async fn open(&self) -> anyhow::Result<WebSocketStream<BoxStream>> {
        let t = &self.target;
        let tcp = tokio::net::TcpStream::connect(&t.connect)
            .await
            .with_context(|| format!("cannot reach the edge at {}", t.connect))?;
        let _ = tcp.set_nodelay(true);
        let io: BoxStream =
            match &self.tls {
                Some(tls) => {
                    let name = rustls::pki_types::ServerName::try_from(t.host.clone())
                        .map_err(|e| config_err(format!("--hostname '{}': {e}", t.host)))?;
                    Box::new(tls.connect(name, tcp).await.with_context(|| {
                        format!("TLS with the edge at {} as {}", t.connect, t.host)
                    })?)
                }
                None => Box::new(tcp),
            };
        let authority = match t.port {
            Some(p) => format!("{}:{p}", t.host),
            None => t.host.clone(),
        };
        let scheme = if t.tls { "wss" } else { "ws" };
        let mut req = format!("{scheme}://{authority}/")
            .into_client_request()
            .map_err(|e| config_err(format!("--hostname '{}': {e}", t.host)))?;
        let h = req.headers_mut();
        h.insert(
            http::header::USER_AGENT,
            HeaderValue::from_static(concat!("burrow/", env!("CARGO_PKG_VERSION"))),
        );
        for (k, v) in &self.headers {
            h.insert(k.clone(), v.clone());
        }
        match tokio_tungstenite::client_async_with_config(
            req,
            io,
            Some(burrow_transport::ws_tcp::config()),
        )
        .await
        {
            Ok((ws, _)) => Ok(ws),
            Err(WsError::Http(resp)) => {
                let body = resp
                    .body()
                    .as_deref()
                    .map(|b| {
                        String::from_utf8_lossy(&b[..b.len().min(300)])
                            .trim()
                            .to_owned()
                    })
                    .unwrap_or_default();
                Err(anyhow::anyhow!(
                    "the edge answered {} for {}{}{}",
                    resp.status(),
                    t.host,
                    if body.is_empty() { "" } else { ": " },
                    body
                ))
            }
            Err(e) => Err(anyhow::anyhow!("WebSocket to {} failed: {e}", t.connect)),
        }
    }

    async fn open_in_time(&self) -> anyhow::Result<WebSocketStream<BoxStream>> {
        tokio::time::timeout(CONNECT_TIMEOUT, self.open())
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "no WebSocket to {} within {}s",
                    self.target.connect,
                    CONNECT_TIMEOUT.as_secs()
                )
            })?
    }
}

pub(crate) async fn run(c: AccessClientCommand) -> anyhow::Result<()> {
    match c {
        AccessClientCommand::Tcp(a) => tcp(*a).await,
        AccessClientCommand::ServiceToken { json } => {
            service_token(json);
            Ok(())
        }
    }
}

async fn tcp(a: AccessTcpArgs) -> anyhow::Result<()> {
    let dialer = Arc::new(Dialer::new(&a)?);
    let Some(listen) = &a.url else {
        // stdin/stdout: one stream, for ssh's ProxyCommand.
        let ws = dialer.open_in_time().await?;
        let local = tokio::io::join(tokio::io::stdin(), tokio::io::stdout());
        let carried = burrow_transport::ws_tcp::bridge(ws, local).await?;
        debug!(
            sent = carried.sent,
            received = carried.received,
            "stream finished"
        );
        return Ok(());
    };
    let listen = listen
        .strip_prefix("tcp://")
        .unwrap_or(listen)
        .trim_end_matches('/');
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| config_err(format!("--url {listen}: {e}")))?;
    let local = listener.local_addr()?;
    if !local.ip().is_loopback() {
        warn!(%local, "--url listens beyond loopback: anyone who reaches it uses your access token");
    }
    info!(%local, hostname = %dialer.target.host, edge = %dialer.target.connect, "listening; each connection is carried to the hostname's service");
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let stop = crate::shutdown_on_signals();
    let tasks = tokio_util::task::TaskTracker::new();
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p?,
            () = stop.cancelled() => break,
        };
        let (sock, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let dialer = dialer.clone();
        let stop = stop.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let _ = sock.set_nodelay(true);
            let ws = match dialer.open_in_time().await {
                Ok(ws) => ws,
                Err(e) => {
                    warn!(%peer, "{e:#}");
                    return;
                }
            };
            debug!(%peer, "connection carried");
            tokio::select! {
                r = burrow_transport::ws_tcp::bridge(ws, sock) => match r {
                    Ok(c) => debug!(%peer, sent = c.sent, received = c.received, "connection finished"),
                    Err(e) => info!(%peer, error = %e, "connection ended with an error"),
                },
                () = stop.cancelled() => {}
            }
        });
    }
    tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(2), tasks.wait()).await;
    Ok(())
}

/// A new service token: a random id (Cloudflare's `HEX.access` shape) and
/// secret, printed with the connector's config entry.
fn service_token(json: bool) {
    let mut id = [0u8; 16];
    let mut secret = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
    let id = format!("{}.access", hex::encode(id));
    let secret = hex::encode(secret);
    let hash = hex::encode(sha2::Sha256::digest(secret.as_bytes()));
    if json {
        println!(
            "{}",
            serde_json::json!({"clientId": id, "clientSecret": secret, "clientSecretSha256": hash})
        );
        return;
    }
    println!("CF-Access-Client-Id:     {id}");
    println!("CF-Access-Client-Secret: {secret}");
    println!();
    println!("The secret is shown only now. Give both to `burrow access` (--service-token-id,");
    println!("and TUNNEL_SERVICE_TOKEN_SECRET in the environment). In the connector's");
    println!("config.yml, under the rule's originRequest:");
    println!();
    println!("  access:");
    println!("    required: true");
    println!("    serviceTokens:");
    println!("      - clientId: {id}");
    println!("        clientSecretSha256: {hash}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(tls: bool, connect: &str, host: &str, port: Option<u16>) -> Target {
        Target {
            tls,
            connect: connect.into(),
            host: host.into(),
            port,
        }
    }

    #[test]
    fn the_hostname_names_the_service_and_edge_says_where_to_dial() {
        let cases = [
            (
                "ssh.example.com",
                None,
                t(true, "ssh.example.com:443", "ssh.example.com", None),
            ),
            (
                "https://SSH.example.com/x",
                None,
                t(true, "ssh.example.com:443", "ssh.example.com", None),
            ),
            (
                "ssh.example.com:8443",
                None,
                t(true, "ssh.example.com:8443", "ssh.example.com", Some(8443)),
            ),
            (
                "ssh.example.com",
                Some("127.0.0.1:8443"),
                t(true, "127.0.0.1:8443", "ssh.example.com", None),
            ),
            (
                "ssh.example.com",
                Some("edge.example.net"),
                t(true, "edge.example.net:443", "ssh.example.com", None),
            ),
            (
                "ssh.example.com",
                Some("http://127.0.0.1:8080/"),
                t(false, "127.0.0.1:8080", "ssh.example.com", None),
            ),
            (
                "ssh.example.com",
                Some("[::1]:8443"),
                t(true, "[::1]:8443", "ssh.example.com", None),
            ),
        ];
        for (hostname, edge, want) in cases {
            assert_eq!(
                target(hostname, edge).as_ref(),
                Ok(&want),
                "{hostname} {edge:?}"
            );
        }
        for (hostname, edge, field) in [
            ("", None, "--hostname"),
            ("ssh.example.com:99999", None, "--hostname"),
            ("ssh.example.com", Some("ftp://x:1"), "--edge"),
            ("ssh.example.com", Some("x:port"), "--edge"),
        ] {
            let e = target(hostname, edge).unwrap_err();
            assert!(e.starts_with(field), "{e}");
        }
    }

    fn args(extra: &[&str]) -> AccessTcpArgs {
        use clap::Parser;
        let mut argv = vec!["burrow", "access", "tcp", "--hostname", "h"];
        argv.extend_from_slice(extra);
        match crate::cli::Cli::try_parse_from(argv).unwrap().command {
            crate::cli::Command::Access(a) => match a.command {
                AccessClientCommand::Tcp(t) => *t,
                AccessClientCommand::ServiceToken { .. } => unreachable!(),
            },
            _ => unreachable!(),
        }
    }

    #[test]
    fn headers_carry_the_tokens_and_refuse_half_a_token() {
        let h = request_headers(&args(&[
            "-H",
            "X-Team: blue",
            "--id",
            "abc.access",
            "--secret",
            "s3cret",
            "--destination",
            "10.0.0.5:22",
        ]))
        .unwrap();
        let names: Vec<_> = h
            .iter()
            .map(|(k, v)| format!("{k}={}", v.to_str().unwrap()))
            .collect();
        assert_eq!(
            names,
            [
                "x-team=blue",
                "cf-access-client-id=abc.access",
                "cf-access-client-secret=s3cret",
                "cf-access-jump-destination=10.0.0.5:22"
            ]
        );
        let e = request_headers(&args(&["--service-token-id", "abc"])).unwrap_err();
        assert!(e.starts_with("--service-token-secret"), "{e}");
        let e = request_headers(&args(&["-H", "nocolon"])).unwrap_err();
        assert!(e.starts_with("--header"), "{e}");
    }
}
