//! Reads: by offset with a byte budget and an upper offset, and lookups by timestamp.
//!
//! A read answers from the batch cache when the start offset is still cached (whole batches, as
//! shared `Bytes`), else with one byte range of one segment file, for sendfile. A file range
//! starts at a batch boundary and ends at the upper bound's batch boundary or at `max_bytes`,
//! whichever is first; like Kafka's, a range cut by `max_bytes` may end inside a batch, which
//! clients drop and fetch again. The first batch is always whole, however large. Only bytes
//! already written to the file are ever in a range, so no reader sees a partly written batch.
//! Both come as [`Chunk`]s, the type the bytes keep all the way to the socket.

use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::rc::Rc;
use std::sync::Arc;

use super::batch_cache::CachedBatch;
use super::error::Error;
use super::file_cache::{Access, SegmentFiles};
use super::io::Source;
use super::log::PartitionLog;
use super::segment::{ScanCheck, scan};
use crate::limits::BATCH_BYTES_MAX;
use crate::model::{Chunk, FileRange, Offset, RecordBatch, RecordIter, Timestamp};

/// Bounds of one read.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// Stop adding batches once this many bytes are gathered (the first batch is always whole).
    pub max_bytes: u64,
    /// Return no batch that ends after this offset (the high watermark, for consumers).
    pub upper_bound: Offset,
}

/// The answer to a read.
#[derive(Debug, Clone, Default)]
pub struct ReadSlice {
    /// The record batches, in log order: cached batches as [`Chunk::Bytes`], a segment's bytes
    /// as one [`Chunk::File`] range (for sendfile).
    pub chunks: Vec<Chunk>,
    /// Total bytes.
    pub bytes: u64,
    /// Base offset of the first batch (which may be before the requested offset, when that
    /// falls inside a batch).
    pub first_offset: Option<Offset>,
    /// An offset above every record returned (the next batch's, when known, else the read's
    /// upper bound): read_committed fetches look up aborted transactions below it, as Kafka's
    /// fetch upper bound does. Meaningless for an empty answer.
    pub upper_offset: Offset,
}

impl ReadSlice {
    /// True when no batch was returned.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Copies the whole answer into memory (tools, tests and the group coordinator's replay; the
    /// broker sends file ranges with sendfile instead). File ranges are read with `pread` on the
    /// segment's buffered descriptor, which blocks the shard while a cold range comes off the
    /// disk, as sendfile does.
    pub async fn to_vec(&self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(usize::try_from(self.bytes).unwrap_or(0));
        for chunk in &self.chunks {
            match chunk {
                Chunk::Bytes(bytes) => out.extend_from_slice(bytes),
                Chunk::File(FileRange { file, position, len }) => {
                    let len = usize::try_from(*len).map_err(std::io::Error::other)?;
                    let at = out.len();
                    out.resize(at + len, 0);
                    file.read_exact_at(&mut out[at..], *position)?;
                }
            }
        }
        Ok(out)
    }
}

/// What a file read needs from the log state, taken under a short borrow (the descriptor too:
/// see `file_cache.rs` on why a handle is taken under the borrow that found its segment).
struct FilePlan {
    /// The segment's buffered descriptor: the header scan reads through it, and the answer
    /// hands it on for sendfile.
    reader: Arc<std::fs::File>,
    /// The shard's descriptor cache is over its bound (every descriptor in use): the answer
    /// copies the range into memory and lets the file go rather than hold it until it is sent.
    copy: Option<Rc<SegmentFiles>>,
    segment_base: Offset,
    scan_from: u64,
    flushed_size: u64,
    flushed_next: Offset,
    /// Known position of the upper bound inside this segment, if it lies inside.
    upper_position: Option<u64>,
    upper_scan_from: u64,
    next_segment: Option<Offset>,
}

