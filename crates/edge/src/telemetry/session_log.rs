//! Network session logs: one JSON object per finished client session,
//! with the field names and meanings of Cloudflare Gateway's network
//! session logs (reference `002_*`). Times are Unix nanoseconds.
//!
//! Records go through a bounded queue to a writer task that appends them
//! as JSON lines to `--session-log FILE` and rotates the file at
//! [`ROTATE_AT`] (`FILE` → `FILE.1`). A full queue drops the record and
//! counts it (`burrow_edge_session_log_dropped_total`); shutdown flushes
//! what is queued.
//!
//! `ConnectionCloseReason` values: `CLIENT_OR_ORIGIN_CLOSED` (either side
//! ended the connection), `ORIGIN_REFUSED`, `ORIGIN_UNREACHABLE`,
//! `ORIGIN_TIMEOUT`, `PORT_EXHAUSTION` (no local port for the dial),
//! `DNS_FAILURE`, `EGRESS_IP_UNAVAILABLE` (the policy's dedicated IP is
//! not an address of this edge), `TUNNEL_UNAVAILABLE` (a private route's
//! tunnel has no connector up), `IDLE_TIMEOUT` (a UDP session silent for
//! 60 s), `ERROR` (a transport failure mid-session).
//! A connector's refusal of a private-network flow (unreachable, or over
//! its `warp-routing.maxActiveFlows`) is `ORIGIN_UNREACHABLE`.
//!
//! `Offramp` is `INTERNET`, or `CFD_TUNNEL` for sessions routed into a
//! private network (`burrow route ip add`), with `DestinationTunnelID` set.
//! `VirtualNetworkID` is the client's virtual network. `UserID` is a
//! UUID derived from the account and the user's email (stable, not secret).
//! `BytesSent` counts client → destination, `BytesReceived` destination →
//! client.

use burrow_proto::close::CloseReason;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Size at which the log file is rotated.
pub(crate) const ROTATE_AT: u64 = 64 * 1024 * 1024;
/// Records waiting for the writer; more are dropped and counted.
pub(crate) const QUEUE: usize = 16_384;

