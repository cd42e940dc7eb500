//! Parsing metadata-action's rule language: tag rules, flavor entries and image entries.
//!
//! A list flag takes one entry per line (blank lines and `#` comment lines skipped). An entry is
//! comma-separated fields; a field holding a comma is double-quoted (`type=match,"pattern=\d{1,3}"`).
//! Tag fields split on their first `=` (key lower-cased, both trimmed); a field without `=` is the
//! `value`. Unlike metadata-action, flavor and image fields also split on the first `=` (it keeps
//! only the text between the first and second `=`), and an unknown attribute is an error rather
//! than silently ignored.

use std::collections::BTreeMap;

/// A rule that could not be parsed: the rule's text and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} rule `{rule}`: {problem}\nhint: {hint}")]
pub struct RuleError {
    pub kind: &'static str,
    pub rule: String,
    pub problem: String,
    pub hint: String,
}

fn err(kind: &'static str, rule: &str, problem: impl Into<String>, hint: &str) -> RuleError {
    RuleError {
        kind,
        rule: rule.to_string(),
        problem: problem.into(),
        hint: hint.to_string(),
    }
}

/// The tag types, with their type-specific attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagKind {
    Schedule {
        pattern: String,
    },
    Semver {
        pattern: String,
        value: String,
        matcher: String,
    },
    Pep440 {
        pattern: String,
        value: String,
        matcher: String,
    },
    Match {
        pattern: String,
        group: usize,
        value: String,
    },
    Edge {
        branch: String,
    },
    Ref {
        event: RefEvent,
    },
    Raw {
        value: String,
    },
    Sha {
        long: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefEvent {
    Branch,
    Tag,
    Pr,
}

/// One parsed `--tag` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagRule {
    pub kind: TagKind,
    /// Rendered through the global expressions; must give `true` or `false`.
    pub enable: String,
    pub priority: i64,
    /// `None` means "use the flavor's" (or the type's default: `sha-`, the pull request prefix).
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    /// The rule as written, for messages.
    pub source: String,
    /// A default or preset rule rather than one the user wrote: it is not warned about when it
    /// gives no tag.
    pub implicit: bool,
}

impl TagRule {
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            TagKind::Schedule { .. } => "schedule",
            TagKind::Semver { .. } => "semver",
            TagKind::Pep440 { .. } => "pep440",
            TagKind::Match { .. } => "match",
            TagKind::Edge { .. } => "edge",
            TagKind::Ref { .. } => "ref",
            TagKind::Raw { .. } => "raw",
            TagKind::Sha { .. } => "sha",
        }
    }
}

/// metadata-action's defaults when no tag rule is given.
pub const DEFAULT_TAG_RULES: &[&str] = &[
    "type=schedule",
    "type=ref,event=branch",
    "type=ref,event=tag",
    "type=ref,event=pr",
];

/// `--preset latest-tag-sha`: the seed pipeline's rule. `latest` on the default branch, the git
/// tag in tag pipelines, the full commit SHA otherwise, and never an automatic `latest`. The
/// three cases exclude each other, which enable expressions cannot say, so the preset picks
/// the one rule for the pipeline.
pub fn preset_latest_tag_sha(pipeline: &crate::ci::Pipeline) -> (Vec<TagRule>, Flavor) {
    let rule = if pipeline.tag().is_some() {
        "type=ref,event=tag"
    } else if pipeline.is_default_branch() {
        "type=raw,value=latest"
    } else {
        "type=sha,format=long,prefix="
    };
    let flavor = Flavor {
        latest: Latest::False,
        ..Flavor::default()
    };
    let rules = parse_tag(rule)
        .into_iter()
        .map(|r| TagRule {
            implicit: true,
            ..r
        })
        .collect();
    (rules, flavor)
}

/// Splits repeatable flag values that may each hold a newline-separated list into entries:
/// trimmed, without blank lines and `#` comment lines.
pub fn split_list(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.lines())
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Splits one entry into comma-separated fields, honouring double quotes (`""` is a quote).
pub fn split_fields(entry: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = entry.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    fields.push(cur);
    fields
        .into_iter()
        .map(|f| f.trim().to_string())
        .filter(|f| !f.is_empty())
        .collect()
}

const TAG_HINT: &str = "see `gantry tags --help`; e.g. `type=semver,pattern={{version}}`";

