//! Snapshots: what a RUN changed, as layer entries for `crate::layer::write_layer`
//! (DESIGN.md decision 3: a snapshot costs what changed, not the size of the filesystem).
//!
//! With overlayfs the RUN wrote into a fresh upper directory, and that directory *is* the diff:
//! [`diff_upper`] walks only it, turning overlay whiteouts (0/0 character devices) and opaque
//! markers (`trusted.overlay.opaque=y`, or `user.overlay.opaque` on `userxattr` mounts) into OCI
//! ones. Overlay must be mounted with `redirect_dir=off` and `metacopy=off` so that every upper
//! entry is complete.
//!
//! Without overlay, [`scan`] records the tree's metadata before and after the RUN with a parallel
//! walk and [`diff_trees`] compares the two, with kaniko's `--snapshot-mode` meanings.

use std::collections::HashMap;
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::layer::{EntryKind, EntryMeta, EntrySource, LayerEntry};

/// Why a snapshot could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot read `{}` while taking a snapshot: {source}\nhint: make sure nothing else changes the root filesystem while a RUN step is snapshotted", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("a snapshot thread panicked")]
    WorkerPanicked,
}

fn read_err(path: &Path) -> impl FnOnce(io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// Xattrs overlayfs keeps for itself; they never belong in a layer.
fn is_overlay_xattr(name: &str) -> bool {
    name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.")
}

/// Every extended attribute of `path` (not following a link) but overlay's own, sorted by name.
/// A filesystem without xattr support has none.
fn read_xattrs(path: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut names = vec![0u8; 1024];
    let n = loop {
        match rustix::fs::llistxattr(path, &mut names) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) => names.resize(names.len() * 4, 0),
            Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
    };
    let mut out = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        if is_overlay_xattr(&name) {
            continue;
        }
        if let Some(value) = get_xattr(path, &name)? {
            out.push((name, value));
        }
    }
    out.sort();
    Ok(out)
}

/// One xattr's value, or `None` when it is not set.
fn get_xattr(path: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    let mut value = vec![0u8; 256];
    loop {
        match rustix::fs::lgetxattr(path, name, &mut value) {
            Ok(n) => {
                value.truncate(n);
                return Ok(Some(value));
            }
            Err(rustix::io::Errno::RANGE) => value.resize(value.len() * 4, 0),
            Err(rustix::io::Errno::NODATA | rustix::io::Errno::NOTSUP) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

fn meta_of(md: &Metadata, path: &Path) -> Result<EntryMeta, SnapshotError> {
    Ok(EntryMeta {
        mode: md.mode() & 0o7777,
        uid: u64::from(md.uid()),
        gid: u64::from(md.gid()),
        mtime: md.mtime(),
        xattrs: read_xattrs(path).map_err(read_err(path))?,
    })
}

/// `"/usr"` + `"bin"` → `"/usr/bin"`.
fn child_path(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// Children of a directory, sorted by name bytes.
fn sorted_children(dir: &Path) -> Result<Vec<String>, SnapshotError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err(dir))? {
        let entry = entry.map_err(read_err(dir))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// A regular file's entry, or a `Hardlink` to the first path (in byte order) with its inode.
/// `entries` must be sorted by path; `inodes` gives the inode key of files with several links.
fn link_hardlinks(entries: &mut [LayerEntry], inodes: &HashMap<String, (u64, u64)>) {
    let mut first: HashMap<(u64, u64), String> = HashMap::new();
    for entry in entries.iter_mut() {
        if !matches!(entry.kind, EntryKind::File { .. }) {
            continue;
        }
        let Some(key) = inodes.get(&entry.path) else {
            continue;
        };
        match first.get(key) {
            Some(target) => entry.kind = EntryKind::Hardlink(target.clone()),
            None => {
                first.insert(*key, entry.path.clone());
            }
        }
    }
}

/// The layer entries an overlay upper directory stands for: every file, link and directory in it
/// (the directories are the parents overlay copied up, with their metadata), a 0/0 character
/// device as a `Whiteout`, an opaque directory as `Dir` plus `OpaqueDir`. Sorted by path.
pub fn diff_upper(upper: &Path) -> Result<Vec<LayerEntry>, SnapshotError> {
    let mut entries = Vec::new();
    let mut inodes = HashMap::new();
    let mut stack = vec![(upper.to_path_buf(), "/".to_string())];
    while let Some((dir, image_dir)) = stack.pop() {
        for name in sorted_children(&dir)? {
            let host = dir.join(&name);
            let path = child_path(&image_dir, &name);
            let md = std::fs::symlink_metadata(&host).map_err(read_err(&host))?;
            let ft = md.file_type();
            let kind = if ft.is_char_device() && md.rdev() == 0 {
                entries.push(LayerEntry {
                    path,
                    kind: EntryKind::Whiteout,
                    meta: EntryMeta::default(),
                });
                continue;
            } else if ft.is_dir() {
                let opaque = ["trusted.overlay.opaque", "user.overlay.opaque"]
                    .iter()
                    .map(|x| get_xattr(&host, x))
                    .collect::<io::Result<Vec<_>>>()
                    .map_err(read_err(&host))?
                    .into_iter()
                    .any(|v| v.as_deref() == Some(b"y"));
                if opaque {
                    entries.push(LayerEntry {
                        path: path.clone(),
                        kind: EntryKind::OpaqueDir,
                        meta: EntryMeta::default(),
                    });
                }
                stack.push((host.clone(), path.clone()));
                EntryKind::Dir
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&host).map_err(read_err(&host))?;
                EntryKind::Symlink(target.to_string_lossy().into_owned())
            } else if ft.is_file() {
                if md.nlink() > 1 {
                    inodes.insert(path.clone(), (md.dev(), md.ino()));
                }
                EntryKind::File {
                    source: EntrySource::Path(host.clone()),
                    size: md.len(),
                }
            } else if ft.is_fifo() {
                EntryKind::Fifo
            } else {
                tracing::debug!(path = %path, "snapshot skips a device node or socket");
                continue;
            };
            entries.push(LayerEntry {
                meta: meta_of(&md, &host)?,
                path,
                kind,
            });
        }
    }
    entries.sort_by(|a, b| {
        a.path
            .as_bytes()
            .cmp(b.path.as_bytes())
            .then_with(|| kind_rank(&a.kind).cmp(&kind_rank(&b.kind)))
    });
    link_hardlinks(&mut entries, &inodes);
    Ok(entries)
}

/// Order of a path's entries when it has two (`Dir` before `OpaqueDir`).
fn kind_rank(kind: &EntryKind) -> u8 {
    match kind {
        EntryKind::OpaqueDir => 1,
        _ => 0,
    }
}

#[path = "snapshot_tree.rs"]
mod tree;

pub use tree::{diff_trees, scan, NodeState, NodeType, SnapshotMode, TreeState};

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
