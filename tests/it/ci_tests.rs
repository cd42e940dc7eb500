//! `gantry tags` and `gantry ci build` run as a CI job would run them: the binary with a cleared
//! environment holding only the variables the case needs, and payloads from `tests/fixtures/ci/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::registry::TestRegistry;
use crate::harness::*;

const SHA: &str = "860c1904a1ce19322e91ac35af1ab07466440c37";
const EPOCH: &str = "1578616200"; // 2020-01-10T00:30:00Z

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ci")
        .join(name)
}

/// The gantry binary with nothing in its environment but PATH, HOME and `vars`, run in `dir`.
fn ci(dir: &Path, vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(gantry_bin());
    cmd.env_clear()
        .current_dir(dir)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("NO_COLOR", "1");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

fn github_push(payload: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("GITHUB_ACTIONS", "true".into()),
        ("GITHUB_EVENT_NAME", "push".into()),
        ("GITHUB_REF", "refs/heads/master".into()),
        ("GITHUB_SHA", SHA.into()),
        ("GITHUB_REPOSITORY", "octocat/Hello-World".into()),
        ("GITHUB_EVENT_PATH", payload.display().to_string()),
        ("SOURCE_DATE_EPOCH", EPOCH.into()),
    ]
}

fn with<'a>(vars: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    vars.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[test]
fn github_push_json_has_tags_labels_from_the_payload() {
    let tmp = tempfile::tempdir().unwrap();
    let vars = github_push(&fixture("push.json"));
    let out = ok(run(ci(tmp.path(), &with(&vars))
        .args(["tags", "--image", "ghcr.io/Octocat/App", "--format", "json"])
        // One flag holding a newline-separated list, with a comment line.
        .args(["--tag", "type=ref,event=branch\n# short sha\ntype=sha"])
        .args(["--label", "org.opencontainers.image.vendor=ACME"])));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["tags"],
        serde_json::json!([
            "ghcr.io/octocat/app:master",
            "ghcr.io/octocat/app:sha-860c190"
        ])
    );
    assert_eq!(v["version"], "master");
    let l = &v["labels"];
    assert_eq!(
        l["org.opencontainers.image.created"],
        "2020-01-10T00:30:00.000Z"
    );
    assert_eq!(l["org.opencontainers.image.title"], "Hello-World");
    assert_eq!(
        l["org.opencontainers.image.description"],
        "This your first repo!"
    );
    assert_eq!(l["org.opencontainers.image.licenses"], "MIT");
    assert_eq!(
        l["org.opencontainers.image.source"],
        "https://github.com/octocat/Hello-World"
    );
    assert_eq!(l["org.opencontainers.image.revision"], SHA);
    assert_eq!(l["org.opencontainers.image.vendor"], "ACME");
    // Reproducible: the same run gives the same bytes.
    let again = ok(run(ci(tmp.path(), &with(&vars))
        .args(["tags", "--image", "ghcr.io/Octocat/App", "--format", "json"])
        .args(["--tag", "type=ref,event=branch\n# short sha\ntype=sha"])
        .args(["--label", "org.opencontainers.image.vendor=ACME"])));
    assert_eq!(out, again);
}

#[test]
fn github_format_appends_outputs_with_delimiters() {
    let tmp = tempfile::tempdir().unwrap();
    let output = tmp.path().join("github_output");
    std::fs::write(&output, "earlier=1\n").unwrap();
    let mut vars = github_push(&fixture("tag.json"));
    vars[2] = ("GITHUB_REF", "refs/tags/v1.1.1".into());
    vars.push(("GITHUB_OUTPUT", output.display().to_string()));
    let out = ok(run(ci(tmp.path(), &with(&vars))
        .args(["tags", "--image", "user/app", "--format", "github"])
        .args(["--tag", "type=semver,pattern={{version}}"])));
    assert_eq!(out, "");
    let text = std::fs::read_to_string(&output).unwrap();
    assert!(
        text.starts_with("earlier=1\nversion=1.1.1\ntags<<ghadelimiter_"),
        "{text}"
    );
    let delim = text
        .lines()
        .nth(2)
        .unwrap()
        .strip_prefix("tags<<")
        .unwrap()
        .to_string();
    assert!(
        text.contains(&format!(
            "tags<<{delim}\nuser/app:1.1.1\nuser/app:latest\n{delim}\n"
        )),
        "{text}"
    );
    assert!(
        text.contains("org.opencontainers.image.version=1.1.1\n"),
        "{text}"
    );
}

