//! Network topologies netbench builds itself, without Docker: namespaces, veths,
//! bridges and taps created through netlink and torn down on drop.
pub mod run;
pub mod tap;
pub mod topology;
pub mod vmm;

pub use topology::{Endpoint, LabPath, LabTopology};
