//! IP access rules: create, list, delete.

use super::api::{body, AdminState, ApiError};
use crate::unix_now;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use burrow_config::api::{AccessRuleInfo, CreateAccessRule};

pub(super) fn access_rule_info(r: &burrow_store::AccessRule) -> AccessRuleInfo {
    AccessRuleInfo {
        id: r.id,
        mode: r.mode.clone(),
        target: r.target.clone(),
        value: r.value.clone(),
        created_at: r.created_at,
        warning: None,
    }
}

pub(super) async fn create_access_rule(
    State(st): State<AdminState>,
    req: Result<Json<CreateAccessRule>, JsonRejection>,
) -> Result<Response, ApiError> {
    let req = body(req)?;
    let id = uuid::Uuid::new_v4();
    burrow_policy::access::Rule::parse(&id.to_string(), &req.mode, &req.target, &req.value)
        .map_err(|e| ApiError::bad(e.field, e.reason))?;
    let rule = burrow_store::AccessRule {
        id,
        mode: req.mode,
        target: req.target,
        value: req.value.trim().to_owned(),
        created_at: unix_now(),
    };
    st.ctx
        .store
        .create_access_rule(&rule)
        .await
        .map_err(ApiError::internal)?;
    let mut v = access_rule_info(&rule);
    if !st.ctx.files.geoip.load().has(&rule.target) {
        v.warning = Some(format!(
            "this edge has no --geoip-{} file, so the rule cannot match yet",
            rule.target
        ));
    }
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

pub(super) async fn list_access_rules(
    State(st): State<AdminState>,
) -> Result<Json<Vec<AccessRuleInfo>>, ApiError> {
    let rules = st
        .ctx
        .store
        .access_rules()
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(rules.iter().map(access_rule_info).collect()))
}

pub(super) async fn delete_access_rule(
    State(st): State<AdminState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let uuid = uuid::Uuid::parse_str(&id)
        .map_err(|_| ApiError::not_found(&format!("access rule '{id}'")))?;
    if !st
        .ctx
        .store
        .delete_access_rule(uuid)
        .await
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::not_found(&format!("access rule '{id}'")));
    }
    Ok(StatusCode::NO_CONTENT)
}
