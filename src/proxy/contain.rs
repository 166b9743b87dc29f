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

use super::respond::{write_error, RequestMeta};
use super::ShardCtx;
use crate::api::{ApiError, ErrorKind};
use crate::http::ServerConn;
use crate::wire::Endpoint;

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

/// Logs and records a request that panicked, and answers 500 if the client has nothing yet.
pub async fn answer_panic(ctx: &ShardCtx, conn: &mut ServerConn, panic: &Panic) {
    tracing::error!(
        shard = ctx.shard_id,
        panic = panic_message(panic),
        "a request panicked; its connection is closed, the shard serves on"
    );
    let meta = RequestMeta::new(ctx.shard_id);
    let err = ApiError::new(
        ErrorKind::Internal,
        "internal_error",
        "The gateway failed while serving this request; it was logged.",
    );
    let mut record = meta.record_for_error(Endpoint::ChatCompletions, &err, 0);
    if conn.response_started() {
        // Part of an answer may be out: a new status line would corrupt it.
        record.status = 500;
    } else {
        let _ = write_error(conn, &meta, &err, false).await;
    }
    record.error = Some("internal_panic".into());
    ctx.records.send(record);
}
