//! Tree mode for RUN: one root filesystem directory (or `/` itself, in-place), layers applied to it
//! in order, and snapshots by comparing two metadata walks (`--snapshot-mode`). Used where overlayfs
//! cannot be mounted, and for in-place isolation inside gantry's own image.
//!
//! Rootless, the tree is unpacked without `chown` (an unprivileged process cannot give files away),
//! so every unpacked file belongs to gantry's own ids on disk, and what a RUN creates belongs to
//! the host ids its user namespace maps to. [`Tree::changes`] turns those back into image ids: a
//! path whose file and host owner are still those of the unpacked tree keeps the owner the image
//! gives it (the filesystem index), anything else gets its host owner mapped back through the
//! namespace's id map. An owner the map cannot express is refused rather than guessed.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use tracing::info;

use crate::build::executor::{Builder, StageImage};
use crate::layer::LayerEntry;
use crate::rootfs::privileged::Real;
use crate::rootfs::sandbox::IdMap;
use crate::rootfs::snapshot::{diff_trees, scan, TreeState};
use crate::rootfs::unpack::{unpack_layer, UnpackOptions, WhiteoutMode};
use crate::rootfs::FsIndex;

/// The materialised tree and what is in it.
pub struct Tree {
    pub root: PathBuf,
    /// Diff IDs of the layers applied, bottom first.
    pub chain: Vec<String>,
    /// The scan after the last change, reused as the next RUN's "before".
    pub state: Option<TreeState>,
    /// Image paths never snapshotted (`--ignore-path`; in place also gantry's own files, its
    /// work directory and the mount points).
    pub ignore: Vec<PathBuf>,
    /// Image paths never unpacked over nor deleted: in place, the same as `ignore`, because they
    /// belong to the container gantry runs in; in a private chroot tree, none.
    pub keep: Vec<PathBuf>,
}

/// Why a rootless snapshot cannot say who owns a file.
#[derive(Debug, thiserror::Error)]
pub enum OwnerError {
    #[error("RUN left `{path}` owned by host uid {uid}, gid {gid}, which the rootless sandbox does not map{}\nhint: run gantry as root, or give the user subordinate ids in /etc/subuid and /etc/subgid", if *subordinate { "" } else { " (it maps only uid 0 and gid 0)" })]
    Unmapped {
        path: String,
        uid: u32,
        gid: u32,
        subordinate: bool,
    },
}

impl Tree {
    /// A tree at `root`: `ignore` stays out of snapshots, `keep` is never unpacked over or
    /// deleted.
    pub fn new(root: PathBuf, ignore: Vec<PathBuf>, keep: Vec<PathBuf>) -> Tree {
        Tree {
            root,
            chain: Vec::new(),
            state: None,
            ignore,
            keep,
        }
    }

    fn keep_strings(&self) -> Vec<String> {
        self.keep.iter().map(|p| p.display().to_string()).collect()
    }

    /// Makes the tree hold exactly `image`'s layers: applies the missing top layers when the tree
    /// holds a prefix of them, else empties it (keeping ignored paths) and applies them all.
    pub async fn prepare(&mut self, b: &Builder, image: &StageImage) -> Result<()> {
        let want: Vec<&str> = image.layers.iter().map(|l| l.diff_id.as_str()).collect();
        let is_prefix =
            self.chain.len() <= want.len() && self.chain.iter().zip(&want).all(|(a, b)| a == b);
        if !is_prefix {
            info!("emptying {} for the next stage", self.root.display());
            let keep = self.keep.clone();
            let root = self.root.clone();
            tokio::task::block_in_place(|| wipe(&root, &root, &keep))?;
            self.chain.clear();
            self.state = None;
        }
        let todo = &image.layers[self.chain.len()..];
        if todo.is_empty() {
            return Ok(());
        }
        b.ensure_local(todo).await?;
        let opts = UnpackOptions {
            whiteouts: WhiteoutMode::Apply,
            retries: b.settings.image_fs_extract_retry,
            ignore: self.keep_strings(),
        };
        let start = std::time::Instant::now();
        for layer in todo {
            let blob = b.blob_path(&layer.descriptor.digest);
            let media_type = layer.descriptor.media_type.clone();
            let root = self.root.clone();
            tokio::task::block_in_place(|| unpack_layer(&blob, &media_type, &root, &opts, &Real))
                .with_context(|| {
                format!(
                    "unpacking layer {} into {}",
                    layer.descriptor.digest,
                    self.root.display()
                )
            })?;
            self.chain.push(layer.diff_id.clone());
        }
        info!(
            "applied {} layer(s) to {} in {:.2?}",
            todo.len(),
            self.root.display(),
            start.elapsed()
        );
        self.state = None;
        Ok(())
    }

