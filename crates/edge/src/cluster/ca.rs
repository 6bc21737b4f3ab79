//! The cluster's edge CA: made by the first node, kept in the store with
//! its private key sealed by the cluster secret, and used by every node to
//! sign its own tunnel certificate at start (kept in memory only). So a
//! connector's credentials, written by any node, trust every node.

use crate::EdgeError;
use burrow_store::secret::Sealer;
use burrow_store::Store;
use burrow_transport::pki::EdgePki;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Meta key of the shared CA.
const CLUSTER_CA: &str = "cluster_ca";

/// The shared CA as stored: the certificate as it is, the key sealed.
#[derive(Serialize, Deserialize)]
struct StoredCa {
    cert_pem: String,
    key_sealed: String,
}

/// This node's certificates under the cluster CA, made (the CA, when this
/// is the first node) and stored as needed.
///
/// # Errors
/// When the store fails, or the cluster secret does not open the CA key
/// (a node given another secret than the cluster was made with).
pub(crate) async fn node_pki(
    store: &Store,
    sealer: &Sealer,
    domain: &str,
    dir: &Path,
) -> Result<EdgePki, EdgeError> {
    let (cert_pem, key_pem) = EdgePki::new_ca()?;
    let candidate = serde_json::to_string(&StoredCa {
        cert_pem,
        key_sealed: sealer.seal(CLUSTER_CA, key_pem.as_bytes()),
    })
    .expect("the CA serializes");
    // Nodes starting together agree on the first one written.
    let stored = store
        .meta_or_init(CLUSTER_CA, || candidate)
        .await
        .map_err(|source| EdgeError::Store {
            location: "cluster CA".into(),
            source,
        })?;
    let ca: StoredCa = serde_json::from_str(&stored)
        .map_err(|e| EdgeError::Cluster(format!("the stored cluster CA is unreadable: {e}")))?;
    let key = sealer.open(CLUSTER_CA, &ca.key_sealed).map_err(|e| {
        EdgeError::Cluster(format!(
            "{e} (cluster-secret-file must hold the secret the cluster's first node was given)"
        ))
    })?;
    let key = String::from_utf8(key)
        .map_err(|_| EdgeError::Cluster("the cluster CA key is not PEM".into()))?;
    let (domain, dir, cert) = (domain.to_owned(), dir.to_owned(), ca.cert_pem);
    tokio::task::spawn_blocking(move || EdgePki::issued_by(&cert, &key, &domain, &dir))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?
        .map_err(EdgeError::from)
}
