//! [`FileCache`]: the shard's descriptor cache. Every segment file a log opens goes through it,
//! lazily, and the least recently used idle ones are closed when it is full.
//!
//! Why: a partition used to hold four descriptors while its active segment was open and one per
//! sealed segment, so a broker ran out of descriptors at about 5,000 partitions. Through the
//! cache a partition nobody touched since start holds none, a sealed segment holds one (the
//! buffered descriptor, for sendfile and the header scans of fetches), an active segment two
//! (the direct-I/O descriptor its appender writes through, and the buffered one) while it is in
//! use, and the index files are open only while they are written (at seal). The bound is
//! `--max-open-files`, split over the shards.
//!
//! Lifecycle and cores: one [`FileCache`] per shard, made with the shard's partitions and shared
//! by every log on that shard through cheap clones. Each segment gets a [`SegmentFiles`] when it
//! is loaded or created; its segment holds it (the flusher and the cleaner hold clones while they
//! work), and its drop forgets whatever of it the cache holds. Nothing here is `Send`. The
//! buffered descriptors it hands out are `Arc<File>`, which may cross shards inside a fetch's
//! `Chunk::File`.
//!
//! How to use it correctly:
//! - **A handle is a guard.** While anyone but the cache holds a handle it handed out (a
//!   [`DirectFile`] or an `Arc<File>`), the file is in use: an in-flight read, write or sendfile.
//!   Eviction closes only files nobody else holds (a strong count of one), so a file is never
//!   closed under its user. Hold a handle only while you use it: one held across idle time
//!   (between flushes, say) pins its descriptor.
//! - **The bound counts what the cache holds.** When every file it holds is in use, a direct
//!   open (a flusher's, recovery's, the cleaner's) waits until one is let go: a produce to
//!   thousands of partitions at once would otherwise hold a descriptor per partition while their
//!   flushes run. Opens under way count against the bound too, so many at once cannot all pass
//!   it. Waiters queue in order and the last [`DirectFile`] of a file wakes the next one as it
//!   drops (a buffered handle, dropped on whichever shard sent it, wakes nobody, so one task
//!   also wakes the first waiter every [`IN_USE_RETRY`] while any wait: one timer however many
//!   wait). Eviction under that pressure takes a file just let go rather than walk every file in
//!   use. None of those holds a handle while it waits for another, so the wait ends as writes
//!   and sends do. A buffered open (a fetch's, made under a borrow of the log's state) cannot
//!   wait: it opens past the bound, and the read copies its bytes and lets the file go instead of
//!   handing it to sendfile (see `read.rs`); idle files past the bound close at the next use of
//!   the cache. Both say so at most once a second. A segment dropped while a handle of it is in
//!   use leaves that descriptor open, outside the count, until its user lets go.
//! - **Reopening is by path.** After a truncation or a clean's swap, a segment's path may name
//!   another file. Take a handle under the same borrow of the log's state in which you found the
//!   segment (reads do), or hold the segment against such changes while you work (the flusher,
//!   truncation, recovery and the cleaner, each of which excludes the others or checks after
//!   every await).
//! - **Durability survives a close.** The appender's writes are O_DIRECT and fail or succeed
//!   when they return, and fdatasync flushes the file (the inode), whichever descriptor it is
//!   called on, so an appender whose descriptor was evicted between a write and its sync loses
//!   nothing.
//!
//! Why hand-written rather than a crate: the cache is shard-local (no locks, no `Send` bounds);
//! its values are glommio files, opened asynchronously; and "in use" is a strong count that
//! general-purpose LRU crates cannot see, so they would evict a file a sendfile is reading.
//!
//! The cache also keeps the count of logs on the shard, from which active segments take the
//! size of their preallocated extents (see [`FileCache::preallocate_bytes`]).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

use tracing::warn;

use super::io::{self as sio, SharedFile};
use crate::limits::{
    BLOCK_BYTES, LogThrottle, OPEN_FILES_PER_SHARD_DEFAULT, PREALLOCATE_BUDGET_BYTES_DEFAULT, PREALLOCATE_BYTES,
};

/// How often the first direct open waiting for a descriptor is woken to look again, besides the
/// wakes of files let go (a sendfile's buffered descriptor frees its place without waking
/// anyone).
const IN_USE_RETRY: Duration = Duration::from_millis(10);

