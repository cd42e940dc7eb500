//! Whole-file tests: stages, global ARGs, directives, line numbers, file-level errors and the
//! error text users see.

use super::*;

fn s(v: &str) -> String {
    v.to_string()
}

const MULTI_STAGE: &str = r#"# syntax=docker/dockerfile:1.7
ARG GO_VERSION=1.22
ARG BASE
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS Build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/root/.cache/go-build \
    go build -o /out/app ./cmd/app

FROM ${BASE:-alpine:3.20}
COPY --from=build /out/app /usr/local/bin/app
ENV APP_MODE=prod
EXPOSE 8080
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/app"]
"#;

#[test]
fn multi_stage_file() {
    let df = parse(MULTI_STAGE).unwrap();
    assert_eq!(df.syntax.as_deref(), Some("docker/dockerfile:1.7"));
    assert_eq!(df.escape, '\\');
    assert_eq!(
        df.global_args,
        vec![
            ArgDecl {
                name: s("GO_VERSION"),
                default: Some(s("1.22")),
            },
            ArgDecl {
                name: s("BASE"),
                default: None,
            },
        ]
    );
    assert_eq!(df.stages.len(), 2);
    let build = &df.stages[0];
    assert_eq!(build.index, 0);
    assert_eq!(build.name.as_deref(), Some("build"));
    assert_eq!(build.base, "golang:${GO_VERSION}");
    assert_eq!(build.platform.as_deref(), Some("$BUILDPLATFORM"));
    assert_eq!(build.line, 4);
    assert_eq!(
        build.original,
        "FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS Build"
    );
    let lines: Vec<usize> = build.instructions.iter().map(|i| i.line).collect();
    assert_eq!(lines, [5, 6, 7]);
    assert_eq!(
        build.instructions[2].original,
        "RUN --mount=type=cache,target=/root/.cache/go-build     go build -o /out/app ./cmd/app"
    );
    let final_stage = &df.stages[1];
    assert_eq!(final_stage.index, 1);
    assert_eq!(final_stage.name, None);
    assert_eq!(final_stage.base, "${BASE:-alpine:3.20}");
    assert_eq!(final_stage.line, 10);
    let keywords: Vec<&str> = final_stage
        .instructions
        .iter()
        .map(|i| i.kind.keyword())
        .collect();
    assert_eq!(keywords, ["COPY", "ENV", "EXPOSE", "USER", "ENTRYPOINT"]);
    assert_eq!(df.stage_by_name_or_index("BUILD"), Some(0));
    assert_eq!(df.stage_by_name_or_index("1"), Some(1));
}

#[test]
fn escape_directive_applies_everywhere() {
    let src = "# escape=`\nFROM mcr.microsoft.com/windows/servercore\nENV A=x`\"y B=c:\\dir\nRUN dir c:\\ `\n  && echo done\nWORKDIR c:\\app\\\n";
    let df = parse(src).unwrap();
    assert_eq!(df.escape, '`');
    let kinds: Vec<&InstructionKind> = df.stages[0].instructions.iter().map(|i| &i.kind).collect();
    assert_eq!(
        kinds[0],
        &InstructionKind::Env(vec![(s("A"), s("x`\"y")), (s("B"), s("c:\\dir"))])
    );
    let InstructionKind::Run(run) = kinds[1] else {
        panic!("not RUN")
    };
    assert_eq!(
        run.command,
        CommandForm::Shell(s("dir c:\\   && echo done"))
    );
    assert_eq!(kinds[2], &InstructionKind::Workdir(s("c:\\app\\")));
    // The executor expands with the same escape character.
    let none = |_: &str| None;
    assert_eq!(expand_word("x`\"y", df.escape, &none).unwrap(), "x\"y");
}

#[test]
fn heredocs_in_a_file_keep_line_numbers() {
    let src = "FROM alpine\nRUN <<EOF\nset -e\necho one\nEOF\nCOPY <<conf /etc/app.conf\nkey=$VALUE\nconf\nCMD [\"sh\"]\n";
    let df = parse(src).unwrap();
    let ins = &df.stages[0].instructions;
    assert_eq!(ins.iter().map(|i| i.line).collect::<Vec<_>>(), [2, 6, 9]);
    assert_eq!(ins[0].original, "RUN <<EOF");
    let InstructionKind::Copy(copy) = &ins[1].kind else {
        panic!("not COPY")
    };
    assert_eq!(copy.heredocs[0].name, "conf");
    assert_eq!(copy.heredocs[0].content, "key=$VALUE\n");
    assert!(copy.heredocs[0].expand);
    assert_eq!(copy.dest, "/etc/app.conf");
}

