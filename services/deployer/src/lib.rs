//! deployer: Git push webhooks become Argo CD syncs of exactly the Applications a push changed, and each
//! deployment's timeline is recorded. (Watching Applications, rollback and commit-to-live metrics come next.)

pub mod api;
pub mod argo;
pub mod deploy;
pub mod domain;
pub mod mapping;
pub mod store;
pub mod sync;
pub mod watch;
pub mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use service_core::Core;
use service_kit::auth::AuthSettings;
use service_kit::{DatabaseSettings, HttpSettings, NatsSettings, Shutdown};

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

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Core(#[from] service_core::Error),
    #[error("{0}")]
    Config(String),
    #[error("connecting to the Kubernetes API")]
    Kube(#[source] kube::Error),
    #[error("deployments database")]
    Database(#[from] sqlx::Error),
    /// A read or change of an Argo CD Application through the Kubernetes API.
    #[error("{what}")]
    Argo {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("{what}")]
    Sync {
        what: String,
        #[source]
        source: sync::SyncError,
    },
}

pub struct Application {
    core: Core,
    deployer: Arc<deploy::Deployer>,
    config: Config,
}

impl Application {
    pub fn http_addr(&self) -> SocketAddr {
        self.core.http_addr()
    }

    /// Builds with a given Kubernetes client (tests pass a fake one).
    pub async fn with_kube_client(config: Config, client: kube::Client) -> Result<Self, Error> {
        if let Some(r) = config
            .repositories
            .iter()
            .find(|r| secrecy::ExposeSecret::expose_secret(&r.secret).len() < 16)
        {
            return Err(Error::Config(format!(
                "repositories: the webhook secret of {} is shorter than 16 characters",
                r.url
            )));
        }
        let core = Core::open(
            <Self as service_kit::Service>::NAME,
            service_core::settings!(config),
            &sqlx::migrate!("./migrations"),
        )
        .await?;
        let applications: kube::Api<argo::Application> =
            kube::Api::namespaced(client, &config.argocd_namespace);
        let syncer = match &config.argocd_api {
            Some(a) => sync::Syncer::Rest {
                http: {
                    service_kit::install_crypto_provider();
                    reqwest::Client::new()
                },
                url: a.url.clone(),
                token: a.token.clone(),
            },
            None => sync::Syncer::Kube(Box::new(applications.clone())),
        };
        let deployer = Arc::new(deploy::Deployer {
            pool: core.pool.clone(),
            applications,
            syncer,
            repositories: config.repositories.clone(),
        });
        Ok(Self {
            core,
            deployer,
            config,
        })
    }
}

impl service_kit::Service for Application {
    const NAME: &'static str = "deployer";
    type Config = Config;
    type Error = Error;

    async fn build(config: Config) -> Result<Self, Error> {
        let client = kube::Client::try_default().await.map_err(Error::Kube)?;
        Self::with_kube_client(config, client).await
    }

    async fn run_until_stopped(self, shutdown: Shutdown) -> Result<(), Error> {
        let core = self.core;
        tracing::info!(
            repositories = self.config.repositories.len(),
            "deployer watching repositories"
        );
        let watcher = Arc::new(watch::Watcher {
            pool: core.pool.clone(),
            applications: self.deployer.applications.clone(),
            syncer: self.deployer.syncer.clone(),
            outbox: core.outbox.clone(),
            metrics: watch::DeployMetrics::new(&core.metrics),
            health_deadline: Duration::from_secs(self.config.health_deadline_secs),
        });
        let mut running = core.serve(
            api::router(self.deployer.clone()),
            api::public_router(self.deployer),
            &shutdown,
        );
        if self.config.watch {
            running.spawn("watch", watcher.clone().run(shutdown.clone()));
            running.spawn("deadlines", watcher.check_deadlines(shutdown));
        }
        Ok(running.until_stopped().await?)
    }
}
