//! Admin API for private networks: virtual networks (`/api/v1/vnets`) and
//! IP routes into tunnels (`/api/v1/ip-routes`).

use super::api::{body, AdminState, ApiError};
use super::tunnels::find_tunnel;
use crate::unix_now;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use burrow_config::api::{CreateIpRoute, CreateVnet, IpRouteInfo, VnetAccess, VnetInfo};
use serde::Deserialize;

fn vnet_info(v: &burrow_store::Vnet) -> VnetInfo {
    VnetInfo {
        id: v.id,
        name: v.name.clone(),
        default: v.is_default,
        comment: v.comment.clone(),
        created_at: v.created_at,
        allow_users: v.allow_users.clone(),
        allow_groups: v.allow_groups.clone(),
    }
}

/// Validated (lower-case emails, checked group names) access lists.
fn access_lists(
    users: &[String],
    groups: &[String],
    at: &str,
) -> Result<(Vec<String>, Vec<String>), ApiError> {
    use burrow_config::identity::{validate_email, validate_label};
    let users = users
        .iter()
        .enumerate()
        .map(|(i, u)| validate_email(&format!("{at}users[{i}]"), u))
        .collect::<Result<Vec<_>, _>>()
        .map_err(super::api::config_error)?;
    for (i, g) in groups.iter().enumerate() {
        validate_label(&format!("{at}groups[{i}]"), g).map_err(super::api::config_error)?;
    }
    Ok((users, groups.to_vec()))
}

pub(super) async fn set_vnet_access(
    State(st): State<AdminState>,
    Path(name): Path<String>,
    req: Result<Json<VnetAccess>, JsonRejection>,
) -> Result<Json<VnetInfo>, ApiError> {
    let req = body(req)?;
    let (users, groups) = access_lists(&req.users, &req.groups, "")?;
    if !st
        .ctx
        .store
        .set_vnet_access(&name, &users, &groups)
        .await
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::not_found(&format!("virtual network '{name}'")));
    }
    // Clients on this vnet that may no longer use it are disconnected.
    tracing::info!(vnet = %name, ?users, ?groups, "virtual network access set");
    let v = find_vnet(&st, Some(&name)).await?;
    Ok(Json(vnet_info(&v)))
}

fn check_comment(comment: &str) -> Result<(), ApiError> {
    if comment.len() > 256 || comment.chars().any(char::is_control) {
        return Err(ApiError::bad(
            "comment",
            "must be at most 256 characters, without control characters",
        ));
    }
    Ok(())
}

pub(super) async fn create_vnet(
    State(st): State<AdminState>,
    req: Result<Json<CreateVnet>, JsonRejection>,
) -> Result<Response, ApiError> {
    let req = body(req)?;
    burrow_config::identity::validate_label("name", &req.name).map_err(super::api::config_error)?;
    check_comment(&req.comment)?;
    let (allow_users, allow_groups) = access_lists(&req.allow_users, &req.allow_groups, "allow_")?;
    let v = burrow_store::Vnet {
        id: uuid::Uuid::new_v4(),
        name: req.name,
        is_default: req.default,
        comment: req.comment,
        created_at: unix_now(),
        allow_users,
        allow_groups,
    };
    st.ctx
        .store
        .create_vnet(&v)
        .await
        .map_err(ApiError::store("name", None))?;
    tracing::info!(vnet = %v.name, default = v.is_default, "virtual network created");
    Ok((StatusCode::CREATED, Json(vnet_info(&v))).into_response())
}

pub(super) async fn list_vnets(
    State(st): State<AdminState>,
) -> Result<Json<Vec<VnetInfo>>, ApiError> {
    let v = st.ctx.store.vnets().await.map_err(ApiError::internal)?;
    Ok(Json(v.iter().map(vnet_info).collect()))
}

