//! Fuzz targets (proptest; nightly cargo-fuzz is not available here) for the one parser of what arrives on
//! the bus: `Envelope::parse`. Arbitrary subjects and payloads are refused with an error, never a panic;
//! every event the bus can publish comes back equal; a valid envelope with any byte changed either parses
//! to an envelope or is refused. More cases: `PROPTEST_CASES=100000 cargo test -p bus --test fuzz`.

use bus::{Change, Entity, Envelope, Event, InventoryChanged, Namespace, NodeHeartbeat};
use proptest::prelude::*;
use uuid::Uuid;

fn ns() -> Namespace {
    Namespace::parse("fuzz").expect("a valid namespace")
}

fn events() -> impl Strategy<Value = Event> {
    prop_oneof![
        // Readings as a device gives them: finite numbers.
        (
            any::<u128>(),
            -1e9f32..1e9,
            proptest::option::of(-1e3f32..1e3),
            proptest::option::of(any::<u64>())
        )
            .prop_map(
                |(id, load1, gpu, disk)| Event::NodeHeartbeat(NodeHeartbeat {
                    node_id: Uuid::from_u128(id),
                    load1,
                    gpu_utilization_pct: gpu,
                    temperature_c: gpu,
                    disk_free_bytes: disk,
                })
            ),
        (any::<u128>(), ".{0,80}").prop_map(|(id, name)| Event::InventoryChanged(
            InventoryChanged {
                entity: Entity::Service,
                id: Uuid::from_u128(id),
                name,
                change: Change::Deleted,
            }
        )),
    ]
}

proptest! {
    #[test]
    fn arbitrary_bytes_on_any_subject_are_refused_or_read(subject in "[a-z0-9.*>-]{0,60}", payload in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Envelope::parse(&ns(), &subject, &payload);
        let _ = Envelope::parse(&ns(), &format!("fuzz.{subject}"), &payload);
    }

    #[test]
    fn envelopes_with_arbitrary_data_on_every_subject_are_refused_or_read_as_their_kind(kind in prop::sample::select(bus::Kind::ALL.to_vec()), word in ".{0,40}", number in any::<f64>(), source in ".{0,40}") {
        // Every field name any event has, with arbitrary values: what a confused or hostile publisher sends.
        let data = serde_json::json!({
            "node_id": Uuid::nil(), "load1": number, "name": word, "entity": word, "id": Uuid::nil(),
            "change": word, "app": word, "namespace": word, "revision": word, "policy": word, "path": word,
        });
        let payload = serde_json::json!({
            "id": Uuid::nil(), "source": source, "occurred_at": "2026-11-26T00:00:00Z", "data": data,
        });
        let subject = ns().subject(&kind.pattern().replace('*', &Uuid::nil().to_string()));
        if let Ok(envelope) = Envelope::parse(&ns(), &subject, payload.to_string().as_bytes()) {
            prop_assert_eq!(envelope.event.kind(), kind);
        }
    }

    #[test]
    fn every_event_the_bus_publishes_reads_back_equal(event in events()) {
        let envelope = Envelope::new("fuzz", event);
        let subject = ns().subject(&envelope.event.subject());
        let parsed = Envelope::parse(&ns(), &subject, &envelope.to_bytes());
        prop_assert_eq!(parsed.expect("a published event parses"), envelope);
    }

    #[test]
    fn a_reading_that_is_not_a_number_is_refused_not_misread(load1 in prop_oneof![Just(f32::NAN), Just(f32::INFINITY), Just(f32::NEG_INFINITY)]) {
        // JSON has no NaN or infinity: serde writes null, which a required reading must not accept.
        let envelope = Envelope::new("fuzz", Event::NodeHeartbeat(NodeHeartbeat {
            node_id: Uuid::nil(), load1, gpu_utilization_pct: None, temperature_c: None, disk_free_bytes: None,
        }));
        let subject = ns().subject(&envelope.event.subject());
        prop_assert!(Envelope::parse(&ns(), &subject, &envelope.to_bytes()).is_err());
    }

    #[test]
    fn a_valid_envelope_with_one_byte_changed_is_refused_or_read(event in events(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let envelope = Envelope::new("fuzz", event);
        let subject = ns().subject(&envelope.event.subject());
        let mut bytes = envelope.to_bytes();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let _ = Envelope::parse(&ns(), &subject, &bytes);
    }
}
