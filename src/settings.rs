//! Flags and environment resolved once into plain, immutable settings.
//!
//! Commands receive these structs, never raw flags: every flag value is checked here, so a bad
//! value fails before any work starts, with a message naming the flag.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context as _, Result};

use crate::cli::{BuildArgs, LogArgs, RegistryArgs};
use crate::env;
use crate::image::Platform;
use crate::registry::{Reference, RegistryOptions};

/// Where the build context comes from: defined with the code that fetches each source.
pub use crate::context::source::ContextSource;

#[derive(Clone, Debug)]
pub struct BuildSettings {
    pub context: ContextSource,
    pub context_sub_path: Option<String>,
    pub dockerfile: String,
    pub destinations: Vec<Reference>,
    /// `--build-arg` values in order; later ones override earlier ones.
    pub build_args: Vec<(String, String)>,
    pub labels: Vec<(String, String)>,
    pub target: Option<String>,
    pub skip_unused_stages: bool,
    pub platform: Platform,
    /// Seconds since the epoch for every timestamp, when the build is reproducible.
    pub fixed_time: Option<i64>,
    pub no_push: bool,
    pub tar_path: Option<PathBuf>,
    pub oci_layout_path: Option<PathBuf>,
    pub digest_file: Option<PathBuf>,
    pub image_name_with_digest_file: Option<PathBuf>,
    pub image_name_tag_with_digest_file: Option<PathBuf>,
    pub push_ignore_immutable_tag_errors: bool,
    pub skip_push_permission_check: bool,
    pub registry: RegistryOptions,
    pub work_dir: PathBuf,
    pub isolation: crate::rootfs::sandbox::IsolationRequest,
    pub force: bool,
    pub image_fs_extract_retry: u32,
    pub snapshot_mode: crate::rootfs::snapshot::SnapshotMode,
    pub ignore_paths: Vec<PathBuf>,
    pub ignore_var_run: bool,
    /// The layer cache, when `--cache` is on.
    pub cache: Option<CacheSettings>,
    /// `--cache-dir`: base-image layers by digest.
    pub cache_dir: Option<PathBuf>,
    /// `--single-snapshot`: the final stage's layers merged into one.
    pub single_snapshot: bool,
    /// `--cleanup`: the in-place root filesystem emptied after the build.
    pub cleanup: bool,
}

/// `--cache` and its flags, resolved.
#[derive(Clone, Debug)]
pub struct CacheSettings {
    /// The cache repository, without a tag.
    pub repo: Reference,
    pub ttl_secs: u64,
    pub run_layers: bool,
    /// `--cache-copy-layers`: COPY and ADD are cached too.
    pub copy_layers: bool,
    /// `--compressed-caching`: `false` stores the layers of cached steps uncompressed.
    pub compressed: bool,
    /// Whether new entries are written (`--no-push-cache` turns this off).
    pub push: bool,
}

