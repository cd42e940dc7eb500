//! Writing what gantry derived where CI systems read it: plain lines, JSON, GitLab dotenv
//! reports, GitHub step outputs (`GITHUB_OUTPUT`, multi-line values between random delimiters),
//! the Markdown job summary (`GITHUB_STEP_SUMMARY`), log groups and `::add-mask::`.
//!
//! Functions here build text; callers decide where it goes, so each format is tested as bytes.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::ci::{Metadata, Provider};

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot write `{key}` to a dotenv report: {why}\nhint: GitLab's dotenv reports take one `KEY=value` line per variable, without spaces or newlines in values")]
    Dotenv { key: String, why: &'static str },
    #[error("cannot append to `{path}`: {source}")]
    Append {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One tag per line.
pub fn lines(meta: &Metadata) -> String {
    meta.tags.iter().map(|t| format!("{t}\n")).collect()
}

/// Annotations at the manifest level (`manifest:key=value`), as metadata-action's default.
pub fn annotations(labels: &BTreeMap<String, String>) -> Vec<String> {
    labels
        .iter()
        .map(|(k, v)| format!("manifest:{k}={v}"))
        .collect()
}

/// `{"annotations": […], "labels": {…}, "tag-names": […], "tags": […], "version": "…"}` with
/// sorted keys, pretty-printed.
pub fn json(meta: &Metadata, labels: &BTreeMap<String, String>) -> String {
    let value = serde_json::json!({
        "annotations": annotations(labels),
        "labels": labels,
        "tag-names": meta.tag_names,
        "tags": meta.tags,
        "version": meta.version,
    });
    let mut s = serde_json::to_string_pretty(&value).unwrap_or_default();
    s.push('\n');
    s
}

/// A GitLab dotenv report: plain `KEY=value` lines, no quotes, comments or blank lines; a value
/// with a space or newline is refused (GitLab would reject the whole report).
pub fn dotenv(vars: &[(String, String)]) -> Result<String, OutputError> {
    let mut out = String::new();
    for (k, v) in vars {
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(OutputError::Dotenv {
                key: k.clone(),
                why: "keys may hold only letters, digits and `_`",
            });
        }
        if v.chars().any(char::is_whitespace) {
            return Err(OutputError::Dotenv {
                key: k.clone(),
                why: "the value holds whitespace",
            });
        }
        out.push_str(&format!("{k}={v}\n"));
    }
    Ok(out)
}

/// What a `ci build` or `ci manifest` step pushed: the digest, and every reference it made
/// point at that digest - the derived tags, the per-architecture tags with `--per-arch`, or
/// `image@digest` with `--push-by-digest`.
#[derive(Clone, Copy, Debug)]
pub struct Pushed<'a> {
    pub digest: &'a str,
    pub refs: &'a [String],
}

/// The variables `gantry tags --format dotenv` and `gantry ci build` write for later jobs
/// (`GANTRY_DIGEST` and `GANTRY_PUSHED` only after a push).
pub fn dotenv_vars(meta: &Metadata, pushed: Option<&Pushed>) -> Vec<(String, String)> {
    let mut vars = vec![
        ("GANTRY_VERSION".to_string(), meta.version.clone()),
        ("GANTRY_TAGS".to_string(), meta.tags.join(",")),
        (
            "GANTRY_TAG".to_string(),
            meta.tags.first().cloned().unwrap_or_default(),
        ),
    ];
    if let Some(p) = pushed {
        vars.push(("GANTRY_DIGEST".into(), p.digest.to_string()));
        vars.push(("GANTRY_PUSHED".into(), p.refs.join(",")));
    }
    vars
}

/// GitHub step outputs: `name=value`, or `name<<DELIM` / value / `DELIM` for multi-line values.
/// `delimiter` must not occur in any value (a fresh random one is used by [`github_delimiter`]).
pub fn github_output(vars: &[(String, String)], delimiter: &str) -> String {
    let mut out = String::new();
    for (k, v) in vars {
        if v.contains('\n') || v.contains('\r') {
            out.push_str(&format!("{k}<<{delimiter}\n{v}\n{delimiter}\n"));
        } else {
            out.push_str(&format!("{k}={v}\n"));
        }
    }
    out
}

