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

/// `--ignore-path` keeps a path out of every RUN layer, and later RUNs of the build still see
/// what was written there; the same with overlay and with metadata walks.
fn ignore_path_stays_out_of_layers(no_overlay: bool) {
    let reg = TestRegistry::plain();
    let base = push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let df = format!(
        "FROM {base}\n\
         RUN mkdir -p /var/cache/gantry /keep && echo c > /var/cache/gantry/f && echo k > /keep/f\n\
         RUN test -f /var/cache/gantry/f && echo seen > /keep/seen && echo more > /var/cache/gantry/g\n"
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
            "--no-push",
            "--insecure-registry",
            &reg.addr,
            "--ignore-path",
            "/var/cache/gantry",
            "--oci-layout-path",
            layout.to_str().unwrap(),
        ],
        envs,
    );
    let log = stderr(&out);
    ok(out);
    assert_eq!(log.contains("unpacked"), !no_overlay, "{log}");
    let layers = layer_listings(&layout, "latest");
    assert_eq!(layers.len(), 3, "{layers:?}");
    let strs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(layers[1], strs(&["keep", "keep/f", "var", "var/cache"]));
    assert_eq!(layers[2], strs(&["keep", "keep/seen"]));
}

#[test]
fn ignore_path_stays_out_of_overlay_layers() {
    if !need_root("ignore_path_stays_out_of_overlay_layers") {
        return;
    }
    ignore_path_stays_out_of_layers(false);
}

#[test]
fn ignore_path_stays_out_of_walked_layers() {
    if !need_root("ignore_path_stays_out_of_walked_layers") {
        return;
    }
    ignore_path_stays_out_of_layers(true);
}

/// SHELL replaces `/bin/sh -c` for later shell-form RUNs (the command is its last argument);
/// exec form and earlier RUNs are not affected.
#[test]
fn shell_instruction_changes_the_shell_run_uses() {
    if !need_root("shell_instruction_changes_the_shell_run_uses") {
        return;
    }
    let reg = TestRegistry::plain();
    let base = push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let df = format!(
        "FROM {base}\n\
         RUN echo \"$0\" > /default-shell\n\
         SHELL [\"/bin/sh\", \"-c\", \"echo \\\"shell got: $0\\\" > /via-shell; eval \\\"$0\\\"\"]\n\
         RUN echo hi > /hi\n\
         RUN [\"/bin/sh\", \"-c\", \"echo exec > /exec\"]\n"
    );
    ok(build_in(
        &tmp.path().join("ctx"),
        &df,
        &[],
        &[
            "--no-push",
            "--insecure-registry",
            &reg.addr,
            "--oci-layout-path",
            layout.to_str().unwrap(),
        ],
    ));
    let rootfs = umoci_unpack(&layout, "latest", &tmp.path().join("bundle"));
    let read = |p: &str| std::fs::read_to_string(rootfs.join(p)).unwrap();
    assert_eq!(read("default-shell"), "/bin/sh\n");
    assert_eq!(read("via-shell"), "shell got: echo hi > /hi\n");
    assert_eq!(read("hi"), "hi\n");
    assert_eq!(read("exec"), "exec\n");
    let layers = layer_listings(&layout, "latest");
    assert_eq!(layers[3], vec!["exec".to_string()], "{layers:?}");
}

#[test]
fn failing_run_removes_the_work_directory() {
    if !need_root("failing_run_removes_the_work_directory") {
        return;
    }
    let reg = TestRegistry::plain();
    let base = push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    for no_overlay in ["0", "1"] {
        let work = tmp.path().join(format!("work-{no_overlay}"));
        let tmpdir = tmp.path().join(format!("tmpdir-{no_overlay}"));
        std::fs::create_dir_all(&work).unwrap();
        std::fs::create_dir_all(&tmpdir).unwrap();
        let err = fails(build_in_env(
            &tmp.path().join("ctx"),
            &format!("FROM {base}\nRUN echo ok > /ok\nRUN echo partial > /partial && exit 4\n"),
            &[],
            &["--no-push", "--insecure-registry", &reg.addr],
            &[
                ("GANTRY_WORK_DIR", work.to_str().unwrap()),
                ("TMPDIR", tmpdir.to_str().unwrap()),
                ("GANTRY_NO_OVERLAY", no_overlay),
            ],
        ));
        assert!(err.contains("exit code 4"), "{err}");
        for dir in [&work, &tmpdir] {
            let left: Vec<_> = std::fs::read_dir(dir).unwrap().collect();
            assert!(left.is_empty(), "left in `{}`: {left:?}", dir.display());
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mountinfo.contains(work.to_str().unwrap()), "{mountinfo}");
    }
}

