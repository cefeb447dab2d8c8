//! The backup service end to end over its REST API, against real PostgreSQL, nats-server, SeaweedFS (S3) and
//! OpenBao: runs, verification, restores, drills, retries, retention, events and metrics.

use reqwest::Method;
use serde_json::json;

mod common;
use common::{TestBackup, count_rows, database_with_rows};

#[tokio::test]
async fn a_database_is_backed_up_verified_and_restored_into_a_new_database() {
    let source = database_with_rows(42).await;
    let app = TestBackup::start(json!([{
        "name": "shop",
        "source": { "kind": "postgres", "url": source.url },
        "retries": 0
    }]))
    .await;
    let tokens = &app.env.tokens;

    let run = app.run("shop").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(
        !run["verified_at"].is_null(),
        "read back and checked after the upload: {run}"
    );
    let id = run["id"].as_str().unwrap().to_owned();
    assert!(
        run["object_key"]
            .as_str()
            .unwrap()
            .starts_with("postgres/shop/")
    );

    // A new database by default, with every row.
    let (status, restored) = app
        .request(
            Method::POST,
            &format!("/v1/backups/{id}/restore"),
            &tokens.admin,
            Some(json!({ "to": { "kind": "database" } })),
        )
        .await;
    assert_eq!(status, 200, "{restored}");
    let name = restored["target"].as_str().unwrap();
    assert!(
        name.starts_with(&source.name[..40]) && name.contains("_restored_"),
        "{name}"
    );
    let restored_url = source.url.replace(&source.name, name);
    assert_eq!(count_rows(&restored_url).await, 42);

    // Never over a live database unless forced; forced, the rows are the backup's.
    sqlx::PgPool::connect(&source.url)
        .await
        .unwrap()
        .execute_many_rows("DELETE FROM nodes WHERE id > 10")
        .await;
    let over_live = json!({ "to": { "kind": "database", "name": source.name } });
    let (status, refused) = app
        .request(
            Method::POST,
            &format!("/v1/backups/{id}/restore"),
            &tokens.admin,
            Some(over_live.clone()),
        )
        .await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--force"),
        "{refused}"
    );
    assert_eq!(
        count_rows(&source.url).await,
        10,
        "the refused restore touched nothing"
    );
    let (status, _) = app
        .request(
            Method::POST,
            &format!("/v1/backups/{id}/restore"),
            &tokens.admin,
            Some(json!({ "to": over_live["to"], "force": true })),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(count_rows(&source.url).await, 42);

    // Restores are for Admins; verifying for Developers.
    let (status, _) = app
        .request(
            Method::POST,
            &format!("/v1/backups/{id}/restore"),
            &tokens.developer,
            Some(json!({ "to": { "kind": "database" } })),
        )
        .await;
    assert_eq!(status, 403);
    let (status, verified) = app
        .request(
            Method::POST,
            &format!("/v1/backups/{id}/verify"),
            &tokens.developer,
            None,
        )
        .await;
    assert_eq!(
        (status.as_u16(), &verified["verified"]),
        (200, &json!(true)),
        "{verified}"
    );

    // The run's events and metrics.
    let started = app.await_events("backup.v1.run.started", 1).await;
    let succeeded = app.await_events("backup.v1.run.succeeded", 1).await;
    assert_eq!(started[0]["run_id"], json!(id));
    assert_eq!(succeeded[0]["source"], "postgres");
    assert!(succeeded[0]["bytes"].as_u64().unwrap() > 0);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(
            r#"homestation_backup_last_success_timestamp_seconds{service="backup",policy="shop"}"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"homestation_backup_runs_total{service="backup",policy="shop",outcome="succeeded"} 1"#
        ),
        "{metrics}"
    );
    app.stop().await;
}

trait ExecuteMany {
    async fn execute_many_rows(&self, sql: &str);
}

