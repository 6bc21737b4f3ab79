//! Hostname patterns as cloudflared understands them: an exact name, a
//! leading `*.` wildcard that matches one or more labels in front of the
//! suffix, or a lone `*` that matches everything. Matching ignores ASCII case
//! and a trailing dot.

use std::fmt;

/// A compiled hostname pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Matches every hostname.
    Any,
    /// Matches exactly this name (lower-case, no trailing dot).
    Exact(String),
    /// `*.suffix`: matches `a.suffix`, `a.b.suffix`, never `suffix` itself.
    /// Holds `.suffix`, lower-case.
    Wildcard(String),
}

/// Why a hostname pattern is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPatternError(pub &'static str);

impl fmt::Display for HostPatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

fn normalize(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn valid_label_chars(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl HostPattern {
    /// Compiles a pattern.
    ///
    /// # Errors
    /// When the name is empty, too long, has an empty label or a character
    /// outside letters, digits, `-` and `_`, or a `*` anywhere but as the
    /// whole first label.
    pub fn parse(s: &str) -> Result<Self, HostPatternError> {
        if s == "*" {
            return Ok(Self::Any);
        }
        let n = normalize(s);
        if n.len() > 253 {
            return Err(HostPatternError("hostname is longer than 253 characters"));
        }
        if let Some(suffix) = n.strip_prefix("*.") {
            if !valid_label_chars(suffix) {
                return Err(HostPatternError(
                    "invalid hostname after '*.': use letters, digits, '-' and non-empty labels",
                ));
            }
            return Ok(Self::Wildcard(format!(".{suffix}")));
        }
        if n.contains('*') {
            return Err(HostPatternError(
                "a wildcard is only allowed as the whole first label, as in '*.example.com'",
            ));
        }
        if !valid_label_chars(&n) {
            return Err(HostPatternError(
                "invalid hostname: use letters, digits, '-' and non-empty labels",
            ));
        }
        Ok(Self::Exact(n))
    }

    /// Whether `host` (as sent by a client; a `:port` suffix is ignored)
    /// matches this pattern.
    pub fn matches(&self, host: &str) -> bool {
        let host = strip_port(host);
        let host = host.trim_end_matches('.');
        match self {
            Self::Any => true,
            Self::Exact(name) => host.eq_ignore_ascii_case(name),
            Self::Wildcard(suffix) => {
                host.len() > suffix.len()
                    && host
                        .get(host.len() - suffix.len()..)
                        .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
            }
        }
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host; // IPv6 literal: leave as is.
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_wildcard() {
        let e = HostPattern::parse("SSH.Example.com.").unwrap();
        assert!(e.matches("ssh.example.com"));
        assert!(e.matches("ssh.EXAMPLE.com:22"));
        assert!(!e.matches("x.ssh.example.com"));
        let w = HostPattern::parse("*.example.com").unwrap();
        assert!(w.matches("a.example.com"));
        assert!(w.matches("a.b.example.com"));
        assert!(!w.matches("example.com"));
        assert!(!w.matches("aexample.com"));
        assert!(HostPattern::parse("*").unwrap().matches("anything"));
    }

    #[test]
    fn rejects_bad_patterns() {
        for bad in ["", "a..b", "a.*.b", "*a.com", "exa mple.com", "*."] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?}");
        }
    }
}
