//! The admin API (axum). Binds to loopback by default. Every `/api/v1/` route
//! requires `Authorization: Bearer <token>` (compared in constant time);
//! `/healthcheck` and `/ready` do not. Errors are JSON objects
//! `{"error": "...", "field": "..."}` where `field` names the offending body
//! field when there is one.
//!
//! `GET /metrics` (no token) is the Prometheus text exposition.
//!
//! Routes:
//! - `POST /api/v1/tunnels` `{"name"}` → 201 tunnel with `credentials`
//! - `GET /api/v1/tunnels`, `GET /api/v1/tunnels/{name-or-id}` (with live connections)
//! - `GET /api/v1/tunnels/{name-or-id}/credentials` → 410 (secrets are
//!   stored hashed; the credentials exist only where `create` wrote them); `POST
//!   /api/v1/tunnels/{name-or-id}/rotate-secret` → new `credentials` (the
//!   old secret's connectors are disconnected)
//! - `DELETE /api/v1/tunnels/{name-or-id}`
//! - `POST /api/v1/apps` with a Spectrum-shaped body (see
//!   `burrow_config::app`) → 201 app with its `listen` addresses
//! - `GET /api/v1/apps`, `GET /api/v1/apps/{id}`, `DELETE /api/v1/apps/{id}`
//! - `PUT /api/v1/apps/{id}` with a whole new body: applied live; same
//!   edge ports are swapped in place, other ports are rebound; open
//!   connections of this and every other app continue
//! - `POST /api/v1/access-rules` `{"mode": "allow|block", "target":
//!   "ip|ip_range|country|asn", "value"}`, `GET`, `DELETE /api/v1/access-rules/{id}`
//! - `POST /api/v1/users` `{"email", "groups": [..]}`, `GET`,
//!   `DELETE /api/v1/users/{email}` (and its devices)
//! - `POST /api/v1/devices` `{"user", "name"}` → 201 device with
//!   `credentials`; `GET`; `POST /api/v1/devices/{id}/revoke`
//! - `POST /api/v1/routes` `{"hostname", "tunnel"}` (hostname exact or
//!   `*.example.com`), `GET`, `DELETE /api/v1/routes/{hostname}`
//! - `GET /api/v1/policies`, `PUT` (the whole ordered list);
//!   `POST /api/v1/policies/rules` `{"rule", "position"}` (1-based; the
//!   end by default), `POST /api/v1/policies/rules/{id}/move`
//!   `{"position"}`, `DELETE /api/v1/policies/rules/{id}`: each answers the
//!   new list and its lint findings
//! - `POST /api/v1/egress-ips` `{"ip", "colo"}`, `GET`,
//!   `DELETE /api/v1/egress-ips/{ip}`
//! - `POST /api/v1/vnets` `{"name", "comment", "default"}`, `GET`,
//!   `DELETE /api/v1/vnets/{name}`, `PUT /api/v1/vnets/{name}/default`,
//!   `PUT /api/v1/vnets/{name}/access` `{"users", "groups"}` (who may use
//!   a non-default vnet; nobody until set)
//! - `POST /api/v1/ip-routes` `{"network", "tunnel", "vnet", "comment"}`
//!   (`vnet` defaults to the default vnet), `GET`,
//!   `DELETE /api/v1/ip-routes/{network}?vnet=NAME` (`10.0.0.0-8` for
//!   `10.0.0.0/8`)

mod egress_ips;
mod policies;
mod private;
pub(crate) mod token;

use crate::context::Ctx;
use crate::{unix_now, CONNECTION_FRESHNESS};
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use burrow_config::app::{AppSpec, Origin, RawApp, TlsMode};
use burrow_config::credentials::{Credentials, SecretBytes};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Largest request body accepted.
const BODY_LIMIT: usize = 64 * 1024;

#[derive(Clone)]
pub(crate) struct AdminState {
    pub(crate) ctx: Arc<Ctx>,
    pub(crate) shutdown: CancellationToken,
}

/// An API error: status, message and the field it is about.
pub(crate) struct ApiError {
    status: StatusCode,
    field: Option<String>,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, field: Option<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            field,
            message: message.into(),
        }
    }
    fn bad(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(field.to_owned()), message)
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
    r.map(|Json(t)| t).map_err(|e| {
        // A body over the limit is 413 (axum says so in the rejection's
        // status), every other unreadable body 400.
        let status = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError::new(status, None, e.body_text())
    })
}

