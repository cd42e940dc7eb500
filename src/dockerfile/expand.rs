//! Shell-style word expansion with Docker's rules (moby/buildkit `frontend/dockerfile/shell/lex.go`).
//!
//! The parser keeps every word raw, with quotes and escapes intact, because the values of ARG and
//! ENV are only known while a stage is being built. The executor calls [`expand_word`] (one
//! string: ENV values, WORKDIR, USER, COPY paths) or [`expand_words`] (a list split on unquoted
//! whitespace *after* substitution: EXPOSE, VOLUME) at that moment. This is not a shell: there is
//! no command substitution, globbing or arithmetic, only `$V`, `${V}` and the `${V<op>word}`
//! forms Docker documents, quotes, and the escape character.

use thiserror::Error;

use super::pattern::Pattern;

/// How deeply `${...}` may nest; deeper input is rejected rather than exhausting the stack.
pub const MAX_DEPTH: usize = 64;

/// A variable lookup: `Some(value)` when the variable is set (possibly to the empty string).
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Why a word could not be expanded. Every variant carries the word as written.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExpandError {
    /// A `'` or `"` with no matching closing quote.
    #[error(
        "failed to expand `{word}`: unexpected end of text while looking for the matching {quote} quote\nhint: close the quote, or escape it with the escape character"
    )]
    UnterminatedQuote { word: String, quote: QuoteKind },
    /// `${` with no closing `}`.
    #[error("failed to expand `{word}`: missing `}}` in a `${{...}}` substitution\nhint: close the substitution with `}}`")]
    MissingBrace { word: String },
    /// `${}`, `${:x}`, `${{x}` and similar.
    #[error("failed to expand `{word}`: bad substitution\nhint: a substitution looks like `${{NAME}}` or `${{NAME:-default}}`")]
    BadSubstitution { word: String },
    /// `${V!x}`, `${V:#x}` and other operators Docker does not have.
    #[error("failed to expand `{word}`: unsupported modifier `{modifier}` in substitution\nhint: supported forms are `${{V:-w}}` `${{V-w}}` `${{V:+w}}` `${{V+w}}` `${{V:?msg}}` `${{V?msg}}` `${{V#p}}` `${{V##p}}` `${{V%p}}` `${{V%%p}}` `${{V/p/r}}` `${{V//p/r}}`")]
    UnsupportedModifier { word: String, modifier: String },
    /// `${V/pattern}` with no second `/`.
    #[error(
        "failed to expand `{word}`: missing `/` in a `${{V/pattern/replacement}}` substitution"
    )]
    MissingSlash { word: String },
    /// `${V?msg}` / `${V:?msg}` with V unset (or empty for `:?`).
    #[error("failed to expand `{word}`: {name}: {message}\nhint: set `{name}` with an ARG default or `--build-arg {name}=...`")]
    Required {
        word: String,
        name: String,
        message: String,
    },
    /// `${` nested deeper than [`MAX_DEPTH`].
    #[error("failed to expand `{word}`: substitutions nested more than {MAX_DEPTH} deep\nhint: simplify the nested `${{...}}` substitutions")]
    TooDeep { word: String },
    /// A `[` character class with no closing `]` in a `#`, `%` or `/` pattern.
    #[error(
        "failed to expand `{word}`: invalid pattern `{pattern}` in substitution: unterminated `[`"
    )]
    InvalidPattern { word: String, pattern: String },
}

/// Which quote was left open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuoteKind {
    Single,
    Double,
}

impl std::fmt::Display for QuoteKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            QuoteKind::Single => "single",
            QuoteKind::Double => "double",
        })
    }
}

/// Expands `word` into one string: quotes are removed, escapes applied, variables substituted,
/// whitespace kept as is.
pub fn expand_word(word: &str, escape: char, lookup: Lookup<'_>) -> Result<String, ExpandError> {
    Lexer::new(escape, lookup).process(word).map(|(w, _)| w)
}

