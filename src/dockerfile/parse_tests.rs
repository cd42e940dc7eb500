//! Instruction-level tests: every instruction form, every flag, every instruction error.

use super::super::{parse_instruction, ParseError};
use super::*;

fn kind(text: &str) -> InstructionKind {
    match parse_instruction(text, '\\') {
        Ok(i) => i.kind,
        Err(e) => panic!("{text:?} failed: {e}"),
    }
}

fn err(text: &str) -> ParseError {
    match parse_instruction(text, '\\') {
        Ok(i) => panic!("{text:?} parsed as {i:?}"),
        Err(e) => e,
    }
}

fn s(v: &str) -> String {
    v.to_string()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(k, v)| (s(k), s(v))).collect()
}

fn exec(v: &[&str]) -> CommandForm {
    CommandForm::Exec(v.iter().map(|x| s(x)).collect())
}

fn shell(v: &str) -> CommandForm {
    CommandForm::Shell(s(v))
}

fn from(text: &str) -> Result<Parsed, Problem> {
    let line = LogicalLine {
        line: 1,
        text: s(text),
        heredocs: vec![],
    };
    parse_line(&line, '\\')
}

#[test]
fn from_forms() {
    let cases: &[(&str, &str, Option<&str>, Option<&str>)] = &[
        ("FROM alpine", "alpine", None, None),
        ("from alpine:3.20", "alpine:3.20", None, None),
        ("FROM golang AS Build", "golang", Some("build"), None),
        (
            "FROM golang as build-1.x_y",
            "golang",
            Some("build-1.x_y"),
            None,
        ),
        (
            "FROM --platform=$BUILDPLATFORM golang AS b",
            "golang",
            Some("b"),
            Some("$BUILDPLATFORM"),
        ),
        ("FROM --platform= scratch", "scratch", None, None),
        ("FROM ${BASE}:${TAG}", "${BASE}:${TAG}", None, None),
    ];
    for (text, base, name, platform) in cases {
        let want = Parsed::From {
            base: s(base),
            name: name.map(s),
            platform: platform.map(s),
        };
        assert_eq!(from(text), Ok(want), "{text}");
    }
}

#[test]
fn from_errors() {
    let cases: &[(&str, &str)] = &[
        ("FROM", "`FROM` requires the name of a base image"),
        ("FROM a b", "`FROM` requires either one or three arguments"),
        (
            "FROM a to b",
            "`FROM` requires either one or three arguments",
        ),
        (
            "FROM a AS b c",
            "`FROM` requires either one or three arguments",
        ),
        ("FROM a AS 1st", "invalid name for build stage: `1st`"),
        ("FROM a AS b/c", "invalid name for build stage: `b/c`"),
        ("FROM --plat=x a", "unknown flag `--plat` for `FROM`"),
        ("FROM --platform a", "missing a value on flag `--platform`"),
    ];
    for (text, message) in cases {
        let problem = from(text).unwrap_err();
        assert_eq!(problem.message, *message, "{text}");
    }
    assert_eq!(
        from("FROM --plat=x a").unwrap_err().hint.as_deref(),
        Some("did you mean `--platform`?")
    );
}

