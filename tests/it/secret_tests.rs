//! Secrets stay secret, and TLS is on by default.
//!
//! Registry passwords, the `auth` value of config.json, Bearer tokens and build-arg values named
//! like secrets must not appear in logs at any verbosity (`--verbosity trace` here), in error
//! messages, in the image config or history, or in any file gantry leaves behind (its TMPDIR and
//! HOME are private to the test and grepped after the build). A registry with a certificate from
//! an unknown CA is refused with a message naming `--registry-certificate` and
//! `--skip-tls-verify-registry`; one that speaks plain HTTP without being marked insecure is
//! refused naming `--insecure-registry`, `--insecure` and `--insecure-pull`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;

use crate::build_tests::push_busybox;
use crate::harness::registry::{TestRegistry, PASSWORD, USERNAME};
use crate::harness::*;

const BUILD_SECRET: &str = "bA9-very-secret-build-arg-value";
const AWS_SECRET: &str = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY";

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
                if let Ok(bytes) = std::fs::read(&p) {
                    if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                        found.push(p);
                    }
                }
            }
        }
    }
    found
}

/// The secrets of one build: what must never show up.
fn secrets(extra: &[&str]) -> Vec<String> {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USERNAME}:{PASSWORD}"));
    let mut s = vec![
        PASSWORD.to_string(),
        basic,
        BUILD_SECRET.to_string(),
        AWS_SECRET.to_string(),
    ];
    s.extend(extra.iter().map(|e| e.to_string()));
    s
}

fn assert_nowhere(what: &str, text: &str, secrets: &[String]) {
    for s in secrets {
        assert!(
            !text.contains(s.as_str()),
            "`{s}` appears in {what}:\n{text}"
        );
    }
}

/// Builds against `reg` (docker config with its credentials, private HOME and TMPDIR) at trace
/// verbosity with secret-looking build args; returns the output and the private directory.
fn build_with_secrets(
    reg: &TestRegistry,
    tmp: &Path,
    df: &str,
    extra: &[&str],
) -> (Output, PathBuf) {
    let private = tmp.join("private");
    let (home, tmpdir, ctx) = (
        private.join("home"),
        private.join("tmp"),
        private.join("ctx"),
    );
    for d in [&home, &tmpdir, &ctx] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(ctx.join("Dockerfile"), df).unwrap();
    std::fs::write(ctx.join("app.txt"), "app").unwrap();
    let mut cmd = gantry(&home);
    cmd.env("DOCKER_CONFIG", reg.docker_config_dir())
        .env("TMPDIR", &tmpdir)
        .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
        .arg("build")
        .arg("--context")
        .arg(&ctx)
        .args(["--verbosity", "trace"])
        .args(["--build-arg", &format!("API_TOKEN={BUILD_SECRET}")])
        .args([
            "--build-arg",
            &format!("AWS_SECRET_ACCESS_KEY={AWS_SECRET}"),
        ])
        .args(extra);
    if let Some(ca) = &reg.ca_pem {
        cmd.arg("--registry-certificate")
            .arg(format!("{}={}", reg.addr, ca.display()));
    } else {
        cmd.args(["--insecure-registry", &reg.addr]);
    }
    (run(&mut cmd), private)
}

