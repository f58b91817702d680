//! [`Chunk`]: a piece of a response's bytes, the one type fetched data has from storage to the
//! socket.
//!
//! Bytes already in memory (cached batches, encoded fields) are [`Chunk::Bytes`], shared and
//! never copied: the server writes them with one `writev`. Bytes still in a segment file are a
//! [`FileRange`], which the server sends with `sendfile` straight from the page cache. The file
//! is an `Arc<std::fs::File>` (the segment's buffered descriptor, not glommio's direct-I/O
//! handle): it keeps the segment readable after retention unlinks it, and it is `Send`, so a
//! chunk read on the shard that owns a partition crosses to the shard that owns the connection.

use std::sync::Arc;

use bytes::Bytes;

/// A piece of a response: bytes in memory, or a range of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk {
    /// Bytes in memory, written as they are (with `writev`).
    Bytes(Bytes),
    /// A byte range of a segment file (sent with `sendfile`).
    File(FileRange),
}

impl Chunk {
    /// Bytes this chunk contributes.
    pub fn len(&self) -> u64 {
        match self {
            Chunk::Bytes(bytes) => bytes.len() as u64,
            Chunk::File(range) => range.len,
        }
    }

    /// Whether this chunk contributes no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A byte range of an open file.
#[derive(Debug, Clone)]
pub struct FileRange {
    /// The file, opened for buffered reads; holding it keeps the data readable even once the
    /// file is unlinked.
    pub file: Arc<std::fs::File>,
    /// Start of the range.
    pub position: u64,
    /// Bytes in the range.
    pub len: u64,
}

/// Two ranges are equal when they are the same bytes of the same open file.
impl PartialEq for FileRange {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.file, &other.file) && self.position == other.position && self.len == other.len
    }
}

impl Eq for FileRange {}
