//! The remote layer cache (`--cache`): what a step produced, stored in a registry repository and
//! found again by a key, so a rebuild neither runs the step nor uploads its layer again.
//!
//! **What is cached.** RUN (and WORKDIR, whose layer depends on nothing but the image before it)
//! with `--cache-run-layers`, the default; COPY and ADD with `--cache-copy-layers`. Metadata
//! steps make no layer and are logged as skipped. Every step of a build with `--cache` gets one
//! log line saying hit, miss or skipped, and why (see [`key`] for the keys and [`step`] for the
//! lookup).
//!
//! **Storage: one tag, bounded.** The cache repository (`--cache-repo`, else `<first
//! destination's repository>/cache`) holds a single tag, [`CACHE_TAG`]. It is an OCI image
//! manifest whose config blob ([`CONFIG_MEDIA_TYPE`]) lists the entries — key, layer descriptor
//! (none for a RUN that changed nothing), diff ID, creation time — and whose layers are every
//! cached layer, so the registry keeps them and can mount them into the destination. One request
//! for the manifest and one for the config give every entry, so all of a build's lookups are
//! answered from memory at once. After the build the new entries are merged into what the tag
//! holds then (another build may have written meanwhile), entries older than `--cache-ttl` are
//! dropped, and at most [`MAX_ENTRIES`] (the newest) are kept. Two builds writing at the same
//! moment can lose each other's new entries; that costs a later cache miss, never a wrong hit.
//!
//! **A hit is verified before it is used.** The entry list says which blob a step made, but only
//! reading the blob proves the registry still holds those bytes: a HEAD answer or a mount trusts
//! the registry's own bookkeeping, and a blob whose stored content went bad still "exists". So
//! every hit's layer is downloaded into the work directory and digest-checked (which also makes
//! it ready for a later RUN, a tarball or a push to another registry); a layer that fails the
//! check gives one warning and the step is run again. Only then is it mounted into the
//! destination, never uploaded.
//!
//! **Failure is never fatal.** A cache repository that cannot be read (unreachable, unauthorised,
//! malformed) gives one warning and a build without cache; one that cannot be written gives one
//! warning after a successful build.

pub mod key;
mod step;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

pub use key::StepKey;
pub use step::Cached;

use crate::build::executor::LayerRef;
use crate::image::{self, Descriptor, Manifest};
use crate::registry::{BlobSource, Client, PushBlob, PushImage, Reference, RegistryError};

/// The one tag the cache repository holds.
pub const CACHE_TAG: &str = "gantry-cache-v1";
/// The media type of the entry list (the manifest's config blob).
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.gantry.cache.v1+json";
/// How many entries the cache keeps (the newest).
pub const MAX_ENTRIES: usize = 1000;
/// kaniko's default `--cache-ttl`: two weeks.
pub const DEFAULT_TTL_SECS: u64 = 336 * 3600;

/// One cached step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    /// The layer the step produced; `None` when it changed nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_id: Option<String>,
    /// Seconds since the epoch.
    pub created: i64,
    /// The [`StepKey::parent`] and [`StepKey::what`] parts of the key, kept to say why a later
    /// lookup missed (absent in entries written before they existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub what: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct EntryList {
    entries: Vec<Entry>,
}

