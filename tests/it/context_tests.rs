//! Build contexts from every source kaniko reads, against real servers on 127.0.0.1. Each source
//! builds the same Dockerfile to the same image digest as the directory it was made from.

use std::io::{Read as _, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::harness::servers::{self, git, publish_repo, tar_gz};
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

/// Builds with `--context <context>` plus `extra` args and env; returns (output, digest file).
fn build(
    tmp: &Path,
    name: &str,
    context: &str,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> std::process::Output {
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
    let out = run(&mut cmd);
    let left: Vec<_> = std::fs::read_dir(&work).unwrap().collect();
    assert!(
        left.is_empty(),
        "the work directory was not cleaned up: {left:?}"
    );
    out
}

fn digest_of(out: std::process::Output) -> String {
    let d = ok(out).trim().to_string();
    assert!(d.starts_with("sha256:") && d.len() == 71, "{d}");
    d
}

/// The directory context the other sources are compared with.
fn reference(tmp: &Path) -> (PathBuf, String) {
    let dir = tmp.join("ctxdir");
    write_files(&dir, &context_files());
    let d = digest_of(build(
        tmp,
        "dir",
        &format!("dir://{}", dir.display()),
        &[],
        &[],
    ));
    (dir, d)
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

    let mut child = gantry(tmp.path())
        .current_dir(tmp.path())
        .env("GANTRY_WORK_DIR", tmp.path().join("work-tar"))
        .args([
            "build",
            "--context",
            "tar://stdin",
            "--no-push",
            "--reproducible",
            "--destination",
            "localhost/ctx:1",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&std::fs::read(&archive).unwrap())
        .unwrap();
    let got = digest_of(child.wait_with_output().unwrap());
    assert_eq!(got, want);

    // --context-sub-path applies inside the archive.
    let sub_dir = digest_of(build(
        tmp.path(),
        "dir",
        &dir.display().to_string(),
        &["--context-sub-path", "other"],
        &[],
    ));
    let sub_tar = digest_of(build(
        tmp.path(),
        "tar",
        &format!("tar://{}", archive.display()),
        &["--context-sub-path", "other"],
        &[],
    ));
    assert_eq!(sub_tar, sub_dir);
    assert_ne!(sub_tar, want);
}

#[test]
fn bad_archives_are_named_and_leave_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = build(tmp.path(), "bad", "tar://nothere.tar.gz", &[], &[]);
    let e = fails(missing);
    assert!(
        e.contains("context `tar://nothere.tar.gz`: cannot open the archive `nothere.tar.gz`"),
        "{e}"
    );

    let plain = tmp.path().join("plain.tar");
    let src = tmp.path().join("src");
    write_files(&src, &context_files());
    ok(run(Command::new("tar")
        .arg("-C")
        .arg(&src)
        .arg("-cf")
        .arg(&plain)
        .arg(".")));
    let e = fails(build(
        tmp.path(),
        "bad",
        &format!("tar://{}", plain.display()),
        &[],
        &[],
    ));
    assert!(e.contains("the archive is not gzip-compressed"), "{e}");

    let cut = tmp.path().join("cut.tar.gz");
    tar_gz(&src, &cut);
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = fails(build(
        tmp.path(),
        "bad",
        &format!("tar://{}", cut.display()),
        &[],
        &[],
    ));
    assert!(e.contains("is corrupt or truncated"), "{e}");

    // An entry escaping the context, made with GNU tar's --transform.
    let evil = tmp.path().join("evil.tar.gz");
    ok(run(Command::new("tar")
        .arg("-C")
        .arg(&src)
        .args(["--transform", "s,^./app,../../escaped,", "-czf"])
        .arg(&evil)
        .arg(".")));
    let e = fails(build(
        tmp.path(),
        "bad",
        &format!("tar://{}", evil.display()),
        &[],
        &[],
    ));
    assert!(e.contains("archive entry `../../escaped"), "{e}");
    assert!(
        e.contains("is refused: its path contains a `..` component"),
        "{e}"
    );
    assert!(!tmp.path().join("escaped").exists());
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
    let rss = std::fs::read_to_string(tmp.path().join("rss")).unwrap();
    let kb: u64 = rss
        .lines()
        .find_map(|l| l.strip_prefix("maxrss_kb="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no maxrss in {rss}"));
    assert!(kb < 200 * 1024, "peak memory {kb} KiB for a 1 GiB context");
}

/// The git repositories the git tests clone: a public one, the same under `/private/` (token),
/// and a superproject with a submodule.
struct GitFixture {
    _server: servers::Server,
    ca: PathBuf,
    addr: String,
    commit: String,
    dir: PathBuf,
    want: String,
}

fn git_fixture(tmp: &Path) -> GitFixture {
    let (dir, want) = reference(tmp);
    let root = tmp.join("git-root");
    let commit = publish_repo(
        &tmp.join("w-app"),
        &root.join("public/app.git"),
        &context_files(),
    );
    git(&root.join("public/app.git"), &["branch", "feature", "HEAD"]);
    publish_repo(
        &tmp.join("w-priv"),
        &root.join("private/app.git"),
        &context_files(),
    );
    let (server, ca) = servers::git_server(tmp, &root, "s3cret-token");
    let addr = server.addr();
    GitFixture {
        _server: server,
        ca,
        addr,
        commit,
        dir,
        want,
    }
}

#[test]
fn git_contexts_clone_over_tls_by_ref_commit_and_token() {
    let tmp = tempfile::tempdir().unwrap();
    let f = git_fixture(tmp.path());
    let ca = f.ca.display().to_string();
    let env = [("SSL_CERT_FILE", ca.as_str())];
    let url = format!("git://{}/public/app.git", f.addr);
    assert_eq!(digest_of(build(tmp.path(), "git", &url, &[], &env)), f.want);
    let by_ref = format!("{url}#refs/heads/feature#{}", f.commit);
    assert_eq!(
        digest_of(build(tmp.path(), "git", &by_ref, &[], &env)),
        f.want
    );
    assert_eq!(
        digest_of(build(
            tmp.path(),
            "git",
            &url,
            &["--git", "branch=feature,single-branch=true"],
            &env
        )),
        f.want
    );

    let private = format!("git://{}/private/app.git", f.addr);
    let e = fails(build(tmp.path(), "git", &private, &[], &env));
    assert!(
        e.contains(&format!("context `{private}`: authentication failed")),
        "{e}"
    );
    let e = fails(build(
        tmp.path(),
        "git",
        &private,
        &[],
        &[env[0], ("GIT_TOKEN", "wrong")],
    ));
    assert!(e.contains("authentication failed"), "{e}");
    assert!(!e.contains("wrong"), "{e}");
    let token_env = [env[0], ("GIT_TOKEN", "s3cret-token")];
    assert_eq!(
        digest_of(build(tmp.path(), "git", &private, &[], &token_env)),
        f.want
    );
    let in_url = format!("git://s3cret-token@{}/private/app.git", f.addr);
    assert_eq!(
        digest_of(build(tmp.path(), "git", &in_url, &[], &env)),
        f.want
    );

    // Without the CA the certificate is refused, unless insecure-skip-tls.
    let e = fails(build(tmp.path(), "git", &url, &[], &[]));
    assert!(e.contains(&format!("context `{url}`: cannot reach")), "{e}");
    assert_eq!(
        digest_of(build(
            tmp.path(),
            "git",
            &url,
            &["--git", "insecure-skip-tls=true"],
            &[]
        )),
        f.want
    );
    let _ = &f.dir;
}

#[test]
fn git_bad_refs_and_commits_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let f = git_fixture(tmp.path());
    let ca = f.ca.display().to_string();
    let env = [("SSL_CERT_FILE", ca.as_str())];
    let url = format!("git://{}/public/app.git", f.addr);
    let e = fails(build(
        tmp.path(),
        "git",
        &format!("{url}#refs/heads/nope"),
        &[],
        &env,
    ));
    assert!(
        e.contains(&format!("context `{url}#refs/heads/nope`")),
        "{e}"
    );
    let bad_commit = "0123456789012345678901234567890123456789";
    let e = fails(build(
        tmp.path(),
        "git",
        &format!("{url}#refs/heads/main#{bad_commit}"),
        &[],
        &env,
    ));
    assert!(
        e.contains(&format!("commit `{bad_commit}` does not exist")),
        "{e}"
    );
    let e = fails(build(
        tmp.path(),
        "git",
        &format!("git://{}/public/none.git", f.addr),
        &[],
        &env,
    ));
    assert!(e.contains("context `git://"), "{e}");
}

#[test]
fn git_submodules_are_checked_out_with_recurse_submodules() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("git-root");
    let (server, ca) = servers::git_server(tmp.path(), &root, "unused");
    publish_repo(
        &tmp.path().join("w-lib"),
        &root.join("public/lib.git"),
        &[("lib.txt", "from the submodule\n")],
    );
    let sup = tmp.path().join("w-super");
    std::fs::create_dir_all(&sup).unwrap();
    git(&sup, &["init", "-q"]);
    write_files(&sup, &[("Dockerfile", "FROM scratch\nCOPY lib/ /lib/\n")]);
    git(
        &sup,
        &[
            "submodule",
            "add",
            "-q",
            &root.join("public/lib.git").display().to_string(),
            "lib",
        ],
    );
    git(
        &sup,
        &[
            "config",
            "-f",
            ".gitmodules",
            "submodule.lib.url",
            &format!("https://{}/public/lib.git", server.addr()),
        ],
    );
    git(&sup, &["add", "-A"]);
    git(&sup, &["commit", "-q", "-m", "super"]);
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            "--bare",
            &sup.display().to_string(),
            &root.join("public/super.git").display().to_string(),
        ],
    );

    let ca = ca.display().to_string();
    let env = [("SSL_CERT_FILE", ca.as_str())];
    let url = format!("git://{}/public/super.git", server.addr());
    let layout = tmp.path().join("layout");
    let layout_arg = layout.display().to_string();
    ok(build(
        tmp.path(),
        "sub",
        &url,
        &[
            "--git",
            "recurse-submodules=true",
            "--oci-layout-path",
            &layout_arg,
        ],
        &env,
    ));
    let rootfs = umoci_unpack(&layout, "1", &tmp.path().join("bundle"));
    assert_eq!(
        std::fs::read_to_string(rootfs.join("lib/lib.txt")).unwrap(),
        "from the submodule\n"
    );
    // Without recursion the submodule directory is empty, so the image differs.
    let with = digest_of(build(
        tmp.path(),
        "sub",
        &url,
        &["--git", "recurse-submodules=true"],
        &env,
    ));
    let without = digest_of(build(tmp.path(), "sub", &url, &[], &env));
    assert_ne!(with, without);
}

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

