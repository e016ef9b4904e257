//! Benchmarks as library code (the CLI only parses and prints).

pub mod video;
