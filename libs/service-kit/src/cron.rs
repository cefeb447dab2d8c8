//! Cron schedules, the five fields everybody knows (`minute hour day-of-month month day-of-week`, in UTC),
//! with `*`, lists, ranges, steps, names (`mon`, `jan`) and the `@hourly`, `@daily`, `@weekly`, `@monthly`
//! shorthands, parsed and evaluated by croner. As in Vixie cron, when both day fields are restricted a day
//! matching either one runs (croner's default). An error names the field that is wrong.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, DurationRound, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

#[derive(Debug, Clone)]
pub struct Schedule {
    text: String,
    cron: Cron,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Schedule {}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "schedule {schedule:?}: {reason} (expected five fields: minute hour day-of-month month day-of-week)"
)]
pub struct CronError {
    schedule: String,
    reason: String,
}

/// Each field's name and the numbers it takes (Sunday is 0 and 7).
const FIELDS: [(&str, u32, u32); 5] = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
];

fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
}

/// Which field makes `fields` (five of them) fail, and how: each is tried alone, the others `*`.
fn bad_field(fields: &[&str]) -> Option<String> {
    FIELDS.iter().enumerate().find_map(|(i, (name, min, max))| {
        let mut alone = ["*"; 5];
        alone[i] = fields[i];
        let why = parser().parse(&alone.join(" ")).err()?;
        let value = fields[i];
        // croner says what is wrong in its words; a few cases get plainer ones.
        let reason = if value.contains("/0") {
            "the step must be a positive number".to_owned()
        } else if value.split([',', '/']).any(|part| {
            part.split_once('-').is_some_and(|(a, b)| {
                matches!((a.parse::<u32>(), b.parse::<u32>()), (Ok(a), Ok(b)) if a > b)
            })
        }) {
            "the range runs backwards".to_owned()
        } else if matches!(&why, croner::errors::CronError::ComponentError(m) if m.contains("out of bounds")) {
            format!("each number must be from {min} to {max}")
        } else {
            why.to_string()
        };
        Some(format!("{name}: {value:?}: {reason}"))
    })
}

impl FromStr for Schedule {
    type Err = CronError;

    fn from_str(text: &str) -> Result<Self, CronError> {
        let text = text.trim();
        let error = |reason: String| CronError {
            schedule: text.to_owned(),
            reason,
        };
        let fields: Vec<&str> = text.split_whitespace().collect();
        if !text.starts_with('@') && fields.len() != 5 {
            return Err(error(format!("{} fields", fields.len())));
        }
        let cron = parser().parse(text).map_err(|e| {
            error(
                (fields.len() == 5)
                    .then(|| bad_field(&fields))
                    .flatten()
                    .unwrap_or_else(|| e.to_string()),
            )
        })?;
        Ok(Self {
            text: text.to_owned(),
            cron,
        })
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Schedule {
    /// The first minute strictly after `after` that the schedule names; None if there is none in five years
    /// (a schedule such as `0 0 31 2 *`).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = after.duration_trunc(Duration::minutes(1)).ok()?;
        let next = self.cron.find_next_occurrence(&start, false).ok()?;
        (next < after + Duration::days(5 * 366)).then_some(next)
    }
}

/// Calls `fire` with each job's key when its schedule is due, until shutdown. `fire` should return quickly
/// (spawn long work): a slow one delays the jobs after it, never skips them.
pub async fn run_schedules<K, F, Fut>(
    jobs: Vec<(K, Schedule)>,
    shutdown: crate::Shutdown,
    mut fire: F,
) -> Result<(), std::convert::Infallible>
where
    F: FnMut(&K) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let now = Utc::now();
    let mut due: Vec<Option<DateTime<Utc>>> = jobs.iter().map(|(_, s)| s.next_after(now)).collect();
    loop {
        let Some((i, at)) = due
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.map(|t| (i, t)))
            .min_by_key(|(_, t)| *t)
        else {
            shutdown.wait().await;
            return Ok(());
        };
        let wait = (at - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait() => return Ok(()),
        }
        due[i] = jobs[i].1.next_after(at);
        fire(&jobs[i].0).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn next(schedule: &str, after: &str) -> String {
        schedule
            .parse::<Schedule>()
            .unwrap()
            .next_after(at(after))
            .map(|t| t.to_rfc3339())
            .unwrap_or_default()
    }

    #[test]
    fn fields_ranges_lists_and_steps() {
        assert_eq!(
            next("*/15 * * * *", "2026-11-26T10:07:30Z"),
            "2026-11-26T10:15:00+00:00"
        );
        assert_eq!(
            next("30 2 * * *", "2026-11-26T02:30:00Z"),
            "2026-11-27T02:30:00+00:00"
        );
        assert_eq!(
            next("0 9-17/4 * * *", "2026-11-26T10:00:00Z"),
            "2026-11-26T13:00:00+00:00"
        );
        assert_eq!(
            next("0 0 1,15 * *", "2026-11-26T00:00:00Z"),
            "2026-12-01T00:00:00+00:00"
        );
        assert_eq!(
            next("@weekly", "2026-11-26T00:00:00Z"),
            "2026-11-29T00:00:00+00:00"
        );
        assert_eq!(
            next("0 3 * * 7", "2026-11-26T00:00:00Z"),
            "2026-11-29T03:00:00+00:00"
        );
        assert_eq!(
            next("0 3 * * sun", "2026-11-26T00:00:00Z"),
            "2026-11-29T03:00:00+00:00"
        );
        assert_eq!(
            next("@monthly", "2026-12-31T23:59:00Z"),
            "2027-01-01T00:00:00+00:00"
        );
        assert_eq!(
            next("0 0 29 2 *", "2026-03-01T00:00:00Z"),
            "2028-02-29T00:00:00+00:00"
        );
    }

    #[test]
    fn both_day_fields_restricted_means_either() {
        // The 1st of the month or any Monday; 2026-11-30 is a Monday.
        assert_eq!(
            next("0 0 1 * 1", "2026-11-26T00:00:00Z"),
            "2026-11-30T00:00:00+00:00"
        );
        assert_eq!(
            next("0 0 1 * 1", "2026-11-30T00:00:00Z"),
            "2026-12-01T00:00:00+00:00"
        );
    }

    #[test]
    fn impossible_dates_have_no_next_run() {
        assert_eq!(next("0 0 31 2 *", "2026-01-01T00:00:00Z"), "");
    }

    #[test]
    fn bad_schedules_say_which_field_is_wrong() {
        for (schedule, says) in [
            ("* * * *", "4 fields"),
            ("60 * * * *", "minute: \"60\""),
            ("0 24 * * *", "hour"),
            ("0 0 0 * *", "day of month"),
            ("*/0 * * * *", "step"),
            ("0 5-2 * * *", "backwards"),
            ("0 0 * * 8", "day of week"),
            ("0 0 * * funday", "day of week"),
        ] {
            let e = schedule.parse::<Schedule>().unwrap_err().to_string();
            assert!(e.contains(says), "{schedule}: {e}");
        }
    }
}
