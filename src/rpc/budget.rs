//! The server's budget of request-body bytes held at once, across all its
//! connections, and giving memory back to the OS once a burst has drained.
//!
//! Each connection's body is bounded by the body limit, but a thousand
//! connections each holding most of one held a gigabyte. The budget makes
//! the sum bounded: a body takes its bytes from the budget before it is
//! read (its `Content-Length`) or as it grows (chunked), and a body that
//! cannot get them within a short wait is refused (503, `Retry-After`).
//! Small bodies, which arrive with their head and which each connection's
//! read buffer holds anyway, are free.
//!
//! glibc keeps freed memory for reuse, so after such a burst the process
//! stayed at its peak. When the bytes in use fall back from a high mark, the
//! budget asks the allocator to return its free pages (`malloc_trim`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::connections::Conn;

/// Bodies up to this size take nothing from the budget: they come in with
/// their head, and every connection's read buffer holds as much anyway.
pub const FREE_BODY_BYTES: usize = 16 * 1024;
/// The budget counts in units of this many bytes.
const UNIT_BYTES: usize = 1024;
/// Bytes in use above which a later drain returns memory to the OS.
const TRIM_HIGH_BYTES: usize = 8 << 20;
/// Bytes in use at or below which a drain counts as complete.
const TRIM_LOW_BYTES: usize = 1 << 20;

/// No budget could be had within the wait.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("no body budget within {0:?}")]
pub(crate) struct Exhausted(pub(crate) Duration);

/// The budget of one server. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct BodyBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    units: Arc<Semaphore>,
    total_units: usize,
    /// How long a body may wait for budget before it is refused.
    wait: Duration,
    /// Use went past the high mark since the last trim.
    trim_armed: AtomicBool,
}

fn units(bytes: usize) -> usize {
    if bytes <= FREE_BODY_BYTES {
        0
    } else {
        bytes.div_ceil(UNIT_BYTES)
    }
}

impl BodyBudget {
    /// A budget of `total_bytes` (rounded up to whole KiB), for which a body
    /// waits at most `wait`.
    pub(crate) fn new(total_bytes: usize, wait: Duration) -> BodyBudget {
        let total_units = total_bytes
            .div_ceil(UNIT_BYTES)
            .clamp(1, Semaphore::MAX_PERMITS);
        BodyBudget {
            inner: Arc::new(Inner {
                units: Arc::new(Semaphore::new(total_units)),
                total_units,
                wait,
                trim_armed: AtomicBool::new(false),
            }),
        }
    }

    /// Bytes taken now, in whole units.
    pub(crate) fn in_use_bytes(&self) -> usize {
        let free = self.inner.units.available_permits();
        self.inner.total_units.saturating_sub(free) * UNIT_BYTES
    }

    /// An empty reservation, to [`Reservation::grow`], for a request on
    /// `conn` (marked stalled while it waits for budget; none in tests).
    pub(crate) fn reservation(&self, conn: Option<Conn>) -> Reservation {
        Reservation {
            budget: self.clone(),
            permit: None,
            conn,
        }
    }
}

/// The budget one body holds. Returned to the budget when dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    budget: BodyBudget,
    permit: Option<OwnedSemaphorePermit>,
    /// The connection the body comes on.
    conn: Option<Conn>,
}

impl Reservation {
    /// Makes the reservation cover `bytes` in all, waiting for the
    /// difference at most the budget's wait.
    ///
    /// # Errors
    /// [`Exhausted`] when the difference did not come in time (or is more
    /// than the whole budget).
    pub(crate) async fn grow(&mut self, bytes: usize) -> Result<(), Exhausted> {
        let inner = &self.budget.inner;
        let held = self.permit.as_ref().map_or(0, |p| p.num_permits());
        let wanted = units(bytes);
        if wanted <= held {
            return Ok(());
        }
        let exhausted = Exhausted(inner.wait);
        let more = u32::try_from(wanted - held).map_err(|_| exhausted)?;
        if more as usize > inner.total_units {
            return Err(exhausted);
        }
        let permit = match inner.units.clone().try_acquire_many_owned(more) {
            Ok(permit) => permit,
            Err(_) => {
                let _stalled = self.conn.as_ref().map(Conn::stalled);
                tokio::time::timeout(inner.wait, inner.units.clone().acquire_many_owned(more))
                    .await
                    .map_err(|_| exhausted)?
                    .map_err(|_| exhausted)?
            }
        };
        match &mut self.permit {
            Some(held) => held.merge(permit),
            None => self.permit = Some(permit),
        }
        if self.budget.in_use_bytes() > TRIM_HIGH_BYTES {
            inner.trim_armed.store(true, Ordering::Relaxed);
        }
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        drop(permit);
        let budget = &self.budget;
        if budget.in_use_bytes() <= TRIM_LOW_BYTES
            && budget.inner.trim_armed.swap(false, Ordering::Relaxed)
        {
            release_free_memory();
        }
    }
}

/// Asks the allocator to give its free pages back to the OS, off the
/// async threads (it can take milliseconds on a large heap). Nothing to do
/// where the allocator is not glibc's.
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        fn trim() {
            // SAFETY: malloc_trim only walks the allocator's own free lists;
            // it takes no pointers and is thread-safe.
            unsafe {
                libc::malloc_trim(0);
            }
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(trim);
            }
            Err(_) => trim(),
        }
        tracing::debug!("returned free memory to the OS after a burst of bodies");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn small_bodies_are_free_and_large_ones_wait_then_give_up() {
        let budget = BodyBudget::new(64 * 1024, Duration::from_millis(50));
        let mut small = budget.reservation(None);
        small.grow(FREE_BODY_BYTES).await.unwrap();
        assert_eq!(budget.in_use_bytes(), 0);
        let mut a = budget.reservation(None);
        a.grow(40 * 1024).await.unwrap();
        a.grow(30 * 1024).await.unwrap(); // already covered
        assert_eq!(budget.in_use_bytes(), 40 * 1024);
        let mut b = budget.reservation(None);
        assert!(b.grow(30 * 1024).await.is_err(), "only 24 KiB are left");
        assert_eq!(
            budget.in_use_bytes(),
            40 * 1024,
            "a failed grow takes nothing"
        );
        drop(a);
        b.grow(30 * 1024).await.unwrap();
        assert!(
            budget.reservation(None).grow(1 << 20).await.is_err(),
            "more than the whole budget"
        );
    }

    #[tokio::test]
    async fn a_waiting_body_gets_budget_when_another_is_done() {
        let budget = BodyBudget::new(64 * 1024, Duration::from_secs(10));
        let mut a = budget.reservation(None);
        a.grow(64 * 1024).await.unwrap();
        let waiter = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reservation(None).grow(20 * 1024).await.is_ok() }
        });
        tokio::task::yield_now().await;
        drop(a);
        assert!(waiter.await.unwrap());
    }
}
