//! REST API against the real PostgreSQL: CRUD, bad input, exports, OpenAPI, health and metrics.

mod common;

use common::spawn_inventory;
use serde_json::{Value, json};

#[tokio::test]
async fn nodes_crud_round_trip() {
    let app = spawn_inventory().await;
    let body = json!({
        "name": "wsl-control",
        "kind": "control",
        "addresses": ["100.64.0.1", "fd7a:115c:a1e0::1"],
        "labels": {"homestation.io/role": "control-plane"},
        "capacity": {"cpu_millicores": 16000, "memory_bytes": 34359738368u64}
    });
    let created = app.post("/v1/nodes", &app.tokens.developer, body).await;
    assert_eq!(created.status(), 201);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let node: Value = created.json().await.unwrap();
    assert_eq!(
        location,
        format!("/v1/nodes/{}", node["id"].as_str().unwrap())
    );
    assert_eq!(node["health"], "unknown");

    let by_id = app.get_json(&location).await;
    let by_name = app.get_json("/v1/nodes/wsl-control").await;
    assert_eq!(by_id, by_name);
    assert_eq!(by_name["addresses"][1], "fd7a:115c:a1e0::1");
    assert_eq!(by_name["capacity"]["cpu_millicores"], 16000);

    let list = app.get_json("/v1/nodes?kind=control").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let none = app.get_json("/v1/nodes?kind=edge").await;
    assert_eq!(none, json!([]));

    let duplicate = app
        .post(
            "/v1/nodes",
            &app.tokens.developer,
            json!({"name": "wsl-control", "kind": "worker"}),
        )
        .await;
    assert_eq!(duplicate.status(), 409);

    let deleted = app
        .client
        .delete(app.url("/v1/nodes/wsl-control"))
        .bearer_auth(&app.tokens.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(
        app.get("/v1/nodes/wsl-control", &app.tokens.viewer)
            .await
            .status(),
        404
    );
    app.stop().await;
}

#[tokio::test]
async fn services_crud_and_lookup_by_namespace() {
    let app = spawn_inventory().await;
    for (name, ns) in [("grafana", "observability"), ("inventory", "homestation")] {
        let body = json!({"name": name, "namespace": ns, "endpoints": [format!("http://{name}.{ns}:3000")], "owner": "ops"});
        assert_eq!(
            app.post("/v1/services", &app.tokens.developer, body)
                .await
                .status(),
            201
        );
    }
    let all = app.get_json("/v1/services").await;
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["inventory", "grafana"],
        "ordered by namespace then name"
    );
    let one = app.get_json("/v1/services/observability/grafana").await;
    assert_eq!(one["owner"], "ops");
    let filtered = app.get_json("/v1/services?namespace=homestation").await;
    assert_eq!(filtered.as_array().unwrap().len(), 1);
    app.stop().await;
}

async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("error bodies are JSON");
    (status, body["error"].clone())
}

