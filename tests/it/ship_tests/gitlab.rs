//! The GitLab template's and component's job scripts, run under a simulated GitLab job (busybox
//! `sh`, as in gantry's debug image, with the job's variables and the pipeline's predefined
//! ones) against a real registry; and the example pipeline under `gitlab-ci-local`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use super::{gantry_path_dir, path_with, repo, yaml};
use crate::harness::registry::TestRegistry;
use crate::harness::{ok, run, skopeo_inspect, skopeo_raw, stderr, stdout, write_files};

const SHA: &str = "5e1f6c2b9d0a4c7e8f3b2a1d0c9e8f7a6b5c4d3e";
const TEMPLATE: &str = "gitlab/gantry.gitlab-ci.yml";
const COMPONENT: &str = "templates/gantry.yml";

/// The two documents of the component: `spec:` and the jobs.
fn component() -> (Value, Value) {
    let text = std::fs::read_to_string(repo().join(COMPONENT)).unwrap();
    let (spec, jobs) = text.split_once("\n---\n").expect("spec, `---`, jobs");
    (
        serde_saphyr::from_str(spec).unwrap(),
        serde_saphyr::from_str(jobs).unwrap(),
    )
}

/// A job's script, joined as the runner joins script lines.
fn script(job: &Value) -> String {
    job["script"]
        .as_array()
        .expect("script is a list")
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The template job's variables, `extends:` resolved (base first), values unexpanded.
fn template_variables(doc: &Value, job: &str) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    let j = &doc[job];
    if let Some(base) = j["extends"].as_str() {
        vars.extend(template_variables(doc, base));
    }
    if let Some(v) = j["variables"].as_object() {
        for (k, v) in v {
            vars.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
        }
    }
    vars
}

/// The predefined variables of a tag pipeline for `v1.2.3` in `group/app` on `reg`.
fn pipeline_env(reg: &TestRegistry, project: &Path) -> BTreeMap<String, String> {
    let image = format!("{}/group/app", reg.addr);
    let mut env = BTreeMap::new();
    for (k, v) in [
        ("CI", "true"),
        ("GITLAB_CI", "true"),
        ("CI_PIPELINE_SOURCE", "push"),
        ("CI_COMMIT_TAG", "v1.2.3"),
        ("CI_COMMIT_REF_NAME", "v1.2.3"),
        ("CI_COMMIT_SHA", SHA),
        ("CI_DEFAULT_BRANCH", "main"),
        ("CI_PROJECT_URL", "https://gitlab.example.com/group/app"),
        ("CI_PROJECT_TITLE", "App"),
        ("SOURCE_DATE_EPOCH", "1704164645"),
        ("NO_COLOR", "1"),
    ] {
        env.insert(k.to_string(), v.to_string());
    }
    env.insert("CI_REGISTRY".into(), reg.addr.clone());
    env.insert("CI_REGISTRY_IMAGE".into(), image);
    env.insert("CI_PROJECT_DIR".into(), project.display().to_string());
    env.insert("HOME".into(), project.display().to_string());
    if let (Some(u), Some(p)) = (&reg.username, &reg.password) {
        env.insert("CI_REGISTRY_USER".into(), u.clone());
        env.insert("CI_REGISTRY_PASSWORD".into(), p.clone());
    }
    env
}

/// Runs a job script the way a GitLab runner in gantry's debug image would: busybox `sh`, the
/// job's variables (with `$VAR` references expanded from the pipeline's), in the project dir.
fn run_job(
    script_text: &str,
    job_vars: &BTreeMap<String, String>,
    env: &BTreeMap<String, String>,
    project: &Path,
) -> Output {
    let file = project.join(".job.sh");
    std::fs::write(&file, script_text).unwrap();
    let mut all = env.clone();
    for (k, v) in job_vars {
        let expanded = expand_vars(v, env);
        all.insert(k.clone(), expanded);
    }
    let gantry_dir = gantry_path_dir(project.parent().unwrap());
    let mut cmd = if Path::new("/bin/busybox").exists() {
        let mut c = Command::new("/bin/busybox");
        c.arg("sh");
        c
    } else {
        Command::new("sh")
    };
    cmd.arg(&file)
        .current_dir(project)
        .env_clear()
        .envs(&all)
        .env("PATH", path_with(&[&gantry_dir]));
    let out = run(&mut cmd);
    let _ = std::fs::remove_file(&file);
    out
}

