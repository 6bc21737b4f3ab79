//! Edge TLS termination for apps (`tls: flexible`): certificates per app
//! hostname from `--cert-dir` (`NAME.pem` with chain, `NAME.key`), chosen
//! by SNI; with a single certificate it also serves clients that send no
//! SNI. TLS 1.2 and 1.3 only: rustls implements nothing older, so TLS 1.1
//! and 1.0 clients are refused during the handshake.

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

#[derive(Debug)]
pub(crate) struct Certs {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    only: Option<Arc<CertifiedKey>>,
}

/// The certificates of `--cert-dir`, chosen by SNI; [`BySni::reload`]
/// swaps in a new set (SIGHUP) without touching open connections.
#[derive(Debug)]
pub(crate) struct BySni {
    dir: std::path::PathBuf,
    certs: arc_swap::ArcSwap<Certs>,
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let certs = self.certs.load();
        match hello.server_name() {
            Some(name) => certs
                .by_name
                .get(&name.to_ascii_lowercase())
                .cloned()
                .or_else(|| certs.only.clone()),
            None => certs.only.clone(),
        }
    }
}

impl BySni {
    /// Reads the directory again (blocking); on success the new set serves
    /// new handshakes. Returns the hostnames now served.
    ///
    /// # Errors
    /// A message naming the file that could not be used; the old set stays.
    pub(crate) fn reload(&self) -> Result<Vec<String>, String> {
        let certs = read(&self.dir)?;
        let names = certs.by_name.keys().cloned().collect();
        self.certs.store(Arc::new(certs));
        Ok(names)
    }
}

/// Loads every `NAME.pem` + `NAME.key` pair in `dir` (blocking). Returns the
/// server config and the hostnames it serves.
///
/// # Errors
/// A message naming the file that could not be used.
pub(crate) fn load(dir: &Path) -> Result<Loaded, String> {
    let certs = read(dir)?;
    let names: Vec<String> = certs.by_name.keys().cloned().collect();
    let resolver = Arc::new(BySni {
        dir: dir.to_owned(),
        certs: arc_swap::ArcSwap::from_pointee(certs),
    });
    let cfg = rustls::ServerConfig::builder_with_provider(burrow_transport::pki::provider())
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(resolver.clone());
    Ok(Loaded {
        config: Arc::new(cfg),
        names,
        resolver,
    })
}

/// What [`load`] gives: the server config, the hostnames it serves, and
/// its resolver (to reload the certificates later).
pub(crate) struct Loaded {
    pub(crate) config: Arc<rustls::ServerConfig>,
    pub(crate) names: Vec<String>,
    pub(crate) resolver: Arc<BySni>,
}

pub(crate) fn read(dir: &Path) -> Result<Certs, String> {
    let provider = burrow_transport::pki::provider();
    let mut certs = HashMap::new();
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("--cert-dir {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("pem") {
            continue;
        }
        let Some(name) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_ascii_lowercase)
        else {
            continue;
        };
        let key_path = path.with_extension("key");
        let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        let chain: Vec<CertificateDer<'static>> =
            rustls_pemfile::certs(&mut read(&path)?.as_slice())
                .collect::<Result<_, _>>()
                .map_err(|e| format!("{}: {e}", path.display()))?;
        let key: PrivateKeyDer<'static> =
            rustls_pemfile::private_key(&mut read(&key_path)?.as_slice())
                .map_err(|e| format!("{}: {e}", key_path.display()))?
                .ok_or_else(|| format!("{}: no private key", key_path.display()))?;
        let ck = CertifiedKey::from_der(chain, key, &provider)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        certs.insert(name, Arc::new(ck));
    }
    let only = if certs.len() == 1 {
        certs.values().next().cloned()
    } else {
        None
    };
    Ok(Certs {
        by_name: certs,
        only,
    })
}
