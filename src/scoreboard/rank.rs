//! The medal table's order: gold, then silver, then bronze, then name; teams
//! with the same three counts share a rank (1, 2, 2, 4), as results
//! services print it.

use super::Tally;
use crate::rpc::{Fault, Value};

/// One row of the medal table: a team's tally and its place.
#[derive(Debug, Clone, PartialEq)]
pub struct Standing {
    /// 1 for the first; teams with equal counts share a place.
    pub rank: i64,
    pub tally: Tally,
}

impl Standing {
    /// The medal table of `tallies`, ranked.
    pub fn table(mut tallies: Vec<Tally>) -> Vec<Standing> {
        rank(&mut tallies);
        let places = places(&tallies);
        tallies
            .into_iter()
            .zip(places)
            .map(|(tally, rank)| Standing { rank, tally })
            .collect()
    }

    /// The tally's struct with a `rank` member.
    pub fn to_value(&self) -> Value {
        let mut row = self.tally.to_value();
        if let Value::Struct(s) = &mut row {
            s.insert("rank".into(), Value::Int(self.rank));
        }
        row
    }

    /// # Errors
    /// A value not shaped like [`Standing::to_value`]'s.
    pub fn from_value(v: &Value) -> Result<Standing, Fault> {
        let rank = v
            .as_struct()
            .and_then(|s| s.get("rank"))
            .and_then(Value::as_i64)
            .ok_or_else(|| Fault::internal("standing lacks its rank"))?;
        Ok(Standing {
            rank,
            tally: Tally::from_value(v)?,
        })
    }
}

/// Sorts tallies gold > silver > bronze, then by team name.
pub fn rank(tallies: &mut [Tally]) {
    tallies.sort_by(|a, b| {
        (b.gold, b.silver, b.bronze)
            .cmp(&(a.gold, a.silver, a.bronze))
            .then_with(|| a.team.cmp(&b.team))
    });
}

/// The rank of each tally of a table already sorted by [`rank`]: equal
/// counts share a rank, and the next rank skips the shared places.
pub fn places(sorted: &[Tally]) -> Vec<i64> {
    let mut places = Vec::with_capacity(sorted.len());
    let mut place = 0;
    let mut prev = None;
    for (i, t) in sorted.iter().enumerate() {
        let counts = (t.gold, t.silver, t.bronze);
        if prev != Some(counts) {
            place = i as i64 + 1;
            prev = Some(counts);
        }
        places.push(place);
    }
    places
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(team: &str, gold: i64, silver: i64, bronze: i64) -> Tally {
        Tally {
            team: team.into(),
            gold,
            silver,
            bronze,
            version: 0,
            updated: 0.0,
        }
    }

    #[test]
    fn ranking_is_gold_then_silver_then_bronze() {
        let mut v = vec![
            t("A", 1, 0, 5),
            t("B", 1, 2, 0),
            t("C", 2, 0, 0),
            t("D", 1, 2, 0),
        ];
        rank(&mut v);
        let order: Vec<&str> = v.iter().map(|t| t.team.as_str()).collect();
        assert_eq!(order, ["C", "B", "D", "A"]);
        assert_eq!(places(&v), [1, 2, 2, 4]);
        assert!(places(&[]).is_empty());
        let table = Standing::table(v);
        assert_eq!(table[2].rank, 2);
        assert_eq!(
            Standing::from_value(&table[2].to_value()).unwrap(),
            table[2]
        );
    }
}
