//! The round trip of one request over the shard mesh: `ShardMesh::call` from a shard pinned to
//! core 0 to a shard pinned to core 1, whose handler answers at once (`u64` in, `u64 + 1` out),
//! the answer coming back on a oneshot channel. This is the fixed cost of every request a shard
//! forwards to the partition's owner. Two ways:
//!
//! - `sequential`: one call at a time; time per iteration is the round-trip latency.
//! - `in_flight_64`: 64 tasks on shard 0 each calling in a loop; criterion prints calls/s.
//!
//! Each with the executors parking when idle (`park`, the broker's default `--spin-before-park-us
//! 0`: every wake-up across cores goes through the kernel) and spinning for 50 µs first
//! (`spin_50us`). Criterion prints calls/s (`Throughput::Elements`, one call per iteration).
//!
//! Criterion's loop runs on the main thread, which hands each sample to shard 0 over a channel
//! ("run N calls") and gets back the time shard 0 measured (`iter_custom`). The mesh handles
//! come from `shard::mesh_handles` on the main thread, as the broker's do: glommio 0.9's
//! `MeshBuilder` counts its references with an `Rc` behind an `unsafe impl Send`, and clones or
//! drops on two executor threads at once corrupt the heap.
//!
//! Needs two CPUs (0 and 1). Run: `cargo bench --bench cross_shard` (about 40 s after the build).

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};
use sluice::shard::{Handler, Mesh, ShardMesh, mesh_handles};

/// Calls in flight at once in the throughput case.
const IN_FLIGHT: usize = 64;
/// The cores the two shards are pinned to.
const CALLER_CPU: usize = 0;
const SERVER_CPU: usize = 1;

type Request = u64;
type Response = u64;

fn fail(what: &str, err: impl std::fmt::Display) -> ! {
    eprintln!("cross_shard: {what}: {err}");
    std::process::exit(1)
}

/// What the main thread asks shard 0 to do; the answer is the time it took.
#[derive(Debug, Clone, Copy)]
enum Command {
    Sequential(u64),
    InFlight(u64),
}

/// Two shards joined in a mesh, shard 0 waiting for commands.
struct Pair {
    commands: flume::Sender<Command>,
    elapsed: flume::Receiver<Duration>,
    stop_server: flume::Sender<()>,
    caller: ExecutorJoinHandle<()>,
    server: ExecutorJoinHandle<()>,
}

fn handler() -> Handler<Request, Response> {
    Rc::new(|request: Request| Box::pin(async move { request.wrapping_add(1) }))
}

async fn join(mesh: Mesh<Request, Response>) -> Rc<ShardMesh<Request, Response>> {
    match ShardMesh::join(mesh, handler()).await {
        Ok(mesh) => mesh,
        Err(e) => fail("joining the mesh", e),
    }
}

async fn call(mesh: &ShardMesh<Request, Response>, to: usize, request: Request) {
    match mesh.call(to, request).await {
        Ok(response) if response == request.wrapping_add(1) => {}
        Ok(response) => fail("call", format!("answer {response} to {request}")),
        Err(e) => fail("call", e),
    }
}

/// `calls` calls, one after the other.
async fn sequential(mesh: &ShardMesh<Request, Response>, to: usize, calls: u64) -> Duration {
    let started = Instant::now();
    for request in 0..calls {
        call(mesh, to, request).await;
    }
    started.elapsed()
}

/// `calls` calls from [`IN_FLIGHT`] tasks, each making its next call when its last returns.
async fn in_flight(mesh: &Rc<ShardMesh<Request, Response>>, to: usize, calls: u64) -> Duration {
    let started = Instant::now();
    let issued = Rc::new(Cell::new(0u64));
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (mesh, issued) = (mesh.clone(), issued.clone());
            glommio::spawn_local(async move {
                while issued.get() < calls {
                    let request = issued.get();
                    issued.set(request + 1);
                    call(&mesh, to, request).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await;
    }
    started.elapsed()
}

fn start(spin: Duration) -> Pair {
    // Every handle to the mesh is made here, on the main thread (see the module docs).
    let mut meshes = mesh_handles::<Request, Response>(2).into_iter();
    let (Some(caller_mesh), Some(server_mesh)) = (meshes.next(), meshes.next()) else {
        fail("building the mesh", "fewer than two handles")
    };

    let (stop_server, stopped) = flume::bounded::<()>(1);
    let server = LocalExecutorBuilder::new(Placement::Fixed(SERVER_CPU))
        .name("bench-shard-1")
        .spin_before_park(spin)
        .spawn(move || async move {
            let _mesh = join(server_mesh).await;
            let _ = stopped.recv_async().await;
        });
    let server = match server {
        Ok(handle) => handle,
        Err(e) => fail(&format!("starting the shard on CPU {SERVER_CPU}"), e),
    };

    let (commands, received) = flume::unbounded::<Command>();
    let (report, elapsed) = flume::unbounded::<Duration>();
    let caller = LocalExecutorBuilder::new(Placement::Fixed(CALLER_CPU))
        .name("bench-shard-0")
        .spin_before_park(spin)
        .spawn(move || async move {
            let mesh = join(caller_mesh).await;
            let to = 1 - mesh.id();
            while let Ok(command) = received.recv_async().await {
                let took = match command {
                    Command::Sequential(calls) => sequential(&mesh, to, calls).await,
                    Command::InFlight(calls) => in_flight(&mesh, to, calls).await,
                };
                if report.send(took).is_err() {
                    break;
                }
            }
        });
    let caller = match caller {
        Ok(handle) => handle,
        Err(e) => fail(&format!("starting the shard on CPU {CALLER_CPU}"), e),
    };
    Pair { commands, elapsed, stop_server, caller, server }
}

impl Pair {
    fn run(&self, command: Command) -> Duration {
        if self.commands.send(command).is_err() {
            fail("sending a command", "shard 0 is gone");
        }
        match self.elapsed.recv() {
            Ok(elapsed) => elapsed,
            Err(e) => fail("waiting for shard 0", e),
        }
    }

    fn stop(self) {
        let Pair { commands, elapsed, stop_server, caller, server } = self;
        drop(commands);
        if let Err(e) = caller.join() {
            fail("shard 0", e);
        }
        drop(elapsed);
        let _ = stop_server.send(());
        if let Err(e) = server.join() {
            fail("shard 1", e);
        }
    }
}

fn cross_shard(c: &mut Criterion) {
    for (name, spin) in [("park", Duration::ZERO), ("spin_50us", Duration::from_micros(50))] {
        let pair = start(spin);
        let mut group = c.benchmark_group(format!("cross_shard/{name}"));
        group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("call", "sequential"), |b| {
            b.iter_custom(|iters| pair.run(Command::Sequential(iters)))
        });
        group.bench_function(BenchmarkId::new("call", format!("in_flight_{IN_FLIGHT}")), |b| {
            b.iter_custom(|iters| pair.run(Command::InFlight(iters)))
        });
        group.finish();
        pair.stop();
    }
}

criterion_group!(benches, cross_shard);
criterion_main!(benches);
