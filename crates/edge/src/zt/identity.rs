//! Who a registered client is, and the small parsers its flows share.

use burrow_proto::close::CloseReason;
use std::sync::Arc;
use std::time::Duration;

/// Time a client has to send a flow header.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Who a registered client is.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) device_id: uuid::Uuid,
    pub(crate) device_name: String,
    pub(crate) email: String,
    pub(crate) groups: Vec<String>,
    /// The virtual network the client picked; `None`: the default one at
    /// the time of each flow.
    pub(crate) vnet: Option<(uuid::Uuid, String)>,
    /// Digest of the device secret it registered with.
    pub(crate) secret: crate::authz::SecretDigest,
    /// Its live grant, once admitted: a flow that ends because the grant
    /// was revoked says so in the session log.
    pub(crate) live: Option<Arc<crate::authz::Live>>,
}

impl Identity {
    /// The session log's close reason for a flow that ended with `r`:
    /// `REVOKED` when the device's access was taken away.
    pub(crate) fn close_reason(&self, r: CloseReason) -> CloseReason {
        if self.live.as_ref().is_some_and(|l| l.reason().is_some()) {
            CloseReason::Revoked
        } else {
            r
        }
    }
}

/// `host:port` or `[v6]:port` → (host, port).
pub(crate) fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_splits() {
        assert_eq!(
            split_host_port("Example.com:443"),
            Some(("example.com".into(), 443))
        );
        assert_eq!(split_host_port("[::1]:80"), Some(("::1".into(), 80)));
        assert_eq!(split_host_port("example.com"), None);
        assert_eq!(split_host_port("example.com:0"), None);
        assert_eq!(split_host_port(":80"), None);
    }
}
