//! Origin lookups shared by TCP and UDP apps.

use super::compiled::Compiled;
use crate::context::Ctx;
use burrow_proto::close::{CloseReason, FlowError, Side};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The addresses of a DNS origin, cached for its TTL.
pub(crate) async fn resolve(
    ctx: &Ctx,
    app: &Compiled,
    name: &str,
    ttl: u32,
) -> Result<Vec<IpAddr>, FlowError> {
    if let Some((at, ips)) = app.dns.lock().expect("dns cache lock poisoned").as_ref() {
        if at.elapsed() < Duration::from_secs(u64::from(ttl)) {
            return Ok(ips.clone());
        }
    }
    let resolver = ctx.egress.resolver.as_ref().map_err(|e| {
        FlowError::new(
            Side::Origin,
            CloseReason::DnsFailure,
            format!("cannot resolve {name}: {e}"),
        )
    })?;
    let ips: Vec<IpAddr> = resolver
        .lookup_ip(name)
        .await
        .map_err(|e| {
            FlowError::new(
                Side::Origin,
                CloseReason::DnsFailure,
                format!("cannot resolve {name}: {e}"),
            )
        })?
        .iter()
        .collect();
    if ips.is_empty() {
        return Err(FlowError::new(
            Side::Origin,
            CloseReason::DnsFailure,
            format!("{name} has no addresses"),
        ));
    }
    *app.dns.lock().expect("dns cache lock poisoned") = Some((Instant::now(), ips.clone()));
    Ok(ips)
}
