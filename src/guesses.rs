//! The guess limiter: how often anyone may try a secret (the feeder
//! password, the cluster secret) and be told whether it was right.
//!
//! Three bounds, so that guessing stays slow however it is spread:
//!
//! 1. **Per address.** Each client address (an IPv6 client by its /64,
//!    which one host may hold whole) has a token bucket of wrong guesses:
//!    a burst of 5, then one more every 2 s. An address out of tokens is
//!    refused without its guess being compared, and told how long to wait.
//! 2. **Memory.** The addresses are kept in a bounded table with strict
//!    least-recently-used eviction: a new address always gets a record
//!    (evicting the one unused longest), so any number of addresses never
//!    switches the limit off, and an address that keeps guessing is never
//!    the one evicted.
//! 3. **All addresses together.** A global bucket of wrong guesses (a burst
//!    of 100, then 5 a second) bounds a guess spread over many addresses.
//!    While it is empty, an address with a wrong guess in the last ten
//!    minutes is refused without comparing, and an address that has not
//!    been guessing is compared only after a penalty delay (1 s): a spread
//!    attack pays a second per address per guess, while a feeder with the
//!    right password from an address of its own is slowed, never locked
//!    out. Penalised guesses are bounded too: one at a time per address, at
//!    most 4 at a time per network (an IPv4 /24, an IPv6 /48), and 1,024 in
//!    all, so addresses rotated within one network (an IPv6 /48 holds 65,536
//!    /64s) earn at most 4 guesses a second between them, and a feeder on
//!    another network is not held up by them. An address that gave the
//!    right secret in the last hour skips the delay; those addresses are
//!    kept in a table of their own, which guesses cannot evict.
//!
//! Every guess takes its tokens when it is admitted, before it is compared
//! (a right answer gives them back), so guesses sent at once from one
//! address are held to its burst like guesses sent one after another.
//!
//! A caller sharing an address with a guesser shares its bucket: that is
//! the price of not being able to tell them apart. For the cluster secret,
//! a connection that already gave the right secret is not limited (see
//! [`crate::cluster::Envelope`]), so members on a guesser's host keep
//! working over the connections they hold.

use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::Duration;

use lru::LruCache;
use tokio::time::Instant;

/// The limits; [`GuessLimits::default`] is what every server uses.
#[derive(Debug, Clone, Copy)]
pub struct GuessLimits {
    /// Wrong guesses an address may make in a burst...
    pub burst: f64,
    /// ...and how many more it earns per second.
    pub refill_per_sec: f64,
    /// Wrong guesses all addresses together may make in a burst...
    pub global_burst: f64,
    /// ...and how many more they earn per second.
    pub global_refill_per_sec: f64,
    /// Addresses tracked at most.
    pub tracked: usize,
    /// How long an address that has not been guessing waits before its
    /// guess is compared, while the global bucket is empty.
    pub penalty: Duration,
    /// How long a right answer keeps an address trusted (no penalty).
    pub trust: Duration,
    /// How long a wrong guess marks an address as guessing (refused while
    /// all addresses together are over their burst).
    pub memory: Duration,
    /// Penalised guesses at once from one network (IPv4 /24, IPv6 /48).
    pub penalized_per_network: u32,
    /// Penalised guesses at once in all.
    pub penalized_max: usize,
    /// Addresses remembered as trusted at most.
    pub trusted: usize,
}

impl Default for GuessLimits {
    fn default() -> Self {
        GuessLimits {
            burst: 5.0,
            refill_per_sec: 0.5,
            global_burst: 100.0,
            global_refill_per_sec: 5.0,
            tracked: 65_536,
            penalty: Duration::from_secs(1),
            trust: Duration::from_secs(3_600),
            memory: Duration::from_secs(600),
            penalized_per_network: 4,
            penalized_max: 1_024,
            trusted: 4_096,
        }
    }
}

