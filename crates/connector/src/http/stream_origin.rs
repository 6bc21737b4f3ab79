//! cloudflared's stream-based origins reached over HTTP: a WebSocket
//! upgrade for a hostname whose rule is a TCP service (`ssh://`, `tcp://`,
//! `rdp://`, `smb://`, …) is answered `101` by the connector itself, which
//! dials the origin and carries the WebSocket's bytes to it
//! ([`burrow_transport::ws_tcp`]). `burrow access ssh|tcp` and
//! `cloudflared access` are the client end. The rule's `access` check has
//! already run (the caller does it for every request).

use super::{bad_gateway, text, Body};
use crate::env::FlowEnv;
use crate::flow::tcp::{dial_tcp, origin_error};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;
use tracing::{debug, info};

/// The `Sec-WebSocket-Key` of a WebSocket upgrade request; `None` for any
/// other request.
fn websocket_key(req: &Request<Incoming>) -> Option<&HeaderValue> {
    let h = req.headers();
    let upgrade = h
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !upgrade || !burrow_transport::http_headers::is_upgrade(h) {
        return None;
    }
    h.get(http::header::SEC_WEBSOCKET_KEY)
}

/// Answers one request for rule `index`, a TCP service at `addr`.
pub(super) async fn serve(
    env: &FlowEnv,
    index: usize,
    addr: &str,
    host: &str,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let Some(key) = websocket_key(&req) else {
        return text(
            StatusCode::BAD_REQUEST,
            &format!("{host} carries a TCP stream, not web pages: reach it with `burrow access tcp --hostname {host}` (or `cloudflared access tcp`)"),
        );
    };
    let accept = derive_accept_key(key.as_bytes());
    let timeout = env
        .routing
        .load()
        .ingress
        .rules
        .get(index)
        .map_or(env.connect_timeout, |r| r.origin.connect_timeout);
    let origin = match dial_tcp(addr, timeout, &env.metrics).await {
        Ok(o) => o,
        Err(e) => {
            let e = e.unwrap_or_else(|| std::io::ErrorKind::TimedOut.into());
            return bad_gateway(Some(index), &origin_error(addr, &e));
        }
    };
    let upgrade = hyper::upgrade::on(&mut req);
    let metrics = env.metrics.clone();
    env.tasks.spawn(async move {
        let upgraded = match upgrade.await {
            Ok(u) => u,
            Err(e) => {
                debug!(rule = index, error = %e, "WebSocket upgrade did not complete");
                return;
            }
        };
        let ws = WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            Some(burrow_transport::ws_tcp::config()),
        )
        .await;
        metrics.tcp_total.inc();
        metrics.tcp_active.inc();
        match burrow_transport::ws_tcp::bridge(ws, origin).await {
            Ok(c) => {
                metrics.flow_bytes(Some(index), c.sent, c.received);
                debug!(
                    rule = index,
                    bytes_to_origin = c.sent,
                    bytes_from_origin = c.received,
                    "stream over WebSocket finished"
                );
            }
            Err(e) => info!(rule = index, error = %e, "stream over WebSocket ended with an error"),
        }
        metrics.tcp_active.dec();
    });
    let mut resp = Response::new(Empty::new().map_err(|never| match never {}).boxed());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        http::header::CONNECTION,
        HeaderValue::from_static("Upgrade"),
    );
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(http::header::SEC_WEBSOCKET_ACCEPT, v);
    }
    resp
}
