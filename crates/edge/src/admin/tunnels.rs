//! Tunnels: create (with credentials), list, info with live connections, rotate the secret, delete.

use super::api::{body, validate_name, AdminState, ApiError};
use crate::context::Ctx;
use crate::unix_now;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use burrow_config::credentials::{Credentials, SecretBytes};
use rand::RngCore;
use serde_json::Value;

use burrow_config::api::{ConnectionInfo, CreateTunnel, TunnelInfo};

pub(super) async fn info_of(ctx: &Ctx, t: &burrow_store::Tunnel) -> Result<TunnelInfo, ApiError> {
    let conns = ctx
        .store
        .live_connections(t.id, crate::cluster::members::now_ms())
        .await
        .map_err(ApiError::internal)?;
    Ok(TunnelInfo {
        id: t.id,
        name: t.name.clone(),
        account_id: t.account_id,
        created_at: t.created_at,
        connections: conns
            .into_iter()
            .map(|c| ConnectionInfo {
                id: c.id,
                tunnel_id: c.tunnel_id,
                connector_id: c.connector_id,
                conn_index: c.conn_index,
                colo: c.colo,
                node_id: c.node_id,
                protocol: c.protocol,
                origin_ip: c.origin_ip,
                version: c.version,
                since: c.since,
                seen_at: c.seen_at,
                wire: c.wire,
                kx: c.kx,
            })
            .collect(),
        credentials: None,
    })
}

/// The tunnel endpoints credentials list: this node's, then every other
/// live node's, so a connector can move to another node of the cluster.
fn edges(ctx: &Ctx) -> Vec<String> {
    let mut out = vec![ctx.id.tunnel_addr.to_string()];
    for n in ctx.members.live_nodes() {
        let advertised = n
            .tunnel_addr
            .parse::<std::net::SocketAddr>()
            .is_ok_and(|a| !a.ip().is_unspecified());
        if advertised && !out.contains(&n.tunnel_addr) {
            out.push(n.tunnel_addr.clone());
        }
    }
    out
}

pub(super) fn credentials(ctx: &Ctx, t: &burrow_store::Tunnel) -> Credentials {
    Credentials {
        account_id: t.account_id,
        tunnel_id: t.id,
        secret: SecretBytes(t.secret.clone()),
        tunnel_name: Some(t.name.clone()),
        edge_ca_pem: Some(ctx.id.ca_pem.clone()),
        edges: edges(ctx),
        edge_domain: Some(ctx.id.edge_domain.clone()),
    }
}

pub(super) fn credentials_value(c: &Credentials) -> Value {
    serde_json::from_str(&c.to_json()).expect("credentials JSON is valid")
}

pub(super) async fn create_tunnel(
    State(st): State<AdminState>,
    req: Result<Json<CreateTunnel>, JsonRejection>,
) -> Result<Response, ApiError> {
    let req = body(req)?;
    validate_name(&req.name)?;
    let (id, account_id, secret) = match &req.import {
        None => {
            let mut secret = vec![0u8; 32];
            rand::thread_rng().fill_bytes(&mut secret);
            (uuid::Uuid::new_v4(), st.ctx.id.account_id, secret)
        }
        Some(i) => {
            use base64::Engine;
            let secret = base64::engine::general_purpose::STANDARD
                .decode(i.secret.trim())
                .map_err(|_| ApiError::bad("import.secret", "not valid base64"))?;
            if !(16..=256).contains(&secret.len()) {
                return Err(ApiError::bad(
                    "import.secret",
                    format!("must decode to 16-256 bytes, got {}", secret.len()),
                ));
            }
            let taken = st.ctx.store.tunnel(i.tunnel_id).await;
            if taken.map_err(ApiError::internal)?.is_some() {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    Some("import.tunnel_id".into()),
                    format!("a tunnel with id {} exists already", i.tunnel_id),
                ));
            }
            (i.tunnel_id, i.account_tag, secret)
        }
    };
    let t = burrow_store::Tunnel {
        id,
        account_id,
        name: req.name,
        secret,
        created_at: unix_now(),
    };
    st.ctx
        .store
        .create_tunnel(&t)
        .await
        .map_err(ApiError::store("name", None))?;
    let imported = req.import.is_some();
    tracing::info!(tunnel_id = %t.id, name = %t.name, imported, "tunnel created");
    let mut v = info_of(&st.ctx, &t).await?;
    v.credentials = Some(credentials_value(&credentials(&st.ctx, &t)));
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

pub(super) async fn list_tunnels(
    State(st): State<AdminState>,
) -> Result<Json<Vec<TunnelInfo>>, ApiError> {
    let mut out = Vec::new();
    for t in st.ctx.store.tunnels().await.map_err(ApiError::internal)? {
        out.push(info_of(&st.ctx, &t).await?);
    }
    Ok(Json(out))
}

pub(super) async fn find_tunnel(ctx: &Ctx, r: &str) -> Result<burrow_store::Tunnel, ApiError> {
    ctx.store
        .tunnel_by_ref(r)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(&format!("tunnel '{r}'")))
}

pub(super) async fn tunnel_info(
    State(st): State<AdminState>,
    Path(r): Path<String>,
) -> Result<Json<TunnelInfo>, ApiError> {
    let t = find_tunnel(&st.ctx, &r).await?;
    Ok(Json(info_of(&st.ctx, &t).await?))
}

pub(super) async fn tunnel_credentials(
    State(st): State<AdminState>,
    Path(r): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let t = find_tunnel(&st.ctx, &r).await?;
    Err(ApiError::new(
        StatusCode::GONE,
        None,
        format!(
            "the edge keeps only a hash of tunnel {}'s secret, so it cannot show its credentials: \
             use the credentials file written by `tunnel create` (`burrow tunnel token {} --credentials-file FILE` \
             prints it as a token), or `burrow tunnel rotate-secret {}` for new ones",
            t.name, t.name, t.name
        ),
    ))
}

pub(super) async fn rotate_tunnel_secret(
    State(st): State<AdminState>,
    Path(r): Path<String>,
) -> Result<Response, ApiError> {
    let mut t = find_tunnel(&st.ctx, &r).await?;
    let mut secret = vec![0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    if !st
        .ctx
        .store
        .set_tunnel_secret(t.id, &secret)
        .await
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::not_found(&format!("tunnel '{r}'")));
    }
    t.secret = secret;
    tracing::info!(tunnel_id = %t.id, "tunnel secret rotated");
    let mut v = info_of(&st.ctx, &t).await?;
    v.credentials = Some(credentials_value(&credentials(&st.ctx, &t)));
    Ok(Json(v).into_response())
}

pub(super) async fn delete_tunnel(
    State(st): State<AdminState>,
    Path(r): Path<String>,
) -> Result<StatusCode, ApiError> {
    let t = find_tunnel(&st.ctx, &r).await?;
    st.ctx
        .store
        .delete_tunnel(t.id)
        .await
        .map_err(ApiError::internal)?;
    st.ctx.apps.running.sync(&st.ctx, &st.shutdown).await;
    tracing::info!(tunnel_id = %t.id, "tunnel deleted");
    Ok(StatusCode::NO_CONTENT)
}
