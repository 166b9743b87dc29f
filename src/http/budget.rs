//! A process-wide budget for request bodies held in memory.
//!
//! Every shard reads bodies whole before forwarding them; without a bound, many large bodies at
//! once grow the process until the kernel kills it. Each body reserves its bytes here before it
//! is read (all of a `Content-Length` at once, a chunked body as it grows) and gives them back
//! when the request ends; a body that does not fit is refused with 503 and `retry-after`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The bytes of request bodies that may be in memory at once, shared by every shard.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limit: usize,
    used: AtomicUsize,
}

impl BodyBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                limit,
                used: AtomicUsize::new(0),
            }),
        }
    }

    /// Bytes reserved right now.
    pub fn in_use(&self) -> usize {
        self.inner.used.load(Ordering::Relaxed)
    }

    /// An empty permit that grows with [`BodyPermit::grow`].
    pub fn permit(&self) -> BodyPermit {
        BodyPermit {
            budget: self.clone(),
            held: 0,
        }
    }

    fn try_take(&self, n: usize) -> bool {
        let used = &self.inner.used;
        let mut now = used.load(Ordering::Relaxed);
        loop {
            let Some(next) = now.checked_add(n).filter(|&t| t <= self.inner.limit) else {
                return false;
            };
            match used.compare_exchange_weak(now, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(seen) => now = seen,
            }
        }
    }
}

/// Bytes reserved for one request's body; given back when dropped.
#[derive(Debug)]
pub struct BodyPermit {
    budget: BodyBudget,
    held: usize,
}

impl BodyPermit {
    /// Reserves `n` more bytes; false (and nothing reserved) when the budget has no room.
    pub fn grow(&mut self, n: usize) -> bool {
        if n == 0 {
            return true;
        }
        let ok = self.budget.try_take(n);
        if ok {
            self.held += n;
        }
        ok
    }

    /// Bytes this permit holds.
    pub fn held(&self) -> usize {
        self.held
    }
}

impl Drop for BodyPermit {
    fn drop(&mut self) {
        if self.held > 0 {
            self.budget
                .inner
                .used
                .fetch_sub(self.held, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_reserve_and_give_back() {
        let budget = BodyBudget::new(100);
        let mut a = budget.permit();
        assert!(a.grow(60));
        let mut b = budget.permit();
        assert!(!b.grow(50), "over the limit");
        assert!(b.grow(40));
        assert_eq!(budget.in_use(), 100);
        drop(a);
        assert_eq!(budget.in_use(), 40);
        assert!(b.grow(60));
        drop(b);
        assert_eq!(budget.in_use(), 0);
    }
}
