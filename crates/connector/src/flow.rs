//! One proxied flow on the connector: read the `StreamOpen` header, pick the
//! ingress rule, reach the origin, answer `StreamAccepted` (or
//! `StreamRejected` with the reason), then splice bytes both ways.
//!
//! Built-in services (`hello_world`, `http_status:NNN`) are answered here by
//! a small HTTP/1.1 server on the stream itself, with no origin socket.

use crate::ConnInfo;
use burrow_config::connector::Service;
use burrow_proto::{FlowKind, Frame, Refusal, RefuseCode, StreamOpen};
use burrow_transport::frames::{write_frame, FrameReader};
use burrow_transport::BoxStream;
use bytes::Bytes;
use http_body_util::Full;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tracing::{debug, info, Instrument};

/// How long the edge has to send the flow header.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle limit of a built-in HTTP connection.
const BUILTIN_IDLE: Duration = Duration::from_secs(60);

/// What the flow handler needs from the connector.
pub(crate) struct FlowEnv {
    /// The ingress rules and their origin clients; swapped whole by a
    /// config reload (flows already running keep what they matched).
    pub(crate) routing: arc_swap::ArcSwap<crate::origin::Routing>,
    pub(crate) connect_timeout: Duration,
    pub(crate) tunnel_id: uuid::Uuid,
    /// Private-network flows and their `warp-routing` limits.
    pub(crate) private: crate::private::PrivateFlows,
    /// Prometheus metrics.
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
}

/// Handles one flow stream to completion.
pub(crate) async fn handle(env: Arc<FlowEnv>, conn: Arc<ConnInfo>, mut stream: BoxStream) {
    let mut reader = FrameReader::new();
    let open = match tokio::time::timeout(HEADER_TIMEOUT, reader.read_frame(&mut stream)).await {
        Ok(Ok(Frame::StreamOpen(o))) => o,
        Ok(Ok(other)) => {
            debug!(?other, "flow stream did not start with StreamOpen");
            return;
        }
        Ok(Err(e)) => {
            debug!(error = %e, "bad flow header");
            return;
        }
        Err(_) => {
            debug!("no flow header in time");
            return;
        }
    };
    let span = tracing::info_span!("flow", flow_id = open.flow_id, host = %open.hostname, client = %open.client_addr);
    // Instrumented, not entered: an entered guard held across awaits would
    // leak this span into other tasks on the same thread.
    dispatch(env, conn, stream, reader, open)
        .instrument(span)
        .await;
}

