//! A thread outside the executors that wakes each of them periodically, so that an executor
//! glommio parked while it still had tasks to run goes back to them within one interval.
//!
//! Why: glommio 0.9.0's run loop arms its preemption timer while polling the rings and then runs
//! the task queues, unless that timer has already fired. When it has (the executor's thread was
//! off the CPU for the timer's 100 ms between the two steps, as happens on a loaded machine),
//! the loop takes "preempted before running anything" for "nothing to run" and sleeps in
//! `io_uring_enter` with runnable tasks, and nothing inside the executor wakes it again: its own
//! timers belong to the stalled tasks, so none is armed. A broker stopped that way for good with
//! both shards asleep and no CPU used. (glommio's maintained fork fixed its run loop; no crates.io
//! release has it.) A wake from another thread writes the sleeping executor's eventfd: its loop
//! goes round once more and runs the stalled queues.
//!
//! Lifecycle: [`Nudger::start`] spawns the thread and gives one [`Nudged`] per executor; each
//! executor runs its `Nudged::serve` as a detached task for its whole life; [`Nudger::stop`] (or
//! dropping the `Nudger`) ends the thread within one interval.
//!
//! Cores: the thread only ever touches a waker under its slot's lock, and wakes it by
//! reference; a waker of an executor that has exited may still be woken (glommio then queues it
//! to nobody), never used after it is freed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often every executor is woken from outside: the longest a stall like the one above lasts.
/// An idle shard already wakes about this often for its own timers.
pub const NUDGE_INTERVAL: Duration = Duration::from_millis(100);

/// The waker of one executor's [`Nudged::serve`] task, as last polled.
type Slot = Arc<Mutex<Option<Waker>>>;

/// The thread that wakes the executors. Stops on [`Nudger::stop`] or drop.
pub struct Nudger {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// One executor's end: run [`Nudged::serve`] on it.
pub struct Nudged {
    slot: Slot,
}

impl Nudger {
    /// Starts the thread for `executors` executors, waking each every `interval`; gives one
    /// [`Nudged`] per executor.
    pub fn start(executors: usize, interval: Duration) -> (Nudger, Vec<Nudged>) {
        let slots: Vec<Slot> = (0..executors).map(|_| Arc::new(Mutex::new(None))).collect();
        let nudged = slots.iter().map(|slot| Nudged { slot: slot.clone() }).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sluice-nudger".into())
            .spawn(move || {
                while !stopping.load(Ordering::Acquire) {
                    std::thread::sleep(interval);
                    for slot in &slots {
                        // A poisoned lock only means a shard panicked while storing its waker.
                        let waker = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                        if let Some(waker) = waker.as_ref() {
                            waker.wake_by_ref();
                        }
                    }
                }
            })
            .ok();
        (Nudger { stop, thread }, nudged)
    }

    /// Ends the thread (within one interval) and waits for it.
    pub fn stop(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Nudger {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

impl Nudged {
    /// Starts the nudges of the executor this runs on: hands the thread the calling task's waker
    /// at once (so a stall right after this is already covered), then spawns a detached task
    /// that keeps handing it its own current waker for the executor's life.
    pub async fn serve(self) {
        let slot = self.slot.clone();
        std::future::poll_fn(move |cx| {
            store(&slot, cx.waker());
            Poll::Ready(())
        })
        .await;
        glommio::spawn_local(std::future::poll_fn(move |cx| {
            store(&self.slot, cx.waker());
            Poll::<()>::Pending
        }))
        .detach();
    }
}

/// Puts `waker` in `slot` unless it holds one that wakes the same task.
fn store(slot: &Slot, waker: &Waker) {
    let mut stored = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if !stored.as_ref().is_some_and(|w| w.will_wake(waker)) {
        *stored = Some(waker.clone());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Instant;

    use super::*;

    /// The preemption timer at 20 µs makes a glommio 0.9.0 executor find it fired before running
    /// its queues now and then, and park with runnable tasks: without the nudges this executor
    /// stops for good within a few thousand yields (seen at 1638 of 20000); with them all finish.
    /// An executor that parks before its first task has run has no waker to nudge yet (at
    /// 100 ms, a broker shard's stall there needs its thread off the CPU for 100 ms at start):
    /// that attempt is left behind, asleep, and a new one made.
    #[test]
    fn nudges_wake_an_executor_parked_with_runnable_tasks() {
        const YIELDS: usize = 20_000;
        const ATTEMPTS: usize = 5;
        for _ in 0..ATTEMPTS {
            let (nudger, mut nudged) = Nudger::start(1, Duration::from_millis(1));
            let nudged = nudged.pop().expect("one Nudged");
            let progress = Arc::new(AtomicUsize::new(0));
            let seen = progress.clone();
            std::thread::spawn(move || {
                let executor = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
                    .preempt_timer(Duration::from_micros(20))
                    .make()
                    .expect("executor");
                executor.run(async move {
                    nudged.serve().await;
                    for done in 1..=YIELDS {
                        futures_lite::future::yield_now().await;
                        seen.store(done, Ordering::Release);
                    }
                });
            });
            let started = Instant::now();
            while progress.load(Ordering::Acquire) == 0 && started.elapsed() < Duration::from_secs(2) {
                std::thread::sleep(Duration::from_millis(1));
            }
            if progress.load(Ordering::Acquire) == 0 {
                // Parked before its first task ran: nothing to nudge. Its thread stays asleep.
                nudger.stop();
                continue;
            }
            while progress.load(Ordering::Acquire) < YIELDS && started.elapsed() < Duration::from_secs(60) {
                std::thread::sleep(Duration::from_millis(1));
            }
            nudger.stop();
            assert_eq!(progress.load(Ordering::Acquire), YIELDS, "the executor stayed parked");
            return;
        }
        panic!("no executor ran its first task in {ATTEMPTS} attempts");
    }
}
