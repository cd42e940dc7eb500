//! `gantry tags` and `gantry ci build` run as a CI job would run them: the binary with a cleared
//! environment holding only the variables the case needs, and payloads from `tests/fixtures/ci/`.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use crate::harness::registry::{TestRegistry, PASSWORD, USERNAME};
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
            "GANTRY_VERSION=1.2.3\nGANTRY_TAGS={image}:1.2.3,{image}:1.2,{image}:latest\nGANTRY_TAG={image}:1.2.3\nGANTRY_DIGEST={digest}\nGANTRY_PUSHED={image}:1.2.3,{image}:1.2,{image}:latest\n"
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
    // The report says which tag this job pushed, and keeps the derived tags for `ci manifest`.
    let dotenv = std::fs::read_to_string(tmp.path().join("gantry.env")).unwrap();
    assert_eq!(
        dotenv,
        format!(
            "GANTRY_VERSION=1.2.3\nGANTRY_TAGS={image}:1.2.3,{image}:latest\nGANTRY_TAG={image}:1.2.3\nGANTRY_DIGEST={}\nGANTRY_PUSHED={image}:1.2.3-armv7\n",
            out.trim()
        )
    );
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

#[test]
fn tags_help_states_the_docker_tag_fix() {
    let tmp = tempfile::tempdir().unwrap();
    for flag in ["--help", "-h"] {
        let out = ok(run(ci(tmp.path(), &[]).args(["tags", flag])));
        let text = out.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            text.contains(
                "Tags Docker would reject are fixed where metadata-action would emit them as they \
                 are: a tag may not start with `.` or `-` and may be at most 128 characters, so \
                 leading `.` and `-` characters are removed and a longer tag is cut to 128 \
                 characters (e.g. branch `-leading/` gives `leading-`, not `-leading-`). A tag \
                 left empty is dropped."
            ),
            "{flag}: {out}"
        );
    }
    // The README says the same.
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        readme.contains("leading `.` and `-` are removed and it is cut to 128 characters"),
        "README's CI bullet documents the tag fix"
    );
}

#[test]
fn a_valid_short_sha_length_takes_effect_from_the_flag_and_the_variable() {
    let tmp = tempfile::tempdir().unwrap();
    // raw (priority 200) comes before sha (100).
    let rules = ["--tag", "type=sha", "--tag", "type=raw,value=c-{{sha}}"];
    let vars = github_push(&fixture("push.json"));
    let out = ok(run(ci(tmp.path(), &with(&vars))
        .arg("tags")
        .args(rules)
        .args(["--short-sha-length", "10"])));
    assert_eq!(out, "c-860c1904a1\nsha-860c1904a1\n");
    let mut env_vars = vars.clone();
    env_vars.push(("DOCKER_METADATA_SHORT_SHA_LENGTH", "12".into()));
    let out = ok(run(ci(tmp.path(), &with(&env_vars))
        .arg("tags")
        .args(rules)));
    assert_eq!(out, "c-860c1904a1ce\nsha-860c1904a1ce\n");
    // The flag wins over the variable.
    let out = ok(run(ci(tmp.path(), &with(&env_vars))
        .arg("tags")
        .args(rules)
        .args(["--short-sha-length", "4"])));
    assert_eq!(out, "c-860c\nsha-860c\n");
    // A length past the SHA keeps the whole SHA; GitLab's default of 8 gives way to the variable.
    let out = ok(run(ci(tmp.path(), &with(&vars))
        .arg("tags")
        .args(rules)
        .args(["--short-sha-length", "50"])));
    assert_eq!(out, format!("c-{SHA}\nsha-{SHA}\n"));
    let gl = [
        ("GITLAB_CI", "true"),
        ("CI_PIPELINE_SOURCE", "push"),
        ("CI_COMMIT_BRANCH", "main"),
        ("CI_COMMIT_SHA", SHA),
        ("DOCKER_METADATA_SHORT_SHA_LENGTH", "5"),
    ];
    let out = ok(run(ci(tmp.path(), &gl).arg("tags").args(rules)));
    assert_eq!(out, "c-860c1\nsha-860c1\n");
}

