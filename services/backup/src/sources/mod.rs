//! What a backup is taken of. Every source is one [`Source`]: it opens a byte stream that the pipeline reads
//! on a blocking thread, so a source of any size goes through in a few chunks of memory.
//!
//! - `postgres`: `pg_dump --format=custom`, streamed from its stdout;
//! - `vault`: an OpenBao/Vault raft snapshot (`GET /v1/sys/storage/raft/snapshot`), streamed from the response;
//! - `jetstream`: every message of a JetStream stream, read by an ordered consumer, as JSON lines;
//! - `folder`: a tar archive of a local folder (`tar --create`);
//! - `velero`: a `velero.io/v1` Backup created and watched through the Kubernetes API ([`velero`]).

pub mod velero;

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Read;
use std::path::PathBuf;
use std::pin::Pin;

use base64::Engine;
use futures_util::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::channel;
use crate::retention::SourceKind;

/// A source's byte stream, read on a blocking thread.
pub type ByteStream = Box<dyn Read + Send>;
pub type Opening<'a> = Pin<Box<dyn Future<Output = Result<ByteStream, SourceError>> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct SourceError {
    pub what: String,
    pub reason: String,
}

impl SourceError {
    pub fn new(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}

pub trait Source: Send + Sync {
    fn kind(&self) -> SourceKind;
    /// Opens the stream; errors the source raises later (a dump that fails half-way) come through `read`.
    fn open(&self) -> Opening<'_>;
    /// The Vault a snapshot source reads, which is also where its snapshots restore.
    fn vault(&self) -> Option<&VaultServer> {
        None
    }
}

/// A policy's source as configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum SourceSettings {
    Postgres {
        /// The database to dump; the password, if any, is passed to pg_dump in its environment.
        url: SecretString,
    },
    /// Raft snapshots of the Vault the service is configured with (`vault.address`, `vault.token`), or of
    /// another one.
    Vault {
        address: Option<String>,
        token: Option<SecretString>,
    },
    Jetstream {
        stream: String,
    },
    Folder {
        path: PathBuf,
    },
    Velero(velero::VeleroSettings),
}

impl SourceSettings {
    pub fn kind(&self) -> SourceKind {
        match self {
            Self::Postgres { .. } => SourceKind::Postgres,
            Self::Vault { .. } => SourceKind::Vault,
            Self::Jetstream { .. } => SourceKind::JetStream,
            Self::Folder { .. } => SourceKind::Folder,
            Self::Velero(_) => SourceKind::Velero,
        }
    }
}

/// Postgres: `pg_dump --format=custom` of one database.
pub struct Postgres {
    pub url: SecretString,
}

impl Source for Postgres {
    fn kind(&self) -> SourceKind {
        SourceKind::Postgres
    }

    fn open(&self) -> Opening<'_> {
        Box::pin(async move {
            crate::postgres::dump(&self.url)
                .map(|d| Box::new(d) as ByteStream)
                .map_err(|e| SourceError::new("pg_dump", e))
        })
    }
}

/// A Vault (OpenBao) server reached over its HTTP API with a token allowed `sys/storage/raft/snapshot`.
#[derive(Clone)]
pub struct VaultServer {
    pub address: String,
    pub token: SecretString,
    pub http: reqwest::Client,
}

impl VaultServer {
    fn url(&self, path: &str) -> String {
        format!("{}/v1/{path}", self.address.trim_end_matches('/'))
    }

    async fn failed(what: &str, response: reqwest::Response) -> SourceError {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        SourceError::new(what, format!("Vault answered {status}: {}", body.trim()))
    }

    /// Restores a raft snapshot read from `chunks`. `force` restores a snapshot of another cluster
    /// (`snapshot-force`), whose unseal keys then apply.
    pub async fn restore_snapshot(
        &self,
        chunks: tokio::sync::mpsc::Receiver<Vec<u8>>,
        force: bool,
    ) -> Result<(), SourceError> {
        let path = if force {
            "sys/storage/raft/snapshot-force"
        } else {
            "sys/storage/raft/snapshot"
        };
        let body = futures_util::stream::unfold(chunks, |mut rx| async move {
            rx.recv().await.map(|c| (Ok::<_, std::io::Error>(c), rx))
        });
        let response = self
            .http
            .post(self.url(path))
            .header("X-Vault-Token", self.token.expose_secret())
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
            .map_err(|e| SourceError::new("Vault snapshot restore", e))?;
        if !response.status().is_success() {
            return Err(Self::failed("Vault snapshot restore", response).await);
        }
        Ok(())
    }
}

impl Source for VaultServer {
    fn kind(&self) -> SourceKind {
        SourceKind::Vault
    }

    fn vault(&self) -> Option<&VaultServer> {
        Some(self)
    }

