//! The RUN sandbox for real: namespaces, mounts and chroot need root, so these tests run as root
//! and say so when they skip. Each test unpacks the busybox fixture with umoci (independent of
//! gantry's own extraction) and runs commands through the `gantry` binary as the helper. The
//! command's output goes to the test's stderr, so commands write what the test checks into files
//! of the rootfs.

use std::path::{Path, PathBuf};

use gantry::rootfs::privileged::{Real, Recorder};
use gantry::rootfs::sandbox::{
    self, Isolation, IsolationRequest, RunOutcome, RunSpec, SandboxError,
};

use crate::harness::{self, fixtures};

struct Rootfs {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

/// An unpacked busybox rootfs, or `None` (with the reason on stderr) when not root.
fn busybox_rootfs(test: &str) -> Option<Rootfs> {
    if !harness::is_root() {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("skipping {test}: the sandbox needs root (mount, PID, UTS, IPC namespaces)");
        }
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = harness::umoci_unpack(
        &fixtures::busybox(),
        fixtures::BUSYBOX_TAG,
        &dir.path().join("bundle"),
    );
    Some(Rootfs { _dir: dir, root })
}

fn spec(root: &Path, script: &str) -> RunSpec {
    RunSpec {
        rootfs: root.to_path_buf(),
        argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
        env: vec!["PATH=/usr/sbin:/usr/bin:/sbin:/bin".into()],
        cwd: "/".into(),
        user: None,
        hostname: None,
        work_dir: None,
    }
}

fn run(spec: &RunSpec) -> Result<RunOutcome, SandboxError> {
    sandbox::run_with_helper(spec, Isolation::Chroot, &Real, &harness::gantry_bin())
}

fn read(root: &Path, rel: &str) -> String {
    std::fs::read_to_string(root.join(rel))
        .unwrap_or_else(|e| panic!("cannot read {rel} from the rootfs: {e}"))
}

#[test]
fn user_app_gets_its_uid_and_groups() {
    let Some(fs) = busybox_rootfs("user_app_gets_its_uid_and_groups") else {
        return;
    };
    let group = read(&fs.root, "etc/group") + "extra:x:2000:app,nobody\n";
    std::fs::write(fs.root.join("etc/group"), group).unwrap();
    let mut s = spec(
        &fs.root,
        "id -u > /tmp/out; id -g >> /tmp/out; id -G >> /tmp/out",
    );
    s.user = Some("app".into());
    let out = run(&s).unwrap();
    assert_eq!(out.status, 0);
    assert_eq!(read(&fs.root, "tmp/out"), "1000\n1000\n1000 2000\n");
    // The file was written by uid 1000 on the real filesystem.
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(fs.root.join("tmp/out")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (1000, 1000));
}

#[test]
fn hostname_pid_env_and_cwd() {
    let Some(fs) = busybox_rootfs("hostname_pid_env_and_cwd") else {
        return;
    };
    let mut s = spec(
        &fs.root,
        "hostname > /tmp/out; echo $$ >> /tmp/out; tr '\\0' ' ' < /proc/1/cmdline >> /tmp/out; \
         echo >> /tmp/out; echo \"$FOO $HOME\" >> /tmp/out; pwd >> /tmp/out",
    );
    s.hostname = Some("builder".into());
    s.env.push("FOO=bar baz".into());
    s.cwd = "/work/dir".into();
    let out = run(&s).unwrap();
    assert_eq!(out.status, 0);
    let text = read(&fs.root, "tmp/out");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "builder");
    // PID 1 is the helper; the shell is its child.
    assert_eq!(lines[1], "2");
    assert!(lines[2].contains("sandbox-helper"), "{text}");
    assert_eq!(lines[3], "bar baz /root");
    assert_eq!(lines[4], "/work/dir");
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(fs.root.join("work/dir")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
    assert_eq!((meta.uid(), meta.gid()), (0, 0));
}

#[test]
fn exit_codes_and_signals() {
    let Some(fs) = busybox_rootfs("exit_codes_and_signals") else {
        return;
    };
    assert_eq!(run(&spec(&fs.root, "exit 3")).unwrap().status, 3);
    assert_eq!(run(&spec(&fs.root, "kill -9 $$")).unwrap().status, 137);
    // SIGPIPE is back to its default for the command: `yes` dies of it.
    let out = run(&spec(&fs.root, "yes | head -n 1 >/dev/null; exit 0")).unwrap();
    assert_eq!(out.status, 0);
}

#[test]
fn host_files_and_devices_are_provided_and_placeholders_reported() {
    let Some(fs) = busybox_rootfs("host_files_and_devices_are_provided_and_placeholders_reported")
    else {
        return;
    };
    let host_hosts = std::fs::read_to_string("/etc/hosts").unwrap();
    let out = run(&spec(
        &fs.root,
        "cat /etc/resolv.conf > /tmp/resolv; cat /etc/hosts > /tmp/hosts; \
         echo x > /dev/null && head -c 4 /dev/zero | wc -c > /tmp/zero; \
         ls /dev/pts /dev/shm >/dev/null && test -L /dev/stdout && ls /sys/kernel >/dev/null \
         && ! touch /sys/gantry-ro 2>/dev/null && echo ok > /tmp/dev; \
         echo 10.9.9.9 evil >> /etc/hosts",
    ))
    .unwrap();
    assert_eq!(out.status, 0);
    assert_eq!(
        read(&fs.root, "tmp/resolv"),
        std::fs::read_to_string("/etc/resolv.conf").unwrap()
    );
    assert_eq!(read(&fs.root, "tmp/hosts"), host_hosts);
    assert_eq!(read(&fs.root, "tmp/zero").trim(), "4");
    assert_eq!(read(&fs.root, "tmp/dev"), "ok\n");
    // The command wrote to a copy: the host's file is unchanged, and so is the placeholder.
    assert_eq!(std::fs::read_to_string("/etc/hosts").unwrap(), host_hosts);
    assert_eq!(read(&fs.root, "etc/hosts"), "");
    let created: Vec<PathBuf> = ["/proc", "/dev", "/sys", "/etc/resolv.conf", "/etc/hosts"]
        .iter()
        .map(PathBuf::from)
        .collect();
    assert_eq!(out.created, created);
    // Nothing stays mounted on the host.
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = fs.root.display().to_string();
    assert!(
        !mountinfo.contains(&root),
        "mounts leaked under {root}:\n{mountinfo}"
    );
    assert!(std::fs::read_dir(fs.root.join("dev"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn missing_programs_are_named() {
    let Some(fs) = busybox_rootfs("missing_programs_are_named") else {
        return;
    };
    let mut s = spec(&fs.root, "");
    s.argv = vec!["/bin/bash".into(), "-c".into(), "true".into()];
    let e = run(&s).unwrap_err();
    assert_eq!(
        e.to_string(),
        "`/bin/bash` does not exist in the image\n\
         hint: install it in the image first, or check the spelling and the image's PATH"
    );
    s.argv = vec!["apt-get".into(), "update".into()];
    let e = run(&s).unwrap_err();
    assert!(
        e.to_string().starts_with(
            "`apt-get` does not exist in the image (searched PATH `/usr/sbin:/usr/bin:/sbin:/bin`)"
        ),
        "{e}"
    );
    // Exec form with a binary on PATH works.
    s.argv = vec!["touch".into(), "/tmp/touched".into()];
    assert_eq!(run(&s).unwrap().status, 0);
    assert!(fs.root.join("tmp/touched").is_file());
}

#[test]
fn script_with_missing_interpreter() {
    let Some(fs) = busybox_rootfs("script_with_missing_interpreter") else {
        return;
    };
    std::fs::write(fs.root.join("tmp/script"), "#!/usr/bin/python3\nprint(1)\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        fs.root.join("tmp/script"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let mut s = spec(&fs.root, "");
    s.argv = vec!["/tmp/script".into()];
    let e = run(&s).unwrap_err();
    assert!(
        e.to_string().starts_with(
            "`/tmp/script` exists in the image but cannot be started: its interpreter"
        ),
        "{e}"
    );
}

#[test]
fn foreign_architecture_needs_binfmt() {
    let Some(fs) = busybox_rootfs("foreign_architecture_needs_binfmt") else {
        return;
    };
    let (foreign, name) = if cfg!(target_arch = "x86_64") {
        (0xb7u16, "arm64")
    } else {
        (0x3eu16, "amd64")
    };
    let registered = std::fs::read_dir("/proc/sys/fs/binfmt_misc")
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("qemu-"))
        })
        .unwrap_or(false);
    if registered {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("skipping foreign_architecture_needs_binfmt: a qemu binfmt_misc handler is registered");
        }
        return;
    }
    // A minimal ELF header for the other architecture.
    let mut elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0".to_vec();
    elf.extend_from_slice(&foreign.to_le_bytes());
    elf.extend_from_slice(&[1, 0, 0, 0]);
    elf.resize(64, 0);
    let bin = fs.root.join("bin/foreign");
    std::fs::write(&bin, &elf).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut s = spec(&fs.root, "");
    s.argv = vec!["/bin/foreign".into()];
    let e = run(&s).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!(
            "`/bin/foreign` cannot be executed on this machine: exec format error (a {name} binary)"
        )),
        "{msg}"
    );
    assert!(msg.contains("qemu-user-static"), "{msg}");
}

