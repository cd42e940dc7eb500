//! Cache keys: what a step's layer depends on, hashed, so that equal keys mean equal layers.
//!
//! A key is the SHA-256 of three parts, each itself a hash, kept apart so that a miss can say
//! which part differs from what the cache holds:
//!
//! - **parent**: the image before the step as far as the step can see it — the cache scheme, the
//!   target platform, the media-type family and layer encoding (`--compressed-caching`), the
//!   mtime rule (`--reproducible` / SOURCE_DATE_EPOCH replace every mtime), the diff IDs of every
//!   layer so far (the base image's and each earlier step's), and the parts of the config the
//!   step reads (RUN: Env, User, WorkingDir, Shell; COPY/ADD: WorkingDir, for a relative
//!   destination). Keys chain on layer *content*, not on earlier keys: a step that misses and is
//!   rebuilt into an identical layer leaves the keys after it unchanged, and they hit; a config
//!   change a step cannot see (a LABEL, an unrelated ENV for COPY) does not invalidate it.
//! - **what**: the instruction. RUN: as written, with its parsed flags and heredocs (the shell
//!   expands it at run time from Env and the build arguments). COPY/ADD: every word expanded —
//!   sources, destination, `--from`, `--chown`, `--chmod`, `--link`, `--checksum`, heredocs.
//! - **inputs**: RUN: the build arguments and proxy variables visible to it. COPY/ADD: for
//!   `--from`, the diff IDs of the source image (which fix every file in it); otherwise every item
//!   actually copied after `.dockerignore` — its path, type, size, content digest, symlink target,
//!   mode and owner as written to the layer (context files are written as root's unless
//!   `--chown`), and its mtime only when it reaches the layer (not under `--reproducible`). A URL
//!   source is downloaded to be hashed; a local archive ADD extracts is hashed as the archive.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use sha2::{Digest as _, Sha256};

use crate::build::executor::{LayerRef, StageImage};
use crate::build::sources::{ItemKind, SourceItem, SourceMatch};
use crate::layer::{Compression, EntrySource};

use super::CACHE_TAG;

/// A step's cache key and its parts (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepKey {
    /// 64 hex digits.
    pub key: String,
    /// The parent and instruction parts, shortened: they only explain misses.
    pub parent: String,
    pub what: String,
    /// Why a lookup misses when an entry with the same parent and instruction exists.
    pub inputs_changed: &'static str,
}

/// The config fields a step reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reads {
    /// Env, User, WorkingDir, Shell.
    RunConfig,
    /// WorkingDir only.
    WorkingDir,
    /// Nothing (a WORKDIR, whose path is already resolved).
    Nothing,
}

/// Why a key could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read `{}` to compute the step's cache key: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Length-prefixed fields into one SHA-256, so no two field lists hash alike.
struct Fields(Sha256);

impl Fields {
    fn new(part: &str) -> Fields {
        let mut f = Fields(Sha256::new());
        f.put("part", part);
        f
    }

    fn put(&mut self, name: &str, value: impl AsRef<[u8]>) {
        let value = value.as_ref();
        self.0.update((name.len() as u64).to_le_bytes());
        self.0.update(name.as_bytes());
        self.0.update((value.len() as u64).to_le_bytes());
        self.0.update(value);
    }

    fn hex(self) -> String {
        hex::encode(self.0.finalize())
    }
}

/// The parent part of a key.
pub fn parent(
    platform: &str,
    image: &StageImage,
    compression: Compression,
    mtime_clamp: Option<i64>,
    reads: Reads,
) -> String {
    let mut f = Fields::new("parent");
    f.put("scheme", CACHE_TAG);
    f.put("platform", platform);
    f.put("media types", image.media_types.manifest());
    f.put("encoding", format!("{compression:?}"));
    f.put(
        "mtime",
        mtime_clamp.map_or_else(|| "as found".to_string(), |t| t.to_string()),
    );
    for d in &image.layers {
        f.put("layer", &d.diff_id);
    }
    let c = &image.config.config;
    if reads != Reads::Nothing {
        f.put("workdir", c.working_dir.as_deref().unwrap_or(""));
    }
    if reads == Reads::RunConfig {
        for e in c.env.iter().flatten() {
            f.put("env", e);
        }
        f.put("user", c.user.as_deref().unwrap_or(""));
        for s in c.shell.iter().flatten() {
            f.put("shell", s);
        }
    }
    f.hex()
}