/// Parses one tag rule.
pub fn parse_tag(entry: &str) -> Result<TagRule, RuleError> {
    let mut attrs: BTreeMap<String, String> = BTreeMap::new();
    for field in split_fields(entry) {
        match field.split_once('=') {
            Some((k, v)) => attrs.insert(k.trim().to_lowercase(), v.trim().to_string()),
            None => attrs.insert("value".into(), field),
        };
    }
    let e = |problem: String, hint: &str| err("tag", entry, problem, hint);
    let ty = attrs.remove("type").unwrap_or_else(|| "raw".into());
    let mut take = |k: &str| attrs.remove(k);
    let enable = take("enable").unwrap_or_else(|| "true".into());
    let priority_raw = take("priority");
    let mut prefix = take("prefix");
    let suffix = take("suffix");
    let required = |v: Option<String>, name: &str, hint: &str| {
        v.filter(|v| !v.is_empty())
            .ok_or_else(|| e(format!("`type={ty}` needs a `{name}` attribute"), hint))
    };
    let (kind, default_priority) = match ty.as_str() {
        "schedule" => (
            TagKind::Schedule {
                pattern: take("pattern").unwrap_or_else(|| "nightly".into()),
            },
            1000,
        ),
        "semver" | "pep440" => {
            let pattern = required(
                take("pattern"),
                "pattern",
                "e.g. `type=semver,pattern={{version}}`",
            )?;
            let value = take("value").unwrap_or_default();
            let matcher = take("match").unwrap_or_default();
            if !matcher.is_empty() {
                regex::Regex::new(&matcher).map_err(|x| {
                    e(
                        format!("`match` is not a valid regular expression: {x}"),
                        "write a regular expression with one capture group",
                    )
                })?;
            }
            let kind = if ty == "semver" {
                TagKind::Semver {
                    pattern,
                    value,
                    matcher,
                }
            } else {
                TagKind::Pep440 {
                    pattern,
                    value,
                    matcher,
                }
            };
            (kind, 900)
        }
        "match" => {
            let pattern = required(
                take("pattern"),
                "pattern",
                "e.g. `type=match,pattern=v(\\d.\\d),group=1`",
            )?;
            compile_match(&pattern).map_err(|x| {
                e(
                    format!("`pattern` is not a valid regular expression: {x}"),
                    "write a regular expression, optionally as `/re/flags`",
                )
            })?;
            let group_raw = take("group").unwrap_or_else(|| "0".into());
            let group = group_raw.parse::<usize>().map_err(|_| {
                e(
                    format!("`group={group_raw}` is not a number"),
                    "use a capture group number, e.g. `group=1`",
                )
            })?;
            let value = take("value").unwrap_or_default();
            (
                TagKind::Match {
                    pattern,
                    group,
                    value,
                },
                800,
            )
        }
        "edge" => (
            TagKind::Edge {
                branch: take("branch").unwrap_or_default(),
            },
            700,
        ),
        "ref" => {
            let event = required(
                take("event"),
                "event",
                "use `event=branch`, `event=tag` or `event=pr`",
            )?;
            let event = match event.as_str() {
                "branch" => RefEvent::Branch,
                "tag" => RefEvent::Tag,
                "pr" => RefEvent::Pr,
                other => {
                    return Err(e(
                        format!("unknown event `{other}`"),
                        "use `event=branch`, `event=tag` or `event=pr`",
                    ))
                }
            };
            (TagKind::Ref { event }, 600)
        }
        "raw" => (
            TagKind::Raw {
                value: required(take("value"), "value", "e.g. `type=raw,value=latest`")?,
            },
            200,
        ),
        "sha" => {
            let format = take("format").unwrap_or_else(|| "short".into());
            let long = match format.as_str() {
                "short" => false,
                "long" => true,
                other => {
                    return Err(e(
                        format!("unknown format `{other}`"),
                        "use `format=short` or `format=long`",
                    ))
                }
            };
            if prefix.is_none() {
                prefix = Some("sha-".into());
            }
            (TagKind::Sha { long }, 100)
        }
        other => {
            return Err(e(
                format!("unknown tag type `{other}`"),
                "use one of schedule, semver, pep440, match, edge, ref, raw, sha",
            ))
        }
    };
    if let Some((k, _)) = attrs.iter().next() {
        return Err(e(
            format!("unknown attribute `{k}` for `type={ty}`"),
            TAG_HINT,
        ));
    }
    let priority = match priority_raw {
        None => default_priority,
        Some(p) => p.parse::<i64>().map_err(|_| {
            e(
                format!("`priority={p}` is not a number"),
                "use a whole number, e.g. `priority=1000`",
            )
        })?,
    };
    Ok(TagRule {
        kind,
        enable,
        priority,
        prefix,
        suffix,
        source: entry.to_string(),
        implicit: false,
    })
}

