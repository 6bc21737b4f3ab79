//! Key agreement: post-quantum hybrid X25519MLKEM768 (ML-KEM-768 with
//! X25519) offered first on the tunnel transports, classical X25519 as
//! the fallback, and which group a handshake actually used.
//!
//! The provider is rustls' aws-lc-rs one: it ships X25519MLKEM768 (ring
//! has no ML-KEM), its primitives come from AWS-LC (BoringSSL's lineage,
//! FIPS-validated builds exist), and it builds here with a C compiler
//! only. ring stays where a dependency brings it (quinn's reset tokens,
//! rcgen, sqlx) and for origin TLS, whose suite order is documented.
//!
//! The negotiated group is read from the ServerHello itself
//! ([`HelloScan`]): QUIC hides rustls' session inside quinn, so
//! `quic_tls` watches the handshake bytes going through it; HTTP/2 over
//! TLS asks rustls directly.

use rustls::crypto::{aws_lc_rs, CryptoProvider, SupportedKxGroup};
use std::sync::Arc;

/// Post-quantum key agreement on the tunnel transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PostQuantum {
    /// Offer X25519MLKEM768 first, X25519 as the fallback (the default).
    #[default]
    Prefer,
    /// X25519MLKEM768 only: a peer without it cannot connect.
    Require,
    /// Classical key agreement only.
    Off,
}

impl PostQuantum {
    /// `prefer`, `require` or `off`.
    ///
    /// # Errors
    /// The reason, for a message naming the setting.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "prefer" | "on" => Ok(Self::Prefer),
            "require" => Ok(Self::Require),
            "off" => Ok(Self::Off),
            other => Err(format!("'{other}' (expected prefer, require or off)")),
        }
    }

    fn groups(self) -> Vec<&'static dyn SupportedKxGroup> {
        use aws_lc_rs::kx_group::{SECP256R1, X25519, X25519MLKEM768};
        match self {
            Self::Prefer => vec![X25519MLKEM768, X25519, SECP256R1],
            Self::Require => vec![X25519MLKEM768],
            Self::Off => vec![X25519, SECP256R1],
        }
    }
}

/// The hybrid post-quantum group's name, as [`group_name`] prints it.
pub const PQ_GROUP: &str = "X25519MLKEM768";

/// The crypto provider of the tunnel transports under `pq`.
#[must_use]
pub fn provider(pq: PostQuantum) -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        kx_groups: pq.groups(),
        ..aws_lc_rs::default_provider()
    })
}

/// A TLS named group's name (`X25519MLKEM768`, `X25519`, ...).
#[must_use]
pub fn group_name(id: u16) -> String {
    match rustls::NamedGroup::from(id) {
        rustls::NamedGroup::Unknown(n) => format!("0x{n:04x}"),
        g => format!("{g:?}"),
    }
}

/// Whether a group is post-quantum (a hybrid with ML-KEM).
#[must_use]
pub fn is_post_quantum(name: &str) -> bool {
    name.contains("MLKEM")
}

/// Most bytes kept while waiting for the first handshake message.
const SCAN_LIMIT: usize = 8 * 1024;

/// Finds the key-exchange group in the first TLS handshake message of a
/// stream of handshake bytes when that message is a ServerHello (or a
/// HelloRetryRequest, which names the group the handshake then uses).
/// Bytes may come in pieces; anything else ends the scan without a group.
#[derive(Debug, Default)]
pub struct HelloScan {
    buf: Vec<u8>,
    done: bool,
    group: Option<u16>,
}

impl HelloScan {
    /// Feeds handshake bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.done || bytes.is_empty() {
            return;
        }
        self.buf.extend_from_slice(bytes);
        if self.buf.len() < 4 {
            return;
        }
        let len = usize::from(self.buf[1]) << 16
            | usize::from(self.buf[2]) << 8
            | usize::from(self.buf[3]);
        if self.buf[0] != 2 || len > SCAN_LIMIT {
            self.finish(None);
            return;
        }
        if self.buf.len() < 4 + len {
            return;
        }
        let group = server_hello_group(&self.buf[4..4 + len]);
        self.finish(group);
    }

    fn finish(&mut self, group: Option<u16>) {
        self.group = group;
        self.done = true;
        self.buf = Vec::new();
    }

    /// The group, once the ServerHello has been read.
    #[must_use]
    pub fn group(&self) -> Option<u16> {
        self.group
    }
}

