//! A single-threaded broadcast: tasks wait until a condition over shard-local state holds, and
//! whoever changes that state wakes them all to re-check. Used for "this append is acknowledged"
//! and "the flusher has work". Every waiter of one notification is usually satisfied by it (a
//! flush acknowledges everything it wrote), so waking all wastes little.

use std::cell::RefCell;
use std::task::{Poll, Waker};

#[derive(Default)]
pub(crate) struct Notify {
    wakers: RefCell<Vec<Waker>>,
}

impl Notify {
    /// Wakes every waiter.
    pub(crate) fn notify_all(&self) {
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        for waker in wakers {
            waker.wake();
        }
    }

    /// Resolves once `ready()` returns true; `ready` must not hold borrows across calls.
    pub(crate) async fn wait_until(&self, mut ready: impl FnMut() -> bool) {
        std::future::poll_fn(|cx| {
            if ready() {
                Poll::Ready(())
            } else {
                self.wakers.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
    }
}
