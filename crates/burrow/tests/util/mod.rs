//! Helpers for end-to-end tests: run the real `burrow` binary in a temp dir
//! of its own, on loopback, and real origins on `127.0.0.1:0`.
#![allow(dead_code, missing_docs, unreachable_pub)]

pub mod httporigin;
#[allow(unused_imports)]
pub use burrow_testpg as pg;
pub mod sshd;
pub mod tls;

use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_burrow");

/// A running `burrow` process, killed on drop.
pub struct Proc {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub stderr_path: PathBuf,
    pub name: String,
}

impl Proc {
    pub fn spawn(dir: &Path, name: &str, args: &[&str]) -> Proc {
        let mut cmd = Command::new(BIN);
        cmd.args(args);
        Self::spawn_cmd(dir, name, cmd)
    }

    /// `burrow ARGS` with `envs` set in its environment.
    pub fn spawn_env(dir: &Path, name: &str, args: &[&str], envs: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(BIN);
        cmd.args(args).envs(envs.iter().copied());
        Self::spawn_cmd(dir, name, cmd)
    }

    /// `burrow ARGS` with at most `nofile` open files (soft and hard).
    pub fn spawn_with_nofile(dir: &Path, name: &str, nofile: u32, args: &[&str]) -> Proc {
        let mut cmd = Command::new("prlimit");
        cmd.arg(format!("--nofile={nofile}:{nofile}"))
            .arg(BIN)
            .args(args);
        Self::spawn_cmd(dir, name, cmd)
    }

    /// `burrow ARGS` inside the network namespace `ns` (`ip netns exec`
    /// execs, so the child is burrow itself).
    pub fn spawn_in_netns(dir: &Path, name: &str, ns: &str, args: &[&str]) -> Proc {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, BIN]).args(args);
        Self::spawn_cmd(dir, name, cmd)
    }

    fn spawn_cmd(dir: &Path, name: &str, mut cmd: Command) -> Proc {
        let stderr_path = dir.join(format!("{name}.log"));
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut child = cmd
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .env_remove("BURROW_ADMIN_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn burrow");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let all = Arc::new(Mutex::new(Vec::new()));
        let all2 = all.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                all2.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        Proc {
            child,
            lines: rx,
            stdout: all,
            stderr_path,
            name: name.to_owned(),
        }
    }

    /// Waits for a stdout line starting with `prefix`; returns the rest.
    pub fn wait_line(&self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return l[prefix.len()..].trim().to_owned(),
                Ok(_) => continue,
                Err(_) => panic!(
                    "{}: no line starting with {prefix:?} within {timeout:?}; stderr:\n{}",
                    self.name,
                    self.log()
                ),
            }
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The log once it contains `needle` (a line is written a moment after
    /// the event it reports); fails the test, showing the log, when it does
    /// not within `timeout`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "{}: no {needle:?} in the log within {timeout:?}:\n{log}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status();
    }

    /// Waits for exit up to `timeout`; returns the exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The admin token file of an edge on the SQLite file `state`.
fn token_file_for(state: &Path) -> PathBuf {
    let stem = state.file_stem().unwrap().to_string_lossy().into_owned();
    state
        .with_file_name(format!("{stem}.d"))
        .join("admin.token")
}

/// An edge process with its addresses.
pub struct EdgeProc {
    pub proc: Proc,
    pub tunnel_addr: SocketAddr,
    pub admin_url: String,
    pub token_file: PathBuf,
    pub dir: PathBuf,
    /// The public HTTP listener, when started with `--http`.
    pub http_addr: Option<SocketAddr>,
    /// The public HTTPS listener, when started with `--https`.
    pub https_addr: Option<SocketAddr>,
}

/// The node's own directory for a `state` that is a PostgreSQL URL (the
/// colo's name with `.d`); `None` for a SQLite file (beside it).
fn pg_data_dir(colo: &str, state: &str) -> Option<String> {
    state
        .starts_with("postgres://")
        .then(|| format!("{colo}.d"))
}

impl EdgeProc {
    /// An edge of `colo` on `state`: a SQLite file in `dir`, or a
    /// PostgreSQL URL (its own files then in `dir/COLO.d`).
    pub fn start(dir: &Path, colo: &str, state: &str, extra: &[&str]) -> EdgeProc {
        Self::start_with(dir, colo, state, extra, None)
    }

