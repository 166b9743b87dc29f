//! Response caches: exact (request hash) and semantic (embedding similarity plus a guard).

pub mod exact;
pub mod key;
