//! The registration handshake every party of the tunnel endpoint goes
//! through (connectors, zero-trust clients, peer edges): what an
//! unregistered connection may hold, how long it has, and the answers.

use burrow_proto::v2::{Registration, Welcome, VERSION_2};
use burrow_proto::{Frame, Id, Refusal, RefuseCode, Registered as RegisteredFrame, WireSecret};
use burrow_store::Tunnel;
use burrow_transport::frames::{write_frame, FrameReader};
use burrow_transport::{BoxStream, EdgeConn, TransportError};
use std::sync::Arc;
use std::time::Duration;

/// Time a peer has from its first packet to a registration the edge
/// accepted: TLS/QUIC handshake and registration together.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Most connections in the handshake phase (not registered yet) at once.
pub(crate) const MAX_HANDSHAKING: usize = 1024;

/// Most connections in the handshake phase from one source address, so
/// one host cannot take every handshake slot.
pub(crate) const MAX_HANDSHAKING_PER_SOURCE: usize = 64;

/// What an unregistered connection holds until it registers or goes: one
/// of the [`MAX_HANDSHAKING`] permits, one of its source's
/// [`MAX_HANDSHAKING_PER_SOURCE`], and the deadline of the whole handshake.
pub(crate) struct PreAuth {
    pub(crate) _permit: tokio::sync::OwnedSemaphorePermit,
    pub(crate) _source: crate::limits::Slot,
    pub(crate) deadline: tokio::time::Instant,
}

/// Admission to the handshake phase of one listener: [`MAX_HANDSHAKING`]
/// connections at once, [`MAX_HANDSHAKING_PER_SOURCE`] per address.
pub(crate) struct Gate {
    permits: Arc<tokio::sync::Semaphore>,
    sources: Arc<crate::limits::Counts>,
}

impl Gate {
    pub(crate) fn new() -> Self {
        let per_source = u32::try_from(MAX_HANDSHAKING_PER_SOURCE).expect("small constant");
        Self {
            permits: Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKING)),
            sources: crate::limits::Counts::new(u32::MAX, per_source),
        }
    }

    /// Waits for a free handshake permit (taken before accepting, so a
    /// full edge leaves new connections in the kernel's backlog); `None`
    /// once `shutdown` is cancelled.
    pub(crate) async fn permit(
        &self,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> Option<tokio::sync::OwnedSemaphorePermit> {
        tokio::select! {
            _ = shutdown.cancelled() => None,
            p = self.permits.clone().acquire_owned() => Some(p.expect("semaphore never closed")),
        }
    }

    /// What a connection from `peer` holds through its handshake; `None`
    /// when its address has too many connections in handshake already.
    pub(crate) fn admit(
        &self,
        permit: tokio::sync::OwnedSemaphorePermit,
        peer: std::net::SocketAddr,
    ) -> Option<PreAuth> {
        let Ok(slot) = self.sources.admit(peer.ip()) else {
            tracing::debug!(%peer, "too many connections in handshake from this address; closed");
            return None;
        };
        Some(PreAuth {
            _permit: permit,
            _source: slot,
            deadline: tokio::time::Instant::now() + HANDSHAKE_TIMEOUT,
        })
    }
}

/// Pure check of a connector's registration against the stored tunnel:
/// the secret is compared in constant time, and the account must match.
pub(crate) fn check_registration(
    account_id: &Id,
    tunnel_id: &Id,
    secret: &WireSecret,
    tunnel: Option<&Tunnel>,
) -> Result<(), Refusal> {
    let unknown = || Refusal {
        code: RefuseCode::UnknownTunnel,
        message: format!(
            "tunnel {} is not known to this edge (deleted, or created on another edge)",
            uuid::Uuid::from_bytes(*tunnel_id)
        ),
    };
    let Some(t) = tunnel else {
        return Err(unknown());
    };
    let secret_ok = burrow_store::secret::verify(&t.secret, secret.expose());
    let account_ok = t.account_id.as_bytes() == account_id;
    if !secret_ok || !account_ok {
        return Err(Refusal {
            code: RefuseCode::BadSecret,
            message: format!(
                "tunnel secret does not match for tunnel {}: check the credentials file",
                t.id
            ),
        });
    }
    Ok(())
}

/// A registration as read, in either protocol version: version 1's
/// `Register` is read into the typed form
/// ([`Registration::from_v1`]); `wire` is the version the party spoke,
/// and the one it is answered in.
pub(crate) struct Hello {
    pub(crate) reg: Registration,
    pub(crate) wire: u16,
}

