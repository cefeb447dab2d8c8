//! Static roles of OpenBao's database secrets engine, alternating, against a PostgreSQL that checks
//! passwords: Vault rotates the role apps do not hold, the rotator checks it by logging in and publishes it.

use serde_json::{Value, json};
use sqlx::Connection;

mod common;
use common::TestRotator;

async fn login(port: u16, data: &Value) -> Result<(), sqlx::Error> {
    use sqlx::ConnectOptions;
    let conn = sqlx::postgres::PgConnectOptions::new()
        .host("127.0.0.1")
        .port(port)
        .database("shop")
        .username(data["username"].as_str().unwrap())
        .password(data["password"].as_str().unwrap())
        .connect()
        .await?;
    conn.close().await
}

#[tokio::test]
async fn vault_static_roles_alternate_and_each_published_login_works() {
    let pg = testkit::postgres_with_passwords().await;
    let mut admin = sqlx::PgConnection::connect(&pg.admin_url).await.unwrap();
    for statement in [
        "CREATE DATABASE shop",
        "CREATE ROLE shop_a LOGIN",
        "CREATE ROLE shop_b LOGIN",
    ] {
        sqlx::raw_sql(statement).execute(&mut admin).await.unwrap();
    }
    let database_url = format!("postgres://127.0.0.1:{}/shop", pg.port);
    let app = TestRotator::start(json!([{
        "name": "shop-db",
        "target": { "kind": "vault_static_roles", "path": "apps/shop/db", "roles": ["shop-a", "shop-b"], "database_url": database_url },
        "consumers": []
    }]))
    .await;

    // The database secrets engine, as an operator sets it up.
    let bao = |path: &str, body: Value| {
        app.client
            .post(format!("{}/v1/{path}", app.bao.address))
            .header("X-Vault-Token", &app.bao.root_token)
            .json(&body)
            .send()
    };
    let ok = |r: reqwest::Response| {
        assert!(r.status().is_success(), "{}", r.status());
    };
    ok(bao("sys/mounts/database", json!({ "type": "database" }))
        .await
        .unwrap());
    ok(bao("database/config/shop", json!({
        "plugin_name": "postgresql-database-plugin",
        "connection_url": format!("postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/shop?sslmode=disable", pg.port),
        "username": "postgres",
        "password": pg.admin_password,
        "allowed_roles": "*"
    }))
    .await
    .unwrap());
    for (role, user) in [("shop-a", "shop_a"), ("shop-b", "shop_b")] {
        ok(bao(
            &format!("database/static-roles/{role}"),
            json!({ "db_name": "shop", "username": user, "rotation_period": 86400 }),
        )
        .await
        .unwrap());
    }
    let first: Value = app
        .client
        .get(format!(
            "{}/v1/database/static-creds/shop-a",
            app.bao.address
        ))
        .header("X-Vault-Token", &app.bao.root_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    app.bao
        .kv_put("apps/shop/db", json!({ "username": "shop_a", "password": first["data"]["password"], "role": "shop-a" }))
        .await;

    let mut held = app.bao.kv_get("apps/shop/db").await.unwrap();
    for expected in ["shop_b", "shop_a", "shop_b"] {
        let (_, rotation) = app.rotate("apps/shop/db").await;
        assert_eq!(rotation["phase"], "done", "{rotation}");
        assert_eq!(rotation["db_user"], expected);
        let now = app.bao.kv_get("apps/shop/db").await.unwrap();
        login(pg.port, &now)
            .await
            .expect("the published login works");
        login(pg.port, &held)
            .await
            .expect("the login apps held before still works");
        held = now;
    }
    let secret = held["password"].as_str().unwrap();
    let (_, trail) = app.get("/v1/rotations", &app.env.tokens.admin).await;
    assert!(!trail.to_string().contains(secret));
    app.stop().await;
}

#[tokio::test]
async fn vault_dynamic_logins_are_issued_published_and_the_old_lease_revoked_once_consumers_moved_on()
 {
    let pg = testkit::postgres_with_passwords().await;
    let mut admin = sqlx::PgConnection::connect(&pg.admin_url).await.unwrap();
    sqlx::raw_sql("CREATE DATABASE shop")
        .execute(&mut admin)
        .await
        .unwrap();
    let database_url = format!("postgres://127.0.0.1:{}/shop", pg.port);
    // A health endpoint whose answer the test changes.
    let healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let probe = format!("http://{}/healthz", listener.local_addr().unwrap());
    let flag = healthy.clone();
    tokio::spawn(async move {
        let app = axum::Router::new().route(
            "/healthz",
            axum::routing::get(move || {
                let ok = flag.load(std::sync::atomic::Ordering::Relaxed);
                async move {
                    if ok {
                        axum::http::StatusCode::OK
                    } else {
                        axum::http::StatusCode::SERVICE_UNAVAILABLE
                    }
                }
            }),
        );
        axum::serve(listener, app).await
    });
    let app = TestRotator::start(json!([{
        "name": "shop-db",
        "target": { "kind": "vault_dynamic", "path": "apps/shop/db", "role": "shop-app", "database_url": database_url },
        "verify": { "kind": "http", "url": probe },
        "consumers": []
    }]))
    .await;
    let bao = |path: &str, body: Value| {
        app.client
            .post(format!("{}/v1/{path}", app.bao.address))
            .header("X-Vault-Token", &app.bao.root_token)
            .json(&body)
            .send()
    };
    for (path, body) in [
        ("sys/mounts/database", json!({ "type": "database" })),
        (
            "database/config/shop",
            json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": format!("postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/shop?sslmode=disable", pg.port),
                "username": "postgres", "password": pg.admin_password, "allowed_roles": "*"
            }),
        ),
        (
            "database/roles/shop-app",
            json!({
                "db_name": "shop",
                "creation_statements": ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'"],
                "default_ttl": "1h", "max_ttl": "24h"
            }),
        ),
    ] {
        let r = bao(path, body).await.unwrap();
        assert!(
            r.status().is_success(),
            "{path}: {}",
            r.text().await.unwrap()
        );
    }

    let (_, first) = app.rotate("apps/shop/db").await;
    assert_eq!(first["phase"], "done", "{first}");
    let one = app.bao.kv_get("apps/shop/db").await.unwrap();
    assert!(
        one["lease_id"]
            .as_str()
            .unwrap()
            .starts_with("database/creds/shop-app/")
    );
    login(pg.port, &one)
        .await
        .expect("the first dynamic login works");

    let (_, second) = app.rotate("apps/shop/db").await;
    assert_eq!(second["phase"], "done", "{second}");
    let two = app.bao.kv_get("apps/shop/db").await.unwrap();
    assert_ne!(two["username"], one["username"]);
    login(pg.port, &two)
        .await
        .expect("the new dynamic login works");
    assert!(
        login(pg.port, &one).await.is_err(),
        "the previous lease was revoked: its user is gone"
    );

    // A failed verification keeps the login apps hold and revokes the one nobody uses.
    healthy.store(false, std::sync::atomic::Ordering::Relaxed);
    let (_, third) = app.rotate("apps/shop/db").await;
    assert_eq!(third["phase"], "rolled_back", "{third}");
    let after = app.bao.kv_get("apps/shop/db").await.unwrap();
    assert_eq!(after["username"], two["username"]);
    login(pg.port, &two)
        .await
        .expect("the held login still works");
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v-%'")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(users, 1, "only the held dynamic user is left in PostgreSQL");
    app.stop().await;
}
