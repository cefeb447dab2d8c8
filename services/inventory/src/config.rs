//! Inventory's settings: defaults here, then `HOMESTATION_INVENTORY__…` variables and the files of
//! `HOMESTATION_CONFIG_FILE`.

use bus::ConsumerSettings;
use serde::Deserialize;
use service_kit::auth::AuthSettings;
use service_kit::{DatabaseSettings, HttpSettings, NatsSettings};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub http: HttpSettings,
    pub grpc: HttpSettings,
    pub database: DatabaseSettings,
    pub nats: NatsSettings,
    pub auth: AuthSettings,
    pub consumer: ConsumerSettings,
    /// How long in-flight requests and events may take to finish after a shutdown signal.
    pub shutdown_grace_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http: HttpSettings::with_port(8080),
            grpc: HttpSettings::with_port(8081),
            database: DatabaseSettings::default(),
            nats: NatsSettings::default(),
            auth: AuthSettings::default(),
            consumer: ConsumerSettings::default(),
            shutdown_grace_secs: 10,
        }
    }
}