#[test]
fn file_errors_carry_line_and_text() {
    let cases: &[(&str, usize, &str, &str)] = &[
        (
            "FROM alpine\n\nFORM alpine\n",
            3,
            "unknown instruction `FORM`",
            "FORM alpine",
        ),
        (
            "RUN echo hi\nFROM alpine",
            1,
            "`RUN` comes before the first `FROM`",
            "RUN echo hi",
        ),
        (
            "ARG A\nENV B=1\nFROM x",
            2,
            "`ENV` comes before the first `FROM`",
            "ENV B=1",
        ),
        (
            "FROM a AS x\nFROM b AS X",
            2,
            "duplicate stage name `x`",
            "FROM b AS X",
        ),
        (
            "FROM a\nRUN <<EOF\necho\n",
            2,
            "unterminated heredoc `EOF`",
            "RUN <<EOF",
        ),
        (
            "FROM a\nRUN a \\\n  b\nCOPY \\\n  onlyone",
            4,
            "`COPY` requires at least two arguments: one or more sources and a destination",
            "COPY   onlyone",
        ),
        ("", 0, "the Dockerfile has no instructions", ""),
        (
            "# just a comment\n\n",
            0,
            "the Dockerfile has no instructions",
            "",
        ),
        (
            "ARG A=1\n",
            0,
            "the Dockerfile has no `FROM` instruction",
            "",
        ),
        (
            "# escape=?\nFROM a",
            1,
            "invalid escape character `?`",
            "# escape=?",
        ),
    ];
    for (src, line, message, text) in cases {
        let e = parse(src).unwrap_err();
        assert_eq!(
            (e.line, e.message.as_str(), e.text.as_str()),
            (*line, *message, *text),
            "source {src:?}"
        );
    }
}

#[test]
fn unterminated_quotes_are_reported_at_parse_time_in_every_stage() {
    // The broken word sits in a stage nothing builds (the target is `app`): it is still an
    // error, with the line and text of the instruction.
    let cases: &[(&str, usize, &str, &str)] = &[
        (
            "FROM a AS unused\nENV GREETING='hello\nFROM b AS app\n",
            2,
            "failed to expand `'hello`: unexpected end of text while looking for the matching single quote",
            "ENV GREETING='hello",
        ),
        (
            "FROM a\nLABEL \"title=x\n",
            2,
            "failed to expand `\"title`: unexpected end of text while looking for the matching double quote",
            "LABEL \"title=x",
        ),
        (
            "FROM a\nCOPY \"my file /dst/\n",
            2,
            "failed to expand `\"my`: unexpected end of text while looking for the matching double quote",
            "COPY \"my file /dst/",
        ),
        (
            "FROM a\nEXPOSE \"80 443\"\n",
            2,
            "failed to expand `\"80`: unexpected end of text while looking for the matching double quote",
            "EXPOSE \"80 443\"",
        ),
        (
            "FROM a\nWORKDIR /srv/${APP\n",
            2,
            "failed to expand `/srv/${APP`: missing `}` in a `${...}` substitution",
            "WORKDIR /srv/${APP",
        ),
        (
            "FROM ${BASE:-alpine\n",
            1,
            "failed to expand `${BASE:-alpine`: missing `}` in a `${...}` substitution",
            "FROM ${BASE:-alpine",
        ),
        (
            "FROM a\nONBUILD USER 'app\n",
            2,
            "invalid ONBUILD trigger: failed to expand `'app`: unexpected end of text while looking for the matching single quote",
            "ONBUILD USER 'app",
        ),
    ];
    for (src, line, message, text) in cases {
        let e = parse(src).unwrap_err();
        assert_eq!(
            (e.line, e.message.as_str(), e.text.as_str()),
            (*line, *message, *text),
            "source {src:?}"
        );
        assert_eq!(
            e.hint.as_deref().map(|h| h.starts_with("close the")),
            Some(true),
            "{e}"
        );
    }
    // Instructions Docker does not expand keep their text for the shell: no error.
    for src in [
        "FROM a\nRUN echo 'unbalanced\n",
        "FROM a\nCMD echo \"unbalanced\n",
        "FROM a\nMAINTAINER O'Brien\n",
        "FROM a\nONBUILD RUN echo 'x\n",
    ] {
        parse(src).unwrap_or_else(|e| panic!("{src:?}: {e}"));
    }
    // A variable that is unset or `${V:?}`-required is only known when the stage is built.
    parse("FROM a\nENV A=${MISSING:?must_be_set} B=${X#[}\n").unwrap();
}

