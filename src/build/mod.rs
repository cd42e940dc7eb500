//! The executor: turns a parsed Dockerfile into an image, stage by stage.
//!
//! Metadata instructions only change the config and history; COPY and ADD write a layer straight
//! from the context (or another stage) against the filesystem index of the stage's base; RUN
//! materialises the root filesystem on first need (`run`). Outputs (push, OCI layout, tarball,
//! digest files) are in `output`.

pub mod cache;
pub mod command;
mod copy;
mod executor;
mod instructions;
mod output;
mod run;
mod scope;
mod sources;
mod squash;
mod tree;
pub mod warm;

pub use executor::{Builder, BuiltImage, LayerRef, StageImage};
