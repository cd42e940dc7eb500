//! Multi-architecture indexes: what manifest-tool did, inside gantry.
//!
//! `gantry manifest push from-args|from-spec` turns manifest-tool's flags or YAML into one list of
//! source images ([`spec`]), resolves every source against its registry, flattens sources that are
//! themselves indexes, checks platforms, serialises the index byte for byte as manifest-tool does
//! and pushes it ([`push`]); `gantry manifest inspect` shows what a reference points at
//! ([`inspect`]). [`command`] is the glue from parsed flags to those steps.
//!
//! Beyond manifest-tool, sources may live in another repository or registry than the target: their
//! manifests and blobs are brought over (mounted where the registry allows, copied otherwise)
//! before any tag moves, and every validation runs before the first write.

pub mod command;
mod error;
pub mod index;
pub mod inspect;
pub mod push;
pub mod spec;

pub use error::ManifestError;
pub use index::IndexKind;
pub use push::{ResolvedEntry, ResolvedIndex};
pub use spec::{IndexSpec, SourceEntry, SpecPlatform};
