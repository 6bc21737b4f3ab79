//! Futures run inside the task that serves a connection.
//!
//! A proxy that keeps one upstream HTTP/1.1 connection per downstream
//! connection must poll the upstream connection's future for as long as it
//! is used. Spawned, it is a task of its own, and every request and answer
//! crosses two task wake-ups on the way; polled by the downstream
//! connection's own task, it costs nothing extra. [`pair`] gives a
//! [`Spawner`], handed to the code that opens upstream connections, and a
//! [`Runner`] that polls the connection being served together with
//! everything spawned on it.

use futures_util::stream::{FuturesUnordered, StreamExt};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::mpsc;

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Hands futures to the [`Runner`] of the connection being served.
#[derive(Clone)]
pub struct Spawner(mpsc::UnboundedSender<Job>);

impl Spawner {
    /// Runs `fut` in the serving task; if that has finished already, in a
    /// task of its own.
    pub fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        if let Err(mpsc::error::SendError(job)) = self.0.send(Box::pin(fut)) {
            tokio::spawn(job);
        }
    }
}

/// Polls one connection's futures; see [`pair`].
pub struct Runner(mpsc::UnboundedReceiver<Job>);

/// A [`Spawner`] and the [`Runner`] that polls what it is given.
pub fn pair() -> (Spawner, Runner) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Spawner(tx), Runner(rx))
}

impl Runner {
    /// Polls `main` and every spawned future until `main` completes; then
    /// gives the spawned ones up to `grace` to finish (an upstream HTTP/1.1
    /// connection ends by itself once its sender is dropped and no request
    /// is in flight) and drops the rest.
    pub async fn run<F: Future>(mut self, main: F, grace: Duration) -> F::Output {
        let mut jobs = FuturesUnordered::new();
        tokio::pin!(main);
        let out = loop {
            tokio::select! {
                biased;
                out = &mut main => break out,
                Some(job) = self.0.recv() => jobs.push(job),
                Some(()) = jobs.next(), if !jobs.is_empty() => {}
            }
        };
        self.0.close();
        while let Ok(job) = self.0.try_recv() {
            jobs.push(job);
        }
        let _ = tokio::time::timeout(grace, async { while jobs.next().await.is_some() {} }).await;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    #[tokio::test]
    async fn spawned_futures_run_beside_main_and_finish_after_it() {
        let (spawner, runner) = pair();
        let (tx, rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        let out = runner
            .run(
                async move {
                    // The spawned future answers main while main waits.
                    spawner.spawn(async move {
                        let _ = tx.send(5);
                    });
                    let v = rx.await.expect("spawned future ran");
                    // One spawned after main's last await still runs in
                    // the grace period.
                    spawner.spawn(async move {
                        tokio::task::yield_now().await;
                        let _ = done_tx.send(());
                    });
                    v * 2
                },
                Duration::from_secs(5),
            )
            .await;
        assert_eq!(out, 10);
        done_rx
            .await
            .expect("the late future finished in the grace period");
    }

    #[tokio::test]
    async fn the_grace_period_bounds_a_future_that_never_ends() {
        let (spawner, runner) = pair();
        let started = std::time::Instant::now();
        runner
            .run(
                async move { spawner.spawn(std::future::pending()) },
                Duration::from_millis(50),
            )
            .await;
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
