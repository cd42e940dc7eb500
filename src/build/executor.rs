//! The build loop: stages in order, each from its base, each instruction dispatched in turn.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context as _, Result};
use tracing::{info, warn};

use crate::build::scope::{platform_args, BuildArgValues, StageScope};
use crate::context::BuildContext;
use crate::dockerfile::{self, Dockerfile, Instruction, InstructionKind, Stage};
use crate::image::{Descriptor, History, ImageConfig, MediaTypes, Platform};
use crate::registry::{Client, Reference};
use crate::rootfs::FsIndex;
use crate::settings::BuildSettings;

/// One layer of an image being built: where its blob is, and its uncompressed digest.
#[derive(Clone, Debug)]
pub struct LayerRef {
    pub descriptor: Descriptor,
    pub diff_id: String,
    /// The repository the blob already lives in, for base-image layers.
    pub remote: Option<Reference>,
}

/// The state of a stage's image as instructions are applied to it.
#[derive(Clone, Debug)]
pub struct StageImage {
    pub config: ImageConfig,
    pub layers: Vec<LayerRef>,
    pub media_types: MediaTypes,
    /// The filesystem index of the image, built on first need.
    pub index: Option<Arc<FsIndex>>,
    /// What the stage was built from, for messages.
    pub base_name: String,
}

/// The image a build produced.
#[derive(Debug)]
pub struct BuiltImage {
    pub image: StageImage,
    pub manifest_bytes: Vec<u8>,
    pub config_bytes: Vec<u8>,
    pub digest: String,
}

pub struct Builder {
    pub(crate) settings: BuildSettings,
    pub(crate) client: Client,
    pub(crate) blob_dir: PathBuf,
    pub(crate) spool_dir: PathBuf,
    pub(crate) context: BuildContext,
    pub(crate) dockerfile: Dockerfile,
    pub(crate) dockerfile_name: String,
    pub(crate) build_args: BuildArgValues,
    global_args: BTreeMap<String, Option<String>>,
    pub(crate) stages: Vec<Option<StageImage>>,
    images: BTreeMap<String, StageImage>,
    pub(crate) created: String,
    /// Unpacked layer directories by diff ID (overlay lower layers), filled on first RUN.
    pub(crate) layer_dirs: BTreeMap<String, PathBuf>,
    pub(crate) isolation: Option<crate::rootfs::sandbox::Isolation>,
    pub(crate) run_counter: usize,
    /// Whether overlayfs mounts work here (`None` until the first RUN tries).
    pub(crate) overlay: Option<bool>,
    /// The single root filesystem of tree mode (no overlay, or in-place).
    pub(crate) tree: Option<crate::build::tree::Tree>,
    /// The layer cache, opened when the build starts (`--cache`).
    pub(crate) cache: Option<crate::build::cache::LayerCache>,
    /// Per stage: how many layers and history entries its base brought.
    stage_base: BTreeMap<usize, (usize, usize)>,
    _work: tempfile::TempDir,
}

impl Builder {
    /// Writes `entries` as the layer of a `kind` step of `image`: the image's media types, the
    /// build's mtime clamp, the compression that kind's layers take, and a "writing layer"
    /// progress indicator; off the runtime's worker threads.
    pub(crate) fn write_step_layer(
        &self,
        image: &StageImage,
        entries: Vec<crate::layer::LayerEntry>,
        kind: crate::build::cache::Cached,
    ) -> std::result::Result<crate::layer::LayerBlob, crate::layer::LayerError> {
        let opts = crate::layer::LayerOptions {
            media_types: image.media_types,
            mtime_clamp: self.settings.fixed_time,
        };
        let compression = self.layer_compression(kind);
        let progress = crate::report::Progress::bytes(
            "writing layer",
            Some(crate::layer::estimated_tar_size(&entries)),
        );
        let blob = tokio::task::block_in_place(|| {
            crate::layer::write_layer_with_progress(
                &self.blob_dir,
                entries,
                &opts,
                compression,
                &|n| progress.inc(n),
            )
        })?;
        progress.finish("");
        Ok(blob)
    }

