//! Reload a Vault KV v2 secret when secrets-rotator rotates it: listen for `secrets.v1.rotated` of its path,
//! read the new version from Vault (the event never carries the value), swap it in, and publish
//! `secrets.v1.acknowledged` so the rotator knows this consumer moved on.
//!
//! Each replica subscribes on its own (plain NATS, no durable consumer): every replica must reload, and a
//! durable consumer would hand each event to one of them only.

use std::sync::Arc;

use bus::{Envelope, Event, Namespace, Publisher, SecretAcknowledged};
use futures_util::StreamExt;
use secrecy::SecretString;
use serde_json::{Map, Value};
use tokio::sync::watch;
use vaultrs::client::VaultClient;

/// A version of a secret; `Debug` shows its keys, never its values.
#[derive(Clone)]
pub struct Versioned {
    pub version: u64,
    data: Map<String, Value>,
}

impl std::fmt::Debug for Versioned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Versioned")
            .field("version", &self.version)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Versioned {
    pub fn get(&self, key: &str) -> Option<SecretString> {
        self.data
            .get(key)
            .and_then(Value::as_str)
            .map(|s| SecretString::from(s.to_owned()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("reading {path} from Vault: {reason}")]
    Vault { path: String, reason: String },
    #[error("subscribing to rotations: {0}")]
    Subscribe(String),
}

/// Where the secret is, and who is asking (the name the rotation policy lists under `consumers`).
#[derive(Debug, Clone)]
pub struct WatchSettings {
    pub mount: String,
    pub path: String,
    pub consumer: String,
}

/// The secret as it is now; it changes when the rotator rotates it.
pub struct Secret {
    current: watch::Receiver<Arc<Versioned>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Secret {
    pub fn current(&self) -> Arc<Versioned> {
        self.current.borrow().clone()
    }

    /// Waits until the version is at least `version`.
    pub async fn reloaded(&mut self, version: u64) -> Arc<Versioned> {
        let _ = self.current.wait_for(|v| v.version >= version).await;
        self.current()
    }
}

async fn read(
    vault: &VaultClient,
    s: &WatchSettings,
    version: Option<u64>,
) -> Result<Versioned, WatchError> {
    let failed = |e: vaultrs::error::ClientError| WatchError::Vault {
        path: s.path.clone(),
        reason: e.to_string(),
    };
    let version = match version {
        Some(v) => v,
        None => {
            vaultrs::kv2::read_metadata(vault, &s.mount, &s.path)
                .await
                .map_err(failed)?
                .current_version
        }
    };
    let data = vaultrs::kv2::read_version::<Map<String, Value>>(vault, &s.mount, &s.path, version)
        .await
        .map_err(failed)?;
    Ok(Versioned { version, data })
}

/// Reads the secret now and keeps it current until the returned [`Secret`] is dropped. `apply` is called
/// with each new version before it is acknowledged: put it to use there (swap a pool's connect options,
/// reload a TLS config), so the rotator retires the old value only once nothing here needs it.
pub async fn watch(
    nats: async_nats::Client,
    namespace: Namespace,
    publisher: Publisher,
    vault: Arc<VaultClient>,
    settings: WatchSettings,
    apply: impl Fn(&Versioned) + Send + Sync + 'static,
) -> Result<Secret, WatchError> {
    let subject = namespace.subject(bus::Kind::SecretRotated.pattern());
    let mut rotations = nats
        .subscribe(subject)
        .await
        .map_err(|e| WatchError::Subscribe(e.to_string()))?;
    let first = read(&vault, &settings, None).await?;
    let (tx, rx) = watch::channel(Arc::new(first));
    let task = tokio::spawn(async move {
        while let Some(message) = rotations.next().await {
            let Ok(Envelope {
                event: Event::SecretRotated(rotated),
                ..
            }) = Envelope::parse(&namespace, &message.subject, &message.payload)
            else {
                continue;
            };
            if rotated.path != settings.path || rotated.version <= tx.borrow().version {
                continue;
            }
            match read(&vault, &settings, Some(rotated.version)).await {
                Ok(new) => {
                    apply(&new);
                    tx.send_replace(Arc::new(new));
                    let ack = Event::SecretAcknowledged(SecretAcknowledged {
                        path: settings.path.clone(),
                        version: rotated.version,
                        consumer: settings.consumer.clone(),
                    });
                    if let Err(e) = publisher.publish(ack).await {
                        tracing::warn!(path = %settings.path, error = %e, "acknowledging a rotation failed");
                    }
                    tracing::info!(path = %settings.path, version = rotated.version, "secret reloaded");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reloading a rotated secret failed; keeping the current one")
                }
            }
        }
    });
    Ok(Secret {
        current: rx,
        _task: task,
    })
}
