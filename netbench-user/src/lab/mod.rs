//! Network topologies netbench builds itself, without Docker: namespaces, veths,
//! bridges and taps created through netlink and torn down on drop.
pub mod run;
pub mod topology;

pub use topology::{Endpoint, LabTopology};