impl ExecuteMany for sqlx::PgPool {
    async fn execute_many_rows(&self, sql: &str) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(self)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_raft_snapshot_of_openbao_is_taken_and_restored() {
    let bao = testkit::openbao_raft().await;
    bao.enable_kv().await;
    bao.kv_put("lab/db", json!({ "password": "before-the-backup" }))
        .await;
    let app = TestBackup::start(json!([{
        "name": "vault",
        "source": { "kind": "vault", "address": bao.address, "token": bao.root_token },
        "retries": 0
    }]))
    .await;
    let run = app.run("vault").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(run["plaintext_bytes"].as_i64().unwrap() > 0);
    let id = run["id"].as_str().unwrap();

    bao.kv_put("lab/db", json!({ "password": "changed-after" }))
        .await;
    let path = format!("/v1/backups/{id}/restore");
    let restore = |force: bool| {
        app.request(
            Method::POST,
            &path,
            &app.env.tokens.admin,
            Some(json!({ "to": { "kind": "vault" }, "force": force })),
        )
    };
    let (status, refused) = restore(false).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(
        bao.kv_get("lab/db").await.unwrap()["password"],
        "changed-after"
    );

    let (status, restored) = restore(true).await;
    assert_eq!(status, 200, "{restored}");
    bao.unseal().await;
    let secret = testkit::eventually(
        "the restored secret",
        std::time::Duration::from_secs(30),
        || async { bao.kv_get("lab/db").await },
    )
    .await;
    assert_eq!(secret["password"], "before-the-backup");
    app.stop().await;
}

#[tokio::test]
async fn drills_restore_into_scratch_check_and_record_their_result() {
    let source = database_with_rows(25).await;
    let folder = common::scratch_dir();
    std::fs::create_dir_all(folder.join("config")).unwrap();
    std::fs::write(folder.join("config/homepage.yaml"), "title: lab\n").unwrap();
    let app = TestBackup::start(json!([
        {
            "name": "shop",
            "source": { "kind": "postgres", "url": source.url },
            "drill": { "schedule": "@weekly", "checks": [
                { "kind": "query", "sql": "SELECT count(*) FROM nodes", "min": 25 },
                { "kind": "min_bytes", "bytes": 100 }
            ] }
        },
        {
            "name": "shop-strict",
            "source": { "kind": "postgres", "url": source.url },
            "drill": { "schedule": "@weekly", "checks": [
                { "kind": "query", "sql": "SELECT count(*) FROM nodes", "min": 1000 }
            ] }
        },
        {
            "name": "configs",
            "source": { "kind": "folder", "path": folder },
            "drill": { "schedule": "@weekly", "checks": [
                { "kind": "files", "paths": ["config/homepage.yaml"] }
            ] }
        }
    ]))
    .await;
    let dev = &app.env.tokens.developer;
    let (status, none) = app
        .request(Method::POST, "/v1/policies/shop/drills", dev, None)
        .await;
    assert_eq!(status, 409, "no backup to drill yet: {none}");
    for policy in ["shop", "shop-strict", "configs"] {
        assert_eq!(app.run(policy).await["status"], "succeeded");
    }

    let (_, passed) = app
        .request(Method::POST, "/v1/policies/shop/drills", dev, None)
        .await;
    assert_eq!(passed["status"], "passed", "{passed}");
    assert_eq!(passed["checks"][0]["found"], "25");
    assert!(passed["duration_ms"].as_i64().is_some());

    let (_, failed) = app
        .request(Method::POST, "/v1/policies/shop-strict/drills", dev, None)
        .await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["reason"].as_str().unwrap().contains("found 25"),
        "{failed}"
    );

    let (_, files) = app
        .request(Method::POST, "/v1/policies/configs/drills", dev, None)
        .await;
    assert_eq!(files["status"], "passed", "{files}");

