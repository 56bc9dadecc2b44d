//! The server's registry of open connections, and the rule that keeps slow
//! or idle ones from starving new clients.
//!
//! Each connection is either *busy* (a request has arrived: its body is
//! being read, or it is being answered) or *waiting*, since some instant:
//! for its TLS handshake or its first request head (since it was accepted),
//! or for the next request of a keep-alive connection (since its last
//! response). A slowloris connection trickling a head is waiting since it
//! was accepted; a legitimate keep-alive connection waits only since its
//! last response, usually milliseconds ago. A request that is stalled on
//! the server's body budget counts as waiting too (since it stalled): it
//! holds no budget, and would be refused in a moment anyway.
//!
//! At a cap (all connections, or one client address's) a new connection is
//! not refused: a waiting connection is closed instead ("shed"). It has no
//! request in flight, so nothing is lost; a keep-alive client simply
//! reconnects. First shed is the connection that has waited longest without
//! ever completing a request (a slowloris, or a client that connected and
//! never spoke), and only when there is none, the keep-alive connection idle
//! longest: attackers that reconnect in bursts are always the newest
//! connections, and would otherwise shed a legitimate client's keep-alive
//! connection in the instant between two of its requests. Only when every
//! connection is busy is the new one turned away: at the global cap it waits
//! for a slot, at its address's cap it is refused.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::futures::Notified;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::route::StreamRefused;

/// A slot's state: shed by the registry (closing now).
const SHED: u64 = 0;
/// A slot's state: a request is being read or answered.
const BUSY: u64 = u64::MAX;
/// A slot's state: the connection carries a stream until it closes.
const STREAM: u64 = u64::MAX - 1;
/// Set in a waiting slot's state once the connection has completed a
/// request: idle keep-alive connections sort after all the others.
const IDLE: u64 = 1 << 62;
// Any other value: waiting since that many microseconds after the
// registry's epoch, plus one (so that it is never SHED), with IDLE set
// once the connection has been answered. The smallest value is shed first.

/// The open connections of one server. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Registry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    max_connections: usize,
    max_per_client: usize,
    max_streams: usize,
    max_streams_per_client: usize,
    /// Origin of the waiting-since timestamps.
    epoch: Instant,
    open: Mutex<Open>,
    /// Notified when a connection closes or starts waiting: what an accept
    /// that found every slot busy waits for.
    changed: Notify,
    /// The parent of every connection's close signal: cancelled when the
    /// server gives up on finishing in-flight requests.
    close_all: CancellationToken,
}

#[derive(Debug, Default)]
struct Open {
    next_id: u64,
    /// Every connection, streams included.
    slots: HashMap<u64, Arc<Slot>>,
    /// Connections that are not streams, per client.
    per_client: HashMap<IpAddr, usize>,
    /// Slots that are streams.
    streams: usize,
    streams_per_client: HashMap<IpAddr, usize>,
}

#[derive(Debug)]
struct Slot {
    /// The client's address, as [`client_key`] groups them.
    client: IpAddr,
    /// [`SHED`], [`BUSY`] or waiting since (see above).
    state: AtomicU64,
    /// Cancelled to close the connection.
    close: CancellationToken,
}

/// Why a new connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The server is at its cap and every connection is busy.
    Full,
    /// The client's address is at its cap and all of its connections are busy.
    ClientFull,
}

/// Groups client addresses for the per-client cap: an IPv4 address (or an
/// IPv4-mapped IPv6 one) by itself, an IPv6 address by its /64, which is
/// what one site or host is usually given.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

