//! Handing memory back to the OS after a large request.
//!
//! mimalloc keeps freed pages of a thread's heap for reuse and purges them lazily, when that
//! thread allocates again later. A shard that served a 16 MiB body and then sits idle would
//! hold tens of megabytes it no longer uses. After a request whose body was large, the shard
//! asks its heap to purge now; small requests never pay for this.

/// Purges the calling thread's freed heap pages (a no-op for memory still in use).
pub fn release_freed_memory() {
    // SAFETY: mi_collect only walks the calling thread's mimalloc heap; it is safe to call
    // at any time, also when mimalloc is not the global allocator (it then has little to do).
    unsafe { libmimalloc_sys::mi_collect(true) }
}
