//! The ways gantry ships, tested by running them: the GitHub Action's run steps under a simulated
//! runner, the GitLab template's and component's job scripts under a simulated job, the example
//! GitLab pipeline under `gitlab-ci-local`, gantry's own image built by gantry and run with
//! podman, and the YAML files through actionlint and check-jsonschema.
//!
//! The simulated runner does what GitHub's does for a composite action: it evaluates the
//! `${{ }}` expressions the action uses (inputs, `runner.temp`, step outputs), runs each `run:`
//! script with `bash -eo pipefail`, gives each step a fresh `GITHUB_OUTPUT` file, and applies
//! `GITHUB_PATH` to later steps. An expression it does not know fails the test, so the action
//! stays within what is simulated here.
// A test whose tool is missing says so on stderr and skips.
#![allow(clippy::print_stderr)]

mod examples;
mod gitlab;
mod image;
mod lint;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::harness::registry::TestRegistry;
use crate::harness::{gantry_bin, run, skopeo_inspect, stderr, stdout, write_files};

const SHA: &str = "90dd6032fac8bda1b6c4436a2e65de27961ed071";

/// The repository checkout the tests were built from.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A YAML file of the repository, as JSON values.
pub fn yaml(rel: &str) -> Value {
    let text = std::fs::read_to_string(repo().join(rel))
        .unwrap_or_else(|e| panic!("reading `{rel}`: {e}"));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("`{rel}` is not YAML: {e}"))
}

/// A directory holding `gantry` (a link to the binary under test), to put first on PATH.
pub fn gantry_path_dir(tmp: &Path) -> PathBuf {
    let dir = tmp.join("gantry-bin");
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("gantry");
    if !link.exists() {
        std::os::unix::fs::symlink(gantry_bin(), &link).unwrap();
    }
    dir
}

/// `dirs` then the process's PATH.
pub fn path_with(dirs: &[&Path]) -> String {
    let mut parts: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    parts.push(std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()));
    parts.join(":")
}