/// What one shard's cache may hold and spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileCacheConfig {
    /// Descriptors of segment files the cache keeps open at most (see the module docs for when
    /// it opens more).
    pub open_files_max: usize,
    /// Disk space preallocated ahead of the appends of all the shard's active segments together
    /// (see [`FileCache::preallocate_bytes`]).
    pub preallocate_budget_bytes: u64,
}

impl Default for FileCacheConfig {
    /// For tools and tests that open a few logs: the broker derives its own from the limits.
    fn default() -> Self {
        FileCacheConfig {
            open_files_max: OPEN_FILES_PER_SHARD_DEFAULT,
            preallocate_budget_bytes: PREALLOCATE_BUDGET_BYTES_DEFAULT,
        }
    }
}

/// What the cache did so far, for tests, tools and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileCacheStats {
    /// Descriptors the cache holds now.
    pub open: usize,
    /// The bound on `open`.
    pub open_max: usize,
    /// Handles served from an open descriptor.
    pub hits: u64,
    /// Files opened.
    pub opens: u64,
    /// Idle descriptors closed to make room.
    pub evictions: u64,
    /// Files opened past the bound because every descriptor held was in use (buffered opens
    /// for reads, which then copy instead of sending the file).
    pub opens_over_max: u64,
    /// Times a direct open waited because every descriptor held was in use.
    pub waits: u64,
    /// Logs registered on the shard (what preallocation is divided by).
    pub logs: usize,
}

/// Which of a segment's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum FileKind {
    /// The `.log` file of batches.
    Log,
    /// The `.index` file.
    OffsetIndex,
    /// The `.timeindex` file.
    TimeIndex,
}

impl FileKind {
    fn extension(self) -> &'static str {
        match self {
            FileKind::Log => "log",
            FileKind::OffsetIndex => "index",
            FileKind::TimeIndex => "timeindex",
        }
    }
}

/// How a descriptor was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Access {
    /// O_DIRECT, through glommio: appends, and reads that bypass the page cache.
    Direct(FileKind),
    /// Buffered, read-only, the `.log` file: sendfile (which cannot read an O_DIRECT
    /// descriptor) and the header scans of fetches.
    Buffered,
}

/// Whether opening may create the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Create {
    /// Create it if it does not exist (a new segment's first write, an index written whole).
    IfMissing,
    /// It must exist: a segment reopened after its descriptor was closed.
    No,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    segment: u64,
    access: Access,
}

#[derive(Clone)]
enum Handle {
    Direct(SharedFile),
    Buffered(Arc<File>),
}

impl Handle {
    /// Someone besides the cache holds it: a read, write or sendfile is using it.
    fn in_use(&self) -> bool {
        match self {
            Handle::Direct(file) => Rc::strong_count(file) > 1,
            Handle::Buffered(file) => Arc::strong_count(file) > 1,
        }
    }
}

struct Entry {
    handle: Handle,
    /// When it was last handed out, on the cache's clock (its key in `order`).
    used: u64,
}

/// The entries, and their order of last use (oldest first).
#[derive(Default)]
struct Lru {
    entries: HashMap<Key, Entry>,
    order: BTreeMap<u64, Key>,
    clock: u64,
    /// Files whose last handle was just let go, newest last: when every file near the old end
    /// of `order` is in use (thousands of flushes at once), eviction finds an idle one here
    /// instead of walking every entry in use. At most [`FREED_HINTS_MAX`]; stale ones are
    /// skipped.
    freed: VecDeque<Key>,
}

/// Entries eviction looks at from the least recently used end before it turns to the files
/// just freed.
const EVICTION_SCAN: usize = 64;
/// Freed files remembered for eviction (older ones fall off; eviction then scans).
const FREED_HINTS_MAX: usize = 4096;

impl Lru {
    /// The handle of `key`, now the most recently used.
    fn get(&mut self, key: Key) -> Option<Handle> {
        let entry = self.entries.get_mut(&key)?;
        self.clock += 1;
        self.order.remove(&entry.used);
        entry.used = self.clock;
        self.order.insert(self.clock, key);
        Some(entry.handle.clone())
    }