#[test]
fn gitlab_merge_request_lines_and_dotenv() {
    let tmp = tempfile::tempdir().unwrap();
    let vars = [
        ("GITLAB_CI", "true"),
        ("CI_PIPELINE_SOURCE", "merge_request_event"),
        ("CI_MERGE_REQUEST_IID", "7"),
        ("CI_COMMIT_REF_NAME", "feature/x"),
        ("CI_COMMIT_SHA", SHA),
        ("CI_DEFAULT_BRANCH", "main"),
    ];
    let out = ok(run(ci(tmp.path(), &vars)
        .args(["tags", "--image", "reg.example.com/g/app"])
        .args(["--tag", "type=ref,event=pr", "--tag", "type=sha"])));
    assert_eq!(
        out,
        "reg.example.com/g/app:mr-7\nreg.example.com/g/app:sha-860c1904\n"
    );
    let out = ok(run(ci(tmp.path(), &vars).args([
        "tags",
        "--image",
        "reg.example.com/g/app",
        "--format",
        "dotenv",
    ])));
    assert_eq!(
        out,
        "GANTRY_VERSION=mr-7\nGANTRY_TAGS=reg.example.com/g/app:mr-7\nGANTRY_TAG=reg.example.com/g/app:mr-7\n"
    );
}

#[test]
fn gitlab_default_branch_preset_and_fixed_tags_warn() {
    let tmp = tempfile::tempdir().unwrap();
    let vars = [
        ("GITLAB_CI", "true"),
        ("CI_PIPELINE_SOURCE", "push"),
        ("CI_COMMIT_BRANCH", "main"),
        ("CI_COMMIT_SHA", SHA),
        ("CI_DEFAULT_BRANCH", "main"),
    ];
    let out = ok(run(ci(tmp.path(), &vars).args([
        "tags",
        "--preset",
        "latest-tag-sha",
    ])));
    assert_eq!(out, "latest\n");
    let o = run(ci(tmp.path(), &vars).args(["tags", "--tag", "type=raw,value=-x"]));
    assert!(o.status.success());
    assert_eq!(stdout(&o), "x\n");
    assert!(
        stderr(&o).contains("tag `-x` changed to `x`: a tag may not start with `.` or `-`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_input_fails_with_one_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let gl = [("GITLAB_CI", "true"), ("CI_COMMIT_BRANCH", "main")];
    for (args, want) in [
        (
            vec!["--tag", "type=foo"],
            "invalid tag rule `type=foo`: unknown tag type `foo`",
        ),
        (
            vec!["--tag", "type=semver"],
            "`type=semver` needs a `pattern` attribute",
        ),
        (vec!["--tag", "type=ref"], "needs a `event` attribute"),
        (vec!["--tag", "type=sha,format=x"], "unknown format `x`"),
        (
            vec!["--tag", "type=match,pattern=x,group=a"],
            "`group=a` is not a number",
        ),
        (
            vec!["--flavor", "latest=maybe"],
            "invalid flavor rule `latest=maybe`",
        ),
        (vec!["--short-sha-length", "0"], "--short-sha-length is `0`"),
        (
            vec!["--tag", "type=raw,value={{brnach}}"],
            "unknown expression `{{brnach}}`",
        ),
    ] {
        let err = fails(run(ci(tmp.path(), &gl).arg("tags").args(&args)));
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(err.contains("hint:"), "{args:?}: {err}");
    }
    let err = fails(run(ci(tmp.path(), &[]).arg("tags")));
    assert!(
        err.contains("no CI pipeline found: GITHUB_ACTIONS and GITLAB_CI"),
        "{err}"
    );
    // With a rule, no CI is fine.
    let out = ok(run(ci(tmp.path(), &[]).args([
        "tags",
        "--tag",
        "type=raw,value=dev",
    ])));
    assert_eq!(out, "dev\n");
}

#[test]
fn local_git_checkout_without_ci() {
    let tmp = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        ok(run(Command::new("git")
            .current_dir(tmp.path())
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)))
    };
    git(&["init", "-q", "-b", "feature/local"]);
    git(&["commit", "-q", "--allow-empty", "-m", "x"]);
    let sha = git(&["rev-parse", "HEAD"]);
    let out = ok(run(ci(tmp.path(), &[]).args([
        "tags",
        "--tag",
        "type=ref,event=branch",
        "--tag",
        "type=sha",
    ])));
    assert_eq!(out, format!("feature-local\nsha-{}\n", &sha[..7]));
}

