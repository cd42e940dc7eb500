//! gantry's own image (the root Dockerfile), built by gantry from a static binary and run with
//! podman: `--version` through both entry paths, the CA bundle and the in-place marker, a small
//! build inside the debug image, and multi-stage builds with RUN steps inside the debug image, in
//! place, as a GitLab job using the Docker executor runs them.
//!
//! The static binary is built by `scripts/build-static.sh` (scripts/test.sh runs it before the
//! suite; cargo cannot build it from inside a running test without waiting on its own lock).
//! Rebuild it after changing gantry, or these tests check the previous binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::repo;
use crate::harness::registry::TestRegistry;
use crate::harness::{
    gantry, is_root, layer_listings, ok, run, skopeo_inspect, skopeo_to_layout, stderr, stdout,
    umoci_unpack, write_files,
};

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

/// The static binary when these tests can run here (root, for podman with vfs and runc), or
/// `None` with the reason on stderr.
fn can_run(test: &str) -> Option<PathBuf> {
    if !is_root() {
        eprintln!("skipping {test}: running gantry's image with podman (vfs, runc) needs root");
        return None;
    }
    let bin = static_binary();
    if bin.is_none() {
        eprintln!(
            "skipping {test}: no static binary; run `bash scripts/build-static.sh` (scripts/test.sh does)"
        );
    }
    bin
}

