//! The examples users copy (examples/, the README's snippets), checked against what they use and
//! run the way their platform would run them, against the harness registry: the GitHub
//! workflows' gantry steps through the simulated runner, the kaniko drop-in script as a kaniko
//! job runs it, the Kubernetes Job's container arguments as gantry's own command line, the
//! multi-stage sample with a local base image, and the single-job GitLab pipeline under
//! gitlab-ci-local.
//!
//! The workflow examples use `gantry-build/gantry@v0`, which actionlint cannot resolve, so the
//! `with:` keys and `steps.*.outputs.*` references are checked against action.yml here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::gitlab::{gitlab_ci_local, gitlab_ci_local_pipeline};
use super::{expand, repo, yaml, Runner};
use crate::harness::registry::TestRegistry;
use crate::harness::{
    fixtures, gantry, gantry_bin, ok, run, skopeo_inspect, skopeo_raw, stderr, stdout,
    umoci_unpack, write_files,
};

/// The action's input and output names.
fn action_io() -> (BTreeSet<String>, BTreeSet<String>) {
    let action = yaml("action.yml");
    let names = |key: &str| -> BTreeSet<String> {
        action[key].as_object().unwrap().keys().cloned().collect()
    };
    (names("inputs"), names("outputs"))
}

/// Whether a step runs gantry's action: the published one, or `./` in this repository.
fn is_gantry_step(step: &Value, local: bool) -> bool {
    match step["uses"].as_str() {
        Some(u) => u.starts_with("gantry-build/gantry@") || (local && u == "./"),
        None => false,
    }
}

/// What is wrong with how `workflow` uses gantry's action: `with:` keys that are not inputs,
/// `steps.ID.outputs.NAME` references to steps that do not exist or to outputs the action does
/// not have. Also gives how many gantry steps there are.
fn workflow_problems(workflow: &Value, local: bool) -> (Vec<String>, usize) {
    let (inputs, outputs) = action_io();
    let re = regex::Regex::new(r"steps\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)").unwrap();
    let mut problems = Vec::new();
    let mut count = 0;
    for (job_name, job) in workflow["jobs"].as_object().expect("jobs") {
        let steps = job["steps"].as_array().cloned().unwrap_or_default();
        let mut ids = BTreeMap::new();
        for step in &steps {
            if let Some(id) = step["id"].as_str() {
                ids.insert(id.to_string(), is_gantry_step(step, local));
            }
            if !is_gantry_step(step, local) {
                continue;
            }
            count += 1;
            for key in step["with"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k)
            {
                if !inputs.contains(key) {
                    problems.push(format!("{job_name}: `with: {key}` is not an input"));
                }
            }
        }
        let text = serde_json::to_string(job).unwrap();
        for c in re.captures_iter(&text) {
            match ids.get(&c[1]) {
                None => problems.push(format!("{job_name}: no step `{}`", &c[1])),
                Some(true) if !outputs.contains(&c[2]) => problems.push(format!(
                    "{job_name}: `steps.{}.outputs.{}` is not an output",
                    &c[1], &c[2]
                )),
                Some(_) => {}
            }
        }
    }
    (problems, count)
}

/// The README's fenced `yaml` blocks.
fn readme_yaml_blocks() -> Vec<Value> {
    let text = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let mut blocks = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("```yaml\n") {
        let body = &rest[start + 8..];
        let end = body.find("\n```").expect("an unclosed yaml block");
        blocks.push(
            serde_saphyr::from_str(&body[..end])
                .unwrap_or_else(|e| panic!("a README yaml block is not YAML: {e}")),
        );
        rest = &body[end..];
    }
    blocks
}