pub(super) async fn delete_vnet(
    State(st): State<AdminState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !st
        .ctx
        .store
        .delete_vnet(&name)
        .await
        .map_err(ApiError::store("name", None))?
    {
        return Err(ApiError::not_found(&format!("virtual network '{name}'")));
    }
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn make_default_vnet(
    State(st): State<AdminState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !st
        .ctx
        .store
        .set_default_vnet(&name)
        .await
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::not_found(&format!("virtual network '{name}'")));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The vnet named `name`, or the default one.
async fn find_vnet(st: &AdminState, name: Option<&str>) -> Result<burrow_store::Vnet, ApiError> {
    let all = st.ctx.store.vnets().await.map_err(ApiError::internal)?;
    match name {
        Some(n) => all.into_iter().find(|v| v.name == n).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                Some("vnet".into()),
                format!("virtual network '{n}' not found (see burrow vnet list)"),
            )
        }),
        None => all
            .into_iter()
            .find(|v| v.is_default)
            .ok_or_else(|| ApiError::internal("no default virtual network")),
    }
}

fn ip_route_info(
    r: &burrow_store::IpRoute,
    tunnels: &[burrow_store::Tunnel],
    vnets: &[burrow_store::Vnet],
) -> IpRouteInfo {
    let tunnel = tunnels
        .iter()
        .find(|t| t.id == r.tunnel_id)
        .map(|t| &t.name);
    let vnet = vnets.iter().find(|v| v.id == r.vnet_id).map(|v| &v.name);
    IpRouteInfo {
        id: r.id,
        network: r.network.clone(),
        tunnel_id: r.tunnel_id,
        tunnel: tunnel.cloned(),
        vnet_id: r.vnet_id,
        vnet: vnet.cloned(),
        comment: r.comment.clone(),
        created_at: r.created_at,
    }
}

pub(super) async fn create_ip_route(
    State(st): State<AdminState>,
    req: Result<Json<CreateIpRoute>, JsonRejection>,
) -> Result<Response, ApiError> {
    let req = body(req)?;
    let network = burrow_policy::ip_routes::parse_network(&req.network)
        .map_err(|e| ApiError::bad("network", e))?;
    check_comment(&req.comment)?;
    let t = find_tunnel(&st.ctx, &req.tunnel)
        .await
        .map_err(|e| e.about("tunnel"))?;
    let v = find_vnet(&st, req.vnet.as_deref()).await?;
    let r = burrow_store::IpRoute {
        id: uuid::Uuid::new_v4(),
        network: network.to_string(),
        tunnel_id: t.id,
        vnet_id: v.id,
        comment: req.comment,
        created_at: unix_now(),
    };
    st.ctx
        .store
        .create_ip_route(&r)
        .await
        .map_err(ApiError::store(
            "network",
            Some(format!(
                "{} is routed already in virtual network '{}'; delete that route first",
                r.network, v.name
            )),
        ))?;
    tracing::info!(network = %r.network, tunnel_id = %t.id, vnet = %v.name, "IP route created");
    Ok((StatusCode::CREATED, Json(ip_route_info(&r, &[t], &[v]))).into_response())
}

pub(super) async fn list_ip_routes(
    State(st): State<AdminState>,
) -> Result<Json<Vec<IpRouteInfo>>, ApiError> {
    let store = &st.ctx.store;
    let routes = store.ip_routes().await.map_err(ApiError::internal)?;
    let tunnels = store.tunnels().await.map_err(ApiError::internal)?;
    let vnets = store.vnets().await.map_err(ApiError::internal)?;
    Ok(Json(
        routes
            .iter()
            .map(|r| ip_route_info(r, &tunnels, &vnets))
            .collect(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeleteIpRoute {
    vnet: Option<String>,
}

/// `DELETE /api/v1/ip-routes/{network}?vnet=NAME`, the network written with
/// `-` for `/` (`10.0.0.0-8`) or URL-encoded.
pub(super) async fn delete_ip_route(
    State(st): State<AdminState>,
    Path(network): Path<String>,
    q: axum::extract::Query<DeleteIpRoute>,
) -> Result<StatusCode, ApiError> {
    let text = match network.rsplit_once('-') {
        Some((ip, len)) if !network.contains('/') => format!("{ip}/{len}"),
        _ => network.clone(),
    };
    let net =
        burrow_policy::ip_routes::parse_network(&text).map_err(|e| ApiError::bad("network", e))?;
    let v = find_vnet(&st, q.vnet.as_deref()).await?;
    if !st
        .ctx
        .store
        .delete_ip_route(&net.to_string(), v.id)
        .await
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::not_found(&format!(
            "route of {net} in virtual network '{}'",
            v.name
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}
