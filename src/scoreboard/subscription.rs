//! A push subscription as the cluster keeps it: who gets pushed what, until
//! when. It is cluster state, written to the db like any change, so every
//! front-end knows every subscription.

use serde::{Deserialize, Serialize};

use crate::rpc::{Fault, Value};

/// How a subscriber is called back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Style {
    /// `register_client`: the old tablet's two-argument callbacks.
    Old,
    /// `scoreboard.subscribe`: the callbacks carry the change's version as a
    /// third argument, so a subscriber can drop a push it already had.
    New,
}

/// One subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    /// The callback URL, canonical (`http://IP:PORT/path`): one
    /// subscription per URL, cluster-wide.
    pub url: String,
    /// Lower-case names of the events followed.
    pub events: Vec<String>,
    /// Lower-case names of the teams followed.
    pub teams: Vec<String>,
    /// Cluster time the lease ends, seconds since the epoch.
    pub expires: f64,
    /// The subscriber's address as the cluster saw it: caps are per address.
    pub client: String,
    pub style: Style,
}

impl Subscription {
    /// True when it follows the key of a change (`tally:gaul`, `score:...`).
    pub fn follows(&self, key: &str) -> bool {
        match key.split_once(':') {
            Some(("tally", team)) => self.teams.iter().any(|t| t == team),
            Some(("score", event)) => self.events.iter().any(|e| e == event),
            _ => false,
        }
    }

    /// The form kept in the update log's `value` column.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads [`Subscription::to_json`]'s form.
    ///
    /// # Errors
    /// Text not in that form.
    pub fn from_json(text: &str) -> Result<Subscription, serde_json::Error> {
        serde_json::from_str(text)
    }

    pub fn to_value(&self) -> Value {
        let list = |v: &[String]| Value::Array(v.iter().map(|s| Value::from(s.as_str())).collect());
        Value::structure([
            ("url", Value::from(self.url.as_str())),
            ("events", list(&self.events)),
            ("teams", list(&self.teams)),
            ("expires", Value::Double(self.expires)),
            ("client", Value::from(self.client.as_str())),
            (
                "style",
                Value::from(match self.style {
                    Style::Old => "old",
                    Style::New => "new",
                }),
            ),
        ])
    }

    /// # Errors
    /// A value not shaped like [`Subscription::to_value`]'s.
    pub fn from_value(v: &Value) -> Result<Subscription, Fault> {
        let s = v
            .as_struct()
            .ok_or_else(|| Fault::internal("subscription is not a struct"))?;
        let list = |name: &str| -> Result<Vec<String>, Fault> {
            s.get(name)
                .and_then(Value::as_array)
                .ok_or_else(|| Fault::internal(format!("subscription lacks {name}")))?
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| Fault::internal("subscription name is not a string"))
                })
                .collect()
        };
        Ok(Subscription {
            url: super::get_str(s, "url")?,
            events: list("events")?,
            teams: list("teams")?,
            expires: super::get_f64(s, "expires")?,
            client: super::get_str(s, "client")?,
            style: match super::get_str(s, "style")?.as_str() {
                "old" => Style::Old,
                "new" => Style::New,
                other => return Err(Fault::internal(format!("unknown style {other:?}"))),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_follows_its_keys() {
        let s = Subscription {
            url: "http://127.0.0.1:8005/".into(),
            events: vec!["stone curling".into()],
            teams: vec!["gaul".into()],
            expires: 1_700_000_000.5,
            client: "127.0.0.1".into(),
            style: Style::Old,
        };
        assert_eq!(Subscription::from_json(&s.to_json()).unwrap(), s);
        assert_eq!(Subscription::from_value(&s.to_value()).unwrap(), s);
        assert!(s.follows("tally:gaul") && s.follows("score:stone curling"));
        assert!(!s.follows("tally:rome") && !s.follows("team:gaul") && !s.follows("gaul"));
    }
}
