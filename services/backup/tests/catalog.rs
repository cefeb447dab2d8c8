//! The catalog on a real PostgreSQL, uploads to SeaweedFS: an upload killed mid-way is never listed as good, and the
//! next start aborts what it left in S3.

use std::io::{self, Read};
use std::sync::Arc;
use std::time::Duration;

use backup::catalog::{self, Run};
use backup::format::{KeyWrap, LocalKey};
use backup::s3::{Destination, MIN_PART_SIZE};

mod common;

struct Setup {
    pool: sqlx::PgPool,
    client: aws_sdk_s3::Client,
    _s3: testkit::S3Server,
}

async fn setup() -> Setup {
    let db = testkit::database().await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    catalog::MIGRATOR.run(&pool).await.unwrap();
    let (s3, client) = common::s3_with_bucket("backups").await;
    Setup {
        pool,
        client,
        _s3: s3,
    }
}

/// Incompressible bytes, produced slowly enough that the kill lands mid-upload.
struct Slow {
    left: usize,
    state: u64,
    produced: Arc<std::sync::atomic::AtomicUsize>,
}

fn slow(bytes: usize, state: u64) -> (Slow, Arc<std::sync::atomic::AtomicUsize>) {
    let produced = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    (
        Slow {
            left: bytes,
            state,
            produced: produced.clone(),
        },
        produced,
    )
}

impl Read for Slow {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(2));
        let n = buf.len().min(self.left).min(64 << 10);
        for b in &mut buf[..n] {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            *b = self.state as u8;
        }
        self.left -= n;
        self.produced
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

async fn statuses(pool: &sqlx::PgPool) -> Vec<(String, Option<String>)> {
    sqlx::query_as("SELECT status, reason FROM backups ORDER BY started_at")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_killed_upload_is_never_listed_as_good_and_is_cleaned_at_the_next_start() {
    let s = setup().await;
    let key: Arc<dyn KeyWrap> = Arc::new(LocalKey::new("kek-test", &[4; 32]));

    let (pool, client, wrap) = (s.pool.clone(), s.client.clone(), key.clone());
    let (source, produced) = slow(64 << 20, 7);
    let running = tokio::spawn(async move {
        let d = Destination {
            client: &client,
            bucket: "backups",
            key: "pg/killed.hsbk",
            part_size: MIN_PART_SIZE,
        };
        catalog::back_up(
            &pool,
            Run {
                policy: "pg-nightly",
                source: "postgres",
            },
            &d,
            source,
            wrap,
        )
        .await
    });
    // Kill it mid-upload (two parts' worth produced, the first on its way): the task is dropped mid-await,
    // so no abort call runs, as with SIGKILL.
    testkit::eventually("two parts produced", Duration::from_secs(30), || async {
        (produced.load(std::sync::atomic::Ordering::Relaxed) > 2 * MIN_PART_SIZE).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.abort();
    assert!(running.await.unwrap_err().is_cancelled());

    assert_eq!(
        statuses(&s.pool).await,
        [("running".to_owned(), None)],
        "not listed as good"
    );
    let open = s
        .client
        .list_multipart_uploads()
        .bucket("backups")
        .send()
        .await
        .unwrap();
    assert_eq!(
        open.uploads().len(),
        1,
        "the dead process left its upload open"
    );

    // The next start.
    assert_eq!(catalog::recover(&s.pool, &s.client).await.unwrap(), 1);
    let (status, reason) = statuses(&s.pool).await.remove(0);
    assert_eq!(status, "failed");
    assert!(reason.unwrap().starts_with("interrupted"));
    assert!(
        s.client
            .list_multipart_uploads()
            .bucket("backups")
            .send()
            .await
            .unwrap()
            .uploads()
            .is_empty()
    );
    assert_eq!(
        s.client
            .list_objects_v2()
            .bucket("backups")
            .send()
            .await
            .unwrap()
            .key_count(),
        Some(0)
    );

    // And the next run succeeds, recorded with its digests.
    let d = Destination {
        client: &s.client,
        bucket: "backups",
        key: "pg/next.hsbk",
        part_size: MIN_PART_SIZE,
    };
    let (id, uploaded) = catalog::back_up(
        &s.pool,
        Run {
            policy: "pg-nightly",
            source: "postgres",
        },
        &d,
        slow(1 << 20, 9).0,
        key,
    )
    .await
    .unwrap();
    let (status, stored): (String, String) =
        sqlx::query_as("SELECT status, stored_sha256 FROM backups WHERE id = $1")
            .bind(id)
            .fetch_one(&s.pool)
            .await
            .unwrap();
    assert_eq!(
        (status.as_str(), stored),
        ("succeeded", uploaded.digests.stored_sha256)
    );
    assert_eq!(
        catalog::recover(&s.pool, &s.client).await.unwrap(),
        0,
        "nothing left to recover"
    );
}

#[tokio::test]
async fn a_failed_upload_is_recorded_with_its_reason() {
    let s = setup().await;
    let key: Arc<dyn KeyWrap> = Arc::new(LocalKey::new("kek-test", &[4; 32]));
    let d = Destination {
        client: &s.client,
        bucket: "no-such-bucket",
        key: "x.hsbk",
        part_size: MIN_PART_SIZE,
    };
    let err = catalog::back_up(
        &s.pool,
        Run {
            policy: "p",
            source: "folder",
        },
        &d,
        slow(10, 1).0,
        key,
    )
    .await
    .unwrap_err();
    let (status, reason) = statuses(&s.pool).await.remove(0);
    assert_eq!(status, "failed");
    assert_eq!(reason.unwrap(), err.to_string());
}
