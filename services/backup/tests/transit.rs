//! Data keys wrapped by OpenBao's transit engine (a dev server of this test's own): a backup opens only with
//! the same transit key, and the header names it.

use std::io::Cursor;
use std::sync::Arc;

use backup::format::KeyWrap;
use backup::pipeline::{self, SealOptions};
use backup::transit::VaultTransit;
use secrecy::SecretString;
use service_kit::VaultSettings;

#[tokio::test]
async fn a_backup_sealed_with_a_transit_key_opens_only_with_it() {
    let bao = testkit::openbao().await;
    let client = Arc::new(
        VaultSettings {
            address: bao.address.clone(),
            token: SecretString::from(bao.root_token.clone()),
            kv_mount: "secret".into(),
        }
        .client()
        .unwrap(),
    );
    vaultrs::sys::mount::enable(client.as_ref(), "transit", "transit", None)
        .await
        .unwrap();
    for name in ["homestation-backup", "another-key"] {
        vaultrs::transit::key::create(client.as_ref(), "transit", name, None)
            .await
            .unwrap();
    }
    let wrap: Arc<dyn KeyWrap> = Arc::new(VaultTransit::new(
        client.clone(),
        "transit",
        "homestation-backup",
    ));
    let other: Arc<dyn KeyWrap> = Arc::new(VaultTransit::new(client, "transit", "another-key"));

    let data: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let (stored, opened, refused) = tokio::task::spawn_blocking(move || {
        let mut stored = Vec::new();
        pipeline::seal(
            Cursor::new(&data),
            &mut stored,
            &SealOptions {
                wrap: wrap.as_ref(),
                chunk_size: 1 << 16,
                level: 3,
            },
        )
        .unwrap();
        let mut plain = Vec::new();
        pipeline::open(Cursor::new(&stored), &mut plain, wrap.as_ref()).unwrap();
        let refused =
            pipeline::open(Cursor::new(&stored), std::io::sink(), other.as_ref()).unwrap_err();
        (stored, plain == data, refused.to_string())
    })
    .await
    .unwrap();
    assert!(opened, "the plaintext came back");
    assert_eq!(
        backup::format::layout(&stored).unwrap().key_id,
        "vault-transit:transit/homestation-backup"
    );
    assert!(
        refused.contains("vault-transit:transit/homestation-backup"),
        "names the key it needs: {refused}"
    );
}
