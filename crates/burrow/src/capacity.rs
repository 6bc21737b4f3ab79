//! `burrow capacity`: connector sizing from the rule of thumb operators use
//! for cloudflared (reference `004_*`: 50,000 ephemeral ports per host
//! carry about 4,000 users; at least 2 hosts per location, each with 4
//! cores and 4 GB) and from this build's measured memory per session.

/// Ports one host should dedicate to the connector.
pub(crate) const PORTS_PER_HOST: u64 = 50_000;
/// Users one host carries with that many ports (so 12.5 ports per user).
pub(crate) const USERS_PER_HOST: u64 = 4_000;
/// Fewest hosts per location (redundancy and balancing).
pub(crate) const MIN_HOSTS: u64 = 2;
/// Connector memory per idle proxied session, bytes: half of the 18.1 KB
/// (edge + connector) measured by `bench/run.sh` (RESULTS.md, 16:19 run).
pub(crate) const IDLE_SESSION_BYTES: u64 = 9 * 1024;
/// Connector memory per session moving bulk data, an upper estimate: both
/// splice buffers grown to 16 KiB, plus ~128 KiB of stream data in transit
/// and socket and stream bookkeeping.
pub(crate) const BUSY_SESSION_BYTES: u64 = 160 * 1024;
/// Baseline cores and memory per host (`004_*`).
pub(crate) const BASE_CORES: u64 = 4;
pub(crate) const BASE_MEMORY_MB: u64 = 4_096;

/// The recommendation for one location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) sessions: u64,
    pub(crate) hosts: u64,
    pub(crate) ports_per_host: u64,
    pub(crate) sessions_per_host: u64,
    pub(crate) cores_per_host: u64,
    pub(crate) memory_mb_per_host: u64,
    /// Memory the sessions themselves take per host (all idle, all busy).
    pub(crate) session_memory_mb: (u64, u64),
}

/// Sizes a location for `users`, each holding `sessions_per_user`
/// concurrent sessions (default: what the rule of thumb implies, 12.5).
pub(crate) fn plan(users: u64, sessions_per_user: Option<f64>) -> Plan {
    let per_user = sessions_per_user.unwrap_or(PORTS_PER_HOST as f64 / USERS_PER_HOST as f64);
    let sessions = (users as f64 * per_user).ceil() as u64;
    let by_ports = sessions.div_ceil(PORTS_PER_HOST);
    let hosts = by_ports.max(MIN_HOSTS);
    let sessions_per_host = sessions.div_ceil(hosts);
    let mb = |b: u64| b.div_ceil(1024 * 1024);
    let idle = mb(sessions_per_host * IDLE_SESSION_BYTES);
    let busy = mb(sessions_per_host * BUSY_SESSION_BYTES);
    Plan {
        sessions,
        hosts,
        ports_per_host: PORTS_PER_HOST,
        sessions_per_host,
        cores_per_host: BASE_CORES,
        // The baseline, or more when the sessions would not fit beside it.
        memory_mb_per_host: BASE_MEMORY_MB.max(busy + 512),
        session_memory_mb: (idle, busy),
    }
}

/// The text `burrow capacity` prints.
pub(crate) fn render(users: u64, p: &Plan) -> String {
    format!(
        "For {users} users ({sessions} concurrent sessions) in one location:\n\
         \x20 connector hosts:      {hosts} (at least {min} for redundancy; {ports} ports each carry ~{per} users)\n\
         \x20 per host:             {cores} cores, {mem} MB memory, {ports} ephemeral ports, ~{sph} sessions\n\
         \x20 session memory/host:  {idle} MB if idle, {busy} MB if all move bulk data (measured: {ib} KB idle, {bb} KB busy per session)\n\
         \x20 open files per host:  at least {files} (one socket per session plus its stream)\n\
         Set the port range on each host:\n\
         \x20 Linux:   sysctl -w net.ipv4.ip_local_port_range=\"11000 60999\"\n\
         \x20 Windows: netsh int ipv4 set dynamicport tcp start=11000 num=50000\n\
         \x20          netsh int ipv4 set dynamicport udp start=11000 num=50000\n\
         \x20          netsh int ipv6 set dynamicport tcp start=11000 num=50000\n\
         \x20          netsh int ipv6 set dynamicport udp start=11000 num=50000\n",
        sessions = p.sessions,
        hosts = p.hosts,
        min = MIN_HOSTS,
        ports = p.ports_per_host,
        per = USERS_PER_HOST,
        cores = p.cores_per_host,
        mem = p.memory_mb_per_host,
        sph = p.sessions_per_host,
        idle = p.session_memory_mb.0,
        busy = p.session_memory_mb.1,
        ib = IDLE_SESSION_BYTES / 1024,
        bb = BUSY_SESSION_BYTES / 1024,
        files = (p.sessions_per_host * 2).max(65_536),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_of_thumb_holds() {
        // 8,000 users: two hosts of 4,000 (the reference's example).
        let p = plan(8_000, None);
        assert_eq!((p.hosts, p.sessions_per_host), (2, 50_000));
        assert_eq!(p.memory_mb_per_host, 8_325);
        // Few users still get two hosts; many get more.
        assert_eq!(plan(10, None).hosts, 2);
        assert_eq!(plan(20_000, None).hosts, 5);
        // Heavier users need more hosts.
        assert_eq!(plan(4_000, Some(50.0)).hosts, 4);
        assert_eq!(plan(0, None).sessions, 0);
        let text = render(8_000, &p);
        assert!(text.contains("connector hosts:      2"), "{text}");
        assert!(text.contains("ip_local_port_range"), "{text}");
    }
}
