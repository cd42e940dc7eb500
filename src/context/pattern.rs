//! Glob patterns as Docker reads them: Go's `filepath.Match` syntax for COPY sources, and the
//! `**`-aware dialect of moby/patternmatcher for `.dockerignore`, plus Go's `filepath.Clean`.
//!
//! Both dialects compile to the same small token list, matched by a dynamic program over
//! characters (no backtracking blow-up on patterns like `a*b*c*d*e*`). The dockerignore compiler
//! follows patternmatcher's `compile` step by step, including its quirks (a pattern starting with
//! `**` is a plain suffix test, one ending in `/**` a plain prefix test), because users' ignore
//! files were written against that behaviour.

/// One element of a compiled pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Lit(char),
    /// `*`: any run of characters except `/`.
    Star,
    /// `?`: one character except `/`.
    One,
    /// `[...]`: one character (never `/` unless listed) in or, negated, not in the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `**` followed by more pattern: `(.*/)?`.
    AnyDirs,
    /// `**` at the end after other wildcards: `.*`.
    AnyAll,
}

/// Why a pattern could not be compiled (Go's `filepath.ErrBadPattern`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadPattern(pub &'static str);

/// A `filepath.Match` pattern for one path (`*` and `?` never cross `/`).
#[derive(Clone, Debug)]
pub struct Glob {
    toks: Vec<Tok>,
}

impl Glob {
    pub fn new(pattern: &str) -> Result<Self, BadPattern> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut toks = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '*' => toks.push(Tok::Star),
                '?' => toks.push(Tok::One),
                '[' => {
                    let (tok, next) = parse_class(&chars, i + 1)?;
                    toks.push(tok);
                    i = next;
                    continue;
                }
                '\\' => {
                    i += 1;
                    let c = *chars.get(i).ok_or(BadPattern("it ends with `\\`"))?;
                    toks.push(Tok::Lit(c));
                }
                c => toks.push(Tok::Lit(c)),
            }
            i += 1;
        }
        Ok(Glob { toks })
    }

    pub fn matches(&self, path: &str) -> bool {
        matches_toks(&self.toks, path)
    }
}

/// Whether a string uses any `filepath.Match` metacharacter.
pub fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', '\\'])
}

/// Parses a class after its `[`; returns the token and the index after the closing `]`.
fn parse_class(chars: &[char], mut i: usize) -> Result<(Tok, usize), BadPattern> {
    let unclosed = BadPattern("a `[` is not closed");
    let mut negated = false;
    if chars.get(i) == Some(&'^') {
        negated = true;
        i += 1;
    }
    let mut ranges = Vec::new();
    loop {
        let c = *chars.get(i).ok_or(unclosed.clone())?;
        if c == ']' && !ranges.is_empty() {
            return Ok((Tok::Class { negated, ranges }, i + 1));
        }
        let lo = class_char(chars, &mut i)?;
        let mut hi = lo;
        if chars.get(i) == Some(&'-') {
            i += 1;
            hi = class_char(chars, &mut i)?;
            if hi < lo {
                return Err(BadPattern("a character range is reversed"));
            }
        }
        ranges.push((lo, hi));
    }
}

/// One (possibly escaped) character of a class; `-`, `]` and the end are errors unescaped.
fn class_char(chars: &[char], i: &mut usize) -> Result<char, BadPattern> {
    match chars.get(*i) {
        None => Err(BadPattern("a `[` is not closed")),
        Some('-') | Some(']') => Err(BadPattern("a class has an unescaped `-` or `]`")),
        Some('\\') => {
            *i += 1;
            let c = *chars.get(*i).ok_or(BadPattern("a `[` is not closed"))?;
            *i += 1;
            Ok(c)
        }
        Some(&c) => {
            *i += 1;
            Ok(c)
        }
    }
}