#[tokio::test]
async fn bad_input_is_a_400_naming_the_field() {
    let app = spawn_inventory().await;
    let token = app.tokens.developer.clone();

    let malformed = app
        .client
        .post(app.url("/v1/nodes"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    let (status, error) = error_of(malformed).await;
    assert_eq!(status, 400);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{error}"
    );

    let cases = [
        (
            json!({"name": "n1", "kind": "control", "colour": "red"}),
            "colour",
        ),
        (json!({"name": "Not_A_Name", "kind": "control"}), "name"),
        (json!({"name": "n1", "kind": "mainframe"}), "kind"),
        (
            json!({"name": "n1", "kind": "vm", "addresses": ["300.1.1.1"]}),
            "addresses[0]",
        ),
        (
            json!({"name": "n1", "kind": "vm", "labels": {"bad key": "x"}}),
            "labels.bad key",
        ),
        (json!({"kind": "vm"}), "name"),
    ];
    for (body, field) in cases {
        let (status, error) = error_of(app.post("/v1/nodes", &token, body.clone()).await).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            error["field"] == field || error["message"].as_str().unwrap().contains(field),
            "{body} should name {field}: {error}"
        );
        assert!(!error["request_id"].as_str().unwrap().is_empty());
    }

    let service = json!({"name": "web", "namespace": "apps", "endpoints": ["ftp://web"]});
    let (status, error) = error_of(app.post("/v1/services", &token, service).await).await;
    assert_eq!(
        (status, error["field"].as_str()),
        (400, Some("endpoints[0]"))
    );

    let (status, error) = error_of(app.get("/v1/nodes?kind=mainframe", &token).await).await;
    assert_eq!(status, 400, "{error}");
    let (status, _) = error_of(app.get("/v1/nodes/nobody/history?limit=0", &token).await).await;
    assert_eq!(status, 400);
    let (status, error) = error_of(
        app.get("/v1/nodes/00000000-0000-0000-0000-000000000000", &token)
            .await,
    )
    .await;
    assert_eq!(status, 404);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("homestation nodes list")
    );
    let (status, _) = error_of(app.get("/v1/services/nowhere/nothing", &token).await).await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn exports_feed_homepage_and_prometheus() {
    let app = spawn_inventory().await;
    let token = app.tokens.developer.clone();
    let svc = json!({"name": "grafana", "namespace": "observability", "endpoints": ["https://grafana.lab/"], "description": "Dashboards \"for all\""});
    assert_eq!(app.post("/v1/services", &token, svc).await.status(), 201);
    let node = json!({"name": "worker-1", "kind": "worker", "addresses": ["10.0.0.7", "fd00::7"]});
    assert_eq!(app.post("/v1/nodes", &token, node).await.status(), 201);

    let yaml = app
        .get("/v1/exports/homepage/services.yaml", &app.tokens.viewer)
        .await;
    assert_eq!(yaml.headers()["content-type"], "application/yaml");
    let yaml = yaml.text().await.unwrap();
    assert!(
        yaml.contains(
            "- \"observability\":\n    - \"grafana\":\n        href: \"https://grafana.lab/\""
        ),
        "{yaml}"
    );
    assert!(
        yaml.contains(r#"description: "Dashboards \"for all\"""#),
        "{yaml}"
    );

    let sd = app.get_json("/v1/exports/prometheus/http-sd").await;
    assert_eq!(
        sd,
        json!([
            {"targets": ["grafana.lab:443"], "labels": {"job": "homestation-services", "namespace": "observability", "service": "grafana"}},
            {"targets": ["10.0.0.7:9100", "[fd00::7]:9100"], "labels": {"job": "homestation-nodes", "kind": "worker", "node": "worker-1"}}
        ])
    );
    app.stop().await;
}

#[tokio::test]
async fn health_readiness_metrics_and_openapi() {
    let app = spawn_inventory().await;
    let healthz = app.public("/healthz").await;
    assert_eq!(healthz.status(), 200);
    assert!(healthz.headers().contains_key("x-request-id"));
    let ready: Value = app.public("/readyz").await.json().await.unwrap();
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(ready["checks"].as_array().unwrap().len(), 2);

    let _ = app.get("/v1/nodes", &app.tokens.viewer).await;
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"homestation_http_requests_total{service="inventory",method="GET",route="/v1/nodes",status="200"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"homestation_http_request_duration_seconds_count{service="inventory",method="GET",route="/v1/nodes"} 1"#),
        "{metrics}"
    );

    let doc: Value = app.public("/v1/openapi.json").await.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/nodes",
        "/v1/nodes/{node}",
        "/v1/services",
        "/v1/summary",
        "/v1/exports/prometheus/http-sd",
    ] {
        assert!(doc["paths"][path].is_object(), "OpenAPI lacks {path}");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    app.stop().await;
}

#[tokio::test]
async fn readiness_fails_when_the_database_is_gone() {
    let app = spawn_inventory().await;
    // Dropping the database under the service is what an outage looks like to it.
    let admin = sqlx::PgPool::connect(&app.db.url.replace(&app.db.name, "postgres"))
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {} WITH (FORCE)",
        app.db.name
    )))
    .execute(&admin)
    .await
    .unwrap();
    let response = app.public("/readyz").await;
    assert_eq!(response.status(), 503);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["checks"][0]["name"], "postgres");
    assert_eq!(report["checks"][0]["ok"], false);
    app.stop().await;
}
