//! The hub's promises, on the hub alone: snapshot first, every change once
//! and in order, exact resumption from the ring, a snapshot when the ring
//! cannot resume, slow viewers closed without touching the others, and
//! the two behaviours when the source is lost.

use super::*;
use crate::web::sse::{Event, Reader};
use crate::web::wire::{Snapshot, TeamRow};

fn gold(version: i64) -> ChangeEvent {
    ChangeEvent {
        version,
        time: version as f64,
        tally: Some(TeamRow {
            team: "Gaul".into(),
            gold: version,
            silver: 0,
            bronze: 0,
            version,
            updated: version as f64,
        }),
        score: None,
        team: None,
        event: None,
    }
}

fn board(version: i64) -> Board {
    Board::new(version, Vec::new(), Vec::new())
}

fn hub(when_lost: WhenLost) -> Hub {
    let hub = Hub::new(HubConfig {
        queue_chunks: 4,
        ring_changes: 8,
        ..HubConfig::new(when_lost)
    });
    hub.reset(board(10));
    hub
}

/// A viewer, and a reader of what its stream has sent so far.
struct Watcher {
    stream: Stream,
    reader: Reader,
    closer: Closer,
    ended: bool,
}

impl Watcher {
    fn new(hub: &Hub, last: Option<i64>) -> Watcher {
        let closer = Closer::detached();
        let stream = hub.subscribe(last, closer.clone()).expect("subscribed");
        Watcher {
            stream,
            reader: Reader::new(),
            closer,
            ended: false,
        }
    }

    /// Every event sent so far.
    fn events(&mut self) -> Vec<Event> {
        let mut chunks: Vec<Bytes> = self.stream.first.take().into_iter().collect();
        loop {
            match self.stream.rx.try_recv() {
                Ok(chunk) => chunks.push(chunk),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    self.ended = true;
                    break;
                }
            }
        }
        let mut out = Vec::new();
        for c in chunks {
            self.reader.feed(&c, |e| out.push(e)).unwrap();
        }
        out
    }

    /// The ids of the change events sent so far.
    fn change_ids(&mut self) -> Vec<i64> {
        self.events()
            .into_iter()
            .filter(|e| e.name == "change")
            .map(|e| e.id.unwrap().parse().unwrap())
            .collect()
    }
}

/// What every viewer is told first, with its snapshot or replay.
const LIVE: &str = r#"{"live":true}"#;

/// The names of `events`, in order.
fn names(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.name.as_str()).collect()
}

#[test]
fn a_viewer_gets_the_snapshot_then_every_change_once_in_order() {
    let hub = hub(WhenLost::Tell);
    let mut w = Watcher::new(&hub, None);
    let first = w.events();
    assert_eq!(first.len(), 2, "the snapshot, then live");
    assert_eq!(first[0].name, "snapshot");
    assert_eq!(first[1].data, LIVE);
    assert_eq!(first[0].id.as_deref(), Some("10"));
    let snap: Snapshot = serde_json::from_str(&first[0].data).unwrap();
    assert_eq!(snap.version, 10);
    assert_eq!(w.reader.retry_ms, Some(DEFAULT_RETRY_MS));
    hub.publish(&[gold(11), gold(12)], 12);
    // Seen again (a source resuming from an older point): not sent again.
    hub.publish(&[gold(12), gold(13)], 14);
    assert_eq!(w.change_ids(), [11, 12, 13]);
    assert_eq!(hub.version(), Some(14));
}

#[test]
fn a_returning_viewer_gets_exactly_what_it_missed_or_a_snapshot() {
    let hub = hub(WhenLost::Tell);
    for v in 11..=20 {
        hub.publish(&[gold(v)], v);
    }
    // The ring holds the latest 8: 13..=20.
    let mut resumed = Watcher::new(&hub, Some(15));
    assert_eq!(resumed.change_ids(), [16, 17, 18, 19, 20]);
    let mut oldest = Watcher::new(&hub, Some(12));
    assert_eq!(oldest.change_ids(), (13..=20).collect::<Vec<_>>());
    let mut current = Watcher::new(&hub, Some(20));
    assert_eq!(names(&current.events()), ["status"], "only told it is live");
    let mut too_old = Watcher::new(&hub, Some(11));
    let events = too_old.events();
    assert_eq!(names(&events), ["snapshot", "status"]);
    assert_eq!(events[0].name, "snapshot");
    assert_eq!(events[0].id.as_deref(), Some("20"));
    // From before the hub's own start: a snapshot, never an empty replay.
    let fresh = Hub::new(HubConfig::new(WhenLost::Tell));
    fresh.reset(board(20));
    let mut at_start = Watcher::new(&fresh, Some(20));
    assert_eq!(at_start.events()[0].name, "snapshot");
}

#[test]
fn a_viewer_ahead_of_the_hub_gets_only_what_comes_after_it() {
    let hub = hub(WhenLost::Tell);
    let mut ahead = Watcher::new(&hub, Some(12));
    assert_eq!(names(&ahead.events()), ["status"]);
    hub.publish(&[gold(11), gold(12), gold(13)], 13);
    assert_eq!(ahead.change_ids(), [13]);
    hub.publish(&[gold(14)], 14);
    assert_eq!(ahead.change_ids(), [14]);
}

