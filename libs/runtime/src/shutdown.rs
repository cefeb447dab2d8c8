//! One shutdown signal for every listener, consumer and scheduler of a service, and the grace period that bounds draining.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Cloned into every long-running task; cancelled once on SIGINT/SIGTERM or by a test.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// A shutdown that triggers on SIGINT or SIGTERM.
    pub fn on_signals() -> Self {
        let shutdown = Self::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received, draining");
            trigger.trigger();
        });
        shutdown
    }

    pub fn trigger(&self) {
        self.token.cancel();
    }

    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once shutdown has been triggered.
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        self.token.clone().cancelled_owned()
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Waits for `work` to finish after shutdown, but no longer than `grace`; returns false if it was cut off.
pub async fn drain<F: Future>(work: F, grace: Duration) -> bool {
    tokio::time::timeout(grace, work).await.is_ok()
}

/// The long-running tasks of a service: listeners, consumers, relays. One failing stops them all.
#[derive(Default)]
pub struct Tasks {
    set: tokio::task::JoinSet<(&'static str, Result<(), String>)>,
}

#[derive(Debug, thiserror::Error)]
#[error("{task} stopped: {reason}")]
pub struct TaskError {
    pub task: &'static str,
    pub reason: String,
}

impl Tasks {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn spawn<F, E>(&mut self, name: &'static str, work: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        self.set
            .spawn(async move { (name, work.await.map_err(|e| e.to_string())) });
    }

    /// Runs until `shutdown` triggers or a task fails, then gives the rest `grace` to finish.
    pub async fn run(mut self, shutdown: Shutdown, grace: Duration) -> Result<(), TaskError> {
        let mut failure = None;
        while !shutdown.is_triggered() {
            tokio::select! {
                _ = shutdown.wait() => {}
                joined = self.set.join_next() => match joined {
                    None => break,
                    // Shutdown came while select! was looking here: a task that stopped because of it is fine.
                    Some(Ok((_, Ok(())))) if shutdown.is_triggered() => {}
                    Some(outcome) => {
                        let (task, reason) = match outcome {
                            Ok((task, Ok(()))) => (task, "ended before shutdown".to_owned()),
                            Ok((task, Err(e))) => (task, e),
                            Err(e) => ("task", e.to_string()),
                        };
                        tracing::error!(task, reason, "a task stopped; shutting down");
                        failure = Some(TaskError { task, reason });
                        shutdown.trigger();
                    }
                },
            }
        }
        let drained = drain(
            async { while self.set.join_next().await.is_some() {} },
            grace,
        )
        .await;
        if !drained {
            tracing::warn!(?grace, "grace period over; aborting what is left");
            self.set.abort_all();
        }
        failure.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failing_task_stops_the_others_and_is_reported() {
        let shutdown = Shutdown::new();
        let mut tasks = Tasks::new();
        let watcher = shutdown.clone();
        tasks.spawn("listener", async move {
            watcher.wait().await;
            Ok::<_, String>(())
        });
        tasks.spawn("consumer", async { Err::<(), _>("stream deleted") });
        let error = tasks
            .run(shutdown.clone(), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(
            (error.task, error.reason.as_str()),
            ("consumer", "stream deleted")
        );
        assert!(shutdown.is_triggered());
    }

    #[tokio::test]
    async fn a_task_that_stops_on_shutdown_is_not_a_failure_whichever_is_seen_first() {
        // Many rounds, because which of two ready branches select! takes is random.
        for _ in 0..200 {
            let shutdown = Shutdown::new();
            let mut tasks = Tasks::new();
            let watcher = shutdown.clone();
            tasks.spawn("listener", async move {
                watcher.wait().await;
                Ok::<_, String>(())
            });
            let runner = tokio::spawn(tasks.run(shutdown.clone(), Duration::from_secs(5)));
            tokio::task::yield_now().await;
            shutdown.trigger();
            assert!(runner.await.unwrap().is_ok());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn work_that_ignores_shutdown_is_cut_off_at_the_grace_period() {
        let shutdown = Shutdown::new();
        let mut tasks = Tasks::new();
        tasks.spawn("stubborn", async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, String>(())
        });
        let trigger = shutdown.clone();
        tokio::spawn(async move { trigger.trigger() });
        let started = tokio::time::Instant::now();
        tasks.run(shutdown, Duration::from_secs(2)).await.unwrap();
        assert_eq!(started.elapsed().as_secs(), 2);
    }

    #[tokio::test]
    async fn in_flight_work_finishes_within_the_grace_period() {
        let shutdown = Shutdown::new();
        let finished = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut tasks = Tasks::new();
        let (done, watcher) = (finished.clone(), shutdown.clone());
        tasks.spawn("draining", async move {
            watcher.wait().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok::<_, String>(())
        });
        shutdown.trigger();
        tasks.run(shutdown, Duration::from_secs(5)).await.unwrap();
        assert!(finished.load(std::sync::atomic::Ordering::SeqCst));
    }
}
