//! Published TCP apps: one listener per app port; each accepted connection
//! becomes one stream to a connector of the app's tunnel.
//!
//! Flow phases: accept → pick a tunnel connection (round-robin, falling
//! back to the next one if a stream cannot be opened) → send `StreamOpen`
//! → wait for `StreamAccepted` → splice bytes both ways with half-close.
//!
//! Apps live in the state store; [`AppManager::sync`] starts listeners for
//! new rows and stops those of deleted ones, so edges sharing a store follow
//! each other's changes.

use crate::Shared;
use burrow_proto::{FlowKind, Frame, StreamOpen};
use burrow_store::App;
use burrow_transport::frames::{write_frame, FrameReader};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

/// How long the connector has to reach the origin and accept a flow.
pub(crate) const ACCEPT_TIMEOUT: Duration = Duration::from_secs(30);
/// Tunnel connections tried for one flow before giving up.
const TRIES: usize = 3;

/// Running listeners, by app id.
#[derive(Default)]
pub(crate) struct AppManager {
    running: Mutex<HashMap<uuid::Uuid, RunningApp>>,
}

struct RunningApp {
    stop: CancellationToken,
    addr: SocketAddr,
}

impl AppManager {
    /// Starts serving `app` on an already bound `listener`.
    pub(crate) fn adopt(
        &self,
        shared: &Arc<Shared>,
        app: App,
        listener: TcpListener,
        shutdown: &CancellationToken,
    ) {
        let stop = shutdown.child_token();
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::new(shared.app_address, app.port_start));
        info!(app_id = %app.id, %addr, hostname = %app.hostname, "app listening");
        self.running.lock().expect("app map lock poisoned").insert(
            app.id,
            RunningApp {
                stop: stop.clone(),
                addr,
            },
        );
        let shared2 = shared.clone();
        shared.tasks.spawn(
            run_listener(shared2, app.clone(), listener, stop)
                .instrument(tracing::info_span!("app", app_id = %app.id, %addr)),
        );
    }

    /// Stops an app's listener (open flows continue).
    pub(crate) fn stop(&self, id: uuid::Uuid) {
        if let Some(r) = self
            .running
            .lock()
            .expect("app map lock poisoned")
            .remove(&id)
        {
            r.stop.cancel();
            info!(app_id = %id, addr = %r.addr, "app stopped");
        }
    }

    /// Brings listeners in line with the store.
    pub(crate) async fn sync(&self, shared: &Arc<Shared>, shutdown: &CancellationToken) {
        let apps = match shared.store.apps().await {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "could not read apps from the state store");
                return;
            }
        };
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
            if self
                .running
                .lock()
                .expect("app map lock poisoned")
                .contains_key(&id)
            {
                continue;
            }
            match bind(shared.app_address, app.port_start).await {
                Ok(l) => self.adopt(shared, app, l, shutdown),
                Err(e) => {
                    // Remember the failure quietly: retried on the next sync.
                    debug!(app_id = %id, port = app.port_start, error = %e, "cannot bind app port yet");
                }
            }
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

/// Binds an app port on `ip`.
pub(crate) async fn bind(ip: IpAddr, port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::new(ip, port)).await
}

async fn run_listener(
    shared: Arc<Shared>,
    app: App,
    listener: TcpListener,
    stop: CancellationToken,
) {
    let edge_port = listener
        .local_addr()
        .map(|a| a.port())
        .unwrap_or(app.port_start);
    let app = Arc::new(app);
    loop {
        let (client, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    warn!(error = %e, "accept failed; backing off");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = client.set_nodelay(true);
        let flow_id = shared.next_flow.fetch_add(1, Ordering::Relaxed);
        let shared2 = shared.clone();
        let app = app.clone();
        shared.flows.spawn(
            async move {
                if let Err(reason) =
                    proxy_flow(&shared2, &app, client, peer, edge_port, flow_id).await
                {
                    info!(%reason, "flow closed with error");
                }
            }
            .instrument(tracing::info_span!("flow", flow_id, client = %peer)),
        );
    }
}

/// Why a flow ended badly, for logs. The side is part of the text.
type FlowError = String;

async fn proxy_flow(
    shared: &Shared,
    app: &App,
    mut client: TcpStream,
    peer: SocketAddr,
    edge_port: u16,
    flow_id: u64,
) -> Result<(), FlowError> {
    let candidates = shared.registry.pick(app.tunnel_id, TRIES);
    if candidates.is_empty() {
        return Err(format!(
            "tunnel: no connector is connected for tunnel {}",
            app.tunnel_id
        ));
    }
    let header = Frame::StreamOpen(StreamOpen {
        kind: FlowKind::Tcp,
        flow_id,
        hostname: app.hostname.clone(),
        edge_port,
        client_addr: peer,
    });
    let mut last_err = String::new();
    for conn in candidates {
        let mut stream = match conn.open_stream().await {
            Ok(s) => s,
            Err(e) => {
                last_err = format!("tunnel: cannot open a stream: {e}");
                continue;
            }
        };
        if let Err(e) = write_frame(&mut stream, &header, false).await {
            last_err = format!("tunnel: cannot send the flow header: {e}");
            continue;
        }
        let mut reader = FrameReader::new();
        let reply = tokio::time::timeout(ACCEPT_TIMEOUT, reader.read_frame(&mut stream)).await;
        match reply {
            Ok(Ok(Frame::StreamAccepted)) => {}
            Ok(Ok(Frame::StreamRejected(r))) => {
                return Err(format!("origin: connector refused the flow: {}", r.message));
            }
            Ok(Ok(other)) => return Err(format!("tunnel: unexpected reply {other:?}")),
            Ok(Err(e)) => {
                last_err = format!("tunnel: no answer to the flow header: {e}");
                continue;
            }
            Err(_) => {
                return Err(format!(
                    "origin: connector did not accept the flow within {ACCEPT_TIMEOUT:?}"
                ))
            }
        }
        let leftover = reader.into_leftover();
        if !leftover.is_empty() {
            client
                .write_all(&leftover)
                .await
                .map_err(|e| format!("client: {e}"))?;
        }
        drop(leftover);
        shared.active_flows.fetch_add(1, Ordering::Relaxed);
        let res = burrow_transport::splice::splice(&mut client, &mut stream).await;
        shared.active_flows.fetch_sub(1, Ordering::Relaxed);
        return match res {
            Ok((up, down)) => {
                debug!(bytes_up = up, bytes_down = down, "flow finished");
                Ok(())
            }
            Err(e) => Err(format!("splice: {e}")),
        };
    }
    Err(last_err)
}
