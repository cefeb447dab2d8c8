//! Rotation policies, declared in the service's config and parsed once at start into [`Policy`]: what to
//! rotate, when, who consumes it and must acknowledge, which Deployments roll, and how to verify.

use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use service_kit::cron::Schedule;
use service_kit::names::Name;

use crate::generator::Generator;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    pub name: String,
    pub target: TargetSettings,
    /// Cron (UTC); without one (and without `max_age_hours`) the policy rotates only when asked.
    pub schedule: Option<String>,
    /// Rotate when the secret's current version is older than this (checked every five minutes).
    pub max_age_hours: Option<u64>,
    /// Services that must acknowledge a new version (with `secrets-client`) before the old one goes.
    #[serde(default)]
    pub consumers: Vec<String>,
    /// Deployments (`namespace/name`) whose pods roll when the secret changes.
    #[serde(default)]
    pub deployments: Vec<String>,
    pub verify: Option<Verify>,
    /// How long consumers have to acknowledge; then the rotation is verified anyway.
    #[serde(default = "default_ack_timeout")]
    pub ack_timeout_secs: u64,
}

fn default_ack_timeout() -> u64 {
    300
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TargetSettings {
    /// A KV v2 secret: its generated keys get new values, its other keys are kept.
    Kv { path: String, generator: Generator },
    /// A PostgreSQL login published at a KV v2 `path` as `{username, password}`. Two `users` rotate
    /// alternately (the one not in use gets the new password, then becomes current), so the login apps hold
    /// keeps working; one user is rotated in place, which fails new connections until apps reload.
    Database {
        path: String,
        /// The rotator's own connection, allowed to ALTER the users' roles.
        admin_url: SecretString,
        /// Where apps connect, without credentials (`postgres://db.lab:5432/shop`); used to verify a login.
        database_url: String,
        users: Vec<String>,
        #[serde(default = "default_password_length")]
        password_length: usize,
    },
    /// Static roles of Vault's database secrets engine: Vault owns the passwords. Two roles alternate like
    /// two users (the one apps do not hold is rotated by Vault, checked by logging in, then published at
    /// `path` as `{username, password, role}`); one role is rotated in place.
    VaultStaticRoles {
        path: String,
        #[serde(default = "default_database_mount")]
        mount: String,
        roles: Vec<String>,
        database_url: String,
    },
    /// Dynamic credentials of Vault's database secrets engine: each rotation asks Vault for a new login under
    /// `role` (a new database user with a lease), publishes it at `path` as `{username, password, lease_id}`,
    /// and revokes the previous login's lease once consumers moved on.
    VaultDynamic {
        path: String,
        #[serde(default = "default_database_mount")]
        mount: String,
        role: String,
        database_url: String,
    },
}

fn default_database_mount() -> String {
    "database".into()
}

fn default_password_length() -> usize {
    32
}

/// How a rotation is checked once consumers have the new version.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Verify {
    /// The consumer's health endpoint answers `status` (200 unless set).
    Http {
        url: String,
        #[serde(default = "default_status")]
        status: u16,
    },
}

fn default_status() -> u16 {
    200
}

#[derive(Debug, Clone)]
pub enum Target {
    VaultDynamic {
        path: String,
        mount: String,
        role: String,
        database_url: String,
    },
    VaultStaticRoles {
        path: String,
        mount: String,
        roles: Vec<String>,
        database_url: String,
    },
    Kv {
        path: String,
        generator: Generator,
    },
    Database {
        path: String,
        admin_url: SecretString,
        database_url: String,
        users: Vec<String>,
        password_length: usize,
    },
}