    fn insert(&mut self, key: Key, handle: Handle) {
        self.clock += 1;
        if let Some(old) = self.entries.insert(key, Entry { handle, used: self.clock }) {
            self.order.remove(&old.used);
        }
        self.order.insert(self.clock, key);
    }

    fn remove(&mut self, key: Key) -> Option<Handle> {
        let entry = self.entries.remove(&key)?;
        self.order.remove(&entry.used);
        Some(entry.handle)
    }

    /// Notes that `key`'s last handle was let go.
    fn note_freed(&mut self, key: Key) {
        if self.freed.len() >= FREED_HINTS_MAX {
            self.freed.pop_front();
        }
        self.freed.push_back(key);
    }

    fn is_idle(&self, key: &Key) -> bool {
        self.entries.get(key).is_some_and(|e| !e.handle.in_use())
    }

    /// Takes out entries nobody else holds until at most `keep` remain (fewer taken if too many
    /// are in use): the least recently used among the oldest [`EVICTION_SCAN`], then the files
    /// just freed, then any. The caller drops them, which closes them.
    fn evict_to(&mut self, keep: usize) -> Vec<Handle> {
        let mut excess = self.entries.len().saturating_sub(keep);
        let mut evicted = Vec::new();
        if excess == 0 {
            return evicted;
        }
        let oldest: Vec<Key> =
            self.order.values().take(EVICTION_SCAN).filter(|key| self.is_idle(key)).take(excess).copied().collect();
        for key in oldest {
            evicted.extend(self.remove(key));
        }
        excess -= evicted.len();
        while excess > 0
            && let Some(key) = self.freed.pop_back()
        {
            if self.is_idle(&key)
                && let Some(handle) = self.remove(key)
            {
                evicted.push(handle);
                excess -= 1;
            }
        }
        if excess > 0 {
            let any: Vec<Key> = self.order.values().filter(|key| self.is_idle(key)).take(excess).copied().collect();
            for key in any {
                evicted.extend(self.remove(key));
            }
        }
        evicted
    }
}

struct Shared {
    config: FileCacheConfig,
    lru: RefCell<Lru>,
    /// Direct opens under way: each holds a place under the bound until its file is in.
    opening: Cell<usize>,
    /// Direct opens waiting for a place, first come first served.
    waiters: RefCell<VecDeque<Waker>>,
    /// A task wakes the first waiter every [`IN_USE_RETRY`] while any wait.
    waking: Cell<bool>,
    next_segment: Cell<u64>,
    logs: Cell<usize>,
    stats: Cell<FileCacheStats>,
    over_max_log: LogThrottle,
    exhausted_log: LogThrottle,
    wait_log: LogThrottle,
}

/// A shard's descriptor cache (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct FileCache(Rc<Shared>);

impl FileCache {
    /// An empty cache.
    pub fn new(config: FileCacheConfig) -> Self {
        FileCache(Rc::new(Shared {
            config,
            lru: RefCell::new(Lru::default()),
            opening: Cell::new(0),
            waiters: RefCell::new(VecDeque::new()),
            waking: Cell::new(false),
            next_segment: Cell::new(0),
            logs: Cell::new(0),
            stats: Cell::new(FileCacheStats::default()),
            over_max_log: LogThrottle::new(),
            exhausted_log: LogThrottle::new(),
            wait_log: LogThrottle::new(),
        }))
    }

    /// What the cache did so far, and holds now.
    pub fn stats(&self) -> FileCacheStats {
        FileCacheStats {
            open: self.0.lru.borrow().entries.len(),
            open_max: self.0.config.open_files_max,
            logs: self.0.logs.get(),
            ..self.0.stats.get()
        }
    }

    /// The files of the segment whose `.log` file is `log_path` (its indexes beside it, by
    /// extension), none of them open yet.
    pub(crate) fn segment(&self, log_path: PathBuf) -> Rc<SegmentFiles> {
        let id = self.0.next_segment.get();
        self.0.next_segment.set(id + 1);
        Rc::new(SegmentFiles { cache: self.clone(), id, log_path })
    }

    /// Counts a log on the shard until the returned guard drops.
    pub(crate) fn register_log(&self) -> LogSlot {
        self.0.logs.set(self.0.logs.get() + 1);
        LogSlot(self.clone())
    }

