//! First-match selection of connector ingress rules.
//!
//! Rules are evaluated top to bottom; the first whose hostname pattern and
//! path regex both match wins. A rule without hostname and path matches
//! everything (the catch-all, which validation keeps last).

use crate::host::HostPattern;
use regex::Regex;

/// The matching part of one ingress rule, compiled.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// Hostname pattern; `None` matches every host.
    pub host: Option<HostPattern>,
    /// Path regex (unanchored, as in cloudflared); `None` matches every path.
    pub path: Option<Regex>,
}

impl Matcher {
    /// Whether this matcher accepts `host` and `path` (`path` is `None` for
    /// flows that have no path, such as TCP; a path regex never matches then).
    pub fn matches(&self, host: &str, path: Option<&str>) -> bool {
        if let Some(h) = &self.host {
            if !h.matches(host) {
                return false;
            }
        }
        match (&self.path, path) {
            (None, _) => true,
            (Some(re), Some(p)) => re.is_match(p),
            (Some(_), None) => false,
        }
    }

    /// Whether this matcher matches everything (no hostname, or `*`, and no path).
    pub fn is_catch_all(&self) -> bool {
        matches!(self.host, None | Some(HostPattern::Any)) && self.path.is_none()
    }
}

/// Index of the first matcher accepting `host` and `path`, if any. The
/// path is matched percent-decoded, as cloudflared matches Go's
/// `URL.Path` (`/a%20b` is `/a b`, `%2F` a `/`); the query is not part of
/// it.
pub fn first_match<'a>(
    matchers: impl IntoIterator<Item = &'a Matcher>,
    host: &str,
    path: Option<&str>,
) -> Option<usize> {
    let decoded = path.map(|p| percent_encoding::percent_decode_str(p).decode_utf8_lossy());
    matchers
        .into_iter()
        .position(|m| m.matches(host, decoded.as_deref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(host: Option<&str>, path: Option<&str>) -> Matcher {
        Matcher {
            host: host.map(|h| HostPattern::parse(h).unwrap()),
            path: path.map(|p| Regex::new(p).unwrap()),
        }
    }

    #[test]
    fn paths_match_percent_decoded_as_cloudflared_sees_them() {
        let rules = [
            m(None, Some("^/files/a b$")),
            m(None, Some("^/x/y$")),
            m(None, None),
        ];
        assert_eq!(first_match(&rules, "h", Some("/files/a%20b")), Some(0));
        assert_eq!(first_match(&rules, "h", Some("/x%2Fy")), Some(1));
        assert_eq!(
            first_match(&rules, "h", Some("/%zz")),
            Some(2),
            "bad escapes stay as written"
        );
    }

    #[test]
    fn first_match_wins_and_catch_all_catches() {
        let rules = [
            m(Some("a.example.com"), None),
            m(Some("*.example.com"), Some("^/api")),
            m(Some("*.example.com"), None),
            m(None, None),
        ];
        assert_eq!(first_match(&rules, "a.example.com", None), Some(0));
        assert_eq!(
            first_match(&rules, "b.example.com", Some("/api/x")),
            Some(1)
        );
        assert_eq!(first_match(&rules, "b.example.com", None), Some(2));
        assert_eq!(first_match(&rules, "other.org", None), Some(3));
        assert!(rules[3].is_catch_all());
        assert!(!rules[2].is_catch_all());
    }
}
