//! SOCKS5 (RFC 1928) as the zero-trust client's local proxy speaks it: the
//! greeting (no-authentication only), the request (CONNECT and UDP
//! ASSOCIATE) and the header of datagrams on a UDP association, as pure
//! functions over byte buffers. Parsers return `Ok(None)` when more bytes
//! are needed, and never panic.

/// Protocol version byte.
pub const VERSION: u8 = 5;
/// "No authentication required".
pub const NO_AUTH: u8 = 0;
/// "No acceptable methods".
pub const NO_METHOD: u8 = 0xFF;

/// A SOCKS5 command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Open a TCP connection.
    Connect,
    /// Bind (never supported).
    Bind,
    /// Relay UDP datagrams.
    UdpAssociate,
}

/// A destination as the client named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// An IP address and port.
    Ip(std::net::SocketAddr),
    /// A domain name (resolved at the edge) and port.
    Domain(String, u16),
}

impl std::fmt::Display for Dest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dest::Ip(a) => write!(f, "{a}"),
            Dest::Domain(h, p) => write!(f, "{h}:{p}"),
        }
    }
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What the client asks for.
    pub command: Command,
    /// Where to.
    pub dest: Dest,
}

/// Reply codes (RFC 1928 section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Succeeded.
    Succeeded = 0,
    /// General failure.
    GeneralFailure = 1,
    /// Not allowed by the ruleset.
    NotAllowed = 2,
    /// Network unreachable.
    NetworkUnreachable = 3,
    /// Host unreachable.
    HostUnreachable = 4,
    /// Connection refused.
    ConnectionRefused = 5,
    /// TTL expired.
    TtlExpired = 6,
    /// Command not supported.
    CommandNotSupported = 7,
    /// Address type not supported.
    AddressTypeNotSupported = 8,
}

/// Why bytes are not SOCKS5.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SocksError {
    /// Not version 5.
    #[error("not SOCKS5 (version byte {0})")]
    Version(u8),
    /// The greeting lists no methods.
    #[error("the greeting offers no authentication method")]
    NoMethods,
    /// Unknown command byte.
    #[error("unknown SOCKS command {0}")]
    Command(u8),
    /// Unknown address type.
    #[error("unknown SOCKS address type {0}")]
    AddressType(u8),
    /// Reserved byte not zero, empty or non-UTF-8 domain.
    #[error("malformed SOCKS request: {0}")]
    Malformed(&'static str),
}

/// Parses the greeting: `Ok(Some((offers_no_auth, consumed)))`.
///
/// # Errors
/// [`SocksError`] when the bytes are not a SOCKS5 greeting.
pub fn parse_greeting(buf: &[u8]) -> Result<Option<(bool, usize)>, SocksError> {
    let (Some(&ver), Some(&n)) = (buf.first(), buf.get(1)) else {
        return Ok(None);
    };
    if ver != VERSION {
        return Err(SocksError::Version(ver));
    }
    if n == 0 {
        return Err(SocksError::NoMethods);
    }
    let end = 2 + usize::from(n);
    let Some(methods) = buf.get(2..end) else {
        return Ok(None);
    };
    Ok(Some((methods.contains(&NO_AUTH), end)))
}

/// Parses a request: `Ok(Some((request, consumed)))`.
///
/// # Errors
/// [`SocksError`] naming what is wrong.
pub fn parse_request(buf: &[u8]) -> Result<Option<(Request, usize)>, SocksError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    if buf[0] != VERSION {
        return Err(SocksError::Version(buf[0]));
    }
    let command = match buf[1] {
        1 => Command::Connect,
        2 => Command::Bind,
        3 => Command::UdpAssociate,
        c => return Err(SocksError::Command(c)),
    };
    if buf[2] != 0 {
        return Err(SocksError::Malformed("reserved byte is not zero"));
    }
    let Some((dest, end)) = parse_addr(buf, 3)? else {
        return Ok(None);
    };
    Ok(Some((Request { command, dest }, end)))
}

