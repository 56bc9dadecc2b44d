//! XML-RPC over HTTP/1.1: the layer every Podium process speaks.
//!
//! Read a request top to bottom: [`server`] accepts the connection and the HTTP
//! request, [`codec`] turns bytes into a [`MethodCall`], [`methods`] dispatches
//! it through one visible table to a handler, and the reply goes back through
//! [`codec`]. [`client`] is the same path in reverse for outgoing calls.

pub mod client;
pub mod codec;
pub mod fault;
mod http;
pub mod methods;
pub mod pool;
pub mod server;
pub mod value;

pub use client::{Client, ClientConfig, ClientError};
pub use codec::{Limits, MethodCall, ParseError};
pub use fault::Fault;
pub use methods::{CallContext, Methods, Params};
pub use server::{serve, ServerConfig};
pub use value::{DateTime, Struct, Value};
