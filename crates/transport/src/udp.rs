//! UDP sockets with kernel buffers sized for bursts: the kernel's default
//! (about 208 KiB) drops datagrams as soon as a relaying task falls a few
//! milliseconds behind a fast sender. Sizes are limits, not allocations:
//! an idle socket costs nothing more; the kernel caps them at
//! `net.core.rmem_max` / `wmem_max`.

use std::io;
use std::net::SocketAddr;

/// Buffers of sockets that carry many sessions (app listeners, QUIC).
pub const SHARED_BUFFER: usize = 8 * 1024 * 1024;
/// Buffers of one session's socket toward its origin.
pub const SESSION_BUFFER: usize = 1024 * 1024;

/// A non-blocking UDP socket bound to `addr` (IPv6 sockets IPv6-only) with
/// receive and send buffers of `buffer` bytes where the kernel allows.
///
/// # Errors
/// The socket cannot be made or bound.
pub fn bind(addr: SocketAddr, buffer: usize) -> io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    // Best effort: a smaller buffer still works, it only drops sooner.
    let _ = s.set_recv_buffer_size(buffer);
    let _ = s.set_send_buffer_size(buffer);
    s.bind(&addr.into())?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// The wildcard address of `target`'s family, port 0: where a socket that
/// talks to `target` binds.
#[must_use]
pub fn any_for(target: SocketAddr) -> SocketAddr {
    if target.is_ipv6() {
        SocketAddr::from(([0u16; 8], 0))
    } else {
        SocketAddr::from(([0u8; 4], 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_raised_where_the_kernel_allows() {
        let s = bind("127.0.0.1:0".parse().unwrap(), SESSION_BUFFER).unwrap();
        let got = socket2::SockRef::from(&s).recv_buffer_size().unwrap();
        // Linux reports double what it grants; the default is ~208 KiB.
        let max = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        assert!(got >= SESSION_BUFFER.min(max), "{got} (rmem_max {max})");
    }
}