#[test]
fn a_slow_viewer_is_closed_and_the_others_are_not_held_up() {
    let hub = hub(WhenLost::Tell);
    let mut slow = Watcher::new(&hub, None);
    let mut quick = Watcher::new(&hub, None);
    slow.events();
    quick.events();
    for v in 11..=20 {
        hub.publish(&[gold(v)], v);
        quick.events();
    }
    assert!(slow.closer.is_closed(), "a full queue closes its viewer");
    assert!(!quick.closer.is_closed());
    assert_eq!(hub.stats().viewers, 1);
    assert_eq!(hub.stats().dropped_slow, 1);
    // What the slow one had queued was all true, and in order.
    assert_eq!(slow.change_ids(), [11, 12, 13, 14]);
}

#[test]
fn a_front_end_that_loses_its_source_ends_its_streams_until_it_is_back() {
    let hub = hub(WhenLost::EndStreams);
    let mut w = Watcher::new(&hub, None);
    hub.publish(&[gold(11)], 11);
    hub.lost();
    assert_eq!(w.change_ids(), [11], "what was queued still arrives");
    assert!(w.ended, "then the stream ends");
    assert_eq!(
        hub.subscribe(Some(11), Closer::detached()).unwrap_err(),
        NotReady::Lost
    );
    hub.resume();
    hub.publish(&[gold(12)], 12);
    let mut back = Watcher::new(&hub, Some(11));
    assert_eq!(back.change_ids(), [12]);
}

#[test]
fn the_balancer_tells_its_viewers_and_a_reset_brings_them_a_new_snapshot() {
    let hub = hub(WhenLost::Tell);
    let mut w = Watcher::new(&hub, None);
    w.events();
    hub.lost();
    let told = w.events();
    assert_eq!(told[0].name, "status");
    assert_eq!(told[0].data, r#"{"live":false}"#);
    // A viewer that comes meanwhile sees the last board, marked not live.
    let mut late = Watcher::new(&hub, None);
    let names: Vec<String> = late.events().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["snapshot", "status"]);
    hub.reset(board(30));
    let events = w.events();
    assert_eq!(events[0].name, "snapshot");
    assert_eq!(events[0].id.as_deref(), Some("30"));
    assert_eq!(events[1].data, r#"{"live":true}"#);
    hub.publish(&[gold(31)], 31);
    assert_eq!(w.change_ids(), [31]);
    assert_eq!(late.change_ids(), [31]);
}

#[test]
fn a_viewer_that_missed_nothing_is_told_it_is_live() {
    let hub = hub(WhenLost::EndStreams);
    hub.publish(&[gold(11)], 11);
    let mut back = Watcher::new(&hub, Some(11));
    let events = back.events();
    let told: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.name.as_str(), e.data.as_str()))
        .collect();
    assert_eq!(told, [("status", LIVE)]);
}

#[test]
fn nobody_is_taken_before_the_board_is_known() {
    let hub = Hub::new(HubConfig::new(WhenLost::Tell));
    assert_eq!(
        hub.subscribe(None, Closer::detached()).unwrap_err(),
        NotReady::NoBoard
    );
    hub.publish(&[gold(1)], 1);
    assert_eq!(hub.version(), None, "changes before a board are ignored");
}

#[tokio::test(start_paused = true)]
async fn a_viewer_before_the_first_board_waits_for_it_and_no_longer() {
    let hub = Hub::new(HubConfig::new(WhenLost::EndStreams));
    assert_eq!(
        hub.subscribe(None, Closer::detached()).err(),
        Some(NotReady::NoBoard)
    );
    // The board comes within the wait: the viewer gets its snapshot.
    let waiting = {
        let hub = hub.clone();
        tokio::spawn(async move {
            hub.subscribe_or_wait(None, Closer::detached(), Duration::from_secs(5))
                .await
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!waiting.is_finished());
    hub.reset(board(7));
    let stream = waiting
        .await
        .unwrap()
        .expect("subscribed once the board came");
    let mut w = Watcher {
        stream,
        reader: Reader::new(),
        closer: Closer::detached(),
        ended: false,
    };
    let events = w.events();
    assert_eq!(names(&events), ["snapshot", "status"]);
    assert_eq!(events[0].id.as_deref(), Some("7"));

    // No board within the wait: refused once it is over, not before.
    let empty = Hub::new(HubConfig::new(WhenLost::EndStreams));
    let started = Instant::now();
    let refused = empty
        .subscribe_or_wait(None, Closer::detached(), Duration::from_secs(5))
        .await;
    assert_eq!(refused.err(), Some(NotReady::NoBoard));
    assert_eq!(started.elapsed(), Duration::from_secs(5));

    // A hub whose source is lost refuses at once: there is no board coming
    // soon, and the viewer has other servers to try.
    hub.lost();
    let started = Instant::now();
    let lost = hub
        .subscribe_or_wait(None, Closer::detached(), Duration::from_secs(5))
        .await;
    assert_eq!(lost.err(), Some(NotReady::Lost));
    assert_eq!(started.elapsed(), Duration::ZERO);
}
