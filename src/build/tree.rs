//! Tree mode for RUN: one root filesystem directory (or `/` itself, in-place), layers applied to it
//! in order, and snapshots by comparing two metadata walks (`--snapshot-mode`). Used where overlayfs
//! cannot be mounted, and for in-place isolation inside gantry's own image.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use tracing::info;

use crate::build::executor::{Builder, StageImage};
use crate::layer::LayerEntry;
use crate::rootfs::privileged::Real;
use crate::rootfs::snapshot::{diff_trees, scan, TreeState};
use crate::rootfs::unpack::{unpack_layer, UnpackOptions, WhiteoutMode};

/// The materialised tree and what is in it.
pub struct Tree {
    pub root: PathBuf,
    /// Diff IDs of the layers applied, bottom first.
    pub chain: Vec<String>,
    /// The scan after the last change, reused as the next RUN's "before".
    pub state: Option<TreeState>,
    /// Image paths never unpacked over, deleted or snapshotted.
    pub ignore: Vec<PathBuf>,
}

impl Tree {
    pub fn new(root: PathBuf, ignore: Vec<PathBuf>) -> Tree {
        Tree {
            root,
            chain: Vec::new(),
            state: None,
            ignore,
        }
    }

    fn ignore_strings(&self) -> Vec<String> {
        self.ignore
            .iter()
            .map(|p| p.display().to_string())
            .collect()
    }

    /// Makes the tree hold exactly `image`'s layers: applies the missing top layers when the tree
    /// holds a prefix of them, else empties it (keeping ignored paths) and applies them all.
    pub async fn prepare(&mut self, b: &Builder, image: &StageImage) -> Result<()> {
        let want: Vec<&str> = image.layers.iter().map(|l| l.diff_id.as_str()).collect();
        let is_prefix =
            self.chain.len() <= want.len() && self.chain.iter().zip(&want).all(|(a, b)| a == b);
        if !is_prefix {
            info!("emptying {} for the next stage", self.root.display());
            let ignore = self.ignore.clone();
            let root = self.root.clone();
            tokio::task::block_in_place(|| wipe(&root, &root, &ignore))?;
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
            ignore: self.ignore_strings(),
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

    /// `--cleanup`: empties the tree (keeping ignored paths), as before another build.
    pub fn clean(&mut self) -> Result<()> {
        let start = std::time::Instant::now();
        let (root, ignore) = (self.root.clone(), self.ignore.clone());
        tokio::task::block_in_place(|| wipe(&root, &root, &ignore))?;
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
    pub fn changes(
        &mut self,
        before: &TreeState,
        mode: crate::rootfs::snapshot::SnapshotMode,
    ) -> Result<Vec<LayerEntry>> {
        let after = tokio::task::block_in_place(|| scan(&self.root, &self.ignore))?;
        let entries = diff_trees(before, &after, &self.root, mode)?;
        self.state = Some(after);
        Ok(entries)
    }
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
}
