//! Starting and stopping the shards: one glommio executor pinned to each core, every shard
//! reporting whether it started, one shutdown signal fanned out to all of them, and a thread
//! that wakes every shard now and then (`nudge.rs`) while they run.
//!
//! The caller decides what a shard runs and what it is given: each shard's value (its mesh
//! handles, say) is built on the calling thread and moved to the shard, which is where
//! [`mesh_handles`] must run for glommio's meshes to be safe.
//!
//! ```text
//! let pool = ShardPool::new(ShardsConfig { shards, name: "sluice-shard", spin_before_park, cpus: None });
//! let stop = pool.shutdown();              // e.g. for a signal thread
//! let running = pool.start(mesh_handles::<Req, Resp>(shards), |mesh, ctx| async move {
//!     /* join the mesh, bind, … */ ctx.ready.ready();  /* serve until ctx.shutdown fires */
//! })?;                                     // every shard is ready here
//! running.join();                          // every shard has exited here
//! ```

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use glommio::{CpuSet, LocalExecutorPoolBuilder, PoolPlacement, PoolThreadHandles};
use tracing::{error, info};

use super::mesh::{Mesh, mesh};
use super::nudge::{NUDGE_INTERVAL, Nudged, Nudger};

/// References to a mesh builder kept for the life of the process (see [`mesh_handles`]).
const MESH_SPARE_REFERENCES: usize = 64;

/// Blocking threads each shard hands file-system calls to (`storage::io::off_shard`: the
/// fsyncs of small metadata files and directories before a segment write). Several, because a
/// broker writing the first batch of many partitions at once has that many such fsyncs waiting,
/// and the filesystem's journal commits concurrent ones together; the threads sleep otherwise.
const BLOCKING_THREADS_PER_SHARD: usize = 4;

/// How the shards' executors are set up.
#[derive(Debug, Clone)]
pub struct ShardsConfig {
    /// How many shards, one executor per core, spread as far apart as the machine allows.
    pub shards: usize,
    /// The executor threads' name.
    pub name: &'static str,
    /// How long an idle executor spins before parking (lower cross-core latency, more CPU).
    pub spin_before_park: Duration,
    /// The CPUs to place the executors on; `None`: any online CPU.
    pub cpus: Option<Vec<usize>>,
}

/// Why the shards did not all start. When this is returned, no shard is running.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// glommio could not start the executors.
    #[error("starting shards (is RLIMIT_MEMLOCK at least 512 KiB?): {0}")]
    Pool(String),
    /// A shard reported that it could not start (the others were told to shut down).
    #[error("{0}")]
    Shard(String),
    /// Every shard went away before all of them reported.
    #[error("a shard exited during startup")]
    Exited,
    /// The caller gave a different number of per-shard values than there are shards.
    #[error("{values} per-shard values for {shards} shards")]
    Values {
        /// Values given.
        values: usize,
        /// Shards configured.
        shards: usize,
    },
}

/// `shards` handles to one new mesh, one for each shard to join with.
///
/// glommio 0.9's MeshBuilder keeps an `Rc` (not an `Arc`) behind an `unsafe impl Send`, so
/// clones and drops on different executor threads race on its count (AddressSanitizer caught
/// the use-after-free this caused with two shards). So every clone is made here, on one
/// thread, each shard takes its own, and spare references stay alive for the process so that
/// updates lost to the shards' concurrent drops can never bring the count to zero. Call it on
/// the thread that starts the shards, once per mesh.
pub fn mesh_handles<Req: Send + 'static, Resp: Send + 'static>(shards: usize) -> Vec<Mesh<Req, Resp>> {
    let mesh = mesh::<Req, Resp>(shards);
    let handles = (0..shards).map(|_| mesh.clone()).collect();
    let spares: Vec<_> = (0..MESH_SPARE_REFERENCES).map(|_| mesh.clone()).collect();
    std::mem::forget(spares);
    std::mem::forget(mesh);
    handles
}

/// Tells every shard to shut down. Cheap to clone; may be used from any thread.
#[derive(Debug, Clone)]
pub struct Shutdown {
    sender: flume::Sender<()>,
    shards: usize,
}

impl Shutdown {
    /// Sends the signal: every shard's [`ShardContext::shutdown`] receives a message.
    pub fn signal(&self) {
        // The receivers share one channel, each taking one message: two per shard leaves one
        // for every shard even if some shard takes more than one.
        for _ in 0..self.shards * 2 {
            let _ = self.sender.send(());
        }
    }
}

/// How a shard says whether it started. Dropped without a word, it counts as a failure.
pub struct Ready {
    sender: Option<flume::Sender<Result<(), String>>>,
}

impl Ready {
    /// This shard is serving.
    pub fn ready(mut self) {
        self.report(Ok(()));
    }

    /// This shard could not start, and why: startup fails and every shard is told to shut down.
    pub fn fail(mut self, why: impl Into<String>) {
        self.report(Err(why.into()));
    }

    fn report(&mut self, result: Result<(), String>) {
        if let Some(sender) = self.sender.take() {
            // The starter may have given up already (another shard failed).
            let _ = sender.send(result);
        }
    }
}