#[test]
fn metadata_instructions() {
    let cases: Vec<(&str, InstructionKind)> = vec![
        (
            "ARG A",
            InstructionKind::Arg(vec![ArgDecl {
                name: s("A"),
                default: None,
            }]),
        ),
        (
            "arg A=1 B C=\"x y\" D=",
            InstructionKind::Arg(vec![
                ArgDecl {
                    name: s("A"),
                    default: Some(s("1")),
                },
                ArgDecl {
                    name: s("B"),
                    default: None,
                },
                ArgDecl {
                    name: s("C"),
                    default: Some(s("\"x y\"")),
                },
                ArgDecl {
                    name: s("D"),
                    default: Some(s("")),
                },
            ]),
        ),
        ("ENV A=1", InstructionKind::Env(pairs(&[("A", "1")]))),
        (
            "ENV A=1 B=\"two words\" C=a\\ b D=",
            InstructionKind::Env(pairs(&[
                ("A", "1"),
                ("B", "\"two words\""),
                ("C", "a\\ b"),
                ("D", ""),
            ])),
        ),
        (
            "ENV PATH=/x:$PATH",
            InstructionKind::Env(pairs(&[("PATH", "/x:$PATH")])),
        ),
        (
            "ENV LEGACY some value  here",
            InstructionKind::Env(pairs(&[("LEGACY", "some value  here")])),
        ),
        ("ENV A=b=c", InstructionKind::Env(pairs(&[("A", "b=c")]))),
        (
            "LABEL a=b \"c d\"=\"e f\"",
            InstructionKind::Label(pairs(&[("a", "b"), ("\"c d\"", "\"e f\"")])),
        ),
        (
            "LABEL org.opencontainers.image.title gantry",
            InstructionKind::Label(pairs(&[("org.opencontainers.image.title", "gantry")])),
        ),
        (
            "MAINTAINER Jane Doe <jane@example.com>",
            InstructionKind::Maintainer(s("Jane Doe <jane@example.com>")),
        ),
        ("WORKDIR /app dir", InstructionKind::Workdir(s("/app dir"))),
        ("workdir $HOME", InstructionKind::Workdir(s("$HOME"))),
        ("USER 1000:1000", InstructionKind::User(s("1000:1000"))),
        (
            "EXPOSE 80 443/tcp\t53/udp",
            InstructionKind::Expose(vec![s("80"), s("443/tcp"), s("53/udp")]),
        ),
        (
            // Split on blanks first, quotes kept (BuildKit's parseStringsWhitespaceDelimited);
            // `EXPOSE "80 443"` therefore has two unterminated words and is an error (see
            // `unterminated_quotes_are_reported_at_parse_time_in_every_stage`).
            "EXPOSE '80' \"443\"",
            InstructionKind::Expose(vec![s("'80'"), s("\"443\"")]),
        ),
        (
            "VOLUME /data /logs",
            InstructionKind::Volume(vec![s("/data"), s("/logs")]),
        ),
        (
            "VOLUME [\"/data\", \"/my logs\"]",
            InstructionKind::Volume(vec![s("/data"), s("/my logs")]),
        ),
        (
            "VOLUME [/data]",
            InstructionKind::Volume(vec![s("[/data]")]),
        ),
        (
            "STOPSIGNAL SIGKILL",
            InstructionKind::StopSignal(s("SIGKILL")),
        ),
        (
            "SHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]",
            InstructionKind::Shell(vec![s("/bin/bash"), s("-o"), s("pipefail"), s("-c")]),
        ),
    ];
    for (text, want) in cases {
        assert_eq!(kind(text), want, "{text}");
    }
}

#[test]
fn command_forms() {
    let cases: Vec<(&str, InstructionKind)> = vec![
        ("CMD [\"nginx\", \"-g\", \"daemon off;\"]", InstructionKind::Cmd(exec(&["nginx", "-g", "daemon off;"]))),
        ("CMD []", InstructionKind::Cmd(exec(&[]))),
        ("CMD echo $HOME", InstructionKind::Cmd(shell("echo $HOME"))),
        // Not valid JSON: shell form, as in Docker.
        ("CMD [nginx]", InstructionKind::Cmd(shell("[nginx]"))),
        ("CMD ['a']", InstructionKind::Cmd(shell("['a']"))),
        ("CMD [\"a\"] extra", InstructionKind::Cmd(shell("[\"a\"] extra"))),
        ("ENTRYPOINT [\"/entry.sh\"]", InstructionKind::Entrypoint(exec(&["/entry.sh"]))),
        ("entrypoint exec app", InstructionKind::Entrypoint(shell("exec app"))),
        ("CMD -v", InstructionKind::Cmd(shell("-v"))),
        (
            "RUN [\"sh\", \"-c\", \"echo \\\"hi\\\"\"]",
            InstructionKind::Run(RunArgs {
                command: exec(&["sh", "-c", "echo \"hi\""]),
                heredocs: vec![],
                mounts: vec![],
                network: None,
                security: None,
            }),
        ),
        (
            "RUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=npm --network=none --security=insecure make",
            InstructionKind::Run(RunArgs {
                command: shell("make"),
                heredocs: vec![],
                mounts: vec![s("type=cache,target=/root/.cache"), s("type=secret,id=npm")],
                network: Some(s("none")),
                security: Some(s("insecure")),
            }),
        ),
        (
            "RUN apt-get update && apt-get install -y curl",
            InstructionKind::Run(RunArgs {
                command: shell("apt-get update && apt-get install -y curl"),
                heredocs: vec![],
                mounts: vec![],
                network: None,
                security: None,
            }),
        ),
    ];
    for (text, want) in cases {
        assert_eq!(kind(text), want, "{text}");
    }
}

