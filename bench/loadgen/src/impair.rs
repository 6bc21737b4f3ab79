//! `impair`: a userspace link emulator between two TUN devices, because
//! this kernel has no `netem`. Every IP packet (TCP and UDP alike) that one
//! side routes into its TUN device comes out of the other's after the
//! configured delay, jitter, loss, reordering and rate — so QUIC, HTTP/2
//! and rathole cross the same impaired link.
//!
//! The decisions (drop or when to deliver) are [`Link`], a pure core with
//! its own tests; [`run`] is the shell: two TUN file descriptors and, per
//! direction, a reader thread and a writer thread that delivers packets in
//! deadline order.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tun_rs::SyncDevice;

/// What one direction of the link does to packets (the same both ways).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Impairment {
    /// One-way delay (half the round trip).
    pub(crate) delay: Duration,
    /// Each packet's delay is `delay` ± up to `jitter` (uniform). Jitter
    /// larger than the packet spacing reorders, as with netem.
    pub(crate) jitter: Duration,
    /// Probability that a packet is dropped, 0..=1.
    pub(crate) loss: f64,
    /// Probability that a packet skips the delay and overtakes the ones
    /// in flight (netem's `reorder`), 0..=1.
    pub(crate) reorder: f64,
    /// Link rate in bytes per second; 0 means unlimited.
    pub(crate) rate_bytes: u64,
    /// Packets that would wait longer than this for the link (at `rate`)
    /// are dropped: the bottleneck's queue.
    pub(crate) queue: Duration,
}

/// One direction's state: the decisions, given the time a packet arrives.
pub(crate) struct Link {
    imp: Impairment,
    rng: StdRng,
    /// When the (rate-limited) link is free again.
    busy_until: Option<Instant>,
}

impl Link {
    pub(crate) fn new(imp: Impairment, seed: u64) -> Link {
        Link {
            imp,
            rng: StdRng::seed_from_u64(seed),
            busy_until: None,
        }
    }

    /// When a packet of `len` bytes arriving at `now` is delivered, or
    /// `None` when it is dropped.
    pub(crate) fn admit(&mut self, now: Instant, len: usize) -> Option<Instant> {
        let imp = self.imp;
        // The bottleneck: serialised at the rate, behind a bounded queue.
        let sent = if imp.rate_bytes > 0 {
            let start = self.busy_until.map_or(now, |b| b.max(now));
            if start.duration_since(now) > imp.queue {
                return None;
            }
            let end = start + Duration::from_secs_f64(len as f64 / imp.rate_bytes as f64);
            self.busy_until = Some(end);
            end
        } else {
            now
        };
        if imp.loss > 0.0 && self.rng.gen_bool(imp.loss) {
            return None;
        }
        if imp.reorder > 0.0 && self.rng.gen_bool(imp.reorder) {
            return Some(sent);
        }
        let mut delay = imp.delay;
        if !imp.jitter.is_zero() {
            let j = self.rng.gen_range(-1.0..=1.0) * imp.jitter.as_secs_f64();
            delay = Duration::from_secs_f64((delay.as_secs_f64() + j).max(0.0));
        }
        Some(sent + delay)
    }
}

/// Creates the TUN device `name` (IP packets, no extra header), up.
fn open_tun(name: &str) -> anyhow::Result<Arc<SyncDevice>> {
    let dev = tun_rs::DeviceBuilder::new()
        .name(name)
        .packet_information(false)
        .build_sync()
        .map_err(|e| anyhow::anyhow!("TUN device {name}: {e} (needs root and /dev/net/tun)"))?;
    Ok(Arc::new(dev))
}

/// Relays packets between the TUN devices `a` and `b` for `secs` seconds,
/// impairing both directions alike; prints per-direction counts at the end.
pub(crate) fn run(a: &str, b: &str, imp: Impairment, secs: u64) -> anyhow::Result<()> {
    let ta = open_tun(a)?;
    let tb = open_tun(b)?;
    println!("ready");
    let stats = [
        direction(ta.clone(), tb.clone(), Link::new(imp, 1)),
        direction(tb, ta, Link::new(imp, 2)),
    ];
    std::thread::sleep(Duration::from_secs(secs));
    let counts: Vec<_> = stats
        .iter()
        .map(|s| {
            let (seen, dropped) = *s.lock().expect("stats");
            serde_json::json!({"packets": seen, "dropped": dropped})
        })
        .collect();
    println!(
        "{}",
        serde_json::json!({"a_to_b": counts[0], "b_to_a": counts[1]})
    );
    // The reader threads block in read(2); leaving the process ends them.
    std::process::exit(0);
}

