//! Fuzz targets (proptest; nightly cargo-fuzz is not available here) for the reader of stored backup objects,
//! which are outside input (an S3 bucket is not trusted): the header (magic, chunk size, key id, wrapped key)
//! and the chunk framing. Arbitrary bytes, and real objects with any byte changed, any prefix cut off or bytes
//! appended, are refused with an error — never a panic, never plaintext — and `layout` agrees with the writer.
//! More cases: `PROPTEST_CASES=100000 cargo test -p backup --test fuzz`.

use std::io::Cursor;

use backup::format::{LocalKey, layout};
use backup::pipeline::{self, SealOptions};
use proptest::prelude::*;

fn key() -> LocalKey {
    LocalKey::new("fuzz", &[7; 32])
}

/// `data` sealed with small chunks, so short inputs still make several.
fn sealed(data: &[u8], chunk_size: u32) -> Vec<u8> {
    let mut stored = Vec::new();
    let k = key();
    pipeline::seal(
        Cursor::new(data),
        &mut stored,
        &SealOptions {
            wrap: &k,
            chunk_size,
            level: 1,
        },
    )
    .expect("sealing into memory");
    stored
}

/// Opens `object`; the plaintext only when every check passed.
fn open(object: &[u8]) -> Option<Vec<u8>> {
    let mut plain = Vec::new();
    pipeline::open(Cursor::new(object), &mut plain, &key())
        .ok()
        .map(|_| plain)
}

proptest! {
    #[test]
    fn arbitrary_bytes_are_not_a_backup(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        prop_assert!(open(&bytes).is_none());
        let _ = layout(&bytes);
    }

    #[test]
    fn a_forged_header_with_any_fields_is_refused(chunk_size in any::<u32>(), key_id in proptest::collection::vec(any::<u8>(), 0..64), wrapped in proptest::collection::vec(any::<u8>(), 0..128), tail in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut object = b"HSBK\x01".to_vec();
        object.extend_from_slice(&chunk_size.to_be_bytes());
        object.extend_from_slice(&[1, 2, 3, 4]);
        for field in [&key_id, &wrapped] {
            object.extend_from_slice(&u16::try_from(field.len()).expect("short").to_be_bytes());
            object.extend_from_slice(field);
        }
        object.extend_from_slice(&tail);
        prop_assert!(open(&object).is_none());
        let _ = layout(&object);
    }

    #[test]
    fn real_objects_round_trip_and_their_framing_is_what_was_written(data in proptest::collection::vec(any::<u8>(), 0..4096), chunk_size in 16u32..512) {
        let object = sealed(&data, chunk_size);
        prop_assert_eq!(open(&object).expect("an untouched object opens"), data);
        let shape = layout(&object).expect("the writer's framing reads");
        prop_assert_eq!(shape.key_id, "fuzz");
        prop_assert_eq!(shape.chunks.last().map_or(shape.header_len, |c| c.end), object.len());
    }

    #[test]
    fn a_real_object_with_one_byte_changed_yields_nothing(data in proptest::collection::vec(any::<u8>(), 1..2048), at in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let mut object = sealed(&data, 64);
        let i = at.index(object.len());
        object[i] ^= xor;
        prop_assert!(open(&object).is_none(), "byte {} of {} changed, yet it opened", i, object.len());
    }

    #[test]
    fn a_cut_or_extended_object_yields_nothing(data in proptest::collection::vec(any::<u8>(), 1..2048), cut in any::<prop::sample::Index>(), extra in proptest::collection::vec(any::<u8>(), 1..64)) {
        let object = sealed(&data, 64);
        let short = &object[..cut.index(object.len())];
        prop_assert!(open(short).is_none(), "cut to {} of {} bytes, yet it opened", short.len(), object.len());
        let mut long = object.clone();
        long.extend_from_slice(&extra);
        prop_assert!(open(&long).is_none());
    }
}
