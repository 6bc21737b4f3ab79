//! The admin API (axum). Binds to loopback by default. Every `/v1/` route
//! requires `Authorization: Bearer <token>` (compared in constant time);
//! `/healthcheck` and `/ready` do not. Errors are JSON objects
//! `{"error": "...", "field": "..."}` where `field` names the offending body
//! field when there is one.
//!
//! Routes:
//! - `POST /v1/tunnels` `{"name"}` → 201 tunnel with `credentials`
//! - `GET /v1/tunnels`, `GET /v1/tunnels/{name-or-id}` (with live connections)
//! - `GET /v1/tunnels/{name-or-id}/credentials`
//! - `DELETE /v1/tunnels/{name-or-id}`
//! - `POST /v1/apps` `{"protocol": "tcp/PORT", "tunnel", "hostname"}` → 201 app
//! - `GET /v1/apps`, `DELETE /v1/apps/{id}`

use crate::{unix_now, Shared, CONNECTION_FRESHNESS};
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use burrow_config::credentials::{Credentials, SecretBytes};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

/// Largest request body accepted.
const BODY_LIMIT: usize = 64 * 1024;

#[derive(Clone)]
pub(crate) struct AdminState {
    pub(crate) shared: Arc<Shared>,
    pub(crate) shutdown: CancellationToken,
}

/// An API error: status, message and the field it is about.
pub(crate) struct ApiError {
    status: StatusCode,
    field: Option<&'static str>,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, field: Option<&'static str>, message: impl Into<String>) -> Self {
        Self {
            status,
            field,
            message: message.into(),
        }
    }
    fn bad(field: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(field), message)
    }
    fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, None, format!("{what} not found"))
    }
    fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "admin API internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "internal error; see the edge log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.field {
            Some(f) => json!({"error": self.message, "field": f}),
            None => json!({"error": self.message}),
        };
        (self.status, Json(body)).into_response()
    }
}

fn body<T>(r: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    r.map(|Json(t)| t)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, None, e.body_text()))
}

pub(crate) fn router(state: AdminState) -> Router {
    let v1 = Router::new()
        .route("/v1/tunnels", post(create_tunnel).get(list_tunnels))
        .route(
            "/v1/tunnels/{tunnel}",
            get(tunnel_info).delete(delete_tunnel),
        )
        .route("/v1/tunnels/{tunnel}/credentials", get(tunnel_credentials))
        .route("/v1/apps", post(create_app).get(list_apps))
        .route("/v1/apps/{id}", axum::routing::delete(delete_app))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .route("/healthcheck", get(|| async { "OK\n" }))
        .route("/ready", get(ready))
        .merge(v1)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

async fn auth(State(st): State<AdminState>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let ok: bool = given
        .as_bytes()
        .ct_eq(st.shared.admin_token.expose().as_bytes())
        .into();
    if !ok {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            None,
            "missing or wrong admin token (Authorization: Bearer <token>)",
        )
        .into_response();
    }
    next.run(req).await
}

async fn ready(State(st): State<AdminState>) -> Response {
    if st.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    "OK\n".into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTunnel {
    name: String,
}

fn validate_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(ApiError::bad(
            "name",
            "must be 1-64 letters, digits, '-', '_' or '.'",
        ));
    }
    Ok(())
}

async fn tunnel_json(shared: &Shared, t: &burrow_store::Tunnel) -> Result<Value, ApiError> {
    let conns = shared
        .store
        .connections(t.id, unix_now() - CONNECTION_FRESHNESS)
        .await
        .map_err(ApiError::internal)?;
    Ok(json!({
        "id": t.id,
        "name": t.name,
        "account_id": t.account_id,
        "created_at": t.created_at,
        "connections": conns,
    }))
}

fn credentials(shared: &Shared, t: &burrow_store::Tunnel) -> Credentials {
    Credentials {
        account_id: t.account_id,
        tunnel_id: t.id,
        secret: SecretBytes(t.secret.clone()),
        tunnel_name: Some(t.name.clone()),
        edge_ca_pem: Some(shared.ca_pem.clone()),
        edges: vec![shared.tunnel_addr.to_string()],
        edge_domain: Some(shared.edge_domain.clone()),
    }
}

fn credentials_value(c: &Credentials) -> Value {
    serde_json::from_str(&c.to_json()).expect("credentials JSON is valid")
}