fn nanos(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A user's stable id: a name-based UUID (v5) of the account and email,
/// the same on every edge and across restarts.
fn user_id(account: &Value, email: &str) -> String {
    let ns = account
        .as_str()
        .and_then(|a| uuid::Uuid::parse_str(a).ok())
        .unwrap_or(uuid::Uuid::NAMESPACE_URL);
    uuid::Uuid::new_v5(&ns, email.as_bytes()).to_string()
}

/// One session, filled in as the flow goes.
pub(crate) struct SessionRecord(Value, CloseReason);

impl SessionRecord {
    pub(crate) fn new(
        account_id: uuid::Uuid,
        colo: &str,
        started: SystemTime,
        client: SocketAddr,
    ) -> Self {
        let mut id = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut id);
        Self(
            json!({
                "AccountID": account_id.to_string(),
                "BytesReceived": 0,
                "BytesSent": 0,
                "ClientTCPHandshakeDurationMs": 0,
                "ClientTLSCipher": "",
                "ClientTLSHandshakeDurationMs": 0,
                "ClientTLSVersion": "none",
                "ConnectionCloseReason": CloseReason::Unknown.as_str(),
                "ConnectionReuse": false,
                "DestinationTunnelID": "00000000-0000-0000-0000-000000000000",
                "DetectedProtocol": "",
                "DeviceID": "",
                "DeviceName": "",
                "EgressColoName": colo,
                "EgressIP": "",
                "EgressPort": 0,
                "EgressRuleID": uuid::Uuid::nil().to_string(),
                "EgressRuleName": "",
                "Email": "",
                "IngressColoName": colo,
                "Offramp": "INTERNET",
                "OriginIP": "",
                "OriginPort": 0,
                "OriginTLSCertificateIssuer": "",
                "OriginTLSCertificateValidationResult": "NONE",
                "OriginTLSCipher": "",
                "OriginTLSHandshakeDurationMs": 0,
                "OriginTLSVersion": "none",
                "Protocol": "TCP",
                "RuleEvaluationDurationMs": 0,
                "SessionEndTime": 0,
                "SessionID": hex::encode(id),
                "SessionStartTime": nanos(started),
                "SourceIP": client.ip().to_string(),
                "SourceInternalIP": "",
                "SourcePort": client.port(),
                "UserID": "",
                "VirtualNetworkID": "",
            }),
            CloseReason::Unknown,
        )
    }

    pub(crate) fn device(&mut self, id: &str, name: &str, email: &str) {
        self.0["DeviceID"] = json!(id);
        self.0["DeviceName"] = json!(name);
        self.0["Email"] = json!(email);
        self.0["UserID"] = json!(user_id(&self.0["AccountID"], email));
    }

    /// The egress rule that matched: `EgressRuleID` is its UUID
    /// ([`burrow_config::egress::log_id`]), `EgressRuleName` its name.
    pub(crate) fn rule(&mut self, id: &str, name: &str) {
        self.0["EgressRuleID"] = json!(burrow_config::egress::log_id(Some(id)).to_string());
        self.0["EgressRuleName"] = json!(name);
    }

    /// Whole milliseconds, as the Gateway document's integer field (a
    /// sub-millisecond evaluation is 0).
    pub(crate) fn rule_evaluation(&mut self, took: Duration) {
        self.0["RuleEvaluationDurationMs"] =
            json!(u64::try_from(took.as_millis()).unwrap_or(u64::MAX));
    }

    pub(crate) fn origin(&mut self, a: SocketAddr) {
        self.0["OriginIP"] = json!(a.ip().to_string());
        self.0["OriginPort"] = json!(a.port());
    }

    pub(crate) fn egress(&mut self, local: SocketAddr) {
        self.0["EgressIP"] = json!(local.ip().to_string());
        self.0["EgressPort"] = json!(local.port());
    }

    /// The colo whose edge dialled (another colo's for peer egress).
    pub(crate) fn egress_colo(&mut self, colo: &str) {
        self.0["EgressColoName"] = json!(colo);
    }

    /// What the client's first bytes showed (`TLS`, `HTTP`, `HTTP2`,
    /// `SSH`); nothing when unknown.
    pub(crate) fn detected_protocol(&mut self, p: &str) {
        if !p.is_empty() {
            self.0["DetectedProtocol"] = json!(p);
        }
    }

    /// `TCP` (the default) or `UDP`.
    pub(crate) fn protocol(&mut self, p: &str) {
        self.0["Protocol"] = json!(p);
    }

    /// The client's virtual network.
    pub(crate) fn vnet(&mut self, id: uuid::Uuid) {
        self.0["VirtualNetworkID"] = json!(id.to_string());
    }

    /// The session left through a tunnel into a private network.
    pub(crate) fn tunnel(&mut self, id: uuid::Uuid) {
        self.0["Offramp"] = json!("CFD_TUNNEL");
        self.0["DestinationTunnelID"] = json!(id.to_string());
    }

    pub(crate) fn bytes(&mut self, sent: u64, received: u64) {
        self.0["BytesSent"] = json!(sent);
        self.0["BytesReceived"] = json!(received);
    }

    /// Sets the close reason and the end time (now).
    pub(crate) fn close(&mut self, reason: CloseReason) {
        self.1 = reason;
        self.0["ConnectionCloseReason"] = json!(reason.as_str());
        self.0["SessionEndTime"] = json!(nanos(SystemTime::now()));
    }

    /// The close reason set so far.
    pub(crate) fn close_reason(&self) -> CloseReason {
        self.1
    }

    pub(crate) fn into_line(self) -> String {
        self.0.to_string()
    }
}

