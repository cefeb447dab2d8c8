//! What every HomeStation service shares: config, telemetry, serving, health, metrics, auth, errors and shutdown.

pub mod auth;
pub mod config;
pub mod cron;
pub mod error;
pub mod extract;
pub mod health;
pub mod http;
pub mod metrics;
pub mod names;
pub mod openapi;
pub mod service;

// The process runtime (shutdown, logs and traces, TLS provider, the NATS inbox rule) is the runtime
// crate's, shared with the edge agent.
pub use runtime::{inbox_prefix, install_crypto_provider, shutdown, telemetry};

pub use auth::{Authenticator, Identity, Role};
pub use config::{
    DatabaseError, DatabaseSettings, HttpSettings, NatsSettings, VaultSettings, load_config,
};
pub use error::ApiError;
pub use runtime::Shutdown;
pub use service::{Service, run};