#[test]
fn unknown_user_fails_before_anything_runs() {
    let Some(fs) = busybox_rootfs("unknown_user_fails_before_anything_runs") else {
        return;
    };
    let mut s = spec(&fs.root, "touch /tmp/ran");
    s.user = Some("ghost".into());
    let e = run(&s).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("USER `ghost`: no such user in `/etc/passwd` of the image"),
        "{e}"
    );
    assert!(!fs.root.join("tmp/ran").exists());
    assert!(
        !fs.root.join("proc").exists(),
        "nothing prepared before the user check"
    );
}

#[test]
fn user_namespace_path_runs_as_mapped_root() {
    let Some(fs) = busybox_rootfs("user_namespace_path_runs_as_mapped_root") else {
        return;
    };
    // An unprivileged `ops` makes the sandbox take the rootless path (a user namespace with the
    // current ids mapped to 0), here exercised as root.
    let mut ops = Recorder::new();
    ops.privileged = false;
    let s = spec(
        &fs.root,
        "cat /proc/self/uid_map > /tmp/map; id -u >> /tmp/map",
    );
    let out =
        sandbox::run_with_helper(&s, Isolation::Chroot, &ops, &harness::gantry_bin()).unwrap();
    assert_eq!(out.status, 0);
    let text = read(&fs.root, "tmp/map");
    let fields: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(fields[..3], ["0", "0", "1"], "{text}");
    assert_eq!(text.lines().last(), Some("0"), "{text}");
    // A USER other than root cannot be mapped with a single id.
    if sandbox::IdMap::current().subordinate.is_none() {
        let mut s = spec(&fs.root, "true");
        s.user = Some("app".into());
        let e = sandbox::run_with_helper(&s, Isolation::Chroot, &ops, &harness::gantry_bin())
            .unwrap_err();
        assert!(
            e.to_string().starts_with(
                "USER `app` (uid 1000, gid 1000) is outside the ids the rootless sandbox maps \
                 (only uid 0 and gid 0)"
            ),
            "{e}"
        );
    }
}

