//! Bounded byte channels between async producers and the pipeline's blocking thread. Each chunk in flight is
//! one read or write, and the bound is what keeps memory flat whatever the size.

use std::io::{self, Read, Write};

use tokio::sync::mpsc;

/// Chunks in flight on a channel.
const DEPTH: usize = 4;

/// The reading end of [`reader`]: a blocking `Read` over chunks an async task sends.
pub struct ChannelReader {
    chunks: mpsc::Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    offset: usize,
}

/// An async task sends chunks (or the error that stopped it) into the sender; a blocking thread reads them.
/// Dropping the sender ends the stream.
pub fn reader() -> (mpsc::Sender<io::Result<Vec<u8>>>, ChannelReader) {
    let (tx, rx) = mpsc::channel(DEPTH);
    (
        tx,
        ChannelReader {
            chunks: rx,
            current: Vec::new(),
            offset: 0,
        },
    )
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.offset == self.current.len() {
            match self.chunks.blocking_recv() {
                Some(Ok(chunk)) => {
                    self.current = chunk;
                    self.offset = 0;
                }
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.offset);
        buf[..n].copy_from_slice(&self.current[self.offset..self.offset + n]);
        self.offset += n;
        Ok(n)
    }
}

/// The writing end of [`writer`]: a blocking `Write` whose bytes an async consumer receives in chunks.
pub struct ChannelWriter {
    chunks: mpsc::Sender<Vec<u8>>,
}

pub fn writer() -> (ChannelWriter, mpsc::Receiver<Vec<u8>>) {
    let (tx, rx) = mpsc::channel(DEPTH);
    (ChannelWriter { chunks: tx }, rx)
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        self.chunks
            .blocking_send(data.to_vec())
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the receiving side stopped"))?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
