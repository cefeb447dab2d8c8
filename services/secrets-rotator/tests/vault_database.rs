//! Static roles of OpenBao's database secrets engine, alternating, against a PostgreSQL that checks
//! passwords: Vault rotates the role apps do not hold, the rotator checks it by logging in and publishes it.

use serde_json::{Value, json};
use sqlx::Connection;

mod common;
use common::TestRotator;

async fn login(port: u16, data: &Value) -> Result<(), sqlx::Error> {
    use sqlx::ConnectOptions;
    let mut conn = sqlx::postgres::PgConnectOptions::new()
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