#[test]
fn choose_isolation_probes_and_guards_in_place() {
    if !harness::is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join(".gantry-image");
    let bin = harness::gantry_bin();
    let choose = |r, force| sandbox::choose_isolation_with(r, force, &Real, &bin, &marker);
    assert_eq!(
        choose(IsolationRequest::Auto, false).unwrap(),
        Isolation::Chroot
    );
    assert_eq!(
        choose(IsolationRequest::Chroot, false).unwrap(),
        Isolation::Chroot
    );
    let e = choose(IsolationRequest::InPlace, false).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("refusing to run in place outside gantry's image"),
        "{e}"
    );
    assert_eq!(
        choose(IsolationRequest::InPlace, true).unwrap(),
        Isolation::InPlace
    );
    std::fs::write(&marker, "").unwrap();
    assert_eq!(
        choose(IsolationRequest::InPlace, false).unwrap(),
        Isolation::InPlace
    );
}

/// In place, with the run's own files (result file, resolv.conf and hosts copies) in the given
/// work directory while it runs and gone afterwards.
#[test]
fn in_place_runs_in_the_current_root() {
    if !harness::is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let out_file = dir.path().join("out");
    let s = RunSpec {
        rootfs: "/".into(),
        argv: vec![
            "/bin/sh".into(),
            "-c".into(),
            format!(
                "id -u > {0}; pwd >> {0}; echo $GREETING >> {0}; cd {1}/gantry-run-* && ls >> {0}",
                out_file.display(),
                work.display()
            ),
        ],
        env: vec!["GREETING=hi".into()],
        cwd: dir.path().join("wd").display().to_string(),
        user: None,
        hostname: None,
        work_dir: Some(work.clone()),
    };
    let out =
        sandbox::run_with_helper(&s, Isolation::InPlace, &Real, &harness::gantry_bin()).unwrap();
    assert_eq!(out.status, 0);
    assert!(out.created.is_empty());
    assert_eq!(
        std::fs::read_to_string(&out_file).unwrap(),
        format!(
            "0\n{}\nhi\nhosts\nresolv.conf\nresult\n",
            dir.path().join("wd").display()
        )
    );
    assert_eq!(std::fs::read_dir(&work).unwrap().count(), 0);
}

