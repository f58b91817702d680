//! [`DedupeMap`]: the cleaner's bounded map from a record key to the offset of its latest
//! record (Kafka's `SkimpyOffsetMap`).
//!
//! Lifecycle and cores: one per shard, built with the shard's `--log-cleaner-dedupe-buffer-bytes`
//! and lent to one clean at a time, which clears it first. Never leaves its shard.
//!
//! Layout: open addressing over a fixed array of slots, each a 16-byte hash of the key and the
//! offset (24 bytes, [`DEDUPE_ENTRY_BYTES`]), probed linearly. Keys themselves are not kept: a
//! 128-bit hash makes a collision (two keys taken for one, so the older key's latest record
//! would be dropped) vanishingly unlikely for any number of keys a map can hold. The hash is
//! two SipHash-1-3 with random keys chosen when the map is built, not MD5 as in Kafka: a
//! producer cannot aim for a collision it cannot compute, and SipHash is fast on short keys.

use std::hash::{BuildHasher, RandomState};

use crate::limits::{DEDUPE_ENTRY_BYTES, DEDUPE_LOAD_FACTOR, DEDUPE_SLOTS_MIN};
use crate::model::Offset;

/// A slot: the key's 128-bit hash and the offset of its latest record; `offset == EMPTY`
/// marks a free slot.
#[derive(Clone, Copy)]
struct Slot {
    hash: [u64; 2],
    offset: i64,
}

const _: () = assert!(size_of::<Slot>() == DEDUPE_ENTRY_BYTES);

/// The offset of a free slot (real offsets are never negative).
const EMPTY: i64 = -1;

/// Key → latest offset, bounded in bytes. See the module docs.
pub struct DedupeMap {
    slots: Vec<Slot>,
    /// Keys in the map.
    len: usize,
    /// Keys the map takes before it counts as full (the load factor's share of the slots).
    len_max: usize,
    /// The last offset of the last batch mapped whole (Kafka's `latestOffset`): records past it
    /// were not looked at and must be kept.
    latest: Option<Offset>,
    /// Where [`DedupeMap::clear_some`] goes on (0: not clearing).
    clearing: usize,
    first_hasher: RandomState,
    second_hasher: RandomState,
}

impl DedupeMap {
    /// A map of about `bytes` bytes: `bytes / 24` slots (at least [`DEDUPE_SLOTS_MIN`]).
    pub fn new(bytes: usize) -> DedupeMap {
        let count = (bytes / DEDUPE_ENTRY_BYTES).max(DEDUPE_SLOTS_MIN);
        // A float of the slot count is exact up to 2^53 slots, far beyond any memory.
        let len_max = ((count as f64 * DEDUPE_LOAD_FACTOR) as usize).clamp(1, count - 1);
        DedupeMap {
            slots: vec![Slot { hash: [0; 2], offset: EMPTY }; count],
            len: 0,
            len_max,
            latest: None,
            clearing: 0,
            first_hasher: RandomState::new(),
            second_hasher: RandomState::new(),
        }
    }

    /// Empties the map for the next clean.
    pub fn clear(&mut self) {
        while !self.clear_some(usize::MAX) {}
    }

    /// Empties up to `slots` more slots; true once the map is empty. Zeroing a 64 MiB map takes
    /// about 20 ms, which the cleaner must not spend in one go on a shard serving requests: it
    /// calls this between steps aside. The map must not be used until this returns true.
    pub fn clear_some(&mut self, slots: usize) -> bool {
        if self.len > 0 {
            let end = self.clearing.saturating_add(slots).min(self.slots.len());
            self.slots[self.clearing..end].fill(Slot { hash: [0; 2], offset: EMPTY });
            if end < self.slots.len() {
                self.clearing = end;
                return false;
            }
        }
        self.clearing = 0;
        self.len = 0;
        self.latest = None;
        true
    }