impl Registry {
    /// A registry that admits at most `max_connections` connections, and at
    /// most `max_per_client` from one client address (both at least 1), and
    /// lets at most `max_streams` of them be streams, `max_streams_per_client`
    /// from one address (zero: none).
    pub(crate) fn new(
        max_connections: usize,
        max_per_client: usize,
        max_streams: usize,
        max_streams_per_client: usize,
    ) -> Registry {
        Registry {
            inner: Arc::new(Inner {
                max_connections: max_connections.max(1),
                max_per_client: max_per_client.max(1),
                max_streams,
                max_streams_per_client,
                epoch: Instant::now(),
                open: Mutex::new(Open::default()),
                changed: Notify::new(),
                close_all: CancellationToken::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        // Nothing panics while holding the lock; if something did, the map
        // is still consistent enough to go on.
        self.inner.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> u64 {
        // 2^62 µs is 146,000 years: the time never reaches the IDLE bit.
        let micros = self.inner.epoch.elapsed().as_micros();
        u64::try_from(micros).unwrap_or(IDLE - 2).min(IDLE - 2) + 1
    }

    /// A future that completes at the next change (a connection closed or
    /// started waiting). Enable it before checking, so no change is missed.
    pub(crate) fn changed(&self) -> Notified<'_> {
        self.inner.changed.notified()
    }

    /// Admits a connection from `ip`, waiting since now, shedding the
    /// connection that has waited longest when a cap is reached.
    ///
    /// # Errors
    /// [`Refused`] when a cap is reached and no connection under it waits.
    pub(crate) fn admit(&self, ip: IpAddr) -> Result<Ticket, Refused> {
        let client = client_key(ip);
        let mut open = self.lock();
        if open.per_client.get(&client).copied().unwrap_or(0) >= self.inner.max_per_client
            && !self.shed_oldest(&mut open, Some(client))
        {
            return Err(Refused::ClientFull);
        }
        if open.slots.len() - open.streams >= self.inner.max_connections
            && !self.shed_oldest(&mut open, None)
        {
            return Err(Refused::Full);
        }
        let id = open.next_id;
        open.next_id += 1;
        let slot = Arc::new(Slot {
            client,
            state: AtomicU64::new(self.now()),
            close: self.inner.close_all.child_token(),
        });
        open.slots.insert(id, slot.clone());
        *open.per_client.entry(client).or_insert(0) += 1;
        Ok(Ticket {
            conn: Conn {
                registry: self.clone(),
                slot,
            },
            id,
        })
    }

    /// Sheds the connection that comes first in the order the module
    /// describes (of `client` only, if given). False when none is waiting.
    fn shed_oldest(&self, open: &mut Open, client: Option<IpAddr>) -> bool {
        // A connection may turn busy between the scan and the shed: the
        // compare-exchange then fails and the scan runs again, at most once
        // per connection.
        for _ in 0..=open.slots.len() {
            let oldest = open
                .slots
                .iter()
                .filter(|(_, s)| client.is_none_or(|c| s.client == c))
                .filter_map(|(id, s)| {
                    let state = s.state.load(Ordering::Acquire);
                    (state != BUSY && state != SHED && state != STREAM).then_some((state, *id))
                })
                .min();
            let Some((since, id)) = oldest else {
                return false;
            };
            let slot = open.slots.get(&id).cloned();
            let Some(slot) = slot else { return false };
            if slot
                .state
                .compare_exchange(since, SHED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                Self::remove(open, id);
                slot.close.cancel();
                return true;
            }
        }
        false
    }

    /// Sheds the connection that has waited longest, whoever it is from
    /// (to free a descriptor). False when none is waiting.
    pub(crate) fn shed_waiting_one(&self) -> bool {
        let mut open = self.lock();
        self.shed_oldest(&mut open, None)
    }

    /// Sheds every connection that is waiting (at shutdown: they have
    /// nothing to finish). Returns how many.
    pub(crate) fn shed_waiting(&self) -> usize {
        let mut open = self.lock();
        let mut shed = 0;
        while self.shed_oldest(&mut open, None) {
            shed += 1;
        }
        shed
    }

    /// Closes every connection, busy or not: the end of the shutdown grace.
    pub(crate) fn close_all(&self) {
        self.inner.close_all.cancel();
    }

    /// Connections admitted and not closed yet, streams included.
    pub(crate) fn len(&self) -> usize {
        self.lock().slots.len()
    }

    /// Streams open now.
    pub(crate) fn streams(&self) -> usize {
        self.lock().streams
    }

    fn remove(open: &mut Open, id: u64) {
        if let Some(slot) = open.slots.remove(&id) {
            if slot.state.load(Ordering::Acquire) == STREAM {
                open.streams -= 1;
                decrement(&mut open.streams_per_client, slot.client);
            } else {
                decrement(&mut open.per_client, slot.client);
            }
        }
    }
}

/// One less of `client` in `counts`, dropping the entry at zero.
fn decrement(counts: &mut HashMap<IpAddr, usize>, client: IpAddr) {
    if let Some(n) = counts.get_mut(&client) {
        *n -= 1;
        if *n == 0 {
            counts.remove(&client);
        }
    }
}

/// A connection's place in the registry, held by its task: dropping it
/// frees the place.
#[derive(Debug)]
pub(crate) struct Ticket {
    conn: Conn,
    id: u64,
}

impl Ticket {
    /// The handle the connection's requests use to say they are busy.
    pub(crate) fn conn(&self) -> Conn {
        self.conn.clone()
    }

    /// Completes when the registry closes this connection (shed, or the
    /// end of the shutdown grace).
    pub(crate) fn closed(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.conn.slot.close.cancelled()
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let registry = &self.conn.registry;
        Registry::remove(&mut registry.lock(), self.id);
        registry.inner.changed.notify_waiters();
    }
}

/// One connection's state, shared with its requests. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Conn {
    registry: Registry,
    slot: Arc<Slot>,
}

impl Conn {
    /// Marks the connection busy until the returned guard is dropped, when
    /// it starts waiting again. `None` when it was shed: it is closing, and
    /// the request is not to be served.
    pub(crate) fn busy(&self) -> Option<Busy> {
        let state = &self.slot.state;
        let mut current = state.load(Ordering::Acquire);
        loop {
            if current == SHED {
                return None;
            }
            match state.compare_exchange(current, BUSY, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(Busy { conn: self.clone() }),
                Err(now) => current = now,
            }
        }
    }
}

impl Conn {
    /// Makes this busy connection a stream, for as long as it stays open:
    /// never shed, and counted under the stream caps instead of the
    /// connection caps (see the module doc).
    ///
    /// # Errors
    /// At a stream cap, or when the connection was shed meanwhile.
    pub(crate) fn become_stream(&self) -> Result<(), StreamRefused> {
        let inner = &self.registry.inner;
        let mut open = self.registry.lock();
        let client = self.slot.client;
        if open.streams >= inner.max_streams {
            return Err(StreamRefused::Full);
        }
        let of_client = open.streams_per_client.get(&client).copied().unwrap_or(0);
        if of_client >= inner.max_streams_per_client {
            return Err(StreamRefused::ClientFull);
        }
        // Under the lock, so that a removal counts it where it is.
        self.slot
            .state
            .compare_exchange(BUSY, STREAM, Ordering::AcqRel, Ordering::Acquire)
            .map_err(|_| StreamRefused::Closing)?;
        open.streams += 1;
        *open.streams_per_client.entry(client).or_insert(0) += 1;
        decrement(&mut open.per_client, client);
        drop(open);
        // Its place under the connection caps is free now.
        inner.changed.notify_waiters();
        Ok(())
    }

    /// True once [`Conn::become_stream`] made it a stream.
    pub(crate) fn is_stream(&self) -> bool {
        self.slot.state.load(Ordering::Acquire) == STREAM
    }

    /// What closes this connection at once when cancelled.
    pub(crate) fn close_token(&self) -> CancellationToken {
        self.slot.close.clone()
    }

    /// Marks a busy connection as waiting (as one never answered, since
    /// now) until the returned guard is dropped: for a request stalled on
    /// the body budget, so that a new connection may shed it rather than a
    /// keep-alive connection that is only idle.
    pub(crate) fn stalled(&self) -> Stalled {
        let since = self.registry.now();
        let marked = self
            .slot
            .state
            .compare_exchange(BUSY, since, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if marked {
            self.registry.inner.changed.notify_waiters();
        }
        Stalled {
            conn: self.clone(),
            since: marked.then_some(since),
        }
    }
}

/// A request in progress on a connection (see [`Conn::busy`]).
#[derive(Debug)]
pub(crate) struct Busy {
    conn: Conn,
}

impl Drop for Busy {
    fn drop(&mut self) {
        let registry = &self.conn.registry;
        // A shed connection stays shed.
        let _ = self.conn.slot.state.compare_exchange(
            BUSY,
            IDLE | registry.now(),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        registry.inner.changed.notify_waiters();
    }
}

/// A busy connection's request stalled (see [`Conn::stalled`]); busy again
/// when dropped, unless it was shed meanwhile.
#[derive(Debug)]
pub(crate) struct Stalled {
    conn: Conn,
    /// The state it was marked with; `None` if it was not busy.
    since: Option<u64>,
}

impl Drop for Stalled {
    fn drop(&mut self) {
        if let Some(since) = self.since {
            let _ = self.conn.slot.state.compare_exchange(
                since,
                BUSY,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn is_closed(t: &Ticket) -> bool {
        t.conn.slot.close.is_cancelled()
    }

    #[test]
    fn at_the_cap_the_longest_waiting_connection_is_shed() {
        let r = Registry::new(3, 10, 0, 0);
        let a = r.admit(ip("10.0.0.1")).unwrap();
        let b = r.admit(ip("10.0.0.2")).unwrap();
        let c = r.admit(ip("10.0.0.3")).unwrap();
        // a is busy; b has waited longest of the others.
        let _a_busy = a.conn().busy().unwrap();
        let d = r.admit(ip("10.0.0.4")).unwrap();
        assert!(!is_closed(&a) && is_closed(&b) && !is_closed(&c) && !is_closed(&d));
        assert_eq!(r.len(), 3);
        // A shed connection's next request is not served.
        assert!(b.conn().busy().is_none());
        drop(b);
        assert_eq!(r.len(), 3, "dropping a shed ticket frees nothing twice");
    }

    #[test]
    fn a_connection_never_answered_goes_before_an_idle_keep_alive_one() {
        let r = Registry::new(3, 10, 0, 0);
        let served = r.admit(ip("10.0.0.1")).unwrap();
        drop(served.conn().busy().unwrap());
        // Connected after the other was answered, and silent since.
        let silent = r.admit(ip("10.0.0.2")).unwrap();
        let idle_later = r.admit(ip("10.0.0.3")).unwrap();
        drop(idle_later.conn().busy().unwrap());
        let new = r.admit(ip("10.0.0.4")).unwrap();
        assert!(is_closed(&silent) && !is_closed(&served) && !is_closed(&idle_later));
        // With no silent one left, the keep-alive connection idle longest.
        drop(new.conn().busy().unwrap());
        let _newer = r.admit(ip("10.0.0.5")).unwrap();
        assert!(is_closed(&served) && !is_closed(&idle_later));
    }

    #[test]
    fn when_all_are_busy_the_new_one_is_refused() {
        let r = Registry::new(1, 10, 0, 0);
        let a = r.admit(ip("10.0.0.1")).unwrap();
        let busy = a.conn().busy().unwrap();
        assert_eq!(r.admit(ip("10.0.0.2")).unwrap_err(), Refused::Full);
        drop(busy);
        assert!(r.admit(ip("10.0.0.2")).is_ok());
        assert!(is_closed(&a));
    }

    #[test]
    fn the_per_client_cap_sheds_only_that_clients_connections() {
        let r = Registry::new(10, 2, 0, 0);
        let other = r.admit(ip("10.0.0.9")).unwrap();
        let a1 = r.admit(ip("10.0.0.1")).unwrap();
        let a2 = r.admit(ip("10.0.0.1")).unwrap();
        let a3 = r.admit(ip("10.0.0.1")).unwrap();
        assert!(is_closed(&a1) && !is_closed(&a2) && !is_closed(&a3));
        assert!(
            !is_closed(&other),
            "another client's older connection stays"
        );
        let _b2 = a2.conn().busy().unwrap();
        let _b3 = a3.conn().busy().unwrap();
        assert_eq!(r.admit(ip("10.0.0.1")).unwrap_err(), Refused::ClientFull);
        assert!(r.admit(ip("10.0.0.8")).is_ok());
    }

    #[test]
    fn a_request_stalled_on_the_budget_may_be_shed_before_an_idle_connection() {
        let r = Registry::new(2, 10, 0, 0);
        let idle = r.admit(ip("10.0.0.1")).unwrap();
        drop(idle.conn().busy().unwrap());
        let stalled = r.admit(ip("10.0.0.2")).unwrap();
        let busy = stalled.conn().busy().unwrap();
        let stall = stalled.conn().stalled();
        let new = r.admit(ip("10.0.0.3")).unwrap();
        assert!(is_closed(&stalled) && !is_closed(&idle));
        // Shed while stalled: it does not come back busy, nor idle.
        drop(stall);
        drop(busy);
        assert!(stalled.conn().busy().is_none());
        // A stall that ended is busy again, and safe.
        let _new_busy = new.conn().busy().unwrap();
        drop(new.conn().stalled());
        let other = r.admit(ip("10.0.0.4")).unwrap();
        assert!(is_closed(&idle) && !is_closed(&new));
        let _other_busy = other.conn().busy().unwrap();
        assert_eq!(r.admit(ip("10.0.0.5")).unwrap_err(), Refused::Full);
    }

    #[test]
    fn streams_are_never_shed_and_count_under_their_own_caps() {
        let r = Registry::new(2, 2, 2, 1);
        let a = r.admit(ip("10.0.0.1")).unwrap();
        let _a_busy = a.conn().busy().unwrap();
        a.conn().become_stream().unwrap();
        // Its own address may carry no second stream...
        let b = r.admit(ip("10.0.0.1")).unwrap();
        let _b_busy = b.conn().busy().unwrap();
        assert_eq!(b.conn().become_stream(), Err(StreamRefused::ClientFull));
        // ...and the stream leaves the connection caps: two more fit.
        let c = r.admit(ip("10.0.0.2")).unwrap();
        let _c_busy = c.conn().busy().unwrap();
        c.conn().become_stream().unwrap();
        let d = r.admit(ip("10.0.0.3")).unwrap();
        let _d_busy = d.conn().busy().unwrap();
        assert_eq!(d.conn().become_stream(), Err(StreamRefused::Full));
        assert_eq!(r.streams(), 2);
        // At the connection cap with every connection busy, no stream is shed.
        assert_eq!(r.admit(ip("10.0.0.4")).unwrap_err(), Refused::Full);
        assert_eq!(r.shed_waiting(), 0);
        assert!(!is_closed(&a) && !is_closed(&c));
        // A stream's end frees its place.
        drop(c);
        assert_eq!(r.streams(), 1);
        drop(_d_busy);
        let e = r.admit(ip("10.0.0.5")).unwrap();
        let _e_busy = e.conn().busy().unwrap();
        e.conn().become_stream().unwrap();
    }

    #[test]
    fn ipv6_clients_are_grouped_by_their_64() {
        assert_eq!(client_key(ip("2001:db8::1")), client_key(ip("2001:db8::2")));
        assert_ne!(
            client_key(ip("2001:db8::1")),
            client_key(ip("2001:db8:0:1::1"))
        );
        assert_eq!(client_key(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
    }

    #[test]
    fn shutdown_sheds_the_waiting_and_closes_the_rest() {
        let r = Registry::new(10, 10, 0, 0);
        let a = r.admit(ip("10.0.0.1")).unwrap();
        let b = r.admit(ip("10.0.0.1")).unwrap();
        let _busy = b.conn().busy().unwrap();
        assert_eq!(r.shed_waiting(), 1);
        assert!(is_closed(&a) && !is_closed(&b));
        r.close_all();
        assert!(is_closed(&b));
    }
}
