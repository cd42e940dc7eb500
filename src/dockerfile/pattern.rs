//! Shell glob patterns for the `${V#p}`, `${V%p}` and `${V/p/r}` substitutions: `*`, `?`,
//! `[...]` classes (`!` or `^` negates, `a-z` ranges) and the escape character for literals.
//! Matching is the single-backtrack wildcard walk, so no pattern can take exponential time on
//! hostile input.

/// A shell glob (`*`, `?`, `[...]`, escaped characters) for the `#`, `%` and `/` operators.
#[derive(Debug)]
pub(crate) struct Pattern {
    tokens: Vec<Token>,
}

#[derive(Debug)]
enum Token {
    Literal(char),
    AnyChar,
    AnyString,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Token {
    fn matches_char(&self, c: char) -> bool {
        match self {
            Token::Literal(l) => *l == c,
            Token::AnyChar => true,
            Token::AnyString => false,
            Token::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }
        }
    }
}

impl Pattern {
    /// `None` when a `[` class is not closed.
    pub(crate) fn compile(pattern: &str, escape: char) -> Option<Pattern> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let ch = chars[i];
            i += 1;
            match ch {
                '*' => tokens.push(Token::AnyString),
                '?' => tokens.push(Token::AnyChar),
                '[' => {
                    let mut negated = false;
                    if matches!(chars.get(i), Some('!' | '^')) {
                        negated = true;
                        i += 1;
                    }
                    let mut ranges = Vec::new();
                    let mut first = true;
                    loop {
                        let c = *chars.get(i)?;
                        i += 1;
                        if c == ']' && !first {
                            break;
                        }
                        first = false;
                        let c = if c == escape {
                            *chars.get(i).inspect(|_| i += 1)?
                        } else {
                            c
                        };
                        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|&e| e != ']')
                        {
                            let end = chars[i + 1];
                            i += 2;
                            ranges.push((c, end));
                        } else {
                            ranges.push((c, c));
                        }
                    }
                    tokens.push(Token::Class { negated, ranges });
                }
                c if c == escape => match chars.get(i) {
                    Some(&next) => {
                        tokens.push(Token::Literal(next));
                        i += 1;
                    }
                    None => tokens.push(Token::Literal(c)),
                },
                c => tokens.push(Token::Literal(c)),
            }
        }
        Some(Pattern { tokens })
    }

    /// Whether the whole of `text` matches: the classic single-backtrack wildcard walk, linear in
    /// practice and never exponential, whatever the number of `*`.
    fn matches(&self, text: &[char]) -> bool {
        let tokens = &self.tokens;
        let (mut t, mut p) = (0, 0);
        // After a `*`: the pattern position following it and the text position it resumes from.
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            if let Some(token) = tokens.get(p) {
                if matches!(token, Token::AnyString) {
                    star = Some((p + 1, t));
                    p += 1;
                    continue;
                }
                if token.matches_char(text[t]) {
                    p += 1;
                    t += 1;
                    continue;
                }
            }
            match star {
                Some((after, from)) => {
                    p = after;
                    t = from + 1;
                    star = Some((after, from + 1));
                }
                None => return false,
            }
        }
        tokens[p..].iter().all(|t| matches!(t, Token::AnyString))
    }

    pub(crate) fn trim_prefix(&self, value: &str, greedy: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        let mut lens: Vec<usize> = (0..=chars.len()).collect();
        if greedy {
            lens.reverse();
        }
        for n in lens {
            if self.matches(&chars[..n]) {
                return chars[n..].iter().collect();
            }
        }
        value.to_string()
    }

    pub(crate) fn trim_suffix(&self, value: &str, greedy: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        let mut starts: Vec<usize> = (0..=chars.len()).collect();
        if !greedy {
            starts.reverse();
        }
        for start in starts {
            if self.matches(&chars[start..]) {
                return chars[..start].iter().collect();
            }
        }
        value.to_string()
    }

    /// Replaces the leftmost-longest match (or every non-overlapping match).
    pub(crate) fn replace(&self, value: &str, replacement: &str, all: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        let mut out = String::new();
        let mut i = 0;
        let mut replaced = false;
        while i <= chars.len() {
            let found = if replaced && !all {
                None
            } else {
                (i..=chars.len())
                    .rev()
                    .find(|&end| self.matches(&chars[i..end]))
            };
            match found {
                Some(end) => {
                    out.push_str(replacement);
                    replaced = true;
                    if end > i {
                        i = end;
                        continue;
                    }
                    // An empty match: keep the next character and move on.
                    if let Some(&c) = chars.get(i) {
                        out.push(c);
                    }
                    i += 1;
                }
                None => {
                    if let Some(&c) = chars.get(i) {
                        out.push(c);
                    }
                    i += 1;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    #[test]
    fn matching_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "abc", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbb", false),
            ("?", "", false),
            ("a?c", "abc", true),
            ("[a-c]x", "bx", true),
            ("[!a-c]x", "bx", false),
            ("[^a-c]x", "dx", true),
            ("[]]", "]", true),
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("*.tar.*", "x.tar.gz", true),
            ("**a**", "bab", true),
        ];
        for (pattern, text, want) in cases {
            let p = Pattern::compile(pattern, '\\').unwrap();
            assert_eq!(p.matches(&chars(text)), *want, "{pattern} on {text}");
        }
        assert!(Pattern::compile("[ab", '\\').is_none());
    }

    #[test]
    fn trims_and_replaces() {
        let p = Pattern::compile("*/", '\\').unwrap();
        assert_eq!(p.trim_prefix("a/b/c", false), "b/c");
        assert_eq!(p.trim_prefix("a/b/c", true), "c");
        let p = Pattern::compile("/*", '\\').unwrap();
        assert_eq!(p.trim_suffix("a/b/c", false), "a/b");
        assert_eq!(p.trim_suffix("a/b/c", true), "a");
        let p = Pattern::compile("o", '\\').unwrap();
        assert_eq!(p.replace("foo", "0", false), "f0o");
        assert_eq!(p.replace("foo", "0", true), "f00");
        let p = Pattern::compile("x*", '\\').unwrap();
        assert_eq!(p.replace("axxb", "-", false), "a-");
    }
}
