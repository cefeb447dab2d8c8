//! A moto S3 server of the test's own with one bucket, and a key-encryption key made for the test.
#![allow(dead_code)] // each test file uses a different part

use std::sync::Arc;

use backup::format::{KeyWrap, LocalKey};
use backup::s3::S3Settings;
use secrecy::SecretString;

/// The server (keep it alive for the test) and a client with `bucket` created.
pub async fn s3_with_bucket(bucket: &str) -> (testkit::S3Server, aws_sdk_s3::Client) {
    let server = testkit::s3().await;
    let client = S3Settings {
        endpoint: Some(server.endpoint.clone()),
        access_key_id: "test-made-up".into(),
        secret_access_key: SecretString::from("test-made-up-too".to_owned()),
        ..Default::default()
    }
    .client();
    client
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("bucket");
    (server, client)
}

/// A key-encryption key of constant bytes: these tests check framing, not key secrecy.
pub fn test_key() -> Arc<dyn KeyWrap> {
    Arc::new(LocalKey::new("kek-test", &[5; 32]))
}

/// Incompressible bytes from a xorshift generator seeded with `seed`, so sizes map onto chunks and parts predictably.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}