/// The limits this process was told at start ([`GuessLimits::install`]).
static CONFIGURED: std::sync::OnceLock<GuessLimits> = std::sync::OnceLock::new();

impl GuessLimits {
    /// Makes `self` what [`GuessLimits::configured`] returns, for every
    /// limiter made after; only the first call counts. A binary calls it
    /// once at start, from its flags.
    pub fn install(self) {
        let _ = CONFIGURED.set(self);
    }

    /// The installed limits, else the defaults.
    pub fn configured() -> GuessLimits {
        CONFIGURED.get().copied().unwrap_or_default()
    }
}

/// Where a guess came from, as the limiter counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    V4(Ipv4Addr),
    /// The /64 prefix.
    V6(u64),
    /// A call with no address (in-process): one shared bucket.
    Unknown,
}

/// The network an address is in, for bounding penalised guesses: an
/// IPv4 /24, an IPv6 /48 (what one site is commonly given).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Network {
    V4(u32),
    V6(u64),
    Unknown,
}

impl Key {
    fn network(self) -> Network {
        match self {
            Key::V4(v4) => Network::V4(v4.to_bits() >> 8),
            Key::V6(prefix) => Network::V6(prefix >> 16),
            Key::Unknown => Network::Unknown,
        }
    }

    fn of(client: Option<IpAddr>) -> Key {
        match client {
            Some(IpAddr::V4(v4)) => Key::V4(v4),
            Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => Key::V4(v4),
                None => Key::V6((v6.to_bits() >> 64) as u64),
            },
            None => Key::Unknown,
        }
    }
}

/// A token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: burst,
            at: now,
        }
    }

    /// Its tokens at `now`, refilled.
    fn tokens(&self, now: Instant, burst: f64, refill: f64) -> f64 {
        (self.tokens + now.saturating_duration_since(self.at).as_secs_f64() * refill).min(burst)
    }

    /// How long until it holds one token, from `tokens` now.
    fn wait(tokens: f64, refill: f64) -> Duration {
        Duration::try_from_secs_f64(((1.0 - tokens) / refill).max(0.0)).unwrap_or(Duration::MAX)
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    wrong: Bucket,
    /// The last wrong guess from this address.
    wrong_at: Option<Instant>,
    /// A penalised guess from this address is waiting.
    penalized: bool,
}

#[derive(Debug)]
struct State {
    addresses: LruCache<Key, Record>,
    /// Addresses that gave the right answer, and when last.
    trusted: LruCache<Key, Instant>,
    global: Bucket,
    /// Penalised guesses waiting, by network; no entry at zero.
    penalized: std::collections::HashMap<Network, u32>,
    penalized_total: usize,
}

/// What the limiter says before a guess is compared.
enum Admit {
    Now,
    /// After the penalty; the guess holds a penalised place till then.
    Penalized(Duration),
}

/// Limits guesses of one secret. See the module doc.
#[derive(Debug)]
pub struct GuessLimiter {
    limits: GuessLimits,
    state: Mutex<State>,
}

/// A guess refused without being compared: wait this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused(pub Duration);

/// Gives a penalised place back, also when the waiting call is dropped.
struct PenaltyPlace<'a> {
    limiter: &'a GuessLimiter,
    key: Key,
}

impl Drop for PenaltyPlace<'_> {
    fn drop(&mut self) {
        let mut state = self.limiter.lock();
        let network = self.key.network();
        if let Some(n) = state.penalized.get_mut(&network) {
            *n -= 1;
            if *n == 0 {
                state.penalized.remove(&network);
            }
        }
        state.penalized_total = state.penalized_total.saturating_sub(1);
        if let Some(r) = state.addresses.peek_mut(&self.key) {
            r.penalized = false;
        }
    }
}

