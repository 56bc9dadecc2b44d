//! The Bully election with terms, as pure state: it takes the time and a
//! message (or a tick) and returns what to send. No I/O, no clock, no
//! randomness; [`super::driver`] does the sending.
//!
//! Every election carries a term. A member's term only grows; a message from
//! a newer term demotes a coordinator of an older one, and an announcement
//! from an older term is refused (the refusal carries the newer term, which
//! demotes the sender). A candidate only ever runs in terms congruent to its
//! own uid modulo the group size (see `Bully::next_term`), so no two members
//! can run in, let alone win, the same term, even when messages are lost.
//!
//! Every call is a request with a reply, which carries the replier's view
//! (term, coordinator) and a [`Verdict`]: `Election` is answered with
//! [`Verdict::Answer`] (the Bully "OK": alive and higher), `Coordinator` with
//! [`Verdict::Accept`] or [`Verdict::Refuse`], `Heartbeat` with
//! [`Verdict::Coordinating`] or [`Verdict::NotCoordinating`].

pub use super::config::BullyConfig;

/// What a member is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Member,
    /// Sent `Election` to the higher uids and waits.
    Candidate,
    Coordinator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Candidate => "candidate",
            Role::Coordinator => "coordinator",
        }
    }
}

/// A request from one member to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    Election { term: u64 },
    Coordinator { term: u64 },
    Heartbeat { term: u64 },
}

/// A message to send, and to whom. (Not `Send`: that name is the marker
/// trait's.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outbound {
    pub to: u32,
    pub message: Message,
}

/// Something worth telling the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    ElectionStarted { term: u64, reason: &'static str },
    Elected { term: u64 },
    Following { coordinator: u32, term: u64 },
    SteppedDown { term: u64 },
}

/// The output of one step.
#[derive(Debug, Default, PartialEq)]
pub struct Output {
    pub sends: Vec<Outbound>,
    pub notes: Vec<Note>,
}

/// The reply to any request: the replier's view, and its verdict on the
/// request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// The replier's term, after it handled the request: a newer one
    /// demotes the sender.
    pub term: u64,
    /// The coordinator the replier knows, if any.
    pub coordinator: Option<u32>,
    pub verdict: Verdict,
}

/// What the replier says to the request it got. Each request has its two
/// verdicts; a verdict of another request's kind (only a broken peer sends
/// one) reads as the negative one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// To `Election`: the replier has a higher uid and is alive, so the
    /// candidate stops and waits for an announcement (the Bully "OK").
    Answer,
    /// To `Election` from a higher uid: nothing to say (a candidate only
    /// asks higher uids, so this is a stale or crossed message).
    NoAnswer,
    /// To `Coordinator`: the replier follows the sender.
    Accept,
    /// To `Coordinator`: refused, for an older term, or because the replier
    /// is higher and alive (it then runs an election of its own).
    Refuse,
    /// To `Heartbeat`: the replier is the coordinator.
    Coordinating,
    /// To `Heartbeat`: the replier is not (or no longer) the coordinator.
    NotCoordinating,
}

impl Verdict {
    /// The verdict's wire name, in `election.message` replies.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Answer => "answer",
            Verdict::NoAnswer => "no_answer",
            Verdict::Accept => "accept",
            Verdict::Refuse => "refuse",
            Verdict::Coordinating => "coordinating",
            Verdict::NotCoordinating => "not_coordinating",
        }
    }

    /// The verdict named `name` on the wire, if any.
    pub fn from_name(name: &str) -> Option<Verdict> {
        [
            Verdict::Answer,
            Verdict::NoAnswer,
            Verdict::Accept,
            Verdict::Refuse,
            Verdict::Coordinating,
            Verdict::NotCoordinating,
        ]
        .into_iter()
        .find(|v| v.as_str() == name)
    }
}

/// One member's election state.
#[derive(Debug, Clone)]
pub struct Bully {
    cfg: BullyConfig,
    role: Role,
    term: u64,
    coordinator: Option<u32>,
    /// When the coordinator last proved alive (members).
    last_heard_ms: u64,
    /// When to heartbeat (members) or re-announce (coordinator) next.
    next_beat_ms: u64,
    /// When the current election started, and whether a higher uid answered.
    election: Option<(u64, bool)>,
}

impl Bully {
    /// A member that knows no coordinator yet: its first tick starts an
    /// election, which is also how a returning higher uid takes over.
    pub fn new(cfg: BullyConfig) -> Self {
        Bully {
            cfg,
            role: Role::Member,
            term: 0,
            coordinator: None,
            last_heard_ms: 0,
            next_beat_ms: 0,
            election: None,
        }
    }

