//! `burrow-loadgen`: the load side of `bench/run.sh`.
//!
//! - `echo-server --listen ADDR`: a TCP echo origin.
//! - `rr --target ADDR --conns C --secs S --size B`: request/response over
//!   C persistent connections; prints rate and p50/p99 latency.
//! - `cps --target ADDR --concurrency C --secs S`: new connections per
//!   second (connect, 1-byte echo, close).
//! - `idle --target ADDR --conns N --hold S`: opens N connections, checks
//!   each with a 1-byte echo, prints `ready`, holds them S seconds.
//! - `udp-echo-server --listen ADDR`: a UDP echo origin.
//! - `udp-rr --target ADDR --clients C --secs S --size B`: C clients (one
//!   socket, one session each) with one datagram in flight; a reply missing
//!   after 200 ms counts as lost and the client sends the next one.
//! - `udp-blast --target ADDR --mbps R --size B --secs S`: one socket
//!   sends B-byte datagrams at R Mbit/s (paced per millisecond) to a UDP
//!   echo and counts the echoes: loss over the round trip (both
//!   directions, so stricter than iperf3's one-way figure).
//! - `http-server --listen ADDR`: an HTTP/1.1 origin answering every
//!   request with a 64-byte body.
//! - `http --target ADDR --host H --conns C --secs S`: C keep-alive
//!   HTTP/1.1 connections sending `GET /` with `Host: H` one after another;
//!   prints rate, p50/p99 latency and non-200 answers.
//!
//! - `first-byte --target ADDR -- CMD...`: starts CMD (a connector), then
//!   tries a 1-byte echo through ADDR every half millisecond; prints the time
//!   from starting CMD to the first echo, and stops CMD.
//! - `impair --a TUN --b TUN --delay-ms D --loss P ...`: a link emulator
//!   between two TUN devices (see `impair.rs`; `bench/impair.sh` runs it).
//!
//! Every mode is bounded in time and count and stops by itself. Results are
//! one JSON object on stdout.

mod impair;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// TCP echo server.
    EchoServer {
        #[arg(long)]
        listen: SocketAddr,
    },
    /// Request/response latency and rate.
    Rr {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value_t = 32)]
        conns: usize,
        #[arg(long, default_value_t = 10)]
        secs: u64,
        #[arg(long, default_value_t = 64)]
        size: usize,
    },
    /// New connections per second.
    Cps {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, default_value_t = 5)]
        secs: u64,
    },
    /// Hold many idle connections.
    Idle {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value_t = 10_000)]
        conns: usize,
        #[arg(long, default_value_t = 10)]
        hold: u64,
    },
    /// HTTP/1.1 origin.
    HttpServer {
        #[arg(long)]
        listen: SocketAddr,
    },
    /// HTTP request rate and latency.
    Http {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value = "bench.example.com")]
        host: String,
        #[arg(long, default_value_t = 32)]
        conns: usize,
        #[arg(long, default_value_t = 10)]
        secs: u64,
    },
    /// UDP echo server.
    UdpEchoServer {
        #[arg(long)]
        listen: SocketAddr,
    },
    /// UDP request/response rate, latency and loss.
    UdpBlast {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value_t = 300)]
        mbps: u64,
        #[arg(long, default_value_t = 1200)]
        size: usize,
        #[arg(long, default_value_t = 5)]
        secs: u64,
    },
    /// UDP request/response rate, latency and loss with one datagram in
    /// flight per client.
    UdpRr {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value_t = 32)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        secs: u64,
        #[arg(long, default_value_t = 512)]
        size: usize,
    },
    /// Time from starting a command (a connector) to the first byte echoed
    /// through `target`.
    FirstByte {
        #[arg(long)]
        target: SocketAddr,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Link emulator between two TUN devices it creates (needs root): each
    /// direction gets the delay, jitter, loss, reordering and rate given.
    Impair {
        /// First TUN device name (created).
        #[arg(long)]
        a: String,
        /// Second TUN device name (created).
        #[arg(long)]
        b: String,
        /// One-way delay in milliseconds (the round trip is twice this).
        #[arg(long, default_value_t = 0.0)]
        delay_ms: f64,
        /// Delay varies uniformly by ± this many milliseconds.
        #[arg(long, default_value_t = 0.0)]
        jitter_ms: f64,
        /// Per-direction loss in percent.
        #[arg(long, default_value_t = 0.0)]
        loss: f64,
        /// Percent of packets sent without the delay (overtaking others).
        #[arg(long, default_value_t = 0.0)]
        reorder: f64,
        /// Link rate in Mbit/s; 0 is unlimited.
        #[arg(long, default_value_t = 0)]
        rate_mbit: u64,
        /// Bottleneck queue in milliseconds (with --rate-mbit).
        #[arg(long, default_value_t = 50)]
        queue_ms: u64,
        /// Stop after this many seconds.
        #[arg(long, default_value_t = 3600)]
        secs: u64,
    },
}

