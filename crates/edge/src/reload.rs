//! SIGHUP: what a running edge reads again without a restart.

use crate::apps::origin_tls;
use crate::context::Ctx;
use crate::geoip;
use std::path::PathBuf;
use std::sync::Arc;

/// The files a running edge can read again (SIGHUP).
#[derive(Clone)]
pub(crate) struct ReloadPaths {
    pub(crate) geoip_country: Option<PathBuf>,
    pub(crate) geoip_asn: Option<PathBuf>,
    pub(crate) origin_ca: Option<PathBuf>,
}

/// Reloads what a running edge can take without a restart: the
/// `--cert-dir` certificates, the `--origin-ca` roots and the GeoIP files.
/// Everything else (addresses, pools, state, peers) needs a restart.
#[derive(Clone)]
pub struct EdgeReloader {
    pub(crate) ctx: Arc<Ctx>,
    pub(crate) paths: ReloadPaths,
}

impl EdgeReloader {
    /// Reads the files again; each part that loads replaces the running
    /// one, each that fails keeps the running one. Returns one line per
    /// part: what was reloaded, or why not.
    pub async fn reload(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(r) = self.ctx.files.cert_resolver.clone() {
            out.push(
                match tokio::task::spawn_blocking(move || r.reload()).await {
                    Ok(Ok(names)) => format!("cert-dir: reloaded ({} hostnames)", names.len()),
                    Ok(Err(e)) => format!("cert-dir: kept the running certificates: {e}"),
                    Err(e) => format!("cert-dir: {e}"),
                },
            );
        }
        let ca = self.paths.origin_ca.clone();
        out.push(
            match tokio::task::spawn_blocking(move || origin_tls::load(ca.as_deref())).await {
                Ok(Ok(t)) => {
                    let line = format!("origin-ca: reloaded ({})", t.roots_from);
                    self.ctx.files.origin_tls.store(Arc::new(t));
                    line
                }
                Ok(Err(e)) => format!("origin-ca: kept the running roots: {e}"),
                Err(e) => format!("origin-ca: {e}"),
            },
        );
        if self.paths.geoip_country.is_some() || self.paths.geoip_asn.is_some() {
            let (c, a) = (
                self.paths.geoip_country.clone(),
                self.paths.geoip_asn.clone(),
            );
            out.push(
                match tokio::task::spawn_blocking(move || {
                    geoip::GeoIp::open(c.as_deref(), a.as_deref())
                })
                .await
                {
                    Ok(Ok(g)) => {
                        self.ctx.files.geoip.store(Arc::new(g));
                        "geoip: reloaded".to_owned()
                    }
                    Ok(Err(e)) => format!("geoip: kept the running databases: {e}"),
                    Err(e) => format!("geoip: {e}"),
                },
            );
        }
        out
    }
}
