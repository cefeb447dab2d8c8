//! A real PostgreSQL database backed up with pg_dump through the pipeline into a real S3 API (SeaweedFS), verified,
//! and restored into a new database with its rows intact.

use backup::s3::{self, Destination, MIN_PART_SIZE};
use secrecy::SecretString;

mod common;

/// Rows and a digest of every value, to compare source and restore.
async fn fingerprint(url: &str) -> (i64, String) {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM nodes")
        .fetch_one(&pool)
        .await
        .unwrap();
    let digest: String = sqlx::query_scalar("SELECT md5(string_agg(id::text || name || facts::text || seen::text, ',' ORDER BY id)) FROM nodes")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    (count, digest)
}

#[tokio::test]
async fn a_database_is_backed_up_verified_and_restored_with_its_rows() {
    let source = testkit::database().await;
    let pool = sqlx::PgPool::connect(&source.url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE nodes (id bigint PRIMARY KEY, name text NOT NULL, facts jsonb NOT NULL, seen timestamptz NOT NULL);
         INSERT INTO nodes SELECT i, 'jetson-' || i, jsonb_build_object('cuda', '12.' || (i % 7), 'mem', i * 1024), now() - i * interval '1 minute'
         FROM generate_series(1, 20000) i;
         CREATE INDEX nodes_name ON nodes (name);",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let before = fingerprint(&source.url).await;
    assert_eq!(before.0, 20000);

    let (_server, client) = common::s3_with_bucket("backups").await;
    let key = common::test_key();
    let d = Destination {
        client: &client,
        bucket: "backups",
        key: "postgres/nodes.hsbk",
        part_size: MIN_PART_SIZE,
    };
    let url = SecretString::from(source.url.clone());
    let dump = backup::postgres::dump(&url).unwrap();
    let uploaded = s3::upload(&d, dump, key.clone(), 1 << 20, 3).await.unwrap();
    assert!(uploaded.digests.plaintext_bytes > 100_000, "{uploaded:?}");

    // Verify: download and check every chunk and both digests, writing nothing.
    s3::restore(
        &client,
        "backups",
        d.key,
        key.clone(),
        uploaded.digests.clone(),
        std::io::sink(),
    )
    .await
    .unwrap();

    // Restore into a new database (never over the source).
    let target = testkit::database().await;
    let (restoring, stdin) =
        backup::postgres::start_restore(&SecretString::from(target.url.clone())).unwrap();
    s3::restore(&client, "backups", d.key, key, uploaded.digests, stdin)
        .await
        .unwrap();
    restoring.finish().unwrap();
    assert_eq!(
        fingerprint(&target.url).await,
        before,
        "every row, every value"
    );
}

#[tokio::test]
async fn a_dump_that_fails_stores_nothing() {
    let (_server, client) = common::s3_with_bucket("backups").await;
    let key = common::test_key();
    let d = Destination {
        client: &client,
        bucket: "backups",
        key: "postgres/missing.hsbk",
        part_size: MIN_PART_SIZE,
    };
    let missing =
        SecretString::from("postgres://postgres@127.0.0.1:5432/hs_no_such_database".to_owned());
    let err = s3::upload(
        &d,
        backup::postgres::dump(&missing).unwrap(),
        key,
        1 << 20,
        3,
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("pg_dump failed")
            && err.to_string().contains("hs_no_such_database"),
        "{err}"
    );
    let listed = client
        .list_objects_v2()
        .bucket("backups")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(0));
}
