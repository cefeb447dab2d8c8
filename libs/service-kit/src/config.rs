//! Layered, typed configuration: defaults in code, then an optional TOML file, then `HOMESTATION_<SVC>__…` variables.

use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Json, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Where an operator's config file is found, if any.
pub const CONFIG_FILE_VAR: &str = "HOMESTATION_CONFIG_FILE";

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

/// The environment prefix of a service: `inventory` → `HOMESTATION_INVENTORY__`.
pub fn env_prefix(service: &str) -> String {
    format!(
        "HOMESTATION_{}__",
        service.to_ascii_uppercase().replace('-', "_")
    )
}

/// Loads `T` from its defaults, the files named by `HOMESTATION_CONFIG_FILE`, and the service's variables.
///
/// `HOMESTATION_CONFIG_FILE` may name several files separated by `:`, merged in order (tables merge
/// key by key, a later file wins). A file ending in `.json` is JSON, any other TOML. In a cluster the
/// first is the chart's ConfigMap (JSON: Helm's `toToml` writes every number as a float) and the second
/// the TOML file Vault Agent renders with the secrets, so no secret passes through a ConfigMap or a variable.
pub fn load_config<T: DeserializeOwned>(service: &str) -> Result<T, ConfigError> {
    let mut figment = Figment::new();
    if let Some(files) = std::env::var_os(CONFIG_FILE_VAR) {
        for path in std::env::split_paths(&files).filter(|p| !p.as_os_str().is_empty()) {
            if !path.exists() {
                return Err(ConfigError(format!(
                    "{CONFIG_FILE_VAR} names {} which does not exist",
                    path.display()
                )));
            }
            figment = match path.extension().and_then(|e| e.to_str()) {
                Some("json") => figment.merge(Json::file(path)),
                _ => figment.merge(Toml::file(path)),
            };
        }
    }
    figment
        .merge(Env::prefixed(&env_prefix(service)).split("__"))
        .extract()
        .map_err(|e| ConfigError(one_line(&e)))
}

fn one_line(error: &figment::Error) -> String {
    error
        .clone()
        .into_iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// An HTTP or gRPC listener. Port 0 picks a free port, which tests rely on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    pub host: String,
    pub port: u16,
}

impl HttpSettings {
    pub fn with_port(port: u16) -> Self {
        Self {
            host: "127.0.0.1".into(),
            port,
        }
    }

    pub async fn bind(&self) -> std::io::Result<tokio::net::TcpListener> {
        tokio::net::TcpListener::bind((self.host.as_str(), self.port)).await
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self::with_port(8080)
    }
}

/// Why a service's database could not be opened at start.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("migrating the database")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// A `postgres://` URL; it may hold a password, so it is a secret.
    pub url: SecretString,
    pub max_connections: u32,
    pub connect_timeout_secs: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from("postgres://postgres@127.0.0.1:5432/homestation"),
            max_connections: 10,
            connect_timeout_secs: 5,
        }
    }
}

impl DatabaseSettings {
    /// The default of a service: `database` on the local PostgreSQL, as `make dev` runs it.
    pub fn local(database: &str) -> Self {
        Self {
            url: SecretString::from(format!("postgres://postgres@127.0.0.1:5432/{database}")),
            ..Default::default()
        }
    }

    /// The pool, with the service's migrations applied: what every service with a database does at start.
    pub async fn migrated_pool(
        &self,
        migrator: &sqlx::migrate::Migrator,
    ) -> Result<sqlx::PgPool, DatabaseError> {
        let pool = self.pool()?;
        migrator.run(&pool).await?;
        Ok(pool)
    }

    /// A pool that connects lazily, so a service starts (and reports not ready) while PostgreSQL is away.
    pub fn pool(&self) -> Result<sqlx::PgPool, ConfigError> {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(Duration::from_secs(self.connect_timeout_secs))
            .connect_lazy(self.url.expose_secret())
            .map_err(|e| ConfigError(format!("database.url: {e}")))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsSettings {
    pub url: String,
    /// Prefix of every subject and stream; empty in production, unique per test.
    pub namespace: String,
    pub connect_timeout_secs: u64,
    /// The NATS user; the service's own name when unset. Each identity has its own (`libs/bus/src/access.rs`).
    pub user: Option<String>,
    /// The user's password; in a cluster Vault Agent renders it into the secrets file. Unset: no credential
    /// is sent, which a HomeStation nats-server refuses.
    pub password: Option<SecretString>,
    /// Overrides every stream's byte limit (a test that fills a stream); the defaults are in `libs/bus`.
    pub stream_max_bytes: Option<i64>,
}

impl Default for NatsSettings {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            namespace: String::new(),
            connect_timeout_secs: 5,
            user: None,
            password: None,
            stream_max_bytes: None,
        }
    }
}