    /// [`EdgeProc::start`] with at most `nofile` open files, when given.
    pub fn start_with(
        dir: &Path,
        colo: &str,
        state: &str,
        extra: &[&str],
        nofile: Option<u32>,
    ) -> EdgeProc {
        let data_dir = pg_data_dir(colo, state);
        let mut args = vec![
            "edge",
            "--colo",
            colo,
            "--admin",
            "127.0.0.1:0",
            "--grace-period",
            "2s",
        ];
        // The nodes of one test dir are one cluster: one secret file.
        let secret = dir.join("cluster.secret");
        let secret_arg = secret.to_string_lossy().into_owned();
        match &data_dir {
            Some(d) => {
                if !secret.exists() {
                    std::fs::write(&secret, "a cluster secret for the tests, 32+ chars\n").unwrap();
                }
                args.extend_from_slice(&[
                    "--store",
                    state,
                    "--data-dir",
                    d,
                    "--cluster-secret-file",
                    &secret_arg,
                ]);
            }
            None => args.extend_from_slice(&["--state", state]),
        }
        if !extra.contains(&"--listen") {
            args.extend_from_slice(&["--listen", "127.0.0.1:0"]);
        }
        if !extra
            .iter()
            .any(|a| ["--app-address", "--app-ipv4-pool", "--app-ipv6-pool"].contains(a))
        {
            args.extend_from_slice(&["--app-address", "127.0.0.1"]);
        }
        args.extend_from_slice(extra);
        let name = format!("edge-{colo}");
        let proc = match nofile {
            Some(n) => Proc::spawn_with_nofile(dir, &name, n, &args),
            None => Proc::spawn(dir, &name, &args),
        };
        let token_file = match &data_dir {
            Some(d) => dir.join(d).join("admin.token"),
            None => token_file_for(&dir.join(state)),
        };
        Self::started_with_token(proc, dir, token_file, extra)
    }

    /// An edge process started some other way (in a namespace, say), once
    /// it prints its addresses; `extra` tells which listeners to wait for.
    pub fn started(proc: Proc, dir: &Path, state: &str, extra: &[&str]) -> EdgeProc {
        Self::started_with_token(proc, dir, token_file_for(&dir.join(state)), extra)
    }

    pub fn started_with_token(
        proc: Proc,
        dir: &Path,
        token_file: PathBuf,
        extra: &[&str],
    ) -> EdgeProc {
        let tunnel_addr: SocketAddr = proc
            .wait_line("tunnel endpoint:", Duration::from_secs(30))
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let admin_url = proc.wait_line("admin API:", Duration::from_secs(5));
        let listener = |flag: &str, line: &str, scheme: &str| -> Option<SocketAddr> {
            extra.contains(&flag).then(|| {
                proc.wait_line(line, Duration::from_secs(5))
                    .trim_start_matches(scheme)
                    .parse()
                    .unwrap()
            })
        };
        let http_addr = listener("--http", "HTTP:", "http://");
        let https_addr = listener("--https", "HTTPS:", "https://");
        EdgeProc {
            proc,
            tunnel_addr,
            admin_url,
            token_file,
            dir: dir.to_owned(),
            http_addr,
            https_addr,
        }
    }

