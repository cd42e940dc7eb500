//! RUN: materialise the root filesystem on first need, run the command in the sandbox, and turn
//! what changed into a layer.
//!
//! With overlayfs (DESIGN.md decision 3) every layer is unpacked once into a directory of its own,
//! a RUN mounts a fresh upper directory over them, and that upper directory is the diff: its cost
//! is what changed, not the size of the image. The upper directory then serves as the new layer's
//! directory for later RUNs, so nothing is unpacked twice.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use tracing::{debug, info};

use crate::build::executor::{Builder, LayerRef, StageImage};
use crate::build::instructions::DEFAULT_SHELL;
use crate::build::scope::StageScope;
use crate::dockerfile::{CommandForm, Instruction, RunArgs};
use crate::image::Descriptor;
use crate::layer::{EntryKind, LayerEntry};
use crate::rootfs::privileged::{Privileged, Real};
use crate::rootfs::sandbox::{self, Isolation, RunSpec};
use crate::rootfs::snapshot::diff_upper;
use crate::rootfs::unpack::{unpack_layers_parallel, UnpackOptions, WhiteoutMode};

/// The file a shebang heredoc is written to inside the rootfs while it runs.
const SCRIPT_PATH: &str = "/.gantry-run-script";

/// Runs one RUN instruction and returns its layer (`None` when it changed nothing), or takes
/// both from the layer cache when `--cache` finds the step there.
pub async fn run(
    b: &mut Builder,
    image: &mut StageImage,
    scope: &StageScope,
    ins: &Instruction,
    args: &RunArgs,
) -> Result<Option<LayerRef>> {
    let key = b.run_key(image, scope, ins, args);
    if let Some(key) = &key {
        if let Some(layer) = b.cache_lookup(ins, key).await {
            if layer.is_some() {
                // The index no longer describes the image; it is rebuilt if needed.
                image.index = None;
            }
            return Ok(layer);
        }
    }
    let layer = run_uncached(b, image, scope, ins, args).await?;
    if let Some(key) = key {
        b.cache_add(key, layer.as_ref());
    }
    Ok(layer)
}

async fn run_uncached(
    b: &mut Builder,
    image: &mut StageImage,
    scope: &StageScope,
    ins: &Instruction,
    args: &RunArgs,
) -> Result<Option<LayerRef>> {
    if !args.mounts.is_empty() {
        bail!("RUN --mount is not supported yet\nhint: remove the --mount flag; caches and secrets can be passed as build arguments or files in the context");
    }
    match args.network.as_deref() {
        None | Some("default") | Some("host") => {}
        Some(other) => bail!("RUN --network={other} is not supported\nhint: gantry runs commands on the host network (`--network=host`)"),
    }
    match args.security.as_deref() {
        None | Some("sandbox") => {}
        Some(other) => bail!("RUN --security={other} is not supported\nhint: remove the flag"),
    }
    let isolation = b.isolation()?;
    let config = &image.config.config;
    let shell: Vec<String> = config
        .shell
        .clone()
        .unwrap_or_else(|| DEFAULT_SHELL.iter().map(|s| s.to_string()).collect());
    let script = args.shebang_script().map(|h| h.content.clone());
    let argv = match (&script, &args.command) {
        (Some(_), _) => vec![SCRIPT_PATH.to_string()],
        (None, CommandForm::Exec(v)) => v.clone(),
        (None, CommandForm::Shell(cmd)) => {
            let mut v = shell;
            v.push(cmd.clone());
            v
        }
    };
    // Build arguments are environment for RUN, under ENV (which wins) and never in the config.
    let mut env = config.env.clone().unwrap_or_default();
    for (k, v) in scope.arg_values().into_iter().chain(b.build_args.proxies()) {
        if crate::build::scope::env_lookup(&env, &k).is_none() {
            env.push(format!("{k}={v}"));
        }
    }
    let spec_user = config.user.clone().filter(|u| !u.is_empty());
    let cwd = config.working_dir.clone().unwrap_or_else(|| "/".into());

    let spec = Command {
        script,
        argv,
        env,
        cwd,
        user: spec_user,
        isolation,
        work_dir: b.work_path().to_path_buf(),
    };
    if isolation == Isolation::Chroot && !Real.is_privileged() {
        // Rootless snapshots take unchanged owners from the index (see build::tree).
        b.index_of(image).await?;
    }
    let (entries, upper) = if isolation == Isolation::Chroot && b.overlay != Some(false) {
        match run_overlay(b, image, ins, &spec).await? {
            Some(done) => done,
            None => (run_tree(b, image, ins, &spec).await?, None),
        }
    } else {
        (run_tree(b, image, ins, &spec).await?, None)
    };
    if entries.is_empty() {
        info!("`{}` changed nothing: no layer", ins.original);
        return Ok(None);
    }
    let mut index = image.index.as_deref().cloned();
    if let Some(idx) = index.as_mut() {
        idx.apply_entries(&entries);
    }
    let count = entries.len();
    let blob = b.write_step_layer(image, entries, crate::build::cache::Cached::Run)?;
    info!(
        "layer {} ({} entries, {}) from RUN",
        crate::build::executor::short_digest(&blob.digest),
        count,
        crate::report::human_bytes(blob.size)
    );
    if let Some(upper) = upper {
        b.layer_dirs.insert(blob.diff_id.clone(), upper);
    }
    if let Some(tree) = b.tree.as_mut() {
        if isolation == Isolation::InPlace || b.overlay == Some(false) {
            tree.chain.push(blob.diff_id.clone());
        }
    }
    image.index = index.map(Arc::new);
    Ok(Some(LayerRef {
        descriptor: Descriptor::new(blob.media_type.clone(), blob.digest.clone(), blob.size),
        diff_id: blob.diff_id,
        remote: None,
    }))
}

