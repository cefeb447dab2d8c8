//! The rotation state machine. Every step is recorded before the next one, so a crash at any point leaves a
//! row that says what was done; at start [`Rotator::recover`] finishes or undoes it. Invariants: Vault holds
//! one current version at every moment (versions only move forward, by check-and-set), the previous value
//! stays readable until consumers acknowledged or the deadline passed, and a failed verification restores
//! the previous value as a new version.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bus::{Envelope, Event, SecretRotated};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use service_kit::{ApiError, Shutdown};
use sqlx::PgPool;
use tokio::sync::Notify;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::database;
use crate::generator::password;
use crate::kv::{Kv, SecretData};
use crate::metrics::RotatorMetrics;
use crate::policy::{Policy, Target, Verify};

mod recovery;

pub const SOURCE: &str = "secrets-rotator";

/// One rotation, as the audit trail shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Rotation {
    pub id: Uuid,
    pub policy: String,
    pub path: String,
    /// Who asked: a person or token, or `scheduler`.
    pub actor: String,
    /// started, written, published, done, rolled_back or failed.
    pub phase: String,
    pub from_version: Option<i64>,
    pub to_version: Option<i64>,
    /// The version that put the previous value back, after a rollback.
    pub restored_version: Option<i64>,
    /// For database targets: the user now current (never its password).
    pub db_user: Option<String>,
    /// Consumers that had not acknowledged when the deadline passed.
    pub unacknowledged: Vec<String>,
    pub reason: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, policy, path, actor, phase, from_version, to_version, restored_version, db_user, \
     unacknowledged, reason, started_at, finished_at";

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("no rotation policy {0:?} (see `homestation secrets policies`)")]
    UnknownPolicy(String),
    #[error("a rotation of {0} is in progress")]
    InProgress(String),
    #[error("rotation state: {0}")]
    Db(#[from] sqlx::Error),
}

impl From<RotateError> for ApiError {
    fn from(e: RotateError) -> Self {
        match e {
            RotateError::UnknownPolicy(_) => ApiError::NotFound(e.to_string()),
            RotateError::InProgress(_) => ApiError::Conflict(e.to_string()),
            RotateError::Db(e) => ApiError::internal(e),
        }
    }
}

/// Why a rotation stopped, and what it left current.
enum Stop {
    /// Nothing consumers can see changed.
    Failed(String),
    /// The new version was current for a while; the previous value is current again.
    RolledBack { reason: String, restored: u64 },
    /// Shutdown came while consumers were being waited for: the row stays `published` for the next start.
    Interrupted,
}

/// Which of two alternating logins (users or static roles) takes the new credential: the one apps do not
/// hold now (`current`), so theirs keeps working; the first when nothing is current or there is only one.
fn next_in_turn<'a>(candidates: &'a [String], current: Option<&SecretString>) -> &'a str {
    let current = current.map(ExposeSecret::expose_secret);
    candidates
        .iter()
        .find(|c| Some(c.as_str()) != current)
        .unwrap_or(&candidates[0])
}

impl From<crate::kv::KvError> for Stop {
    fn from(e: crate::kv::KvError) -> Self {
        Stop::Failed(e.to_string())
    }
}

impl From<sqlx::Error> for Stop {
    fn from(e: sqlx::Error) -> Self {
        Stop::Failed(format!("rotation state: {e}"))
    }
}

/// A login Vault made, with the lease that ends it.
struct Lease {
    lease_id: String,
    username: String,
    password: SecretString,
}

pub struct Rotator {
    pub pool: PgPool,
    pub kv: Kv,
    pub policies: BTreeMap<String, Policy>,
    pub outbox: Arc<Notify>,
    pub http: reqwest::Client,
    pub kube: Option<kube::Client>,
    pub metrics: RotatorMetrics,
    pub shutdown: Shutdown,
}