    /// `--cleanup`: empties the tree (keeping the kept paths), as before another build.
    pub fn clean(&mut self) -> Result<()> {
        let start = std::time::Instant::now();
        let (root, keep) = (self.root.clone(), self.keep.clone());
        tokio::task::block_in_place(|| wipe(&root, &root, &keep))?;
        self.chain.clear();
        self.state = None;
        info!(
            "--cleanup: emptied {} in {:.2?}",
            self.root.display(),
            start.elapsed()
        );
        Ok(())
    }

    /// The state before a RUN: the last scan when nothing changed since, else a new one.
    pub fn before(&mut self) -> Result<TreeState> {
        match self.state.take() {
            Some(s) => Ok(s),
            None => Ok(tokio::task::block_in_place(|| {
                scan(&self.root, &self.ignore)
            })?),
        }
    }

    /// Scans after a RUN and returns what changed; the new scan becomes the tree's state.
    /// `rootless` gives the id map and the image's index (as it was before the RUN) when the tree
    /// was unpacked without `chown`: owners are then turned into image ids ([`image_owners`]).
    pub fn changes(
        &mut self,
        before: &TreeState,
        mode: crate::rootfs::snapshot::SnapshotMode,
        rootless: Option<(&IdMap, &FsIndex)>,
    ) -> Result<Vec<LayerEntry>> {
        let after = tokio::task::block_in_place(|| scan(&self.root, &self.ignore))?;
        let mut entries = diff_trees(before, &after, &self.root, mode)?;
        if let Some((map, index)) = rootless {
            image_owners(&mut entries, before, &after, map, index)?;
        }
        self.state = Some(after);
        Ok(entries)
    }
}

/// Rootless tree mode: replaces the host owners of snapshot entries with image owners. A path that
/// is the same file as before the RUN (same inode and creation time) with the same host owner was
/// not given away by the RUN, so the image's owner for it (from `index`) still holds; every other
/// owner is mapped back through `map`, and one the map does not cover is an error.
///
/// One case stays out of reach: a RUN that gives a file the image owns as someone else to root
/// (`chown 0`) changes nothing on disk, where the file already belongs to gantry, which is root
/// inside; the layer keeps the image's owner for it.
pub fn image_owners(
    entries: &mut [LayerEntry],
    before: &TreeState,
    after: &TreeState,
    map: &IdMap,
    index: &FsIndex,
) -> Result<(), OwnerError> {
    use crate::layer::EntryKind;
    for e in entries.iter_mut() {
        if matches!(e.kind, EntryKind::Whiteout | EntryKind::OpaqueDir) {
            continue;
        }
        let untouched = match (before.get(&e.path), after.get(&e.path)) {
            (Some(b), Some(a)) => b.same_file(a) && (b.uid, b.gid) == (a.uid, a.gid),
            _ => false,
        };
        if untouched {
            if let Some(node) = index.get(&e.path) {
                e.meta.uid = node.uid;
                e.meta.gid = node.gid;
                continue;
            }
        }
        let (uid, gid) = (
            u32::try_from(e.meta.uid).unwrap_or(u32::MAX),
            u32::try_from(e.meta.gid).unwrap_or(u32::MAX),
        );
        let (iu, ig) = map.to_image(uid, gid).ok_or_else(|| OwnerError::Unmapped {
            path: e.path.clone(),
            uid,
            gid,
            subordinate: map.subordinate.is_some(),
        })?;
        e.meta.uid = u64::from(iu);
        e.meta.gid = u64::from(ig);
    }
    Ok(())
}

