//! @@crate@@'s settings: `HOMESTATION_@@env@@__…` variables and the files of `HOMESTATION_CONFIG_FILE` fill them.

use serde::Deserialize;
use service_kit::auth::AuthSettings;
use service_kit::{DatabaseSettings, HttpSettings, NatsSettings};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub nats: NatsSettings,
    pub auth: AuthSettings,
    pub consumer: bus::ConsumerSettings,
    pub shutdown_grace_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http: HttpSettings::with_port(8080),
            database: DatabaseSettings::local("@@module@@"),
            nats: NatsSettings::default(),
            auth: AuthSettings::default(),
            consumer: bus::ConsumerSettings::default(),
            shutdown_grace_secs: 10,
        }
    }
}
