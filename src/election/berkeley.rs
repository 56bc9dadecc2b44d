//! The Berkeley algorithm, pure: from the time server's readings of every
//! member's clock, the adjustment each member should apply.

/// One member's clock as the time server read it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub uid: u32,
    /// The member's clock minus the time server's, microseconds, already
    /// corrected for the round trip (the member's answer is taken to be from
    /// the middle of it).
    pub offset_us: i64,
    /// The round trip of the reading, microseconds.
    pub rtt_us: i64,
}

impl Reading {
    /// A reading from the times around one call: the server's clock when it
    /// sent (`sent_us`) and received (`received_us`), and the member's answer.
    pub fn from_exchange(uid: u32, sent_us: i64, member_us: i64, received_us: i64) -> Reading {
        let rtt_us = (received_us - sent_us).max(0);
        Reading {
            uid,
            offset_us: member_us - (sent_us + rtt_us / 2),
            rtt_us,
        }
    }
}

/// What one sync round decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Round {
    /// (uid, microseconds to add to that member's clock), for every reading.
    pub adjustments: Vec<(u32, i64)>,
    /// Members whose readings were left out of the average.
    pub outliers: Vec<u32>,
}

/// Averages the readings that agree with the median within `max_deviation_us`
/// and tells every member (outliers too) how far to move to that average.
/// Readings with a round trip over `max_rtt_us` are too uncertain to use and
/// get no adjustment. The time server's own reading (offset 0) belongs in
/// `readings`.
pub fn round(readings: &[Reading], max_deviation_us: i64, max_rtt_us: i64) -> Round {
    let usable: Vec<&Reading> = readings.iter().filter(|r| r.rtt_us <= max_rtt_us).collect();
    if usable.is_empty() {
        return Round {
            adjustments: Vec::new(),
            outliers: Vec::new(),
        };
    }
    let mut offsets: Vec<i64> = usable.iter().map(|r| r.offset_us).collect();
    offsets.sort_unstable();
    let median = offsets[offsets.len() / 2];
    let (kept, outliers): (Vec<&&Reading>, Vec<&&Reading>) = usable
        .iter()
        .partition(|r| (r.offset_us - median).abs() <= max_deviation_us);
    let average = if kept.is_empty() {
        median
    } else {
        let sum: i128 = kept.iter().map(|r| i128::from(r.offset_us)).sum();
        i64::try_from(sum / kept.len() as i128).unwrap_or(median)
    };
    Round {
        adjustments: usable
            .iter()
            .map(|r| (r.uid, average - r.offset_us))
            .collect(),
        outliers: outliers.iter().map(|r| r.uid).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(uid: u32, offset_us: i64) -> Reading {
        Reading {
            uid,
            offset_us,
            rtt_us: 100,
        }
    }

    #[test]
    fn averages_and_moves_everyone_to_the_average() {
        let out = round(&[r(0, 0), r(1, 1000), r(2, -400)], 10_000, 1_000_000);
        assert!(out.outliers.is_empty());
        assert_eq!(out.adjustments, vec![(0, 200), (1, -800), (2, 600)]);
    }

    #[test]
    fn outliers_do_not_drag_the_average_but_are_corrected() {
        let out = round(
            &[r(0, 0), r(1, 100), r(2, -100), r(3, 2_000_000)],
            50_000,
            1_000_000,
        );
        assert_eq!(out.outliers, vec![3]);
        assert!(out.adjustments.contains(&(3, -2_000_000)));
        assert!(out.adjustments.contains(&(0, 0)));
    }

    #[test]
    fn slow_readings_are_left_alone() {
        let slow = Reading {
            uid: 9,
            offset_us: 5,
            rtt_us: 2_000_000,
        };
        let out = round(&[r(0, 0), slow], 50_000, 100_000);
        assert_eq!(out.adjustments, vec![(0, 0)]);
    }

    #[test]
    fn round_trip_correction_takes_the_midpoint() {
        // Sent at 1000, answered 10_500 by a clock 10 ms ahead, received at 2000.
        let reading = Reading::from_exchange(1, 1_000, 11_500, 2_000);
        assert_eq!(reading.offset_us, 10_000);
        assert_eq!(reading.rtt_us, 1_000);
    }
}