    /// Opens the context, reads and parses the Dockerfile, and prepares a work directory.
    pub fn new(settings: BuildSettings, client: Client) -> Result<Builder> {
        std::fs::create_dir_all(&settings.work_dir).with_context(|| {
            format!("creating work directory `{}`", settings.work_dir.display())
        })?;
        let work = tempfile::Builder::new()
            .prefix("gantry-")
            .tempdir_in(&settings.work_dir)
            .with_context(|| {
                format!(
                    "creating a work directory in `{}`",
                    settings.work_dir.display()
                )
            })?;
        crate::interrupt::register_dir(work.path());
        // A directory context is used in place; any other source is fetched into the work
        // directory, which goes away with the build (or with this error).
        let mut root = crate::context::source::fetch(&settings.context, work.path())?;
        if let Some(sub) = &settings.context_sub_path {
            root = root.join(sub);
        }
        if !root.is_dir() {
            bail!(
                "build context `{}` is not a directory\nhint: pass --context with the directory holding your sources",
                root.display()
            );
        }
        let dockerfile_path = locate_dockerfile(&settings.dockerfile, &root)?;
        let text = std::fs::read_to_string(&dockerfile_path)
            .with_context(|| format!("reading Dockerfile `{}`", dockerfile_path.display()))?;
        let dockerfile_name = dockerfile_path.display().to_string();
        let dockerfile = dockerfile::parse(&text).map_err(|e| anyhow!("{dockerfile_name}:{e}"))?;
        if dockerfile.stages.is_empty() {
            bail!("{dockerfile_name}: no FROM instruction\nhint: a Dockerfile starts with `FROM image` (after optional ARGs)");
        }
        // A `<Dockerfile>.dockerignore` beside the Dockerfile wins over the context's.
        let specific = PathBuf::from(format!("{}.dockerignore", dockerfile_path.display()));
        let context = if specific.is_file() {
            BuildContext::with_ignore_file(&root, &specific)
        } else {
            BuildContext::open(&root)
        }
        .with_context(|| format!("opening build context `{}`", root.display()))?;

        let blob_dir = work.path().join("blobs/sha256");
        let spool_dir = work.path().join("spool");
        std::fs::create_dir_all(&blob_dir)?;
        std::fs::create_dir_all(&spool_dir)?;
        let created = crate::build::instructions::timestamp(settings.fixed_time);
        let build_args = BuildArgValues::new(&settings.build_args);
        Ok(Builder {
            stages: vec![None; dockerfile.stages.len()],
            settings,
            client,
            blob_dir,
            spool_dir,
            context,
            dockerfile,
            dockerfile_name,
            build_args,
            global_args: BTreeMap::new(),
            images: BTreeMap::new(),
            created,
            layer_dirs: BTreeMap::new(),
            isolation: None,
            run_counter: 0,
            overlay: (crate::env::var(crate::env::GANTRY_NO_OVERLAY).as_deref() == Some("1"))
                .then_some(false),
            tree: None,
            cache: None,
            stage_base: BTreeMap::new(),
            _work: work,
        })
    }

    /// Builds the target stage (and what it needs) and returns the finished image.
    pub async fn build(&mut self) -> Result<BuiltImage> {
        self.resolve_global_args()?;
        let target = self.target_index()?;
        let order = self.stages_to_build(target)?;
        if let Some(c) = &self.settings.cache {
            self.cache = Some(
                crate::build::cache::LayerCache::open(&self.client, c.repo.clone(), c.ttl_secs)
                    .await,
            );
        }
        for i in order {
            let stage = self.dockerfile.stages[i].clone();
            let name = stage
                .name
                .clone()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            info!("stage {}{name}: FROM {}", i, stage.base);
            let image = self.build_stage(&stage).await?;
            self.stages[i] = Some(image);
        }
        if let (Some(cache), Some(c)) = (&self.cache, &self.settings.cache) {
            if c.push {
                cache
                    .save(&self.client, &self.blob_dir, &self.spool_dir)
                    .await;
            }
        }
        let unused = self.build_args.unused();
        if !unused.is_empty() {
            warn!(
                "build arguments not consumed by any ARG: {}",
                unused.join(", ")
            );
        }
        let mut image = self.stages[target].take().expect("target stage was built");
        if self.settings.single_snapshot {
            self.single_snapshot(target, &mut image).await?;
        }
        crate::build::instructions::apply_cli_labels(&mut image.config, &self.settings.labels);
        crate::build::output::finish_image(self, image)
    }

