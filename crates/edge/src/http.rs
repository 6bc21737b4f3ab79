//! Public HTTP and HTTPS listeners for hostnames routed to tunnels
//! (`burrow route dns TUNNEL HOSTNAME`).
//!
//! Each request becomes one flow stream (`FlowKind::Http`) to a connector
//! of the route's tunnel; on it the edge is an HTTP/1.1 client and the
//! connector an HTTP/1.1 server, so hyper frames the exchange: method, path,
//! headers, a streamed body both ways (never buffered whole) and trailers.
//! A `101 Switching Protocols` answer (WebSocket) turns the stream into the
//! upgraded connection's bytes. Clients may speak HTTP/1.1 or HTTP/2 (ALPN
//! on the HTTPS listener).
//!
//! The edge adds `X-Forwarded-For` (appended), `X-Forwarded-Proto` and
//! `Burrow-Connecting-IP` (replaced: clients cannot forge it), removes
//! hop-by-hop headers, and caps request headers (64 KiB, 100 on HTTP/1.1).
//! Unknown host: 404. No connector, or the connector/origin failed: 502
//! with a short page, and a log line with the reason.

use crate::apps::open_tunnel_stream;
use crate::Shared;
use burrow_proto::{FlowKind, StreamOpen};
use burrow_transport::http_headers::{is_upgrade, strip_hop_by_hop};
use bytes::Bytes;
use http::header::{HeaderValue, HOST};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

/// Response body type of the listeners.
pub(crate) type Body = BoxBody<Bytes, hyper::Error>;

/// Largest request head accepted (HTTP/1.1 buffer; HTTP/2 header list).
const MAX_HEAD: usize = 64 * 1024;
/// Most request headers on HTTP/1.1.
const MAX_HEADERS: usize = 100;
/// Time a client has to finish the TLS handshake.
const TLS_TIMEOUT: Duration = Duration::from_secs(10);

/// Header carrying the client's address to the origin.
pub(crate) const CONNECTING_IP: &str = "burrow-connecting-ip";