#[test]
fn s3_context_from_moto_builds_the_directory_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, want) = reference(tmp.path());
    let archive = tmp.path().join("ctx.tar.gz");
    tar_gz(&dir, &archive);
    let moto = servers::moto(tmp.path());
    let ep = format!("http://{}", moto.addr());
    http("PUT", &format!("{ep}/ctx-bucket"), &[], None);
    http(
        "PUT",
        &format!("{ep}/ctx-bucket/builds/ctx.tar.gz"),
        &[],
        Some(&archive),
    );
    let env = [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("S3_ENDPOINT", ep.as_str()),
        ("S3_FORCE_PATH_STYLE", "true"),
    ];
    assert_eq!(
        digest_of(build(
            tmp.path(),
            "s3",
            "s3://ctx-bucket/builds/ctx.tar.gz",
            &[],
            &env
        )),
        want
    );
    let sub = digest_of(build(
        tmp.path(),
        "s3",
        "s3://ctx-bucket/builds/ctx.tar.gz",
        &["--context-sub-path", "other"],
        &env,
    ));
    assert_ne!(sub, want);

    let e = fails(build(
        tmp.path(),
        "s3",
        "s3://ctx-bucket/none.tar.gz",
        &[],
        &env,
    ));
    assert!(
        e.contains("context `s3://ctx-bucket/none.tar.gz`: the object does not exist"),
        "{e}"
    );
    let e = fails(build(
        tmp.path(),
        "s3",
        "s3://no-bucket/ctx.tar.gz",
        &[],
        &env,
    ));
    assert!(
        e.contains("context `s3://no-bucket/ctx.tar.gz`: the bucket does not exist"),
        "{e}"
    );
    let e = fails(build(
        tmp.path(),
        "s3",
        "s3://b/k.tar.gz",
        &[],
        &[("AWS_REGION", "us-east-1")],
    ));
    assert!(e.contains("no AWS credentials found"), "{e}");
    let unreachable = [
        env[0],
        env[1],
        env[2],
        ("S3_ENDPOINT", "http://127.0.0.1:9"),
        env[4],
    ];
    let e = fails(build(
        tmp.path(),
        "s3",
        "s3://b/k.tar.gz",
        &[],
        &unreachable,
    ));
    assert!(e.contains("cannot reach `http://127.0.0.1:9`"), "{e}");
}