impl GuessLimiter {
    pub fn new(limits: GuessLimits) -> GuessLimiter {
        let size = |n: usize| NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN);
        GuessLimiter {
            limits,
            state: Mutex::new(State {
                addresses: LruCache::new(size(limits.tracked)),
                trusted: LruCache::new(size(limits.trusted)),
                global: Bucket::full(limits.global_burst, Instant::now()),
                penalized: std::collections::HashMap::new(),
                penalized_total: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Judges a guess from `client`: `is_right` compares it (in constant
    /// time), unless the limits refuse it first; a penalty delay may come
    /// before.
    ///
    /// # Errors
    /// [`Refused`], with how long to wait, when the guess was not compared.
    pub async fn check(
        &self,
        client: Option<IpAddr>,
        is_right: impl FnOnce() -> bool,
    ) -> Result<bool, Refused> {
        let key = Key::of(client);
        let (admitted, global_was_empty) = self.admit(key)?;
        let _place = match admitted {
            Admit::Now => None,
            Admit::Penalized(delay) => {
                let place = PenaltyPlace { limiter: self, key };
                tokio::time::sleep(delay).await;
                Some(place)
            }
        };
        let right = is_right();
        self.record(key, right, global_was_empty);
        Ok(right)
    }

    /// Admits a guess and takes its tokens, or refuses it. Also says
    /// whether the global bucket was empty.
    fn admit(&self, key: Key) -> Result<(Admit, bool), Refused> {
        let l = &self.limits;
        let now = Instant::now();
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut record = state.addresses.get(&key).copied().unwrap_or(Record {
            wrong: Bucket::full(l.burst, now),
            wrong_at: None,
            penalized: false,
        });
        let tokens = record.wrong.tokens(now, l.burst, l.refill_per_sec);
        if tokens < 1.0 {
            return Err(Refused(Bucket::wait(tokens, l.refill_per_sec)));
        }
        let global = state
            .global
            .tokens(now, l.global_burst, l.global_refill_per_sec);
        let lately = |at: Option<Instant>, window: Duration| {
            at.is_some_and(|at| now.saturating_duration_since(at) < window)
        };
        let admit = if global >= 1.0 {
            state.global = Bucket {
                tokens: global - 1.0,
                at: now,
            };
            Admit::Now
        } else if lately(record.wrong_at, l.memory) {
            // Guessing is spread over many addresses, this one among them.
            return Err(Refused(Bucket::wait(global, l.global_refill_per_sec)));
        } else if lately(state.trusted.get(&key).copied(), l.trust) {
            Admit::Now
        } else {
            let network = key.network();
            let in_network = state.penalized.get(&network).copied().unwrap_or(0);
            if record.penalized
                || in_network >= l.penalized_per_network
                || state.penalized_total >= l.penalized_max
            {
                return Err(Refused(l.penalty));
            }
            state.penalized.insert(network, in_network + 1);
            state.penalized_total += 1;
            record.penalized = true;
            Admit::Penalized(l.penalty)
        };
        record.wrong = Bucket {
            tokens: tokens - 1.0,
            at: now,
        };
        state.addresses.put(key, record);
        Ok((admit, global < 1.0))
    }

    /// Settles an admitted guess: a right answer gives its tokens back and
    /// trusts the address; a wrong one marks it as guessing.
    fn record(&self, key: Key, right: bool, global_was_empty: bool) {
        let l = &self.limits;
        let now = Instant::now();
        let mut guard = self.lock();
        let state = &mut *guard;
        if right {
            state.trusted.put(key, now);
            if let Some(r) = state.addresses.get_mut(&key) {
                let tokens = r.wrong.tokens(now, l.burst, l.refill_per_sec);
                r.wrong = Bucket {
                    tokens: (tokens + 1.0).min(l.burst),
                    at: now,
                };
            }
            if !global_was_empty {
                let global = state
                    .global
                    .tokens(now, l.global_burst, l.global_refill_per_sec);
                state.global = Bucket {
                    tokens: (global + 1.0).min(l.global_burst),
                    at: now,
                };
            }
            return;
        }
        let record = state.addresses.get_or_insert_mut(key, || Record {
            wrong: Bucket {
                tokens: 0.0,
                at: now,
            },
            wrong_at: None,
            penalized: false,
        });
        record.wrong_at = Some(now);
        if global_was_empty {
            // One guess per address while the global bucket is empty.
            let tokens = record.wrong.tokens(now, l.burst, l.refill_per_sec);
            record.wrong = Bucket {
                tokens: tokens.min(0.0),
                at: now,
            };
        }
    }

    /// Addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.lock().addresses.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;
    use std::sync::Arc;

    fn v4(i: u32) -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)))
    }