/// Parses an address (`ATYP`, address, port) starting at `buf[at]`:
/// `Ok(Some((dest, end)))` with `end` the index past the port.
fn parse_addr(buf: &[u8], at: usize) -> Result<Option<(Dest, usize)>, SocksError> {
    let port_at = |addr_end: usize| -> Option<u16> {
        buf.get(addr_end..addr_end + 2)
            .map(|p| u16::from_be_bytes([p[0], p[1]]))
    };
    let Some(&atyp) = buf.get(at) else {
        return Ok(None);
    };
    let (dest, end) = match atyp {
        1 => {
            let Some(a) = buf.get(at + 1..at + 5) else {
                return Ok(None);
            };
            let Some(port) = port_at(at + 5) else {
                return Ok(None);
            };
            let ip = std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            (Dest::Ip((ip, port).into()), at + 7)
        }
        4 => {
            let Some(a) = buf.get(at + 1..at + 17) else {
                return Ok(None);
            };
            let Some(port) = port_at(at + 17) else {
                return Ok(None);
            };
            let mut b = [0u8; 16];
            b.copy_from_slice(a);
            (
                Dest::Ip((std::net::Ipv6Addr::from(b), port).into()),
                at + 19,
            )
        }
        3 => {
            let Some(&len) = buf.get(at + 1) else {
                return Ok(None);
            };
            if len == 0 {
                return Err(SocksError::Malformed("empty domain name"));
            }
            let end = at + 2 + usize::from(len);
            let Some(name) = buf.get(at + 2..end) else {
                return Ok(None);
            };
            let Some(port) = port_at(end) else {
                return Ok(None);
            };
            let name = std::str::from_utf8(name)
                .map_err(|_| SocksError::Malformed("domain name is not UTF-8"))?;
            (Dest::Domain(name.to_ascii_lowercase(), port), end + 2)
        }
        t => return Err(SocksError::AddressType(t)),
    };
    Ok(Some((dest, end)))
}

/// Most bytes a SOCKS5 UDP header takes (domain of 255 bytes).
pub const MAX_UDP_HEADER: usize = 4 + 1 + 255 + 2;

/// Parses a datagram from the application on a UDP association (RFC 1928
/// section 7): `RSV(2) FRAG(1) ATYP DST.ADDR DST.PORT DATA` →
/// (destination, offset of the data).
///
/// # Errors
/// [`SocksError`] when the header is malformed or cut short, or the
/// datagram is a fragment (`FRAG` not 0: fragments are not supported and
/// are dropped, as the RFC allows).
pub fn parse_udp(datagram: &[u8]) -> Result<(Dest, usize), SocksError> {
    if datagram.len() < 4 {
        return Err(SocksError::Malformed("UDP header cut short"));
    }
    if datagram[0] != 0 || datagram[1] != 0 {
        return Err(SocksError::Malformed("UDP reserved bytes are not zero"));
    }
    if datagram[2] != 0 {
        return Err(SocksError::Malformed("UDP fragments are not supported"));
    }
    match parse_addr(datagram, 3)? {
        Some(x) => Ok(x),
        None => Err(SocksError::Malformed("UDP header cut short")),
    }
}

/// Writes the UDP header for a datagram coming back from `from` into
/// `out` (cleared first); the payload goes after it.
pub fn udp_header(from: &Dest, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&[0, 0, 0]);
    write_addr(from, out);
}

/// Writes a request (RFC 1928 section 4) into `out` (cleared first): what
/// a SOCKS5 client sends after the greeting. [`parse_request`] reads it
/// back as it was.
pub fn encode_request(req: &Request, out: &mut Vec<u8>) {
    out.clear();
    let command = match req.command {
        Command::Connect => 1,
        Command::Bind => 2,
        Command::UdpAssociate => 3,
    };
    out.extend_from_slice(&[VERSION, command, 0]);
    write_addr(&req.dest, out);
}

/// An address as the protocol writes it: type, address, port.
fn write_addr(dest: &Dest, out: &mut Vec<u8>) {
    match dest {
        Dest::Ip(std::net::SocketAddr::V4(a)) => {
            out.push(1);
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_be_bytes());
        }
        Dest::Ip(std::net::SocketAddr::V6(a)) => {
            out.push(4);
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_be_bytes());
        }
        Dest::Domain(name, port) => {
            // Names over 255 bytes cannot be parsed in; cut defensively.
            let name = &name.as_bytes()[..name.len().min(255)];
            out.push(3);
            out.push(name.len() as u8);
            out.extend_from_slice(name);
            out.extend_from_slice(&port.to_be_bytes());
        }
    }
}