/// Compiles a `type=match` pattern, written as a plain regular expression or as `/re/flags`
/// (flags `i`, `m`, `s`, `u`; `g` is accepted and means nothing for a single match).
pub fn compile_match(pattern: &str) -> Result<regex::Regex, regex::Error> {
    if let Some(rest) = pattern.strip_prefix('/') {
        if let Some(end) = rest.rfind('/') {
            let (re, flags) = (&rest[..end], &rest[end + 1..]);
            if flags.chars().all(|c| "gimsuy".contains(c)) {
                let inline: String = flags.chars().filter(|c| "ims".contains(*c)).collect();
                let re = if inline.is_empty() {
                    re.to_string()
                } else {
                    format!("(?{inline}){re}")
                };
                return regex::Regex::new(&re);
            }
        }
    }
    regex::Regex::new(pattern)
}

/// Parses every tag rule; with none, metadata-action's defaults.
pub fn parse_tags(entries: &[String]) -> Result<Vec<TagRule>, RuleError> {
    if entries.is_empty() {
        return DEFAULT_TAG_RULES
            .iter()
            .map(|r| {
                parse_tag(r).map(|r| TagRule {
                    implicit: true,
                    ..r
                })
            })
            .collect();
    }
    entries.iter().map(|r| parse_tag(r)).collect()
}

/// When `latest` is emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Latest {
    #[default]
    Auto,
    True,
    False,
}

/// The `--flavor` settings.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Flavor {
    pub latest: Latest,
    pub prefix: String,
    pub prefix_on_latest: bool,
    pub suffix: String,
    pub suffix_on_latest: bool,
}

/// Parses the flavor entries (later entries override earlier ones).
pub fn parse_flavor(entries: &[String]) -> Result<Flavor, RuleError> {
    let mut flavor = Flavor::default();
    for entry in entries {
        let e = |problem: String, hint: &str| err("flavor", entry, problem, hint);
        let mut on_latest_for: Option<bool> = None; // Some(true) = prefix, Some(false) = suffix
        for field in split_fields(entry) {
            let Some((k, v)) = field.split_once('=') else {
                return Err(e(
                    format!("`{field}` has no `=`"),
                    "use `latest=auto|true|false`, `prefix=…[,onlatest=true]` or `suffix=…[,onlatest=true]`",
                ));
            };
            let (k, v) = (k.trim().to_lowercase(), v.trim().to_string());
            let bool_of = |v: &str| match v {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(e(
                    format!("`{k}={v}` is not `true` or `false`"),
                    "use `true` or `false`",
                )),
            };
            match k.as_str() {
                "latest" => {
                    flavor.latest = match v.as_str() {
                        "auto" => Latest::Auto,
                        "true" => Latest::True,
                        "false" => Latest::False,
                        _ => {
                            return Err(e(
                                format!("`latest={v}` is not auto, true or false"),
                                "use `latest=auto`, `latest=true` or `latest=false`",
                            ))
                        }
                    }
                }
                "prefix" => {
                    flavor.prefix = v;
                    on_latest_for = Some(true);
                }
                "suffix" => {
                    flavor.suffix = v;
                    on_latest_for = Some(false);
                }
                "onlatest" => {
                    let b = bool_of(&v)?;
                    match on_latest_for {
                        Some(true) => flavor.prefix_on_latest = b,
                        Some(false) => flavor.suffix_on_latest = b,
                        None => {
                            return Err(e(
                                "`onlatest` must follow `prefix=` or `suffix=` in the same entry"
                                    .into(),
                                "e.g. `prefix=dev-,onlatest=true`",
                            ))
                        }
                    }
                }
                _ => {
                    return Err(e(
                        format!("unknown flavor key `{k}`"),
                        "use `latest`, `prefix`, `suffix` or `onlatest`",
                    ))
                }
            }
        }
    }
    Ok(flavor)
}

/// One `--image` entry: `name` or `name=<image>,enable=<expr>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRule {
    pub name: String,
    pub enable: String,
}

