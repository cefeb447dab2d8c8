//! Fuzz targets (proptest; nightly cargo-fuzz is not available here) for what an edge node or an operator
//! sends the registry: an enrolment request (its join token, name, tailnet identity and hardware facts) and
//! a join-token request (its TTL, labels and taints). Any input is refused with a field-named error or
//! accepted as something valid, never a panic. More cases: `PROPTEST_CASES=100000 cargo test -p
//! edge-registry --test fuzz`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use edge_registry::domain::{
    EnrollRequest, Enrollment, JoinToken, Taint, enrolment_message, parse_ttl,
};
use proptest::prelude::*;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use service_kit::names::Labels;

fn facts() -> impl Strategy<Value = serde_json::Value> {
    (
        ".{0,80}",
        proptest::option::of("[0-9.+a-z-]{0,20}"),
        proptest::option::of(".{0,20}"),
        any::<u64>(),
        prop_oneof![Just("aarch64".to_owned()), ".{0,10}"],
    )
        .prop_map(|(model, jetpack, cuda, memory, arch)| {
            serde_json::json!({
                "model": model, "jetpack": jetpack, "l4t": jetpack, "cuda": cuda, "gpu_name": cuda,
                "memory_bytes": memory, "architecture": arch,
            })
        })
}

/// The key and proof of an enrolment: a real signature of (token, name), or arbitrary text.
fn signed(token: &str, name: &str, forged: Option<(String, String)>) -> (String, String) {
    if let Some(forged) = forged {
        return forged;
    }
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let proof = key.sign(enrolment_message(token, name).as_bytes());
    (
        URL_SAFE_NO_PAD.encode(key.public_key().as_ref()),
        URL_SAFE_NO_PAD.encode(proof.as_ref()),
    )
}

proptest! {
    #[test]
    fn arbitrary_bytes_are_not_an_enrolment(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(request) = serde_json::from_slice::<EnrollRequest>(&body) {
            let _ = Enrollment::try_from(request);
        }
    }

    #[test]
    fn enrolment_requests_are_refused_or_valid(token in ".{0,260}", name in ".{0,70}", ip in ".{0,45}", dns in ".{0,260}", facts in facts(),
                                               forged in proptest::option::of((".{0,60}", ".{0,100}"))) {
        let (public_key, proof) = signed(&token, &name, forged);
        let body = serde_json::json!({"token": token, "name": name, "tailscale": {"ip": ip, "dns_name": dns}, "facts": facts,
                                      "public_key": public_key, "proof": proof});
        let request: EnrollRequest = serde_json::from_value(body).expect("the shape is right");
        if let Ok(enrollment) = Enrollment::try_from(request) {
            prop_assert!(!enrollment.token.is_empty() && enrollment.token.len() <= 200);
            prop_assert!(enrollment.tailnet_ip.ip().is_ipv4() || enrollment.tailnet_ip.ip().is_ipv6());
            prop_assert!(enrollment.facts.memory_bytes > 0);
            prop_assert!(["aarch64", "x86_64"].contains(&enrollment.facts.architecture.as_str()));
        }
    }

    #[test]
    fn ttls_are_refused_or_positive(raw in prop_oneof!["[0-9]{0,25}[smhdx]?", ".{0,30}"]) {
        if let Ok(ttl) = parse_ttl("ttl", &raw) {
            prop_assert!(ttl.as_secs() > 0);
        }
    }

    #[test]
    fn taints_and_labels_are_refused_or_valid(taint in ".{0,80}", key in ".{0,80}", value in ".{0,80}") {
        if let Ok(t) = Taint::parse("taints[0]", &taint) {
            prop_assert!(t.as_str().contains(':'));
        }
        let _ = Labels::parse([(key, value)].into());
    }

    #[test]
    fn a_guessed_token_never_has_the_hash_of_a_real_one(guess in ".{0,80}") {
        let real = JoinToken::generate();
        prop_assert!(real.as_str().starts_with("hsj_") && real.as_str().len() == 68);
        prop_assert_ne!(JoinToken::sha256(&guess), JoinToken::sha256(real.as_str()));
    }
}
