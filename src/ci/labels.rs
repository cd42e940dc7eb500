//! The `org.opencontainers.image.*` labels metadata-action emits, from the pipeline description
//! instead of the GitHub API, with the user's labels (rendered through the global expressions)
//! overriding them key by key.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::ci::expr::{ExprError, Globals};
use crate::ci::Pipeline;

#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    #[error("invalid label `{0}`: no `=`\nhint: use KEY=VALUE")]
    NoEquals(String),
    #[error("in label `{label}`: {source}")]
    Expr { label: String, source: ExprError },
}

/// The label time format: ISO 8601 in UTC with milliseconds, `2020-01-10T00:30:00.000Z`.
pub fn created(at: Timestamp) -> String {
    crate::ci::moment::format(at, "YYYY-MM-DDTHH:mm:ss.SSS[Z]", "UTC").unwrap_or_default()
}

/// The default OCI labels plus the user's (`KEY=VALUE`, value may hold `=`), sorted by key.
pub fn labels(
    pipeline: &Pipeline,
    version: &str,
    globals: &Globals<'_>,
    user: &[String],
) -> Result<BTreeMap<String, String>, LabelError> {
    let mut out = BTreeMap::new();
    let p = pipeline;
    for (k, v) in [
        ("created", created(globals.now)),
        ("description", p.description.clone()),
        ("licenses", p.license.clone()),
        ("revision", p.sha.clone()),
        ("source", p.repo_url.clone()),
        ("title", p.title.clone()),
        ("url", p.repo_url.clone()),
        ("version", version.to_string()),
    ] {
        out.insert(format!("org.opencontainers.image.{k}"), v);
    }
    for entry in user {
        let rendered = globals.render(entry).map_err(|source| LabelError::Expr {
            label: entry.clone(),
            source,
        })?;
        let (k, v) = rendered
            .split_once('=')
            .filter(|(k, _)| !k.trim().is_empty())
            .ok_or_else(|| LabelError::NoEquals(entry.clone()))?;
        out.insert(k.trim().to_string(), v.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let p = Pipeline {
            sha: "abc".into(),
            repo_url: "https://github.com/octocat/Hello-World".into(),
            title: "Hello-World".into(),
            description: "This your first repo!".into(),
            license: "MIT".into(),
            git_ref: "refs/heads/main".into(),
            ..Pipeline::default()
        };
        let g = Globals {
            pipeline: &p,
            now: "2020-01-10T00:30:00Z".parse().unwrap(),
            short_sha_length: 7,
        };
        let l = labels(
            &p,
            "main",
            &g,
            &[
                "org.opencontainers.image.title=MyCustom=Title".into(),
                "branch={{branch}}".into(),
            ],
        )
        .unwrap();
        let got: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            got,
            vec![
                "branch=main",
                "org.opencontainers.image.created=2020-01-10T00:30:00.000Z",
                "org.opencontainers.image.description=This your first repo!",
                "org.opencontainers.image.licenses=MIT",
                "org.opencontainers.image.revision=abc",
                "org.opencontainers.image.source=https://github.com/octocat/Hello-World",
                // json07: a custom title keeps its `=`.
                "org.opencontainers.image.title=MyCustom=Title",
                "org.opencontainers.image.url=https://github.com/octocat/Hello-World",
                "org.opencontainers.image.version=main",
            ]
        );
        assert!(matches!(
            labels(&p, "", &g, &["nokey".into()]),
            Err(LabelError::NoEquals(_))
        ));
    }
}