/// A reply with the bound address (all zeros when there is none).
pub fn reply(code: Reply, bound: Option<std::net::SocketAddr>) -> Vec<u8> {
    let mut out = vec![VERSION, code as u8, 0];
    match bound {
        Some(std::net::SocketAddr::V6(a)) => {
            out.push(4);
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_be_bytes());
        }
        Some(std::net::SocketAddr::V4(a)) => {
            out.push(1);
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_be_bytes());
        }
        None => out.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0]),
    }
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_encoded_request_parses_back_the_same() {
        for dest in [
            Dest::Ip("192.0.2.1:443".parse().unwrap()),
            Dest::Ip("[2001:db8::1]:80".parse().unwrap()),
            Dest::Domain("example.com".into(), 8080),
        ] {
            let req = Request {
                command: Command::Connect,
                dest,
            };
            let mut out = Vec::new();
            encode_request(&req, &mut out);
            assert_eq!(parse_request(&out), Ok(Some((req, out.len()))));
        }
    }

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn greeting_and_requests_parse() {
        assert_eq!(parse_greeting(&[5, 2, 2, 0]), Ok(Some((true, 4))));
        assert_eq!(parse_greeting(&[5, 1, 2]), Ok(Some((false, 3))));
        assert_eq!(parse_greeting(&[5, 2, 0]), Ok(None));
        assert_eq!(parse_greeting(&[4, 1, 0]), Err(SocksError::Version(4)));
        let mut r = vec![5, 1, 0, 3, 11];
        r.extend_from_slice(b"Example.com");
        r.extend_from_slice(&443u16.to_be_bytes());
        assert_eq!(
            parse_request(&r),
            Ok(Some((
                Request {
                    command: Command::Connect,
                    dest: Dest::Domain("example.com".into(), 443)
                },
                r.len()
            )))
        );
        assert_eq!(parse_request(&r[..r.len() - 1]), Ok(None));
        let v4 = [5, 3, 0, 1, 127, 0, 0, 1, 0, 53];
        assert_eq!(
            parse_request(&v4).unwrap().unwrap().0.dest,
            Dest::Ip("127.0.0.1:53".parse().unwrap())
        );
        assert_eq!(parse_request(&[5, 9, 0, 1]), Err(SocksError::Command(9)));
        assert_eq!(
            parse_request(&[5, 1, 0, 7]),
            Err(SocksError::AddressType(7))
        );
    }

    #[test]
    fn replies_carry_the_bound_address() {
        assert_eq!(
            reply(Reply::Succeeded, Some("10.0.0.1:1080".parse().unwrap())),
            vec![5, 0, 0, 1, 10, 0, 0, 1, 0x04, 0x38]
        );
        assert_eq!(
            reply(Reply::HostUnreachable, None),
            vec![5, 4, 0, 1, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn udp_headers_round_trip() {
        let mut out = Vec::new();
        for d in [
            Dest::Ip("127.0.0.1:53".parse().unwrap()),
            Dest::Ip("[fd00::1]:5353".parse().unwrap()),
            Dest::Domain("dns.example".into(), 53),
        ] {
            udp_header(&d, &mut out);
            let at = out.len();
            out.extend_from_slice(b"payload");
            assert_eq!(parse_udp(&out), Ok((d, at)));
        }
        assert!(parse_udp(&[0, 0, 1, 1, 127, 0, 0, 1, 0, 53]).is_err());
        assert!(parse_udp(&[0, 1, 0, 1, 127, 0, 0, 1, 0, 53]).is_err());
        assert!(parse_udp(&[0, 0, 0, 1, 127, 0]).is_err());
        assert!(parse_udp(&[0, 0, 0, 9]).is_err());
    }

    proptest! {
        /// Any bytes: no panic, and a parsed request never claims more
        /// bytes than it was given.
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok((_, at)) = parse_udp(&data) {
                prop_assert!(at <= data.len());
            }
            if let Ok(Some((_, n))) = parse_request(&data) {
                prop_assert!(n <= data.len());
            }
            if let Ok(Some((_, n))) = parse_greeting(&data) {
                prop_assert!(n <= data.len());
            }
        }
    }
}