    /// The extent an active segment's file grows by: [`PREALLOCATE_BYTES`] while the shard's
    /// logs share the preallocation budget at that size (a few partitions keep today's large
    /// extents, so a flush seldom changes the file size and fdatasync seldom writes metadata),
    /// less when many share it (so 100,000 partitions do not fallocate terabytes), never below
    /// one block. Read at each growth, so it follows partitions as they come and go.
    pub(crate) fn preallocate_bytes(&self) -> u64 {
        let logs = u64::try_from(self.0.logs.get().max(1)).unwrap_or(u64::MAX);
        let share = self.0.config.preallocate_budget_bytes / logs;
        let share = share - share % BLOCK_BYTES;
        share.clamp(BLOCK_BYTES, PREALLOCATE_BYTES)
    }

    fn count(&self, update: impl FnOnce(&mut FileCacheStats)) {
        let mut stats = self.0.stats.get();
        update(&mut stats);
        self.0.stats.set(stats);
    }

    fn get(&self, key: Key) -> Option<Handle> {
        let handle = self.0.lru.borrow_mut().get(key);
        if handle.is_some() {
            self.count(|s| s.hits += 1);
            self.trim();
        }
        handle
    }

    /// Closes idle descriptors the cache holds past its bound (buffered opens went past it while
    /// every descriptor was in use; their sends are over now).
    fn trim(&self) {
        let max = self.0.config.open_files_max;
        let mut lru = self.0.lru.borrow_mut();
        if lru.entries.len() > max {
            let evicted = lru.evict_to(max);
            drop(lru);
            self.count(|s| s.evictions += evicted.len() as u64);
        }
    }

    /// Takes a place under the bound for a direct open, closing idle descriptors to make it;
    /// false if every place is taken by files in use and opens under way.
    fn reserve(&self) -> bool {
        let max = self.0.config.open_files_max;
        let opening = self.0.opening.get();
        let mut lru = self.0.lru.borrow_mut();
        let evicted = lru.evict_to(max.saturating_sub(opening + 1));
        let room = lru.entries.len() + opening < max;
        drop(lru);
        if !evicted.is_empty() {
            self.count(|s| s.evictions += evicted.len() as u64);
        }
        if room {
            self.0.opening.set(opening + 1);
        }
        room
    }

    /// A file became idle (or a place freed): closes what is past the bound and lets the first
    /// waiting open look again.
    fn on_idle(&self) {
        self.trim();
        self.wake_one();
    }

    fn wake_one(&self) {
        let waiter = self.0.waiters.borrow_mut().pop_front();
        if let Some(waiter) = waiter {
            waiter.wake();
        }
    }

    /// Waits until this open is woken: by [`Self::on_idle`], or by the task that wakes the first
    /// waiter every [`IN_USE_RETRY`] (one timer however many wait: a file freed without a wake,
    /// a buffered one, would otherwise leave them waiting).
    async fn wait_for_room(&self) {
        if !self.0.waking.replace(true) {
            let cache = self.clone();
            glommio::spawn_local(async move {
                loop {
                    glommio::timer::sleep(IN_USE_RETRY).await;
                    if cache.0.waiters.borrow().is_empty() {
                        cache.0.waking.set(false);
                        return;
                    }
                    cache.wake_one();
                }
            })
            .detach();
        }
        let mut queued = false;
        std::future::poll_fn(|cx| {
            if queued {
                return Poll::Ready(());
            }
            queued = true;
            self.0.waiters.borrow_mut().push_back(cx.waker().clone());
            Poll::Pending
        })
        .await;
    }

    /// Closes idle descriptors until one more fits under the bound beside the opens under way
    /// (as far as idle ones allow). Dropping the evicted handles closes them (glommio closes a
    /// direct file on its ring's next submission).
    fn make_room(&self) {
        let keep = self.0.config.open_files_max.saturating_sub(self.0.opening.get() + 1);
        let evicted = self.0.lru.borrow_mut().evict_to(keep);
        if !evicted.is_empty() {
            self.count(|s| s.evictions += evicted.len() as u64);
        }
    }

