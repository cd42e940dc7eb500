//! The Dockerfile front end: text in, a syntax tree of stages and instructions out, with
//! BuildKit's behaviour (directives, escape character, continuations, heredocs, exec and shell
//! forms, flags) and BuildKit's errors, each with its line number and a hint.
//!
//! Parsing does no I/O and expands nothing: words stay raw so the executor can expand them with
//! [`expand_word`] / [`expand_words`] once it knows the ARG and ENV values at each instruction.
//! Pieces: `lex` (lines, directives, heredoc bodies), `words` (how a line is cut up), `parse`
//! (typed instructions and their checks), `expand` (shell-style words), `pattern` (globs in substitutions), `duration` (Go
//! durations for HEALTHCHECK), `instruction` (the types).

mod duration;
mod expand;
mod instruction;
mod lex;
mod parse;
mod pattern;
mod words;

use std::fmt;

pub use expand::{expand_word, expand_words, ExpandError, Lookup, QuoteKind};
pub use instruction::{
    ArgDecl, CommandForm, CopyArgs, Dockerfile, Healthcheck, Heredoc, Instruction, InstructionKind,
    RunArgs, Stage,
};

use parse::Parsed;

/// Why a Dockerfile was rejected.
///
/// `Display` gives `line 3: unknown instruction `FORM`: FORM alpine` and, when there is one, a
/// `hint:` line; the caller prefixes the file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line where the offending instruction starts; 0 when the error is about the whole
    /// file (no FROM at all).
    pub line: usize,
    /// The offending instruction as written (continuations joined), or empty.
    pub text: String,
    /// What is wrong, with the offending value in backticks.
    pub message: String,
    /// How to fix it, when there is an obvious fix.
    pub hint: Option<String>,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: ", self.line)?;
        }
        f.write_str(&self.message)?;
        if !self.text.is_empty() {
            write!(f, ": {}", self.text)?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseError {}

/// An error before its line is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    message: String,
    hint: Option<String>,
}

impl Problem {
    pub(crate) fn new(message: impl Into<String>) -> Problem {
        Problem {
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Problem {
        self.hint = Some(hint.into());
        self
    }

    pub(crate) fn at(self, line: usize, text: &str) -> ParseError {
        ParseError {
            line,
            text: text.to_string(),
            message: self.message,
            hint: self.hint,
        }
    }
}

/// Reports, at parse time, the word errors no ARG or ENV value could fix (an unterminated quote,
/// a `${` without `}`) in the words Docker expands, so a stage that is never built still gets
/// them, with its line and text.
fn check_words<'a>(words: impl IntoIterator<Item = &'a str>, escape: char) -> Result<(), Problem> {
    for word in words {
        expand::check_syntax(word, escape).map_err(|e| {
            let text = e.to_string();
            match text.split_once("\nhint: ") {
                Some((message, hint)) => Problem::new(message).hint(hint),
                None => Problem::new(text),
            }
        })?;
    }
    Ok(())
}

/// [`check_words`] for what one line parsed into.
fn check_parsed(parsed: &Parsed, escape: char) -> Result<(), Problem> {
    match parsed {
        Parsed::From { base, platform, .. } => check_words(
            std::iter::once(base.as_str()).chain(platform.as_deref()),
            escape,
        ),
        Parsed::Instruction(kind) if kind.expands_env() => check_words(kind.raw_words(), escape),
        Parsed::Instruction(_) => Ok(()),
    }
}

/// Parses a whole Dockerfile.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let (directives, lines) = lex::lex(text)?;
    let escape = directives.escape;
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for line in &lines {
        let parsed = parse::parse_line(line, escape)
            .and_then(|parsed| check_parsed(&parsed, escape).map(|()| parsed))
            .map_err(|p| p.at(line.line, &line.text))?;
        match parsed {
            Parsed::From {
                base,
                name,
                platform,
            } => {
                if let Some(name) = &name {
                    if let Some(other) = stages.iter().find(|s| s.name.as_ref() == Some(name)) {
                        return Err(Problem::new(format!("duplicate stage name `{name}`"))
                            .hint(format!(
                                "line {} already names a stage `{name}`; give this stage another name",
                                other.line
                            ))
                            .at(line.line, &line.text));
                    }
                }
                stages.push(Stage {
                    index: stages.len(),
                    name,
                    base,
                    platform,
                    line: line.line,
                    original: line.text.clone(),
                    instructions: Vec::new(),
                });
            }
            Parsed::Instruction(kind) => match (stages.last_mut(), kind) {
                (Some(stage), kind) => stage.instructions.push(Instruction {
                    line: line.line,
                    original: line.text.clone(),
                    kind,
                }),
                (None, InstructionKind::Arg(decls)) => global_args.extend(decls),
                (None, kind) => {
                    return Err(Problem::new(format!(
                        "`{}` comes before the first `FROM`",
                        kind.keyword()
                    ))
                    .hint("only ARG may come before the first FROM; start a stage with `FROM <image>` above it")
                    .at(line.line, &line.text))
                }
            },
        }
    }
    if stages.is_empty() {
        let message = if lines.is_empty() {
            "the Dockerfile has no instructions"
        } else {
            "the Dockerfile has no `FROM` instruction"
        };
        return Err(Problem::new(message)
            .hint("start the first stage with `FROM <image>`")
            .at(0, ""));
    }
    Ok(Dockerfile {
        syntax: directives.syntax,
        escape,
        global_args,
        stages,
    })
}

/// Parses a single instruction, such as an ONBUILD trigger stored in a base image's config:
/// one logical line, possibly followed by its heredoc bodies. Parser directives are not read;
/// `escape` is the escape character to use. `FROM` is rejected (it is not an instruction inside a
/// stage). Line numbers in errors count from 1 within `text`.
pub fn parse_instruction(text: &str, escape: char) -> Result<Instruction, ParseError> {
    let lines = lex::lex_body(text, escape)?;
    let line = match lines.as_slice() {
        [line] => line,
        [] => {
            return Err(Problem::new("no instruction found")
                .hint("give one instruction, such as `RUN make`")
                .at(0, ""))
        }
        [_, second, ..] => {
            return Err(Problem::new("more than one instruction found")
                .hint("give exactly one instruction")
                .at(second.line, &second.text))
        }
    };
    let parsed = parse::parse_line(line, escape)
        .and_then(|parsed| check_parsed(&parsed, escape).map(|()| parsed))
        .map_err(|p| p.at(line.line, &line.text))?;
    match parsed {
        Parsed::Instruction(kind) => Ok(Instruction {
            line: line.line,
            original: line.text.clone(),
            kind,
        }),
        Parsed::From { .. } => Err(Problem::new("`FROM` isn't allowed here")
            .hint("FROM starts a stage; it cannot be an ONBUILD trigger")
            .at(line.line, &line.text)),
    }
}

#[cfg(test)]
mod tests;