#[test]
fn examples_and_readme_pass_only_inputs_and_read_only_outputs_the_action_has() {
    let mut files: Vec<(String, bool)> = Vec::new();
    for dir in ["examples/github", ".github/workflows"] {
        let mut names: Vec<String> = std::fs::read_dir(repo().join(dir))
            .unwrap()
            .map(|e| format!("{dir}/{}", e.unwrap().file_name().to_string_lossy()))
            .collect();
        names.sort();
        files.extend(names.into_iter().map(|n| (n, dir == ".github/workflows")));
    }
    let mut total = 0;
    for (file, local) in &files {
        let (problems, count) = workflow_problems(&yaml(file), *local);
        assert!(problems.is_empty(), "{file}: {problems:?}");
        total += count;
        if file.starts_with("examples/") {
            assert!(count > 0, "{file} uses no gantry step");
        }
    }
    assert!(total >= 8, "{total} gantry steps in {files:?}");
    let blocks = readme_yaml_blocks();
    let workflows: Vec<&Value> = blocks.iter().filter(|b| b.get("jobs").is_some()).collect();
    assert!(!workflows.is_empty(), "the README shows no workflow");
    for block in &workflows {
        let (problems, count) = workflow_problems(block, false);
        assert!(problems.is_empty(), "README: {problems:?}");
        assert!(count > 0);
    }
    // The README shows the examples themselves, so what it says is what runs.
    assert_eq!(*workflows[0], yaml("examples/github/multi-arch.yml"));
    let gitlab: Vec<&Value> = blocks
        .iter()
        .filter(|b| b.get("include").is_some())
        .collect();
    assert_eq!(*gitlab[0], yaml("examples/gitlab/.gitlab-ci.yml"));
    // And the check finds what it is for.
    let bad: Value = serde_saphyr::from_str(
        "jobs:\n  j:\n    steps:\n      - uses: gantry-build/gantry@v0\n        id: g\n        with:\n          dockerfile: x\n      - run: echo\n        env:\n          D: ${{ steps.g.outputs.sha }}\n          E: ${{ steps.h.outputs.digest }}\n",
    )
    .unwrap();
    assert_eq!(
        workflow_problems(&bad, false).0,
        [
            "j: `with: dockerfile` is not an input",
            "j: `steps.g.outputs.sha` is not an output",
            "j: no step `h`",
        ]
    );
}

/// One simulated run of a workflow job's steps: gantry steps through [`Runner`], `run:` steps
/// with bash, `actions/checkout` as the workspace the test prepared. `${{ }}` expressions are
/// answered from `values` (exact expression text) and earlier steps' outputs; any other
/// expression fails the test.
struct JobRun<'a> {
    workspace: &'a Path,
    values: BTreeMap<String, String>,
    /// Runner environment (GITHUB_REF, RUNNER_ARCH, …) over [`Runner::new`]'s.
    env: BTreeMap<String, String>,
    /// Inputs every gantry step gets on top of its `with:`, to point it at the harness.
    adapt: BTreeMap<String, String>,
}

impl JobRun<'_> {
    /// Runs `job`'s steps; gives each step's log (gantry steps) or stdout (`run:` steps), in
    /// order, and the outputs of steps with an id.
    fn run(&self, job: &Value) -> (Vec<String>, BTreeMap<String, BTreeMap<String, String>>) {
        let mut outputs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut logs = Vec::new();
        for step in job["steps"].as_array().expect("steps") {
            let eval = |text: &str| -> String {
                expand(text, &|expr| {
                    if let Some(v) = self.values.get(expr) {
                        return v.clone();
                    }
                    if let Some(rest) = expr.strip_prefix("steps.") {
                        let (id, name) = rest.split_once(".outputs.").unwrap();
                        return outputs[id][name].clone();
                    }
                    panic!("the example uses `${{{{ {expr} }}}}`, which this test does not know")
                })
            };
            let uses = step["uses"].as_str().unwrap_or("");
            if uses.starts_with("actions/checkout@") {
                continue;
            }
            if is_gantry_step(step, false) {
                let mut r = Runner::new();
                r.workspace = self.workspace.to_path_buf();
                r.env("GITHUB_WORKSPACE", &self.workspace.display().to_string());
                for (k, v) in &self.env {
                    r.env(k, v);
                }
                for (k, v) in step["with"].as_object().into_iter().flatten() {
                    let v = match v {
                        Value::String(s) => eval(s),
                        other => other.to_string(),
                    };
                    r.input(k, &v);
                }
                for (k, v) in &self.adapt {
                    r.input(k, v);
                }
                let result = r.run();
                assert!(result.success, "step {step}:\n{}", result.log);
                if let Some(id) = step["id"].as_str() {
                    outputs.insert(id.to_string(), result.outputs.clone());
                }
                logs.push(result.log);
            } else if let Some(script) = step["run"].as_str() {
                let mut cmd = Command::new("bash");
                cmd.args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
                    .current_dir(self.workspace);
                for (k, v) in step["env"].as_object().into_iter().flatten() {
                    cmd.env(k, eval(v.as_str().unwrap()));
                }
                logs.push(ok(run(&mut cmd)));
            } else {
                panic!("a step this test cannot run: {step}");
            }
        }
        (logs, outputs)
    }
}