#[test]
fn error_display() {
    let e = parse("FROM alpine\n\nFORM alpine\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 3: unknown instruction `FORM`: FORM alpine\nhint: did you mean `FROM`?"
    );
    let e = parse("").unwrap_err();
    assert_eq!(
        e.to_string(),
        "the Dockerfile has no instructions\nhint: start the first stage with `FROM <image>`"
    );
}

#[test]
fn parse_instruction_errors() {
    let e = parse_instruction("", '\\').unwrap_err();
    assert_eq!(e.message, "no instruction found");
    let e = parse_instruction("RUN a\nRUN b", '\\').unwrap_err();
    assert_eq!(
        (e.line, e.message.as_str()),
        (2, "more than one instruction found")
    );
    let ok = parse_instruction("RUN a `\n b", '`').unwrap();
    assert_eq!(ok.original, "RUN a  b");
}

#[test]
fn instructions_are_case_insensitive() {
    let df = parse("from alpine\nRun echo\ncOpY a b\nworkdir /x").unwrap();
    let keywords: Vec<&str> = df.stages[0]
        .instructions
        .iter()
        .map(|i| i.kind.keyword())
        .collect();
    assert_eq!(keywords, ["RUN", "COPY", "WORKDIR"]);
}

#[test]
fn never_panics_on_odd_input() {
    let inputs = [
        "\u{feff}",
        "\\",
        "FROM a\nRUN <<",
        "FROM a\nRUN <<-\n",
        "FROM a\nCOPY <<'A /b\n",
        "FROM a\nCOPY <<A<<B /b\nA\nB\n",
        "FROM a\nRUN \"unterminated <<EOF\n",
        "FROM a\nHEALTHCHECK --interval=9999999999999999999999h CMD x",
        "FROM a\nHEALTHCHECK --interval=.h CMD x",
        "FROM a\nENV \"",
        "FROM a\nENV a=\"b\\",
        "FROM a\nLABEL '",
        "FROM a\nONBUILD ONBUILD",
        "FROM a\nONBUILD RUN <<EOF\nx\n",
        "FROM a\nEXPOSE \u{a0}",
        "FROM\u{a0}a",
        "FROM a\nCOPY --=x a b",
        "FROM a\nCOPY -- a b",
        "FROM a\nCOPY --chown=\"x a b",
        "# escape=`\nFROM a `",
        "FROM a\nRUN [\"\\ud800\"]",
        "FROM a\n\u{0}\u{1}",
    ];
    for input in inputs {
        let _ = parse(input);
    }
}

/// Deterministic pseudo-random Dockerfiles built from the pieces the parser treats specially:
/// nothing may panic, and whatever parses must parse the same way twice.
#[test]
fn random_token_soup_never_panics() {
    const PIECES: &[&str] = &[
        "FROM ",
        "RUN ",
        "COPY ",
        "ADD ",
        "ENV ",
        "ARG ",
        "LABEL ",
        "ONBUILD ",
        "HEALTHCHECK ",
        "CMD ",
        "SHELL ",
        "VOLUME ",
        "EXPOSE ",
        "WORKDIR ",
        "alpine",
        " AS ",
        "x",
        "=",
        "\"",
        "'",
        "\\",
        "`",
        "$",
        "${",
        "}",
        ":-",
        ":?",
        "#",
        "%",
        "/",
        "<<",
        "<<-",
        "EOF",
        "\n",
        "\t",
        " ",
        "[",
        "]",
        ",",
        "--",
        "--from=",
        "--link",
        "--mount=",
        "--interval=",
        "1.5s",
        "NONE",
        "# escape=`\n",
        "é",
        "\u{feff}",
        "\r",
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let none = |_: &str| None;
    for _ in 0..3000 {
        let len = (next() % 40) as usize;
        let mut text = String::from("FROM a\n");
        for _ in 0..len {
            text.push_str(PIECES[(next() % PIECES.len() as u64) as usize]);
        }
        let first = parse(&text);
        assert_eq!(first, parse(&text), "{text:?}");
        for ch in ['\\', '`'] {
            let _ = expand_word(&text, ch, &none);
            let _ = expand_words(&text, ch, &none);
        }
    }
}
