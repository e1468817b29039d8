//! The new release's data, assembled from local pieces and byte ranges of
//! the payload, handed out as a plain reader so the apply's writer (and its
//! checks against the manifest) is the same for a delta as for a full
//! download.
//!
//! The reader works a manifest chunk at a time. For each chunk it gathers
//! the pieces that overlap it:
//!
//! - a piece found locally is read and hashed; a mismatch (the active slot
//!   is corrupt, or changed since the scan) fetches that piece instead;
//! - missing pieces are fetched with one `Range` request per run of
//!   consecutive missing pieces, each piece hashed as it arrives;
//!
//! then checks the whole chunk against the signed manifest. If a fetched
//! piece does not match the index, or the assembled chunk does not match
//! the manifest (the index lies), the chunk is fetched whole from the
//! payload instead. The writer checks every chunk against the manifest
//! once more before writing it, exactly as for a full download.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::index::Piece;
use super::local::Local;
use crate::fetch::Ranges;
use crate::manifest::Manifest;

/// What a delta apply did, for the status and the tests. Atomics, because
/// the reader runs on the writer's reader thread.
#[derive(Debug, Default)]
pub struct Counters {
    /// Body bytes received over the network (ranges of the payload).
    pub downloaded: AtomicU64,
    pub requests: AtomicU64,
    pub reused_pieces: AtomicU64,
    pub reused_bytes: AtomicU64,
    pub fetched_pieces: AtomicU64,
    /// Local pieces whose bytes no longer had their hash (fetched instead).
    pub local_mismatches: AtomicU64,
    /// Chunks fetched whole because their pieces did not add up.
    pub whole_chunks: AtomicU64,
}

impl Counters {
    pub fn add(field: &AtomicU64, n: u64) {
        field.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(field: &AtomicU64) -> u64 {
        field.load(Ordering::Relaxed)
    }
}

/// An open byte range of the payload's data: where the next byte read
/// from it lies, and where it ends.
struct Remote<'a> {
    at: u64,
    end: u64,
    body: Box<dyn Read + Send + 'a>,
}

pub struct DeltaReader<'a> {
    manifest: &'a Manifest,
    pieces: &'a [Piece],
    local: &'a Local,
    ranges: &'a Ranges,
    /// Where the data starts in the payload.
    data_offset: u64,
    counters: &'a Counters,
    /// The next chunk to assemble.
    next_chunk: usize,
    chunk: Vec<u8>,
    /// Bytes of `chunk` already handed out.
    handed: usize,
    /// First piece that may overlap the next chunk.
    cursor: usize,
    /// The last piece obtained (pieces straddle chunk borders).
    held: Option<(usize, Vec<u8>)>,
    remote: Option<Remote<'a>>,
}

/// Why a piece could not be used as the index describes it.
enum PieceError {
    /// Fetched bytes do not have the index's hash: the index is wrong.
    IndexLies,
    Io(io::Error),
}

impl<'a> DeltaReader<'a> {
    /// Starts at manifest chunk `first` (a resumed apply).
    pub fn new(
        manifest: &'a Manifest,
        pieces: &'a [Piece],
        local: &'a Local,
        ranges: &'a Ranges,
        data_offset: u64,
        counters: &'a Counters,
        first: usize,
    ) -> Self {
        DeltaReader {
            manifest,
            pieces,
            local,
            ranges,
            data_offset,
            counters,
            next_chunk: first,
            chunk: Vec::new(),
            handed: 0,
            cursor: 0,
            held: None,
            remote: None,
        }
    }

