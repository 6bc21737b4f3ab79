//! Live authorization. A party is checked at registration *and* while it
//! stays connected: every registered connector and zero-trust client holds
//! a [`Grant`] in [`LiveGrants`], and [`LiveGrants::sweep`] checks each one
//! against the current [`Facts`] (tunnels, devices, users as the state
//! store has them now). A grant that no longer holds is ended: its token is
//! cancelled with the reason, and the task serving that connection closes
//! it and its flows.
//!
//! Sweeps run once a second on every edge node and at once after an admin
//! change on this node, so a change made through any node that shares the
//! store ends the party's connections on every node within about a second.
//!
//! Locking: the map's `std` mutex is held only to insert, remove or clone
//! the entries out; never across `.await`.

pub(crate) mod sweep;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio_util::sync::CancellationToken;

/// A digest of a stored secret: grants keep this, never the secret, and a
/// rotated secret shows as a different digest.
pub(crate) type SecretDigest = [u8; 32];

/// Digest of a secret's stored form.
pub(crate) fn digest(stored: &[u8]) -> SecretDigest {
    use sha2::Digest;
    sha2::Sha256::digest(stored).into()
}

/// What a connected party was admitted as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Grant {
    /// A connector of `tunnel`, admitted with the secret whose stored form
    /// has digest `secret`.
    Connector {
        tunnel: uuid::Uuid,
        secret: SecretDigest,
    },
    /// A zero-trust client: `device` of user `email`, on the virtual
    /// network it chose (`None`: the default one).
    Client {
        device: uuid::Uuid,
        email: String,
        secret: SecretDigest,
        vnet: Option<uuid::Uuid>,
    },
}

impl Grant {
    /// `connector` or `client` (metric label).
    pub(crate) fn party(&self) -> &'static str {
        match self {
            Self::Connector { .. } => "connector",
            Self::Client { .. } => "client",
        }
    }
}

/// Why a grant no longer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Revocation {
    TunnelDeleted,
    SecretRotated,
    DeviceRevoked,
    DeviceDeleted,
    UserDeleted,
    /// The client's virtual network was deleted or no longer allows it.
    VnetAccess,
    /// The same device registered again (on this node): the older
    /// connection goes, so a client that moved networks is not locked out
    /// by its own stale connection.
    Superseded,
}

impl Revocation {
    /// Metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::TunnelDeleted => "tunnel_deleted",
            Self::SecretRotated => "secret_rotated",
            Self::DeviceRevoked => "device_revoked",
            Self::DeviceDeleted => "device_deleted",
            Self::UserDeleted => "user_deleted",
            Self::VnetAccess => "vnet_access",
            Self::Superseded => "superseded",
        }
    }

    /// What the party is told, and the edge logs.
    pub(crate) fn message(self) -> &'static str {
        match self {
            Self::TunnelDeleted => "the tunnel was deleted",
            Self::SecretRotated => "the tunnel secret was rotated",
            Self::DeviceRevoked => "the device was revoked",
            Self::DeviceDeleted => "the device no longer exists",
            Self::UserDeleted => "the device's user was deleted",
            Self::VnetAccess => "the device may no longer use its virtual network",
            Self::Superseded => "the same device connected again; this older connection was closed",
        }
    }
}

/// One device as grants see it.
#[derive(Debug, Clone)]
pub(crate) struct DeviceFacts {
    pub(crate) email: String,
    pub(crate) revoked: bool,
    pub(crate) secret: SecretDigest,
}

/// The state grants are checked against.
#[derive(Debug, Default)]
pub(crate) struct Facts {
    /// Tunnel id → digest of its stored secret.
    pub(crate) tunnels: HashMap<uuid::Uuid, SecretDigest>,
    pub(crate) devices: HashMap<uuid::Uuid, DeviceFacts>,
    /// Existing users' emails → their groups.
    pub(crate) users: HashMap<String, Vec<String>>,
    pub(crate) vnets: HashMap<uuid::Uuid, burrow_store::Vnet>,
}

