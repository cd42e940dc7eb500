//! The handlebars-like expressions of metadata-action: `{{branch}}`, `{{tag}}`, `{{sha}}`,
//! `{{base_ref}}`, `{{is_default_branch}}`, `{{is_not_default_branch}}`,
//! `{{date 'fmt' tz='Zone'}}` and `{{commit_date 'fmt' tz='Zone'}}` with moment.js formats, plus
//! the version variables of `semver`/`pep440` patterns (`{{raw}}`, `{{version}}`, `{{major}}`, …).
//!
//! Only `{{name args… key=value…}}` calls exist: no blocks, no partials. An unknown name is an
//! error naming it (handlebars would render it empty, hiding a typo), and so is an attribute of
//! `date` other than `tz` (metadata-action throws on those too). Formats are moment.js's
//! ([`crate::ci::moment`]); time zones come from jiff's bundled IANA database, so results do not
//! depend on the host's tzdata.

use jiff::Timestamp;

use crate::ci::Pipeline;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExprError {
    #[error("`{template}`: `{{{{` is never closed\nhint: write expressions as `{{{{name}}}}`")]
    Unclosed { template: String },
    #[error("`{template}`: unknown expression `{{{{{name}}}}}`\nhint: use one of {known}")]
    Unknown {
        template: String,
        name: String,
        known: String,
    },
    #[error("`{template}`: `{name}` needs a format, e.g. `{{{{{name} 'YYYYMMDD'}}}}`")]
    MissingFormat { template: String, name: String },
    #[error("`{template}`: unknown time zone `{zone}`\nhint: use an IANA name such as `Europe/Paris` or `UTC`")]
    UnknownZone { template: String, zone: String },
    #[error("`{template}`: `{name}` takes one format and `tz=`, not `{extra}`\nhint: write e.g. `{{{{{name} 'YYYYMMDD' tz='Europe/Paris'}}}}`")]
    DateArguments {
        template: String,
        name: String,
        extra: String,
    },
}

/// One `{{…}}` call: the name, positional arguments, and `key=value` arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub name: String,
    pub args: Vec<String>,
    pub hash: Vec<(String, String)>,
}

fn tokenize(inner: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in inner.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                // Mark the token as present even when the quoted text is empty.
                cur.push('\u{0}');
            }
            None if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            None => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out.into_iter().map(|t| t.replace('\u{0}', "")).collect()
}

fn parse_call(inner: &str) -> Call {
    let mut tokens = tokenize(inner).into_iter();
    let name = tokens.next().unwrap_or_default();
    let mut call = Call {
        name,
        args: Vec::new(),
        hash: Vec::new(),
    };
    for t in tokens {
        match t.split_once('=') {
            Some((k, v))
                if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                call.hash.push((k.to_string(), v.to_string()))
            }
            _ => call.args.push(t),
        }
    }
    call
}

/// Renders `template`, resolving each call with `resolve` (`Ok(None)` for an unknown name).
pub fn render(
    template: &str,
    known: &str,
    resolve: &dyn Fn(&Call) -> Result<Option<String>, ExprError>,
) -> Result<String, ExprError> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let (after, close) = match after.strip_prefix('{') {
            Some(a) => (a, "}}}"),
            None => (after, "}}"),
        };
        let end = after.find(close).ok_or_else(|| ExprError::Unclosed {
            template: template.to_string(),
        })?;
        let call = parse_call(&after[..end]);
        match resolve(&call)? {
            Some(v) => out.push_str(&v),
            None => {
                return Err(ExprError::Unknown {
                    template: template.to_string(),
                    name: call.name,
                    known: known.to_string(),
                })
            }
        }
        rest = &after[end + close.len()..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether a pattern is exactly `{{raw}}` (whitespace inside the braces allowed).
pub fn is_raw_statement(pattern: &str) -> bool {
    let p = pattern.trim();
    p.strip_prefix("{{")
        .and_then(|p| p.strip_suffix("}}"))
        .is_some_and(|inner| inner.trim() == "raw")
}

/// The global expressions, evaluated against a pipeline at a fixed time.
pub struct Globals<'a> {
    pub pipeline: &'a Pipeline,
    /// The time `{{date}}` uses: SOURCE_DATE_EPOCH, or now.
    pub now: Timestamp,
    pub short_sha_length: usize,
}