async fn http_server(listen: SocketAddr) -> anyhow::Result<()> {
    let l = TcpListener::bind(listen).await?;
    println!(
        "{}",
        serde_json::json!({"listening": l.local_addr()?.to_string()})
    );
    let body = bytes::Bytes::from(vec![b'x'; 64]);
    loop {
        let Ok((s, _)) = l.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = s.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |_req| {
                let body = body.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(body),
                    ))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                .await;
        });
    }
}

async fn http_load(
    target: SocketAddr,
    host: String,
    conns: usize,
    secs: u64,
) -> anyhow::Result<()> {
    use http_body_util::BodyExt;
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let host = host.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(100_000);
            let mut errors = 0u64;
            let Ok(s) = TcpStream::connect(target).await else {
                return (lat, 1);
            };
            let _ = s.set_nodelay(true);
            let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake::<
                _,
                http_body_util::Empty<bytes::Bytes>,
            >(hyper_util::rt::TokioIo::new(s))
            .await
            else {
                return (lat, 1);
            };
            tokio::spawn(conn);
            while Instant::now() < deadline && lat.len() < 5_000_000 {
                let req = http::Request::get("/")
                    .header(http::header::HOST, host.as_str())
                    .body(http_body_util::Empty::new())
                    .expect("static request");
                let t = Instant::now();
                match sender.send_request(req).await {
                    Ok(resp) => {
                        let ok = resp.status() == http::StatusCode::OK;
                        let body_ok = resp.into_body().collect().await.is_ok();
                        if ok && body_ok {
                            lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                        } else {
                            errors += 1;
                        }
                    }
                    Err(_) => {
                        errors += 1;
                        break;
                    }
                }
            }
            (lat, errors)
        }));
    }
    report(tasks, secs, "requests", "errors").await
}

/// A UDP socket with 4 MiB kernel buffers (capped by net.core.*mem_max), so
/// the load side itself drops nothing at the rates measured.
fn big_udp(bind: SocketAddr) -> anyhow::Result<tokio::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(bind), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.bind(&bind.into())?;
    s.set_nonblocking(true)?;
    Ok(tokio::net::UdpSocket::from_std(s.into())?)
}

async fn udp_blast(target: SocketAddr, mbps: u64, size: usize, secs: u64) -> anyhow::Result<()> {
    let size = size.max(8);
    let sock = std::sync::Arc::new(big_udp(SocketAddr::from(([127, 0, 0, 1], 0)))?);
    sock.connect(target).await?;
    let pps = (mbps as f64 * 1e6 / 8.0 / size as f64).max(1.0);
    let total = (pps * secs as f64) as u64;
    let sender = {
        let sock = sock.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let mut buf = vec![0u8; size];
            let mut sent = 0u64;
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            while sent < total {
                tick.tick().await;
                let due = ((start.elapsed().as_secs_f64() * pps) as u64).min(total);
                while sent < due {
                    buf[..8].copy_from_slice(&sent.to_be_bytes());
                    // A full socket buffer loses the datagram, as on a wire.
                    let _ = sock.try_send(&buf);
                    sent += 1;
                }
            }
            sent
        })
    };
    let mut seen = vec![false; usize::try_from(total).unwrap_or(0)];
    let mut received = 0u64;
    let mut buf = vec![0u8; 65536];
    let end = Instant::now() + Duration::from_secs(secs) + Duration::from_secs(1);
    while let Ok(Ok(n)) = tokio::time::timeout_at(end.into(), sock.recv(&mut buf)).await {
        if n >= 8 {
            let seq = u64::from_be_bytes(buf[..8].try_into()?);
            if let Some(s) = seen.get_mut(usize::try_from(seq).unwrap_or(usize::MAX)) {
                if !*s {
                    *s = true;
                    received += 1;
                }
            }
        }
    }
    let sent = sender.await?;
    let loss = 100.0 * (sent - received.min(sent)) as f64 / sent.max(1) as f64;
    println!(
        "{}",
        serde_json::json!({"sent": sent, "received": received, "loss_pct": loss, "mbps": mbps, "size": size})
    );
    Ok(())
}

