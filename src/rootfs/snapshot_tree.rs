//! Snapshots without overlay: a parallel metadata walk of the root filesystem before and after a
//! RUN, and the comparison of the two (kaniko's `--snapshot-mode`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use super::{child_path, meta_of, read_err, sorted_children, SnapshotError};
use crate::layer::{EntryKind, EntryMeta, EntrySource, LayerEntry};

/// What a path is, as far as snapshots care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeType {
    Dir,
    File,
    Symlink,
    /// A named pipe, kept in the layer as Docker and buildah keep it.
    Fifo,
    /// Devices and sockets: noticed, never put in a layer.
    Other,
}

/// The metadata of one path at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeState {
    pub kind: NodeType,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// Modification time in nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Status-change time in nanoseconds: moves on any write, chmod, chown, xattr or rename.
    pub ctime_ns: i128,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    pub link: Option<String>,
    /// Creation time in nanoseconds where the filesystem records one (`statx` btime): tells a
    /// file re-created under a reused inode number from the file that was there.
    pub btime_ns: Option<i128>,
}

impl NodeState {
    /// Whether `later` is still the same file as `self` (not deleted and re-created).
    pub fn same_file(&self, later: &NodeState) -> bool {
        self.dev == later.dev && self.ino == later.ino && self.btime_ns == later.btime_ns
    }
}

/// A tree's metadata, by absolute-style path (`/usr/bin/x`; the root itself is not recorded).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TreeState {
    nodes: BTreeMap<String, NodeState>,
}

impl TreeState {
    pub fn get(&self, path: &str) -> Option<&NodeState> {
        self.nodes.get(path)
    }
    pub fn len(&self) -> usize {
        self.nodes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
    /// Paths in byte order.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.nodes.keys().map(String::as_str)
    }
}

/// How a path counts as changed, as kaniko's `--snapshot-mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SnapshotMode {
    /// `full` (the default): anything about the file changed: type, link target, mode, owners,
    /// size, mtime, and the ctime and inode, which move on every content write, chmod, chown,
    /// xattr change or re-creation even when the mtime was put back. Kaniko hashes the content of
    /// such candidates instead; gantry does not hold the old contents, so a file rewritten with
    /// identical bytes is included (the layer differs, the image does not).
    #[default]
    Full,
    /// `redo`: type, link target, mode, owners, size and mtime.
    Redo,
    /// `time`: type, link target and mtime only.
    Time,
}

fn node_of(md: &std::fs::Metadata, host: &Path) -> Result<NodeState, SnapshotError> {
    let ft = md.file_type();
    let (kind, link) = if ft.is_dir() {
        (NodeType::Dir, None)
    } else if ft.is_symlink() {
        let target = std::fs::read_link(host).map_err(read_err(host))?;
        (
            NodeType::Symlink,
            Some(target.to_string_lossy().into_owned()),
        )
    } else if ft.is_file() {
        (NodeType::File, None)
    } else if ft.is_fifo() {
        (NodeType::Fifo, None)
    } else {
        (NodeType::Other, None)
    };
    let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
    Ok(NodeState {
        kind,
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        size: md.len(),
        mtime_ns: ns(md.mtime(), md.mtime_nsec()),
        ctime_ns: ns(md.ctime(), md.ctime_nsec()),
        dev: md.dev(),
        ino: md.ino(),
        nlink: md.nlink(),
        link,
        btime_ns: md
            .created()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as i128),
    })
}

/// Work shared by the walkers: directories still to read, how many are being read, the first
/// error.
struct Walk {
    queue: Vec<String>,
    busy: usize,
    error: Option<SnapshotError>,
}

/// Records the metadata of every path below `root` except the `ignore` paths (image paths such
/// as `/proc`, or host paths below `root`) and what lies below them. Directories are read by a
/// few threads pulling from one queue, so one huge directory tree does not serialise the walk.
pub fn scan(root: &Path, ignore: &[PathBuf]) -> Result<TreeState, SnapshotError> {
    let ignore: BTreeSet<String> = ignore
        .iter()
        .map(|p| {
            let p = p.strip_prefix(root).unwrap_or(p);
            let clean: Vec<_> = p
                .to_string_lossy()
                .split('/')
                .filter(|c| !c.is_empty() && *c != ".")
                .map(str::to_string)
                .collect();
            format!("/{}", clean.join("/"))
        })
        .collect();
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 8);
    let state = Mutex::new(Walk {
        queue: vec!["/".to_string()],
        busy: 0,
        error: None,
    });
    let wake = Condvar::new();
    let found = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| s.spawn(|| walker(root, &ignore, &state, &wake)))
            .collect();
        let mut all = Vec::new();
        for h in handles {
            match h.join() {
                Ok(part) => all.push(part),
                Err(_) => return Err(SnapshotError::WorkerPanicked),
            }
        }
        Ok(all)
    })?;
    let walk = state
        .into_inner()
        .map_err(|_| SnapshotError::WorkerPanicked)?;
    if let Some(e) = walk.error {
        return Err(e);
    }
    Ok(TreeState {
        nodes: found.into_iter().flatten().collect(),
    })
}

