//! New secret values: passwords, API tokens and Ed25519 key pairs, from the operating system's CSPRNG
//! (ring's `SystemRandom`), and PostgreSQL SCRAM-SHA-256 verifiers so a new database password never
//! travels to PostgreSQL, or into its logs, in clear.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::KeyPair;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Alphabet {
    /// Letters and digits: safe in URLs, shells and connection strings.
    #[default]
    Alphanumeric,
    /// Letters, digits and `-_.~!#%^*+=`: no quotes, backslashes, `@`, `:` or `/`.
    Symbols,
    Hex,
}

impl Alphabet {
    fn chars(self) -> &'static [u8] {
        match self {
            Alphabet::Alphanumeric => {
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
            }
            Alphabet::Symbols => {
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~!#%^*+="
            }
            Alphabet::Hex => b"0123456789abcdef",
        }
    }
}

/// How a KV secret's new value is made.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Generator {
    /// A password under `key`.
    Password {
        #[serde(default = "default_length")]
        length: usize,
        #[serde(default)]
        alphabet: Alphabet,
        #[serde(default = "default_key")]
        key: String,
    },
    /// `prefix` and `bytes` random bytes in hex, under `key`.
    ApiToken {
        #[serde(default)]
        prefix: String,
        #[serde(default = "default_token_bytes")]
        bytes: usize,
        #[serde(default = "default_key")]
        key: String,
    },
    /// An Ed25519 key pair: `private_key` (PKCS#8, base64) and `public_key` (raw, base64).
    Ed25519,
}

fn default_length() -> usize {
    32
}
fn default_token_bytes() -> usize {
    32
}
fn default_key() -> String {
    "value".into()
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GeneratorError {
    #[error("a password needs from 16 to 256 characters, not {0}")]
    Length(usize),
    #[error("an API token needs from 16 to 128 random bytes, not {0}")]
    Bytes(usize),
    #[error("the system's random number generator failed")]
    Random,
}

fn random_bytes(n: usize) -> Result<Vec<u8>, GeneratorError> {
    let mut bytes = vec![0u8; n];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| GeneratorError::Random)?;
    Ok(bytes)
}

/// `length` characters of `alphabet`, each uniform (bytes that would bias the choice are drawn again).
pub fn password(length: usize, alphabet: Alphabet) -> Result<SecretString, GeneratorError> {
    if !(16..=256).contains(&length) {
        return Err(GeneratorError::Length(length));
    }
    let chars = alphabet.chars();
    let limit = 256 - (256 % chars.len());
    let mut out = String::with_capacity(length);
    while out.len() < length {
        for b in random_bytes(length * 2)? {
            if (b as usize) < limit && out.len() < length {
                out.push(chars[b as usize % chars.len()] as char);
            }
        }
    }
    Ok(SecretString::from(out))
}

impl Generator {
    /// Checks the parameters without making anything.
    pub fn validate(&self) -> Result<(), GeneratorError> {
        match self {
            Generator::Password { length, .. } if !(16..=256).contains(length) => {
                Err(GeneratorError::Length(*length))
            }
            Generator::ApiToken { bytes, .. } if !(16..=128).contains(bytes) => {
                Err(GeneratorError::Bytes(*bytes))
            }
            _ => Ok(()),
        }
    }

    /// The keys this generator writes into the secret.
    pub fn keys(&self) -> Vec<String> {
        match self {
            Generator::Password { key, .. } | Generator::ApiToken { key, .. } => vec![key.clone()],
            Generator::Ed25519 => vec!["private_key".into(), "public_key".into()],
        }
    }

    pub fn generate(&self) -> Result<BTreeMap<String, SecretString>, GeneratorError> {
        self.validate()?;
        Ok(match self {
            Generator::Password {
                length,
                alphabet,
                key,
            } => BTreeMap::from([(key.clone(), password(*length, *alphabet)?)]),
            Generator::ApiToken { prefix, bytes, key } => BTreeMap::from([(
                key.clone(),
                SecretString::from(format!("{prefix}{}", hex::encode(random_bytes(*bytes)?))),
            )]),
            Generator::Ed25519 => {
                let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                    .map_err(|_| GeneratorError::Random)?;
                let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
                    .map_err(|_| GeneratorError::Random)?;
                BTreeMap::from([
                    (
                        "private_key".into(),
                        SecretString::from(STANDARD.encode(pkcs8.as_ref())),
                    ),
                    (
                        "public_key".into(),
                        SecretString::from(STANDARD.encode(pair.public_key().as_ref())),
                    ),
                ])
            }
        })
    }
}

/// The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802/7677, 4096 iterations): given to
/// `ALTER ROLE … PASSWORD`, PostgreSQL stores it as is, so the password itself never reaches the server.
pub fn scram_sha256_verifier(password: &SecretString) -> Result<String, GeneratorError> {
    use ring::{digest, hmac, pbkdf2};
    const ITERATIONS: u32 = 4096;
    let salt = random_bytes(16)?;
    let mut salted = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(ITERATIONS).expect("non-zero"),
        &salt,
        password.expose_secret().as_bytes(),
        &mut salted,
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, &salted);
    let client_key = hmac::sign(&key, b"Client Key");
    let stored_key = digest::digest(&digest::SHA256, client_key.as_ref());
    let server_key = hmac::sign(&key, b"Server Key");
    Ok(format!(
        "SCRAM-SHA-256${ITERATIONS}:{}${}:{}",
        STANDARD.encode(&salt),
        STANDARD.encode(stored_key.as_ref()),
        STANDARD.encode(server_key.as_ref())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_have_the_length_and_alphabet_asked_for_and_differ() {
        let a = password(40, Alphabet::Symbols).unwrap();
        let b = password(40, Alphabet::Symbols).unwrap();
        assert_eq!(a.expose_secret().len(), 40);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert!(
            a.expose_secret()
                .bytes()
                .all(|c| Alphabet::Symbols.chars().contains(&c))
        );
        assert!(
            password(64, Alphabet::Hex)
                .unwrap()
                .expose_secret()
                .bytes()
                .all(|c| c.is_ascii_hexdigit())
        );
        assert_eq!(
            password(8, Alphabet::Hex).unwrap_err(),
            GeneratorError::Length(8)
        );
    }

    #[test]
    fn every_generator_writes_its_keys() {
        let token = Generator::ApiToken {
            prefix: "hs_".into(),
            bytes: 16,
            key: "token".into(),
        };
        let made = token.generate().unwrap();
        assert!(made["token"].expose_secret().starts_with("hs_"));
        assert_eq!(made["token"].expose_secret().len(), 3 + 32);
        let pair = Generator::Ed25519.generate().unwrap();
        assert_eq!(
            pair.keys().cloned().collect::<Vec<_>>(),
            Generator::Ed25519.keys()
        );
        let public = STANDARD.decode(pair["public_key"].expose_secret()).unwrap();
        assert_eq!(public.len(), 32);
    }

    #[test]
    fn scram_verifiers_have_postgresql_s_shape_and_a_fresh_salt() {
        let pw = SecretString::from("correct horse battery staple");
        let a = scram_sha256_verifier(&pw).unwrap();
        let b = scram_sha256_verifier(&pw).unwrap();
        assert!(a.starts_with("SCRAM-SHA-256$4096:"), "{a}");
        assert_ne!(a, b, "a fresh salt each time");
        assert!(!a.contains("horse"));
    }
}
