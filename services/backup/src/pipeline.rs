//! The streaming pipeline: source → SHA-256 → zstd → AES-256-GCM chunks → SHA-256 → sink, and back.
//! Nothing leaves unencrypted, and memory is a few chunks whatever the size.

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

use crate::format::{FormatError, KeyWrap, Opener, Sealer};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("reading or writing the stream: {0}")]
    Io(io::Error),
    #[error("the plaintext's SHA-256 is {actual}, the catalog says {expected}")]
    Mismatch { expected: String, actual: String },
}

impl From<io::Error> for PipelineError {
    fn from(e: io::Error) -> Self {
        // Format errors raised inside a Read or Write come back as io::Error; give them their own name again.
        match e.downcast::<FormatError>() {
            Ok(format) => Self::Format(format),
            Err(other) => Self::Io(other),
        }
    }
}

/// Counts and hashes what passes through.
pub struct Hashing<T> {
    inner: T,
    hash: Sha256,
    bytes: u64,
}

impl<T> Hashing<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            hash: Sha256::new(),
            bytes: 0,
        }
    }

    pub fn finish(self) -> (T, String, u64) {
        (self.inner, hex::encode(self.hash.finalize()), self.bytes)
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// What the catalog records of a stored backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub plaintext_sha256: String,
    pub plaintext_bytes: u64,
    pub stored_sha256: String,
    pub stored_bytes: u64,
}

impl Digests {
    /// Fails unless `found` has the same stored and plaintext SHA-256 as these (the catalog's).
    pub fn check(&self, found: &Digests) -> Result<(), PipelineError> {
        for (expected, actual) in [
            (&self.stored_sha256, &found.stored_sha256),
            (&self.plaintext_sha256, &found.plaintext_sha256),
        ] {
            if expected != actual {
                return Err(PipelineError::Mismatch {
                    expected: expected.clone(),
                    actual: actual.clone(),
                });
            }
        }
        Ok(())
    }
}

pub struct SealOptions<'a> {
    pub wrap: &'a dyn KeyWrap,
    pub chunk_size: u32,
    /// zstd level: 3 is zstd's default, a good balance for dumps.
    pub level: i32,
}

/// Compresses, encrypts and writes `source` to `sink`; returns both digests.
pub fn seal(
    source: impl Read,
    sink: impl Write,
    options: &SealOptions<'_>,
) -> Result<Digests, PipelineError> {
    let mut plain = Hashing::new(source);
    let sealer = Sealer::new(Hashing::new(sink), options.wrap, options.chunk_size)?;
    let mut zstd = zstd::stream::write::Encoder::new(sealer, options.level)?;
    io::copy(&mut plain, &mut zstd)?;
    let stored = zstd.finish()?.finish()?;
    let (_, plaintext_sha256, plaintext_bytes) = plain.finish();
    let (_, stored_sha256, stored_bytes) = stored.finish();
    Ok(Digests {
        plaintext_sha256,
        plaintext_bytes,
        stored_sha256,
        stored_bytes,
    })
}

/// Reads a stored object, checks every chunk, decompresses into `sink`; returns both digests.
pub fn open(
    source: impl Read,
    sink: impl Write,
    wrap: &dyn KeyWrap,
) -> Result<Digests, PipelineError> {
    let mut stored = Hashing::new(source);
    let mut plain = Hashing::new(sink);
    {
        let opener = Opener::new(&mut stored, wrap)?;
        let mut zstd = zstd::stream::read::Decoder::new(opener)?;
        io::copy(&mut zstd, &mut plain)?;
    }
    let (_, stored_sha256, stored_bytes) = stored.finish();
    let (_, plaintext_sha256, plaintext_bytes) = plain.finish();
    Ok(Digests {
        plaintext_sha256,
        plaintext_bytes,
        stored_sha256,
        stored_bytes,
    })
}

/// Verifies a stored object against the catalog's digests without writing the plaintext anywhere.
pub fn verify(
    source: impl Read,
    wrap: &dyn KeyWrap,
    expected: &Digests,
) -> Result<(), PipelineError> {
    expected.check(&open(source, io::sink(), wrap)?)
}
