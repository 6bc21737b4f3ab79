//! The edge's certificates and the rustls configs of both ends.
//!
//! On first start the edge makes a private CA (`ca.pem`, `ca.key`) and a
//! server certificate for `quic.<domain>`, `h2.<domain>` and `<domain>`
//! (`edge-<domain>.pem`, `edge-<domain>.key`), signed by that CA. Connectors
//! trust exactly that CA (`--edge-ca`, or the copy embedded in their
//! credentials). There is no option that turns verification off.
//!
//! Functions here do blocking file I/O; call them from `spawn_blocking` or
//! before the runtime is busy.

use crate::TransportError;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Default edge domain.
pub const DEFAULT_EDGE_DOMAIN: &str = "burrow.internal";

/// The edge's CA and server certificate, in memory.
pub struct EdgePki {
    /// The CA certificate, PEM (what connectors must trust).
    pub ca_pem: String,
    /// Server certificate chain (leaf first), DER.
    pub chain: Vec<CertificateDer<'static>>,
    /// Server private key, DER.
    key: PrivateKeyDer<'static>,
    /// Files written by [`EdgePki::load_or_create`] this time (empty when all existed).
    pub created: Vec<PathBuf>,
    /// Path of the CA certificate file, when stored on disk.
    pub ca_path: Option<PathBuf>,
    /// Key of the QUIC stateless resets ([`crate::quic::server_endpoint`]):
    /// kept beside the certificates, so a restarted edge's first packet to
    /// a connector of the previous run tells it the connection is gone.
    reset_key: [u8; RESET_KEY_LEN],
    /// Post-quantum key agreement on the tunnel endpoint (default:
    /// offered first, classical fallback).
    pub post_quantum: crate::kx::PostQuantum,
}

/// Bytes of the QUIC stateless-reset key.
const RESET_KEY_LEN: usize = 32;

fn random_key() -> Result<[u8; RESET_KEY_LEN], TransportError> {
    let mut k = [0u8; RESET_KEY_LEN];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut k)
        .map_err(|_| tls_err("no randomness for the QUIC reset key"))?;
    Ok(k)
}

/// The reset key in `path` (hex), created when missing.
fn load_or_create_reset_key(
    path: &Path,
    created: &mut Vec<PathBuf>,
) -> Result<[u8; RESET_KEY_LEN], TransportError> {
    if path.exists() {
        let text = read(path)?;
        let bad = || {
            tls_err(format!(
                "{}: not a {RESET_KEY_LEN}-byte hex key; move it away to make a new one",
                path.display()
            ))
        };
        let text = text.trim();
        if text.len() != 2 * RESET_KEY_LEN {
            return Err(bad());
        }
        let mut k = [0u8; RESET_KEY_LEN];
        for (i, b) in k.iter_mut().enumerate() {
            *b = u8::from_str_radix(text.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16)
                .map_err(|_| bad())?;
        }
        return Ok(k);
    }
    let k = random_key()?;
    let hex: String = k.iter().map(|b| format!("{b:02x}")).collect();
    write_new(path, &format!("{hex}\n"), true)?;
    created.push(path.to_owned());
    Ok(k)
}

pub(crate) fn tls_err(e: impl std::fmt::Display) -> TransportError {
    TransportError::Tls(e.to_string())
}

fn ca_params() -> Result<CertificateParams, TransportError> {
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "burrow edge CA");
    dn.push(DnType::OrganizationName, "burrow");
    p.distinguished_name = dn;
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2124, 1, 1);
    Ok(p)
}

/// SNI name the connector uses for QUIC.
pub fn quic_server_name(domain: &str) -> String {
    format!("quic.{domain}")
}

/// SNI name the connector uses for HTTP/2.
pub fn h2_server_name(domain: &str) -> String {
    format!("h2.{domain}")
}

