//! The in-memory cache of recently appended batches: the hot tail that fetches are served from
//! without touching the disk, as shared `Bytes` (the very buffers the producer's request arrived
//! in, so serving them copies nothing).
//!
//! Lifecycle and cores: one [`BatchCache`] per shard, holding a memory budget; each partition log
//! on that shard registers a [`PartitionCache`], a contiguous run of its newest batches. When the
//! shard is over budget, the batch appended longest ago on the shard is dropped first, whatever
//! its partition: consumers mostly read near the tail, and with oldest-first eviction every
//! partition keeps its tail. (An earlier policy emptied the least recently read partition first;
//! a consumer reading many partitions in one fetch then found the first partition's fresh tail
//! evicted and read it back from disk.) A batch not yet written to its segment file is never
//! dropped: it is the only copy readers have.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::{Rc, Weak};

use bytes::Bytes;

use crate::model::Offset;

/// One cached batch and where it lies in the log.
#[derive(Debug, Clone)]
pub(crate) struct CachedBatch {
    /// Offset of its first record.
    pub(crate) base_offset: Offset,
    /// Offset after its last record.
    pub(crate) next_offset: Offset,
    /// Base offset of the segment holding it.
    pub(crate) segment_base: Offset,
    /// Its byte position in that segment.
    pub(crate) position: u64,
    /// The batch, as stored.
    pub(crate) bytes: Bytes,
    /// When it was cached, in the shard's push order (set by [`PartitionCache::push`]).
    pub(crate) appended: u64,
}

struct Entries {
    batches: VecDeque<CachedBatch>,
    bytes: u64,
    /// Batches ending at or before this offset are in their file and may be evicted.
    evictable_end: Offset,
}

struct Shared {
    budget_bytes: u64,
    used_bytes: Cell<u64>,
    clock: Cell<u64>,
    next_id: Cell<u64>,
    partitions: RefCell<HashMap<u64, Weak<RefCell<Entries>>>>,
    /// Every push as (its tick, the partition's id), oldest first: eviction pops from the front
    /// instead of looking at every partition for the oldest batch (a shard may hold tens of
    /// thousands). An entry whose batch is gone (truncated, dropped, its partition closed) is
    /// stale and skipped when met; [`Shared::compact_order`] bounds how many pile up.
    order: RefCell<VecDeque<(u64, u64)>>,
    /// Batches cached on the shard, to tell when `order` is mostly stale.
    batches: Cell<usize>,
}

impl Shared {
    /// Drops stale entries from `order` once they outnumber the live ones (amortised: the
    /// queue is walked once per as many pushes as it holds).
    fn compact_order(&self) {
        let live = self.batches.get();
        if self.order.borrow().len() <= 2 * live + ORDER_SLACK {
            return;
        }
        let partitions = self.partitions.borrow();
        self.order.borrow_mut().retain(|&(tick, id)| {
            partitions.get(&id).and_then(Weak::upgrade).is_some_and(|entries| {
                let entries = entries.borrow();
                let at = entries.batches.partition_point(|b| b.appended < tick);
                entries.batches.get(at).is_some_and(|b| b.appended == tick)
            })
        });
    }
}

/// Stale entries `order` may hold beyond twice the live ones before it is compacted.
const ORDER_SLACK: usize = 1024;

/// A shard's batch cache: a budget shared by the shard's partitions. Cheap to clone.
#[derive(Clone)]
pub struct BatchCache(Rc<Shared>);

impl BatchCache {
    /// A cache that holds at most about `budget_bytes` of flushed batches.
    pub fn new(budget_bytes: u64) -> Self {
        BatchCache(Rc::new(Shared {
            budget_bytes,
            used_bytes: Cell::new(0),
            clock: Cell::new(0),
            next_id: Cell::new(0),
            partitions: RefCell::new(HashMap::new()),
            order: RefCell::new(VecDeque::new()),
            batches: Cell::new(0),
        }))
    }

    /// Bytes held now.
    pub fn used_bytes(&self) -> u64 {
        self.0.used_bytes.get()
    }

    /// Registers a partition.
    pub(crate) fn partition(&self) -> PartitionCache {
        let id = self.0.next_id.get();
        self.0.next_id.set(id + 1);
        let entries =
            Rc::new(RefCell::new(Entries { batches: VecDeque::new(), bytes: 0, evictable_end: Offset::ZERO }));
        self.0.partitions.borrow_mut().insert(id, Rc::downgrade(&entries));
        PartitionCache { id, shared: self.0.clone(), entries }
    }

