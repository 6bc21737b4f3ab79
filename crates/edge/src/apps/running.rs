//! The apps this edge serves right now: their bound addresses and the
//! current version of each, which zero-trust egress and the dial guard
//! read. Starting and replacing listeners is [`super`]'s job.

use super::compiled::AppCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// Running listeners, by app id.
#[derive(Default)]
pub(crate) struct AppManager {
    pub(super) running: Mutex<HashMap<uuid::Uuid, RunningApp>>,
    /// The last sync left an app unbound (or could not read the apps).
    pub(super) incomplete: std::sync::atomic::AtomicBool,
    /// Held by whatever changes the running set from the store's apps (a
    /// sync, an admin create/update/delete), so a sync that read the apps
    /// before an admin change never undoes it (stops an app just created,
    /// or binds one just deleted).
    pub(crate) changing: tokio::sync::Mutex<()>,
}

/// A bound edge port of an app.
pub(crate) enum Listener {
    /// TCP app port.
    Tcp(TcpListener),
    /// UDP app port.
    Udp(tokio::net::UdpSocket),
}

impl Listener {
    pub(super) fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            Self::Tcp(l) => l.local_addr(),
            Self::Udp(s) => s.local_addr(),
        }
    }
}

pub(crate) struct RunningApp {
    pub(super) stop: CancellationToken,
    pub(super) addrs: Vec<SocketAddr>,
    pub(super) cell: AppCell,
}

impl AppManager {
    /// Whether this edge serves `host` (an app's `dns.name`) or `addr` (an
    /// app listener; a wildcard listener matches by port): an "orange"
    /// destination for egress policies.
    pub(crate) fn serves(&self, host: Option<&str>, addr: Option<SocketAddr>) -> bool {
        let running = self.running.lock().expect("app map lock poisoned");
        running.values().any(|r| {
            let by_name = host.is_some_and(|h| {
                let app = r.cell.read().expect("app cell lock poisoned");
                app.spec.dns_name.as_deref() == Some(h)
            });
            let by_addr = addr.is_some_and(|a| {
                r.addrs
                    .iter()
                    .any(|l| l.port() == a.port() && (l.ip() == a.ip() || l.ip().is_unspecified()))
            });
            by_name || by_addr
        })
    }

    /// Whether `addr` is an app listener of this edge: its exact address,
    /// or its port on a wildcard listener when `local` (the address is
    /// one of this host's).
    pub(crate) fn listens_on(&self, addr: SocketAddr, local: bool) -> bool {
        let running = self.running.lock().expect("app map lock poisoned");
        running.values().any(|r| {
            r.addrs.iter().any(|l| {
                l.port() == addr.port()
                    && (l.ip() == addr.ip() || (l.ip().is_unspecified() && local))
            })
        })
    }

    /// The addresses an app listens on right now (empty when not running).
    pub(crate) fn listen_addrs(&self, id: uuid::Uuid) -> Vec<SocketAddr> {
        self.running
            .lock()
            .expect("app map lock poisoned")
            .get(&id)
            .map(|r| r.addrs.clone())
            .unwrap_or_default()
    }

    /// Stops an app's listeners (open flows continue).
    pub(crate) fn stop(&self, id: uuid::Uuid) {
        if let Some(r) = self
            .running
            .lock()
            .expect("app map lock poisoned")
            .remove(&id)
        {
            r.stop.cancel();
            info!(app_id = %id, "app stopped");
        }
    }

    /// Stops every listener.
    pub(crate) fn stop_all(&self) {
        let ids: Vec<uuid::Uuid> = self
            .running
            .lock()
            .expect("app map lock poisoned")
            .keys()
            .copied()
            .collect();
        for id in ids {
            self.stop(id);
        }
    }
}

impl AppManager {
    /// `(dns.name, app id, connectivity)` of every running app that has a
    /// `dns` name, for the DNS responder.
    pub(crate) fn dns_names(&self) -> Vec<(String, uuid::Uuid, burrow_config::app::Connectivity)> {
        self.running
            .lock()
            .expect("app map lock poisoned")
            .iter()
            .filter_map(|(id, r)| {
                let app = r.cell.read().expect("app cell lock poisoned");
                let name = app.spec.dns_name.clone()?;
                Some((name, *id, app.spec.connectivity))
            })
            .collect()
    }
}