fn make_leaf(domain: &str, ca_key: &KeyPair) -> Result<(String, String), TransportError> {
    let ca_cert = ca_params()?.self_signed(ca_key).map_err(tls_err)?;
    let mut p = CertificateParams::new(vec![
        quic_server_name(domain),
        h2_server_name(domain),
        domain.to_owned(),
    ])
    .map_err(tls_err)?;
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name
        .push(DnType::CommonName, format!("burrow edge {domain}"));
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2124, 1, 1);
    let key = KeyPair::generate().map_err(tls_err)?;
    let cert = p.signed_by(&key, &ca_cert, ca_key).map_err(tls_err)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn write_new(path: &Path, data: &str, secret: bool) -> Result<(), TransportError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .map_err(|e| TransportError::Tls(format!("writing {}: {e}", path.display())))?;
    f.write_all(data.as_bytes())?;
    Ok(())
}

fn read(path: &Path) -> Result<String, TransportError> {
    // Private keys are the owner's alone, also when something (a copy, a
    // checkout) left them wider.
    if path.extension().is_some_and(|e| e == "key") {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    std::fs::read_to_string(path)
        .map_err(|e| TransportError::Tls(format!("reading {}: {e}", path.display())))
}

impl EdgePki {
    /// Loads the CA and server certificate from `dir`, creating whatever is
    /// missing. The server certificate file is per domain, so changing the
    /// edge domain makes a new one signed by the same CA.
    ///
    /// # Errors
    /// On unreadable, unparsable or unwritable files.
    pub fn load_or_create(dir: &Path, domain: &str) -> Result<Self, TransportError> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        // Keys and the admin token live here: owner-only, also when an
        // older build made the directory 0755.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        let mut created = Vec::new();
        let ca_path = dir.join("ca.pem");
        let ca_key_path = dir.join("ca.key");
        let (ca_pem, ca_key) = if ca_key_path.exists() {
            let key = KeyPair::from_pem(&read(&ca_key_path)?).map_err(|e| {
                tls_err(format!(
                    "{}: not a private key in PEM ({e}); move it away to make a new CA",
                    ca_key_path.display()
                ))
            })?;
            (read(&ca_path)?, key)
        } else {
            let key = KeyPair::generate().map_err(tls_err)?;
            let cert = ca_params()?.self_signed(&key).map_err(tls_err)?;
            write_new(&ca_key_path, &key.serialize_pem(), true)?;
            write_new(&ca_path, &cert.pem(), false)?;
            created.push(ca_path.clone());
            created.push(ca_key_path);
            (cert.pem(), key)
        };
        let leaf_path = dir.join(format!("edge-{domain}.pem"));
        let leaf_key_path = dir.join(format!("edge-{domain}.key"));
        let (leaf_pem, leaf_key_pem) = if leaf_key_path.exists() {
            (read(&leaf_path)?, read(&leaf_key_path)?)
        } else {
            let (c, k) = make_leaf(domain, &ca_key)?;
            write_new(&leaf_key_path, &k, true)?;
            write_new(&leaf_path, &c, false)?;
            created.push(leaf_path);
            created.push(leaf_key_path);
            (c, k)
        };
        let mut pki = Self::from_pem(&ca_pem, &leaf_pem, &leaf_key_pem)?;
        pki.reset_key = load_or_create_reset_key(&dir.join("quic-reset.key"), &mut created)?;
        pki.created = created;
        pki.ca_path = Some(ca_path);
        Ok(pki)
    }

    /// A new edge CA: its certificate and private key, PEM.
    ///
    /// # Errors
    /// When key generation fails.
    pub fn new_ca() -> Result<(String, String), TransportError> {
        let key = KeyPair::generate().map_err(tls_err)?;
        let cert = ca_params()?.self_signed(&key).map_err(tls_err)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// A server certificate for this node, made now and kept in memory
    /// only, signed by the shared CA (`ca_pem`, `ca_key_pem`: a cluster's
    /// CA); the QUIC reset key stays this node's own, in `dir`.
    ///
    /// # Errors
    /// When the CA key does not parse or `dir` cannot be written.
    pub fn issued_by(
        ca_pem: &str,
        ca_key_pem: &str,
        domain: &str,
        dir: &Path,
    ) -> Result<Self, TransportError> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        let ca_key = KeyPair::from_pem(ca_key_pem)
            .map_err(|e| tls_err(format!("the cluster CA key does not parse: {e}")))?;
        let (c, k) = make_leaf(domain, &ca_key)?;
        let mut created = Vec::new();
        let mut pki = Self::from_pem(ca_pem, &c, &k)?;
        pki.reset_key = load_or_create_reset_key(&dir.join("quic-reset.key"), &mut created)?;
        // The CA certificate (public) beside the node's files, for
        // operators and connectors to trust.
        let ca_path = dir.join("cluster-ca.pem");
        std::fs::write(&ca_path, ca_pem)
            .map_err(|e| tls_err(format!("writing {}: {e}", ca_path.display())))?;
        pki.created = created;
        pki.ca_path = Some(ca_path);
        Ok(pki)
    }

    /// An in-memory CA and server certificate (for `burrow quick`).
    ///
    /// # Errors
    /// When key generation fails.
    pub fn ephemeral(domain: &str) -> Result<Self, TransportError> {
        let ca_key = KeyPair::generate().map_err(tls_err)?;
        let ca = ca_params()?.self_signed(&ca_key).map_err(tls_err)?;
        let (c, k) = make_leaf(domain, &ca_key)?;
        Self::from_pem(&ca.pem(), &c, &k)
    }

    fn from_pem(ca_pem: &str, leaf_pem: &str, key_pem: &str) -> Result<Self, TransportError> {
        let mut chain = rustls_pemfile::certs(&mut leaf_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(tls_err)?;
        chain.extend(
            rustls_pemfile::certs(&mut ca_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(tls_err)?,
        );
        let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
            .map_err(tls_err)?
            .ok_or_else(|| tls_err("no private key in server key file"))?;
        Ok(Self {
            ca_pem: ca_pem.to_owned(),
            chain,
            key,
            created: Vec::new(),
            ca_path: None,
            reset_key: random_key()?,
            post_quantum: crate::kx::PostQuantum::default(),
        })
    }

    fn server_tls(
        &self,
        alpn: &[u8],
        tls13_only: bool,
    ) -> Result<rustls::ServerConfig, TransportError> {
        let b = rustls::ServerConfig::builder_with_provider(crate::kx::provider(self.post_quantum))
            .with_protocol_versions(versions(tls13_only))
            .map_err(tls_err)?;
        let mut cfg = b
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(tls_err)?;
        cfg.alpn_protocols = vec![alpn.to_vec()];
        Ok(cfg)
    }

    /// The QUIC stateless-reset key.
    #[must_use]
    pub fn reset_key(&self) -> &[u8] {
        &self.reset_key
    }

    /// rustls config of the HTTP/2 tunnel endpoint (TLS 1.2 and 1.3).
    ///
    /// # Errors
    /// When the key does not match the certificate.
    pub fn h2_server_config(&self) -> Result<Arc<rustls::ServerConfig>, TransportError> {
        let mut cfg = self.server_tls(crate::ALPN_H2, false)?;
        cfg.alpn_protocols.push(crate::ALPN_H2_CLIENT.to_vec());
        Ok(Arc::new(cfg))
    }

    /// rustls config of the QUIC tunnel endpoint (TLS 1.3 only);
    /// [`crate::quic::server_config`] wraps it for quinn.
    ///
    /// # Errors
    /// When the key does not match the certificate.
    pub fn quic_server_tls(&self) -> Result<rustls::ServerConfig, TransportError> {
        self.server_tls(crate::ALPN_QUIC, true)
    }
}

/// TLS 1.3 only (QUIC), or TLS 1.2 and 1.3 (HTTP/2 over TLS). Older
/// versions are never offered or accepted.
fn versions(tls13_only: bool) -> &'static [&'static rustls::SupportedProtocolVersion] {
    static TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
    if tls13_only {
        TLS13_ONLY
    } else {
        rustls::DEFAULT_VERSIONS
    }
}

/// The crypto provider of burrow's own TLS (public HTTPS listeners, TLS
/// apps, origins, logpush): aws-lc-rs with post-quantum key agreement
/// offered first ([`crate::kx`] says why this provider).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    crate::kx::provider(crate::kx::PostQuantum::Prefer)
}

