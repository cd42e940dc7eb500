//! How one logical line is cut into pieces, exactly as BuildKit's parser does it
//! (`frontend/dockerfile/parser/parser.go` and `line_parsers.go`): the instruction word, the
//! leading `--flag` words, and the argument text, which is then read as a JSON array, as
//! whitespace-separated words, or as `name=value` words with quotes kept.
//!
//! These rules are not the shell rules of [`super::expand`]: flags are unquoted here with a fixed
//! `\` escape, and `parse_words` keeps quotes and escapes so the executor can expand them later.

/// `[\t\v\f\r ]`, the separator of Docker's `reWhitespace`.
fn is_separator(ch: char) -> bool {
    matches!(ch, '\t' | '\u{0b}' | '\u{0c}' | '\r' | ' ')
}

/// The instruction word, the `--flag` words and the trimmed argument text of a logical line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SplitLine {
    pub command: String,
    pub flags: Vec<String>,
    pub args: String,
}

/// Docker's `splitCommand`.
pub(crate) fn split_command(line: &str) -> SplitLine {
    let line = line.trim();
    let (command, rest) = match line.find(is_separator) {
        Some(at) => {
            let rest = line[at..].trim_start_matches(is_separator);
            (&line[..at], rest)
        }
        None => (line, ""),
    };
    let (args, flags) = extract_builder_flags(rest);
    SplitLine {
        command: command.to_string(),
        flags,
        args: args.trim().to_string(),
    }
}

/// Docker's `extractBuilderFlags`: takes the leading words that start with `--` (quotes and `\`
/// removed inside them) and returns the rest of the line untouched. A bare `--` ends the flags.
pub(crate) fn extract_builder_flags(line: &str) -> (&str, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut blank_ok = false;
    let mut iter = line.char_indices().peekable();
    while let Some((pos, ch)) = iter.next() {
        match phase {
            Phase::Spaces => {
                if ch.is_whitespace() {
                    continue;
                }
                if !line[pos..].starts_with("--") {
                    return (&line[pos..], words);
                }
                phase = Phase::Word;
                word.push(ch);
            }
            Phase::Word => {
                if ch.is_whitespace() {
                    phase = Phase::Spaces;
                    if word == "--" {
                        return (&line[pos..], words);
                    }
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    blank_ok = false;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    phase = Phase::Quote(ch);
                    blank_ok = true;
                    continue;
                }
                if ch == '\\' {
                    match iter.next() {
                        Some((_, escaped)) => word.push(escaped),
                        None => continue,
                    }
                    continue;
                }
                word.push(ch);
            }
            Phase::Quote(quote) => {
                if ch == quote {
                    phase = Phase::Word;
                    continue;
                }
                if ch == '\\' {
                    match iter.next() {
                        Some((_, escaped)) => word.push(escaped),
                        None => phase = Phase::Word,
                    }
                    continue;
                }
                word.push(ch);
            }
        }
    }
    if phase != Phase::Spaces && word != "--" && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    ("", words)
}

/// Docker's `parseWords` for ENV, LABEL and ARG: splits on unquoted whitespace, keeping quotes
/// and escape characters in the words.
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut blank_ok = false;
    let mut iter = rest.chars().peekable();
    while let Some(ch) = iter.next() {
        if phase == Phase::Spaces {
            if ch.is_whitespace() {
                continue;
            }
            phase = Phase::Word;
        }
        match phase {
            Phase::Spaces => {}
            Phase::Word => {
                if ch.is_whitespace() {
                    phase = Phase::Spaces;
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    blank_ok = false;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    phase = Phase::Quote(ch);
                    blank_ok = true;
                }
                if ch == escape {
                    // An escape at the very end is dropped; otherwise the escape and the escaped
                    // character both stay, even if the character is a quote.
                    let Some(escaped) = iter.next() else { continue };
                    word.push(ch);
                    word.push(escaped);
                    continue;
                }
                word.push(ch);
            }
            Phase::Quote(quote) => {
                if ch == quote {
                    phase = Phase::Word;
                }
                // The escape character escapes nothing inside single quotes.
                if ch == escape && quote != '\'' {
                    let Some(escaped) = iter.next() else {
                        phase = Phase::Word;
                        continue;
                    };
                    word.push(ch);
                    word.push(escaped);
                    continue;
                }
                word.push(ch);
            }
        }
    }
    if phase != Phase::Spaces && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// Docker's `parseStringsWhitespaceDelimited`: splits on runs of blanks, quotes mean nothing.
pub(crate) fn split_whitespace(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        return Vec::new();
    }
    rest.split(is_separator)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Splits at the first run of blanks: Docker's `reWhitespace.Split(rest, 2)`.
pub(crate) fn split_first_word(rest: &str) -> Option<(&str, &str)> {
    let at = rest.find(is_separator)?;
    let tail = rest[at..].trim_start_matches(is_separator);
    Some((&rest[..at], tail))
}