/// `examples/hello` in a fresh workspace, where `actions/checkout` would have put it.
fn hello_workspace(tmp: &Path) -> PathBuf {
    let ws = tmp.join("workspace");
    let hello = ws.join("examples/hello");
    std::fs::create_dir_all(&hello).unwrap();
    for name in ["Dockerfile", "greeting.txt", ".dockerignore"] {
        std::fs::copy(repo().join("examples/hello").join(name), hello.join(name)).unwrap();
    }
    ws
}

/// The workflow's own `env:`, as literal values.
fn workflow_env(workflow: &Value) -> BTreeMap<String, String> {
    workflow["env"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (format!("env.{k}"), v.as_str().unwrap().to_string()))
        .collect()
}

/// The harness-facing values a tag push of `v2.0.0` by `reg`'s user gives the expressions.
fn tag_push_values(workflow: &Value, reg: &TestRegistry) -> BTreeMap<String, String> {
    let mut values = workflow_env(workflow);
    values.insert("github.ref_name".into(), "v2.0.0".into());
    values.insert("github.actor".into(), reg.username.clone().unwrap());
    values.insert("secrets.GITHUB_TOKEN".into(), reg.password.clone().unwrap());
    values.insert("github.event_name != 'pull_request'".into(), "true".into());
    values
}

/// Inputs that point a gantry step at `reg` (TLS with the harness's CA) instead of ghcr.io.
fn harness_inputs(reg: &TestRegistry, image: &str) -> BTreeMap<String, String> {
    let ca = format!("{}={}", reg.addr, reg.ca_pem.as_ref().unwrap().display());
    BTreeMap::from([
        ("images".to_string(), image.to_string()),
        ("registry".to_string(), reg.addr.clone()),
        (
            "extra-args".to_string(),
            format!("--registry-certificate {ca} --push-retry 3"),
        ),
    ])
}

fn tag_push_env() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("GITHUB_REF".to_string(), "refs/tags/v2.0.0".to_string()),
        ("GITHUB_EVENT_NAME".to_string(), "push".to_string()),
    ])
}

#[test]
fn example_github_single_job_workflow_pushes_an_index() {
    let reg = TestRegistry::tls_basic();
    let tmp = tempfile::tempdir().unwrap();
    let workflow = yaml("examples/github/single-job.yml");
    let image = format!("{}/org/hello", reg.addr);
    let ws = hello_workspace(tmp.path());
    let job = JobRun {
        workspace: &ws,
        values: tag_push_values(&workflow, &reg),
        env: tag_push_env(),
        adapt: harness_inputs(&reg, &image),
    };
    let (logs, outputs) = job.run(&workflow["jobs"]["image"]);
    let creds = format!(
        "{}:{}",
        reg.username.as_ref().unwrap(),
        reg.password.as_ref().unwrap()
    );
    let extra = ["--tls-verify=false", "--creds", creds.as_str()];
    let raw = skopeo_raw(&format!("docker://{image}:2.0.0"), &extra);
    let index: Value = serde_json::from_slice(&raw).unwrap();
    let arches: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(arches, ["amd64", "arm64"]);
    // The last step prints the manifest step's `digest` output: the index's digest.
    let digest = &outputs["manifest"]["digest"];
    assert_eq!(logs.last().unwrap().trim(), format!("index {digest}"));
    let cfg = skopeo_inspect(&format!("docker://{image}:2.0.0-arm64"), true, &extra);
    assert_eq!(cfg["architecture"], "arm64");
    assert_eq!(
        cfg["config"]["Cmd"],
        serde_json::json!(["/srv/greeting.txt"])
    );
}

