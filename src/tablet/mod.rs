//! `podium-tablet`: follows chosen teams and events (the old StoneTablet),
//! by polling or by push, and prints a live view.
//!
//! In push mode the tablet serves the old callback methods on its own port
//! and subscribes through the balancer with a short lease, renewed well
//! before it ends. The subscription is the cluster's: if the front-end
//! pushing to it dies, another takes over where it stopped (see
//! [`crate::push`]); a push that then arrives twice carries a version seen
//! already and is shown once.

mod view;

use std::io::IsTerminal as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::api::callback::serve_callbacks;
use crate::api::{Client, Subscribe};
use crate::rpc::{Methods, ServerConfig};
use crate::scoreboard::Roster;
use crate::shutdown::{Shutdown, Tasks};
pub use view::View;

/// How a tablet learns of changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Ask the server every --interval-ms.
    Pull,
    /// Serve a callback port and let the front-ends push.
    Push,
}

/// Default callback port, as the old tablet.
pub const DEFAULT_PORT: u16 = 8005;
/// Default lease asked for in push mode, seconds; renewed every third of it.
pub const DEFAULT_LEASE_SECS: u64 = 15;
/// How long the tablet waits at exit for its unsubscribe to be answered.
const UNSUBSCRIBE_GRACE: Duration = Duration::from_secs(2);

/// Prints the view; clears the screen first on a terminal.
fn show(view: &View) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if out.is_terminal() {
        let _ = write!(out, "\x1b[2J\x1b[H");
    }
    let _ = write!(out, "{}", view.render());
    let _ = out.flush();
}

/// Picks what to follow: the names given, else a random few (like the old tablet).
pub fn choose_follows(
    roster: &Roster,
    teams: &[String],
    events: &[String],
    rng: &mut impl rand::Rng,
) -> (Vec<String>, Vec<String>) {
    use rand::seq::SliceRandom as _;
    let pick = |given: &[String], all: &[String], rng: &mut dyn rand::RngCore| -> Vec<String> {
        if !given.is_empty() {
            return given.to_vec();
        }
        let n = all.len().min(2);
        all.choose_multiple(rng, n).cloned().collect()
    };
    (
        pick(teams, &roster.teams, rng),
        pick(events, &roster.events, rng),
    )
}

/// Polls every `interval` until `shutdown`, printing the view when it changes.
pub async fn poll(
    server: Client,
    teams: Vec<String>,
    events: Vec<String>,
    interval: Duration,
    client_id: i64,
    shutdown: Shutdown,
) {
    let mut view = View::new(
        format!("Podium tablet (polling {})", server.rpc().uri()),
        &teams,
        &events,
    );
    let mut ticker = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = shutdown.triggered() => return,
            _ = ticker.tick() => {}
        }
        if poll_once(&server, &teams, &events, client_id, &mut view).await {
            show(&view);
        }
    }
}

/// Reads every followed value once; true if the view changed.
async fn poll_once(
    server: &Client,
    teams: &[String],
    events: &[String],
    client_id: i64,
    view: &mut View,
) -> bool {
    let mut changed = false;
    for team in teams {
        match server.get_medal_tally(team, client_id).await {
            Ok(text) => changed |= view.set_tally(team, &text),
            Err(e) => warn!(%team, error = %e, "poll failed"),
        }
    }
    for event in events {
        match server.get_score(event, client_id).await {
            Ok(text) => changed |= view.set_score(event, &text),
            Err(e) => warn!(%event, error = %e, "poll failed"),
        }
    }
    changed
}

/// Settings of push mode.
#[derive(Debug, Clone)]
pub struct PushSettings {
    /// The URL front-ends call back (this tablet's own server).
    pub callback_url: String,
    pub lease: Duration,
    pub server: ServerConfig,
}

/// Serves the callbacks on `listener` and keeps the subscription alive
/// until `shutdown`.
///
/// # Errors
/// Accepting failed for good.
pub async fn push(
    server: Client,
    listener: TcpListener,
    teams: Vec<String>,
    events: Vec<String>,
    settings: PushSettings,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let view = Arc::new(Mutex::new(View::new(
        format!("Podium tablet (push to {})", settings.callback_url),
        &teams,
        &events,
    )));
    let mut methods = Methods::new();
    let shown = view.clone();
    serve_callbacks(&mut methods, move |callback| {
        let view = shown.clone();
        async move {
            let mut view = view.lock().unwrap_or_else(|e| e.into_inner());
            if view.push(&callback) {
                show(&view);
            }
        }
    });
    // Show the current values at once; pushes bring the changes.
    let mut first = View::new(String::new(), &teams, &events);
    if poll_once(&server, &teams, &events, 0, &mut first).await {
        let mut view = view.lock().unwrap_or_else(|e| e.into_inner());
        view.teams = first.teams;
        view.events = first.events;
        show(&view);
    }
    let tasks = Tasks::new(shutdown.clone());
    tasks.spawn(keep_subscribed(
        server,
        teams,
        events,
        settings.clone(),
        shutdown.clone(),
    ));
    let result = crate::rpc::serve(listener, methods, settings.server, shutdown.triggered()).await;
    // The renewer unsubscribes on its way out; give it a call's time.
    tasks.stop(UNSUBSCRIBE_GRACE).await;
    result
}

/// Subscribes, then renews every third of the lease (sooner after a failure).
async fn keep_subscribed(
    server: Client,
    teams: Vec<String>,
    events: Vec<String>,
    settings: PushSettings,
    shutdown: Shutdown,
) {
    let subscription = Subscribe {
        callback_url: settings.callback_url.clone(),
        events,
        teams,
        lease_seconds: Some(i64::try_from(settings.lease.as_secs()).unwrap_or(i64::MAX)),
    };
    let renew_every = settings.lease / 3;
    let mut subscribed = false;
    loop {
        let wait = match server.subscribe(&subscription).await {
            Ok(_) => {
                if !subscribed {
                    info!(callback = %settings.callback_url, "subscribed");
                    subscribed = true;
                }
                renew_every
            }
            Err(e) => {
                warn!(error = %e, "subscription failed; retrying");
                subscribed = false;
                Duration::from_millis(500)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.triggered() => break,
        }
    }
    let _ = server.unsubscribe(&settings.callback_url).await;
}
