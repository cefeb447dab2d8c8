//! Forwarded identity is the proxy's word only: on every route of every service that needs a human's
//! identity (each service's own OpenAPI document lists them), `Remote-User`/`Remote-Groups: admins` sent
//! straight to the service without the proxy's proof is refused with 401; the same headers with the proof,
//! as Traefik forwards them after Authelia, are accepted. Real binaries, real servers.

use e2e::Lab;
use serde_json::Value;

/// Routes that carry their own proof instead of a human identity (and the document itself).
const PUBLIC: &[&str] = &["/v1/openapi.json", "/v1/enroll", "/v1/webhooks/git"];

fn concrete(path: &str) -> String {
    // Path parameters get a well-formed id: the refusal must come before the route looks anything up.
    path.split('/')
        .map(|part| {
            if part.starts_with('{') {
                "00000000-0000-0000-0000-000000000000"
            } else {
                part
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn forged_forward_auth_headers_are_refused_on_every_human_route_of_every_service() {
    let lab = Lab::start(None).await;
    let mut checked = 0;
    for service in &lab.services {
        let document: Value = lab
            .client
            .get(format!("{}/v1/openapi.json", service.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let paths = document["paths"].as_object().expect("an OpenAPI document");
        let mut accepted_with_proof = false;
        for (path, operations) in paths {
            if PUBLIC.contains(&path.as_str()) {
                continue;
            }
            for method in operations.as_object().unwrap().keys() {
                let method: reqwest::Method = method.to_uppercase().parse().unwrap();
                let url = format!("{}{}", service.base, concrete(path));
                let forged = lab
                    .client
                    .request(method.clone(), &url)
                    .header("Remote-User", "mallory")
                    .header("Remote-Groups", "admins")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    forged.status(),
                    401,
                    "{} {method} {path} took forged headers",
                    service.name
                );
                checked += 1;
                if method == reqwest::Method::GET && !path.contains('{') && !accepted_with_proof {
                    let proxied = lab
                        .client
                        .get(&url)
                        .header("Remote-User", "ana")
                        .header("Remote-Groups", "admins")
                        .header(service_kit::auth::PROXY_PROOF, &lab.proxy_proof)
                        .send()
                        .await
                        .unwrap();
                    assert!(
                        proxied.status().is_success(),
                        "{} GET {path} through the proxy: {}",
                        service.name,
                        proxied.status()
                    );
                    accepted_with_proof = true;
                }
            }
        }
        assert!(
            accepted_with_proof,
            "{}: no GET route was tried with the proof",
            service.name
        );
    }
    assert!(checked > 30, "only {checked} routes checked");
    println!(
        "{checked} human routes of {} services refused forged headers",
        lab.services.len()
    );
}