    /// Runs an admin command (`tunnel ...`, `app ...`) against this edge.
    pub fn admin(&self, args: &[&str]) -> Result<String, String> {
        let mut full: Vec<&str> = vec![args[0]];
        let tf = self.token_file.to_string_lossy().into_owned();
        full.extend_from_slice(&["--admin-url", &self.admin_url, "--admin-token-file", &tf]);
        full.extend_from_slice(&args[1..]);
        let out = Command::new(BIN)
            .args(&full)
            .current_dir(&self.dir)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// The value of a metric series from `GET /metrics` (the whole series
    /// name with labels, as printed). A series that is not there fails
    /// the test (0 and absent are different answers).
    pub fn metric(&self, series: &str) -> f64 {
        let (status, body) = http(&self.admin_url, "GET", "/metrics", None, "");
        assert_eq!(status, 200, "{body}");
        series_value(&body, series)
    }

    /// [`Self::metric`] for a series that does not exist until its first
    /// event (a labelled counter): 0 while absent.
    pub fn metric_or_zero(&self, series: &str) -> f64 {
        let (status, body) = http(&self.admin_url, "GET", "/metrics", None, "");
        assert_eq!(status, 200, "{body}");
        body.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
            .map_or(0.0, |v| v.trim().parse().unwrap())
    }

    /// `tunnel create NAME`; returns the credentials file path.
    pub fn create_tunnel(&self, name: &str) -> PathBuf {
        let path = self.dir.join(format!("{name}.json"));
        let p = path.to_string_lossy().into_owned();
        self.admin(&["tunnel", "create", name, "--credentials-file", &p])
            .expect("tunnel create");
        path
    }

    /// `tunnel create NAME` and a connector of it with `extra` flags, once
    /// this edge lists `connections` of its connections.
    pub fn connected_tunnel(&self, name: &str, extra: &[&str], connections: usize) -> Proc {
        let creds = self.create_tunnel(name);
        self.run_connector(name, &creds, "connector", extra, connections)
    }

    /// A connector (process `proc_name`) of tunnel `name` with `creds`
    /// and `extra` flags, once this edge lists `connections` of its
    /// connections.
    pub fn run_connector(
        &self,
        name: &str,
        creds: &Path,
        proc_name: &str,
        extra: &[&str],
        connections: usize,
    ) -> Proc {
        let c = connector(&self.dir, proc_name, creds, extra);
        self.wait_connections(name, connections, Duration::from_secs(20));
        c
    }

    /// `app create`; returns the listen address.
    pub fn create_app(&self, tunnel: &str, hostname: &str) -> SocketAddr {
        let proto = format!("tcp/{}", free_port());
        let out = self
            .admin(&[
                "app",
                "create",
                "--protocol",
                &proto,
                "--tunnel",
                tunnel,
                "--hostname",
                hostname,
            ])
            .expect("app create");
        let line = out.lines().find(|l| l.starts_with("listen:")).unwrap();
        first_listen(&line["listen:".len()..])
    }

    /// `app create --json` with `body`; returns the app id and its (first)
    /// listen address.
    pub fn create_app_json(&self, body: &serde_json::Value) -> (String, SocketAddr) {
        let f = self.dir.join(format!("app-{}.json", free_port()));
        std::fs::write(&f, body.to_string()).unwrap();
        let out = self
            .admin(&["app", "create", "--json", f.to_str().unwrap()])
            .expect("app create");
        let field = |prefix: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(prefix))
                .unwrap_or_else(|| panic!("no {prefix:?} in {out}"))
                .trim()
                .to_owned()
        };
        let listen = first_listen(&field("listen:"));
        (field("Created app "), listen)
    }

    /// Live connections of a tunnel, from `tunnel info --json`. Panics when
    /// the admin API keeps failing (an error must not read as "none").
    pub fn connections(&self, tunnel: &str) -> Vec<serde_json::Value> {
        let mut last = String::new();
        for _ in 0..5 {
            match self.admin(&["tunnel", "info", tunnel, "--json"]) {
                Ok(out) => {
                    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
                    return v["connections"].as_array().cloned().unwrap_or_default();
                }
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("tunnel info {tunnel} keeps failing: {last}");
    }

    /// Waits until the tunnel has at least `n` live connections.
    pub fn wait_connections(
        &self,
        tunnel: &str,
        n: usize,
        timeout: Duration,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let c = self.connections(tunnel);
            if c.len() >= n {
                return c;
            }
            if Instant::now() > deadline {
                panic!(
                    "tunnel {tunnel}: {} connections, wanted {n}; edge log:\n{}",
                    c.len(),
                    self.proc.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Starts a connector.
pub fn connector(dir: &Path, name: &str, creds: &Path, extra: &[&str]) -> Proc {
    let c = creds.to_string_lossy().into_owned();
    let mut args = vec![
        "tunnel",
        "run",
        "--credentials-file",
        &c,
        "--grace-period",
        "2s",
    ];
    args.extend_from_slice(extra);
    Proc::spawn(dir, name, &args)
}

/// Writes a connector config.yml sending everything to `origin`.
pub fn write_config(dir: &Path, name: &str, hostname: &str, origin: SocketAddr) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            "ingress:\n  - hostname: {hostname}\n    service: tcp://{origin}\n  - service: http_status:404\n"
        ),
    )
    .unwrap();
    p
}

/// Ports handed out by [`free_port`] and [`listen_run`]: below the
/// kernel's ephemeral range (32768-60999), so no socket the kernel numbers
/// on its own (an outgoing connection's source port) can take one between
/// the check and the bind; handed out in turn from a random start, so two
/// tests of one binary never get the same one.
fn next_ports(n: u16) -> u16 {
    use std::sync::atomic::AtomicU16;
    const BASE: u16 = 20_000;
    const SPAN: u16 = 12_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        1 + u16::try_from(
            (u64::from(std::process::id()) * 7919
                + u64::from(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .subsec_nanos(),
                ))
                % u64::from(SPAN),
        )
        .unwrap(),
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    let start = NEXT.fetch_add(n, Ordering::SeqCst) % SPAN;
    if start + n > SPAN {
        return next_ports(n);
    }
    BASE + start
}

/// A port of 127.0.0.1 that is free for TCP and UDP now and that no other
/// test of this binary is handed (for an app's edge port, which the
/// test must name before the edge binds it).
/// The first address of a `listen:` line: `127.0.0.1:20000`, or the start
/// of a range `127.0.0.1:20000-20009 (10 ports)`.
pub fn first_listen(text: &str) -> SocketAddr {
    let first = text.split_whitespace().next().unwrap();
    let (host, port) = first.rsplit_once(':').unwrap();
    let port = port.split('-').next().unwrap();
    format!("{host}:{port}").parse().unwrap()
}

pub fn free_port() -> u16 {
    loop {
        let p = next_ports(1);
        if TcpListener::bind(("127.0.0.1", p)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok()
        {
            return p;
        }
    }
}

/// Listeners on `n` consecutive ports below the ephemeral range.
pub fn listen_run(n: u16) -> Vec<TcpListener> {
    loop {
        let base = next_ports(n);
        let held: Vec<_> = (base..base + n)
            .map_while(|p| TcpListener::bind(("127.0.0.1", p)).ok())
            .collect();
        if held.len() == usize::from(n) {
            return held;
        }
    }
}

/// A temp dir for one test.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("burrow-test-")
        .tempdir()
        .unwrap()
}

/// An origin server on 127.0.0.1:0, one thread per connection, running
/// `handler` for each. Counts connections.
pub struct Origin {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
}

impl Origin {
    pub fn start(handler: fn(TcpStream)) -> Origin {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let acc = accepted.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { continue };
                acc.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || handler(s));
            }
        });
        Origin { addr, accepted }
    }

    pub fn count(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// Echoes everything until EOF, then closes.
pub fn echo(mut s: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if s.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = s.shutdown(Shutdown::Write);
}

/// Bulk protocol: first byte `U` → read to EOF, answer the SHA-256 of what
/// came; `D` + 8-byte length → send that many pseudo-random bytes, close.
pub fn bulk(mut s: TcpStream) {
    let mut cmd = [0u8; 1];
    if s.read_exact(&mut cmd).is_err() {
        return;
    }
    match cmd[0] {
        b'U' => {
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => h.update(&buf[..n]),
                    Err(_) => return,
                }
            }
            let _ = s.write_all(&h.finalize());
        }
        b'D' => {
            let mut len = [0u8; 8];
            if s.read_exact(&mut len).is_err() {
                return;
            }
            let mut left = u64::from_be_bytes(len);
            let mut seed = 1u64;
            while left > 0 {
                let chunk = pattern(&mut seed, 256 * 1024);
                let n = chunk.len().min(usize::try_from(left).unwrap());
                if s.write_all(&chunk[..n]).is_err() {
                    return;
                }
                left -= n as u64;
            }
        }
        _ => {}
    }
    let _ = s.shutdown(Shutdown::Write);
}

