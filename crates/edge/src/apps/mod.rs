//! Published TCP apps: one listener per edge port of the app's range; each
//! accepted connection goes to the app's origin.
//!
//! Flow phases: accept → origin:
//! - tunnel origin: pick a tunnel connection (round-robin, falling back to
//!   the next one if a stream cannot be opened) → `StreamOpen` (with the
//!   edge port) → wait for `StreamAccepted`;
//! - direct origin: map the edge port into the origin range, dial the
//!   addresses round-robin, skipping one that failed in the last
//!   [`compiled::DOWN_FOR`];
//! - DNS origin: the same over the name's addresses, re-resolved after its
//!   TTL;
//!
//! → splice bytes both ways with half-close.
//!
//! Apps live in the state store; [`AppManager::sync`] starts listeners for
//! new rows and stops those of deleted ones, so edges sharing a store follow
//! each other's changes.

pub(crate) mod compiled;
pub(crate) mod edge_tls;
pub(crate) mod origin;
pub(crate) mod origin_tls;
pub(crate) mod refusal;
pub(crate) mod running;
pub(crate) mod tcp;
pub(crate) mod udp;
pub(crate) mod udp_session;

use crate::context::Ctx;
use burrow_config::app::{AppSpec, L4};
use burrow_store::App;
use compiled::{AppCell, Compiled};
use running::{AppManager, Listener, RunningApp};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

impl AppManager {
    /// Starts serving `app` on its already bound listeners.
    pub(crate) fn adopt(
        &self,
        ctx: &Arc<Ctx>,
        app: Arc<Compiled>,
        listeners: Vec<Listener>,
        shutdown: &CancellationToken,
    ) {
        let stop = shutdown.child_token();
        let addrs: Vec<SocketAddr> = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        let ips: Vec<IpAddr> = addrs
            .iter()
            .map(SocketAddr::ip)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        info!(app_id = %app.id, ports = %app.spec.edge_ports, addresses = ?ips, "app listening");
        let cell: AppCell = Arc::new(std::sync::RwLock::new(app.clone()));
        self.running.lock().expect("app map lock poisoned").insert(
            app.id,
            RunningApp {
                stop: stop.clone(),
                addrs,
                cell: cell.clone(),
            },
        );
        for listener in listeners {
            let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
            let span = tracing::info_span!("app", app_id = %app.id, port);
            match listener {
                Listener::Tcp(l) => ctx.tasks.spawn(
                    tcp::run_listener(ctx.clone(), cell.clone(), l, stop.clone()).instrument(span),
                ),
                Listener::Udp(u) => ctx.tasks.spawn(
                    udp::run_port(ctx.clone(), cell.clone(), u, stop.clone()).instrument(span),
                ),
            };
        }
    }

    /// Applies a new version of a running app. Same edge ports: swapped in
    /// place, nothing is rebound and no connection is touched. Other ports:
    /// the old listeners close and the new ones open (open flows continue).
    ///
    /// # Errors
    /// When the new ports cannot be bound; the old version is put back.
    pub(crate) async fn replace(
        &self,
        ctx: &Arc<Ctx>,
        new: Arc<Compiled>,
        shutdown: &CancellationToken,
    ) -> Result<(), String> {
        let current = self
            .running
            .lock()
            .expect("app map lock poisoned")
            .get(&new.id)
            .map(|r| r.cell.clone());
        if let Some(cell) = &current {
            let same = {
                let old = cell.read().expect("app cell lock poisoned");
                old.spec.edge_ports == new.spec.edge_ports && old.spec.l4 == new.spec.l4
            };
            if same {
                *cell.write().expect("app cell lock poisoned") = new.clone();
                info!(app_id = %new.id, "app updated in place");
                return Ok(());
            }
        }
        let old = current.map(|c| c.read().expect("app cell lock poisoned").clone());
        self.stop(new.id);
        match bind_retrying(ctx, new.id, &new.spec).await {
            Ok(listeners) => {
                self.adopt(ctx, new, listeners, shutdown);
                Ok(())
            }
            Err(e) => {
                if let Some(old) = old {
                    if let Ok(l) = bind_retrying(ctx, old.id, &old.spec).await {
                        self.adopt(ctx, old, l, shutdown);
                    }
                }
                Err(e)
            }
        }
    }

