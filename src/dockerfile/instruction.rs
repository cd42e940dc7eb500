//! The Dockerfile syntax tree: stages, instructions and their arguments.
//!
//! Words are kept raw (quotes, escapes and `$VAR` references as written) because they can only be
//! expanded once the executor knows the ARG and ENV values in effect at that instruction;
//! [`InstructionKind::expands_env`] is the one table of which instructions Docker expands (the
//! parser checks those words' syntax, the executor expands them), and [`super::expand_word`] /
//! [`super::expand_words`] say how.

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The `# syntax=` parser directive, if present (recorded, not acted on).
    pub syntax: Option<String>,
    /// The escape character: `\` unless `# escape=`` ` ` said otherwise.
    pub escape: char,
    /// ARG instructions before the first FROM (usable in FROM lines).
    pub global_args: Vec<ArgDecl>,
    /// The stages, in file order; `Stage::index` is the position in this list.
    pub stages: Vec<Stage>,
}

impl Dockerfile {
    /// The index of the stage named `s` (case-insensitive), or, failing that, of the stage whose
    /// position is the number `s` (`COPY --from=0`, `--target`).
    pub fn stage_by_name_or_index(&self, s: &str) -> Option<usize> {
        let lower = s.to_ascii_lowercase();
        if let Some(stage) = self
            .stages
            .iter()
            .find(|st| st.name.as_deref() == Some(lower.as_str()))
        {
            return Some(stage.index);
        }
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            let index: usize = s.parse().ok()?;
            if index < self.stages.len() {
                return Some(index);
            }
        }
        None
    }
}

/// One `FROM` and the instructions up to the next `FROM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub index: usize,
    /// The `AS` name, lower-cased.
    pub name: Option<String>,
    /// The base image reference or stage name, raw (may contain `$ARG`s).
    pub base: String,
    /// `--platform=` value, raw.
    pub platform: Option<String>,
    /// 1-based line of the FROM instruction.
    pub line: usize,
    /// The FROM line as written.
    pub original: String,
    pub instructions: Vec<Instruction>,
}

/// One instruction inside a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// First line of the instruction, 1-based.
    pub line: usize,
    /// The instruction as written, continuation lines joined the way Docker joins them (the
    /// escape character and the line break removed, nothing added), trimmed. Heredoc bodies are
    /// not included. This is what image history records as `created_by`.
    pub original: String,
    pub kind: InstructionKind,
}

/// `ARG name` or `ARG name=default`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    /// The default value as a raw word (pass it to `expand_word`).
    pub default: Option<String>,
}

/// CMD, ENTRYPOINT, RUN and HEALTHCHECK CMD take a JSON array (exec form) or a plain string
/// (shell form, run with the stage's SHELL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandForm {
    Exec(Vec<String>),
    Shell(String),
}

/// A heredoc attached to RUN, COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word, unquoted: `EOF` for `<<EOF`, `<<"EOF"` and `<<-EOF`. For COPY and ADD
    /// it is also the name of the source file.
    pub name: String,
    /// The body, every line ending in `\n`, the delimiter line excluded. Leading tabs are
    /// already removed when `chomp_tabs` is set.
    pub content: String,
    /// False when the delimiter was quoted (`<<"EOF"`, `<<'EOF'`): the body must not be expanded.
    /// For COPY and ADD the executor expands an unquoted body with the ARG/ENV values.
    pub expand: bool,
    /// `<<-EOF`: leading tabs were stripped from the body and the delimiter line.
    pub chomp_tabs: bool,
}

/// COPY and ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyArgs {
    /// Source paths, raw, in order. Heredoc sources (`<<EOF`) are not listed here but in
    /// `heredocs`.
    pub sources: Vec<String>,
    /// The destination, raw.
    pub dest: String,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    /// ADD only.
    pub checksum: Option<String>,
    /// ADD only.
    pub keep_git_dir: bool,
    /// Heredoc sources: each becomes a file named `Heredoc::name` holding `Heredoc::content`.
    pub heredocs: Vec<Heredoc>,
}

/// RUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunArgs {
    /// What to run. With heredocs in the shell form this is already the script BuildKit runs:
    /// for `RUN <<EOF` alone, the body; for `RUN cmd <<EOF`, the command line followed by each
    /// body and delimiter, for the shell to read as real heredocs. See [`RunArgs::shebang_script`].
    pub command: CommandForm,
    pub heredocs: Vec<Heredoc>,
    /// `--mount=` values, raw, in order.
    pub mounts: Vec<String>,
    pub network: Option<String>,
    pub security: Option<String>,
}

impl RunArgs {
    /// For `RUN <<EOF` whose body starts with `#!`, the heredoc to write as an executable file
    /// and run directly instead of through the shell (BuildKit mounts it at `/dev/pipes/<name>`).
    pub fn shebang_script(&self) -> Option<&Heredoc> {
        match (&self.command, self.heredocs.as_slice()) {
            (CommandForm::Shell(script), [only])
                if script == &only.content && only.content.starts_with("#!") =>
            {
                Some(only)
            }
            _ => None,
        }
    }
}

