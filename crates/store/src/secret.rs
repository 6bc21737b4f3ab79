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
