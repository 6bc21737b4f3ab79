//! Secrets at rest: tunnel and device secrets and the admin token are
//! stored as a salted SHA-256, never as they are. The secrets themselves
//! are 32 random bytes (tunnels, devices) or 32 random bytes in hex (the
//! admin token), so a fast hash is enough: there is nothing to guess.
//!
//! Stored form: `"$s256$"` (6 bytes), a 16-byte random salt, then
//! `SHA-256(salt ‖ secret)` (32 bytes): 54 bytes. A stored value without
//! the prefix is a secret written by an older build, kept as it is until
//! [`crate::Store::open`] migrates it.

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const PREFIX: &[u8] = b"$s256$";
const SALT: usize = 16;
/// Length of a stored (hashed) secret.
pub const STORED_LEN: usize = PREFIX.len() + SALT + 32;

/// Whether `stored` is in the hashed form.
#[must_use]
pub fn is_hashed(stored: &[u8]) -> bool {
    stored.len() == STORED_LEN && stored.starts_with(PREFIX)
}

fn digest(salt: &[u8], secret: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(secret);
    h.finalize().into()
}

/// The stored form of `secret`, with a fresh salt.
#[must_use]
pub fn hash(secret: &[u8]) -> Vec<u8> {
    let mut salt = [0u8; SALT];
    rand::thread_rng().fill_bytes(&mut salt);
    let mut out = Vec::with_capacity(STORED_LEN);
    out.extend_from_slice(PREFIX);
    out.extend_from_slice(&salt);
    out.extend_from_slice(&digest(&salt, secret));
    out
}

/// The stored form of a secret given to the store: hashed, unless it is
/// already (a row copied from another store keeps its hash).
pub(crate) fn stored(secret: &[u8]) -> Vec<u8> {
    if is_hashed(secret) {
        secret.to_vec()
    } else {
        hash(secret)
    }
}

/// Whether `presented` is the secret whose stored form is `stored`, in
/// constant time (for a given stored length). A legacy unhashed `stored`
/// is compared as it is.
#[must_use]
pub fn verify(stored: &[u8], presented: &[u8]) -> bool {
    if !is_hashed(stored) {
        return stored.ct_eq(presented).into();
    }
    let salt = &stored[PREFIX.len()..PREFIX.len() + SALT];
    let want = &stored[PREFIX.len() + SALT..];
    digest(salt, presented).ct_eq(want).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ_per_salt() {
        let s = [7u8; 32];
        let (a, b) = (hash(&s), hash(&s));
        assert!(is_hashed(&a) && is_hashed(&b));
        assert_ne!(a, b, "salted");
        assert!(verify(&a, &s) && verify(&b, &s));
        assert!(!verify(&a, &[8u8; 32]));
        assert!(!verify(&a, &s[..31]));
        assert!(
            !a.windows(32).any(|w| w == s),
            "the secret is not in its stored form"
        );
        // Legacy values compare as they are.
        assert!(verify(&s, &s));
        assert!(!verify(&s, &[8u8; 32]));
        assert!(!is_hashed(&s));
    }
}

/// A secret the cluster's nodes must read back (the edge CA's key, the
/// admin token), sealed with a key derived from the cluster secret:
/// HKDF-SHA256 (salt "burrow cluster seal v1") into AES-256-GCM, a random
/// 96-bit nonce per value, `what` bound as associated data (a sealed
/// value moved under another name does not open). Stored as
/// `v1:` + hex(nonce ‖ ciphertext ‖ tag). Anyone with the database but
/// not the cluster secret reads nothing.
pub struct Sealer {
    key: ring::aead::LessSafeKey,
}

/// Why a sealed value did not open.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SealError(String);

const SEAL_PREFIX: &str = "v1:";

impl Sealer {
    /// The sealer of the cluster with `secret`.
    #[must_use]
    pub fn new(secret: &[u8]) -> Self {
        use ring::hkdf;
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"burrow cluster seal v1").extract(secret);
        let okm = prk
            .expand(&[b"aes-256-gcm"], &ring::aead::AES_256_GCM)
            .expect("32 bytes is a valid HKDF length");
        Self {
            key: ring::aead::LessSafeKey::new(ring::aead::UnboundKey::from(okm)),
        }
    }

    /// Seals `plain`, bound to `what`.
    #[must_use]
    pub fn seal(&self, what: &str, plain: &[u8]) -> String {
        use ring::aead::{Aad, Nonce, NONCE_LEN};
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let mut buf = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(what.as_bytes()),
                &mut buf,
            )
            .expect("AES-GCM seals any length we store");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        format!("{SEAL_PREFIX}{}", hex::encode(out))
    }

    /// Opens a value [`seal`](Self::seal)ed for `what`.
    ///
    /// # Errors
    /// When it is not a sealed value, or was sealed with another cluster
    /// secret or for another name.
    pub fn open(&self, what: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
        use ring::aead::{Aad, Nonce, NONCE_LEN};
        let bytes = sealed
            .strip_prefix(SEAL_PREFIX)
            .and_then(|h| hex::decode(h).ok())
            .filter(|b| b.len() > NONCE_LEN)
            .ok_or_else(|| SealError(format!("{what}: not a sealed value")))?;
        let (nonce, body) = bytes.split_at(NONCE_LEN);
        let mut body = body.to_vec();
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| SealError(format!("{what}: bad nonce")))?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(what.as_bytes()), &mut body)
            .map_err(|_| {
                SealError(format!(
                    "{what} does not open with this cluster secret: it was sealed with another one"
                ))
            })?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod seal_tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_secret_and_name() {
        let s = Sealer::new(b"a cluster secret of at least 32 chars!!");
        let sealed = s.seal("ca_key", b"-----BEGIN PRIVATE KEY-----");
        assert!(!sealed.contains("PRIVATE"));
        assert_eq!(
            s.open("ca_key", &sealed).unwrap(),
            b"-----BEGIN PRIVATE KEY-----"
        );
        assert_ne!(
            sealed,
            s.seal("ca_key", b"-----BEGIN PRIVATE KEY-----"),
            "fresh nonce"
        );
        let other = Sealer::new(b"another cluster secret, 32 chars long");
        let err = other.open("ca_key", &sealed).unwrap_err().to_string();
        assert!(err.contains("another"), "{err}");
        assert!(s.open("admin_token", &sealed).is_err(), "bound to its name");
        assert!(s.open("ca_key", "v1:00").is_err());
        assert!(s.open("ca_key", "plain text").is_err());
    }
}