#[test]
fn example_github_matrix_workflow_builds_per_runner_then_merges() {
    let reg = TestRegistry::tls_basic();
    let tmp = tempfile::tempdir().unwrap();
    let workflow = yaml("examples/github/multi-arch.yml");
    let image = format!("{}/org/app", reg.addr);
    let ws = tmp.path().join("workspace");
    write_files(
        &ws,
        &[
            ("Dockerfile", "FROM scratch\nCOPY app.txt /app.txt\n"),
            ("app.txt", "app\n"),
        ],
    );
    let build = &workflow["jobs"]["build"];
    let runners = build["strategy"]["matrix"]["runner"].as_array().unwrap();
    let mut built = BTreeMap::new();
    for runner in runners {
        let runner = runner.as_str().unwrap();
        let mut values = tag_push_values(&workflow, &reg);
        values.insert("matrix.runner".into(), runner.into());
        let mut env = tag_push_env();
        let mut adapt = harness_inputs(&reg, &image);
        // An arm runner's own platform is linux/arm64; this machine's is amd64, so the arm job
        // says what its runner would have given.
        let (arch, platform) = match runner {
            "ubuntu-24.04" => ("X64", "linux/amd64"),
            "ubuntu-24.04-arm" => ("ARM64", "linux/arm64"),
            other => panic!("unknown runner `{other}`"),
        };
        env.insert("RUNNER_ARCH".into(), arch.into());
        if arch == "ARM64" {
            adapt.insert("platforms".into(), platform.into());
        }
        let job = JobRun {
            workspace: &ws,
            values,
            env,
            adapt,
        };
        let (logs, _) = job.run(build);
        built.insert(
            platform.trim_start_matches("linux/").to_string(),
            logs.len(),
        );
    }
    assert_eq!(built.len(), 2);
    let merge = &workflow["jobs"]["merge"];
    assert_eq!(merge["if"], "github.event_name != 'pull_request'");
    let job = JobRun {
        workspace: &ws,
        values: tag_push_values(&workflow, &reg),
        env: tag_push_env(),
        adapt: harness_inputs(&reg, &image),
    };
    let (logs, outputs) = job.run(merge);
    assert_eq!(
        logs.last().unwrap().trim(),
        format!("pushed {}", outputs["manifest"]["digest"])
    );
    let creds = format!(
        "{}:{}",
        reg.username.as_ref().unwrap(),
        reg.password.as_ref().unwrap()
    );
    let extra = ["--tls-verify=false", "--creds", creds.as_str()];
    // Every tag the semver rules give for v2.0.0 is the same two-platform index.
    let mut digests = BTreeSet::new();
    for tag in ["2.0.0", "2.0", "latest"] {
        let inspect = skopeo_inspect(&format!("docker://{image}:{tag}"), false, &extra);
        digests.insert(inspect["Digest"].as_str().unwrap().to_string());
        let raw = skopeo_raw(&format!("docker://{image}:{tag}"), &extra);
        let index: Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{tag}");
    }
    assert_eq!(digests.len(), 1, "{digests:?}");
}