/// One RUN command, ready for the sandbox.
struct Command {
    script: Option<String>,
    argv: Vec<String>,
    env: Vec<String>,
    cwd: String,
    user: Option<String>,
    isolation: Isolation,
    /// The build's work directory, where the sandbox keeps its per-run files.
    work_dir: PathBuf,
}

/// Overlay mode: mounts a fresh upper directory over the layer directories, runs, and returns the
/// upper directory's entries and the directory (the new layer's directory for later RUNs).
/// `None` when overlayfs cannot be mounted here (the first time only): tree mode takes over.
async fn run_overlay(
    b: &mut Builder,
    image: &StageImage,
    ins: &Instruction,
    cmd: &Command,
) -> Result<Option<(Vec<LayerEntry>, Option<PathBuf>)>> {
    let lowers = b.layer_dirs(image).await?;
    b.run_counter += 1;
    let run_dir = b.work_path().join(format!("run-{}", b.run_counter));
    let (upper, work, merged) = (
        run_dir.join("upper"),
        run_dir.join("work"),
        run_dir.join("merged"),
    );
    for d in [&upper, &work, &merged] {
        std::fs::create_dir_all(d).with_context(|| format!("creating `{}`", d.display()))?;
    }
    let empty = run_dir.join("empty");
    let lowerdir = if lowers.is_empty() {
        std::fs::create_dir_all(&empty)?;
        empty.display().to_string()
    } else {
        lowers
            .iter()
            .rev()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    };
    let data = format!(
        "lowerdir={lowerdir},upperdir={},workdir={},redirect_dir=off,metacopy=off",
        upper.display(),
        work.display()
    );
    if let Err(e) = Real.mount("overlay", &merged, "overlay", 0, Some(&data)) {
        if b.overlay == Some(true) {
            bail!("cannot mount the overlay filesystem for RUN: {e}");
        }
        info!(
            "overlayfs cannot be mounted here ({e}): RUN snapshots compare metadata walks instead"
        );
        b.overlay = Some(false);
        let _ = std::fs::remove_dir_all(&run_dir);
        return Ok(None);
    }
    b.overlay = Some(true);
    crate::interrupt::register_mount(&merged);
    let result = run_in(&merged, cmd);
    let unmounted = Real.unmount(&merged);
    crate::interrupt::unregister_mount(&merged);
    let outcome = result?;
    unmounted.with_context(|| format!("unmounting `{}`", merged.display()))?;
    if outcome.status != 0 {
        bail!(
            "`{}` failed with exit code {}",
            ins.original,
            outcome.status
        );
    }
    // What the sandbox created as mount points is not part of the image.
    let mut created = outcome.created.clone();
    created.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in &created {
        let in_upper = upper.join(p.strip_prefix("/").unwrap_or(p));
        let _ = std::fs::remove_file(&in_upper).or_else(|_| std::fs::remove_dir(&in_upper));
    }
    let start = std::time::Instant::now();
    let entries = tokio::task::block_in_place(|| diff_upper(&upper))?;
    debug!(
        "snapshot of `{}`: {} entries in {:.2?}",
        ins.original,
        entries.len(),
        start.elapsed()
    );
    let entries = filter_created(entries, &created);
    // `--ignore-path` stays out of the layer; the files stay in the upper directory, so later
    // RUNs of the build still see them, as they would in place.
    let entries = drop_ignored(entries, &b.settings.ignore_paths);
    let entries = prune_unchanged_dirs(entries, |rel| {
        use std::os::unix::fs::MetadataExt;
        lowers
            .iter()
            .rev()
            .find_map(|l| std::fs::symlink_metadata(l.join(rel)).ok())
            .filter(|m| m.is_dir())
            .map(|m| (m.mode() & 0o7777, u64::from(m.uid()), u64::from(m.gid())))
    });
    Ok(Some((entries, Some(upper))))
}

