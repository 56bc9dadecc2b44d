//! The live scoreboard for browsers: a page, and its changes as
//! server-sent events.
//!
//! - [`wire`]: what the stream carries (JSON), for every side;
//! - [`sse`]: writing and reading server-sent events;
//! - [`board`]: the scoreboard a hub holds;
//! - [`hub`]: viewers, their bounded queues, the ring they resume from;
//! - [`assets`]: the page, its script and style, embedded in the binary;
//! - [`routes`]: `GET /`, the assets and `GET /events` on a server.
//!
//! A front-end's hub is fed by its change-feed follower
//! (`frontend::web`); the balancer's by one upstream stream from a healthy
//! front-end, which it fans out to its own viewers (`balancer::web`).

pub mod assets;
pub mod board;
pub mod hub;
pub mod routes;
pub mod sse;
pub mod wire;

pub use board::Board;
pub use hub::{Hub, HubConfig, HubStats, WhenLost};