#[test]
fn kaniko_drop_in_script_runs_unchanged_with_gantry_as_executor() {
    let reg = TestRegistry::tls_basic();
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("project");
    write_files(
        &project,
        &[
            (
                "Dockerfile",
                "FROM scratch\nARG VERSION=none\nLABEL version=$VERSION\nCOPY app.txt /app.txt\n",
            ),
            ("app.txt", "kaniko job\n"),
        ],
    );
    // The script names kaniko's path; gantry's image has gantry there. Here that path is a link
    // named `executor`, as in the image.
    let script =
        std::fs::read_to_string(repo().join("examples/single-job/kaniko-drop-in.sh")).unwrap();
    assert!(script.starts_with("#!/busybox/sh\n"), "{script}");
    let kaniko = tmp.path().join("kaniko");
    std::fs::create_dir_all(&kaniko).unwrap();
    std::os::unix::fs::symlink(gantry_bin(), kaniko.join("executor")).unwrap();
    let script = script.replace(
        "/kaniko/executor",
        &kaniko.join("executor").display().to_string(),
    );
    std::fs::write(tmp.path().join("job.sh"), &script).unwrap();
    // What a kaniko job has: the project's variables, and the registry login in the docker
    // config the image points DOCKER_CONFIG at; the image trusts SSL_CERT_FILE's CAs.
    let image = format!("{}/group/app", reg.addr);
    let out = run(Command::new("/bin/busybox")
        .arg("sh")
        .arg(tmp.path().join("job.sh"))
        .current_dir(&project)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", tmp.path())
        .env("CI_PROJECT_DIR", &project)
        .env("CI_REGISTRY_IMAGE", &image)
        .env("CI_COMMIT_SHORT_SHA", "5e1f6c2b")
        .env("DOCKER_CONFIG", reg.docker_config_dir())
        .env("SSL_CERT_FILE", reg.ca_pem.as_ref().unwrap()));
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let creds = format!(
        "{}:{}",
        reg.username.as_ref().unwrap(),
        reg.password.as_ref().unwrap()
    );
    let extra = ["--tls-verify=false", "--creds", creds.as_str()];
    let cfg = skopeo_inspect(&format!("docker://{image}:5e1f6c2b"), true, &extra);
    assert_eq!(cfg["config"]["Labels"]["version"], "5e1f6c2b");
}