async fn udp_echo_server(listen: SocketAddr) -> anyhow::Result<()> {
    let s = big_udp(listen)?;
    println!(
        "{}",
        serde_json::json!({"listening": s.local_addr()?.to_string()})
    );
    let mut buf = vec![0u8; 65536];
    loop {
        if let Ok((n, from)) = s.recv_from(&mut buf).await {
            let _ = s.send_to(&buf[..n], from).await;
        }
    }
}

async fn udp_rr(target: SocketAddr, clients: usize, secs: u64, size: usize) -> anyhow::Result<()> {
    let size = size.max(8);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(100_000);
            let mut lost = 0u64;
            let Ok(s) = tokio::net::UdpSocket::bind("127.0.0.1:0").await else {
                return (lat, 1);
            };
            if s.connect(target).await.is_err() {
                return (lat, 1);
            }
            let mut req = vec![7u8; size];
            let mut resp = vec![0u8; 65536];
            let mut seq = 0u64;
            while Instant::now() < deadline && lat.len() < 5_000_000 {
                seq += 1;
                req[..8].copy_from_slice(&seq.to_be_bytes());
                let t = Instant::now();
                if s.send(&req).await.is_err() {
                    lost += 1;
                    continue;
                }
                // Wait for this datagram's echo; late echoes of earlier
                // ones are skipped.
                let got = tokio::time::timeout(Duration::from_millis(200), async {
                    loop {
                        match s.recv(&mut resp).await {
                            Ok(n) if n == size && resp[..8] == seq.to_be_bytes() => return true,
                            Ok(_) => continue,
                            Err(_) => return false,
                        }
                    }
                })
                .await;
                match got {
                    Ok(true) => {
                        lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX))
                    }
                    _ => lost += 1,
                }
            }
            (lat, lost)
        }));
    }
    report(tasks, secs, "datagrams", "lost").await
}

async fn echo_server(listen: SocketAddr) -> anyhow::Result<()> {
    let l = TcpListener::bind(listen).await?;
    println!(
        "{}",
        serde_json::json!({"listening": l.local_addr()?.to_string()})
    );
    loop {
        let (mut s, _) = match l.accept().await {
            Ok(x) => x,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            let _ = s.set_nodelay(true);
            let (mut r, mut w) = s.split();
            let _ = tokio::io::copy(&mut r, &mut w).await;
        });
    }
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn rr(target: SocketAddr, conns: usize, secs: u64, size: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..conns {
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(100_000);
            let mut errors = 0u64;
            let Ok(mut s) = TcpStream::connect(target).await else {
                return (lat, 1);
            };
            let _ = s.set_nodelay(true);
            let req = vec![7u8; size];
            let mut resp = vec![0u8; size];
            while Instant::now() < deadline && lat.len() < 5_000_000 {
                let t = Instant::now();
                if s.write_all(&req).await.is_err() || s.read_exact(&mut resp).await.is_err() {
                    errors += 1;
                    break;
                }
                lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
            (lat, errors)
        }));
    }
    report(tasks, secs, "requests", "errors").await
}

/// Gathers the tasks' latencies (µs) and failure counts and prints one
/// JSON line: `count_key`, rate, p50, p99 and `fail_key`.
async fn report(
    tasks: Vec<tokio::task::JoinHandle<(Vec<u32>, u64)>>,
    secs: u64,
    count_key: &str,
    fail_key: &str,
) -> anyhow::Result<()> {
    let mut all = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (l, e) = t.await?;
        all.extend(l);
        failed += e;
    }
    all.sort_unstable();
    let mut out = serde_json::json!({
        "rps": all.len() as f64 / secs as f64,
        "p50_us": percentile(&all, 0.50),
        "p99_us": percentile(&all, 0.99),
    });
    out[count_key] = serde_json::json!(all.len());
    out[fail_key] = serde_json::json!(failed);
    println!("{out}");
    Ok(())
}

/// A new connection to `target` that has echoed one byte.
async fn echo_once(target: SocketAddr) -> anyhow::Result<TcpStream> {
    let mut s = TcpStream::connect(target).await?;
    s.set_nodelay(true)?;
    s.write_all(b"x").await?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await?;
    Ok(s)
}