    async fn guess(l: &GuessLimiter, client: Option<IpAddr>, right: bool) -> Result<bool, Refused> {
        l.check(client, || right).await
    }

    #[tokio::test(start_paused = true)]
    async fn an_address_gets_its_burst_then_one_guess_per_refill() {
        let l = GuessLimiter::new(GuessLimits::default());
        for _ in 0..5 {
            assert_eq!(guess(&l, v4(1), false).await, Ok(false));
        }
        let Err(Refused(wait)) = guess(&l, v4(1), false).await else {
            panic!("a sixth guess in a burst was compared");
        };
        assert_eq!(wait, Duration::from_secs(2));
        // Refused, the right password is not even compared...
        assert!(guess(&l, v4(1), true).await.is_err());
        // ...until the bucket refills; other addresses are not affected.
        assert_eq!(guess(&l, v4(2), true).await, Ok(true));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(guess(&l, v4(1), true).await, Ok(true));
    }

    #[tokio::test(start_paused = true)]
    async fn many_addresses_never_switch_the_limit_off() {
        // Property: however many addresses are tracked, a guessing address
        // stays limited (the old limiter stopped tracking at 10,000).
        let l = GuessLimiter::new(GuessLimits {
            global_burst: f64::MAX,
            tracked: 1_000,
            ..GuessLimits::default()
        });
        for _ in 0..5 {
            assert_eq!(guess(&l, v4(0), false).await, Ok(false));
        }
        for i in 1..=5_000 {
            assert_eq!(guess(&l, v4(i), false).await, Ok(false), "address {i}");
            // The guesser keeps guessing: it is never the one evicted.
            if i % 500 == 0 {
                assert!(guess(&l, v4(0), false).await.is_err(), "after {i}");
            }
        }
        assert_eq!(l.tracked(), 1_000, "memory is bounded");
    }

    #[tokio::test(start_paused = true)]
    async fn a_spread_guess_is_bounded_and_a_fresh_right_answer_still_gets_in() {
        // A slow global refill, so that the penalties below do not refill it.
        let limits = GuessLimits {
            global_refill_per_sec: 0.01,
            ..GuessLimits::default()
        };
        let l = GuessLimiter::new(limits);
        // 100 addresses use up the global burst.
        for i in 0..100 {
            assert_eq!(guess(&l, v4(i), false).await, Ok(false));
        }
        // Their second guesses are refused without being compared.
        for i in 0..100 {
            assert!(guess(&l, v4(i), false).await.is_err(), "address {i}");
        }
        // A fresh address is compared, after the penalty.
        let start = Instant::now();
        assert_eq!(guess(&l, v4(500), true).await, Ok(true));
        assert_eq!(start.elapsed(), limits.penalty);
        // And from then on it is trusted: no penalty.
        let start = Instant::now();
        assert_eq!(guess(&l, v4(500), true).await, Ok(true));
        assert_eq!(start.elapsed(), Duration::ZERO);
        // A fresh guesser gets one guess, then is refused.
        assert_eq!(guess(&l, v4(501), false).await, Ok(false));
        assert!(guess(&l, v4(501), false).await.is_err());
    }

    /// A limiter whose global bucket is empty and stays so.
    async fn spent() -> GuessLimiter {
        let l = GuessLimiter::new(GuessLimits {
            global_burst: 1.0,
            global_refill_per_sec: 1e-6,
            tracked: 100,
            ..GuessLimits::default()
        });
        assert_eq!(
            guess(&l, Some("192.0.2.1".parse().unwrap()), false).await,
            Ok(false)
        );
        l
    }

