//! RUN end to end: the root filesystem, the sandbox and snapshots, checked in the pushed image
//! with umoci and podman. These need root (overlayfs, namespaces) and say so when they skip.

mod interrupt;

use crate::build_tests::{build_in, build_in_env, push_busybox};
use crate::harness::registry::TestRegistry;
use crate::harness::*;

#[allow(clippy::print_stderr)] // the skip message is for the person running the tests
fn need_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    eprintln!(
        "skipping {test}: RUN needs root for overlayfs and namespaces (run the suite as root)"
    );
    false
}

#[test]
fn run_steps_snapshot_changes_deletions_and_users() {
    if !need_root("run_steps_snapshot_changes_deletions_and_users") {
        return;
    }
    run_steps(false);
}

#[test]
fn run_steps_without_overlay_snapshot_by_metadata_walks() {
    if !need_root("run_steps_without_overlay_snapshot_by_metadata_walks") {
        return;
    }
    run_steps(true);
}

fn run_steps(no_overlay: bool) {
    let reg = TestRegistry::plain();
    let base = push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let dest = format!("{}/app/run:1", reg.addr);
    let df = format!(
        "FROM {base}\n\
         ARG WHO=builder\n\
         RUN echo \"made by $WHO\" > /made.txt && mkdir -p /data/sub && echo x > /data/sub/f\n\
         RUN rm -rf /data/sub && rm /etc/group.bak 2>/dev/null; true\n\
         RUN true\n\
         USER app\n\
         RUN id -u > /tmp/uid && id -G > /tmp/gids\n\
         USER root\n\
         RUN <<EOF\n\
         set -e\n\
         echo heredoc > /heredoc.txt\n\
         EOF\n\
         WORKDIR /work\n\
         RUN pwd > /work/pwd.txt\n\
         CMD [\"cat\", \"/made.txt\"]\n"
    );
    let envs: &[(&str, &str)] = if no_overlay {
        &[("GANTRY_NO_OVERLAY", "1")]
    } else {
        &[]
    };
    let out = build_in_env(
        &tmp.path().join("ctx"),
        &df,
        &[],
        &[
            "--destination",
            &dest,
            "--insecure-registry",
            &reg.addr,
            "--build-arg",
            "WHO=gantry",
        ],
        envs,
    );
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    // The two snapshot modes leave different traces: a tree the layers are applied to, or
    // layers unpacked once as overlay lower directories.
    if no_overlay {
        assert!(log.contains("layer(s) to"), "{log}");
        assert!(!log.contains("unpacked"), "{log}");
    } else {
        assert!(log.contains("unpacked"), "{log}");
    }
    let text = ok(out);
    assert!(text.trim().starts_with("sha256:"), "{text}");
    let cfg = skopeo_inspect(&format!("docker://{dest}"), true, &["--tls-verify=false"]);
    // busybox + RUN(made) + RUN(rm) + RUN(id) + RUN(heredoc) + WORKDIR + RUN(pwd); `RUN true` adds none.
    assert_eq!(
        cfg["rootfs"]["diff_ids"].as_array().unwrap().len(),
        7,
        "{cfg}"
    );
    let history = cfg["history"].as_array().unwrap();
    let run_true = history
        .iter()
        .find(|h| h["created_by"] == "RUN true")
        .expect("RUN true in history");
    assert_eq!(run_true["empty_layer"], true);
    // Build arguments never reach the config.
    assert!(!cfg["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e.as_str().unwrap().starts_with("WHO=")));

    let layout = tmp.path().join("pulled");
    skopeo_to_layout(
        &format!("docker://{dest}"),
        &layout,
        "1",
        &["--src-tls-verify=false"],
    );
    let rootfs = umoci_unpack(&layout, "1", &tmp.path().join("bundle"));
    assert_eq!(
        std::fs::read_to_string(rootfs.join("made.txt")).unwrap(),
        "made by gantry\n"
    );
    assert!(rootfs.join("data").is_dir());
    assert!(
        !rootfs.join("data/sub").exists(),
        "deleted directory must be whited out"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("tmp/uid")).unwrap(),
        "1000\n"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("heredoc.txt")).unwrap(),
        "heredoc\n"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("work/pwd.txt")).unwrap(),
        "/work\n"
    );
    // The sandbox's mount points and DNS files are not in any layer.
    assert!(!rootfs.join("etc/resolv.conf").exists());

    let out = podman_run(&tmp.path().join("podman"), &format!("docker://{dest}"), &[]);
    assert_eq!(ok(out), "made by gantry\n");
}