/// Root certificates from a PEM file (one or more certificates), for
/// verifying origins (`--origin-ca`, `caPool`). Messages start with
/// `field` and the file name.
///
/// # Errors
/// When the file cannot be read, holds no certificate, or one is unusable.
pub fn roots_from_pem_file(
    field: &str,
    path: &std::path::Path,
) -> Result<rustls::RootCertStore, String> {
    let at = |e: &dyn std::fmt::Display| format!("{field} {}: {e}", path.display());
    let pem = std::fs::read(path).map_err(|e| at(&e))?;
    let certs: Vec<rustls::pki_types::CertificateDer<'static>> =
        rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<_, _>>()
            .map_err(|e| at(&e))?;
    if certs.is_empty() {
        return Err(at(&"no PEM certificate in the file"));
    }
    let mut roots = rustls::RootCertStore::empty();
    for c in certs {
        roots.add(c).map_err(|e| at(&e))?;
    }
    Ok(roots)
}

/// The system's root certificates (`/etc/ssl/certs` and friends), read
/// once per process; unparsable ones are skipped, as browsers do.
pub fn system_roots() -> rustls::RootCertStore {
    static ROOTS: std::sync::OnceLock<rustls::RootCertStore> = std::sync::OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
            roots
        })
        .clone()
}

