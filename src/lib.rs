//! gantry: build container images in CI pipelines without a Docker daemon.
//!
//! The binary in `main.rs` only parses arguments, runs a command and maps errors to exit codes;
//! everything it does lives in these modules so that it can be tested.

pub mod build;
pub mod ci;
pub mod cli;
pub mod context;
pub mod dockerfile;
pub mod env;
pub mod image;
pub mod interrupt;
pub mod layer;
pub mod manifest;
pub mod registry;
pub mod report;
pub mod rootfs;
pub mod settings;
