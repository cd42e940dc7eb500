//! Credentials that fetch a context never show: a working `GIT_TOKEN` (from the environment and
//! in the URL), a user's git password, a GCS service-account key (and the JWT and access token
//! made from it), an Azure storage key and an AWS secret key are searched for in the whole log
//! of a `--verbosity trace` build, in its error message when the credential is refused, in every
//! file left in the work directory, HOME and TMPDIR, and in the image: its config and history
//! (`skopeo inspect --config`) and every file of its unpacked root filesystem. The Dockerfile
//! copies the whole context (`.git` included) into the image, so a credential written into the
//! checkout would be found there.

use std::path::Path;

use base64::Engine as _;

use super::buckets::{azurite_with_context, AZ_ACCOUNT, AZ_KEY};
use super::*;
use crate::harness::servers::{self, publish_repo, GIT_BASIC_PASSWORD, GIT_BASIC_USER};

const COPY_ALL: &str = "FROM scratch\nCOPY . /ctx/\n";

fn files() -> Vec<(&'static str, &'static str)> {
    vec![("Dockerfile", COPY_ALL), ("app.txt", "app\n")]
}

/// Every file below `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                let bytes = std::fs::read(&p).unwrap_or_default();
                if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    found.push(p);
                }
            }
        }
    }
    found
}

/// Runs `gantry build --verbosity trace` of `context` with a private HOME, TMPDIR and work
/// directory, writing an OCI layout when `expect_ok`; asserts the outcome, then that no string
/// of `secrets` appears in the log, in those directories, or (after a success) in the image's
/// config, history and files. Returns the log.
fn build_keeps_secrets(
    tmp: &Path,
    name: &str,
    context: &str,
    envs: &[(&str, &str)],
    secrets: &[String],
    expect_ok: bool,
) -> String {
    let private = tmp.join(format!("private-{name}"));
    let (home, tmpdir, work) = (
        private.join("home"),
        private.join("tmp"),
        private.join("work"),
    );
    for d in [&home, &tmpdir, &work] {
        std::fs::create_dir_all(d).unwrap();
    }
    let layout = tmp.join(format!("layout-{name}"));
    let mut cmd = gantry(&home);
    cmd.env("TMPDIR", &tmpdir)
        .env("GANTRY_WORK_DIR", &work)
        .args(["build", "--context", context, "--verbosity", "trace"])
        .args([
            "--no-push",
            "--reproducible",
            "--destination",
            "localhost/secret:1",
        ])
        .arg("--oci-layout-path")
        .arg(&layout);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = run(&mut cmd);
    let log = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.success(), expect_ok, "{log}");
    assert!(
        log.contains("TRACE") && log.contains("DEBUG"),
        "trace verbosity logged nothing below info:\n{log}"
    );
    for s in secrets {
        assert!(
            !log.contains(s.as_str()),
            "`{s}` appears in the log:\n{log}"
        );
        let left = files_containing(&private, s);
        assert!(left.is_empty(), "`{s}` left behind in {left:?}");
    }
    if expect_ok {
        let config = ok(run(Command::new("skopeo")
            .args(["inspect", "--config"])
            .arg(format!("oci:{}:1", layout.display()))));
        assert!(config.contains("COPY . /ctx/"), "{config}");
        let rootfs = umoci_unpack(&layout, "1", &tmp.join(format!("bundle-{name}")));
        assert_eq!(
            std::fs::read_to_string(rootfs.join("ctx/app.txt")).unwrap(),
            "app\n"
        );
        for s in secrets {
            assert!(
                !config.contains(s.as_str()),
                "`{s}` in the image config:\n{config}"
            );
            let found = files_containing(&rootfs, s);
            assert!(found.is_empty(), "`{s}` in the image's files {found:?}");
        }
    }
    log
}

/// A Basic `Authorization` value, which must not show either.
fn basic(user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

#[test]
fn git_tokens_and_passwords_never_leak_at_trace_verbosity() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let root = t.join("git-root");
    let token = "ghp_gantryTestToken0123456789abcdefXYZ";
    for repo in ["private", "basic"] {
        publish_repo(
            &t.join(format!("w-{repo}")),
            &root.join(format!("{repo}/app.git")),
            &files(),
        );
    }
    let (server, ca) = servers::git_server(t, &root, token);
    let ca = ca.display().to_string();
    let ssl = ("SSL_CERT_FILE", ca.as_str());
    let private = format!("git://{}/private/app.git", server.addr());
    let token_secrets = [token.to_string(), basic(token, "")];

    let log = build_keeps_secrets(
        t,
        "env",
        &private,
        &[ssl, ("GIT_TOKEN", token)],
        &token_secrets,
        true,
    );
    assert!(log.contains("checked out the git context"), "{log}");
    let in_url = format!("git://{token}@{}/private/app.git", server.addr());
    build_keeps_secrets(t, "url", &in_url, &[ssl], &token_secrets, true);
    let wrong = "ghp_gantryWrongToken0123456789abcdefXYZ";
    let log = build_keeps_secrets(
        t,
        "wrong",
        &private,
        &[ssl, ("GIT_TOKEN", wrong)],
        &[wrong.to_string(), basic(wrong, "")],
        false,
    );
    assert!(log.contains("authentication failed"), "{log}");

    let userpass = format!("git://{}/basic/app.git", server.addr());
    let secrets = [
        GIT_BASIC_PASSWORD.to_string(),
        basic(GIT_BASIC_USER, GIT_BASIC_PASSWORD),
    ];
    build_keeps_secrets(
        t,
        "userpass",
        &userpass,
        &[
            ssl,
            ("GIT_USERNAME", GIT_BASIC_USER),
            ("GIT_PASSWORD", GIT_BASIC_PASSWORD),
        ],
        &secrets,
        true,
    );
}