    /// Evicts until under budget, the oldest batch of the shard first. A batch not yet in its
    /// file cannot go, nor can the newer batches of its partition (the cache keeps each
    /// partition's run contiguous): they are passed over and keep their place in the order.
    fn evict(shared: &Shared) {
        let mut passed = Vec::new();
        let mut order = shared.order.borrow_mut();
        let mut left = order.len();
        while shared.used_bytes.get() > shared.budget_bytes && left > 0 {
            left -= 1;
            let Some((tick, id)) = order.pop_front() else { break };
            let Some(entries) = shared.partitions.borrow().get(&id).and_then(Weak::upgrade) else { continue };
            let mut entries = entries.borrow_mut();
            let Some(front) = entries.batches.front() else { continue };
            if front.appended > tick {
                continue; // stale: that batch was dropped already
            }
            if front.appended < tick || front.next_offset > entries.evictable_end {
                passed.push((tick, id));
                continue;
            }
            if let Some(front) = entries.batches.pop_front() {
                let size = front.bytes.len() as u64;
                entries.bytes -= size;
                shared.used_bytes.set(shared.used_bytes.get() - size);
                shared.batches.set(shared.batches.get() - 1);
            }
        }
        for entry in passed.into_iter().rev() {
            order.push_front(entry);
        }
    }
}

/// One partition's run of cached batches. Owned by its `PartitionLog`.
pub(crate) struct PartitionCache {
    id: u64,
    shared: Rc<Shared>,
    entries: Rc<RefCell<Entries>>,
}

impl PartitionCache {
    /// Appends the newest batch; it must come after the last one.
    pub(crate) fn push(&self, mut batch: CachedBatch) {
        let size = batch.bytes.len() as u64;
        let tick = self.shared.clock.get() + 1;
        self.shared.clock.set(tick);
        batch.appended = tick;
        {
            let mut entries = self.entries.borrow_mut();
            if let Some(last) = entries.batches.back() {
                // Offsets only go up; a follower of a compacted leader takes its gaps.
                assert!(last.next_offset <= batch.base_offset, "cache must stay in offset order");
            }
            entries.batches.push_back(batch);
            entries.bytes += size;
        }
        self.shared.order.borrow_mut().push_back((tick, self.id));
        self.shared.batches.set(self.shared.batches.get() + 1);
        self.shared.used_bytes.set(self.shared.used_bytes.get() + size);
        BatchCache::evict(&self.shared);
        self.shared.compact_order();
    }

    /// Batches ending at or before `offset` are now in their file.
    pub(crate) fn set_evictable_end(&self, offset: Offset) {
        self.entries.borrow_mut().evictable_end = offset;
        BatchCache::evict(&self.shared);
    }

    /// Offset of the oldest cached batch.
    #[cfg(test)]
    pub(crate) fn first_offset(&self) -> Option<Offset> {
        self.entries.borrow().batches.front().map(|b| b.base_offset)
    }

    /// Whole batches from the one containing `start`, while they end at or before `upper_bound`
    /// and fit `max_bytes` (the first batch is returned even if larger, as Kafka does, so a big
    /// batch cannot block a consumer). `None` if `start` is not cached.
    pub(crate) fn read(&self, start: Offset, max_bytes: u64, upper_bound: Offset) -> Option<Vec<CachedBatch>> {
        let entries = self.entries.borrow();
        let first = entries.batches.front()?;
        if start < first.base_offset {
            return None;
        }
        let at = entries.batches.partition_point(|b| b.next_offset <= start);
        let mut out = Vec::new();
        let mut total = 0u64;
        for batch in entries.batches.range(at..) {
            let size = batch.bytes.len() as u64;
            if batch.next_offset > upper_bound || (!out.is_empty() && total + size > max_bytes) {
                break;
            }
            total += size;
            out.push(batch.clone());
        }
        Some(out)
    }

    /// The cached batch whose base offset is exactly `offset`.
    pub(crate) fn find(&self, offset: Offset) -> Option<CachedBatch> {
        let entries = self.entries.borrow();
        let at = entries.batches.partition_point(|b| b.base_offset < offset);
        entries.batches.get(at).filter(|b| b.base_offset == offset).cloned()
    }

    /// Cached batches of segment `segment_base` from offset `start` on (for timestamp scans).
    pub(crate) fn segment_batches_from(&self, segment_base: Offset, start: Offset) -> Vec<CachedBatch> {
        let entries = self.entries.borrow();
        entries.batches.iter().filter(|b| b.segment_base == segment_base && b.next_offset > start).cloned().collect()
    }

    /// Drops batches at or after `offset` (the log was cut there).
    pub(crate) fn truncate_from(&self, offset: Offset) {
        let mut entries = self.entries.borrow_mut();
        let mut freed = 0;
        while entries.batches.back().is_some_and(|b| b.next_offset > offset) {
            if let Some(b) = entries.batches.pop_back() {
                freed += b.bytes.len() as u64;
                self.shared.batches.set(self.shared.batches.get() - 1);
            }
        }
        entries.bytes -= freed;
        self.shared.used_bytes.set(self.shared.used_bytes.get() - freed);
    }

    /// Drops batches wholly before `offset` (retention moved the log start).
    pub(crate) fn drop_before(&self, offset: Offset) {
        let mut entries = self.entries.borrow_mut();
        let mut freed = 0;
        while entries.batches.front().is_some_and(|b| b.next_offset <= offset) {
            if let Some(b) = entries.batches.pop_front() {
                freed += b.bytes.len() as u64;
                self.shared.batches.set(self.shared.batches.get() - 1);
            }
        }
        entries.bytes -= freed;
        self.shared.used_bytes.set(self.shared.used_bytes.get() - freed);
    }
}