/// Reads a `GITHUB_OUTPUT` file: `name=value` lines and `name<<DELIM` blocks.
pub fn parse_github_output(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
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

/// What one simulated run of the action gave.
#[derive(Debug)]
pub struct ActionRun {
    pub success: bool,
    /// Every step's stdout and stderr, in order.
    pub log: String,
    /// The action's outputs (its `outputs:` evaluated), for a successful run.
    pub outputs: BTreeMap<String, String>,
}

/// A simulated GitHub runner for `action.yml`.
pub struct Runner {
    pub tmp: tempfile::TempDir,
    pub inputs: BTreeMap<String, String>,
    pub env: BTreeMap<String, String>,
    /// Directories put first on PATH (where `gantry` is found).
    pub path: Vec<PathBuf>,
    /// The job's working directory (GITHUB_WORKSPACE).
    pub workspace: PathBuf,
    /// Run the steps as this user id (with its group, no supplementary groups) instead of the
    /// test's own: a GitHub-hosted runner's user is not root.
    pub uid: Option<u32>,
}

impl Runner {
    /// A runner on Linux X64 in a push to `main` of `org/app`, with the binary under test on
    /// PATH and `sudo: false` (the tests run as root or not, and say so explicitly).
    pub fn new() -> Runner {
        let tmp = tempfile::tempdir().unwrap();
        let workspace = tmp.path().join("workspace");
        std::fs::create_dir_all(&workspace).unwrap();
        let payload = tmp.path().join("event.json");
        std::fs::write(
            &payload,
            serde_json::json!({
                "repository": {"default_branch": "main", "html_url": "https://github.com/org/app", "name": "app"},
                "head_commit": {"timestamp": "2024-01-02T03:04:05Z"}
            })
            .to_string(),
        )
        .unwrap();
        let mut env = BTreeMap::new();
        for (k, v) in [
            ("CI", "true"),
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_EVENT_NAME", "push"),
            ("GITHUB_REF", "refs/heads/main"),
            ("GITHUB_SHA", SHA),
            ("GITHUB_REPOSITORY", "org/app"),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_RUN_ID", "42"),
            ("RUNNER_OS", "Linux"),
            ("RUNNER_ARCH", "X64"),
            ("SOURCE_DATE_EPOCH", "1704164645"),
            ("NO_COLOR", "1"),
        ] {
            env.insert(k.to_string(), v.to_string());
        }
        env.insert("GITHUB_EVENT_PATH".into(), payload.display().to_string());
        env.insert("GITHUB_WORKSPACE".into(), workspace.display().to_string());
        env.insert("HOME".into(), tmp.path().display().to_string());
        let path = vec![gantry_path_dir(tmp.path())];
        let mut inputs = BTreeMap::new();
        inputs.insert("sudo".into(), "false".into());
        Runner {
            tmp,
            inputs,
            env,
            path,
            workspace,
            uid: None,
        }
    }

    pub fn input(&mut self, name: &str, value: &str) -> &mut Runner {
        self.inputs.insert(name.into(), value.into());
        self
    }

    pub fn env(&mut self, name: &str, value: &str) -> &mut Runner {
        self.env.insert(name.into(), value.into());
        self
    }

    /// Runs the action's steps in order, as GitHub's runner would.
    pub fn run(&self) -> ActionRun {
        let action = yaml("action.yml");
        let defaults = action["inputs"].as_object().expect("inputs");
        for name in self.inputs.keys() {
            assert!(
                defaults.contains_key(name),
                "test passes an input the action lacks: {name}"
            );
        }
        let input = |name: &str| -> String {
            match self.inputs.get(name) {
                Some(v) => v.clone(),
                None => match &defaults
                    .get(name)
                    .unwrap_or_else(|| panic!("action.yml uses undeclared input `{name}`"))
                    ["default"]
                {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                },
            }
        };
        // What the runner creates belongs to the user the steps run as.
        let own = |p: &Path| {
            if let Some(uid) = self.uid {
                std::os::unix::fs::chown(p, Some(uid), Some(uid)).unwrap();
            }
        };
        let runner_temp = self.tmp.path().join("runner-temp");
        std::fs::create_dir_all(&runner_temp).unwrap();
        own(&runner_temp);
        let github_path = self.tmp.path().join("github_path");
        std::fs::write(&github_path, "").unwrap();
        own(&github_path);
        let mut step_outputs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut log = String::new();
        let steps = action["runs"]["steps"].as_array().expect("runs.steps");
        assert_eq!(action["runs"]["using"], "composite");
        for (i, step) in steps.iter().enumerate() {
            let id = step["id"].as_str().unwrap_or("").to_string();
            assert_eq!(step["shell"], "bash", "step {i} must use bash");
            assert!(
                step.get("if").is_none(),
                "the simulated runner has no `if:`"
            );
            let eval = |text: &str| -> String {
                expand(text, &|expr| {
                    if let Some(name) = expr.strip_prefix("inputs.") {
                        input(name)
                    } else if expr == "runner.temp" {
                        runner_temp.display().to_string()
                    } else if expr == "github.action_path" {
                        repo().display().to_string()
                    } else if let Some(rest) = expr.strip_prefix("steps.") {
                        let (sid, out) = rest.split_once(".outputs.").expect("steps.ID.outputs.N");
                        step_outputs
                            .get(sid)
                            .and_then(|o| o.get(out))
                            .cloned()
                            .unwrap_or_default()
                    } else {
                        panic!("action.yml uses `${{{{ {expr} }}}}`, which the simulated runner does not know")
                    }
                })
            };
            let script = step["run"].as_str().expect("run");
            assert!(
                !script.contains("${{"),
                "step {i}: expressions belong in env:, not in the script (injection)"
            );
            let script_path = self.tmp.path().join(format!("step-{i}.sh"));
            std::fs::write(&script_path, script).unwrap();
            let output_file = self.tmp.path().join(format!("output-{i}"));
            std::fs::write(&output_file, "").unwrap();
            own(&output_file);
            let mut path: Vec<PathBuf> = std::fs::read_to_string(&github_path)
                .unwrap()
                .lines()
                .rev()
                .map(PathBuf::from)
                .collect();
            path.extend(self.path.iter().cloned());
            let path_refs: Vec<&Path> = path.iter().map(PathBuf::as_path).collect();
            let mut cmd = Command::new("bash");
            cmd.args(["--noprofile", "--norc", "-eo", "pipefail"])
                .arg(&script_path)
                .current_dir(&self.workspace)
                .env_clear()
                .envs(&self.env)
                .env("PATH", path_with(&path_refs))
                .env("RUNNER_TEMP", &runner_temp)
                .env("GITHUB_OUTPUT", &output_file)
                .env("GITHUB_PATH", &github_path)
                .env("GITHUB_ACTION_PATH", repo());
            if let Some(env) = step["env"].as_object() {
                for (k, v) in env {
                    cmd.env(k, eval(v.as_str().expect("env values are strings")));
                }
            }
            if let Some(uid) = self.uid {
                use std::os::unix::process::CommandExt;
                // std drops the supplementary groups when a root parent sets the uid.
                cmd.uid(uid).gid(uid);
            }
            let out = run(&mut cmd);
            log.push_str(&stdout(&out));
            log.push_str(&stderr(&out));
            if !out.status.success() {
                return ActionRun {
                    success: false,
                    log,
                    outputs: BTreeMap::new(),
                };
            }
            let outputs = parse_github_output(&std::fs::read_to_string(&output_file).unwrap());
            step_outputs.insert(id, outputs);
        }
        let mut outputs = BTreeMap::new();
        for (name, def) in action["outputs"].as_object().expect("outputs") {
            let value = expand(def["value"].as_str().expect("value"), &|expr| {
                let rest = expr
                    .strip_prefix("steps.")
                    .expect("outputs come from steps");
                let (sid, out) = rest.split_once(".outputs.").expect("steps.ID.outputs.N");
                step_outputs
                    .get(sid)
                    .and_then(|o| o.get(out))
                    .cloned()
                    .unwrap_or_default()
            });
            outputs.insert(name.clone(), value);
        }
        ActionRun {
            success: true,
            log,
            outputs,
        }
    }
}

/// Replaces every `${{ expr }}` in `text` with `value(expr)`.
pub fn expand(text: &str, value: &dyn Fn(&str) -> String) -> String {
    let re = regex::Regex::new(r"\$\{\{\s*(.*?)\s*\}\}").unwrap();
    re.replace_all(text, |c: &regex::Captures| value(&c[1]))
        .into_owned()
}

/// The `::error` lines of a log.
fn error_lines(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.starts_with("::error")).collect()
}

