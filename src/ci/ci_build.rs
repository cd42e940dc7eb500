//! `gantry ci build`: the image name, tags, labels and registry credentials from the pipeline,
//! then a normal `gantry build` with every build flag passed through.
//!
//! The derived tags become destinations (or, with `--per-arch`, one tag per architecture for a
//! later manifest step); the derived labels go on the image with `--label` values overriding
//! them; the CI credentials are handed to the registry client in memory only. Afterwards the
//! digest, image, tags and labels go to `GITHUB_OUTPUT` and the job summary on GitHub, and to a
//! dotenv report on GitLab. `tags` stay what the rules derived (what `ci manifest` stitches
//! under), while `pushed` / `GANTRY_PUSHED` name what this job pushed: the per-architecture tag
//! with `--per-arch`, `image@digest` with `--push-by-digest`.
//!
//! With `--platforms`, one job builds every platform in turn (a RUN for a foreign architecture
//! needs qemu registered with binfmt_misc), pushes each under its per-architecture tag, and
//! stitches them with [`ci_manifest::stitch`] as `gantry ci manifest` would.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use tracing::{info, warn};

use crate::ci::ci_manifest;
use crate::ci::command::{derive, Derived};
use crate::ci::expr;
use crate::ci::tags::{fix_for_docker, sanitize_tag};
use crate::ci::{outputs, Env, ProcessEnv, Provider};
use crate::cli::CiBuildArgs;
use crate::env;
use crate::image::Platform;
use crate::registry::{Client, Credential, Reference};
use crate::settings::{self, BuildSettings};

/// The variant as a per-architecture tag shows it: empty when the platform has none or when it
/// is the architecture's canonical one (`arm64` is `arm64/v8`, as containerd normalises it), so
/// `ci build --custom-platform linux/arm64/v8` and `ci manifest --platforms linux/arm64` agree
/// on `…-arm64`. Other variants stay, so that no two platforms share a tag.
fn tag_variant(platform: &Platform) -> &str {
    match (platform.architecture.as_str(), platform.variant.as_deref()) {
        ("arm64", Some("v8")) | (_, None) => "",
        (_, Some(v)) => v,
    }
}

/// The per-architecture tag: `template` with `{{tag}}` (the main tag), `{{os}}`, `{{arch}}` and
/// `{{variant}}` ([`tag_variant`]), sanitized like any tag. With the default template
/// `{{tag}}-{{arch}}{{variant}}`, `v1.2.3` gives `v1.2.3-amd64`, `v1.2.3-arm64` (for
/// linux/arm64 and linux/arm64/v8), `v1.2.3-armv7` and `v1.2.3-armv6`.
pub fn per_arch_tag(template: &str, main: &str, platform: &Platform) -> Result<String> {
    let rendered = expr::render(template, "`tag`, `os`, `arch`, `variant`", &|c| {
        Ok(match c.name.as_str() {
            "tag" => Some(main.to_string()),
            "os" => Some(platform.os.clone()),
            "arch" => Some(platform.architecture.clone()),
            "variant" => Some(tag_variant(platform).to_string()),
            _ => None,
        })
    })
    .context("invalid --per-arch-template")?;
    match fix_for_docker(&sanitize_tag(&rendered)).0 {
        Some(t) => Ok(t),
        None => bail!("--per-arch-template `{template}` gives no usable tag\nhint: include `{{{{tag}}}}` or `{{{{arch}}}}`"),
    }
}

/// Writes one CI workflow line (group markers, masks) to stderr, where both GitHub's runner and
/// GitLab's log viewer read them, keeping stdout for data.
pub(crate) fn ci_line(line: Option<String>) {
    if let Some(line) = line {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{line}");
    }
}

