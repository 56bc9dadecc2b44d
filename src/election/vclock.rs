//! Vector clocks: one counter per uid, ticked on every event a process
//! handles and merged from every message it receives, so the causal order
//! of events on different processes can be checked afterwards.

use std::cmp::Ordering;
use std::sync::{Arc, Mutex};

/// Most entries a vector clock holds: one per uid, and uids run from 0 to
/// [`MAX_UID`](crate::election::config::MAX_UID) (63). The group is the db
/// and its front-ends, a handful; Bully elections message every higher uid,
/// so a group of more than a few dozen would not be Podium's anyway. The
/// bound keeps a header under [`MAX_HEADER_BYTES`] and every stored clock
/// under a kilobyte.
pub const MAX_ENTRIES: usize = 64;

/// The most a counter may reach: 2^53 − 1, the largest integer a double
/// (and so JSON, JavaScript, or a client that reads XML-RPC numbers as
/// doubles) holds exactly. No process handles that many requests (at a
/// million a second, 285 years), so a larger entry is always an error or an
/// attack, never a count.
pub const MAX_COUNT: i64 = (1 << 53) - 1;

/// Longest header form of a clock: [`MAX_ENTRIES`] entries of 16 digits
/// ([`MAX_COUNT`] has 16) and the commas between them.
pub const MAX_HEADER_BYTES: usize = MAX_ENTRIES * 17 - 1;

/// Why a vector clock from outside was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VclockError {
    #[error("{0} bytes, more than the {MAX_HEADER_BYTES} a clock of {MAX_ENTRIES} entries needs")]
    TooLong(usize),
    #[error("{0} entries, more than {MAX_ENTRIES} (one per uid)")]
    TooManyEntries(usize),
    #[error("entry {index} ({shown:?}) is not a decimal count")]
    NotACount { index: usize, shown: String },
    #[error("entry {index} is {shown}, above the most a counter may reach ({MAX_COUNT})")]
    TooLarge { index: usize, shown: String },
}

/// A vector clock; entry `i` counts the events of uid `i`. Shorter vectors
/// read as zero-padded.
///
/// Invariant: at most [`MAX_ENTRIES`] entries, each in `0..=MAX_COUNT`. A
/// clock from outside is checked once, when it is parsed
/// ([`VectorClock::from_header`], [`VectorClock::try_from_vec`]); merging
/// two such clocks and ticking one (which saturates at [`MAX_COUNT`]) keep
/// it, so nothing out of range is ever sent or stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VectorClock(Vec<i64>);

impl VectorClock {
    /// # Errors
    /// More than [`MAX_ENTRIES`] entries, or an entry out of `0..=MAX_COUNT`.
    pub fn try_from_vec(entries: Vec<i64>) -> Result<Self, VclockError> {
        if entries.len() > MAX_ENTRIES {
            return Err(VclockError::TooManyEntries(entries.len()));
        }
        for (index, &entry) in entries.iter().enumerate() {
            if entry < 0 {
                return Err(VclockError::NotACount {
                    index,
                    shown: entry.to_string(),
                });
            }
            if entry > MAX_COUNT {
                return Err(VclockError::TooLarge {
                    index,
                    shown: entry.to_string(),
                });
            }
        }
        Ok(VectorClock(entries))
    }

    pub fn as_slice(&self) -> &[i64] {
        &self.0
    }

    /// Counts one event of `uid`. Saturates at [`MAX_COUNT`] (never reached
    /// by counting); a uid beyond [`MAX_ENTRIES`] (which configuration
    /// refuses) counts nothing rather than grow the clock past its bound.
    pub fn tick(&mut self, uid: usize) {
        if uid >= MAX_ENTRIES {
            return;
        }
        if self.0.len() <= uid {
            self.0.resize(uid + 1, 0);
        }
        self.0[uid] = self.0[uid].saturating_add(1).min(MAX_COUNT);
    }

    /// Takes the entry-wise maximum with `other`.
    pub fn merge(&mut self, other: &VectorClock) {
        if self.0.len() < other.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        for (mine, theirs) in self.0.iter_mut().zip(&other.0) {
            *mine = (*mine).max(*theirs);
        }
    }