/// Accepts any certificate; checks handshake signatures only.
#[derive(Debug)]
struct AnyCertificate(rustls::crypto::WebPkiSupportedAlgorithms);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// A verifier that accepts any server certificate but still checks the
/// handshake signatures, for origins explicitly configured without
/// verification (`tls: full` apps, `noTLSVerify`). Never used toward the
/// edge.
pub fn any_server_certificate(
    provider: &rustls::crypto::CryptoProvider,
) -> Arc<dyn rustls::client::danger::ServerCertVerifier> {
    Arc::new(AnyCertificate(provider.signature_verification_algorithms))
}

/// What a connector needs to verify the edge: the CA and the SNI names.
#[derive(Clone)]
pub struct EdgeTrust {
    roots: Arc<rustls::RootCertStore>,
    /// Edge domain; SNI names derive from it.
    pub domain: String,
    /// Post-quantum key agreement toward the edge (default: offered
    /// first, classical fallback; `Require`: `--post-quantum`).
    pub post_quantum: crate::kx::PostQuantum,
}

impl EdgeTrust {
    /// Trust the CA certificate(s) in `ca_pem`.
    ///
    /// # Errors
    /// When the PEM holds no certificate or one rustls refuses.
    pub fn new(ca_pem: &str, domain: &str) -> Result<Self, TransportError> {
        let mut roots = rustls::RootCertStore::empty();
        let mut n = 0;
        for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
            roots.add(cert.map_err(tls_err)?).map_err(tls_err)?;
            n += 1;
        }
        if n == 0 {
            return Err(tls_err("the edge CA file holds no PEM certificate"));
        }
        Ok(Self {
            roots: Arc::new(roots),
            domain: domain.to_owned(),
            post_quantum: crate::kx::PostQuantum::default(),
        })
    }

    pub(crate) fn client_config(
        &self,
        alpn: &[u8],
        tls13_only: bool,
    ) -> Result<rustls::ClientConfig, TransportError> {
        let b = rustls::ClientConfig::builder_with_provider(crate::kx::provider(self.post_quantum))
            .with_protocol_versions(versions(tls13_only))
            .map_err(tls_err)?;
        let mut cfg = b
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth();
        cfg.alpn_protocols = vec![alpn.to_vec()];
        Ok(cfg)
    }

    pub(crate) fn server_name(name: String) -> Result<ServerName<'static>, TransportError> {
        ServerName::try_from(name).map_err(tls_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A whole TLS handshake in memory; the first error either side sees.
    fn handshake(
        server: Arc<rustls::ServerConfig>,
        client: rustls::ClientConfig,
        name: &str,
    ) -> Result<(), rustls::Error> {
        let name = ServerName::try_from(name.to_owned()).expect("a DNS name");
        let mut c = rustls::ClientConnection::new(Arc::new(client), name)?;
        let mut s = rustls::ServerConnection::new(server)?;
        for _ in 0..10 {
            let mut wire = Vec::new();
            c.write_tls(&mut wire).expect("to memory");
            s.read_tls(&mut wire.as_slice()).expect("from memory");
            s.process_new_packets()?;
            let mut wire = Vec::new();
            s.write_tls(&mut wire).expect("to memory");
            c.read_tls(&mut wire.as_slice()).expect("from memory");
            c.process_new_packets()?;
            if !c.is_handshaking() && !s.is_handshaking() {
                return Ok(());
            }
        }
        panic!("the handshake did not finish in 10 round trips");
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_created_pki_is_private_reloads_the_same_and_its_ca_is_the_one_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("edge.d");
        let first = EdgePki::load_or_create(&d, "burrow.internal").unwrap();
        assert_eq!(first.created.len(), 5, "{:?}", first.created);
        assert_eq!(mode(&d.join("quic-reset.key")), 0o600);
        assert_eq!(mode(&d), 0o700);
        assert_eq!(mode(&d.join("ca.key")), 0o600);
        assert_eq!(mode(&d.join("edge-burrow.internal.key")), 0o600);
        // A key file left readable by others is made private again.
        std::fs::set_permissions(d.join("ca.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let again = EdgePki::load_or_create(&d, "burrow.internal").unwrap();
        assert!(again.created.is_empty(), "{:?}", again.created);
        assert_eq!(again.ca_pem, first.ca_pem);
        assert_eq!(
            again.reset_key(),
            first.reset_key(),
            "the reset key persists"
        );
        assert_ne!(
            EdgePki::ephemeral("burrow.internal").unwrap().reset_key(),
            first.reset_key()
        );
        assert_eq!(mode(&d.join("ca.key")), 0o600);

        let trust = EdgeTrust::new(&first.ca_pem, "burrow.internal").unwrap();
        let h2 = h2_server_name(&trust.domain);
        let quic = quic_server_name(&trust.domain);
        let server = again.h2_server_config().unwrap();
        handshake(
            server.clone(),
            trust.client_config(crate::ALPN_H2, false).unwrap(),
            &h2,
        )
        .expect("h2 name, the edge's CA");
        let quic_server = Arc::new(again.quic_server_tls().unwrap());
        handshake(
            quic_server,
            trust.client_config(crate::ALPN_QUIC, true).unwrap(),
            &quic,
        )
        .expect("quic name, the edge's CA");
        // Another edge domain's name is not on the certificate.
        let err = handshake(
            server.clone(),
            trust.client_config(crate::ALPN_H2, false).unwrap(),
            "h2.other.internal",
        )
        .unwrap_err();
        assert!(err.to_string().contains("certificate"), "{err}");
        // Another CA does not vouch for this edge.
        let stranger = EdgePki::ephemeral("burrow.internal").unwrap();
        let other = EdgeTrust::new(&stranger.ca_pem, "burrow.internal").unwrap();
        let err = handshake(
            server,
            other.client_config(crate::ALPN_H2, false).unwrap(),
            &h2,
        )
        .unwrap_err();
        assert!(err.to_string().contains("certificate"), "{err}");
    }

    #[test]
    fn a_new_edge_domain_gets_a_certificate_from_the_same_ca() {
        let dir = tempfile::tempdir().unwrap();
        let a = EdgePki::load_or_create(dir.path(), "a.internal").unwrap();
        let b = EdgePki::load_or_create(dir.path(), "b.internal").unwrap();
        assert_eq!(a.ca_pem, b.ca_pem);
        assert_eq!(b.created.len(), 2, "only the leaf is new: {:?}", b.created);
        let trust = EdgeTrust::new(&a.ca_pem, "b.internal").unwrap();
        handshake(
            b.h2_server_config().unwrap(),
            trust.client_config(crate::ALPN_H2, false).unwrap(),
            &h2_server_name("b.internal"),
        )
        .expect("b's certificate, a's CA");
    }

    #[test]
    fn broken_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        EdgePki::load_or_create(dir.path(), "burrow.internal").unwrap();
        std::fs::write(dir.path().join("ca.key"), "not a key").unwrap();
        let err = EdgePki::load_or_create(dir.path(), "burrow.internal")
            .err()
            .expect("a broken CA key");
        assert!(err.to_string().contains("ca.key"), "{err}");
        let err = EdgeTrust::new("no pem here", "burrow.internal")
            .err()
            .expect("no certificate");
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
    }
}