    /// Whether the cache holds more than its bound (every descriptor in use, and buffered opens
    /// went past it): a read should copy and let go rather than hold its file for sendfile.
    pub(crate) fn over_bound(&self) -> bool {
        self.0.lru.borrow().entries.len() > self.0.config.open_files_max
    }

    /// Closes every idle descriptor: the process ran out of them (connections took them).
    fn shed(&self) {
        let evicted = self.0.lru.borrow_mut().evict_to(0);
        self.count(|s| s.evictions += evicted.len() as u64);
    }

    fn insert(&self, key: Key, handle: Handle) {
        self.make_room();
        let mut lru = self.0.lru.borrow_mut();
        let over = lru.entries.len() + self.0.opening.get() >= self.0.config.open_files_max;
        lru.insert(key, handle);
        let open = lru.entries.len();
        drop(lru);
        self.count(|s| {
            s.opens += 1;
            s.opens_over_max += u64::from(over);
        });
        if over && let Some(suppressed) = self.0.over_max_log.allow() {
            warn!(
                open,
                open_max = self.0.config.open_files_max,
                suppressed,
                "segment files open past --max-open-files: every cached descriptor is in use"
            );
        }
    }

    fn forget(&self, key: Key) -> Option<Handle> {
        self.0.lru.borrow_mut().remove(key)
    }

    /// Opens with `open`; if the process is out of descriptors, closes every idle one the
    /// cache holds and tries once more.
    async fn open_retrying<T, F, Fut>(&self, path: &Path, open: F) -> io::Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = io::Result<T>>,
    {
        match open().await {
            Err(e) if out_of_descriptors(&e) => {
                if let Some(suppressed) = self.0.exhausted_log.allow() {
                    warn!(path = %path.display(), error = %e, open = self.stats().open, suppressed,
                        "out of descriptors opening a segment file; closing idle ones and retrying");
                }
                self.shed();
                open().await
            }
            other => other,
        }
    }
}

fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Counts one log on its shard (see [`FileCache::preallocate_bytes`]) while it lives.
pub(crate) struct LogSlot(FileCache);

impl Drop for LogSlot {
    fn drop(&mut self) {
        let logs = &self.0.0.logs;
        logs.set(logs.get().saturating_sub(1));
    }
}

/// One segment's files, opened through the shard's cache on demand (see the module docs).
pub(crate) struct SegmentFiles {
    cache: FileCache,
    /// Unique on the shard, so that a segment replaced by another of the same base (a clean's
    /// swap, a truncation) never shares its descriptors.
    id: u64,
    log_path: PathBuf,
}

impl SegmentFiles {
    /// The path of one of the segment's files.
    pub(crate) fn path(&self, kind: FileKind) -> PathBuf {
        self.log_path.with_extension(kind.extension())
    }

    fn key(&self, access: Access) -> Key {
        Key { segment: self.id, access }
    }

    /// The direct-I/O descriptor of `kind`, opened now if the cache does not hold it (waiting,
    /// if every descriptor is in use, until one is let go).
    pub(crate) async fn direct(&self, kind: FileKind, create: Create) -> io::Result<DirectFile> {
        let key = self.key(Access::Direct(kind));
        loop {
            if let Some(Handle::Direct(file)) = self.cache.get(key) {
                return Ok(DirectFile { file, cache: Some((self.cache.clone(), key)) });
            }
            if self.cache.reserve() {
                break;
            }
            self.cache.count(|s| s.waits += 1);
            if let Some(suppressed) = self.cache.0.wait_log.allow() {
                warn!(
                    open_max = self.cache.0.config.open_files_max,
                    suppressed, "every segment file descriptor is in use (--max-open-files); a write waits for one"
                );
            }
            self.cache.wait_for_room().await;
        }
        let reserved = Reserved(&self.cache);
        let path = self.path(kind);
        let create = create == Create::IfMissing;
        let file = Rc::new(self.cache.open_retrying(&path, || sio::open_rw(&path, create)).await?);
        drop(reserved);
        // Another task may have opened it meanwhile: keep that one, and this one closes.
        if let Some(Handle::Direct(existing)) = self.cache.get(key) {
            return Ok(DirectFile { file: existing, cache: Some((self.cache.clone(), key)) });
        }
        self.cache.insert(key, Handle::Direct(file.clone()));
        Ok(DirectFile { file, cache: Some((self.cache.clone(), key)) })
    }

