//! From Dockerfile text to logical lines, following BuildKit's `parser.Parse` loop: parser
//! directives at the top, the escape character, line continuations (comments and blank lines
//! inside a continuation are dropped), and heredoc bodies, which are read here because they are
//! lines of the file that belong to the instruction before them.

use super::expand;
use super::instruction::Heredoc;
use super::words::{parse_json, split_command, Json};
use super::{ParseError, Problem};

/// The parser directives found at the top of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Directives {
    pub syntax: Option<String>,
    pub escape: char,
}

/// One instruction's text with its heredoc bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogicalLine {
    /// 1-based line where the instruction starts.
    pub line: usize,
    /// Continuation lines joined, trimmed.
    pub text: String,
    pub heredocs: Vec<Heredoc>,
}

/// Splits a whole Dockerfile, reading the parser directives first.
pub(crate) fn lex(text: &str) -> Result<(Directives, Vec<LogicalLine>), ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines = physical_lines(text);
    let mut directives = Directives {
        syntax: None,
        escape: '\\',
    };
    let mut seen: Vec<String> = Vec::new();
    let mut first_instruction = 0;
    for (i, raw) in lines.iter().enumerate() {
        let Some((key, value)) = directive(raw.trim_start()) else {
            break;
        };
        let key = key.to_ascii_lowercase();
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            // An unknown directive is an ordinary comment, and directives end there.
            break;
        }
        if seen.contains(&key) {
            return Err(
                Problem::new(format!("only one `{key}` parser directive can be used"))
                    .hint("remove the repeated directive")
                    .at(i + 1, raw.trim()),
            );
        }
        match key.as_str() {
            "syntax" => directives.syntax = Some(value.to_string()),
            "escape" => {
                directives.escape = match value {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(Problem::new(format!("invalid escape character `{value}`"))
                            .hint("the escape directive takes `\\` or `` ` ``")
                            .at(i + 1, raw.trim()))
                    }
                }
            }
            _ => {}
        }
        seen.push(key);
        first_instruction = i + 1;
    }
    let logical = logical_lines(&lines, first_instruction, directives.escape)?;
    Ok((directives, logical))
}

/// Splits text that holds no parser directives (an ONBUILD trigger) with a known escape.
pub(crate) fn lex_body(text: &str, escape: char) -> Result<Vec<LogicalLine>, ParseError> {
    logical_lines(&physical_lines(text), 0, escape)
}

/// Lines as Go's `bufio.ScanLines` yields them: no final empty line, `\r` before `\n` dropped.
fn physical_lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.split('\n').collect();
    if text.ends_with('\n') || text.is_empty() {
        lines.pop();
    }
    lines
        .into_iter()
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect()
}

/// `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`: a parser directive's key and value.
fn directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?.trim_start_matches(is_go_space);
    let key_len = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(i, _)| i);
    if key_len == 0 {
        return None;
    }
    let (key, rest) = rest.split_at(key_len);
    let value = rest
        .trim_start_matches(is_go_space)
        .strip_prefix('=')?
        .trim_matches(is_go_space);
    if value.is_empty() {
        return None;
    }
    Some((key, value))
}

/// Go regexp's `\s`.
fn is_go_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{0c}' | '\r')
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Removes a trailing escape character (and blanks after it): `(text, continues)`.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    match trimmed.strip_suffix(escape) {
        Some(rest) => (rest, true),
        None => (line, false),
    }
}

