//! GPU benchmarks (filled in below).
fn main() {}