async fn create_tunnel(
    State(st): State<AdminState>,
    req: Result<Json<CreateTunnel>, JsonRejection>,
) -> Result<Response, ApiError> {
    let req = body(req)?;
    validate_name(&req.name)?;
    let mut secret = vec![0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    let t = burrow_store::Tunnel {
        id: uuid::Uuid::new_v4(),
        account_id: st.shared.account_id,
        name: req.name,
        secret,
        created_at: unix_now(),
    };
    st.shared
        .store
        .create_tunnel(&t)
        .await
        .map_err(|e| match e {
            burrow_store::StoreError::Exists { .. } => {
                ApiError::new(StatusCode::CONFLICT, Some("name"), e.to_string())
            }
            e => ApiError::internal(e),
        })?;
    tracing::info!(tunnel_id = %t.id, name = %t.name, "tunnel created");
    let mut v = tunnel_json(&st.shared, &t).await?;
    v["credentials"] = credentials_value(&credentials(&st.shared, &t));
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn list_tunnels(State(st): State<AdminState>) -> Result<Json<Value>, ApiError> {
    let mut out = Vec::new();
    for t in st
        .shared
        .store
        .tunnels()
        .await
        .map_err(ApiError::internal)?
    {
        out.push(tunnel_json(&st.shared, &t).await?);
    }
    Ok(Json(Value::Array(out)))
}

async fn find_tunnel(shared: &Shared, r: &str) -> Result<burrow_store::Tunnel, ApiError> {
    shared
        .store
        .tunnel_by_ref(r)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(&format!("tunnel '{r}'")))
}

async fn tunnel_info(
    State(st): State<AdminState>,
    Path(r): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let t = find_tunnel(&st.shared, &r).await?;
    Ok(Json(tunnel_json(&st.shared, &t).await?))
}

async fn tunnel_credentials(
    State(st): State<AdminState>,
    Path(r): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let t = find_tunnel(&st.shared, &r).await?;
    Ok(Json(credentials_value(&credentials(&st.shared, &t))))
}

async fn delete_tunnel(
    State(st): State<AdminState>,
    Path(r): Path<String>,
) -> Result<StatusCode, ApiError> {
    let t = find_tunnel(&st.shared, &r).await?;
    st.shared
        .store
        .delete_tunnel(t.id)
        .await
        .map_err(ApiError::internal)?;
    st.shared.apps.sync(&st.shared, &st.shutdown).await;
    tracing::info!(tunnel_id = %t.id, "tunnel deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateApp {
    protocol: String,
    tunnel: String,
    #[serde(default)]
    hostname: Option<String>,
}

/// Parses `tcp/PORT` into the port (0 asks for any free port).
pub(crate) fn parse_app_protocol(p: &str) -> Result<u16, String> {
    let Some((proto, ports)) = p.split_once('/') else {
        return Err(format!("'{p}' must look like tcp/PORT, e.g. tcp/2222"));
    };
    if proto != "tcp" {
        return Err(format!(
            "protocol '{proto}' is not supported yet through a tunnel (only tcp)"
        ));
    }
    if ports.contains('-') {
        return Err("port ranges are not supported yet for tunnel apps; give one port".into());
    }
    ports
        .parse::<u16>()
        .map_err(|_| format!("'{ports}' is not a port number (0-65535; 0 picks a free port)"))
}

async fn create_app(
    State(st): State<AdminState>,
    req: Result<Json<CreateApp>, JsonRejection>,
) -> Result<Response, ApiError> {
    let req = body(req)?;
    let port = parse_app_protocol(&req.protocol).map_err(|m| ApiError::bad("protocol", m))?;
    let hostname = req.hostname.unwrap_or_default();
    if !hostname.is_empty() {
        burrow_policy::host::HostPattern::parse(&hostname)
            .map_err(|e| ApiError::bad("hostname", e.to_string()))?;
    }
    let t = find_tunnel(&st.shared, &req.tunnel)
        .await
        .map_err(|e| ApiError {
            field: Some("tunnel"),
            ..e
        })?;
    let listener = crate::apps::bind(st.shared.app_address, port)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::CONFLICT,
                Some("protocol"),
                format!("cannot listen on {}:{port}: {e}", st.shared.app_address),
            )
        })?;
    let bound = listener.local_addr().map_err(ApiError::internal)?;
    let app = burrow_store::App {
        id: uuid::Uuid::new_v4(),
        protocol: "tcp".into(),
        port_start: bound.port(),
        port_end: bound.port(),
        tunnel_id: t.id,
        hostname,
        created_at: unix_now(),
    };
    st.shared
        .store
        .create_app(&app)
        .await
        .map_err(ApiError::internal)?;
    st.shared
        .apps
        .adopt(&st.shared, app.clone(), listener, &st.shutdown);
    let mut v = serde_json::to_value(&app).map_err(ApiError::internal)?;
    v["listen"] = json!(bound.to_string());
    v["tunnel"] = json!(t.name);
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn list_apps(State(st): State<AdminState>) -> Result<Json<Value>, ApiError> {
    let apps = st.shared.store.apps().await.map_err(ApiError::internal)?;
    let mut out = Vec::new();
    for a in apps {
        let mut v = serde_json::to_value(&a).map_err(ApiError::internal)?;
        v["listen"] =
            json!(std::net::SocketAddr::new(st.shared.app_address, a.port_start).to_string());
        out.push(v);
    }
    Ok(Json(Value::Array(out)))
}

async fn delete_app(
    State(st): State<AdminState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = uuid::Uuid::parse_str(&id)
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, None, format!("app '{id}' not found")))?;
    if !st
        .shared
        .store
        .delete_app(id)
        .await
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::not_found(&format!("app '{id}'")));
    }
    st.shared.apps.stop(id);
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_protocol_parsing() {
        assert_eq!(parse_app_protocol("tcp/2222"), Ok(2222));
        assert_eq!(parse_app_protocol("tcp/0"), Ok(0));
        assert!(parse_app_protocol("udp/53")
            .unwrap_err()
            .contains("not supported"));
        assert!(parse_app_protocol("tcp/1-2")
            .unwrap_err()
            .contains("ranges"));
        assert!(parse_app_protocol("tcp/x")
            .unwrap_err()
            .contains("not a port"));
        assert!(parse_app_protocol("2222").unwrap_err().contains("tcp/PORT"));
    }
}
