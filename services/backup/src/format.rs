//! The backup object format, v1: a header, then AES-256-GCM chunks of at most `chunk_size` compressed bytes.
//!
//! ```text
//! header  "HSBK" 0x01 | chunk_size u32 | nonce_prefix [4] | key_id_len u16 | key_id | wrapped_len u16 | wrapped_key
//! chunk   len u32 (ciphertext with its 16-byte tag) | ciphertext
//! nonce   nonce_prefix | chunk index u64            (unique: a fresh data key and prefix per backup)
//! aad     SHA-256(header) | chunk index u64 | final u8
//! ```
//! The associated data binds every chunk to its header, its position and whether it is the last, so a changed
//! header, a reordered, dropped or truncated chunk, or bytes after the last one all fail to open.
//! All integers are big-endian. The data key is random per backup and stored only wrapped by a key-encryption key.

use std::io::{self, Read, Write};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

const MAGIC: &[u8; 5] = b"HSBK\x01";
const TAG_LEN: usize = 16;
/// Chunks above this are refused when reading, so a corrupt length cannot make a reader allocate gigabytes.
pub const MAX_CHUNK_SIZE: u32 = 16 << 20;
pub const DEFAULT_CHUNK_SIZE: u32 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("not a HomeStation backup object (bad magic or version)")]
    NotABackup,
    #[error("the object ends before its last chunk: it is truncated")]
    Truncated,
    #[error("chunk {0} failed authentication: the object was changed, or this is the wrong key")]
    Authentication(u64),
    #[error("the object is corrupt: {0}")]
    Corrupt(String),
    #[error("the data key could not be unwrapped with key {key_id}: {reason}")]
    KeyUnwrap { key_id: String, reason: String },
    #[error("bytes follow the last chunk")]
    TrailingData,
}

impl From<FormatError> for io::Error {
    fn from(e: FormatError) -> Self {
        io::Error::other(e)
    }
}

/// Wraps and unwraps a backup's data key with a key-encryption key (a key file, or Vault transit).
pub trait KeyWrap: Send + Sync {
    /// Recorded in each header, so a restore knows which key to ask for.
    fn key_id(&self) -> &str;
    fn wrap(&self, data_key: &[u8; 32]) -> Result<Vec<u8>, FormatError>;
    fn unwrap(&self, key_id: &str, wrapped: &[u8]) -> Result<[u8; 32], FormatError>;
}

/// A key-encryption key of 32 bytes held by this process (read from a key file); wraps with AES-256-GCM.
pub struct LocalKey {
    id: String,
    key: LessSafeKey,
}

impl LocalKey {
    pub fn new(id: &str, key: &[u8; 32]) -> Self {
        Self {
            id: id.to_owned(),
            key: aes_key(key),
        }
    }

    /// A key file holds exactly 32 random bytes (`head -c 32 /dev/urandom > backup.key`).
    pub fn from_file(id: &str, path: &std::path::Path) -> io::Result<Self> {
        let bytes = std::fs::read(path)?;
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} must hold exactly 32 bytes, not {}",
                    path.display(),
                    bytes.len()
                ),
            )
        })?;
        Ok(Self::new(id, &key))
    }
}

impl KeyWrap for LocalKey {
    fn key_id(&self) -> &str {
        &self.id
    }

    fn wrap(&self, data_key: &[u8; 32]) -> Result<Vec<u8>, FormatError> {
        let mut nonce = [0u8; 12];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| FormatError::Corrupt("no randomness".into()))?;
        let mut sealed = data_key.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(self.id.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| FormatError::Corrupt("wrapping the data key failed".into()))?;
        Ok([nonce.as_slice(), &sealed].concat())
    }

    fn unwrap(&self, key_id: &str, wrapped: &[u8]) -> Result<[u8; 32], FormatError> {
        let failed = |reason: &str| FormatError::KeyUnwrap {
            key_id: key_id.to_owned(),
            reason: reason.to_owned(),
        };
        if key_id != self.id {
            return Err(failed(&format!("this process holds key {}", self.id)));
        }
        let (nonce, sealed) = wrapped
            .split_at_checked(12)
            .ok_or_else(|| failed("too short"))?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| failed("bad nonce"))?;
        let mut buffer = sealed.to_vec();
        let key = self
            .key
            .open_in_place(nonce, Aad::from(key_id.as_bytes()), &mut buffer)
            .map_err(|_| failed("wrong key"))?;
        key.try_into().map_err(|_| failed("not a 32-byte key"))
    }
}

fn aes_key(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("32 bytes is an AES-256 key"))
}

