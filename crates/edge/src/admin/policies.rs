//! Admin API for single egress policy rules: add at a position, move,
//! delete (`/api/v1/policies/rules`). The whole list is replaced with
//! `PUT /api/v1/policies` (in the parent module).

use super::api::{body, config_error, AdminState, ApiError};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::Json;
use burrow_config::api::{AddPolicyRule, MovePolicyRule, PoliciesChanged, PoliciesSet};
use burrow_config::egress::Edit;
use burrow_config::egress::RawRule;
use serde_json::Value;

/// One edit at a time in this process (read, change, write back).
static EDITING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn apply(st: &AdminState, edit: Edit) -> Result<Json<PoliciesChanged>, ApiError> {
    let _one = EDITING.lock().await;
    let store = &st.ctx.store;
    let stored = store
        .meta(crate::tables::POLICIES_KEY)
        .await
        .map_err(ApiError::internal)?
        .unwrap_or_else(|| "[]".into());
    let list: Vec<Value> = serde_json::from_str(&stored).map_err(ApiError::internal)?;
    let list = burrow_config::egress::edit(list, edit).map_err(config_error)?;
    let text = Value::Array(list.clone()).to_string();
    store
        .set_meta(crate::tables::POLICIES_KEY, &text)
        .await
        .map_err(ApiError::internal)?;
    let rules = burrow_config::egress::parse_rules(&text).map_err(config_error)?;
    let lint: Vec<String> = burrow_policy::egress::lint(&rules)
        .iter()
        .map(ToString::to_string)
        .collect();
    tracing::info!(rules = rules.len(), "egress policies changed");
    Ok(Json(PoliciesChanged {
        rules: serde_json::from_str(&text).map_err(ApiError::internal)?,
        lint,
    }))
}

pub(super) async fn add_rule(
    State(st): State<AdminState>,
    req: Result<Json<AddPolicyRule>, JsonRejection>,
) -> Result<Json<PoliciesChanged>, ApiError> {
    let req = body(req)?;
    apply(
        &st,
        Edit::Add {
            rule: req.rule,
            position: req.position,
        },
    )
    .await
}

pub(super) async fn move_rule(
    State(st): State<AdminState>,
    Path(id): Path<String>,
    req: Result<Json<MovePolicyRule>, JsonRejection>,
) -> Result<Json<PoliciesChanged>, ApiError> {
    let req = body(req)?;
    apply(
        &st,
        Edit::Move {
            id,
            position: req.position,
        },
    )
    .await
}

pub(super) async fn delete_rule(
    State(st): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<PoliciesChanged>, ApiError> {
    apply(&st, Edit::Delete { id }).await
}

pub(super) async fn get_policies(
    State(st): State<AdminState>,
) -> Result<Json<Vec<RawRule>>, ApiError> {
    let json = st
        .ctx
        .store
        .meta(crate::tables::POLICIES_KEY)
        .await
        .map_err(ApiError::internal)?
        .unwrap_or_else(|| "[]".into());
    Ok(Json(
        serde_json::from_str(&json).map_err(ApiError::internal)?,
    ))
}

/// Replaces the whole ordered list (first match wins).
pub(super) async fn put_policies(
    State(st): State<AdminState>,
    req: Result<Json<Value>, JsonRejection>,
) -> Result<Json<PoliciesSet>, ApiError> {
    let v = body(req)?;
    let text = v.to_string();
    let rules = burrow_config::egress::parse_rules(&text).map_err(config_error)?;
    st.ctx
        .store
        .set_meta(crate::tables::POLICIES_KEY, &text)
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(rules = rules.len(), "egress policies replaced");
    let findings: Vec<String> = burrow_policy::egress::lint(&rules)
        .iter()
        .map(ToString::to_string)
        .collect();
    Ok(Json(PoliciesSet {
        rules: rules.len(),
        lint: findings,
    }))
}