/// HEALTHCHECK. Durations are nanoseconds; `None` means the flag was not given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable any check inherited from the base image.
    None,
    Check {
        test: CommandForm,
        interval: Option<i64>,
        timeout: Option<i64>,
        start_period: Option<i64>,
        start_interval: Option<i64>,
        retries: Option<i64>,
    },
}

/// Everything an instruction other than FROM can be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstructionKind {
    Arg(Vec<ArgDecl>),
    /// `(key, value)` raw words; expand each with `expand_word`. The legacy `ENV k v w` form
    /// gives one pair whose value is the rest of the line (`v w`).
    Env(Vec<(String, String)>),
    /// `(key, value)` raw words, as for ENV.
    Label(Vec<(String, String)>),
    Maintainer(String),
    Workdir(String),
    User(String),
    /// Raw words split on blanks; expand each with `expand_words` (a word may become several).
    Expose(Vec<String>),
    /// Raw paths (JSON form already decoded); expand as for EXPOSE.
    Volume(Vec<String>),
    Cmd(CommandForm),
    Entrypoint(CommandForm),
    Shell(Vec<String>),
    StopSignal(String),
    Healthcheck(Healthcheck),
    /// The trigger as written after `ONBUILD` (with any heredoc bodies appended the way BuildKit
    /// stores them), re-parseable with [`super::parse_instruction`].
    Onbuild(String),
    Copy(CopyArgs),
    Add(CopyArgs),
    Run(RunArgs),
}

impl InstructionKind {
    /// The instruction keyword, upper-case.
    pub fn keyword(&self) -> &'static str {
        match self {
            InstructionKind::Arg(_) => "ARG",
            InstructionKind::Env(_) => "ENV",
            InstructionKind::Label(_) => "LABEL",
            InstructionKind::Maintainer(_) => "MAINTAINER",
            InstructionKind::Workdir(_) => "WORKDIR",
            InstructionKind::User(_) => "USER",
            InstructionKind::Expose(_) => "EXPOSE",
            InstructionKind::Volume(_) => "VOLUME",
            InstructionKind::Cmd(_) => "CMD",
            InstructionKind::Entrypoint(_) => "ENTRYPOINT",
            InstructionKind::Shell(_) => "SHELL",
            InstructionKind::StopSignal(_) => "STOPSIGNAL",
            InstructionKind::Healthcheck(_) => "HEALTHCHECK",
            InstructionKind::Onbuild(_) => "ONBUILD",
            InstructionKind::Copy(_) => "COPY",
            InstructionKind::Add(_) => "ADD",
            InstructionKind::Run(_) => "RUN",
        }
    }

    /// Whether Docker expands ARG/ENV references in this instruction's words (FROM, which is not
    /// an `InstructionKind`, is expanded too, with the global ARGs only).
    ///
    /// This table is the one place that decides: the parser checks the words of expanding
    /// instructions for unterminated quotes and bad substitutions, and the executor and
    /// `build::instructions::Expander` expand the words of an instruction only when it says so.
    pub fn expands_env(&self) -> bool {
        match self {
            InstructionKind::Add(_)
            | InstructionKind::Copy(_)
            | InstructionKind::Env(_)
            | InstructionKind::Expose(_)
            | InstructionKind::Label(_)
            | InstructionKind::StopSignal(_)
            | InstructionKind::User(_)
            | InstructionKind::Volume(_)
            | InstructionKind::Workdir(_)
            | InstructionKind::Arg(_) => true,
            InstructionKind::Run(_)
            | InstructionKind::Cmd(_)
            | InstructionKind::Entrypoint(_)
            | InstructionKind::Shell(_)
            | InstructionKind::Healthcheck(_)
            | InstructionKind::Onbuild(_)
            | InstructionKind::Maintainer(_) => false,
        }
    }
}

