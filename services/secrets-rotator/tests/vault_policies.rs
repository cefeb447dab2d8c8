//! The generated Vault policies, loaded into a real OpenBao: a token holding a consumer's policy reads its
//! own secret and nothing else, and cannot write it.

use serde_json::json;

mod common;
use common::TestRotator;

#[tokio::test]
async fn a_token_with_a_generated_policy_reads_only_its_own_paths() {
    let kv = |name: &str, path: &str, consumers: serde_json::Value| {
        json!({ "name": name, "consumers": consumers,
                "target": { "kind": "kv", "path": path, "generator": { "kind": "password" } } })
    };
    let app = TestRotator::start(json!([
        kv("shop-api", "apps/shop/api", json!(["shop"])),
        kv("billing-api", "apps/billing/api", json!(["billing"])),
    ]))
    .await;
    app.bao
        .kv_put("apps/shop/api", json!({ "value": "shop-secret" }))
        .await;
    app.bao
        .kv_put("apps/billing/api", json!({ "value": "billing-secret" }))
        .await;
    let (status, policies) = app.get("/v1/vault-policies", &app.env.tokens.admin).await;
    assert_eq!(status, 200);
    let (status, _) = app.get("/v1/vault-policies", &app.env.tokens.viewer).await;
    assert_eq!(status, 403);

    let bao = |method: reqwest::Method, path: &str, token: &str| {
        app.client
            .request(method, format!("{}/v1/{path}", app.bao.address))
            .header("X-Vault-Token", token.to_owned())
    };
    let root = app.bao.root_token.clone();
    for (name, hcl) in policies.as_object().unwrap() {
        let loaded = bao(
            reqwest::Method::PUT,
            &format!("sys/policies/acl/{name}"),
            &root,
        )
        .json(&json!({ "policy": hcl }))
        .send()
        .await
        .unwrap();
        assert!(
            loaded.status().is_success(),
            "OpenBao accepts {name}: {}",
            loaded.text().await.unwrap()
        );
    }
    let created: serde_json::Value = bao(reqwest::Method::POST, "auth/token/create", &root)
        .json(&json!({ "policies": ["homestation-shop"], "no_default_policy": true }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let shop = created["auth"]["client_token"].as_str().unwrap().to_owned();

    let read = |path: &str| bao(reqwest::Method::GET, path, &shop).send();
    let own = read("secret/data/apps/shop/api").await.unwrap();
    assert_eq!(own.status(), 200);
    let own: serde_json::Value = own.json().await.unwrap();
    assert_eq!(own["data"]["data"]["value"], "shop-secret");
    assert_eq!(
        read("secret/metadata/apps/shop/api")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        read("secret/data/apps/billing/api").await.unwrap().status(),
        403,
        "another service's secret"
    );
    let write = bao(reqwest::Method::POST, "secret/data/apps/shop/api", &shop)
        .json(&json!({ "data": { "value": "mine now" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        write.status(),
        403,
        "consumers read, only the rotator writes"
    );

    // The rotator's own policy is enough for a whole rotation.
    let created: serde_json::Value = bao(reqwest::Method::POST, "auth/token/create", &root)
        .json(&json!({ "policies": ["homestation-secrets-rotator"], "no_default_policy": true }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rotator_token = created["auth"]["client_token"].as_str().unwrap().to_owned();
    let mut config = app.config(json!([
        kv("shop-api", "apps/shop/api", json!([])),
        kv("billing-api", "apps/billing/api", json!([])),
    ]));
    config.vault.token = secrecy::SecretString::from(rotator_token);
    use service_kit::Service;
    let limited = secrets_rotator::Application::build(config).await.unwrap();
    let base = format!("http://{}", limited.http_addr());
    let running = testkit::spawn(limited);
    let (_, rotation) = app.rotate_at(&base, "apps/shop/api").await;
    assert_eq!(rotation["phase"], "done", "{rotation}");
    running.stop().await.unwrap();
    app.stop().await;
}
