//! `burrow client`: device credentials and flags resolved into a
//! `ClientConfig`, then the client runs until SIGINT/SIGTERM.

use crate::cli::ClientArgs;
use crate::config_err;
use burrow_client::ClientConfig;
use burrow_config::identity::DeviceCredentials;

pub(crate) async fn run(a: ClientArgs) -> anyhow::Result<()> {
    let text = tokio::fs::read_to_string(&a.credentials)
        .await
        .map_err(|e| config_err(format!("--credentials {}: {e}", a.credentials.display())))?;
    let credentials = DeviceCredentials::from_json(&text)
        .map_err(|e| config_err(format!("{}: {e}", a.credentials.display())))?;
    let edge = a
        .edge
        .clone()
        .or_else(|| credentials.edges.first().cloned())
        .ok_or_else(|| config_err("--edge: no edge address given and none in the credentials"))?;
    let edge = tokio::net::lookup_host(edge.as_str())
        .await
        .map_err(|e| config_err(format!("--edge '{edge}': {e}")))?
        .next()
        .ok_or_else(|| config_err(format!("--edge '{edge}': no address")))?;
    let edge_ca_pem = match &a.edge_ca {
        Some(p) => tokio::fs::read_to_string(p)
            .await
            .map_err(|e| config_err(format!("--edge-ca {}: {e}", p.display())))?,
        None => credentials
            .edge_ca_pem
            .clone()
            .ok_or_else(|| config_err("no edge CA: pass --edge-ca FILE"))?,
    };
    let socks = a
        .socks
        .parse()
        .map_err(|_| config_err(format!("--socks: '{}' is not an IP:port address", a.socks)))?;
    let http_proxy = a
        .http_proxy
        .as_deref()
        .map(|s| {
            s.parse()
                .map_err(|_| config_err(format!("--http-proxy: '{s}' is not an IP:port address")))
        })
        .transpose()?;
    for (flag, addr) in
        std::iter::once(("--socks", socks)).chain(http_proxy.map(|h| ("--http-proxy", h)))
    {
        let addr: std::net::SocketAddr = addr;
        if !addr.ip().is_loopback() {
            if !a.allow_lan {
                return Err(config_err(format!(
                    "{flag}: {addr} is not a loopback address; the proxy has no authentication, so anyone who \
                     reaches it would use this device's identity (pass --allow-lan to do it anyway)"
                )));
            }
            tracing::warn!(listen = %addr, "{flag} listens beyond loopback (--allow-lan): anyone who reaches it uses this device's identity");
        }
    }
    if let Some(v) = &a.vnet {
        burrow_config::identity::validate_label("--vnet", v)
            .map_err(|e| config_err(e.to_string()))?;
    }
    let protocol = match a.protocol.as_str() {
        "quic" => burrow_client::Protocol::Quic,
        "http2" => burrow_client::Protocol::Http2,
        _ => burrow_client::Protocol::Auto,
    };
    let cfg = ClientConfig {
        protocol,
        vnet: a.vnet.clone(),
        http_proxy,
        edge,
        edge_ca_pem,
        edge_domain: credentials
            .edge_domain
            .clone()
            .unwrap_or_else(|| burrow_transport::pki::DEFAULT_EDGE_DOMAIN.into()),
        socks,
        credentials,
    };
    let shutdown = crate::shutdown_on_signals();
    burrow_client::run(cfg, shutdown).await?;
    Ok(())
}
