//! `gantry ci manifest`: stitch the per-architecture images of this pipeline into one index under
//! every derived tag - the seed's manifest-tool job, without a template to keep in sync by hand.
//!
//! The pipeline description and tag rules are the ones `gantry ci build` used, so the same
//! per-architecture tags (`--per-arch-template`, default `{{tag}}-{{arch}}{{variant}}`) are found
//! again from the same variables. For each derived image one [`IndexSpec`] is planned (first
//! derived tag as the target, the others as extra tags, one source per expected platform) and
//! handed to the manifest module, which does the resolving and pushing with manifest-tool's
//! semantics. Every index is resolved before the first one is pushed, so a missing platform moves
//! no tag on any image. Outputs are those of `gantry ci build`, with the index digest.
//!
//! `gantry ci build --platforms` calls [`plan`] and [`stitch`] after building every platform.

use anyhow::{bail, Context as _, Result};
use tracing::{info, warn};

use crate::ci::ci_build::{ci_line, per_arch_tag, write_outputs};
use crate::ci::command::derive;
use crate::ci::{outputs, Metadata, ProcessEnv, Provider};
use crate::cli::{CiManifestArgs, ManifestType};
use crate::image::Platform;
use crate::manifest::{push, IndexKind, IndexSpec, ManifestError, SourceEntry, SpecPlatform};
use crate::registry::{Client, Credential, RegistryError};

/// The platforms `gantry ci manifest` expects when `--platforms` is not given: those of the
/// kaniko + manifest-tool workflow it replaces.
pub const DEFAULT_PLATFORMS: &str = "linux/amd64,linux/arm64";

#[derive(Debug, thiserror::Error)]
pub enum CiManifestError {
    #[error(
        "platform `{value}` in --platforms is not of the form os/arch or os/arch/variant\n\
         hint: for example --platforms linux/amd64,linux/arm64,linux/arm/v7"
    )]
    BadPlatform { value: String },

    #[error("--platforms is empty\nhint: list the platforms to stitch, e.g. --platforms {DEFAULT_PLATFORMS}")]
    NoPlatforms,

    #[error(
        "the image for platform `{platform}` is missing: `{image}` does not exist\n\
         hint: run `gantry ci build --per-arch --custom-platform {platform}` for this pipeline \
         first (with the same --tag rules and --per-arch-template), or pass --ignore-missing to \
         stitch the platforms that are there"
    )]
    MissingPlatform { platform: String, image: String },

    #[error(
        "no tag was derived for this pipeline, so there is no index to push\n\
         hint: add a rule that applies here (e.g. `--tag type=sha`), with the same rules as the \
         `gantry ci build --per-arch` jobs"
    )]
    NoTags,

    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

/// One index to push: the spec for the manifest module, and which platform each source stands
/// for (to name the platform when its image is missing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedIndex {
    pub spec: IndexSpec,
    /// `(source image, platform)` in the order of `spec.manifests`.
    pub sources: Vec<(String, Platform)>,
}

