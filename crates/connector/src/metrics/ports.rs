//! Ephemeral ports in use, read from `/proc` (blocking: callers run it on
//! a blocking thread).

/// Sockets in `/proc/net/{tcp,tcp6,udp,udp6}` whose local port lies in
/// the ephemeral range.
pub(crate) fn ports_in_use() -> Option<u64> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = range
        .split_whitespace()
        .filter_map(|p| p.parse::<u16>().ok());
    let (lo, hi) = (it.next()?, it.next()?);
    let mut n = 0;
    for f in ["tcp", "tcp6", "udp", "udp6"] {
        if let Ok(text) = std::fs::read_to_string(format!("/proc/net/{f}")) {
            n += count_in_range(&text, lo, hi);
        }
    }
    Some(n)
}

/// Lines of a `/proc/net/tcp`-style table whose local port is in `lo..=hi`.
pub(crate) fn count_in_range(table: &str, lo: u16, hi: u16) -> u64 {
    table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|local| local.rsplit_once(':'))
        .filter_map(|(_, port)| u16::from_str_radix(port, 16).ok())
        .filter(|p| (lo..=hi).contains(p))
        .count() as u64
}
