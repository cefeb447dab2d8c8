//! Every service's OpenAPI document, finished the same way: the lab's two ways in (a service token as a
//! bearer, or the headers Authelia's forward-auth sets at Traefik), required by every operation that does
//! not say otherwise (`security(())` on an operation whose credential is in its body), and the route that
//! serves the document without an identity.

use axum::Router;
use axum::routing::get;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};

/// Where each service serves its document.
pub const ROUTE: &str = "/v1/openapi.json";

/// `doc` (a service's `ApiDoc::openapi()`) with the lab's security schemes, required by default.
pub fn document(mut doc: OpenApi) -> OpenApi {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    components.add_security_scheme(
        "authelia",
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "Remote-User",
            "Set by Authelia forward-auth at Traefik, with Remote-Groups",
        ))),
    );
    doc.security = Some(vec![
        SecurityRequirement::new("bearer", Vec::<String>::new()),
        SecurityRequirement::new("authelia", Vec::<String>::new()),
    ]);
    doc
}

/// Serves `doc` on [`ROUTE`] (a public route: the description of an API is no secret).
pub fn router(doc: OpenApi) -> Router {
    Router::new().route(
        ROUTE,
        get(move || {
            let doc = doc.clone();
            async move { axum::Json(doc) }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lab_s_two_ways_in_are_declared_and_required() {
        let doc = serde_json::to_value(document(OpenApi::default())).unwrap();
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes["bearer"]["scheme"], "bearer");
        assert_eq!(schemes["authelia"]["in"], "header");
        assert_eq!(schemes["authelia"]["name"], "Remote-User");
        assert_eq!(
            doc["security"],
            serde_json::json!([{ "bearer": [] }, { "authelia": [] }])
        );
    }
}