    // The scratch databases and folders are gone, the results are kept and announced.
    let pool = sqlx::PgPool::connect(&source.url).await.unwrap();
    // This test's scratch databases, named after its drills (other tests run beside it).
    let names: Vec<String> = [&passed, &failed]
        .iter()
        .map(|d| {
            format!(
                "hs_drill_{}",
                &d["id"].as_str().unwrap().replace('-', "")[24..]
            )
        })
        .collect();
    let scratch: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = ANY($1)")
            .bind(&names)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(scratch, 0);
    let drills = app.get("/v1/drills").await;
    assert_eq!(drills.as_array().unwrap().len(), 3);
    let passed_events = app.await_events("backup.v1.drill.passed", 2).await;
    assert!(passed_events.iter().all(|e| e["duration_ms"].is_u64()));
    let failed_events = app.await_events("backup.v1.drill.failed", 1).await;
    assert_eq!(failed_events[0]["policy"], "shop-strict");
    let policies = app.get("/v1/policies").await;
    let strict = policies
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "shop-strict")
        .unwrap();
    assert_eq!(strict["last_drill"]["status"], "failed");
    app.stop().await;
    let _ = std::fs::remove_dir_all(folder);
}

#[tokio::test]
async fn a_corrupted_object_or_a_wrong_key_fails_verify_and_restore_and_touches_nothing() {
    let source = database_with_rows(7).await;
    let policies = json!([{ "name": "shop", "source": { "kind": "postgres", "url": source.url } }]);
    let mut app = TestBackup::start(policies.clone()).await;
    let run = app.run("shop").await;
    let id = run["id"].as_str().unwrap().to_owned();
    let key = run["object_key"].as_str().unwrap().to_owned();
    let admin = app.env.tokens.admin.clone();
    let target = format!("hs_wrongkey_{}", &id[..8]);

    // A key-encryption key that is not the one the backup was made with.
    let other = common::scratch_dir();
    let other_key = common::key_file(&other);
    app.restart_with(policies.clone(), Some(&other_key)).await;
    let (_, verified) = app
        .request(
            Method::POST,
            &format!("/v1/backups/{id}/verify"),
            &admin,
            None,
        )
        .await;
    assert_eq!(verified["verified"], false);
    assert!(
        verified["reason"].as_str().unwrap().contains("wrong key"),
        "{verified}"
    );
    let (status, refused) = app
        .request(
            Method::POST,
            &format!("/v1/backups/{id}/restore"),
            &admin,
            Some(json!({ "to": { "kind": "database", "name": target } })),
        )
        .await;
    assert_eq!(status, 503, "{refused}");

    // One flipped byte in the middle of the stored object.
    app.restart_with(policies, None).await;
    let object = app
        .s3
        .get_object()
        .bucket(&app.bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    let mut bytes = object.body.collect().await.unwrap().into_bytes().to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    app.s3
        .put_object()
        .bucket(&app.bucket)
        .key(&key)
        .body(bytes.into())
        .send()
        .await
        .unwrap();
    let (_, verified) = app
        .request(
            Method::POST,
            &format!("/v1/backups/{id}/verify"),
            &admin,
            None,
        )
        .await;
    assert_eq!(verified["verified"], false);
    assert!(
        verified["reason"]
            .as_str()
            .unwrap()
            .contains("failed authentication"),
        "{verified}"
    );
    let (status, refused) = app
        .request(
            Method::POST,
            &format!("/v1/backups/{id}/restore"),
            &admin,
            Some(json!({ "to": { "kind": "database", "name": target } })),
        )
        .await;
    assert_eq!(status, 503, "{refused}");
    let folder = other.join("restored");
    let (status, _) = app
        .request(
            Method::POST,
            &format!("/v1/backups/{id}/restore"),
            &admin,
            Some(json!({ "to": { "kind": "folder", "path": folder } })),
        )
        .await;
    assert_eq!(status, 503);

    // Nothing was created: no database, no staging database (this backup's; other tests run beside), no folder.
    let pool = sqlx::PgPool::connect(&source.url).await.unwrap();
    let staging = format!("hs_incoming_{}", &id.replace('-', "")[24..]);
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname IN ($1, $2)")
            .bind(&target)
            .bind(&staging)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(left, 0);
    assert!(!folder.exists());
    assert_eq!(
        std::fs::read_dir(&other).unwrap().count(),
        1,
        "only the key file: no staging folder left"
    );
    app.stop().await;
    let _ = std::fs::remove_dir_all(other);
}

#[tokio::test]
async fn an_unreachable_source_fails_each_try_with_its_reason_and_is_retried() {
    let app = TestBackup::start(json!([{
        "name": "gone",
        "source": { "kind": "postgres", "url": "postgres://postgres@127.0.0.1:1/nothing" },
        "retries": 2,
        "retry_delay_secs": 0
    }]))
    .await;
    let (status, _) = app
        .request(
            Method::POST,
            "/v1/policies/gone/runs",
            &app.env.tokens.developer,
            None,
        )
        .await;
    assert_eq!(status, 202);
    let failed = app.await_events("backup.v1.run.failed", 3).await;
    assert!(
        failed
            .iter()
            .all(|e| e["reason"].as_str().unwrap().contains("pg_dump")),
        "{failed:?}"
    );
    let last = app.settled("gone").await;
    assert_eq!(
        (last["status"].as_str(), last["attempt"].as_i64()),
        (Some("failed"), Some(3))
    );
    let backups = app.get("/v1/backups?policy=gone").await;
    assert_eq!(
        backups.as_array().unwrap().len(),
        3,
        "every try is listed, none as good"
    );
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(
            r#"homestation_backup_runs_total{service="backup",policy="gone",outcome="failed"} 3"#
        ),
        "{metrics}"
    );

    let (status, unknown) = app
        .request(
            Method::POST,
            "/v1/policies/nope/runs",
            &app.env.tokens.developer,
            None,
        )
        .await;
    assert_eq!(status, 404, "{unknown}");
    app.stop().await;
}

