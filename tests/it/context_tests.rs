//! Build contexts from every source kaniko reads, against real servers on 127.0.0.1. Each source
//! builds the same Dockerfile to the same image digest as the directory it was made from, and
//! every bad input ends in exactly one message (an `error:` line naming the context, then at
//! most a `hint:` line) with nothing left in the work directory.
//!
//! This file holds the shared helpers and the archive sources; `git`, `buckets` (S3, GCS,
//! Azure Blob) and `secrets` (nothing secret reaches a log, a file or the image) are below it.

mod buckets;
mod git;
mod secrets;

use std::io::{Read as _, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::harness::servers::tar_gz;
use crate::harness::*;

const DOCKERFILE: &str = "FROM scratch\nCOPY app/ /app/\n";

fn context_files() -> Vec<(&'static str, &'static str)> {
    vec![
        ("Dockerfile", DOCKERFILE),
        ("app/hello.txt", "hello from a context\n"),
        ("app/sub/data.txt", "data\n"),
        ("other/Dockerfile", "FROM scratch\nCOPY . /other/\n"),
        ("other/x.txt", "x\n"),
    ]
}

/// Builds with `--context <context>` plus `extra` args and env; asserts that the build's work
/// directory is empty afterwards, whatever the outcome.
fn build(tmp: &Path, name: &str, context: &str, extra: &[&str], envs: &[(&str, &str)]) -> Output {
    build_with_stdin(tmp, name, context, extra, envs, None)
}

/// [`build`] with `stdin` written to the build's standard input (from a thread, so a build that
/// stops reading early cannot block the test; a write it refuses is ignored).
fn build_with_stdin(
    tmp: &Path,
    name: &str,
    context: &str,
    extra: &[&str],
    envs: &[(&str, &str)],
    stdin: Option<Vec<u8>>,
) -> Output {
    let work = tmp.join(format!("work-{name}"));
    std::fs::create_dir_all(&work).unwrap();
    let mut cmd = gantry(tmp);
    cmd.current_dir(tmp)
        .env("GANTRY_WORK_DIR", &work)
        .arg("build")
        .arg("--context")
        .arg(context)
        .args([
            "--no-push",
            "--reproducible",
            "--destination",
            "localhost/ctx:1",
        ])
        .args(extra);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = match stdin {
        None => run(&mut cmd),
        Some(bytes) => {
            let mut child = cmd
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut pipe = child.stdin.take().unwrap();
            let writer = std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            });
            let out = child.wait_with_output().unwrap();
            writer.join().unwrap();
            out
        }
    };
    let left: Vec<_> = std::fs::read_dir(&work).unwrap().collect();
    assert!(
        left.is_empty(),
        "the work directory was not cleaned up: {left:?}\n{}",
        stderr(&out)
    );
    out
}

fn digest_of(out: Output) -> String {
    let d = ok(out).trim().to_string();
    assert!(d.starts_with("sha256:") && d.len() == 71, "{d}");
    d
}

/// The message of a failed build, checked to be exactly one: an `error:` line that names the
/// context `context`, then at most one `hint:` line, and nothing else on stderr.
#[track_caller]
fn one_error(out: Output, context: &str) -> String {
    let e = fails(out);
    let lines: Vec<&str> = e.lines().collect();
    assert!(
        (1..=2).contains(&lines.len()),
        "not exactly one message:\n{e}"
    );
    let head = format!("error: context `{context}`: ");
    assert!(lines[0].starts_with(&head), "expected `{head}…`:\n{e}");
    if let Some(hint) = lines.get(1) {
        assert!(
            hint.starts_with("hint: "),
            "second line is not a hint:\n{e}"
        );
    }
    e
}

/// The directory context the other sources are compared with.
fn reference(tmp: &Path) -> (PathBuf, String) {
    let dir = tmp.join("ctxdir");
    let d = dir_digest(tmp, &dir, &context_files(), &[]);
    (dir, d)
}

/// Writes `files` into `dir` and builds it as a directory context.
fn dir_digest(tmp: &Path, dir: &Path, files: &[(&str, &str)], extra: &[&str]) -> String {
    write_files(dir, files);
    digest_of(build(
        tmp,
        "dir",
        &format!("dir://{}", dir.display()),
        extra,
        &[],
    ))
}

/// The digest of the reference directory built with `--context-sub-path other`.
fn sub_path_reference(tmp: &Path, dir: &Path) -> String {
    digest_of(build(
        tmp,
        "dir",
        &dir.display().to_string(),
        &["--context-sub-path", "other"],
        &[],
    ))
}

#[test]
fn tar_file_and_stdin_build_the_directory_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, want) = reference(tmp.path());
    let archive = tmp.path().join("ctx.tar.gz");
    tar_gz(&dir, &archive);
    let got = digest_of(build(
        tmp.path(),
        "tar",
        &format!("tar://{}", archive.display()),
        &[],
        &[],
    ));
    assert_eq!(got, want);

    let bytes = std::fs::read(&archive).unwrap();
    let got = digest_of(build_with_stdin(
        tmp.path(),
        "stdin",
        "tar://stdin",
        &[],
        &[],
        Some(bytes.clone()),
    ));
    assert_eq!(got, want);

    // --context-sub-path applies inside the archive, read from a file or from stdin.
    let sub_dir = sub_path_reference(tmp.path(), &dir);
    assert_ne!(sub_dir, want);
    let sub_tar = digest_of(build(
        tmp.path(),
        "tar",
        &format!("tar://{}", archive.display()),
        &["--context-sub-path", "other"],
        &[],
    ));
    assert_eq!(sub_tar, sub_dir);
    let sub_stdin = digest_of(build_with_stdin(
        tmp.path(),
        "stdin",
        "tar://stdin",
        &["--context-sub-path", "other"],
        &[],
        Some(bytes),
    ));
    assert_eq!(sub_stdin, sub_dir);
}