    /// The buffered descriptor of the `.log` file, opened now (a blocking open(2), as cheap as
    /// the stat of a cached inode) if the cache does not hold it.
    pub(crate) fn buffered(&self) -> io::Result<Arc<File>> {
        let key = self.key(Access::Buffered);
        if let Some(Handle::Buffered(file)) = self.cache.get(key) {
            return Ok(file);
        }
        self.cache.make_room();
        let path = self.path(FileKind::Log);
        let file = match File::open(&path) {
            Err(e) if out_of_descriptors(&e) => {
                if let Some(suppressed) = self.cache.0.exhausted_log.allow() {
                    warn!(path = %path.display(), error = %e, suppressed,
                        "out of descriptors opening a segment file; closing idle ones and retrying");
                }
                self.cache.shed();
                File::open(&path)?
            }
            other => other?,
        };
        let file = Arc::new(file);
        self.cache.insert(key, Handle::Buffered(file.clone()));
        Ok(file)
    }

    /// Closes the descriptor `access` now unless it is in use (then it stays, and is evicted
    /// once idle): a sealed segment needs no direct descriptor, an index written whole none.
    pub(crate) fn release(&self, access: Access) {
        let key = self.key(access);
        let mut lru = self.cache.0.lru.borrow_mut();
        if lru.entries.get(&key).is_some_and(|e| !e.handle.in_use()) {
            lru.remove(key);
            drop(lru);
            self.cache.on_idle();
        }
    }

    /// Whether the cache holds the descriptor `access` open (tests).
    #[cfg(test)]
    pub(crate) fn is_open(&self, access: Access) -> bool {
        self.cache.0.lru.borrow().entries.contains_key(&self.key(access))
    }
}

impl Drop for SegmentFiles {
    /// The segment is gone from its log (retention, a swap, a truncation's reload, the log's
    /// close): the cache forgets its descriptors, which close unless in use.
    fn drop(&mut self) {
        let kinds = [FileKind::Log, FileKind::OffsetIndex, FileKind::TimeIndex];
        let accesses = kinds.into_iter().map(Access::Direct).chain([Access::Buffered]);
        for access in accesses {
            self.cache.forget(self.key(access));
        }
        self.cache.on_idle();
    }
}

/// A place under the bound taken for a direct open, given back when the open ends (whether it
/// succeeded, failed or was dropped).
struct Reserved<'a>(&'a FileCache);

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        let opening = &self.0.0.opening;
        opening.set(opening.get().saturating_sub(1));
    }
}

/// A direct-I/O file, as the cache hands it out (or, [`DirectFile::unmanaged`], a file opened
/// outside it): the descriptor stays open while this, or a clone of [`DirectFile::shared`],
/// lives. When the last user of a cached file lets go, a waiting open may take its place.
pub(crate) struct DirectFile {
    file: SharedFile,
    /// The cache that holds it, and its key there.
    cache: Option<(FileCache, Key)>,
}

impl DirectFile {
    /// A file the cache does not manage (a clean's new segment, held open throughout).
    pub(crate) fn unmanaged(file: SharedFile) -> Self {
        DirectFile { file, cache: None }
    }

    /// The file, for a task of its own (a write in flight) that holds it as long as it runs.
    pub(crate) fn shared(&self) -> &SharedFile {
        &self.file
    }
}

impl std::ops::Deref for DirectFile {
    type Target = glommio::io::DmaFile;

    fn deref(&self) -> &glommio::io::DmaFile {
        &self.file
    }
}

