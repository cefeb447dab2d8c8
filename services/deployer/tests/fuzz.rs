//! Fuzz targets (proptest; nightly cargo-fuzz is not available here) for what a Git forge sends the deployer:
//! push payloads of GitHub, Gitea and GitLab with any headers, and their signatures. Any payload is read or
//! refused, never a panic; a signature is accepted only when it is the body's HMAC under the secret (or
//! GitLab's token), so a changed body, a changed signature or another secret is refused. More cases:
//! `PROPTEST_CASES=100000 cargo test -p deployer --test fuzz`.

use deployer::webhook::{Provider, parse, verify};
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use ring::hmac;
use secrecy::SecretString;

fn providers() -> impl Strategy<Value = Provider> {
    prop_oneof![
        Just(Provider::GitHub),
        Just(Provider::Gitea),
        Just(Provider::GitLab)
    ]
}

fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        if let Ok(value) = HeaderValue::from_str(value) {
            map.insert(HeaderName::from_static(name), value);
        }
    }
    map
}

fn signed(provider: Provider, body: &[u8], secret: &str) -> HeaderMap {
    let tag = hex::encode(
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()), body).as_ref(),
    );
    match provider {
        Provider::GitHub => headers(&[("x-hub-signature-256", format!("sha256={tag}"))]),
        Provider::Gitea => headers(&[("x-gitea-signature", tag)]),
        Provider::GitLab => headers(&[("x-gitlab-token", secret.to_owned())]),
    }
}

proptest! {
    #[test]
    fn arbitrary_payloads_are_read_or_refused(provider in providers(), body in proptest::collection::vec(any::<u8>(), 0..1024), delivery in ".{0,40}") {
        let h = headers(&[("x-github-delivery", delivery.clone()), ("x-gitea-delivery", delivery.clone()), ("x-gitlab-event-uuid", delivery)]);
        let _ = parse(provider, &h, &body);
        let _ = parse(provider, &HeaderMap::new(), &body);
    }

    #[test]
    fn push_shaped_payloads_are_read_or_refused(provider in providers(), reference in ".{0,60}", after in "[0-9a-f]{0,40}", path in ".{0,60}", url in ".{0,60}") {
        let body = serde_json::json!({
            "ref": reference, "after": after, "checkout_sha": after,
            "repository": {"clone_url": url, "default_branch": "main"},
            "project": {"git_http_url": url, "default_branch": "main"},
            "commits": [{"added": [path], "modified": [], "removed": [], "timestamp": "2026-11-26T00:00:00Z"}],
        });
        let h = headers(&[("x-github-delivery", "d".into()), ("x-gitea-delivery", "d".into()), ("x-gitlab-event-uuid", "d".into())]);
        if let Ok(push) = parse(provider, &h, body.to_string().as_bytes()) {
            prop_assert_eq!(push.commit, after);
        }
    }

    #[test]
    fn only_the_right_signature_is_accepted(provider in providers(), body in proptest::collection::vec(any::<u8>(), 0..512), secret in "[ -~]{1,40}", other in "[ -~]{1,40}", flip in any::<prop::sample::Index>()) {
        let key = SecretString::from(secret.clone());
        let good = signed(provider, &body, &secret);
        prop_assert!(verify(provider, &good, &body, &key).is_ok());
        if other != secret {
            prop_assert!(verify(provider, &signed(provider, &body, &other), &body, &key).is_err());
        }
        if !body.is_empty() && provider != Provider::GitLab {
            let mut changed = body.clone();
            changed[flip.index(body.len())] ^= 0x01;
            prop_assert!(verify(provider, &good, &changed, &key).is_err());
        }
        prop_assert!(verify(provider, &HeaderMap::new(), &body, &key).is_err());
    }

    #[test]
    fn arbitrary_signatures_are_refused(provider in providers(), given in "[ -~]{0,80}", body in proptest::collection::vec(any::<u8>(), 0..128)) {
        let key = SecretString::from("a secret this test made".to_owned());
        let h = headers(&[("x-hub-signature-256", given.clone()), ("x-gitea-signature", given.clone()), ("x-gitlab-token", given)]);
        prop_assert!(verify(provider, &h, &body, &key).is_err());
    }
}