/// Origin that answers `A` and closes.
/// 64 MiB each way through `app` to a [`bulk`] origin: the upload's
/// SHA-256 as the origin computed it after our half-close, and the
/// download's length and SHA-256 against the pattern; `path` names the
/// way in the failure messages.
pub fn bulk_both_ways(app: SocketAddr, path: &str) {
    const MIB: usize = 1024 * 1024;
    let data = pattern(&mut 42, 64 * MIB);
    let mut s = connect(app, Duration::from_secs(5));
    s.write_all(b"U").unwrap();
    s.write_all(&data).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut digest = Vec::new();
    s.read_to_end(&mut digest).unwrap();
    assert_eq!(digest, sha256(&data), "upload {path} arrived altered");
    let mut s = connect(app, Duration::from_secs(5));
    s.write_all(b"D").unwrap();
    s.write_all(&(64 * MIB as u64).to_be_bytes()).unwrap();
    let mut got = Vec::with_capacity(64 * MIB);
    s.read_to_end(&mut got).unwrap();
    let mut seed = 1u64;
    let mut want = Vec::with_capacity(64 * MIB);
    while want.len() < 64 * MIB {
        want.extend(pattern(&mut seed, 256 * 1024));
    }
    want.truncate(64 * MIB);
    assert_eq!(got.len(), want.len(), "download {path}: wrong length");
    assert_eq!(
        sha256(&got),
        sha256(&want),
        "download {path} arrived altered"
    );
}

pub fn say_a(mut s: TcpStream) {
    let _ = s.write_all(b"A");
}

/// Origin that answers `B` and closes.
pub fn say_b(mut s: TcpStream) {
    let _ = s.write_all(b"B");
}

/// Connects and reads everything until the peer closes.
pub fn read_all(addr: SocketAddr) -> Vec<u8> {
    let mut s = connect(addr, Duration::from_secs(5));
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    got
}

