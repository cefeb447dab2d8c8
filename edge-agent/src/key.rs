//! The node's own key pair (Ed25519): made once, kept in the state folder (0600), never sent. Enrolment
//! sends the public key and a signature over the join token and the name, so edge-registry binds the
//! node to this key: a retry after a lost answer gets the same answer, anyone else's retry is refused.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{Ed25519KeyPair, KeyPair as _};

use crate::{Error, Result, write_atomically};

pub struct NodeKey(Ed25519KeyPair);

/// What the key signs at enrolment; edge-registry (`domain::enrolment_message`) checks the same bytes.
pub fn enrolment_message(token: &str, name: &str) -> String {
    format!("homestation enrolment v1\n{token}\n{name}")
}

impl NodeKey {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("node.key")
    }

    /// The key in `state_dir`, made and written first (before any enrolment is sent) if there is none.
    pub fn load_or_create(state_dir: &Path) -> Result<Self> {
        let path = Self::path(state_dir);
        let unreadable = |reason: String| Error::State {
            path: path.display().to_string(),
            reason,
        };
        let pkcs8 = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let made = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
                    .map_err(|_| unreadable("no randomness to make a key".into()))?;
                write_atomically(&path, made.as_ref())?;
                made.as_ref().to_vec()
            }
            Err(e) => return Err(unreadable(e.to_string())),
        };
        Ed25519KeyPair::from_pkcs8(&pkcs8)
            .map(Self)
            .map_err(|e| unreadable(format!("not an Ed25519 key: {e}")))
    }

    /// A key in memory only (a test's, or a tool's that enrols once).
    pub fn generate() -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .expect("the system's randomness");
        Self(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("a key ring just made"))
    }

    /// The public key, base64url without padding, as enrolment sends it.
    pub fn public(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.public_key().as_ref())
    }

    /// The proof that this key's holder asks to enrol with `token` as `name`.
    pub fn prove(&self, token: &str, name: &str) -> String {
        URL_SAFE_NO_PAD.encode(
            self.0
                .sign(enrolment_message(token, name).as_bytes())
                .as_ref(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_made_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("hs-key-{}", uuid::Uuid::new_v4().simple()));
        let first = NodeKey::load_or_create(&dir).unwrap();
        let again = NodeKey::load_or_create(&dir).unwrap();
        assert_eq!(first.public(), again.public());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(NodeKey::path(&dir))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let proof = URL_SAFE_NO_PAD
            .decode(first.prove("hsj_x", "jetson"))
            .unwrap();
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ED25519,
            URL_SAFE_NO_PAD.decode(first.public()).unwrap(),
        );
        assert!(
            public
                .verify(enrolment_message("hsj_x", "jetson").as_bytes(), &proof)
                .is_ok()
        );
        assert!(
            public
                .verify(enrolment_message("hsj_y", "jetson").as_bytes(), &proof)
                .is_err()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
