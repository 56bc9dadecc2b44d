//! The node's RPC surface: the internal election and clock methods (cluster
//! secret required) and the public `cluster.status`.

use std::sync::Arc;

use super::*;

impl<T: Transport> Node<T> {
    /// `cluster.status`: this member's view.
    pub fn status(&self) -> Value {
        let (role, coordinator, term) = {
            let b = self.bully();
            (b.role(), b.coordinator(), b.term())
        };
        let health = self
            .health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let alive_within = self.cfg.heartbeat_timeout * 2;
        let peers = self
            .cfg
            .peers
            .iter()
            .map(|(uid, url)| {
                let h = health.get(uid).cloned().unwrap_or_default();
                let age = h.last_ok.map(|t| t.elapsed());
                Value::structure([
                    ("uid", Value::Int((*uid).into())),
                    ("url", Value::from(url.as_str())),
                    (
                        "healthy",
                        Value::Bool(age.is_some_and(|a| a <= alive_within)),
                    ),
                    (
                        "last_seen_ms",
                        Value::Int(age.map_or(-1, |a| a.as_millis() as i64)),
                    ),
                    ("last_error", Value::from(h.last_error.unwrap_or_default())),
                ])
            })
            .collect();
        let vclock = self.cfg.vclock.snapshot();
        Value::structure([
            ("uid", Value::Int(self.cfg.uid.into())),
            (
                "role",
                Value::from(if role == Role::Coordinator {
                    "coordinator"
                } else {
                    "member"
                }),
            ),
            ("state", Value::from(role.as_str())),
            ("coordinator", Value::Int(coordinator.map_or(-1, i64::from))),
            ("term", Value::Int(term as i64)),
            (
                "offset_ms",
                Value::Double(self.cfg.clock.offset_us() as f64 / 1000.0),
            ),
            (
                "target_offset_ms",
                Value::Double(self.cfg.clock.target_offset_us() as f64 / 1000.0),
            ),
            ("clock_us", Value::Int(self.cfg.clock.now_us())),
            (
                "vector_clock",
                Value::Array(vclock.as_slice().iter().map(|c| Value::Int(*c)).collect()),
            ),
            ("peers", Value::Array(peers)),
        ])
    }

    /// Adds `election.message`, `clock.read`, `clock.adjust` (internal) and
    /// `cluster.status` (public) to `methods`.
    pub fn add_methods(self: &Arc<Self>, methods: &mut Methods) {
        let node = self.clone();
        crate::cluster::add_internal(
            methods,
            &node,
            "election.message",
            &["struct", "int", "string", "int"],
            "Bully election message: (from_uid, \"election\"|\"coordinator\"|\"heartbeat\", term).",
            |node, p, _| async move {
                let from = transport::sender_from_params(&p)?;
                if !node.cfg.peers.contains_key(&from) {
                    return Err(Fault::invalid_params(format!("uid {from} is not a peer")));
                }
                let message = transport::message_from_params(&p)?;
                Ok(transport::reply_to_value(&node.receive(from, message)))
            },
        );
        crate::cluster::add_internal(
            methods,
            &node,
            "clock.read",
            &["struct"],
            "This member's cluster clock, microseconds since the epoch.",
            |node, p, _| async move {
                p.expect_count(0, 0)?;
                Ok(Value::structure([(
                    "time_us",
                    Value::Int(node.read_clock()),
                )]))
            },
        );
        crate::cluster::add_internal(
            methods,
            &node,
            "clock.adjust",
            &["boolean", "int", "int"],
            "Slews this member's cluster clock by delta_us, on behalf of the coordinator of term.",
            |node, p, _| async move {
                let adjustment = transport::adjustment_from_params(&p)?;
                node.receive_adjustment(adjustment)
                    .map_err(|r| transport::refusal_to_fault(&r))?;
                Ok(Value::Bool(true))
            },
        );
        methods.add("cluster.status", &["struct"],
            "This member's view of the cluster: {uid, role, coordinator, term, offset_ms, vector_clock, peers}.",
            move |p, _| {
                let node = node.clone();
                async move {
                    p.expect_count(0, 0)?;
                    Ok(node.status())
                }
            });
    }
}