fn walker(
    root: &Path,
    ignore: &BTreeSet<String>,
    state: &Mutex<Walk>,
    wake: &Condvar,
) -> Vec<(String, NodeState)> {
    let mut found = Vec::new();
    let Ok(mut guard) = state.lock() else {
        return found;
    };
    loop {
        if guard.error.is_some() {
            break;
        }
        if let Some(dir) = guard.queue.pop() {
            guard.busy += 1;
            drop(guard);
            let result = read_one_dir(root, &dir, ignore, &mut found);
            let Ok(g) = state.lock() else {
                return found;
            };
            guard = g;
            guard.busy -= 1;
            match result {
                Ok(dirs) => guard.queue.extend(dirs),
                Err(e) => {
                    guard.error.get_or_insert(e);
                }
            }
            wake.notify_all();
            continue;
        }
        if guard.busy == 0 {
            break;
        }
        guard = match wake.wait(guard) {
            Ok(g) => g,
            Err(_) => return found,
        };
    }
    wake.notify_all();
    found
}

/// Records the children of `dir` (an image path) and returns its subdirectories.
fn read_one_dir(
    root: &Path,
    dir: &str,
    ignore: &BTreeSet<String>,
    found: &mut Vec<(String, NodeState)>,
) -> Result<Vec<String>, SnapshotError> {
    let host_dir = root.join(dir.trim_start_matches('/'));
    let mut dirs = Vec::new();
    for name in sorted_children(&host_dir)? {
        let path = child_path(dir, &name);
        if ignore.contains(&path) {
            continue;
        }
        let host = host_dir.join(&name);
        let md = match std::fs::symlink_metadata(&host) {
            Ok(md) => md,
            // Gone between readdir and lstat: a process still running; not there now.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(read_err(&host)(e)),
        };
        let node = node_of(&md, &host)?;
        if node.kind == NodeType::Dir {
            dirs.push(path.clone());
        }
        found.push((path, node));
    }
    Ok(dirs)
}

fn changed(before: &NodeState, after: &NodeState, mode: SnapshotMode) -> bool {
    if before.kind != after.kind || before.link != after.link {
        return true;
    }
    let time = before.mtime_ns != after.mtime_ns;
    let redo = time
        || before.size != after.size
        || before.mode != after.mode
        || before.uid != after.uid
        || before.gid != after.gid;
    match mode {
        SnapshotMode::Time => time,
        SnapshotMode::Redo => redo,
        SnapshotMode::Full => {
            redo || before.ctime_ns != after.ctime_ns
                || before.ino != after.ino
                || before.dev != after.dev
        }
    }
}

fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// The layer entries for what changed from `before` to `after` (both scans of `root`): added and
/// changed paths with every parent directory (metadata as it is now), and a `Whiteout` for each
/// top-most deleted path. A path deleted and re-created is a change, not a whiteout; below a
/// directory replaced by a file nothing needs whiting out. Sorted by path; files with several
/// links in the snapshot become `Hardlink`s to the first of them.
pub fn diff_trees(
    before: &TreeState,
    after: &TreeState,
    root: &Path,
    mode: SnapshotMode,
) -> Result<Vec<LayerEntry>, SnapshotError> {
    let mut emit: BTreeSet<&str> = BTreeSet::new();
    for (path, now) in &after.nodes {
        if before
            .nodes
            .get(path)
            .is_none_or(|was| changed(was, now, mode))
        {
            emit.insert(path);
        }
    }
    let mut whiteouts: Vec<&str> = Vec::new();
    for path in before.nodes.keys() {
        if after.nodes.contains_key(path) {
            continue;
        }
        let parent = parent_of(path);
        let parent_still_dir = parent == "/"
            || (after.get(parent).is_some_and(|p| p.kind == NodeType::Dir)
                && before.get(parent).is_some_and(|p| p.kind == NodeType::Dir));
        if parent_still_dir {
            whiteouts.push(path);
        }
    }
    // Parents of everything emitted, so the layer carries their metadata.
    let mut parents: BTreeSet<&str> = BTreeSet::new();
    for path in emit.iter().copied().chain(whiteouts.iter().copied()) {
        let mut p = parent_of(path);
        while p != "/" && !emit.contains(p) && parents.insert(p) {
            p = parent_of(p);
        }
    }
    emit.extend(parents);

    let mut entries = Vec::with_capacity(emit.len() + whiteouts.len());
    let mut inodes = HashMap::new();
    for path in emit {
        let Some(node) = after.get(path) else {
            continue;
        };
        let host = root.join(path.trim_start_matches('/'));
        let kind = match node.kind {
            NodeType::Dir => EntryKind::Dir,
            NodeType::Symlink => EntryKind::Symlink(node.link.clone().unwrap_or_default()),
            NodeType::File => {
                if node.nlink > 1 {
                    inodes.insert(path.to_string(), (node.dev, node.ino));
                }
                EntryKind::File {
                    source: EntrySource::Path(host.clone()),
                    size: node.size,
                }
            }
            NodeType::Fifo => EntryKind::Fifo,
            NodeType::Other => {
                tracing::debug!(path, "snapshot skips a device node or socket");
                continue;
            }
        };
        let md = std::fs::symlink_metadata(&host).map_err(read_err(&host))?;
        entries.push(LayerEntry {
            path: path.to_string(),
            kind,
            meta: meta_of(&md, &host)?,
        });
    }
    for path in whiteouts {
        entries.push(LayerEntry {
            path: path.to_string(),
            kind: EntryKind::Whiteout,
            meta: EntryMeta::default(),
        });
    }
    entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    super::link_hardlinks(&mut entries, &inodes);
    Ok(entries)
}