fn check_build_leaves_no_secret(reg: TestRegistry) {
    let tmp = tempfile::tempdir().unwrap();
    let base = push_busybox_to(&reg);
    let dest = format!("{}/app/secret:1", reg.addr);
    // The RUN checks the value arrived by its length, so the Dockerfile itself holds no secret.
    let run_step = if is_root() {
        format!(
            "RUN test \"${{#API_TOKEN}}\" = {} && echo ok > /ran\n",
            BUILD_SECRET.len()
        )
    } else {
        String::new()
    };
    let df = format!(
        "FROM {base}\nARG API_TOKEN\nARG AWS_SECRET_ACCESS_KEY\nCOPY app.txt /app.txt\n{run_step}"
    );
    let (out, private) = build_with_secrets(&reg, tmp.path(), &df, &["--destination", &dest]);
    let log = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "build failed:\n{log}");
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "trace verbosity logged nothing below info:\n{log}"
    );
    let secrets = secrets(&[]);
    assert_nowhere("the trace log", &log, &secrets);
    // JWTs start with a base64 `{"` header: `eyJ`. No token may reach the log.
    assert!(!log.contains("eyJ"), "a token appears in the log:\n{log}");
    for s in &secrets {
        let left = files_containing(&private, s);
        assert!(left.is_empty(), "`{s}` left behind in {left:?}");
    }
    let mut creds = Vec::new();
    if let (Some(u), Some(p)) = (&reg.username, &reg.password) {
        creds.push(format!("--creds={u}:{p}"));
    }
    creds.push("--tls-verify=false".into());
    let creds: Vec<&str> = creds.iter().map(String::as_str).collect();
    let config = skopeo_raw_config(&dest, &creds);
    assert_nowhere("the image config", &config, &secrets);
    assert!(config.contains("COPY app.txt"), "{config}");
}

fn skopeo_raw_config(image: &str, extra: &[&str]) -> String {
    let out = run(std::process::Command::new("skopeo")
        .args(["inspect", "--config", "--raw"])
        .args(extra)
        .arg(format!("docker://{image}")));
    String::from_utf8_lossy(&ok(out).into_bytes()).into_owned()
}

fn push_busybox_to(reg: &TestRegistry) -> String {
    if reg.username.is_none() {
        return push_busybox(reg);
    }
    let image = format!("{}/base/busybox:latest", reg.addr);
    crate::harness::fixtures::push(
        &crate::harness::fixtures::busybox(),
        "latest",
        &image,
        reg.username.as_deref().zip(reg.password.as_deref()),
        None,
    );
    image
}

#[test]
fn basic_auth_password_and_secret_build_args_never_leak() {
    check_build_leaves_no_secret(TestRegistry::tls_basic());
}

#[test]
fn bearer_tokens_and_secret_build_args_never_leak() {
    check_build_leaves_no_secret(TestRegistry::token());
}

#[test]
fn a_wrong_password_is_not_repeated_in_the_error() {
    let reg = TestRegistry::tls_basic();
    let tmp = tempfile::tempdir().unwrap();
    let wrong = "wrong-Pa55-do-not-print";
    let docker = tmp.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USERNAME}:{wrong}"));
    std::fs::write(
        docker.join("config.json"),
        serde_json::json!({"auths": {reg.addr.clone(): {"auth": auth.clone()}}}).to_string(),
    )
    .unwrap();
    let ctx = tmp.path().join("ctx");
    write_files(&ctx, &[("Dockerfile", "FROM scratch\nCOPY Dockerfile /\n")]);
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let out = run(gantry(&home)
        .env("DOCKER_CONFIG", &docker)
        .arg("build")
        .arg("--context")
        .arg(&ctx)
        .args(["--verbosity", "trace"])
        .args(["--destination", &format!("{}/app/x:1", reg.addr)])
        .arg("--registry-certificate")
        .arg(format!(
            "{}={}",
            reg.addr,
            reg.ca_pem.as_ref().unwrap().display()
        )));
    let err = fails(out);
    assert!(err.contains("401"), "{err}");
    assert_nowhere(
        "the error output",
        &err,
        &[wrong.to_string(), auth, PASSWORD.to_string()],
    );
}

