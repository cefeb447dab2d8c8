//! `homestation edge` against a running edge-registry (real PostgreSQL, nats-server and an OpenBao of its own).

use std::process::Output;

use secrecy::SecretString;
use service_kit::{HttpSettings, Service, VaultSettings};
use testkit::TestEnv;

async fn homestation(server: &str, token: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_homestation"))
        .args(args)
        .env("HOMESTATION_EDGE_SERVER", server)
        .env("HOMESTATION_TOKEN", token)
        // No contexts of whoever runs the tests: an absent config file.
        .env("HOMESTATION_CONFIG", "/nonexistent/homestation/config.toml")
        .env_remove("HOMESTATION_TOKEN_FILE")
        .output()
        .await
        .expect("the CLI runs")
}

#[tokio::test]
async fn tokens_are_created_listed_and_revoked_and_nodes_listed() {
    let env = TestEnv::new().await;
    let bao = testkit::openbao().await;
    let registry = edge_registry::Application::build(edge_registry::Config {
        http: HttpSettings::with_port(0),
        enrol: HttpSettings::with_port(0),
        database: env.database(),
        nats: env.nats("edge-registry"),
        callout: edge_registry::bus_access::CalloutSettings {
            issuer_seed: Some(env.bus.issuer_seed()),
            ..Default::default()
        },
        auth: env.auth(),
        vault: VaultSettings {
            address: bao.address.clone(),
            token: SecretString::from(bao.root_token.clone()),
            kv_mount: "secret".into(),
        },
        ..Default::default()
    })
    .await
    .unwrap();
    let server = format!("http://{}", registry.http_addr());
    let running = testkit::spawn(registry);
    let admin = env.tokens.admin.as_str();

    let created = homestation(
        &server,
        admin,
        &[
            "edge",
            "token",
            "create",
            "--ttl",
            "2h",
            "--label",
            "site=garage",
            "--taint",
            "gpu=true:NoSchedule",
            "-o",
            "json",
        ],
    )
    .await;
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let token: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let id = token["id"].as_str().unwrap();
    assert!(token["token"].as_str().unwrap().starts_with("hsj_"));

    let table = homestation(&server, admin, &["edge", "token", "create"]).await;
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("It is shown this once") && text.contains("hsj_"),
        "{text}"
    );

    let listed = String::from_utf8_lossy(
        &homestation(&server, admin, &["edge", "token", "list"])
            .await
            .stdout,
    )
    .into_owned();
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(id) && l.contains("active")),
        "{listed}"
    );

    let revoked = homestation(&server, admin, &["edge", "revoke", id]).await;
    assert_eq!(
        String::from_utf8_lossy(&revoked.stdout),
        format!("revoked join token {id}\n")
    );
    let listed = String::from_utf8_lossy(
        &homestation(&server, admin, &["edge", "token", "list"])
            .await
            .stdout,
    )
    .into_owned();
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(id) && l.contains("revoked")),
        "{listed}"
    );

    let viewer = homestation(&server, &env.tokens.viewer, &["edge", "token", "create"]).await;
    assert_eq!(
        viewer.status.code(),
        Some(4),
        "only Admins make join tokens"
    );
    let bad_ttl = homestation(
        &server,
        admin,
        &["edge", "token", "create", "--ttl", "soon"],
    )
    .await;
    assert_eq!(bad_ttl.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad_ttl.stderr).contains("ttl"));

    let nodes = homestation(&server, &env.tokens.viewer, &["edge", "list"]).await;
    assert_eq!(
        String::from_utf8_lossy(&nodes.stdout),
        "no edge nodes enrolled yet\n"
    );
    let missing = homestation(&server, &env.tokens.viewer, &["edge", "show", "ghost"]).await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("homestation edge list"));

    // A node recorded straight into the registry's tables (enrolment has its own tests), then removed.
    let pool = sqlx::PgPool::connect(&env.db.url).await.unwrap();
    sqlx::query(
        "INSERT INTO edge_nodes (id, name, tailnet_ip, dns_name, facts, token_id)
         SELECT gen_random_uuid(), 'jetson-old', '100.64.0.9', 'jetson-old.ts.net', '{}', id FROM join_tokens LIMIT 1",
    )
    .execute(&pool)
    .await
    .unwrap();
    let refused = homestation(
        &server,
        &env.tokens.viewer,
        &["edge", "remove", "jetson-old"],
    )
    .await;
    assert_eq!(refused.status.code(), Some(4), "only Admins remove nodes");
    let removed = homestation(&server, admin, &["edge", "remove", "jetson-old"]).await;
    assert_eq!(
        String::from_utf8_lossy(&removed.stdout),
        "removed edge node jetson-old: its bus credential is refused from now on\n"
    );
    let again = homestation(&server, admin, &["edge", "remove", "jetson-old"]).await;
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("no edge node jetson-old"));
    running.stop().await.unwrap();
}