/// Without overlay, `--snapshot-mode` decides what counts as a change, as in kaniko: `full` sees
/// a rewrite that kept size and mtime (by its ctime), `redo` sees mode changes but not that
/// rewrite, `time` sees only mtimes.
#[test]
fn snapshot_mode_decides_what_counts_as_changed() {
    if !need_root("snapshot_mode_decides_what_counts_as_changed") {
        return;
    }
    let reg = TestRegistry::plain();
    let base = push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let stamp = "touch -d '1970-01-02 00:00:00' /data";
    let df = format!(
        "FROM {base}\n\
         RUN echo aaa > /data && {stamp}\n\
         RUN echo bbb > /data && {stamp}\n\
         RUN chmod 600 /data\n\
         RUN touch /data\n"
    );
    for (mode, want) in [
        ("full", [true, true, true, true]),
        ("redo", [true, false, true, true]),
        ("time", [true, false, false, true]),
    ] {
        let dest = format!("{}/app/snapshot:{mode}", reg.addr);
        ok(build_in_env(
            &tmp.path().join("ctx"),
            &df,
            &[],
            &[
                "--destination",
                &dest,
                "--insecure-registry",
                &reg.addr,
                &format!("--snapshot-mode={mode}"),
            ],
            &[("GANTRY_NO_OVERLAY", "1")],
        ));
        let cfg = skopeo_inspect(&format!("docker://{dest}"), true, &["--tls-verify=false"]);
        let got: Vec<bool> = cfg["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["created_by"].as_str().unwrap().starts_with("RUN "))
            .map(|h| h["empty_layer"] != true)
            .collect();
        assert_eq!(got, want, "--snapshot-mode={mode}: {cfg}");
    }
}

/// Rootless tree mode records image owners, not host ids: gantry runs as `nobody` (the test is
/// root only to set that up), unpacks without `chown` and runs the RUN in a user namespace mapping
/// `nobody` to root. A file the RUN only appended to keeps the owner COPY gave it, a file it
/// re-created and the files it made belong to root, and no entry carries `nobody`'s uid.
#[test]
fn rootless_run_layers_carry_image_owners_not_host_ids() {
    if !need_root("rootless_run_layers_carry_image_owners_not_host_ids") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    const NOBODY: u32 = 65534;
    let userns = run(std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "true"])
        .uid(NOBODY)
        .gid(NOBODY));
    if !userns.status.success() {
        #[allow(clippy::print_stderr)]
        {
            eprintln!(
                "skipping rootless_run_layers_carry_image_owners_not_host_ids: `nobody` cannot \
                 create a user namespace here: {}",
                stderr(&userns)
            );
        }
        return;
    }
    let reg = TestRegistry::plain();
    let base = push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (home, work, ctx, layout) = (
        tmp.path().join("home"),
        tmp.path().join("work"),
        tmp.path().join("ctx"),
        tmp.path().join("layout"),
    );
    let df = format!(
        "FROM {base}\n\
         COPY --chown=1000:1000 owned.txt /home/app/owned.txt\n\
         COPY --chown=1000:1000 owned.txt /home/app/replaced.txt\n\
         RUN echo more >> /home/app/owned.txt && rm /home/app/replaced.txt && \
         echo new > /home/app/replaced.txt && echo root > /made-by-root && mkdir /made-dir\n"
    );
    write_files(&ctx, &[("Dockerfile", &df), ("owned.txt", "app's\n")]);
    for d in [&home, &work, &layout] {
        std::fs::create_dir_all(d).unwrap();
    }
    ok(run(std::process::Command::new("chown")
        .arg("-R")
        .arg(format!("{NOBODY}:{NOBODY}"))
        .args([&home, &work, &ctx, &layout])));
    let out = run(gantry(&home)
        .env("GANTRY_WORK_DIR", &work)
        .env("TMPDIR", &work)
        .arg("build")
        .arg("--context")
        .arg(&ctx)
        .args(["--no-push", "--insecure-registry", &reg.addr])
        .arg("--oci-layout-path")
        .arg(&layout)
        .uid(NOBODY)
        .gid(NOBODY));
    let log = stderr(&out);
    ok(out);
    assert!(log.contains("RUN isolation: Chroot"), "{log}");
    assert!(log.contains("layer(s) to"), "tree mode expected: {log}");
    let layers = layer_entries(&layout, "latest");
    assert_eq!(layers.len(), 4, "{layers:?}");
    let owner = |layer: usize, name: &str| {
        layers[layer]
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, u, g)| (*u, *g))
            .unwrap_or_else(|| panic!("`{name}` not in layer {layer}: {:?}", layers[layer]))
    };
    assert_eq!(owner(3, "home/app/owned.txt"), (1000, 1000));
    assert_eq!(owner(3, "home/app/replaced.txt"), (0, 0));
    assert_eq!(owner(3, "made-by-root"), (0, 0));
    assert_eq!(owner(3, "made-dir"), (0, 0));
    assert_eq!(owner(3, "home/app"), owner(1, "home/app"));
    assert!(
        layers[3]
            .iter()
            .all(|(_, u, g)| *u != NOBODY && *g != NOBODY),
        "{:?}",
        layers[3]
    );
    let rootfs = umoci_unpack(&layout, "latest", &tmp.path().join("bundle"));
    assert_eq!(
        std::fs::read_to_string(rootfs.join("home/app/owned.txt")).unwrap(),
        "app's\nmore\n"
    );
}