/// The rootless path for real: the helper runs as `nobody` (the test is root only to set that
/// up), with a request as [`sandbox::run`] would send it.
#[test]
fn rootless_helper_as_nobody() {
    let Some(fs) = busybox_rootfs("rootless_helper_as_nobody") else {
        return;
    };
    use sandbox::{HelperInput, IdMap, Request, ResolvedUser};
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    const NOBODY: u32 = 65534;
    let created = sandbox::mounts::prepare_rootfs(&fs.root).unwrap();
    assert_eq!(created.len(), 5);
    let work = fs.root.parent().unwrap().to_path_buf();
    let result = work.join("result");
    std::fs::write(&result, "").unwrap();
    harness::ok(harness::run(
        std::process::Command::new("chown")
            .arg("-R")
            .arg(format!("{NOBODY}:{NOBODY}"))
            .arg(&work),
    ));
    // Directories above the rootfs must be reachable by nobody.
    let mut dir = work.clone();
    while let Some(parent) = dir.parent() {
        use std::os::unix::fs::PermissionsExt;
        if parent == Path::new("/") {
            break;
        }
        let mode = std::fs::metadata(parent).unwrap().permissions().mode();
        if mode & 0o001 == 0 {
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(mode | 0o001))
                .unwrap();
        }
        dir = parent.to_path_buf();
    }
    let mut s = spec(
        &fs.root,
        "id -u > /tmp/out; cat /proc/self/uid_map >> /tmp/out; exit 5",
    );
    s.hostname = Some("rootless".into());
    let input = HelperInput::Run(Box::new(Request {
        spec: s,
        isolation: Isolation::Chroot,
        user: ResolvedUser {
            uid: 0,
            gid: 0,
            groups: vec![0],
            home: "/root".into(),
        },
        rootless: Some(IdMap {
            uid: NOBODY,
            gid: NOBODY,
            subordinate: None,
        }),
        result: result.clone(),
        resolv_conf: None,
        hosts: None,
    }));
    let mut child = std::process::Command::new(harness::gantry_bin())
        .arg(sandbox::HELPER_SUBCOMMAND)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(&input).unwrap())
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        std::fs::read_to_string(&result).unwrap(),
        "{\"event\":\"exited\",\"status\":5}\n"
    );
    assert_eq!(status.code(), Some(5));
    let text = read(&fs.root, "tmp/out");
    let fields: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(fields, ["0", "0", "65534", "1"], "{text}");
}

/// Set by [`rootless_run_as_nobody`] for the copy of this test binary it starts as `nobody`.
const ROOTLESS_ROOTFS: &str = "GANTRY_TEST_ROOTLESS_ROOTFS";

