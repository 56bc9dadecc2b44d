//! How the hub follows the push view: a member gives up the tablets the
//! new view gives to others (remembering how far each was delivered) and
//! takes over the ones it gives to it, each from the last change the
//! cluster knows its previous owner delivered, so nothing is lost.

use tokio::time::Instant;
use tracing::{debug, info};

use super::{Hub, State, RETRY_PAUSE, TAKEOVER_POLL, TAKEOVER_WAIT};
use crate::push::ownership::{owner, resume, Resume};
use crate::push::report::View;

impl Hub {
    /// Applies a new view: stops the workers of tablets now owned by
    /// others (remembering how far each got), and queues the newly owned
    /// ones for a takeover.
    pub(super) fn apply_view(&self, state: &mut State, view: View) {
        let me = self.me();
        info!(view = view.number, owners = ?view.owners, "push view applied");
        let now = Instant::now();
        let urls: Vec<String> = state.subs.keys().cloned().collect();
        for url in urls {
            let owned = owner(&url, &view.owners) == Some(me);
            let Some(s) = state.subs.get_mut(&url) else {
                continue;
            };
            if !owned {
                state.pending.remove(&url);
                if let Some(w) = s.worker.take() {
                    w.stop.trigger();
                    state.released.insert(url, (w.through(), now));
                }
            }
        }
        state.view = Some(view);
        self.reconcile(state);
    }

    /// Queues every owned tablet without a worker for a takeover, once the
    /// subscriptions are loaded and a view is known.
    pub(super) fn reconcile(&self, state: &mut State) {
        let Some(view) = state.view.clone() else {
            return;
        };
        if !state.loaded {
            return;
        }
        let me = self.me();
        let wanted: Vec<String> = state
            .subs
            .iter()
            .filter(|(url, s)| {
                s.worker.is_none() && !s.unreachable && owner(url, &view.owners) == Some(me)
            })
            .map(|(url, _)| url.clone())
            .collect();
        state.pending.extend(wanted);
        if !state.pending.is_empty() && !state.takeover_running {
            state.takeover_running = true;
            let hub = self.clone();
            self.shared
                .tasks
                .spawn_on(hub.take_over(), &self.shared.runtime);
        }
    }

    /// Finds where each newly owned tablet resumes, and starts its worker.
    async fn take_over(self) {
        let started = Instant::now();
        let shutdown = self.shared.tasks.shutdown().clone();
        loop {
            let progress = match self.shared.config.db.push_progress().await {
                Ok(p) => Some(p),
                Err(e) => {
                    debug!(error = %e, "cannot read push progress yet");
                    None
                }
            };
            {
                let mut state = self.lock();
                let Some(view) = state.view.clone() else {
                    state.takeover_running = false;
                    return;
                };
                if let Some(progress) = &progress {
                    let waited_enough = started.elapsed() >= TAKEOVER_WAIT;
                    let pending: Vec<String> = state.pending.iter().cloned().collect();
                    for url in pending {
                        let Some(since) = state.subs.get(&url).map(|s| s.version) else {
                            state.pending.remove(&url);
                            continue;
                        };
                        let from = resume(
                            &url,
                            self.me(),
                            view.number,
                            &progress.views,
                            &progress.reports,
                            since,
                            !waited_enough,
                        );
                        if let Resume::From(version) = from {
                            state.pending.remove(&url);
                            self.start_worker(&mut state, &url, version);
                        }
                    }
                }
                if state.pending.is_empty() {
                    state.takeover_running = false;
                    return;
                }
            }
            let pause = if progress.is_some() {
                TAKEOVER_POLL
            } else {
                RETRY_PAUSE
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.triggered() => return,
            }
        }
    }
}