#[test]
fn gcs_context_from_the_emulator_builds_the_directory_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, want) = reference(tmp.path());
    let archive = tmp.path().join("ctx.tar.gz");
    tar_gz(&dir, &archive);
    let gcs = servers::gcs_emulator(tmp.path());
    let ep = format!("http://{}", gcs.addr());
    http(
        "POST",
        &format!("{ep}/storage/v1/b?project=test"),
        &[("content-type", "application/json")],
        Some(&write_tmp(
            tmp.path(),
            "bucket.json",
            r#"{"name":"ctx-bucket"}"#,
        )),
    );
    http(
        "POST",
        &format!("{ep}/upload/storage/v1/b/ctx-bucket/o?uploadType=media&name=builds/ctx.tar.gz"),
        &[("content-type", "application/gzip")],
        Some(&archive),
    );
    let env = [("STORAGE_EMULATOR_HOST", gcs.addr())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        digest_of(build(
            tmp.path(),
            "gcs",
            "gs://ctx-bucket/builds/ctx.tar.gz",
            &[],
            &env
        )),
        want
    );
    let e = fails(build(
        tmp.path(),
        "gcs",
        "gs://ctx-bucket/none.tar.gz",
        &[],
        &env,
    ));
    assert!(
        e.contains("context `gs://ctx-bucket/none.tar.gz`: the object does not exist"),
        "{e}"
    );
    let creds = write_tmp(tmp.path(), "sa.json", "{\"type\":\"service_account\",\"client_email\":\"a@b\",\"private_key\":\"-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----\\n\"}");
    let creds = creds.display().to_string();
    let mut bad = env.clone();
    bad.push(("GOOGLE_APPLICATION_CREDENTIALS", &creds));
    let e = fails(build(
        tmp.path(),
        "gcs",
        "gs://ctx-bucket/builds/ctx.tar.gz",
        &[],
        &bad,
    ));
    assert!(e.contains("not a PKCS#8 RSA key"), "{e}");
}