/// The whole rootless path through [`sandbox::run_with_helper`]: this test binary runs itself as
/// `nobody` (the test is root only to set that up) and [`rootless_inner`] does the run. When
/// `nobody` has subordinate ids in /etc/subuid and /etc/subgid, USER app is checked too.
#[test]
fn rootless_run_as_nobody() {
    let Some(fs) = busybox_rootfs("rootless_run_as_nobody") else {
        return;
    };
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    const NOBODY: u32 = 65534;
    let work = fs.root.parent().unwrap().to_path_buf();
    harness::ok(harness::run(
        std::process::Command::new("chown")
            .arg("-R")
            .arg(format!("{NOBODY}:{NOBODY}"))
            .arg(&work),
    ));
    let top = work.parent().unwrap();
    std::fs::set_permissions(top, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = harness::run(
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "sandbox_tests::rootless_inner",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROOTLESS_ROOTFS, &fs.root)
            .env("TMPDIR", &work)
            .uid(NOBODY)
            .gid(NOBODY),
    );
    let stdout = harness::ok(out);
    assert!(stdout.contains("1 passed"), "{stdout}");
    let text = read(&fs.root, "tmp/out");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("0"), "{text}");
    assert_eq!(lines.next(), Some("rootless"), "{text}");
    let map: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(map, ["0", "65534", "1"], "{text}");
    assert_eq!(read(&fs.root, "tmp/status"), "7");
    assert!(fs.root.join("work/dir").is_dir());
    let ranges = |f: &str| {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        sandbox::rootless::subordinate_range(&text, Some("nobody"), NOBODY).is_some()
    };
    if ranges(sandbox::rootless::SUBUID)
        && ranges(sandbox::rootless::SUBGID)
        && sandbox::rootless::map_tool("newuidmap").is_some()
    {
        assert_eq!(read(&fs.root, "tmp/app"), "1000\n1000\n");
    } else {
        assert!(!fs.root.join("tmp/app").exists());
    }
}

/// Runs only inside [`rootless_run_as_nobody`].
#[test]
fn rootless_inner() {
    let Some(root) = std::env::var_os(ROOTLESS_ROOTFS).map(PathBuf::from) else {
        return;
    };
    assert!(!harness::is_root());
    let mut s = spec(
        &root,
        "id -u > /tmp/out; hostname >> /tmp/out; head -n 1 /proc/self/uid_map >> /tmp/out; exit 7",
    );
    s.hostname = Some("rootless".into());
    s.cwd = "/work/dir".into();
    let out = sandbox::run_with_helper(&s, Isolation::Chroot, &Real, &harness::gantry_bin())
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(root.join("tmp/status"), out.status.to_string()).unwrap();
    assert_eq!(out.created.len(), 5);
    let chosen = sandbox::choose_isolation_with(
        IsolationRequest::Auto,
        false,
        &Real,
        &harness::gantry_bin(),
        Path::new("/nonexistent/marker"),
    );
    assert_eq!(chosen.unwrap(), Isolation::Chroot);
    if sandbox::IdMap::current().subordinate.is_some() {
        let mut s = spec(&root, "id -u > /tmp/app; id -G >> /tmp/app");
        s.user = Some("app".into());
        let out = sandbox::run_with_helper(&s, Isolation::Chroot, &Real, &harness::gantry_bin())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.status, 0);
        assert_eq!(
            std::fs::read_to_string(root.join("tmp/app")).unwrap(),
            "1000\n1000\n"
        );
    }
}

#[test]
fn orphans_are_reaped_and_leftovers_killed() {
    let Some(fs) = busybox_rootfs("orphans_are_reaped_and_leftovers_killed") else {
        return;
    };
    // The orphaned `true` is reparented to PID 1 (the helper), which must reap it.
    let out = run(&spec(
        &fs.root,
        "sh -c 'true & exec sleep 0.1'; sleep 0.5; cat /proc/[0-9]*/stat > /tmp/stat",
    ))
    .unwrap();
    assert_eq!(out.status, 0);
    let stat = read(&fs.root, "tmp/stat");
    let states: Vec<&str> = stat
        .lines()
        .filter_map(|l| l.rsplit_once(") ").map(|(_, r)| &r[..1]))
        .collect();
    assert!(!states.is_empty(), "{stat}");
    assert!(!states.contains(&"Z"), "zombies left: {stat}");
    // A background process the command leaves behind dies with the namespace.
    let start = std::time::Instant::now();
    let out = run(&spec(&fs.root, "sleep 60 & exit 0")).unwrap();
    assert_eq!(out.status, 0);
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn bad_requests_are_refused_up_front() {
    let mut s = spec(Path::new("/nonexistent/gantry-rootfs"), "true");
    let e = run(&s).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("the root filesystem `/nonexistent/gantry-rootfs` cannot be used:"),
        "{e}"
    );
    s.argv.clear();
    assert_eq!(
        run(&s).unwrap_err().to_string(),
        "RUN has no command\nhint: give RUN a command, e.g. `RUN true`"
    );
}
