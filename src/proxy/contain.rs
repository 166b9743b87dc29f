//! Containment: a panic while serving one request costs that connection, never the shard.
//!
//! monoio does not catch panics in tasks: one that escapes unwinds the shard's thread and
//! every connection on it. Each request's future is polled inside `catch_unwind`; a panic is
//! logged, answered with a 500 in the client's format when no byte of the response went out
//! yet, recorded, and the connection is closed (its state can't be trusted any more).

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

/// What a caught panic carried.
pub type Panic = Box<dyn Any + Send + 'static>;

/// Runs `request`, turning a panic inside it into `Err`.
pub async fn catch_panic<F: Future>(request: F) -> Result<F::Output, Panic> {
    // The future is dropped right after a panic and never polled again, and the state it
    // shared (the shard context) holds no invariant a half-run request could break.
    AssertUnwindSafe(request).catch_unwind().await
}

/// The panic's message, when it carried one.
pub fn panic_message(panic: &Panic) -> &str {
    if let Some(s) = panic.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.as_str()
    } else {
        "(no message)"
    }
}
