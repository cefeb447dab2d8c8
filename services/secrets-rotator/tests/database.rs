//! Database logins under load, against a PostgreSQL that checks passwords and a real OpenBao. A test app
//! serves 200 requests a second from a pool that keeps logging in with the login it holds (reloaded by
//! secrets-client on each rotation) while the rotator rotates 100 times: with alternating users no request
//! fails; rotating one user in place, side by side, fails some.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection};

mod common;
use common::TestRotator;

const RATE_PER_SEC: u64 = 200;
const ROTATIONS: usize = 100;

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
}

fn connect_options(login: &secrets_client::Versioned, port: u16) -> PgConnectOptions {
    PgConnectOptions::new()
        .host("127.0.0.1")
        .port(port)
        .database("shop")
        .username(login.get("username").unwrap().expose_secret())
        .password(login.get("password").unwrap().expose_secret())
        .disable_statement_logging()
}

/// The test app: a pool that renews its connections every 250 ms (so it keeps logging in, as apps that
/// scale and recycle do), reconfigured by secrets-client on each rotation, and 200 requests a second each
/// taking a connection and running a query, until `stop` fires.
async fn rotate_under_load(app: &TestRotator, path: &str, port: u16) -> (u64, u64) {
    let slot: Arc<std::sync::OnceLock<sqlx::PgPool>> = Arc::default();
    let reconfigure = slot.clone();
    let secret = app
        .consumer_applying(path, "shop", move |login| {
            if let Some(pool) = reconfigure.get() {
                pool.set_connect_options(connect_options(login, port));
            }
        })
        .await;
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .min_connections(0)
        .max_lifetime(Duration::from_millis(250))
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy_with(connect_options(&secret.current(), port));
    slot.set(pool.clone()).expect("set once");
    let tally = Arc::new(Tally::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let load = {
        let (pool, tally) = (pool.clone(), tally.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1000 / RATE_PER_SEC));
            let mut requests = tokio::task::JoinSet::new();
            while !*stopped.borrow() {
                tick.tick().await;
                let (pool, tally) = (pool.clone(), tally.clone());
                requests.spawn(async move {
                    let answered = sqlx::query_scalar::<_, i32>("SELECT 1")
                        .fetch_one(&pool)
                        .await;
                    match answered {
                        Ok(1) => tally.ok.fetch_add(1, Ordering::Relaxed),
                        other => {
                            if tally.failed.fetch_add(1, Ordering::Relaxed) < 3 {
                                println!("a request failed: {other:?}");
                            }
                            0
                        }
                    };
                });
            }
            while requests.join_next().await.is_some() {}
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..ROTATIONS {
        let (status, rotation) = app.rotate(path).await;
        assert_eq!(status, 200, "{rotation}");
        assert!(
            rotation["phase"] == "done" || rotation["phase"] == "failed",
            "rotation {i}: {rotation}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send_replace(true);
    load.await.unwrap();
    pool.close().await;
    (
        tally.ok.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alternating_users_serve_every_request_across_100_rotations_and_a_single_user_does_not() {
    let pg = testkit::postgres_with_passwords().await;
    let mut admin = PgConnection::connect(&pg.admin_url).await.unwrap();
    let first = |n: u8| format!("first-{n}-{}", uuid::Uuid::new_v4().simple());
    let (pa, pb, ps) = (first(1), first(2), first(3));
    for statement in [
        "CREATE DATABASE shop".to_owned(),
        format!("CREATE ROLE shop_a LOGIN PASSWORD '{pa}'"),
        format!("CREATE ROLE shop_b LOGIN PASSWORD '{pb}'"),
        format!("CREATE ROLE shop_single LOGIN PASSWORD '{ps}'"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    let database_url = format!("postgres://127.0.0.1:{}/shop", pg.port);
    let policy = |name: &str, path: &str, users: serde_json::Value| {
        json!({
            "name": name,
            "target": { "kind": "database", "path": path, "admin_url": pg.admin_url, "database_url": database_url, "users": users },
            "consumers": ["shop"],
            "ack_timeout_secs": 10
        })
    };
    let app = TestRotator::start(json!([
        policy("shop-db", "apps/shop/db", json!(["shop_a", "shop_b"])),
        policy(
            "shop-db-single",
            "apps/shop/db-single",
            json!(["shop_single"])
        ),
    ]))
    .await;
    app.bao
        .kv_put(
            "apps/shop/db",
            json!({ "username": "shop_a", "password": pa }),
        )
        .await;
    app.bao
        .kv_put(
            "apps/shop/db-single",
            json!({ "username": "shop_single", "password": ps }),
        )
        .await;

    let (ok, failed) = rotate_under_load(&app, "apps/shop/db", pg.port).await;
    println!(
        "alternating users: {ok} requests served, {failed} failed across {ROTATIONS} rotations"
    );
    assert!(ok > u64::from(ROTATIONS as u32) * 5, "the load ran: {ok}");
    assert_eq!(failed, 0, "alternating users: no request fails");

    let (single_ok, single_failed) = rotate_under_load(&app, "apps/shop/db-single", pg.port).await;
    println!(
        "single user: {single_ok} requests served, {single_failed} failed across {ROTATIONS} rotations"
    );
    assert!(
        single_failed > 0,
        "rotating one user in place fails requests until the app reloads"
    );

    let (_, trail) = app
        .get(
            "/v1/rotations?path=apps/shop/db&limit=1000",
            &app.env.tokens.admin,
        )
        .await;
    let trail = trail.as_array().unwrap();
    assert_eq!(trail.len(), ROTATIONS);
    assert!(trail.iter().all(|r| r["phase"] == "done"));
    let users: std::collections::BTreeSet<&str> = trail
        .iter()
        .map(|r| r["db_user"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["shop_a", "shop_b"].into(), "the users took turns");
    // The passwords never went to PostgreSQL in clear: it holds SCRAM verifiers only.
    let verifier: String =
        sqlx::query_scalar("SELECT rolpassword FROM pg_authid WHERE rolname = 'shop_b'")
            .fetch_one(&mut admin)
            .await
            .unwrap();
    assert!(verifier.starts_with("SCRAM-SHA-256$4096:"));
    app.stop().await;
}