/// A delimiter that occurs in none of the values (`ghadelimiter_<random>`, as actions/toolkit).
pub fn github_delimiter(vars: &[(String, String)]) -> String {
    loop {
        let d = format!("ghadelimiter_{:032x}", rand::random::<u128>());
        if !vars.iter().any(|(k, v)| k.contains(&d) || v.contains(&d)) {
            return d;
        }
    }
}

/// The step outputs metadata-action users expect (`version`, `tags`, `tag-names`, `labels`,
/// `annotations`, `json`: what the rules derived, the same in every job of a pipeline), plus
/// after a push `digest`, `image` (the first image name) and `pushed` (what this step pushed,
/// which differs from `tags` with `--per-arch`).
pub fn github_vars(
    meta: &Metadata,
    labels: &BTreeMap<String, String>,
    pushed: Option<&Pushed>,
) -> Vec<(String, String)> {
    let label_lines: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut vars = vec![
        ("version".to_string(), meta.version.clone()),
        ("tags".to_string(), meta.tags.join("\n")),
        ("tag-names".to_string(), meta.tag_names.join("\n")),
        ("labels".to_string(), label_lines.join("\n")),
        ("annotations".to_string(), annotations(labels).join("\n")),
        (
            "json".to_string(),
            json(meta, labels).trim_end().to_string(),
        ),
    ];
    if let Some(p) = pushed {
        vars.push(("digest".into(), p.digest.to_string()));
        if let Some(image) = meta.images.first() {
            vars.push(("image".into(), image.clone()));
        }
        vars.push(("pushed".into(), p.refs.join("\n")));
    }
    vars
}

/// The Markdown job summary for GitHub: what was pushed, then (when they differ, as with
/// `--per-arch`) the derived tags a later `gantry ci manifest` puts the index under, then the
/// labels.
pub fn step_summary(
    title: &str,
    meta: &Metadata,
    labels: &BTreeMap<String, String>,
    pushed: &Pushed,
) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut s = format!("### {}\n\n| | |\n|---|---|\n", cell(title));
    s.push_str(&format!("| digest | `{}` |\n", cell(pushed.digest)));
    for t in pushed.refs {
        s.push_str(&format!("| pushed | `{}` |\n", cell(t)));
    }
    if pushed.refs != meta.tags.as_slice() {
        for t in &meta.tags {
            s.push_str(&format!("| index tag | `{}` |\n", cell(t)));
        }
    }
    for (k, v) in labels {
        s.push_str(&format!("| `{}` | {} |\n", cell(k), cell(v)));
    }
    s
}

/// Appends text to a file (creating it), as CI environment files are meant to be written.
pub fn append(path: &Path, text: &str) -> Result<(), OutputError> {
    let err = |source| OutputError::Append {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)
}

/// The line that opens a collapsible log section, if the CI system has them.
pub fn group_start(provider: Provider, id: &str, title: &str, unix_secs: i64) -> Option<String> {
    match provider {
        Provider::GitHub => Some(format!("::group::{title}")),
        Provider::GitLab => Some(format!(
            "\x1b[0Ksection_start:{unix_secs}:{id}[collapsed=true]\r\x1b[0K{title}"
        )),
        _ => None,
    }
}

/// The line that closes [`group_start`]'s section.
pub fn group_end(provider: Provider, id: &str, unix_secs: i64) -> Option<String> {
    match provider {
        Provider::GitHub => Some("::endgroup::".into()),
        Provider::GitLab => Some(format!("\x1b[0Ksection_end:{unix_secs}:{id}\r\x1b[0K")),
        _ => None,
    }
}

