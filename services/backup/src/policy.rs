//! Backup policies: declared in the service's config (so they live in Git with the rest of the lab), parsed
//! once at start into [`Policy`], which cannot hold a bad schedule, a retention below its source's floor, or a
//! drill check its source cannot run.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use service_kit::names::Name;
use utoipa::ToSchema;

use crate::retention::{Retention, SourceKind};
use crate::sources::SourceSettings;
use service_kit::cron::Schedule;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// A DNS-1123 label: it names the policy in the API, in metrics and in object keys.
    pub name: String,
    /// Cron, five fields in UTC (`0 3 * * *`) or `@daily`; without one the policy runs only when asked.
    pub schedule: Option<String>,
    pub source: SourceSettings,
    /// Defaults to the service's `s3.bucket`.
    pub bucket: Option<String>,
    /// Defaults to `<source kind>/<policy name>`.
    pub prefix: Option<String>,
    #[serde(default)]
    pub retention: RetentionSettings,
    /// Further tries after a failed run, each after twice the previous delay.
    #[serde(default = "default_retries")]
    pub retries: u32,
    #[serde(default = "default_retry_delay")]
    pub retry_delay_secs: u64,
    /// Download and check every backup right after it is stored (a backup is "verified" only once checked).
    #[serde(default = "default_true")]
    pub verify: bool,
    pub drill: Option<DrillSettings>,
}

fn default_retries() -> u32 {
    2
}
fn default_retry_delay() -> u64 {
    60
}
fn default_true() -> bool {
    true
}

/// Unset fields take the source's defaults; `min_age_days` can never go below the source's floor.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    pub keep_last: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub min_age_days: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillSettings {
    /// When the drill restores the newest backup and checks it (cron, UTC).
    pub schedule: String,
    #[serde(default)]
    pub checks: Vec<Check>,
}

/// What a drill checks after restoring into a scratch database or folder.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Check {
    /// A query on the restored database returning one integer, at least `min` (`SELECT count(*) FROM nodes`).
    Query { sql: String, min: i64 },
    /// Files that must exist in the restored folder, relative to it.
    Files {
        #[schema(value_type = Vec<String>)]
        paths: Vec<PathBuf>,
    },
    /// The restored data holds at least this many bytes.
    MinBytes { bytes: u64 },
}

#[derive(Debug, Clone)]
pub struct Drill {
    pub schedule: Schedule,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub name: Name,
    pub kind: SourceKind,
    pub source: SourceSettings,
    pub schedule: Option<Schedule>,
    pub bucket: String,
    pub prefix: String,
    pub retention: Retention,
    pub retries: u32,
    pub retry_delay: Duration,
    pub verify: bool,
    pub drill: Option<Drill>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("backup policy {policy:?}: {reason}")]
pub struct PolicyError {
    pub policy: String,
    pub reason: String,
}

impl Policy {
    pub fn parse(settings: PolicySettings, default_bucket: &str) -> Result<Self, PolicyError> {
        let error = |reason: String| PolicyError {
            policy: settings.name.clone(),
            reason,
        };
        let name = Name::parse("name", &settings.name).map_err(|e| error(e.to_string()))?;
        let kind = settings.source.kind();
        let schedule = settings
            .schedule
            .as_deref()
            .map(str::parse::<Schedule>)
            .transpose()
            .map_err(|e| error(e.to_string()))?;
        let defaults = Retention::default_for(kind);
        let r = &settings.retention;
        let retention = Retention {
            keep_last: r.keep_last.unwrap_or(defaults.keep_last),
            keep_daily: r.keep_daily.unwrap_or(defaults.keep_daily),
            keep_weekly: r.keep_weekly.unwrap_or(defaults.keep_weekly),
            keep_monthly: r.keep_monthly.unwrap_or(defaults.keep_monthly),
            min_age: r
                .min_age_days
                .map_or(defaults.min_age, chrono::Duration::days),
        };
        retention.validate(kind).map_err(|e| error(e.to_string()))?;
        let drill = match &settings.drill {
            None => None,
            Some(d) => {
                for check in &d.checks {
                    match (check, kind) {
                        (Check::Query { .. }, SourceKind::Postgres) => {}
                        (Check::Query { .. }, _) => {
                            return Err(error("a query check needs a postgres source".into()));
                        }
                        (Check::Files { .. }, SourceKind::Folder) => {}
                        (Check::Files { .. }, _) => {
                            return Err(error("a files check needs a folder source".into()));
                        }
                        (Check::MinBytes { .. }, _) => {}
                    }
                }
                Some(Drill {
                    schedule: d
                        .schedule
                        .parse()
                        .map_err(|e: service_kit::cron::CronError| error(e.to_string()))?,
                    checks: d.checks.clone(),
                })
            }
        };
        let bucket = settings
            .bucket
            .clone()
            .unwrap_or_else(|| default_bucket.to_owned());
        if bucket.is_empty() {
            return Err(error(
                "no bucket: set `bucket` or the service's `s3.bucket`".into(),
            ));
        }
        Ok(Self {
            prefix: settings
                .prefix
                .clone()
                .unwrap_or_else(|| format!("{}/{}", kind.as_str(), name.as_str()))
                .trim_matches('/')
                .to_owned(),
            name,
            kind,
            source: settings.source,
            schedule,
            bucket,
            retention,
            retries: settings.retries,
            retry_delay: Duration::from_secs(settings.retry_delay_secs),
            verify: settings.verify,
            drill,
        })
    }