fn logical_lines(
    lines: &[&str],
    start: usize,
    escape: char,
) -> Result<Vec<LogicalLine>, ParseError> {
    let mut out = Vec::new();
    let mut i = start;
    while i < lines.len() {
        let first = lines[i].trim_start();
        i += 1;
        let start_line = i;
        if is_comment(first) {
            continue;
        }
        let (text, mut continues) = trim_continuation(first, escape);
        if !continues && text.is_empty() {
            continue;
        }
        let mut joined = text.to_string();
        while continues && i < lines.len() {
            let raw = lines[i];
            i += 1;
            if is_comment(raw) || raw.trim_start().is_empty() {
                continue;
            }
            let (text, more) = trim_continuation(raw, escape);
            joined.push_str(text);
            continues = more;
        }
        let joined = joined.trim().to_string();
        let mut heredocs = Vec::new();
        if joined.contains("<<") && can_contain_heredoc(&joined) {
            let markers = heredocs_from_line(&joined).map_err(|e| {
                Problem::new(format!("invalid heredoc: {e}")).at(start_line, &joined)
            })?;
            for marker in markers {
                let mut content = String::new();
                let mut terminated = false;
                while i < lines.len() {
                    let raw = lines[i];
                    i += 1;
                    let candidate = if marker.chomp {
                        raw.trim_start_matches('\t')
                    } else {
                        raw
                    };
                    if candidate == marker.name {
                        terminated = true;
                        break;
                    }
                    content.push_str(raw);
                    content.push('\n');
                }
                if !terminated {
                    return Err(
                        Problem::new(format!("unterminated heredoc `{}`", marker.name))
                            .hint(format!(
                                "end the heredoc with a line that holds only `{}`",
                                marker.name
                            ))
                            .at(start_line, &joined),
                    );
                }
                if marker.chomp {
                    content = chomp_tabs(&content);
                }
                heredocs.push(Heredoc {
                    name: marker.name,
                    content,
                    expand: marker.expand,
                    chomp_tabs: marker.chomp,
                });
            }
        }
        out.push(LogicalLine {
            line: start_line,
            text: joined,
            heredocs,
        });
    }
    Ok(out)
}

/// Removes the leading tabs of every line (`<<-`).
fn chomp_tabs(content: &str) -> String {
    content
        .split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}

/// RUN, COPY and ADD in shell form (also as an ONBUILD trigger) may carry heredocs.
fn can_contain_heredoc(line: &str) -> bool {
    let mut split = split_command(line);
    if split.command.eq_ignore_ascii_case("onbuild") {
        split = split_command(&split.args);
    }
    let command = split.command.to_ascii_lowercase();
    matches!(command.as_str(), "run" | "copy" | "add")
        && !matches!(parse_json(&split.args), Json::Strings(_))
}

/// A heredoc marker found on an instruction line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Marker {
    pub name: String,
    pub expand: bool,
    pub chomp: bool,
}

/// BuildKit's `heredocsFromLine`: the words of the line (quotes kept) that are heredoc markers.
fn heredocs_from_line(line: &str) -> Result<Vec<Marker>, expand::ExpandError> {
    // BuildKit ignores a lexing error here: such a line simply has no heredocs.
    let Ok(words) = expand::split_raw_words(line) else {
        return Ok(Vec::new());
    };
    let mut markers = Vec::new();
    for word in words {
        if let Some(marker) = parse_marker(&word)? {
            markers.push(marker);
        }
    }
    Ok(markers)
}

