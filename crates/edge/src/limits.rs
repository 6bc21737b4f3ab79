//! Limits on what the public side of apps can make the edge hold: open
//! connections per app and per client address ([`Counts`]), new UDP
//! sessions per client address and second ([`Rate`]), and log lines about
//! refusals ([`LogGate`]: one per key and interval, with a count of those
//! held back). Pure: callers pass `now`.
//!
//! Locking: each structure's `std` mutex is held for a map update only,
//! never across `.await`.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why a new connection or session was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The app has `max_connections` open.
    AppFull,
    /// This client address has `max_connections_per_ip` open.
    SourceFull,
    /// This client address opens sessions faster than allowed.
    TooFast,
}

impl Refused {
    /// Metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::AppFull => "app_cap",
            Self::SourceFull => "source_cap",
            Self::TooFast => "source_rate",
        }
    }
}

#[derive(Default)]
struct Tally {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// Open connections of one app, in all and per client address.
pub(crate) struct Counts {
    tally: Mutex<Tally>,
    max_total: usize,
    max_per_source: usize,
}

/// One admitted connection; counted until dropped.
pub(crate) struct Slot {
    counts: Arc<Counts>,
    ip: IpAddr,
}

impl Counts {
    pub(crate) fn new(max_total: u32, max_per_source: u32) -> Arc<Self> {
        let n = |v: u32| usize::try_from(v).unwrap_or(usize::MAX);
        Arc::new(Self {
            tally: Mutex::new(Tally::default()),
            max_total: n(max_total),
            max_per_source: n(max_per_source),
        })
    }

    /// Admits a connection from `ip`, or says which cap it hit.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refused> {
        let mut t = self.tally.lock().expect("app counts lock poisoned");
        if t.total >= self.max_total {
            return Err(Refused::AppFull);
        }
        let n = t.by_source.entry(ip).or_insert(0);
        if *n >= self.max_per_source {
            return Err(Refused::SourceFull);
        }
        *n += 1;
        t.total += 1;
        Ok(Slot {
            counts: self.clone(),
            ip,
        })
    }

    /// Open connections now.
    #[cfg(test)]
    pub(crate) fn open(&self) -> usize {
        self.tally.lock().expect("app counts lock poisoned").total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut t = self.counts.tally.lock().expect("app counts lock poisoned");
        t.total -= 1;
        if let Some(n) = t.by_source.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                t.by_source.remove(&self.ip);
            }
        }
    }
}

/// A token bucket per client address: `per_sec` new sessions a second,
/// bursts up to `burst`. At most `max_sources` addresses are tracked; when
/// that many are, full buckets (idle addresses) are forgotten first, and
/// an address that finds no room is refused.
pub(crate) struct Rate {
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
    per_sec: f64,
    burst: f64,
    max_sources: usize,
}

impl Rate {
    pub(crate) fn new(per_sec: u32, burst: u32, max_sources: usize) -> Self {
        Self {
            buckets: Mutex::new(HashMap::new()),
            per_sec: f64::from(per_sec),
            burst: f64::from(burst),
            max_sources,
        }
    }

    /// Takes one token for `ip` at `now`; `false` when it has none.
    pub(crate) fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let mut b = self.buckets.lock().expect("rate lock poisoned");
        if !b.contains_key(&ip) && b.len() >= self.max_sources {
            let (per_sec, burst) = (self.per_sec, self.burst);
            b.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * per_sec < burst
            });
            if b.len() >= self.max_sources {
                return false;
            }
        }
        let (tokens, at) = b.entry(ip).or_insert((self.burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * self.per_sec)
            .min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Lets one log line per key through every `every`; counts the rest.
pub(crate) struct LogGate<K> {
    last: Mutex<HashMap<K, (Instant, u64)>>,
    every: Duration,
}

impl<K: Hash + Eq> LogGate<K> {
    pub(crate) fn new(every: Duration) -> Self {
        Self {
            last: Mutex::new(HashMap::new()),
            every,
        }
    }

    /// `Some(held back since the last line)` when a line for `key` may be
    /// written at `now`; `None` (and counted) otherwise.
    pub(crate) fn pass(&self, key: K, now: Instant) -> Option<u64> {
        let mut m = self.last.lock().expect("log gate lock poisoned");
        match m.get_mut(&key) {
            Some((at, held)) if now.saturating_duration_since(*at) < self.every => {
                *held += 1;
                None
            }
            Some((at, held)) => {
                let n = *held;
                *at = now;
                *held = 0;
                Some(n)
            }
            None => {
                m.insert(key, (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn counts_cap_the_app_and_each_source_and_free_on_drop() {
        let c = Counts::new(3, 2);
        let a1 = c.admit(ip("192.0.2.1")).unwrap();
        let _a2 = c.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(c.admit(ip("192.0.2.1")).err(), Some(Refused::SourceFull));
        let _b1 = c.admit(ip("192.0.2.2")).unwrap();
        assert_eq!(c.admit(ip("192.0.2.3")).err(), Some(Refused::AppFull));
        assert_eq!(c.open(), 3);
        drop(a1);
        assert_eq!(c.open(), 2);
        assert!(c.admit(ip("192.0.2.3")).is_ok());
    }

    #[test]
    fn the_rate_allows_a_burst_then_refills() {
        let r = Rate::new(10, 5, 2);
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        assert_eq!((0..8).filter(|_| r.allow(a, t0)).count(), 5);
        assert!(!r.allow(a, t0 + Duration::from_millis(50)));
        assert!(r.allow(a, t0 + Duration::from_millis(200)));
        // The table is bounded: a third address waits until one is idle.
        assert!(r.allow(ip("192.0.2.2"), t0));
        assert!(!r.allow(ip("192.0.2.3"), t0));
        assert!(r.allow(ip("192.0.2.3"), t0 + Duration::from_secs(5)));
    }

    #[test]
    fn the_log_gate_passes_one_line_per_interval_and_counts_the_rest() {
        let g = LogGate::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(g.pass("app", t0), Some(0));
        assert_eq!(g.pass("app", t0 + Duration::from_secs(1)), None);
        assert_eq!(g.pass("app", t0 + Duration::from_secs(2)), None);
        assert_eq!(g.pass("other", t0 + Duration::from_secs(2)), Some(0));
        assert_eq!(g.pass("app", t0 + Duration::from_secs(11)), Some(2));
    }
}