pub const GLOBAL_NAMES: &str = "`branch`, `tag`, `sha`, `base_ref`, `is_default_branch`, `is_not_default_branch`, `date 'fmt'`, `commit_date 'fmt'`";

impl Globals<'_> {
    pub fn resolve(&self, template: &str, call: &Call) -> Result<Option<String>, ExprError> {
        let p = self.pipeline;
        Ok(Some(match call.name.as_str() {
            "branch" => p.branch().unwrap_or("").to_string(),
            "tag" => p.tag().unwrap_or("").to_string(),
            "sha" => p.short_sha(self.short_sha_length).to_string(),
            "base_ref" => p.base_ref.clone(),
            "is_default_branch" => p.is_default_branch().to_string(),
            "is_not_default_branch" => (!p.is_default_branch()).to_string(),
            "date" => self.date(template, call, self.now)?,
            "commit_date" => self.date(template, call, p.commit_time.unwrap_or(self.now))?,
            _ => return Ok(None),
        }))
    }

    fn date(&self, template: &str, call: &Call, at: Timestamp) -> Result<String, ExprError> {
        let fmt = call.args.first().ok_or_else(|| ExprError::MissingFormat {
            template: template.to_string(),
            name: call.name.clone(),
        })?;
        let extra = call.args.get(1).cloned().or_else(|| {
            call.hash
                .iter()
                .find(|(k, _)| k != "tz")
                .map(|(k, v)| format!("{k}={v}"))
        });
        if let Some(extra) = extra {
            return Err(ExprError::DateArguments {
                template: template.to_string(),
                name: call.name.clone(),
                extra,
            });
        }
        let zone = call
            .hash
            .iter()
            .rev()
            .find(|(k, _)| k == "tz")
            .map(|(_, v)| v.as_str())
            .unwrap_or("UTC");
        crate::ci::moment::format(at, fmt, zone).ok_or_else(|| ExprError::UnknownZone {
            template: template.to_string(),
            zone: zone.to_string(),
        })
    }

    /// Renders a template that may use the global expressions only.
    pub fn render(&self, template: &str) -> Result<String, ExprError> {
        render(template, GLOBAL_NAMES, &|c| self.resolve(template, c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn raw_statement_detection() {
        assert!(is_raw_statement("{{raw}}"));
        assert!(is_raw_statement("{{ raw}}"));
        assert!(is_raw_statement("{{ raw }}"));
        assert!(!is_raw_statement("{{ raw }}.{{ version }}"));
        assert!(!is_raw_statement("{{version}}"));
    }

    #[test]
    fn globals_render_and_unknown_names_fail() {
        let p = Pipeline {
            git_ref: "refs/heads/main".into(),
            sha: "860c1904a1ce19322e91ac35af1ab07466440c37".into(),
            default_branch: Some("main".into()),
            event: "push".into(),
            ..Pipeline::default()
        };
        let g = Globals {
            pipeline: &p,
            now: at("2020-01-10T00:30:00Z"),
            short_sha_length: 7,
        };
        assert_eq!(
            g.render("{{branch}}-{{sha}}-{{is_default_branch}}-{{{tag}}}-{{date 'YYYY' tz=\"Asia/Tokyo\"}}")
                .unwrap(),
            "main-860c190-true--2020"
        );
        let e = g.render("x{{brnach}}").unwrap_err().to_string();
        assert!(e.contains("`{{brnach}}`"), "{e}");
        assert!(e.contains("hint:"), "{e}");
        assert!(matches!(
            g.render("{{date}}"),
            Err(ExprError::MissingFormat { .. })
        ));
        assert!(matches!(
            g.render("{{date 'Y' tz='Nowhere/X'}}"),
            Err(ExprError::UnknownZone { .. })
        ));
        assert!(matches!(g.render("{{sha"), Err(ExprError::Unclosed { .. })));
        let e = g
            .render("{{date 'YYYY' zone='UTC'}}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not `zone=UTC`") && e.contains("hint:"), "{e}");
        assert!(matches!(
            g.render("{{commit_date 'YYYY' 'MM'}}"),
            Err(ExprError::DateArguments { .. })
        ));
    }
}