#[test]
fn a_rule_that_gives_no_tag_is_warned_about_on_stderr() {
    let tmp = tempfile::tempdir().unwrap();
    let vars = [
        ("GITLAB_CI", "true"),
        ("CI_PIPELINE_SOURCE", "push"),
        ("CI_COMMIT_BRANCH", "feature"),
        ("CI_COMMIT_SHA", SHA),
        ("CI_DEFAULT_BRANCH", "main"),
    ];
    let o = run(ci(tmp.path(), &vars).args(["tags", "--tag", "type=edge", "--tag", "type=sha"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "sha-860c1904\n");
    assert!(
        stderr(&o).contains(
            "tag rule `type=edge` gives no tag here: the branch `feature` is not the default branch `main`"
        ),
        "{}",
        stderr(&o)
    );
    // The default rules say nothing about the tag and pull request rules that cannot apply.
    let o = run(ci(tmp.path(), &vars).arg("tags"));
    assert_eq!(stdout(&o), "feature\n");
    assert!(!stderr(&o).contains("gives no tag"), "{}", stderr(&o));
}

/// A CONNECT proxy on 127.0.0.1 that tunnels every connection to `upstream` whatever host the
/// client asked for, and records what it asked for. gantry honours `HTTPS_PROXY`, so with it a
/// test reaches the harness registry under the name `ghcr.io` - GitHub's default registry, to
/// which gantry gives the workflow's credentials and nowhere else - without touching DNS or the
/// internet. Only the routing is stood in for: the registry is the real one.
struct ConnectProxy {
    addr: String,
    targets: Arc<Mutex<Vec<String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ConnectProxy {
    fn start(upstream: &str) -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let targets = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (t, st, up) = (targets.clone(), stop.clone(), upstream.to_string());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = conn else { continue };
                let (t, up) = (t.clone(), up.clone());
                std::thread::spawn(move || tunnel(client, &up, &t));
            }
        });
        ConnectProxy {
            addr,
            targets,
            stop,
            thread: Some(thread),
        }
    }

    fn targets(&self) -> Vec<String> {
        self.targets.lock().unwrap().clone()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answers one `CONNECT host:port` and copies bytes both ways between the client and `upstream`.
fn tunnel(client: TcpStream, upstream: &str, targets: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let target = match line.split_whitespace().collect::<Vec<_>>()[..] {
        ["CONNECT", target, _] => target.to_string(),
        _ => return,
    };
    // The rest of the head; the client sends nothing more before the answer.
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => return,
            Ok(_) if header == "\r\n" => break,
            Ok(_) => {}
        }
    }
    targets.lock().unwrap().push(target);
    let Ok(server) = TcpStream::connect(upstream) else {
        return;
    };
    let mut client_w = client;
    if client_w
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .is_err()
    {
        return;
    }
    let (mut server_r, mut server_w) = (server.try_clone().unwrap(), server);
    let mut client_r = reader.into_inner();
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_r, &mut server_w);
        let _ = server_w.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut server_r, &mut client_w);
    let _ = client_w.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
}

/// Parses a `GITHUB_OUTPUT` file: `name=value` and `name<<DELIM` … `DELIM` entries.
fn github_outputs(text: &str) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((name, delim)) = line.split_once("<<") {
            let mut value = Vec::new();
            for l in lines.by_ref() {
                if l == delim {
                    break;
                }
                value.push(l);
            }
            out.insert(name.to_string(), value.join("\n"));
        } else if let Some((name, value)) = line.split_once('=') {
            out.insert(name.to_string(), value.to_string());
        }
    }
    out
}