fn copy_args(sources: &[&str], dest: &str) -> CopyArgs {
    CopyArgs {
        sources: sources.iter().map(|x| s(x)).collect(),
        dest: s(dest),
        from: None,
        chown: None,
        chmod: None,
        link: false,
        checksum: None,
        keep_git_dir: false,
        heredocs: vec![],
    }
}

#[test]
fn copy_and_add() {
    let cases: Vec<(&str, InstructionKind)> = vec![
        ("COPY a /b", InstructionKind::Copy(copy_args(&["a"], "/b"))),
        (
            "COPY a b c /d/",
            InstructionKind::Copy(copy_args(&["a", "b", "c"], "/d/")),
        ),
        (
            "COPY [\"a b\", \"/c d/\"]",
            InstructionKind::Copy(copy_args(&["a b"], "/c d/")),
        ),
        (
            "COPY --from=build --chown=app:app --chmod=0755 --link /out /usr/bin/",
            InstructionKind::Copy(CopyArgs {
                from: Some(s("build")),
                chown: Some(s("app:app")),
                chmod: Some(s("0755")),
                link: true,
                ..copy_args(&["/out"], "/usr/bin/")
            }),
        ),
        (
            "COPY --link=false a b",
            InstructionKind::Copy(copy_args(&["a"], "b")),
        ),
        (
            "COPY --link=TRUE a b",
            InstructionKind::Copy(CopyArgs {
                link: true,
                ..copy_args(&["a"], "b")
            }),
        ),
        (
            "ADD https://x/y.tgz /",
            InstructionKind::Add(copy_args(&["https://x/y.tgz"], "/")),
        ),
        (
            "ADD --checksum=sha256:abc --keep-git-dir --chown=1 git@x:y.git /src",
            InstructionKind::Add(CopyArgs {
                checksum: Some(s("sha256:abc")),
                keep_git_dir: true,
                chown: Some(s("1")),
                ..copy_args(&["git@x:y.git"], "/src")
            }),
        ),
    ];
    for (text, want) in cases {
        assert_eq!(kind(text), want, "{text}");
    }
}

fn doc(name: &str, content: &str, expand: bool, chomp_tabs: bool) -> Heredoc {
    Heredoc {
        name: s(name),
        content: s(content),
        expand,
        chomp_tabs,
    }
}

