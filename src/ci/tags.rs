//! metadata-action's tag algorithm, computed from a [`Pipeline`] only.
//!
//! Rules are sorted by priority (stable, so equal priorities keep their order); each enabled rule
//! computes a value, gets its prefix and suffix (a rule's own prefix, even empty, beats the
//! flavor's), is sanitized, and becomes the main version or a partial one. Only the first
//! contributing rule decides `latest`. Each image then gets `main`, the partials, and `latest`.
//!
//! Deliberate differences from metadata-action, each reported as a warning:
//! - [`fix_for_docker`]: a tag Docker rejects (starting with `.` or `-`, longer than 128
//!   characters) loses its leading `.`/`-` characters and is cut to 128 characters; a tag that
//!   becomes empty is dropped.
//! - A tag emitted twice for the same image (e.g. `type=raw,value=latest` plus `latest=true`) is
//!   emitted once.
//! - A rule the user wrote that gives nothing on this pipeline (`type=edge` on a feature branch,
//!   `type=ref,event=tag` on a branch) is named in a warning saying why; metadata-action skips
//!   it silently. The tags are the same either way. The default rules and presets stay quiet.

use jiff::Timestamp;

use crate::ci::expr::{self, ExprError, Globals};
use crate::ci::rules::{self, Flavor, ImageRule, Latest, RefEvent, RuleError, TagKind, TagRule};
use crate::ci::versions::{parse_pep440, parse_semver};
use crate::ci::Pipeline;

/// Docker's limit on a tag's length.
pub const MAX_TAG_LEN: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum TagsError {
    #[error(transparent)]
    Rule(#[from] RuleError),
    #[error("in tag rule `{rule}`: {source}")]
    Expr { rule: String, source: ExprError },
    #[error("in tag rule `{rule}`: `enable` gave `{value}`, not `true` or `false`\nhint: use `enable=true`, `enable=false` or an expression such as `enable={{{{is_default_branch}}}}`")]
    Enable { rule: String, value: String },
}

/// What the rules are applied with.
#[derive(Clone, Debug)]
pub struct Inputs {
    pub images: Vec<ImageRule>,
    pub tags: Vec<TagRule>,
    pub flavor: Flavor,
    pub short_sha_length: usize,
    /// The time for `{{date}}`: SOURCE_DATE_EPOCH or now.
    pub now: Timestamp,
}

/// The computed tags.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    /// The main version (first contributing rule), or empty.
    pub version: String,
    /// Tag names without image, in output order (main, partials, latest).
    pub tag_names: Vec<String>,
    /// Enabled images, lower-cased, in input order.
    pub images: Vec<String>,
    /// `image:tag` for every image and tag; bare tag names when there is no image.
    pub tags: Vec<String>,
    /// Things the user should know (invalid versions, fixed tags, no tag at all).
    pub warnings: Vec<String>,
}

#[derive(Default)]
struct Version {
    main: Option<String>,
    partial: Vec<String>,
    latest: Option<bool>,
}

/// Makes a sanitized tag acceptable to Docker (see the module documentation). Returns the tag
/// (or `None` when nothing is left) and a warning when it changed.
pub fn fix_for_docker(tag: &str) -> (Option<String>, Option<String>) {
    let trimmed = tag.trim_start_matches(['.', '-']);
    let fixed: String = trimmed.chars().take(MAX_TAG_LEN).collect();
    if fixed == tag {
        return (Some(fixed), None);
    }
    let why = if trimmed.len() != tag.len() {
        "a tag may not start with `.` or `-`"
    } else {
        "a tag may be at most 128 characters"
    };
    if fixed.is_empty() {
        (
            None,
            Some(format!(
                "dropped tag `{tag}`: {why}, and nothing is left without them"
            )),
        )
    } else {
        (
            Some(fixed.clone()),
            Some(format!("tag `{tag}` changed to `{fixed}`: {why}")),
        )
    }
}

/// metadata-action's sanitizer: every run of characters outside `[a-zA-Z0-9._-]` becomes `-`.
pub fn sanitize_tag(tag: &str) -> String {
    let mut out = String::with_capacity(tag.len());
    let mut in_run = false;
    for c in tag.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
            out.push(c);
            in_run = false;
        } else if !in_run {
            out.push('-');
            in_run = true;
        }
    }
    out
}

struct Run<'a> {
    globals: Globals<'a>,
    flavor: &'a Flavor,
    warnings: Vec<String>,
    /// Whether the rule being applied gave a value (before de-duplication).
    produced: bool,
}