/// Asserts the run failed with exactly one `::error` line containing `needle`.
#[track_caller]
fn fails_with(run: &ActionRun, needle: &str) {
    assert!(!run.success, "the action succeeded:\n{}", run.log);
    let errors = error_lines(&run.log);
    assert_eq!(errors.len(), 1, "{}", run.log);
    assert!(errors[0].contains(needle), "{}", run.log);
}

fn scratch_context(dir: &Path) {
    write_files(
        dir,
        &[
            (
                "Dockerfile",
                "FROM scratch\nARG GREETING=none\nLABEL greeting=$GREETING\nCOPY hello.txt /hello.txt\n",
            ),
            ("hello.txt", "hello from the action\n"),
        ],
    );
}

#[test]
fn action_inputs_and_outputs_are_all_wired() {
    let action = yaml("action.yml");
    let text = std::fs::read_to_string(repo().join("action.yml")).unwrap();
    let inputs: Vec<&String> = action["inputs"].as_object().unwrap().keys().collect();
    // The names docker/build-push-action and docker/metadata-action users know.
    for name in [
        "command",
        "context",
        "file",
        "images",
        "tags",
        "flavor",
        "labels",
        "build-args",
        "target",
        "push",
        "platforms",
        "per-arch",
        "cache",
        "cache-repo",
        "registry",
        "username",
        "password",
        "extra-args",
    ] {
        assert!(inputs.iter().any(|i| *i == name), "input `{name}` missing");
    }
    let outputs: Vec<&String> = action["outputs"].as_object().unwrap().keys().collect();
    for name in ["digest", "imageid", "tags", "pushed", "labels", "metadata"] {
        assert!(
            outputs.iter().any(|o| *o == name),
            "output `{name}` missing"
        );
    }
    // Every input reaches a step as INPUT_<NAME> and every INPUT_ variable a script reads is set.
    let mut wired = Vec::new();
    let re = regex::Regex::new(r"\$\{?(INPUT_[A-Z_]+)").unwrap();
    for step in action["runs"]["steps"].as_array().unwrap() {
        let env = step["env"].as_object().cloned().unwrap_or_default();
        let script = step["run"].as_str().unwrap();
        for (k, v) in &env {
            if let Some(rest) = k.strip_prefix("INPUT_") {
                let name = rest.to_lowercase().replace('_', "-");
                assert_eq!(v, &format!("${{{{ inputs.{name} }}}}"), "{k}");
                assert!(
                    script.contains(&format!("${k}")) || script.contains(&format!("${{{k}")),
                    "{k} is set but its step never reads it"
                );
                wired.push(name);
            }
        }
        for c in re.captures_iter(script) {
            assert!(
                env.contains_key(&c[1]),
                "the script reads {} without env",
                &c[1]
            );
        }
    }
    for name in &inputs {
        assert!(
            wired.iter().any(|w| w == *name),
            "input `{name}` reaches no step"
        );
    }
    // Outputs come from what `gantry ci build` writes to GITHUB_OUTPUT.
    let written = ["digest", "tags", "pushed", "labels", "json", "version"];
    for (name, def) in action["outputs"].as_object().unwrap() {
        let v = def["value"].as_str().unwrap();
        let out = v
            .trim_start_matches("${{ steps.gantry.outputs.")
            .trim_end_matches(" }}");
        assert!(written.contains(&out), "output `{name}` reads `{v}`");
    }
    assert!(
        !text.contains("${{ secrets"),
        "an action cannot read secrets"
    );
}

