//! What front-ends and the db tell each other about push, on the wire: a
//! member's [`MemberReport`] rides on every change-feed poll; the db's
//! [`View`] comes back with every batch; [`Progress`] is everything a new
//! owner needs to resume (`db.push_progress`).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::ownership::{Report, Views};
use crate::rpc::{Fault, Value};
use crate::scoreboard::{get_int, get_str};

/// Most tablets a report lists one by one; past it, the report claims less
/// (its position drops to the least delivered of the rest), which can cost
/// duplicates at a takeover but never a lost change.
pub const MAX_LISTED: usize = 2_000;
/// Most endpoints one member reports.
pub const MAX_ENDPOINTS: usize = 32;

/// How a member follows the feed: push-mode members are preferred as push
/// owners (they learn of a change within milliseconds, pull-mode ones only
/// at their next poll).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedMode {
    Push,
    Pull,
}

/// What a member says of itself with a poll.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberReport {
    pub uid: u32,
    pub mode: FeedMode,
    /// The longest the member lets pass between two polls, milliseconds:
    /// past it (and a grace), the db counts the member gone.
    pub poll_ms: u64,
    pub report: Report,
    /// The cluster's endpoints this member knows of: its own (as bound) and
    /// the balancers calls came through. No push callback may name one.
    pub endpoints: Vec<SocketAddr>,
}

/// The owner set the db currently publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub number: u64,
    /// The members that push, sorted.
    pub owners: Vec<u32>,
}

/// What a new owner needs to resume: the current view, the recent ones,
/// and every member's last report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    pub view: Option<u64>,
    pub views: Views,
    pub reports: BTreeMap<u32, Report>,
}

fn pairs(map: &BTreeMap<String, i64>) -> Value {
    Value::Array(
        map.iter()
            .map(|(url, v)| Value::Array(vec![Value::from(url.as_str()), Value::Int(*v)]))
            .collect(),
    )
}

fn from_pairs(v: Option<&Value>) -> Result<BTreeMap<String, i64>, Fault> {
    let Some(items) = v else {
        return Ok(BTreeMap::new());
    };
    items
        .as_array()
        .ok_or_else(|| Fault::invalid_params("a report's list must be an array"))?
        .iter()
        .map(|pair| match pair.as_array() {
            Some([Value::String(url), Value::Int(v)]) => Ok((url.clone(), *v)),
            _ => Err(Fault::invalid_params("a report lists [url, version] pairs")),
        })
        .collect()
}

fn uids(v: &[u32]) -> Value {
    Value::Array(v.iter().map(|u| Value::Int(i64::from(*u))).collect())
}

fn from_uids(v: Option<&Value>) -> Result<Vec<u32>, Fault> {
    v.and_then(Value::as_array)
        .ok_or_else(|| Fault::invalid_params("owners must be an array"))?
        .iter()
        .map(|u| {
            u.as_i64()
                .and_then(|u| u32::try_from(u).ok())
                .ok_or_else(|| Fault::invalid_params("owners are uids"))
        })
        .collect()
}

fn uid(s: &crate::rpc::Struct, name: &str) -> Result<u32, Fault> {
    u32::try_from(get_int(s, name)?)
        .map_err(|_| Fault::invalid_params(format!("{name} is not a uid")))
}

impl Report {
    pub fn to_value(&self) -> Value {
        Value::structure([
            (
                "view",
                Value::Int(i64::try_from(self.view).unwrap_or(i64::MAX)),
            ),
            ("position", Value::Int(self.position)),
            ("lagging", pairs(&self.lagging)),
            ("released", pairs(&self.released)),
        ])
    }

    /// # Errors
    /// A value not shaped like [`Report::to_value`]'s.
    pub fn from_value(v: &Value) -> Result<Report, Fault> {
        let s = v
            .as_struct()
            .ok_or_else(|| Fault::invalid_params("a report is a struct"))?;
        Ok(Report {
            view: u64::try_from(get_int(s, "view")?).unwrap_or(0),
            position: get_int(s, "position")?,
            lagging: from_pairs(s.get("lagging"))?,
            released: from_pairs(s.get("released"))?,
        })
    }
}

impl MemberReport {
    pub fn to_value(&self) -> Value {
        Value::structure([
            ("uid", Value::Int(i64::from(self.uid))),
            (
                "mode",
                Value::from(match self.mode {
                    FeedMode::Push => "push",
                    FeedMode::Pull => "pull",
                }),
            ),
            (
                "poll_ms",
                Value::Int(i64::try_from(self.poll_ms).unwrap_or(i64::MAX)),
            ),
            ("report", self.report.to_value()),
            (
                "endpoints",
                Value::Array(
                    self.endpoints
                        .iter()
                        .map(|e| Value::from(e.to_string()))
                        .collect(),
                ),
            ),
        ])
    }

