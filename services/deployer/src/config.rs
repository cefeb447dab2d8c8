//! The deployer's settings: defaults here, then `HOMESTATION_DEPLOYER__…` variables and the files of
//! `HOMESTATION_CONFIG_FILE`.

use secrecy::SecretString;
use serde::Deserialize;
use service_kit::auth::AuthSettings;
use service_kit::{DatabaseSettings, HttpSettings, NatsSettings};

/// Argo CD's REST API, used for syncs instead of patching Applications through the Kubernetes API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgoApiSettings {
    pub url: String,
    /// An Argo CD API token with `sync` on the applications.
    pub token: SecretString,
}

/// A Git repository whose pushes deploy, and the secret its webhook is signed with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repository {
    pub url: String,
    /// GitHub's and Gitea's webhook secret, or GitLab's secret token.
    pub secret: SecretString,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub nats: NatsSettings,
    pub auth: AuthSettings,
    pub repositories: Vec<Repository>,
    /// Where Argo CD's Application objects live.
    pub argocd_namespace: String,
    /// Ask for syncs through Argo CD's REST API rather than the Kubernetes API.
    pub argocd_api: Option<ArgoApiSettings>,
    /// How long a synced app has to become Healthy before it is rolled back.
    pub health_deadline_secs: u64,
    /// Follow Applications (timeline, events, rollback). Off, the deployer only turns webhooks into syncs.
    pub watch: bool,
    pub shutdown_grace_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http: HttpSettings::with_port(8086),
            database: DatabaseSettings::local("deployer"),
            nats: NatsSettings::default(),
            auth: AuthSettings::default(),
            repositories: Vec::new(),
            argocd_namespace: "argocd".into(),
            argocd_api: None,
            health_deadline_secs: 300,
            watch: true,
            shutdown_grace_secs: 10,
        }
    }
}