/// A gzip tar of [`files`].
fn archive(tmp: &Path) -> PathBuf {
    let dir = tmp.join("secret-ctx");
    write_files(&dir, &files());
    let archive = tmp.join("secret-ctx.tar.gz");
    tar_gz(&dir, &archive);
    archive
}

#[test]
fn bucket_keys_never_leak_at_trace_verbosity() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let archive = archive(t);

    // GCS: the private key (each line of its base64 body), the JWT made with it and the
    // access token it was exchanged for.
    let gcs = servers::gcs_emulator(t);
    let ep = format!("http://{}", gcs.addr());
    http(
        "POST",
        &format!("{ep}/storage/v1/b?project=test"),
        &[("content-type", "application/json")],
        Some(&write_tmp(t, "bucket.json", r#"{"name":"b"}"#)),
    );
    http(
        "POST",
        &format!("{ep}/upload/storage/v1/b/b/o?uploadType=media&name=ctx.tar.gz"),
        &[("content-type", "application/gzip")],
        Some(&archive),
    );
    let account = servers::gcs_auth_front(t, &gcs.addr());
    let mut secrets: Vec<String> = account
        .private_key_pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 40)
        .map(str::to_string)
        .collect();
    assert!(secrets.len() > 10, "{secrets:?}");
    secrets.push("ya29.gantry-test-".into());
    secrets.push("eyJhbGciOiJSUzI1NiIs".into());
    let front = account.server.addr();
    let key_file = account.key_file.display().to_string();
    let gcs_env = [
        ("STORAGE_EMULATOR_HOST", front.as_str()),
        ("GOOGLE_APPLICATION_CREDENTIALS", key_file.as_str()),
    ];
    build_keeps_secrets(t, "gcs", "gs://b/ctx.tar.gz", &gcs_env, &secrets, true);
    assert!(account.server.log().contains("with an issued bearer token"));

    // Azure: the account key, used and refused.
    let (_az, ep) = azurite_with_context(t, &archive);
    let conn = format!("BlobEndpoint={ep};AccountName={AZ_ACCOUNT}");
    let url = format!("https://{AZ_ACCOUNT}.blob.core.windows.net/ctx/builds/ctx.tar.gz");
    let az_env = [
        ("AZURE_STORAGE_CONNECTION_STRING", conn.as_str()),
        ("AZURE_STORAGE_ACCESS_KEY", AZ_KEY),
    ];
    build_keeps_secrets(t, "azure", &url, &az_env, &[AZ_KEY.to_string()], true);
    let wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk=";
    let log = build_keeps_secrets(
        t,
        "azure-wrong",
        &url,
        &[az_env[0], ("AZURE_STORAGE_ACCESS_KEY", wrong)],
        &[wrong.to_string(), AZ_KEY.to_string()],
        false,
    );
    assert!(
        log.contains("access denied (the server answered 403"),
        "{log}"
    );

    // S3: a secret key that moto's signature check really uses.
    let moto = servers::moto(t);
    let ep = format!("http://{}", moto.addr());
    http("PUT", &format!("{ep}/ctx-bucket"), &[], None);
    http(
        "PUT",
        &format!("{ep}/ctx-bucket/ctx.tar.gz"),
        &[],
        Some(&archive),
    );
    let (id, secret) = servers::moto_iam_user(&moto);
    servers::moto_enforce_auth(&moto);
    let s3_env = [
        ("AWS_ACCESS_KEY_ID", id.as_str()),
        ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("S3_ENDPOINT", ep.as_str()),
        ("S3_FORCE_PATH_STYLE", "true"),
    ];
    build_keeps_secrets(
        t,
        "s3",
        "s3://ctx-bucket/ctx.tar.gz",
        &s3_env,
        std::slice::from_ref(&secret),
        true,
    );
}