#[test]
fn ci_build_in_a_gitlab_tag_pipeline_pushes_tags_and_labels() {
    let reg = TestRegistry::tls_basic();
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    write_files(
        &ctx,
        &[("Dockerfile", "FROM scratch\nCOPY f /f\n"), ("f", "x")],
    );
    let image = format!("{}/group/app", reg.addr);
    let password = reg.password.clone().unwrap();
    let user = reg.username.clone().unwrap();
    let vars = [
        ("GITLAB_CI", "true"),
        ("CI", "true"),
        ("CI_PIPELINE_SOURCE", "push"),
        ("CI_COMMIT_TAG", "v1.2.3"),
        ("CI_COMMIT_REF_NAME", "v1.2.3"),
        ("CI_COMMIT_SHA", SHA),
        ("CI_DEFAULT_BRANCH", "main"),
        ("CI_PROJECT_URL", "https://gitlab.example.com/group/app"),
        ("CI_PROJECT_TITLE", "App"),
        ("CI_REGISTRY", reg.addr.as_str()),
        ("CI_REGISTRY_IMAGE", image.as_str()),
        ("CI_REGISTRY_USER", user.as_str()),
        ("CI_REGISTRY_PASSWORD", password.as_str()),
        ("SOURCE_DATE_EPOCH", EPOCH),
    ];
    let out = run(ci(tmp.path(), &vars)
        .args(["ci", "build", "--context"])
        .arg(&ctx)
        .args([
            "--tag",
            "type=semver,pattern={{version}}",
            "--tag",
            "type=semver,pattern={{major}}.{{minor}}",
        ])
        .args(["--label", "org.opencontainers.image.title=Custom"])
        .arg("--registry-certificate")
        .arg(format!(
            "{}={}",
            reg.addr,
            reg.ca_pem.as_ref().unwrap().display()
        )));
    let (so, se) = (stdout(&out), stderr(&out));
    assert!(
        !so.contains(&password) && !se.contains(&password),
        "secret in logs"
    );
    let digest = ok(out).trim().to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");
    assert!(
        se.contains("section_start:") && se.contains("section_end:"),
        "{se}"
    );
    let creds = format!("{user}:{password}");
    let extra = ["--tls-verify=false", "--creds", creds.as_str()];
    for tag in ["1.2.3", "1.2", "latest"] {
        let inspect = skopeo_inspect(&format!("docker://{image}:{tag}"), false, &extra);
        assert_eq!(inspect["Digest"], digest, "{tag}");
    }
    let cfg = skopeo_inspect(&format!("docker://{image}:1.2.3"), true, &extra);
    let labels = &cfg["config"]["Labels"];
    assert_eq!(labels["org.opencontainers.image.version"], "1.2.3");
    assert_eq!(labels["org.opencontainers.image.revision"], SHA);
    assert_eq!(
        labels["org.opencontainers.image.source"],
        "https://gitlab.example.com/group/app"
    );
    assert_eq!(
        labels["org.opencontainers.image.created"],
        "2020-01-10T00:30:00.000Z"
    );
    assert_eq!(labels["org.opencontainers.image.title"], "Custom");
    let dotenv = std::fs::read_to_string(tmp.path().join("gantry.env")).unwrap();
    assert_eq!(
        dotenv,
        format!(
            "GANTRY_VERSION=1.2.3\nGANTRY_TAGS={image}:1.2.3,{image}:1.2,{image}:latest\nGANTRY_TAG={image}:1.2.3\nGANTRY_DIGEST={digest}\n"
        )
    );
    // --per-arch pushes only `<main tag>-<arch><variant>`.
    let out = ok(run(ci(tmp.path(), &vars)
        .args([
            "ci",
            "build",
            "--per-arch",
            "--custom-platform",
            "linux/arm/v7",
            "--context",
        ])
        .arg(&ctx)
        .args(["--tag", "type=semver,pattern={{version}}"])
        .arg("--registry-certificate")
        .arg(format!(
            "{}={}",
            reg.addr,
            reg.ca_pem.as_ref().unwrap().display()
        ))));
    let inspect = skopeo_inspect(&format!("docker://{image}:1.2.3-armv7"), false, &extra);
    assert_eq!(inspect["Digest"], out.trim());
    assert_eq!(inspect["Architecture"], "arm");
    // A pipeline whose rules give no tag refuses to push.
    let err = fails(run(ci(tmp.path(), &vars)
        .args(["ci", "build", "--context"])
        .arg(&ctx)
        .args(["--tag", "type=ref,event=branch"])));
    assert!(err.contains("no tag was derived"), "{err}");
}