impl InstructionKind {
    /// Every raw word the instruction carries that expansion would read: ARG defaults, ENV and
    /// LABEL keys and values, the single argument of WORKDIR/USER/STOPSIGNAL/MAINTAINER, EXPOSE
    /// and VOLUME words, CMD/ENTRYPOINT/RUN/HEALTHCHECK commands, SHELL words, the ONBUILD
    /// trigger, and COPY/ADD sources, destination and `--from`/`--chown`/`--chmod`. Heredoc
    /// bodies are not words. Which of them are expanded is [`InstructionKind::expands_env`]'s
    /// business.
    pub fn raw_words(&self) -> Vec<&str> {
        fn form(f: &CommandForm) -> Vec<&str> {
            match f {
                CommandForm::Exec(args) => args.iter().map(String::as_str).collect(),
                CommandForm::Shell(s) => vec![s.as_str()],
            }
        }
        match self {
            InstructionKind::Arg(decls) => {
                decls.iter().filter_map(|d| d.default.as_deref()).collect()
            }
            InstructionKind::Env(pairs) | InstructionKind::Label(pairs) => pairs
                .iter()
                .flat_map(|(k, v)| [k.as_str(), v.as_str()])
                .collect(),
            InstructionKind::Maintainer(s)
            | InstructionKind::Workdir(s)
            | InstructionKind::User(s)
            | InstructionKind::StopSignal(s)
            | InstructionKind::Onbuild(s) => vec![s.as_str()],
            InstructionKind::Expose(words)
            | InstructionKind::Volume(words)
            | InstructionKind::Shell(words) => words.iter().map(String::as_str).collect(),
            InstructionKind::Cmd(f) | InstructionKind::Entrypoint(f) => form(f),
            InstructionKind::Healthcheck(Healthcheck::None) => Vec::new(),
            InstructionKind::Healthcheck(Healthcheck::Check { test, .. }) => form(test),
            InstructionKind::Run(run) => form(&run.command),
            InstructionKind::Copy(c) | InstructionKind::Add(c) => c
                .sources
                .iter()
                .map(String::as_str)
                .chain(std::iter::once(c.dest.as_str()))
                .chain(
                    [&c.from, &c.chown, &c.chmod]
                        .into_iter()
                        .filter_map(|o| o.as_deref()),
                )
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(index: usize, name: Option<&str>) -> Stage {
        Stage {
            index,
            name: name.map(str::to_string),
            base: "alpine".into(),
            platform: None,
            line: index + 1,
            original: "FROM alpine".into(),
            instructions: Vec::new(),
        }
    }

    #[test]
    fn stage_lookup() {
        let df = Dockerfile {
            syntax: None,
            escape: '\\',
            global_args: Vec::new(),
            stages: vec![stage(0, Some("build")), stage(1, None), stage(2, Some("1"))],
        };
        assert_eq!(df.stage_by_name_or_index("build"), Some(0));
        assert_eq!(df.stage_by_name_or_index("BUILD"), Some(0));
        assert_eq!(df.stage_by_name_or_index("0"), Some(0));
        // A name wins over an index.
        assert_eq!(df.stage_by_name_or_index("1"), Some(2));
        assert_eq!(df.stage_by_name_or_index("2"), Some(2));
        assert_eq!(df.stage_by_name_or_index("3"), None);
        assert_eq!(df.stage_by_name_or_index("-1"), None);
        assert_eq!(df.stage_by_name_or_index("+1"), None);
        assert_eq!(df.stage_by_name_or_index("99999999999999999999999"), None);
        assert_eq!(df.stage_by_name_or_index(""), None);
        assert_eq!(df.stage_by_name_or_index("alpine"), None);
    }

    #[test]
    fn expands_env_matches_docker() {
        let shell = CommandForm::Shell("x".into());
        let copy = CopyArgs {
            sources: vec![],
            dest: "/".into(),
            from: None,
            chown: None,
            chmod: None,
            link: false,
            checksum: None,
            keep_git_dir: false,
            heredocs: vec![],
        };
        let run = RunArgs {
            command: shell.clone(),
            heredocs: vec![],
            mounts: vec![],
            network: None,
            security: None,
        };
        let table: Vec<(InstructionKind, bool)> = vec![
            (InstructionKind::Add(copy.clone()), true),
            (InstructionKind::Copy(copy), true),
            (InstructionKind::Env(vec![]), true),
            (InstructionKind::Expose(vec![]), true),
            (InstructionKind::Label(vec![]), true),
            (InstructionKind::StopSignal("x".into()), true),
            (InstructionKind::User("x".into()), true),
            (InstructionKind::Volume(vec![]), true),
            (InstructionKind::Workdir("x".into()), true),
            (InstructionKind::Arg(vec![]), true),
            (InstructionKind::Run(run), false),
            (InstructionKind::Cmd(shell.clone()), false),
            (InstructionKind::Entrypoint(shell.clone()), false),
            (InstructionKind::Shell(vec![]), false),
            (InstructionKind::Healthcheck(Healthcheck::None), false),
            (InstructionKind::Onbuild("RUN x".into()), false),
            (InstructionKind::Maintainer("x".into()), false),
        ];
        for (kind, want) in table {
            assert_eq!(kind.expands_env(), want, "{}", kind.keyword());
        }
    }

    #[test]
    fn shebang_script_only_for_lone_heredoc() {
        let doc = Heredoc {
            name: "EOF".into(),
            content: "#!/usr/bin/env python3\nprint(1)\n".into(),
            expand: true,
            chomp_tabs: false,
        };
        let mut run = RunArgs {
            command: CommandForm::Shell(doc.content.clone()),
            heredocs: vec![doc.clone()],
            mounts: vec![],
            network: None,
            security: None,
        };
        assert_eq!(run.shebang_script(), Some(&doc));
        run.command = CommandForm::Shell(format!("python3 <<EOF\n{}EOF", doc.content));
        assert_eq!(run.shebang_script(), None);
    }
}
