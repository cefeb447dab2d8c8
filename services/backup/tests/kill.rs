//! SIGKILL of the real `backup` binary in the middle of an upload: no half backup is ever listed as good,
//! the next start fails the interrupted run and aborts its multipart upload, and the next run succeeds.

use std::time::Duration;

use serde_json::Value;

mod common;

async fn statuses(pool: &sqlx::PgPool) -> Vec<(String, Option<String>)> {
    sqlx::query_as("SELECT status, reason FROM backups ORDER BY started_at")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn open_uploads(s3: &aws_sdk_s3::Client) -> usize {
    s3.list_multipart_uploads()
        .bucket("backups")
        .send()
        .await
        .unwrap()
        .uploads()
        .len()
}

#[tokio::test]
async fn sigkill_during_an_upload_leaves_no_good_backup_and_the_next_start_cleans_up() {
    let env = testkit::TestEnv::new().await;
    let (s3_server, s3) = common::s3_with_bucket("backups").await;
    let dir = common::scratch_dir();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    // Incompressible, so the upload takes a while in a debug build and the kill lands mid-way.
    std::fs::write(data.join("big.bin"), common::noise(64 << 20, 7)).unwrap();
    let key = common::key_file(&dir);
    let (token, sha256) = testkit::token();
    let config = dir.join("backup.toml");
    std::fs::write(
        &config,
        format!(
            r#"bucket = "backups"
scratch_dir = "{scratch}"
[database]
url = "{db}"
[nats]
{nats}[s3]
endpoint = "{s3}"
access_key_id = "test-made-up"
secret_access_key = "test-made-up-too"
part_size_mib = 5
[encryption]
key_file = "{key}"
[[auth.service_tokens]]
name = "admin"
sha256 = "{sha256}"
role = "admin"
[[policies]]
name = "big"
retries = 0
[policies.source]
kind = "folder"
path = "{data}"
"#,
            scratch = dir.join("scratch").display(),
            db = env.db.url,
            nats = env.bus.toml("backup"),
            s3 = s3_server.endpoint,
            key = key.display(),
            data = data.display(),
        ),
    )
    .unwrap();
    let log = dir.join("backup.log");
    let client = testkit::http_client();
    let pool = sqlx::PgPool::connect(&env.db.url).await.unwrap();

    let mut first =
        testkit::Binary::start(env!("CARGO_BIN_EXE_backup"), "backup", &config, &log, &[]);
    first.ready().await;
    let started: Value = client
        .post(format!("{}/v1/policies/big/runs", first.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run = started["run_id"].as_str().expect("a run id").to_owned();
    testkit::eventually(
        "two parts' worth of the source to be read",
        Duration::from_secs(60),
        || async {
            let b: Value = client
                .get(format!("{}/v1/backups/{run}", first.base))
                .bearer_auth(&token)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (b["progress"]["bytes"].as_u64()? >= 12 << 20).then_some(())
        },
    )
    .await;
    first.kill();

    assert_eq!(
        statuses(&pool).await,
        vec![("running".to_owned(), None)],
        "the killed run is not listed as good"
    );
    assert!(
        open_uploads(&s3).await >= 1,
        "the killed process left its multipart upload open"
    );

    let mut second =
        testkit::Binary::start(env!("CARGO_BIN_EXE_backup"), "backup", &config, &log, &[]);
    second.ready().await;
    let (status, reason) = statuses(&pool).await.remove(0);
    assert_eq!(status, "failed");
    assert!(reason.unwrap().starts_with("interrupted"));
    assert_eq!(
        open_uploads(&s3).await,
        0,
        "the next start aborted the upload"
    );

    client
        .post(format!("{}/v1/policies/big/runs", second.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let last = testkit::eventually(
        "the next run to succeed",
        Duration::from_secs(180),
        || async {
            let all: Vec<(String, Option<String>)> = statuses(&pool).await;
            (all.len() == 2 && all[1].0 != "running").then(|| all[1].clone())
        },
    )
    .await;
    assert_eq!(last.0, "succeeded", "{last:?}");
    let objects = s3.list_objects_v2().bucket("backups").send().await.unwrap();
    assert_eq!(
        objects.contents().len(),
        1,
        "only the good backup is in the bucket"
    );

    second.kill();
    let _ = std::fs::remove_dir_all(dir);
}