pub fn parse_images(entries: &[String]) -> Result<Vec<ImageRule>, RuleError> {
    entries
        .iter()
        .map(|entry| {
            let mut rule = ImageRule {
                name: String::new(),
                enable: "true".into(),
            };
            for field in split_fields(entry) {
                match field.split_once('=') {
                    Some((k, v)) if k.trim().eq_ignore_ascii_case("name") => {
                        rule.name = v.trim().into()
                    }
                    Some((k, v)) if k.trim().eq_ignore_ascii_case("enable") => {
                        rule.enable = v.trim().into()
                    }
                    Some((k, _)) => {
                        return Err(err(
                            "image",
                            entry,
                            format!("unknown key `{}`", k.trim()),
                            "use `IMAGE` or `name=IMAGE,enable=true|false`",
                        ))
                    }
                    None => rule.name = field,
                }
            }
            if rule.name.is_empty() {
                return Err(err(
                    "image",
                    entry,
                    "no image name",
                    "e.g. `ghcr.io/owner/app`",
                ));
            }
            Ok(rule)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_honour_quotes() {
        assert_eq!(
            split_fields(r#"type=match,"pattern=\d{1,3}",group=0"#),
            vec!["type=match", r"pattern=\d{1,3}", "group=0"]
        );
        assert_eq!(split_fields("foo"), vec!["foo"]);
    }

    #[test]
    fn defaults_per_type() {
        let r = parse_tag("type=sha").unwrap();
        assert_eq!(r.prefix.as_deref(), Some("sha-"));
        assert_eq!(r.priority, 100);
        let r = parse_tag("type=sha,prefix=").unwrap();
        assert_eq!(r.prefix.as_deref(), Some(""));
        let r = parse_tag("foo").unwrap();
        assert_eq!(
            r.kind,
            TagKind::Raw {
                value: "foo".into()
            }
        );
        assert_eq!(r.priority, 200);
        let r = parse_tag("type=raw,foo,priority=2000").unwrap();
        assert_eq!(r.priority, 2000);
        let r = parse_tag("type=schedule").unwrap();
        assert_eq!(
            r.kind,
            TagKind::Schedule {
                pattern: "nightly".into()
            }
        );
        // Keys are lower-cased: `TYPE=edge` is `type=edge`.
        assert_eq!(parse_tag("TYPE=edge").unwrap().priority, 700);
    }

    /// The parse errors of metadata-action's `__tests__/tag.test.ts`, one message each.
    #[test]
    fn parse_errors_name_the_rule_and_the_problem() {
        let cases = [
            ("type=semver", "needs a `pattern`"),
            ("type=match", "needs a `pattern`"),
            ("type=ref", "needs a `event`"),
            ("type=ref,event=foo", "unknown event `foo`"),
            ("type=raw", "needs a `value`"),
            ("type=sha,format=foo", "unknown format `foo`"),
            (
                "type=match,pattern=x,group=foo",
                "`group=foo` is not a number",
            ),
            ("type=foo", "unknown tag type `foo`"),
            ("type=raw,value=x,colour=red", "unknown attribute `colour`"),
            ("type=raw,value=x,priority=high", "`priority=high`"),
        ];
        for (rule, want) in cases {
            let e = parse_tag(rule).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(&format!("`{rule}`")), "{msg}");
            assert!(msg.contains(want), "{rule}: {msg}");
            assert!(msg.contains("hint:"), "{msg}");
        }
    }

    #[test]
    fn flavor_entries() {
        let f = parse_flavor(&[
            "latest=false".into(),
            "prefix=foo-,onlatest=true".into(),
            "suffix=-bar".into(),
        ])
        .unwrap();
        assert_eq!(f.latest, Latest::False);
        assert_eq!(f.prefix, "foo-");
        assert!(f.prefix_on_latest);
        assert_eq!(f.suffix, "-bar");
        assert!(!f.suffix_on_latest);
        for (bad, want) in [
            ("latest=maybe", "`latest=maybe`"),
            ("foo=bar", "unknown flavor key `foo`"),
            ("prefix", "has no `=`"),
            ("onlatest=true", "must follow"),
        ] {
            let msg = parse_flavor(&[bad.into()]).unwrap_err().to_string();
            assert!(msg.contains(want), "{bad}: {msg}");
        }
    }

    #[test]
    fn lists_split_on_lines_and_skip_comments() {
        let v = split_list(&["a\n\n# c\n  b  ".into(), "c".into()]);
        assert_eq!(v, vec!["a", "b", "c"]);
    }

    #[test]
    fn images() {
        let v = parse_images(&["name=ghcr.io/a/b,enable=false".into(), "x/y".into()]).unwrap();
        assert_eq!(v[0].name, "ghcr.io/a/b");
        assert_eq!(v[0].enable, "false");
        assert_eq!(v[1].name, "x/y");
    }

    #[test]
    fn match_patterns_with_flags() {
        let re = compile_match("/^V(\\d)$/i").unwrap();
        assert!(re.is_match("v1"));
    }
}