async fn dispatch(
    env: Arc<FlowEnv>,
    conn: Arc<ConnInfo>,
    mut stream: BoxStream,
    reader: FrameReader,
    open: StreamOpen,
) {
    if open.kind == FlowKind::Http {
        // Each request on the stream picks its own rule (host and path).
        if write_frame(&mut stream, &Frame::StreamAccepted, false)
            .await
            .is_err()
        {
            return;
        }
        let io = match crate::h1::serve(&env, &conn, &open, reader.into_leftover(), stream).await {
            crate::h1::Outcome::Closed => return,
            crate::h1::Outcome::Hyper(io) => io,
        };
        Box::pin(crate::http::serve(env, conn, open, io)).await;
        return;
    }
    if matches!(open.kind, FlowKind::PrivateTcp | FlowKind::PrivateUdp) {
        crate::private::relay(
            &env.private,
            &env.metrics,
            &conn,
            stream,
            reader.into_leftover(),
            &open,
        )
        .await;
        return;
    }
    let routing = env.routing.load_full();
    let Some((rule_index, rule)) = routing.ingress.find(&open.hostname, None) else {
        reject(
            &mut stream,
            RefuseCode::NoIngress,
            "no ingress rule matched",
        )
        .await;
        return;
    };
    let leftover = reader.into_leftover();
    let udp_rule = matches!(rule.service, Service::Udp { .. });
    if udp_rule != (open.kind == FlowKind::Udp) {
        let msg = if udp_rule {
            format!("ingress rule {rule_index} is a udp:// service; this flow is TCP")
        } else {
            format!("ingress rule {rule_index} is not a udp:// service; this flow is UDP")
        };
        info!(rule = rule_index, reason = %msg, "flow refused");
        reject(&mut stream, RefuseCode::NoIngress, &msg).await;
        return;
    }
    match &rule.service {
        Service::Udp { addr } => {
            crate::udp::relay(
                stream,
                addr,
                leftover,
                Some(rule_index),
                conn.mux.clone(),
                open.flow_id,
                &env.metrics,
            )
            .await;
        }
        Service::Tcp { addr, .. } => {
            match dial_tcp(addr, env.connect_timeout, &env.metrics).await {
                Ok(o) => {
                    splice(stream, o, leftover, Some(rule_index), &env.metrics).await;
                }
                Err(Some(e)) => {
                    let msg = origin_error(addr, &e);
                    if matches!(e.raw_os_error(), Some(99 | 23 | 24)) {
                        // A rate-limited warning names the cause (metrics.rs).
                        debug!(rule = rule_index, reason = %msg, "origin unreachable");
                    } else {
                        info!(rule = rule_index, reason = %msg, "origin unreachable");
                    }
                    reject(&mut stream, RefuseCode::OriginUnreachable, &msg).await;
                }
                Err(None) => {
                    let msg = format!(
                        "origin {addr} did not answer within {:?}",
                        env.connect_timeout
                    );
                    info!(rule = rule_index, reason = %msg, "origin unreachable");
                    reject(&mut stream, RefuseCode::OriginUnreachable, &msg).await;
                }
            }
        }
        Service::Unix { .. } => match crate::origin::dial_unix(&routing, rule_index).await {
            Ok(o) => splice(stream, o, leftover, Some(rule_index), &env.metrics).await,
            Err(msg) => {
                info!(rule = rule_index, reason = %msg, "origin unreachable");
                reject(&mut stream, RefuseCode::OriginUnreachable, &msg).await;
            }
        },
        Service::HelloWorld | Service::HttpStatus(_) => {
            if write_frame(&mut stream, &Frame::StreamAccepted, false)
                .await
                .is_err()
            {
                return;
            }
            let io = Prefixed::new(leftover.freeze(), stream);
            // Boxed: hyper's state is large and only this path needs it.
            Box::pin(serve_builtin(
                io,
                rule.service.clone(),
                env.tunnel_id,
                conn,
                open,
            ))
            .await;
        }
    }
}

/// A readable message for a failed origin dial. Running out of local ports
/// is named as such (cloudflared stays silent there).
fn origin_error(addr: &str, e: &std::io::Error) -> String {
    match e.raw_os_error() {
        // EADDRNOTAVAIL on connect: the ephemeral port range is exhausted.
        Some(99) => {
            return format!(
                "cannot reach origin {addr}: no free local port (ephemeral port range exhausted; \
                 widen net.ipv4.ip_local_port_range)"
            )
        }
        Some(23 | 24) => {
            return format!(
                "cannot reach origin {addr}: too many open files (raise the connector's open-file limit)"
            )
        }
        _ => {}
    }
    format!("cannot reach origin {addr}: {e}")
}

/// Refuses a flow that arrived after this connection started draining.
pub(crate) async fn refuse_shutting_down(mut stream: BoxStream) {
    debug!("flow arrived while draining; refused so the edge retries elsewhere");
    reject(
        &mut stream,
        RefuseCode::ShuttingDown,
        "connector is shutting down",
    )
    .await;
}

pub(crate) async fn reject(stream: &mut BoxStream, code: RefuseCode, message: &str) {
    let f = Frame::StreamRejected(Refusal {
        code,
        message: message.to_owned(),
    });
    let _ = write_frame(stream, &f, false).await;
    let _ = stream.shutdown().await;
}

pub(crate) async fn splice<O: AsyncRead + AsyncWrite + Unpin>(
    mut stream: BoxStream,
    mut origin: O,
    leftover: bytes::BytesMut,
    rule: Option<usize>,
    metrics: &crate::metrics::Metrics,
) {
    let early = leftover.len() as u64;
    if !leftover.is_empty() && origin.write_all(&leftover).await.is_err() {
        return;
    }
    drop(leftover);
    if write_frame(&mut stream, &Frame::StreamAccepted, false)
        .await
        .is_err()
    {
        return;
    }
    metrics.tcp_total.inc();
    metrics.tcp_active.inc();
    match burrow_transport::splice::splice(&mut stream, &mut origin).await {
        Ok((down, up)) => {
            metrics.flow_bytes(rule, down + early, up);
            debug!(
                rule = ?rule,
                bytes_to_origin = down,
                bytes_from_origin = up,
                "flow finished"
            );
        }
        Err(e) => debug!(rule = ?rule, error = %e, "flow ended with error"),
    }
    metrics.tcp_active.dec();
}