    /// `--single-snapshot`: replaces the layers the stage added with one merged layer, and marks
    /// its history entries empty but one.
    async fn single_snapshot(&mut self, stage: usize, image: &mut StageImage) -> Result<()> {
        let (base_layers, base_history) = self.stage_base.get(&stage).copied().unwrap_or((0, 0));
        let added = &image.layers[base_layers..];
        if added.is_empty() {
            return Ok(());
        }
        self.ensure_local(added).await?;
        let inputs: Vec<(PathBuf, String)> = added
            .iter()
            .map(|l| {
                (
                    self.blob_path(&l.descriptor.digest),
                    l.descriptor.media_type.clone(),
                )
            })
            .collect();
        let opts = crate::layer::LayerOptions {
            media_types: image.media_types,
            mtime_clamp: self.settings.fixed_time,
        };
        let start = std::time::Instant::now();
        let spool = self.spool_dir.join("single-snapshot");
        let blob = tokio::task::block_in_place(|| {
            crate::build::squash::squash(&inputs, &spool, &self.blob_dir, &opts)
        })
        .context("--single-snapshot: merging the final stage's layers")?;
        let _ = std::fs::remove_dir_all(&spool);
        info!(
            "--single-snapshot: {} layer(s) merged into {} ({}) in {:.2?}",
            inputs.len(),
            short_digest(&blob.digest),
            crate::report::human_bytes(blob.size),
            start.elapsed()
        );
        image.layers.truncate(base_layers);
        image.config.rootfs.diff_ids.truncate(base_layers);
        image.config.rootfs.diff_ids.push(blob.diff_id.clone());
        image.layers.push(LayerRef {
            descriptor: crate::image::Descriptor::new(
                blob.media_type.clone(),
                blob.digest.clone(),
                blob.size,
            ),
            diff_id: blob.diff_id,
            remote: None,
        });
        image.index = None;
        for h in image.config.history.iter_mut().skip(base_history) {
            h.empty_layer = true;
        }
        image.config.history.push(crate::image::History {
            created: Some(self.created.clone()),
            created_by: Some("gantry build --single-snapshot".into()),
            author: None,
            comment: Some("the layers of the final stage, merged".into()),
            empty_layer: false,
        });
        Ok(())
    }

    fn resolve_global_args(&mut self) -> Result<()> {
        let platform = platform_args(&self.settings.platform, &Platform::host());
        let decls = self.dockerfile.global_args.clone();
        for decl in decls {
            let value = match self.build_args.take(&decl.name) {
                Some(v) => Some(v),
                None => match &decl.default {
                    Some(raw) => Some(self.expand_global(raw)?),
                    None => platform.get(&decl.name).cloned(),
                },
            };
            self.global_args.insert(decl.name, value);
        }
        Ok(())
    }

    /// Expands a word with the global scope: declared global ARGs and the platform arguments.
    fn expand_global(&self, word: &str) -> Result<String> {
        let platform = platform_args(&self.settings.platform, &Platform::host());
        let lookup = |name: &str| -> Option<String> {
            match self.global_args.get(name) {
                Some(v) => v.clone(),
                None => platform.get(name).cloned(),
            }
        };
        dockerfile::expand_word(word, self.dockerfile.escape, &lookup).map_err(|e| anyhow!("{e}"))
    }

    fn target_index(&self) -> Result<usize> {
        match &self.settings.target {
            None => Ok(self.dockerfile.stages.len() - 1),
            Some(t) => self.dockerfile.stage_by_name_or_index(t).ok_or_else(|| {
                let names: Vec<String> = self
                    .dockerfile
                    .stages
                    .iter()
                    .map(|s| s.name.clone().unwrap_or_else(|| s.index.to_string()))
                    .collect();
                anyhow!(
                    "--target `{t}` names no stage of {}\nhint: stages are: {}",
                    self.dockerfile_name,
                    names.join(", ")
                )
            }),
        }
    }

    /// The stages to build, in order: everything up to the target (kaniko's default), or only
    /// what the target needs with --skip-unused-stages.
    fn stages_to_build(&self, target: usize) -> Result<Vec<usize>> {
        if !self.settings.skip_unused_stages {
            return Ok((0..=target).collect());
        }
        let mut needed = vec![false; target + 1];
        needed[target] = true;
        for i in (0..=target).rev() {
            if !needed[i] {
                continue;
            }
            for dep in self.stage_dependencies(&self.dockerfile.stages[i])? {
                if dep < i {
                    needed[dep] = true;
                }
            }
        }
        Ok((0..=target).filter(|i| needed[*i]).collect())
    }