/// GitLab's expansion of `$NAME` and `${NAME}` in variable values.
fn expand_vars(value: &str, env: &BTreeMap<String, String>) -> String {
    let re = regex::Regex::new(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?").unwrap();
    re.replace_all(value, |c: &regex::Captures| {
        env.get(&c[1]).cloned().unwrap_or_default()
    })
    .into_owned()
}

fn dotenv(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading `{}`: {e}", path.display()))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn project(tmp: &Path) -> PathBuf {
    let p = tmp.join("project");
    write_files(
        &p,
        &[
            ("Dockerfile", "FROM scratch\nCOPY app.txt /app.txt\n"),
            ("app.txt", "from gitlab\n"),
        ],
    );
    p
}

#[test]
fn gitlab_template_build_job_pushes_the_derived_tags() {
    let reg = TestRegistry::tls_basic();
    let tmp = tempfile::tempdir().unwrap();
    let project = project(tmp.path());
    let doc = yaml(TEMPLATE);
    let mut vars = template_variables(&doc, ".gantry-build");
    assert!(
        !vars.contains_key("GANTRY_CONTEXT"),
        "the script defaults it to CI_PROJECT_DIR"
    );
    vars.insert(
        "GANTRY_TAG_RULES".into(),
        "type=semver,pattern={{version}}\n# and the minor line\ntype=semver,pattern={{major}}.{{minor}}\n".into(),
    );
    vars.insert(
        "GANTRY_LABELS".into(),
        "org.opencontainers.image.title=From GitLab".into(),
    );
    let ca = format!("{}={}", reg.addr, reg.ca_pem.as_ref().unwrap().display());
    vars.insert(
        "GANTRY_EXTRA_ARGS".into(),
        format!("--registry-certificate {ca}"),
    );
    let env = pipeline_env(&reg, &project);
    let out = run_job(&script(&doc[".gantry-build"]), &vars, &env, &project);
    let digest = ok(out).trim().to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");
    let image = &env["CI_REGISTRY_IMAGE"];
    let report = dotenv(&project.join("gantry.env"));
    assert_eq!(report["GANTRY_DIGEST"], digest);
    assert_eq!(
        report["GANTRY_TAGS"],
        format!("{image}:1.2.3,{image}:1.2,{image}:latest")
    );
    assert!(
        !report
            .keys()
            .any(|k| k.starts_with("GANTRY_BUILT_PLATFORM")),
        "{report:?}"
    );
    let creds = format!(
        "{}:{}",
        env["CI_REGISTRY_USER"], env["CI_REGISTRY_PASSWORD"]
    );
    let extra = ["--tls-verify=false", "--creds", creds.as_str()];
    for tag in ["1.2.3", "1.2", "latest"] {
        let inspect = skopeo_inspect(&format!("docker://{image}:{tag}"), false, &extra);
        assert_eq!(inspect["Digest"], digest, "{tag}");
    }
    let cfg = skopeo_inspect(&format!("docker://{image}:1.2"), true, &extra);
    assert_eq!(
        cfg["config"]["Labels"]["org.opencontainers.image.title"],
        "From GitLab"
    );
}

#[test]
fn gitlab_matrix_builds_per_arch_then_the_manifest_job_stitches() {
    let reg = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let project = project(tmp.path());
    let doc = yaml(TEMPLATE);
    let mut env = pipeline_env(&reg, &project);
    // The pipeline's own job token is the credential; the plain registry takes anything.
    env.insert("CI_JOB_TOKEN".into(), "job-token".into());
    env.insert(
        "GANTRY_EXTRA_ARGS".into(),
        format!("--insecure-registry {}", reg.addr),
    );
    env.insert(
        "GANTRY_TAG_RULES".into(),
        "type=semver,pattern={{version}}".into(),
    );
    let image = env["CI_REGISTRY_IMAGE"].clone();
    let mut needs_env = BTreeMap::new();
    let mut digests = BTreeMap::new();
    for arch in ["amd64", "arm64"] {
        let mut vars = template_variables(&doc, ".gantry-build");
        vars.insert("GANTRY_ARCH".into(), arch.into());
        let out = run_job(&script(&doc[".gantry-build"]), &vars, &env, &project);
        let log = stderr(&out) + &stdout(&out);
        let digest = ok(out).trim().to_string();
        assert!(log.contains("--custom-platform linux/"), "{log}");
        let inspect = skopeo_inspect(
            &format!("docker://{image}:1.2.3-{arch}"),
            false,
            &["--tls-verify=false"],
        );
        assert_eq!(inspect["Digest"], digest);
        assert_eq!(inspect["Architecture"], arch);
        let report = dotenv(&project.join("gantry.env"));
        let key = format!("GANTRY_BUILT_PLATFORM_linux_{arch}");
        assert_eq!(report[&key], format!("linux/{arch}"), "{report:?}");
        // `needs:` hands every dotenv variable to the next job; later jobs win on equal names.
        needs_env.extend(report);
        digests.insert(arch.to_string(), digest);
    }
    env.extend(needs_env);
    let vars = template_variables(&doc, ".gantry-manifest");
    let out = run_job(&script(&doc[".gantry-manifest"]), &vars, &env, &project);
    let log = stderr(&out) + &stdout(&out);
    ok(out);
    assert!(log.contains("--platforms linux/amd64,linux/arm64"), "{log}");
    let raw = skopeo_raw(&format!("docker://{image}:1.2.3"), &["--tls-verify=false"]);
    let index: Value = serde_json::from_slice(&raw).unwrap();
    let got: BTreeMap<String, String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["platform"]["architecture"].as_str().unwrap().to_string(),
                m["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got, digests);
}

#[test]
fn gitlab_jobs_without_credentials_name_the_variable_to_set() {
    let reg = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let project = project(tmp.path());
    let doc = yaml(TEMPLATE);
    let env = pipeline_env(&reg, &project);
    for job in [".gantry-build", ".gantry-manifest"] {
        let vars = template_variables(&doc, job);
        let out = run_job(&script(&doc[job]), &vars, &env, &project);
        let err = crate::harness::fails(out);
        assert_eq!(err.lines().count(), 1, "{job}: {err}");
        assert!(
            err.starts_with("gantry: no registry credentials: CI_JOB_TOKEN and CI_REGISTRY_PASSWORD are empty; set GANTRY_REGISTRY_USER and GANTRY_REGISTRY_PASSWORD"),
            "{job}: {err}"
        );
    }
    // Half a login names the missing half, in both jobs.
    for (given, message) in [
        (
            "GANTRY_REGISTRY_USER",
            "gantry: GANTRY_REGISTRY_USER is set but GANTRY_REGISTRY_PASSWORD is not; set GANTRY_REGISTRY_PASSWORD (a masked CI/CD variable)",
        ),
        (
            "GANTRY_REGISTRY_PASSWORD",
            "gantry: GANTRY_REGISTRY_PASSWORD is set but GANTRY_REGISTRY_USER is not; set GANTRY_REGISTRY_USER",
        ),
    ] {
        let mut env = env.clone();
        env.insert(given.into(), "half".into());
        for job in [".gantry-build", ".gantry-manifest"] {
            let vars = template_variables(&doc, job);
            let err = crate::harness::fails(run_job(&script(&doc[job]), &vars, &env, &project));
            assert_eq!(err.trim_end(), message, "{job} with only {given}");
        }
    }
    // Without push, no credentials are needed.
    let mut env = pipeline_env(&reg, &project);
    env.insert("GANTRY_TAG_RULES".into(), "type=raw,value=local".into());
    let mut vars = template_variables(&doc, ".gantry-build");
    vars.insert("GANTRY_PUSH".into(), "false".into());
    let out = ok(run_job(
        &script(&doc[".gantry-build"]),
        &vars,
        &env,
        &project,
    ));
    assert!(out.trim().starts_with("sha256:"), "{out}");
}

#[test]
fn gitlab_component_wires_every_input_and_runs_the_template_scripts() {
    let (spec, jobs) = component();
    let inputs: Vec<String> = spec["spec"]["inputs"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    for name in [
        "image",
        "context",
        "dockerfile",
        "platforms",
        "tag-rules",
        "labels",
        "push",
    ] {
        assert!(inputs.iter().any(|i| i == name), "input `{name}` missing");
    }
    let text = std::fs::read_to_string(repo().join(COMPONENT)).unwrap();
    let jobs_text = text.split_once("\n---\n").unwrap().1;
    let re = regex::Regex::new(r"\$\[\[\s*inputs\.([a-z0-9_-]+)\s*\]\]").unwrap();
    let used: Vec<String> = re
        .captures_iter(jobs_text)
        .map(|c| c[1].to_string())
        .collect();
    for name in &inputs {
        assert!(used.contains(name), "input `{name}` is not used");
    }
    for name in &used {
        assert!(inputs.contains(name), "`{name}` is used but not declared");
    }
    // The component's jobs run exactly the template's scripts, so testing one tests both.
    let template = yaml(TEMPLATE);
    let build = &jobs["$[[ inputs.job-prefix ]]-build"];
    let manifest = &jobs["$[[ inputs.job-prefix ]]-manifest"];
    assert_eq!(script(build), script(&template[".gantry-build"]));
    assert_eq!(script(manifest), script(&template[".gantry-manifest"]));
    assert_eq!(
        build["parallel"]["matrix"][0]["GANTRY_PLATFORM"],
        "$[[ inputs.platforms ]]"
    );
    assert_eq!(manifest["needs"][0], "$[[ inputs.job-prefix ]]-build");
    assert_eq!(build["artifacts"]["reports"]["dotenv"], "gantry.env");
    assert_eq!(
        template[".gantry-build"]["artifacts"]["reports"]["dotenv"],
        "gantry.env"
    );
    assert_eq!(template[".gantry-base"]["image"]["entrypoint"][0], "");
}

/// `gitlab-ci-local` as installed by scripts/ship-tools.sh.
pub fn gitlab_ci_local() -> Option<PathBuf> {
    let p = repo().join("target/ship-tools/node_modules/.bin/gitlab-ci-local");
    p.exists().then_some(p)
}

/// Makes `project` a git checkout of `group/app` on gitlab.example.com with everything in it
/// committed and `v2.0.0` tagged, as the runner checks a tag pipeline out; returns HEAD's sha.
pub fn checkout(project: &Path) -> String {
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "."],
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "init",
        ],
        &["tag", "v2.0.0"],
        &[
            "remote",
            "add",
            "origin",
            "https://gitlab.example.com/group/app.git",
        ],
    ] {
        ok(run(Command::new("git").args(args).current_dir(project)));
    }
    ok(run(Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(project)))
    .trim()
    .to_string()
}

