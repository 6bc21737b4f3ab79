//! Handshake-only probes of an edge endpoint, for `burrow tunnel diag`:
//! a QUIC handshake (SNI `quic.<domain>`) and a TLS handshake over TCP
//! (SNI `h2.<domain>`), each closed at once. With the edge's CA the
//! certificate is verified exactly as a connector would; without it the
//! handshake still proves reachability (signatures checked, chain not).

use crate::pki::EdgeTrust;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn config(
    trust: Option<&EdgeTrust>,
    alpn: &[u8],
    tls13_only: bool,
) -> Result<rustls::ClientConfig, String> {
    match trust {
        Some(t) => t.client_config(alpn, tls13_only).map_err(|e| e.to_string()),
        None => {
            let provider = crate::pki::provider();
            let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .dangerous()
                .with_custom_certificate_verifier(crate::pki::any_server_certificate(&provider))
                .with_no_client_auth();
            cfg.alpn_protocols = vec![alpn.to_vec()];
            Ok(cfg)
        }
    }
}

/// A QUIC handshake with `addr`; how long it took.
///
/// # Errors
/// Why it failed (timeout: UDP likely blocked).
pub async fn quic(
    addr: SocketAddr,
    domain: &str,
    trust: Option<&EdgeTrust>,
    timeout: Duration,
) -> Result<Duration, String> {
    let tls = config(trust, crate::ALPN_QUIC, true)?;
    let crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| e.to_string())?;
    let cfg = quinn::ClientConfig::new(Arc::new(crypto));
    let ep = crate::quic::client_endpoint(addr).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let connecting = ep
        .connect_with(cfg, addr, &crate::pki::quic_server_name(domain))
        .map_err(|e| e.to_string())?;
    let conn = tokio::time::timeout(timeout, connecting)
        .await
        .map_err(|_| format!("no QUIC handshake within {timeout:?}"))?
        .map_err(|e| e.to_string())?;
    let took = started.elapsed();
    conn.close(0u32.into(), b"diag");
    ep.wait_idle().await;
    Ok(took)
}

/// A TCP connection to `addr`; how long it took.
///
/// # Errors
/// Why it failed.
pub async fn tcp(addr: SocketAddr, timeout: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| format!("no TCP answer within {timeout:?}"))?
        .map_err(|e| e.to_string())?;
    Ok(started.elapsed())
}

/// A TLS handshake over TCP with `addr` (SNI `h2.<domain>`); how long the
/// whole dial took.
///
/// # Errors
/// Why it failed.
pub async fn tls(
    addr: SocketAddr,
    domain: &str,
    trust: Option<&EdgeTrust>,
    timeout: Duration,
) -> Result<Duration, String> {
    let cfg = Arc::new(config(trust, crate::ALPN_H2, false)?);
    let name =
        EdgeTrust::server_name(crate::pki::h2_server_name(domain)).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let work = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        tokio_rustls::TlsConnector::from(cfg)
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| format!("no TLS handshake within {timeout:?}"))??;
    Ok(started.elapsed())
}
