//! One way to stop. Every service's `run` takes a [`Shutdown`] handle, and
//! everything a service spawns is owned by its [`Tasks`], so that stopping
//! is one call and waiting for the stop is another.
//!
//! Binaries build one handle from the signal handler ([`Shutdown::on_signal`]);
//! tests build one with [`Shutdown::new`] and call [`Shutdown::trigger`]. Long
//! loops `select!` on [`Shutdown::triggered`] (the shape of mini-redis's
//! `shutdown.rs`, on tokio-util's cancellation token and task tracker, which
//! do exactly this job and nothing more).

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A shared stop signal. Cheap to clone; every clone sees the same trigger.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    /// A handle nothing has triggered yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A handle that SIGINT or SIGTERM triggers. Must be called inside a
    /// tokio runtime: the signal watcher is a task of that runtime.
    pub fn on_signal() -> Self {
        let shutdown = Shutdown::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = crate::cli::shutdown_signal() => trigger.trigger(),
                _ = trigger.triggered() => {}
            }
        });
        shutdown
    }

    /// Asks everything holding this handle to stop. Idempotent.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// True once [`Shutdown::trigger`] has been called.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes when the handle is triggered (at once if it already was).
    pub async fn triggered(&self) {
        self.token.cancelled().await;
    }

    /// A handle that is triggered with this one, and can also be triggered
    /// alone (a part of a service that stops before the rest).
    pub fn child(&self) -> Shutdown {
        Shutdown {
            token: self.token.child_token(),
        }
    }
}

/// The owner of a service's background tasks. Every task a service starts
/// is spawned here, so none outlives the service unnoticed: at the end the
/// service calls [`Tasks::stop`], which returns when they have all finished
/// (each one watches the same [`Shutdown`]). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Tasks {
    tracker: TaskTracker,
    shutdown: Shutdown,
}

impl Tasks {
    /// An owner whose tasks stop when `shutdown` is triggered.
    pub fn new(shutdown: Shutdown) -> Self {
        Tasks {
            tracker: TaskTracker::new(),
            shutdown,
        }
    }

    /// The stop signal these tasks watch.
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// Spawns `task` on the current runtime, owned by this set. The task is
    /// expected to end by itself once [`Tasks::shutdown`] is triggered.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// Spawns `task` on another runtime (the push thread's, say), still
    /// owned by this set.
    pub fn spawn_on<F>(&self, task: F, runtime: &tokio::runtime::Handle) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn_on(task, runtime)
    }

    /// Spawns `task` and drops it at shutdown: for loops with nothing to
    /// finish (a probe, a ticker), which need no `select!` of their own.
    pub fn spawn_until_shutdown<F>(&self, task: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let shutdown = self.shutdown.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                _ = task => {}
                _ = shutdown.triggered() => {}
            }
        })
    }

    /// Tasks still running.
    pub fn len(&self) -> usize {
        self.tracker.len()
    }

    /// True when no task is running.
    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty()
    }

    /// Triggers the shutdown and waits up to `grace` for every task to end.
    /// Returns false when some were still running at the deadline (they are
    /// then dropped with their runtime).
    pub async fn stop(&self, grace: Duration) -> bool {
        self.shutdown.trigger();
        self.tracker.close();
        tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_waits_for_tasks_that_watch_the_trigger() {
        let shutdown = Shutdown::new();
        let tasks = Tasks::new(shutdown.clone());
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let watching = shutdown.clone();
        tasks.spawn(async move {
            watching.triggered().await;
            let _ = done_tx.send(());
        });
        tasks.spawn_until_shutdown(std::future::pending());
        assert_eq!(tasks.len(), 2);
        assert!(tasks.stop(Duration::from_secs(5)).await);
        assert!(shutdown.is_triggered());
        assert!(done_rx.await.is_ok());
        assert!(tasks.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn stop_gives_up_on_a_task_that_ignores_the_trigger() {
        let tasks = Tasks::new(Shutdown::new());
        tasks.spawn(std::future::pending::<()>());
        assert!(!tasks.stop(Duration::from_millis(100)).await);
    }

    #[tokio::test]
    async fn a_child_stops_with_its_parent_but_not_the_other_way() {
        let parent = Shutdown::new();
        let child = parent.child();
        child.trigger();
        assert!(!parent.is_triggered());
        let other = parent.child();
        parent.trigger();
        assert!(other.is_triggered());
    }
}
