//! Podium: a live results service, a cluster of small services that speak
//! XML-RPC over HTTP/1.1 (see `DESIGN.md`).
//!
//! - [`rpc`]: the XML-RPC codec, server and client every process shares.
//! - [`cli`]: what every binary does alike at its edge (logging, runtime, signals).
#![deny(missing_debug_implementations)]

pub mod cli;
pub mod rpc;
