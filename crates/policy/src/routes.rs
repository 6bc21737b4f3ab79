//! Public hostname → tunnel routes of the edge's HTTP listeners.
//!
//! A route's hostname is exact (`app.example.com`) or a wildcard
//! (`*.example.com`, matching one or more labels in front). A request's
//! host picks the exact route if there is one, else the wildcard with the
//! longest suffix; `*` alone is not a route (a catch-all would send every
//! stray request into some tunnel).

use crate::host::{HostPattern, HostPatternError};
use std::collections::HashMap;

/// The compiled routes, read once per request.
#[derive(Debug, Default, Clone)]
pub struct RouteTable<T> {
    exact: HashMap<String, T>,
    /// `(".suffix", target)`, longest suffix first.
    wildcard: Vec<(String, T)>,
}

/// Checks a route hostname and returns its normal form (lower case, no
/// trailing dot).
///
/// # Errors
/// When it is not a DNS name or `*.`-wildcard of one.
pub fn normalize_route(host: &str) -> Result<String, HostPatternError> {
    match HostPattern::parse(host)? {
        HostPattern::Any => Err(HostPatternError(
            "'*' alone would route every hostname; use *.example.com",
        )),
        HostPattern::Exact(h) => Ok(h),
        HostPattern::Wildcard(suffix) => Ok(format!("*{suffix}")),
    }
}

impl<T: Clone> RouteTable<T> {
    /// Builds the table; entries whose hostname does not normalize are
    /// skipped (the API refuses them before they are stored).
    pub fn new(routes: impl IntoIterator<Item = (String, T)>) -> Self {
        let mut t = Self {
            exact: HashMap::new(),
            wildcard: Vec::new(),
        };
        for (host, target) in routes {
            match HostPattern::parse(&host) {
                Ok(HostPattern::Exact(h)) => {
                    t.exact.insert(h, target);
                }
                Ok(HostPattern::Wildcard(suffix)) => t.wildcard.push((suffix, target)),
                _ => {}
            }
        }
        t.wildcard
            .sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        t
    }

    /// The target for a request's host (any case, optional `:port` and
    /// trailing dot).
    pub fn find(&self, host: &str) -> Option<&T> {
        let host = strip_port(host).trim_end_matches('.').to_ascii_lowercase();
        if let Some(t) = self.exact.get(&host) {
            return Some(t);
        }
        self.wildcard
            .iter()
            .find(|(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
            .map(|(_, t)| t)
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcard.len()
    }

    /// Whether there are no routes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `host:port` → `host`; `[v6]:port` → `[v6]`.
pub fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable<u32> {
        RouteTable::new([
            ("app.example.com".to_owned(), 1),
            ("*.example.com".to_owned(), 2),
            ("*.deep.example.com".to_owned(), 3),
        ])
    }

    #[test]
    fn exact_beats_wildcard_and_the_longest_wildcard_wins() {
        let t = table();
        assert_eq!(t.find("app.example.com"), Some(&1));
        assert_eq!(t.find("APP.Example.com.:8443"), Some(&1));
        assert_eq!(t.find("other.example.com"), Some(&2));
        assert_eq!(t.find("a.b.example.com"), Some(&2));
        assert_eq!(t.find("x.deep.example.com"), Some(&3));
        assert_eq!(t.find("example.com"), None);
        assert_eq!(t.find("example.org"), None);
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn route_names_are_checked() {
        assert_eq!(
            normalize_route("App.Example.com.").unwrap(),
            "app.example.com"
        );
        assert_eq!(normalize_route("*.Example.com").unwrap(), "*.example.com");
        assert!(normalize_route("*").is_err());
        assert!(normalize_route("a.*.com").is_err());
        assert!(normalize_route("").is_err());
    }

    #[test]
    fn ports_are_stripped() {
        assert_eq!(strip_port("a.example.com:80"), "a.example.com");
        assert_eq!(strip_port("a.example.com"), "a.example.com");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("::1"), "::1");
    }
}