    #[tokio::test(start_paused = true)]
    async fn guesses_sent_at_once_are_held_like_guesses_in_turn() {
        let l = Arc::new(spent().await);
        let address = Some("198.51.100.7".parse().unwrap());
        let mut all = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let l = l.clone();
            all.spawn(async move { l.check(address, || false).await });
        }
        let answers = all.join_all().await;
        let compared = answers.iter().filter(|a| a.is_ok()).count();
        assert_eq!(compared, 1, "one penalised guess at a time: {answers:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn addresses_rotated_in_one_network_share_its_penalised_places() {
        let l = Arc::new(spent().await);
        let mut all = tokio::task::JoinSet::new();
        for i in 0..50u8 {
            let l = l.clone();
            let address = Some(IpAddr::from([203, 0, 113, i]));
            all.spawn(async move { l.check(address, || false).await });
        }
        // A feeder on another network is not held up by them.
        let feeder = Some("198.51.100.9".parse().unwrap());
        assert_eq!(guess(&l, feeder, true).await, Ok(true));
        let answers = all.join_all().await;
        let compared = answers.iter().filter(|a| a.is_ok()).count();
        assert_eq!(compared, 4, "{answers:?}");
        // The same from IPv6 /64s rotated within one /48.
        let mut all = tokio::task::JoinSet::new();
        for i in 0..50u16 {
            let l = l.clone();
            let address = Some(IpAddr::from([0x2001, 0xdb8, 7, i, 0, 0, 0, 1]));
            all.spawn(async move { l.check(address, || false).await });
        }
        let compared = all.join_all().await.iter().filter(|a| a.is_ok()).count();
        assert_eq!(compared, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn penalised_guesses_are_bounded_in_all() {
        let l = GuessLimiter::new(GuessLimits {
            global_burst: 1.0,
            global_refill_per_sec: 1e-6,
            penalized_max: 3,
            ..GuessLimits::default()
        });
        assert_eq!(guess(&l, v4(0), false).await, Ok(false));
        let l = Arc::new(l);
        let mut all = tokio::task::JoinSet::new();
        // Each on a network of its own: only the total bounds them.
        for i in 1..=10u32 {
            let l = l.clone();
            all.spawn(async move { l.check(v4(i * 256), || false).await });
        }
        let compared = all.join_all().await.iter().filter(|a| a.is_ok()).count();
        assert_eq!(compared, 3);
        // The places are given back once those guesses are done.
        assert_eq!(guess(&l, v4(9_999 * 256), true).await, Ok(true));
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_addresses_does_not_evict_the_trusted() {
        let l = spent().await;
        let member = Some("198.51.100.1".parse().unwrap());
        assert_eq!(guess(&l, member, true).await, Ok(true));
        for i in 0..1_000u32 {
            let _ = guess(
                &l,
                Some(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i * 256))),
                false,
            )
            .await;
        }
        assert!(l.tracked() <= 100);
        let start = Instant::now();
        assert_eq!(guess(&l, member, true).await, Ok(true));
        assert_eq!(start.elapsed(), Duration::ZERO, "still trusted: no penalty");
    }

    #[test]
    fn an_ipv6_client_counts_by_its_64_and_a_mapped_v4_as_v4() {
        let a: Ipv6Addr = "fd00:1:2:3::1".parse().unwrap();
        let b: Ipv6Addr = "fd00:1:2:3:ffff::9".parse().unwrap();
        let c: Ipv6Addr = "fd00:1:2:4::1".parse().unwrap();
        assert_eq!(Key::of(Some(a.into())), Key::of(Some(b.into())));
        assert_ne!(Key::of(Some(a.into())), Key::of(Some(c.into())));
        let mapped: Ipv6Addr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(Key::of(Some(mapped.into())), Key::of(v4(1)));
    }
}
