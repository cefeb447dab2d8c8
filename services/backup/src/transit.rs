//! Wrapping backup data keys with Vault (or OpenBao) transit: the key-encryption key never leaves Vault.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use vaultrs::client::VaultClient;

use crate::format::{FormatError, KeyWrap};

/// A transit key, `mount/name`; its key id in backup headers is `vault-transit:mount/name`.
pub struct VaultTransit {
    client: Arc<VaultClient>,
    mount: String,
    name: String,
    id: String,
    /// The sealer and opener call key wrapping synchronously, on a blocking thread; Vault is asked on this runtime.
    runtime: tokio::runtime::Handle,
}

impl VaultTransit {
    /// Must be built inside a Tokio runtime; use it from blocking threads (as the pipeline does), not from async code.
    pub fn new(client: Arc<VaultClient>, mount: &str, name: &str) -> Self {
        Self {
            client,
            mount: mount.to_owned(),
            name: name.to_owned(),
            id: format!("vault-transit:{mount}/{name}"),
            runtime: tokio::runtime::Handle::current(),
        }
    }
}

impl KeyWrap for VaultTransit {
    fn key_id(&self) -> &str {
        &self.id
    }

    fn wrap(&self, data_key: &[u8; 32]) -> Result<Vec<u8>, FormatError> {
        let encrypted = self
            .runtime
            .block_on(vaultrs::transit::data::encrypt(
                self.client.as_ref(),
                &self.mount,
                &self.name,
                &STANDARD.encode(data_key),
                None,
            ))
            .map_err(|e| FormatError::KeyUnwrap {
                key_id: self.id.clone(),
                reason: format!("Vault transit encrypt: {e}"),
            })?;
        Ok(encrypted.ciphertext.into_bytes())
    }

    fn unwrap(&self, key_id: &str, wrapped: &[u8]) -> Result<[u8; 32], FormatError> {
        let failed = |reason: String| FormatError::KeyUnwrap {
            key_id: key_id.to_owned(),
            reason,
        };
        if key_id != self.id {
            return Err(failed(format!("this process wraps with {}", self.id)));
        }
        let ciphertext = std::str::from_utf8(wrapped)
            .map_err(|_| failed("the wrapped key is not transit ciphertext".into()))?;
        let decrypted = self
            .runtime
            .block_on(vaultrs::transit::data::decrypt(
                self.client.as_ref(),
                &self.mount,
                &self.name,
                ciphertext,
                None,
            ))
            .map_err(|e| failed(format!("Vault transit decrypt: {e}")))?;
        let key = STANDARD
            .decode(decrypted.plaintext)
            .map_err(|e| failed(e.to_string()))?;
        key.try_into()
            .map_err(|_| failed("Vault returned a key that is not 32 bytes".into()))
    }
}
