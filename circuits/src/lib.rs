//! zkid's circuits.
#![allow(missing_docs)]
pub mod poseidon;