/// Does `toks` match the whole of `s`? `dp[j]` = "the tokens so far can match `s[..j]`".
fn matches_toks(toks: &[Tok], s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    let mut dp = vec![false; n + 1];
    dp[0] = true;
    for tok in toks {
        let mut next = vec![false; n + 1];
        match tok {
            Tok::Star => {
                for j in 0..=n {
                    next[j] = dp[j] || (j > 0 && next[j - 1] && chars[j - 1] != '/');
                }
            }
            Tok::AnyAll => {
                for j in 0..=n {
                    next[j] = dp[j] || (j > 0 && next[j - 1]);
                }
            }
            Tok::AnyDirs => {
                // `(.*/)?`: nothing, or anything that ends in a `/`.
                let mut reach = false;
                for j in 0..=n {
                    next[j] = dp[j] || (reach && j > 0 && chars[j - 1] == '/');
                    reach = reach || dp[j];
                }
            }
            single => {
                for j in 1..=n {
                    next[j] = dp[j - 1] && single_matches(single, chars[j - 1]);
                }
            }
        }
        dp = next;
        if !dp.iter().any(|&b| b) {
            return false;
        }
    }
    dp[n]
}

fn single_matches(tok: &Tok, c: char) -> bool {
    match tok {
        Tok::Lit(l) => *l == c,
        Tok::One => c != '/',
        Tok::Class { negated, ranges } => {
            let inside = ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
            inside != *negated
        }
        _ => false,
    }
}

/// How a dockerignore pattern is tested, as patternmatcher decides it.
#[derive(Clone, Debug)]
enum Kind {
    Exact,
    Prefix,
    Suffix,
    Tokens(Vec<Tok>),
}

/// One compiled `.dockerignore` pattern (without its `!`).
#[derive(Clone, Debug)]
pub struct IgnorePattern {
    pub cleaned: String,
    kind: Kind,
}

impl IgnorePattern {
    /// Compiles an already-cleaned pattern. Syntax is checked with `filepath.Match` rules first,
    /// as patternmatcher does.
    pub fn new(cleaned: &str) -> Result<Self, BadPattern> {
        Glob::new(cleaned)?;
        let chars: Vec<char> = cleaned.chars().collect();
        let mut toks = Vec::new();
        let mut kind_is = 0u8; // 0 exact, 1 prefix, 2 suffix, 3 tokens
        let mut i = 0;
        let mut iteration = 0;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            match c {
                '*' if chars.get(i) == Some(&'*') => {
                    i += 1;
                    if chars.get(i) == Some(&'/') {
                        i += 1;
                    }
                    if i == chars.len() {
                        if kind_is == 0 {
                            kind_is = 1;
                        } else {
                            toks.push(Tok::AnyAll);
                            kind_is = 3;
                        }
                    } else {
                        toks.push(Tok::AnyDirs);
                        kind_is = 3;
                    }
                    if iteration == 0 {
                        kind_is = 2;
                    }
                }
                '*' => {
                    toks.push(Tok::Star);
                    kind_is = 3;
                }
                '?' => {
                    toks.push(Tok::One);
                    kind_is = 3;
                }
                '\\' => {
                    if let Some(&n) = chars.get(i) {
                        toks.push(Tok::Lit(n));
                        i += 1;
                        kind_is = 3;
                    } else {
                        toks.push(Tok::Lit('\\'));
                    }
                }
                '[' => {
                    let (tok, next) = parse_class(&chars, i)?;
                    toks.push(tok);
                    i = next;
                    kind_is = 3;
                }
                c => toks.push(Tok::Lit(c)),
            }
            iteration += 1;
        }
        let kind = match kind_is {
            0 => Kind::Exact,
            1 => Kind::Prefix,
            2 => Kind::Suffix,
            _ => Kind::Tokens(toks),
        };
        Ok(IgnorePattern {
            cleaned: cleaned.to_string(),
            kind,
        })
    }

    /// patternmatcher's `Pattern.match` on a cleaned, slash-separated path.
    pub fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.cleaned,
            Kind::Prefix => path.starts_with(&self.cleaned[..self.cleaned.len() - 2]),
            Kind::Suffix => {
                let suffix = &self.cleaned[2..];
                path.ends_with(suffix) || suffix.strip_prefix('/').is_some_and(|rest| path == rest)
            }
            Kind::Tokens(toks) => matches_toks(toks, path),
        }
    }
}

/// Go's `path.Clean` for slash-separated paths: `""` becomes `"."`.
pub fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let body = parts.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".to_string(),
        (false, false) => body,
    }
}