    /// Where a run's object goes: `<prefix>/<date>/<run id>.hsbk`.
    pub fn object_key(&self, run: uuid::Uuid, at: chrono::DateTime<chrono::Utc>) -> String {
        format!("{}/{}/{run}.hsbk", self.prefix, at.format("%Y-%m-%d"))
    }
}

/// Parses every policy and refuses two with one name.
pub fn parse_all(
    settings: &[PolicySettings],
    default_bucket: &str,
) -> Result<Vec<Policy>, PolicyError> {
    let mut policies: Vec<Policy> = Vec::new();
    for s in settings {
        let policy = Policy::parse(s.clone(), default_bucket)?;
        if policies.iter().any(|p| p.name == policy.name) {
            return Err(PolicyError {
                policy: s.name.clone(),
                reason: "two policies have this name".into(),
            });
        }
        policies.push(policy);
    }
    Ok(policies)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: serde_json::Value) -> Result<Policy, PolicyError> {
        Policy::parse(serde_json::from_value(value).unwrap(), "backups")
    }

    #[test]
    fn defaults_follow_the_source_and_its_floor() {
        let vault =
            parse(json!({ "name": "vault", "schedule": "@daily", "source": { "kind": "vault" } }))
                .unwrap();
        assert_eq!(vault.retention.min_age, chrono::Duration::days(7));
        assert_eq!(vault.prefix, "vault/vault");
        assert_eq!(vault.bucket, "backups");
        assert_eq!((vault.retries, vault.verify), (2, true));
        let too_short = parse(json!({
            "name": "vault", "source": { "kind": "vault" }, "retention": { "min_age_days": 3 }
        }))
        .unwrap_err();
        assert!(too_short.reason.contains("at least 7 days"), "{too_short}");
        let velero = parse(json!({ "name": "cluster", "source": { "kind": "velero", "included_namespaces": ["apps"] } })).unwrap();
        assert_eq!(
            velero.retention.min_age,
            chrono::Duration::days(30),
            "Velero backups live 30 days"
        );
        let velero_short = parse(json!({
            "name": "cluster", "source": { "kind": "velero" }, "retention": { "min_age_days": 14 }
        }))
        .unwrap_err();
        assert!(
            velero_short.reason.contains("at least 30 days"),
            "{velero_short}"
        );
    }

    #[test]
    fn bad_policies_say_what_is_wrong() {
        for (policy, says) in [
            (
                json!({ "name": "Bad_Name", "source": { "kind": "folder", "path": "/srv" } }),
                "name",
            ),
            (
                json!({ "name": "x", "schedule": "every day", "source": { "kind": "folder", "path": "/srv" } }),
                "fields",
            ),
            (
                json!({ "name": "x", "source": { "kind": "folder", "path": "/srv" },
                        "drill": { "schedule": "@weekly", "checks": [{ "kind": "query", "sql": "SELECT 1", "min": 1 }] } }),
                "needs a postgres source",
            ),
            (
                json!({ "name": "x", "bucket": "", "source": { "kind": "folder", "path": "/srv" } }),
                "no bucket",
            ),
        ] {
            let e = parse(policy).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
        let twice: Vec<PolicySettings> = serde_json::from_value(json!([
            { "name": "x", "source": { "kind": "folder", "path": "/a" } },
            { "name": "x", "source": { "kind": "folder", "path": "/b" } }
        ]))
        .unwrap();
        assert!(
            parse_all(&twice, "b")
                .unwrap_err()
                .reason
                .contains("two policies")
        );
    }

    #[test]
    fn object_keys_sit_under_the_prefix_by_date() {
        let p = parse(json!({ "name": "inv", "prefix": "/pg/inv/", "source": { "kind": "postgres", "url": "postgres://x@h/inv" } })).unwrap();
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-26T03:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            p.object_key(uuid::Uuid::nil(), at),
            format!("pg/inv/2026-11-26/{}.hsbk", uuid::Uuid::nil())
        );
    }
}