/// What a lookup found.
pub enum Lookup {
    Hit(Box<Entry>),
    Miss(&'static str),
}

/// The layer cache of one build.
pub struct LayerCache {
    /// The cache repository (no tag).
    pub repo: Reference,
    ttl_secs: i64,
    /// `false` when the repository could not be read: every lookup misses and nothing is saved.
    usable: bool,
    known: HashMap<String, Entry>,
    /// `(parent, what)` and `what` of every known entry, to explain misses.
    known_steps: HashSet<(String, String)>,
    known_whats: HashSet<String>,
    /// Layer digests read back from the repository and found whole in this build.
    pub(crate) verified: HashSet<String>,
    added: Vec<Entry>,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Parses a Go duration as kaniko's `--cache-ttl` takes it (`336h`, `24h0m0s`, `90m`, `30s`).
pub fn parse_ttl(s: &str) -> Result<u64, String> {
    let bad = || format!("`{s}` is not a duration; use e.g. `336h`, `24h30m` or `90s`");
    let s = s.trim();
    if s == "0" {
        return Ok(0);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_len == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return Err(bad()),
        };
        total += n * secs;
        rest = &rest[unit_len..];
    }
    Ok(total.round() as u64)
}

impl LayerCache {
    /// Reads the cache repository's entry list. Never fails: a repository that cannot be read
    /// gives a warning and a cache that always misses.
    pub async fn open(client: &Client, repo: Reference, ttl_secs: u64) -> LayerCache {
        let mut cache = LayerCache {
            repo,
            ttl_secs: i64::try_from(ttl_secs).unwrap_or(i64::MAX),
            usable: true,
            known: HashMap::new(),
            known_steps: HashSet::new(),
            known_whats: HashSet::new(),
            verified: HashSet::new(),
            added: Vec::new(),
        };
        let start = std::time::Instant::now();
        match read_entries(client, &cache.repo).await {
            Ok(entries) => {
                info!(
                    "layer cache {}: {} entries, read in {:.2?}",
                    cache.repo,
                    entries.len(),
                    start.elapsed()
                );
                for e in &entries {
                    if let (Some(p), Some(w)) = (&e.parent, &e.what) {
                        cache.known_steps.insert((p.clone(), w.clone()));
                    }
                    if let Some(w) = &e.what {
                        cache.known_whats.insert(w.clone());
                    }
                }
                cache.known = entries.into_iter().map(|e| (e.key.clone(), e)).collect();
            }
            Err(e) => {
                let first = e.to_string();
                let first = first.lines().next().unwrap_or_default();
                warn!(
                    "layer cache {} cannot be read, building without it: {first}",
                    cache.repo
                );
                cache.usable = false;
            }
        }
        cache
    }

    /// Looks a step up, honouring the TTL; a miss says why, as far as the entries tell.
    pub fn lookup(&self, key: &StepKey) -> Lookup {
        if !self.usable {
            return Lookup::Miss("the cache repository cannot be read");
        }
        match self.known.get(&key.key) {
            Some(e) if now() - e.created > self.ttl_secs => {
                Lookup::Miss("the entry is older than --cache-ttl")
            }
            Some(e) => Lookup::Hit(Box::new(e.clone())),
            None if self
                .known_steps
                .contains(&(key.parent.clone(), key.what.clone())) =>
            {
                Lookup::Miss(key.inputs_changed)
            }
            None if self.known_whats.contains(&key.what) => Lookup::Miss(
                "the step is cached only on top of another image (the base image, an earlier \
                 step, --reproducible or --compressed-caching differs)",
            ),
            None => Lookup::Miss("the step is not in the cache"),
        }
    }

    /// The layer of a hit, as a layer of the image being built (it lives in the cache
    /// repository until something needs it locally).
    pub fn layer_of(&self, e: &Entry) -> Option<LayerRef> {
        match (&e.layer, &e.diff_id) {
            (Some(desc), Some(diff_id)) => Some(LayerRef {
                descriptor: desc.clone(),
                diff_id: diff_id.clone(),
                remote: Some(self.repo.clone()),
            }),
            _ => None,
        }
    }

    /// Remembers what a step produced, to be saved after the build.
    pub fn add(&mut self, key: StepKey, layer: Option<&LayerRef>) {
        if !self.usable {
            return;
        }
        self.added.push(Entry {
            key: key.key,
            layer: layer.map(|l| l.descriptor.clone()),
            diff_id: layer.map(|l| l.diff_id.clone()),
            created: now(),
            parent: Some(key.parent),
            what: Some(key.what),
        });
    }

