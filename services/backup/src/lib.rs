//! The backup service: policies (in config) run on their schedules; each source streams through zstd and
//! AES-256-GCM into an S3 multipart upload; the catalog records both SHA-256; backups are verified,
//! restored, rehearsed by drills and pruned by retention. See `engine` for the behaviour, `format` for the
//! object format.

pub mod api;
pub mod catalog;
pub mod channel;
pub mod config;
pub mod engine;
pub mod format;
pub mod metrics;
pub mod pipeline;
pub mod policy;
pub mod postgres;
pub mod process;
pub mod retention;
pub mod s3;
pub mod sources;
pub mod transit;

use std::net::SocketAddr;
use std::sync::Arc;

use service_core::Core;
use service_kit::Shutdown;

use crate::engine::{Engine, Entry};
use crate::format::{KeyWrap, LocalKey};
use crate::sources::{Folder, JetStream, Postgres, Source, SourceSettings, VaultServer, velero};

pub use config::{Config, EncryptionSettings};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Core(#[from] service_core::Error),
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Policy(#[from] policy::PolicyError),
    #[error("recovering interrupted runs")]
    Recover(#[from] catalog::CatalogError),
    #[error("loading the catalog")]
    Load(#[from] engine::EngineError),
    #[error("connecting to the Kubernetes API (a policy backs up Velero)")]
    Kube(#[source] kube::Error),
}

pub struct Application {
    core: Core,
    s3: aws_sdk_s3::Client,
    wrap: Arc<dyn KeyWrap>,
    policies: Vec<Entry>,
    config: Config,
}

impl Application {
    pub fn http_addr(&self) -> SocketAddr {
        self.core.http_addr()
    }
}

fn key_wrap(config: &Config) -> Result<Arc<dyn KeyWrap>, Error> {
    let e = &config.encryption;
    match (&e.transit_key, &e.key_file) {
        (Some(key), None) => {
            let client = config.vault.client().map_err(|e| Error::Config(e.to_string()))?;
            Ok(Arc::new(transit::VaultTransit::new(Arc::new(client), &e.transit_mount, key)))
        }
        (None, Some(path)) => LocalKey::from_file(&e.key_id, path)
            .map(|k| Arc::new(k) as Arc<dyn KeyWrap>)
            .map_err(|err| Error::Config(format!("encryption.key_file {}: {err}", path.display()))),
        (Some(_), Some(_)) => Err(Error::Config(
            "encryption: set transit_key or key_file, not both".into(),
        )),
        (None, None) => Err(Error::Config(
            "encryption: set transit_key (a Vault transit key) or key_file; backups are never stored unencrypted".into(),
        )),
    }
}

fn build_source(
    policy: &policy::Policy,
    config: &Config,
    bus: &bus::Connection,
    kube: Option<&kube::Client>,
) -> Arc<dyn Source> {
    match &policy.source {
        SourceSettings::Postgres { url } => Arc::new(Postgres { url: url.clone() }),
        SourceSettings::Vault { address, token } => Arc::new(VaultServer {
            address: address
                .clone()
                .unwrap_or_else(|| config.vault.address.clone()),
            token: token.clone().unwrap_or_else(|| config.vault.token.clone()),
            http: reqwest::Client::new(),
        }),
        SourceSettings::Jetstream { stream } => Arc::new(JetStream {
            js: async_nats::jetstream::new(bus.client.clone()),
            stream: stream.clone(),
        }),
        SourceSettings::Folder { path } => Arc::new(Folder { path: path.clone() }),
        SourceSettings::Velero(settings) => Arc::new(velero::Velero::new(
            kube.expect("a Kubernetes client is made when a policy backs up Velero")
                .clone(),
            policy.name.as_str(),
            settings.clone(),
            policy.retention.min_age,
        )),
    }
}

impl service_kit::Service for Application {
    const NAME: &'static str = "backup";
    type Config = Config;
    type Error = Error;

    async fn build(config: Config) -> Result<Self, Error> {
        let policies = policy::parse_all(&config.policies, &config.bucket)?;
        let wrap = key_wrap(&config)?;
        let core = Core::open(
            Self::NAME,
            service_core::settings!(config),
            &catalog::MIGRATOR,
        )
        .await?;
        let s3 = config.s3.client();
        // What a killed process left: its runs are failed and its multipart uploads aborted, before any new run.
        let recovered = catalog::recover(&core.pool, &s3).await?;
        if recovered > 0 {
            tracing::warn!(
                recovered,
                "runs interrupted by the last stop were failed and their uploads aborted"
            );
        }
        let kube = if policies
            .iter()
            .any(|p| p.kind == retention::SourceKind::Velero)
        {
            Some(kube::Client::try_default().await.map_err(Error::Kube)?)
        } else {
            None
        };
        let mut entries = Vec::new();
        for policy in policies {
            if let (SourceSettings::Velero(settings), Some(client)) = (&policy.source, &kube) {
                let velero = velero::Velero::new(
                    client.clone(),
                    policy.name.as_str(),
                    settings.clone(),
                    policy.retention.min_age,
                );
                match velero.apply_schedule().await {
                    Ok(Some(name)) => {
                        tracing::info!(policy = policy.name.as_str(), schedule = %name, "Velero schedule applied")
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(policy = policy.name.as_str(), error = %e, "applying the Velero schedule failed; HomeStation's own runs go on")
                    }
                }
            }
            entries.push(Entry {
                source: build_source(&policy, &config, &core.bus, kube.as_ref()),
                policy,
            });
        }
        Ok(Self {
            core,
            s3,
            wrap,
            policies: entries,
            config,
        })
    }

    async fn run_until_stopped(self, shutdown: Shutdown) -> Result<(), Error> {
        let core = self.core;
        tracing::info!(policies = self.policies.len(), "backup policies loaded");
        let engine = Arc::new(Engine::new(
            core.pool.clone(),
            engine::Store {
                s3: self.s3,
                part_size: self.config.s3.part_size(),
                wrap: self.wrap,
            },
            self.policies,
            metrics::BackupMetrics::new(&core.metrics),
            core.outbox.clone(),
            self.config.scratch_dir.clone(),
            shutdown.clone(),
        ));
        engine.load_metrics().await?;
        let mut running = core.serve(
            api::router(engine.clone()),
            service_kit::openapi::router(api::openapi()),
            &shutdown,
        );
        running.spawn("scheduler", engine.schedule());
        Ok(running.until_stopped().await?)
    }
}