fn step_key(parent: &str, what: &str, inputs: &str, inputs_changed: &'static str) -> StepKey {
    let mut f = Fields::new("step");
    f.put("parent", parent);
    f.put("what", what);
    f.put("inputs", inputs);
    StepKey {
        key: f.hex(),
        parent: parent[..32].to_string(),
        what: what[..32].to_string(),
        inputs_changed,
    }
}

fn what(kind: &str, text: &str) -> String {
    let mut f = Fields::new(kind);
    f.put("instruction", text);
    f.hex()
}

/// The key of a RUN: `instruction` is the instruction as written plus its parsed flags.
pub fn run(parent: &str, instruction: &str, visible_args: &[(String, String)]) -> StepKey {
    let mut sorted: Vec<&(String, String)> = visible_args.iter().collect();
    sorted.sort();
    sorted.dedup_by(|a, b| a.0 == b.0);
    let mut f = Fields::new("run inputs");
    for (k, v) in sorted {
        f.put("arg", format!("{k}={v}"));
    }
    step_key(
        parent,
        &what("run", instruction),
        &f.hex(),
        "the build arguments it sees changed",
    )
}

/// The key of a WORKDIR that may create its directory.
pub fn workdir(parent: &str, path: &str) -> StepKey {
    step_key(parent, &what("workdir", path), "", "")
}

/// The key of a COPY or ADD: `instruction` holds its expanded words and flags; `from_layers` the
/// source image's layers for `--from`; `items` what it copies from the context, URLs or heredocs.
pub fn copy(
    parent: &str,
    instruction: &str,
    from_layers: Option<&[LayerRef]>,
    items: &[SourceMatch],
    mtime_clamp: Option<i64>,
) -> Result<StepKey, KeyError> {
    let mut f = Fields::new("copy inputs");
    for l in from_layers.into_iter().flatten() {
        f.put("from layer", &l.diff_id);
    }
    let all = || {
        items
            .iter()
            .flat_map(|m| std::iter::once(&m.top).chain(m.children.iter()))
    };
    let sources: Vec<&EntrySource> = all()
        .filter_map(|i| match &i.kind {
            ItemKind::File { source, .. } => Some(source),
            _ => None,
        })
        .collect();
    let mut digests = digest_all(&sources)?.into_iter();
    for m in items {
        f.put("match", &m.name);
        for item in std::iter::once(&m.top).chain(m.children.iter()) {
            put_item(&mut f, item, &mut digests, mtime_clamp);
        }
    }
    Ok(step_key(
        parent,
        &what("copy", instruction),
        &f.hex(),
        "the copied files changed (content, mode, owner or mtime)",
    ))
}

fn put_item(
    f: &mut Fields,
    item: &SourceItem,
    digests: &mut impl Iterator<Item = String>,
    mtime_clamp: Option<i64>,
) {
    f.put("rel", &item.rel);
    match &item.kind {
        ItemKind::Dir => f.put("dir", ""),
        ItemKind::File { size, .. } => {
            f.put("file", digests.next().unwrap_or_default());
            f.put("size", size.to_string());
        }
        ItemKind::Symlink(target) => f.put("symlink", target),
    }
    f.put("mode", format!("{:o}", item.mode & 0o7777));
    f.put("owner", format!("{}:{}", item.uid, item.gid));
    // Under --reproducible every mtime in the layer is replaced: the source's cannot matter.
    if mtime_clamp.is_none() {
        f.put("mtime", item.mtime.to_string());
    }
}