impl PartitionLog {
    /// Batches from the one containing `start`, bounded by `limits`. `start` must lie in
    /// `[log start, log end]`, else `OffsetOutOfRange`.
    pub async fn read(&self, start: Offset, limits: ReadLimits) -> Result<ReadSlice, Error> {
        let mut start = start;
        // A truncation cuts files under the segments the state still lists: read once it is done.
        let work = self.state.borrow().work.clone();
        work.wait_until(|| !self.state.borrow().truncating).await;
        {
            let state = self.state.borrow();
            if start < state.log_start || start > state.log_end {
                return Err(Error::OffsetOutOfRange {
                    requested: start,
                    log_start: state.log_start,
                    log_end: state.log_end,
                });
            }
        }
        loop {
            let plan = {
                let state = self.state.borrow();
                let upper = limits.upper_bound.min(state.log_end);
                if start >= upper {
                    return Ok(ReadSlice::default());
                }
                if let Some(batches) = state.cache.read(start, limits.max_bytes, upper) {
                    crate::metrics::batch_cache_hit();
                    let mut slice = ReadSlice {
                        first_offset: batches.first().map(|b| b.base_offset),
                        upper_offset: batches.last().map_or(upper, |b| b.next_offset),
                        ..ReadSlice::default()
                    };
                    for batch in batches {
                        slice.bytes += batch.bytes.len() as u64;
                        slice.chunks.push(Chunk::Bytes(batch.bytes));
                    }
                    return Ok(slice);
                }
                crate::metrics::batch_cache_miss();
                let Some((_, segment)) = state.segments.range(..=start).next_back() else {
                    return Ok(ReadSlice::default());
                };
                if segment.flushed_size == 0 {
                    // Nothing in the file (which may not exist yet): the cache holds the rest.
                    return Ok(ReadSlice::default());
                }
                let reader = segment
                    .files
                    .buffered()
                    .map_err(Error::io(format!("opening segment {} for reading", segment.base_offset)))?;
                let copy = state.files.over_bound().then(|| segment.files.clone());
                let next_segment = state.segments.range(segment.base_offset.plus(1)..).next().map(|(&b, _)| b);
                let entry = segment.index.lookup(segment.base_offset, start);
                let (upper_position, upper_scan_from) = if upper >= segment.flushed_next_offset {
                    (Some(segment.flushed_size), 0)
                } else {
                    match state.cache.find(upper).filter(|b| b.segment_base == segment.base_offset) {
                        Some(cached) => (Some(cached.position), 0),
                        None => (None, u64::from(segment.index.lookup(segment.base_offset, upper).position)),
                    }
                };
                FilePlan {
                    reader,
                    copy,
                    segment_base: segment.base_offset,
                    scan_from: u64::from(entry.position),
                    flushed_size: segment.flushed_size,
                    flushed_next: segment.flushed_next_offset,
                    upper_position,
                    upper_scan_from,
                    next_segment,
                }
            };
            if start >= plan.flushed_next {
                // Past this segment's data (a compacted gap at its end): go on in the next one.
                match plan.next_segment {
                    Some(next) => {
                        start = next;
                        continue;
                    }
                    None => return Ok(ReadSlice::default()),
                }
            }
            return self.read_file(plan, start, limits).await;
        }
    }