/// The bad archives of [`bad_archives_are_named_and_leave_nothing_behind`]: (name, bytes).
fn bad_archives(tmp: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let src = tmp.join("src");
    write_files(&src, &context_files());
    let plain = tmp.join("plain.tar");
    ok(run(Command::new("tar")
        .arg("-C")
        .arg(&src)
        .arg("-cf")
        .arg(&plain)
        .arg(".")));
    let cut = tmp.join("cut.tar.gz");
    tar_gz(&src, &cut);
    let whole = std::fs::read(&cut).unwrap();
    // An entry escaping the context, made with GNU tar's --transform.
    let evil = tmp.join("evil.tar.gz");
    ok(run(Command::new("tar")
        .arg("-C")
        .arg(&src)
        .args(["--transform", "s,^./app,../../escaped,", "-czf"])
        .arg(&evil)
        .arg(".")));
    vec![
        ("plain", std::fs::read(&plain).unwrap()),
        ("cut", whole[..whole.len() / 2].to_vec()),
        ("evil", std::fs::read(&evil).unwrap()),
    ]
}

#[test]
fn bad_archives_are_named_and_leave_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let e = one_error(
        build(tmp.path(), "bad", "tar://nothere.tar.gz", &[], &[]),
        "tar://nothere.tar.gz",
    );
    assert_eq!(
        e,
        "error: context `tar://nothere.tar.gz`: cannot open the archive `nothere.tar.gz`: \
         No such file or directory (os error 2)\n\
         hint: check that the file exists and is readable; paths are relative to the working \
         directory\n"
    );

    let root = tmp.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    for (name, bytes) in bad_archives(&root) {
        let file = tmp.path().join(format!("{name}.tar.gz"));
        std::fs::write(&file, &bytes).unwrap();
        let from_file = format!("tar://{}", file.display());
        let messages = [
            one_error(build(tmp.path(), "bad", &from_file, &[], &[]), &from_file),
            one_error(
                build_with_stdin(tmp.path(), "bad", "tar://stdin", &[], &[], Some(bytes)),
                "tar://stdin",
            ),
        ];
        for e in messages {
            match name {
                "plain" => assert!(e.contains(": the archive is not gzip-compressed\n"), "{e}"),
                "cut" => assert!(e.contains(": the archive is corrupt or truncated: "), "{e}"),
                _ => {
                    assert!(e.contains(": archive entry `../../escaped"), "{e}");
                    assert!(
                        e.contains("is refused: its path contains a `..` component"),
                        "{e}"
                    );
                }
            }
        }
        assert!(!tmp.path().join("escaped").exists());
        assert!(!root.join("escaped").exists());
    }
}

/// A 1 GiB context streams through stdin with bounded memory: peak RSS stays far below the
/// archive's size.
#[test]
fn a_one_gigabyte_context_unpacks_with_bounded_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new("/usr/bin/time")
        .args(["-f", "maxrss_kb=%M", "-o"])
        .arg(tmp.path().join("rss"))
        .arg(gantry_bin())
        .current_dir(tmp.path())
        .env("HOME", tmp.path())
        .env("CI", "true")
        .env("GANTRY_WORK_DIR", tmp.path().join("work"))
        .args([
            "build",
            "--context",
            "tar://stdin",
            "--no-push",
            "--reproducible",
            "--destination",
            "localhost/big:1",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let gz = flate2::write::GzEncoder::new(stdin, flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        let mut add = |name: &str, size: u64, data: &mut dyn std::io::Read| {
            let mut h = tar::Header::new_gnu();
            h.set_size(size);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut h, name, data).unwrap();
        };
        add(
            "Dockerfile",
            DOCKERFILE.len() as u64,
            &mut DOCKERFILE.as_bytes(),
        );
        add("app/hello.txt", 6, &mut &b"hello\n"[..]);
        let gib = 1u64 << 30;
        add("big.bin", gib, &mut std::io::repeat(7).take(gib));
        tar.into_inner().unwrap().finish().unwrap();
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    digest_of(out);
    let left: Vec<_> = std::fs::read_dir(tmp.path().join("work"))
        .unwrap()
        .collect();
    assert!(
        left.is_empty(),
        "the work directory was not cleaned up: {left:?}"
    );
    let rss = std::fs::read_to_string(tmp.path().join("rss")).unwrap();
    let kb: u64 = rss
        .lines()
        .find_map(|l| l.strip_prefix("maxrss_kb="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no maxrss in {rss}"));
    assert!(kb < 200 * 1024, "peak memory {kb} KiB for a 1 GiB context");
}

/// A request to a test server with curl; fails the test unless it succeeds.
fn http(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&Path>) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-f", "--max-time", "120", "-X", method]);
    // curl's default body type is a form, which moto's server tries to parse and never answers.
    if body.is_some()
        && !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        cmd.args(["-H", "Content-Type: application/octet-stream"]);
    }
    for (k, v) in headers {
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    if let Some(b) = body {
        cmd.arg("--data-binary").arg(format!("@{}", b.display()));
    }
    cmd.arg(url);
    ok(run(&mut cmd));
}

fn write_tmp(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}