/// Reads the preface and the registration of either version (version 2
/// only when this node speaks it: `newest`).
///
/// # Errors
/// [`TransportError::Version`] for a version this node does not speak; a
/// protocol error when the first frame is not the registration of the
/// preface's version.
pub(crate) async fn read_registration(
    control: &mut BoxStream,
    reader: &mut FrameReader,
    newest: u16,
) -> Result<Hello, TransportError> {
    let wire = reader.read_preface(control).await?;
    if wire > newest {
        return Err(TransportError::Version(wire));
    }
    match (wire, reader.read_frame(control).await?) {
        (1, Frame::Register(r)) => Ok(Hello {
            reg: Registration::from_v1(r),
            wire,
        }),
        (VERSION_2, Frame::Registration(reg)) => Ok(Hello { reg, wire }),
        (_, other) => Err(TransportError::Protocol(format!(
            "expected the registration of version {wire} as the first frame, got {}",
            other.kind_name()
        ))),
    }
}

/// The answer that accepts a registration, in the party's version: a
/// `Welcome` naming this node and the `features` the edge uses on the
/// connection, or version 1's `Registered`.
pub(crate) fn welcome(
    wire: u16,
    connection_id: uuid::Uuid,
    id: &crate::context::Identity,
    features: Vec<String>,
) -> Frame {
    if wire >= VERSION_2 {
        Frame::Welcome(Welcome {
            connection_id: *connection_id.as_bytes(),
            colo: id.colo.clone(),
            node_id: id.node_id.clone(),
            features,
        })
    } else {
        Frame::Registered(RegisteredFrame {
            connection_id: *connection_id.as_bytes(),
            colo: id.colo.clone(),
        })
    }
}

/// Answers a client's or peer's registration; `false` (connection closed)
/// when the answer cannot be sent.
pub(crate) async fn accept_registration(
    control: &mut BoxStream,
    conn: &EdgeConn,
    id: &crate::context::Identity,
    wire: u16,
    pre: PreAuth,
) -> bool {
    let reply = welcome(wire, uuid::Uuid::new_v4(), id, Vec::new());
    conn.authorize();
    drop(pre);
    if write_frame(control, &reply, false).await.is_err() {
        conn.close();
        return false;
    }
    true
}

/// Refuses a registration with the reason, then closes the connection
/// (connectors, zero-trust clients and peer edges alike).
pub(crate) async fn refuse(
    control: &mut BoxStream,
    conn: &EdgeConn,
    code: RefuseCode,
    message: &str,
) {
    let frame = Frame::Refused(Refusal {
        code,
        message: message.to_owned(),
    });
    let _ = write_frame(control, &frame, false).await;
    let _ = tokio::io::AsyncWriteExt::shutdown(control).await;
    // Give the refusal a moment to reach the connector before closing.
    tokio::time::sleep(Duration::from_millis(200)).await;
    conn.close();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(
        secret: &[u8],
        account: uuid::Uuid,
        tunnel: uuid::Uuid,
    ) -> impl Fn(Option<&Tunnel>) -> Result<(), Refusal> {
        let secret = WireSecret::from(secret.to_vec());
        move |t| check_registration(account.as_bytes(), tunnel.as_bytes(), &secret, t)
    }

    #[test]
    fn registration_checks_secret_account_and_existence() {
        let t = Tunnel {
            id: uuid::Uuid::new_v4(),
            account_id: uuid::Uuid::new_v4(),
            name: "t".into(),
            secret: vec![5; 32],
            created_at: 0,
        };
        assert!(reg(&[5; 32], t.account_id, t.id)(Some(&t)).is_ok());
        let e = reg(&[6; 32], t.account_id, t.id)(Some(&t)).unwrap_err();
        assert_eq!(e.code, RefuseCode::BadSecret);
        assert!(e.message.contains("secret does not match"));
        let e = reg(&[5; 31], t.account_id, t.id)(Some(&t)).unwrap_err();
        assert_eq!(e.code, RefuseCode::BadSecret);
        let e = reg(&[5; 32], uuid::Uuid::new_v4(), t.id)(Some(&t)).unwrap_err();
        assert_eq!(e.code, RefuseCode::BadSecret);
        let e = reg(&[5; 32], t.account_id, t.id)(None).unwrap_err();
        assert_eq!(e.code, RefuseCode::UnknownTunnel);
    }
}