    /// The causal order of two clocks: `Less` when `a` happened before `b`,
    /// `None` when they are concurrent.
    pub fn compare(a: &[i64], b: &[i64]) -> Option<Ordering> {
        let n = a.len().max(b.len());
        let (mut less, mut greater) = (false, false);
        for i in 0..n {
            let (x, y) = (
                a.get(i).copied().unwrap_or(0),
                b.get(i).copied().unwrap_or(0),
            );
            less |= x < y;
            greater |= x > y;
        }
        match (less, greater) {
            (false, false) => Some(Ordering::Equal),
            (true, false) => Some(Ordering::Less),
            (false, true) => Some(Ordering::Greater),
            (true, true) => None,
        }
    }

    /// True when `a` happened before `b`.
    pub fn happened_before(a: &[i64], b: &[i64]) -> bool {
        Self::compare(a, b) == Some(Ordering::Less)
    }

    /// `1,0,3`: the header form piggybacked on internal calls (an empty
    /// clock is the empty string).
    pub fn to_header(&self) -> String {
        self.0
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Parses [`VectorClock::to_header`]'s form: decimal counts separated
    /// by commas (spaces around them allowed), at most [`MAX_ENTRIES`],
    /// each at most [`MAX_COUNT`]. The header comes from the network, so
    /// its length is checked before anything is split.
    ///
    /// # Errors
    /// What is wrong with it, for the fault that refuses the call.
    pub fn from_header(s: &str) -> Result<VectorClock, VclockError> {
        if s.len() > MAX_HEADER_BYTES {
            return Err(VclockError::TooLong(s.len()));
        }
        if s.trim().is_empty() {
            return Ok(VectorClock::default());
        }
        let mut entries = Vec::with_capacity(8);
        for (index, part) in s.split(',').enumerate() {
            if index >= MAX_ENTRIES {
                return Err(VclockError::TooManyEntries(s.split(',').count()));
            }
            let part = part.trim();
            let shown = || part.chars().take(24).collect::<String>();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(VclockError::NotACount {
                    index,
                    shown: shown(),
                });
            }
            match part.parse::<i64>() {
                Ok(v) if v <= MAX_COUNT => entries.push(v),
                _ => {
                    return Err(VclockError::TooLarge {
                        index,
                        shown: shown(),
                    })
                }
            }
        }
        Ok(VectorClock(entries))
    }
}

/// A process's own vector clock, shared by its server and clients.
#[derive(Debug, Clone)]
pub struct SharedClock {
    uid: usize,
    clock: Arc<Mutex<VectorClock>>,
}

impl SharedClock {
    pub fn new(uid: usize) -> Self {
        SharedClock {
            uid,
            clock: Arc::default(),
        }
    }

    pub fn uid(&self) -> usize {
        self.uid
    }

