//! Idle origin connections of the lean HTTP path, one pool per rule.

use burrow_config::origin_request::OriginRequest;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Idle connections to one rule's origin: at most `keepAliveConnections`,
/// each for at most `keepAliveTimeout`.
pub(crate) struct IdlePool {
    conns: Mutex<Vec<(TcpStream, Instant)>>,
    max: usize,
    idle: Duration,
}

impl IdlePool {
    pub(crate) fn new(o: &OriginRequest) -> Self {
        Self {
            conns: Mutex::new(Vec::new()),
            max: o.keep_alive_connections,
            idle: o.keep_alive_timeout,
        }
    }

    /// The most recently used idle connection that is still open.
    pub(crate) fn take(&self) -> Option<TcpStream> {
        let mut conns = self.conns.lock().ok()?;
        while let Some((conn, since)) = conns.pop() {
            if since.elapsed() < self.idle && still_open(&conn) {
                return Some(conn);
            }
        }
        None
    }

    pub(crate) fn put(&self, conn: TcpStream) {
        if let Ok(mut conns) = self.conns.lock() {
            self.drop_expired(&mut conns);
            if conns.len() < self.max {
                conns.push((conn, Instant::now()));
            }
        }
    }

    /// Closes the connections idle for `keepAliveTimeout`: the oldest,
    /// first in the list.
    fn drop_expired(&self, conns: &mut Vec<(TcpStream, Instant)>) {
        let expired = conns
            .iter()
            .take_while(|(_, since)| since.elapsed() >= self.idle)
            .count();
        conns.drain(..expired);
    }

    pub(crate) fn prune(&self) {
        if let Ok(mut conns) = self.conns.lock() {
            self.drop_expired(&mut conns);
        }
    }
}

/// How often idle origin connections are checked for `keepAliveTimeout`.
pub(crate) const PRUNE_EVERY: Duration = Duration::from_secs(5);

/// An idle connection is open while it has nothing to read: a close (or
/// stray bytes) makes it readable. Tokio answers from its readiness state,
/// so this costs no system call while the socket is quiet.
pub(crate) fn still_open(conn: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(conn.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_connections_close_after_the_keep_alive_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let o = OriginRequest {
            keep_alive_connections: 2,
            keep_alive_timeout: Duration::from_millis(200),
            ..OriginRequest::default()
        };
        let pool = IdlePool::new(&o);
        for _ in 0..3 {
            pool.put(TcpStream::connect(addr).await.unwrap());
        }
        let idle = |p: &IdlePool| p.conns.lock().unwrap().len();
        assert_eq!(idle(&pool), 2, "keepAliveConnections caps the idle ones");
        let (_accepted, _) = listener.accept().await.unwrap();
        assert!(pool.take().is_some());
        pool.prune();
        assert_eq!(idle(&pool), 1, "not idle for long yet");
        tokio::time::sleep(Duration::from_millis(300)).await;
        pool.prune();
        assert_eq!(idle(&pool), 0);
        assert!(pool.take().is_none());
    }
}