/// The SHA-256 of every source's bytes, in order, read on a few threads at once.
fn digest_all(sources: &[&EntrySource]) -> Result<Vec<String>, KeyError> {
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4)
        .min(sources.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<String>>> = Mutex::new(vec![None; sources.len()]);
    let failure: Mutex<Option<KeyError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= sources.len() || lock(&failure).is_some() {
                        return;
                    }
                    let digest = match sources[i] {
                        EntrySource::Bytes(b) => Ok(hex::encode(Sha256::digest(b))),
                        EntrySource::Path(p) => file_digest(p, &mut buf),
                    };
                    match digest {
                        Ok(d) => lock(&results)[i] = Some(d),
                        Err(e) => {
                            lock(&failure).get_or_insert(e);
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn file_digest(path: &Path, buf: &mut [u8]) -> Result<String, KeyError> {
    let err = |source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(err)?;
    let mut h = Sha256::new();
    loop {
        match file.read(buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(err(e)),
        }
    }
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{ImageConfig, MediaTypes};

    fn image(layers: &[&str]) -> StageImage {
        StageImage {
            config: ImageConfig::default(),
            layers: layers
                .iter()
                .map(|d| LayerRef {
                    descriptor: crate::image::Descriptor::new("t", format!("sha256:{d}"), 1),
                    diff_id: format!("sha256:{d}"),
                    remote: None,
                })
                .collect(),
            media_types: MediaTypes::Oci,
            index: None,
            base_name: "test".into(),
        }
    }

    fn file(rel: &str, bytes: &[u8], mode: u32, mtime: i64) -> SourceItem {
        SourceItem {
            rel: rel.into(),
            kind: ItemKind::File {
                source: EntrySource::Bytes(bytes.to_vec()),
                size: bytes.len() as u64,
            },
            mode,
            uid: 0,
            gid: 0,
            mtime,
        }
    }

    fn tree(children: Vec<SourceItem>) -> Vec<SourceMatch> {
        vec![SourceMatch {
            name: "src".into(),
            top: SourceItem {
                rel: String::new(),
                kind: ItemKind::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
                mtime: 5,
            },
            children,
        }]
    }

    fn key_of(items: &[SourceMatch], clamp: Option<i64>) -> StepKey {
        let p = parent(
            "linux/amd64",
            &image(&["a"]),
            Compression::Gzip,
            clamp,
            Reads::WorkingDir,
        );
        copy(&p, "COPY src /app", None, items, clamp).unwrap()
    }

    #[test]
    fn a_copy_key_follows_content_mode_and_mtime_only_where_the_layer_does() {
        let base = key_of(&tree(vec![file("a", b"one", 0o644, 10)]), None);
        assert_eq!(
            base,
            key_of(&tree(vec![file("a", b"one", 0o644, 10)]), None)
        );
        for other in [
            file("a", b"two", 0o644, 10),
            file("a", b"one", 0o755, 10),
            file("a", b"one", 0o644, 11),
            file("b", b"one", 0o644, 10),
        ] {
            let k = key_of(&tree(vec![other]), None);
            assert_ne!(k.key, base.key);
            // Same image and instruction: the miss can say the files changed.
            assert_eq!((&k.parent, &k.what), (&base.parent, &base.what));
        }
        // With every mtime replaced (--reproducible), an mtime change is no change.
        let clamped = key_of(&tree(vec![file("a", b"one", 0o644, 10)]), Some(0));
        assert_eq!(
            clamped,
            key_of(&tree(vec![file("a", b"one", 0o644, 99)]), Some(0))
        );
        assert_ne!(clamped.parent, base.parent);
    }

    #[test]
    fn keys_chain_on_layer_content_and_the_encoding() {
        let p =
            |layers: &[&str], c| parent("linux/amd64", &image(layers), c, None, Reads::RunConfig);
        let gz = p(&["a"], Compression::Gzip);
        assert_eq!(gz, p(&["a"], Compression::Gzip));
        assert_ne!(gz, p(&["b"], Compression::Gzip));
        assert_ne!(gz, p(&["a", "b"], Compression::Gzip));
        assert_ne!(gz, p(&["a"], Compression::None));
        let args = vec![("X".to_string(), "1".to_string())];
        let k = run(&gz, "RUN make", &args);
        assert_eq!(k, run(&gz, "RUN make", &args));
        let other = run(&gz, "RUN make", &[("X".to_string(), "2".to_string())]);
        assert_ne!(k.key, other.key);
        assert_eq!(k.what, other.what);
        assert_ne!(k.what, run(&gz, "RUN make all", &args).what);
    }

    #[test]
    fn many_files_are_hashed_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut sources = Vec::new();
        for i in 0..50 {
            let p = dir.path().join(format!("f{i}"));
            std::fs::write(&p, format!("file {i}")).unwrap();
            sources.push(EntrySource::Path(p));
        }
        let refs: Vec<&EntrySource> = sources.iter().collect();
        let got = digest_all(&refs).unwrap();
        for (i, d) in got.iter().enumerate() {
            assert_eq!(d, &hex::encode(Sha256::digest(format!("file {i}"))));
        }
        let missing = EntrySource::Path(dir.path().join("gone"));
        let e = digest_all(&[&missing]).unwrap_err().to_string();
        assert!(e.contains("gone") && e.contains("cache key"), "{e}");
    }
}
