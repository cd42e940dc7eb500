//! Root filesystems of images: the filesystem index that COPY, ADD, WORKDIR and `--chown` work
//! against without extracting anything, and the extraction of selected paths from layers.
//!
//! DESIGN.md decision 1: nothing is extracted that no command needs. The index is built by
//! streaming each layer once; small files that the build reads (`/etc/passwd`, `/etc/group`) are
//! kept in memory.

pub mod extract;
pub mod index;
pub mod privileged;
pub mod sandbox;
pub mod snapshot;
pub mod unpack;

pub use index::{FsIndex, Node, NodeKind};