/// BuildKit's `ParseHeredoc`: `^(\d*)<<(-?)([^<]*)$`, the delimiter being one shell word whose
/// quoting decides whether the body is expanded.
pub(crate) fn parse_marker(word: &str) -> Result<Option<Marker>, expand::ExpandError> {
    let rest = word.trim_start_matches(|c: char| c.is_ascii_digit());
    let Some(rest) = rest.strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let (plain, raw) = expand::heredoc_name_words(rest)?;
    let ([name], [raw_name]) = (plain.as_slice(), raw.as_slice()) else {
        return Ok(None);
    };
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    Ok(Some(Marker {
        name: name.clone(),
        expand: quotes(name) == quotes(raw_name),
        chomp,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(src: &str) -> Vec<(usize, String)> {
        let (_, lines) = lex(src).unwrap();
        lines.into_iter().map(|l| (l.line, l.text)).collect()
    }

    fn owned(v: &[(usize, &str)]) -> Vec<(usize, String)> {
        v.iter().map(|(n, s)| (*n, s.to_string())).collect()
    }

    #[test]
    fn logical_lines_table() {
        let cases: &[(&str, &[(usize, &str)])] = &[
            ("FROM a\nRUN b\n", &[(1, "FROM a"), (2, "RUN b")]),
            ("FROM a\r\nRUN b\r\n", &[(1, "FROM a"), (2, "RUN b")]),
            ("\u{feff}FROM a", &[(1, "FROM a")]),
            ("\n\n  FROM a  \n\n", &[(3, "FROM a")]),
            (
                "# comment\nFROM a\n  # indented comment\nRUN b",
                &[(2, "FROM a"), (4, "RUN b")],
            ),
            ("RUN a \\\n  b", &[(1, "RUN a   b")]),
            ("RUN a \\  \t\n  b", &[(1, "RUN a   b")]),
            ("RUN a\\\nb\\\nc", &[(1, "RUN abc")]),
            ("RUN a \\\n# comment\n  b", &[(1, "RUN a   b")]),
            (
                "RUN a \\\n\n   \n  b\nRUN c",
                &[(1, "RUN a   b"), (5, "RUN c")],
            ),
            ("RUN a \\", &[(1, "RUN a")]),
            ("RUN a \\\\\nb", &[(1, "RUN a \\b")]),
            ("RUN a # not a comment", &[(1, "RUN a # not a comment")]),
            ("\\\nRUN x", &[(1, "RUN x")]),
        ];
        for (src, want) in cases {
            assert_eq!(texts(src), owned(want), "source {src:?}");
        }
    }

    #[test]
    fn directives_table() {
        let cases: &[(&str, Option<&str>, char, usize)] = &[
            (
                "# syntax=docker/dockerfile:1\nFROM a",
                Some("docker/dockerfile:1"),
                '\\',
                2,
            ),
            ("#escape=`\nFROM a", None, '`', 2),
            ("# ESCAPE = ` \nFROM a", None, '`', 2),
            ("  # escape=`\nFROM a", None, '`', 2),
            ("# syntax=x\n# escape=`\nFROM a", Some("x"), '`', 3),
            ("# check=skip=all\n# escape=`\nFROM a", None, '`', 3),
            // Directives end at the first comment, blank line or instruction.
            ("# hello\n# escape=`\nFROM a", None, '\\', 3),
            ("\n# escape=`\nFROM a", None, '\\', 3),
            ("FROM a\n# escape=`\nRUN b", None, '\\', 1),
            ("# unknown=x\n# escape=`\nFROM a", None, '\\', 3),
            ("# escape=\nFROM a", None, '\\', 2),
        ];
        for (src, syntax, escape, first_line) in cases {
            let (d, lines) = lex(src).unwrap();
            assert_eq!(d.syntax.as_deref(), *syntax, "source {src:?}");
            assert_eq!(d.escape, *escape, "source {src:?}");
            assert_eq!(lines[0].line, *first_line, "source {src:?}");
        }
    }

    #[test]
    fn backtick_escape_changes_continuations() {
        let src = "# escape=`\nRUN a `\n  b\nRUN c:\\dir\\\nRUN d";
        assert_eq!(
            texts(src),
            owned(&[(2, "RUN a   b"), (4, "RUN c:\\dir\\"), (5, "RUN d")])
        );
    }

    #[test]
    fn directive_errors() {
        let err = lex("# escape=x\nFROM a").unwrap_err();
        assert_eq!(err.line, 1);
        assert_eq!(err.message, "invalid escape character `x`");
        let err = lex("# escape=`\n# Escape=\\\nFROM a").unwrap_err();
        assert_eq!(err.line, 2);
        assert_eq!(
            err.message,
            "only one `escape` parser directive can be used"
        );
    }

    /// `(name, content, expand, chomp_tabs)`
    type Doc = (String, String, bool, bool);

    fn heredocs(src: &str) -> Vec<Doc> {
        let (_, lines) = lex(src).unwrap();
        lines
            .into_iter()
            .flat_map(|l| l.heredocs)
            .map(|h| (h.name, h.content, h.expand, h.chomp_tabs))
            .collect()
    }

    #[test]
    fn heredoc_table() {
        let s = |v: &str| v.to_string();
        let cases: Vec<(&str, Vec<Doc>)> = vec![
            (
                "RUN <<EOF\necho hi\nEOF\n",
                vec![(s("EOF"), s("echo hi\n"), true, false)],
            ),
            ("RUN <<EOF\nEOF", vec![(s("EOF"), s(""), true, false)]),
            (
                "RUN <<\"EOF\"\n$x\nEOF",
                vec![(s("EOF"), s("$x\n"), false, false)],
            ),
            (
                "RUN <<'EOF'\n$x\nEOF",
                vec![(s("EOF"), s("$x\n"), false, false)],
            ),
            (
                "RUN <<E\"O\"F\nx\nEOF",
                vec![(s("EOF"), s("x\n"), false, false)],
            ),
            (
                "RUN <<-EOF\n\t\techo hi\n\t  x\n\tEOF",
                vec![(s("EOF"), s("echo hi\n  x\n"), true, true)],
            ),
            // Without `-`, an indented delimiter is part of the body.
            (
                "RUN <<EOF\n\tEOF\nEOF",
                vec![(s("EOF"), s("\tEOF\n"), true, false)],
            ),
            (
                "COPY <<A <<B /dest/\na body\nA\nb body\nB\n",
                vec![
                    (s("A"), s("a body\n"), true, false),
                    (s("B"), s("b body\n"), true, false),
                ],
            ),
            (
                "RUN 3<<EOF cat\nx\nEOF",
                vec![(s("EOF"), s("x\n"), true, false)],
            ),
            ("RUN cat<<EOF\n", vec![]),
            ("RUN echo '<<EOF'\n", vec![]),
            ("RUN echo a <<< b\n", vec![]),
            ("RUN [\"cat\", \"<<EOF\"]\n", vec![]),
            ("CMD <<EOF\n", vec![]),
            (
                "ONBUILD RUN <<EOF\nx\nEOF",
                vec![(s("EOF"), s("x\n"), true, false)],
            ),
            (
                "RUN <<EOF \\\n  && true\nbody\n# not a comment\n\nEOF",
                vec![(s("EOF"), s("body\n# not a comment\n\n"), true, false)],
            ),
            (
                "RUN <<EOF\r\nline\r\nEOF\r\n",
                vec![(s("EOF"), s("line\n"), true, false)],
            ),
        ];
        for (src, want) in cases {
            assert_eq!(heredocs(src), want, "source {src:?}");
        }
    }

    #[test]
    fn lines_after_heredoc_continue_numbering() {
        let (_, lines) = lex("FROM a\nRUN <<EOF\nx\nEOF\nRUN b").unwrap();
        assert_eq!(lines[2].line, 5);
        assert_eq!(lines[2].text, "RUN b");
    }

    #[test]
    fn unterminated_heredoc() {
        let err = lex("FROM a\nRUN <<EOF\necho\n  EOF\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert_eq!(err.message, "unterminated heredoc `EOF`");
        assert_eq!(err.text, "RUN <<EOF");
        let err = lex("FROM a\nCOPY <<A <<B /x\na\nA\nb\n").unwrap_err();
        assert_eq!(err.message, "unterminated heredoc `B`");
    }

    #[test]
    fn markers() {
        let m = |name: &str, expand, chomp| {
            Some(Marker {
                name: name.into(),
                expand,
                chomp,
            })
        };
        assert_eq!(parse_marker("<<EOF").unwrap(), m("EOF", true, false));
        assert_eq!(parse_marker("<<-EOF").unwrap(), m("EOF", true, true));
        assert_eq!(parse_marker("12<<EOF").unwrap(), m("EOF", true, false));
        assert_eq!(parse_marker("<<'EOF'").unwrap(), m("EOF", false, false));
        assert_eq!(parse_marker("<<$X").unwrap(), m("$X", true, false));
        assert_eq!(parse_marker("<<").unwrap(), None);
        assert_eq!(parse_marker("<<-").unwrap(), None);
        assert_eq!(parse_marker("<<<EOF").unwrap(), None);
        assert_eq!(parse_marker("a<<EOF").unwrap(), None);
        assert_eq!(parse_marker("<<EOF x").unwrap(), None);
        assert!(parse_marker("<<'EOF").is_err());
    }
}
