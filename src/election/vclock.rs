//! Vector clocks: one counter per uid, ticked on every event a process
//! handles and merged from every message it receives, so the causal order
//! of events on different processes can be checked afterwards.

use std::cmp::Ordering;
use std::sync::{Arc, Mutex};

/// A vector clock; entry `i` counts the events of uid `i`. Shorter vectors
/// read as zero-padded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VectorClock(Vec<i64>);

impl VectorClock {
    pub fn from_vec(entries: Vec<i64>) -> Self {
        VectorClock(entries)
    }

    pub fn as_slice(&self) -> &[i64] {
        &self.0
    }

    /// Counts one event of `uid`.
    pub fn tick(&mut self, uid: usize) {
        if self.0.len() <= uid {
            self.0.resize(uid + 1, 0);
        }
        self.0[uid] += 1;
    }

    /// Takes the entry-wise maximum with `other`.
    pub fn merge(&mut self, other: &[i64]) {
        if self.0.len() < other.len() {
            self.0.resize(other.len(), 0);
        }
        for (mine, theirs) in self.0.iter_mut().zip(other) {
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

    /// `1,0,3`: the header form piggybacked on internal calls.
    pub fn to_header(&self) -> String {
        self.0
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Parses [`VectorClock::to_header`]'s form; `None` if malformed or
    /// implausibly long (the header comes from the network).
    pub fn from_header(s: &str) -> Option<Vec<i64>> {
        if s.len() > 4096 {
            return None;
        }
        s.split(',')
            .map(|n| n.trim().parse::<i64>().ok().filter(|v| *v >= 0))
            .collect()
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
    pub fn receive(&self, remote: Option<&[i64]>) -> VectorClock {
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
    pub fn merge(&self, remote: &[i64]) {
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
        b.merge(a.as_slice());
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
        p1.receive(Some(m1.as_slice()));
        let m2 = p1.send();
        let at_p2 = p2.receive(Some(m2.as_slice()));
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
        let c = VectorClock::from_vec(vec![3, 0, 7]);
        assert_eq!(
            VectorClock::from_header(&c.to_header()),
            Some(vec![3, 0, 7])
        );
        assert_eq!(VectorClock::from_header("1,x"), None);
        assert_eq!(VectorClock::from_header("-1"), None);
        assert_eq!(VectorClock::from_header(&"1,".repeat(5000)), None);
    }
}
