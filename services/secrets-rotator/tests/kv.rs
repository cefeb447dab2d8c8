//! KV v2 rotation against a real OpenBao: check-and-set, acknowledgements, verification and rollback.

use serde_json::json;
use service_kit::Service;

mod common;
use common::TestRotator;

fn api_token_policy(path: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut policy = json!({
        "name": "shop-api",
        "target": { "kind": "kv", "path": path, "generator": { "kind": "api_token", "prefix": "hs_", "key": "token" } },
        "consumers": ["shop"],
        "ack_timeout_secs": 20
    });
    for (k, v) in extra.as_object().unwrap() {
        policy[k] = v.clone();
    }
    json!([policy])
}

#[tokio::test]
async fn a_rotation_writes_with_cas_waits_for_the_consumer_and_retires_the_old_version() {
    let app = TestRotator::start(api_token_policy("apps/shop/api", json!({}))).await;
    app.bao
        .kv_put(
            "apps/shop/api",
            json!({ "token": "hs_old", "endpoint": "https://api.lab" }),
        )
        .await;
    let mut shop = app.consumer("apps/shop/api", "shop").await;
    assert_eq!(shop.current().version, 1);

    let (status, rotation) = app.rotate("apps/shop/api").await;
    assert_eq!(status, 200, "{rotation}");
    assert_eq!(rotation["phase"], "done", "{rotation}");
    assert_eq!(
        (
            rotation["from_version"].as_i64(),
            rotation["to_version"].as_i64()
        ),
        (Some(1), Some(2))
    );
    assert_eq!(
        rotation["unacknowledged"],
        json!([]),
        "the consumer acknowledged"
    );

    let now = shop.reloaded(2).await;
    use secrecy::ExposeSecret;
    let token = now.get("token").unwrap();
    assert!(token.expose_secret().starts_with("hs_") && token.expose_secret() != "hs_old");
    assert_eq!(
        now.get("endpoint").unwrap().expose_secret(),
        "https://api.lab",
        "other keys are kept"
    );
    let stored = app.bao.kv_get("apps/shop/api").await.unwrap();
    assert_eq!(stored["token"].as_str(), Some(token.expose_secret()));
    let old = app
        .client
        .get(format!(
            "{}/v1/secret/data/apps/shop/api?version=1",
            app.bao.address
        ))
        .header("X-Vault-Token", &app.bao.root_token)
        .send()
        .await
        .unwrap();
    let old: serde_json::Value = old.json().await.unwrap();
    assert!(
        old["data"]["data"].is_null(),
        "version 1 is no longer readable: {old}"
    );

    // The event carries the path and version, never the value.
    let events = app.events().await;
    let rotated: Vec<_> = events
        .iter()
        .filter(|(s, _)| s == "secrets.v1.rotated")
        .collect();
    assert_eq!(rotated.len(), 1);
    assert_eq!(
        rotated[0].1,
        json!({ "path": "apps/shop/api", "version": 2 })
    );
    assert!(
        !serde_json::to_string(&events)
            .unwrap()
            .contains(token.expose_secret())
    );

    // The audit trail is for Admins.
    let (status, trail) = app
        .get("/v1/rotations?path=apps/shop/api", &app.env.tokens.admin)
        .await;
    assert_eq!(status, 200);
    assert_eq!(trail[0]["actor"], "token:admin");
    let (status, _) = app.get("/v1/rotations", &app.env.tokens.developer).await;
    assert_eq!(status, 403);
    let (status, _) = app
        .post(
            "/v1/rotations",
            &app.env.tokens.developer,
            json!({ "path": "apps/shop/api" }),
        )
        .await;
    assert_eq!(status, 403, "rotating is for Admins");
    app.stop().await;
}