impl BuildSettings {
    pub fn resolve(args: &BuildArgs) -> Result<BuildSettings> {
        let context = parse_context(&args.context, &args.git)?;
        let destinations = args
            .destination
            .iter()
            .map(|d| {
                let r = Reference::parse(d).with_context(|| format!("invalid --destination `{d}`"))?;
                if r.digest.is_some() {
                    bail!("--destination `{d}` names a digest\nhint: push to a tag, e.g. `registry/repo:tag`");
                }
                Ok(r)
            })
            .collect::<Result<Vec<_>>>()?;
        let no_push = args.output.no_push;
        if !no_push && destinations.is_empty() {
            bail!(
                "no --destination given\nhint: pass --destination REGISTRY/REPO:TAG, or --no-push \
                 (with --tar-path or --oci-layout-path to keep the image)"
            );
        }
        let build_args = args
            .build_arg
            .iter()
            .filter_map(|a| match a.split_once('=') {
                Some((k, v)) => Some(Ok((k.to_string(), v.to_string()))),
                // `--build-arg NAME` takes the value from the environment, as docker does; an
                // unset variable leaves the argument unset.
                None => std::env::var(a).ok().map(|v| Ok((a.clone(), v))),
            })
            .collect::<Result<Vec<_>>>()?;
        if let Some(bad) = args
            .build_arg
            .iter()
            .find(|a| a.split('=').next().unwrap_or("").is_empty())
        {
            bail!("invalid --build-arg `{bad}`\nhint: use KEY=VALUE or KEY");
        }
        let labels = args
            .label
            .iter()
            .map(|l| {
                l.split_once('=')
                    .filter(|(k, _)| !k.is_empty())
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .ok_or_else(|| anyhow!("invalid --label `{l}`\nhint: use KEY=VALUE"))
            })
            .collect::<Result<Vec<_>>>()?;
        let platform = match &args.custom_platform {
            Some(p) => Platform::parse(p).context("invalid --custom-platform")?,
            None => Platform::host(),
        };
        let source_date_epoch = match env::var(env::SOURCE_DATE_EPOCH) {
            Some(v) => Some(v.trim().parse::<i64>().map_err(|_| {
                anyhow!("{} is `{v}`, not a number of seconds\nhint: set it to e.g. `$(git log -1 --format=%ct)`", env::SOURCE_DATE_EPOCH)
            })?),
            None => None,
        };
        let fixed_time = match (args.reproducible, source_date_epoch) {
            (_, Some(t)) => Some(t),
            (true, None) => Some(0),
            (false, None) => None,
        };
        let work_dir = env::var(env::GANTRY_WORK_DIR)
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let cache = cache_settings(&args.cache, &destinations)?;
        Ok(BuildSettings {
            context,
            context_sub_path: args.context_sub_path.clone(),
            dockerfile: args.dockerfile.clone(),
            destinations,
            build_args,
            labels,
            target: args.target.clone(),
            skip_unused_stages: args.skip_unused_stages,
            platform,
            fixed_time,
            no_push,
            tar_path: args.output.tar_path.clone(),
            oci_layout_path: args.output.oci_layout_path.clone(),
            digest_file: args.output.digest_file.clone(),
            image_name_with_digest_file: args.output.image_name_with_digest_file.clone(),
            image_name_tag_with_digest_file: args.output.image_name_tag_with_digest_file.clone(),
            push_ignore_immutable_tag_errors: args.registry.push_ignore_immutable_tag_errors,
            skip_push_permission_check: args.registry.skip_push_permission_check,
            registry: registry_options(&args.registry)?,
            work_dir,
            isolation: match args.run.isolation {
                crate::cli::IsolationArg::Auto => crate::rootfs::sandbox::IsolationRequest::Auto,
                crate::cli::IsolationArg::Chroot => {
                    crate::rootfs::sandbox::IsolationRequest::Chroot
                }
                crate::cli::IsolationArg::InPlace => {
                    crate::rootfs::sandbox::IsolationRequest::InPlace
                }
            },
            force: args.run.force,
            image_fs_extract_retry: args.run.image_fs_extract_retry,
            snapshot_mode: match args.run.snapshot_mode {
                crate::cli::SnapshotModeArg::Full => crate::rootfs::snapshot::SnapshotMode::Full,
                crate::cli::SnapshotModeArg::Redo => crate::rootfs::snapshot::SnapshotMode::Redo,
                crate::cli::SnapshotModeArg::Time => crate::rootfs::snapshot::SnapshotMode::Time,
            },
            ignore_paths: args
                .run
                .ignore_path
                .iter()
                .map(|p| {
                    if p.is_absolute() {
                        Ok(p.clone())
                    } else {
                        Err(anyhow!("--ignore-path `{}` is not absolute\nhint: give the path as it is in the image, e.g. /var/cache", p.display()))
                    }
                })
                .collect::<Result<Vec<_>>>()?,
            ignore_var_run: args.run.ignore_var_run,
            cache,
            cache_dir: args.cache.cache_dir.clone(),
            single_snapshot: args.run.single_snapshot,
            cleanup: args.run.cleanup,
        })
    }
}

