//! `gantry tags`: read the pipeline, apply the tag rules, print tags and labels in the asked
//! format. [`derive`] is shared with `gantry ci build`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context as _, Result};
use jiff::Timestamp;
use tracing::warn;

use crate::ci::expr::Globals;
use crate::ci::pipeline::parse_short_sha_length;
use crate::ci::rules::{self, split_list};
use crate::ci::tags::{self, Inputs};
use crate::ci::{labels, outputs, Env, Metadata, Pipeline, ProcessEnv, Provider};
use crate::cli::{TagPreset, TagRuleArgs, TagsArgs, TagsFormat};
use crate::env;

/// Everything derived from the pipeline.
#[derive(Clone, Debug)]
pub struct Derived {
    pub pipeline: Pipeline,
    pub meta: Metadata,
    pub labels: BTreeMap<String, String>,
}

/// The time for dates and the `created` label: SOURCE_DATE_EPOCH when set, else now.
pub fn now(env: &dyn Env) -> Result<Timestamp> {
    match env.get(env::SOURCE_DATE_EPOCH) {
        Some(v) => v
            .trim()
            .parse::<i64>()
            .ok()
            .and_then(|s| Timestamp::from_second(s).ok())
            .ok_or_else(|| {
                anyhow!(
                    "{} is `{v}`, not a number of seconds\nhint: set it to e.g. `$(git log -1 --format=%ct)`",
                    env::SOURCE_DATE_EPOCH
                )
            }),
        None => Ok(Timestamp::now()),
    }
}

/// Reads the pipeline and applies the rules. `default_image` adds the pipeline's own image when
/// no `--image` is given (`gantry ci build`).
pub fn derive(
    env: &dyn Env,
    dir: &Path,
    args: &TagRuleArgs,
    user_labels: &[String],
    default_image: bool,
) -> Result<Derived> {
    let pipeline = Pipeline::detect(env, dir)?;
    let tag_entries = split_list(&args.tags);
    if pipeline.provider() == Provider::None && tag_entries.is_empty() {
        bail!(
            "no CI pipeline found: GITHUB_ACTIONS and GITLAB_CI are not `true`, and `{}` is not in a git repository\n\
             hint: run inside GitHub Actions or GitLab CI, in a git checkout, or pass --tag rules such as `--tag type=raw,value=dev`",
            dir.display()
        );
    }
    let (tag_rules, flavor) = match args.preset {
        Some(TagPreset::LatestTagSha) => rules::preset_latest_tag_sha(&pipeline),
        None => (
            rules::parse_tags(&tag_entries)?,
            rules::parse_flavor(&split_list(&args.flavor))?,
        ),
    };
    let mut image_entries = split_list(&args.images);
    if image_entries.is_empty() && default_image {
        match &pipeline.default_image {
            Some(i) => image_entries.push(i.clone()),
            None => bail!(
                "no image name: no --image given and the pipeline names none (CI_REGISTRY_IMAGE on GitLab, GITHUB_REPOSITORY on GitHub)\n\
                 hint: pass --image REGISTRY/REPOSITORY"
            ),
        }
    }
    let short_sha_length = match &args.short_sha_length {
        Some(v) => parse_short_sha_length("--short-sha-length", v)?,
        None => pipeline.short_sha_length,
    };
    let inputs = Inputs {
        images: rules::parse_images(&image_entries)?,
        tags: tag_rules,
        flavor,
        short_sha_length,
        now: now(env)?,
    };
    let meta = tags::compute(&pipeline, &inputs)?;
    let globals = Globals {
        pipeline: &pipeline,
        now: inputs.now,
        short_sha_length,
    };
    let labels = labels::labels(&pipeline, &meta.version, &globals, &split_list(user_labels))?;
    Ok(Derived {
        pipeline,
        meta,
        labels,
    })
}

pub fn run(args: TagsArgs) -> Result<()> {
    crate::report::init_logging(
        crate::cli::Verbosity::Info,
        crate::cli::LogFormat::Text,
        false,
    );
    let dir = std::env::current_dir().context("reading the current directory")?;
    let d = derive(&ProcessEnv, &dir, &args.rules, &args.labels, false)?;
    for w in &d.meta.warnings {
        warn!("{w}");
    }
    let text = match args.format {
        TagsFormat::Lines => outputs::lines(&d.meta),
        TagsFormat::Json => outputs::json(&d.meta, &d.labels),
        TagsFormat::Dotenv => outputs::dotenv(&outputs::dotenv_vars(&d.meta, None))?,
        TagsFormat::Github => {
            let path = ProcessEnv.get(env::GITHUB_OUTPUT).ok_or_else(|| {
                anyhow!("--format github: GITHUB_OUTPUT is not set\nhint: use it inside a GitHub Actions step, or choose --format json")
            })?;
            let vars = outputs::github_vars(&d.meta, &d.labels, None);
            let delim = outputs::github_delimiter(&vars);
            outputs::append(Path::new(&path), &outputs::github_output(&vars, &delim))?;
            String::new()
        }
    };
    if !text.is_empty() {
        crate::report::data(text.trim_end_matches('\n'));
    }
    Ok(())
}