#[test]
fn kubernetes_job_example_mounts_what_the_image_reads_and_its_args_build() {
    let job = yaml("examples/kubernetes/job.yaml");
    assert_eq!(job["kind"], "Job");
    let spec = &job["spec"]["template"]["spec"];
    let container = &spec["containers"][0];
    assert_eq!(
        container["image"],
        format!("ghcr.io/gantry-build/gantry:{}", env!("CARGO_PKG_VERSION"))
    );
    // The secret lands where the image's DOCKER_CONFIG points, as config.json.
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let docker_config = regex::Regex::new(r"DOCKER_CONFIG=(\S+)")
        .unwrap()
        .captures(&dockerfile)
        .expect("the image sets DOCKER_CONFIG")[1]
        .trim_end_matches('/')
        .to_string();
    let mounts = |c: &Value| -> BTreeMap<String, String> {
        c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().unwrap().to_string(),
                    m["mountPath"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let main = mounts(container);
    let volumes: BTreeMap<String, Value> = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap().to_string(), v.clone()))
        .collect();
    let secret_volume = main
        .iter()
        .find(|(_, path)| **path == docker_config)
        .map(|(name, _)| name.clone())
        .unwrap_or_else(|| panic!("nothing is mounted at {docker_config}: {main:?}"));
    let secret = &volumes[&secret_volume]["secret"];
    assert_eq!(secret["items"][0]["key"], ".dockerconfigjson");
    assert_eq!(secret["items"][0]["path"], "config.json");
    // The checkout the init container makes is the workspace the build reads.
    let init = &spec["initContainers"][0];
    let init_args: Vec<&str> = init["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let clone_dir = *init_args.last().unwrap();
    assert_eq!(mounts(init)["workspace"], clone_dir);
    assert_eq!(main["workspace"], clone_dir);
    assert!(volumes["workspace"].get("emptyDir").is_some());

    // The container's arguments, run by gantry: the checkout is this repository (the example
    // clones gantry's own), the registry the harness's, its login a `kubectl create secret
    // docker-registry` secret's `.dockerconfigjson`.
    let reg = TestRegistry::tls_basic();
    let tmp = tempfile::tempdir().unwrap();
    let args: Vec<String> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            a.as_str()
                .unwrap()
                .replace(clone_dir, &repo().display().to_string())
                .replace("registry.example.com", &reg.addr)
        })
        .collect();
    assert_eq!(args[0], "build");
    let user = reg.username.clone().unwrap();
    let password = reg.password.clone().unwrap();
    let auth = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    };
    let config = tmp.path().join("docker-config");
    let dockerconfigjson = serde_json::json!({"auths": {reg.addr.clone(): {
        "username": user, "password": password, "auth": auth}}});
    write_files(&config, &[("config.json", &dockerconfigjson.to_string())]);
    let out = run(gantry(tmp.path())
        .args(&args)
        .env("DOCKER_CONFIG", &config)
        .env("SSL_CERT_FILE", reg.ca_pem.as_ref().unwrap()));
    assert!(out.status.success(), "{args:?}\n{}", stderr(&out));
    let destination = args
        .iter()
        .find_map(|a| a.strip_prefix("--destination="))
        .unwrap();
    let creds = format!(
        "{}:{}",
        reg.username.as_ref().unwrap(),
        reg.password.as_ref().unwrap()
    );
    let cfg = skopeo_inspect(
        &format!("docker://{destination}"),
        true,
        &["--tls-verify=false", "--creds", &creds],
    );
    assert_eq!(
        cfg["config"]["Labels"]["org.opencontainers.image.title"],
        "hello"
    );
    // Built again with the same --reproducible arguments, the example gives the same digest.
    let digest_file = tmp.path().join("digest");
    let again = run(gantry(tmp.path())
        .args(&args)
        .args(["--no-push", "--digest-file"])
        .arg(&digest_file)
        .env("DOCKER_CONFIG", &config)
        .env("SSL_CERT_FILE", reg.ca_pem.as_ref().unwrap()));
    assert!(again.status.success(), "{}", stderr(&again));
    let inspect = skopeo_inspect(
        &format!("docker://{destination}"),
        false,
        &["--tls-verify=false", "--creds", &creds],
    );
    assert_eq!(
        inspect["Digest"],
        std::fs::read_to_string(&digest_file).unwrap().trim()
    );
}

#[test]
fn multi_stage_example_builds_with_its_base_from_a_local_registry() {
    let reg = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let dockerfile =
        std::fs::read_to_string(repo().join("examples/multi-stage/Dockerfile")).unwrap();
    // The stage the example copies a tool from names a Docker Hub image; the harness serves
    // the busybox fixture under that name, and gantry reaches it as a docker.io mirror.
    let base = regex::Regex::new(r"(?m)^FROM (\S+) AS tools$")
        .unwrap()
        .captures(&dockerfile)
        .expect("a `tools` stage")[1]
        .to_string();
    let (name, tag) = base.split_once(':').unwrap();
    assert!(!name.contains('/'), "an official image: {name}");
    fixtures::push(
        &fixtures::busybox(),
        fixtures::BUSYBOX_TAG,
        &format!("{}/library/{name}:{tag}", reg.addr),
        None,
        None,
    );
    let layout = tmp.path().join("layout");
    let out = run(gantry(tmp.path())
        .args(["build", "--context"])
        .arg(repo().join("examples/multi-stage"))
        .args(["--destination", &format!("{}/sample/site:1", reg.addr)])
        .args([
            "--registry-mirror",
            &reg.addr,
            "--insecure-registry",
            &reg.addr,
        ])
        .args(["--reproducible", "--oci-layout-path"])
        .arg(&layout));
    assert!(out.status.success(), "{}", stderr(&out));
    let cfg = skopeo_inspect(
        &format!("docker://{}/sample/site:1", reg.addr),
        true,
        &["--tls-verify=false"],
    );
    assert_eq!(
        cfg["config"]["Entrypoint"],
        serde_json::json!([
            "/bin/busybox",
            "httpd",
            "-f",
            "-p",
            "8080",
            "-h",
            "/srv/site"
        ])
    );
    let rootfs = umoci_unpack(&layout, "1", &tmp.path().join("unpacked"));
    assert_eq!(
        std::fs::read(rootfs.join("srv/site/index.html")).unwrap(),
        std::fs::read(repo().join("examples/multi-stage/site/index.html")).unwrap()
    );
    // The final image holds the site and the tool, nothing else of the tools stage.
    let bb = std::fs::metadata(rootfs.join("bin/busybox")).unwrap();
    assert!(bb.len() > 100_000, "{}", bb.len());
    let mut top: Vec<String> = std::fs::read_dir(&rootfs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["bin", "srv"]);
    assert_eq!(std::fs::read_dir(rootfs.join("bin")).unwrap().count(), 1);
}