impl Target {
    pub fn path(&self) -> &str {
        match self {
            Target::Kv { path, .. }
            | Target::Database { path, .. }
            | Target::VaultStaticRoles { path, .. }
            | Target::VaultDynamic { path, .. } => path,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Target::Kv { .. } => "kv",
            Target::Database { users, .. } if users.len() == 2 => "database (alternating users)",
            Target::Database { .. } => "database (single user)",
            Target::VaultStaticRoles { roles, .. } if roles.len() == 2 => {
                "vault static roles (alternating)"
            }
            Target::VaultStaticRoles { .. } => "vault static role (single)",
            Target::VaultDynamic { .. } => "vault dynamic credentials",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub name: Name,
    pub target: Target,
    pub schedule: Option<Schedule>,
    pub max_age: Option<chrono::Duration>,
    pub consumers: Vec<String>,
    pub deployments: Vec<(String, String)>,
    pub verify: Option<Verify>,
    pub ack_timeout: Duration,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("rotation policy {policy:?}: {reason}")]
pub struct PolicyError {
    pub policy: String,
    pub reason: String,
}

fn valid_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.ends_with('/')
        && path.split('/').all(|s| {
            !s.is_empty()
                && s != ".."
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
}

fn valid_role(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= 63
        && user
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !user.as_bytes()[0].is_ascii_digit()
}

impl Policy {
    pub fn parse(s: PolicySettings) -> Result<Self, PolicyError> {
        let error = |reason: String| PolicyError {
            policy: s.name.clone(),
            reason,
        };
        let name = Name::parse("name", &s.name).map_err(|e| error(e.to_string()))?;
        let target = match s.target.clone() {
            TargetSettings::Kv { path, generator } => {
                generator.validate().map_err(|e| error(e.to_string()))?;
                Target::Kv { path, generator }
            }
            TargetSettings::Database {
                path,
                admin_url,
                database_url,
                users,
                password_length,
            } => {
                if users.is_empty() || users.len() > 2 || (users.len() == 2 && users[0] == users[1])
                {
                    return Err(error(
                        "a database target names two users (alternating) or one (in place)".into(),
                    ));
                }
                if let Some(bad) = users.iter().find(|u| !valid_role(u)) {
                    return Err(error(format!(
                        "user {bad:?}: use lowercase letters, digits and underscores"
                    )));
                }
                if database_url.contains('@') {
                    return Err(error(
                        "database_url must not hold credentials: the rotated login is added to it"
                            .into(),
                    ));
                }
                crate::generator::password(password_length, Default::default())
                    .map_err(|e| error(e.to_string()))?;
                Target::Database {
                    path,
                    admin_url,
                    database_url,
                    users,
                    password_length,
                }
            }
            TargetSettings::VaultStaticRoles {
                path,
                mount,
                roles,
                database_url,
            } => {
                if roles.is_empty() || roles.len() > 2 || (roles.len() == 2 && roles[0] == roles[1])
                {
                    return Err(error(
                        "a vault_static_roles target names two roles (alternating) or one (in place)".into(),
                    ));
                }
                if database_url.contains('@') {
                    return Err(error(
                        "database_url must not hold credentials: the rotated login is added to it"
                            .into(),
                    ));
                }
                Target::VaultStaticRoles {
                    path,
                    mount,
                    roles,
                    database_url,
                }
            }
            TargetSettings::VaultDynamic {
                path,
                mount,
                role,
                database_url,
            } => {
                if database_url.contains('@') {
                    return Err(error(
                        "database_url must not hold credentials: the rotated login is added to it"
                            .into(),
                    ));
                }
                Target::VaultDynamic {
                    path,
                    mount,
                    role,
                    database_url,
                }
            }
        };
        if !valid_path(target.path()) {
            return Err(error(format!(
                "path {:?}: segments of letters, digits, '-', '_' or '.', no leading or trailing '/'",
                target.path()
            )));
        }
        let schedule = s
            .schedule
            .as_deref()
            .map(str::parse::<Schedule>)
            .transpose()
            .map_err(|e| error(e.to_string()))?;
        let deployments = s
            .deployments
            .iter()
            .map(|d| {
                d.split_once('/')
                    .filter(|(ns, name)| !ns.is_empty() && !name.is_empty())
                    .map(|(ns, name)| (ns.to_owned(), name.to_owned()))
                    .ok_or_else(|| error(format!("deployment {d:?}: write namespace/name")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        for c in &s.consumers {
            Name::parse("consumers", c).map_err(|e| error(e.to_string()))?;
        }
        let max_age = match s.max_age_hours {
            Some(0) => return Err(error("max_age_hours must be at least 1".into())),
            Some(h) => Some(chrono::Duration::hours(
                i64::try_from(h).unwrap_or(i64::MAX / 3_600_000),
            )),
            None => None,
        };
        Ok(Self {
            name,
            target,
            schedule,
            max_age,
            consumers: s.consumers,
            deployments,
            verify: s.verify,
            ack_timeout: Duration::from_secs(s.ack_timeout_secs),
        })
    }
}

/// Parses every policy; refuses two with one name or one path.
pub fn parse_all(settings: &[PolicySettings]) -> Result<Vec<Policy>, PolicyError> {
    let mut policies: Vec<Policy> = Vec::new();
    for s in settings {
        let p = Policy::parse(s.clone())?;
        if let Some(other) = policies
            .iter()
            .find(|o| o.name == p.name || o.target.path() == p.target.path())
        {
            return Err(PolicyError {
                policy: s.name.clone(),
                reason: format!("policy {} has the same name or path", other.name.as_str()),
            });
        }
        policies.push(p);
    }
    Ok(policies)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<Policy, PolicyError> {
        Policy::parse(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn bad_policies_say_what_is_wrong() {
        let kv = |path: &str| json!({ "name": "x", "target": { "kind": "kv", "path": path, "generator": { "kind": "password" } } });
        assert!(parse(kv("apps/shop/api")).is_ok());
        for (policy, says) in [
            (kv("/apps/shop"), "path"),
            (kv("apps/../root"), "path"),
            (
                json!({ "name": "x", "target": { "kind": "kv", "path": "a", "generator": { "kind": "password", "length": 4 } } }),
                "16 to 256",
            ),
            (
                json!({ "name": "x", "target": { "kind": "database", "path": "a", "admin_url": "postgres://h/db",
                     "database_url": "postgres://u:p@h/db", "users": ["a_1", "a_2"] } }),
                "must not hold credentials",
            ),
            (
                json!({ "name": "x", "target": { "kind": "database", "path": "a", "admin_url": "postgres://h/db",
                     "database_url": "postgres://h/db", "users": ["a", "a"] } }),
                "two users",
            ),
            (
                json!({ "name": "x", "target": { "kind": "database", "path": "a", "admin_url": "postgres://h/db",
                     "database_url": "postgres://h/db", "users": ["Shop"] } }),
                "lowercase",
            ),
            (
                json!({ "name": "x", "schedule": "daily", "target": { "kind": "kv", "path": "a", "generator": { "kind": "ed25519" } } }),
                "fields",
            ),
            (
                json!({ "name": "x", "deployments": ["shop"], "target": { "kind": "kv", "path": "a", "generator": { "kind": "ed25519" } } }),
                "namespace/name",
            ),
        ] {
            let e = parse(policy).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
        let twice: Vec<PolicySettings> = serde_json::from_value(json!([kv("a/b"), { "name": "y", "target": { "kind": "kv", "path": "a/b", "generator": { "kind": "ed25519" } } }])).unwrap();
        assert!(
            parse_all(&twice)
                .unwrap_err()
                .reason
                .contains("same name or path")
        );
    }
}