    fn with<T>(&self, f: impl FnOnce(&mut VectorClock) -> T) -> T {
        f(&mut self.clock.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// A message arrived (maybe carrying the sender's clock) and is handled:
    /// merge, then tick.
    pub fn receive(&self, remote: Option<&VectorClock>) -> VectorClock {
        self.with(|c| {
            if let Some(r) = remote {
                c.merge(r);
            }
            c.tick(self.uid);
            c.clone()
        })
    }

    /// A message is sent: tick, and return the clock to attach.
    pub fn send(&self) -> VectorClock {
        self.with(|c| {
            c.tick(self.uid);
            c.clone()
        })
    }

    /// A reply arrived: merge it without counting an event.
    pub fn merge(&self, remote: &VectorClock) {
        self.with(|c| c.merge(remote));
    }

    pub fn snapshot(&self) -> VectorClock {
        self.with(|c| c.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_and_happened_before() {
        let mut a = VectorClock::default();
        a.tick(0);
        let mut b = VectorClock::default();
        b.tick(1);
        assert_eq!(VectorClock::compare(a.as_slice(), b.as_slice()), None);
        b.merge(&a);
        b.tick(1);
        assert_eq!(b.as_slice(), &[1, 2]);
        assert!(VectorClock::happened_before(a.as_slice(), b.as_slice()));
        assert!(!VectorClock::happened_before(b.as_slice(), a.as_slice()));
        assert_eq!(VectorClock::compare(&[1, 0], &[1]), Some(Ordering::Equal));
    }

    #[test]
    fn messages_carry_causality() {
        // p0 sends to p1, p1 replies-then-sends to p2: p0's send precedes p2's receive.
        let (p0, p1, p2) = (
            SharedClock::new(0),
            SharedClock::new(1),
            SharedClock::new(2),
        );
        let m1 = p0.send();
        p1.receive(Some(&m1));
        let m2 = p1.send();
        let at_p2 = p2.receive(Some(&m2));
        assert!(VectorClock::happened_before(
            m1.as_slice(),
            at_p2.as_slice()
        ));
        let independent = p0.send();
        assert_eq!(
            VectorClock::compare(independent.as_slice(), at_p2.as_slice()),
            None
        );
    }

    #[test]
    fn header_round_trip_and_refusals() {
        let c = VectorClock::try_from_vec(vec![3, 0, 7]).unwrap();
        assert_eq!(VectorClock::from_header(&c.to_header()), Ok(c));
        assert_eq!(
            VectorClock::from_header(" 1, 2 ").unwrap().as_slice(),
            &[1, 2]
        );
        assert_eq!(VectorClock::from_header(""), Ok(VectorClock::default()));
        let max = VectorClock::try_from_vec(vec![MAX_COUNT; MAX_ENTRIES]).unwrap();
        assert!(max.to_header().len() <= MAX_HEADER_BYTES);
        assert_eq!(VectorClock::from_header(&max.to_header()), Ok(max));
        for (header, want) in [
            (
                "1,x".to_owned(),
                VclockError::NotACount {
                    index: 1,
                    shown: "x".into(),
                },
            ),
            (
                "-1".to_owned(),
                VclockError::NotACount {
                    index: 0,
                    shown: "-1".into(),
                },
            ),
            (
                "1,,2".to_owned(),
                VclockError::NotACount {
                    index: 1,
                    shown: "".into(),
                },
            ),
            (
                "+1".to_owned(),
                VclockError::NotACount {
                    index: 0,
                    shown: "+1".into(),
                },
            ),
            (
                format!("0,{}", i64::MAX),
                VclockError::TooLarge {
                    index: 1,
                    shown: i64::MAX.to_string(),
                },
            ),
            (
                (MAX_COUNT + 1).to_string(),
                VclockError::TooLarge {
                    index: 0,
                    shown: (MAX_COUNT + 1).to_string(),
                },
            ),
            (
                "99999999999999999999999".to_owned(),
                VclockError::TooLarge {
                    index: 0,
                    shown: "99999999999999999999999".into(),
                },
            ),
            (
                vec!["0"; MAX_ENTRIES + 1].join(","),
                VclockError::TooManyEntries(MAX_ENTRIES + 1),
            ),
            (
                "1,".repeat(5000),
                VclockError::TooLong("1,".repeat(5000).len()),
            ),
        ] {
            assert_eq!(VectorClock::from_header(&header), Err(want), "{header:.40}");
        }
        assert!(VectorClock::try_from_vec(vec![0; MAX_ENTRIES + 1]).is_err());
        assert!(VectorClock::try_from_vec(vec![-1]).is_err());
        assert!(VectorClock::try_from_vec(vec![MAX_COUNT + 1]).is_err());
    }

    #[test]
    fn ticks_saturate_and_stay_in_bounds() {
        let mut c = VectorClock::try_from_vec(vec![MAX_COUNT]).unwrap();
        c.tick(0);
        assert_eq!(c.as_slice(), &[MAX_COUNT]);
        c.tick(MAX_ENTRIES);
        assert_eq!(c.as_slice().len(), 1, "a uid out of range grows nothing");
        c.tick(MAX_ENTRIES - 1);
        assert_eq!(c.as_slice().len(), MAX_ENTRIES);
        assert_eq!(VectorClock::try_from_vec(c.as_slice().to_vec()), Ok(c));
    }
}