#[tokio::test]
async fn a_jetstream_stream_and_a_folder_restore_into_a_folder() {
    // A stream of an app's own on the test's nats-server, made by its harness user; backup reads it
    // as itself (it may read any stream, and change none).
    let stream = "ORDERS".to_owned();
    let folder = common::scratch_dir();
    std::fs::write(folder.join("notes.txt"), "keep me").unwrap();
    let app = TestBackup::start(json!([
        { "name": "orders", "source": { "kind": "jetstream", "stream": stream } },
        { "name": "notes", "source": { "kind": "folder", "path": folder } }
    ]))
    .await;
    let js = app.env.bus.jetstream().await;
    js.create_stream(async_nats::jetstream::stream::Config {
        name: stream.clone(),
        subjects: vec![format!("{stream}.>")],
        ..Default::default()
    })
    .await
    .unwrap();
    for i in 0..5 {
        js.publish(format!("{stream}.placed"), format!("order {i}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    assert_eq!(app.run("orders").await["status"], "succeeded");
    assert_eq!(app.run("notes").await["status"], "succeeded");
    let backups = app.get("/v1/backups").await;
    let id_of = |policy: &str| {
        backups
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["policy"] == policy)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    let out = app.scratch.join("restored-orders");
    let (status, body) = app
        .request(
            Method::POST,
            &format!("/v1/backups/{}/restore", id_of("orders")),
            &app.env.tokens.admin,
            Some(json!({ "to": { "kind": "folder", "path": out } })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let file = std::fs::read_dir(&out)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let lines: Vec<backup::sources::ExportedMessage> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[4].sequence, 5);
    assert_eq!(lines[4].subject, format!("{stream}.placed"));

    let notes = app.scratch.join("restored-notes");
    std::fs::create_dir_all(&notes).unwrap();
    std::fs::write(notes.join("already-here"), "x").unwrap();
    let to = json!({ "to": { "kind": "folder", "path": notes } });
    let (status, _) = app
        .request(
            Method::POST,
            &format!("/v1/backups/{}/restore", id_of("notes")),
            &app.env.tokens.admin,
            Some(to.clone()),
        )
        .await;
    assert_eq!(
        status, 409,
        "a folder with files in it is not replaced unasked"
    );
    let (status, _) = app
        .request(
            Method::POST,
            &format!("/v1/backups/{}/restore", id_of("notes")),
            &app.env.tokens.admin,
            Some(json!({ "to": to["to"], "force": true })),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        std::fs::read_to_string(notes.join("notes.txt")).unwrap(),
        "keep me"
    );
    assert!(!notes.join("already-here").exists());
    app.stop().await;
    let _ = std::fs::remove_dir_all(folder);
}

#[tokio::test]
async fn retention_deletes_what_no_rule_keeps_from_the_catalog_and_the_bucket() {
    let folder = common::scratch_dir();
    std::fs::write(folder.join("a"), "a").unwrap();
    let app = TestBackup::start(json!([{
        "name": "notes",
        "source": { "kind": "folder", "path": folder },
        "retention": { "keep_last": 2, "keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0, "min_age_days": 0 }
    }]))
    .await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(app.run("notes").await["id"].as_str().unwrap().to_owned());
    }
    let listed: Vec<String> = app
        .get("/v1/backups?policy=notes")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        listed,
        vec![ids[3].clone(), ids[2].clone()],
        "the two newest are kept"
    );
    let objects = app
        .s3
        .list_objects_v2()
        .bucket(&app.bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(
        objects.contents().len(),
        2,
        "and their objects are all that is left in the bucket"
    );

    // A backup being read is not deleted, even when no rule keeps it.
    let reading = backup::catalog::start_reading(&app.pool, ids[2].parse().unwrap(), "restore")
        .await
        .unwrap()
        .unwrap();
    ids.push(app.run("notes").await["id"].as_str().unwrap().to_owned());
    ids.push(app.run("notes").await["id"].as_str().unwrap().to_owned());
    let listed = app.get("/v1/backups?policy=notes").await;
    assert_eq!(listed.as_array().unwrap().len(), 3, "{listed}");
    reading.done().await;
    let (_, pruned) = app
        .request(
            Method::POST,
            "/v1/policies/notes/prune",
            &app.env.tokens.admin,
            None,
        )
        .await;
    assert_eq!(pruned["deleted"], json!([ids[2]]));
    app.stop().await;
    let _ = std::fs::remove_dir_all(folder);
}

#[tokio::test]
async fn the_scheduler_runs_backups_and_drills_when_their_cron_says() {
    let folder = common::scratch_dir();
    std::fs::write(folder.join("a.txt"), "a").unwrap();
    // Every minute: the test waits at most for the next minute to begin, plus the run.
    let app = TestBackup::start(json!([{
        "name": "minutely",
        "schedule": "* * * * *",
        "source": { "kind": "folder", "path": folder },
        "drill": { "schedule": "* * * * *", "checks": [{ "kind": "files", "paths": ["a.txt"] }] }
    }]))
    .await;
    let policies = app.get("/v1/policies").await;
    let next: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(policies[0]["next_run"].clone()).unwrap();
    assert!(
        next > chrono::Utc::now() && next <= chrono::Utc::now() + chrono::Duration::seconds(61)
    );
    // The first of `path`'s items with `status`, once there is one.
    let first = |path: &'static str, status: &'static str| {
        let app = &app;
        testkit::eventually(
            path,
            std::time::Duration::from_secs(150),
            move || async move {
                let items = app.get(path).await;
                items
                    .as_array()?
                    .iter()
                    .find(|i| i["status"] == status)
                    .cloned()
            },
        )
    };
    let run = first("/v1/backups?policy=minutely", "succeeded").await;
    assert!(run["started_at"].as_str().unwrap() >= next.to_rfc3339().as_str().get(..19).unwrap());
    first("/v1/drills?policy=minutely", "passed").await;
    app.stop().await;
    let _ = std::fs::remove_dir_all(folder);
}
