//! gantry's own image (the root Dockerfile), built by gantry from a static binary and run with
//! podman: `--version` through both entry paths, the CA bundle and the in-place marker, and a
//! small build inside the debug image in in-place mode.
//!
//! The static binary is built by `scripts/build-static.sh` (scripts/test.sh runs it before the
//! suite; cargo cannot build it from inside a running test without waiting on its own lock).
//! The build inside the container has no RUN: gantry's in-place RUN support is still limited,
//! so the in-place test covers the isolation choice and a COPY-only build.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::repo;
use crate::harness::registry::TestRegistry;
use crate::harness::{gantry, is_root, ok, run, skopeo_inspect, stderr, stdout, write_files};

/// The static binary scripts/build-static.sh builds.
fn static_binary() -> Option<PathBuf> {
    let p = repo().join("target/x86_64-unknown-linux-gnu/release/gantry");
    p.exists().then_some(p)
}

/// A podman command with private vfs storage, as the harness's `podman_run`.
/// `podman run` with the limits this machine allows, on the given network.
fn run_args(network: &str) -> [&str; 9] {
    [
        "run",
        "--rm",
        "--tls-verify=false",
        "--network",
        network,
        "--ulimit",
        "nofile=20000:20000",
        "--ulimit",
        "nproc=4096:4096",
    ]
}

fn podman(storage: &Path) -> Command {
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
        ]);
    c
}

#[test]
fn gantry_builds_its_own_image_and_podman_runs_it() {
    if !is_root() {
        eprintln!("skipping: running gantry's image with podman (vfs, runc) needs root");
        return;
    }
    let Some(bin) = static_binary() else {
        eprintln!(
            "skipping: no static binary; run `bash scripts/build-static.sh` (scripts/test.sh does)"
        );
        return;
    };
    let reg = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let context = tmp.path().join("image-context");
    ok(run(Command::new("bash")
        .arg(repo().join("scripts/image-context.sh"))
        .arg(&context)
        .arg(&bin)));
    let image = format!("{}/gantry/gantry", reg.addr);
    let dockerfile = repo().join("Dockerfile");
    for (target, tag) in [(None, "latest"), (Some("debug"), "debug")] {
        let mut cmd = gantry(tmp.path());
        cmd.args(["build", "--context"])
            .arg(&context)
            .arg("--dockerfile")
            .arg(&dockerfile)
            .args(["--destination", &format!("{image}:{tag}")])
            .args(["--insecure-registry", &reg.addr, "--reproducible"]);
        if let Some(t) = target {
            cmd.args(["--target", t]);
        }
        ok(run(&mut cmd));
    }
    let cfg = skopeo_inspect(
        &format!("docker://{image}:latest"),
        true,
        &["--tls-verify=false"],
    );
    assert_eq!(cfg["config"]["Entrypoint"][0], "/usr/local/bin/gantry");
    assert_eq!(cfg["config"]["WorkingDir"], "/workspace");
    assert_eq!(
        cfg["config"]["Labels"]["org.opencontainers.image.title"],
        "gantry"
    );

    let storage = tmp.path().join("podman");
    let version = ok(run(podman(&storage)
        .args(run_args("none"))
        .arg(format!("{image}:latest"))
        .arg("--version")));
    let expected = format!("gantry {}\n", env!("CARGO_PKG_VERSION"));
    assert_eq!(version, expected);
    // kaniko's path, and the files the image promises, seen from the debug image's shell.
    let out = ok(run(podman(&storage)
        .args(run_args("none"))
        .args(["--entrypoint", "/kaniko/executor"])
        .arg(format!("{image}:debug"))
        .arg("--version")));
    assert_eq!(out, expected);
    let out = ok(run(podman(&storage)
        .args(run_args("none"))
        .args(["--entrypoint", "sh"])
        .arg(format!("{image}:debug"))
        .args([
            "-c",
            "test -s /etc/ssl/certs/ca-certificates.crt && test -f /kaniko/.gantry-image && \
             test -d /workspace && pwd && echo $PATH",
        ])));
    assert_eq!(out, "/workspace\n/usr/local/bin:/kaniko:/busybox\n");
    // The plain image has no shell.
    let out = run(podman(&storage)
        .args(run_args("none"))
        .args(["--entrypoint", "sh"])
        .arg(format!("{image}:latest")));
    assert!(!out.status.success(), "the release image has a shell");

    // A build inside the debug image, in place, pushing to the registry on the host.
    let ctx = tmp.path().join("inner");
    write_files(
        &ctx,
        &[
            (
                "Dockerfile",
                "FROM scratch\nCOPY msg.txt /msg.txt\nCMD [\"/msg.txt\"]\n",
            ),
            ("msg.txt", "built inside gantry's image\n"),
        ],
    );
    let inner = format!("{}/inner/app:1", reg.addr);
    let out = run(podman(&storage)
        .args(run_args("host"))
        .arg("-v")
        .arg(format!("{}:/workspace", ctx.display()))
        .arg(format!("{image}:debug"))
        .args([
            "build",
            "--isolation",
            "in-place",
            "--context",
            "/workspace",
        ])
        .args(["--destination", &inner, "--insecure-registry", &reg.addr])
        .args(["--digest-file", "/workspace/digest"]));
    assert!(
        out.status.success(),
        "build in the image failed\nstdout:\n{}\nstderr:\n{}",
        stdout(&out),
        stderr(&out)
    );
    let digest = std::fs::read_to_string(ctx.join("digest")).unwrap();
    let inspect = skopeo_inspect(&format!("docker://{inner}"), false, &["--tls-verify=false"]);
    assert_eq!(inspect["Digest"], digest.trim());
}
