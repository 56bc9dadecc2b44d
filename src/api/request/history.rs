//! `scoreboard.history`: a tally's or a score's updates, a page at a time.
//!
//! ```text
//! scoreboard.history(kind, name)                 -> [update...]
//! scoreboard.history(kind, name, cursor)         -> {updates: [update...], next: cursor}
//! scoreboard.history(kind, name, cursor, limit)  -> the same, at most `limit` updates
//! ```
//!
//! A page holds the newest updates older than its cursor (`""`: the newest
//! of all), oldest first, and `next` is the cursor of the page before it,
//! `""` once the page reaches the first update. Paging goes back in time
//! from the first page, so writes made meanwhile move no page. The old
//! two-argument call is the first page, as a plain array.

use super::{text, Call};
use crate::api::Method;
use crate::rpc::{Fault, Params, Value};
use crate::store::Change;

/// Updates in a page when no limit is given, and in the two-argument call.
pub const HISTORY_DEFAULT_LIMIT: i64 = 100;
/// The most updates one page may hold: about 600 KB of XML for a tally's,
/// well under a server's reply cap, and a few milliseconds of the db's.
pub const HISTORY_MAX_LIMIT: i64 = 500;

/// Which key's history: a team's tally or an event's score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryKind {
    Tally,
    Score,
}

/// Where a page of history ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryCursor {
    /// At the newest update: the first page.
    Newest,
    /// Just before the update of this version (exclusive).
    Before(i64),
}

impl HistoryCursor {
    /// The wire form: `""` for [`HistoryCursor::Newest`], else the version
    /// in decimal. Clients treat it as opaque.
    pub fn to_wire(self) -> String {
        match self {
            HistoryCursor::Newest => String::new(),
            HistoryCursor::Before(version) => version.to_string(),
        }
    }

    /// Reads [`HistoryCursor::to_wire`]'s form; `None` for anything else.
    pub fn from_wire(s: &str) -> Option<HistoryCursor> {
        if s.is_empty() {
            return Some(HistoryCursor::Newest);
        }
        let digits = s.bytes().all(|b| b.is_ascii_digit());
        match s.parse::<i64>() {
            Ok(v) if digits && v > 0 => Some(HistoryCursor::Before(v)),
            _ => None,
        }
    }

    /// The version the page ends before, if any.
    pub fn before(self) -> Option<i64> {
        match self {
            HistoryCursor::Newest => None,
            HistoryCursor::Before(v) => Some(v),
        }
    }
}

/// The paging arguments of a call with more than two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub cursor: HistoryCursor,
    /// 1 to [`HISTORY_MAX_LIMIT`]; [`HISTORY_DEFAULT_LIMIT`] when `None`.
    pub limit: Option<i64>,
}

/// `scoreboard.history(kind, name[, cursor[, limit]])`, kind `"tally"` or
/// `"score"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub kind: HistoryKind,
    pub name: String,
    /// `None`: the old two-argument call, answered with an array.
    pub page: Option<PageRequest>,
}

impl History {
    /// How many updates the reply holds at most.
    pub fn limit(&self) -> i64 {
        self.page
            .and_then(|p| p.limit)
            .unwrap_or(HISTORY_DEFAULT_LIMIT)
    }
}

