//! The scoreboard as a stream hub holds it: every team's medals and every
//! event's latest score, each with the version that set it, and the
//! version the whole board is at. Changes apply idempotently (a row only
//! ever moves to a newer version), so a change seen twice, or one already
//! folded into a loaded row, changes nothing.

use super::wire::{ChangeEvent, EventRow, Snapshot, TeamRow};

/// See the module doc.
#[derive(Debug, Clone, PartialEq)]
pub struct Board {
    /// Every change up to this version is in the board.
    version: i64,
    teams: Vec<TeamRow>,
    events: Vec<EventRow>,
}

impl Board {
    /// A board at `version` with these rows (roster order).
    pub fn new(version: i64, teams: Vec<TeamRow>, events: Vec<EventRow>) -> Board {
        let mut board = Board {
            version,
            teams: Vec::with_capacity(teams.len()),
            events: Vec::with_capacity(events.len()),
        };
        for row in teams {
            board.put_team(row);
        }
        for row in events {
            board.put_event(row);
        }
        board
    }

    /// The board a snapshot describes.
    pub fn from_snapshot(snapshot: Snapshot) -> Board {
        Board::new(snapshot.version, snapshot.teams, snapshot.events)
    }

    pub fn version(&self) -> i64 {
        self.version
    }

    /// Moves the board to `version` (changes up to it that viewers are not
    /// shown, subscriptions, came through).
    pub fn advance(&mut self, version: i64) {
        self.version = self.version.max(version);
    }

    /// Applies one change.
    pub fn apply(&mut self, change: &ChangeEvent) {
        if let Some(row) = &change.tally {
            self.put_team(row.clone());
        }
        if let Some(row) = &change.score {
            self.put_event(row.clone());
        }
        if let Some(team) = &change.team {
            self.put_team(TeamRow {
                team: team.clone(),
                gold: 0,
                silver: 0,
                bronze: 0,
                version: 0,
                updated: 0.0,
            });
        }
        if let Some(event) = &change.event {
            self.put_event(EventRow {
                event: event.clone(),
                score: String::new(),
                version: 0,
                updated: 0.0,
            });
        }
        self.advance(change.version);
    }

    /// `row` for its team, unless the board has a newer (or the same) one.
    pub fn put_team(&mut self, row: TeamRow) {
        match self
            .teams
            .iter_mut()
            .find(|t| t.team.eq_ignore_ascii_case(&row.team))
        {
            Some(have) if row.version > have.version => *have = row,
            Some(_) => {}
            None => self.teams.push(row),
        }
    }

    /// `row` for its event, unless the board has a newer (or the same) one.
    pub fn put_event(&mut self, row: EventRow) {
        match self
            .events
            .iter_mut()
            .find(|e| e.event.eq_ignore_ascii_case(&row.event))
        {
            Some(have) if row.version > have.version => *have = row,
            Some(_) => {}
            None => self.events.push(row),
        }
    }

    pub fn to_snapshot(&self) -> Snapshot {
        Snapshot {
            version: self.version,
            teams: self.teams.clone(),
            events: self.events.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gaul(gold: i64, version: i64) -> ChangeEvent {
        ChangeEvent {
            version,
            time: 0.0,
            tally: Some(TeamRow {
                team: "Gaul".into(),
                gold,
                silver: 0,
                bronze: 0,
                version,
                updated: 0.0,
            }),
            score: None,
            team: None,
            event: None,
        }
    }

    #[test]
    fn rows_only_move_forward_and_new_names_join() {
        let mut board = Board::new(0, Vec::new(), Vec::new());
        board.apply(&gaul(2, 5));
        board.apply(&gaul(1, 4)); // older: ignored
        board.apply(&gaul(2, 5)); // again: nothing
        let snap = board.to_snapshot();
        assert_eq!(snap.version, 5);
        assert_eq!(snap.teams.len(), 1);
        assert_eq!(snap.teams[0].gold, 2);
        let mut joined = gaul(0, 6);
        joined.tally = None;
        joined.team = Some("Egypt".into());
        board.apply(&joined);
        assert_eq!(board.to_snapshot().teams[1].team, "Egypt");
        assert_eq!(board.version(), 6);
    }
}
