//! From one logical line to a typed instruction: the keyword, its `--flags` and its arguments,
//! checked the way BuildKit's `instructions/parse.go` checks them (argument counts, allowed flags,
//! JSON where JSON is required), so a Dockerfile Docker rejects is rejected here before any work
//! starts, with the line and a hint.

use std::collections::BTreeMap;

use super::duration::parse_go_duration;
use super::instruction::{
    ArgDecl, CommandForm, CopyArgs, Healthcheck, Heredoc, InstructionKind, RunArgs,
};
use super::lex::{parse_marker, LogicalLine};
use super::words::{
    parse_json, parse_words, split_command, split_first_word, split_whitespace, suggest, Json,
};
use super::Problem;

/// Every instruction keyword, lower-case, for "did you mean" hints.
const KEYWORDS: &[&str] = &[
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

/// What a logical line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed {
    From {
        base: String,
        name: Option<String>,
        platform: Option<String>,
    },
    Instruction(InstructionKind),
}

/// Parses one logical line.
pub(crate) fn parse_line(line: &LogicalLine, escape: char) -> Result<Parsed, Problem> {
    let split = split_command(&line.text);
    let keyword = split.command.to_ascii_lowercase();
    let upper = split.command.to_ascii_uppercase();
    let args = split.args.as_str();
    let flags = split.flags.as_slice();
    let kind = match keyword.as_str() {
        "from" => return parse_from(args, flags),
        "arg" => {
            no_flags(&upper, flags)?;
            parse_arg(args, escape)?
        }
        "env" => {
            no_flags(&upper, flags)?;
            InstructionKind::Env(name_values("ENV", args, escape)?)
        }
        "label" => {
            no_flags(&upper, flags)?;
            InstructionKind::Label(name_values("LABEL", args, escape)?)
        }
        "maintainer" => InstructionKind::Maintainer(one_argument(&upper, args, flags)?),
        "workdir" => InstructionKind::Workdir(one_argument(&upper, args, flags)?),
        "user" => InstructionKind::User(one_argument(&upper, args, flags)?),
        "stopsignal" => InstructionKind::StopSignal(one_argument(&upper, args, flags)?),
        "expose" => {
            no_flags(&upper, flags)?;
            let ports = split_whitespace(args);
            if ports.is_empty() {
                return Err(at_least_one("EXPOSE", "EXPOSE 8080/tcp"));
            }
            InstructionKind::Expose(ports)
        }
        "volume" => {
            no_flags(&upper, flags)?;
            parse_volume(args)?
        }
        "cmd" => {
            no_flags(&upper, flags)?;
            InstructionKind::Cmd(command_form("CMD", args)?)
        }
        "entrypoint" => {
            no_flags(&upper, flags)?;
            InstructionKind::Entrypoint(command_form("ENTRYPOINT", args)?)
        }
        "shell" => {
            no_flags(&upper, flags)?;
            parse_shell(args)?
        }
        "healthcheck" => parse_healthcheck(args, flags)?,
        "onbuild" => {
            no_flags(&upper, flags)?;
            parse_onbuild(&line.text, args, &line.heredocs, escape)?
        }
        "copy" => InstructionKind::Copy(parse_copy("COPY", args, flags, &line.heredocs)?),
        "add" => InstructionKind::Add(parse_copy("ADD", args, flags, &line.heredocs)?),
        "run" => parse_run(args, flags, &line.heredocs)?,
        _ => {
            let problem = Problem::new(format!("unknown instruction `{}`", split.command));
            return Err(match suggest(&keyword, KEYWORDS) {
                Some(s) => problem.hint(format!("did you mean `{}`?", s.to_ascii_uppercase())),
                None => problem.hint("instructions are FROM, RUN, COPY, ADD, ENV, ARG, LABEL, WORKDIR, USER, EXPOSE, VOLUME, CMD, ENTRYPOINT, SHELL, STOPSIGNAL, HEALTHCHECK, ONBUILD and MAINTAINER"),
            });
        }
    };
    Ok(Parsed::Instruction(kind))
}