/// GitHub's command to hide a secret in every later log line (escaped as actions/toolkit does).
pub fn add_mask(secret: &str) -> String {
    let escaped = secret
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A");
    format!("::add-mask::{escaped}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Metadata {
        Metadata {
            version: "v1.2.3".into(),
            tag_names: vec!["v1.2.3".into(), "latest".into()],
            images: vec!["r/app".into()],
            tags: vec!["r/app:v1.2.3".into(), "r/app:latest".into()],
            warnings: vec![],
        }
    }

    fn labels() -> BTreeMap<String, String> {
        [
            ("b".to_string(), "two words".to_string()),
            ("a".to_string(), "1".to_string()),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn json_is_sorted_and_complete() {
        let j = json(&meta(), &labels());
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(
            v["tags"],
            serde_json::json!(["r/app:v1.2.3", "r/app:latest"])
        );
        assert_eq!(v["labels"]["b"], "two words");
        assert_eq!(
            v["annotations"],
            serde_json::json!(["manifest:a=1", "manifest:b=two words"])
        );
        assert_eq!(v["version"], "v1.2.3");
        assert!(j.find("\"annotations\"").unwrap() < j.find("\"version\"").unwrap());
    }

    #[test]
    fn dotenv_rules() {
        let refs = ["r/app:v1.2.3-arm64".to_string()];
        let pushed = Pushed {
            digest: "sha256:ab",
            refs: &refs,
        };
        let s = dotenv(&dotenv_vars(&meta(), Some(&pushed))).unwrap();
        assert_eq!(
            s,
            "GANTRY_VERSION=v1.2.3\nGANTRY_TAGS=r/app:v1.2.3,r/app:latest\nGANTRY_TAG=r/app:v1.2.3\nGANTRY_DIGEST=sha256:ab\nGANTRY_PUSHED=r/app:v1.2.3-arm64\n"
        );
        assert_eq!(
            dotenv(&dotenv_vars(&meta(), None)).unwrap(),
            "GANTRY_VERSION=v1.2.3\nGANTRY_TAGS=r/app:v1.2.3,r/app:latest\nGANTRY_TAG=r/app:v1.2.3\n"
        );
        assert!(dotenv(&[("A".into(), "x y".into())])
            .unwrap_err()
            .to_string()
            .contains("`A`"));
        assert!(dotenv(&[("A-B".into(), "x".into())]).is_err());
    }

    #[test]
    fn github_output_uses_delimiters_for_multi_line_values() {
        let vars = github_vars(&meta(), &labels(), None);
        let d = github_delimiter(&vars);
        assert!(d.starts_with("ghadelimiter_") && d.len() == 13 + 32);
        let out = github_output(&vars[..3], "DELIM");
        assert_eq!(
            out,
            "version=v1.2.3\ntags<<DELIM\nr/app:v1.2.3\nr/app:latest\nDELIM\ntag-names<<DELIM\nv1.2.3\nlatest\nDELIM\n"
        );
    }

    #[test]
    fn groups_masks_and_summary() {
        assert_eq!(
            group_start(Provider::GitHub, "b", "Build", 5).unwrap(),
            "::group::Build"
        );
        assert_eq!(
            group_start(Provider::GitLab, "b", "Build", 5).unwrap(),
            "\x1b[0Ksection_start:5:b[collapsed=true]\r\x1b[0KBuild"
        );
        assert_eq!(
            group_end(Provider::GitLab, "b", 6).unwrap(),
            "\x1b[0Ksection_end:6:b\r\x1b[0K"
        );
        assert!(group_start(Provider::None, "b", "B", 0).is_none());
        assert_eq!(add_mask("a%b\nc"), "::add-mask::a%25b%0Ac");
        let tags = meta().tags;
        let s = step_summary(
            "gantry build",
            &meta(),
            &labels(),
            &Pushed {
                digest: "sha256:ab",
                refs: &tags,
            },
        );
        assert_eq!(
            s,
            "### gantry build\n\n| | |\n|---|---|\n| digest | `sha256:ab` |\n\
             | pushed | `r/app:v1.2.3` |\n| pushed | `r/app:latest` |\n\
             | `a` | 1 |\n| `b` | two words |\n"
        );
        // --per-arch: the per-architecture tag was pushed; the derived tags are for the index.
        let per_arch = ["r/app:v1.2.3-armv7".to_string()];
        let s = step_summary(
            "gantry build",
            &meta(),
            &labels(),
            &Pushed {
                digest: "sha256:cd",
                refs: &per_arch,
            },
        );
        assert!(
            s.contains(
                "| digest | `sha256:cd` |\n| pushed | `r/app:v1.2.3-armv7` |\n\
                 | index tag | `r/app:v1.2.3` |\n| index tag | `r/app:latest` |\n"
            ),
            "{s}"
        );
        let vars = github_vars(
            &meta(),
            &labels(),
            Some(&Pushed {
                digest: "sha256:cd",
                refs: &per_arch,
            }),
        );
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("pushed"), Some("r/app:v1.2.3-armv7"));
        assert_eq!(get("tags"), Some("r/app:v1.2.3\nr/app:latest"));
        assert_eq!(get("digest"), Some("sha256:cd"));
        assert_eq!(get("image"), Some("r/app"));
    }
}
