//! The role matrix: every route × no identity, Viewer, Developer, Admin, through both tokens and Authelia headers
//! (with the proxy's proof, as Traefik forwards them), and forged Authelia headers without it (always 401).

mod common;

use common::spawn_inventory;
use reqwest::Method;
use serde_json::json;

#[derive(Clone, Copy, Debug)]
enum Caller {
    Nobody,
    UnknownToken,
    ViewerToken,
    DeveloperToken,
    AdminToken,
    ViewerGroup,
    DeveloperGroup,
    AdminGroup,
    NoGroup,
    /// Remote-Groups: admins straight to the service, without the proxy's proof (a compromised pod).
    ForgedAdminGroup,
}

const CALLERS: [Caller; 10] = [
    Caller::Nobody,
    Caller::UnknownToken,
    Caller::ViewerToken,
    Caller::DeveloperToken,
    Caller::AdminToken,
    Caller::ViewerGroup,
    Caller::DeveloperGroup,
    Caller::AdminGroup,
    Caller::NoGroup,
    Caller::ForgedAdminGroup,
];

/// The least role a route needs.
#[derive(Clone, Copy, PartialEq, PartialOrd, Debug)]
enum Needs {
    Viewer,
    Developer,
    Admin,
}

fn role_of(caller: Caller) -> Option<Needs> {
    match caller {
        Caller::ViewerToken | Caller::ViewerGroup => Some(Needs::Viewer),
        Caller::DeveloperToken | Caller::DeveloperGroup => Some(Needs::Developer),
        Caller::AdminToken | Caller::AdminGroup => Some(Needs::Admin),
        _ => None,
    }
}

fn expected(caller: Caller, needs: Needs, success: u16) -> u16 {
    match (caller, role_of(caller)) {
        (Caller::Nobody | Caller::UnknownToken | Caller::ForgedAdminGroup, _) => 401,
        (Caller::NoGroup, _) => 403,
        (_, Some(role)) if role >= needs => success,
        _ => 403,
    }
}

#[tokio::test]
async fn every_route_enforces_its_role() {
    let app = spawn_inventory().await;
    // A node per caller to delete, so each allowed delete has something to remove.
    let mut case = 0;
    for caller in CALLERS {
        let routes: Vec<(Method, String, Option<serde_json::Value>, Needs, u16)> = vec![
            (Method::GET, "/v1/nodes".into(), None, Needs::Viewer, 200),
            (Method::GET, "/v1/summary".into(), None, Needs::Viewer, 200),
            (Method::GET, "/v1/services".into(), None, Needs::Viewer, 200),
            (
                Method::GET,
                "/v1/exports/homepage/services.yaml".into(),
                None,
                Needs::Viewer,
                200,
            ),
            (
                Method::GET,
                "/v1/exports/prometheus/http-sd".into(),
                None,
                Needs::Viewer,
                200,
            ),
            (
                Method::POST,
                "/v1/nodes".into(),
                Some(json!({"name": format!("n{case}"), "kind": "vm"})),
                Needs::Developer,
                201,
            ),
            (
                Method::POST,
                "/v1/services".into(),
                Some(json!({"name": format!("s{case}"), "namespace": "apps"})),
                Needs::Developer,
                201,
            ),
        ];
        for (method, path, body, needs, success) in routes {
            let want = expected(caller, needs, success);
            let got = send(&app, caller, method.clone(), &path, body).await;
            assert_eq!(got, want, "{caller:?} {method} {path}");
        }
        // Deleting needs Admin: make a node as admin, then try as this caller.
        case += 1;
        let victim = format!("victim{case}");
        let made = app
            .post(
                "/v1/nodes",
                &app.tokens.admin,
                json!({"name": victim, "kind": "vm"}),
            )
            .await;
        assert_eq!(made.status(), 201);
        let got = send(
            &app,
            caller,
            Method::DELETE,
            &format!("/v1/nodes/{victim}"),
            None,
        )
        .await;
        assert_eq!(
            got,
            expected(caller, Needs::Admin, 204),
            "{caller:?} DELETE node"
        );
    }
    // Health, readiness, metrics and the OpenAPI document need no identity.
    for path in ["/healthz", "/readyz", "/metrics", "/v1/openapi.json"] {
        assert_eq!(
            send(&app, Caller::Nobody, Method::GET, path, None).await,
            200,
            "{path}"
        );
    }
    app.stop().await;
}

async fn send(
    app: &common::TestInventory,
    caller: Caller,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> u16 {
    let mut request = app.client.request(method, app.url(path));
    if matches!(
        caller,
        Caller::ViewerGroup | Caller::DeveloperGroup | Caller::AdminGroup | Caller::NoGroup
    ) {
        // As Traefik forwards them, after Authelia.
        request = request.header(service_kit::auth::PROXY_PROOF, &app.tokens.proxy_proof);
    }
    request = match caller {
        Caller::Nobody => request,
        Caller::UnknownToken => request.bearer_auth("not-a-token-we-issued"),
        Caller::ViewerToken => request.bearer_auth(&app.tokens.viewer),
        Caller::DeveloperToken => request.bearer_auth(&app.tokens.developer),
        Caller::AdminToken => request.bearer_auth(&app.tokens.admin),
        Caller::ViewerGroup => request
            .header("Remote-User", "val")
            .header("Remote-Groups", "viewers"),
        Caller::DeveloperGroup => request
            .header("Remote-User", "dev")
            .header("Remote-Groups", "viewers,developers"),
        Caller::AdminGroup => request
            .header("Remote-User", "ana")
            .header("Remote-Groups", "admins"),
        Caller::NoGroup => request
            .header("Remote-User", "eve")
            .header("Remote-Groups", "guests"),
        Caller::ForgedAdminGroup => request
            .header("Remote-User", "mallory")
            .header("Remote-Groups", "admins"),
    };
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("request").status().as_u16()
}

#[tokio::test]
async fn a_viewer_cannot_change_anything_even_on_routes_that_do_not_check() {
    let app = spawn_inventory().await;
    // PUT and PATCH have no handler; the viewer is refused before routing decides.
    for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        let status = send(
            &app,
            Caller::ViewerToken,
            method.clone(),
            "/v1/nodes",
            Some(json!({})),
        )
        .await;
        assert!(status == 403 || status == 405, "{method}: {status}");
        assert_ne!(status, 201);
    }
    let refused = app
        .post(
            "/v1/nodes",
            &app.tokens.viewer,
            json!({"name": "sneaky", "kind": "vm"}),
        )
        .await;
    assert_eq!(refused.status(), 403);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("developer role"),
        "{body}"
    );
    assert_eq!(app.get_json("/v1/nodes").await, json!([]));
    app.stop().await;
}
