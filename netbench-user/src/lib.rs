//! netbench: where does container network latency go?
//!
//! The library behind the `netbench` binary; one module per concern.

pub mod agent;
pub mod analysis;
pub mod bench;
pub mod block;
pub mod correlate;
pub mod docker;
pub mod doctor;
pub mod elf;
pub mod error;
pub mod exit;
pub mod experiment;
pub mod lab;
pub mod ledger;
pub mod netlink;
pub mod netns;
pub mod observer;
pub mod out;
pub mod path;
pub mod plot;
pub mod reclaim;
pub mod results;
pub mod runqueue;
pub mod stages;
pub mod stats;
pub mod stress;
pub mod table;
pub mod trace;
