//! Restore drills: the newest backup restored into scratch, the policy's checks run against it, the
//! result recorded and published.

use super::restore::{drop_database, recreate_database};
use super::*;

impl Engine {
    /// Restores the policy's newest backup into a scratch database or folder, runs the policy's checks,
    /// records the result and its time, and publishes `backup.v1.drill.passed|failed`.
    pub async fn drill(&self, policy: &str) -> Result<DrillRecord> {
        let entry = self.entry(policy)?;
        let backup = catalog::latest_succeeded(&self.pool, policy)
            .await?
            .ok_or_else(|| {
                EngineError::Conflict(format!("policy {policy} has no backup to drill"))
            })?;
        let digests = backup
            .digests()
            .ok_or_else(|| EngineError::Conflict("no digests".into()))?;
        let reading = self.reading(backup.id, "drill").await?;
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO drills (id, policy, backup_id, status) VALUES ($1, $2, $3, 'running')",
        )
        .bind(id)
        .bind(policy)
        .bind(backup.id)
        .execute(&self.pool)
        .await?;
        let started = Instant::now();
        let outcome = self.drill_checks(entry, &backup, &digests, id).await;
        reading.done().await;
        let duration_ms = started.elapsed().as_millis() as u64;
        let (checks, reason) = match outcome {
            Ok(checks) => {
                let failed: Vec<String> = checks
                    .iter()
                    .filter(|c| !c.passed)
                    .map(|c| format!("{:?} found {}", c.check, c.found))
                    .collect();
                let reason =
                    (!failed.is_empty()).then(|| format!("checks failed: {}", failed.join("; ")));
                (checks, reason)
            }
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        let passed = reason.is_none();
        let mut tx = self.pool.begin().await?;
        let record: DrillRecord = sqlx::query_as(
            "UPDATE drills SET status = $2, reason = $3, checks = $4, duration_ms = $5, finished_at = now()
             WHERE id = $1 RETURNING id, policy, backup_id, status, reason, checks, duration_ms, started_at, finished_at",
        )
        .bind(id)
        .bind(if passed { "passed" } else { "failed" })
        .bind(&reason)
        .bind(sqlx::types::Json(&checks))
        .bind(duration_ms as i64)
        .fetch_one(&mut *tx)
        .await?;
        let drill = BackupDrill {
            policy: policy.to_owned(),
            backup_id: backup.id,
            duration_ms,
            reason: reason.clone(),
        };
        let event = if passed {
            Event::BackupDrillPassed(drill)
        } else {
            Event::BackupDrillFailed(drill)
        };
        bus::outbox::enqueue(&mut tx, &Envelope::new(catalog::SOURCE, event)).await?;
        tx.commit().await?;
        self.outbox.notify_one();
        if passed {
            catalog::mark_verified(&self.pool, backup.id).await?;
        }
        self.metrics.drilled(policy, passed, Utc::now());
        tracing::info!(policy, backup = %backup.id, passed, duration_ms, reason = reason.as_deref().unwrap_or(""), "restore drill finished");
        Ok(record)
    }

    async fn drill_checks(
        &self,
        entry: &Entry,
        backup: &Backup,
        digests: &Digests,
        drill: Uuid,
    ) -> Result<Vec<CheckResult>> {
        let checks = entry
            .policy
            .drill
            .as_ref()
            .map(|d| d.checks.clone())
            .unwrap_or_default();
        let short = &drill.simple().to_string()[24..];
        let mut results = Vec::new();
        if entry.policy.kind == SourceKind::Postgres {
            let url = Self::postgres_url(entry)?;
            let scratch = format!("hs_drill_{short}");
            let mut admin = Self::server(url).await?;
            recreate_database(&mut admin, &scratch).await?;
            let scratch_url = postgres::with_database(url, &scratch);
            let outcome = async {
                self.restore_into_database(backup, digests, &scratch_url)
                    .await?;
                use secrecy::ExposeSecret;
                let mut db = PgConnection::connect(scratch_url.expose_secret())
                    .await
                    .map_err(|e| io_failed("connecting to the scratch database", e))?;
                for check in &checks {
                    results
                        .push(run_check(check, Some(&mut db), None, digests.plaintext_bytes).await);
                }
                let _ = db.close().await;
                Ok::<_, EngineError>(())
            }
            .await;
            let _ = drop_database(&mut admin, &scratch).await;
            outcome?;
        } else {
            let dir = self.scratch.join(format!("drill-{short}"));
            std::fs::create_dir_all(&dir)
                .map_err(|e| io_failed(&format!("creating {}", dir.display()), e))?;
            let outcome = self.write_into(entry, backup, digests, &dir).await;
            if outcome.is_ok() {
                for check in &checks {
                    results.push(run_check(check, None, Some(&dir), digests.plaintext_bytes).await);
                }
            }
            let _ = std::fs::remove_dir_all(&dir);
            outcome?;
        }
        Ok(results)
    }
}

async fn run_check(
    check: &Check,
    db: Option<&mut PgConnection>,
    dir: Option<&Path>,
    bytes: u64,
) -> CheckResult {
    let (passed, found) = match (check, db, dir) {
        (Check::Query { sql, min }, Some(db), _) => {
            match sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.clone()))
                .fetch_one(db)
                .await
            {
                Ok(n) => (n >= *min, n.to_string()),
                Err(e) => (false, format!("the query failed: {e}")),
            }
        }
        (Check::Files { paths }, _, Some(dir)) => {
            let missing: Vec<String> = paths
                .iter()
                .filter(|p| !dir.join(p).exists())
                .map(|p| p.display().to_string())
                .collect();
            if missing.is_empty() {
                (true, format!("all {} files", paths.len()))
            } else {
                (false, format!("missing {}", missing.join(", ")))
            }
        }
        (Check::MinBytes { bytes: min }, _, _) => (bytes >= *min, format!("{bytes} bytes")),
        _ => (false, "this check does not apply to this source".into()),
    };
    CheckResult {
        check: check.clone(),
        passed,
        found,
    }
}