#[test]
fn unknown_certificate_is_refused_naming_both_flags() {
    let reg = TestRegistry::tls_basic();
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    write_files(&ctx, &[("Dockerfile", "FROM scratch\nCOPY Dockerfile /\n")]);
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let dest = format!("{}/app/tls:1", reg.addr);
    let out = run(gantry(&home)
        .env("DOCKER_CONFIG", reg.docker_config_dir())
        .arg("build")
        .arg("--context")
        .arg(&ctx)
        .args(["--destination", &dest]));
    let err = fails(out);
    assert!(err.contains(&format!("`{}`", reg.addr)), "{err}");
    assert!(err.contains("--registry-certificate"), "{err}");
    assert!(err.contains("--skip-tls-verify-registry"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // With the CA named, the same build pushes.
    let out = run(gantry(&home)
        .env("DOCKER_CONFIG", reg.docker_config_dir())
        .arg("build")
        .arg("--context")
        .arg(&ctx)
        .args(["--destination", &dest])
        .arg("--registry-certificate")
        .arg(format!(
            "{}={}",
            reg.addr,
            reg.ca_pem.as_ref().unwrap().display()
        )));
    let digest = ok(out);
    assert!(digest.trim().starts_with("sha256:"), "{digest}");
}

/// `gantry build` in `home` with a COPY-only context, pushing to `dest`, with `flags`.
fn build_to(home: &Path, ctx: &Path, dockerfile: &str, dest: &str, flags: &[&str]) -> Output {
    write_files(ctx, &[("Dockerfile", dockerfile)]);
    run(gantry(home)
        .arg("build")
        .arg("--context")
        .arg(ctx)
        .args(["--destination", dest])
        .args(flags))
}

/// The one `error:` of a failed run, with what follows it.
#[track_caller]
fn one_error(out: Output) -> String {
    let all = fails(out);
    assert!(!all.contains("panicked"), "{all}");
    let errors = all.lines().filter(|l| l.starts_with("error:")).count();
    assert_eq!(errors, 1, "not exactly one error message:\n{all}");
    all[all.find("error:").unwrap()..].to_string()
}

#[test]
fn plain_http_registry_not_marked_insecure_is_refused_naming_the_flags() {
    let reg = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let (ctx, home) = (tmp.path().join("ctx"), tmp.path().join("home"));
    let dest = format!("{}/app/plain:v1", reg.addr);
    let copy_only = "FROM scratch\nCOPY Dockerfile /\n";
    // gantry speaks HTTPS to a registry nobody marked insecure, and says what to do about it.
    let err = one_error(build_to(&home, &ctx, copy_only, &dest, &["--push-retry=2"]));
    assert!(
        err.contains(&format!(
            "registry `{}` answered in plain HTTP when gantry asked over HTTPS to push to \
             `app/plain`",
            reg.addr
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("hint: gantry uses HTTPS unless told otherwise; for a registry without TLS pass --insecure-registry={}", reg.addr))
            && err.contains("--insecure for every push"),
        "{err}"
    );
    let listed = run(Command::new("skopeo").args([
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{}/app/plain", reg.addr),
    ]));
    assert!(
        !listed.status.success(),
        "the refused push left tags: {}",
        stdout(&listed)
    );

    // Marked insecure, the same push goes through, and skopeo sees what gantry reported.
    let digest = ok(build_to(
        &home,
        &ctx,
        copy_only,
        &dest,
        &["--insecure-registry", &reg.addr],
    ));
    let raw = skopeo_raw(&format!("docker://{dest}"), &["--tls-verify=false"]);
    assert_eq!(gantry::image::sha256_digest(&raw), digest.trim());

    // Pulls are their own direction: `--insecure` covers pushes only, so the base image is
    // still asked for over HTTPS and refused, naming `--insecure-pull`.
    let from_plain = format!("FROM {dest}\nCOPY Dockerfile /again\n");
    let dest2 = format!("{}/app/plain:v2", reg.addr);
    let err = one_error(build_to(&home, &ctx, &from_plain, &dest2, &["--insecure"]));
    assert!(
        err.contains(&format!(
            "registry `{}` answered in plain HTTP when gantry asked over HTTPS to pull manifest \
             `app/plain`",
            reg.addr
        )) && err.contains("--insecure-pull"),
        "{err}"
    );
    let digest2 = ok(build_to(
        &home,
        &ctx,
        &from_plain,
        &dest2,
        &["--insecure", "--insecure-pull"],
    ));
    let raw = skopeo_raw(&format!("docker://{dest2}"), &["--tls-verify=false"]);
    assert_eq!(gantry::image::sha256_digest(&raw), digest2.trim());
}
