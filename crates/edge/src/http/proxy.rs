//! The hyper path: every request the lean path does not take (bodies,
//! upgrades, HTTP/2, HTTP/1.0...) is framed by hyper on both sides and
//! sent over the connection's own tunnel stream (HTTP/1.1, one request at
//! a time) or a pooled one (HTTP/2 and upgrades).

use super::page::page_html;
use super::policy::RESENDS;
use crate::context::Ctx;
use burrow_proto::close::{FlowError, Side};
use burrow_transport::http_headers::{error_chain, is_upgrade, pass_response, strip_hop_by_hop};
use bytes::Bytes;
use http::header::{HeaderValue, HOST};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info, Instrument};

/// A body of `b`, in the listeners' body type.
fn full(b: Bytes) -> Body {
    Full::new(b).map_err(|never| match never {}).boxed()
}

/// Response body type of the listeners.
pub(crate) type Body = BoxBody<Bytes, hyper::Error>;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A tunnel stream used as an HTTP/1.1 connection by the pooled client.
pub(crate) struct TunnelIo(burrow_transport::BoxStream);

impl tokio::io::AsyncRead for TunnelIo {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

/// Opens tunnel streams for the pooled client: the URI's host is the
/// tunnel id, so the pool keeps idle HTTP/1.1 streams per tunnel and a
/// request reuses one instead of opening a stream and waiting for the
/// connector's answer each time.
#[derive(Clone)]
pub(crate) struct TunnelConnector {
    ctx: Arc<Ctx>,
    port: u16,
}

impl tower_service::Service<Uri> for TunnelConnector {
    type Response = TokioIo<TunnelIo>;
    type Error = BoxError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, BoxError>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let (ctx, port) = (self.ctx.clone(), self.port);
        Box::pin(async move {
            let tunnel_id = uri
                .host()
                .and_then(|h| uuid::Uuid::parse_str(h).ok())
                .ok_or("internal: no tunnel id in the pool key")?;
            Ok(open_http_stream(&ctx, port, tunnel_id).await?)
        })
    }
}

/// Opens a tunnel stream for HTTP/1.1 requests to `tunnel_id`.
pub(crate) async fn open_http_stream(
    ctx: &Ctx,
    port: u16,
    tunnel_id: uuid::Uuid,
) -> Result<TokioIo<TunnelIo>, FlowError> {
    let stream = crate::tunnel::reach::open_stream(ctx, port, tunnel_id).await?;
    Ok(TokioIo::new(TunnelIo(stream)))
}

/// The tunnel stream one downstream HTTP/1.1 connection sends its requests
/// on, kept while the connection lives and driven by its task
/// ([`burrow_transport::same_task`]): no pool lookup and no task hop per
/// request. HTTP/2 clients (concurrent requests) and upgrades use the pool.
pub(crate) struct Sticky {
    pub(super) port: u16,
    pub(super) slot: std::sync::Mutex<Option<(uuid::Uuid, SendRequest)>>,
    pub(super) drivers: burrow_transport::same_task::Spawner,
}

pub(crate) type SendRequest = hyper::client::conn::http1::SendRequest<Body>;

impl Sticky {
    /// The kept stream if it leads to `tunnel_id` and is open, else a new one.
    async fn sender(&self, ctx: &Ctx, tunnel_id: uuid::Uuid) -> Result<SendRequest, FlowError> {
        let kept = self.slot.lock().ok().and_then(|mut s| s.take());
        if let Some((tunnel, mut send)) = kept {
            if tunnel == tunnel_id && send.ready().await.is_ok() {
                return Ok(send);
            }
        }
        let io = open_http_stream(ctx, self.port, tunnel_id).await?;
        let (send, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|e| FlowError::io(Side::Tunnel, error_chain(&e)))?;
        self.drivers.spawn(async move {
            if let Err(e) = conn.await {
                debug!(error = %e, "tunnel stream ended with an error");
            }
        });
        Ok(send)
    }