impl Call for History {
    const METHOD: Method = Method::History;
    fn from_params(params: &Params) -> Result<Self, Fault> {
        params.expect_count(2, 4)?;
        let kind = match params.arg::<&str>(0, "kind")? {
            "tally" => HistoryKind::Tally,
            "score" => HistoryKind::Score,
            _ => {
                return Err(Fault::invalid_params(
                    "argument 1 (kind) must be \"tally\" or \"score\"",
                ))
            }
        };
        let page = match params.opt_arg::<&str>(2, "cursor")? {
            None => None,
            Some(cursor) => {
                let cursor = HistoryCursor::from_wire(cursor).ok_or_else(|| {
                    Fault::invalid_params(
                        "argument 3 (cursor) must be \"\" or a cursor a page of history returned",
                    )
                })?;
                let limit = params.opt_arg::<i64>(3, "limit")?;
                if limit.is_some_and(|l| !(1..=HISTORY_MAX_LIMIT).contains(&l)) {
                    return Err(Fault::invalid_params(format!(
                        "argument 4 (limit) must be 1 to {HISTORY_MAX_LIMIT}"
                    )));
                }
                Some(PageRequest { cursor, limit })
            }
        };
        Ok(History {
            kind,
            name: text(params, 1, "name")?,
            page,
        })
    }
    fn to_params(&self) -> Vec<Value> {
        let kind = match self.kind {
            HistoryKind::Tally => "tally",
            HistoryKind::Score => "score",
        };
        let mut params = vec![kind.into(), self.name.as_str().into()];
        if let Some(page) = self.page {
            params.push(page.cursor.to_wire().into());
            if let Some(limit) = page.limit {
                params.push(Value::Int(limit));
            }
        }
        params
    }
}

/// The reply of a paged `scoreboard.history` call.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPage {
    /// Oldest first.
    pub updates: Vec<Change>,
    /// The cursor of the page before this one; `None` when this page
    /// reaches the key's first update.
    pub next: Option<HistoryCursor>,
}

impl HistoryPage {
    /// `{updates: [...], next: cursor}`, `next` `""` at the end.
    pub fn to_value(&self) -> Value {
        Value::structure([
            (
                "updates",
                Value::Array(self.updates.iter().map(Change::to_value).collect()),
            ),
            (
                "next",
                Value::from(self.next.map(HistoryCursor::to_wire).unwrap_or_default()),
            ),
        ])
    }

    /// # Errors
    /// A value not shaped like [`HistoryPage::to_value`]'s.
    pub fn from_value(v: &Value) -> Result<HistoryPage, Fault> {
        let bad = |what: &str| Fault::internal(format!("history page: {what}"));
        let s = v.as_struct().ok_or_else(|| bad("not a struct"))?;
        let updates = s
            .get("updates")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no updates array"))?
            .iter()
            .map(Change::from_value)
            .collect::<Result<_, _>>()?;
        let next = s
            .get("next")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no next cursor"))?;
        let next = match HistoryCursor::from_wire(next) {
            Some(HistoryCursor::Newest) => None,
            Some(cursor) => Some(cursor),
            None => return Err(bad("next is not a cursor")),
        };
        Ok(HistoryPage { updates, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_nothing_else_is_one() {
        for c in [
            HistoryCursor::Newest,
            HistoryCursor::Before(1),
            HistoryCursor::Before(i64::MAX),
        ] {
            assert_eq!(HistoryCursor::from_wire(&c.to_wire()), Some(c));
        }
        for bad in ["0", "-1", "+5", " 5", "x", "99999999999999999999"] {
            assert_eq!(HistoryCursor::from_wire(bad), None, "{bad}");
        }
    }

    #[test]
    fn limits_out_of_range_and_bad_cursors_are_refused() {
        let call = |extra: Vec<Value>| {
            let mut p = vec![Value::from("tally"), Value::from("Gaul")];
            p.extend(extra);
            History::from_params(&Params::new(p))
        };
        assert_eq!(call(vec![]).unwrap().limit(), HISTORY_DEFAULT_LIMIT);
        assert_eq!(
            call(vec!["".into()]).unwrap().limit(),
            HISTORY_DEFAULT_LIMIT
        );
        assert_eq!(
            call(vec!["9".into(), Value::Int(500)]).unwrap().limit(),
            500
        );
        for bad in [
            vec!["".into(), Value::Int(0)],
            vec!["".into(), Value::Int(501)],
            vec!["nope".into()],
            vec![Value::Int(5)],
        ] {
            let err = call(bad.clone()).unwrap_err();
            assert_eq!(err.code, crate::rpc::fault::INVALID_PARAMS, "{bad:?}");
        }
    }
}
