//! An app as it is served: the validated spec and the per-app state
//! flows share (round-robin position, origins marked down, the DNS
//! origin's cached addresses, connection counts).

use burrow_config::app::{AppSpec, RawApp};
use burrow_store::App;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an origin address that refused a dial is skipped.
pub(crate) const DOWN_FOR: Duration = Duration::from_secs(30);

/// An app ready to serve: its validated spec and per-app state.
pub(crate) struct Compiled {
    pub(crate) id: uuid::Uuid,
    pub(crate) spec: AppSpec,
    pub(crate) tunnel_id: Option<uuid::Uuid>,
    /// The stored JSON this was built from (to notice updates made by
    /// another edge sharing the store).
    pub(super) source: String,
    pub(super) next: AtomicUsize,
    pub(super) down: Mutex<HashMap<IpAddr, Instant>>,
    pub(super) dns: Mutex<Option<(Instant, Vec<IpAddr>)>>,
    /// Open connections (sessions), in all and per client address.
    pub(crate) counts: Arc<crate::limits::Counts>,
}

impl Compiled {
    /// Validates a stored app.
    pub(crate) fn from_record(app: &App) -> Result<Self, String> {
        let raw = RawApp::from_json(&app.spec).map_err(|e| e.to_string())?;
        let spec = raw.validate().map_err(|e| e.to_string())?;
        Ok(Self::new(app.id, spec, app.tunnel_id, app.spec.clone()))
    }

    pub(crate) fn new(
        id: uuid::Uuid,
        spec: AppSpec,
        tunnel_id: Option<uuid::Uuid>,
        source: String,
    ) -> Self {
        let counts =
            crate::limits::Counts::new(spec.limits.max_connections, spec.limits.max_per_ip);
        Self {
            id,
            spec,
            tunnel_id,
            source,
            counts,
            next: AtomicUsize::new(0),
            down: Mutex::new(HashMap::new()),
            dns: Mutex::new(None),
        }
    }

    /// The next round-robin index.
    pub(crate) fn next_index(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// The DNS origin's addresses as last resolved (empty before the first
    /// TCP flow or resolution).
    /// Whether the DNS origin's addresses were resolved less than `ttl`
    /// seconds ago.
    pub(crate) fn dns_fresh(&self, ttl: u32) -> bool {
        self.dns
            .lock()
            .expect("dns cache lock poisoned")
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < Duration::from_secs(u64::from(ttl)))
    }

    pub(crate) fn cached_dns(&self) -> Vec<IpAddr> {
        self.dns
            .lock()
            .expect("dns cache lock poisoned")
            .as_ref()
            .map(|(_, ips)| ips.clone())
            .unwrap_or_default()
    }

    pub(super) fn is_down(&self, ip: IpAddr, now: Instant) -> bool {
        let down = self.down.lock().expect("origin state lock poisoned");
        down.get(&ip).is_some_and(|until| *until > now)
    }

    pub(super) fn mark(&self, ip: IpAddr, ok: bool) {
        let mut down = self.down.lock().expect("origin state lock poisoned");
        if ok {
            down.remove(&ip);
        } else {
            down.insert(ip, Instant::now() + DOWN_FOR);
        }
    }
}

/// The app a running listener serves; replaced whole by a live update, so
/// each new connection takes the current version and open flows keep the
/// one they started with.
pub(crate) type AppCell = Arc<std::sync::RwLock<Arc<Compiled>>>;