#[test]
fn heredoc_instructions() {
    let run = |command: &str, heredocs: Vec<Heredoc>| {
        InstructionKind::Run(RunArgs {
            command: shell(command),
            heredocs,
            mounts: vec![],
            network: None,
            security: None,
        })
    };
    let cases: Vec<(&str, InstructionKind)> = vec![
        (
            "RUN <<EOF\napk add curl\necho done\nEOF",
            run(
                "apk add curl\necho done\n",
                vec![doc("EOF", "apk add curl\necho done\n", true, false)],
            ),
        ),
        (
            "RUN <<-EOT\n\tset -e\n\t\tmake\n\tEOT",
            run(
                "set -e\nmake\n",
                vec![doc("EOT", "set -e\nmake\n", true, true)],
            ),
        ),
        (
            "RUN <<'EOF'\necho $HOME\nEOF",
            run(
                "echo $HOME\n",
                vec![doc("EOF", "echo $HOME\n", false, false)],
            ),
        ),
        (
            "RUN python3 <<EOF\nprint(1)\nEOF",
            run(
                "python3 <<EOF\nprint(1)\nEOF",
                vec![doc("EOF", "print(1)\n", true, false)],
            ),
        ),
        (
            "RUN cat <<A > /a && cat <<\"B\" > /b\none\nA\ntwo\nB",
            run(
                "cat <<A > /a && cat <<\"B\" > /b\none\nA\ntwo\nB",
                vec![
                    doc("A", "one\n", true, false),
                    doc("B", "two\n", false, false),
                ],
            ),
        ),
        (
            "COPY <<EOF /etc/motd\nhello $USER\nEOF",
            InstructionKind::Copy(CopyArgs {
                heredocs: vec![doc("EOF", "hello $USER\n", true, false)],
                ..copy_args(&[], "/etc/motd")
            }),
        ),
        (
            "COPY --chmod=0755 <<\"run.sh\" ./local <<-cfg /app/\n#!/bin/sh\nrun.sh\n\tk=v\n\tcfg",
            InstructionKind::Copy(CopyArgs {
                chmod: Some(s("0755")),
                heredocs: vec![
                    doc("run.sh", "#!/bin/sh\n", false, false),
                    doc("cfg", "k=v\n", true, true),
                ],
                ..copy_args(&["./local"], "/app/")
            }),
        ),
        (
            "ADD <<EOF /x\nbody\nEOF",
            InstructionKind::Add(CopyArgs {
                heredocs: vec![doc("EOF", "body\n", true, false)],
                ..copy_args(&[], "/x")
            }),
        ),
    ];
    for (text, want) in cases {
        assert_eq!(kind(text), want, "{text:?}");
    }
}

#[test]
fn shebang_heredoc() {
    let InstructionKind::Run(run) = kind("RUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF") else {
        panic!("not a RUN");
    };
    assert_eq!(
        run.shebang_script().map(|h| h.content.as_str()),
        Some("#!/usr/bin/env python3\nprint(1)\n")
    );
}

#[test]
fn healthcheck_forms() {
    let check = |test: CommandForm, interval, timeout, start_period, start_interval, retries| {
        InstructionKind::Healthcheck(Healthcheck::Check {
            test,
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
        })
    };
    let cases: Vec<(&str, InstructionKind)> = vec![
        ("HEALTHCHECK NONE", InstructionKind::Healthcheck(Healthcheck::None)),
        ("healthcheck none", InstructionKind::Healthcheck(Healthcheck::None)),
        (
            "HEALTHCHECK CMD curl -f http://localhost/ || exit 1",
            check(shell("curl -f http://localhost/ || exit 1"), None, None, None, None, None),
        ),
        (
            "HEALTHCHECK --interval=30s --timeout=1m30s --start-period=500ms --start-interval=2s --retries=3 CMD [\"/bin/check\"]",
            check(
                exec(&["/bin/check"]),
                Some(30_000_000_000),
                Some(90_000_000_000),
                Some(500_000_000),
                Some(2_000_000_000),
                Some(3),
            ),
        ),
        (
            "HEALTHCHECK --interval=0s --retries=0 cmd true",
            check(shell("true"), Some(0), None, None, None, Some(0)),
        ),
    ];
    for (text, want) in cases {
        assert_eq!(kind(text), want, "{text}");
    }
}

#[test]
fn onbuild_triggers() {
    assert_eq!(
        kind("ONBUILD COPY . /app"),
        InstructionKind::Onbuild(s("COPY . /app"))
    );
    assert_eq!(
        kind("onbuild   RUN --mount=type=cache,target=/c make"),
        InstructionKind::Onbuild(s("RUN --mount=type=cache,target=/c make"))
    );
    let InstructionKind::Onbuild(trigger) = kind("ONBUILD RUN <<EOF\necho hi\nEOF") else {
        panic!("not ONBUILD");
    };
    assert_eq!(trigger, "RUN <<EOF\necho hi\nEOF");
    // The stored trigger parses again on its own.
    let again = parse_instruction(&trigger, '\\').unwrap();
    assert_eq!(again.original, "RUN <<EOF");
    let InstructionKind::Run(run) = again.kind else {
        panic!("not RUN");
    };
    assert_eq!(run.command, shell("echo hi\n"));
}