    fn stage_dependencies(&self, stage: &Stage) -> Result<Vec<usize>> {
        let mut deps = Vec::new();
        let base = self.expand_global(&stage.base)?;
        if let Some(i) = self.earlier_stage(&base, stage.index) {
            deps.push(i);
        }
        for ins in &stage.instructions {
            if let InstructionKind::Copy(c) | InstructionKind::Add(c) = &ins.kind {
                if let Some(from) = &c.from {
                    let from = self.expand_global(from)?;
                    if let Some(i) = self.earlier_stage(&from, stage.index) {
                        deps.push(i);
                    }
                }
            }
        }
        Ok(deps)
    }

    /// A stage named (or numbered) `name` that comes before stage `before`.
    pub(crate) fn earlier_stage(&self, name: &str, before: usize) -> Option<usize> {
        self.dockerfile
            .stage_by_name_or_index(name)
            .filter(|i| *i < before)
    }

    async fn build_stage(&mut self, stage: &Stage) -> Result<StageImage> {
        let base = self.expand_global(&stage.base)?;
        let platform = match &stage.platform {
            Some(p) => {
                let p = self.expand_global(p)?;
                Platform::parse(&p).with_context(|| {
                    format!("{}:{}: FROM --platform", self.dockerfile_name, stage.line)
                })?
            }
            None => self.settings.platform.clone(),
        };
        let mut image = if let Some(i) = self.earlier_stage(&base.to_ascii_lowercase(), stage.index)
        {
            let mut img = self.stages[i]
                .clone()
                .ok_or_else(|| anyhow!("stage `{base}` was not built"))?;
            img.base_name = format!("stage {base}");
            img
        } else if base == "scratch" {
            scratch_image(&platform)
        } else {
            self.pull_image(&base, &platform)
                .await
                .with_context(|| format!("{}:{}: FROM {base}", self.dockerfile_name, stage.line))?
        };
        self.stage_base.insert(
            stage.index,
            (image.layers.len(), image.config.history.len()),
        );
        let mut scope = StageScope::default();
        // ONBUILD triggers of the base run first, then the child image carries none of them.
        let triggers = image.config.config.on_build.take().unwrap_or_default();
        for trigger in triggers {
            let ins = dockerfile::parse_instruction(&trigger, self.dockerfile.escape)
                .map_err(|e| anyhow!("ONBUILD trigger `{trigger}` of {}: {e}", image.base_name))?;
            info!("running ONBUILD trigger: {trigger}");
            self.dispatch(&mut image, &mut scope, stage, &ins).await?;
        }
        for ins in &stage.instructions {
            self.dispatch(&mut image, &mut scope, stage, ins).await?;
        }
        Ok(image)
    }

    /// Pulls an image's manifest and config (no layers) for use as a base or a COPY source.
    pub(crate) async fn pull_image(
        &mut self,
        name: &str,
        platform: &Platform,
    ) -> Result<StageImage> {
        let key = format!("{name}|{platform}");
        if let Some(img) = self.images.get(&key) {
            return Ok(img.clone());
        }
        let reference = Reference::parse(name).map_err(|e| anyhow!("{e}"))?;
        let resolved = self.client.resolve_image(&reference, platform).await?;
        info!("resolved {} to {}", reference, resolved.digest);
        let media_types = MediaTypes::from_manifest(&resolved.media_type);
        let config = resolved.config;
        if config.rootfs.diff_ids.len() != resolved.manifest.layers.len() {
            bail!(
                "image `{reference}` has {} layers but its config lists {} diff IDs\nhint: the image is malformed; rebuild or re-push it",
                resolved.manifest.layers.len(),
                config.rootfs.diff_ids.len()
            );
        }
        let layers = resolved
            .manifest
            .layers
            .iter()
            .zip(config.rootfs.diff_ids.iter())
            .map(|(d, diff)| LayerRef {
                descriptor: d.clone(),
                diff_id: diff.clone(),
                remote: Some(resolved.reference.clone()),
            })
            .collect();
        let img = StageImage {
            config,
            layers,
            media_types,
            index: None,
            base_name: reference.to_string(),
        };
        self.images.insert(key, img.clone());
        Ok(img)
    }

    /// Where a blob lives (or will live) in the work directory.
    pub(crate) fn blob_path(&self, digest: &str) -> PathBuf {
        self.blob_dir.join(digest.trim_start_matches("sha256:"))
    }

