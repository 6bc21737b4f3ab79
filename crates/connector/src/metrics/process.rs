//! cloudflared's (Go client's) `process_*` families, read from `/proc`
//! when `/metrics` is scraped.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Figures of this process.
#[derive(Default)]
pub(crate) struct ProcessGauges {
    cpu: Counter<f64, AtomicU64>,
    open_fds: Gauge,
    max_fds: Gauge,
    resident: Gauge,
    virtual_memory: Gauge,
    start_time: Gauge<f64, AtomicU64>,
}

/// What `/proc/self/stat` says, past the command name.
#[derive(Debug, PartialEq)]
pub(crate) struct Stat {
    /// utime + stime, in clock ticks.
    pub(crate) cpu_ticks: u64,
    /// Start time since boot, in clock ticks.
    pub(crate) start_ticks: u64,
    pub(crate) vsize: u64,
    /// Resident set, in pages.
    pub(crate) rss_pages: u64,
}

/// Parses `/proc/self/stat` (the command name may hold spaces and
/// parentheses: fields are counted after its last `)`).
pub(crate) fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime 15,
    // starttime 22, vsize 23, rss 24.
    let n = |field: usize| f.get(field - 3)?.parse::<u64>().ok();
    Some(Stat {
        cpu_ticks: n(14)? + n(15)?,
        start_ticks: n(22)?,
        vsize: n(23)?,
        rss_pages: n(24)?,
    })
}

/// The soft `Max open files` of `/proc/self/limits`.
pub(crate) fn parse_max_fds(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Seconds since the epoch at boot (`btime` of `/proc/stat`).
fn boot_time() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
}

/// Linux's USER_HZ and page size, as every mainstream architecture has them.
const TICKS: f64 = 100.0;
const PAGE: u64 = 4096;

impl ProcessGauges {
    pub(crate) fn register(&self, r: &mut Registry) {
        let c = |s: &str| s.to_owned();
        r.register(
            c("process_cpu_seconds"),
            "Total user and system CPU time spent in seconds.",
            self.cpu.clone(),
        );
        r.register(
            c("process_open_fds"),
            "Number of open file descriptors.",
            self.open_fds.clone(),
        );
        r.register(
            c("process_max_fds"),
            "Maximum number of open file descriptors.",
            self.max_fds.clone(),
        );
        r.register(
            c("process_resident_memory_bytes"),
            "Resident memory size in bytes.",
            self.resident.clone(),
        );
        r.register(
            c("process_virtual_memory_bytes"),
            "Virtual memory size in bytes.",
            self.virtual_memory.clone(),
        );
        r.register(
            c("process_start_time_seconds"),
            "Start time of the process since unix epoch in seconds.",
            self.start_time.clone(),
        );
    }

    /// Reads `/proc/self` now.
    pub(crate) fn refresh(&self) {
        let g = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        if let Some(st) = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .as_deref()
            .and_then(parse_stat)
        {
            #[allow(clippy::cast_precision_loss)]
            let cpu = st.cpu_ticks as f64 / TICKS;
            let seen = self.cpu.get();
            if cpu > seen {
                self.cpu.inc_by(cpu - seen);
            }
            self.virtual_memory.set(g(st.vsize));
            self.resident.set(g(st.rss_pages.saturating_mul(PAGE)));
            if let Some(boot) = boot_time() {
                #[allow(clippy::cast_precision_loss)]
                self.start_time
                    .set(boot as f64 + st.start_ticks as f64 / TICKS);
            }
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(g(dir.count() as u64));
        }
        if let Some(max) = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .as_deref()
            .and_then(parse_max_fds)
        {
            self.max_fds.set(g(max));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_and_limits_parse_even_with_odd_command_names() {
        let stat = "1234 (burrow (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 1000 123456789 2048 18446744073709551615";
        assert_eq!(
            parse_stat(stat),
            Some(Stat {
                cpu_ticks: 300,
                start_ticks: 1000,
                vsize: 123_456_789,
                rss_pages: 2048
            })
        );
        assert_eq!(parse_stat("garbage"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            20000                20000                files\n";
        assert_eq!(parse_max_fds(limits), Some(20000));
    }
}