    pub fn uid(&self) -> u32 {
        self.cfg.uid
    }
    pub fn config(&self) -> &BullyConfig {
        &self.cfg
    }
    pub fn role(&self) -> Role {
        self.role
    }
    pub fn term(&self) -> u64 {
        self.term
    }
    pub fn coordinator(&self) -> Option<u32> {
        self.coordinator
    }
    pub fn is_coordinator(&self) -> bool {
        self.role == Role::Coordinator
    }
    /// The term this member coordinates, if it does (what the time service
    /// tags its adjustments with).
    pub fn coordinating_term(&self) -> Option<u64> {
        self.is_coordinator().then_some(self.term)
    }

    fn reply(&self, verdict: Verdict) -> Reply {
        Reply {
            term: self.term,
            coordinator: self.coordinator,
            verdict,
        }
    }

    /// Adopts a newer term; a coordinator of an older term steps down.
    fn observe_term(&mut self, term: u64, out: &mut Output) {
        if term > self.term {
            self.term = term;
            if self.role == Role::Coordinator {
                self.role = Role::Member;
                self.coordinator = None;
                out.notes.push(Note::SteppedDown { term });
            }
        }
    }

    /// True when the current term is one of this uid's (see [`Bully::next_term`]).
    fn owns_term(&self) -> bool {
        self.term % self.stride() == u64::from(self.cfg.uid)
    }

    /// The number of uids terms are dealt among: the highest uid plus one.
    fn stride(&self) -> u64 {
        u64::from(
            self.cfg
                .peers
                .iter()
                .copied()
                .chain([self.cfg.uid])
                .max()
                .unwrap_or(0),
        ) + 1
    }

    /// The smallest term above ours that belongs to this uid: terms are
    /// dealt out round-robin by uid, so two candidates never share one.
    fn next_term(&self) -> u64 {
        let stride = self.stride();
        let base = self.term + 1;
        let uid = u64::from(self.cfg.uid);
        base + (uid + stride - base % stride) % stride
    }

    fn start_election(&mut self, now: u64, reason: &'static str, out: &mut Output) {
        self.term = self.next_term();
        self.role = Role::Candidate;
        self.coordinator = None;
        self.election = Some((now, false));
        out.notes.push(Note::ElectionStarted {
            term: self.term,
            reason,
        });
        let higher: Vec<u32> = self
            .cfg
            .peers
            .iter()
            .copied()
            .filter(|p| *p > self.cfg.uid)
            .collect();
        if higher.is_empty() {
            self.become_coordinator(now, out);
            return;
        }
        for to in higher {
            out.sends.push(Outbound {
                to,
                message: Message::Election { term: self.term },
            });
        }
    }

    fn become_coordinator(&mut self, now: u64, out: &mut Output) {
        self.role = Role::Coordinator;
        self.coordinator = Some(self.cfg.uid);
        self.election = None;
        self.next_beat_ms = now + self.cfg.heartbeat_interval_ms;
        out.notes.push(Note::Elected { term: self.term });
        self.announce(out);
    }

    fn announce(&self, out: &mut Output) {
        for &to in &self.cfg.peers {
            out.sends.push(Outbound {
                to,
                message: Message::Coordinator { term: self.term },
            });
        }
    }

    fn follow(&mut self, now: u64, coordinator: u32, out: &mut Output) {
        if self.coordinator != Some(coordinator) || self.role != Role::Member {
            out.notes.push(Note::Following {
                coordinator,
                term: self.term,
            });
        }
        self.role = Role::Member;
        self.coordinator = Some(coordinator);
        self.election = None;
        self.last_heard_ms = now;
        self.next_beat_ms = now + self.cfg.heartbeat_interval_ms;
    }

    /// Time passed: timeouts, heartbeats, re-announcements.
    pub fn tick(&mut self, now: u64) -> Output {
        let mut out = Output::default();
        match (self.role, self.election) {
            (Role::Candidate, Some((started, answered))) => {
                if !answered && now >= started + self.cfg.answer_timeout_ms {
                    if self.owns_term() {
                        self.become_coordinator(now, &mut out);
                    } else {
                        // A newer term reached us while we waited: it is
                        // another uid's to win; run again in one of ours.
                        self.start_election(now, "a newer term was seen while electing", &mut out);
                    }
                } else if answered
                    && now >= started + self.cfg.answer_timeout_ms + self.cfg.announce_timeout_ms
                {
                    self.start_election(now, "no coordinator announced", &mut out);
                }
            }
            (Role::Candidate, None) => {
                self.start_election(now, "candidate without election", &mut out)
            }
            (Role::Coordinator, _) => {
                if now >= self.next_beat_ms {
                    self.next_beat_ms = now + self.cfg.heartbeat_interval_ms;
                    self.announce(&mut out);
                }
            }
            (Role::Member, _) => match self.coordinator {
                None => self.start_election(now, "no coordinator known", &mut out),
                Some(_)
                    if now.saturating_sub(self.last_heard_ms) > self.cfg.heartbeat_timeout_ms =>
                {
                    self.start_election(now, "coordinator stopped answering", &mut out)
                }
                Some(c) => {
                    if now >= self.next_beat_ms {
                        self.next_beat_ms = now + self.cfg.heartbeat_interval_ms;
                        out.sends.push(Outbound {
                            to: c,
                            message: Message::Heartbeat { term: self.term },
                        });
                    }
                }
            },
        }
        out
    }