async fn cps(target: SocketAddr, concurrency: usize, secs: u64) -> anyhow::Result<()> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0u64, 0u64);
            while Instant::now() < deadline {
                match tokio::time::timeout(Duration::from_secs(5), echo_once(target)).await {
                    Ok(Ok(_)) => ok += 1,
                    _ => failed += 1,
                }
            }
            (ok, failed)
        }));
    }
    let (mut ok, mut failed) = (0, 0);
    for t in tasks {
        let (o, f) = t.await?;
        ok += o;
        failed += f;
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"connections": ok, "failed": failed, "cps": ok as f64 / elapsed})
    );
    Ok(())
}

async fn first_byte(target: SocketAddr, timeout: u64, cmd: &[String]) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut child = tokio::process::Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let deadline = start + Duration::from_secs(timeout);
    let mut tries = 0u64;
    let ms = loop {
        tries += 1;
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(500), echo_once(target)).await
        {
            break start.elapsed().as_secs_f64() * 1e3;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no echo through {target} within {timeout} s"
        );
        // Half a millisecond between tries, slept off the runtime: tokio's
        // timer rounds up to whole milliseconds, which made tries ~2.5 ms
        // apart and added ~1 ms on average to every figure.
        tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_micros(500))).await?;
    };
    // SIGTERM: a connector unregisters on its way out, so the next run
    // starts against an edge that holds no stale connection of it.
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
    }
    if tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        child.kill().await?;
    }
    println!(
        "{}",
        serde_json::json!({"first_byte_ms": ms, "tries": tries})
    );
    Ok(())
}

async fn idle(target: SocketAddr, conns: usize, hold: u64) -> anyhow::Result<()> {
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(200));
    let mut tasks = Vec::with_capacity(conns);
    for _ in 0..conns {
        let sem = sem.clone();
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire().await;
            tokio::time::timeout(Duration::from_secs(30), echo_once(target))
                .await
                .ok()
                .and_then(Result::ok)
        }));
    }
    let mut open = Vec::with_capacity(conns);
    for t in tasks {
        if let Some(s) = t.await? {
            open.push(s);
        }
    }
    println!("{}", serde_json::json!({"ready": open.len()}));
    tokio::time::sleep(Duration::from_secs(hold)).await;
    drop(open);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::EchoServer { listen } => echo_server(listen).await,
        Cmd::Rr {
            target,
            conns,
            secs,
            size,
        } => rr(target, conns, secs, size).await,
        Cmd::Cps {
            target,
            concurrency,
            secs,
        } => cps(target, concurrency, secs).await,
        Cmd::Idle {
            target,
            conns,
            hold,
        } => idle(target, conns, hold).await,
        Cmd::UdpEchoServer { listen } => udp_echo_server(listen).await,
        Cmd::HttpServer { listen } => http_server(listen).await,
        Cmd::Http {
            target,
            host,
            conns,
            secs,
        } => http_load(target, host, conns, secs).await,
        Cmd::UdpBlast {
            target,
            mbps,
            size,
            secs,
        } => udp_blast(target, mbps, size, secs).await,
        Cmd::UdpRr {
            target,
            clients,
            secs,
            size,
        } => udp_rr(target, clients, secs, size).await,
        Cmd::FirstByte {
            target,
            timeout,
            cmd,
        } => first_byte(target, timeout, &cmd).await,
        Cmd::Impair {
            a,
            b,
            delay_ms,
            jitter_ms,
            loss,
            reorder,
            rate_mbit,
            queue_ms,
            secs,
        } => {
            let pct = |name: &str, v: f64| {
                anyhow::ensure!(
                    (0.0..=100.0).contains(&v),
                    "--{name}: {v} is not a percentage 0..100"
                );
                Ok(v / 100.0)
            };
            anyhow::ensure!(
                delay_ms >= 0.0 && jitter_ms >= 0.0,
                "--delay-ms and --jitter-ms: not negative"
            );
            let imp = impair::Impairment {
                delay: Duration::from_secs_f64(delay_ms / 1e3),
                jitter: Duration::from_secs_f64(jitter_ms / 1e3),
                loss: pct("loss", loss)?,
                reorder: pct("reorder", reorder)?,
                rate_bytes: rate_mbit * 1_000_000 / 8,
                queue: Duration::from_millis(queue_ms),
            };
            tokio::task::spawn_blocking(move || impair::run(&a, &b, imp, secs)).await?
        }
    }
}