fn aad(header_digest: &[u8; 32], index: u64, last: bool) -> [u8; 41] {
    let mut aad = [0u8; 41];
    aad[..32].copy_from_slice(header_digest);
    aad[32..40].copy_from_slice(&index.to_be_bytes());
    aad[40] = u8::from(last);
    aad
}

fn nonce(prefix: &[u8; 4], index: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(prefix);
    n[4..].copy_from_slice(&index.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// Writes a backup object: plaintext written to it is sealed chunk by chunk; memory stays at one chunk.
pub struct Sealer<W: Write> {
    inner: W,
    key: LessSafeKey,
    prefix: [u8; 4],
    digest: [u8; 32],
    chunk_size: usize,
    buffer: Vec<u8>,
    index: u64,
}

impl<W: Write> Sealer<W> {
    pub fn new(mut inner: W, wrap: &dyn KeyWrap, chunk_size: u32) -> Result<Self, FormatError> {
        if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
            return Err(FormatError::Corrupt(format!(
                "chunk size {chunk_size} is outside 1..={MAX_CHUNK_SIZE}"
            )));
        }
        let rng = SystemRandom::new();
        let mut data_key = [0u8; 32];
        let mut prefix = [0u8; 4];
        rng.fill(&mut data_key)
            .and_then(|()| rng.fill(&mut prefix))
            .map_err(|_| FormatError::Corrupt("no randomness".into()))?;
        let wrapped = wrap.wrap(&data_key)?;
        let key_id = wrap.key_id().as_bytes();
        let mut header = Vec::with_capacity(64 + key_id.len() + wrapped.len());
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&chunk_size.to_be_bytes());
        header.extend_from_slice(&prefix);
        for field in [key_id, wrapped.as_slice()] {
            let len = u16::try_from(field.len())
                .map_err(|_| FormatError::Corrupt("header field over 64 KiB".into()))?;
            header.extend_from_slice(&len.to_be_bytes());
            header.extend_from_slice(field);
        }
        inner
            .write_all(&header)
            .map_err(|e| FormatError::Corrupt(e.to_string()))?;
        let key = aes_key(&data_key);
        Ok(Self {
            inner,
            key,
            prefix,
            digest: Sha256::digest(&header).into(),
            chunk_size: chunk_size as usize,
            buffer: Vec::with_capacity(chunk_size as usize + TAG_LEN),
            index: 0,
        })
    }

    fn seal(&mut self, plaintext_len: usize, last: bool) -> io::Result<()> {
        let mut chunk: Vec<u8> = self.buffer.drain(..plaintext_len).collect();
        self.key
            .seal_in_place_append_tag(
                nonce(&self.prefix, self.index),
                Aad::from(aad(&self.digest, self.index, last)),
                &mut chunk,
            )
            .map_err(|_| io::Error::other("sealing a chunk failed"))?;
        let len = u32::try_from(chunk.len()).expect("a chunk is under MAX_CHUNK_SIZE");
        self.inner.write_all(&len.to_be_bytes())?;
        self.inner.write_all(&chunk)?;
        self.index += 1;
        Ok(())
    }

    /// Seals what is left as the last chunk; without it a reader reports the object truncated.
    pub fn finish(mut self) -> io::Result<W> {
        let rest = self.buffer.len();
        self.seal(rest, true)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for Sealer<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(data);
        // Keep up to one full chunk back: it may be the last one, which is sealed as such by `finish`.
        while self.buffer.len() > self.chunk_size {
            self.seal(self.chunk_size, false)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads a backup object back into plaintext, checking every chunk; memory stays at one chunk.
pub struct Opener<R: Read> {
    inner: R,
    key: LessSafeKey,
    prefix: [u8; 4],
    digest: [u8; 32],
    chunk_size: usize,
    plain: Vec<u8>,
    position: usize,
    index: u64,
    done: bool,
    /// The key id in the header, for the catalog and error messages.
    pub key_id: String,
}

fn read_exact_or(
    inner: &mut impl Read,
    buf: &mut [u8],
    short: FormatError,
) -> Result<(), FormatError> {
    inner.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            short
        } else {
            FormatError::Corrupt(e.to_string())
        }
    })
}

