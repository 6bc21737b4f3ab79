//! HTTP requests on the connector (`FlowKind::Http` streams): the edge's
//! HTTP/1.1 exchange is served here, and each request is matched against
//! the ingress rules by its hostname and path (cloudflared's semantics),
//! then answered by a built-in service or proxied to the origin with a
//! pooled HTTP client. Bodies stream both ways; a `101` answer (WebSocket)
//! joins the two upgraded connections. A WebSocket to a TCP service
//! (`ssh://`, `tcp://`, …) carries that stream ([`stream_origin`]).

pub(crate) mod lean;
mod stream_origin;

use crate::env::FlowEnv;
use crate::flow::builtin::builtin_response;
use crate::ingress::OriginBody;
use crate::ConnInfo;
use burrow_config::connector::Service;
use burrow_proto::StreamOpen;
use burrow_transport::http_headers::{error_chain, is_upgrade, pass_response, strip_hop_by_hop};
use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{debug, info};

/// Response body type.
type Body = BoxBody<Bytes, hyper::Error>;

fn text(status: StatusCode, msg: &str) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(format!("{msg}\n")))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// How long a draining connector keeps an idle kept-alive stream open to
/// answer requests the edge sent before it saw `GoAway` ("not forwarded",
/// so the edge sends them to another connection) instead of closing the
/// stream under them.
pub(crate) const DRAIN_LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// The answer of a draining connector to a request it did not pass to the
/// origin: `503`, [`burrow_proto::http1::NOT_FORWARDED`], and the stream
/// closes after it.
pub(crate) const NOT_FORWARDED_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\nburrow-not-forwarded: draining\r\n\r\n";

fn not_forwarded() -> Response<Body> {
    let mut r = text(StatusCode::SERVICE_UNAVAILABLE, "connector draining");
    r.headers_mut().insert(
        burrow_proto::http1::NOT_FORWARDED,
        http::HeaderValue::from_static("draining"),
    );
    r.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    r
}

/// A `502` whose body names no detail; the detail is logged (see
/// [`crate::reply`]).
fn bad_gateway(rule: Option<usize>, detail: &str) -> Response<Body> {
    text(
        StatusCode::BAD_GATEWAY,
        &crate::reply::bad_gateway(rule, detail),
    )
}

/// Serves the HTTP exchange(s) the edge sends on one stream.
pub(crate) async fn serve<S>(env: Arc<FlowEnv>, conn: Arc<ConnInfo>, open: StreamOpen, io: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let draining = conn.draining.clone();
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let (env, conn, open) = (env.clone(), conn.clone(), open.clone());
        async move {
            if conn.draining.is_cancelled() {
                // Not passed to the origin: the edge may send it elsewhere.
                drop(req);
                return Ok::<_, Infallible>(not_forwarded());
            }
            let m = &env.metrics;
            m.request_started(conn.connection_id);
            let resp = handle(&env, &conn, &open, req).await;
            m.request_ended(conn.connection_id);
            m.response_by_code
                .get_or_create(&crate::metrics::CodeLabels {
                    status_code: resp.status().as_u16(),
                })
                .inc();
            Ok::<_, Infallible>(resp)
        }
    });
    // The edge keeps this stream alive for more requests; when the
    // connection drains, the request in progress finishes and it closes.
    let served = hyper::server::conn::http1::Builder::new()
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    tokio::pin!(served);
    let result = tokio::select! {
        r = served.as_mut() => r,
        _ = draining.cancelled() => {
            // Requests already on their way are answered "not forwarded"
            // for a moment; then the stream closes.
            match tokio::time::timeout(DRAIN_LINGER, served.as_mut()).await {
                Ok(r) => r,
                Err(_) => {
                    served.as_mut().graceful_shutdown();
                    served.await
                }
            }
        }
    };
    if let Err(e) = result {
        debug!(error = %e, "HTTP stream ended with an error");
    }
}

