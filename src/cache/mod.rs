//! Response caches: exact (request hash) and semantic (embedding similarity plus a guard).

pub mod exact;
pub mod guard;
pub mod key;
pub mod semantic;
