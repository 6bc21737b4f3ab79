//! `burrow quick`: a tunnel and a TCP app made in the store directly, as
//! the admin API would, for the one-process demo.

use crate::edge::Edge;
use crate::{apps, unix_now, EdgeError};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

impl Edge {
    /// Creates a tunnel and a TCP app in the store directly (for `burrow
    /// quick`, which has no separate admin client). Returns the tunnel's
    /// credentials and the app's bound address.
    ///
    /// # Errors
    /// On store or bind failure.
    pub async fn quick_setup(
        &self,
        name: &str,
        port: u16,
        shutdown: &CancellationToken,
    ) -> Result<(burrow_config::credentials::Credentials, SocketAddr), EdgeError> {
        use rand::RngCore;
        let store_err = |source| EdgeError::Store {
            location: "(quick)".into(),
            source,
        };
        let mut secret = vec![0u8; 32];
        rand::thread_rng().fill_bytes(&mut secret);
        let t = burrow_store::Tunnel {
            id: uuid::Uuid::new_v4(),
            account_id: self.ctx.id.account_id,
            name: name.to_owned(),
            secret: secret.clone(),
            created_at: unix_now(),
        };
        self.ctx.store.create_tunnel(&t).await.map_err(store_err)?;
        let raw = burrow_config::app::RawApp {
            protocol: format!("tcp/{port}"),
            origin_tunnel: Some(burrow_config::app::RawOriginTunnel {
                tunnel: t.id.to_string(),
                hostname: String::new(),
            }),
            ..Default::default()
        };
        // Port 0 is not a valid app port; quick picks a free one here, on
        // the first pool address (quick's pool is loopback).
        let pools = &self.ctx.id.app_pools;
        let quick_ip = *pools
            .v4
            .first()
            .or(pools.v6.first())
            .ok_or_else(|| std::io::Error::other("no app address pool"))?;
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(quick_ip, port)).await?;
        let addr = listener.local_addr()?;
        let raw = burrow_config::app::RawApp {
            protocol: format!("tcp/{}", addr.port()),
            ..raw
        };
        let spec = raw
            .validate()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let app = burrow_store::App {
            id: uuid::Uuid::new_v4(),
            spec: serde_json::to_string(&raw).map_err(std::io::Error::other)?,
            l4: "tcp".into(),
            port_start: addr.port(),
            port_end: addr.port(),
            tunnel_id: Some(t.id),
            created_at: unix_now(),
        };
        let _changing = self.ctx.apps.running.changing.lock().await;
        self.ctx.store.create_app(&app).await.map_err(store_err)?;
        let compiled = Arc::new(apps::compiled::Compiled::new(
            app.id,
            spec,
            Some(t.id),
            app.spec.clone(),
        ));
        self.ctx.apps.running.adopt(
            &self.ctx,
            compiled,
            vec![apps::running::Listener::Tcp(listener)],
            shutdown,
        );
        let creds = burrow_config::credentials::Credentials {
            account_id: t.account_id,
            tunnel_id: t.id,
            secret: burrow_config::credentials::SecretBytes(secret),
            tunnel_name: Some(t.name),
            edge_ca_pem: Some(self.ctx.id.ca_pem.clone()),
            edges: vec![self.info.tunnel_addr.to_string()],
            edge_domain: Some(self.ctx.id.edge_domain.clone()),
        };
        Ok((creds, addr))
    }
}