/// Builds gantry's image (`latest`) and its debug target (`debug`) from `bin` with gantry, and
/// pushes both to `reg`; returns the repository (`host:port/gantry/gantry`).
fn build_own_image(tmp: &Path, reg: &TestRegistry, bin: &Path) -> String {
    let context = tmp.join("image-context");
    ok(run(Command::new("bash")
        .arg(repo().join("scripts/image-context.sh"))
        .arg(&context)
        .arg(bin)));
    let image = format!("{}/gantry/gantry", reg.addr);
    let dockerfile = repo().join("Dockerfile");
    for (target, tag) in [(None, "latest"), (Some("debug"), "debug")] {
        let mut cmd = gantry(tmp);
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
    image
}

#[test]
fn gantry_builds_its_own_image_and_podman_runs_it() {
    let Some(bin) = can_run("gantry_builds_its_own_image_and_podman_runs_it") else {
        return;
    };
    let reg = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let image = build_own_image(tmp.path(), &reg, &bin);
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
            "test -s /kaniko/ssl/certs/ca-certificates.crt && test -f /kaniko/.gantry-image && \
             test \"$SSL_CERT_FILE\" = /kaniko/ssl/certs/ca-certificates.crt && \
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

/// A GitLab job on the Docker executor, as gantry's debug image sees it: an unprivileged
/// container (no namespaces, no mounts) with the project mounted at /workspace. With no
/// `--isolation`, gantry must pick in-place, run every RUN over `/`, and keep its own work
/// files, /workspace, /var/run and the container's mounts out of the layers; a second stage
/// starts from an emptied root; `--cleanup` lets the next build run in the same container with
/// gantry's own files intact; and kaniko's entry path with kaniko's flags builds the same image.
#[test]
fn debug_image_runs_multi_stage_builds_in_place() {
    let Some(bin) = can_run("debug_image_runs_multi_stage_builds_in_place") else {
        return;
    };
    let reg = TestRegistry::plain();
    let base = crate::build_tests::push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let image = build_own_image(tmp.path(), &reg, &bin);
    let ctx = tmp.path().join("project");
    let dockerfile = format!(
        "FROM {base} AS build\n\
         RUN mkdir -p /out /var/run && echo one > /out/one.txt && echo 1 > /var/run/build.pid\n\
         RUN echo two > /out/two.txt\n\
         FROM {base}\n\
         COPY --from=build /out/ /app/\n\
         RUN test ! -e /out && cat /app/one.txt /app/two.txt > /app/both.txt\n\
         CMD [\"cat\", \"/app/both.txt\"]\n"
    );
    write_files(
        &ctx,
        &[("Dockerfile", &dockerfile), ("notes.txt", "context only\n")],
    );
    let app = format!("{}/inner/app", reg.addr);
    let flags = format!("--insecure-registry {}", reg.addr);
    let script = format!(
        "set -e\n\
         gantry build --context /workspace --target build --destination {app}:build {flags} --cleanup\n\
         test ! -e /out && test -f /var/run/build.pid\n\
         gantry build --context /workspace --target build --destination {app}:var-run {flags} \
           --ignore-var-run=false --cleanup\n\
         test ! -e /var\n\
         gantry build --context /workspace --destination {app}:gantry {flags} --reproducible \
           --digest-file /workspace/digest-gantry --cleanup\n\
         test -x /busybox/sh && test -s /kaniko/ssl/certs/ca-certificates.crt\n\
         test -f /kaniko/.gantry-image && test -x /usr/local/bin/gantry\n\
         test ! -e /app && test ! -e /out && test ! -e /bin && test ! -e /etc/passwd\n\
         ls -A /tmp > /workspace/tmp-after\n\
         /kaniko/executor --context dir:///workspace --dockerfile /workspace/Dockerfile \
           --destination {app}:kaniko {flags} --reproducible --snapshot-mode=redo \
           --digest-file /workspace/digest-kaniko\n"
    );
    let out = run(podman(&tmp.path().join("podman"))
        .args(run_args("host"))
        .arg("-v")
        .arg(format!("{}:/workspace", ctx.display()))
        .args(["--entrypoint", "sh"])
        .arg(format!("{image}:debug"))
        .args(["-c", &script]));
    let log = stderr(&out);
    assert!(
        out.status.success(),
        "builds in the debug image failed\nstdout:\n{}\nstderr:\n{log}",
        stdout(&out)
    );
    assert_eq!(log.matches("RUN isolation: InPlace").count(), 4, "{log}");
    assert!(log.contains("emptying / for the next stage"), "{log}");
    assert_eq!(log.matches("--cleanup: emptied /").count(), 3, "{log}");
    assert_eq!(
        std::fs::read_to_string(ctx.join("tmp-after")).unwrap(),
        "",
        "gantry left files in /tmp"
    );

    let layout = tmp.path().join("layout");
    for tag in ["build", "var-run", "gantry", "kaniko"] {
        skopeo_to_layout(
            &format!("docker://{app}:{tag}"),
            &layout,
            tag,
            &["--src-tls-verify=false"],
        );
    }
    let base_layers = layer_listings(&crate::harness::fixtures::busybox(), "latest");
    let strs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // Only what each RUN wrote: not the previous RUN's layer blob in the work directory, not
    // /workspace, not /var/run unless asked.
    let mut want = base_layers.clone();
    want.push(strs(&["out", "out/one.txt", "var"]));
    want.push(strs(&["out", "out/two.txt"]));
    assert_eq!(layer_listings(&layout, "build"), want);
    let mut want = base_layers.clone();
    want.push(strs(&[
        "out",
        "out/one.txt",
        "var",
        "var/run",
        "var/run/build.pid",
    ]));
    want.push(strs(&["out", "out/two.txt"]));
    assert_eq!(layer_listings(&layout, "var-run"), want);
    let mut want = base_layers;
    want.push(strs(&["app", "app/one.txt", "app/two.txt"]));
    want.push(strs(&["app", "app/both.txt"]));
    assert_eq!(layer_listings(&layout, "gantry"), want);

    // kaniko's path and flags give the very same image.
    let digest = std::fs::read_to_string(ctx.join("digest-gantry")).unwrap();
    assert_eq!(
        std::fs::read_to_string(ctx.join("digest-kaniko")).unwrap(),
        digest
    );
    let inspect = skopeo_inspect(
        &format!("docker://{app}:gantry"),
        false,
        &["--tls-verify=false"],
    );
    assert_eq!(inspect["Digest"], digest.trim());

    let rootfs = umoci_unpack(&layout, "gantry", &tmp.path().join("bundle"));
    assert_eq!(
        std::fs::read_to_string(rootfs.join("app/both.txt")).unwrap(),
        "one\ntwo\n"
    );
    let rootfs = umoci_unpack(&layout, "var-run", &tmp.path().join("bundle-var-run"));
    assert_eq!(
        std::fs::read_to_string(rootfs.join("var/run/build.pid")).unwrap(),
        "1\n"
    );
}