fn at_least_one(keyword: &str, example: &str) -> Problem {
    Problem::new(format!("`{keyword}` requires at least one argument"))
        .hint(format!("for example `{example}`"))
}

/// FROM [--platform=p] image [AS name]
fn parse_from(args: &str, flags: &[String]) -> Result<Parsed, Problem> {
    let flags = Flags::parse("FROM", flags, &[("platform", FlagKind::String)])?;
    let words = split_whitespace(args);
    let name = match words.as_slice() {
        [_] => None,
        [_, as_word, name] if as_word.eq_ignore_ascii_case("as") => {
            let lower = name.to_ascii_lowercase();
            if !valid_stage_name(&lower) {
                return Err(Problem::new(format!("invalid name for build stage: `{name}`"))
                    .hint("a stage name starts with a letter and holds only letters, digits, `-`, `_` and `.`"));
            }
            Some(lower)
        }
        [] => {
            return Err(Problem::new("`FROM` requires the name of a base image")
                .hint("write `FROM <image>` or `FROM scratch`"))
        }
        _ => {
            return Err(
                Problem::new("`FROM` requires either one or three arguments")
                    .hint("write `FROM <image>` or `FROM <image> AS <name>`"),
            )
        }
    };
    Ok(Parsed::From {
        base: words[0].clone(),
        name,
        platform: flags.string("platform"),
    })
}

/// `^[a-z][a-z0-9-_.]*$`
fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

fn parse_arg(args: &str, escape: char) -> Result<InstructionKind, Problem> {
    let words = parse_words(args, escape);
    if words.is_empty() {
        return Err(at_least_one("ARG", "ARG VERSION=1.0"));
    }
    let mut decls = Vec::with_capacity(words.len());
    for word in words {
        let decl = match word.split_once('=') {
            Some((name, value)) => ArgDecl {
                name: name.to_string(),
                default: Some(value.to_string()),
            },
            None => ArgDecl {
                name: word,
                default: None,
            },
        };
        if decl.name.is_empty() {
            return Err(Problem::new("`ARG` names can not be blank")
                .hint("write `ARG NAME` or `ARG NAME=default`"));
        }
        decls.push(decl);
    }
    Ok(InstructionKind::Arg(decls))
}

/// ENV and LABEL: `k=v ...`, or the legacy `k v` where the value is the rest of the line.
fn name_values(keyword: &str, args: &str, escape: char) -> Result<Vec<(String, String)>, Problem> {
    let two_args = || {
        Problem::new(format!("`{keyword}` must have two arguments"))
            .hint(format!("write `{keyword} name=value`"))
    };
    let words = parse_words(args, escape);
    let Some(first) = words.first() else {
        if keyword == "LABEL" {
            return Err(at_least_one(
                "LABEL",
                "LABEL org.opencontainers.image.title=app",
            ));
        }
        return Err(two_args());
    };
    let pairs = if !first.contains('=') {
        let (name, value) = split_first_word(args).ok_or_else(two_args)?;
        vec![(name.to_string(), value.to_string())]
    } else {
        let mut pairs = Vec::with_capacity(words.len());
        for word in &words {
            let Some((name, value)) = word.split_once('=') else {
                return Err(Problem::new(format!(
                    "syntax error: can't find `=` in `{word}`"
                ))
                .hint(format!(
                    "every word of `{keyword}` must be of the form name=value; quote values that contain spaces"
                )));
            };
            pairs.push((name.to_string(), value.to_string()));
        }
        pairs
    };
    if pairs.iter().any(|(name, _)| name.is_empty()) {
        return Err(Problem::new(format!("`{keyword}` names can not be blank"))
            .hint(format!("write `{keyword} name=value`")));
    }
    Ok(pairs)
}