impl Drop for Ready {
    fn drop(&mut self) {
        self.report(Err(StartError::Exited.to_string()));
    }
}

/// What every shard is given besides its own value.
pub struct ShardContext {
    /// Fires when the shards are told to shut down ([`Shutdown::signal`]).
    pub shutdown: flume::Receiver<()>,
    /// Report once started (or not); [`ShardPool::start`] waits for every shard's report.
    pub ready: Ready,
}

/// The shards of one process, before they start.
pub struct ShardPool {
    config: ShardsConfig,
    shutdown: Shutdown,
    shutdown_receiver: flume::Receiver<()>,
}

impl ShardPool {
    /// A pool for `config.shards` shards; nothing runs until [`ShardPool::start`].
    pub fn new(config: ShardsConfig) -> Self {
        let (sender, shutdown_receiver) = flume::unbounded();
        let shutdown = Shutdown { sender, shards: config.shards };
        ShardPool { config, shutdown, shutdown_receiver }
    }

    /// The signal that stops the shards; usable before they start (a signal sent early stops
    /// each shard as soon as it listens for it).
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Starts one executor per shard, each running `run` with one of `per_shard` (built on this
    /// thread, moved to the shard) and its [`ShardContext`], and returns once every shard has
    /// reported ready. If one reports a failure, every shard is told to shut down and joined,
    /// and the failure is returned.
    pub fn start<T, F, Fut>(self, per_shard: Vec<T>, run: F) -> Result<RunningShards, StartError>
    where
        T: Send + 'static,
        F: FnOnce(T, ShardContext) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let ShardPool { config, shutdown, shutdown_receiver } = self;
        if per_shard.len() != config.shards {
            return Err(StartError::Values { values: per_shard.len(), shards: config.shards });
        }
        raise_memlock();
        raise_open_files();
        let per_shard = Arc::new(Mutex::new(per_shard));
        // Every shard is woken from outside now and then (see `nudge.rs`: glommio can park a
        // shard that still has tasks to run).
        let (nudger, nudged) = Nudger::start(config.shards, NUDGE_INTERVAL);
        let nudged: Arc<Mutex<Vec<Nudged>>> = Arc::new(Mutex::new(nudged));
        let (ready_sender, ready_receiver) = flume::unbounded::<Result<(), String>>();
        let cpus = match &config.cpus {
            None => None,
            Some(list) => Some(
                CpuSet::online()
                    .map_err(|e| StartError::Pool(format!("reading the CPU topology: {e}")))?
                    .filter(|l| list.contains(&l.cpu)),
            ),
        };
        let handles = LocalExecutorPoolBuilder::new(PoolPlacement::MaxSpread(config.shards, cpus))
            .name(config.name)
            .spin_before_park(config.spin_before_park)
            .blocking_thread_pool_placement(PoolPlacement::Unbound(BLOCKING_THREADS_PER_SHARD))
            .on_all_shards(move || {
                let value = per_shard.lock().ok().and_then(|mut values| values.pop());
                let nudged = nudged.lock().ok().and_then(|mut nudged| nudged.pop());
                let context =
                    ShardContext { shutdown: shutdown_receiver.clone(), ready: Ready { sender: Some(ready_sender) } };
                async move {
                    if let Some(nudged) = nudged {
                        nudged.serve().await;
                    }
                    match value {
                        Some(value) => run(value, context).await,
                        None => context.ready.fail("no per-shard value left for this shard"),
                    }
                }
            })
            .map_err(|e| StartError::Pool(e.to_string()))?;
        let mut started = 0;
        while started < config.shards {
            match ready_receiver.recv() {
                Ok(Ok(())) => started += 1,
                Ok(Err(e)) => {
                    shutdown.signal();
                    let _ = handles.join_all();
                    nudger.stop();
                    return Err(StartError::Shard(e));
                }
                Err(_) => return Err(StartError::Exited),
            }
        }
        Ok(RunningShards { handles, nudger })
    }
}

/// Shards that all reported ready.
pub struct RunningShards {
    handles: PoolThreadHandles<()>,
    nudger: Nudger,
}

impl RunningShards {
    /// Waits for every shard to exit (after a [`Shutdown::signal`]), logging any that failed;
    /// then stops waking them.
    pub fn join(self) {
        for result in self.handles.join_all() {
            if let Err(e) = result {
                error!(error = ?e, "shard failed");
            }
        }
        self.nudger.stop();
    }
}

/// glommio locks I/O buffers in memory; raise the soft RLIMIT_MEMLOCK to the hard one.
/// Raises the soft limit on open descriptors to the hard one and logs both: every partition's
/// segments and every connection hold descriptors, and the soft limit (often 1024) is far below
/// what a broker with thousands of partitions needs.
fn raise_open_files() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    let raised = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        let wanted = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        limit.rlim_cur < limit.rlim_max && libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0
    };
    let soft = if raised { limit.rlim_max } else { limit.rlim_cur };
    info!(soft, hard = limit.rlim_max, raised, "open files limit");
}

fn raise_memlock() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit);
        }
    }
}
