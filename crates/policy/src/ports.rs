//! Port ranges and the edge → origin port mapping of apps.
//!
//! Edge port `p` of range `A-B` maps to origin port `C + (p − A)` for origin
//! range `C-D`; a single origin port takes every edge port of the range.
//! Ranges are inclusive and never contain port 0.

use std::fmt;

/// An inclusive, non-empty range of ports in `1..=65535`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    start: u16,
    end: u16,
}

/// Why a port or range is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortError(pub String);

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn port(s: &str) -> Result<u16, PortError> {
    let t = s.trim();
    // Digits only: Rust's integer parser also takes a leading '+'.
    if t.is_empty() || t.len() > 5 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PortError(format!("'{s}' is not a port number")));
    }
    let n: u32 = t
        .parse()
        .map_err(|_| PortError(format!("'{s}' is not a port number")))?;
    match u16::try_from(n) {
        Ok(0) => Err(PortError("port 0 is not usable".into())),
        Ok(p) => Ok(p),
        Err(_) => Err(PortError(format!("port {n} is above 65535"))),
    }
}

impl PortRange {
    /// A range; `None` when `start` is 0 or `start > end`.
    pub fn new(start: u16, end: u16) -> Option<Self> {
        (start >= 1 && start <= end).then_some(Self { start, end })
    }

    /// Parses `P` or `A-B`.
    ///
    /// # Errors
    /// [`PortError`] for non-numbers, port 0, ports above 65535 and
    /// reversed ranges.
    pub fn parse(s: &str) -> Result<Self, PortError> {
        let (a, b) = match s.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => {
                let p = port(s)?;
                (p, p)
            }
        };
        Self::new(a, b).ok_or_else(|| PortError(format!("range {a}-{b} is reversed")))
    }

    /// First port.
    pub fn start(self) -> u16 {
        self.start
    }

    /// Last port (inclusive).
    pub fn end(self) -> u16 {
        self.end
    }

    /// Number of ports (1 to 65535).
    pub fn len(self) -> u32 {
        u32::from(self.end) - u32::from(self.start) + 1
    }

    /// Always false: ranges hold at least one port.
    pub fn is_empty(self) -> bool {
        false
    }

    /// Whether `p` is in the range.
    pub fn contains(self, p: u16) -> bool {
        (self.start..=self.end).contains(&p)
    }

    /// Whether the two ranges share a port.
    pub fn overlaps(self, other: Self) -> bool {
        self.start <= other.end && other.start <= self.end
    }

    /// Every port of the range.
    pub fn iter(self) -> impl Iterator<Item = u16> {
        self.start..=self.end
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

/// How edge ports map to origin ports: checked once, then [`PortMap::map`]
/// is total over the edge range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortMap {
    edge: PortRange,
    origin: PortRange,
}

impl PortMap {
    /// Pairs an edge range with an origin range of the same size, or with a
    /// single origin port.
    ///
    /// # Errors
    /// When the origin range has another number of ports than the edge
    /// range; the message names both counts.
    pub fn new(edge: PortRange, origin: PortRange) -> Result<Self, PortError> {
        if origin.len() != 1 && origin.len() != edge.len() {
            return Err(PortError(format!(
                "the origin range {origin} has {} ports but the edge range {edge} has {}; \
                 they must be equal (or the origin a single port)",
                origin.len(),
                edge.len()
            )));
        }
        Ok(Self { edge, origin })
    }

    /// The edge range.
    pub fn edge(self) -> PortRange {
        self.edge
    }

    /// The origin range (one port, or as many as the edge range).
    pub fn origin(self) -> PortRange {
        self.origin
    }

    /// The origin port for edge port `p`, or `None` when `p` is outside the
    /// edge range.
    pub fn map(self, p: u16) -> Option<u16> {
        if !self.edge.contains(p) {
            return None;
        }
        if self.origin.len() == 1 {
            return Some(self.origin.start);
        }
        // Same length, so the offset fits the origin range.
        Some(self.origin.start + (p - self.edge.start))
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn only_digits_make_a_port() {
        for bad in ["+80", "-80", "8 0", "0x50", "", "123456", "80a"] {
            assert!(PortRange::parse(bad).is_err(), "{bad:?}");
        }
        assert!(PortRange::parse("tcp/+5".trim_start_matches("tcp/")).is_err());
        assert_eq!(PortRange::parse(" 80 ").unwrap().start(), 80);
    }

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!(PortRange::parse("22").unwrap().len(), 1);
        assert_eq!(PortRange::parse("1000-2000").unwrap().len(), 1001);
        assert_eq!(PortRange::parse("1-65535").unwrap().len(), 65535);
        for (bad, why) in [
            ("0", "port 0"),
            ("70000", "above 65535"),
            ("20-10", "reversed"),
            ("x", "not a port"),
            ("1-", "not a port"),
        ] {
            assert!(PortRange::parse(bad).unwrap_err().0.contains(why), "{bad}");
        }
    }

    #[test]
    fn the_spectrum_example_maps_1005_to_3005() {
        let m = PortMap::new(
            PortRange::parse("1000-2000").unwrap(),
            PortRange::parse("3000-4000").unwrap(),
        )
        .unwrap();
        assert_eq!(m.map(1005), Some(3005));
        assert_eq!(m.map(999), None);
        let e = PortMap::new(
            PortRange::parse("20000-20009").unwrap(),
            PortRange::parse("30000-30004").unwrap(),
        )
        .unwrap_err();
        assert!(e.0.contains("has 5 ports") && e.0.contains("has 10"), "{e}");
    }

    fn range() -> impl Strategy<Value = PortRange> {
        (1u16..=65535, 0u16..2000).prop_map(|(a, len)| {
            PortRange::new(a, a.saturating_add(len)).expect("a >= 1 and a <= a + len")
        })
    }

    proptest! {
        #[test]
        fn mapped_ports_stay_in_the_origin_range(edge in range(), origin_start in 1u16..=65535, p in 1u16..=65535) {
            let len = u16::try_from(edge.len() - 1).unwrap();
            prop_assume!(origin_start.checked_add(len).is_some());
            let origin = PortRange::new(origin_start, origin_start + len).unwrap();
            let m = PortMap::new(edge, origin).unwrap();
            match m.map(p) {
                Some(o) => {
                    prop_assert!(edge.contains(p));
                    prop_assert!(origin.contains(o));
                    prop_assert_eq!(o - origin.start(), p - edge.start());
                }
                None => prop_assert!(!edge.contains(p)),
            }
        }

        #[test]
        fn parse_never_panics(s in ".{0,12}") {
            let _ = PortRange::parse(&s);
        }

        #[test]
        fn display_round_trips(r in range()) {
            prop_assert_eq!(PortRange::parse(&r.to_string()).unwrap(), r);
        }
    }
}
