//! `.dockerignore`: which context paths a build may not see.
//!
//! Lines are read as BuildKit's `dockerignore.ReadAll` reads them (comments, trimming, `!`
//! exceptions, cleaning, a leading `/` dropped) and matched as moby/patternmatcher's
//! `MatchesOrParentMatches` does: the last matching pattern wins, and a pattern that matches a
//! parent directory matches everything beneath it.

use super::pattern::{self, IgnorePattern};
use super::ContextError;

#[derive(Clone, Debug)]
struct Rule {
    exception: bool,
    pattern: IgnorePattern,
}

/// A parsed `.dockerignore` file.
#[derive(Clone, Debug, Default)]
pub struct DockerIgnore {
    rules: Vec<Rule>,
}

impl DockerIgnore {
    /// Parses the text of a `.dockerignore` file.
    pub fn parse(text: &str) -> Result<Self, ContextError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut rules = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            // A comment is a line whose very first character is `#`, before any trimming.
            if raw.starts_with('#') {
                continue;
            }
            let mut p = raw.trim();
            if p.is_empty() {
                continue;
            }
            let exception = p.starts_with('!');
            if exception {
                p = p[1..].trim();
            }
            if p.is_empty() {
                return Err(ContextError::BadPattern {
                    pattern: raw.trim().to_string(),
                    line,
                    reason: "an exception `!` needs a pattern after it",
                });
            }
            let mut cleaned = pattern::clean(p);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            let compiled =
                IgnorePattern::new(&cleaned).map_err(|bad| ContextError::BadPattern {
                    pattern: raw.trim().to_string(),
                    line,
                    reason: bad.0,
                })?;
            rules.push(Rule {
                exception,
                pattern: compiled,
            });
        }
        Ok(DockerIgnore { rules })
    }

    /// Whether the context-relative, slash-separated path `rel` is excluded. The context root
    /// itself (`""` or `.`) never is.
    pub fn matches(&self, rel: &str) -> bool {
        let file = pattern::clean(rel);
        if file == "." || self.rules.is_empty() {
            return false;
        }
        let parents: Vec<&str> = match file.rfind('/') {
            Some(idx) => {
                let parent = &file[..idx];
                parent
                    .match_indices('/')
                    .map(|(i, _)| &parent[..i])
                    .chain(std::iter::once(parent))
                    .collect()
            }
            None => Vec::new(),
        };
        let mut matched = false;
        for rule in &self.rules {
            // An inclusion cannot change an already-excluded path, nor an exception an
            // included one.
            if rule.exception != matched {
                continue;
            }
            let hit =
                rule.pattern.matches(&file) || parents.iter().any(|p| rule.pattern.matches(p));
            if hit {
                matched = !rule.exception;
            }
        }
        matched
    }

    /// Whether any `!` exception exists.
    pub fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|r| r.exception)
    }

    /// Whether an exception could re-include something beneath the excluded directory `dir`, so
    /// a walk must descend into it. Errs on the side of descending.
    pub fn may_include_below(&self, dir: &str) -> bool {
        let dir_parts: Vec<&str> = dir.split('/').collect();
        self.rules.iter().filter(|r| r.exception).any(|r| {
            let pat_parts: Vec<&str> = r.pattern.cleaned.split('/').collect();
            for (i, d) in dir_parts.iter().enumerate() {
                let Some(p) = pat_parts.get(i) else {
                    // The exception names `dir` or an ancestor of it.
                    return true;
                };
                if p.contains("**") {
                    return true;
                }
                if pattern::has_meta(p) {
                    match pattern::Glob::new(p) {
                        Ok(g) if !g.matches(d) => return false,
                        _ => {}
                    }
                } else if p != d {
                    return false;
                }
            }
            true
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// moby/patternmatcher's `TestMatches` table (patternmatcher_test.go): pattern, path, and
    /// whether `MatchesExact` / `MatchesOrParentMatches` report a match (`exact` = both,
    /// `inexact` = only with the parent rule, `fail` = neither).
    const TABLE: &[(&str, &str, &str)] = &[
        ("**", "file", "exact"),
        ("**", "file/", "exact"),
        ("**/", "file", "exact"),
        ("**/", "file/", "exact"),
        ("**", "/", "exact"),
        ("**/", "/", "exact"),
        ("**", "dir/file", "exact"),
        ("**/", "dir/file", "exact"),
        ("**", "dir/file/", "exact"),
        ("**/", "dir/file/", "exact"),
        ("**/**", "dir/file", "exact"),
        ("**/**", "dir/file/", "exact"),
        ("dir/**", "dir/file", "exact"),
        ("dir/**", "dir/file/", "exact"),
        ("dir/**", "dir/dir2/file", "exact"),
        ("dir/**", "dir/dir2/file/", "exact"),
        ("**/dir", "dir", "exact"),
        ("**/dir", "dir/file", "inexact"),
        ("**/dir2/*", "dir/dir2/file", "exact"),
        ("**/dir2/*", "dir/dir2/file/", "inexact"),
        ("**/dir2/**", "dir/dir2/dir3/file", "exact"),
        ("**/dir2/**", "dir/dir2/dir3/file/", "exact"),
        ("**file", "file", "exact"),
        ("**file", "dir/file", "exact"),
        ("**/file", "dir/file", "exact"),
        ("**file", "dir/dir/file", "exact"),
        ("**/file", "dir/dir/file", "exact"),
        ("**/file*", "dir/dir/file", "exact"),
        ("**/file*", "dir/dir/file.txt", "exact"),
        ("**/file*txt", "dir/dir/file.txt", "exact"),
        ("**/file*.txt", "dir/dir/file.txt", "exact"),
        ("**/file*.txt*", "dir/dir/file.txt", "exact"),
        ("**/**/*.txt", "dir/dir/file.txt", "exact"),
        ("**/**/*.txt2", "dir/dir/file.txt", "fail"),
        ("**/*.txt", "file.txt", "exact"),
        ("**/**/*.txt", "file.txt", "exact"),
        ("a**/*.txt", "a/file.txt", "exact"),
        ("a**/*.txt", "a/dir/file.txt", "exact"),
        ("a**/*.txt", "a/dir/dir/file.txt", "exact"),
        ("a/*.txt", "a/dir/file.txt", "fail"),
        ("a/*.txt", "a/file.txt", "exact"),
        ("a/*.txt**", "a/file.txt", "exact"),
        ("a[b-d]e", "ae", "fail"),
        ("a[b-d]e", "ace", "exact"),
        ("a[b-d]e", "aae", "fail"),
        ("a[^b-d]e", "aze", "exact"),
        (".*", ".foo", "exact"),
        (".*", "foo", "fail"),
        ("abc.def", "abcdef", "fail"),
        ("abc.def", "abc.def", "exact"),
        ("abc.def", "abcZdef", "fail"),
        ("abc?def", "abcZdef", "exact"),
        ("abc?def", "abcdef", "fail"),
        ("**/foo/bar", "foo/bar", "exact"),
        ("**/foo/bar", "dir/foo/bar", "exact"),
        ("**/foo/bar", "dir/dir2/foo/bar", "exact"),
        ("abc/**", "abc", "fail"),
        ("abc/**", "abc/def", "exact"),
        ("abc/**", "abc/def/ghi", "exact"),
        ("**/.foo", ".foo", "exact"),
        ("**/.foo", "bar.foo", "fail"),
        ("a(b)c/def", "a(b)c/def", "exact"),
        ("a(b)c/def", "a(b)c/xyz", "fail"),
        ("a.|)$(}+{bc", "a.|)$(}+{bc", "exact"),
        (
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            "exact",
        ),
        (
            "dist/*.whl",
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            "exact",
        ),
        ("a\\\\", "a\\", "exact"),
        ("a\\*b", "a*b", "exact"),
    ];

    /// patternmatcher compiles patterns unmodified by `ReadAll`, and its table feeds raw paths
    /// (some with a trailing `/`) to the matchers; this mirrors that directly.
    fn raw_matches(pattern: &str, path: &str, parents: bool) -> bool {
        let p = IgnorePattern::new(&pattern::clean(pattern)).unwrap();
        if p.matches(path) {
            return true;
        }
        if !parents {
            return false;
        }
        let parent = match path.rfind('/') {
            Some(i) => &path[..i],
            None => return false,
        };
        let parts: Vec<&str> = parent.split('/').collect();
        (1..=parts.len()).any(|n| p.matches(&parts[..n].join("/")))
    }

    #[test]
    fn patternmatcher_table() {
        for (pattern, path, want) in TABLE {
            let exact = raw_matches(pattern, path, false);
            let parents = raw_matches(pattern, path, true);
            assert_eq!(exact, *want == "exact", "exact: {pattern:?} vs {path:?}");
            assert_eq!(parents, *want != "fail", "parents: {pattern:?} vs {path:?}");
        }
    }

    #[test]
    fn multi_pattern_table() {
        let cases: &[(&[&str], &str, bool)] = &[
            (&["**", "!util/docker/web"], "util/docker/web/foo", false),
            (
                &["**", "!util/docker/web", "util/docker/web/foo"],
                "util/docker/web/foo",
                true,
            ),
            (
                &["**", "!dist/*.whl"],
                "dist/proxy.py-2.4.0rc3-py3-none-any.whl",
                false,
            ),
            (&["docs", "!docs/README.md"], "docs/README.md", false),
            (&["docs/", "!docs/README.md"], "docs/README.md", false),
            (&["docs/*", "!docs/README.md"], "docs/README.md", false),
            (&["*.go", "!fileutils.go"], "fileutils.go", false),
            (&["!fileutils.go", "*.go"], "fileutils.go", true),
            (&["*.go"], ".", false),
            (&["*"], "fileutils.go", true),
        ];
        for (patterns, path, want) in cases {
            let ignore = DockerIgnore::parse(&patterns.join("\n")).unwrap();
            assert_eq!(ignore.matches(path), *want, "{patterns:?} vs {path:?}");
        }
    }

    #[test]
    fn bad_patterns_are_errors_with_their_line() {
        // From Go's filepath.Match tests, as patternmatcher checks syntax with it.
        for bad in [
            "[", "[^", "[^bc", "a[", "[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]",
        ] {
            let err = DockerIgnore::parse(&format!("ok\n{bad}\n")).unwrap_err();
            let ContextError::BadPattern { line, .. } = &err else {
                panic!("{bad}: {err}");
            };
            assert_eq!(*line, 2, "{bad}");
            assert!(err.to_string().contains(".dockerignore"), "{err}");
        }
        let err = DockerIgnore::parse("!").unwrap_err();
        assert!(err.to_string().contains("`!`"), "{err}");
        for good in ["[\\]a]", "[\\-]", "[x\\-]", "[\\-x]", "ab[^e-g]", "*x"] {
            DockerIgnore::parse(good).unwrap();
        }
    }

    #[test]
    fn readall_rules_comments_spaces_slashes_and_dots() {
        let ignore = DockerIgnore::parse(
            "\u{feff}# comment\n  # not a comment\n\n /build/ \n! build/keep \n./tmp/../cache\n",
        )
        .unwrap();
        assert!(ignore.matches("build/out.o"));
        assert!(!ignore.matches("build/keep"));
        assert!(ignore.matches("cache"));
        assert!(ignore.matches("cache/x"));
        assert!(!ignore.matches("tmp"));
        assert!(ignore.matches("# not a comment"));
        assert!(!ignore.matches(""));
        assert!(ignore.has_exceptions());
        assert!(ignore.may_include_below("build"));
        assert!(!DockerIgnore::parse("build\n!src/x")
            .unwrap()
            .may_include_below("build"));
        assert!(DockerIgnore::parse("build\n!**/keep")
            .unwrap()
            .may_include_below("build"));
    }
}
