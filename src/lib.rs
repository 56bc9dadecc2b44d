//! Podium: a live results service, a cluster of small services that speak
//! XML-RPC over HTTP/1.1 (`docs/architecture.md` tells the whole story).
//!
//! The layers, bottom up:
//! - [`rpc`]: a generic XML-RPC-over-HTTP layer (codec, server, client),
//!   with no knowledge of Podium.
//! - [`cluster`]: Podium's envelope over it between members (secret,
//!   vector clock, request ids, forwarded addresses).
//! - [`scoreboard`]: the domain (roster, medals, tallies, scores, ranking,
//!   the old text formats). Pure.
//! - [`api`]: the public API, written once: methods, typed requests, the
//!   typed client, callbacks, fault codes.
//! - [`store`]: durable storage behind a trait; SQLite today.
//! - [`election`]: the Bully election, Berkeley time sync and vector
//!   clocks (pure cores and their driver); [`clock`] is the cluster clock.
//! - [`cache`]: cache coherence (the versioned cache and the change-feed
//!   follower).
//!
//! The services, one per binary in `src/bin/`:
//! - [`db`]: `podium-db`, the single writer and the change feed.
//! - [`frontend`]: `podium-frontend`, the public API from a coherent cache,
//!   and push.
//! - [`balancer`]: `podium-balancer`, random choice among healthy front-ends.
//! - [`feeder`], [`tablet`]: the publishing and the following clients.
//! - [`bench`](mod@bench): `podium-bench`, the load generator (load, push fan-out,
//!   staleness).
//!
//! And what they share at their edges: [`shutdown`] (one way to stop),
//! [`secret`] (secrets handling), [`guesses`] (how often a secret may be
//! tried), [`cli`] (flags, logging, runtime, signals).
#![deny(missing_debug_implementations)]

pub mod api;
pub mod balancer;
pub mod bench;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod db;
pub mod election;
pub mod feeder;
pub mod frontend;
pub mod guesses;
pub mod push;
pub mod rpc;
pub mod scoreboard;
pub mod secret;
pub mod shutdown;
pub mod store;
pub mod tablet;
pub mod web;
