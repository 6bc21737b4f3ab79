//! Admin API for dedicated egress IPs and their colos
//! (`/api/v1/egress-ips`).

use super::api::{body, AdminState, ApiError};
use crate::unix_now;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use burrow_config::api::{CreateEgressIp, EgressIpInfo};

fn info(e: &burrow_store::EgressIp) -> EgressIpInfo {
    EgressIpInfo {
        ip: e.ip.clone(),
        colo: e.colo.clone(),
        created_at: e.created_at,
    }
}

pub(super) async fn create(
    State(st): State<AdminState>,
    req: Result<Json<CreateEgressIp>, JsonRejection>,
) -> Result<Response, ApiError> {
    let req = body(req)?;
    let ip: std::net::Ipv4Addr = req
        .ip
        .trim()
        .parse()
        .map_err(|_| ApiError::bad("ip", format!("'{}' is not an IPv4 address", req.ip)))?;
    burrow_config::edge::validate_colo(&req.colo).map_err(|e| ApiError::bad("colo", e.reason))?;
    let colo = req.colo;
    let e = burrow_store::EgressIp {
        ip: ip.to_string(),
        colo,
        created_at: unix_now(),
    };
    st.ctx
        .store
        .create_egress_ip(&e)
        .await
        .map_err(ApiError::store(
            "ip",
            Some(format!("{} is declared already; delete it first", e.ip)),
        ))?;
    tracing::info!(ip = %e.ip, colo = %e.colo, "egress IP declared");
    Ok((StatusCode::CREATED, Json(info(&e))).into_response())
}

pub(super) async fn list(
    State(st): State<AdminState>,
) -> Result<Json<Vec<EgressIpInfo>>, ApiError> {
    let all = st
        .ctx
        .store
        .egress_ips()
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(all.iter().map(info).collect()))
}

pub(super) async fn delete(
    State(st): State<AdminState>,
    Path(ip): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !st
        .ctx
        .store
        .delete_egress_ip(&ip)
        .await
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::not_found(&format!("egress IP '{ip}'")));
    }
    Ok(StatusCode::NO_CONTENT)
}
