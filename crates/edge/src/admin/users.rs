//! Users: create, list, delete (with their devices).

use super::api::{body, config_error, AdminState, ApiError};
use crate::unix_now;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use burrow_config::api::{CreateUser, UserInfo};

/// A user as the API answers it.
pub(super) fn user_info(u: burrow_store::User) -> UserInfo {
    UserInfo {
        email: u.email,
        groups: u.groups,
        created_at: u.created_at,
    }
}

pub(super) async fn create_user(
    State(st): State<AdminState>,
    req: Result<Json<CreateUser>, JsonRejection>,
) -> Result<Response, ApiError> {
    use burrow_config::identity::{validate_email, validate_label};
    let req = body(req)?;
    let email = validate_email("email", &req.email).map_err(config_error)?;
    for (i, g) in req.groups.iter().enumerate() {
        validate_label(&format!("groups[{i}]"), g).map_err(config_error)?;
    }
    let user = burrow_store::User {
        email,
        groups: req.groups,
        created_at: unix_now(),
    };
    st.ctx
        .store
        .create_user(&user)
        .await
        .map_err(ApiError::store("email", None))?;
    tracing::info!(email = %user.email, "user added");
    Ok((StatusCode::CREATED, Json(user_info(user))).into_response())
}

pub(super) async fn list_users(
    State(st): State<AdminState>,
) -> Result<Json<Vec<UserInfo>>, ApiError> {
    let users = st.ctx.store.users().await.map_err(ApiError::internal)?;
    Ok(Json(users.into_iter().map(user_info).collect()))
}

pub(super) async fn delete_user(
    State(st): State<AdminState>,
    Path(email): Path<String>,
) -> Result<StatusCode, ApiError> {
    let email = email.to_ascii_lowercase();
    if !st
        .ctx
        .store
        .delete_user(&email)
        .await
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::not_found(&format!("user '{email}'")));
    }
    tracing::info!(user = %email, "user deleted");
    Ok(StatusCode::NO_CONTENT)
}
