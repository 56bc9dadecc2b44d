//! `podium-tablet`: follows chosen teams and events (the old StoneTablet),
//! by polling or by push, and prints a live view.
//!
//! In push mode the tablet serves the old callback methods on its own port
//! and subscribes through the balancer with a short lease, renewed well
//! before it ends. If the front-end holding the subscription dies, the next
//! renewal lands on a live one; pushes that then arrive twice (during the
//! overlap) are recognised and shown once.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::rpc::{Client, Methods, ServerConfig, Value};
use crate::scoreboard::Roster;
use crate::shutdown::{Shutdown, Tasks};

/// Default callback port, as the old tablet.
pub const DEFAULT_PORT: u16 = 8005;
/// Default lease asked for in push mode, seconds; renewed every third of it.
pub const DEFAULT_LEASE_SECS: u64 = 15;
/// How long the tablet waits at exit for its unsubscribe to be answered.
const UNSUBSCRIBE_GRACE: Duration = Duration::from_secs(2);
/// Recent pushes remembered to drop duplicates.
const DEDUP_WINDOW: usize = 256;

/// What the tablet shows.
#[derive(Debug, Default)]
pub struct View {
    title: String,
    /// Latest text per team and per event followed.
    teams: BTreeMap<String, String>,
    events: BTreeMap<String, String>,
    recent: VecDeque<(String, u64)>,
    /// Updates received (after de-duplication).
    pub updates: u64,
}

impl View {
    pub fn new(title: String, teams: &[String], events: &[String]) -> Self {
        View {
            title,
            teams: teams
                .iter()
                .map(|t| (t.clone(), "(waiting)".to_owned()))
                .collect(),
            events: events
                .iter()
                .map(|e| (e.clone(), "(waiting)".to_owned()))
                .collect(),
            ..View::default()
        }
    }

    /// Records a push; false if it was a duplicate of a recent one.
    pub fn push(&mut self, kind: &str, text: &str, time: f64) -> bool {
        let id = (format!("{kind}\u{0}{text}"), time.to_bits());
        if self.recent.contains(&id) {
            return false;
        }
        if self.recent.len() == DEDUP_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(id);
        let target = if kind == "score" {
            &mut self.events
        } else {
            &mut self.teams
        };
        // Score pushes read "Event: score"; tally pushes "Team NAME has: ...".
        let name = match kind {
            "score" => text.split_once(':').map(|(e, _)| e.trim().to_owned()),
            _ => text
                .strip_prefix("Team ")
                .and_then(|t| t.split_once(" has:"))
                .map(|(t, _)| t.to_owned()),
        };
        let key = name
            .and_then(|n| target.keys().find(|k| k.eq_ignore_ascii_case(&n)).cloned())
            .unwrap_or_else(|| text.lines().next().unwrap_or("").to_owned());
        target.insert(key, text.trim_end().to_owned());
        self.updates += 1;
        true
    }

    /// Sets a polled value; true if it changed.
    pub fn set(&mut self, kind: &str, name: &str, text: &str) -> bool {
        let target = if kind == "score" {
            &mut self.events
        } else {
            &mut self.teams
        };
        let text = text.trim_end().to_owned();
        if target.get(name) == Some(&text) {
            return false;
        }
        target.insert(name.to_owned(), text);
        self.updates += 1;
        true
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "=== {} ===", self.title);
        let _ = writeln!(out, "-- medal tallies --");
        for (team, text) in &self.teams {
            if text.starts_with("Team ") {
                let _ = writeln!(out, "{}", text.replace('\n', " | "));
            } else {
                let _ = writeln!(out, "{team}: {text}");
            }
        }
        let _ = writeln!(out, "-- scores --");
        for (event, text) in &self.events {
            let shown = text.strip_prefix(&format!("{event}: ")).unwrap_or(text);
            let _ = writeln!(out, "{event}: {shown}");
        }
        out
    }
}

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
        format!("Podium tablet (polling {})", server.uri()),
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
        match server
            .call("get_medal_tally", &[team.as_str().into(), client_id.into()])
            .await
        {
            Ok(Value::String(text)) => changed |= view.set("tally", team, &text),
            Ok(other) => warn!(?other, "unexpected tally reply"),
            Err(e) => warn!(%team, error = %e, "poll failed"),
        }
    }
    for event in events {
        match server
            .call("get_score", &[event.as_str().into(), client_id.into()])
            .await
        {
            Ok(Value::String(text)) => {
                changed |= view.set("score", event, &format!("{event}: {text}"))
            }
            Ok(other) => warn!(?other, "unexpected score reply"),
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
    for (method, kind) in [
        ("print_score_for_event", "score"),
        ("print_medal_tally_for_team", "tally"),
    ] {
        let view = view.clone();
        methods.add(
            method,
            &["boolean", "string", "double"],
            "Callback: shows a pushed update.",
            move |p, _| {
                let view = view.clone();
                async move {
                    p.expect_count(1, 2)?;
                    let text: &str = p.arg(0, "text")?;
                    let time = p.opt_arg::<f64>(1, "time_of_update")?.unwrap_or(0.0);
                    let mut view = view.lock().unwrap_or_else(|e| e.into_inner());
                    if view.push(kind, text, time) {
                        show(&view);
                    }
                    Ok(Value::Bool(true))
                }
            },
        );
    }
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
    let list = |v: &[String]| Value::Array(v.iter().map(|s| Value::from(s.as_str())).collect());
    let params = [
        Value::from(settings.callback_url.as_str()),
        list(&events),
        list(&teams),
        Value::Int(settings.lease.as_secs() as i64),
    ];
    let renew_every = settings.lease / 3;
    let mut subscribed = false;
    loop {
        let wait = match server.call("scoreboard.subscribe", &params).await {
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
    let _ = server
        .call(
            "scoreboard.unsubscribe",
            &[Value::from(settings.callback_url.as_str())],
        )
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_pushes_show_once() {
        let mut v = View::new("t".into(), &["Gaul".into()], &["Stone Curling".into()]);
        assert!(v.push("score", "Stone Curling: 3-1", 10.0));
        assert!(!v.push("score", "Stone Curling: 3-1", 10.0));
        assert!(v.push("score", "Stone Curling: 3-1", 11.0));
        assert!(v.push("tally", "Team Gaul has:\n1 gold medals\n", 12.0));
        assert_eq!(v.updates, 3);
        let shown = v.render();
        assert!(shown.contains("Stone Curling: 3-1"), "{shown}");
        assert!(shown.contains("Team Gaul has: | 1 gold medals"), "{shown}");
        assert!(!v.set("tally", "Gaul", "Team Gaul has:\n1 gold medals\n"));
    }
}
