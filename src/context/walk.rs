//! Listing a context directory with `lstat` metadata, honouring `.dockerignore`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{join, ContextError, DockerIgnore};

/// What a context path is (from `lstat`; symlinks are not followed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileKind {
    Dir,
    File,
    /// A symbolic link and its target as stored.
    Symlink(String),
    /// A socket, FIFO or device node; COPY decides what to do with it.
    Other,
}

/// The metadata COPY needs about one context path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    pub kind: FileKind,
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// Seconds since the epoch.
    pub mtime: i64,
}

impl FileInfo {
    pub(super) fn from_metadata(md: &std::fs::Metadata, link: Option<String>) -> Self {
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            FileKind::Dir
        } else if ft.is_file() {
            FileKind::File
        } else if ft.is_symlink() {
            FileKind::Symlink(link.unwrap_or_default())
        } else {
            FileKind::Other
        };
        FileInfo {
            kind,
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            size: if ft.is_file() { md.len() } else { 0 },
            mtime: md.mtime(),
        }
    }
}

/// One path found by [`super::BuildContext::walk`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextEntry {
    /// Relative to the walked directory, slash-separated.
    pub rel: String,
    pub abs: PathBuf,
    pub kind: FileKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
}

/// Appends the entries under `abs` to `out`. `ctx_rel` is `abs` relative to the context root (for
/// ignore matching), `prefix` relative to the walk's starting directory (for the output).
pub(super) fn walk_dir(
    ignore: &DockerIgnore,
    abs: &Path,
    ctx_rel: &str,
    prefix: &str,
    out: &mut Vec<ContextEntry>,
) -> Result<(), ContextError> {
    let io_err = |path: &Path, source| ContextError::Io {
        path: path.to_path_buf(),
        source,
    };
    let entries = std::fs::read_dir(abs).map_err(|e| io_err(abs, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_err(abs, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let path = entry.path();
        let md = match std::fs::symlink_metadata(&path) {
            Ok(md) => md,
            // Removed while we walked: it is simply not part of the context.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(&path, e)),
        };
        let full = join(ctx_rel, &name);
        let rel = join(prefix, &name);
        let link = if md.file_type().is_symlink() {
            let target = std::fs::read_link(&path).map_err(|e| io_err(&path, e))?;
            Some(target.to_string_lossy().into_owned())
        } else {
            None
        };
        let info = FileInfo::from_metadata(&md, link);
        let is_dir = info.kind == FileKind::Dir;
        let make = |info: FileInfo| ContextEntry {
            rel: rel.clone(),
            abs: path.clone(),
            kind: info.kind,
            mode: info.mode,
            uid: info.uid,
            gid: info.gid,
            size: info.size,
            mtime: info.mtime,
        };
        if !ignore.matches(&full) {
            out.push(make(info));
            if is_dir {
                walk_dir(ignore, &path, &full, &rel, out)?;
            }
        } else if is_dir && ignore.has_exceptions() && ignore.may_include_below(&full) {
            let mut below = Vec::new();
            walk_dir(ignore, &path, &full, &rel, &mut below)?;
            if !below.is_empty() {
                out.push(make(info));
                out.append(&mut below);
            }
        }
    }
    Ok(())
}
