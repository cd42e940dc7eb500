//! Shared helpers for the integration tests: temporary directories, the gantry binary, and the
//! real parts the tests talk to (registries, base-image fixtures).

#![allow(dead_code)]

pub mod faultproxy;
pub mod fixtures;
pub mod registry;
pub mod servers;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The gantry binary under test.
pub fn gantry_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gantry"))
}

/// A `gantry` command with a clean environment for registry credentials, so that the machine's
/// own docker config never leaks into a test.
/// It runs in `home`, as a CI job runs in its checkout: kaniko (and gantry) look for the
/// Dockerfile in the working directory before the context, and the repository's own Dockerfile
/// must not be found by accident.
pub fn gantry(home: &Path) -> Command {
    std::fs::create_dir_all(home).unwrap();
    let mut cmd = Command::new(gantry_bin());
    cmd.current_dir(home)
        .env("HOME", home)
        .env_remove("DOCKER_CONFIG")
        .env_remove("SOURCE_DATE_EPOCH")
        .env("CI", "true")
        .env("NO_COLOR", "1");
    cmd
}

/// Runs a command and returns its output, failing the test with both streams if it could not
/// start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout, showing stderr on failure.
#[track_caller]
pub fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "command failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Asserts failure and returns stderr.
#[track_caller]
pub fn fails(o: Output) -> String {
    assert!(
        !o.status.success(),
        "command unexpectedly succeeded\nstdout:\n{}\nstderr:\n{}",
        stdout(&o),
        stderr(&o)
    );
    stderr(&o)
}

/// Writes files into a directory: `(relative path, content)`.
pub fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (rel, content) in files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
    }
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// `skopeo inspect` of an image, as JSON (`--config` when `config` is true).
pub fn skopeo_inspect(image: &str, config: bool, extra: &[&str]) -> serde_json::Value {
    let mut cmd = Command::new("skopeo");
    cmd.arg("inspect");
    if config {
        cmd.arg("--config");
    }
    cmd.args(extra).arg(image);
    let out = ok(run(&mut cmd));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("skopeo output is not JSON: {e}\n{out}"))
}

/// `skopeo inspect --raw`, as bytes.
pub fn skopeo_raw(image: &str, extra: &[&str]) -> Vec<u8> {
    let out = run(Command::new("skopeo")
        .arg("inspect")
        .arg("--raw")
        .args(extra)
        .arg(image));
    assert!(
        out.status.success(),
        "skopeo inspect --raw {image} failed: {}",
        stderr(&out)
    );
    out.stdout
}

/// Unpacks an image from an OCI layout with umoci and returns the rootfs path. Needs root to
/// keep owners; without root umoci runs rootless and owners are mapped.
pub fn umoci_unpack(layout: &Path, tag: &str, dest: &Path) -> PathBuf {
    let mut cmd = Command::new("umoci");
    cmd.arg("unpack");
    if !is_root() {
        cmd.arg("--rootless");
    }
    cmd.arg("--image")
        .arg(format!("{}:{tag}", layout.display()))
        .arg(dest);
    ok(run(&mut cmd));
    dest.join("rootfs")
}

/// Copies an image from a registry into an OCI layout with skopeo (plain HTTP registry).
pub fn skopeo_to_layout(image: &str, layout: &Path, tag: &str, extra: &[&str]) {
    ok(run(Command::new("skopeo")
        .arg("copy")
        .args(extra)
        .arg(image)
        .arg(format!("oci:{}:{tag}", layout.display()))));
}

/// Runs a command in an image with podman (vfs storage in a private directory, no network).
pub fn podman_run(storage: &Path, image: &str, cmd: &[&str]) -> Output {
    let mut c = Command::new("podman");
    c.arg("--root")
        .arg(storage.join("root"))
        .arg("--runroot")
        .arg(storage.join("runroot"))
        .args([
            "--storage-driver",
            "vfs",
            "--runtime",
            "runc",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "none",
        ])
        .args(["run", "--rm", "--tls-verify=false", "--network", "none"])
        .args([
            "--ulimit",
            "nofile=20000:20000",
            "--ulimit",
            "nproc=4096:4096",
        ])
        .arg(image)
        .args(cmd);
    run(&mut c)
}

/// The entries of each layer of `layout:tag` as GNU tar lists them with `--numeric-owner -tv`:
/// `(name, uid, gid)`, names without `./`, the trailing `/` of directories and a link's target,
/// in archive order.
pub fn layer_entries(layout: &Path, tag: &str) -> Vec<Vec<(String, u32, u32)>> {
    let manifest: serde_json::Value = serde_json::from_slice(&fixtures::blob(
        layout,
        &fixtures::manifest_digest(layout, tag),
    ))
    .expect("the manifest is JSON");
    manifest["layers"]
        .as_array()
        .expect("the manifest has layers")
        .iter()
        .map(|l| {
            let hex = l["digest"].as_str().unwrap().trim_start_matches("sha256:");
            let out = ok(run(Command::new("tar")
                .args(["--numeric-owner", "-tvzf"])
                .arg(layout.join("blobs/sha256").join(hex))));
            out.lines().filter_map(tar_line).collect()
        })
        .collect()
}

/// `drwxr-xr-x 0/0 0 1970-01-01 00:00 ./name/` → `("name", 0, 0)`.
fn tar_line(line: &str) -> Option<(String, u32, u32)> {
    let mut rest = line.trim_start();
    let mut fields = Vec::new();
    for _ in 0..5 {
        let end = rest.find(char::is_whitespace)?;
        fields.push(&rest[..end]);
        rest = rest[end..].trim_start();
    }
    let (uid, gid) = fields[1].split_once('/')?;
    let name = rest
        .split(" -> ")
        .next()
        .and_then(|n| n.split(" link to ").next())?;
    let name = name.trim_start_matches("./").trim_end_matches('/');
    if name.is_empty() {
        return None;
    }
    Some((name.to_string(), uid.parse().ok()?, gid.parse().ok()?))
}

/// [`layer_entries`] without the owners.
pub fn layer_listings(layout: &Path, tag: &str) -> Vec<Vec<String>> {
    layer_entries(layout, tag)
        .into_iter()
        .map(|l| l.into_iter().map(|(name, _, _)| name).collect())
        .collect()
}

/// Exit status, peak RSS in KiB and stderr of a command, measured by GNU time. (wait4's
/// `ru_maxrss` on a child of this test process is not used: a child forked from the big test
/// binary can report the parent's resident pages.)
pub fn peak_rss_kib(cmd: &mut std::process::Command) -> (i32, u64, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rss");
    let mut timed = std::process::Command::new("/usr/bin/time");
    timed
        .args(["-f", "%M", "-o"])
        .arg(&out)
        .arg(cmd.get_program());
    timed.args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => timed.env(k, v),
            None => timed.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        timed.current_dir(d);
    }
    let o = timed.stdout(std::process::Stdio::null()).output().unwrap();
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let kib = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS from /usr/bin/time: {text}"));
    (
        o.status.code().unwrap_or(-1),
        kib,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}