    async fn request(
        &self,
        ctx: &Ctx,
        tunnel_id: uuid::Uuid,
        req: Request<Body>,
    ) -> Result<Response<Incoming>, Failed> {
        let mut send = self.sender(ctx, tunnel_id).await.map_err(Failed::Other)?;
        let resp = send
            .send_request(req)
            .await
            .map_err(|e| Failed::new(&e, Some(&e)))?;
        if let Ok(mut s) = self.slot.lock() {
            *s = Some((tunnel_id, send));
        }
        Ok(resp)
    }
}

/// Why a request through the tunnel got no answer.
pub(crate) enum Failed {
    /// A kept-alive stream closed after the request went out and before
    /// any answer: its connector drained (safe requests are sent again).
    ClosedUnderRequest(String),
    Other(FlowError),
}

impl Failed {
    /// Classifies a failure by the hyper error under it, if any; the
    /// tunnel's own [`FlowError`] is found in the error's sources.
    fn new(e: &(dyn std::error::Error + 'static), cause: Option<&hyper::Error>) -> Self {
        if cause.is_some_and(|h| h.is_incomplete_message() || h.is_canceled()) {
            return Failed::ClosedUnderRequest(error_chain(e));
        }
        let mut at = Some(e);
        while let Some(err) = at {
            if let Some(f) = err.downcast_ref::<FlowError>() {
                return Failed::Other(f.clone());
            }
            at = err.source();
        }
        Failed::Other(FlowError::io(Side::Tunnel, error_chain(e)))
    }

    fn into_error(self) -> FlowError {
        match self {
            Failed::ClosedUnderRequest(r) => FlowError::io(Side::Tunnel, r),
            Failed::Other(e) => e,
        }
    }
}

/// The listeners' pooled client over tunnel streams.
pub(crate) type TunnelClient = hyper_util::client::legacy::Client<TunnelConnector, Body>;

/// A request through the pooled client.
pub(crate) async fn pooled(
    client: &TunnelClient,
    req: Request<Body>,
) -> Result<Response<Incoming>, Failed> {
    client.request(req).await.map_err(|e| {
        let cause = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<hyper::Error>());
        Failed::new(&e, cause)
    })
}

pub(crate) fn tunnel_client(ctx: Arc<Ctx>, port: u16) -> TunnelClient {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .set_host(false)
        .build(TunnelConnector { ctx, port })
}