async fn handle(
    env: &FlowEnv,
    conn: &ConnInfo,
    open: &StreamOpen,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let path = req.uri().path().to_owned();
    // A kept-alive stream carries requests for any hostname of the tunnel:
    // each one is matched by its own Host.
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| burrow_policy::routes::strip_port(h).to_ascii_lowercase())
        .unwrap_or_else(|| open.hostname.clone());
    let routing = env.routing.load_full();
    let Some((index, rule)) = routing.ingress.find(&host, Some(&path)) else {
        return bad_gateway(None, "no ingress rule matches this request");
    };
    if let Some(guard) = routing.rules.get(index).and_then(|r| r.guard.as_ref()) {
        if let Err(reason) = guard.check(req.headers()).await {
            info!(rule = index, %reason, "request refused by the access check");
            return text(StatusCode::FORBIDDEN, &format!("Forbidden: {reason}"));
        }
    }
    if let Some(target) = stream_origin::StreamTarget::of(rule) {
        return stream_origin::serve(env, index, target, rule.origin.clone(), &host, req).await;
    }
    let (scheme, addr) = match &rule.service {
        Service::HttpStatus(_) | Service::HelloWorld => {
            // The stream may be a kept-alive one: show this request's client.
            let mut open = open.clone();
            open.hostname = host.clone();
            if let Some(ip) = req
                .headers()
                .get("burrow-connecting-ip")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<std::net::IpAddr>().ok())
            {
                open.client_addr = std::net::SocketAddr::new(ip, 0);
            }
            return builtin_response(&rule.service, &req, env.tunnel_id, conn, &open)
                .map(|b| b.map_err(|never| match never {}).boxed());
        }
        Service::Tcp { scheme, addr } if scheme == "http" || scheme == "https" => {
            (scheme.clone(), addr.clone())
        }
        Service::Unix { .. } => return over_unix(env, &routing, index, req).await,
        other => {
            return bad_gateway(Some(index), &format!("ingress rule {index} does not serve HTTP requests (it is not an http://, https://, http_status or hello_world service: {other:?})"));
        }
    };
    let client_up = prepare(&mut req, &rule.origin);
    let req = match with_length(req, &rule.origin).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let Some(client) = routing.rules.get(index).and_then(|r| r.client.as_ref()) else {
        return bad_gateway(Some(index), "internal: no client for this rule");
    };
    let mut req = req;
    if rule.origin.http2_origin {
        *req.version_mut() = http::Version::HTTP_2;
    }
    // matchSNItoHost: the eyeball's Host names the TLS server (the
    // connector's resolver still sends the connection to the origin).
    let authority = match (&rule.origin.match_sni_to_host, scheme.as_str()) {
        (true, "https") => {
            let port = addr.rsplit_once(':').map_or("443", |(_, p)| p);
            let host = req
                .headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(burrow_policy::routes::strip_port)
                .filter(|h| !h.is_empty());
            match host {
                Some(h) => format!("{h}:{port}"),
                None => addr.clone(),
            }
        }
        _ => addr.clone(),
    };
    match format!("{scheme}://{authority}{pq}").parse::<Uri>() {
        Ok(u) => *req.uri_mut() = u,
        Err(e) => return bad_gateway(Some(index), &format!("origin address {addr}: {e}")),
    }
    let resp = match client.request(req).await {
        Ok(r) => r,
        Err(e) => {
            let reason = error_chain(&e);
            env.metrics.request_errors.inc();
            return bad_gateway(Some(index), &format!("origin {addr}: {reason}"));
        }
    };
    finish(env, resp, client_up)
}

/// Readies a request for the origin: takes the client's upgrade (if it
/// asks for one), strips hop-by-hop headers, applies `httpHostHeader`
/// (validated when the config loaded).
fn prepare(
    req: &mut Request<Incoming>,
    origin: &burrow_config::origin_request::OriginRequest,
) -> Option<hyper::upgrade::OnUpgrade> {
    let upgrade = is_upgrade(req.headers());
    let client_up = upgrade.then(|| hyper::upgrade::on(&mut *req));
    strip_hop_by_hop(req.headers_mut(), upgrade);
    if let Some(v) = origin
        .http_host_header
        .as_deref()
        .and_then(|h| http::HeaderValue::from_str(h).ok())
    {
        req.headers_mut().insert(http::header::HOST, v);
    }
    client_up
}