#[test]
fn action_builds_and_pushes_with_the_gantry_on_path() {
    let reg = TestRegistry::tls_basic();
    let mut r = Runner::new();
    scratch_context(&r.workspace.join("app"));
    let image = format!("{}/org/app", reg.addr);
    let password = reg.password.clone().unwrap();
    let ca = format!("{}={}", reg.addr, reg.ca_pem.as_ref().unwrap().display());
    r.input("context", "app")
        .input("images", &image)
        .input(
            "tags",
            "# the branch, then the commit\ntype=ref,event=branch\n\n  type=sha  \n",
        )
        .input("labels", "org.opencontainers.image.title=Custom title")
        .input("build-args", "GREETING=hi there")
        .input("registry", &reg.addr)
        .input("username", reg.username.as_deref().unwrap())
        .input("password", &password)
        .input("extra-args", &format!("--registry-certificate {ca}"));
    let result = r.run();
    assert!(result.success, "{}", result.log);
    assert!(result.log.contains("gantry: using "), "{}", result.log);
    assert!(result
        .log
        .contains(&format!("gantry: logging in to {}", reg.addr)));
    // The password appears once: in the mask command the runner hides it with.
    assert_eq!(result.log.matches(&password).count(), 1, "{}", result.log);
    assert!(result.log.contains(&format!("::add-mask::{password}")));
    let o = &result.outputs;
    let digest = o["digest"].clone();
    assert!(digest.starts_with("sha256:"), "{o:?}");
    assert_eq!(o["imageid"], digest);
    assert_eq!(o["version"], "main");
    assert_eq!(
        o["tags"],
        format!("{image}:main\n{image}:sha-{}", &SHA[..7])
    );
    assert_eq!(
        o["pushed"], o["tags"],
        "without per-arch the derived tags are pushed"
    );
    let meta: Value = serde_json::from_str(&o["metadata"]).unwrap();
    assert_eq!(meta["tags"][1], format!("{image}:sha-{}", &SHA[..7]));
    assert_eq!(
        meta["labels"]["org.opencontainers.image.title"],
        "Custom title"
    );
    assert!(o["labels"].contains(&format!("org.opencontainers.image.revision={SHA}")));
    let creds = format!("{}:{password}", reg.username.as_deref().unwrap());
    let extra = ["--tls-verify=false", "--creds", creds.as_str()];
    for tag in ["main".to_string(), format!("sha-{}", &SHA[..7])] {
        let inspect = skopeo_inspect(&format!("docker://{image}:{tag}"), false, &extra);
        assert_eq!(inspect["Digest"], digest, "{tag}");
    }
    let cfg = skopeo_inspect(&format!("docker://{image}:main"), true, &extra);
    assert_eq!(cfg["config"]["Labels"]["greeting"], "hi there");
    assert_eq!(
        cfg["config"]["Labels"]["org.opencontainers.image.source"],
        "https://github.com/org/app"
    );
    // The private docker config is gone after the step.
    let left: Vec<_> = std::fs::read_dir(r.tmp.path().join("runner-temp"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("gantry-docker"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn action_per_arch_matrix_then_manifest() {
    let reg = TestRegistry::plain();
    let image = format!("{}/org/multi", reg.addr);
    let extra = format!("--insecure-registry {}", reg.addr);
    let mut digests = BTreeMap::new();
    for platform in ["linux/amd64", "linux/arm64"] {
        let mut r = Runner::new();
        scratch_context(&r.workspace);
        r.input("images", &image)
            .input("tags", "type=ref,event=branch")
            .input("platforms", platform)
            .input("per-arch", "true")
            .input("extra-args", &extra);
        let result = r.run();
        assert!(result.success, "{}", result.log);
        let arch = platform.trim_start_matches("linux/");
        let inspect = skopeo_inspect(
            &format!("docker://{image}:main-{arch}"),
            false,
            &["--tls-verify=false"],
        );
        assert_eq!(inspect["Digest"], result.outputs["digest"]);
        assert_eq!(inspect["Architecture"], arch);
        assert_eq!(result.outputs["pushed"], format!("{image}:main-{arch}"));
        digests.insert(arch.to_string(), result.outputs["digest"].clone());
    }
    let mut r = Runner::new();
    r.input("command", "manifest")
        .input("images", &image)
        .input("tags", "type=ref,event=branch")
        .input("platforms", "linux/amd64,linux/arm64")
        .input("extra-args", &extra);
    let result = r.run();
    assert!(result.success, "{}", result.log);
    let raw =
        crate::harness::skopeo_raw(&format!("docker://{image}:main"), &["--tls-verify=false"]);
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

/// A release directory as cargo-dist lays one out, holding a stand-in gantry that records its
/// arguments: `<dir>/download/v9.9.9/gantry-x86_64-unknown-linux-musl.tar.xz(.sha256)`.
fn fake_release(root: &Path, checksum_ok: bool) -> PathBuf {
    fake_release_for(root, "x86_64", checksum_ok)
}

/// As [`fake_release`], with only the archive for `arch` (`x86_64` or `aarch64`).
fn fake_release_for(root: &Path, arch: &str, checksum_ok: bool) -> PathBuf {
    let name = format!("gantry-{arch}-unknown-linux-musl");
    let name = name.as_str();
    let stage = root.join("stage").join(name);
    std::fs::create_dir_all(&stage).unwrap();
    write_files(
        &stage,
        &[(
            "gantry",
            "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'gantry 9.9.9'; exit 0; fi\n\
             for a in \"$@\"; do printf '%s\\n' \"$a\"; done > \"$GANTRY_ARGS_FILE\"\n\
             printf 'digest=sha256:feed\\njson={}\\n' >> \"$GITHUB_OUTPUT\"\n",
        )],
    );
    crate::harness::ok(run(Command::new("chmod")
        .arg("+x")
        .arg(stage.join("gantry"))));
    let dl = root.join("releases").join("download").join("v9.9.9");
    std::fs::create_dir_all(&dl).unwrap();
    let archive = dl.join(format!("{name}.tar.xz"));
    crate::harness::ok(run(Command::new("tar")
        .arg("-cJf")
        .arg(&archive)
        .arg("-C")
        .arg(root.join("stage"))
        .arg(name)));
    let sum = if checksum_ok {
        let out = crate::harness::ok(run(Command::new("sha256sum").arg(&archive)));
        out.split(' ').next().unwrap().to_string()
    } else {
        "0".repeat(64)
    };
    std::fs::write(
        dl.join(format!("{name}.tar.xz.sha256")),
        format!("{sum} *{name}.tar.xz\n"),
    )
    .unwrap();
    root.join("releases")
}

#[test]
fn action_installs_a_verified_release_and_maps_every_input_to_a_flag() {
    let mut r = Runner::new();
    let releases = fake_release(r.tmp.path(), true);
    let args_file = r.tmp.path().join("args");
    r.path.clear(); // no gantry on PATH: the release is installed
    r.env("GANTRY_ARGS_FILE", &args_file.display().to_string())
        .input("version", "v9.9.9")
        .input("download-url", &format!("file://{}", releases.display()))
        .input("context", "ctx")
        .input("file", "ctx/Containerfile")
        .input("images", "reg.example/a\nreg.example/b")
        .input("tags", "type=semver,pattern={{version}}")
        .input("flavor", "latest=false")
        .input("labels", "a=1\nb=two words")
        .input("build-args", "X=1")
        .input("target", "final")
        .input("push", "false")
        .input("platforms", "linux/arm64")
        .input("per-arch", "true")
        .input("per-arch-template", "{{tag}}-{{os}}-{{arch}}")
        .input("cache", "true")
        .input("cache-repo", "reg.example/cache")
        .input(
            "extra-args",
            "--reproducible  --verbosity=debug\n--insecure",
        );
    let result = r.run();
    assert!(result.success, "{}", result.log);
    assert!(
        result
            .log
            .contains("gantry: installed gantry 9.9.9 (sha256 "),
        "{}",
        result.log
    );
    assert_eq!(result.outputs["digest"], "sha256:feed");
    let args = std::fs::read_to_string(&args_file).unwrap();
    let expected = [
        "ci",
        "build",
        "--image",
        "reg.example/a",
        "--image",
        "reg.example/b",
        "--tag",
        "type=semver,pattern={{version}}",
        "--flavor",
        "latest=false",
        "--per-arch-template",
        "{{tag}}-{{os}}-{{arch}}",
        "--context",
        "ctx",
        "--dockerfile",
        "ctx/Containerfile",
        "--target",
        "final",
        "--custom-platform",
        "linux/arm64",
        "--per-arch",
        "--no-push",
        "--cache=true",
        "--cache-repo",
        "reg.example/cache",
        "--label",
        "a=1",
        "--label",
        "b=two words",
        "--build-arg",
        "X=1",
        "--reproducible",
        "--verbosity=debug",
        "--insecure",
    ];
    assert_eq!(args.lines().collect::<Vec<_>>(), expected);

    // The same release with a wrong checksum is refused before anything runs.
    let mut r = Runner::new();
    let releases = fake_release(r.tmp.path(), false);
    r.path.clear();
    r.input("version", "9.9.9")
        .input("download-url", &format!("file://{}", releases.display()));
    let result = r.run();
    fails_with(
        &result,
        "checksum mismatch for `gantry-x86_64-unknown-linux-musl.tar.xz`: expected 0000",
    );
    // A version that is not there.
    let mut r = Runner::new();
    let releases = fake_release(r.tmp.path(), true);
    r.path.clear();
    r.input("version", "1.0.0")
        .input("download-url", &format!("file://{}", releases.display()));
    fails_with(&r.run(), "cannot download `file://");
}

#[test]
fn action_refuses_bad_input_with_one_line() {
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (
            &[],
            &[("RUNNER_OS", "macOS")],
            "gantry runs on Linux runners only; RUNNER_OS is `macOS`",
        ),
        (
            &[],
            &[("RUNNER_ARCH", "ARM")],
            "gantry has no release for RUNNER_ARCH `ARM`; supported: X64, ARM64",
        ),
        (
            &[("password", "x")],
            &[],
            "input `username` is required when `password` is set",
        ),
        (
            &[("username", "u")],
            &[],
            "input `password` is required when `username` is set",
        ),
        (
            &[("command", "manifest")],
            &[],
            "input `platforms` is required with command: manifest",
        ),
        (
            &[("command", "deploy")],
            &[],
            "input `command` is `deploy`; expected build or manifest",
        ),
        (
            &[("command", "")],
            &[],
            "input `command` is required: build or manifest",
        ),
        (
            &[("push", "yes")],
            &[],
            "input `push` is `yes`; expected true or false",
        ),
        (
            &[("sudo", "maybe")],
            &[],
            "input `sudo` is `maybe`; expected auto, true or false",
        ),
    ];
    for (inputs, env, message) in cases {
        let mut r = Runner::new();
        for (k, v) in *inputs {
            r.input(k, v);
        }
        for (k, v) in *env {
            r.env(k, v);
        }
        fails_with(&r.run(), message);
    }
}

/// Puts a stand-in `sudo` first on the runner's PATH. It appends each call's arguments to the
/// returned file, answers `sudo -n true` (the action's "does passwordless sudo work?" probe) with
/// `passwordless`, and runs `sudo -E CMD...` as CMD (as the calling user: the test checks the
/// action's choice, not sudo).
fn fake_sudo(r: &mut Runner, passwordless: bool) -> PathBuf {
    let bin = r.tmp.path().join("sudo-bin");
    let record = r.tmp.path().join("sudo-calls");
    let probe = if passwordless { 0 } else { 1 };
    write_files(
        &bin,
        &[(
            "sudo",
            &format!(
                "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\n[ \"$1\" = -n ] && exit {probe}\n[ \"$1\" = -E ] && shift\nexec \"$@\"\n",
                record.display()
            ),
        )],
    );
    crate::harness::ok(run(Command::new("chmod").arg("+x").arg(bin.join("sudo"))));
    r.path.insert(0, bin);
    record
}

/// The calls the stand-in sudo saw, one line each (none when it was never called).
fn sudo_calls(record: &Path) -> Vec<String> {
    std::fs::read_to_string(record)
        .map(|t| t.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

const SUDO_LINE: &str =
    "gantry: running with sudo: RUN steps need root for chroot isolation on this runner";

/// A runner whose steps run as a user that is not root, as on GitHub-hosted runners (`runner`,
/// uid 1001). As root the tests drop to `nobody`, handing it the runner's directories;
/// otherwise the test's own user is already not root.
fn non_root_runner() -> Runner {
    let mut r = Runner::new();
    if crate::harness::is_root() {
        let nobody = 65534;
        r.uid = Some(nobody);
        crate::harness::ok(run(Command::new("chown")
            .arg("-R")
            .arg(format!("{nobody}:{nobody}"))
            .arg(r.tmp.path())));
    }
    r
}

#[test]
fn action_runs_gantry_with_sudo_and_says_so() {
    let mut r = Runner::new();
    scratch_context(&r.workspace);
    let record = fake_sudo(&mut r, true);
    r.input("sudo", "true")
        .input("push", "false")
        .input("tags", "type=raw,value=x");
    let result = r.run();
    assert!(result.success, "{}", result.log);
    assert!(result.log.contains(SUDO_LINE), "{}", result.log);
    let gantry = gantry_path_dir(r.tmp.path()).join("gantry");
    let calls = sudo_calls(&record);
    assert_eq!(
        calls.len(),
        1,
        "sudo: true asks no question first: {calls:?}"
    );
    assert!(
        calls[0].starts_with(&format!("-E {} ci build", gantry.display())),
        "{calls:?}"
    );
    assert!(result.outputs["digest"].starts_with("sha256:"));
}

#[test]
fn action_sudo_auto_uses_passwordless_sudo_for_a_non_root_runner_user() {
    // The default, `sudo: auto`, as GitHub-hosted runners meet it: the steps run as a user that
    // is not root, and `sudo -n` works.
    let mut r = non_root_runner();
    r.inputs.remove("sudo");
    scratch_context(&r.workspace);
    let record = fake_sudo(&mut r, true);
    r.input("push", "false").input("tags", "type=raw,value=x");
    let result = r.run();
    assert!(result.success, "{}", result.log);
    assert!(result.log.contains(SUDO_LINE), "{}", result.log);
    let gantry = gantry_path_dir(r.tmp.path()).join("gantry");
    let calls = sudo_calls(&record);
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0], "-n true");
    assert!(
        calls[1].starts_with(&format!("-E {} ci build ", gantry.display())),
        "{calls:?}"
    );
    assert!(
        result.outputs["digest"].starts_with("sha256:"),
        "{:?}",
        result.outputs
    );
}

#[test]
fn action_sudo_auto_runs_gantry_directly_when_sudo_needs_a_password() {
    // A self-hosted runner whose user has no passwordless sudo: `auto` asks once, then runs
    // gantry as the user (RUN steps then use rootless isolation where the kernel allows it).
    let mut r = non_root_runner();
    r.inputs.remove("sudo");
    scratch_context(&r.workspace);
    let record = fake_sudo(&mut r, false);
    r.input("push", "false").input("tags", "type=raw,value=x");
    let result = r.run();
    assert!(result.success, "{}", result.log);
    assert!(!result.log.contains(SUDO_LINE), "{}", result.log);
    assert_eq!(sudo_calls(&record), ["-n true"]);
    assert!(result.outputs["digest"].starts_with("sha256:"));
}

#[test]
fn action_sudo_auto_never_calls_sudo_as_root() {
    if !crate::harness::is_root() {
        eprintln!("skipping: the root runner case needs the test to run as root");
        return;
    }
    let mut r = Runner::new();
    r.inputs.remove("sudo");
    scratch_context(&r.workspace);
    let record = fake_sudo(&mut r, true);
    r.input("push", "false").input("tags", "type=raw,value=x");
    let result = r.run();
    assert!(result.success, "{}", result.log);
    assert!(!result.log.contains(SUDO_LINE), "{}", result.log);
    assert_eq!(sudo_calls(&record), Vec::<String>::new());
}

#[test]
fn action_installs_the_aarch64_release_on_arm64_runners() {
    // Only the aarch64 archive exists: picking any other asset fails the download.
    let mut r = Runner::new();
    let releases = fake_release_for(r.tmp.path(), "aarch64", true);
    let args_file = r.tmp.path().join("args");
    r.path.clear();
    r.env("RUNNER_ARCH", "ARM64")
        .env("GANTRY_ARGS_FILE", &args_file.display().to_string())
        .input("version", "9.9.9")
        .input("download-url", &format!("file://{}", releases.display()));
    let result = r.run();
    assert!(result.success, "{}", result.log);
    assert!(
        result.log.contains(&format!(
            "gantry: downloading file://{}/download/v9.9.9/gantry-aarch64-unknown-linux-musl.tar.xz",
            releases.display()
        )),
        "{}",
        result.log
    );
    assert!(result
        .log
        .contains("gantry: installed gantry 9.9.9 (sha256 "));
    let args = std::fs::read_to_string(&args_file).unwrap();
    assert_eq!(args.lines().take(2).collect::<Vec<_>>(), ["ci", "build"]);
    // The same runner with only the x86_64 archive published: the download names the asset.
    let mut r = Runner::new();
    let releases = fake_release_for(r.tmp.path(), "x86_64", true);
    r.path.clear();
    r.env("RUNNER_ARCH", "ARM64")
        .input("version", "9.9.9")
        .input("download-url", &format!("file://{}", releases.display()));
    fails_with(
        &r.run(),
        "/download/v9.9.9/gantry-aarch64-unknown-linux-musl.tar.xz`",
    );
}