/// Serves one listener until `stop`; `tls` makes it the HTTPS listener.
pub(crate) async fn run(
    shared: Arc<Shared>,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: CancellationToken,
) {
    let Ok(local) = listener.local_addr() else {
        return;
    };
    loop {
        let (tcp, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    warn!(error = %e, "accept failed; backing off");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let shared2 = shared.clone();
        let tls = tls.clone();
        let span = tracing::info_span!("http", client = %peer);
        shared
            .flows
            .spawn(serve_conn(shared2, tcp, peer, local.port(), tls).instrument(span));
    }
}

async fn serve_conn(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    port: u16,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let https = tls.is_some();
    let svc = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(handle(&shared, req, peer, port, https).await) }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .max_buf_size(MAX_HEAD)
        .max_headers(MAX_HEADERS)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    builder
        .http2()
        .max_header_list_size(u32::try_from(MAX_HEAD).unwrap_or(u32::MAX));
    let result = match tls {
        None => {
            builder
                .serve_connection_with_upgrades(TokioIo::new(tcp), svc)
                .await
        }
        Some(cfg) => {
            let accepted = tokio::time::timeout(
                TLS_TIMEOUT,
                tokio_rustls::TlsAcceptor::from(cfg).accept(tcp),
            )
            .await;
            match accepted {
                Ok(Ok(stream)) => {
                    builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                        .await
                }
                Ok(Err(e)) => {
                    debug!(error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    debug!("TLS handshake timed out");
                    return;
                }
            }
        }
    };
    if let Err(e) = result {
        debug!(error = %e, "HTTP connection ended with an error");
    }
}

/// A short HTML page with `status`.
fn page(status: StatusCode, text: &str) -> Response<Body> {
    let reason = status.canonical_reason().unwrap_or("");
    let html = format!(
        "<!doctype html>\n<html><head><title>{code} {reason}</title></head>\n\
         <body><h1>{code} {reason}</h1>\n<p>{text}</p>\n<hr><p>burrow</p></body></html>\n",
        code = status.as_u16(),
    );
    let mut resp = Response::new(
        Full::new(Bytes::from(html))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

/// The request's host: the URI authority (HTTP/2, absolute form) or the
/// `Host` header.
fn request_host(req: &Request<Incoming>) -> Option<String> {
    req.uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            req.headers()
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .filter(|h| !h.is_empty())
}

async fn handle(
    shared: &Shared,
    mut req: Request<Incoming>,
    peer: SocketAddr,
    port: u16,
    https: bool,
) -> Response<Body> {
    let Some(host) = request_host(&req) else {
        return page(StatusCode::BAD_REQUEST, "The request names no host.");
    };
    let hostname = burrow_policy::routes::strip_port(&host)
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let Some(tunnel_id) = shared.routes().find(&hostname).copied() else {
        debug!(%hostname, "no route for this hostname");
        return page(
            StatusCode::NOT_FOUND,
            "No tunnel serves this hostname on this edge.",
        );
    };
    let flow_id = shared.next_flow.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!("flow", flow_id, host = %hostname);
    let upgrade = is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));

    // Rewrite the request for the origin side of the stream.
    let (mut parts, body) = req.into_parts();
    strip_hop_by_hop(&mut parts.headers, upgrade);
    if !parts.headers.contains_key(HOST) {
        if let Ok(v) = HeaderValue::from_str(&host) {
            parts.headers.insert(HOST, v);
        }
    }
    let ip = peer.ip().to_string();
    let xff = match parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(prev) => format!("{prev}, {ip}"),
        None => ip.clone(),
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        parts.headers.insert("x-forwarded-for", v);
    }
    parts.headers.insert(
        "x-forwarded-proto",
        HeaderValue::from_static(if https { "https" } else { "http" }),
    );
    if let Ok(v) = HeaderValue::from_str(&ip) {
        parts.headers.insert(CONNECTING_IP, v);
    }
    parts.uri = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/")
        .parse::<Uri>()
        .unwrap_or_else(|_| Uri::from_static("/"));
    parts.version = Version::HTTP_11;
    let out = Request::from_parts(parts, body);

    let header = StreamOpen {
        kind: FlowKind::Http,
        flow_id,
        hostname: hostname.clone(),
        edge_port: port,
        client_addr: peer,
    };
    let result = async {
        let (stream, leftover, _) = open_tunnel_stream(shared, tunnel_id, header).await?;
        if !leftover.is_empty() {
            return Err("tunnel: connector sent bytes before the request".to_owned());
        }
        let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake::<_, Incoming>(TokioIo::new(stream))
            .await
            .map_err(|e| format!("tunnel: {e}"))?;
        shared.flows.spawn(
            async move {
                if let Err(e) = conn.with_upgrades().await {
                    debug!(error = %e, "tunnel HTTP exchange ended with an error");
                }
            }
            .in_current_span(),
        );
        sender
            .send_request(out)
            .await
            .map_err(|e| format!("origin: no response from the connector: {e}"))
    }
    .instrument(span.clone())
    .await;
    let mut resp = match result {
        Ok(r) => r,
        Err(reason) => {
            span.in_scope(|| info!(%reason, "HTTP request failed"));
            let text = if reason.starts_with("tunnel: no connector") {
                "No connector of this hostname's tunnel is connected to the edge."
            } else {
                "The tunnel could not reach the origin."
            };
            return page(StatusCode::BAD_GATEWAY, text);
        }
    };
    let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    if switching {
        if let Some(client_up) = client_upgrade {
            let origin_up = hyper::upgrade::on(&mut resp);
            shared.flows.spawn(
                async move {
                    match tokio::try_join!(client_up, origin_up) {
                        Ok((c, o)) => {
                            let (mut c, mut o) = (TokioIo::new(c), TokioIo::new(o));
                            let _ = burrow_transport::splice::splice(&mut c, &mut o).await;
                        }
                        Err(e) => debug!(error = %e, "upgrade failed"),
                    }
                }
                .instrument(span),
            );
        }
    }
    strip_hop_by_hop(resp.headers_mut(), switching);
    resp.map(|b| b.boxed())
}