impl Drop for PartitionCache {
    fn drop(&mut self) {
        let (bytes, count) = {
            let entries = self.entries.borrow();
            (entries.bytes, entries.batches.len())
        };
        self.shared.used_bytes.set(self.shared.used_bytes.get() - bytes);
        self.shared.batches.set(self.shared.batches.get() - count);
        self.shared.partitions.borrow_mut().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(base: i64, len: usize) -> CachedBatch {
        CachedBatch {
            base_offset: Offset(base),
            next_offset: Offset(base + 1),
            segment_base: Offset(0),
            position: base as u64 * len as u64,
            bytes: Bytes::from(vec![0u8; len]),
            appended: 0,
        }
    }

    #[test]
    fn unflushed_batches_survive_the_budget_and_the_oldest_batch_goes_first() {
        let cache = BatchCache::new(250);
        let a = cache.partition();
        let b = cache.partition();
        for i in 0..3 {
            a.push(batch(i, 100));
        }
        assert_eq!(cache.used_bytes(), 300, "nothing is evictable before it is flushed");
        a.set_evictable_end(Offset(3));
        assert_eq!(cache.used_bytes(), 200);
        assert_eq!(a.first_offset(), Some(Offset(1)));

        // b's batch is the newest on the shard: a's older ones go first, however recently read.
        b.push(batch(0, 100));
        b.set_evictable_end(Offset(1));
        assert!(a.read(Offset(2), 1000, Offset(10)).is_some());
        assert_eq!(a.first_offset(), Some(Offset(2)));
        assert_eq!(b.first_offset(), Some(Offset(0)));
        a.push(batch(3, 100));
        a.set_evictable_end(Offset(4));
        assert_eq!(a.first_offset(), Some(Offset(3)), "a's older batch 2 went before b's newer one");
        assert_eq!(b.first_offset(), Some(Offset(0)));
        assert!(cache.used_bytes() <= 250);
        drop(a);
        assert_eq!(cache.used_bytes(), 100);
    }

    #[test]
    fn eviction_passes_over_unflushed_runs_and_stale_entries_do_not_pile_up() {
        let cache = BatchCache::new(300);
        let (a, b) = (cache.partition(), cache.partition());
        a.push(batch(0, 100));
        b.push(batch(0, 100));
        a.push(batch(1, 100));
        b.push(batch(1, 100));
        // b is flushed, a is not: a's batches keep their place, b's go oldest first.
        b.set_evictable_end(Offset(2));
        assert_eq!((a.first_offset(), b.first_offset()), (Some(Offset(0)), Some(Offset(1))));
        assert_eq!(cache.used_bytes(), 300);
        a.set_evictable_end(Offset(2));
        a.push(batch(2, 100));
        a.set_evictable_end(Offset(3));
        // Over by 100: a's batch 0 is the oldest entry and goes first, as it was pushed first.
        assert_eq!((a.first_offset(), b.first_offset()), (Some(Offset(1)), Some(Offset(1))));
        assert_eq!(cache.used_bytes(), 300);

        // Under budget, dropped batches leave stale entries; they are compacted away.
        let roomy = BatchCache::new(u64::MAX);
        let p = roomy.partition();
        for i in 0..10_000 {
            p.push(batch(i, 1));
            p.drop_before(Offset(i));
        }
        assert!(roomy.0.order.borrow().len() <= 2 + ORDER_SLACK + 1, "{}", roomy.0.order.borrow().len());
        assert_eq!(roomy.0.batches.get(), 1);
        drop(p);
        assert_eq!((roomy.used_bytes(), roomy.0.batches.get()), (0, 0));
    }

    #[test]
    fn reads_are_bounded_by_bytes_and_the_upper_offset() {
        let cache = BatchCache::new(u64::MAX);
        let p = cache.partition();
        for i in 0..10 {
            p.push(batch(i, 100));
        }
        let got = p.read(Offset(2), 250, Offset(10)).unwrap();
        assert_eq!(got.iter().map(|b| b.base_offset.0).collect::<Vec<_>>(), vec![2, 3]);
        let got = p.read(Offset(2), 50, Offset(10)).unwrap();
        assert_eq!(got.len(), 1, "the first batch is returned even when larger than max_bytes");
        let got = p.read(Offset(8), 10_000, Offset(9)).unwrap();
        assert_eq!(got.len(), 1);
        assert!(p.read(Offset(8), 10_000, Offset(8)).unwrap().is_empty());
        p.truncate_from(Offset(5));
        p.drop_before(Offset(2));
        assert_eq!(p.first_offset(), Some(Offset(2)));
        assert!(p.read(Offset(1), 100, Offset(10)).is_none());
        assert_eq!(cache.used_bytes(), 300);
    }
}