/// Azurite's documented development account and key.
const AZ_ACCOUNT: &str = "devstoreaccount1";
const AZ_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A SharedKey-signed PUT to Azurite (which checks the signature); `resource` is the canonical
/// resource after the account, with any query parameters on their own lines.
fn azurite_put(url: &str, resource: &str, body: Option<&Path>) {
    use gantry::context::source::azure::{ms_date, shared_key};
    let date = ms_date();
    let len = body
        .map(|b| std::fs::metadata(b).unwrap().len().to_string())
        .unwrap_or_default();
    let (blob_type, ctype) = if body.is_some() {
        ("BlockBlob", "application/octet-stream")
    } else {
        ("", "")
    };
    let mut ms = vec![("x-ms-date", date.as_str()), ("x-ms-version", "2021-08-06")];
    if !blob_type.is_empty() {
        ms.push(("x-ms-blob-type", blob_type));
    }
    let auth = shared_key("PUT", AZ_ACCOUNT, AZ_KEY, resource, &ms, &len, ctype).unwrap();
    let mut headers: Vec<(&str, &str)> = ms.clone();
    headers.push(("Authorization", &auth));
    if body.is_some() {
        headers.push(("Content-Type", ctype));
    } else {
        headers.push(("Content-Length", "0"));
    }
    http("PUT", url, &headers, body);
}

#[test]
fn azure_context_from_azurite_builds_the_directory_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, want) = reference(tmp.path());
    let archive = tmp.path().join("ctx.tar.gz");
    tar_gz(&dir, &archive);
    let az = servers::azurite(tmp.path());
    let ep = format!("http://{}/{AZ_ACCOUNT}", az.addr());
    azurite_put(
        &format!("{ep}/ctx?restype=container"),
        &format!("/{AZ_ACCOUNT}/ctx\nrestype:container"),
        None,
    );
    azurite_put(
        &format!("{ep}/ctx/builds/ctx.tar.gz"),
        &format!("/{AZ_ACCOUNT}/ctx/builds/ctx.tar.gz"),
        Some(&archive),
    );
    let conn = format!(
        "DefaultEndpointsProtocol=http;AccountName={AZ_ACCOUNT};AccountKey={AZ_KEY};BlobEndpoint={ep};"
    );
    let env = [("AZURE_STORAGE_CONNECTION_STRING", conn.as_str())];
    let url = format!("https://{AZ_ACCOUNT}.blob.core.windows.net/ctx/builds/ctx.tar.gz");
    assert_eq!(digest_of(build(tmp.path(), "azure", &url, &[], &env)), want);

    let missing = format!("https://{AZ_ACCOUNT}.blob.core.windows.net/ctx/none.tar.gz");
    let e = fails(build(tmp.path(), "azure", &missing, &[], &env));
    assert!(e.contains(&format!("context `{missing}`")), "{e}");
    assert!(e.contains("does not exist"), "{e}");

    // A wrong key is refused by Azurite's signature check, and the error says what to fix.
    let wrong = conn.replace(AZ_KEY, "d3Jvbmcta2V5LXdyb25nLWtleQ==");
    let e = fails(build(
        tmp.path(),
        "azure",
        &url,
        &[],
        &[("AZURE_STORAGE_CONNECTION_STRING", wrong.as_str())],
    ));
    assert!(e.contains("AZURE_STORAGE_ACCESS_KEY"), "{e}");
    assert!(!e.contains(AZ_KEY), "{e}");
}

fn write_tmp(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}
