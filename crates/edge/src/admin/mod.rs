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

mod access_rules;
pub(crate) mod api;
mod apps;
mod cluster;
mod devices;
mod egress_ips;
mod policies;
mod private;
mod routes;
pub(crate) mod token;
mod tunnels;
mod users;

pub(crate) use api::AdminState;
use api::{ApiError, BODY_LIMIT};

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

pub(crate) fn router(state: AdminState) -> Router {
    let v1 = Router::new()
        .route("/api/v1/cluster/nodes", get(cluster::nodes))
        .route(
            "/api/v1/tunnels",
            post(tunnels::create_tunnel).get(tunnels::list_tunnels),
        )
        .route(
            "/api/v1/tunnels/{tunnel}",
            get(tunnels::tunnel_info).delete(tunnels::delete_tunnel),
        )
        .route(
            "/api/v1/tunnels/{tunnel}/credentials",
            get(tunnels::tunnel_credentials),
        )
        .route(
            "/api/v1/tunnels/{tunnel}/rotate-secret",
            post(tunnels::rotate_tunnel_secret),
        )
        .route("/api/v1/apps", post(apps::create_app).get(apps::list_apps))
        .route(
            "/api/v1/apps/{id}",
            get(apps::get_app)
                .put(apps::update_app)
                .delete(apps::delete_app),
        )
        .route(
            "/api/v1/access-rules",
            post(access_rules::create_access_rule).get(access_rules::list_access_rules),
        )
        .route(
            "/api/v1/access-rules/{id}",
            axum::routing::delete(access_rules::delete_access_rule),
        )
        .route(
            "/api/v1/routes",
            post(routes::create_route).get(routes::list_routes),
        )
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
        .route(
            "/api/v1/users",
            post(users::create_user).get(users::list_users),
        )
        .route(
            "/api/v1/policies",
            get(policies::get_policies).put(policies::put_policies),
        )
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
        .route(
            "/api/v1/users/{email}",
            axum::routing::delete(users::delete_user),
        )
        .route(
            "/api/v1/devices",
            post(devices::enroll_device).get(devices::list_devices),
        )
        .route("/api/v1/devices/{id}/revoke", post(devices::revoke_device))
        .route(
            "/api/v1/routes/{hostname}",
            axum::routing::delete(routes::delete_route),
        )
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), commit))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .route("/healthcheck", get(|| async { "OK\n" }))
        .route("/metrics", get(metrics))
        .route("/ready", get(ready))
        .merge(v1)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// After a change the API accepted (any method but GET, answered 2xx):
/// the routing tables are rebuilt and the change is marked for other
/// nodes sharing the store, before the answer goes out — so a route or
/// policy is in force when its `POST` returns, and every resource gets
/// this the same way.
async fn commit(State(st): State<AdminState>, req: Request, next: Next) -> Response {
    let change = req.method() != axum::http::Method::GET;
    let what = crate::follow::resource(req.uri().path()).to_owned();
    let resp = next.run(req).await;
    if change && resp.status().is_success() {
        st.ctx.committed(&what).await;
    }
    resp
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