/// Removes everything below `dir` except the ignored paths (and the directories leading to them).
/// Never crosses into another filesystem.
fn wipe(root: &Path, dir: &Path, ignore: &[PathBuf]) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let root_dev = std::fs::symlink_metadata(root)?.dev();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading `{}`", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        let image_path = Path::new("/").join(path.strip_prefix(root).unwrap_or(&path));
        if ignore
            .iter()
            .any(|i| image_path == *i || image_path.starts_with(i))
        {
            continue;
        }
        let md = std::fs::symlink_metadata(&path)?;
        if md.dev() != root_dev {
            continue;
        }
        if ignore.iter().any(|i| i.starts_with(&image_path)) {
            if md.is_dir() {
                wipe(root, &path, ignore)?;
            }
            continue;
        }
        if md.is_dir() {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("removing `{}`", path.display()))?;
        } else {
            std::fs::remove_file(&path)
                .with_context(|| format!("removing `{}`", path.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wipe_keeps_ignored_paths_and_their_parents() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for d in ["usr/local/bin", "etc", "workspace/src", "kaniko"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        for f in [
            "usr/local/bin/gantry",
            "usr/local/bin/other",
            "etc/passwd",
            "workspace/src/a",
            "kaniko/executor",
        ] {
            std::fs::write(root.join(f), "x").unwrap();
        }
        let ignore = vec![
            PathBuf::from("/usr/local/bin/gantry"),
            PathBuf::from("/workspace"),
            PathBuf::from("/kaniko"),
        ];
        wipe(root, root, &ignore).unwrap();
        assert!(root.join("usr/local/bin/gantry").exists());
        assert!(!root.join("usr/local/bin/other").exists());
        assert!(!root.join("etc").exists());
        assert!(root.join("workspace/src/a").exists());
        assert!(root.join("kaniko/executor").exists());
    }

    /// The rootless owner logic with the current user standing in for gantry: its files are
    /// root's inside the namespace.
    #[test]
    fn rootless_owners_come_from_the_index_or_the_id_map() {
        use crate::rootfs::index::{Node, NodeKind};
        use crate::rootfs::snapshot::SnapshotMode;
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir(root.join("home")).unwrap();
        std::fs::write(root.join("home/appended"), "a\n").unwrap();
        std::fs::write(root.join("home/recreated"), "b\n").unwrap();
        let mut index = FsIndex::new();
        let file = |uid| Node {
            kind: NodeKind::File,
            mode: 0o644,
            uid,
            gid: uid,
            size: 2,
            mtime: 0,
        };
        index.insert("/home", Node::dir(0o755, 1000, 1000, 0));
        index.insert("/home/appended", file(1000));
        index.insert("/home/recreated", file(1000));
        let before = scan(root, &[]).unwrap();
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .open(root.join("home/appended"))
            .unwrap()
            .write_all(b"more\n")
            .unwrap();
        std::fs::remove_file(root.join("home/recreated")).unwrap();
        std::fs::write(root.join("home/recreated"), "new\n").unwrap();
        std::fs::write(root.join("home/new"), "n\n").unwrap();
        let after = scan(root, &[]).unwrap();
        let map = IdMap {
            uid: rustix::process::getuid().as_raw(),
            gid: rustix::process::getgid().as_raw(),
            subordinate: None,
        };
        let owners = |entries: &[LayerEntry]| -> Vec<(String, u64, u64)> {
            entries
                .iter()
                .map(|e| (e.path.clone(), e.meta.uid, e.meta.gid))
                .collect()
        };
        let mut entries = diff_trees(&before, &after, root, SnapshotMode::Full).unwrap();
        image_owners(&mut entries, &before, &after, &map, &index).unwrap();
        assert_eq!(
            owners(&entries),
            [
                ("/home".to_string(), 1000, 1000),
                ("/home/appended".to_string(), 1000, 1000),
                ("/home/new".to_string(), 0, 0),
                ("/home/recreated".to_string(), 0, 0),
            ]
        );
        // Files owned by ids the namespace does not map are refused, not guessed.
        let other = IdMap {
            uid: map.uid.wrapping_add(1),
            ..map
        };
        let mut entries = diff_trees(&before, &after, root, SnapshotMode::Full).unwrap();
        let e = image_owners(&mut entries, &before, &after, &other, &index).unwrap_err();
        assert!(
            e.to_string().starts_with(&format!(
                "RUN left `/home/new` owned by host uid {}, gid {}, which the rootless sandbox \
                 does not map (it maps only uid 0 and gid 0)",
                map.uid, map.gid
            )),
            "{e}"
        );
    }
}