/// MAINTAINER, WORKDIR, USER and STOPSIGNAL take the rest of the line as one argument.
fn one_argument(keyword: &str, args: &str, flags: &[String]) -> Result<String, Problem> {
    no_flags(keyword, flags)?;
    if args.is_empty() {
        return Err(
            Problem::new(format!("`{keyword}` requires exactly one argument")).hint(format!(
                "for example `{}`",
                match keyword {
                    "WORKDIR" => "WORKDIR /app",
                    "USER" => "USER 1000:1000",
                    "STOPSIGNAL" => "STOPSIGNAL SIGTERM",
                    _ => "MAINTAINER Jane Doe <jane@example.com>",
                }
            )),
        );
    }
    Ok(args.to_string())
}

fn not_strings(keyword: &str) -> Problem {
    Problem::new(format!(
        "when using the JSON array form of `{keyword}`, every element must be a string"
    ))
    .hint("quote every element, for example `[\"8080\"]` instead of `[8080]`")
}

fn parse_volume(args: &str) -> Result<InstructionKind, Problem> {
    let paths = match parse_json(args) {
        Json::Strings(paths) => paths,
        Json::NotStrings => return Err(not_strings("VOLUME")),
        Json::No => split_whitespace(args),
    };
    if paths.is_empty() {
        return Err(at_least_one("VOLUME", "VOLUME /data"));
    }
    if paths.iter().any(String::is_empty) {
        return Err(
            Problem::new("`VOLUME` specified can not be an empty string")
                .hint("remove the empty element"),
        );
    }
    Ok(InstructionKind::Volume(paths))
}

/// CMD, ENTRYPOINT, RUN and HEALTHCHECK CMD: exec form if the text is a JSON array of strings.
fn command_form(keyword: &str, args: &str) -> Result<CommandForm, Problem> {
    match parse_json(args) {
        Json::Strings(words) => Ok(CommandForm::Exec(words)),
        Json::NotStrings => Err(not_strings(keyword)),
        Json::No if args.is_empty() => Err(at_least_one(
            keyword,
            &format!("{keyword} [\"/app/server\", \"--port\", \"8080\"]"),
        )),
        Json::No => Ok(CommandForm::Shell(args.to_string())),
    }
}

fn parse_shell(args: &str) -> Result<InstructionKind, Problem> {
    match parse_json(args) {
        Json::Strings(words) if words.is_empty() => {
            Err(at_least_one("SHELL", "SHELL [\"/bin/bash\", \"-c\"]"))
        }
        Json::Strings(words) => Ok(InstructionKind::Shell(words)),
        Json::NotStrings => Err(not_strings("SHELL")),
        Json::No if args.is_empty() => Err(at_least_one("SHELL", "SHELL [\"/bin/bash\", \"-c\"]")),
        Json::No => {
            let mut hint =
                "write it as a JSON array, for example `SHELL [\"/bin/bash\", \"-c\"]`".to_string();
            if looks_like_unescaped_windows_path(args) {
                hint.push_str("; JSON requires back-slashes to be escaped, as in `[\"c:\\\\path\\\\to\\\\file.exe\"]`");
            }
            Err(Problem::new("`SHELL` requires the arguments to be in JSON form").hint(hint))
        }
    }
}

/// Docker's hint for `["c:\windows\prog.exe"]`: a drive path with a single back-slash.
fn looks_like_unescaped_windows_path(args: &str) -> bool {
    let lower = args.to_ascii_lowercase();
    let b = lower.as_bytes();
    let drive = b
        .windows(4)
        .any(|w| w[0] == b'"' && w[1].is_ascii_lowercase() && w[2] == b':' && w[3] == b'\\');
    drive && !lower.contains("\\\\") && lower.contains('[') && lower.contains(']')
}