/// Tree mode: the image's layers applied to one directory (`/` in place), the command run there,
/// and the change found by comparing metadata walks.
async fn run_tree(
    b: &mut Builder,
    image: &StageImage,
    ins: &Instruction,
    cmd: &Command,
) -> Result<Vec<LayerEntry>> {
    let mut tree = match b.tree.take() {
        Some(t) => t,
        None => {
            if cmd.isolation == Isolation::InPlace {
                let ignore = b.in_place_ignores();
                debug!("in-place ignore paths: {ignore:?}");
                crate::build::tree::Tree::new(PathBuf::from("/"), ignore.clone(), ignore)
            } else {
                let root = b.work_path().join("tree");
                std::fs::create_dir_all(&root)?;
                crate::build::tree::Tree::new(root, b.settings.ignore_paths.clone(), Vec::new())
            }
        }
    };
    // Rootless, the tree holds no image owners: they come from the index and the id map.
    let rootless =
        (cmd.isolation == Isolation::Chroot && !Real.is_privileged()).then(sandbox::IdMap::current);
    let result = async {
        tree.prepare(b, image).await?;
        let before = tree.before()?;
        let outcome = run_in(&tree.root, cmd)?;
        if outcome.status != 0 {
            // The tree holds a failed command's changes: the next use starts it again.
            tree.chain.clear();
            tree.state = None;
            bail!(
                "`{}` failed with exit code {}",
                ins.original,
                outcome.status
            );
        }
        let start = std::time::Instant::now();
        let owners = match (&rootless, image.index.as_deref()) {
            (Some(map), Some(index)) => Some((map, index)),
            (Some(_), None) => bail!("internal: rootless RUN without the image's index"),
            (None, _) => None,
        };
        let entries = tree.changes(&before, b.settings.snapshot_mode, owners)?;
        debug!(
            "snapshot of `{}`: {} entries in {:.2?}",
            ins.original,
            entries.len(),
            start.elapsed()
        );
        let entries = filter_created(entries, &outcome.created);
        Ok(prune_unchanged_dirs(entries, |rel| {
            before
                .get(&format!("/{rel}"))
                .map(|n| (n.mode, u64::from(n.uid), u64::from(n.gid)))
        }))
    }
    .await;
    b.tree = Some(tree);
    result
}

/// Drops the entries at or below any of `ignore` (absolute image paths).
fn drop_ignored(entries: Vec<LayerEntry>, ignore: &[PathBuf]) -> Vec<LayerEntry> {
    if ignore.is_empty() {
        return entries;
    }
    entries
        .into_iter()
        .filter(|e| !ignore.iter().any(|i| Path::new(&e.path).starts_with(i)))
        .collect()
}

fn filter_created(entries: Vec<LayerEntry>, created: &[PathBuf]) -> Vec<LayerEntry> {
    entries
        .into_iter()
        .filter(|e| !created.iter().any(|c| Path::new(&e.path) == c))
        .filter(|e| e.path != SCRIPT_PATH)
        .collect()
}

/// Drops directories overlay copied up without changing them: no changed path below them, and
/// the same mode and owners as in the layer below. (Creating and removing the sandbox's mount
/// points copies their parents up; that alone is no change.)
fn prune_unchanged_dirs(
    entries: Vec<LayerEntry>,
    below: impl Fn(&str) -> Option<(u32, u64, u64)>,
) -> Vec<LayerEntry> {
    let mut keep = vec![true; entries.len()];
    // Deepest first, so a parent sees whether its children were kept.
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|i| std::cmp::Reverse(entries[*i].path.matches('/').count()));
    for i in order {
        let e = &entries[i];
        if !matches!(e.kind, EntryKind::Dir) {
            continue;
        }
        let prefix = if e.path == "/" {
            "/".to_string()
        } else {
            format!("{}/", e.path)
        };
        let has_kept_child = entries
            .iter()
            .enumerate()
            .any(|(j, c)| keep[j] && j != i && c.path.starts_with(&prefix));
        if has_kept_child {
            continue;
        }
        if below(e.path.trim_start_matches('/')) == Some((e.meta.mode, e.meta.uid, e.meta.gid)) {
            keep[i] = false;
        }
    }
    entries
        .into_iter()
        .zip(keep)
        .filter_map(|(e, k)| k.then_some(e))
        .collect()
}

