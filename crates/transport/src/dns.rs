//! DNS resolvers (hickory) for edge discovery and DNS origins: one given
//! server, or the system's configuration (`/etc/resolv.conf`, `/etc/hosts`).

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::TokioResolver;
use std::net::SocketAddr;

/// Builds a resolver. `server`: ask only that server (UDP, then TCP).
/// `cache: false` turns hickory's answer cache off, for callers that keep
/// their own re-resolution period.
///
/// # Errors
/// When the system configuration cannot be read.
pub fn resolver(server: Option<SocketAddr>, cache: bool) -> Result<TokioResolver, String> {
    let mut builder = match server {
        Some(server) => {
            let group = NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true);
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, vec![], group),
                TokioConnectionProvider::default(),
            )
        }
        None => TokioResolver::builder_tokio()
            .map_err(|e| format!("DNS resolver (system configuration): {e}"))?,
    };
    if !cache {
        builder.options_mut().cache_size = 0;
    }
    Ok(builder.build())
}