/// A consumer's health endpoint, answering `status`.
async fn probe(status: u16) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/healthz", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/healthz",
        axum::routing::get(
            move || async move { axum::http::StatusCode::from_u16(status).unwrap() },
        ),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn a_failed_verification_restores_the_previous_value_as_a_new_version() {
    let url = probe(503).await;
    let app = TestRotator::start(api_token_policy(
        "apps/shop/api",
        json!({ "verify": { "kind": "http", "url": url }, "consumers": [] }),
    ))
    .await;
    app.bao
        .kv_put("apps/shop/api", json!({ "token": "hs_before" }))
        .await;
    let (_, rotation) = app.rotate("apps/shop/api").await;
    assert_eq!(rotation["phase"], "rolled_back", "{rotation}");
    assert_eq!(rotation["restored_version"], 3);
    assert!(
        rotation["reason"]
            .as_str()
            .unwrap()
            .contains("answered 503"),
        "{rotation}"
    );
    assert_eq!(
        app.bao.kv_get("apps/shop/api").await.unwrap()["token"],
        "hs_before"
    );
    let versions: Vec<u64> = app
        .events_of("secrets.v1.rotated", 2)
        .await
        .iter()
        .map(|d| d["version"].as_u64().unwrap())
        .collect();
    assert_eq!(
        versions,
        vec![2, 3],
        "consumers hear of the new version and of the restored one"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_consumer_that_never_acknowledges_is_named_and_the_rotation_still_verifies() {
    let url = probe(200).await;
    let app = TestRotator::start(api_token_policy(
        "apps/shop/api",
        json!({ "verify": { "kind": "http", "url": url }, "consumers": ["shop", "ghost"], "ack_timeout_secs": 2 }),
    ))
    .await;
    app.bao
        .kv_put("apps/shop/api", json!({ "token": "x" }))
        .await;
    let _shop = app.consumer("apps/shop/api", "shop").await;
    let (_, rotation) = app.rotate("apps/shop/api").await;
    assert_eq!(rotation["phase"], "done", "{rotation}");
    assert_eq!(rotation["unacknowledged"], json!(["ghost"]));
    app.stop().await;
}

#[tokio::test]
async fn vault_unreachable_or_a_cas_conflict_stops_with_nothing_changed() {
    let mut app = TestRotator::start(api_token_policy(
        "apps/shop/api",
        json!({ "consumers": [] }),
    ))
    .await;
    app.bao
        .kv_put("apps/shop/api", json!({ "token": "keep" }))
        .await;

    // Check-and-set: a writer that read version 0 cannot overwrite version 1.
    let kv =
        secrets_rotator::kv::Kv::new(std::sync::Arc::new(app.vault().client().unwrap()), "secret");
    let (version, data) = kv.current("apps/shop/api").await.unwrap();
    assert_eq!(version, 1);
    let conflict = kv.write("apps/shop/api", &data, 0).await.unwrap_err();
    assert!(
        matches!(
            conflict,
            secrets_rotator::kv::KvError::Conflict { expected: 0, .. }
        ),
        "{conflict}"
    );
    assert!(
        !format!("{conflict:?}").contains("keep"),
        "errors never carry values"
    );

    // Vault gone: the rotation fails, says why, and the secret is as it was.
    let policies = api_token_policy("apps/shop/api", json!({ "consumers": [] }));
    let mut config = app.config(policies.clone());
    config.vault.address = "http://127.0.0.1:9".into();
    let unreachable = secrets_rotator::Application::build(config)
        .await
        .expect("builds without Vault");
    let base = format!("http://{}", unreachable.http_addr());
    let running = testkit::spawn(unreachable);
    let (_, answer) = app.rotate_at(&base, "apps/shop/api").await;
    assert_eq!(answer["phase"], "failed", "{answer}");
    assert!(
        answer["reason"].as_str().unwrap().contains("unavailable"),
        "{answer}"
    );
    running.stop().await.unwrap();
    app.restart(policies).await;
    assert_eq!(
        app.bao.kv_get("apps/shop/api").await.unwrap()["token"],
        "keep"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_rotation_that_died_after_writing_but_before_telling_anyone_is_undone_at_start() {
    let policies = api_token_policy("apps/shop/api", json!({ "consumers": [] }));
    let mut app = TestRotator::start(policies.clone()).await;
    app.bao
        .kv_put("apps/shop/api", json!({ "token": "hs_before" }))
        .await;
    // What a process killed between its Vault write and its announcement leaves behind.
    app.bao
        .kv_put("apps/shop/api", json!({ "token": "hs_never_announced" }))
        .await;
    let pool = sqlx::PgPool::connect(&app.env.db.url).await.unwrap();
    sqlx::query(
        "INSERT INTO rotations (id, policy, path, actor, phase, from_version, to_version)
         VALUES ($1, 'shop-api', 'apps/shop/api', 'scheduler', 'written', 1, 2)",
    )
    .bind(uuid::Uuid::now_v7())
    .execute(&pool)
    .await
    .unwrap();

    app.restart(policies).await;
    let recovered = testkit::eventually(
        "the recovery",
        std::time::Duration::from_secs(20),
        || async {
            let (_, trail) = app.get("/v1/rotations", &app.env.tokens.admin).await;
            trail
                .as_array()?
                .iter()
                // Finished, not merely past `written`: undoing passes through `published` (the
                // restored version is announced) before it ends `rolled_back`.
                .find(|r| {
                    ["done", "rolled_back", "failed"]
                        .contains(&r["phase"].as_str().unwrap_or_default())
                })
                .cloned()
        },
    )
    .await;
    assert_eq!(recovered["phase"], "rolled_back", "{recovered}");
    assert_eq!(recovered["restored_version"], 3);
    assert_eq!(
        app.bao.kv_get("apps/shop/api").await.unwrap()["token"],
        "hs_before"
    );
    // And a second rotation runs normally afterwards.
    let (_, again) = app.rotate("apps/shop/api").await;
    assert_eq!(again["phase"], "done", "{again}");
    app.stop().await;
}

#[tokio::test]
async fn a_max_age_policy_rotates_a_missing_or_old_secret_and_leaves_a_fresh_one() {
    let app = TestRotator::start(json!([])).await;
    let policy = secrets_rotator::policy::Policy::parse(
        serde_json::from_value(json!({
            "name": "shop-api", "max_age_hours": 24,
            "target": { "kind": "kv", "path": "apps/shop/api", "generator": { "kind": "password" } }
        }))
        .unwrap(),
    )
    .unwrap();
    let pool = sqlx::PgPool::connect(&app.env.db.url).await.unwrap();
    let rotator = secrets_rotator::engine::Rotator {
        pool,
        kv: secrets_rotator::kv::Kv::new(
            std::sync::Arc::new(app.vault().client().unwrap()),
            "secret",
        ),
        policies: [("shop-api".to_owned(), policy)].into(),
        outbox: Default::default(),
        http: reqwest::Client::new(),
        kube: None,
        metrics: secrets_rotator::metrics::RotatorMetrics::new(
            &service_kit::metrics::Metrics::new("test"),
        ),
        shutdown: service_kit::Shutdown::new(),
    };
    let created = rotator
        .rotate_if_older("shop-api")
        .await
        .unwrap()
        .expect("a missing secret is made");
    assert_eq!(
        (created.phase.as_str(), created.actor.as_str()),
        ("done", "max-age")
    );
    assert!(
        rotator.rotate_if_older("shop-api").await.unwrap().is_none(),
        "a fresh secret is left alone"
    );
    app.stop().await;
}