/// Runs the pipeline of `project` under gitlab-ci-local as the tag pipeline of `v2.0.0`, its
/// registry `reg` (image `<reg>/group/app`), with `variables` added; gives success and the log.
pub fn gitlab_ci_local_pipeline(
    gcl: &Path,
    project: &Path,
    reg: &TestRegistry,
    variables: &[(&str, &str)],
) -> (bool, String) {
    let image = format!("{}/group/app", reg.addr);
    let home = project.parent().unwrap();
    let gantry_dir = gantry_path_dir(home);
    let mut cmd = Command::new(gcl);
    cmd.current_dir(project)
        .env("PATH", path_with(&[&gantry_dir]))
        .env("HOME", home)
        // Each job in its own copy of the project, as on real runners: without
        // `--shell-isolation` the two matrix jobs share one directory and race on `gantry.env`,
        // so one job's dotenv report overwrites the other's.
        .args(["--force-shell-executor", "--shell-isolation", "--no-color"])
        // gitlab-ci-local says GITLAB_CI=false (it is not GitLab); the jobs need GitLab's view.
        .args(["--variable", "GITLAB_CI=true"])
        .args(["--variable", &format!("CI_REGISTRY={}", reg.addr)])
        .args(["--variable", &format!("CI_REGISTRY_IMAGE={image}")])
        .args(["--variable", "CI_REGISTRY_PASSWORD=unused"])
        .args(["--variable", "CI_COMMIT_TAG=v2.0.0"])
        .args(["--variable", "SOURCE_DATE_EPOCH=1704164645"]);
    for (k, v) in variables {
        cmd.args(["--variable", &format!("{k}={v}")]);
    }
    let out = run(&mut cmd);
    (out.status.success(), stdout(&out) + &stderr(&out))
}