    async fn read_file(&self, plan: FilePlan, start: Offset, limits: ReadLimits) -> Result<ReadSlice, Error> {
        let io_err = Error::io(format!("reading segment {}", plan.segment_base));
        let size_max = BATCH_BYTES_MAX as usize;
        let mut first = None;
        scan(
            Source::Buffered(&plan.reader),
            plan.segment_base,
            plan.scan_from,
            plan.flushed_size,
            size_max,
            ScanCheck::Headers,
            |position, batch| {
                if batch.next_offset > start {
                    first = Some((position, batch.size, batch.base_offset, batch.next_offset));
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        )
        .await
        .map_err(io_err)?;
        let Some((position, first_size, first_offset, first_next)) = first else {
            return Ok(ReadSlice::default());
        };
        let upper = limits.upper_bound;
        if first_next > upper {
            return Ok(ReadSlice::default());
        }
        let upper_position = match plan.upper_position {
            Some(p) => p,
            None => {
                let mut found = plan.flushed_size;
                let from = plan.upper_scan_from.max(position);
                scan(
                    Source::Buffered(&plan.reader),
                    plan.segment_base,
                    from,
                    plan.flushed_size,
                    size_max,
                    ScanCheck::Headers,
                    |p, batch| {
                        if batch.next_offset > upper {
                            found = p;
                            ControlFlow::Break(())
                        } else {
                            ControlFlow::Continue(())
                        }
                    },
                )
                .await
                .map_err(Error::io(format!("reading segment {}", plan.segment_base)))?;
                found
            }
        };
        let len = upper_position.saturating_sub(position).min(limits.max_bytes.max(first_size));
        // A range that reaches the upper position holds only batches below the upper bound
        // (or the segment's end); one cut short by max_bytes ends before the next indexed batch.
        let whole_bound = upper.min(plan.flushed_next);
        let upper_offset = if position + len >= upper_position {
            whole_bound
        } else {
            let state = self.state.borrow();
            let indexed = state
                .segments
                .get(&plan.segment_base)
                .and_then(|s| s.index.offset_at_or_after(plan.segment_base, position + len));
            indexed.map_or(whole_bound, |o| o.min(whole_bound))
        };
        let chunk = match plan.copy {
            None => Chunk::File(FileRange { file: plan.reader, position, len }),
            Some(files) => {
                let want = usize::try_from(len).unwrap_or(usize::MAX);
                let read = Source::Buffered(&plan.reader).read_at(position, want).await;
                drop(plan.reader);
                files.release(Access::Buffered);
                let bytes = read.map_err(Error::io(format!("reading segment {}", plan.segment_base)))?;
                if bytes.len() != want {
                    let short = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "segment shorter than flushed");
                    return Err(Error::io(format!("reading segment {}", plan.segment_base))(short));
                }
                Chunk::Bytes(bytes.into_bytes())
            }
        };
        Ok(ReadSlice { chunks: vec![chunk], bytes: len, first_offset: Some(first_offset), upper_offset })
    }

    /// Kafka's ListOffsets by timestamp: the first offset whose record timestamp is ≥ `target`,
    /// with that timestamp; `None` if every record is older. Exact to the record for
    /// uncompressed batches; for compressed batches the batch's base offset (the records would
    /// have to be decompressed).
    pub async fn offset_for_timestamp(&self, target: Timestamp) -> Result<Option<(Offset, Timestamp)>, Error> {
        let (file, segment_base, scan_from, start_offset, flushed_size, cached) = {
            let state = self.state.borrow();
            let Some(segment) =
                state.segments.values().find(|s| s.max_timestamp >= target && s.next_offset > state.log_start)
            else {
                return Ok(None);
            };
            let start_offset = segment.time_index.lookup(segment.base_offset, target).max(state.log_start);
            let entry = segment.index.lookup(segment.base_offset, start_offset);
            let cached = state.cache.segment_batches_from(segment.base_offset, start_offset);
            let file = (segment.flushed_size > 0)
                .then(|| segment.files.buffered())
                .transpose()
                .map_err(Error::io(format!("opening segment {} for reading", segment.base_offset)))?;
            (file, segment.base_offset, u64::from(entry.position), start_offset, segment.flushed_size, cached)
        };
        // Unflushed or cached batches first if they cover the start, then the file.
        if let Some(first) = cached.first()
            && first.base_offset <= start_offset
        {
            return Ok(search_cached(&cached, target, start_offset));
        }
        let Some(file) = file else { return Ok(None) };
        let mut found = None;
        scan(
            Source::Buffered(&file),
            segment_base,
            scan_from,
            flushed_size,
            BATCH_BYTES_MAX as usize,
            ScanCheck::Headers,
            |position, batch| {
                if batch.next_offset > start_offset && batch.max_timestamp >= target {
                    found = Some((position, usize::try_from(batch.size).unwrap_or(usize::MAX)));
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        )
        .await
        .map_err(Error::io(format!("reading segment {segment_base}")))?;
        if let Some((position, size)) = found {
            let bytes = Source::Buffered(&file)
                .read_at(position, size)
                .await
                .map_err(Error::io(format!("reading segment {segment_base}")))?;
            let view = RecordBatch::parse_prefix(&bytes, usize::MAX)?;
            return Ok(Some(first_record_at_or_after(&view, target, start_offset)));
        }
        // Not in the file: the rest of the segment is cached.
        Ok(search_cached(&cached, target, start_offset))
    }

    /// Kafka's ListOffsets with MAX_TIMESTAMP: the largest timestamp in the log and the base
    /// offset of the batch that carries it.
    pub fn max_timestamp(&self) -> Option<(Offset, Timestamp)> {
        let state = self.state.borrow();
        state
            .segments
            .values()
            .filter(|s| s.max_timestamp != Timestamp::NONE && s.next_offset > state.log_start)
            .max_by_key(|s| s.max_timestamp)
            .map(|s| (s.offset_of_max_timestamp.max(state.log_start), s.max_timestamp))
    }
}

/// The first record at or after `target` in cached batches, if any batch reaches it.
fn search_cached(cached: &[CachedBatch], target: Timestamp, not_before: Offset) -> Option<(Offset, Timestamp)> {
    cached.iter().find_map(|batch| {
        let view = RecordBatch::parse_prefix(&batch.bytes, usize::MAX).ok()?;
        (view.max_timestamp() >= target).then(|| first_record_at_or_after(&view, target, not_before))
    })
}

fn first_record_at_or_after(batch: &RecordBatch<'_>, target: Timestamp, not_before: Offset) -> (Offset, Timestamp) {
    for record in RecordIter::new(batch).map_while(Result::ok) {
        if record.timestamp >= target && record.offset >= not_before {
            return (record.offset, record.timestamp);
        }
    }
    (batch.base_offset().max(not_before), batch.max_timestamp())
}
