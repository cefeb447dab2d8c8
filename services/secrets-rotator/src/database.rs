//! PostgreSQL logins: a role's password is set from a SCRAM-SHA-256 verifier made here (the password never
//! reaches the server, its statement log or `pg_stat_activity`), and a login is checked by logging in.

use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::generator::scram_sha256_verifier;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("connecting as the rotator's admin: {0}")]
    Admin(String),
    #[error("setting the password of {role}: {reason}")]
    Alter { role: String, reason: String },
    #[error("logging in as {role} with the new password failed: {reason}")]
    Login { role: String, reason: String },
}

/// Sets `role`'s password (roles are checked by the policy: lowercase letters, digits, underscores).
pub async fn set_password(
    admin_url: &SecretString,
    role: &str,
    password: &SecretString,
) -> Result<(), DbError> {
    // Statement logging off: the verifier is not the password, but it has no business in logs either.
    let mut admin = PgConnectOptions::from_str(admin_url.expose_secret())
        .map_err(|e| DbError::Admin(e.to_string()))?
        .disable_statement_logging()
        .connect()
        .await
        .map_err(|e| DbError::Admin(e.to_string()))?;
    let verifier = scram_sha256_verifier(password).map_err(|e| DbError::Alter {
        role: role.to_owned(),
        reason: e.to_string(),
    })?;
    // A verifier is base64, digits, '$' and ':': nothing that ends the literal.
    let statement = format!("ALTER ROLE \"{role}\" WITH LOGIN PASSWORD '{verifier}'");
    let result = sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
        .execute(&mut admin)
        .await
        .map(drop)
        .map_err(|e| DbError::Alter {
            role: role.to_owned(),
            reason: e.to_string(),
        });
    let _ = admin.close().await;
    result
}

/// Logs in to `database_url` as `role` with `password` and runs `SELECT 1`.
pub async fn check_login(
    database_url: &str,
    role: &str,
    password: &SecretString,
) -> Result<(), DbError> {
    let failed = |reason: String| DbError::Login {
        role: role.to_owned(),
        reason,
    };
    let options = PgConnectOptions::from_str(database_url)
        .map_err(|e| failed(e.to_string()))?
        .username(role)
        .password(password.expose_secret())
        .disable_statement_logging();
    let mut conn = options.connect().await.map_err(|e| failed(e.to_string()))?;
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let _ = conn.close().await;
    (one == 1)
        .then_some(())
        .ok_or_else(|| failed("SELECT 1 did not answer 1".into()))
}
