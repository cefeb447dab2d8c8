//! Retention over synthetic histories, each expectation worked out by hand from the dates.

use backup::retention::{Backup, Reason, Retention, SourceKind, plan};
use chrono::{DateTime, Duration, TimeZone, Utc};

/// 2026-11-25 12:00 UTC.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
}

/// One backup a day at 02:00 for `days` days, ending today; all verified unless said otherwise.
fn daily(days: i64) -> Vec<Backup> {
    (0..days)
        .map(|d| {
            let taken_at = Utc.with_ymd_and_hms(2026, 11, 25, 2, 0, 0).unwrap() - Duration::days(d);
            Backup {
                id: taken_at.format("%Y-%m-%d").to_string(),
                taken_at,
                verified: true,
                in_use: false,
            }
        })
        .collect()
}

fn policy(last: u32, daily: u32, weekly: u32, monthly: u32, min_age_days: i64) -> Retention {
    Retention {
        keep_last: last,
        keep_daily: daily,
        keep_weekly: weekly,
        keep_monthly: monthly,
        min_age: Duration::days(min_age_days),
    }
}

fn kept(p: &backup::retention::Plan) -> Vec<&str> {
    p.keep.iter().map(|(id, _)| id.as_str()).collect()
}

#[test]
fn dailies_and_monthlies_of_a_hundred_days() {
    let history = daily(100); // 2026-08-18 .. 2026-11-25
    let result = plan(&policy(2, 10, 0, 3, 0), &history, now());
    let mut expected: Vec<String> = (16..=25).rev().map(|d| format!("2026-11-{d:02}")).collect();
    expected.extend(["2026-10-31".to_owned(), "2026-09-30".to_owned()]);
    assert_eq!(kept(&result), expected);
    assert_eq!(result.delete.len(), 88);
    let reasons = &result.keep[0].1;
    assert_eq!(
        reasons,
        &vec![
            Reason::NewestVerified,
            Reason::Last,
            Reason::Daily,
            Reason::Monthly
        ]
    );
}

#[test]
fn weeklies_keep_the_newest_of_each_iso_week() {
    let history = daily(30);
    let result = plan(&policy(0, 0, 3, 0, 0), &history, now());
    // 2026-11-25 is a Wednesday: weeks 48 (Mon 23 – Wed 25), 47 (16–22), 46 (9–15).
    assert_eq!(kept(&result), ["2026-11-25", "2026-11-22", "2026-11-15"]);
}

#[test]
fn velero_backups_younger_than_thirty_days_are_never_deleted() {
    let history = daily(60);
    let velero = Retention {
        keep_last: 1,
        keep_daily: 0,
        keep_weekly: 0,
        keep_monthly: 0,
        min_age: SourceKind::Velero.floor(),
    };
    let result = plan(&velero, &history, now());
    // 30 days before 2026-11-25 12:00 is 2026-10-26 12:00: the 02:00 backups from 10-27 on are younger.
    assert_eq!(result.keep.len(), 30);
    assert_eq!(result.keep.last().unwrap().0, "2026-10-27");
    assert!(
        result
            .keep
            .iter()
            .all(|(_, why)| why.contains(&Reason::MinimumAge))
    );
    assert!(result.delete.contains(&"2026-10-26".to_owned()));
}

#[test]
fn the_floors_cannot_be_configured_away() {
    let short = policy(1, 7, 0, 0, 7);
    assert!(short.validate(SourceKind::Vault).is_ok());
    let err = short.validate(SourceKind::Velero).unwrap_err();
    assert!(
        err.to_string()
            .contains("Velero backups are kept at least 30 days"),
        "{err}"
    );
    assert!(policy(1, 0, 0, 0, 1).validate(SourceKind::Vault).is_err());
    assert!(
        policy(0, 0, 0, 0, 0)
            .validate(SourceKind::Postgres)
            .is_err(),
        "a policy that keeps nothing"
    );
    assert!(
        Retention::default_for(SourceKind::Velero)
            .validate(SourceKind::Velero)
            .is_ok()
    );
    assert_eq!(
        Retention::default_for(SourceKind::Vault).min_age,
        Duration::days(7)
    );
}

#[test]
fn the_newest_verified_backup_survives_a_run_of_unverified_ones() {
    let mut history = daily(20);
    for b in history.iter_mut().take(5) {
        b.verified = false; // the last five never passed verification
    }
    let result = plan(&policy(1, 0, 0, 0, 0), &history, now());
    assert_eq!(kept(&result), ["2026-11-25", "2026-11-20"]);
    assert_eq!(result.keep[1].1, vec![Reason::NewestVerified]);
}

#[test]
fn a_backup_being_read_by_a_restore_or_drill_is_kept() {
    let mut history = daily(20);
    history[12].in_use = true;
    let result = plan(&policy(1, 0, 0, 0, 0), &history, now());
    assert_eq!(kept(&result), ["2026-11-25", "2026-11-13"]);
    assert_eq!(result.keep[1].1, vec![Reason::InUse]);
    assert_eq!(
        result.keep.len() + result.delete.len(),
        20,
        "every backup is either kept or deleted"
    );
}
