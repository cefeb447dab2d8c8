//! Sealed backups streamed into a real S3 API (SeaweedFS, one server per test) as multipart uploads.

use std::io::{self, Cursor, Read};
use std::sync::Arc;

use backup::format::{KeyWrap, LocalKey};
use backup::pipeline;
use backup::s3::{Destination, MIN_PART_SIZE, UploadError, upload};

mod common;

async fn bucket() -> (testkit::S3Server, aws_sdk_s3::Client, String) {
    let name = format!("backups-{}", uuid::Uuid::new_v4().simple());
    let (server, client) = common::s3_with_bucket(&name).await;
    (server, client, name)
}

#[tokio::test]
async fn a_backup_streams_into_several_parts_and_comes_back_intact() {
    let (_server, client, bucket) = bucket().await;
    let key: Arc<dyn KeyWrap> = Arc::new(LocalKey::new("kek-test", &[9; 32]));
    let data = common::noise(12 << 20, 0x9e37_79b9_7f4a_7c15);
    let d = Destination {
        client: &client,
        bucket: &bucket,
        key: "postgres/inventory/2026-11-25.hsbk",
        part_size: MIN_PART_SIZE,
    };
    let uploaded = upload(&d, Cursor::new(data.clone()), key.clone(), 1 << 20, 3)
        .await
        .unwrap();
    assert_eq!(uploaded.parts, 3, "12 MiB in 5 MiB parts");

    let object = client
        .get_object()
        .bucket(&bucket)
        .key(d.key)
        .send()
        .await
        .unwrap();
    let stored = object.body.collect().await.unwrap().into_bytes();
    assert_eq!(stored.len() as u64, uploaded.digests.stored_bytes);
    assert!(
        !stored.windows(64).any(|w| w == &data[1000..1064]),
        "the object bytes are not the plaintext"
    );
    pipeline::verify(Cursor::new(&stored), key.as_ref(), &uploaded.digests).unwrap();
    let mut restored = Vec::new();
    pipeline::open(Cursor::new(&stored), &mut restored, key.as_ref()).unwrap();
    assert!(restored == data, "restored bytes equal the source");
}

/// A source that fails after some bytes, like pg_dump dying mid-dump.
struct Failing {
    left: usize,
}

impl Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(io::Error::other("pg_dump: connection to server lost"));
        }
        let n = buf.len().min(self.left);
        buf[..n].copy_from_slice(&common::noise(n, 0x9e37_79b9_7f4a_7c15));
        self.left -= n;
        Ok(n)
    }
}

#[tokio::test]
async fn a_source_that_fails_leaves_no_object_and_no_open_upload() {
    let (_server, client, bucket) = bucket().await;
    let key: Arc<dyn KeyWrap> = Arc::new(LocalKey::new("kek-test", &[9; 32]));
    let d = Destination {
        client: &client,
        bucket: &bucket,
        key: "postgres/broken.hsbk",
        part_size: MIN_PART_SIZE,
    };
    let err = upload(&d, Failing { left: 7 << 20 }, key, 1 << 20, 3)
        .await
        .unwrap_err();
    assert!(matches!(err, UploadError::Pipeline(_)), "{err}");
    assert!(
        err.to_string().contains("connection to server lost"),
        "the source's reason: {err}"
    );
    let listed = client
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(0), "no half backup");
    let open = client
        .list_multipart_uploads()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert!(
        open.uploads().is_empty(),
        "the multipart upload was aborted"
    );
}

#[tokio::test]
async fn an_unreachable_bucket_says_so() {
    let (_server, client, _) = bucket().await;
    let key: Arc<dyn KeyWrap> = Arc::new(LocalKey::new("kek-test", &[9; 32]));
    let d = Destination {
        client: &client,
        bucket: "no-such-bucket",
        key: "x.hsbk",
        part_size: MIN_PART_SIZE,
    };
    let err = upload(&d, Cursor::new(vec![1u8; 10]), key, 1 << 20, 3)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("create multipart upload") && text.contains("no-such-bucket"),
        "{text}"
    );
}
