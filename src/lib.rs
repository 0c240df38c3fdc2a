//! dkim-setup: sets up DKIM signing for Postfix with OpenDKIM, and keeps it healthy.
//!
//! The crate is a library with a thin binary (`src/main.rs`). A run computes a
//! [`plan::Plan`] first, without touching the machine, then shows or applies it.

pub mod edit;
