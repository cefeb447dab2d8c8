//! The backup service's settings: defaults here, then `HOMESTATION_BACKUP__…` variables and the files of
//! `HOMESTATION_CONFIG_FILE`.

use std::path::PathBuf;

use serde::Deserialize;
use service_kit::auth::AuthSettings;
use service_kit::{DatabaseSettings, HttpSettings, NatsSettings, VaultSettings};

use crate::policy::PolicySettings;
use crate::s3::S3Settings;

/// How data keys are wrapped: by a Vault transit key (the key never leaves Vault), or by a key file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncryptionSettings {
    /// The transit key's name under `transit_mount`, on the service's `vault`.
    pub transit_key: Option<String>,
    pub transit_mount: String,
    /// A file of exactly 32 random bytes (`head -c 32 /dev/urandom > backup.key`), when not using transit.
    pub key_file: Option<PathBuf>,
    /// The id recorded in each backup's header for the key file.
    pub key_id: String,
}

impl Default for EncryptionSettings {
    fn default() -> Self {
        Self {
            transit_key: None,
            transit_mount: "transit".into(),
            key_file: None,
            key_id: "key-file".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub nats: NatsSettings,
    pub auth: AuthSettings,
    pub vault: VaultSettings,
    pub s3: S3Settings,
    /// The bucket of policies that name none.
    pub bucket: String,
    pub encryption: EncryptionSettings,
    pub policies: Vec<PolicySettings>,
    /// Where drills restore folders (emptied after each drill).
    pub scratch_dir: PathBuf,
    pub shutdown_grace_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http: HttpSettings::with_port(8083),
            database: DatabaseSettings::local("backup"),
            nats: NatsSettings::default(),
            auth: AuthSettings::default(),
            vault: VaultSettings::default(),
            s3: S3Settings::default(),
            bucket: "homestation-backups".into(),
            encryption: EncryptionSettings::default(),
            policies: Vec::new(),
            scratch_dir: std::env::temp_dir().join("homestation-backup"),
            shutdown_grace_secs: 30,
        }
    }
}
