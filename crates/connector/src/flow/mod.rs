//! One proxied flow on the connector: read the `StreamOpen` header, pick the
//! ingress rule, reach the origin, answer `StreamAccepted` (or
//! `StreamRejected` with the reason), then splice bytes both ways.
//!
//! Built-in services (`hello_world`, `http_status:NNN`) are answered here by
//! a small HTTP/1.1 server on the stream itself, with no origin socket.

pub(crate) mod builtin;
pub(crate) mod socks;
pub(crate) mod tcp;

use crate::env::FlowEnv;
use crate::reply::reject;
use crate::ConnInfo;
use builtin::serve_builtin;
use burrow_config::connector::Service;
use burrow_proto::{FlowKind, Frame, RefuseCode, StreamOpen};
use burrow_transport::frames::{write_frame, FrameReader};
use burrow_transport::replay::Replay;
use burrow_transport::BoxStream;
use std::sync::Arc;
use std::time::Duration;
use tcp::{dial_tcp, origin_error, splice};
use tracing::{debug, info, Instrument};

/// How long the edge has to send the flow header.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Handles one flow stream to completion.
pub(crate) async fn handle(env: Arc<FlowEnv>, conn: Arc<ConnInfo>, mut stream: BoxStream) {
    let mut reader = FrameReader::new();
    let (open, acked) =
        match tokio::time::timeout(HEADER_TIMEOUT, reader.read_frame(&mut stream)).await {
            Ok(Ok(Frame::StreamOpen(o))) => (o, false),
            // The edge wants to hear at once that this connection carries the
            // flow: `StreamReceived`, unless the answer itself comes at once.
            Ok(Ok(Frame::StreamOpenAcked(o))) => (o, true),
            // Version 2: the typed header, acknowledged when the edge said
            // so in its `Welcome`.
            Ok(Ok(Frame::OpenFlow(o))) if conn.wire >= burrow_proto::v2::VERSION_2 => {
                (o.into_stream_open(), conn.acks)
            }
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
    dispatch(env, conn, stream, reader, open, acked)
        .instrument(span)
        .await;
}

/// How long an acknowledged flow may take to its answer before the
/// connector sends `StreamReceived` first: a dial that finishes sooner
/// answers `StreamAccepted` alone (one frame less per flow; the edge takes
/// a reply as the acknowledgement), well within the edge's 400 ms.
const ANSWER_SOON: Duration = Duration::from_millis(25);

/// Sends `StreamReceived` when `acked`; `false` when the stream is gone.
async fn acknowledge(stream: &mut BoxStream, acked: bool) -> bool {
    !acked
        || write_frame(stream, &Frame::StreamReceived, false)
            .await
            .is_ok()
}

/// Hostnames already warned about by [`warn_unrouted`] (bounded).
static UNROUTED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// A TCP app's flow that only the catch-all rule (an HTTP status page)
/// matched: a rule for its hostname is missing. Warned once per hostname.
fn warn_unrouted(hostname: &str, rule: usize) {
    let mut seen = UNROUTED.lock().unwrap_or_else(|p| p.into_inner());
    if seen.len() >= 256 || seen.iter().any(|h| h == hostname) {
        return;
    }
    seen.push(hostname.to_owned());
    tracing::warn!(
        hostname, rule,
        "a TCP flow for this hostname matched no ingress rule but the catch-all (an HTTP status): add a rule `hostname: {hostname}` with its tcp:// or ssh:// service"
    );
}

async fn dispatch(
    env: Arc<FlowEnv>,
    conn: Arc<ConnInfo>,
    mut stream: BoxStream,
    reader: FrameReader,
    open: StreamOpen,
    acked: bool,
) {
    if open.kind == FlowKind::Http {
        // Each request on the stream picks its own rule (host and path).
        if write_frame(&mut stream, &Frame::StreamAccepted, false)
            .await
            .is_err()
        {
            return;
        }
        let io = match crate::http::lean::serve(&env, &conn, &open, reader.into_leftover(), stream)
            .await
        {
            crate::http::lean::Outcome::Closed => return,
            crate::http::lean::Outcome::Hyper(io) => io,
        };
        Box::pin(crate::http::serve(env, conn, open, io)).await;
        return;
    }
    if matches!(open.kind, FlowKind::PrivateTcp | FlowKind::PrivateUdp) {
        if !acknowledge(&mut stream, acked).await {
            return;
        }
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
            if !acknowledge(&mut stream, acked).await {
                return;
            }
            crate::udp::relay(
                stream,
                addr,
                leftover,
                Some(rule_index),
                &conn,
                open.flow_id,
                &env.metrics,
            )
            .await;
        }
        Service::Tcp { addr, .. } => {
            let dialing = dial_tcp(addr, env.connect_timeout, &env.metrics);
            tokio::pin!(dialing);
            let dialed = if acked {
                tokio::select! {
                    r = &mut dialing => r,
                    () = tokio::time::sleep(ANSWER_SOON) => {
                        if !acknowledge(&mut stream, true).await {
                            return;
                        }
                        dialing.await
                    }
                }
            } else {
                dialing.await
            };
            match dialed {
                Ok(o) => {
                    splice(stream, o, leftover, Some(rule_index), &env.metrics).await;
                }
                Err(Some(e)) => {
                    let msg = origin_error(addr, &e);
                    if burrow_transport::dial::classify(&e).hint().is_some() {
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
        Service::Unix { .. } => {
            if !acknowledge(&mut stream, acked).await {
                return;
            }
            match crate::ingress::dial_unix(&routing, rule_index).await {
                Ok(o) => splice(stream, o, leftover, Some(rule_index), &env.metrics).await,
                Err(msg) => {
                    info!(rule = rule_index, reason = %msg, "origin unreachable");
                    reject(&mut stream, RefuseCode::OriginUnreachable, &msg).await;
                }
            }
        }
        // An edge app's TCP flow into a socks-proxy rule: the flow itself
        // is the SOCKS5 client.
        Service::SocksProxy => {
            if write_frame(&mut stream, &Frame::StreamAccepted, false)
                .await
                .is_err()
            {
                return;
            }
            let io = Replay::new(leftover.freeze(), stream);
            socks::serve(
                io,
                &rule.origin.ip_rules,
                rule.origin.connect_timeout,
                &env.metrics,
                rule_index,
            )
            .await;
        }
        Service::Bastion => {
            let msg = format!("ingress rule {rule_index} is a bastion: its streams come as WebSockets naming their destination (burrow access ssh --destination)");
            info!(rule = rule_index, reason = %msg, "flow refused");
            reject(&mut stream, RefuseCode::NoIngress, &msg).await;
        }
        Service::HelloWorld | Service::HttpStatus(_) => {
            if open.kind == FlowKind::Tcp && rule.hostname.is_none() {
                warn_unrouted(&open.hostname, rule_index);
            }
            if write_frame(&mut stream, &Frame::StreamAccepted, false)
                .await
                .is_err()
            {
                return;
            }
            let io = Replay::new(leftover.freeze(), stream);
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