impl Drop for DirectFile {
    fn drop(&mut self) {
        // This and the cache's: the file is idle once this goes.
        if let Some((cache, key)) = &self.cache
            && Rc::strong_count(&self.file) <= 2
        {
            cache.0.lru.borrow_mut().note_freed(*key);
            cache.on_idle();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    fn cache(open_files_max: usize) -> FileCache {
        FileCache::new(FileCacheConfig { open_files_max, preallocate_budget_bytes: PREALLOCATE_BUDGET_BYTES_DEFAULT })
    }

    /// Segments `0..n` with a few bytes each, in `dir`.
    fn segments(cache: &FileCache, dir: &Path, n: i64) -> Vec<Rc<SegmentFiles>> {
        (0..n)
            .map(|base| {
                let files = cache.segment(dir.join(format!("{base:020}.log")));
                std::fs::write(files.path(FileKind::Log), vec![base as u8; 4096]).unwrap();
                files
            })
            .collect()
    }

    /// Whether descriptor `fd` of this process is open on `path` (tests run in parallel in one
    /// process, so they look at their own descriptors, not at a count).
    fn is_open_on(fd: i32, path: &Path) -> bool {
        std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok_and(|target| target == path)
    }

    #[test]
    fn the_least_recently_used_idle_file_is_closed_first_and_reopens_on_demand() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().to_path_buf();
        crate::testing::run_on_shard(move || async move {
            let cache = cache(3);
            let segments = segments(&cache, &dir, 5);
            for files in &segments[..3] {
                files.buffered().unwrap();
            }
            // Touch segment 0: segment 1 is now the least recently used.
            segments[0].buffered().unwrap();
            segments[3].buffered().unwrap();
            assert!(segments[0].is_open(Access::Buffered));
            assert!(!segments[1].is_open(Access::Buffered), "the least recently used went");
            assert!(segments[2].is_open(Access::Buffered));
            assert!(segments[3].is_open(Access::Buffered));
            let direct = segments[4].direct(FileKind::Log, Create::No).await.unwrap();
            assert_eq!(&sio::read_at(&direct, 0, 10).await.unwrap()[..], &[4u8; 10]);
            drop(direct);
            assert!(!segments[2].is_open(Access::Buffered));
            let stats = cache.stats();
            assert_eq!((stats.open, stats.opens, stats.evictions, stats.hits), (3, 5, 2, 1));
            // Reopened by path, with the same bytes.
            let mut byte = [0u8; 1];
            std::os::unix::fs::FileExt::read_exact_at(&*segments[1].buffered().unwrap(), &mut byte, 100).unwrap();
            assert_eq!(byte, [1]);
            assert_eq!(cache.stats().open, 3);
            assert_eq!(cache.stats().opens_over_max, 0);
        });
    }

    #[test]
    fn a_file_in_use_is_never_closed_and_the_cache_opens_past_its_bound_instead() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().to_path_buf();
        crate::testing::run_on_shard(move || async move {
            let cache = cache(2);
            let segments = segments(&cache, &dir, 4);
            let held_buffered = segments[0].buffered().unwrap();
            let held_direct = segments[1].direct(FileKind::Log, Create::No).await.unwrap();
            let third = segments[2].buffered().unwrap();
            // Both held files are in use: nothing was closed, one more is open past the bound.
            assert!(segments[0].is_open(Access::Buffered) && segments[1].is_open(Access::Direct(FileKind::Log)));
            assert!(is_open_on(held_buffered.as_raw_fd(), &segments[0].path(FileKind::Log)));
            assert!(is_open_on(third.as_raw_fd(), &segments[2].path(FileKind::Log)));
            assert_eq!(cache.stats().open, 3);
            assert_eq!(cache.stats().opens_over_max, 1);
            // A release of a file in use leaves it open too.
            segments[1].release(Access::Direct(FileKind::Log));
            assert!(segments[1].is_open(Access::Direct(FileKind::Log)));
            let mut byte = [0u8; 1];
            std::os::unix::fs::FileExt::read_exact_at(&*held_buffered, &mut byte, 0).unwrap();
            assert_eq!(byte, [0]);
            assert_eq!(&sio::read_at(&held_direct, 0, 1).await.unwrap()[..], &[1]);
            // Once let go, they are the first to go.
            drop((held_buffered, held_direct));
            segments[3].buffered().unwrap();
            assert_eq!(cache.stats().open, 2);
            assert!(!segments[0].is_open(Access::Buffered));
            assert!(!segments[1].is_open(Access::Direct(FileKind::Log)));
        });
    }