/// Runs the command with `root` as its root filesystem (a shebang heredoc is written there for
/// the duration of the command).
fn run_in(root: &Path, cmd: &Command) -> Result<sandbox::RunOutcome> {
    let script_file = root.join(SCRIPT_PATH.trim_start_matches('/'));
    if let Some(text) = &cmd.script {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&script_file, text)?;
        std::fs::set_permissions(&script_file, std::fs::Permissions::from_mode(0o755))?;
    }
    let spec = RunSpec {
        rootfs: root.to_path_buf(),
        argv: cmd.argv.clone(),
        env: cmd.env.clone(),
        cwd: cmd.cwd.clone(),
        user: cmd.user.clone(),
        hostname: None,
        work_dir: Some(cmd.work_dir.clone()),
    };
    let outcome = tokio::task::block_in_place(|| sandbox::run(&spec, cmd.isolation, &Real));
    if cmd.script.is_some() {
        let _ = std::fs::remove_file(&script_file);
    }
    Ok(outcome?)
}

impl Builder {
    /// What an in-place build never snapshots, unpacks over or deletes: gantry's own files,
    /// `/workspace`, the mount points and `/var/run` ([`sandbox::inplace_ignore_paths`]), the
    /// `--ignore-path`s, and the files of this build that live in the root it works on: its work
    /// directory (blobs, spool, the sandbox's files), `--cache-dir`, a local context directory
    /// and the output files. Without the work directory here, the next RUN's layer would carry
    /// the blobs of the previous one, and the next stage would delete them.
    fn in_place_ignores(&self) -> Vec<PathBuf> {
        let s = &self.settings;
        let mut ignore = sandbox::inplace_ignore_paths();
        if !s.ignore_var_run {
            ignore.retain(|p| p != Path::new("/var/run"));
        }
        ignore.extend(s.ignore_paths.iter().cloned());
        let ours = [
            Some(self.work_path().to_path_buf()),
            s.cache_dir.clone(),
            Some(self.context.root.clone()),
            s.tar_path.clone(),
            s.oci_layout_path.clone(),
            s.digest_file.clone(),
            s.image_name_with_digest_file.clone(),
            s.image_name_tag_with_digest_file.clone(),
        ];
        for p in ours.into_iter().flatten() {
            let p = std::fs::canonicalize(&p)
                .or_else(|_| std::path::absolute(&p))
                .unwrap_or(p);
            // A context of `/` cannot be kept apart from the root it is: left to the user.
            if p != Path::new("/") {
                ignore.push(p);
            }
        }
        ignore.sort();
        ignore.dedup();
        ignore
    }

    /// The isolation for RUN, chosen once per build.
    fn isolation(&mut self) -> Result<Isolation> {
        if let Some(i) = self.isolation {
            return Ok(i);
        }
        let i = sandbox::choose_isolation(self.settings.isolation, self.settings.force)?;
        info!("RUN isolation: {i:?}");
        self.isolation = Some(i);
        Ok(i)
    }

    /// The directories of an image's layers, bottom first, unpacking the ones not seen yet (in
    /// parallel, each into its own directory, overlay whiteouts kept as overlay expects them).
    async fn layer_dirs(&mut self, image: &StageImage) -> Result<Vec<PathBuf>> {
        self.ensure_local(&image.layers).await?;
        let mut jobs = Vec::new();
        let mut dirs = Vec::new();
        for layer in &image.layers {
            let dir = match self.layer_dirs.get(&layer.diff_id) {
                Some(d) => d.clone(),
                None => {
                    let d = self
                        .work_path()
                        .join("layers")
                        .join(layer.diff_id.trim_start_matches("sha256:"));
                    if !jobs
                        .iter()
                        .any(|(_, _, j): &(PathBuf, String, PathBuf)| j == &d)
                    {
                        std::fs::create_dir_all(&d)?;
                        jobs.push((
                            self.blob_path(&layer.descriptor.digest),
                            layer.descriptor.media_type.clone(),
                            d.clone(),
                        ));
                    }
                    d
                }
            };
            dirs.push(dir);
        }
        if !jobs.is_empty() {
            let opts = UnpackOptions {
                whiteouts: WhiteoutMode::Overlay,
                retries: self.settings.image_fs_extract_retry,
                ..Default::default()
            };
            let start = std::time::Instant::now();
            let n = jobs.len();
            let done: Vec<PathBuf> = jobs.iter().map(|(_, _, d)| d.clone()).collect();
            tokio::task::block_in_place(|| unpack_layers_parallel(jobs, &opts, &Real))?;
            info!("unpacked {n} layer(s) in {:.2?}", start.elapsed());
            for (layer, dir) in image.layers.iter().zip(dirs.iter()) {
                if done.contains(dir) {
                    self.layer_dirs.insert(layer.diff_id.clone(), dir.clone());
                }
            }
        }
        Ok(dirs)
    }
}