impl NatsSettings {
    /// Connects as `name` (or the configured user) with the configured password.
    pub async fn connect(&self, name: &str) -> Result<async_nats::Client, ConfigError> {
        let user = self.user.as_deref().unwrap_or(name);
        let mut options = async_nats::ConnectOptions::new()
            .name(name)
            .custom_inbox_prefix(runtime::inbox_prefix(user))
            .connection_timeout(Duration::from_secs(self.connect_timeout_secs))
            .retry_on_initial_connect();
        if let Some(password) = &self.password {
            options =
                options.user_and_password(user.to_owned(), password.expose_secret().to_owned());
        }
        options
            .connect(&self.url)
            .await
            .map_err(|e| ConfigError(format!("nats.url {}: {e}", self.url)))
    }
}

/// The Vault (or OpenBao) server a service reads its secrets from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VaultSettings {
    pub address: String,
    /// A token with the service's policy; in a cluster Vault Agent provides it.
    pub token: SecretString,
    /// The KV v2 mount the service's secrets are under.
    pub kv_mount: String,
}

impl Default for VaultSettings {
    fn default() -> Self {
        Self {
            address: "http://127.0.0.1:8200".into(),
            token: SecretString::from(String::new()),
            kv_mount: "secret".into(),
        }
    }
}

impl VaultSettings {
    pub fn client(&self) -> Result<vaultrs::client::VaultClient, ConfigError> {
        crate::install_crypto_provider();
        let settings = vaultrs::client::VaultClientSettingsBuilder::default()
            .address(&self.address)
            .token(self.token.expose_secret())
            .timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| ConfigError(format!("vault: {e}")))?;
        vaultrs::client::VaultClient::new(settings)
            .map_err(|e| ConfigError(format!("vault.address {}: {e}", self.address)))
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment's own (large) error
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields, default)]
    struct Sample {
        http: HttpSettings,
        database: DatabaseSettings,
    }

    #[test]
    fn env_prefix_is_upper_snake() {
        assert_eq!(env_prefix("edge-registry"), "HOMESTATION_EDGE_REGISTRY__");
    }

    #[test]
    fn variables_override_file_and_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[http]\nport = 9000\nhost = \"0.0.0.0\"\n")?;
            jail.set_env(CONFIG_FILE_VAR, "c.toml");
            jail.set_env("HOMESTATION_SAMPLE__HTTP__PORT", "9100");
            let cfg: Sample = load_config("sample").expect("loads");
            assert_eq!(cfg.http.port, 9100);
            assert_eq!(cfg.http.host, "0.0.0.0");
            assert_eq!(cfg.database.max_connections, 10);
            Ok(())
        });
    }

    #[test]
    fn several_files_merge_table_by_table_and_a_missing_one_is_named() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("config.json", r#"{"database": {"max_connections": 4}}"#)?;
            jail.create_file("secrets.toml", "database.url = \"postgres://db/app\"\n")?;
            jail.set_env(CONFIG_FILE_VAR, "config.json:secrets.toml");
            let cfg: Sample = load_config("sample").expect("loads");
            assert_eq!(cfg.database.max_connections, 4, "kept from the first file");
            assert_eq!(cfg.database.url.expose_secret(), "postgres://db/app");

            jail.set_env(CONFIG_FILE_VAR, "config.json:vault/secrets.toml");
            let err = load_config::<Sample>("sample").unwrap_err().to_string();
            assert!(err.contains("vault/secrets.toml"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_bad_types_are_one_line_errors() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("HOMESTATION_SAMPLE__HTTP__PORT", "not-a-port");
            let err = load_config::<Sample>("sample").unwrap_err().to_string();
            assert!(err.contains("port"), "{err}");
            assert!(!err.contains('\n'), "{err}");
            Ok(())
        });
    }

    #[test]
    fn database_url_never_reaches_debug() {
        let settings = DatabaseSettings {
            url: SecretString::from("postgres://u:hunter2-sample@db/x"),
            ..Default::default()
        };
        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}
