//! The admin token: kept hashed in the state, its value in a 0600 file
//! the CLI reads.

use crate::random_hex;
use burrow_config::Secret;
use burrow_store::Store;
use tracing::{info, warn};

/// Meta key of the admin token's stored (hashed, hex) form.
const ADMIN_TOKEN_HASH: &str = "admin_token_hash";

/// Meta key where builds before hashing kept the admin token as it is.
const ADMIN_TOKEN_PLAIN: &str = "admin_token";

/// Meta key of a cluster's admin token, sealed with the cluster secret
/// (every node writes the same token to its own file).
const ADMIN_TOKEN_SEALED: &str = "admin_token_sealed";

/// A cluster's admin token: the one sealed in the store (made by the
/// first node), written to this node's file when the file lacks it.
pub(crate) async fn cluster_admin_token(
    store: &Store,
    sealer: &burrow_store::secret::Sealer,
    path: &std::path::Path,
) -> Result<(Secret, Vec<u8>, bool), crate::EdgeError> {
    use burrow_store::secret;
    let store_err = |source| crate::EdgeError::Store {
        location: "admin token".into(),
        source,
    };
    let fresh = random_hex(32);
    let sealed = store
        .meta_or_init(ADMIN_TOKEN_SEALED, || {
            sealer.seal(ADMIN_TOKEN_SEALED, fresh.as_bytes())
        })
        .await
        .map_err(store_err)?;
    let token = sealer
        .open(ADMIN_TOKEN_SEALED, &sealed)
        .map_err(|e| crate::EdgeError::Cluster(e.to_string()))?;
    let token = String::from_utf8(token)
        .map_err(|_| crate::EdgeError::Cluster("the sealed admin token is not text".into()))?;
    let stored = store
        .meta(ADMIN_TOKEN_HASH)
        .await
        .map_err(store_err)?
        .and_then(|h| hex::decode(h).ok())
        .filter(|h| secret::verify(h, token.as_bytes()));
    let hash = match stored {
        Some(h) => h,
        None => {
            // First node, or a store that had a single node's token.
            let h = secret::hash(token.as_bytes());
            store
                .set_meta(ADMIN_TOKEN_HASH, &hex::encode(&h))
                .await
                .map_err(store_err)?;
            h
        }
    };
    let in_file = tokio::fs::read_to_string(path)
        .await
        .ok()
        .map(|t| t.trim().to_owned());
    let written = in_file.as_deref() != Some(token.as_str());
    if written {
        write_token(path, &token).await?;
    }
    Ok((Secret::new(token), hash, written))
}

/// The admin token: its value, its stored form, and whether its file was
/// (re)written now. The state keeps only a salted hash; the value lives in
/// `path` (0600), which the CLI reads. A token stored in plain by an older
/// build is migrated; a missing or stale file gets a new token (logged).
/// Without a file (`burrow quick`), a new token every start.
pub(crate) async fn admin_token(
    store: &Store,
    path: Option<&std::path::Path>,
) -> Result<(Secret, Vec<u8>, bool), burrow_store::StoreError> {
    use burrow_store::secret;
    let stored = |hex_hash: &str| hex::decode(hex_hash).unwrap_or_default();
    if let Some(plain) = store.meta(ADMIN_TOKEN_PLAIN).await? {
        let hash = secret::hash(plain.as_bytes());
        store
            .set_meta(ADMIN_TOKEN_HASH, &hex::encode(&hash))
            .await?;
        store.delete_meta(ADMIN_TOKEN_PLAIN).await?;
        info!("admin token: the state now keeps only its hash (migrated)");
    }
    let fresh = random_hex(32);
    let fresh_hash = secret::hash(fresh.as_bytes());
    let Some(path) = path else {
        store
            .set_meta(ADMIN_TOKEN_HASH, &hex::encode(&fresh_hash))
            .await?;
        return Ok((Secret::new(fresh), fresh_hash, false));
    };
    let current = stored(
        &store
            .meta_or_init(ADMIN_TOKEN_HASH, || hex::encode(&fresh_hash))
            .await?,
    );
    let in_file = tokio::fs::read_to_string(path)
        .await
        .ok()
        .map(|t| t.trim().to_owned());
    if let Some(t) = in_file.filter(|t| secret::verify(&current, t.as_bytes())) {
        // The file holds the token: the owner's alone, whatever made it.
        use std::os::unix::fs::PermissionsExt;
        let _ = tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).await;
        return Ok((Secret::new(t), current, false));
    }
    if current != fresh_hash {
        // Another token is stored whose value is nowhere to be read.
        warn!(file = %path.display(), "the admin token file is missing or does not match the state; a new admin token was made");
        store
            .set_meta(ADMIN_TOKEN_HASH, &hex::encode(&fresh_hash))
            .await?;
    }
    let io = |e: std::io::Error| burrow_store::StoreError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    write_token(path, &fresh).await.map_err(io)?;
    Ok((Secret::new(fresh), fresh_hash, true))
}

/// Writes the admin token file, mode 0600, replacing an old one.
async fn write_token(path: &std::path::Path, token: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let (path, token) = (path.to_owned(), token.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        writeln!(f, "{token}")
    })
    .await
    .map_err(std::io::Error::other)?
}
