//! A single-threaded broadcast: tasks wait until a condition over shard-local state holds, and
//! whoever changes that state wakes them all to re-check. Used for "this append is acknowledged",
//! "the high watermark moved" (long-poll fetches) and "the flusher has work". Every waiter of one
//! notification is usually satisfied by it (a flush acknowledges everything it wrote), so waking
//! all wastes little.
//!
//! Each wait holds one slot, replaced when it is polled again and removed when it ends or is
//! dropped, so the waiters of a partition that never changes (long polls on an idle partition,
//! one after another) do not pile up between notifications.

use std::cell::{Cell, RefCell};
use std::task::{Poll, Waker};

#[derive(Default)]
pub(crate) struct Notify {
    next_id: Cell<u64>,
    /// Counts notifications: a waiter registered before the last one is no longer listed.
    generation: Cell<u64>,
    wakers: RefCell<Vec<(u64, Waker)>>,
}

impl Notify {
    /// Wakes every waiter.
    pub(crate) fn notify_all(&self) {
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        self.generation.set(self.generation.get().wrapping_add(1));
        for (_, waker) in wakers {
            waker.wake();
        }
    }

    /// Resolves once `ready()` returns true; `ready` must not hold borrows across calls.
    pub(crate) async fn wait_until(&self, mut ready: impl FnMut() -> bool) {
        let id = self.next_id.get();
        self.next_id.set(id.wrapping_add(1));
        let _slot = Slot { notify: self, id };
        // Whether this wait is among the wakers now: a first poll (and the first after a
        // notification emptied the list) pushes without searching, so many waiters cost no more
        // than before; only a spurious re-poll looks for its slot.
        let mut registered_at = None;
        std::future::poll_fn(|cx| {
            if ready() {
                return Poll::Ready(());
            }
            let generation = self.generation.get();
            let mut wakers = self.wakers.borrow_mut();
            let slot =
                (registered_at == Some(generation)).then(|| wakers.iter_mut().find(|(slot, _)| *slot == id)).flatten();
            match slot {
                Some((_, waker)) => waker.clone_from(cx.waker()),
                None => wakers.push((id, cx.waker().clone())),
            }
            registered_at = Some(generation);
            Poll::Pending
        })
        .await;
    }

    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.wakers.borrow().len()
    }
}

/// A wait's place among the wakers, given back when the wait ends or is dropped.
struct Slot<'a> {
    notify: &'a Notify,
    id: u64,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut wakers = self.notify.wakers.borrow_mut();
        if let Some(at) = wakers.iter().position(|(slot, _)| *slot == self.id) {
            wakers.swap_remove(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::Notify;

    #[test]
    fn waits_hold_one_slot_each_and_give_it_back() {
        let notify = Notify::default();
        let mut cx = Context::from_waker(Waker::noop());
        let ready = std::cell::Cell::new(false);
        {
            let mut wait = pin!(notify.wait_until(|| ready.get()));
            for _ in 0..10 {
                assert_eq!(wait.as_mut().poll(&mut cx), Poll::Pending);
            }
            assert_eq!(notify.waiting(), 1, "polled again, the wait keeps one slot");
        }
        assert_eq!(notify.waiting(), 0, "a dropped wait leaves nothing behind");
        let mut first = pin!(notify.wait_until(|| ready.get()));
        let mut second = pin!(notify.wait_until(|| ready.get()));
        assert!(first.as_mut().poll(&mut cx).is_pending());
        assert!(second.as_mut().poll(&mut cx).is_pending());
        assert_eq!(notify.waiting(), 2);
        ready.set(true);
        notify.notify_all();
        assert_eq!(notify.waiting(), 0);
        assert_eq!(first.as_mut().poll(&mut cx), Poll::Ready(()));
        assert_eq!(second.as_mut().poll(&mut cx), Poll::Ready(()));
    }
}