    /// Keys mapped.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no key is mapped.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes its slots take.
    pub fn bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<Slot>()
    }

    /// How many keys the map takes.
    pub fn capacity(&self) -> usize {
        self.len_max
    }

    /// True once the map takes no new key.
    pub fn is_full(&self) -> bool {
        self.len >= self.len_max
    }

    /// Maps `key` to `offset`, the newest record of it so far (records are mapped in offset
    /// order). Returns false, mapping nothing, when the key is new and the map is full.
    pub(crate) fn put(&mut self, key: &[u8], offset: Offset) -> bool {
        let hash = self.hash(key);
        let at = self.probe(hash);
        let Some(slot) = self.slots.get_mut(at) else { return false };
        if slot.offset == EMPTY {
            if self.len >= self.len_max {
                return false;
            }
            self.len += 1;
            slot.hash = hash;
        }
        slot.offset = slot.offset.max(offset.0);
        true
    }

    /// The offset of `key`'s latest record mapped, if any.
    pub(crate) fn get(&self, key: &[u8]) -> Option<Offset> {
        let hash = self.hash(key);
        self.slots.get(self.probe(hash)).filter(|s| s.offset != EMPTY).map(|s| Offset(s.offset))
    }

    /// The last offset of the last batch mapped whole.
    pub(crate) fn latest_offset(&self) -> Option<Offset> {
        self.latest
    }

    /// Notes that every record up to `offset` is mapped.
    pub(crate) fn set_latest_offset(&mut self, offset: Offset) {
        self.latest = Some(self.latest.map_or(offset, |l| l.max(offset)));
    }

    fn hash(&self, key: &[u8]) -> [u64; 2] {
        [self.first_hasher.hash_one(key), self.second_hasher.hash_one(key)]
    }

    /// The slot holding `hash`, or the free slot where it would go. The map always keeps a
    /// free slot (`len_max < slots`), so the probe ends.
    fn probe(&self, hash: [u64; 2]) -> usize {
        let count = self.slots.len();
        let mut at = (hash[0] % count as u64) as usize;
        loop {
            match self.slots.get(at) {
                Some(slot) if slot.offset == EMPTY || slot.hash == hash => return at,
                Some(_) => at = (at + 1) % count,
                None => return 0,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_offset_per_key_and_fills_to_the_load_factor() {
        let mut map = DedupeMap::new(100 * DEDUPE_ENTRY_BYTES);
        assert_eq!(map.capacity(), 90);
        for i in 0..90u32 {
            assert!(map.put(&i.to_be_bytes(), Offset(i64::from(i))));
        }
        assert!(map.is_full());
        assert!(!map.put(b"new key", Offset(1000)), "a full map takes no new key");
        assert!(map.put(&5u32.to_be_bytes(), Offset(2000)), "but updates one it has");
        assert_eq!(map.get(&5u32.to_be_bytes()), Some(Offset(2000)));
        assert_eq!(map.get(&6u32.to_be_bytes()), Some(Offset(6)));
        assert_eq!(map.get(b"new key"), None);
        map.set_latest_offset(Offset(89));
        map.clear();
        assert!(map.is_empty());
        assert_eq!(map.get(&6u32.to_be_bytes()), None);
        assert_eq!(map.latest_offset(), None);
        let tiny = DedupeMap::new(0);
        assert!(tiny.capacity() >= 1 && tiny.capacity() < DEDUPE_SLOTS_MIN);
    }

    #[test]
    fn clearing_in_pieces_empties_the_map_only_once_every_piece_is_done() {
        let mut map = DedupeMap::new(1000 * DEDUPE_ENTRY_BYTES);
        for i in 0..500u32 {
            assert!(map.put(&i.to_be_bytes(), Offset(i64::from(i))));
        }
        map.set_latest_offset(Offset(499));
        let mut pieces = 1;
        while !map.clear_some(300) {
            pieces += 1;
        }
        assert_eq!(pieces, 4, "1000 slots in pieces of 300");
        assert!(map.is_empty());
        assert_eq!(map.latest_offset(), None);
        assert!((0..500u32).all(|i| map.get(&i.to_be_bytes()).is_none()), "every slot emptied");
        assert!(map.clear_some(300), "an empty map is cleared at once");
        assert!(map.put(b"again", Offset(7)));
        assert_eq!(map.get(b"again"), Some(Offset(7)));
    }
}