impl Facts {
    /// Reads the facts from the store.
    pub(crate) async fn load(
        store: &burrow_store::Store,
    ) -> Result<Self, burrow_store::StoreError> {
        let tunnels = store
            .tunnels()
            .await?
            .into_iter()
            .map(|t| (t.id, digest(&t.secret)))
            .collect();
        let devices = store
            .devices()
            .await?
            .into_iter()
            .map(|d| {
                let f = DeviceFacts {
                    email: d.user_email,
                    revoked: d.revoked,
                    secret: digest(&d.secret),
                };
                (d.id, f)
            })
            .collect();
        let users = store
            .users()
            .await?
            .into_iter()
            .map(|u| (u.email, u.groups))
            .collect();
        let vnets = store
            .vnets()
            .await?
            .into_iter()
            .map(|v| (v.id, v))
            .collect();
        Ok(Self {
            tunnels,
            devices,
            users,
            vnets,
        })
    }
}

/// Whether `grant` still holds under `facts` (pure).
pub(crate) fn check(grant: &Grant, facts: &Facts) -> Result<(), Revocation> {
    match grant {
        Grant::Connector { tunnel, secret } => match facts.tunnels.get(tunnel) {
            None => Err(Revocation::TunnelDeleted),
            Some(now) if now != secret => Err(Revocation::SecretRotated),
            Some(_) => Ok(()),
        },
        Grant::Client {
            device,
            email,
            secret,
            vnet,
        } => {
            // Deleting a user deletes its devices: say which went first.
            let Some(groups) = facts.users.get(email) else {
                return Err(Revocation::UserDeleted);
            };
            let Some(d) = facts.devices.get(device) else {
                return Err(Revocation::DeviceDeleted);
            };
            if d.revoked || &d.secret != secret || &d.email != email {
                return Err(Revocation::DeviceRevoked);
            }
            match vnet {
                Some(v) if !facts.vnets.get(v).is_some_and(|v| v.allows(email, groups)) => {
                    Err(Revocation::VnetAccess)
                }
                _ => Ok(()),
            }
        }
    }
}

/// A connected party's grant and the token that ends it.
#[derive(Debug)]
pub(crate) struct Live {
    pub(crate) grant: Grant,
    ended: CancellationToken,
    reason: OnceLock<Revocation>,
}

impl Live {
    /// Resolves when the grant has been revoked. Cancel-safe.
    pub(crate) async fn revoked(&self) -> Revocation {
        self.ended.cancelled().await;
        self.reason().unwrap_or(Revocation::DeviceRevoked)
    }

    /// Why the grant was revoked, if it was.
    pub(crate) fn reason(&self) -> Option<Revocation> {
        self.reason.get().copied()
    }

    fn revoke(&self, why: Revocation) {
        let _ = self.reason.set(why);
        self.ended.cancel();
    }
}

/// Removes its grant from [`LiveGrants`] when the connection ends.
pub(crate) struct Admitted {
    pub(crate) live: Arc<Live>,
    id: u64,
    grants: Arc<LiveGrants>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.grants
            .map
            .lock()
            .expect("live grants lock poisoned")
            .remove(&self.id);
    }
}

/// The grants of every party connected to this node.
#[derive(Default)]
pub(crate) struct LiveGrants {
    map: Mutex<HashMap<u64, Arc<Live>>>,
    next: AtomicU64,
    /// Woken by admin changes that may revoke something, so the sweep
    /// runs at once instead of at the next tick.
    pub(crate) changed: tokio::sync::Notify,
}