/// The writer's handle, held by [`Ctx`].
pub(crate) struct SessionLog {
    tx: std::sync::Mutex<Option<mpsc::Sender<String>>>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl SessionLog {
    /// Starts the writer for `path` (`None`: records are discarded).
    pub(crate) fn start(path: Option<PathBuf>) -> Self {
        Self::start_with(path, ROTATE_AT, QUEUE)
    }

    /// [`start`](Self::start) with another rotation size and queue length
    /// (tests).
    pub(crate) fn start_with(path: Option<PathBuf>, rotate_at: u64, queue: usize) -> Self {
        let Some(path) = path else {
            return Self {
                tx: std::sync::Mutex::new(None),
                task: std::sync::Mutex::new(None),
            };
        };
        let (tx, mut rx) = mpsc::channel::<String>(queue);
        let task = tokio::spawn(async move {
            let open = |p: &PathBuf| {
                let p = p.clone();
                async move {
                    // Records name users and devices: owner-only (an
                    // existing file made by an older build is narrowed).
                    let f = tokio::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .mode(0o600)
                        .open(&p)
                        .await?;
                    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
                        .await?;
                    Ok::<_, std::io::Error>(f)
                }
            };
            let mut file = match open(&path).await {
                Ok(f) => f,
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "cannot open the session log");
                    return;
                }
            };
            let mut size = file.metadata().await.map(|m| m.len()).unwrap_or(0);
            while let Some(line) = rx.recv().await {
                let mut batch = line;
                batch.push('\n');
                while let Ok(more) = rx.try_recv() {
                    batch.push_str(&more);
                    batch.push('\n');
                }
                if let Err(e) = file.write_all(batch.as_bytes()).await {
                    tracing::error!(error = %e, "session log write failed");
                }
                let _ = file.flush().await;
                size += batch.len() as u64;
                if size >= rotate_at {
                    let mut rotated = path.clone().into_os_string();
                    rotated.push(".1");
                    let _ = tokio::fs::rename(&path, &rotated).await;
                    if let Ok(f) = open(&path).await {
                        file = f;
                        size = 0;
                    }
                }
            }
            let _ = file.sync_all().await;
        });
        Self {
            tx: std::sync::Mutex::new(Some(tx)),
            task: std::sync::Mutex::new(Some(task)),
        }
    }

    /// Queues a record's line; `false` when it had to be dropped.
    pub(crate) fn push(&self, line: String) -> bool {
        let tx = self.tx.lock().expect("session log lock poisoned").clone();
        match tx {
            Some(tx) => tx.try_send(line).is_ok(),
            None => true,
        }
    }

    /// Records waiting for the writer.
    pub(crate) fn queued(&self) -> usize {
        self.tx
            .lock()
            .expect("session log lock poisoned")
            .as_ref()
            .map_or(0, |tx| tx.max_capacity() - tx.capacity())
    }

    /// Stops taking records and waits until the queued ones are written.
    pub(crate) async fn flush_and_stop(&self) {
        self.tx.lock().expect("session log lock poisoned").take();
        let task = self.task.lock().expect("session log lock poisoned").take();
        if let Some(t) = task {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_log() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("burrow-slog-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("sessions.jsonl")
    }

    #[tokio::test]
    async fn the_log_rotates_to_file_dot_1_and_keeps_writing() {
        let path = temp_log();
        let log = SessionLog::start_with(Some(path.clone()), 100, 64);
        for i in 0..3 {
            assert!(log.push(format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(60))));
            // One line per batch: give the writer its turn.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        log.flush_and_stop().await;
        let mut rotated = path.clone().into_os_string();
        rotated.push(".1");
        let old = std::fs::read_to_string(&rotated).expect("FILE.1 exists");
        let new = std::fs::read_to_string(&path).expect("FILE exists again");
        assert!(
            old.contains("\"n\":1") && new.contains("\"n\":2"),
            "{old}\n--\n{new}"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_says_so() {
        let path = temp_log();
        let log = SessionLog::start_with(Some(path), 1 << 30, 2);
        // The writer has not run yet (no await since start): the third
        // line finds the queue of two full.
        let took: Vec<bool> = (0..3).map(|i| log.push(format!("{i}"))).collect();
        assert_eq!(took, [true, true, false]);
        assert_eq!(log.queued(), 2);
        log.flush_and_stop().await;
    }
}
