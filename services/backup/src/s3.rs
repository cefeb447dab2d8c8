//! Streaming a sealed backup into S3 as a multipart upload: parts leave as soon as they fill, so memory stays at a
//! few parts whatever the size; on any failure the multipart upload is aborted, so no half object remains.

use std::io::{self, Read, Write};
use std::sync::Arc;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::format::KeyWrap;
use crate::pipeline::{self, Digests, PipelineError, SealOptions};

/// S3's smallest part (but the last).
pub const MIN_PART_SIZE: usize = 5 << 20;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Settings {
    /// Unset for AWS; the URL of SeaweedFS, MinIO, Garage… otherwise.
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    /// Buckets as path segments rather than host names (what most self-hosted servers want).
    pub force_path_style: bool,
    pub part_size_mib: usize,
}

impl Default for S3Settings {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: "us-east-1".into(),
            access_key_id: String::new(),
            secret_access_key: SecretString::from(String::new()),
            force_path_style: true,
            part_size_mib: 8,
        }
    }
}

impl S3Settings {
    /// A client on rustls with ring, without the SDK's environment and instance-metadata probing.
    pub fn client(&self) -> Client {
        use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let credentials = Credentials::new(
            &self.access_key_id,
            self.secret_access_key.expose_secret(),
            None,
            None,
            "homestation-config",
        );
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .region(Region::new(self.region.clone()))
            .credentials_provider(credentials)
            .force_path_style(self.force_path_style)
            .http_client(http);
        if let Some(endpoint) = &self.endpoint {
            config = config.endpoint_url(endpoint);
        }
        Client::from_conf(config.build())
    }

    pub fn part_size(&self) -> usize {
        (self.part_size_mib << 20).max(MIN_PART_SIZE)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("S3 {operation} of s3://{bucket}/{key}: {reason}")]
    S3 {
        operation: &'static str,
        bucket: String,
        key: String,
        reason: String,
    },
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("the sealing task failed: {0}")]
    Task(String),
}

/// Where a backup goes.
pub struct Destination<'a> {
    pub client: &'a Client,
    pub bucket: &'a str,
    pub key: &'a str,
    pub part_size: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub digests: Digests,
    pub parts: i32,
}

/// Fills parts and hands each to the uploader; the channel's bound is what bounds memory.
struct PartWriter {
    parts: tokio::sync::mpsc::Sender<Vec<u8>>,
    part_size: usize,
    buffer: Vec<u8>,
}

impl PartWriter {
    fn send(&mut self) -> io::Result<()> {
        let part = std::mem::replace(&mut self.buffer, Vec::with_capacity(self.part_size));
        self.parts
            .blocking_send(part)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped"))
    }
}

impl Write for PartWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= self.part_size {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn s3_error(
    operation: &'static str,
    d: &Destination<'_>,
    e: impl std::error::Error,
) -> UploadError {
    UploadError::S3 {
        operation,
        bucket: d.bucket.to_owned(),
        key: d.key.to_owned(),
        reason: aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
    }
}

/// Seals `source` and uploads it to `d` as it goes; returns the digests for the catalog.
pub async fn upload<R: Read + Send + 'static>(
    d: &Destination<'_>,
    source: R,
    wrap: Arc<dyn KeyWrap>,
    chunk_size: u32,
    level: i32,
) -> Result<Uploaded, UploadError> {
    let created = d
        .client
        .create_multipart_upload()
        .bucket(d.bucket)
        .key(d.key)
        .send()
        .await
        .map_err(|e| s3_error("create multipart upload", d, e))?;
    let upload_id = created.upload_id().unwrap_or_default().to_owned();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(2);
    let part_size = d.part_size.max(MIN_PART_SIZE);
    let sealing = tokio::task::spawn_blocking(move || {
        let mut parts = PartWriter {
            parts: tx,
            part_size,
            buffer: Vec::with_capacity(part_size),
        };
        let digests = pipeline::seal(
            source,
            &mut parts,
            &SealOptions {
                wrap: wrap.as_ref(),
                chunk_size,
                level,
            },
        )?;
        parts.send()?;
        Ok::<_, PipelineError>(digests)
    });

    let uploaded = async {
        let mut completed = Vec::new();
        let mut number = 0;
        while let Some(part) = rx.recv().await {
            number += 1;
            let out = d
                .client
                .upload_part()
                .bucket(d.bucket)
                .key(d.key)
                .upload_id(&upload_id)
                .part_number(number)
                .body(ByteStream::from(part))
                .send()
                .await
                .map_err(|e| s3_error("upload part", d, e))?;
            completed.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag().map(str::to_owned))
                    .build(),
            );
        }
        Ok::<_, UploadError>((completed, number))
    }
    .await;
    drop(rx);
    let sealed = sealing.await.map_err(|e| UploadError::Task(e.to_string()));
    let outcome = match (uploaded, sealed) {
        (Ok((completed, parts)), Ok(Ok(digests))) => d
            .client
            .complete_multipart_upload()
            .bucket(d.bucket)
            .key(d.key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            .send()
            .await
            .map(|_| Uploaded { digests, parts })
            .map_err(|e| s3_error("complete multipart upload", d, e)),
        // The source's own error says more than the broken pipe it caused on the upload side.
        (_, Ok(Err(source))) => Err(source.into()),
        (Err(upload), _) => Err(upload),
        (_, Err(task)) => Err(task),
    };
    if outcome.is_err() {
        let aborted = d
            .client
            .abort_multipart_upload()
            .bucket(d.bucket)
            .key(d.key)
            .upload_id(&upload_id)
            .send()
            .await;
        if let Err(e) = aborted {
            tracing::warn!(bucket = d.bucket, key = d.key, error = %aws_sdk_s3::error::DisplayErrorContext(e), "aborting the multipart upload failed; the next start cleans it");
        }
    }
    outcome
}

/// Reads `key` back, checks every chunk and both digests against `expected`, and writes the plaintext to `sink`.
/// Runs on a blocking thread, streaming: nothing is held whole in memory.
pub async fn restore<W: Write + Send + 'static>(
    client: &Client,
    bucket: &str,
    key: &str,
    wrap: Arc<dyn KeyWrap>,
    expected: Digests,
    sink: W,
) -> Result<Digests, UploadError> {
    let object = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| UploadError::S3 {
            operation: "get object",
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            reason: aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
        })?;
    let body = tokio_util::io::SyncIoBridge::new(object.body.into_async_read());
    let opened = tokio::task::spawn_blocking(move || pipeline::open(body, sink, wrap.as_ref()))
        .await
        .map_err(|e| UploadError::Task(e.to_string()))??;
    expected.check(&opened)?;
    Ok(opened)
}

/// Aborts every unfinished multipart upload of `key` (what a killed process leaves behind).
pub async fn abort_uploads(client: &Client, bucket: &str, key: &str) -> Result<usize, UploadError> {
    let failed = |operation, reason: String| UploadError::S3 {
        operation,
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        reason,
    };
    let open = client
        .list_multipart_uploads()
        .bucket(bucket)
        .prefix(key)
        .send()
        .await
        .map_err(|e| {
            failed(
                "list multipart uploads",
                aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
            )
        })?;
    let mut aborted = 0;
    for upload in open.uploads().iter().filter(|u| u.key() == Some(key)) {
        client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload.upload_id().unwrap_or_default())
            .send()
            .await
            .map_err(|e| {
                failed(
                    "abort multipart upload",
                    aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
                )
            })?;
        aborted += 1;
    }
    Ok(aborted)
}