/// Deterministic pseudo-random bytes (xorshift), continuing from `seed`.
pub fn pattern(seed: &mut u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn sha256(b: &[u8]) -> Vec<u8> {
    Sha256::digest(b).to_vec()
}

/// Connects with retries until `timeout` (listeners may be starting).
pub fn connect(addr: SocketAddr, timeout: Duration) -> TcpStream {
    let deadline = Instant::now() + timeout;
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(s) => {
                s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                return s;
            }
            Err(e) if Instant::now() > deadline => panic!("connect {addr}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// One echo round trip of `payload`; returns what came back.
pub fn echo_round_trip(addr: SocketAddr, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut w = s.try_clone()?;
    let data = payload.to_vec();
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        w.write_all(&data)?;
        w.shutdown(Shutdown::Write)
    });
    let mut back = Vec::with_capacity(payload.len());
    s.read_to_end(&mut back)?;
    writer.join().unwrap()?;
    Ok(back)
}

/// A relay in front of an edge: TCP and UDP on one loopback port, forwarded
/// to `upstream` (UDP: for one client). While `block_udp` is set, UDP
/// datagrams are dropped (a firewall that blocks QUIC); otherwise each is
/// dropped with `udp_loss` percent chance and delivered `udp_delay_ms`
/// late (a lossy, long path; the kernel here has no netem).
pub struct Relay {
    pub addr: SocketAddr,
    pub block_udp: Arc<std::sync::atomic::AtomicBool>,
    pub udp_loss: Arc<std::sync::atomic::AtomicU32>,
    pub udp_delay_ms: Arc<std::sync::atomic::AtomicU64>,
}

/// Sends what `rx` hands over once it is due, in order.
fn delayed_sender(
    rx: mpsc::Receiver<(Instant, Vec<u8>, Option<SocketAddr>)>,
    sock: std::net::UdpSocket,
) {
    std::thread::spawn(move || {
        for (due, packet, to) in rx {
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let _ = match to {
                Some(to) => sock.send_to(&packet, to),
                None => sock.send(&packet),
            };
        }
    });
}

/// Whether to drop a datagram: `loss` percent of the time.
fn lose(seed: &mut u64, loss: u32) -> bool {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    (*seed % 100) < u64::from(loss)
}

impl Relay {
    pub fn start(upstream: SocketAddr) -> Relay {
        let (tcp, udp) = loop {
            let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
            if let Ok(udp) = std::net::UdpSocket::bind(tcp.local_addr().unwrap()) {
                break (tcp, udp);
            }
        };
        let addr = tcp.local_addr().unwrap();
        let block = Arc::new(std::sync::atomic::AtomicBool::new(true));
        std::thread::spawn(move || {
            for c in tcp.incoming() {
                let Ok(c) = c else { continue };
                let Ok(u) = TcpStream::connect(upstream) else {
                    continue;
                };
                let (mut c2, mut u2) = (c.try_clone().unwrap(), u.try_clone().unwrap());
                let (mut c, mut u) = (c, u);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c, &mut u);
                    let _ = u.shutdown(Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut u2, &mut c2);
                    let _ = c2.shutdown(Shutdown::Write);
                });
            }
        });
        let up = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        up.connect(upstream).unwrap();
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let loss = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let delay = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (to_up, to_client) = (mpsc::channel(), mpsc::channel());
        delayed_sender(to_up.1, up.try_clone().unwrap());
        delayed_sender(to_client.1, udp.try_clone().unwrap());
        {
            let (udp, client, block, loss, delay) = (
                udp.try_clone().unwrap(),
                client.clone(),
                block.clone(),
                loss.clone(),
                delay.clone(),
            );
            let tx = to_up.0;
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                let mut seed = 0x9E37_79B9_7F4A_7C15u64;
                while let Ok((n, from)) = udp.recv_from(&mut buf) {
                    *client.lock().unwrap() = Some(from);
                    if block.load(Ordering::SeqCst) || lose(&mut seed, loss.load(Ordering::SeqCst))
                    {
                        continue;
                    }
                    let due = Instant::now() + Duration::from_millis(delay.load(Ordering::SeqCst));
                    let _ = tx.send((due, buf[..n].to_vec(), None));
                }
            });
        }
        {
            let (block, loss, delay) = (block.clone(), loss.clone(), delay.clone());
            let tx = to_client.0;
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                let mut seed = 0x2545_F491_4F6C_DD1Du64;
                while let Ok(n) = up.recv(&mut buf) {
                    let to = *client.lock().unwrap();
                    if block.load(Ordering::SeqCst) || lose(&mut seed, loss.load(Ordering::SeqCst))
                    {
                        continue;
                    }
                    let due = Instant::now() + Duration::from_millis(delay.load(Ordering::SeqCst));
                    if let Some(to) = to {
                        let _ = tx.send((due, buf[..n].to_vec(), Some(to)));
                    }
                }
            });
        }
        Relay {
            addr,
            block_udp: block,
            udp_loss: loss,
            udp_delay_ms: delay,
        }
    }
}