fn parse_healthcheck(args: &str, flags: &[String]) -> Result<InstructionKind, Problem> {
    let (typ, rest) = match args.find(char::is_whitespace) {
        Some(at) => (&args[..at], args[at..].trim_start()),
        None => (args, ""),
    };
    if typ.is_empty() {
        return Err(at_least_one(
            "HEALTHCHECK",
            "HEALTHCHECK CMD curl -f http://localhost/",
        ));
    }
    let typ_upper = typ.to_ascii_uppercase();
    if typ_upper == "NONE" {
        if !rest.is_empty() || !flags.is_empty() {
            return Err(Problem::new("`HEALTHCHECK NONE` takes no arguments")
                .hint("remove the arguments, or write `HEALTHCHECK [options] CMD <command>`"));
        }
        return Ok(InstructionKind::Healthcheck(Healthcheck::None));
    }
    let flags = Flags::parse(
        "HEALTHCHECK",
        flags,
        &[
            ("interval", FlagKind::String),
            ("retries", FlagKind::String),
            ("start-interval", FlagKind::String),
            ("start-period", FlagKind::String),
            ("timeout", FlagKind::String),
        ],
    )?;
    if typ_upper != "CMD" {
        return Err(Problem::new(format!("unknown type `{typ}` in HEALTHCHECK"))
            .hint("write `HEALTHCHECK CMD <command>` or `HEALTHCHECK NONE`"));
    }
    let test = match parse_json(rest) {
        Json::Strings(words) if words.is_empty() => None,
        Json::Strings(words) => Some(CommandForm::Exec(words)),
        Json::NotStrings => return Err(not_strings("HEALTHCHECK")),
        Json::No if rest.is_empty() => None,
        Json::No => Some(CommandForm::Shell(rest.to_string())),
    };
    let Some(test) = test else {
        return Err(Problem::new("missing command after `HEALTHCHECK CMD`")
            .hint("for example `HEALTHCHECK CMD curl -f http://localhost/`"));
    };
    let duration = |name: &str| -> Result<Option<i64>, Problem> {
        let Some(value) = flags.string(name) else {
            return Ok(None);
        };
        let nanos = parse_go_duration(&value).map_err(|reason| {
            Problem::new(format!("{reason}: `--{name}={value}`"))
                .hint("durations look like `30s`, `1m30s` or `500ms`")
        })?;
        if nanos != 0 && nanos < 1_000_000 {
            return Err(
                Problem::new(format!("`--{name}` cannot be less than 1ms: `{value}`"))
                    .hint("use `0s` for the default, or a duration of at least `1ms`"),
            );
        }
        Ok(Some(nanos))
    };
    let retries = match flags.string("retries") {
        None => None,
        Some(value) => {
            let n: i32 = value.parse().map_err(|_| {
                Problem::new(format!("invalid number for `--retries`: `{value}`"))
                    .hint("use a whole number such as `--retries=3`")
            })?;
            if n < 0 {
                return Err(
                    Problem::new(format!("`--retries` cannot be negative: `{value}`"))
                        .hint("use a whole number such as `--retries=3`"),
                );
            }
            Some(i64::from(n))
        }
    };
    Ok(InstructionKind::Healthcheck(Healthcheck::Check {
        test,
        interval: duration("interval")?,
        timeout: duration("timeout")?,
        start_period: duration("start-period")?,
        start_interval: duration("start-interval")?,
        retries,
    }))
}

