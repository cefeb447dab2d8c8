//! The backup object format: round trips at every chunk boundary, and every way an object can be damaged or
//! attacked fails with its own error and yields no plaintext.

use std::io::Cursor;

use backup::format::{FormatError, LocalKey};
use backup::pipeline::{self, Digests, PipelineError, SealOptions};

mod common;

const CHUNK: u32 = 4096;
const FORMAT_SEED: u64 = 0x2545_f491_4f6c_dd1d;

fn key(id: &str, byte: u8) -> LocalKey {
    LocalKey::new(id, &[byte; 32])
}

/// Data that compresses a little, like a dump: repeated rows with a counter.
fn dump(len: usize) -> Vec<u8> {
    let mut data = Vec::with_capacity(len);
    let mut i = 0u64;
    while data.len() < len {
        data.extend_from_slice(
            format!(
                "INSERT INTO nodes VALUES ({i}, 'jetson-{}', 'secret-marker');\n",
                i * 7919 % 1000
            )
            .as_bytes(),
        );
        i += 1;
    }
    data.truncate(len);
    data
}

fn seal_bytes(data: &[u8], k: &LocalKey) -> (Vec<u8>, Digests) {
    let mut stored = Vec::new();
    let digests = pipeline::seal(
        Cursor::new(data),
        &mut stored,
        &SealOptions {
            wrap: k,
            chunk_size: CHUNK,
            level: 3,
        },
    )
    .unwrap();
    (stored, digests)
}

fn open_bytes(stored: &[u8], k: &LocalKey) -> Result<Vec<u8>, PipelineError> {
    let mut plain = Vec::new();
    pipeline::open(Cursor::new(stored), &mut plain, k)?;
    Ok(plain)
}

#[test]
fn round_trips_at_every_chunk_boundary() {
    let k = key("kek-1", 7);
    let chunk = CHUNK as usize;
    for len in [
        0,
        1,
        chunk - 1,
        chunk,
        chunk + 1,
        3 * chunk,
        10 * chunk + 17,
    ] {
        for data in [common::noise(len, FORMAT_SEED), dump(len)] {
            let (stored, digests) = seal_bytes(&data, &k);
            assert_eq!(open_bytes(&stored, &k).unwrap(), data, "len {len}");
            assert_eq!(digests.plaintext_bytes, len as u64);
            assert_eq!(digests.stored_bytes, stored.len() as u64);
            pipeline::verify(Cursor::new(&stored), &k, &digests).unwrap();
        }
    }
}

#[test]
fn the_stored_bytes_are_not_the_plaintext() {
    let k = key("kek-1", 7);
    let data = dump(200_000);
    let (stored, digests) = seal_bytes(&data, &k);
    let marker = b"secret-marker";
    assert!(!stored.windows(marker.len()).any(|w| w == marker));
    assert!(
        digests.stored_bytes < digests.plaintext_bytes / 4,
        "compressed before encryption: {digests:?}"
    );
    let (again, _) = seal_bytes(&data, &k);
    assert_ne!(
        stored, again,
        "a fresh data key and nonce prefix per backup"
    );
}

fn expect_format_error(result: Result<Vec<u8>, PipelineError>) -> FormatError {
    match result {
        Err(PipelineError::Format(e)) => e,
        other => panic!("expected a format error, got {other:?}"),
    }
}

#[test]
fn damage_and_tampering_are_detected() {
    let k = key("kek-1", 7);
    let (stored, _) = seal_bytes(&common::noise(5 * CHUNK as usize, FORMAT_SEED), &k);
    let layout = backup::format::layout(&stored).unwrap();
    assert_eq!(layout.key_id, "kek-1");
    assert!(layout.chunks.len() >= 5, "{layout:?}");

    let mut flipped = stored.clone();
    flipped[layout.chunks[2].start + 100] ^= 0x01;
    assert!(matches!(
        expect_format_error(open_bytes(&flipped, &k)),
        FormatError::Authentication(2)
    ));

    let cut = &stored[..stored.len() - 100];
    assert!(matches!(
        expect_format_error(open_bytes(cut, &k)),
        FormatError::Truncated
    ));

    // Dropping the last chunk whole leaves well-formed framing that must still be refused.
    let last = layout.chunks.last().unwrap().clone();
    assert!(matches!(
        expect_format_error(open_bytes(&stored[..last.start], &k)),
        FormatError::Truncated
    ));

    // Swapping two full chunks keeps the framing valid; their positions are in the associated data.
    let (a, b) = (layout.chunks[0].clone(), layout.chunks[1].clone());
    assert_eq!(a.len(), b.len(), "two full chunks");
    let mut swapped = stored.clone();
    swapped[a.clone()].copy_from_slice(&stored[b.clone()]);
    swapped[b].copy_from_slice(&stored[a]);
    assert!(matches!(
        expect_format_error(open_bytes(&swapped, &k)),
        FormatError::Authentication(0)
    ));

    // Changing the header (here the chunk size field) breaks every chunk's associated data.
    let mut header = stored.clone();
    header[8] ^= 0x01;
    assert!(open_bytes(&header, &k).is_err());

    let mut trailing = stored.clone();
    trailing.extend_from_slice(b"extra");
    assert!(matches!(
        expect_format_error(open_bytes(&trailing, &k)),
        FormatError::TrailingData
    ));

    let wrong = key("kek-1", 8);
    assert!(matches!(
        expect_format_error(open_bytes(&stored, &wrong)),
        FormatError::KeyUnwrap { .. }
    ));
    let other_id = key("kek-2", 7);
    let err = expect_format_error(open_bytes(&stored, &other_id));
    assert!(
        err.to_string().contains("kek-1"),
        "says which key it needs: {err}"
    );

    assert!(matches!(
        expect_format_error(open_bytes(b"PK\x03\x04 a zip file", &k)),
        FormatError::NotABackup
    ));
}

#[test]
fn verify_catches_a_catalog_mismatch() {
    let k = key("kek-1", 7);
    let (stored, mut digests) = seal_bytes(&dump(10_000), &k);
    digests.plaintext_sha256 = "0".repeat(64);
    assert!(matches!(
        pipeline::verify(Cursor::new(&stored), &k, &digests),
        Err(PipelineError::Mismatch { .. })
    ));
}