#[test]
fn example_single_job_gitlab_pipeline_runs_under_gitlab_ci_local() {
    let Some(gcl) = gitlab_ci_local() else {
        eprintln!("skipping: gitlab-ci-local is not installed; run `bash scripts/ship-tools.sh`");
        return;
    };
    let reg = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("project");
    let hello = hello_workspace(tmp.path());
    std::fs::rename(&hello, &project).unwrap();
    let example =
        std::fs::read_to_string(repo().join("examples/single-job/.gitlab-ci.yml")).unwrap();
    let re = regex::Regex::new(r"(?m)^  - remote: \S+/gitlab/gantry\.gitlab-ci\.yml$").unwrap();
    assert!(
        re.is_match(&example),
        "the example includes the template remotely"
    );
    let local = re.replace(&example, "  - local: gitlab/gantry.gitlab-ci.yml");
    write_files(
        &project,
        &[
            (".gitlab-ci.yml", &local),
            (
                "gitlab/gantry.gitlab-ci.yml",
                &std::fs::read_to_string(repo().join("gitlab/gantry.gitlab-ci.yml")).unwrap(),
            ),
        ],
    );
    super::gitlab::checkout(&project);
    let extra = format!("--insecure-registry {}", reg.addr);
    // gitlab-ci-local gives a job with an `image:` the docker executor's CI_PROJECT_DIR
    // (/builds/group/app) even when it runs the job in the shell, in its own copy of the
    // project; a shell runner's CI_PROJECT_DIR is that copy.
    let job_dir = project.join(".gitlab-ci-local/builds/hello-image");
    let job_dir = job_dir.display().to_string();
    let (success, log) = gitlab_ci_local_pipeline(
        &gcl,
        &project,
        &reg,
        &[("GANTRY_EXTRA_ARGS", &extra), ("CI_PROJECT_DIR", &job_dir)],
    );
    assert!(success, "gitlab-ci-local failed:\n{log}");
    assert!(
        log.contains(&format!(
            "gantry ci build --context {job_dir}/examples/hello "
        )),
        "{log}"
    );
    let image = format!("{}/group/app", reg.addr);
    // The default rules for a tag pipeline: the git tag, and latest.
    let a = skopeo_inspect(
        &format!("docker://{image}:v2.0.0"),
        true,
        &["--tls-verify=false"],
    );
    assert_eq!(
        a["config"]["Cmd"],
        serde_json::json!(["/srv/greeting.txt"]),
        "{log}"
    );
    let b = skopeo_inspect(
        &format!("docker://{image}:latest"),
        false,
        &["--tls-verify=false"],
    );
    let a = skopeo_inspect(
        &format!("docker://{image}:v2.0.0"),
        false,
        &["--tls-verify=false"],
    );
    assert_eq!(a["Digest"], b["Digest"]);
}