fn parse_onbuild(
    text: &str,
    args: &str,
    heredocs: &[Heredoc],
    escape: char,
) -> Result<InstructionKind, Problem> {
    let Some(trigger_word) = args.split_whitespace().next() else {
        return Err(at_least_one("ONBUILD", "ONBUILD COPY . /app"));
    };
    let trigger_upper = trigger_word.to_ascii_uppercase();
    match trigger_upper.as_str() {
        "ONBUILD" => {
            return Err(
                Problem::new("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
                    .hint("remove the second ONBUILD"),
            )
        }
        "FROM" | "MAINTAINER" => {
            return Err(Problem::new(format!(
                "`{trigger_upper}` isn't allowed as an ONBUILD trigger"
            ))
            .hint("ONBUILD takes any other instruction, such as `ONBUILD COPY . /app`"))
        }
        _ => {}
    }
    // BuildKit stores the line without the ONBUILD keyword, heredoc bodies appended.
    let keyword_len = text.find(char::is_whitespace).unwrap_or(text.len());
    let mut trigger = text[keyword_len..].trim_start().to_string();
    for heredoc in heredocs {
        trigger.push('\n');
        trigger.push_str(&heredoc.content);
        trigger.push_str(&heredoc.name);
    }
    // Check the trigger now rather than in every build that uses this image as its base.
    super::parse_instruction(&trigger, escape).map_err(|e| {
        let problem = Problem::new(format!("invalid ONBUILD trigger: {}", e.message));
        match e.hint {
            Some(h) => problem.hint(h),
            None => problem,
        }
    })?;
    Ok(InstructionKind::Onbuild(trigger))
}

fn parse_copy(
    keyword: &str,
    args: &str,
    flags: &[String],
    heredocs: &[Heredoc],
) -> Result<CopyArgs, Problem> {
    let spec: &[(&str, FlagKind)] = if keyword == "COPY" {
        &[
            ("chmod", FlagKind::String),
            ("chown", FlagKind::String),
            ("from", FlagKind::String),
            ("link", FlagKind::Bool),
        ]
    } else {
        &[
            ("checksum", FlagKind::String),
            ("chmod", FlagKind::String),
            ("chown", FlagKind::String),
            ("keep-git-dir", FlagKind::Bool),
            ("link", FlagKind::Bool),
        ]
    };
    let flags = Flags::parse(keyword, flags, spec)?;
    let (words, json) = match parse_json(args) {
        Json::Strings(words) => (words, true),
        Json::NotStrings => return Err(not_strings(keyword)),
        Json::No => (split_whitespace(args), false),
    };
    let Some((dest, sources)) = words.split_last().filter(|(_, s)| !s.is_empty()) else {
        return Err(Problem::new(format!(
            "`{keyword}` requires at least two arguments: one or more sources and a destination"
        ))
        .hint(format!("write `{keyword} <source>... <destination>`")));
    };
    let is_heredoc = |w: &str| !json && matches!(parse_marker(w), Ok(Some(_)));
    if is_heredoc(dest) {
        return Err(Problem::new(format!(
            "`{keyword}` cannot accept a heredoc as a destination"
        ))
        .hint(format!("write `{keyword} <<EOF /path/to/file`")));
    }
    let mut paths = Vec::new();
    let mut docs = Vec::new();
    let mut used = vec![false; heredocs.len()];
    for source in sources {
        let marker = if json {
            None
        } else {
            parse_marker(source).ok().flatten()
        };
        let Some(marker) = marker else {
            paths.push(source.clone());
            continue;
        };
        let found = heredocs
            .iter()
            .enumerate()
            .find(|(i, h)| !used[*i] && h.name == marker.name);
        match found {
            Some((i, doc)) => {
                used[i] = true;
                docs.push(doc.clone());
            }
            None => {
                return Err(
                    Problem::new(format!("no body for heredoc `{source}`")).hint(format!(
                        "follow the line with the body and a line holding only `{}`",
                        marker.name
                    )),
                )
            }
        }
    }
    Ok(CopyArgs {
        sources: paths,
        dest: dest.clone(),
        from: flags.string("from"),
        chown: flags.string("chown"),
        chmod: flags.string("chmod"),
        link: flags.bool("link"),
        checksum: flags.string("checksum"),
        keep_git_dir: flags.bool("keep-git-dir"),
        heredocs: docs,
    })
}

fn parse_run(
    args: &str,
    flags: &[String],
    heredocs: &[Heredoc],
) -> Result<InstructionKind, Problem> {
    let flags = Flags::parse(
        "RUN",
        flags,
        &[
            ("mount", FlagKind::Strings),
            ("network", FlagKind::String),
            ("security", FlagKind::String),
        ],
    )?;
    let mut command = command_form("RUN", args)?;
    if let (CommandForm::Shell(line), Some(first)) = (&command, heredocs.first()) {
        // BuildKit: `RUN <<EOF` alone runs the body; otherwise the shell gets the command line
        // followed by every body and delimiter and handles the heredocs itself.
        let script = if matches!(parse_marker(line), Ok(Some(_))) {
            first.content.clone()
        } else {
            let mut full = line.clone();
            for doc in heredocs {
                full.push('\n');
                full.push_str(&doc.content);
                full.push_str(&doc.name);
            }
            full
        };
        command = CommandForm::Shell(script);
    }
    Ok(InstructionKind::Run(RunArgs {
        command,
        heredocs: heredocs.to_vec(),
        mounts: flags.strings("mount"),
        network: flags.string("network"),
        security: flags.string("security"),
    }))
}

fn no_flags(keyword: &str, flags: &[String]) -> Result<(), Problem> {
    Flags::parse(keyword, flags, &[]).map(|_| ())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlagKind {
    Bool,
    String,
    /// May repeat (`--mount`).
    Strings,
}

/// Parsed `--flag` values, BuildKit's `BFlags`.
#[derive(Debug, Default)]
struct Flags {
    values: BTreeMap<String, Vec<String>>,
}

impl Flags {
    fn parse(keyword: &str, raw: &[String], spec: &[(&str, FlagKind)]) -> Result<Flags, Problem> {
        let mut flags = Flags::default();
        for word in raw {
            let body = word.strip_prefix("--").unwrap_or(word);
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let Some(&(_, kind)) = spec.iter().find(|(n, _)| *n == name) else {
                return Err(unknown_flag(keyword, name, spec));
            };
            if kind != FlagKind::Strings && flags.values.contains_key(name) {
                return Err(
                    Problem::new(format!("duplicate flag specified: `--{name}`"))
                        .hint(format!("give `--{name}` only once")),
                );
            }
            let value = match (kind, value) {
                (FlagKind::Bool, None) => "true".to_string(),
                (_, Some("")) if kind == FlagKind::Bool => {
                    return Err(
                        Problem::new(format!("missing a value on flag `--{name}`")).hint(format!(
                            "write `--{name}`, `--{name}=true` or `--{name}=false`"
                        )),
                    )
                }
                (FlagKind::Bool, Some(v)) => match v.to_ascii_lowercase().as_str() {
                    "true" => "true".to_string(),
                    "false" => "false".to_string(),
                    _ => {
                        return Err(Problem::new(format!(
                            "expecting a boolean value for flag `--{name}`, not `{v}`"
                        ))
                        .hint(format!(
                            "write `--{name}`, `--{name}=true` or `--{name}=false`"
                        )))
                    }
                },
                (_, None) => {
                    return Err(Problem::new(format!("missing a value on flag `--{name}`"))
                        .hint(format!("write `--{name}=<value>`")))
                }
                (_, Some(v)) => v.to_string(),
            };
            flags
                .values
                .entry(name.to_string())
                .or_default()
                .push(value);
        }
        Ok(flags)
    }

    /// A string flag's value; an empty value counts as not given, as in BuildKit.
    fn string(&self, name: &str) -> Option<String> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .filter(|v| !v.is_empty())
            .cloned()
    }

    fn strings(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }

    fn bool(&self, name: &str) -> bool {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .is_some_and(|v| v == "true")
    }
}

fn unknown_flag(keyword: &str, name: &str, spec: &[(&str, FlagKind)]) -> Problem {
    if name == "parents" && (keyword == "COPY" || keyword == "ADD") {
        return Problem::new(format!(
            "the `--parents` flag of `{keyword}` is not supported"
        ))
        .hint(format!(
            "copy each directory to its full destination path with its own `{keyword}`"
        ));
    }
    let problem = Problem::new(format!("unknown flag `--{name}` for `{keyword}`"));
    let names: Vec<&str> = spec.iter().map(|(n, _)| *n).collect();
    if names.is_empty() {
        return problem.hint(format!("`{keyword}` takes no flags"));
    }
    if let Some(s) = suggest(name, &names) {
        return problem.hint(format!("did you mean `--{s}`?"));
    }
    let list: Vec<String> = names.iter().map(|n| format!("--{n}")).collect();
    problem.hint(format!("`{keyword}` takes {}", list.join(", ")))
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