/// The most of a request body `disableChunkedEncoding` reads into memory
/// to send it with a `Content-Length`; a longer body is refused with 413.
pub(crate) const UNCHUNKED_BODY_LIMIT: usize = 16 * 1024 * 1024;
/// How much of a body over [`UNCHUNKED_BODY_LIMIT`] is read and dropped
/// before the 413 goes out.
pub(crate) const UNCHUNKED_DRAIN: usize = 1024 * 1024;

/// With `disableChunkedEncoding` (for origins such as WSGI servers that
/// cannot read chunked bodies), a body of unknown length is read whole, up
/// to `UNCHUNKED_BODY_LIMIT`, and sent with a `Content-Length`. Otherwise
/// the body streams through untouched.
async fn with_length(
    req: Request<Incoming>,
    origin: &burrow_config::origin_request::OriginRequest,
) -> Result<Request<OriginBody>, Response<Body>> {
    use hyper::body::Body as _;
    let known = req.body().is_end_stream()
        || req.body().size_hint().exact().is_some()
        || req.headers().contains_key(http::header::CONTENT_LENGTH);
    if !origin.disable_chunked_encoding || known {
        return Ok(req.map(Either::Left));
    }
    let (mut parts, mut body) = req.into_parts();
    let mut bytes = bytes::BytesMut::new();
    let mut over = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            debug!("request body ended early");
            return Err(text(StatusCode::BAD_REQUEST, "request body ended early"));
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if over == 0 && bytes.len() + data.len() <= UNCHUNKED_BODY_LIMIT {
            bytes.extend_from_slice(&data);
            continue;
        }
        // Over the bound: read (and drop) a little more, so a body that
        // ends soon after it is read whole and the 413 reaches the client
        // on a clean stream instead of racing a reset.
        over += data.len();
        if over > UNCHUNKED_DRAIN {
            break;
        }
    }
    if over > 0 {
        info!(
            limit = UNCHUNKED_BODY_LIMIT,
            "request body too large to send unchunked (disableChunkedEncoding)"
        );
        return Err(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body over {UNCHUNKED_BODY_LIMIT} bytes cannot be sent without chunked encoding (disableChunkedEncoding)"),
        ));
    }
    let bytes = bytes.freeze();
    parts.headers.remove(http::header::TRANSFER_ENCODING);
    parts.headers.insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(bytes.len()),
    );
    Ok(Request::from_parts(parts, Either::Right(Full::new(bytes))))
}

/// One request over a fresh connection to a `unix:` / `unix+tls:` origin.
async fn over_unix(
    env: &FlowEnv,
    routing: &crate::ingress::Routing,
    index: usize,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let rule = &routing.ingress.rules[index];
    let io = match crate::ingress::dial_unix(routing, index).await {
        Ok(io) => io,
        Err(reason) => {
            return bad_gateway(Some(index), &reason);
        }
    };
    let client_up = prepare(&mut req, &rule.origin);
    let req = match with_length(req, &rule.origin).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(io)).await {
        Ok(x) => x,
        Err(e) => return bad_gateway(Some(index), &format!("origin: {e}")),
    };
    env.tasks.spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            debug!(error = %e, "unix origin connection ended with an error");
        }
    });
    let resp = match sender.send_request(req).await {
        Ok(r) => r,
        Err(e) => {
            return bad_gateway(Some(index), &format!("origin: {e}"));
        }
    };
    finish(env, resp, client_up)
}

/// Passes the origin's response on (see `pass_response`).
fn finish(
    env: &FlowEnv,
    resp: Response<Incoming>,
    client_up: Option<hyper::upgrade::OnUpgrade>,
) -> Response<Body> {
    let (resp, join) = pass_response(resp, client_up);
    if let Some(join) = join {
        env.tasks.spawn(join);
    }
    resp.map(|b| b.boxed())
}
