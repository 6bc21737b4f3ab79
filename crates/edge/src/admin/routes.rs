//! Hostname routes of the public HTTP listeners: create, list, delete.

use super::api::{body, AdminState, ApiError};
use super::tunnels::find_tunnel;
use crate::unix_now;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use burrow_config::api::{CreateRoute, RouteInfo};

pub(super) fn route_info(r: &burrow_store::Route, tunnel_name: Option<&str>) -> RouteInfo {
    RouteInfo {
        hostname: r.hostname.clone(),
        tunnel_id: r.tunnel_id,
        tunnel: tunnel_name.map(str::to_owned),
        created_at: r.created_at,
    }
}

pub(super) async fn create_route(
    State(st): State<AdminState>,
    req: Result<Json<CreateRoute>, JsonRejection>,
) -> Result<Response, ApiError> {
    let req = body(req)?;
    let hostname = burrow_policy::routes::normalize_route(&req.hostname)
        .map_err(|e| ApiError::bad("hostname", format!("'{}': {e}", req.hostname)))?;
    let t = find_tunnel(&st.ctx, &req.tunnel)
        .await
        .map_err(|e| e.about("tunnel"))?;
    let route = burrow_store::Route {
        hostname,
        tunnel_id: t.id,
        created_at: unix_now(),
    };
    st.ctx
        .store
        .create_route(&route)
        .await
        .map_err(ApiError::store(
            "hostname",
            Some(format!(
                "'{}' is routed already; delete that route first",
                route.hostname
            )),
        ))?;
    tracing::info!(hostname = %route.hostname, tunnel_id = %t.id, "route created");
    Ok((StatusCode::CREATED, Json(route_info(&route, Some(&t.name)))).into_response())
}

pub(super) async fn list_routes(
    State(st): State<AdminState>,
) -> Result<Json<Vec<RouteInfo>>, ApiError> {
    let routes = st.ctx.store.routes().await.map_err(ApiError::internal)?;
    let tunnels = st.ctx.store.tunnels().await.map_err(ApiError::internal)?;
    Ok(Json(
        routes
            .iter()
            .map(|r| {
                let name = tunnels
                    .iter()
                    .find(|t| t.id == r.tunnel_id)
                    .map(|t| t.name.as_str());
                route_info(r, name)
            })
            .collect(),
    ))
}

pub(super) async fn delete_route(
    State(st): State<AdminState>,
    Path(hostname): Path<String>,
) -> Result<StatusCode, ApiError> {
    let h = burrow_policy::routes::normalize_route(&hostname)
        .map_err(|_| ApiError::not_found(&format!("route '{hostname}'")))?;
    if !st
        .ctx
        .store
        .delete_route(&h)
        .await
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::not_found(&format!("route '{hostname}'")));
    }
    Ok(StatusCode::NO_CONTENT)
}
