//! Podium: a live results service, a cluster of small services that speak
//! XML-RPC over HTTP/1.1 (see `DESIGN.md`).
//!
//! - [`rpc`]: the XML-RPC codec, server and client every process shares.
//! - [`scoreboard`]: the domain (roster, medals, old text formats).
//! - [`store`]: durable storage behind a trait; SQLite today.
//! - [`db`]: `podium-db`, the single writer and the change feed.
//! - [`frontend`]: `podium-frontend`, the coherent cache, the public API and push.
//! - [`api`]: the public API table front-ends serve and the balancer forwards.
//! - [`balancer`]: `podium-balancer`, random choice among healthy front-ends.
//! - [`feeder`], [`tablet`]: the publishing and the following clients.
//! - [`bench`]: `podium-bench`, load, push fan-out and staleness measurements.
//! - [`secret`], [`clock`]: secrets handling and the cluster clock.
//! - [`cli`]: what every binary does alike at its edge (logging, runtime, signals).
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
pub mod rpc;
pub mod scoreboard;
pub mod secret;
pub mod shutdown;
pub mod store;
pub mod tablet;
