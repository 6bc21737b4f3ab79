//! Apps: create, update live, list, get, delete; listeners start and stop with the rows.

use super::api::{body, AdminState, ApiError};
use super::tunnels::find_tunnel;
use crate::context::Ctx;
use crate::unix_now;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use burrow_config::api::AppInfo;
use burrow_config::app::{AppSpec, Origin, RawApp, TlsMode};
use std::sync::Arc;

pub(super) fn app_info(ctx: &Ctx, a: &burrow_store::App) -> Result<AppInfo, ApiError> {
    Ok(AppInfo {
        id: a.id,
        created_at: a.created_at,
        listen: ctx
            .apps
            .running
            .listen_addrs(a.id)
            .iter()
            .map(ToString::to_string)
            .collect(),
        tunnel_id: a.tunnel_id,
        spec: serde_json::from_str(&a.spec).map_err(ApiError::internal)?,
    })
}

/// Validates an app body and everything it refers to; `exclude` is the app
/// being updated (its own ports do not count as taken).
pub(super) async fn prepare(
    ctx: &Ctx,
    raw: &RawApp,
    exclude: Option<uuid::Uuid>,
) -> Result<(AppSpec, Option<uuid::Uuid>), ApiError> {
    let spec = raw
        .validate()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, Some(e.field), e.reason))?;
    if spec.tls != TlsMode::Off && ctx.files.app_tls.is_none() {
        return Err(ApiError::bad(
            "tls",
            "this edge has no app certificates; start it with --cert-dir DIR (NAME.pem + NAME.key)",
        ));
    }
    ctx.id
        .app_pools
        .addresses(uuid::Uuid::nil(), spec.connectivity)
        .map_err(|why| ApiError::bad("edge_ips.connectivity", why))?;
    let tunnel_id = match &spec.origin {
        Origin::Tunnel { tunnel, .. } => Some(
            find_tunnel(ctx, tunnel)
                .await
                .map_err(|e| e.about("origin_tunnel.tunnel"))?
                .id,
        ),
        _ => None,
    };
    // Edge ports of one protocol belong to one app.
    for other in ctx.store.apps().await.map_err(ApiError::internal)? {
        if Some(other.id) == exclude {
            continue;
        }
        let theirs = burrow_policy::ports::PortRange::new(other.port_start, other.port_end);
        if other.l4 == spec.l4.as_str() && theirs.is_some_and(|r| r.overlaps(spec.edge_ports)) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                Some("protocol".into()),
                format!(
                    "{}/{} overlaps app {} ({}/{}-{})",
                    spec.l4.as_str(),
                    spec.edge_ports,
                    other.id,
                    other.l4,
                    other.port_start,
                    other.port_end
                ),
            ));
        }
    }
    Ok((spec, tunnel_id))
}

pub(super) fn app_record(
    id: uuid::Uuid,
    raw: &RawApp,
    spec: &AppSpec,
    tunnel_id: Option<uuid::Uuid>,
    created_at: i64,
) -> Result<burrow_store::App, ApiError> {
    Ok(burrow_store::App {
        id,
        spec: serde_json::to_string(raw).map_err(ApiError::internal)?,
        l4: spec.l4.as_str().to_owned(),
        port_start: spec.edge_ports.start(),
        port_end: spec.edge_ports.end(),
        tunnel_id,
        created_at,
    })
}

pub(super) async fn create_app(
    State(st): State<AdminState>,
    req: Result<Json<RawApp>, JsonRejection>,
) -> Result<Response, ApiError> {
    let raw = body(req)?;
    let (spec, tunnel_id) = prepare(&st.ctx, &raw, None).await?;
    let _changing = st.ctx.apps.running.changing.lock().await;
    let id = uuid::Uuid::new_v4();
    let listeners = crate::apps::bind_all(&st.ctx, id, &spec)
        .await
        .map_err(|m| ApiError::new(StatusCode::CONFLICT, Some("protocol".into()), m))?;
    let app = app_record(id, &raw, &spec, tunnel_id, unix_now())?;
    st.ctx
        .store
        .create_app(&app)
        .await
        .map_err(ApiError::internal)?;
    let compiled = Arc::new(crate::apps::compiled::Compiled::new(
        app.id,
        spec,
        tunnel_id,
        app.spec.clone(),
    ));
    st.ctx
        .apps
        .running
        .adopt(&st.ctx, compiled, listeners, &st.shutdown);
    tracing::info!(app_id = %app.id, protocol = %raw.protocol, "app created");
    Ok((StatusCode::CREATED, Json(app_info(&st.ctx, &app)?)).into_response())
}

pub(super) async fn update_app(
    State(st): State<AdminState>,
    Path(id): Path<String>,
    req: Result<Json<RawApp>, JsonRejection>,
) -> Result<Json<AppInfo>, ApiError> {
    let old = find_app(&st.ctx, &id).await?;
    let raw = body(req)?;
    let (spec, tunnel_id) = prepare(&st.ctx, &raw, Some(old.id)).await?;
    let _changing = st.ctx.apps.running.changing.lock().await;
    let app = app_record(old.id, &raw, &spec, tunnel_id, old.created_at)?;
    let compiled = Arc::new(crate::apps::compiled::Compiled::new(
        app.id,
        spec,
        tunnel_id,
        app.spec.clone(),
    ));
    st.ctx
        .apps
        .running
        .replace(&st.ctx, compiled, &st.shutdown)
        .await
        .map_err(|m| ApiError::new(StatusCode::CONFLICT, Some("protocol".into()), m))?;
    st.ctx
        .store
        .update_app(&app)
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(app_id = %app.id, protocol = %raw.protocol, "app updated");
    Ok(Json(app_info(&st.ctx, &app)?))
}

pub(super) async fn list_apps(
    State(st): State<AdminState>,
) -> Result<Json<Vec<AppInfo>>, ApiError> {
    let apps = st.ctx.store.apps().await.map_err(ApiError::internal)?;
    Ok(Json(
        apps.iter()
            .map(|a| app_info(&st.ctx, a))
            .collect::<Result<_, _>>()?,
    ))
}

pub(super) async fn find_app(ctx: &Ctx, id: &str) -> Result<burrow_store::App, ApiError> {
    let uuid =
        uuid::Uuid::parse_str(id).map_err(|_| ApiError::not_found(&format!("app '{id}'")))?;
    ctx.store
        .apps()
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .find(|a| a.id == uuid)
        .ok_or_else(|| ApiError::not_found(&format!("app '{id}'")))
}

pub(super) async fn get_app(
    State(st): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<AppInfo>, ApiError> {
    let a = find_app(&st.ctx, &id).await?;
    Ok(Json(app_info(&st.ctx, &a)?))
}

pub(super) async fn delete_app(
    State(st): State<AdminState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let a = find_app(&st.ctx, &id).await?;
    let _changing = st.ctx.apps.running.changing.lock().await;
    st.ctx
        .store
        .delete_app(a.id)
        .await
        .map_err(ApiError::internal)?;
    st.ctx.apps.running.stop(a.id);
    Ok(StatusCode::NO_CONTENT)
}