impl LiveGrants {
    /// Records a party admitted with `grant`, until the returned guard
    /// drops. A client grant ends the live grants of the same device (one
    /// connection per device: the newest wins); returns how many it ended.
    pub(crate) fn admit(self: &Arc<Self>, grant: Grant) -> (Admitted, usize) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let device = match &grant {
            Grant::Client { device, .. } => Some(*device),
            Grant::Connector { .. } => None,
        };
        let live = Arc::new(Live {
            grant,
            ended: CancellationToken::new(),
            reason: OnceLock::new(),
        });
        let older: Vec<Arc<Live>> = {
            let mut map = self.map.lock().expect("live grants lock poisoned");
            let older = map
                .values()
                .filter(|l| {
                    device.is_some()
                        && matches!(&l.grant, Grant::Client { device: d, .. } if Some(*d) == device)
                        && l.reason().is_none()
                })
                .cloned()
                .collect();
            map.insert(id, live.clone());
            older
        };
        for l in &older {
            l.revoke(Revocation::Superseded);
        }
        let admitted = Admitted {
            live,
            id,
            grants: self.clone(),
        };
        (admitted, older.len())
    }

    /// Ends every grant that no longer holds under `facts`; returns them
    /// with the reason (each grant once).
    pub(crate) fn sweep(&self, facts: &Facts) -> Vec<(Grant, Revocation)> {
        let live: Vec<Arc<Live>> = self
            .map
            .lock()
            .expect("live grants lock poisoned")
            .values()
            .cloned()
            .collect();
        live.into_iter()
            .filter(|l| l.reason().is_none())
            .filter_map(|l| {
                let why = check(&l.grant, facts).err()?;
                l.revoke(why);
                Some((l.grant.clone(), why))
            })
            .collect()
    }

    /// Parties connected now.
    pub(crate) fn len(&self) -> usize {
        self.map.lock().expect("live grants lock poisoned").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> (Facts, uuid::Uuid, uuid::Uuid) {
        let (t, d) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        let mut f = Facts::default();
        f.tunnels.insert(t, digest(b"tunnel secret"));
        f.devices.insert(
            d,
            DeviceFacts {
                email: "ana@example.com".into(),
                revoked: false,
                secret: digest(b"device secret"),
            },
        );
        f.users.insert("ana@example.com".into(), vec!["eng".into()]);
        (f, t, d)
    }

    fn client(d: uuid::Uuid) -> Grant {
        Grant::Client {
            device: d,
            email: "ana@example.com".into(),
            secret: digest(b"device secret"),
            vnet: None,
        }
    }

    #[test]
    fn grants_hold_until_their_facts_change() {
        let (mut f, t, d) = facts();
        let conn = Grant::Connector {
            tunnel: t,
            secret: digest(b"tunnel secret"),
        };
        assert_eq!(check(&conn, &f), Ok(()));
        assert_eq!(check(&client(d), &f), Ok(()));

        f.tunnels.insert(t, digest(b"rotated"));
        assert_eq!(check(&conn, &f), Err(Revocation::SecretRotated));
        f.tunnels.remove(&t);
        assert_eq!(check(&conn, &f), Err(Revocation::TunnelDeleted));

        f.devices.get_mut(&d).unwrap().revoked = true;
        assert_eq!(check(&client(d), &f), Err(Revocation::DeviceRevoked));
        f.devices.clear();
        assert_eq!(check(&client(d), &f), Err(Revocation::DeviceDeleted));
        f.users.clear();
        assert_eq!(check(&client(d), &f), Err(Revocation::UserDeleted));
    }

    #[test]
    fn a_sweep_ends_each_revoked_grant_once_and_forgets_dropped_ones() {
        let (mut f, _, d) = facts();
        let grants = Arc::new(LiveGrants::default());
        let (a, _) = grants.admit(client(d));
        let (other, _) = grants.admit(client(uuid::Uuid::new_v4()));
        assert_eq!(grants.len(), 2);
        // The other device was never in the facts: it goes at once.
        let ended = grants.sweep(&f);
        assert_eq!(ended.len(), 1);
        assert_eq!(other.live.reason(), Some(Revocation::DeviceDeleted));
        assert!(a.live.reason().is_none());
        f.devices.get_mut(&d).unwrap().revoked = true;
        let ended = grants.sweep(&f);
        assert_eq!(ended, vec![(client(d), Revocation::DeviceRevoked)]);
        assert_eq!(a.live.reason(), Some(Revocation::DeviceRevoked));
        assert!(grants.sweep(&f).is_empty(), "each grant is ended once");
        drop((a, other));
        assert_eq!(grants.len(), 0);
    }

    #[test]
    fn a_device_that_registers_again_ends_its_older_connection() {
        let d = uuid::Uuid::new_v4();
        let grants = Arc::new(LiveGrants::default());
        let (first, n) = grants.admit(client(d));
        assert_eq!(n, 0);
        let (second, n) = grants.admit(client(d));
        assert_eq!(n, 1);
        assert_eq!(first.live.reason(), Some(Revocation::Superseded));
        assert!(second.live.reason().is_none());
        let (_other, n) = grants.admit(client(uuid::Uuid::new_v4()));
        assert_eq!(n, 0, "other devices are untouched");
    }
}