/// Dials a TCP origin within `limit`, timing it for the metrics.
pub(crate) async fn dial_tcp(
    addr: &str,
    limit: Duration,
    metrics: &crate::metrics::Metrics,
) -> Result<tokio::net::TcpStream, Option<std::io::Error>> {
    let started = std::time::Instant::now();
    match tokio::time::timeout(limit, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(o)) => {
            metrics
                .connect_latency
                .observe(started.elapsed().as_secs_f64() * 1000.0);
            let _ = o.set_nodelay(true);
            Ok(o)
        }
        Ok(Err(e)) => {
            metrics.dial_failed(&e);
            Err(Some(e))
        }
        Err(_) => {
            metrics.dial_failed(&std::io::ErrorKind::TimedOut.into());
            Err(None)
        }
    }
}

/// A stream with some bytes already read from it, replayed first.
pub(crate) struct Prefixed {
    head: Bytes,
    inner: BoxStream,
}

impl Prefixed {
    pub(crate) fn new(head: Bytes, inner: BoxStream) -> Self {
        Self { head, inner }
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if !self.head.is_empty() {
            let n = self.head.len().min(buf.remaining());
            buf.put_slice(&self.head.split_to(n));
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The answer of a built-in service (`http_status:NNN`, `hello_world`).
pub(crate) fn builtin_response<B>(
    service: &Service,
    req: &http::Request<B>,
    tunnel_id: uuid::Uuid,
    conn: &ConnInfo,
    open: &StreamOpen,
) -> http::Response<Full<Bytes>> {
    let resp = match *service {
        Service::HttpStatus(code) => http::Response::builder()
            .status(code)
            .header("content-type", "text/plain; charset=utf-8")
            .body(Full::new(Bytes::new())),
        _ => {
            let host = req
                .headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            let path = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let page = format!(
                "<!doctype html>\n<html><head><title>burrow hello world</title></head><body>\n\
                 <h1>Hello from burrow</h1>\n\
                 <p>This page was served by the connector's built-in hello_world origin, through a burrow tunnel.</p>\n\
                 <table>\n\
                 <tr><td>request</td><td>{method} {path}</td></tr>\n\
                 <tr><td>host</td><td>{host}</td></tr>\n\
                 <tr><td>client</td><td>{client}</td></tr>\n\
                 <tr><td>edge port</td><td>{edge_port}</td></tr>\n\
                 <tr><td>edge colo</td><td>{colo}</td></tr>\n\
                 <tr><td>transport</td><td>{proto}</td></tr>\n\
                 <tr><td>tunnel</td><td>{tunnel_id}</td></tr>\n\
                 <tr><td>connection</td><td>#{index} ({conn_id})</td></tr>\n\
                 <tr><td>flow</td><td>{flow}</td></tr>\n\
                 </table>\n</body></html>\n",
                method = escape(req.method().as_str()),
                path = escape(path),
                host = escape(host),
                client = open.client_addr,
                edge_port = open.edge_port,
                colo = escape(&conn.colo),
                proto = conn.protocol,
                index = conn.index,
                conn_id = conn.connection_id,
                flow = open.flow_id,
            );
            http::Response::builder()
                .status(200)
                .header("content-type", "text/html; charset=utf-8")
                .body(Full::new(Bytes::from(page)))
        }
    };
    resp.expect("static response parts are valid")
}

async fn serve_builtin(
    io: Prefixed,
    service: Service,
    tunnel_id: uuid::Uuid,
    conn: Arc<ConnInfo>,
    open: StreamOpen,
) {
    let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let resp = builtin_response(&service, &req, tunnel_id, &conn, &open);
        async move { Ok::<_, http::Error>(resp) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .max_buf_size(64 * 1024)
        .serve_connection(hyper_util::rt::TokioIo::new(io), svc);
    match tokio::time::timeout(BUILTIN_IDLE, served).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => debug!(error = %e, "built-in HTTP connection ended"),
        Err(_) => debug!("built-in HTTP connection idle; closed"),
    }
}
