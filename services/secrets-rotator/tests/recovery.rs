//! The real binary: SIGKILL in the middle of a rotation, then recovery at the next start, and every log line
//! it wrote (at debug level) searched for the secret values that went through it.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::Connection;

mod common;

async fn phase(pool: &sqlx::PgPool, policy: &str) -> Option<String> {
    sqlx::query_scalar(
        "SELECT phase FROM rotations WHERE policy = $1 ORDER BY started_at DESC LIMIT 1",
    )
    .bind(policy)
    .fetch_optional(pool)
    .await
    .unwrap()
}

async fn version_data(bao: &testkit::OpenBao, path: &str, version: u64) -> Value {
    let r = testkit::http_client()
        .get(format!(
            "{}/v1/secret/data/{path}?version={version}",
            bao.address
        ))
        .header("X-Vault-Token", &bao.root_token)
        .send()
        .await
        .unwrap();
    r.json::<Value>().await.unwrap()["data"]["data"].clone()
}

#[tokio::test]
async fn a_rotation_killed_after_delivery_is_finished_at_restart_and_no_secret_reaches_the_logs() {
    let env = testkit::TestEnv::new().await;
    let bao = testkit::openbao().await;
    let pg = testkit::postgres_with_passwords().await;
    let mut admin = sqlx::PgConnection::connect(&pg.admin_url).await.unwrap();
    let first_password = format!("first-{}", uuid::Uuid::new_v4().simple());
    for statement in [
        "CREATE DATABASE shop".to_owned(),
        format!("CREATE ROLE shop_a LOGIN PASSWORD '{first_password}'"),
        "CREATE ROLE shop_b LOGIN".to_owned(),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    let old_token = format!("hs_old_{}", uuid::Uuid::new_v4().simple());
    bao.kv_put("apps/shop/api", json!({ "token": old_token }))
        .await;
    bao.kv_put(
        "apps/shop/db",
        json!({ "username": "shop_a", "password": first_password }),
    )
    .await;
    // A health endpoint that fails: the resumed rotation must roll back.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let probe = format!("http://{}/healthz", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let app = axum::Router::new().route(
            "/healthz",
            axum::routing::get(|| async { axum::http::StatusCode::SERVICE_UNAVAILABLE }),
        );
        axum::serve(listener, app).await
    });

    let dir =
        std::env::temp_dir().join(format!("hs-rotator-kill-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let (token, sha256) = testkit::token();
    let config = dir.join("rotator.toml");
    std::fs::write(
        &config,
        format!(
            r#"[database]
url = "{db}"
[nats]
{nats}[vault]
address = "{vault}"
token = "{vault_token}"
[[auth.service_tokens]]
name = "admin"
sha256 = "{sha256}"
role = "admin"
[[policies]]
name = "shop-api"
consumers = ["shop"]
ack_timeout_secs = 6
[policies.target]
kind = "kv"
path = "apps/shop/api"
[policies.target.generator]
kind = "api_token"
prefix = "hs_"
key = "token"
[policies.verify]
kind = "http"
url = "{probe}"
[[policies]]
name = "shop-db"
[policies.target]
kind = "database"
path = "apps/shop/db"
admin_url = "{pg_admin}"
database_url = "postgres://127.0.0.1:{pg_port}/shop"
users = ["shop_a", "shop_b"]
"#,
            db = env.db.url,
            nats = env.bus.toml("secrets-rotator"),
            vault = bao.address,
            vault_token = bao.root_token,
            pg_admin = pg.admin_url,
            pg_port = pg.port,
        ),
    )
    .unwrap();
    let log = dir.join("rotator.log");
    let pool = sqlx::PgPool::connect(&env.db.url).await.unwrap();
    let client = testkit::http_client();

    let mut first = testkit::Binary::start(
        env!("CARGO_BIN_EXE_secrets-rotator"),
        "secrets-rotator",
        &config,
        &log,
        &[("RUST_LOG", "debug")],
    );
    first.ready().await;
    let base = first.base.clone();
    // The database login rotates to completion (its passwords go into the log search below).
    let db: Value = client
        .post(format!("{base}/v1/rotations"))
        .bearer_auth(&token)
        .json(&json!({ "path": "apps/shop/db" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(db["phase"], "done", "{db}");
    // The KV rotation waits for "shop", who never answers: kill the process while it waits.
    let request = {
        let (client, base, token) = (client.clone(), base.clone(), token.clone());
        tokio::spawn(async move {
            client
                .post(format!("{base}/v1/rotations"))
                .bearer_auth(token)
                .json(&json!({ "path": "apps/shop/api" }))
                .send()
                .await
        })
    };
    testkit::eventually(
        "the rotation to be delivered",
        Duration::from_secs(20),
        || async { (phase(&pool, "shop-api").await.as_deref() == Some("published")).then_some(()) },
    )
    .await;
    first.kill();
    assert!(
        request.await.unwrap().is_err(),
        "the request died with the process"
    );
    let new_token = version_data(&bao, "apps/shop/api", 2).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_token, old_token);

    // The next start resumes it: the deadline passes, verification fails, the old token comes back.
    let mut second = testkit::Binary::start(
        env!("CARGO_BIN_EXE_secrets-rotator"),
        "secrets-rotator",
        &config,
        &log,
        &[("RUST_LOG", "debug")],
    );
    second.ready().await;
    let finished = testkit::eventually(
        "the rotation to be recovered",
        Duration::from_secs(30),
        || async { phase(&pool, "shop-api").await.filter(|p| p != "published") },
    )
    .await;
    assert_eq!(finished, "rolled_back");
    assert_eq!(
        bao.kv_get("apps/shop/api").await.unwrap()["token"],
        json!(old_token),
        "one current version: the old value"
    );
    second.kill();

    // Every value that went through the rotator, searched for in everything it logged.
    let db_password = bao.kv_get("apps/shop/db").await.unwrap()["password"]
        .as_str()
        .unwrap()
        .to_owned();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.lines().count() > 20,
        "the binary logged at debug level"
    );
    for (what, value) in [
        ("the old token", &old_token),
        ("the new token", &new_token),
        ("the first database password", &first_password),
        ("the rotated database password", &db_password),
    ] {
        assert!(!logged.contains(value.as_str()), "{what} is in the log");
    }
    let stored: Vec<String> = sqlx::query_scalar("SELECT row_to_json(r)::text FROM rotations r")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(
        stored
            .iter()
            .all(|row| !row.contains(&new_token) && !row.contains(&db_password))
    );
    let _ = std::fs::remove_dir_all(dir);
}