/// A TCP connection from source address `src` (e.g. 127.0.0.3) to `dst`.
pub fn connect_from(src: std::net::IpAddr, dst: SocketAddr) -> TcpStream {
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(dst),
        socket2::Type::STREAM,
        None,
    )
    .unwrap();
    sock.bind(&SocketAddr::new(src, 0).into()).unwrap();
    sock.connect_timeout(&dst.into(), Duration::from_secs(5))
        .unwrap();
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Sends `payload` from `src`, half-closes, returns what came back (an
/// empty answer when the peer closed without a byte).
pub fn echo_from(src: std::net::IpAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let mut s = connect_from(src, dst);
    let _ = s.write_all(payload);
    let _ = s.shutdown(Shutdown::Write);
    let mut back = Vec::new();
    let _ = s.read_to_end(&mut back);
    back
}

/// A tiny authoritative DNS server on loopback UDP: `answer(name, type)`
/// gives the records (TTL 1 s) for a lower-case, dot-terminated name; no
/// records → NXDOMAIN. Runs until the test process ends.
pub fn dns_server<F>(answer: F) -> SocketAddr
where
    F: Fn(&str, hickory_proto::rr::RecordType) -> Vec<hickory_proto::rr::RData> + Send + 'static,
{
    use hickory_proto::op::{Message, MessageType, ResponseCode};
    use hickory_proto::rr::Record;
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let Ok(req) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut resp = Message::new();
            resp.set_id(req.id())
                .set_message_type(MessageType::Response)
                .set_op_code(req.op_code())
                .set_recursion_desired(req.recursion_desired())
                .set_recursion_available(true)
                .set_authoritative(true);
            resp.add_queries(req.queries().to_vec());
            let mut found = false;
            for q in req.queries() {
                let name = q.name().to_ascii().to_ascii_lowercase();
                for rdata in answer(&name, q.query_type()) {
                    resp.add_answer(Record::from_rdata(q.name().clone(), 1, rdata));
                    found = true;
                }
            }
            if !found {
                resp.set_response_code(ResponseCode::NXDomain);
            }
            if let Ok(bytes) = resp.to_vec() {
                let _ = sock.send_to(&bytes, from);
            }
        }
    });
    addr
}

/// A raw HTTP/1.1 request to the admin API; returns (status, body).
pub fn http(
    admin_url: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let addr = admin_url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp[9..12].parse().unwrap();
    let body = resp
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A DNS server answering the edge SRV record of `burrow.internal` with two
/// targets (`region1`, `region2`) on `ports`, both at 127.0.0.1.
#[allow(dead_code)]
pub fn srv_dns_server(ports: [u16; 2]) -> SocketAddr {
    use hickory_proto::rr::rdata::{A, SRV};
    use hickory_proto::rr::{Name, RData, RecordType};
    dns_server(move |name, kind| match kind {
        RecordType::SRV if name == "_v2-origintunneld._tcp.burrow.internal." => ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                let target = Name::from_ascii(format!("region{}.burrow.internal.", i + 1)).unwrap();
                RData::SRV(SRV::new(1, 1, *port, target))
            })
            .collect(),
        RecordType::A if name.starts_with("region") && name.ends_with(".burrow.internal.") => {
            vec![RData::A(A::new(127, 0, 0, 1))]
        }
        _ => Vec::new(),
    })
}