    /// Fills `self.chunk` with manifest chunk `i`, checked.
    fn assemble(&mut self, i: usize) -> io::Result<()> {
        let (start, end) = self.manifest.chunk_range(i);
        self.chunk.clear();
        while self.cursor < self.pieces.len() && self.pieces[self.cursor].end() <= start {
            self.cursor += 1;
        }
        let mut k = self.cursor;
        let mut lies = false;
        while k < self.pieces.len() && self.pieces[k].offset < end {
            let p = self.pieces[k];
            match self.piece(k) {
                Ok(()) => {
                    let bytes = self.held.as_ref().map(|(_, b)| &b[..]).unwrap_or(&[]);
                    let from = (start.max(p.offset) - p.offset) as usize;
                    let to = (end.min(p.end()) - p.offset) as usize;
                    self.chunk.extend_from_slice(&bytes[from..to]);
                }
                Err(PieceError::IndexLies) => {
                    lies = true;
                    break;
                }
                Err(PieceError::Io(e)) => return Err(e),
            }
            k += 1;
        }
        let good = !lies
            && self.chunk.len() as u64 == end - start
            && self
                .manifest
                .chunks
                .get(i)
                .is_some_and(|want| hex::encode(Sha256::digest(&self.chunk)) == *want);
        if !good {
            // The pieces did not make the chunk the manifest signs: take
            // the chunk itself from the payload (the writer checks it).
            Counters::add(&self.counters.whole_chunks, 1);
            self.remote = None;
            self.chunk.resize((end - start) as usize, 0);
            let mut body = self.open(start, end)?;
            body.read_exact(&mut self.chunk)?;
        }
        Ok(())
    }

    /// Makes piece `k` the held one: from local storage if it is there and
    /// intact, else from the payload.
    fn piece(&mut self, k: usize) -> Result<(), PieceError> {
        if self.held.as_ref().is_some_and(|(h, _)| *h == k) {
            return Ok(());
        }
        let p = self.pieces[k];
        let mut buf = self.held.take().map(|(_, b)| b).unwrap_or_default();
        if let Some(loc) = self.local.find(&p.sha256).filter(|l| l.len == p.len) {
            let ok = self.local.read(loc, &mut buf).is_ok()
                && <[u8; 32]>::from(Sha256::digest(&buf)) == p.sha256;
            if ok {
                Counters::add(&self.counters.reused_pieces, 1);
                Counters::add(&self.counters.reused_bytes, u64::from(p.len));
                self.held = Some((k, buf));
                return Ok(());
            }
            Counters::add(&self.counters.local_mismatches, 1);
        }
        self.fetch_piece(k, &mut buf).map_err(PieceError::Io)?;
        Counters::add(&self.counters.fetched_pieces, 1);
        if <[u8; 32]>::from(Sha256::digest(&buf)) != p.sha256 {
            return Err(PieceError::IndexLies);
        }
        self.held = Some((k, buf));
        Ok(())
    }

    /// Reads piece `k` from the open range if it continues there, else
    /// opens a range over it and the missing pieces that follow it.
    fn fetch_piece(&mut self, k: usize, buf: &mut Vec<u8>) -> io::Result<()> {
        let p = self.pieces[k];
        let continues = self
            .remote
            .as_ref()
            .is_some_and(|r| r.at == p.offset && r.end >= p.end());
        if !continues {
            let mut end = p.end();
            for q in &self.pieces[k + 1..] {
                if self.local.find(&q.sha256).is_some() {
                    break;
                }
                end = q.end();
            }
            let body = self.open(p.offset, end)?;
            self.remote = Some(Remote {
                at: p.offset,
                end,
                body,
            });
        }
        buf.resize(p.len as usize, 0);
        let remote = self
            .remote
            .as_mut()
            .ok_or_else(|| io::Error::other("no open range"))?;
        let read = remote.body.read_exact(buf);
        if read.is_err() {
            self.remote = None;
        } else {
            remote.at = p.end();
        }
        read
    }

    /// Data bytes `start..end` from the payload, counted.
    fn open(&self, start: u64, end: u64) -> io::Result<Box<dyn Read + Send + 'a>> {
        let body = self
            .ranges
            .open(self.data_offset + start, self.data_offset + end)
            .map_err(|e| io::Error::other(e.to_string()))?;
        Counters::add(&self.counters.requests, 1);
        Ok(Box::new(Counting {
            inner: body,
            counter: &self.counters.downloaded,
        }))
    }
}

impl Read for DeltaReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.handed == self.chunk.len() {
            if self.next_chunk >= self.manifest.chunks.len() {
                return Ok(0);
            }
            self.assemble(self.next_chunk)?;
            self.next_chunk += 1;
            self.handed = 0;
        }
        let n = buf.len().min(self.chunk.len() - self.handed);
        buf[..n].copy_from_slice(&self.chunk[self.handed..self.handed + n]);
        self.handed += n;
        Ok(n)
    }
}

/// Counts the bytes that pass (the network's share of a delta).
pub struct Counting<'c, R> {
    pub inner: R,
    pub counter: &'c AtomicU64,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}