#[test]
fn ci_build_with_no_tag_pushes_by_digest_only_when_told() {
    let reg = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    write_files(
        &ctx,
        &[
            ("Dockerfile", "FROM scratch\nCOPY f /f\n"),
            ("f", "by digest"),
        ],
    );
    let image = format!("{}/group/bydigest", reg.addr);
    let vars = [
        ("GITLAB_CI", "true"),
        ("CI", "true"),
        ("CI_PIPELINE_SOURCE", "push"),
        ("CI_COMMIT_BRANCH", "feature"),
        ("CI_COMMIT_REF_NAME", "feature"),
        ("CI_COMMIT_SHA", SHA),
        ("CI_DEFAULT_BRANCH", "main"),
        ("CI_REGISTRY_IMAGE", image.as_str()),
    ];
    // A rule that yields nothing on a branch pipeline: no tag.
    let base = |cmd: &mut Command| {
        cmd.args(["ci", "build", "--context"])
            .arg(&ctx)
            .args(["--tag", "type=semver,pattern={{version}}"])
            .args(["--insecure-registry", &reg.addr]);
    };
    let mut refused = ci(tmp.path(), &vars);
    base(&mut refused);
    let e = fails(run(&mut refused));
    assert!(e.contains("no tag was derived for this pipeline"), "{e}");
    assert!(e.contains("--push-by-digest"), "{e}");

    let mut cmd = ci(tmp.path(), &vars);
    base(&mut cmd);
    let digest = ok(run(cmd.arg("--push-by-digest"))).trim().to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");
    let inspect = skopeo_inspect(
        &format!("docker://{image}@{digest}"),
        false,
        &["--tls-verify=false", "--no-tags"],
    );
    assert_eq!(inspect["Digest"], digest);
    // The repository has no tag at all (the registry answers 404 for its tag list, or an
    // empty list).
    let repo = image.trim_start_matches(&format!("{}/", reg.addr));
    let tags =
        ok(run(Command::new("curl").args([
            "-s",
            &format!("http://{}/v2/{repo}/tags/list", reg.addr),
        ])));
    let tags: serde_json::Value = serde_json::from_str(&tags).unwrap();
    assert!(
        tags.get("errors").is_some() || tags["tags"].as_array().is_none_or(|t| t.is_empty()),
        "{tags}"
    );
}