/// Expands `text` and splits it into words on whitespace that is neither quoted nor escaped.
/// Whitespace that comes from a variable's value splits too (Docker's behaviour); an empty quoted
/// string yields no word.
pub fn expand_words(
    text: &str,
    escape: char,
    lookup: Lookup<'_>,
) -> Result<Vec<String>, ExpandError> {
    Lexer::new(escape, lookup).process(text).map(|(_, ws)| ws)
}

/// Checks the syntax of `word` without expanding it: an unterminated quote, a `${` without its
/// `}`, a bad or unsupported substitution. Variables are left unset and never required, so the
/// only errors are the ones no ARG or ENV value could fix - the parser reports them for every
/// stage, built or not.
pub fn check_syntax(word: &str, escape: char) -> Result<(), ExpandError> {
    let none = |_: &str| None;
    let mut lexer = Lexer::new(escape, &none);
    lexer.skip_unset = true;
    lexer.process(word).map(|_| ())
}

/// Splits `line` into words keeping quotes and escapes as written, with `\` as the escape
/// character and every variable unset: BuildKit finds heredoc markers (`<<EOF`) this way.
pub(crate) fn split_raw_words(line: &str) -> Result<Vec<String>, ExpandError> {
    let none = |_: &str| None;
    let mut lexer = Lexer::new('\\', &none);
    lexer.raw_quotes = true;
    lexer.raw_escapes = true;
    lexer.process(line).map(|(_, ws)| ws)
}

/// Splits a heredoc delimiter word, once with quotes removed and once with quotes kept, leaving
/// `$NAME` references as written. Returns `(unquoted words, raw words)`.
pub(crate) fn heredoc_name_words(rest: &str) -> Result<(Vec<String>, Vec<String>), ExpandError> {
    let none = |_: &str| None;
    let mut lexer = Lexer::new('\\', &none);
    lexer.skip_unset = true;
    let (_, plain) = lexer.process(rest)?;
    let mut lexer = Lexer::new('\\', &none);
    lexer.skip_unset = true;
    lexer.raw_quotes = true;
    let (_, raw) = lexer.process(rest)?;
    Ok((plain, raw))
}

/// An error found while scanning, before the word it belongs to is attached.
#[derive(Debug)]
enum Fail {
    Quote(QuoteKind),
    MissingBrace,
    BadSubstitution,
    Unsupported(String),
    MissingSlash,
    Required {
        name: String,
        message: String,
    },
    Pattern(String),
    TooDeep,
    /// `processStopOn` reached the end without its stop character; the caller turns this into
    /// the error that names what is missing.
    NoStop,
}

impl Fail {
    fn into_error(self, word: &str) -> ExpandError {
        let word = word.to_string();
        match self {
            Fail::Quote(quote) => ExpandError::UnterminatedQuote { word, quote },
            Fail::MissingBrace | Fail::NoStop => ExpandError::MissingBrace { word },
            Fail::BadSubstitution => ExpandError::BadSubstitution { word },
            Fail::Unsupported(modifier) => ExpandError::UnsupportedModifier { word, modifier },
            Fail::MissingSlash => ExpandError::MissingSlash { word },
            Fail::Required { name, message } => ExpandError::Required {
                word,
                name,
                message,
            },
            Fail::Pattern(pattern) => ExpandError::InvalidPattern { word, pattern },
            Fail::TooDeep => ExpandError::TooDeep { word },
        }
    }
}

/// Accumulates the word list the way lex.go's `wordsStruct` does.
#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }

    fn add_raw_char(&mut self, ch: char) {
        self.word.push(ch);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        for ch in s.chars() {
            self.add_char(ch);
        }
    }

    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(std::mem::take(&mut self.word));
        }
        self.words
    }
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    lookup: Lookup<'a>,
    raw_quotes: bool,
    raw_escapes: bool,
    skip_unset: bool,
    depth: usize,
}

impl<'a> Lexer<'a> {
    fn new(escape: char, lookup: Lookup<'a>) -> Self {
        Lexer {
            chars: Vec::new(),
            pos: 0,
            escape,
            lookup,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset: false,
            depth: 0,
        }
    }