#[test]
fn ci_build_on_github_pushes_to_ghcr_with_the_workflow_token_and_writes_outputs() {
    let reg = TestRegistry::tls_basic();
    let proxy = ConnectProxy::start(&reg.addr);
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    write_files(
        &ctx,
        &[("Dockerfile", "FROM scratch\nCOPY f /f\n"), ("f", "github")],
    );
    let output = tmp.path().join("github_output");
    let summary = tmp.path().join("summary.md");
    let proxy_url = format!("http://{}", proxy.addr);
    let vars: Vec<(&str, String)> = vec![
        ("GITHUB_ACTIONS", "true".into()),
        ("CI", "true".into()),
        ("GITHUB_EVENT_NAME", "push".into()),
        ("GITHUB_REF", "refs/heads/master".into()),
        ("GITHUB_SHA", SHA.into()),
        // Mixed case on purpose: the image name is lower-cased, the labels keep the payload's.
        ("GITHUB_REPOSITORY", "Octocat/Hello-World".into()),
        (
            "GITHUB_EVENT_PATH",
            fixture("push.json").display().to_string(),
        ),
        ("GITHUB_RUN_ID", "42".into()),
        ("GITHUB_ACTOR", USERNAME.into()),
        ("GITHUB_TOKEN", PASSWORD.into()),
        ("GITHUB_OUTPUT", output.display().to_string()),
        ("GITHUB_STEP_SUMMARY", summary.display().to_string()),
        ("SOURCE_DATE_EPOCH", EPOCH.into()),
        ("HTTPS_PROXY", proxy_url.clone()),
    ];
    // ghcr.io's certificate here is the harness registry's (made out to 127.0.0.1).
    let tls = ["--skip-tls-verify-registry", "ghcr.io"];
    let rules = ["--tag", "type=ref,event=branch", "--tag", "type=sha"];
    let out = run(ci(tmp.path(), &with(&vars))
        .args(["ci", "build", "--context"])
        .arg(&ctx)
        .args(rules)
        .args(tls));
    let (so, se) = (stdout(&out), stderr(&out));
    let digest = ok(out).trim().to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");
    // Every connection went to ghcr.io, the default registry of a GitHub pipeline.
    let targets = proxy.targets();
    assert!(
        !targets.is_empty() && targets.iter().all(|t| t == "ghcr.io:443"),
        "{targets:?}"
    );
    // The image is `ghcr.io/<owner>/<repo>` lower-cased, pushed with GITHUB_ACTOR/GITHUB_TOKEN
    // (there is no docker config in HOME; the registry refuses anonymous pushes).
    let image = "ghcr.io/octocat/hello-world";
    let creds = format!("{USERNAME}:{PASSWORD}");
    let extra = ["--tls-verify=false", "--creds", creds.as_str()];
    for tag in ["master", "sha-860c190"] {
        let inspect = skopeo_inspect(
            &format!("docker://{}/octocat/hello-world:{tag}", reg.addr),
            false,
            &extra,
        );
        assert_eq!(inspect["Digest"], digest, "{tag}");
    }
    // gantry masks the token itself, on its first line, before anything could print it; the
    // token appears nowhere else.
    assert_eq!(
        se.lines().next(),
        Some(format!("::add-mask::{PASSWORD}").as_str()),
        "{se}"
    );
    assert_eq!(se.matches(PASSWORD).count(), 1, "{se}");
    assert!(!so.contains(PASSWORD), "{so}");
    let group = se.find("::group::gantry build").expect("a log group");
    let end = se.find("::endgroup::").expect("the group is closed");
    assert!(group < end, "{se}");
    // Step outputs.
    let text = std::fs::read_to_string(&output).unwrap();
    assert!(!text.contains(PASSWORD));
    let o = github_outputs(&text);
    assert_eq!(o["digest"], digest);
    assert_eq!(o["image"], image);
    assert_eq!(o["version"], "master");
    assert_eq!(o["tags"], format!("{image}:master\n{image}:sha-860c190"));
    assert_eq!(o["tag-names"], "master\nsha-860c190");
    assert_eq!(o["pushed"], o["tags"]);
    let labels: Vec<&str> = o["labels"].lines().collect();
    for want in [
        "org.opencontainers.image.created=2020-01-10T00:30:00.000Z",
        "org.opencontainers.image.revision=860c1904a1ce19322e91ac35af1ab07466440c37",
        "org.opencontainers.image.source=https://github.com/octocat/Hello-World",
        "org.opencontainers.image.title=Hello-World",
        "org.opencontainers.image.version=master",
    ] {
        assert!(labels.contains(&want), "{want} in {labels:?}");
    }
    let json: serde_json::Value = serde_json::from_str(&o["json"]).unwrap();
    assert_eq!(json["tags"][0], format!("{image}:master"));
    // The job summary: a table of digest, pushed tags and labels.
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.starts_with(&format!(
            "### gantry build\n\n| | |\n|---|---|\n| digest | `{digest}` |\n\
             | pushed | `{image}:master` |\n| pushed | `{image}:sha-860c190` |\n\
             | `org.opencontainers.image.created` | 2020-01-10T00:30:00.000Z |\n"
        )),
        "{md}"
    );
    assert!(
        md.contains(&format!(
            "| `org.opencontainers.image.revision` | {SHA} |\n"
        )),
        "{md}"
    );

    // --per-arch for linux/arm64/v8: the outputs say the per-architecture tag was pushed
    // (`master-arm64`, arm64's canonical v8 left out) and keep the tags for the index.
    std::fs::remove_file(&output).unwrap();
    std::fs::remove_file(&summary).unwrap();
    let arm = ok(run(ci(tmp.path(), &with(&vars))
        .args([
            "ci",
            "build",
            "--per-arch",
            "--custom-platform",
            "linux/arm64/v8",
        ])
        .arg("--context")
        .arg(&ctx)
        .args(rules)
        .args(tls)));
    let arm = arm.trim();
    let inspect = skopeo_inspect(
        &format!("docker://{}/octocat/hello-world:master-arm64", reg.addr),
        false,
        &extra,
    );
    assert_eq!(inspect["Digest"], arm);
    assert_eq!(inspect["Architecture"], "arm64");
    let o = github_outputs(&std::fs::read_to_string(&output).unwrap());
    assert_eq!(o["digest"], arm);
    assert_eq!(o["pushed"], format!("{image}:master-arm64"));
    assert_eq!(o["tags"], format!("{image}:master\n{image}:sha-860c190"));
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.contains(&format!(
            "| digest | `{arm}` |\n| pushed | `{image}:master-arm64` |\n\
             | index tag | `{image}:master` |\n| index tag | `{image}:sha-860c190` |\n"
        )),
        "{md}"
    );
    // `ci manifest --platforms linux/arm64` finds what `--custom-platform linux/arm64/v8`
    // pushed, and stitches it under the derived tags with the same credentials.
    std::fs::remove_file(&output).unwrap();
    let out = run(ci(tmp.path(), &with(&vars))
        .args(["ci", "manifest", "--platforms", "linux/arm64"])
        .args(rules)
        .args(tls));
    let se = stderr(&out);
    let index = ok(out).trim().to_string();
    assert_eq!(se.matches(PASSWORD).count(), 1, "{se}");
    let raw = skopeo_raw(
        &format!("docker://{}/octocat/hello-world:sha-860c190", reg.addr),
        &extra,
    );
    let list: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(list["manifests"][0]["digest"], arm);
    assert_eq!(list["manifests"][0]["platform"]["architecture"], "arm64");
    let o = github_outputs(&std::fs::read_to_string(&output).unwrap());
    assert_eq!(o["digest"], index);
    assert_eq!(o["pushed"], o["tags"]);

    // Without the workflow token nothing is pushed: the credentials came from it.
    let no_token: Vec<(&str, String)> = vars
        .iter()
        .filter(|(k, _)| *k != "GITHUB_TOKEN")
        .cloned()
        .collect();
    let err = fails(run(ci(tmp.path(), &with(&no_token))
        .args(["ci", "build", "--context"])
        .arg(&ctx)
        .args(["--tag", "type=raw,value=anonymous"])
        .args(tls)));
    assert!(
        err.contains("401") || err.to_lowercase().contains("unauthorized"),
        "{err}"
    );
}