/// The platforms of the index at `reference`, `os/arch[/variant]` → child digest.
fn index_platforms(reference: &str) -> BTreeMap<String, String> {
    let raw = skopeo_raw(&format!("docker://{reference}"), &["--tls-verify=false"]);
    let index: Value = serde_json::from_slice(&raw).unwrap();
    index["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("`{reference}` is not an index"))
        .iter()
        .map(|m| {
            let p = &m["platform"];
            let mut name = format!(
                "{}/{}",
                p["os"].as_str().unwrap(),
                p["architecture"].as_str().unwrap()
            );
            if let Some(v) = p["variant"].as_str() {
                name = format!("{name}/{v}");
            }
            (name, m["digest"].as_str().unwrap().to_string())
        })
        .collect()
}

#[test]
fn example_gitlab_pipeline_runs_under_gitlab_ci_local() {
    let Some(gcl) = gitlab_ci_local() else {
        eprintln!("skipping: gitlab-ci-local is not installed; run `bash scripts/ship-tools.sh`");
        return;
    };
    let reg = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let project = project(tmp.path());
    // The example includes the template from the repository; here it comes from the checkout.
    let example = std::fs::read_to_string(repo().join("examples/gitlab/.gitlab-ci.yml")).unwrap();
    let re = regex::Regex::new(r"(?m)^  - remote: \S+/gitlab/gantry\.gitlab-ci\.yml$").unwrap();
    assert!(
        re.is_match(&example),
        "the example includes the template remotely"
    );
    let local = re.replace(&example, "  - local: gitlab/gantry.gitlab-ci.yml");
    std::fs::write(project.join(".gitlab-ci.yml"), local.as_bytes()).unwrap();
    std::fs::create_dir_all(project.join("gitlab")).unwrap();
    std::fs::copy(repo().join(TEMPLATE), project.join(TEMPLATE)).unwrap();
    checkout(&project);
    let image = format!("{}/group/app", reg.addr);
    // The two jobs push the same blob at once; docker-registry's filesystem driver can answer
    // 500 to one of them, which a retry absorbs (as in real pipelines).
    let extra = format!("--insecure-registry {} --push-retry 3", reg.addr);
    let (success, log) =
        gitlab_ci_local_pipeline(&gcl, &project, &reg, &[("GANTRY_EXTRA_ARGS", &extra)]);
    assert!(success, "gitlab-ci-local failed:\n{log}");
    for arch in ["amd64", "arm64"] {
        let inspect = skopeo_inspect(
            &format!("docker://{image}:2.0.0-{arch}"),
            false,
            &["--tls-verify=false"],
        );
        assert_eq!(inspect["Architecture"], arch, "{log}");
    }
    let platforms = index_platforms(&format!("{image}:2.0.0"));
    assert_eq!(
        platforms.keys().collect::<Vec<_>>(),
        ["linux/amd64", "linux/arm64"],
        "{log}"
    );
}

/// A project that includes the component the way `examples/gitlab/component.gitlab-ci.yml`
/// does, but from this checkout: gitlab-ci-local reads a component of the pipeline's own project
/// at its own commit (`<host>/group/app/gantry@<HEAD sha>`) from `templates/gantry.yml`, and
/// substitutes `$[[ inputs.* ]]` from the include's `inputs:` and the spec's defaults.
/// `inputs` are added to the example's.
fn component_project(tmp: &Path, inputs: &[(&str, Value)]) -> PathBuf {
    let project = project(tmp);
    std::fs::create_dir_all(project.join("templates")).unwrap();
    std::fs::copy(repo().join(COMPONENT), project.join(COMPONENT)).unwrap();
    let sha = checkout(&project);
    let mut example = yaml("examples/gitlab/component.gitlab-ci.yml");
    let include = &mut example["include"][0];
    let component = include["component"].as_str().unwrap();
    let (path, version) = component.rsplit_once('@').unwrap();
    assert_eq!(path, "gitlab.com/gantry-build/gantry/gantry", "{component}");
    assert_eq!(version, env!("CARGO_PKG_VERSION"), "{component}");
    include["component"] = format!("gitlab.example.com/group/app/gantry@{sha}").into();
    for (k, v) in inputs {
        include["inputs"][*k] = v.clone();
    }
    // JSON is YAML; written after the commit so the component's ref is that commit.
    std::fs::write(
        project.join(".gitlab-ci.yml"),
        serde_json::to_string_pretty(&example).unwrap(),
    )
    .unwrap();
    project
}

#[test]
fn gitlab_component_substitutes_inputs_and_its_jobs_push_an_index() {
    let Some(gcl) = gitlab_ci_local() else {
        eprintln!("skipping: gitlab-ci-local is not installed; run `bash scripts/ship-tools.sh`");
        return;
    };
    let reg = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    // Given: platforms (with a variant), labels, extra-args and the example's tag rules; the
    // rest (context, dockerfile, images, push, job names) comes from the spec's defaults.
    let extra = format!("--insecure-registry {} --push-retry 3", reg.addr);
    let project = component_project(
        tmp.path(),
        &[
            (
                "platforms",
                serde_json::json!(["linux/amd64", "linux/arm/v7"]),
            ),
            (
                "labels",
                "org.opencontainers.image.title=From the component\nteam=infra".into(),
            ),
            ("extra-args", extra.into()),
        ],
    );
    let (success, log) = gitlab_ci_local_pipeline(&gcl, &project, &reg, &[]);
    assert!(success, "gitlab-ci-local failed:\n{log}");
    for job in [
        "gantry-build: [linux/amd64]",
        "gantry-build: [linux/arm/v7]",
        "gantry-manifest",
    ] {
        assert!(log.contains(job), "no job `{job}`:\n{log}");
    }
    let image = format!("{}/group/app", reg.addr);
    let mut children = BTreeMap::new();
    for (platform, tag) in [
        ("linux/amd64", "2.0.0-amd64"),
        ("linux/arm/v7", "2.0.0-armv7"),
    ] {
        let reference = format!("docker://{image}:{tag}");
        let inspect = skopeo_inspect(&reference, false, &["--tls-verify=false"]);
        let arch = platform.split('/').nth(1).unwrap();
        assert_eq!(inspect["Architecture"], arch, "{tag}\n{log}");
        let cfg = skopeo_inspect(&reference, true, &["--tls-verify=false"]);
        let labels = &cfg["config"]["Labels"];
        assert_eq!(
            labels["org.opencontainers.image.title"],
            "From the component"
        );
        assert_eq!(labels["team"], "infra");
        assert_eq!(labels["org.opencontainers.image.version"], "2.0.0");
        children.insert(
            platform.to_string(),
            inspect["Digest"].as_str().unwrap().to_string(),
        );
    }
    // The example's tag rules: the semver tag and, for a release tag, latest.
    for tag in ["2.0.0", "latest"] {
        assert_eq!(
            index_platforms(&format!("{image}:{tag}")),
            children,
            "{tag}\n{log}"
        );
    }
}

#[test]
fn gitlab_component_without_push_builds_and_adds_no_manifest_job() {
    let Some(gcl) = gitlab_ci_local() else {
        eprintln!("skipping: gitlab-ci-local is not installed; run `bash scripts/ship-tools.sh`");
        return;
    };
    let reg = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let project = component_project(tmp.path(), &[("push", "false".into())]);
    let (success, log) = gitlab_ci_local_pipeline(&gcl, &project, &reg, &[]);
    assert!(success, "gitlab-ci-local failed:\n{log}");
    for platform in ["linux/amd64", "linux/arm64"] {
        assert!(
            log.contains(&format!("gantry-build: [{platform}]")),
            "{log}"
        );
    }
    assert!(log.contains("--no-push"), "{log}");
    assert!(!log.contains("gantry-manifest"), "{log}");
    let out = run(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{}/group/app:2.0.0-amd64", reg.addr),
    ]));
    assert!(
        !out.status.success(),
        "an image was pushed with push: false"
    );
    // A value outside the input's options is refused before any job runs.
    let tmp = tempfile::tempdir().unwrap();
    let project = component_project(tmp.path(), &[("push", "no".into())]);
    let (success, log) = gitlab_ci_local_pipeline(&gcl, &project, &reg, &[]);
    assert!(!success, "{log}");
    assert!(log.contains("`push` input: `no` cannot be used"), "{log}");
    assert!(!log.contains("gantry ci build"), "{log}");
}