    #[test]
    fn a_direct_open_waits_while_every_descriptor_is_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().to_path_buf();
        crate::testing::run_on_shard(move || async move {
            let cache = cache(1);
            let segments = segments(&cache, &dir, 2);
            let sending = segments[0].buffered().unwrap();
            let waiter = {
                let files = segments[1].clone();
                glommio::spawn_local(async move { files.direct(FileKind::Log, Create::No).await.map(drop) }).detach()
            };
            glommio::timer::sleep(Duration::from_millis(20)).await;
            assert!(!segments[1].is_open(Access::Direct(FileKind::Log)), "it waits");
            assert!(cache.stats().waits > 0);
            assert_eq!(cache.stats().open, 1);
            drop(sending);
            waiter.await.unwrap().unwrap();
            assert!(segments[1].is_open(Access::Direct(FileKind::Log)));
            assert!(!segments[0].is_open(Access::Buffered));
            assert_eq!(cache.stats().open, 1);
        });
    }

    #[test]
    fn with_the_oldest_files_in_use_eviction_takes_one_just_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().to_path_buf();
        crate::testing::run_on_shard(move || async move {
            let max = EVICTION_SCAN + 36;
            let cache = cache(max);
            let segments = segments(&cache, &dir, max as i64 + 1);
            let mut held = Vec::new();
            for files in &segments[..max - 1] {
                held.push(files.direct(FileKind::Log, Create::No).await.unwrap());
            }
            drop(segments[max - 1].direct(FileKind::Log, Create::No).await.unwrap());
            let last = segments[max].direct(FileKind::Log, Create::No).await.unwrap();
            assert!(!segments[max - 1].is_open(Access::Direct(FileKind::Log)), "the one let go made room");
            assert_eq!(cache.stats().waits, 0);
            assert_eq!(cache.stats().open, max);
            drop((held, last));
        });
    }

    #[test]
    fn a_dropped_segment_closes_its_descriptors_unless_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().to_path_buf();
        crate::testing::run_on_shard(move || async move {
            let cache = cache(10);
            let mut segments = segments(&cache, &dir, 2);
            let paths: Vec<PathBuf> = segments.iter().map(|s| s.path(FileKind::Log)).collect();
            let idle = segments[0].buffered().unwrap().as_raw_fd();
            let sending = segments[1].buffered().unwrap();
            let sending_fd = sending.as_raw_fd();
            assert!(is_open_on(idle, &paths[0]) && is_open_on(sending_fd, &paths[1]));
            segments.clear();
            assert_eq!(cache.stats().open, 0);
            assert!(!is_open_on(idle, &paths[0]));
            // The one a sendfile still holds stays open until it is done.
            assert!(is_open_on(sending_fd, &paths[1]));
            drop(sending);
            assert!(!is_open_on(sending_fd, &paths[1]));
        });
    }

    #[test]
    fn opening_twice_at_once_keeps_one_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().to_path_buf();
        crate::testing::run_on_shard(move || async move {
            let cache = cache(10);
            let segments = segments(&cache, &dir, 1);
            let files = &segments[0];
            let (a, b) = futures_lite::future::zip(
                files.direct(FileKind::Log, Create::No),
                files.direct(FileKind::Log, Create::No),
            )
            .await;
            assert!(Rc::ptr_eq(a.unwrap().shared(), b.unwrap().shared()));
            assert_eq!(cache.stats().open, 1);
        });
    }

    #[test]
    fn preallocation_shrinks_with_the_logs_of_the_shard_but_never_below_a_block() {
        let cache = FileCache::new(FileCacheConfig { open_files_max: 4, preallocate_budget_bytes: 64 << 20 });
        assert_eq!(cache.preallocate_bytes(), PREALLOCATE_BYTES, "no log yet");
        let slots: Vec<LogSlot> = (0..2).map(|_| cache.register_log()).collect();
        assert_eq!(cache.preallocate_bytes(), PREALLOCATE_BYTES, "two logs share 64 MiB at 32 MiB each");
        let more: Vec<LogSlot> = (0..98).map(|_| cache.register_log()).collect();
        let share = (64u64 << 20) / 100;
        assert_eq!(cache.preallocate_bytes(), share - share % BLOCK_BYTES);
        let many: Vec<LogSlot> = (0..100_000).map(|_| cache.register_log()).collect();
        assert_eq!(cache.preallocate_bytes(), BLOCK_BYTES);
        drop((many, more));
        assert_eq!(cache.stats().logs, 2);
        assert_eq!(cache.preallocate_bytes(), PREALLOCATE_BYTES);
        drop(slots);
    }
}
