//! The base-image cache directory (`--cache-dir`) and `gantry warm`, kaniko's warmer.
//!
//! The directory holds layer blobs by digest, `blobs/sha256/<hex>`, as an OCI layout does. A build
//! given `--cache-dir` takes base layers from it instead of the network (each checked against its
//! digest; a file that does not match is ignored with a warning and the layer is downloaded), and
//! adds the base layers it had to download. `gantry warm` fills it ahead of time from `--image`
//! references and the FROM lines of a Dockerfile. Blobs are written under a unique temporary name
//! and renamed into place, so builds sharing one directory never see a partial file.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _, Result};
use sha2::{Digest as _, Sha256};
use tracing::{info, warn};

use crate::cli::WarmArgs;
use crate::image::Platform;
use crate::registry::{Client, Reference};

/// Where a blob lives in a cache directory.
pub fn cached_blob(dir: &Path, digest: &str) -> PathBuf {
    dir.join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

fn file_digest(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

/// Copies a blob from the cache directory to `dest` when it is there and its content matches
/// its digest. Returns whether it did.
pub fn take_from_cache(dir: &Path, digest: &str, dest: &Path) -> bool {
    let src = cached_blob(dir, digest);
    if !src.is_file() {
        return false;
    }
    match file_digest(&src) {
        Ok(d) if d == digest => {}
        Ok(d) => {
            warn!(
                "--cache-dir: `{}` has digest {d}, not {digest}; ignored, downloading the layer",
                src.display()
            );
            return false;
        }
        Err(e) => {
            warn!(
                "--cache-dir: cannot read `{}`: {e}; downloading the layer",
                src.display()
            );
            return false;
        }
    }
    let tmp = unique_tmp(dest);
    let _registered = crate::interrupt::Registered::new(&tmp);
    let copied = std::fs::hard_link(&src, &tmp)
        .or_else(|_| std::fs::copy(&src, &tmp).map(|_| ()))
        .and_then(|_| std::fs::rename(&tmp, dest));
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&tmp);
        warn!(
            "--cache-dir: cannot use `{}`: {e}; downloading the layer",
            src.display()
        );
        return false;
    }
    true
}

/// Adds a downloaded blob to the cache directory (atomically; failures only warn).
pub fn store_in_cache(dir: &Path, digest: &str, from: &Path) {
    let dest = cached_blob(dir, digest);
    if dest.is_file() {
        return;
    }
    let result = (|| -> std::io::Result<()> {
        std::fs::create_dir_all(dest.parent().expect("blob path has a parent"))?;
        let tmp = unique_tmp(&dest);
        let _registered = crate::interrupt::Registered::new(&tmp);
        let stored = std::fs::hard_link(from, &tmp)
            .or_else(|_| std::fs::copy(from, &tmp).map(|_| ()))
            .and_then(|()| std::fs::rename(&tmp, &dest));
        if stored.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        stored
    })();
    if let Err(e) = result {
        warn!(
            "--cache-dir: cannot store {digest} in `{}`: {e}",
            dir.display()
        );
    }
}

/// A temporary name next to `dest`, unique across processes sharing the directory. Callers
/// register it with [`crate::interrupt`] while it exists, so Ctrl-C does not leave it behind.
fn unique_tmp(dest: &Path) -> PathBuf {
    let mut name = dest.as_os_str().to_os_string();
    name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    PathBuf::from(name)
}

/// `gantry warm`: downloads the layers of every `--image` and of every FROM image of
/// `--dockerfile` into `--cache-dir`.
pub fn run(args: WarmArgs) -> Result<()> {
    let (verbosity, format, timestamp) = crate::settings::log_settings(&args.log);
    crate::report::init_logging(verbosity, format, timestamp);
    let platform = match &args.custom_platform {
        Some(p) => Platform::parse(p).context("invalid --custom-platform")?,
        None => Platform::host(),
    };
    let mut images: Vec<String> = args.image.clone();
    if let Some(df) = &args.dockerfile {
        images.extend(dockerfile_bases(df, &args.build_arg, &platform)?);
    }
    if images.is_empty() {
        anyhow::bail!("nothing to warm\nhint: pass --image REF (repeatable) or --dockerfile PATH");
    }
    let refs = images
        .iter()
        .map(|i| Reference::parse(i).with_context(|| format!("invalid image `{i}`")))
        .collect::<Result<Vec<_>>>()?;
    let opts = crate::settings::registry_options(&args.registry)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        crate::interrupt::install();
        let client = Client::new(opts)?;
        std::fs::create_dir_all(args.cache_dir.join("blobs/sha256")).with_context(|| {
            format!(
                "creating the cache directory `{}`",
                args.cache_dir.display()
            )
        })?;
        for r in refs {
            let resolved = client.resolve_image(&r, &platform).await?;
            let mut fetched = 0usize;
            for desc in &resolved.manifest.layers {
                let dest = cached_blob(&args.cache_dir, &desc.digest);
                if dest.is_file() && !args.force {
                    continue;
                }
                let tmp = unique_tmp(&dest);
                // The download streams through `<tmp>.tmp` before it is renamed to `tmp`.
                let mut partial = tmp.clone().into_os_string();
                partial.push(".tmp");
                let _registered = [
                    crate::interrupt::Registered::new(&tmp),
                    crate::interrupt::Registered::new(Path::new(&partial)),
                ];
                client
                    .fetch_blob(&resolved.reference, desc, &tmp)
                    .await
                    .with_context(|| format!("warming {r}"))?;
                if let Err(e) = std::fs::rename(&tmp, &dest) {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e).with_context(|| format!("storing `{}`", dest.display()));
                }
                fetched += 1;
            }
            info!(
                "warmed {r} ({}): {fetched} of {} layers downloaded",
                resolved.digest,
                resolved.manifest.layers.len()
            );
            crate::report::data(&format!("{r}@{}", resolved.digest));
        }
        Ok(())
    })
}

/// The images a Dockerfile's stages start FROM (not `scratch`, not earlier stages), with global
/// ARGs expanded from their defaults and `--build-arg`.
fn dockerfile_bases(
    path: &Path,
    build_args: &[String],
    platform: &Platform,
) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading Dockerfile `{}`", path.display()))?;
    let name = path.display().to_string();
    let df = crate::dockerfile::parse(&text).map_err(|e| anyhow!("{name}:{e}"))?;
    let given: BTreeMap<String, String> = build_args
        .iter()
        .filter_map(|a| {
            a.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let mut vars = crate::build::scope::platform_args(platform, &Platform::host());
    for decl in &df.global_args {
        let value = match (given.get(&decl.name), &decl.default) {
            (Some(v), _) => Some(v.clone()),
            (None, Some(raw)) => Some(
                crate::dockerfile::expand_word(raw, df.escape, &|n: &str| vars.get(n).cloned())
                    .map_err(|e| anyhow!("{name}: ARG {}: {e}", decl.name))?,
            ),
            (None, None) => None,
        };
        if let Some(v) = value {
            vars.insert(decl.name.clone(), v);
        }
    }
    let mut out = Vec::new();
    for stage in &df.stages {
        let base =
            crate::dockerfile::expand_word(&stage.base, df.escape, &|n: &str| vars.get(n).cloned())
                .map_err(|e| anyhow!("{name}:{}: FROM: {e}", stage.line))?;
        let is_stage = df.stages[..stage.index]
            .iter()
            .any(|s| s.name.as_deref() == Some(base.to_ascii_lowercase().as_str()));
        if base == "scratch" || is_stage || out.contains(&base) {
            continue;
        }
        out.push(base);
    }
    Ok(out)
}