    /// Whether the last [`sync`](Self::sync) left something undone (a
    /// port still held elsewhere, the store unreadable): the heartbeat
    /// then tries again.
    pub(crate) fn incomplete(&self) -> bool {
        self.incomplete.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Brings listeners in line with the store.
    pub(crate) async fn sync(&self, ctx: &Arc<Ctx>, shutdown: &CancellationToken) {
        let done = self.sync_once(ctx, shutdown).await;
        self.incomplete
            .store(!done, std::sync::atomic::Ordering::Relaxed);
    }

    /// One [`sync`](Self::sync); `false` when something is left undone.
    async fn sync_once(&self, ctx: &Arc<Ctx>, shutdown: &CancellationToken) -> bool {
        let _changing = self.changing.lock().await;
        let apps = match ctx.store.apps().await {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "could not read apps from the state store");
                return false;
            }
        };
        let mut done = true;
        let wanted: HashMap<uuid::Uuid, App> = apps.into_iter().map(|a| (a.id, a)).collect();
        let stale: Vec<uuid::Uuid> = {
            let running = self.running.lock().expect("app map lock poisoned");
            running
                .keys()
                .filter(|id| !wanted.contains_key(id))
                .copied()
                .collect()
        };
        for id in stale {
            self.stop(id);
        }
        for (id, app) in wanted {
            let running_source = self
                .running
                .lock()
                .expect("app map lock poisoned")
                .get(&id)
                .map(|r| {
                    r.cell
                        .read()
                        .expect("app cell lock poisoned")
                        .source
                        .clone()
                });
            if let Some(source) = running_source {
                if source != app.spec {
                    // Updated through another edge sharing the store.
                    match Compiled::from_record(&app) {
                        Ok(c) => {
                            if let Err(e) = self.replace(ctx, Arc::new(c), shutdown).await {
                                warn!(app_id = %id, error = %e, "cannot apply an app update");
                            }
                        }
                        Err(e) => warn!(app_id = %id, error = %e, "stored app is invalid"),
                    }
                }
                continue;
            }
            let compiled = match Compiled::from_record(&app) {
                Ok(c) => Arc::new(c),
                Err(e) => {
                    warn!(app_id = %id, error = %e, "stored app is invalid; not serving it");
                    continue;
                }
            };
            match bind_all(ctx, id, &compiled.spec).await {
                Ok(l) => self.adopt(ctx, compiled, l, shutdown),
                Err(e) => {
                    // Retried on the next sync.
                    debug!(app_id = %id, error = %e, "cannot bind app ports yet");
                    done = false;
                }
            }
        }
        done
    }
}

/// Binds every edge port of app `id` on its pool addresses; all or
/// nothing.
///
/// # Errors
/// The first port that cannot be bound, named in the message, or why the
/// pools have no address for the app.
pub(crate) async fn bind_all(
    ctx: &Ctx,
    id: uuid::Uuid,
    spec: &AppSpec,
) -> Result<Vec<Listener>, String> {
    let ips = ctx.id.app_pools.addresses(id, spec.connectivity)?;
    let per_ip = usize::try_from(spec.edge_ports.len()).unwrap_or(0);
    let mut out = Vec::with_capacity(per_ip * ips.len());
    for ip in ips {
        for port in spec.edge_ports.iter() {
            let addr = SocketAddr::new(ip, port);
            let l = bind_one(addr, spec.l4)
                .map_err(|e| format!("cannot listen on {}/{addr}: {e}", spec.l4.as_str()))?;
            out.push(l);
        }
    }
    Ok(out)
}

/// One non-blocking listener; IPv6 ones are IPv6-only so `::` and
/// `0.0.0.0` pools can be used together.
pub(crate) fn bind_one(addr: SocketAddr, l4: L4) -> std::io::Result<Listener> {
    use socket2::{Domain, Protocol, Socket, Type};
    if l4 == L4::Udp {
        // One socket carries every session of the port: room for bursts.
        let s = burrow_transport::udp::bind(addr, burrow_transport::udp::SHARED_BUFFER)?;
        return Ok(Listener::Udp(tokio::net::UdpSocket::from_std(s)?));
    }
    let domain = Domain::for_address(addr);
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(Listener::Tcp(TcpListener::from_std(socket.into())?))
}

/// [`bind_all`], retried for a moment while just-closed listeners of the
/// same ports go away.
pub(crate) async fn bind_retrying(
    ctx: &Ctx,
    id: uuid::Uuid,
    spec: &AppSpec,
) -> Result<Vec<Listener>, String> {
    let mut last = String::new();
    for _ in 0..20 {
        match bind_all(ctx, id, spec).await {
            Ok(l) => return Ok(l),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(last)
}