/// "the ref `refs/heads/x`", or that there is none.
fn describe_ref(p: &Pipeline) -> String {
    if p.git_ref.is_empty() {
        "there is no git ref".into()
    } else {
        format!("the ref `{}`", p.git_ref)
    }
}

/// Why an enabled rule gave no value on this pipeline, for the warning that names it.
/// metadata-action skips such a rule silently; a rule that never applies is usually a typo or a
/// rule meant for another event, so gantry says so (outputs are unchanged).
fn why_no_tag(rule: &TagRule, p: &Pipeline) -> String {
    let needs_tag = |value: &str, what: &str| {
        if value.is_empty() && p.tag().is_none() {
            format!(
                "{} is not a tag and the rule has no `value`",
                describe_ref(p)
            )
        } else {
            format!("{what} is empty")
        }
    };
    match &rule.kind {
        TagKind::Schedule { .. } if !p.event.contains("schedule") => {
            if p.event.is_empty() {
                "the pipeline has no event name, so it is not a schedule".into()
            } else {
                format!("the event is `{}`, not a schedule", p.event)
            }
        }
        TagKind::Schedule { .. } => "its pattern gives an empty tag".into(),
        TagKind::Semver { value, .. } | TagKind::Pep440 { value, .. } => {
            needs_tag(value, "the version")
        }
        TagKind::Match { value, .. } => needs_tag(value, "the matched text"),
        TagKind::Edge { branch } => match (p.branch(), branch.is_empty()) {
            (None, _) => format!("{} is not a branch", describe_ref(p)),
            (Some(b), false) => format!("the branch `{b}` is not `{branch}`"),
            (Some(b), true) => match &p.default_branch {
                Some(d) => format!("the branch `{b}` is not the default branch `{d}`"),
                None => "the default branch is not known here; name it with `branch=`".into(),
            },
        },
        TagKind::Ref { event } => format!(
            "{} is not a {}",
            describe_ref(p),
            match event {
                RefEvent::Branch => "branch",
                RefEvent::Tag => "tag",
                RefEvent::Pr => "pull request",
            }
        ),
        TagKind::Raw { .. } => "its value is empty here".into(),
        TagKind::Sha { .. } => "there is no commit SHA".into(),
    }
}

