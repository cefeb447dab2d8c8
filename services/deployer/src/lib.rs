//! deployer: Git push webhooks become Argo CD syncs of exactly the Applications a push changed, and each
//! deployment's timeline is recorded. (Watching Applications, rollback and commit-to-live metrics come next.)

pub mod api;
pub mod argo;
pub mod config;
pub mod deploy;
pub mod domain;
pub mod events;
pub mod mapping;
pub mod metrics;
pub mod store;
pub mod sync;
pub mod watch;
pub mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use service_core::Core;
use service_kit::Shutdown;

pub use config::{ArgoApiSettings, Config, Repository};

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
            metrics: metrics::DeployMetrics::new(&core.metrics),
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
