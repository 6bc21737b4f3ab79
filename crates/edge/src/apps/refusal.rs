//! Connections and sessions an app's limits refused, and listeners out of
//! descriptor permits: counted, and logged at most once per app (or
//! listener) per 10 s.

use super::compiled::Compiled;
use crate::context::Ctx;
use burrow_transport::{BoxStream, EdgeConn};
use std::net::SocketAddr;
use tokio::sync::OwnedSemaphorePermit;
use tracing::warn;

/// Counts and (at most once per app per 10 s) logs an app connection
/// or UDP session refused by `why`.
pub(crate) fn refused(ctx: &Ctx, app: &Compiled, why: crate::limits::Refused, peer: SocketAddr) {
    ctx.telemetry
        .metrics
        .app_refused
        .get_or_create(&crate::telemetry::metrics::AppRefusedLabels {
            app: app.id.to_string(),
            limit: why.label(),
        })
        .inc();
    if let Some(held) = ctx.apps.refusal_log.pass(app.id, std::time::Instant::now()) {
        warn!(
            app_id = %app.id, client = %peer, limit = why.label(), refused_since_last_line = held,
            max_connections = app.spec.limits.max_connections,
            max_connections_per_ip = app.spec.limits.max_per_ip,
            "app connection refused by a limit"
        );
    }
}

/// `n` descriptor permits from the shared budget (`ctx.apps.fds`, one per
/// file descriptor a flow holds), taken before `listener` accepts. When
/// they are not there the wait is counted
/// (`burrow_edge_listener_full_total{listener}`) and logged (once per
/// listener per 10 s), then the listener waits for flows to end.
pub(crate) async fn descriptors(ctx: &Ctx, listener: &'static str, n: u32) -> OwnedSemaphorePermit {
    if let Ok(p) = ctx.apps.fds.clone().try_acquire_many_owned(n) {
        return p;
    }
    ctx.telemetry
        .metrics
        .listener_full
        .get_or_create(&crate::telemetry::metrics::ListenerLabels { listener })
        .inc();
    if let Some(held) = ctx.apps.full_log.pass(listener, std::time::Instant::now()) {
        warn!(
            listener, waited_since_last_line = held,
            "no descriptor permit left: this listener waits for open flows to end before accepting (raise the open-file limit)"
        );
    }
    ctx.apps
        .fds
        .clone()
        .acquire_many_owned(n)
        .await
        .expect("the descriptor semaphore is never closed")
}

/// One descriptor permit: a flow that holds one socket (the client's, or
/// the one it dials for a stream).
pub(crate) async fn descriptor(ctx: &Ctx, listener: &'static str) -> OwnedSemaphorePermit {
    descriptors(ctx, listener, 1).await
}

/// The next flow stream a client or peer opens on `conn`, with the
/// descriptor permit (see [`descriptor`]) taken before it is accepted: the
/// flow dials out. `None` when the connection ends.
pub(crate) async fn accept_flow_stream(
    ctx: &Ctx,
    conn: &EdgeConn,
    listener: &'static str,
) -> Option<(OwnedSemaphorePermit, BoxStream)> {
    let fds = descriptor(ctx, listener).await;
    Some((fds, conn.accept_stream().await?))
}
