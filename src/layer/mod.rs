//! Layer blobs: the tar → gzip → sha256 → spool-file pipeline every COPY, ADD and RUN ends in,
//! and the reader that streams a base image's layers once to index them.
//!
//! A layer is described as a list of [`LayerEntry`] values (the caller lists parent directories
//! itself; nothing is invented) and written by [`write_layer`] in sorted path order with headers
//! pinned byte for byte (see `header`), so the same entries always produce the same digest. The
//! layer is never held whole in memory: file contents are read while the tar is produced, and the
//! tar, the compressor and the hash-and-write stage run on their own threads so they overlap.

mod gzip;
mod header;
mod read;
mod write;

use std::path::PathBuf;

pub use read::{for_each_entry, ReadEntry, ReadKind};
pub use write::{write_layer, write_layer_as, write_layer_with_progress, Compression, GZIP_LEVEL};

/// About how many bytes the uncompressed tar of `entries` has: a header block per entry, file
/// data padded to whole blocks, two end-of-archive blocks (PAX records for long names and
/// xattrs are not counted). The total for a progress bar over [`write_layer_with_progress`].
pub fn estimated_tar_size(entries: &[LayerEntry]) -> u64 {
    const BLOCK: u64 = 512;
    let data: u64 = entries
        .iter()
        .map(|e| match &e.kind {
            EntryKind::File { size, .. } => size.div_ceil(BLOCK) * BLOCK,
            _ => 0,
        })
        .sum();
    data + BLOCK * (entries.len() as u64 + 2)
}

/// Ownership, permissions, time and extended attributes of one layer entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EntryMeta {
    /// Permission bits including setuid, setgid and sticky (`0o7777`); type bits are ignored.
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Seconds since the epoch.
    pub mtime: i64,
    /// Extended attributes, written as PAX `SCHILY.xattr.<name>` records (sorted by name).
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// Where a regular file's bytes come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntrySource {
    /// A file read while the layer is written; it must still be `size` bytes long by then.
    Path(PathBuf),
    /// Bytes already in memory (generated files, heredocs, small files from an index).
    Bytes(Vec<u8>),
}

/// What one layer entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File {
        source: EntrySource,
        size: u64,
    },
    /// A symbolic link to the given target, written as is.
    Symlink(String),
    /// A hard link to another path in the same layer (absolute-style, like [`LayerEntry::path`]).
    Hardlink(String),
    /// A deleted path, written as `.wh.<name>` next to it.
    Whiteout,
    /// A directory whose lower-layer contents are hidden, written as `<dir>/.wh..wh..opq`.
    OpaqueDir,
    /// A named pipe (a RUN's `mkfifo`), kept as Docker and buildah keep it.
    Fifo,
}

/// One entry of a layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerEntry {
    /// Absolute-style path in the image (`/usr/bin/app`), written as `usr/bin/app`.
    pub path: String,
    pub kind: EntryKind,
    pub meta: EntryMeta,
}

/// How a layer is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerOptions {
    /// Which family of media types the blob is labelled with.
    pub media_types: crate::image::MediaTypes,
    /// `--reproducible`: every entry's mtime is replaced with this value (0 = the epoch).
    pub mtime_clamp: Option<i64>,
}

/// A finished layer blob in the blob directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerBlob {
    /// `sha256:<hex>` of the blob's bytes (compressed, unless written uncompressed, when it
    /// equals `diff_id`): the blob's name and manifest digest.
    pub digest: String,
    /// `sha256:<hex>` of the uncompressed tar: the config's `rootfs.diff_ids` entry.
    pub diff_id: String,
    /// Size of the blob in bytes.
    pub size: u64,
    /// `<blob_dir>/<hex of digest>`.
    pub path: PathBuf,
    pub media_type: String,
}

impl LayerBlob {
    /// The manifest descriptor for this blob.
    pub fn descriptor(&self) -> crate::image::Descriptor {
        crate::image::Descriptor::new(self.media_type.clone(), self.digest.clone(), self.size)
    }
}

/// Why a layer could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("cannot write layer blob in `{}`: {source}\nhint: check that the directory exists, is writable and has free space", dir.display())]
    BlobDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read `{}` to add it to a layer: {source}", path.display())]
    ReadSource {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` changed size while it was added to a layer (expected {expected} bytes, found {found})\nhint: make sure nothing writes to the build context or root filesystem during the build", path.display())]
    SizeChanged {
        path: PathBuf,
        expected: u64,
        /// What was observed: a byte count, or "more" when the file kept growing.
        found: String,
    },
    #[error("layer entry `{path}` is not a valid path: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("layer entry `{path}` is listed twice\nhint: each path may appear once in a layer")]
    DuplicatePath { path: String },
    #[error("file `{path}` in a layer has {actual} bytes in memory but its entry says {declared}")]
    BytesSizeMismatch {
        path: String,
        declared: u64,
        actual: u64,
    },
    #[error("cannot read layer blob `{}`: {source}\nhint: the blob may be truncated or corrupt; remove it from the cache and pull again", path.display())]
    ReadBlob {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("layer media type `{media_type}` is not supported\nhint: gantry reads plain tar and gzip layers (zstd layers are not supported yet)")]
    UnsupportedMediaType { media_type: String },
    #[error("compressing a layer failed: {message}")]
    Compress { message: String },
    #[error("the layer writer stopped unexpectedly (a worker thread panicked)")]
    WorkerPanicked,
    /// A pipeline stage stopped because another one failed; never returned when the other
    /// stage's error is known.
    #[error("the layer writer stopped because another stage failed")]
    Interrupted,
}

#[cfg(test)]
mod tests;
