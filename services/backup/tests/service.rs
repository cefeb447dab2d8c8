//! The backup service end to end over its REST API, against real PostgreSQL, nats-server, moto (S3) and
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
    assert!(!run["verified_at"].is_null(), "read back and checked after the upload: {run}");
    let id = run["id"].as_str().unwrap().to_owned();
    assert!(run["object_key"].as_str().unwrap().starts_with("postgres/shop/"));

    // A new database by default, with every row.
    let (status, restored) = app
        .request(Method::POST, &format!("/v1/backups/{id}/restore"), &tokens.admin, Some(json!({ "to": { "kind": "database" } })))
        .await;
    assert_eq!(status, 200, "{restored}");
    let name = restored["target"].as_str().unwrap();
    assert!(name.starts_with(&source.name[..40]) && name.contains("_restored_"), "{name}");
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
        .request(Method::POST, &format!("/v1/backups/{id}/restore"), &tokens.admin, Some(over_live.clone()))
        .await;
    assert_eq!(status, 409, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("--force"), "{refused}");
    assert_eq!(count_rows(&source.url).await, 10, "the refused restore touched nothing");
    let (status, _) = app
        .request(Method::POST, &format!("/v1/backups/{id}/restore"), &tokens.admin, Some(json!({ "to": over_live["to"], "force": true })))
        .await;
    assert_eq!(status, 200);
    assert_eq!(count_rows(&source.url).await, 42);

    // Restores are for Admins; verifying for Developers.
    let (status, _) = app
        .request(Method::POST, &format!("/v1/backups/{id}/restore"), &tokens.developer, Some(json!({ "to": { "kind": "database" } })))
        .await;
    assert_eq!(status, 403);
    let (status, verified) = app
        .request(Method::POST, &format!("/v1/backups/{id}/verify"), &tokens.developer, None)
        .await;
    assert_eq!((status.as_u16(), &verified["verified"]), (200, &json!(true)), "{verified}");

    // The run's events and metrics.
    let started = app.await_events("backup.v1.run.started", 1).await;
    let succeeded = app.await_events("backup.v1.run.succeeded", 1).await;
    assert_eq!(started[0]["run_id"], json!(id));
    assert_eq!(succeeded[0]["source"], "postgres");
    assert!(succeeded[0]["bytes"].as_u64().unwrap() > 0);
    let metrics = app.client.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"homestation_backup_last_success_timestamp_seconds{service="backup",policy="shop"}"#), "{metrics}");
    assert!(metrics.contains(r#"homestation_backup_runs_total{service="backup",policy="shop",outcome="succeeded"} 1"#), "{metrics}");
    app.stop().await;
}

trait ExecuteMany {
    async fn execute_many_rows(&self, sql: &str);
}

impl ExecuteMany for sqlx::PgPool {
    async fn execute_many_rows(&self, sql: &str) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(self).await.unwrap();
    }
}