impl Run<'_> {
    fn render(&self, rule: &TagRule, template: &str) -> Result<String, TagsError> {
        self.globals
            .render(template)
            .map_err(|source| TagsError::Expr {
                rule: rule.source.clone(),
                source,
            })
    }

    fn set_value(&self, rule: &TagRule, value: &str) -> Result<String, TagsError> {
        let p = self.globals.pipeline;
        let prefix = match (&rule.prefix, &rule.kind) {
            (Some(p), _) => self.render(rule, p)?,
            // The pull request default prefix is a rule default (so it beats the flavor's),
            // `pr-` on GitHub and `mr-` on GitLab.
            (
                None,
                TagKind::Ref {
                    event: RefEvent::Pr,
                },
            ) => p.pr_prefix.clone(),
            (None, _) => self.render(rule, &self.flavor.prefix)?,
        };
        let suffix = match &rule.suffix {
            Some(s) => self.render(rule, s)?,
            None => self.render(rule, &self.flavor.suffix)?,
        };
        Ok(format!("{prefix}{value}{suffix}"))
    }

    fn set_version(&mut self, version: &mut Version, value: &str, latest: bool) {
        if value.is_empty() {
            return;
        }
        self.produced = true;
        let (fixed, warning) = fix_for_docker(&sanitize_tag(value));
        self.warnings.extend(warning);
        let Some(value) = fixed else { return };
        match &version.main {
            None => version.main = Some(value),
            Some(main) if *main != value => version.partial.push(value),
            Some(_) => {}
        }
        if version.latest.is_none() {
            version.latest = Some(match self.flavor.latest {
                Latest::Auto => latest,
                Latest::True => true,
                Latest::False => false,
            });
        }
    }

    /// The ref's tag (or the rule's rendered `value`) for semver, pep440 and match rules.
    fn version_input(&self, rule: &TagRule, value: &str) -> Result<Option<String>, TagsError> {
        if !value.is_empty() {
            return Ok(Some(self.render(rule, value)?));
        }
        Ok(self.globals.pipeline.tag().map(str::to_string))
    }

    /// semver/pep440 `match=`: capture group 1 of the regex (the whole value when it does not
    /// match), then `/` becomes `-`.
    fn apply_matcher(&mut self, rule: &TagRule, input: String, matcher: &str) -> String {
        self.match_group1(rule, input, matcher).replace('/', "-")
    }

    fn match_group1(&mut self, rule: &TagRule, input: String, matcher: &str) -> String {
        if matcher.is_empty() {
            return input;
        }
        match regex::Regex::new(matcher).ok().and_then(|re| {
            re.captures(&input)
                .and_then(|c| c.get(1).map(|m| m.as_str().to_string()))
        }) {
            Some(m) => m,
            None => {
                self.warnings.push(format!(
                    "tag rule `{}`: `{matcher}` does not match `{input}`; the whole value is used",
                    rule.source
                ));
                input
            }
        }
    }

    fn apply(&mut self, rule: &TagRule, v: &mut Version) -> Result<(), TagsError> {
        let p = self.globals.pipeline;
        match &rule.kind {
            TagKind::Schedule { pattern } => {
                if p.event.contains("schedule") {
                    let val = self.render(rule, pattern)?;
                    let val = self.set_value(rule, &val)?;
                    self.set_version(v, &val, false);
                }
            }
            TagKind::Semver {
                pattern,
                value,
                matcher,
            } => {
                let Some(input) = self.version_input(rule, value)? else {
                    return Ok(());
                };
                let input = self.apply_matcher(rule, input, matcher);
                let Some(sv) = parse_semver(&input) else {
                    self.warnings.push(format!(
                        "tag rule `{}`: `{input}` is not a valid semantic version; no tag",
                        rule.source
                    ));
                    return Ok(());
                };
                let prerelease = sv.prerelease.is_some();
                let pattern = if prerelease && !expr::is_raw_statement(pattern) {
                    "{{version}}"
                } else {
                    pattern.as_str()
                };
                let rendered = expr::render(
                    pattern,
                    "`raw`, `version`, `major`, `minor`, `patch`",
                    &|c| {
                        Ok(match c.name.as_str() {
                            "raw" => Some(sv.raw.clone()),
                            "version" => Some(sv.version()),
                            "major" => Some(sv.major.clone()),
                            "minor" => Some(sv.minor.clone()),
                            "patch" => Some(sv.patch.clone()),
                            "prerelease" => Some(sv.prerelease.clone().unwrap_or_default()),
                            _ => None,
                        })
                    },
                )
                .map_err(|source| TagsError::Expr {
                    rule: rule.source.clone(),
                    source,
                })?;
                let val = self.set_value(rule, &rendered)?;
                self.set_version(v, &val, !prerelease);
            }
            TagKind::Pep440 {
                pattern,
                value,
                matcher,
            } => {
                let Some(input) = self.version_input(rule, value)? else {
                    return Ok(());
                };
                let input = self.apply_matcher(rule, input, matcher);
                let Some(pv) = parse_pep440(&input) else {
                    self.warnings.push(format!(
                        "tag rule `{}`: `{input}` is not a valid PEP 440 version; no tag",
                        rule.source
                    ));
                    return Ok(());
                };
                let fin = pv.is_final();
                let rendered = if !fin {
                    if expr::is_raw_statement(pattern) {
                        input.clone()
                    } else {
                        pv.clean()
                    }
                } else {
                    expr::render(
                        pattern,
                        "`raw`, `version`, `major`, `minor`, `patch`",
                        &|c| {
                            Ok(match c.name.as_str() {
                                "raw" => Some(input.clone()),
                                "version" => Some(pv.clean()),
                                "major" => Some(pv.part(0).to_string()),
                                "minor" => Some(pv.part(1).to_string()),
                                "patch" => Some(pv.part(2).to_string()),
                                _ => None,
                            })
                        },
                    )
                    .map_err(|source| TagsError::Expr {
                        rule: rule.source.clone(),
                        source,
                    })?
                };
                let val = self.set_value(rule, &rendered)?;
                self.set_version(v, &val, fin);
            }
            TagKind::Match {
                pattern,
                group,
                value,
            } => {
                // Unlike semver and pep440, metadata-action matches the tag name as it is: a
                // pattern may spell out a `/` of the tag (`release/v(\d+)`).
                let Some(input) = self.version_input(rule, value)? else {
                    return Ok(());
                };
                let re = rules::compile_match(pattern).map_err(|x| RuleError {
                    kind: "tag",
                    rule: rule.source.clone(),
                    problem: format!("`pattern` is not a valid regular expression: {x}"),
                    hint: "write a regular expression, optionally as `/re/flags`".into(),
                })?;
                let Some(captures) = re.captures(&input) else {
                    self.warnings.push(format!(
                        "tag rule `{}`: `{pattern}` does not match `{input}`; no tag",
                        rule.source
                    ));
                    return Ok(());
                };
                match captures.get(*group) {
                    Some(m) => {
                        let val = self.set_value(rule, m.as_str())?;
                        self.set_version(v, &val, true);
                    }
                    None => self.warnings.push(format!(
                        "tag rule `{}`: group {group} of `{pattern}` does not exist or takes no part in matching `{input}`; no tag",
                        rule.source
                    )),
                }
            }
            TagKind::Edge { branch } => {
                if let Some(current) = p.branch() {
                    let wanted = if branch.is_empty() {
                        p.default_branch.clone()
                    } else {
                        Some(branch.clone())
                    };
                    if wanted.as_deref() == Some(current) {
                        let val = self.set_value(rule, "edge")?;
                        self.set_version(v, &val, false);
                    }
                }
            }
            TagKind::Ref { event } => {
                let (value, latest) = match event {
                    RefEvent::Branch => (p.branch(), false),
                    RefEvent::Tag => (p.tag(), true),
                    RefEvent::Pr => (p.pull_request(), false),
                };
                if let Some(value) = value {
                    let val = self.set_value(rule, value)?;
                    self.set_version(v, &val, latest);
                }
            }
            TagKind::Raw { value } => {
                let val = self.render(rule, value)?;
                let val = self.set_value(rule, &val)?;
                self.set_version(v, &val, false);
            }
            TagKind::Sha { long } => {
                if !p.sha.is_empty() {
                    let sha = if *long {
                        p.sha.as_str()
                    } else {
                        p.short_sha(self.globals.short_sha_length)
                    };
                    let val = self.set_value(rule, sha)?;
                    self.set_version(v, &val, false);
                }
            }
        }
        Ok(())
    }
}