type Stats = std::sync::Arc<std::sync::Mutex<(u64, u64)>>;

/// One direction: a reader that decides each packet's fate and a writer
/// that delivers in deadline order.
fn direction(from: Arc<SyncDevice>, to: Arc<SyncDevice>, mut link: Link) -> Stats {
    let stats: Stats = Default::default();
    let (tx, rx) = mpsc::channel::<(Instant, u64, Vec<u8>)>();
    let counted = stats.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        let mut seq = 0u64;
        while let Ok(n) = from.recv(&mut buf) {
            let at = link.admit(Instant::now(), n);
            {
                let mut s = counted.lock().expect("stats");
                s.0 += 1;
                s.1 += u64::from(at.is_none());
            }
            if let Some(at) = at {
                seq += 1;
                if tx.send((at, seq, buf[..n].to_vec())).is_err() {
                    return;
                }
            }
        }
    });
    std::thread::spawn(move || {
        let mut queue: BinaryHeap<Reverse<(Instant, u64, Vec<u8>)>> = BinaryHeap::new();
        loop {
            let now = Instant::now();
            while queue.peek().is_some_and(|Reverse((at, _, _))| *at <= now) {
                let Reverse((_, _, p)) = queue.pop().expect("peeked");
                // A write the stack refuses (device down) is a lost packet.
                let _ = to.send(&p);
            }
            let next = match queue.peek() {
                Some(Reverse((at, _, _))) => rx.recv_timeout(at.saturating_duration_since(now)),
                None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            };
            match next {
                Ok(p) => queue.push(Reverse(p)),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    });
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imp() -> Impairment {
        Impairment {
            delay: Duration::from_millis(25),
            jitter: Duration::ZERO,
            loss: 0.0,
            reorder: 0.0,
            rate_bytes: 0,
            queue: Duration::from_millis(100),
        }
    }

    #[test]
    fn a_clean_link_delays_every_packet_by_the_delay() {
        let mut l = Link::new(imp(), 7);
        let t = Instant::now();
        for i in 0..100 {
            let now = t + Duration::from_micros(i);
            assert_eq!(l.admit(now, 1500), Some(now + Duration::from_millis(25)));
        }
    }

    #[test]
    fn loss_drops_about_the_given_share() {
        let mut l = Link::new(
            Impairment {
                loss: 0.05,
                ..imp()
            },
            7,
        );
        let t = Instant::now();
        let dropped = (0..100_000).filter(|_| l.admit(t, 1200).is_none()).count();
        assert!(
            (4_500..5_500).contains(&dropped),
            "{dropped} of 100000 dropped"
        );
    }

    #[test]
    fn the_rate_spaces_packets_and_the_queue_bounds_the_wait() {
        // 1 MB/s: a 1,000-byte packet takes 1 ms on the link.
        let mut l = Link::new(
            Impairment {
                rate_bytes: 1_000_000,
                ..imp()
            },
            7,
        );
        let t = Instant::now();
        let d = Duration::from_millis(25);
        assert_eq!(l.admit(t, 1000), Some(t + Duration::from_millis(1) + d));
        assert_eq!(l.admit(t, 1000), Some(t + Duration::from_millis(2) + d));
        // A burst at one instant fills the 100 ms queue, then drops.
        let burst: Vec<_> = (0..200).map(|_| l.admit(t, 1000)).collect();
        let kept = burst.iter().filter(|a| a.is_some()).count();
        assert_eq!(kept, 99, "the queue holds 100 ms at 1 MB/s");
        // Once the link drains, packets pass again.
        assert!(l.admit(t + Duration::from_millis(500), 1000).is_some());
    }

    #[test]
    fn reordered_packets_overtake_and_jitter_stays_within_bounds() {
        let mut l = Link::new(
            Impairment {
                reorder: 0.5,
                ..imp()
            },
            7,
        );
        let t = Instant::now();
        let at: Vec<_> = (0..1000)
            .map(|_| l.admit(t, 100).expect("no loss"))
            .collect();
        let early = at.iter().filter(|a| **a == t).count();
        assert!((400..600).contains(&early), "{early} of 1000 overtook");

        let jitter = Duration::from_millis(10);
        let mut l = Link::new(Impairment { jitter, ..imp() }, 7);
        for _ in 0..1000 {
            let d = l.admit(t, 100).expect("no loss") - t;
            assert!(
                d >= Duration::from_millis(15) && d <= Duration::from_millis(35),
                "{d:?}"
            );
        }
    }
}
