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

pub(crate) mod lean;
pub(crate) mod page;
pub(crate) mod policy;
pub(crate) mod proxy;

use crate::context::Ctx;
use hyper_util::rt::{TokioExecutor, TokioIo};
use policy::{HEADER_READ_TIMEOUT, MAX_HEAD, MAX_HEADERS};
use proxy::{handle, tunnel_client, Sticky, TunnelClient};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, Instrument};

/// Time a finished downstream connection's tunnel streams get to close.
pub(crate) const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// Time a client has to finish the TLS handshake.
pub(crate) const TLS_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one listener until `stop`; `tls` makes it the HTTPS listener.
pub(crate) async fn run(
    ctx: Arc<Ctx>,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: CancellationToken,
) {
    let Ok(local) = listener.local_addr() else {
        return;
    };
    let client = tunnel_client(ctx.clone(), local.port());
    loop {
        // Client connections share the app flows' descriptor budget, so
        // the tunnel endpoint and admin API keep their reserve.
        let fds = tokio::select! {
            _ = stop.cancelled() => return,
            p = crate::apps::refusal::descriptor(&ctx, "http") => p,
        };
        let (tcp, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            r = burrow_transport::accept_tcp(&listener) => r,
        };
        let _ = tcp.set_nodelay(true);
        let ctx2 = ctx.clone();
        let tls = tls.clone();
        let span = tracing::info_span!("http", client = %peer);
        let conn = serve_conn(ctx2, client.clone(), tcp, peer, local.port(), tls);
        ctx.tasks.spawn_flow_holding(fds, conn.instrument(span));
    }
}

pub(crate) async fn serve_conn(
    ctx: Arc<Ctx>,
    client: TunnelClient,
    tcp: TcpStream,
    peer: SocketAddr,
    local_port: u16,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let conn = Conn {
        ctx,
        client,
        peer,
        local_port,
        https: tls.is_some(),
    };
    let Some(cfg) = tls else {
        return conn.serve(tcp).await;
    };
    let accepted = tokio::time::timeout(
        TLS_TIMEOUT,
        tokio_rustls::TlsAcceptor::from(cfg).accept(tcp),
    )
    .await;
    match accepted {
        Ok(Ok(stream)) if stream.get_ref().1.alpn_protocol() == Some(b"h2") => {
            conn.serve_hyper(stream).await;
        }
        Ok(Ok(stream)) => conn.serve(stream).await,
        Ok(Err(e)) => debug!(error = %e, "TLS handshake failed"),
        Err(_) => debug!("TLS handshake timed out"),
    }
}

/// One client connection to a listener.
pub(crate) struct Conn {
    ctx: Arc<Ctx>,
    client: TunnelClient,
    peer: SocketAddr,
    local_port: u16,
    https: bool,
}

impl Conn {
    /// Serves bodiless HTTP/1.1 requests on the lean path
    /// ([`crate::h1`]), then hyper from the first request it does not take.
    async fn serve<S>(self, io: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let outcome = lean::serve(&self.ctx, io, self.peer, self.local_port, self.https).await;
        if let lean::Outcome::Hyper(io) = outcome {
            self.serve_hyper(io).await;
        }
    }

    /// Serves the connection with hyper (HTTP/1.1 or HTTP/2).
    async fn serve_hyper<S>(self, io: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Conn {
            ctx,
            client,
            peer,
            local_port,
            https,
        } = self;
        let (drivers, runner) = burrow_transport::same_task::pair();
        let sticky = Arc::new(Sticky {
            port: local_port,
            slot: std::sync::Mutex::new(None),
            drivers,
        });
        let svc = hyper::service::service_fn(move |req| {
            let (ctx, client, sticky) = (ctx.clone(), client.clone(), sticky.clone());
            async move {
                let resp = handle(&ctx, &client, &sticky, req, peer, https).await;
                ctx.telemetry
                    .metrics
                    .http_requests
                    .get_or_create(&crate::telemetry::metrics::StatusLabels::of(resp.status()))
                    .inc();
                ctx.telemetry
                    .metrics
                    .http_requests_by_path
                    .get_or_create(&crate::telemetry::metrics::PathLabels { path: "hyper" })
                    .inc();
                Ok::<_, Infallible>(resp)
            }
        });
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .max_buf_size(MAX_HEAD)
            .max_headers(MAX_HEADERS)
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        builder
            .http2()
            .max_header_list_size(u32::try_from(MAX_HEAD).unwrap_or(u32::MAX));
        let served = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
        if let Err(e) = runner.run(served, DRAIN_GRACE).await {
            debug!(error = %e, "HTTP connection ended with an error");
        }
    }
}