    /// Writes the new entries (and their layers) to the cache repository. Never fails the
    /// build: a cache that cannot be written gives one warning.
    pub async fn save(&self, client: &Client, blob_dir: &Path, spool_dir: &Path) {
        if !self.usable || self.added.is_empty() {
            return;
        }
        let start = std::time::Instant::now();
        match self.write(client, blob_dir, spool_dir).await {
            Ok(n) => info!(
                "layer cache {}: {} new entries saved ({n} kept) in {:.2?}",
                self.repo,
                self.added.len(),
                start.elapsed()
            ),
            Err(e) => {
                let first = e.to_string();
                let first = first.lines().next().unwrap_or_default();
                warn!("layer cache {} was not updated: {first}", self.repo);
            }
        }
    }

    async fn write(&self, client: &Client, blob_dir: &Path, spool_dir: &Path) -> Result<usize> {
        // Merge with what the tag holds now: another build may have written since we read it.
        let current = read_entries(client, &self.repo).await.unwrap_or_default();
        let mut by_key: HashMap<String, Entry> = HashMap::new();
        for e in current.into_iter().chain(self.added.iter().cloned()) {
            match by_key.get(&e.key) {
                Some(old) if old.created >= e.created => {}
                _ => {
                    by_key.insert(e.key.clone(), e);
                }
            }
        }
        let t = now();
        let mut entries: Vec<Entry> = by_key
            .into_values()
            .filter(|e| t - e.created <= self.ttl_secs)
            .collect();
        entries.sort_by(|a, b| b.created.cmp(&a.created).then(a.key.cmp(&b.key)));
        entries.truncate(MAX_ENTRIES);

        let added: HashMap<&str, ()> = self
            .added
            .iter()
            .filter_map(|e| e.layer.as_ref().map(|l| (l.digest.as_str(), ())))
            .collect();
        let mut layers: Vec<Descriptor> = Vec::new();
        let mut blobs = Vec::new();
        for e in &entries {
            let Some(desc) = &e.layer else { continue };
            if layers.iter().any(|d| d.digest == desc.digest) {
                continue;
            }
            let local = blob_dir.join(desc.digest.trim_start_matches("sha256:"));
            let source = if added.contains_key(desc.digest.as_str()) && local.exists() {
                BlobSource::File(local)
            } else {
                BlobSource::Remote(self.repo.clone())
            };
            blobs.push(PushBlob {
                descriptor: desc.clone(),
                source,
            });
            layers.push(desc.clone());
        }
        let config = serde_json::to_vec(&EntryList {
            entries: entries.clone(),
        })?;
        let config_digest = image::sha256_digest(&config);
        let config_path = spool_dir.join(format!(
            "cache-{}",
            config_digest.trim_start_matches("sha256:")
        ));
        std::fs::write(&config_path, &config)?;
        let config_desc = Descriptor::new(CONFIG_MEDIA_TYPE, config_digest, config.len() as u64);
        blobs.push(PushBlob {
            descriptor: config_desc.clone(),
            source: BlobSource::File(config_path),
        });
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(image::OCI_MANIFEST.to_string()),
            config: config_desc,
            layers,
            annotations: BTreeMap::new(),
        };
        let push = PushImage {
            manifest_bytes: image::canonical_json(&manifest),
            media_type: image::OCI_MANIFEST.to_string(),
            blobs,
        };
        client
            .push_image(&self.repo.with_tag(CACHE_TAG), &push)
            .await?;
        Ok(entries.len())
    }
}

