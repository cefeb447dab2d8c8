//! Cron schedules, the five fields everybody knows (`minute hour day-of-month month day-of-week`, in UTC),
//! with `*`, lists, ranges, steps and the `@hourly`, `@daily`, `@weekly`, `@monthly` shorthands.
//! As in Vixie cron, when both day fields are restricted a day matching either one runs.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, DurationRound, Timelike, Utc};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    text: String,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Whether the day-of-month and day-of-week fields were `*` (then only the other one restricts).
    any_day: bool,
    any_weekday: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "schedule {schedule:?}: {reason} (expected five fields: minute hour day-of-month month day-of-week)"
)]
pub struct CronError {
    schedule: String,
    reason: String,
}

const FIELDS: [(&str, u32, u32); 5] = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
];

fn field(text: &str, name: &str, min: u32, max: u32) -> Result<u64, String> {
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("{name}: step {step:?} is not a positive number"))?;
                (range, step)
            }
            None => (part, 1),
        };
        let number = |n: &str| -> Result<u32, String> {
            n.parse::<u32>()
                .ok()
                .filter(|v| (min..=max).contains(v))
                .ok_or_else(|| format!("{name}: {n:?} is not a number from {min} to {max}"))
        };
        let (from, to) = match range {
            "*" => (min, max),
            _ => match range.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None if step > 1 => (number(range)?, max),
                None => (number(range)?, number(range)?),
            },
        };
        if from > to {
            return Err(format!("{name}: range {range:?} runs backwards"));
        }
        for v in (from..=to).step_by(step as usize) {
            bits |= 1 << v;
        }
    }
    Ok(bits)
}

impl FromStr for Schedule {
    type Err = CronError;

    fn from_str(text: &str) -> Result<Self, CronError> {
        let error = |reason: String| CronError {
            schedule: text.to_owned(),
            reason,
        };
        let expanded = match text.trim() {
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            other => other,
        };
        let parts: Vec<&str> = expanded.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(error(format!("{} fields", parts.len())));
        }
        let mut bits = [0u64; 5];
        for (i, (name, min, max)) in FIELDS.iter().enumerate() {
            bits[i] = field(parts[i], name, *min, *max).map_err(error)?;
        }
        // Sunday is 0 and 7.
        if bits[4] & (1 << 7) != 0 {
            bits[4] |= 1;
        }
        Ok(Self {
            text: text.trim().to_owned(),
            minutes: bits[0],
            hours: bits[1],
            days: bits[2],
            months: bits[3],
            weekdays: bits[4],
            any_day: parts[2] == "*",
            any_weekday: parts[4] == "*",
        })
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Schedule {
    fn day_matches(&self, t: &DateTime<Utc>) -> bool {
        let day = self.days & (1 << t.day()) != 0;
        let weekday = self.weekdays & (1 << t.weekday().num_days_from_sunday()) != 0;
        match (self.any_day, self.any_weekday) {
            (false, false) => day || weekday,
            _ => day && weekday,
        }
    }

    /// The first minute strictly after `after` that the schedule names; None if there is none in five years
    /// (a schedule such as `0 0 31 2 *`).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut t = after.duration_trunc(Duration::minutes(1)).ok()? + Duration::minutes(1);
        let limit = after + Duration::days(5 * 366);
        while t < limit {
            if self.months & (1 << t.month()) == 0 || !self.day_matches(&t) {
                t = (t + Duration::days(1))
                    .duration_trunc(Duration::days(1))
                    .ok()?;
            } else if self.hours & (1 << t.hour()) == 0 {
                t = (t + Duration::hours(1))
                    .duration_trunc(Duration::hours(1))
                    .ok()?;
            } else if self.minutes & (1 << t.minute()) == 0 {
                t += Duration::minutes(1);
            } else {
                return Some(t);
            }
        }
        None
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
            ("0 0 * * mon", "day of week"),
        ] {
            let e = schedule.parse::<Schedule>().unwrap_err().to_string();
            assert!(e.contains(says), "{schedule}: {e}");
        }
    }
}