    /// A request arrived; returns the reply and what to do besides.
    pub fn on_message(&mut self, now: u64, from: u32, message: Message) -> (Reply, Output) {
        let mut out = Output::default();
        let reply = match message {
            Message::Election { term } => {
                self.observe_term(term, &mut out);
                if from < self.cfg.uid {
                    match self.role {
                        // Already in charge: tell the asker directly.
                        Role::Coordinator => out.sends.push(Outbound {
                            to: from,
                            message: Message::Coordinator { term: self.term },
                        }),
                        Role::Candidate => {}
                        Role::Member => {
                            self.start_election(now, "a lower uid started an election", &mut out)
                        }
                    }
                    self.reply(Verdict::Answer)
                } else {
                    self.reply(Verdict::NoAnswer)
                }
            }
            Message::Coordinator { term } => {
                if term < self.term
                    || (term == self.term && self.is_coordinator() && from < self.cfg.uid)
                {
                    // An older term, or a lower uid in ours: refuse; our reply
                    // carries our term, which demotes the sender.
                    if !self.is_coordinator() && from < self.cfg.uid {
                        self.start_election(now, "a lower uid claims to coordinate", &mut out);
                    }
                    self.reply(Verdict::Refuse)
                } else {
                    self.observe_term(term, &mut out);
                    if from < self.cfg.uid {
                        // We are alive and higher: bully it.
                        self.start_election(now, "a lower uid claims to coordinate", &mut out);
                        self.reply(Verdict::Refuse)
                    } else {
                        self.follow(now, from, &mut out);
                        self.reply(Verdict::Accept)
                    }
                }
            }
            Message::Heartbeat { term } => {
                self.observe_term(term, &mut out);
                self.reply(if self.is_coordinator() {
                    Verdict::Coordinating
                } else {
                    Verdict::NotCoordinating
                })
            }
        };
        (reply, out)
    }

