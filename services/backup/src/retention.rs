//! Which backups a policy keeps. A pure function of the history and the clock, so every rule is tested on
//! synthetic histories; the catalog applies the plan.
//!
//! A backup is kept if any rule keeps it, and each kept backup says why:
//! - it is younger than the policy's minimum age (never below the floor for its source: Velero 30 days,
//!   Vault 7 days);
//! - it is the newest *verified* backup (never delete the last copy known to restore);
//! - a restore or a drill is reading it;
//! - it is among the last N, or the newest of one of the last D days, W ISO weeks or M months that have backups.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Datelike, Duration, Utc};

/// What a backup was taken of; some sources have a floor on how long their backups are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Postgres,
    Vault,
    Velero,
    JetStream,
    Folder,
}

impl SourceKind {
    /// The least minimum age a policy may set for this source (what HomeStation's users asked for).
    pub fn floor(self) -> Duration {
        match self {
            SourceKind::Velero => Duration::days(30),
            SourceKind::Vault => Duration::days(7),
            _ => Duration::zero(),
        }
    }

    /// How the source is named in config, events and object keys.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Postgres => "postgres",
            SourceKind::Vault => "vault",
            SourceKind::Velero => "velero",
            SourceKind::JetStream => "jetstream",
            SourceKind::Folder => "folder",
        }
    }

    fn name(self) -> &'static str {
        match self {
            SourceKind::Postgres => "PostgreSQL",
            SourceKind::Vault => "Vault",
            SourceKind::Velero => "Velero",
            SourceKind::JetStream => "JetStream",
            SourceKind::Folder => "folder",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    pub keep_last: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
    pub min_age: Duration,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct RetentionError(String);

impl Retention {
    /// The defaults for a source: a week of dailies, a month of weeklies, a year of monthlies, and the floor.
    pub fn default_for(kind: SourceKind) -> Self {
        Self {
            keep_last: 3,
            keep_daily: 7,
            keep_weekly: 4,
            keep_monthly: 12,
            min_age: kind.floor(),
        }
    }

    /// Refuses a policy that would delete backups younger than its source's floor, or keep nothing.
    pub fn validate(&self, kind: SourceKind) -> Result<(), RetentionError> {
        if self.min_age < kind.floor() {
            return Err(RetentionError(format!(
                "{} backups are kept at least {} days; min_age of {} days is too short",
                kind.name(),
                kind.floor().num_days(),
                self.min_age.num_days()
            )));
        }
        if self.keep_last == 0
            && self.keep_daily == 0
            && self.keep_weekly == 0
            && self.keep_monthly == 0
            && self.min_age.is_zero()
        {
            return Err(RetentionError(
                "this policy would keep nothing: set keep_last or another rule".into(),
            ));
        }
        Ok(())
    }
}

/// A backup as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    pub id: String,
    pub taken_at: DateTime<Utc>,
    pub verified: bool,
    /// A restore or a drill is reading it right now.
    pub in_use: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    MinimumAge,
    NewestVerified,
    InUse,
    Last,
    Daily,
    Weekly,
    Monthly,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Kept backups, newest first, with every rule that keeps each.
    pub keep: Vec<(String, Vec<Reason>)>,
    /// Backups to delete, newest first.
    pub delete: Vec<String>,
}

/// Applies `policy` to `history` at `now`.
pub fn plan(policy: &Retention, history: &[Backup], now: DateTime<Utc>) -> Plan {
    let mut newest_first: Vec<&Backup> = history.iter().collect();
    newest_first.sort_by(|a, b| b.taken_at.cmp(&a.taken_at).then_with(|| b.id.cmp(&a.id)));
    let mut reasons: BTreeMap<String, HashSet<Reason>> = BTreeMap::new();
    let mut keep = |id: &str, reason: Reason| {
        reasons.entry(id.to_owned()).or_default().insert(reason);
    };
    for b in &newest_first {
        if now - b.taken_at < policy.min_age {
            keep(&b.id, Reason::MinimumAge);
        }
        if b.in_use {
            keep(&b.id, Reason::InUse);
        }
    }
    if let Some(b) = newest_first.iter().find(|b| b.verified) {
        keep(&b.id, Reason::NewestVerified);
    }
    for b in newest_first.iter().take(policy.keep_last as usize) {
        keep(&b.id, Reason::Last);
    }
    // The newest backup of each of the last N periods that have any.
    let mut by_period =
        |count: u32, reason: Reason, period: &dyn Fn(&DateTime<Utc>) -> (i32, u32)| {
            let mut seen = HashSet::new();
            for b in &newest_first {
                if seen.len() == count as usize {
                    break;
                }
                if seen.insert(period(&b.taken_at)) {
                    keep(&b.id, reason);
                }
            }
        };
    by_period(policy.keep_daily, Reason::Daily, &|t| {
        (t.year(), t.ordinal())
    });
    by_period(policy.keep_weekly, Reason::Weekly, &|t| {
        (t.iso_week().year(), t.iso_week().week())
    });
    by_period(policy.keep_monthly, Reason::Monthly, &|t| {
        (t.year(), t.month())
    });

    let mut result = Plan::default();
    for b in newest_first {
        match reasons.get(&b.id) {
            Some(why) => {
                let mut why: Vec<Reason> = why.iter().copied().collect();
                why.sort();
                result.keep.push((b.id.clone(), why));
            }
            None => result.delete.push(b.id.clone()),
        }
    }
    result
}
