//! Vault (OpenBao) KV v2 as the rotator uses it: read the current version, write a new one with
//! check-and-set, soft-delete an old one. Secret data stays in [`SecretData`], which never prints.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use vaultrs::client::VaultClient;
use vaultrs::error::ClientError;

/// A secret's keys and values; `Debug` shows the keys only.
#[derive(Clone, Default)]
pub struct SecretData(pub Map<String, Value>);

impl std::fmt::Debug for SecretData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl SecretData {
    pub fn set(&mut self, key: &str, value: &SecretString) {
        self.0.insert(
            key.to_owned(),
            Value::String(value.expose_secret().to_owned()),
        );
    }

    pub fn get(&self, key: &str) -> Option<SecretString> {
        self.0
            .get(key)
            .and_then(Value::as_str)
            .map(|s| SecretString::from(s.to_owned()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("Vault is sealed or unavailable: {0}")]
    Unavailable(String),
    #[error(
        "secret {path} changed under the rotation (expected version {expected}): nothing was written"
    )]
    Conflict { path: String, expected: u64 },
    #[error("Vault refused {operation} of {path}: {reason}")]
    Refused {
        operation: &'static str,
        path: String,
        reason: String,
    },
}

#[derive(Clone)]
pub struct Kv {
    client: Arc<VaultClient>,
    mount: String,
}

/// Vault's error strings say what went wrong, never what was written.
fn classify(e: ClientError, operation: &'static str, path: &str, expected: u64) -> KvError {
    match e {
        ClientError::APIError { code: 400, errors }
            if errors.iter().any(|m| m.contains("check-and-set")) =>
        {
            KvError::Conflict {
                path: path.to_owned(),
                expected,
            }
        }
        ClientError::APIError { code: 503, errors } => KvError::Unavailable(errors.join("; ")),
        ClientError::RestClientError { source } => KvError::Unavailable(source.to_string()),
        other => KvError::Refused {
            operation,
            path: path.to_owned(),
            reason: other.to_string(),
        },
    }
}

impl Kv {
    pub fn new(client: Arc<VaultClient>, mount: &str) -> Self {
        Self {
            client,
            mount: mount.to_owned(),
        }
    }

    pub fn client(&self) -> &VaultClient {
        &self.client
    }

    pub fn mount(&self) -> &str {
        &self.mount
    }

    /// The current version and its data; `(0, empty)` when the secret does not exist yet.
    pub async fn current(&self, path: &str) -> Result<(u64, SecretData), KvError> {
        let metadata = match vaultrs::kv2::read_metadata(self.client.as_ref(), &self.mount, path)
            .await
        {
            Ok(m) => m,
            Err(ClientError::APIError { code: 404, .. }) => return Ok((0, SecretData::default())),
            Err(e) => return Err(classify(e, "reading the metadata", path, 0)),
        };
        let version = metadata.current_version;
        Ok((version, self.version(path, version).await?))
    }

    /// How old the current version is; None when the secret does not exist.
    pub async fn age(&self, path: &str) -> Result<Option<chrono::Duration>, KvError> {
        let metadata =
            match vaultrs::kv2::read_metadata(self.client.as_ref(), &self.mount, path).await {
                Ok(m) => m,
                Err(ClientError::APIError { code: 404, .. }) => return Ok(None),
                Err(e) => return Err(classify(e, "reading the metadata", path, 0)),
            };
        let created = metadata
            .versions
            .get(&metadata.current_version.to_string())
            .and_then(|v| chrono::DateTime::parse_from_rfc3339(&v.created_time).ok())
            .ok_or_else(|| KvError::Refused {
                operation: "reading the metadata",
                path: path.to_owned(),
                reason: "the current version has no creation time".into(),
            })?;
        Ok(Some(chrono::Utc::now() - created.to_utc()))
    }

    pub async fn version(&self, path: &str, version: u64) -> Result<SecretData, KvError> {
        if version == 0 {
            return Ok(SecretData::default());
        }
        vaultrs::kv2::read_version::<Map<String, Value>>(
            self.client.as_ref(),
            &self.mount,
            path,
            version,
        )
        .await
        .map(SecretData)
        .map_err(|e| classify(e, "reading a version", path, version))
    }

    /// Writes `data` as the version after `expected`; fails with [`KvError::Conflict`] if another writer
    /// came first. Returns the new version.
    pub async fn write(
        &self,
        path: &str,
        data: &SecretData,
        expected: u64,
    ) -> Result<u64, KvError> {
        let cas = u32::try_from(expected).unwrap_or(u32::MAX);
        vaultrs::kv2::set_with_options(
            self.client.as_ref(),
            &self.mount,
            path,
            &data.0,
            vaultrs::api::kv2::requests::SetSecretRequestOptions { cas },
        )
        .await
        .map(|m| m.version)
        .map_err(|e| classify(e, "writing", path, expected))
    }

    /// Soft-deletes one version (it can be undeleted by an operator; it is no longer readable by apps).
    pub async fn delete_version(&self, path: &str, version: u64) -> Result<(), KvError> {
        vaultrs::kv2::delete_versions(self.client.as_ref(), &self.mount, path, vec![version])
            .await
            .map_err(|e| classify(e, "deleting an old version", path, version))
    }
}