#[test]
fn instruction_errors() {
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("FORM alpine", "unknown instruction `FORM`", Some("did you mean `FROM`?")),
        ("RUNN make", "unknown instruction `RUNN`", Some("did you mean `RUN`?")),
        ("ARG", "`ARG` requires at least one argument", Some("for example `ARG VERSION=1.0`")),
        ("ARG =x", "`ARG` names can not be blank", None),
        ("ENV", "`ENV` must have two arguments", Some("write `ENV name=value`")),
        ("ENV A", "`ENV` must have two arguments", None),
        ("ENV A=1 B", "syntax error: can't find `=` in `B`", None),
        ("ENV =1", "`ENV` names can not be blank", None),
        ("LABEL", "`LABEL` requires at least one argument", None),
        ("MAINTAINER", "`MAINTAINER` requires exactly one argument", None),
        ("WORKDIR", "`WORKDIR` requires exactly one argument", Some("for example `WORKDIR /app`")),
        ("USER", "`USER` requires exactly one argument", None),
        ("STOPSIGNAL", "`STOPSIGNAL` requires exactly one argument", None),
        ("EXPOSE", "`EXPOSE` requires at least one argument", None),
        ("VOLUME", "`VOLUME` requires at least one argument", None),
        ("VOLUME []", "`VOLUME` requires at least one argument", None),
        ("VOLUME [\"/a\", \"\"]", "`VOLUME` specified can not be an empty string", None),
        ("VOLUME [\"/a\", 1]", "when using the JSON array form of `VOLUME`, every element must be a string", None),
        ("CMD", "`CMD` requires at least one argument", None),
        ("CMD [1]", "when using the JSON array form of `CMD`, every element must be a string", None),
        ("ENTRYPOINT", "`ENTRYPOINT` requires at least one argument", None),
        ("RUN", "`RUN` requires at least one argument", None),
        ("RUN [\"a\", null]", "when using the JSON array form of `RUN`, every element must be a string", None),
        ("SHELL /bin/bash -c", "`SHELL` requires the arguments to be in JSON form", Some("write it as a JSON array, for example `SHELL [\"/bin/bash\", \"-c\"]`")),
        ("SHELL [\"a\" ", "`SHELL` requires the arguments to be in JSON form", None),
        ("SHELL []", "`SHELL` requires at least one argument", None),
        ("SHELL", "`SHELL` requires at least one argument", None),
        ("SHELL [\"a\", 2]", "when using the JSON array form of `SHELL`, every element must be a string", None),
        ("COPY onlyone", "`COPY` requires at least two arguments: one or more sources and a destination", Some("write `COPY <source>... <destination>`")),
        ("COPY", "`COPY` requires at least two arguments: one or more sources and a destination", None),
        ("ADD [\"x\"]", "`ADD` requires at least two arguments: one or more sources and a destination", None),
        ("COPY a <<EOF\nx\nEOF", "`COPY` cannot accept a heredoc as a destination", None),
        ("COPY --parents a/b /c", "the `--parents` flag of `COPY` is not supported", None),
        ("COPY --checksum=sha256:x a b", "unknown flag `--checksum` for `COPY`", None),
        ("COPY --keep-git-dir a b", "unknown flag `--keep-git-dir` for `COPY`", None),
        ("ADD --from=x a b", "unknown flag `--from` for `ADD`", None),
        ("COPY --chwon=1 a b", "unknown flag `--chwon` for `COPY`", Some("did you mean `--chown`?")),
        ("COPY --exclude=*.md a b", "unknown flag `--exclude` for `COPY`", Some("`COPY` takes --chmod, --chown, --from, --link")),
        ("COPY --from=a --from=b x y", "duplicate flag specified: `--from`", Some("give `--from` only once")),
        ("COPY --from a b", "missing a value on flag `--from`", Some("write `--from=<value>`")),
        ("COPY --link= a b", "missing a value on flag `--link`", None),
        ("COPY --link=yes a b", "expecting a boolean value for flag `--link`, not `yes`", None),
        ("WORKDIR --x /a", "unknown flag `--x` for `WORKDIR`", Some("`WORKDIR` takes no flags")),
        ("ENV --x=1 A=1", "unknown flag `--x` for `ENV`", None),
        ("CMD --help", "unknown flag `--help` for `CMD`", None),
        ("RUN --mount type=cache make", "missing a value on flag `--mount`", None),
        ("RUN --privileged make", "unknown flag `--privileged` for `RUN`", None),
        ("HEALTHCHECK", "`HEALTHCHECK` requires at least one argument", None),
        ("HEALTHCHECK NONE x", "`HEALTHCHECK NONE` takes no arguments", None),
        ("HEALTHCHECK --interval=5s NONE", "`HEALTHCHECK NONE` takes no arguments", None),
        ("HEALTHCHECK CMD", "missing command after `HEALTHCHECK CMD`", None),
        ("HEALTHCHECK CMD []", "missing command after `HEALTHCHECK CMD`", None),
        ("HEALTHCHECK RUN x", "unknown type `RUN` in HEALTHCHECK", None),
        ("HEALTHCHECK --interval=5 CMD x", "missing unit in duration: `--interval=5`", Some("durations look like `30s`, `1m30s` or `500ms`")),
        ("HEALTHCHECK --timeout=1d CMD x", "unknown unit in duration (use ns, us, ms, s, m or h): `--timeout=1d`", None),
        ("HEALTHCHECK --start-period=10us CMD x", "`--start-period` cannot be less than 1ms: `10us`", None),
        ("HEALTHCHECK --start-interval=-1s CMD x", "`--start-interval` cannot be less than 1ms: `-1s`", None),
        ("HEALTHCHECK --retries=-1 CMD x", "`--retries` cannot be negative: `-1`", None),
        ("HEALTHCHECK --retries=three CMD x", "invalid number for `--retries`: `three`", None),
        ("HEALTHCHECK --retries=99999999999 CMD x", "invalid number for `--retries`: `99999999999`", None),
        ("HEALTHCHECK --intervall=5s CMD x", "unknown flag `--intervall` for `HEALTHCHECK`", Some("did you mean `--interval`?")),
        ("ONBUILD", "`ONBUILD` requires at least one argument", None),
        ("ONBUILD ONBUILD RUN x", "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed", None),
        ("ONBUILD FROM alpine", "`FROM` isn't allowed as an ONBUILD trigger", None),
        ("ONBUILD maintainer me", "`MAINTAINER` isn't allowed as an ONBUILD trigger", None),
        ("ONBUILD FORM x", "invalid ONBUILD trigger: unknown instruction `FORM`", Some("did you mean `FROM`?")),
        ("ONBUILD COPY x", "invalid ONBUILD trigger: `COPY` requires at least two arguments: one or more sources and a destination", None),
        ("FROM alpine", "`FROM` isn't allowed here", None),
    ];
    for (text, message, hint) in cases {
        let e = err(text);
        assert_eq!(e.message, *message, "{text:?}");
        assert_eq!(e.line, 1, "{text:?}");
        if let Some(hint) = hint {
            assert_eq!(e.hint.as_deref(), Some(*hint), "{text:?}");
        }
        assert_eq!(e.text, text.lines().next().unwrap_or("").trim(), "{text:?}");
    }
}

#[test]
fn windows_path_hint() {
    let e = err("SHELL [\"c:\\windows\\cmd.exe\", \"/S\"]");
    let hint = e.hint.unwrap();
    assert!(
        hint.contains("JSON requires back-slashes to be escaped"),
        "{hint}"
    );
}