pub(crate) fn router(state: AdminState) -> Router {
    let v1 = Router::new()
        .route("/api/v1/tunnels", post(create_tunnel).get(list_tunnels))
        .route(
            "/api/v1/tunnels/{tunnel}",
            get(tunnel_info).delete(delete_tunnel),
        )
        .route(
            "/api/v1/tunnels/{tunnel}/credentials",
            get(tunnel_credentials),
        )
        .route(
            "/api/v1/tunnels/{tunnel}/rotate-secret",
            post(rotate_tunnel_secret),
        )
        .route("/api/v1/apps", post(create_app).get(list_apps))
        .route(
            "/api/v1/apps/{id}",
            get(get_app).put(update_app).delete(delete_app),
        )
        .route(
            "/api/v1/access-rules",
            post(create_access_rule).get(list_access_rules),
        )
        .route(
            "/api/v1/access-rules/{id}",
            axum::routing::delete(delete_access_rule),
        )
        .route("/api/v1/routes", post(create_route).get(list_routes))
        .route(
            "/api/v1/vnets",
            post(private::create_vnet).get(private::list_vnets),
        )
        .route(
            "/api/v1/vnets/{name}",
            axum::routing::delete(private::delete_vnet),
        )
        .route(
            "/api/v1/vnets/{name}/default",
            axum::routing::put(private::make_default_vnet),
        )
        .route(
            "/api/v1/vnets/{name}/access",
            axum::routing::put(private::set_vnet_access),
        )
        .route(
            "/api/v1/ip-routes",
            post(private::create_ip_route).get(private::list_ip_routes),
        )
        .route(
            "/api/v1/ip-routes/{network}",
            axum::routing::delete(private::delete_ip_route),
        )
        .route("/api/v1/users", post(create_user).get(list_users))
        .route("/api/v1/policies", get(get_policies).put(put_policies))
        .route(
            "/api/v1/egress-ips",
            post(egress_ips::create).get(egress_ips::list),
        )
        .route(
            "/api/v1/egress-ips/{ip}",
            axum::routing::delete(egress_ips::delete),
        )
        .route("/api/v1/policies/rules", post(policies::add_rule))
        .route(
            "/api/v1/policies/rules/{id}",
            axum::routing::delete(policies::delete_rule),
        )
        .route(
            "/api/v1/policies/rules/{id}/move",
            post(policies::move_rule),
        )
        .route("/api/v1/users/{email}", axum::routing::delete(delete_user))
        .route("/api/v1/devices", post(enroll_device).get(list_devices))
        .route("/api/v1/devices/{id}/revoke", post(revoke_device))
        .route(
            "/api/v1/routes/{hostname}",
            axum::routing::delete(delete_route),
        )
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .route("/healthcheck", get(|| async { "OK\n" }))
        .route("/metrics", get(metrics))
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
    let ok = burrow_store::secret::verify(&st.ctx.id.admin_token_hash, given.as_bytes());
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

/// OpenMetrics when the scraper asks for it (Prometheus does), else the
/// classic text format (curl, promtool).
async fn metrics(State(st): State<AdminState>, headers: axum::http::HeaderMap) -> Response {
    use burrow_transport::exposition as x;
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    // Read at scrape time: the writer drains it between records.
    st.ctx
        .telemetry
        .metrics
        .session_log_queue
        .set(i64::try_from(st.ctx.telemetry.session_log.queued()).unwrap_or(i64::MAX));
    let text = st.ctx.telemetry.metrics.encode();
    let (ctype, body) = if x::wants_openmetrics(accept) {
        (x::OPENMETRICS, text)
    } else {
        (x::PROMETHEUS_TEXT, x::to_prometheus_text(&text))
    };
    ([(axum::http::header::CONTENT_TYPE, ctype)], body).into_response()
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
    if name.bytes().all(|b| b == b'.') {
        return Err(ApiError::bad(
            "name",
            "'.' and '..' are not names (they are path segments)",
        ));
    }
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

async fn tunnel_json(ctx: &Ctx, t: &burrow_store::Tunnel) -> Result<Value, ApiError> {
    let conns = ctx
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

fn credentials(ctx: &Ctx, t: &burrow_store::Tunnel) -> Credentials {
    Credentials {
        account_id: t.account_id,
        tunnel_id: t.id,
        secret: SecretBytes(t.secret.clone()),
        tunnel_name: Some(t.name.clone()),
        edge_ca_pem: Some(ctx.id.ca_pem.clone()),
        edges: vec![ctx.id.tunnel_addr.to_string()],
        edge_domain: Some(ctx.id.edge_domain.clone()),
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
        account_id: st.ctx.id.account_id,
        name: req.name,
        secret,
        created_at: unix_now(),
    };
    st.ctx.store.create_tunnel(&t).await.map_err(|e| match e {
        burrow_store::StoreError::Exists { .. } => {
            ApiError::new(StatusCode::CONFLICT, Some("name".into()), e.to_string())
        }
        e => ApiError::internal(e),
    })?;
    tracing::info!(tunnel_id = %t.id, name = %t.name, "tunnel created");
    let mut v = tunnel_json(&st.ctx, &t).await?;
    v["credentials"] = credentials_value(&credentials(&st.ctx, &t));
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn list_tunnels(State(st): State<AdminState>) -> Result<Json<Value>, ApiError> {
    let mut out = Vec::new();
    for t in st.ctx.store.tunnels().await.map_err(ApiError::internal)? {
        out.push(tunnel_json(&st.ctx, &t).await?);
    }
    Ok(Json(Value::Array(out)))
}

async fn find_tunnel(ctx: &Ctx, r: &str) -> Result<burrow_store::Tunnel, ApiError> {
    ctx.store
        .tunnel_by_ref(r)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(&format!("tunnel '{r}'")))
}

async fn tunnel_info(
    State(st): State<AdminState>,
    Path(r): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let t = find_tunnel(&st.ctx, &r).await?;
    Ok(Json(tunnel_json(&st.ctx, &t).await?))
}

async fn tunnel_credentials(
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

async fn rotate_tunnel_secret(
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
    st.ctx.grants.changed.notify_one();
    tracing::info!(tunnel_id = %t.id, "tunnel secret rotated");
    let mut v = tunnel_json(&st.ctx, &t).await?;
    v["credentials"] = credentials_value(&credentials(&st.ctx, &t));
    Ok(Json(v).into_response())
}

async fn delete_tunnel(
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
    st.ctx.grants.changed.notify_one();
    tracing::info!(tunnel_id = %t.id, "tunnel deleted");
    Ok(StatusCode::NO_CONTENT)
}

fn app_json(ctx: &Ctx, a: &burrow_store::App) -> Value {
    let mut v: Value = serde_json::from_str(&a.spec).unwrap_or(Value::Null);
    if !v.is_object() {
        v = json!({});
    }
    v["id"] = json!(a.id);
    v["created_at"] = json!(a.created_at);
    let listen: Vec<String> = ctx
        .apps
        .running
        .listen_addrs(a.id)
        .iter()
        .map(ToString::to_string)
        .collect();
    v["listen"] = json!(listen);
    if let Some(t) = a.tunnel_id {
        v["tunnel_id"] = json!(t);
    }
    v
}

/// Validates an app body and everything it refers to; `exclude` is the app
/// being updated (its own ports do not count as taken).
async fn prepare(
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
                .map_err(|e| ApiError {
                    field: Some("origin_tunnel.tunnel".into()),
                    ..e
                })?
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

fn app_record(
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

async fn create_app(
    State(st): State<AdminState>,
    req: Result<Json<RawApp>, JsonRejection>,
) -> Result<Response, ApiError> {
    let raw = body(req)?;
    let (spec, tunnel_id) = prepare(&st.ctx, &raw, None).await?;
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
    Ok((StatusCode::CREATED, Json(app_json(&st.ctx, &app))).into_response())
}

async fn update_app(
    State(st): State<AdminState>,
    Path(id): Path<String>,
    req: Result<Json<RawApp>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let old = find_app(&st.ctx, &id).await?;
    let raw = body(req)?;
    let (spec, tunnel_id) = prepare(&st.ctx, &raw, Some(old.id)).await?;
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
    Ok(Json(app_json(&st.ctx, &app)))
}

async fn list_apps(State(st): State<AdminState>) -> Result<Json<Value>, ApiError> {
    let apps = st.ctx.store.apps().await.map_err(ApiError::internal)?;
    Ok(Json(Value::Array(
        apps.iter().map(|a| app_json(&st.ctx, a)).collect(),
    )))
}

async fn find_app(ctx: &Ctx, id: &str) -> Result<burrow_store::App, ApiError> {
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

async fn get_app(
    State(st): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let a = find_app(&st.ctx, &id).await?;
    Ok(Json(app_json(&st.ctx, &a)))
}

async fn delete_app(
    State(st): State<AdminState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let a = find_app(&st.ctx, &id).await?;
    st.ctx
        .store
        .delete_app(a.id)
        .await
        .map_err(ApiError::internal)?;
    st.ctx.apps.running.stop(a.id);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateAccessRule {
    mode: String,
    target: String,
    value: String,
}

fn access_rule_json(r: &burrow_store::AccessRule) -> Value {
    json!({"id": r.id, "mode": r.mode, "target": r.target, "value": r.value, "created_at": r.created_at})
}

async fn create_access_rule(
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
    st.ctx.committed().await;
    let mut v = access_rule_json(&rule);
    if !st.ctx.files.geoip.load().has(&rule.target) {
        v["warning"] = json!(format!(
            "this edge has no --geoip-{} file, so the rule cannot match yet",
            rule.target
        ));
    }
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn list_access_rules(State(st): State<AdminState>) -> Result<Json<Value>, ApiError> {
    let rules = st
        .ctx
        .store
        .access_rules()
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(Value::Array(
        rules.iter().map(access_rule_json).collect(),
    )))
}

async fn delete_access_rule(
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
    st.ctx.committed().await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRoute {
    hostname: String,
    tunnel: String,
}

fn route_json(r: &burrow_store::Route, tunnel_name: Option<&str>) -> Value {
    json!({"hostname": r.hostname, "tunnel_id": r.tunnel_id, "tunnel": tunnel_name, "created_at": r.created_at})
}

async fn create_route(
    State(st): State<AdminState>,
    req: Result<Json<CreateRoute>, JsonRejection>,
) -> Result<Response, ApiError> {
    let req = body(req)?;
    let hostname = burrow_policy::routes::normalize_route(&req.hostname)
        .map_err(|e| ApiError::bad("hostname", format!("'{}': {e}", req.hostname)))?;
    let t = find_tunnel(&st.ctx, &req.tunnel)
        .await
        .map_err(|e| ApiError {
            field: Some("tunnel".into()),
            ..e
        })?;
    let route = burrow_store::Route {
        hostname,
        tunnel_id: t.id,
        created_at: unix_now(),
    };
    st.ctx
        .store
        .create_route(&route)
        .await
        .map_err(|e| match e {
            burrow_store::StoreError::Exists { .. } => ApiError::new(
                StatusCode::CONFLICT,
                Some("hostname".into()),
                format!(
                    "'{}' is routed already; delete that route first",
                    route.hostname
                ),
            ),
            other => ApiError::internal(other),
        })?;
    st.ctx.committed().await;
    tracing::info!(hostname = %route.hostname, tunnel_id = %t.id, "route created");
    Ok((StatusCode::CREATED, Json(route_json(&route, Some(&t.name)))).into_response())
}

async fn list_routes(State(st): State<AdminState>) -> Result<Json<Value>, ApiError> {
    let routes = st.ctx.store.routes().await.map_err(ApiError::internal)?;
    let tunnels = st.ctx.store.tunnels().await.map_err(ApiError::internal)?;
    Ok(Json(Value::Array(
        routes
            .iter()
            .map(|r| {
                let name = tunnels
                    .iter()
                    .find(|t| t.id == r.tunnel_id)
                    .map(|t| t.name.as_str());
                route_json(r, name)
            })
            .collect(),
    )))
}

async fn delete_route(
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
    st.ctx.committed().await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    email: String,
    #[serde(default)]
    groups: Vec<String>,
}

fn config_error(e: burrow_config::ConfigError) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, Some(e.field), e.reason)
}

async fn create_user(
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
    st.ctx.store.create_user(&user).await.map_err(|e| match e {
        burrow_store::StoreError::Exists { .. } => {
            ApiError::new(StatusCode::CONFLICT, Some("email".into()), e.to_string())
        }
        other => ApiError::internal(other),
    })?;
    tracing::info!(email = %user.email, "user added");
    Ok((StatusCode::CREATED, Json(json!(user))).into_response())
}

async fn list_users(State(st): State<AdminState>) -> Result<Json<Value>, ApiError> {
    let users = st.ctx.store.users().await.map_err(ApiError::internal)?;
    Ok(Json(json!(users)))
}

async fn delete_user(
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
    st.ctx.grants.changed.notify_one();
    tracing::info!(user = %email, "user deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrollDevice {
    user: String,
    name: String,
}

async fn enroll_device(
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
    let mut v = json!(device);
    v["credentials"] = serde_json::from_str(&creds.to_json()).map_err(ApiError::internal)?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn list_devices(State(st): State<AdminState>) -> Result<Json<Value>, ApiError> {
    let devices = st.ctx.store.devices().await.map_err(ApiError::internal)?;
    Ok(Json(json!(devices)))
}

async fn revoke_device(
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
    st.ctx.grants.changed.notify_one();
    tracing::info!(device_id = %uuid, "device revoked");
    Ok(StatusCode::NO_CONTENT)
}

async fn get_policies(State(st): State<AdminState>) -> Result<Json<Value>, ApiError> {
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
async fn put_policies(
    State(st): State<AdminState>,
    req: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let v = body(req)?;
    let text = v.to_string();
    let rules = burrow_config::egress::parse_rules(&text).map_err(config_error)?;
    st.ctx
        .store
        .set_meta(crate::tables::POLICIES_KEY, &text)
        .await
        .map_err(ApiError::internal)?;
    st.ctx.committed().await;
    tracing::info!(rules = rules.len(), "egress policies replaced");
    let findings: Vec<String> = burrow_policy::egress::lint(&rules)
        .iter()
        .map(|f| format!("{f:?}"))
        .collect();
    Ok(Json(json!({"rules": rules.len(), "lint": findings})))
}