/// The session log's records once there are at least `n` (or after 10 s).
pub fn session_records(log: &std::path::Path, n: usize) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let recs: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if recs.len() >= n || std::time::Instant::now() > deadline {
            return recs;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An edge (colo `NRT`, state `edge.db` in `dir`) that writes its network
/// session log to `dir/sessions.jsonl`; `extra` are more edge flags.
/// Returns the edge and the log's path.
pub fn logged_edge(dir: &Path, extra: &[&str]) -> (EdgeProc, PathBuf) {
    let log = dir.join("sessions.jsonl");
    let log_s = log.to_string_lossy().into_owned();
    let mut args = vec!["--session-log", log_s.as_str()];
    args.extend_from_slice(extra);
    (EdgeProc::start(dir, "NRT", "edge.db", &args), log)
}

/// The IPv4 socket address of `addr` (panics on IPv6).
pub fn v4(addr: SocketAddr) -> std::net::SocketAddrV4 {
    match addr {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => panic!("IPv4 expected"),
    }
}

/// Opens a SOCKS5 CONNECT to `dst` through `socks`; `Ok` once the proxy
/// answers success (the flow stays open while the stream lives).
pub fn socks_connect(
    socks: &str,
    dst: std::net::SocketAddrV4,
) -> std::io::Result<std::net::TcpStream> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(socks)?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.write_all(&[5, 1, 0])?;
    let mut hello = [0u8; 2];
    s.read_exact(&mut hello)?;
    let mut req = vec![5, 1, 0, 1];
    req.extend_from_slice(&dst.ip().octets());
    req.extend_from_slice(&dst.port().to_be_bytes());
    s.write_all(&req)?;
    let mut reply = [0u8; 10];
    s.read_exact(&mut reply)?;
    if reply[1] != 0 {
        return Err(std::io::Error::other(format!("SOCKS5 reply {}", reply[1])));
    }
    Ok(s)
}

/// `device enroll --user EMAIL --name NAME` (the user exists); the
/// credentials file (`NAME.json`) and the device id.
pub fn enroll_device(edge: &EdgeProc, dir: &Path, email: &str, name: &str) -> (PathBuf, String) {
    let creds = dir.join(format!("{name}.json"));
    let c = creds.to_string_lossy().into_owned();
    edge.admin(&[
        "device",
        "enroll",
        "--user",
        email,
        "--name",
        name,
        "--credentials-file",
        &c,
    ])
    .expect("enroll");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&creds).unwrap()).unwrap();
    (creds, v["DeviceID"].as_str().unwrap().to_owned())
}

/// `burrow client` with `creds` and a SOCKS5 port of its own, once it
/// serves; the process and the SOCKS address.
pub fn start_client(dir: &Path, creds: &Path) -> (Proc, String) {
    start_client_named(dir, "client", creds)
}

/// [`start_client`] with the process (and its log) called `name`.
pub fn start_client_named(dir: &Path, name: &str, creds: &Path) -> (Proc, String) {
    let c = ClientProc::start(dir, name, creds, &[]);
    (c.proc, c.socks)
}

/// The value of `series` (name and labels, as printed) in a Prometheus
/// text exposition; fails the test, listing the family's series, when it
/// is not there.
pub fn series_value(text: &str, series: &str) -> f64 {
    if let Some(v) = text
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
    {
        return v.trim().parse().unwrap();
    }
    let family = series.split('{').next().unwrap_or(series);
    let family = family.strip_suffix("_total").unwrap_or(family);
    let near: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && l.starts_with(family))
        .collect();
    panic!(
        "no series {series} in /metrics; its family has:\n{}",
        near.join("\n")
    );
}

/// A test's world in a few chained calls, the way the README builds it:
///
/// ```ignore
/// let s = Setup::edge(&[]);
/// let web = s.tunnel("web");
/// let app = web.app("web.example.com");
/// let _c = web.connector(&["--url", &format!("tcp://{}", origin.addr)], 4);
/// let client = s.client("ana@example.com", &[]);
/// ```
///
/// Every process binds port 0 and the test reads the address it prints.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub edge: EdgeProc,
}

impl Setup {
    /// An edge (colo NRT, state `edge.db`) in a temp dir of its own, with
    /// `extra` flags.
    pub fn edge(extra: &[&str]) -> Setup {
        let dir = tempdir();
        let edge = EdgeProc::start(dir.path(), "NRT", "edge.db", extra);
        Setup { dir, edge }
    }

    /// The temp dir's path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `tunnel create NAME`, its credentials beside the edge.
    pub fn tunnel(&self, name: &str) -> Tunnel<'_> {
        Tunnel {
            setup: self,
            name: name.to_owned(),
            creds: self.edge.create_tunnel(name),
        }
    }

    /// A user (group `eng`), one enrolled device, and `burrow client`
    /// serving SOCKS5 (and an HTTP proxy with `--http-proxy 127.0.0.1:0`
    /// in `extra`).
    pub fn client(&self, email: &str, extra: &[&str]) -> ClientProc {
        self.edge
            .admin(&["user", "add", email, "--group", "eng"])
            .expect("user add");
        let name = email.split('@').next().unwrap_or("device");
        let (creds, device_id) = enroll_device(&self.edge, self.path(), email, name);
        let mut c = ClientProc::start(self.path(), &format!("client-{name}"), &creds, extra);
        c.device_id = device_id;
        c
    }
}

