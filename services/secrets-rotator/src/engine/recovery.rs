//! After a crash and on a clock: finishing or undoing the rotations a dead process left, and rotating
//! by schedule or by age.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;

use super::{COLUMNS, RotateError, Rotation, Rotator, Stop, Written};
use crate::policy::Policy;

impl Rotator {
    /// At start: every rotation a dead process left unfinished is finished or undone. Before consumers were
    /// told (`started`, `written`), whatever reached Vault is undone; after (`published`), the rotation is
    /// verified and kept, or rolled back.
    ///
    /// Only rotations started before `before` (the database's clock when this process began serving) are
    /// taken: one an operator started through this process's API in its first moments is not interrupted,
    /// it is running, and resuming it too would write over it.
    pub async fn recover(
        &self,
        before: chrono::DateTime<chrono::Utc>,
    ) -> Result<usize, RotateError> {
        let unfinished: Vec<Rotation> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM rotations
             WHERE phase IN ('started', 'written', 'published') AND started_at < $1 ORDER BY started_at"
        )))
        .bind(before)
        .fetch_all(&self.pool)
        .await?;
        for r in &unfinished {
            let Ok(policy) = self.policy(&r.policy) else {
                sqlx::query("UPDATE rotations SET phase = 'failed', reason = 'interrupted, and the policy is gone', finished_at = now() WHERE id = $1")
                    .bind(r.id)
                    .execute(&self.pool)
                    .await?;
                continue;
            };
            let outcome = self.resume(r, policy).await;
            let finished = self.finish(r.id, policy, outcome).await?;
            tracing::warn!(policy = %r.policy, was = %r.phase, now = %finished.phase, "an interrupted rotation was recovered");
        }
        Ok(unfinished.len())
    }

    async fn resume(&self, r: &Rotation, policy: &Policy) -> Result<(), Stop> {
        let path = policy.target.path();
        let Some(from) = r.from_version.map(|v| v as u64) else {
            return Err(Stop::Failed(
                "interrupted before anything was read or written".into(),
            ));
        };
        let (current, _) = self.kv.current(path).await?;
        let old = self.kv.version(path, from).await?;
        let new = self.kv.version(path, current).await?;
        let written = Written {
            from,
            old,
            to: current,
            new,
        };
        if current == from {
            return Err(Stop::Failed(
                "interrupted before the new version was written; nothing changed".into(),
            ));
        }
        let reason = "interrupted before consumers were told".to_owned();
        match r.phase.as_str() {
            "published" => {
                let deadline = Instant::now()
                    + policy
                        .ack_timeout
                        .saturating_sub((Utc::now() - r.started_at).to_std().unwrap_or_default());
                self.await_acks(r.id, policy, deadline).await?;
                match self.verify(policy).await {
                    Ok(()) => Ok(()),
                    Err(why) => Err(self.roll_back(r.id, policy, &written, why).await),
                }
            }
            _ => Err(self.roll_back(r.id, policy, &written, reason).await),
        }
    }

    /// Rotates when the secret's current version is older than the policy's `max_age`; returns whether it did.
    pub async fn rotate_if_older(&self, name: &str) -> Result<Option<Rotation>, RotateError> {
        let policy = self.policy(name)?;
        let Some(max_age) = policy.max_age else {
            return Ok(None);
        };
        let age = match self.kv.age(policy.target.path()).await {
            Ok(age) => age,
            Err(e) => {
                tracing::warn!(policy = name, error = %e, "cannot tell the secret's age; trying again later");
                return Ok(None);
            }
        };
        if age.is_some_and(|a| a < max_age) {
            return Ok(None);
        }
        self.rotate(name, "max-age").await.map(Some)
    }

    /// Rotates each policy when its cron says, and checks ages every five minutes, until shutdown.
    pub async fn schedule(self: Arc<Self>) -> Result<(), std::convert::Infallible> {
        let every_five_minutes: service_kit::cron::Schedule =
            "*/5 * * * *".parse().expect("a valid schedule");
        let mut jobs = Vec::new();
        for (name, p) in &self.policies {
            if let Some(s) = &p.schedule {
                jobs.push(((name.clone(), false), s.clone()));
            }
            if p.max_age.is_some() {
                jobs.push(((name.clone(), true), every_five_minutes.clone()));
            }
        }
        let rotator = self.clone();
        service_kit::cron::run_schedules(jobs, self.shutdown.clone(), move |(name, by_age)| {
            let rotator = rotator.clone();
            let (name, by_age) = (name.clone(), *by_age);
            async move {
                tokio::spawn(async move {
                    let outcome = if by_age {
                        rotator.rotate_if_older(&name).await.map(drop)
                    } else {
                        rotator.rotate(&name, "scheduler").await.map(drop)
                    };
                    if let Err(e) = outcome {
                        tracing::warn!(policy = %name, error = %e, "scheduled rotation did not start");
                    }
                });
            }
        })
        .await
    }
}