/// What a rotation wrote over, and what it wrote.
struct Written {
    from: u64,
    old: SecretData,
    to: u64,
    new: SecretData,
}

impl Rotator {
    pub fn policy(&self, name: &str) -> Result<&Policy, RotateError> {
        self.policies
            .get(name)
            .ok_or_else(|| RotateError::UnknownPolicy(name.to_owned()))
    }

    /// The policy rotating `path`.
    pub fn policy_for_path(&self, path: &str) -> Option<&Policy> {
        self.policies.values().find(|p| p.target.path() == path)
    }

    /// Rotates now and returns the finished rotation (done, rolled back or failed, with the reason).
    pub async fn rotate(&self, name: &str, actor: &str) -> Result<Rotation, RotateError> {
        let policy = self.policy(name)?;
        let id = Uuid::now_v7();
        let inserted = sqlx::query(
            "INSERT INTO rotations (id, policy, path, actor, phase) VALUES ($1, $2, $3, $4, 'started')",
        )
        .bind(id)
        .bind(name)
        .bind(policy.target.path())
        .bind(actor)
        .execute(&self.pool)
        .await;
        match inserted {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(RotateError::InProgress(policy.target.path().to_owned()));
            }
            other => other?,
        };
        tracing::info!(policy = name, path = policy.target.path(), %actor, "rotation started");
        let outcome = match self.write_new(id, policy).await {
            Ok(written) => self.deliver_and_verify(id, policy, written).await,
            Err(stop) => Err(stop),
        };
        self.finish(id, policy, outcome).await
    }

    /// Steps up to `written`: the new value is in Vault as the version after the one read.
    async fn write_new(&self, id: Uuid, policy: &Policy) -> Result<Written, Stop> {
        let path = policy.target.path();
        let (from, old) = self.kv.current(path).await?;
        sqlx::query("UPDATE rotations SET from_version = $2 WHERE id = $1")
            .bind(id)
            .bind(from as i64)
            .execute(&self.pool)
            .await?;
        let mut new = old.clone();
        let db_user = match &policy.target {
            Target::Kv { generator, .. } => {
                for (key, value) in generator
                    .generate()
                    .map_err(|e| Stop::Failed(e.to_string()))?
                {
                    new.set(&key, &value);
                }
                None
            }
            Target::Database {
                admin_url,
                database_url,
                users,
                password_length,
                ..
            } => {
                let user = next_in_turn(users, old.get("username").as_ref()).to_owned();
                let secret = password(*password_length, Default::default())
                    .map_err(|e| Stop::Failed(e.to_string()))?;
                database::set_password(admin_url, &user, &secret)
                    .await
                    .map_err(|e| Stop::Failed(e.to_string()))?;
                database::check_login(database_url, &user, &secret)
                    .await
                    .map_err(|e| Stop::Failed(e.to_string()))?;
                new.set("username", &SecretString::from(user.clone()));
                new.set("password", &secret);
                Some(user)
            }
            Target::VaultStaticRoles {
                mount,
                roles,
                database_url,
                ..
            } => {
                // Vault rotates the static role apps do not hold now.
                let role = next_in_turn(roles, old.get("role").as_ref()).to_owned();
                let failed = |what: &str, e: vaultrs::error::ClientError| {
                    Stop::Failed(format!("Vault {what} of static role {mount}/{role}: {e}"))
                };
                vaultrs::database::static_role::rotate(self.kv.client(), mount, &role)
                    .await
                    .map_err(|e| failed("rotation", e))?;
                let creds = vaultrs::database::static_role::creds(self.kv.client(), mount, &role)
                    .await
                    .map_err(|e| failed("credentials", e))?;
                let secret = SecretString::from(creds.password);
                database::check_login(database_url, &creds.username, &secret)
                    .await
                    .map_err(|e| Stop::Failed(e.to_string()))?;
                new.set("username", &SecretString::from(creds.username.clone()));
                new.set("password", &secret);
                new.set("role", &SecretString::from(role));
                Some(creds.username)
            }
            Target::VaultDynamic {
                mount,
                role,
                database_url,
                ..
            } => {
                let issued = self
                    .vault_lease(&format!("{mount}/creds/{role}"))
                    .await
                    .map_err(Stop::Failed)?;
                database::check_login(database_url, &issued.username, &issued.password)
                    .await
                    .map_err(|e| Stop::Failed(e.to_string()))?;
                new.set("username", &SecretString::from(issued.username.clone()));
                new.set("password", &issued.password);
                new.set("lease_id", &SecretString::from(issued.lease_id));
                Some(issued.username)
            }
        };
        let to = self.kv.write(path, &new, from).await?;
        sqlx::query(
            "UPDATE rotations SET phase = 'written', to_version = $2, db_user = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(to as i64)
        .bind(&db_user)
        .execute(&self.pool)
        .await?;
        Ok(Written { from, old, to, new })
    }

    /// Asks Vault for a leased login (`GET <mount>/creds/<role>`). Through the HTTP API: the lease id, which
    /// revoking needs, is outside the `data` vaultrs returns.
    async fn vault_lease(&self, path: &str) -> Result<Lease, String> {
        let settings = &self.kv.client().settings;
        let url = format!(
            "{}/v1/{path}",
            settings.address.as_str().trim_end_matches('/')
        );
        let answer = self
            .http
            .get(url)
            .header("X-Vault-Token", &settings.token)
            .send()
            .await
            .map_err(|e| format!("Vault {path}: {e}"))?;
        let status = answer.status();
        let body: serde_json::Value = answer
            .json()
            .await
            .map_err(|e| format!("Vault {path}: {e}"))?;
        if !status.is_success() {
            return Err(format!(
                "Vault {path} answered {status}: {}",
                body["errors"]
            ));
        }
        let field = |v: &serde_json::Value| {
            v.as_str()
                .map(str::to_owned)
                .ok_or(format!("Vault {path}: an incomplete answer"))
        };
        Ok(Lease {
            lease_id: field(&body["lease_id"])?,
            username: field(&body["data"]["username"])?,
            password: SecretString::from(field(&body["data"]["password"])?),
        })
    }

    /// Revokes the lease a published dynamic login carries, if it carries one.
    async fn revoke_lease_of(&self, data: &SecretData) {
        let Some(lease) = data.get("lease_id") else {
            return;
        };
        let settings = &self.kv.client().settings;
        let url = format!(
            "{}/v1/sys/leases/revoke",
            settings.address.as_str().trim_end_matches('/')
        );
        let revoked = self
            .http
            .put(url)
            .header("X-Vault-Token", &settings.token)
            .json(&serde_json::json!({ "lease_id": lease.expose_secret() }))
            .send()
            .await
            .map(|r| r.status());
        match revoked {
            Ok(s) if s.is_success() => tracing::info!(
                lease = lease.expose_secret(),
                "previous dynamic login revoked"
            ),
            other => {
                tracing::warn!(lease = lease.expose_secret(), outcome = ?other, "revoking a dynamic login failed; it expires with its lease")
            }
        }
    }

    /// Announces `version` of `path` (and moves the rotation to `phase`) in one transaction.
    async fn announce(&self, id: Uuid, path: &str, version: u64, phase: &str) -> sqlx::Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE rotations SET phase = $2 WHERE id = $1")
            .bind(id)
            .bind(phase)
            .execute(&mut *tx)
            .await?;
        let event = Event::SecretRotated(SecretRotated {
            path: path.to_owned(),
            version,
        });
        bus::outbox::enqueue(&mut tx, &Envelope::new(SOURCE, event)).await?;
        tx.commit().await?;
        self.outbox.notify_one();
        Ok(())
    }

    /// Steps from `written`: tell consumers, roll Deployments, wait for acknowledgements, verify.
    async fn deliver_and_verify(&self, id: Uuid, policy: &Policy, w: Written) -> Result<(), Stop> {
        let path = policy.target.path();
        self.announce(id, path, w.to, "published").await?;
        if let Err(reason) = self.roll_deployments(policy, w.to).await {
            return Err(self.roll_back(id, policy, &w, reason).await);
        }
        self.await_acks(id, policy, Instant::now() + policy.ack_timeout)
            .await?;
        if let Err(reason) = self.verify(policy).await {
            return Err(self.roll_back(id, policy, &w, reason).await);
        }
        if w.from > 0
            && let Err(e) = self.kv.delete_version(path, w.from).await
        {
            tracing::warn!(path, version = w.from, error = %e, "the previous version stays readable");
        }
        // Consumers moved on: the previous dynamic login goes.
        self.revoke_lease_of(&w.old).await;
        Ok(())
    }

    /// Puts the previous value back as a new version and announces it. A single database user cannot go
    /// back (its old password is gone), so its rotation stops with the new login current.
    async fn roll_back(&self, id: Uuid, policy: &Policy, w: &Written, reason: String) -> Stop {
        let in_place = match &policy.target {
            Target::Database { users, .. } => users.len() == 1,
            Target::VaultStaticRoles { roles, .. } => roles.len() == 1,
            Target::Kv { .. } | Target::VaultDynamic { .. } => false,
        };
        if in_place {
            return Stop::Failed(format!(
                "{reason}; a single-user login cannot be rolled back, version {} stays current",
                w.to
            ));
        }
        let path = policy.target.path();
        match self.kv.write(path, &w.old, w.to).await {
            Ok(restored) => {
                // The new dynamic login is not used by anyone: it goes.
                self.revoke_lease_of(&w.new).await;
                if let Err(e) = self.announce(id, path, restored, "published").await {
                    tracing::error!(path, error = %e, "announcing the rollback failed");
                }
                tracing::warn!(path, from = w.to, restored, %reason, "rotation rolled back");
                Stop::RolledBack { reason, restored }
            }
            Err(e) => Stop::Failed(format!(
                "{reason}; rolling back failed too ({e}): version {} stays current",
                w.to
            )),
        }
    }

    async fn roll_deployments(&self, policy: &Policy, version: u64) -> Result<(), String> {
        if policy.deployments.is_empty() {
            return Ok(());
        }
        let Some(client) = &self.kube else {
            return Err("the policy rolls Deployments but kube.enabled is off".into());
        };
        for (namespace, name) in &policy.deployments {
            crate::rollout::annotate(
                client.clone(),
                namespace,
                name,
                policy.name.as_str(),
                version,
            )
            .await
            .map_err(|e| format!("rolling Deployment {namespace}/{name}: {e}"))?;
        }
        Ok(())
    }

    /// Waits until every consumer acknowledged, the deadline passed, or shutdown; records who did not.
    async fn await_acks(&self, id: Uuid, policy: &Policy, deadline: Instant) -> Result<(), Stop> {
        loop {
            let acked: Vec<String> =
                sqlx::query_scalar("SELECT consumer FROM acks WHERE rotation_id = $1")
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await?;
            let missing: Vec<String> = policy
                .consumers
                .iter()
                .filter(|c| !acked.contains(c))
                .cloned()
                .collect();
            if missing.is_empty() || Instant::now() >= deadline {
                sqlx::query("UPDATE rotations SET unacknowledged = $2 WHERE id = $1")
                    .bind(id)
                    .bind(&missing)
                    .execute(&self.pool)
                    .await?;
                if !missing.is_empty() {
                    tracing::warn!(
                        policy = policy.name.as_str(),
                        ?missing,
                        "consumers did not acknowledge in time; verifying anyway"
                    );
                }
                return Ok(());
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = self.shutdown.wait() => return Err(Stop::Interrupted),
            }
        }
    }

    /// The policy's check, and for database targets a login with what Vault now holds.
    async fn verify(&self, policy: &Policy) -> Result<(), String> {
        if let Target::Database {
            path, database_url, ..
        }
        | Target::VaultStaticRoles {
            path, database_url, ..
        }
        | Target::VaultDynamic {
            path, database_url, ..
        } = &policy.target
        {
            let (_, current) = self.kv.current(path).await.map_err(|e| e.to_string())?;
            let user = current
                .get("username")
                .ok_or("the secret has no username")?;
            let secret = current
                .get("password")
                .ok_or("the secret has no password")?;
            database::check_login(database_url, user.expose_secret(), &secret)
                .await
                .map_err(|e| e.to_string())?;
        }
        match &policy.verify {
            None => Ok(()),
            Some(Verify::Http { url, status }) => {
                let answer = self
                    .http
                    .get(url)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await
                    .map_err(|e| format!("verification probe {url}: {e}"))?;
                if answer.status().as_u16() == *status {
                    Ok(())
                } else {
                    Err(format!(
                        "verification probe {url} answered {}, expected {status}",
                        answer.status().as_u16()
                    ))
                }
            }
        }
    }

    async fn finish(
        &self,
        id: Uuid,
        policy: &Policy,
        outcome: Result<(), Stop>,
    ) -> Result<Rotation, RotateError> {
        let (phase, reason, restored) = match outcome {
            // Left `published` for recovery to finish.
            Err(Stop::Interrupted) => {
                return Ok(self.get(id).await?.expect("the rotation row exists"));
            }
            Ok(()) => ("done", None, None),
            Err(Stop::Failed(reason)) => ("failed", Some(reason), None),
            Err(Stop::RolledBack { reason, restored }) => {
                ("rolled_back", Some(reason), Some(restored as i64))
            }
        };
        let rotation: Rotation = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE rotations SET phase = $2, reason = $3, restored_version = $4, finished_at = now()
             WHERE id = $1 RETURNING {COLUMNS}"
        )))
        .bind(id)
        .bind(phase)
        .bind(&reason)
        .bind(restored)
        .fetch_one(&self.pool)
        .await?;
        self.metrics.rotated(policy.name.as_str(), phase);
        match phase {
            "done" => {
                tracing::info!(policy = policy.name.as_str(), path = %rotation.path, version = ?rotation.to_version, "rotation done")
            }
            _ => {
                tracing::warn!(policy = policy.name.as_str(), path = %rotation.path, phase, reason = reason.as_deref().unwrap_or(""), "rotation stopped")
            }
        }
        Ok(rotation)
    }

    pub async fn get(&self, id: Uuid) -> sqlx::Result<Option<Rotation>> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM rotations WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    /// The audit trail, newest first, of one path or all.
    pub async fn history(&self, path: Option<&str>, limit: i64) -> sqlx::Result<Vec<Rotation>> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM rotations WHERE $1::text IS NULL OR path = $1 ORDER BY started_at DESC LIMIT $2"
        )))
        .bind(path)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }
}

/// Records consumers' acknowledgements (`secrets.v1.acknowledged`); idempotent, as redeliveries need.
pub struct AckHandler {
    pub pool: PgPool,
}

impl bus::Handler for AckHandler {
    async fn handle(&self, envelope: Envelope) -> Result<(), bus::HandleError> {
        let Event::SecretAcknowledged(ack) = envelope.event else {
            return Ok(());
        };
        sqlx::query(
            "INSERT INTO acks (rotation_id, consumer)
             SELECT id, $3 FROM rotations WHERE path = $1 AND to_version = $2
             ON CONFLICT DO NOTHING",
        )
        .bind(&ack.path)
        .bind(ack.version as i64)
        .bind(&ack.consumer)
        .execute(&self.pool)
        .await
        .map_err(|e| bus::HandleError::Retry(e.to_string()))?;
        Ok(())
    }
}