/// Parses `--platforms` values (each comma-separated), keeping the first of any repeats; no
/// values at all gives [`DEFAULT_PLATFORMS`].
pub fn parse_platforms(values: &[String]) -> Result<Vec<Platform>, CiManifestError> {
    let default = [DEFAULT_PLATFORMS.to_string()];
    let values = if values.is_empty() {
        &default[..]
    } else {
        values
    };
    let mut out: Vec<Platform> = Vec::new();
    for item in values.iter().flat_map(|v| v.split(',')) {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let p = Platform::parse(item).map_err(|_| CiManifestError::BadPlatform {
            value: item.to_string(),
        })?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    if out.is_empty() {
        return Err(CiManifestError::NoPlatforms);
    }
    Ok(out)
}

/// The index of every derived image: target `image:<first tag>`, the other derived tags as extra
/// tags, one source `image:<per-arch tag>` per platform, in the order given.
pub fn plan(meta: &Metadata, platforms: &[Platform], template: &str) -> Result<Vec<PlannedIndex>> {
    let Some((first, rest)) = meta.tag_names.split_first() else {
        return Err(CiManifestError::NoTags.into());
    };
    if meta.images.is_empty() {
        bail!(
            "no image name, so there is nothing to stitch\n\
             hint: pass --image REGISTRY/REPOSITORY (the one `gantry ci build` pushed to)"
        );
    }
    let mut per_arch = Vec::with_capacity(platforms.len());
    for p in platforms {
        per_arch.push((per_arch_tag(template, &meta.version, p)?, p.clone()));
    }
    Ok(meta
        .images
        .iter()
        .map(|image| {
            let sources: Vec<(String, Platform)> = per_arch
                .iter()
                .map(|(tag, p)| (format!("{image}:{tag}"), p.clone()))
                .collect();
            PlannedIndex {
                spec: IndexSpec {
                    image: format!("{image}:{first}"),
                    tags: rest.to_vec(),
                    manifests: sources
                        .iter()
                        .map(|(source, p)| SourceEntry {
                            image: source.clone(),
                            platform: spec_platform(p),
                        })
                        .collect(),
                    annotations: Default::default(),
                },
                sources,
            }
        })
        .collect())
}

fn spec_platform(p: &Platform) -> SpecPlatform {
    SpecPlatform {
        os: p.os.clone(),
        architecture: p.architecture.clone(),
        variant: p.variant.clone().unwrap_or_default(),
        ..Default::default()
    }
}

/// Resolves every planned index, then pushes them all; returns the first index's digest. A
/// missing per-architecture image fails naming its platform (unless `ignore_missing`), before
/// any tag moves.
pub async fn stitch(
    client: &Client,
    plans: &[PlannedIndex],
    kind: IndexKind,
    ignore_missing: bool,
) -> Result<String, CiManifestError> {
    let mut resolved = Vec::with_capacity(plans.len());
    for plan in plans {
        let r = push::resolve(client, &plan.spec, kind, ignore_missing)
            .await
            .map_err(|e| name_missing_platform(plan, e))?;
        resolved.push(r);
    }
    let mut first = None;
    for r in &resolved {
        push::push(client, r).await?;
        info!(
            "pushed {} {} for {} under {}",
            if kind == IndexKind::Oci {
                "index"
            } else {
                "manifest list"
            },
            r.digest,
            r.entries
                .iter()
                .filter_map(|e| e.descriptor.platform.as_ref().map(|p| p.to_string()))
                .collect::<Vec<_>>()
                .join(", "),
            r.tags
                .iter()
                .map(|t| format!("{}:{t}", r.target.name()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        first.get_or_insert_with(|| r.digest.clone());
    }
    Ok(first.unwrap_or_default())
}

/// A source that is not there becomes [`CiManifestError::MissingPlatform`]; anything else (a
/// registry that refuses us, a platform contradiction) keeps the manifest module's message.
fn name_missing_platform(plan: &PlannedIndex, e: ManifestError) -> CiManifestError {
    if let ManifestError::MissingSource { image, source } = &e {
        if matches!(**source, RegistryError::NotFound { .. }) {
            if let Some((_, p)) = plan.sources.iter().find(|(s, _)| s == image) {
                return CiManifestError::MissingPlatform {
                    platform: p.to_string(),
                    image: image.clone(),
                };
            }
        }
    }
    CiManifestError::Manifest(e)
}

pub fn index_kind(t: ManifestType) -> IndexKind {
    match t {
        ManifestType::Docker => IndexKind::Docker,
        ManifestType::Oci => IndexKind::Oci,
    }
}

pub fn run(args: CiManifestArgs) -> Result<()> {
    let (verbosity, format, timestamp) = crate::settings::log_settings(&args.log);
    crate::report::init_logging(verbosity, format, timestamp);
    let envs = ProcessEnv;
    let dir = std::env::current_dir().context("reading the current directory")?;
    let d = derive(&envs, &dir, &args.rules, &[], true)?;
    let provider = d.pipeline.provider();
    for w in &d.meta.warnings {
        warn!("{w}");
    }
    if let (Provider::GitHub, Some(c)) = (provider, &d.pipeline.credentials) {
        // Registered before anything could print it.
        ci_line(Some(outputs::add_mask(&c.password)));
    }
    let platforms = parse_platforms(&args.platforms)?;
    let plans = plan(&d.meta, &platforms, &args.per_arch_template)?;
    let mut opts = crate::settings::registry_options(&args.registry)?;
    if let Some(c) = &d.pipeline.credentials {
        opts.extra_credentials.push((
            c.registry.clone(),
            Credential::Basic {
                username: c.username.clone(),
                password: c.password.clone(),
            },
        ));
    }
    let client = Client::new(opts)?;
    ci_line(outputs::group_start(
        provider,
        "gantry_manifest",
        "gantry ci manifest",
        jiff::Timestamp::now().as_second(),
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(stitch(
        &client,
        &plans,
        index_kind(args.kind),
        args.ignore_missing,
    ));
    ci_line(outputs::group_end(
        provider,
        "gantry_manifest",
        jiff::Timestamp::now().as_second(),
    ));
    let digest = result?;
    crate::report::data(&digest);
    let pushed = outputs::Pushed {
        digest: &digest,
        refs: &d.meta.tags,
    };
    write_outputs(
        &envs,
        provider,
        &d,
        &pushed,
        "gantry ci manifest",
        args.dotenv.as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(images: &[&str], tags: &[&str], version: &str) -> Metadata {
        Metadata {
            version: version.into(),
            tag_names: tags.iter().map(|t| t.to_string()).collect(),
            images: images.iter().map(|i| i.to_string()).collect(),
            tags: images
                .iter()
                .flat_map(|i| tags.iter().map(move |t| format!("{i}:{t}")))
                .collect(),
            warnings: Vec::new(),
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_command_line_other_jobs_are_written_against() {
        use crate::cli::{CiCommand, Cli, Command};
        use clap::Parser;
        let cli = Cli::try_parse_from([
            "gantry",
            "ci",
            "manifest",
            "--image",
            "r.example/app",
            "--tag",
            "type=sha",
            "--flavor",
            "latest=false",
            "--platforms",
            "linux/amd64,linux/arm64",
            "--platforms=linux/arm/v7",
            "--ignore-missing",
            "--per-arch-template",
            "{{arch}}-{{tag}}",
            "--type",
            "oci",
            "--insecure-registry",
            "r.example",
            "--registry-certificate",
            "r.example=/ca.pem",
            "--dotenv",
            "out.env",
        ])
        .unwrap();
        let Command::Ci(CiCommand::Manifest(a)) = cli.command else {
            panic!("not ci manifest");
        };
        assert_eq!(a.rules.images, ["r.example/app"]);
        assert_eq!(a.rules.tags, ["type=sha"]);
        assert_eq!(a.rules.flavor, ["latest=false"]);
        assert_eq!(
            parse_platforms(&a.platforms)
                .unwrap()
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>(),
            ["linux/amd64", "linux/arm64", "linux/arm/v7"]
        );
        assert!(a.ignore_missing);
        assert_eq!(a.per_arch_template, "{{arch}}-{{tag}}");
        assert_eq!(a.kind, ManifestType::Oci);
        assert_eq!(a.registry.insecure_registry, ["r.example"]);
        assert_eq!(a.dotenv.as_deref(), Some(std::path::Path::new("out.env")));
        // Defaults: manifest-tool's docker list, ci build's template.
        let cli = Cli::try_parse_from(["gantry", "ci", "manifest"]).unwrap();
        let Command::Ci(CiCommand::Manifest(a)) = cli.command else {
            panic!("not ci manifest");
        };
        assert_eq!(a.kind, ManifestType::Docker);
        assert_eq!(a.per_arch_template, "{{tag}}-{{arch}}{{variant}}");
        assert!(a.platforms.is_empty() && !a.ignore_missing);
        // `ci build --platforms` builds per-arch itself: --per-arch and --custom-platform clash.
        for clash in ["--per-arch", "--custom-platform=linux/arm64"] {
            let err = Cli::try_parse_from([
                "gantry",
                "ci",
                "build",
                "--platforms",
                "linux/amd64,linux/arm64",
                clash,
            ])
            .unwrap_err();
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ArgumentConflict,
                "{clash}"
            );
        }
    }

    #[test]
    fn platforms_default_split_dedupe_and_refuse_bad_ones() {
        let shown = |v: &[&str]| -> Vec<String> {
            parse_platforms(&strings(v))
                .unwrap()
                .iter()
                .map(|p| p.to_string())
                .collect()
        };
        assert_eq!(shown(&[]), ["linux/amd64", "linux/arm64"]);
        assert_eq!(
            shown(&["linux/arm/v7, linux/x86_64", "linux/amd64,linux/arm/v7"]),
            ["linux/arm/v7", "linux/amd64"]
        );
        let err = parse_platforms(&strings(&["linux/amd64,arm64"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "platform `arm64` in --platforms is not of the form os/arch or os/arch/variant\n\
             hint: for example --platforms linux/amd64,linux/arm64,linux/arm/v7"
        );
        assert!(matches!(
            parse_platforms(&strings(&[" , "])),
            Err(CiManifestError::NoPlatforms)
        ));
    }

    #[test]
    fn plan_has_one_index_per_image_with_per_arch_sources() {
        let m = meta(
            &["registry.example/group/app", "ghcr.io/o/app"],
            &["1.2.3", "1.2", "latest"],
            "1.2.3",
        );
        let platforms = parse_platforms(&strings(&["linux/amd64,linux/arm/v7"])).unwrap();
        let plans = plan(&m, &platforms, "{{tag}}-{{arch}}{{variant}}").unwrap();
        assert_eq!(plans.len(), 2);
        let p = &plans[0];
        assert_eq!(p.spec.image, "registry.example/group/app:1.2.3");
        assert_eq!(p.spec.tags, ["1.2", "latest"]);
        let sources: Vec<(&str, &str, &str, &str)> = p
            .spec
            .manifests
            .iter()
            .map(|s| {
                (
                    s.image.as_str(),
                    s.platform.os.as_str(),
                    s.platform.architecture.as_str(),
                    s.platform.variant.as_str(),
                )
            })
            .collect();
        assert_eq!(
            sources,
            [
                (
                    "registry.example/group/app:1.2.3-amd64",
                    "linux",
                    "amd64",
                    ""
                ),
                (
                    "registry.example/group/app:1.2.3-armv7",
                    "linux",
                    "arm",
                    "v7"
                ),
            ]
        );
        assert_eq!(p.sources[1].0, "registry.example/group/app:1.2.3-armv7");
        assert_eq!(p.sources[1].1.to_string(), "linux/arm/v7");
        assert_eq!(plans[1].spec.image, "ghcr.io/o/app:1.2.3");
        assert_eq!(
            plans[1].spec.manifests[0].image,
            "ghcr.io/o/app:1.2.3-amd64"
        );
        // A custom template is applied as `ci build --per-arch-template` applies it.
        let plans = plan(&m, &platforms[..1], "{{os}}-{{arch}}-{{tag}}").unwrap();
        assert_eq!(
            plans[0].spec.manifests[0].image,
            "registry.example/group/app:linux-amd64-1.2.3"
        );
    }

    #[test]
    fn plan_refuses_no_tags_and_no_images() {
        let platforms = parse_platforms(&[]).unwrap();
        let err = plan(&meta(&["r/app"], &[], ""), &platforms, "{{tag}}-{{arch}}").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("no tag was derived for this pipeline"),
            "{err}"
        );
        let err = plan(&meta(&[], &["v1"], "v1"), &platforms, "{{tag}}-{{arch}}").unwrap_err();
        assert!(err.to_string().contains("hint: pass --image"), "{err}");
        let err = plan(&meta(&["r/app"], &["v1"], "v1"), &platforms, "{{nope}}").unwrap_err();
        assert!(
            format!("{err:#}").contains("invalid --per-arch-template"),
            "{err:#}"
        );
    }

    #[test]
    fn a_missing_source_names_its_platform() {
        let m = meta(&["r.example/app"], &["v1"], "v1");
        let platforms = parse_platforms(&[]).unwrap();
        let plans = plan(&m, &platforms, "{{tag}}-{{arch}}{{variant}}").unwrap();
        let missing = ManifestError::MissingSource {
            image: "r.example/app:v1-arm64".into(),
            source: Box::new(RegistryError::NotFound {
                registry: "r.example".into(),
                repository: "app".into(),
                operation: "pull manifest",
                what: "manifest v1-arm64".into(),
                message: "manifest unknown".into(),
            }),
        };
        let err = name_missing_platform(&plans[0], missing);
        assert_eq!(
            err.to_string(),
            "the image for platform `linux/arm64` is missing: `r.example/app:v1-arm64` does not exist\n\
             hint: run `gantry ci build --per-arch --custom-platform linux/arm64` for this pipeline \
             first (with the same --tag rules and --per-arch-template), or pass --ignore-missing to \
             stitch the platforms that are there"
        );
        // Other failures keep the manifest module's message.
        let err = name_missing_platform(&plans[0], ManifestError::AllSkipped);
        assert!(matches!(
            err,
            CiManifestError::Manifest(ManifestError::AllSkipped)
        ));
    }
}