    /// Downloads the layers of `image` that are not in the work directory yet, in parallel.
    pub(crate) async fn ensure_local(&self, layers: &[LayerRef]) -> Result<()> {
        let mut tasks = Vec::new();
        for layer in layers {
            let dest = self.blob_path(&layer.descriptor.digest);
            if dest.exists() {
                continue;
            }
            if let Some(dir) = &self.settings.cache_dir {
                if crate::build::warm::take_from_cache(dir, &layer.descriptor.digest, &dest) {
                    info!(
                        "layer {} from --cache-dir",
                        short_digest(&layer.descriptor.digest)
                    );
                    continue;
                }
            }
            let Some(remote) = layer.remote.clone() else {
                bail!(
                    "layer {} is neither local nor in a registry",
                    layer.descriptor.digest
                );
            };
            let client = self.client.clone();
            let desc = layer.descriptor.clone();
            // Layers from the layer cache are not base-image layers: they stay out of --cache-dir.
            let from_layer_cache = self.cache.as_ref().is_some_and(|c| c.repo == remote);
            let cache_dir = self
                .settings
                .cache_dir
                .clone()
                .filter(|_| !from_layer_cache);
            tasks.push(tokio::spawn(async move {
                let mut tmp = dest.clone().into_os_string();
                tmp.push(".tmp");
                let progress = crate::report::Progress::watch_file(
                    format!("pulling {}", short_digest(&desc.digest)),
                    Some(desc.size),
                    tmp.into(),
                );
                let r = client.fetch_blob(&remote, &desc, &dest).await;
                progress.finish(&format!("({})", crate::report::human_bytes(desc.size)));
                if let (Ok(()), Some(dir)) = (&r, &cache_dir) {
                    crate::build::warm::store_in_cache(dir, &desc.digest, &dest);
                }
                r
            }));
        }
        for t in tasks {
            t.await
                .map_err(|e| anyhow!("download task failed: {e}"))??;
        }
        Ok(())
    }

    /// The filesystem index of an image, built from its layers on first need.
    pub(crate) async fn index_of(&self, image: &mut StageImage) -> Result<Arc<FsIndex>> {
        if let Some(idx) = &image.index {
            return Ok(idx.clone());
        }
        self.ensure_local(&image.layers).await?;
        let layers: Vec<(PathBuf, String)> = image
            .layers
            .iter()
            .map(|l| {
                (
                    self.blob_path(&l.descriptor.digest),
                    l.descriptor.media_type.clone(),
                )
            })
            .collect();
        let start = std::time::Instant::now();
        let idx = tokio::task::block_in_place(|| FsIndex::from_layers(&layers))?;
        tracing::debug!(
            "indexed {} paths of {} in {:?}",
            idx.len(),
            image.base_name,
            start.elapsed()
        );
        let idx = Arc::new(idx);
        image.index = Some(idx.clone());
        Ok(idx)
    }

    /// Appends a history entry (and a layer, when there is one) to the image.
    pub(crate) fn record(
        &self,
        image: &mut StageImage,
        ins: &Instruction,
        layer: Option<LayerRef>,
    ) {
        let empty_layer = layer.is_none();
        if let Some(layer) = layer {
            image.config.rootfs.diff_ids.push(layer.diff_id.clone());
            image.layers.push(layer);
        }
        image.config.history.push(History {
            created: Some(self.created.clone()),
            created_by: Some(ins.original.clone()),
            author: None,
            comment: None,
            empty_layer,
        });
    }