    fn process(&mut self, source: &str) -> Result<(String, Vec<String>), ExpandError> {
        self.chars = source.chars().collect();
        self.pos = 0;
        let raw = self.raw_escapes;
        self.stop_on(None, raw).map_err(|f| f.into_error(source))
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let ch = self.peek();
        if ch.is_some() {
            self.pos += 1;
        }
        ch
    }

    /// lex.go `processStopOn`: reads up to `stop` (consumed) or the end of the input.
    fn stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), Fail> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.pos += 1;
                return Ok((result, words.finish()));
            }
            match ch {
                '\'' => {
                    let s = self.single_quote()?;
                    result.push_str(&s);
                    words.add_raw_string(&s);
                }
                '"' => {
                    let s = self.double_quote()?;
                    result.push_str(&s);
                    words.add_raw_string(&s);
                }
                '$' => {
                    let s = self.dollar()?;
                    result.push_str(&s);
                    words.add_string(&s);
                }
                _ => {
                    self.pos += 1;
                    if ch == self.escape {
                        if raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        // An escape character at the very end is dropped.
                        let Some(escaped) = self.next() else { break };
                        words.add_raw_char(escaped);
                        result.push(escaped);
                    } else {
                        words.add_char(ch);
                        result.push(ch);
                    }
                }
            }
        }
        if stop.is_some() {
            return Err(Fail::NoStop);
        }
        Ok((result, words.finish()))
    }

    /// Everything up to the next `'` is literal; a single quote cannot be escaped inside.
    fn single_quote(&mut self) -> Result<String, Fail> {
        let mut result = String::new();
        self.pos += 1;
        if self.raw_quotes {
            result.push('\'');
        }
        loop {
            match self.next() {
                None => return Err(Fail::Quote(QuoteKind::Single)),
                Some('\'') => {
                    if self.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(ch) => result.push(ch),
            }
        }
    }

    /// Literal up to the next unescaped `"`, except `$` substitutions; the escape character only
    /// escapes `"`, `$` and itself, otherwise it stays.
    fn double_quote(&mut self) -> Result<String, Fail> {
        let mut result = String::new();
        self.pos += 1;
        if self.raw_quotes {
            result.push('"');
        }
        loop {
            match self.peek() {
                None => return Err(Fail::Quote(QuoteKind::Double)),
                Some('"') => {
                    self.pos += 1;
                    if self.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.dollar()?;
                    result.push_str(&value);
                }
                Some(mut ch) => {
                    self.pos += 1;
                    if ch == self.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(next) if next == '"' || next == '$' || next == self.escape => {
                                self.pos += 1;
                                ch = next;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    fn dollar(&mut self) -> Result<String, Fail> {
        self.pos += 1; // the '$'
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(match self.get(&name) {
                Some(value) => value,
                None if self.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1; // the '{'
        if self.depth >= MAX_DEPTH {
            return Err(Fail::TooDeep);
        }
        self.depth += 1;
        let result = self.braced();
        self.depth -= 1;
        result
    }

    /// `${...}` after the `{`.
    fn braced(&mut self) -> Result<String, Fail> {
        match self.peek() {
            None => return Err(Fail::MissingBrace),
            Some('{' | '}' | ':') => return Err(Fail::BadSubstitution),
            Some(_) => {}
        }
        let name = self.name();
        let Some(mut ch) = self.next() else {
            return Err(Fail::MissingBrace);
        };
        let mut modifier = ch.to_string();
        match ch {
            '}' => Ok(match self.get(&name) {
                Some(value) => value,
                None if self.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let null_is_unset = ch == ':';
                if null_is_unset {
                    match self.next() {
                        None => return Err(Fail::MissingBrace),
                        Some(c) => {
                            ch = c;
                            modifier.push(c);
                        }
                    }
                }
                let raw_escapes = ch == '#' || ch == '%';
                if null_is_unset && raw_escapes {
                    return Err(Fail::Unsupported(modifier));
                }
                let (word, _) = self.stop_on(Some('}'), raw_escapes).map_err(|f| match f {
                    Fail::NoStop => Fail::MissingBrace,
                    other => other,
                })?;
                let value = self.get(&name);
                if self.skip_unset && value.is_none() {
                    return Ok(format!("${{{name}{modifier}{word}}}"));
                }
                let unset = value.is_none() || (null_is_unset && value.as_deref() == Some(""));
                match ch {
                    '-' => Ok(if unset {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    '+' => Ok(if unset { String::new() } else { word }),
                    '?' => match value {
                        None => Err(Fail::Required {
                            name,
                            message: non_empty_or(word, "is not allowed to be unset"),
                        }),
                        Some(v) if null_is_unset && v.is_empty() => Err(Fail::Required {
                            name,
                            message: non_empty_or(word, "is not allowed to be empty"),
                        }),
                        Some(v) => Ok(v),
                    },
                    '#' | '%' => {
                        let value = value.unwrap_or_default();
                        let (greedy, pattern) = match word.strip_prefix(ch) {
                            Some(rest) => (true, rest.to_string()),
                            None => (false, word),
                        };
                        let compiled = Pattern::compile(&pattern, self.escape)
                            .ok_or_else(|| Fail::Pattern(pattern.clone()))?;
                        Ok(if ch == '#' {
                            compiled.trim_prefix(&value, greedy)
                        } else {
                            compiled.trim_suffix(&value, greedy)
                        })
                    }
                    _ => Err(Fail::Unsupported(modifier)),
                }
            }
            '/' => {
                let replace_all = self.peek() == Some('/');
                if replace_all {
                    self.pos += 1;
                }
                let (pattern, _) = self.stop_on(Some('/'), true).map_err(|f| match f {
                    Fail::NoStop => Fail::MissingSlash,
                    other => other,
                })?;
                let (replacement, _) = self.stop_on(Some('}'), true).map_err(|f| match f {
                    Fail::NoStop => Fail::MissingBrace,
                    other => other,
                })?;
                let value = self.get(&name).unwrap_or_default();
                let compiled = Pattern::compile(&pattern, self.escape)
                    .ok_or_else(|| Fail::Pattern(pattern.clone()))?;
                Ok(compiled.replace(&value, &replacement, replace_all))
            }
            _ => Err(Fail::Unsupported(modifier)),
        }
    }

    /// A variable name: letters, digits and `_`; or a run of digits; or one special parameter.
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.pos += 1;
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.pos += 1;
                return ch.to_string();
            }
            if !ch.is_alphanumeric() && ch != '_' {
                break;
            }
            name.push(ch);
            self.pos += 1;
        }
        name
    }
}

fn non_empty_or(word: String, default: &str) -> String {
    if word.is_empty() {
        default.to_string()
    } else {
        word
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("alpha".into()),
            "B" => Some("beta".into()),
            "EMPTY" => Some(String::new()),
            "SPACED" => Some("one two  three".into()),
            "PATHV" => Some("/usr/local/bin/tool.tar.gz".into()),
            "1" => Some("first".into()),
            _ => None,
        }
    }

    fn word(w: &str) -> Result<String, ExpandError> {
        expand_word(w, '\\', &env)
    }

    #[test]
    fn expand_word_table() {
        let cases: &[(&str, &str)] = &[
            ("plain", "plain"),
            ("$A", "alpha"),
            ("${A}", "alpha"),
            ("x${A}y", "xalphay"),
            ("$A-$B", "alpha-beta"),
            ("$Aa", ""),
            ("$UNKNOWN", ""),
            ("${UNKNOWN}", ""),
            ("$", "$"),
            ("a$", "a$"),
            ("$ x", "$ x"),
            ("$1", "first"),
            ("$12", ""),
            ("$@x", "x"),
            // modifiers
            ("${A:-w}", "alpha"),
            ("${UNKNOWN:-w}", "w"),
            ("${EMPTY:-w}", "w"),
            ("${EMPTY-w}", ""),
            ("${UNKNOWN-w}", "w"),
            ("${A:+w}", "w"),
            ("${EMPTY:+w}", ""),
            ("${EMPTY+w}", "w"),
            ("${UNKNOWN+w}", ""),
            ("${UNKNOWN:-}", ""),
            ("${A?oops}", "alpha"),
            ("${EMPTY?oops}", ""),
            // nesting
            ("${UNKNOWN:-${B}}", "beta"),
            ("${UNKNOWN:-${X:-${A}}}", "alpha"),
            ("${A:+[${B}]}", "[beta]"),
            ("${UNKNOWN:-a b}", "a b"),
            ("${UNKNOWN:-'q}'}", "q}"),
            // quotes
            ("'$A'", "$A"),
            ("\"$A\"", "alpha"),
            ("\"a'b\"", "a'b"),
            ("'a\"b'", "a\"b"),
            ("\"a b\"", "a b"),
            ("'a\\b'", "a\\b"),
            ("\"a\\b\"", "a\\b"),
            ("\"a\\\"b\"", "a\"b"),
            ("\"a\\$A\"", "a$A"),
            ("\"a\\\\b\"", "a\\b"),
            ("\"\"", ""),
            ("a\"\"b", "ab"),
            // escapes
            ("\\$A", "$A"),
            ("\\'a", "'a"),
            ("a\\ b", "a b"),
            ("a\\", "a"),
            ("\\\\", "\\"),
            ("\\a", "a"),
            // patterns
            ("${PATHV#*/}", "usr/local/bin/tool.tar.gz"),
            ("${PATHV##*/}", "tool.tar.gz"),
            ("${PATHV%.*}", "/usr/local/bin/tool.tar"),
            ("${PATHV%%.*}", "/usr/local/bin/tool"),
            ("${PATHV#nomatch}", "/usr/local/bin/tool.tar.gz"),
            ("${A#[a-b]}", "lpha"),
            ("${A#?}", "lpha"),
            ("${A/l/L}", "aLpha"),
            ("${A//a/A}", "AlphA"),
            ("${PATHV/\\/usr/}", "/local/bin/tool.tar.gz"),
            ("${UNKNOWN/a/b}", ""),
        ];
        for (input, want) in cases {
            assert_eq!(word(input).as_deref(), Ok(*want), "input {input:?}");
        }
    }

    #[test]
    fn backtick_escape() {
        let got = expand_word("a`$A` b\\c", '`', &env).unwrap();
        assert_eq!(got, "a$A b\\c");
        assert_eq!(expand_word("\"`\"`$A\"", '`', &env).unwrap(), "\"$A");
    }

    #[test]
    fn expand_words_table() {
        let cases: &[(&str, &[&str])] = &[
            ("80 443", &["80", "443"]),
            ("  80\t443  ", &["80", "443"]),
            ("$SPACED", &["one", "two", "three"]),
            ("\"$SPACED\"", &["one two  three"]),
            ("'a b' c", &["a b", "c"]),
            ("a\\ b c", &["a b", "c"]),
            ("\"\" x", &["x"]),
            ("x${EMPTY}y", &["xy"]),
            ("pre$SPACED", &["preone", "two", "three"]),
            ("${UNKNOWN:-8080/tcp} 53/udp", &["8080/tcp", "53/udp"]),
            ("", &[]),
        ];
        for (input, want) in cases {
            let got = expand_words(input, '\\', &env).unwrap();
            assert_eq!(got, *want, "input {input:?}");
        }
    }

    #[test]
    fn errors() {
        let w = |s: &str| s.to_string();
        let cases: Vec<(&str, ExpandError)> = vec![
            (
                "'abc",
                ExpandError::UnterminatedQuote {
                    word: w("'abc"),
                    quote: QuoteKind::Single,
                },
            ),
            (
                "\"abc",
                ExpandError::UnterminatedQuote {
                    word: w("\"abc"),
                    quote: QuoteKind::Double,
                },
            ),
            ("${A", ExpandError::MissingBrace { word: w("${A") }),
            ("${", ExpandError::MissingBrace { word: w("${") }),
            ("${A:-x", ExpandError::MissingBrace { word: w("${A:-x") }),
            ("${}", ExpandError::BadSubstitution { word: w("${}") }),
            ("${:x}", ExpandError::BadSubstitution { word: w("${:x}") }),
            ("${{A}", ExpandError::BadSubstitution { word: w("${{A}") }),
            (
                "${A!x}",
                ExpandError::UnsupportedModifier {
                    word: w("${A!x}"),
                    modifier: w("!"),
                },
            ),
            (
                "${A:x}",
                ExpandError::UnsupportedModifier {
                    word: w("${A:x}"),
                    modifier: w(":x"),
                },
            ),
            (
                "${A:#x}",
                ExpandError::UnsupportedModifier {
                    word: w("${A:#x}"),
                    modifier: w(":#"),
                },
            ),
            (
                "${UNKNOWN?}",
                ExpandError::Required {
                    word: w("${UNKNOWN?}"),
                    name: w("UNKNOWN"),
                    message: w("is not allowed to be unset"),
                },
            ),
            (
                "${UNKNOWN:?need it}",
                ExpandError::Required {
                    word: w("${UNKNOWN:?need it}"),
                    name: w("UNKNOWN"),
                    message: w("need it"),
                },
            ),
            (
                "${EMPTY:?}",
                ExpandError::Required {
                    word: w("${EMPTY:?}"),
                    name: w("EMPTY"),
                    message: w("is not allowed to be empty"),
                },
            ),
            ("${A/x}", ExpandError::MissingSlash { word: w("${A/x}") }),
            (
                "${A#[ab}",
                ExpandError::InvalidPattern {
                    word: w("${A#[ab}"),
                    pattern: w("[ab"),
                },
            ),
        ];
        for (input, want) in cases {
            assert_eq!(word(input), Err(want), "input {input:?}");
        }
    }

    #[test]
    fn error_messages_read_well() {
        let err = word("${NAME:?must be set}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to expand `${NAME:?must be set}`: NAME: must be set\nhint: set `NAME` with an ARG default or `--build-arg NAME=...`"
        );
        let err = word("'open").unwrap_err();
        assert!(err
            .to_string()
            .starts_with("failed to expand `'open`: unexpected end of text while looking for the matching single quote"));
    }

    #[test]
    fn raw_split_keeps_quotes_and_escapes() {
        let got = split_raw_words("RUN cat <<\"EOF\" a\\ b 'c d' $X").unwrap();
        assert_eq!(got, ["RUN", "cat", "<<\"EOF\"", "a\\ b", "'c d'"]);
    }

    #[test]
    fn heredoc_names_keep_variables() {
        let (plain, raw) = heredoc_name_words("\"E$X\"").unwrap();
        assert_eq!(plain, ["E$X"]);
        assert_eq!(raw, ["\"E$X\""]);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "${A:-".repeat(10_000) + &"}".repeat(10_000);
        assert_eq!(
            word(&deep),
            Err(ExpandError::TooDeep { word: deep.clone() })
        );
        let ok = "${X:-".repeat(MAX_DEPTH) + "v" + &"}".repeat(MAX_DEPTH);
        assert_eq!(word(&ok).as_deref(), Ok("v"));
    }

    #[test]
    fn many_stars_stay_fast() {
        let lookup = |_: &str| Some("a".repeat(200));
        let pattern = format!("${{V#{}b}}", "*".repeat(50));
        let started = std::time::Instant::now();
        assert_eq!(
            expand_word(&pattern, '\\', &lookup).unwrap(),
            "a".repeat(200)
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn never_panics_on_odd_input() {
        for input in [
            "${",
            "${A",
            "${A:",
            "${A/",
            "${A//",
            "${A/a",
            "${A#",
            "$",
            "\\",
            "\"\\",
            "'",
            "${A:-\"",
            "${A#[",
            "${A#[]",
            "${A#\\",
            "€${A}€",
            "${€}",
            "${A%%}",
        ] {
            let _ = word(input);
            let _ = expand_words(input, '`', &env);
        }
    }
}