fn cache_settings(
    flags: &crate::cli::CacheFlags,
    destinations: &[Reference],
) -> Result<Option<CacheSettings>> {
    let ttl_secs = crate::build::cache::parse_ttl(&flags.cache_ttl)
        .map_err(|e| anyhow!("invalid --cache-ttl: {e}"))?;
    if !flags.cache {
        return Ok(None);
    }
    let repo = match &flags.cache_repo {
        Some(r) => {
            let parsed = Reference::parse(r).with_context(|| format!("invalid --cache-repo `{r}`"))?;
            if parsed.digest.is_some() || r.rsplit('/').next().is_some_and(|last| last.contains(':')) {
                bail!("--cache-repo `{r}` names a tag or digest\nhint: give a repository only, e.g. `registry.example.com/team/app/cache`");
            }
            parsed
        }
        None => match destinations.first() {
            Some(d) => Reference::parse(&format!("{}/{}/cache", d.registry, d.repository))
                .with_context(|| format!("inferring the cache repository from `{d}`"))?,
            None => bail!("--cache needs a repository for the layer cache\nhint: pass --cache-repo REGISTRY/REPO, or a --destination to infer `<repository>/cache` from"),
        },
    };
    Ok(Some(CacheSettings {
        repo: Reference {
            tag: None,
            digest: None,
            ..repo
        },
        ttl_secs,
        run_layers: flags.cache_run_layers,
        copy_layers: flags.cache_copy_layers,
        compressed: flags.compressed_caching,
        push: !flags.no_push_cache,
    }))
}

/// The log settings, shared by every command.
pub fn log_settings(args: &LogArgs) -> (crate::cli::Verbosity, crate::cli::LogFormat, bool) {
    (args.verbosity, args.log_format, args.log_timestamp)
}

fn parse_context(raw: &str, git_options: &[String]) -> Result<ContextSource> {
    if !git_options.is_empty() && !raw.starts_with("git://") {
        bail!(
            "--git is given but the context `{raw}` is not a git repository\n\
             hint: --git options apply to `git://HOST/REPO.git` contexts; drop them or change --context"
        );
    }
    Ok(ContextSource::parse(raw, git_options)?)
}

fn split_kv<'a>(flag: &str, raw: &'a str, example: &str) -> Result<(&'a str, &'a str)> {
    raw.split_once('=')
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .ok_or_else(|| anyhow!("invalid --{flag} `{raw}`\nhint: use {example}"))
}

/// The registry flags of `gantry build` as registry options (shared with `gantry ci manifest`).
pub fn registry_options(args: &RegistryArgs) -> Result<RegistryOptions> {
    let registry_certificates = args
        .registry_certificate
        .iter()
        .map(|raw| {
            let (host, path) = split_kv("registry-certificate", raw, "REGISTRY=/path/to/ca.crt")?;
            Ok((host.to_string(), PathBuf::from(path)))
        })
        .collect::<Result<Vec<_>>>()?;
    let client_certificates = args
        .registry_client_cert
        .iter()
        .map(|raw| {
            let (host, pair) = split_kv("registry-client-cert", raw, "REGISTRY=/path/client.crt,/path/client.key")?;
            let (cert, key) = pair.split_once(',').ok_or_else(|| {
                anyhow!("invalid --registry-client-cert `{raw}`\nhint: use REGISTRY=/path/client.crt,/path/client.key")
            })?;
            Ok((host.to_string(), PathBuf::from(cert), PathBuf::from(key)))
        })
        .collect::<Result<Vec<_>>>()?;
    let registry_maps = args
        .registry_map
        .iter()
        .filter(|m| !m.trim().is_empty())
        .map(|raw| {
            let (from, to) = split_kv(
                "registry-map",
                raw.trim(),
                "FROM=TO, e.g. index.docker.io=mirror.example.com",
            )?;
            Ok((from.to_string(), to.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RegistryOptions {
        insecure_registries: args.insecure_registry.clone(),
        insecure_push: args.insecure,
        insecure_pull: args.insecure_pull,
        skip_tls_verify_registries: args.skip_tls_verify_registry.clone(),
        skip_tls_verify_push: args.skip_tls_verify,
        skip_tls_verify_pull: args.skip_tls_verify_pull,
        registry_certificates,
        client_certificates,
        mirrors: args
            .registry_mirror
            .iter()
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .collect(),
        registry_maps,
        skip_default_registry_fallback: args.skip_default_registry_fallback,
        push_retry: args.push_retry,
        pull_retry: args.image_download_retry,
        docker_config: None,
        extra_credentials: Vec::new(),
        idle_timeout: None,
    })
}