    /// # Errors
    /// A value not shaped like [`MemberReport::to_value`]'s.
    pub fn from_value(v: &Value) -> Result<MemberReport, Fault> {
        let s = v
            .as_struct()
            .ok_or_else(|| Fault::invalid_params("a member report is a struct"))?;
        let mode = match get_str(s, "mode")?.as_str() {
            "push" => FeedMode::Push,
            "pull" => FeedMode::Pull,
            other => {
                return Err(Fault::invalid_params(format!(
                    "unknown feed mode {:?}",
                    crate::scoreboard::clip(other)
                )))
            }
        };
        Ok(MemberReport {
            uid: uid(s, "uid")?,
            mode,
            poll_ms: u64::try_from(get_int(s, "poll_ms")?).unwrap_or(0),
            report: Report::from_value(
                s.get("report")
                    .ok_or_else(|| Fault::invalid_params("a member report holds a report"))?,
            )?,
            endpoints: s
                .get("endpoints")
                .and_then(Value::as_array)
                .unwrap_or(&[])
                .iter()
                .take(MAX_ENDPOINTS)
                .filter_map(|e| e.as_str()?.parse().ok())
                .collect(),
        })
    }
}

impl View {
    pub fn to_value(&self) -> Value {
        Value::structure([
            (
                "number",
                Value::Int(i64::try_from(self.number).unwrap_or(i64::MAX)),
            ),
            ("owners", uids(&self.owners)),
        ])
    }

    /// # Errors
    /// A value not shaped like [`View::to_value`]'s.
    pub fn from_value(v: &Value) -> Result<View, Fault> {
        let s = v
            .as_struct()
            .ok_or_else(|| Fault::invalid_params("a view is a struct"))?;
        Ok(View {
            number: u64::try_from(get_int(s, "number")?).unwrap_or(0),
            owners: from_uids(s.get("owners"))?,
        })
    }
}

impl Progress {
    pub fn to_value(&self) -> Value {
        let mut members = Vec::with_capacity(self.reports.len());
        for (uid, report) in &self.reports {
            members.push(Value::structure([
                ("uid", Value::Int(i64::from(*uid))),
                ("report", report.to_value()),
            ]));
        }
        let views = self
            .views
            .iter()
            .map(|(number, owners)| {
                View {
                    number: *number,
                    owners: owners.clone(),
                }
                .to_value()
            })
            .collect();
        let mut fields = vec![
            ("views", Value::Array(views)),
            ("members", Value::Array(members)),
        ];
        if let Some(view) = self.view {
            fields.push(("view", Value::Int(i64::try_from(view).unwrap_or(i64::MAX))));
        }
        Value::structure(fields)
    }

    /// # Errors
    /// A value not shaped like [`Progress::to_value`]'s.
    pub fn from_value(v: &Value) -> Result<Progress, Fault> {
        let s = v
            .as_struct()
            .ok_or_else(|| Fault::internal("push progress is not a struct"))?;
        let list = |name: &str| -> Result<&[Value], Fault> {
            s.get(name)
                .and_then(Value::as_array)
                .ok_or_else(|| Fault::internal(format!("push progress lacks {name}")))
        };
        let mut views = Views::new();
        for v in list("views")? {
            let view = View::from_value(v)?;
            views.insert(view.number, view.owners);
        }
        let mut reports = BTreeMap::new();
        for m in list("members")? {
            let m = m
                .as_struct()
                .ok_or_else(|| Fault::internal("a member is a struct"))?;
            let report = m
                .get("report")
                .ok_or_else(|| Fault::internal("a member lacks its report"))?;
            reports.insert(uid(m, "uid")?, Report::from_value(report)?);
        }
        Ok(Progress {
            view: s
                .get("view")
                .and_then(Value::as_i64)
                .and_then(|v| u64::try_from(v).ok()),
            views,
            reports,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_round_trips() {
        let report = Report {
            view: 4,
            position: 90,
            lagging: BTreeMap::from([("http://127.0.0.1:9/".into(), 88)]),
            released: BTreeMap::from([("http://127.0.0.1:8/".into(), 77)]),
        };
        let member = MemberReport {
            uid: 2,
            mode: FeedMode::Push,
            poll_ms: 1000,
            report: report.clone(),
            endpoints: vec!["127.0.0.1:8002".parse().unwrap()],
        };
        assert_eq!(
            MemberReport::from_value(&member.to_value()).unwrap(),
            member
        );
        let view = View {
            number: 4,
            owners: vec![1, 2],
        };
        assert_eq!(View::from_value(&view.to_value()).unwrap(), view);
        let progress = Progress {
            view: Some(4),
            views: Views::from([(3, vec![1]), (4, vec![1, 2])]),
            reports: BTreeMap::from([(2, report)]),
        };
        assert_eq!(
            Progress::from_value(&progress.to_value()).unwrap(),
            progress
        );
        let bad = Value::structure([("uid", Value::Int(-1))]);
        assert!(MemberReport::from_value(&bad).is_err());
    }
}