/// The entries the cache tag lists now; an absent tag or repository is an empty cache.
async fn read_entries(client: &Client, repo: &Reference) -> Result<Vec<Entry>> {
    let tagged = repo.with_tag(CACHE_TAG);
    let fetched = match client.get_manifest(&tagged).await {
        Ok(f) => f,
        Err(RegistryError::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let manifest: Manifest = serde_json::from_slice(&fetched.bytes)
        .map_err(|e| anyhow::anyhow!("`{tagged}` is not a gantry cache manifest: {e}"))?;
    if manifest.config.media_type != CONFIG_MEDIA_TYPE {
        anyhow::bail!(
            "`{tagged}` is not a gantry layer cache (config type `{}`)",
            manifest.config.media_type
        );
    }
    let bytes = client.fetch_blob_bytes(repo, &manifest.config).await?;
    let list: EntryList = serde_json::from_slice(&bytes)
        .map_err(|e| anyhow::anyhow!("the entry list of `{tagged}` is malformed: {e}"))?;
    // An entry whose layer the manifest does not hold is not usable (the registry may have
    // collected the blob).
    let held: std::collections::HashSet<&str> =
        manifest.layers.iter().map(|d| d.digest.as_str()).collect();
    Ok(list
        .entries
        .into_iter()
        .filter(|e| {
            e.layer
                .as_ref()
                .is_none_or(|l| held.contains(l.digest.as_str()))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_with(entries: Vec<Entry>, usable: bool) -> LayerCache {
        let mut c = LayerCache {
            repo: Reference::parse("registry.test/app/cache").unwrap(),
            ttl_secs: 3600,
            usable,
            known: HashMap::new(),
            known_steps: HashSet::new(),
            known_whats: HashSet::new(),
            verified: HashSet::new(),
            added: Vec::new(),
        };
        for e in entries {
            c.known_steps
                .insert((e.parent.clone().unwrap(), e.what.clone().unwrap()));
            c.known_whats.insert(e.what.clone().unwrap());
            c.known.insert(e.key.clone(), e);
        }
        c
    }

    fn step(key: &str, parent: &str, what: &str) -> StepKey {
        StepKey {
            key: key.into(),
            parent: parent.into(),
            what: what.into(),
            inputs_changed: "the inputs changed",
        }
    }

    fn entry(k: &StepKey, age: i64) -> Entry {
        Entry {
            key: k.key.clone(),
            layer: None,
            diff_id: None,
            created: now() - age,
            parent: Some(k.parent.clone()),
            what: Some(k.what.clone()),
        }
    }

    fn miss(l: Lookup) -> &'static str {
        match l {
            Lookup::Miss(why) => why,
            Lookup::Hit(e) => panic!("unexpected hit {e:?}"),
        }
    }

    #[test]
    fn a_miss_says_which_part_of_the_key_differs() {
        let cached = step("k1", "p1", "w1");
        let old = step("k0", "p0", "w0");
        let c = cache_with(vec![entry(&cached, 10), entry(&old, 7200)], true);
        assert!(matches!(c.lookup(&cached), Lookup::Hit(_)));
        assert_eq!(miss(c.lookup(&old)), "the entry is older than --cache-ttl");
        assert_eq!(
            miss(c.lookup(&step("k2", "p1", "w1"))),
            "the inputs changed"
        );
        assert!(miss(c.lookup(&step("k3", "p9", "w1"))).contains("on top of another image"));
        assert_eq!(
            miss(c.lookup(&step("k4", "p1", "w9"))),
            "the step is not in the cache"
        );
        let unread = cache_with(vec![entry(&cached, 10)], false);
        assert_eq!(
            miss(unread.lookup(&cached)),
            "the cache repository cannot be read"
        );
    }

    #[test]
    fn entries_written_before_the_key_parts_were_kept_still_read() {
        let list: EntryList =
            serde_json::from_str(r#"{"entries":[{"key":"abc","created":5}]}"#).unwrap();
        assert_eq!(list.entries[0].parent, None);
        let written = serde_json::to_string(&EntryList {
            entries: vec![entry(&step("k", "p", "w"), 0)],
        })
        .unwrap();
        assert!(written.contains(r#""parent":"p","what":"w""#), "{written}");
    }

    #[test]
    fn ttl_takes_go_durations() {
        assert_eq!(parse_ttl("336h").unwrap(), 336 * 3600);
        assert_eq!(parse_ttl("24h30m").unwrap(), 24 * 3600 + 1800);
        assert_eq!(parse_ttl("1h0m0s").unwrap(), 3600);
        assert_eq!(parse_ttl("90s").unwrap(), 90);
        assert_eq!(parse_ttl("1.5h").unwrap(), 5400);
        assert_eq!(parse_ttl("0").unwrap(), 0);
        for bad in ["", "h", "10", "10d", "-1h", "1h x"] {
            let e = parse_ttl(bad).unwrap_err();
            assert!(e.contains("not a duration"), "{bad}: {e}");
        }
    }
}
