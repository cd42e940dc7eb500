//! The layer cache as each step meets it: which steps are cached, their keys, the lookup with
//! its one log line (hit, miss or skipped, and why), and the check of a hit's blob before the
//! image uses it.

use tracing::{info, warn};

use super::key::{self, Reads, StepKey};
use super::Lookup;
use crate::build::executor::{short_digest, Builder, LayerRef, StageImage};
use crate::build::scope::StageScope;
use crate::dockerfile::{Instruction, RunArgs};
use crate::layer::Compression;
use crate::registry::RegistryError;

/// The kinds of step the cache can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cached {
    /// RUN and WORKDIR: `--cache-run-layers`.
    Run,
    /// COPY and ADD: `--cache-copy-layers`.
    Copy,
}

impl Builder {
    /// Whether steps of this kind are looked up and stored.
    pub(crate) fn caches(&self, kind: Cached) -> bool {
        match (&self.cache, &self.settings.cache) {
            (Some(_), Some(c)) => match kind {
                Cached::Run => c.run_layers,
                Cached::Copy => c.copy_layers,
            },
            _ => false,
        }
    }

    /// How a step of this kind writes its layer: uncompressed when it goes to the cache and
    /// `--compressed-caching=false`, gzip otherwise.
    pub(crate) fn layer_compression(&self, kind: Cached) -> Compression {
        match &self.settings.cache {
            Some(c) if !c.compressed && self.caches(kind) => Compression::None,
            _ => Compression::Gzip,
        }
    }

    /// Logs that the cache leaves a step alone, when the build has a cache at all.
    pub(crate) fn cache_skipped(&self, ins: &Instruction, why: &str) {
        if self.cache.is_some() {
            info!("cache skipped for `{}`: {why}", ins.original);
        }
    }

    fn parent_key(&self, image: &StageImage, kind: Cached, reads: Reads) -> String {
        key::parent(
            &self.settings.platform.to_string(),
            image,
            self.layer_compression(kind),
            self.settings.fixed_time,
            reads,
        )
    }

    /// The key of a RUN, or `None` (logged) when RUN steps are not cached.
    pub(crate) fn run_key(
        &self,
        image: &StageImage,
        scope: &StageScope,
        ins: &Instruction,
        args: &RunArgs,
    ) -> Option<StepKey> {
        if !self.caches(Cached::Run) {
            self.cache_skipped(ins, "--cache-run-layers=false");
            return None;
        }
        let visible: Vec<(String, String)> = scope
            .arg_values()
            .into_iter()
            .chain(self.build_args.proxies())
            .collect();
        let parent = self.parent_key(image, Cached::Run, Reads::RunConfig);
        Some(key::run(
            &parent,
            &format!("{}\n{args:?}", ins.original),
            &visible,
        ))
    }

    /// The key of a WORKDIR (cached with RUN layers), or `None` (logged).
    pub(crate) fn workdir_key(
        &self,
        image: &StageImage,
        ins: &Instruction,
        path: &str,
    ) -> Option<StepKey> {
        if !self.caches(Cached::Run) {
            self.cache_skipped(ins, "--cache-run-layers=false");
            return None;
        }
        let parent = self.parent_key(image, Cached::Run, Reads::Nothing);
        Some(key::workdir(&parent, path))
    }

    /// The key of a COPY or ADD, or `None` (logged) when they are not cached.
    pub(crate) fn copy_key(
        &self,
        image: &StageImage,
        ins: &Instruction,
        instruction: &str,
        from_layers: Option<&[LayerRef]>,
        items: &[crate::build::sources::SourceMatch],
    ) -> Result<Option<StepKey>, key::KeyError> {
        if !self.caches(Cached::Copy) {
            self.cache_skipped(ins, "--cache-copy-layers is off");
            return Ok(None);
        }
        let start = std::time::Instant::now();
        let parent = self.parent_key(image, Cached::Copy, Reads::WorkingDir);
        let k = key::copy(
            &parent,
            instruction,
            from_layers,
            items,
            self.settings.fixed_time,
        )?;
        tracing::debug!(
            "cache key of `{}` computed in {:.2?}",
            ins.original,
            start.elapsed()
        );
        Ok(Some(k))
    }

    /// Looks a step up and logs the outcome. `Some(layer)` is a usable hit (`Some(None)`: the
    /// step changed nothing); `None` means run the step (a miss, or a hit whose blob failed its
    /// check, which is warned about), then [`Builder::cache_add`] what it made.
    pub(crate) async fn cache_lookup(
        &mut self,
        ins: &Instruction,
        key: &StepKey,
    ) -> Option<Option<LayerRef>> {
        let cache = self.cache.as_ref()?;
        let short = &key.key[..12];
        let entry = match cache.lookup(key) {
            Lookup::Miss(why) => {
                info!("cache miss for `{}` (key {short}): {why}", ins.original);
                return None;
            }
            Lookup::Hit(entry) => entry,
        };
        let Some(layer) = cache.layer_of(&entry) else {
            info!(
                "cache hit for `{}` (key {short}): it changed nothing",
                ins.original
            );
            return Some(None);
        };
        let repo = cache.repo.clone();
        let start = std::time::Instant::now();
        match self.verify_cached(layer).await {
            Ok(layer) => {
                info!(
                    "cache hit for `{}` (key {short}): layer {} from {repo}, verified in {:.2?}",
                    ins.original,
                    short_digest(&layer.descriptor.digest),
                    start.elapsed()
                );
                Some(Some(layer))
            }
            Err(e) => {
                let first = e.to_string();
                let first = first.lines().next().unwrap_or_default();
                warn!(
                    "cached layer for `{}` is unusable, running the step again: {first}",
                    ins.original
                );
                None
            }
        }
    }

    /// Makes sure a hit's blob is whole before the image uses it: read from the cache
    /// repository into the work directory, its size and digest checked on the way (see the
    /// module documentation of `cache` for why nothing cheaper is sound).
    async fn verify_cached(&mut self, layer: LayerRef) -> Result<LayerRef, RegistryError> {
        let digest = layer.descriptor.digest.clone();
        if self
            .cache
            .as_ref()
            .is_some_and(|c| c.verified.contains(&digest))
        {
            return Ok(layer);
        }
        let local = self.blob_path(&digest);
        if local.exists() {
            // Made or checked earlier in this build: used from here. The repository's copy was
            // not read, so it is not mounted either (a push uploads this one if needed).
            return Ok(LayerRef {
                remote: None,
                ..layer
            });
        }
        let Some(repo) = layer.remote.clone() else {
            return Ok(layer);
        };
        self.client
            .fetch_blob(&repo, &layer.descriptor, &local)
            .await?;
        if let Some(c) = self.cache.as_mut() {
            c.verified.insert(digest);
        }
        Ok(layer)
    }

    /// Remembers what a step that missed made, to be saved after the build.
    pub(crate) fn cache_add(&mut self, key: StepKey, layer: Option<&LayerRef>) {
        if let Some(cache) = self.cache.as_mut() {
            cache.add(key, layer);
        }
    }
}
