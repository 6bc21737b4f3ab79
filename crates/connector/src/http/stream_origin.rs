//! cloudflared's stream-based origins reached over HTTP: a WebSocket
//! upgrade for a hostname whose rule is a TCP service (`ssh://`, `tcp://`,
//! `rdp://`, `smb://`, …) is answered `101` by the connector itself, which
//! dials the origin and carries the WebSocket's bytes to it
//! ([`burrow_transport::ws_tcp`]). `burrow access ssh|tcp` and
//! `cloudflared access` are the client end. The rule's `access` check has
//! already run (the caller does it for every request).
//!
//! A `socks-proxy` rule (or `proxyType: socks`) serves SOCKS5 on the
//! stream instead ([`crate::flow::socks`]); a `bastion` rule (or
//! `bastionMode: true`) dials the destination the client names in
//! `Cf-Access-Jump-Destination`, within the rule's `ipRules` if any.

use super::{bad_gateway, text, Body};
use crate::env::FlowEnv;
use crate::flow::tcp::{dial_tcp, origin_error};
use burrow_config::connector::{IngressRule, Service};
use burrow_config::origin_request::OriginRequest;
use burrow_proto::socks5::Dest;
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

/// What a rule does with a stream, when it takes streams.
pub(super) enum StreamTarget {
    /// Dial this `host:port`.
    Fixed(String),
    /// Serve SOCKS5.
    Socks,
    /// Dial what `Cf-Access-Jump-Destination` names.
    Bastion,
}

impl StreamTarget {
    /// `None` for rules that serve HTTP (or UDP).
    pub(super) fn of(rule: &IngressRule) -> Option<Self> {
        if rule.origin.bastion_mode {
            return Some(Self::Bastion);
        }
        match &rule.service {
            Service::SocksProxy => Some(Self::Socks),
            Service::Bastion => Some(Self::Bastion),
            Service::Tcp { scheme, .. } if scheme == "http" || scheme == "https" => None,
            Service::Tcp { .. } if rule.origin.proxy_socks => Some(Self::Socks),
            Service::Tcp { addr, .. } => Some(Self::Fixed(addr.clone())),
            _ => None,
        }
    }
}

/// The bastion destination a request names (cloudflared's reading: a URL's
/// host, or the value up to any `/`).
fn jump_destination(req: &Request<Incoming>) -> Result<Dest, String> {
    let v = req
        .headers()
        .get("cf-access-jump-destination")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .ok_or(
            "no destination: the client must name one (burrow access ssh --destination HOST:PORT)",
        )?;
    let v = v.split_once("://").map_or(v, |(_, rest)| rest);
    let v = v.split('/').next().unwrap_or_default();
    if let Ok(a) = v.parse::<std::net::SocketAddr>() {
        return Ok(Dest::Ip(a));
    }
    match v.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => p
            .parse::<u16>()
            .map(|p| Dest::Domain(h.trim_matches(['[', ']']).to_owned(), p))
            .map_err(|_| format!("destination '{v}': not a port")),
        // As cloudflared's ssh default.
        _ if !v.is_empty() => Ok(Dest::Domain(v.to_owned(), 22)),
        _ => Err("destination is empty".into()),
    }
}

/// Answers one request for rule `index` (its `origin` settings, from the
/// rules that matched the request), whose streams go to `target`.
pub(super) async fn serve(
    env: &FlowEnv,
    index: usize,
    target: StreamTarget,
    origin: OriginRequest,
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
    let addr = match target {
        StreamTarget::Fixed(addr) => Some(addr),
        StreamTarget::Socks => None,
        StreamTarget::Bastion => {
            let dest = match jump_destination(&req) {
                Ok(d) => d,
                Err(reason) => return text(StatusCode::BAD_REQUEST, &reason),
            };
            match crate::flow::socks::allowed(&dest, &origin.ip_rules, false).await {
                Ok(a) => Some(a.to_string()),
                Err((_, reason)) => {
                    info!(rule = index, %dest, %reason, "bastion destination refused");
                    return text(StatusCode::FORBIDDEN, &format!("Forbidden: {reason}"));
                }
            }
        }
    };
    let dialed = match &addr {
        Some(addr) => match dial_tcp(addr, origin.connect_timeout, &env.metrics).await {
            Ok(o) => Some(o),
            Err(e) => {
                let e = e.unwrap_or_else(|| std::io::ErrorKind::TimedOut.into());
                return bad_gateway(Some(index), &origin_error(addr, &e));
            }
        },
        None => None,
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
        let Some(origin_conn) = dialed else {
            // SOCKS: the WebSocket's bytes are the SOCKS client, served
            // on the other end of an in-memory pipe.
            let (here, there) = tokio::io::duplex(64 * 1024);
            let bridged = burrow_transport::ws_tcp::bridge(ws, here);
            let served = crate::flow::socks::serve(
                there,
                &origin.ip_rules,
                origin.connect_timeout,
                &metrics,
                index,
            );
            let (r, ()) = tokio::join!(bridged, served);
            if let Err(e) = r {
                debug!(rule = index, error = %e, "SOCKS stream over WebSocket ended with an error");
            }
            return;
        };
        metrics.tcp_total.inc();
        metrics.tcp_active.inc();
        match burrow_transport::ws_tcp::bridge(ws, origin_conn).await {
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
