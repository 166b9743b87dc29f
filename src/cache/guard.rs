//! Semantic guard (work in progress).

/// Default cosine threshold.
pub const DEFAULT_THRESHOLD: f32 = 0.8;
