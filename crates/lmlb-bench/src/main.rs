#![forbid(unsafe_code)]
#![allow(dead_code)]

mod des;
mod error;
mod histogram;
mod loadgen;
mod process;
mod progress;
mod rng;
mod timeline;
mod trace;
mod usage;

fn main() {}