/// Applies the rules to the pipeline.
pub fn compute(pipeline: &Pipeline, inputs: &Inputs) -> Result<Metadata, TagsError> {
    let mut run = Run {
        globals: Globals {
            pipeline,
            now: inputs.now,
            short_sha_length: inputs.short_sha_length,
        },
        flavor: &inputs.flavor,
        warnings: Vec::new(),
        produced: false,
    };
    let mut sorted: Vec<&TagRule> = inputs.tags.iter().collect();
    // `sort_by_key` is stable: equal priorities keep their input order, as in JavaScript.
    sorted.sort_by_key(|r| std::cmp::Reverse(r.priority));
    let mut version = Version::default();
    for rule in sorted {
        let enabled = run.render(rule, &rule.enable)?;
        match enabled.as_str() {
            "true" => {
                let warned = run.warnings.len();
                run.produced = false;
                run.apply(rule, &mut version)?;
                if !run.produced && run.warnings.len() == warned && !rule.implicit {
                    run.warnings.push(format!(
                        "tag rule `{}` gives no tag here: {}",
                        rule.source,
                        why_no_tag(rule, pipeline)
                    ));
                }
            }
            "false" => {}
            _ => {
                return Err(TagsError::Enable {
                    rule: rule.source.clone(),
                    value: enabled,
                })
            }
        }
    }
    let mut images = Vec::new();
    for image in &inputs.images {
        let enabled = run
            .globals
            .render(&image.enable)
            .map_err(|source| TagsError::Expr {
                rule: image.name.clone(),
                source,
            })?;
        if enabled == "true" {
            images.push(image.name.to_lowercase());
        }
    }
    let mut meta = Metadata {
        images,
        ..Metadata::default()
    };
    let Some(main) = version.main else {
        run.warnings
            .push("no tag was generated: no tag rule applies to this pipeline".into());
        meta.warnings = run.warnings;
        return Ok(meta);
    };
    meta.version = main.clone();
    let mut names = vec![main];
    for p in version.partial {
        if !names.contains(&p) {
            names.push(p);
        }
    }
    if version.latest == Some(true) {
        let f = &inputs.flavor;
        let latest = format!(
            "{}latest{}",
            if f.prefix_on_latest {
                run.globals.render(&f.prefix).unwrap_or_default()
            } else {
                String::new()
            },
            if f.suffix_on_latest {
                run.globals.render(&f.suffix).unwrap_or_default()
            } else {
                String::new()
            },
        );
        let (fixed, warning) = fix_for_docker(&sanitize_tag(&latest));
        run.warnings.extend(warning);
        if let Some(l) = fixed {
            if !names.contains(&l) {
                names.push(l);
            }
        }
    }
    meta.tags = if meta.images.is_empty() {
        names.clone()
    } else {
        meta.images
            .iter()
            .flat_map(|i| names.iter().map(move |n| format!("{i}:{n}")))
            .collect()
    };
    meta.tag_names = names;
    meta.warnings = run.warnings;
    Ok(meta)
}

#[cfg(test)]
#[path = "tags_tests.rs"]
mod tests;
