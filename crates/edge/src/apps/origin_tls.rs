//! TLS from the edge to an app's origin (`tls: full` and `tls: strict`).
//!
//! - `full`: the connection is encrypted but the origin's certificate is not
//!   checked (a self-signed origin works). The handshake signatures are
//!   still verified, so the key exchange is bound to the certificate shown.
//! - `strict`: the certificate must chain to `--origin-ca` (PEM, one or more
//!   certificates) or, without that flag, to the system roots, and must be
//!   valid for the origin name: the app's `dns.name` when it has one, the
//!   `origin_dns` name for DNS origins, else the origin IP address.
//!
//! The ClientHello offers the cipher suites in the order Cloudflare documents
//! for Spectrum's origin connections, limited to what rustls implements:
//! TLS 1.3 AES-128-GCM, AES-256-GCM, CHACHA20-POLY1305, then TLS 1.2
//! ECDHE-ECDSA-AES128-GCM-SHA256 and ECDHE-RSA-AES128-GCM-SHA256. The
//! CBC and RSA-key-exchange suites of that list, and TLS 1.1, are not
//! offered.

use rustls::crypto::{ring, CryptoProvider};
use rustls::ClientConfig;
use std::path::Path;
use std::sync::Arc;

/// Client configs for the two origin TLS modes.
pub(crate) struct OriginTls {
    pub(crate) full: Arc<ClientConfig>,
    pub(crate) strict: Arc<ClientConfig>,
    /// Where the strict roots came from, for logs.
    pub(crate) roots_from: String,
}

/// The provider with the suites in the documented origin order.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    use ring::cipher_suite as cs;
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS13_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ],
        ..ring::default_provider()
    })
}

/// Builds both configs (blocking: reads files). `origin_ca` replaces the
/// system roots for `strict`.
///
/// # Errors
/// A message naming the file that could not be used.
pub(crate) fn load(origin_ca: Option<&Path>) -> Result<OriginTls, String> {
    let provider = provider();
    let (roots, roots_from) = match origin_ca {
        Some(path) => (
            burrow_transport::pki::roots_from_pem_file("--origin-ca", path)?,
            path.display().to_string(),
        ),
        None => {
            let roots = burrow_transport::pki::system_roots();
            let n = roots.len();
            (roots, format!("system roots ({n} certificates)"))
        }
    };
    let versions = rustls::DEFAULT_VERSIONS;
    let strict = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let full = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(burrow_transport::pki::any_server_certificate(&provider))
        .with_no_client_auth();
    Ok(OriginTls {
        full: Arc::new(full),
        strict: Arc::new(strict),
        roots_from,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_follow_the_documented_origin_order() {
        let names: Vec<String> = provider()
            .cipher_suites
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect();
        assert_eq!(
            names,
            [
                "TLS13_AES_128_GCM_SHA256",
                "TLS13_AES_256_GCM_SHA384",
                "TLS13_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            ]
        );
    }

    #[test]
    fn an_origin_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("ca.pem");
        std::fs::write(&p, "not a certificate\n").expect("write");
        let err = load(Some(&p)).err().expect("refused");
        assert!(
            err.contains("--origin-ca") && err.contains("no PEM"),
            "{err}"
        );
    }
}