#[test]
fn failing_run_names_the_line_command_and_exit_code() {
    if !need_root("failing_run_names_the_line_command_and_exit_code") {
        return;
    }
    let reg = TestRegistry::plain();
    let base = push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let err = fails(build_in(
        &tmp.path().join("ctx"),
        &format!("FROM {base}\nRUN echo ok\nRUN exit 3\n"),
        &[],
        &["--no-push", "--insecure-registry", &reg.addr],
    ));
    assert!(err.contains("Dockerfile:3"), "{err}");
    assert!(err.contains("RUN exit 3"), "{err}");
    assert!(err.contains("exit code 3"), "{err}");
}

#[test]
fn exec_form_with_missing_binary_is_one_clear_error() {
    if !need_root("exec_form_with_missing_binary_is_one_clear_error") {
        return;
    }
    let reg = TestRegistry::plain();
    let base = push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let err = fails(build_in(
        &tmp.path().join("ctx"),
        &format!("FROM {base}\nRUN [\"/usr/bin/nothere\", \"x\"]\n"),
        &[],
        &["--no-push", "--insecure-registry", &reg.addr],
    ));
    assert!(err.contains("/usr/bin/nothere"), "{err}");
    assert!(err.contains("Dockerfile:2"), "{err}");
}

#[test]
fn multi_stage_copies_what_a_run_made() {
    if !need_root("multi_stage_copies_what_a_run_made") {
        return;
    }
    let reg = TestRegistry::plain();
    let base = push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let df = format!(
        "FROM {base} AS build\nRUN mkdir /out && head -c 1048576 /dev/zero > /out/artifact.bin && echo built > /out/ok\n\
         FROM {base} AS unused\nRUN exit 1\n\
         FROM {base}\nCOPY --from=build /out/ /app/\nRUN test -s /app/artifact.bin && cat /app/ok > /app/checked\n"
    );
    let out = build_in(
        &tmp.path().join("ctx"),
        &df,
        &[],
        &[
            "--no-push",
            "--skip-unused-stages",
            "--insecure-registry",
            &reg.addr,
            "--oci-layout-path",
            layout.to_str().unwrap(),
        ],
    );
    ok(out);
    let rootfs = umoci_unpack(&layout, "latest", &tmp.path().join("bundle"));
    assert_eq!(
        std::fs::metadata(rootfs.join("app/artifact.bin"))
            .unwrap()
            .len(),
        1_048_576
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("app/checked")).unwrap(),
        "built\n"
    );
}

#[test]
fn single_snapshot_merges_the_final_stage_into_one_layer() {
    if !need_root("single_snapshot_merges_the_final_stage_into_one_layer") {
        return;
    }
    let reg = TestRegistry::plain();
    let base = push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let dest = format!("{}/app/single:1", reg.addr);
    let df = format!(
        "FROM {base}\n\
         RUN mkdir /d && echo 1 > /d/a && echo x > /d/b\n\
         RUN rm /d/b && echo 2 > /d/a\n\
         COPY f /f\n\
         RUN rm /bin/vi\n\
         CMD [\"sh\"]\n"
    );
    let out = build_in(
        &tmp.path().join("ctx"),
        &df,
        &[("f", "copied\n")],
        &[
            "--destination",
            &dest,
            "--insecure-registry",
            &reg.addr,
            "--single-snapshot",
            "--cleanup",
        ],
    );
    let log = stderr(&out);
    ok(out);
    assert!(
        log.contains("--single-snapshot: 4 layer(s) merged into"),
        "{log}"
    );
    assert!(
        log.contains("--cleanup: the root filesystem is in the work directory"),
        "{log}"
    );
    let cfg = skopeo_inspect(&format!("docker://{dest}"), true, &["--tls-verify=false"]);
    let diff_ids = cfg["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(diff_ids.len(), 2, "{cfg}");
    let with_layers = cfg["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["empty_layer"] != true)
        .count();
    assert_eq!(with_layers, 2, "{cfg}");
    let run = podman_run(
        &tmp.path().join("podman"),
        &dest,
        &[
            "sh",
            "-c",
            "cat /d/a /f; test -e /d/b || echo no-b; test -e /bin/vi || echo no-vi; ls /bin/sh",
        ],
    );
    assert_eq!(
        stdout(&run),
        "2\ncopied\nno-b\nno-vi\n/bin/sh\n",
        "{}",
        stderr(&run)
    );
}
