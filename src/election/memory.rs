//! An in-memory [`Transport`] between the driver [`Node`]s of one test: a
//! call is a method call on the other node, with [`LATENCY`] each way, so
//! the driver runs for real (its ticker, its tasks, its deadlines) on
//! tokio's paused clock. A member can be killed: calls to it then fail at
//! once, as a refused connection does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::bully::{Message, Reply};
use super::config::ElectionConfig;
use super::driver::Node;
use super::timesync::{Adjustment, Refusal};
use super::transport::Transport;

/// One way of a call, on the (paused) tokio clock.
pub(crate) const LATENCY: Duration = Duration::from_millis(1);

/// The nodes of one test, by uid. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct MemoryNet {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Weak: each node holds the network (in its transport), not the
    /// other way round.
    nodes: BTreeMap<u32, Weak<Node<MemoryTransport>>>,
    dead: BTreeSet<u32>,
}

/// Why an in-memory call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MemoryError {
    #[error("uid {0} is down")]
    Down(u32),
    #[error("adjustment refused: {0}")]
    Refused(#[from] Refusal),
}

/// One node's end of a [`MemoryNet`].
#[derive(Debug, Clone)]
pub(crate) struct MemoryTransport {
    uid: u32,
    net: MemoryNet,
}

impl MemoryNet {
    /// Adds a node built from `cfg`, reachable as `cfg.uid`.
    ///
    /// # Panics
    /// On an invalid `cfg` (a broken test).
    pub(crate) fn add(&self, cfg: ElectionConfig) -> Arc<Node<MemoryTransport>> {
        let uid = cfg.uid;
        let transport = MemoryTransport {
            uid,
            net: self.clone(),
        };
        let node = Node::with_transport(cfg, transport).expect("a valid test configuration");
        self.lock().nodes.insert(uid, Arc::downgrade(&node));
        node
    }

    /// From now on, calls to `uid` fail at once.
    pub(crate) fn kill(&self, uid: u32) {
        self.lock().dead.insert(uid);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn reach(&self, to: u32) -> Result<Arc<Node<MemoryTransport>>, MemoryError> {
        let inner = self.lock();
        if inner.dead.contains(&to) {
            return Err(MemoryError::Down(to));
        }
        inner
            .nodes
            .get(&to)
            .and_then(Weak::upgrade)
            .ok_or(MemoryError::Down(to))
    }
}

impl Transport for MemoryTransport {
    type Error = MemoryError;

    async fn send(&self, to: u32, message: Message) -> Result<Reply, MemoryError> {
        tokio::time::sleep(LATENCY).await;
        let reply = self.net.reach(to)?.receive(self.uid, message);
        tokio::time::sleep(LATENCY).await;
        Ok(reply)
    }

    async fn read_clock(&self, to: u32) -> Result<i64, MemoryError> {
        tokio::time::sleep(LATENCY).await;
        let time_us = self.net.reach(to)?.read_clock();
        tokio::time::sleep(LATENCY).await;
        Ok(time_us)
    }

    async fn adjust_clock(&self, to: u32, adjustment: Adjustment) -> Result<(), MemoryError> {
        tokio::time::sleep(LATENCY).await;
        self.net.reach(to)?.receive_adjustment(adjustment)?;
        tokio::time::sleep(LATENCY).await;
        Ok(())
    }
}