    fn open(&self) -> Opening<'_> {
        Box::pin(async move {
            let what = "Vault raft snapshot";
            let mut response = self
                .http
                .get(self.url("sys/storage/raft/snapshot"))
                .header("X-Vault-Token", self.token.expose_secret())
                .send()
                .await
                .map_err(|e| SourceError::new(what, e))?;
            if !response.status().is_success() {
                return Err(Self::failed(what, response).await);
            }
            let (tx, reader) = channel::reader();
            tokio::spawn(async move {
                loop {
                    let chunk = match response.chunk().await {
                        Ok(Some(chunk)) => Ok(chunk.to_vec()),
                        Ok(None) => return,
                        Err(e) => Err(std::io::Error::other(format!("{what}: {e}"))),
                    };
                    let stop = chunk.is_err();
                    if tx.send(chunk).await.is_err() || stop {
                        return;
                    }
                }
            });
            Ok(Box::new(reader) as ByteStream)
        })
    }
}

/// One message of a JetStream export: a line of JSON each.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct ExportedMessage {
    pub sequence: u64,
    pub subject: String,
    pub published: String,
    pub headers: BTreeMap<String, Vec<String>>,
    /// Base64 of the payload.
    pub payload: String,
}

/// A JetStream stream, exported message by message up to the last one stored when the export began.
pub struct JetStream {
    pub js: async_nats::jetstream::Context,
    pub stream: String,
}

impl Source for JetStream {
    fn kind(&self) -> SourceKind {
        SourceKind::JetStream
    }

    fn open(&self) -> Opening<'_> {
        Box::pin(async move {
            let what = format!("JetStream stream {}", self.stream);
            let mut stream = self
                .js
                .get_stream(&self.stream)
                .await
                .map_err(|e| SourceError::new(&what, e))?;
            let state = stream
                .info()
                .await
                .map_err(|e| SourceError::new(&what, e))?
                .state
                .clone();
            let (tx, reader) = channel::reader();
            if state.messages == 0 {
                return Ok(Box::new(reader) as ByteStream);
            }
            let last = state.last_sequence;
            let mut messages = stream
                .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
                .await
                .map_err(|e| SourceError::new(&what, e))?
                .messages()
                .await
                .map_err(|e| SourceError::new(&what, e))?;
            tokio::spawn(async move {
                while let Some(message) = messages.next().await {
                    let line = message
                        .map_err(|e| std::io::Error::other(format!("{what}: {e}")))
                        .and_then(|m| export_line(&m));
                    let done = match &line {
                        Ok((sequence, _)) => *sequence >= last,
                        Err(_) => true,
                    };
                    if tx.send(line.map(|(_, bytes)| bytes)).await.is_err() || done {
                        return;
                    }
                }
            });
            Ok(Box::new(reader) as ByteStream)
        })
    }
}

fn export_line(m: &async_nats::jetstream::Message) -> std::io::Result<(u64, Vec<u8>)> {
    let info = m.info().map_err(std::io::Error::other)?;
    let headers = m
        .headers
        .iter()
        .flat_map(|h| h.iter())
        .map(|(name, values)| {
            (
                name.to_string(),
                values.iter().map(|v| v.to_string()).collect(),
            )
        })
        .collect();
    let exported = ExportedMessage {
        sequence: info.stream_sequence,
        subject: m.subject.to_string(),
        published: info.published.to_string(),
        headers,
        payload: base64::engine::general_purpose::STANDARD.encode(&m.payload),
    };
    let mut line = serde_json::to_vec(&exported).map_err(std::io::Error::other)?;
    line.push(b'\n');
    Ok((info.stream_sequence, line))
}

/// A local folder as a tar archive.
pub struct Folder {
    pub path: PathBuf,
}

impl Source for Folder {
    fn kind(&self) -> SourceKind {
        SourceKind::Folder
    }

    fn open(&self) -> Opening<'_> {
        Box::pin(async move {
            if !self.path.is_dir() {
                return Err(SourceError::new(
                    format!("folder {}", self.path.display()),
                    "is not a folder (or is not readable)",
                ));
            }
            let mut tar = std::process::Command::new("tar");
            tar.arg("--create")
                .arg("--file=-")
                .arg(format!("--directory={}", self.path.display()))
                .arg(".");
            crate::process::output("tar", tar)
                .map(|o| Box::new(o) as ByteStream)
                .map_err(|e| SourceError::new("tar", e))
        })
    }
}

/// Extracts a tar archive written into the returned stdin into `target` (which must exist).
pub fn extract_into(
    target: &std::path::Path,
) -> std::io::Result<(crate::process::Input, std::process::ChildStdin)> {
    let mut tar = std::process::Command::new("tar");
    tar.arg("--extract")
        .arg("--file=-")
        .arg(format!("--directory={}", target.display()));
    crate::process::input("tar", tar)
}