/// A tunnel of a [`Setup`].
pub struct Tunnel<'a> {
    setup: &'a Setup,
    pub name: String,
    pub creds: PathBuf,
}

impl Tunnel<'_> {
    /// A TCP app on a free port through this tunnel for `hostname`; its
    /// listen address.
    pub fn app(&self, hostname: &str) -> SocketAddr {
        self.setup.edge.create_app(&self.name, hostname)
    }

    /// A connector of this tunnel with `extra` flags, once the edge lists
    /// `connections` of its connections.
    pub fn connector(&self, extra: &[&str], connections: usize) -> Proc {
        self.connector_named("connector", extra, connections)
    }

    /// [`Tunnel::connector`] with the process (and its log) called `name`.
    pub fn connector_named(&self, name: &str, extra: &[&str], connections: usize) -> Proc {
        self.setup
            .edge
            .run_connector(&self.name, &self.creds, name, extra, connections)
    }
}

/// `burrow client` on `--socks 127.0.0.1:0`, with the addresses it printed.
pub struct ClientProc {
    pub proc: Proc,
    /// `127.0.0.1:PORT` of the SOCKS5 proxy.
    pub socks: String,
    /// The HTTP proxy's address, when `--http-proxy` was given.
    pub http_proxy: Option<String>,
    /// The device id, when started by [`Setup::client`].
    pub device_id: String,
}

impl ClientProc {
    /// Starts `burrow client --credentials CREDS --socks 127.0.0.1:0 EXTRA`
    /// and waits until it serves.
    pub fn start(dir: &Path, name: &str, creds: &Path, extra: &[&str]) -> ClientProc {
        let c = creds.to_string_lossy().into_owned();
        let mut args = vec!["client", "--credentials", &c, "--socks", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let proc = Proc::spawn(dir, name, &args);
        let socks = proc
            .wait_line("SOCKS5 proxy:", Duration::from_secs(40))
            .trim_start_matches("socks5h://")
            .to_owned();
        let http_proxy = extra.contains(&"--http-proxy").then(|| {
            proc.wait_line("HTTP proxy:", Duration::from_secs(5))
                .trim_start_matches("http://")
                .to_owned()
        });
        ClientProc {
            proc,
            socks,
            http_proxy,
            device_id: String::new(),
        }
    }
}

/// A network namespace joined to the root one by a veth pair
/// (`10.201.N.1` outside, `10.201.N.2` inside); removed on drop.
pub struct Netns {
    pub name: String,
    outer: String,
}

/// Whether the tests run as root (namespaces, addresses on `lo`).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
}

/// A child process killed (and reaped) on drop.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Netns {
    /// Gives the namespace only the ephemeral ports `range` ("A B").
    pub fn ephemeral_ports(&self, range: &str) {
        let out = self.exec(&[
            "sysctl",
            "-w",
            &format!("net.ipv4.ip_local_port_range={range}"),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// An echo origin (socat) on the namespace's 127.0.0.1:`port`.
    pub fn echo_origin(&self, port: u16) -> Killed {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name, "socat"])
            .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr"))
            .arg("EXEC:cat")
            .spawn()
            .expect("socat must be installed; .ci/test installs it");
        Killed(child)
    }

    /// Namespace `N` of this process (one N per test).
    pub fn create(n: u8) -> Netns {
        let pid = std::process::id();
        let name = format!("burrow-{n}-{pid}");
        let (outer, inner) = (
            format!("b{n}x{}a", pid % 100_000),
            format!("b{n}x{}b", pid % 100_000),
        );
        let ns = Netns {
            name: name.clone(),
            outer: outer.clone(),
        };
        let run = |args: &[&str]| {
            let ok = std::process::Command::new("ip")
                .args(args)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "ip {}", args.join(" "));
        };
        run(&["netns", "add", &name]);
        run(&[
            "link", "add", &outer, "type", "veth", "peer", "name", &inner,
        ]);
        run(&["link", "set", &inner, "netns", &name]);
        run(&["addr", "add", &format!("10.201.{n}.1/30"), "dev", &outer]);
        run(&["link", "set", &outer, "up"]);
        let inside = |args: &[&str]| {
            let mut full = vec!["netns", "exec", &name, "ip"];
            full.extend_from_slice(args);
            run(&full);
        };
        inside(&["addr", "add", &format!("10.201.{n}.2/30"), "dev", &inner]);
        inside(&["link", "set", &inner, "up"]);
        inside(&["link", "set", "lo", "up"]);
        ns
    }

    /// Runs `args` inside the namespace.
    pub fn exec(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.outer])
            .status();
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
