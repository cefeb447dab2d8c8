//! secrets-rotator's settings: defaults here, then `HOMESTATION_SECRETS_ROTATOR__…` variables and the files
//! of `HOMESTATION_CONFIG_FILE`.

use bus::ConsumerSettings;
use serde::Deserialize;
use service_kit::auth::AuthSettings;
use service_kit::{DatabaseSettings, HttpSettings, NatsSettings, VaultSettings};

use crate::policy::PolicySettings;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubeSettings {
    /// Roll the policies' Deployments through the Kubernetes API (in-cluster or kubeconfig credentials).
    pub enabled: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub nats: NatsSettings,
    pub auth: AuthSettings,
    /// The rotator's Vault token needs the policy `secrets_rotator_policy` generates.
    pub vault: VaultSettings,
    pub kube: KubeSettings,
    pub consumer: ConsumerSettings,
    pub policies: Vec<PolicySettings>,
    pub shutdown_grace_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http: HttpSettings::with_port(8085),
            database: DatabaseSettings::local("secrets_rotator"),
            nats: NatsSettings::default(),
            auth: AuthSettings::default(),
            vault: VaultSettings::default(),
            kube: KubeSettings::default(),
            consumer: ConsumerSettings::default(),
            policies: Vec::new(),
            shutdown_grace_secs: 10,
        }
    }
}