/// A short HTML page with `status`.
pub(crate) fn page(status: StatusCode, text: &str) -> Response<Body> {
    let html = page_html(status, text);
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
pub(crate) fn request_host(req: &Request<Incoming>) -> Option<String> {
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

pub(crate) async fn handle(
    ctx: &Ctx,
    client: &TunnelClient,
    sticky: &Sticky,
    mut req: Request<Incoming>,
    peer: SocketAddr,
    https: bool,
) -> Response<Body> {
    if req.method() == http::Method::CONNECT {
        return page(
            StatusCode::METHOD_NOT_ALLOWED,
            "This listener does not proxy CONNECT.",
        );
    }
    if req.headers().get_all(HOST).iter().nth(1).is_some() {
        return page(
            StatusCode::BAD_REQUEST,
            "The request has more than one Host header.",
        );
    }
    let Some(host) = request_host(&req) else {
        return page(StatusCode::BAD_REQUEST, "The request names no host.");
    };
    let hostname = burrow_policy::routes::strip_port(&host)
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let Some(tunnel_id) = ctx.tables.now().routes.find(&hostname).copied() else {
        debug!(%hostname, "no route for this hostname");
        return page(
            StatusCode::NOT_FOUND,
            "No tunnel serves this hostname on this edge.",
        );
    };
    let flow_id = ctx.tasks.next_flow();
    let span = tracing::info_span!("flow", flow_id, host = %hostname);
    let upgrade = is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    // HTTP/1.1 requests come one at a time: they use the connection's
    // own tunnel stream. Concurrent HTTP/2 ones and upgrades, the pool.
    let use_sticky = req.version() <= Version::HTTP_11 && !upgrade;

    // Rewrite the request for the origin side of the stream.
    let (mut parts, body) = req.into_parts();
    strip_hop_by_hop(&mut parts.headers, upgrade);
    // What the edge routed on is what the origin sees: the authority
    // (absolute-form target or HTTP/2 `:authority`) replaces any Host the
    // client sent (RFC 9112 3.2.2), so the connector matches its ingress
    // rules on the routed name.
    let ip = peer.ip().to_string();
    let set = super::policy::edge_headers(
        host.as_bytes(),
        parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .map(HeaderValue::as_bytes),
        &super::policy::Client { ip: &ip, https },
    );
    for (name, value) in set {
        match HeaderValue::from_bytes(&value) {
            Ok(v) => {
                parts.headers.insert(name, v);
            }
            Err(_) if name == "host" => {
                return page(StatusCode::BAD_REQUEST, "The request's host is not valid.")
            }
            Err(_) => {}
        }
    }
    // The Host header carries the hostname. The pool's key is the tunnel.
    let pq = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    parts.uri = if use_sticky {
        Uri::from(pq)
    } else {
        match format!("http://{tunnel_id}{pq}").parse::<Uri>() {
            Ok(u) => u,
            Err(_) => return page(StatusCode::BAD_REQUEST, "The request target is not valid."),
        }
    };
    parts.version = Version::HTTP_11;
    // A request without a body and with a safe method can be sent again
    // when a kept-alive stream closes under it (its connector drained);
    // any request whose body the edge kept can be sent again when a
    // draining connector answers that it did not forward it.
    use hyper::body::Body as _;
    let bodiless = body.is_end_stream();
    let closed_resend = super::policy::resendable(parts.method.as_str(), bodiless);
    let length = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (kept, body): (Option<Bytes>, Option<Incoming>) = if bodiless {
        (Some(Bytes::new()), None)
    } else if super::policy::keeps_body(length) {
        match body.collect().await {
            Ok(b) => (Some(b.to_bytes()), None),
            Err(e) => {
                span.in_scope(|| debug!(error = %e, "the client's request body ended early"));
                return page(StatusCode::BAD_REQUEST, "The request body ended early.");
            }
        }
    } else {
        (None, Some(body))
    };
    let template = kept.as_ref().map(|_| {
        (
            parts.method.clone(),
            parts.uri.clone(),
            parts.version,
            parts.headers.clone(),
        )
    });
    let out = match (&kept, body) {
        (Some(b), _) => Request::from_parts(parts, full(b.clone())),
        (None, Some(body)) => Request::from_parts(parts, body.boxed()),
        (None, None) => Request::from_parts(parts, full(Bytes::new())),
    };

    let send = |req| async move {
        if use_sticky {
            sticky.request(ctx, tunnel_id, req).await
        } else {
            pooled(client, req).await
        }
    };
    let mut result = send(out).instrument(span.clone()).await;
    // Several kept-alive streams of a draining connector can close (or
    // refuse) at once: resend a few times, each time on a stream open then.
    if let (Some((method, uri, version, headers)), Some(kept)) = (template, kept) {
        for _ in 0..RESENDS {
            let why = match &result {
                Err(Failed::ClosedUnderRequest(_)) if closed_resend => {
                    "kept-alive tunnel stream closed under the request"
                }
                Ok(r) if r.headers().contains_key(burrow_proto::http1::NOT_FORWARDED) => {
                    "the draining connector did not forward the request"
                }
                _ => break,
            };
            span.in_scope(|| debug!("{why}; sending it again"));
            let mut again = Request::new(full(kept.clone()));
            *again.method_mut() = method.clone();
            *again.uri_mut() = uri.clone();
            *again.version_mut() = version;
            *again.headers_mut() = headers.clone();
            result = send(again).instrument(span.clone()).await;
        }
    }
    let resp = match result.map_err(Failed::into_error) {
        Ok(r) => r,
        Err(e) => {
            span.in_scope(|| info!(reason = %e, "HTTP request failed"));
            return page(StatusCode::BAD_GATEWAY, super::page::bad_gateway_text(&e));
        }
    };
    let (resp, join) = pass_response(resp, client_upgrade);
    if let Some(join) = join {
        ctx.tasks.spawn_flow(join.instrument(span));
    }
    resp.map(|b| b.boxed())
}

impl tokio::io::AsyncWrite for TunnelIo {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl hyper_util::client::legacy::connect::Connection for TunnelIo {
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        hyper_util::client::legacy::connect::Connected::new()
    }
}