    /// The reply to a request we sent.
    pub fn on_reply(&mut self, now: u64, from: u32, sent: Message, reply: Reply) -> Output {
        let mut out = Output::default();
        self.observe_term(reply.term, &mut out);
        match sent {
            Message::Election { .. } => {
                if reply.verdict == Verdict::Answer && from > self.cfg.uid {
                    if let (Role::Candidate, Some((started, _))) = (self.role, self.election) {
                        self.election = Some((started, true));
                    }
                }
            }
            Message::Heartbeat { .. } => {
                if self.role == Role::Member && self.coordinator == Some(from) {
                    if reply.verdict == Verdict::Coordinating {
                        self.last_heard_ms = now;
                    } else {
                        self.start_election(now, "the coordinator says it is not", &mut out);
                    }
                }
            }
            Message::Coordinator { .. } => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    //! Elections on the simulated network of [`crate::election::sim`], which
    //! can drop messages, cut links and freeze members; it checks after
    //! every step that no term has two coordinators.
    use super::*;
    use crate::election::sim::Network;

    /// Property: the terms a member runs in are its own (congruent to its
    /// uid modulo the group size), the next one is the smallest above the
    /// current term, and no more than a group size above it.
    #[test]
    fn terms_belong_to_one_uid_each() {
        let mut b = Bully::new(BullyConfig::new(1, vec![0, 2]));
        for term in [0, 1, 2, 3, 4, 5] {
            b.term = term;
            let next = b.next_term();
            assert!(
                next > term && next % 3 == 1 && next <= term + 3,
                "{term} -> {next}"
            );
        }
    }

    /// Property: from a cold start, the highest uid coordinates and every
    /// member names it in one term.
    #[test]
    fn the_highest_live_uid_wins_and_everyone_agrees() {
        let mut net = Network::new(&[0, 1, 2]);
        net.run(2_000);
        let (c, _) = net.agreement().expect("agreement");
        assert_eq!(c, 2);
    }

    /// Property: when the coordinator dies, the highest live uid takes over
    /// in a newer term.
    #[test]
    fn a_dead_coordinator_is_replaced_with_a_newer_term() {
        let mut net = Network::new(&[0, 1, 2, 3]);
        net.run(2_000);
        let (_, term) = net.agreement().unwrap();
        net.kill(3);
        net.run(3_000);
        let (c, new_term) = net.agreement().expect("agreement after failover");
        assert_eq!(c, 2);
        assert!(new_term > term);
    }

    /// Property: a higher uid that comes back (with fresh state, as a
    /// restarted process) takes over from the lower one that replaced it.
    #[test]
    fn a_returning_higher_uid_takes_over() {
        let mut net = Network::new(&[0, 1, 2]);
        net.kill(2);
        net.run(2_000);
        assert_eq!(net.agreement().unwrap().0, 1);
        net.restart(2);
        net.run(2_000);
        assert_eq!(net.agreement().unwrap().0, 2);
    }

    /// Property: a coordinator frozen long enough to be replaced, then
    /// resumed, still believing it coordinates its old term, never leaves
    /// two coordinators of one term, and the group ends with it in charge of
    /// a newer term.
    #[test]
    fn a_frozen_coordinator_that_resumes_does_not_leave_two() {
        let mut net = Network::new(&[0, 1, 2]);
        net.run(2_000);
        let (_, t1) = net.agreement().unwrap();
        // Frozen: keeps its state (still believes it coordinates term t1).
        net.freeze(2);
        net.run(3_000);
        let (c, t2) = net.agreement().unwrap();
        assert_eq!(c, 1);
        assert!(t2 > t1);
        net.resume(2);
        net.run(3_000);
        let (c, t3) = net.agreement().expect("agreement after resume");
        assert_eq!(c, 2);
        assert!(t3 > t2);
    }

    /// Property: a link cut between a member and the coordinator, then
    /// healed, ends with one coordinator, the highest uid.
    #[test]
    fn a_cut_link_heals_into_one_coordinator() {
        let mut net = Network::new(&[0, 1, 2]);
        net.run(2_000);
        net.cut(0, 2);
        net.run(4_000);
        net.heal();
        net.run(4_000);
        assert_eq!(net.agreement().expect("agreement after heal").0, 2);
    }

    /// Property: with a fifth of all messages lost, no term ever has two
    /// coordinators, and once losses stop the group converges on the
    /// highest uid.
    #[test]
    fn lossy_network_still_converges_and_never_doubles_a_term() {
        let mut net = Network::new(&[0, 1, 2, 3, 4]);
        net.set_drop_rate(0.2);
        net.run(10_000);
        net.set_drop_rate(0.0);
        net.run(4_000);
        assert_eq!(net.agreement().expect("agreement").0, 4);
    }

    /// Property: a member isolated from everyone runs on alone (it becomes
    /// the coordinator of its own side), and when the partition heals the
    /// whole group agrees on the highest uid again.
    #[test]
    fn an_isolated_member_rejoins_under_the_highest_uid() {
        let mut net = Network::new(&[0, 1, 2]);
        net.run(2_000);
        net.isolate(0);
        net.run(3_000);
        assert!(net.bully(0).is_coordinator(), "{:?}", net.bully(0));
        net.heal();
        net.run(4_000);
        assert_eq!(net.agreement().expect("agreement after heal").0, 2);
    }

    /// Property: a candidate that hears of a newer term while it waits for
    /// answers does not win that term, which belongs to another uid (it used
    /// to: it adopted the term, stayed a candidate, and won it at the
    /// timeout); it runs again in a term of its own.
    #[test]
    fn a_candidate_never_wins_another_uids_term() {
        let mut b0 = Bully::new(BullyConfig::new(0, vec![1, 2]));
        let mut b1 = Bully::new(BullyConfig::new(1, vec![0, 2]));
        // Uid 2 is dead. Uid 1 runs in its term 1; uid 0 in its term 3.
        let _ = b1.tick(0);
        let _ = b0.tick(0);
        assert_eq!((b1.term(), b0.term()), (1, 3));
        // Uid 1 gets uid 0's Election and answers it, but the answer is lost.
        let (reply, _) = b1.on_message(10, 0, Message::Election { term: 3 });
        assert_eq!(reply.verdict, Verdict::Answer);
        // Neither hears from anyone higher: both time out.
        let _ = b0.tick(1_000);
        let _ = b1.tick(1_000);
        assert!(b0.is_coordinator() && b0.term() == 3);
        assert!(
            !(b1.is_coordinator() && b1.term() == 3),
            "uids 0 and 1 both coordinate term 3"
        );
        // Uid 1 ran again in a term of its own, and wins that one.
        assert_eq!(b1.role(), Role::Candidate);
        let _ = b1.tick(2_000);
        assert!(b1.is_coordinator() && b1.term() == 4, "{b1:?}");
    }
}