pub fn run(mut args: CiBuildArgs) -> Result<()> {
    let (verbosity, format, timestamp) = settings::log_settings(&args.build.log);
    crate::report::init_logging(verbosity, format, timestamp);
    let envs = ProcessEnv;
    let dir = std::env::current_dir().context("reading the current directory")?;
    let d = derive(&envs, &dir, &args.rules, &args.build.label, true)?;
    let provider = d.pipeline.provider();
    for w in &d.meta.warnings {
        warn!("{w}");
    }
    if let (Provider::GitHub, Some(c)) = (provider, &d.pipeline.credentials) {
        // Registered before anything could print it.
        ci_line(Some(outputs::add_mask(&c.password)));
    }
    let no_push = args.build.output.no_push;
    if args.push_by_digest {
        if args.per_arch || !args.platforms.is_empty() {
            bail!("--push-by-digest pushes no tag, so it cannot be combined with --per-arch or --platforms\nhint: use one of them");
        }
        if d.meta.images.is_empty() {
            bail!("--push-by-digest needs an image name\nhint: pass --image REGISTRY/REPO");
        }
    } else if d.meta.tags.is_empty() && !no_push {
        bail!(
            "no tag was derived for this pipeline, so there is nothing to push to\n\
             hint: add a rule that applies here (e.g. `--tag type=sha`), pass --push-by-digest, or pass --no-push"
        );
    }
    if !args.platforms.is_empty() {
        return run_platforms(args, &envs, &d);
    }
    let platform = match &args.build.custom_platform {
        Some(p) => Platform::parse(p).context("invalid --custom-platform")?,
        None => Platform::host(),
    };
    let mut destinations: Vec<String> = if args.push_by_digest {
        d.meta.images.clone()
    } else if args.per_arch {
        let tag = per_arch_tag(&args.per_arch_template, &d.meta.version, &platform)?;
        d.meta.images.iter().map(|i| format!("{i}:{tag}")).collect()
    } else {
        d.meta.tags.clone()
    };
    destinations.append(&mut args.build.destination);
    // What the outputs report as pushed: these names as the user and the rules spelled them.
    let mut pushed_refs = if no_push {
        Vec::new()
    } else {
        destinations.clone()
    };
    args.build.destination = destinations;
    args.build.label = d.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut settings = BuildSettings::resolve(&args.build)?;
    if args.push_by_digest {
        for dest in &mut settings.destinations {
            dest.tag = None;
        }
        pushed_refs = settings.destinations.iter().map(|d| d.name()).collect();
    }
    if let Some(c) = &d.pipeline.credentials {
        settings.registry.extra_credentials.push((
            c.registry.clone(),
            Credential::Basic {
                username: c.username.clone(),
                password: c.password.clone(),
            },
        ));
    }
    for dest in &settings.destinations {
        info!("destination {}", dest.name());
    }
    let started = jiff::Timestamp::now().as_second();
    ci_line(outputs::group_start(
        provider,
        "gantry_build",
        "gantry build",
        started,
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(crate::build::command::build(settings));
    ci_line(outputs::group_end(
        provider,
        "gantry_build",
        jiff::Timestamp::now().as_second(),
    ));
    let digest = result?;
    if args.push_by_digest && !no_push {
        for r in &mut pushed_refs {
            *r = format!("{r}@{digest}");
        }
    }
    let pushed = outputs::Pushed {
        digest: &digest,
        refs: &pushed_refs,
    };
    write_outputs(
        &envs,
        provider,
        &d,
        &pushed,
        "gantry build",
        args.dotenv.as_deref(),
    )
}

/// `gantry ci build --platforms`: every platform built in this job and pushed under its
/// per-architecture tag, then all of them stitched into one index under the derived tags (as
/// `gantry ci manifest` would). Prints the index digest; the outputs carry it too.
fn run_platforms(mut args: CiBuildArgs, envs: &dyn Env, d: &Derived) -> Result<()> {
    let provider = d.pipeline.provider();
    let platforms = ci_manifest::parse_platforms(&args.platforms)?;
    let out = &args.build.output;
    for (flag, given) in [
        ("--tar-path", out.tar_path.is_some()),
        ("--oci-layout-path", out.oci_layout_path.is_some()),
        (
            "--image-name-with-digest-file",
            out.image_name_with_digest_file.is_some(),
        ),
        (
            "--image-name-tag-with-digest-file",
            out.image_name_tag_with_digest_file.is_some(),
        ),
        ("--destination", !args.build.destination.is_empty()),
    ] {
        if given {
            bail!(
                "{flag} cannot be used with --platforms: one job builds several images there\n\
                 hint: run one `gantry ci build --per-arch --custom-platform PLATFORM` per \
                 platform for that, then `gantry ci manifest`"
            );
        }
    }
    let digest_file = args.build.output.digest_file.take();
    let no_push = args.build.output.no_push;
    // With --no-push there is no index to stitch, so tags are not needed either.
    let plans = if no_push {
        Vec::new()
    } else {
        ci_manifest::plan(&d.meta, &platforms, &args.per_arch_template)?
    };
    args.build.label = d.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    args.build.destination = plans
        .iter()
        .filter_map(|p| p.spec.manifests.first().map(|m| m.image.clone()))
        .collect();
    let mut settings = BuildSettings::resolve(&args.build)?;
    if let Some(c) = &d.pipeline.credentials {
        settings.registry.extra_credentials.push((
            c.registry.clone(),
            Credential::Basic {
                username: c.username.clone(),
                password: c.password.clone(),
            },
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    for (i, platform) in platforms.iter().enumerate() {
        let mut s = settings.clone();
        s.platform = platform.clone();
        s.destinations = plans
            .iter()
            .filter_map(|p| p.spec.manifests.get(i))
            .map(|m| {
                Reference::parse(&m.image)
                    .with_context(|| format!("invalid per-architecture image `{}`", m.image))
            })
            .collect::<Result<_>>()?;
        for dest in &s.destinations {
            info!("destination {} ({platform})", dest.name());
        }
        let id = format!("gantry_build_{}", i + 1);
        ci_line(outputs::group_start(
            provider,
            &id,
            &format!("gantry build {platform}"),
            jiff::Timestamp::now().as_second(),
        ));
        let result = runtime.block_on(crate::build::command::build_quiet(s));
        ci_line(outputs::group_end(
            provider,
            &id,
            jiff::Timestamp::now().as_second(),
        ));
        let digest = result.with_context(|| format!("building for {platform}"))?;
        info!("built {digest} for {platform}");
    }
    if no_push {
        info!("--no-push: built every platform, no index to stitch");
        return Ok(());
    }
    let client = Client::new(settings.registry.clone())?;
    let digest = runtime.block_on(ci_manifest::stitch(
        &client,
        &plans,
        ci_manifest::index_kind(args.kind),
        false,
    ))?;
    crate::report::data(&digest);
    if let Some(path) = digest_file {
        std::fs::write(&path, &digest)
            .with_context(|| format!("writing the digest file `{}`", path.display()))?;
    }
    let pushed = outputs::Pushed {
        digest: &digest,
        refs: &d.meta.tags,
    };
    write_outputs(
        envs,
        provider,
        d,
        &pushed,
        "gantry build",
        args.dotenv.as_deref(),
    )
}

/// Writes the step outputs, the job summary (titled `title`) and the dotenv report.
pub(crate) fn write_outputs(
    envs: &dyn Env,
    provider: Provider,
    d: &Derived,
    pushed: &outputs::Pushed,
    title: &str,
    dotenv: Option<&Path>,
) -> Result<()> {
    if let Some(path) = envs.get(env::GITHUB_OUTPUT) {
        let vars = outputs::github_vars(&d.meta, &d.labels, Some(pushed));
        let delim = outputs::github_delimiter(&vars);
        outputs::append(Path::new(&path), &outputs::github_output(&vars, &delim))?;
    }
    if let Some(path) = envs.get(env::GITHUB_STEP_SUMMARY) {
        outputs::append(
            Path::new(&path),
            &outputs::step_summary(title, &d.meta, &d.labels, pushed),
        )?;
    }
    let dotenv: Option<PathBuf> = match (dotenv, provider) {
        (Some(p), _) => Some(p.to_path_buf()),
        (None, Provider::GitLab) => Some(PathBuf::from("gantry.env")),
        _ => None,
    };
    if let Some(path) = dotenv {
        let text = outputs::dotenv(&outputs::dotenv_vars(&d.meta, Some(pushed)))?;
        std::fs::write(&path, text)
            .with_context(|| format!("writing the dotenv report `{}`", path.display()))?;
        info!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_arch_tags_name_the_architecture_and_arm_variant() {
        let t = "{{tag}}-{{arch}}{{variant}}";
        let mut failures = Vec::new();
        for (platform, want) in [
            ("linux/amd64", "v1.2.3-amd64"),
            ("linux/x86_64", "v1.2.3-amd64"),
            ("linux/arm64", "v1.2.3-arm64"),
            ("linux/arm64/v8", "v1.2.3-arm64"),
            ("linux/aarch64", "v1.2.3-arm64"),
            ("linux/arm/v7", "v1.2.3-armv7"),
            ("linux/arm", "v1.2.3-armv7"),
            ("linux/arm/v6", "v1.2.3-armv6"),
            ("linux/arm/v5", "v1.2.3-armv5"),
            ("linux/386", "v1.2.3-386"),
            ("linux/s390x", "v1.2.3-s390x"),
            ("linux/ppc64le", "v1.2.3-ppc64le"),
            ("linux/riscv64", "v1.2.3-riscv64"),
            // Not canonical, kept so that it cannot overwrite linux/amd64's tag.
            ("linux/amd64/v3", "v1.2.3-amd64v3"),
        ] {
            let p = Platform::parse(platform).unwrap();
            let got = per_arch_tag(t, "v1.2.3", &p).unwrap();
            if got != want {
                failures.push(format!("{platform}: got {got}, want {want}"));
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
        let arm64 = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(
            per_arch_tag("{{os}}_{{arch}}_{{variant}}", "x", &arm64).unwrap(),
            "linux_arm64_"
        );
        assert!(per_arch_tag("{{nope}}", "x", &arm64).is_err());
    }

    #[test]
    fn ci_manifest_looks_for_the_tag_ci_build_pushed() {
        // `ci build --per-arch --custom-platform X` pushes per_arch_tag(X); `ci manifest
        // --platforms Y` plans per_arch_tag(Y) as the source: the spellings of one platform agree.
        let meta = crate::ci::Metadata {
            version: "v1".into(),
            tag_names: vec!["v1".into()],
            images: vec!["r.example/app".into()],
            tags: vec!["r.example/app:v1".into()],
            warnings: vec![],
        };
        let t = "{{tag}}-{{arch}}{{variant}}";
        for (built, stitched) in [
            ("linux/arm64/v8", "linux/arm64"),
            ("linux/arm64", "linux/arm64/v8"),
            ("linux/arm/v7", "linux/arm"),
            ("linux/amd64", "linux/x86_64"),
        ] {
            let pushed = per_arch_tag(t, "v1", &Platform::parse(built).unwrap()).unwrap();
            let platforms = ci_manifest::parse_platforms(&[stitched.to_string()]).unwrap();
            let plans = ci_manifest::plan(&meta, &platforms, t).unwrap();
            assert_eq!(
                plans[0].spec.manifests[0].image,
                format!("r.example/app:{pushed}"),
                "{built} vs {stitched}"
            );
        }
    }
}
