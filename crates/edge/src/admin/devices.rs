//! Devices of zero-trust clients: enroll (with credentials), list, revoke.

use super::api::{body, config_error, AdminState, ApiError};
use crate::unix_now;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use burrow_config::credentials::SecretBytes;
use rand::RngCore;

use burrow_config::api::{DeviceInfo, EnrollDevice};

/// A device as the API answers it (never its secret).
pub(super) fn device_info(d: &burrow_store::Device) -> DeviceInfo {
    DeviceInfo {
        id: d.id,
        user_email: d.user_email.clone(),
        name: d.name.clone(),
        revoked: d.revoked,
        created_at: d.created_at,
        credentials: None,
    }
}

pub(super) async fn enroll_device(
    State(st): State<AdminState>,
    req: Result<Json<EnrollDevice>, JsonRejection>,
) -> Result<Response, ApiError> {
    use burrow_config::identity::{validate_email, validate_label, DeviceCredentials};
    let req = body(req)?;
    let email = validate_email("user", &req.user).map_err(config_error)?;
    validate_label("name", &req.name).map_err(config_error)?;
    let user = st
        .ctx
        .store
        .user(&email)
        .await
        .map_err(ApiError::internal)?;
    if user.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            Some("user".into()),
            format!("user '{email}' not found; add it with `burrow user add {email}`"),
        ));
    }
    let mut secret = vec![0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    let device = burrow_store::Device {
        id: uuid::Uuid::new_v4(),
        user_email: email,
        name: req.name,
        secret,
        revoked: false,
        created_at: unix_now(),
    };
    st.ctx
        .store
        .create_device(&device)
        .await
        .map_err(ApiError::internal)?;
    let creds = DeviceCredentials {
        account_id: st.ctx.id.account_id,
        device_id: device.id,
        user_email: device.user_email.clone(),
        secret: SecretBytes(device.secret.clone()),
        edge_ca_pem: Some(st.ctx.id.ca_pem.clone()),
        edges: vec![st.ctx.id.tunnel_addr.to_string()],
        edge_domain: Some(st.ctx.id.edge_domain.clone()),
    };
    tracing::info!(device_id = %device.id, user = %device.user_email, "device enrolled");
    let mut info = device_info(&device);
    info.credentials = Some(serde_json::from_str(&creds.to_json()).map_err(ApiError::internal)?);
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

pub(super) async fn list_devices(
    State(st): State<AdminState>,
) -> Result<Json<Vec<DeviceInfo>>, ApiError> {
    let devices = st.ctx.store.devices().await.map_err(ApiError::internal)?;
    Ok(Json(devices.iter().map(device_info).collect()))
}

pub(super) async fn revoke_device(
    State(st): State<AdminState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let uuid =
        uuid::Uuid::parse_str(&id).map_err(|_| ApiError::not_found(&format!("device '{id}'")))?;
    if !st
        .ctx
        .store
        .revoke_device(uuid)
        .await
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::not_found(&format!("device '{id}'")));
    }
    tracing::info!(device_id = %uuid, "device revoked");
    Ok(StatusCode::NO_CONTENT)
}