/// What the argument text of CMD, RUN, COPY... is, read as a JSON array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Json {
    /// A JSON array of strings: the exec form.
    Strings(Vec<String>),
    /// Valid JSON array with a non-string element: an error in Docker.
    NotStrings,
    /// Not a JSON array: the shell form.
    No,
}

/// Docker's `parseJSON`.
pub(crate) fn parse_json(rest: &str) -> Json {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Json::No;
    }
    match serde_json::from_str::<Vec<serde_json::Value>>(rest) {
        Ok(values) => {
            let mut out = Vec::with_capacity(values.len());
            for value in values {
                match value {
                    serde_json::Value::String(s) => out.push(s),
                    _ => return Json::NotStrings,
                }
            }
            Json::Strings(out)
        }
        Err(_) => Json::No,
    }
}

/// Edit distance counting a swap of two neighbours as one edit (optimal string alignment), for
/// "did you mean" hints: `chwon` is one edit from `chown`.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The closest candidate within two edits, or the one `word` abbreviates (ties go to the first
/// candidate).
pub(crate) fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| {
            let lower = c.to_ascii_lowercase();
            let distance = if word.len() >= 3 && lower.starts_with(&word) {
                1
            } else {
                edit_distance(&word, &lower)
            };
            (distance, *c)
        })
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_command_table() {
        let cases: &[(&str, &str, &[&str], &str)] = &[
            ("RUN echo hi", "RUN", &[], "echo hi"),
            ("  run   echo  hi  ", "run", &[], "echo  hi"),
            ("WORKDIR", "WORKDIR", &[], ""),
            (
                "COPY --from=build --chown=1:1 a b",
                "COPY",
                &["--from=build", "--chown=1:1"],
                "a b",
            ),
            ("COPY --chown=\"a b\" x y", "COPY", &["--chown=a b"], "x y"),
            ("COPY --chown='a\\'' x y", "COPY", &["--chown=a'"], "x y"),
            ("COPY --link x y", "COPY", &["--link"], "x y"),
            ("COPY -- --link y", "COPY", &[], "--link y"),
            ("COPY --a\\ b c", "COPY", &["--a b"], "c"),
            ("RUN --network=none", "RUN", &["--network=none"], ""),
            ("CMD -x", "CMD", &[], "-x"),
            ("FROM\talpine", "FROM", &[], "alpine"),
        ];
        for (line, cmd, flags, args) in cases {
            let got = split_command(line);
            assert_eq!(got.command, *cmd, "line {line:?}");
            assert_eq!(got.flags, *flags, "line {line:?}");
            assert_eq!(got.args, *args, "line {line:?}");
        }
    }

    #[test]
    fn parse_words_table() {
        let cases: &[(&str, char, &[&str])] = &[
            ("a=b c=d", '\\', &["a=b", "c=d"]),
            ("a=\"b c\" d=e", '\\', &["a=\"b c\"", "d=e"]),
            ("a='b c'", '\\', &["a='b c'"]),
            ("a=b\\ c", '\\', &["a=b\\ c"]),
            ("a=\"b\\\" c\"", '\\', &["a=\"b\\\" c\""]),
            ("a='b\\' c", '\\', &["a='b\\'", "c"]),
            ("a=b`  c", '`', &["a=b` ", "c"]),
            ("x\\", '\\', &["x"]),
            ("\"\"", '\\', &["\"\""]),
            ("   ", '\\', &[]),
            ("é=ü ö", '\\', &["é=ü", "ö"]),
        ];
        for (input, escape, want) in cases {
            assert_eq!(parse_words(input, *escape), *want, "input {input:?}");
        }
    }

    #[test]
    fn whitespace_and_first_word() {
        assert_eq!(split_whitespace("80  443\t53/udp"), ["80", "443", "53/udp"]);
        assert!(split_whitespace("").is_empty());
        assert_eq!(split_first_word("k  some value"), Some(("k", "some value")));
        assert_eq!(split_first_word("k"), None);
    }

    #[test]
    fn json_table() {
        assert_eq!(
            parse_json(r#"["a", "b c"]"#),
            Json::Strings(vec!["a".into(), "b c".into()])
        );
        assert_eq!(parse_json("[]"), Json::Strings(vec![]));
        assert_eq!(parse_json(r#"  ["a"]  "#), Json::Strings(vec!["a".into()]));
        assert_eq!(parse_json(r#"["a", 1]"#), Json::NotStrings);
        assert_eq!(parse_json(r#"["a"] b"#), Json::No);
        assert_eq!(parse_json("[a, b]"), Json::No);
        assert_eq!(parse_json("echo [a]"), Json::No);
        assert_eq!(parse_json("['a']"), Json::No);
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("FORM", &["from", "run"]), Some("from"));
        assert_eq!(suggest("xyzzy", &["from", "run"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("chwon", "chown"), 1);
        assert_eq!(suggest("chwon", &["chmod", "chown"]), Some("chown"));
        assert_eq!(suggest("plat", &["platform"]), Some("platform"));
    }
}
