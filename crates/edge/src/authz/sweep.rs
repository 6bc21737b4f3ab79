//! Re-checks of live grants, whenever a change on this node or another
//! one (`follow`) may have revoked one.

use crate::authz;
use crate::context::Ctx;
use crate::telemetry::metrics;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// Re-checks the grants of connected parties each time a change may have
/// revoked one.
pub(crate) async fn authz_sweeps(ctx: Arc<Ctx>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ctx.grants.changed.notified() => {}
        }
        if ctx.grants.len() == 0 {
            continue;
        }
        let facts = match authz::Facts::load(&ctx.store).await {
            Ok(f) => f,
            Err(e) => {
                // Keep serving on the grants checked last; say so.
                warn!(error = %e, "could not re-check live grants against the state store");
                continue;
            }
        };
        for (grant, why) in ctx.grants.sweep(&facts) {
            ctx.telemetry
                .metrics
                .revoked
                .get_or_create(&metrics::RevokedLabels {
                    party: grant.party(),
                    reason: why.label(),
                })
                .inc();
        }
    }
}
