//! XML-RPC over HTTP/1.1: a generic layer, with no knowledge of Podium, that
//! every Podium process speaks.
//!
//! Read a request top to bottom: [`server`] accepts the connection and the HTTP
//! request and hands its body to a [`Handler`]; for [`Methods`], [`codec`]
//! turns bytes into a [`MethodCall`], [`methods`] dispatches it through one
//! visible table to a handler, and the reply goes back through [`codec`].
//! [`client`] is the same path in reverse for outgoing calls; an application
//! adds its own headers to both sides (a [`CallHook`] on the client, a
//! wrapping [`Handler`] on the server). [`tls`] makes both sides speak HTTPS
//! when asked to. Beside calls, a server may serve plain HTTP routes (a page,
//! a stream of events) through [`route`], and a client may follow a streamed
//! `GET` reply ([`Client::get`]).

mod budget;
pub mod client;
pub mod codec;
mod config;
mod connections;
pub mod fault;
pub mod handler;
mod http;
pub mod methods;
pub mod pool;
mod replies;
pub mod route;
pub mod server;
pub mod tls;
pub mod value;

pub use client::{CallHook, Client, ClientConfig, ClientError};
pub use codec::{Limits, MethodCall, ParseError};
pub use fault::Fault;
pub use handler::{CallContext, Handler, Request, Response};
pub use methods::{Methods, Params};
pub use route::{RouteBody, RouteRequest, Routes};
pub use server::{serve, serve_with_routes, ServerConfig};
pub use value::{DateTime, Struct, Value};