    async fn dispatch(
        &mut self,
        image: &mut StageImage,
        scope: &mut StageScope,
        stage: &Stage,
        ins: &Instruction,
    ) -> Result<()> {
        let at = format!("{}:{}", self.dockerfile_name, ins.line);
        match &ins.kind {
            InstructionKind::Run(args) => {
                let layer = crate::build::run::run(self, image, scope, ins, args)
                    .await
                    .with_context(|| format!("{at}: {}", ins.original))?;
                self.record(image, ins, layer);
            }
            InstructionKind::Arg(decls) => {
                for decl in decls {
                    let value = match self.build_args.take(&decl.name) {
                        Some(v) => Some(v),
                        None => match &decl.default {
                            Some(raw) => Some(
                                self.expand(&ins.kind, image, scope, raw)
                                    .with_context(|| at.clone())?,
                            ),
                            None => {
                                self.global_args
                                    .get(&decl.name)
                                    .cloned()
                                    .flatten()
                                    .or_else(|| {
                                        platform_args(&self.settings.platform, &Platform::host())
                                            .get(&decl.name)
                                            .cloned()
                                    })
                            }
                        },
                    };
                    scope.args.insert(decl.name.clone(), value);
                }
                self.cache_skipped(ins, METADATA_STEP);
                self.record(image, ins, None);
            }
            InstructionKind::Copy(args) | InstructionKind::Add(args) => {
                let is_add = matches!(ins.kind, InstructionKind::Add(_));
                let layer = crate::build::copy::copy(self, image, scope, stage, ins, args, is_add)
                    .await
                    .with_context(|| format!("{at}: {}", ins.original))?;
                self.record(image, ins, Some(layer));
            }
            InstructionKind::Workdir(raw) => {
                let dir = self
                    .expand(&ins.kind, image, scope, raw)
                    .with_context(|| at.clone())?;
                let layer = crate::build::copy::workdir(self, image, ins, &dir)
                    .await
                    .with_context(|| format!("{at}: {}", ins.original))?;
                self.record(image, ins, layer);
            }
            _ => {
                let lookup_env = image.config.config.env.clone().unwrap_or_default();
                let lookup = |name: &str| scope.lookup(&lookup_env, name);
                crate::build::instructions::apply_metadata(
                    &mut image.config,
                    &ins.kind,
                    self.dockerfile.escape,
                    &lookup,
                )
                .map_err(|e| anyhow!("{at}: {}: {e}", ins.original))?;
                self.cache_skipped(ins, METADATA_STEP);
                self.record(image, ins, None);
            }
        }
        Ok(())
    }

    /// A word of instruction `kind` with the stage's variables (ENV over ARG) substituted, when
    /// `kind` is one Docker expands ([`InstructionKind::expands_env`]), else as written.
    pub(crate) fn expand(
        &self,
        kind: &InstructionKind,
        image: &StageImage,
        scope: &StageScope,
        word: &str,
    ) -> Result<String> {
        let env = image.config.config.env.clone().unwrap_or_default();
        let lookup = |name: &str| scope.lookup(&env, name);
        crate::build::instructions::Expander::new(kind, self.dockerfile.escape, &lookup)
            .word(word)
            .map_err(|e| anyhow!("{e}"))
    }

    /// `--cleanup`: empties the in-place root filesystem. A chroot's root lives in the work
    /// directory, which goes away with the builder.
    pub fn cleanup(&mut self) -> Result<()> {
        match self.tree.as_mut() {
            Some(tree) if self.isolation == Some(crate::rootfs::sandbox::Isolation::InPlace) => {
                tree.clean()
            }
            _ => {
                info!("--cleanup: the root filesystem is in the work directory, removed with it");
                Ok(())
            }
        }
    }

    pub fn work_path(&self) -> &Path {
        self._work.path()
    }
}

impl Drop for Builder {
    fn drop(&mut self) {
        // The work directory goes with `_work`; the interrupt handler need not remove it.
        crate::interrupt::unregister_dir(self._work.path());
    }
}

/// What the layer cache says of a step that makes no layer.
const METADATA_STEP: &str = "no layer to cache, it changes only the config and history";

/// An empty image for `FROM scratch`.
fn scratch_image(platform: &Platform) -> StageImage {
    StageImage {
        config: ImageConfig {
            architecture: platform.architecture.clone(),
            os: platform.os.clone(),
            variant: platform.variant.clone(),
            config: crate::image::ContainerConfig {
                env: Some(vec![
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                ]),
                ..Default::default()
            },
            ..Default::default()
        },
        layers: Vec::new(),
        media_types: MediaTypes::Oci,
        index: Some(Arc::new(FsIndex::new())),
        base_name: "scratch".into(),
    }
}

/// Finds the Dockerfile: as given (relative to the working directory), else inside the context.
fn locate_dockerfile(given: &str, context: &Path) -> Result<PathBuf> {
    let p = PathBuf::from(given);
    if p.is_file() {
        return Ok(p);
    }
    let in_context = context.join(given);
    if in_context.is_file() {
        return Ok(in_context);
    }
    bail!(
        "Dockerfile `{given}` not found (looked in the working directory and in `{}`)\nhint: pass --dockerfile with its path",
        context.display()
    )
}

pub(crate) fn short_digest(d: &str) -> &str {
    let hex = d.trim_start_matches("sha256:");
    &hex[..hex.len().min(12)]
}