/// The `key_share` group of a ServerHello body.
fn server_hello_group(b: &[u8]) -> Option<u16> {
    let u16_at = |i: usize| Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]));
    // legacy_version (2), random (32), legacy_session_id (1 + n),
    // cipher_suite (2), legacy_compression_method (1), extensions.
    let sid = usize::from(*b.get(34)?);
    let mut at = 35 + sid + 3;
    let ext_len = usize::from(u16_at(at)?);
    at += 2;
    let end = at.checked_add(ext_len)?.min(b.len());
    while at + 4 <= end {
        let (ty, len) = (u16_at(at)?, usize::from(u16_at(at + 2)?));
        if ty == 0x0033 {
            return u16_at(at + 4);
        }
        at += 4 + len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ServerHello body with `exts` (type, data) extensions.
    fn hello(exts: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]);
        body.push(32);
        body.extend_from_slice(&[9; 32]);
        body.extend_from_slice(&[0x13, 0x01, 0]);
        let mut ext = Vec::new();
        for (t, d) in exts {
            ext.extend_from_slice(&t.to_be_bytes());
            ext.extend_from_slice(&u16::try_from(d.len()).unwrap().to_be_bytes());
            ext.extend_from_slice(d);
        }
        body.extend_from_slice(&u16::try_from(ext.len()).unwrap().to_be_bytes());
        body.extend_from_slice(&ext);
        let mut msg = vec![2];
        msg.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes()[1..]);
        msg.extend_from_slice(&body);
        msg
    }

    #[test]
    fn the_group_of_a_server_hello_is_found_in_pieces_and_named() {
        // supported_versions, then key_share: group 0x11ec and a share.
        let share = [&[0x11u8, 0xec, 0, 4][..], &[1, 2, 3, 4]].concat();
        let msg = hello(&[(0x002b, &[3, 4]), (0x0033, &share)]);
        let mut scan = HelloScan::default();
        for piece in msg.chunks(5) {
            scan.feed(piece);
        }
        assert_eq!(scan.group(), Some(0x11ec));
        assert_eq!(group_name(0x11ec), PQ_GROUP);
        assert_eq!(group_name(0x001d), "X25519");
        assert!(is_post_quantum(&group_name(0x11ec)) && !is_post_quantum("X25519"));
    }

    #[test]
    fn other_or_broken_messages_end_the_scan_without_a_group() {
        let mut scan = HelloScan::default();
        scan.feed(&[1, 0, 0, 2, 3, 3]);
        assert_eq!(scan.group(), None);
        // Truncated extensions, a huge length, no key_share: no group, no panic.
        for bytes in [
            hello(&[(0x002b, &[3, 4])]),
            vec![2, 0xff, 0xff, 0xff],
            hello(&[(0x0033, &[0x11])]),
        ] {
            let mut scan = HelloScan::default();
            scan.feed(&bytes);
            assert_eq!(scan.group(), None);
        }
        let mut msg = hello(&[(0x0033, &[0, 0x1d])]);
        msg.truncate(msg.len() - 3);
        let mut scan = HelloScan::default();
        scan.feed(&msg);
        assert_eq!(scan.group(), None, "still waiting for the rest");
    }

    #[test]
    fn policies_offer_the_documented_groups() {
        let names = |pq| {
            provider(pq)
                .kx_groups
                .iter()
                .map(|g| format!("{:?}", g.name()))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(PostQuantum::Prefer)[..2], [PQ_GROUP, "X25519"]);
        assert_eq!(names(PostQuantum::Require), [PQ_GROUP]);
        assert!(!names(PostQuantum::Off).iter().any(|n| is_post_quantum(n)));
        assert!(PostQuantum::parse("maybe")
            .unwrap_err()
            .contains("prefer, require or off"));
    }
}
