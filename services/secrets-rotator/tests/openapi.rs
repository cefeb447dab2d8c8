//! The OpenAPI document `secrets-rotator` serves is the one committed beside the crate (`openapi.json`), which
//! `make test` runs through a real validator (tools/openapi).

#[test]
fn the_committed_openapi_document_is_the_one_served() {
    let served =
        serde_json::to_value(secrets_rotator::api::openapi()).expect("an OpenAPI document is JSON");
    testkit::assert_committed_json(env!("CARGO_MANIFEST_DIR"), "openapi.json", &served);
}