impl<R: Read> Opener<R> {
    pub fn new(mut inner: R, wrap: &dyn KeyWrap) -> Result<Self, FormatError> {
        let mut fixed = [0u8; 13];
        read_exact_or(&mut inner, &mut fixed, FormatError::NotABackup)?;
        if &fixed[..5] != MAGIC {
            return Err(FormatError::NotABackup);
        }
        let chunk_size = u32::from_be_bytes(fixed[5..9].try_into().expect("4 bytes"));
        if chunk_size == 0 || chunk_size > MAX_CHUNK_SIZE {
            return Err(FormatError::Corrupt(format!("chunk size {chunk_size}")));
        }
        let prefix: [u8; 4] = fixed[9..13].try_into().expect("4 bytes");
        let mut header = fixed.to_vec();
        let mut field = |inner: &mut R| -> Result<Vec<u8>, FormatError> {
            let mut len = [0u8; 2];
            read_exact_or(inner, &mut len, FormatError::Truncated)?;
            let mut value = vec![0u8; usize::from(u16::from_be_bytes(len))];
            read_exact_or(inner, &mut value, FormatError::Truncated)?;
            header.extend_from_slice(&len);
            header.extend_from_slice(&value);
            Ok(value)
        };
        let key_id = String::from_utf8(field(&mut inner)?)
            .map_err(|_| FormatError::Corrupt("key id is not UTF-8".into()))?;
        let wrapped = field(&mut inner)?;
        let data_key = wrap.unwrap(&key_id, &wrapped)?;
        let key = aes_key(&data_key);
        Ok(Self {
            inner,
            key,
            prefix,
            digest: Sha256::digest(&header).into(),
            chunk_size: chunk_size as usize,
            plain: Vec::new(),
            position: 0,
            index: 0,
            done: false,
            key_id,
        })
    }

    fn next_chunk(&mut self) -> Result<(), FormatError> {
        let mut len = [0u8; 4];
        read_exact_or(&mut self.inner, &mut len, FormatError::Truncated)?;
        let len = u32::from_be_bytes(len) as usize;
        if !(TAG_LEN..=self.chunk_size + TAG_LEN).contains(&len) {
            return Err(FormatError::Corrupt(format!(
                "chunk {} claims {len} bytes",
                self.index
            )));
        }
        let mut chunk = vec![0u8; len];
        read_exact_or(&mut self.inner, &mut chunk, FormatError::Truncated)?;
        // A chunk that opens as the last one is the last; one that opens as not-last is not.
        for last in [false, true] {
            let mut attempt = chunk.clone();
            if let Ok(plain) = self.key.open_in_place(
                nonce(&self.prefix, self.index),
                Aad::from(aad(&self.digest, self.index, last)),
                &mut attempt,
            ) {
                self.plain = plain.to_vec();
                self.position = 0;
                self.index += 1;
                self.done = last;
                if last {
                    let mut probe = [0u8; 1];
                    if self
                        .inner
                        .read(&mut probe)
                        .map_err(|e| FormatError::Corrupt(e.to_string()))?
                        != 0
                    {
                        return Err(FormatError::TrailingData);
                    }
                }
                return Ok(());
            }
        }
        Err(FormatError::Authentication(self.index))
    }
}

impl<R: Read> Read for Opener<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.position == self.plain.len() {
            if self.done {
                return Ok(0);
            }
            self.next_chunk()?;
        }
        let n = out.len().min(self.plain.len() - self.position);
        out[..n].copy_from_slice(&self.plain[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}

/// Where the header ends and each chunk (length field included) lies, read from the framing alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub header_len: usize,
    pub key_id: String,
    pub chunks: Vec<std::ops::Range<usize>>,
}

/// Walks an object's framing without any key: for inspection, and for tests that damage one chunk.
pub fn layout(object: &[u8]) -> Result<Layout, FormatError> {
    if object.len() < 13 || &object[..5] != MAGIC {
        return Err(FormatError::NotABackup);
    }
    let mut at = 13;
    let field = |at: &mut usize| -> Result<std::ops::Range<usize>, FormatError> {
        let len = object.get(*at..*at + 2).ok_or(FormatError::Truncated)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let range = *at + 2..*at + 2 + len;
        object.get(range.clone()).ok_or(FormatError::Truncated)?;
        *at = range.end;
        Ok(range)
    };
    let key_id = String::from_utf8_lossy(&object[field(&mut at)?]).into_owned();
    field(&mut at)?;
    let header_len = at;
    let mut chunks = Vec::new();
    while at < object.len() {
        let len = object.get(at..at + 4).ok_or(FormatError::Truncated)?;
        let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
        let end = at + 4 + len;
        if end > object.len() {
            return Err(FormatError::Truncated);
        }
        chunks.push(at..end);
        at = end;
    }
    Ok(Layout {
        header_len,
        key_id,
        chunks,
    })
}
