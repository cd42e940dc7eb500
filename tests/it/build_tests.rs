//! `gantry build` end to end: Dockerfiles without RUN, built against real registries and checked
//! with skopeo, umoci and podman.

use std::path::Path;

use crate::harness::registry::TestRegistry;
use crate::harness::*;

mod copy_add;
mod image_config;
mod kaniko_flags;

/// The digest a plain-HTTP test registry serves for `repo:tag`, or `None` when the tag does not
/// exist (asked with skopeo, not gantry).
pub(crate) fn tag_digest(reg: &TestRegistry, repo_tag: &str) -> Option<String> {
    let out = run(std::process::Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{}/{repo_tag}", reg.addr)));
    if !out.status.success() {
        let err = stderr(&out);
        assert!(
            err.contains("manifest unknown") || err.contains("not found"),
            "skopeo failed for another reason than a missing tag: {err}"
        );
        return None;
    }
    Some(gantry::image::sha256_digest(&out.stdout))
}

/// Builds `dockerfile` in a fresh context with `files`, passing `args`; returns the output.
pub(crate) fn build_in(
    ctx: &Path,
    dockerfile: &str,
    files: &[(&str, &str)],
    args: &[&str],
) -> std::process::Output {
    build_in_env(ctx, dockerfile, files, args, &[])
}

/// [`build_in`] with extra environment variables for the gantry process.
pub(crate) fn build_in_env(
    ctx: &Path,
    dockerfile: &str,
    files: &[(&str, &str)],
    args: &[&str],
    envs: &[(&str, &str)],
) -> std::process::Output {
    std::fs::create_dir_all(ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    write_files(ctx, files);
    let home = ctx.parent().unwrap().join("home");
    std::fs::create_dir_all(&home).unwrap();
    run(gantry(&home)
        .envs(envs.iter().copied())
        .arg("build")
        .arg("--context")
        .arg(ctx)
        .args(args))
}

pub(crate) fn push_busybox(reg: &TestRegistry) -> String {
    let image = format!("{}/base/busybox:latest", reg.addr);
    crate::harness::fixtures::push(
        &crate::harness::fixtures::busybox(),
        "latest",
        &image,
        None,
        None,
    );
    image
}

#[test]
fn hello_example_builds_to_a_layout_without_registry_and_reproducibly() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut digests = Vec::new();
    for i in 0..2 {
        let layout = tmp.path().join(format!("layout{i}"));
        let digest_file = tmp.path().join(format!("digest{i}"));
        let out = run(gantry(tmp.path())
            .arg("build")
            .arg("--context")
            .arg(repo.join("examples/hello"))
            .arg("--dockerfile")
            .arg(repo.join("examples/hello/Dockerfile"))
            .args([
                "--no-push",
                "--reproducible",
                "--destination",
                "localhost/hello:1.0",
            ])
            .arg("--oci-layout-path")
            .arg(&layout)
            .arg("--digest-file")
            .arg(&digest_file));
        let printed = ok(out);
        let digest = std::fs::read_to_string(&digest_file).unwrap();
        assert!(
            digest.starts_with("sha256:") && digest.len() == 71,
            "{digest}"
        );
        assert_eq!(printed.trim(), digest);
        digests.push(digest);
        let cfg = skopeo_inspect(&format!("oci:{}:1.0", layout.display()), true, &[]);
        assert_eq!(
            cfg["config"]["Labels"]["org.opencontainers.image.version"],
            "1.0"
        );
        assert_eq!(cfg["config"]["WorkingDir"], "/srv");
        assert_eq!(
            cfg["config"]["Cmd"],
            serde_json::json!(["/srv/greeting.txt"])
        );
        assert!(cfg["config"]["ExposedPorts"]["8080/tcp"].is_object());
        assert!(cfg["config"]["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "GREETING_FILE=/srv/greeting.txt"));
        assert_eq!(cfg["created"], "1970-01-01T00:00:00Z");
        let rootfs = umoci_unpack(&layout, "1.0", &tmp.path().join(format!("bundle{i}")));
        assert_eq!(
            std::fs::read_to_string(rootfs.join("srv/greeting.txt")).unwrap(),
            "Hello from an image built by gantry.\n"
        );
        assert_eq!(
            std::fs::read_to_string(rootfs.join("srv/about.txt")).unwrap(),
            "hello from gantry\n"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(rootfs.join("srv/about.txt"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777;
        assert_eq!(mode, 0o644);
    }
    assert_eq!(digests[0], digests[1], "two reproducible builds differ");
}

#[test]
fn copy_onto_busybox_is_pushed_and_runs() {
    let reg = TestRegistry::plain();
    let base = push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let dest = format!("{}/app/hello:v1", reg.addr);
    let digest_file = tmp.path().join("digest");
    let names_file = tmp.path().join("names");
    let tags_file = tmp.path().join("tags");
    let df = format!(
        "FROM {base}\nARG GREETING=hi\nCOPY --chown=app:app greet.sh /usr/local/bin/greet\n\
         COPY conf/ /etc/greet/\nENV GREETING=$GREETING\nUSER app\nENTRYPOINT [\"/usr/local/bin/greet\"]\n"
    );
    let ctx = tmp.path().join("ctx");
    write_files(
        &ctx,
        &[
            (
                "greet.sh",
                "#!/bin/sh\necho \"$GREETING from $(id -u):$(cat /etc/greet/name.txt)\"\n",
            ),
            ("conf/name.txt", "gantry"),
        ],
    );
    // greet.sh must be executable in the image: the context file's mode is kept.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(ctx.join("greet.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = build_in(
        &ctx,
        &df,
        &[],
        &[
            "--destination",
            &dest,
            "--insecure-registry",
            &reg.addr,
            "--build-arg",
            "GREETING=hello",
            "--label",
            "team=ci",
            "--digest-file",
            digest_file.to_str().unwrap(),
            "--image-name-with-digest-file",
            names_file.to_str().unwrap(),
            "--image-name-tag-with-digest-file",
            tags_file.to_str().unwrap(),
        ],
    );
    ok(out);
    let digest = std::fs::read_to_string(&digest_file).unwrap();
    let tls = ["--tls-verify=false"];
    let inspect = skopeo_inspect(&format!("docker://{dest}"), false, &tls);
    assert_eq!(inspect["Digest"], digest.as_str());
    assert_eq!(inspect["Labels"]["team"], "ci");
    assert_eq!(
        std::fs::read_to_string(&names_file).unwrap(),
        format!("{}/app/hello@{digest}\n", reg.addr)
    );
    assert_eq!(
        std::fs::read_to_string(&tags_file).unwrap(),
        format!("{dest}@{digest}\n")
    );
    let cfg = skopeo_inspect(&format!("docker://{dest}"), true, &tls);
    assert_eq!(cfg["config"]["User"], "app");
    assert!(cfg["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "GREETING=hello"));
    // The base layer plus two COPY layers; history has every instruction.
    assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 3);
    assert_eq!(cfg["history"].as_array().unwrap().len(), 1 + 6);

    let layout = tmp.path().join("pulled");
    skopeo_to_layout(
        &format!("docker://{dest}"),
        &layout,
        "v1",
        &["--src-tls-verify=false"],
    );
    let rootfs = umoci_unpack(&layout, "v1", &tmp.path().join("bundle"));
    let meta = std::fs::symlink_metadata(rootfs.join("usr/local/bin/greet")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(meta.mode() & 0o7777, 0o755);
    if is_root() {
        assert_eq!((meta.uid(), meta.gid()), (1000, 1000));
    }
    assert_eq!(
        std::fs::read_to_string(rootfs.join("etc/greet/name.txt")).unwrap(),
        "gantry"
    );

    if is_root() {
        let out = podman_run(&tmp.path().join("podman"), &format!("docker://{dest}"), &[]);
        assert_eq!(ok(out).trim(), "hello from 1000:gantry");
    }
}

#[test]
fn copy_through_a_symlinked_directory_lands_where_docker_puts_it() {
    let reg = TestRegistry::plain();
    let base = format!("{}/base/debian:bookworm", reg.addr);
    crate::harness::fixtures::push(
        &crate::harness::fixtures::debian(),
        "bookworm",
        &base,
        None,
        None,
    );
    let tmp = tempfile::tempdir().unwrap();
    let dest = format!("{}/app/debian-app:1", reg.addr);
    let out = build_in(
        &tmp.path().join("ctx"),
        &format!("FROM {base}\nCOPY app /bin/app\nCOPY --chown=nobody:nogroup app /srv/owned\n"),
        &[("app", "binary")],
        &["--destination", &dest, "--insecure-registry", &reg.addr],
    );
    ok(out);
    let layout = tmp.path().join("pulled");
    skopeo_to_layout(
        &format!("docker://{dest}"),
        &layout,
        "1",
        &["--src-tls-verify=false"],
    );
    let rootfs = umoci_unpack(&layout, "1", &tmp.path().join("bundle"));
    assert!(
        std::fs::symlink_metadata(rootfs.join("bin"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "/bin must stay a symlink"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("usr/bin/app")).unwrap(),
        "binary"
    );
    if is_root() {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(rootfs.join("srv/owned")).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
    }
    // The base's media types are kept, and the debian layer was mounted, not re-uploaded.
    let raw: serde_json::Value = serde_json::from_slice(&skopeo_raw(
        &format!("docker://{dest}"),
        &["--tls-verify=false"],
    ))
    .unwrap();
    assert_eq!(
        raw["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
}

#[test]
fn multi_stage_copy_from_and_target() {
    let reg = TestRegistry::plain();
    let base = push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let df = format!(
        "ARG BASE={base}\nFROM $BASE AS assets\nCOPY a.txt /assets/a.txt\nCOPY b.txt /assets/sub/b.txt\n\
         FROM scratch AS final\nCOPY --from=assets /assets /data\nCOPY --from=0 /bin/busybox /bin/busybox\n\
         FROM final AS extra\nCOPY a.txt /extra.txt\n"
    );
    let layout = tmp.path().join("layout");
    let out = build_in(
        &tmp.path().join("ctx"),
        &df,
        &[("a.txt", "A"), ("b.txt", "B")],
        &[
            "--no-push",
            "--target",
            "final",
            "--insecure-registry",
            &reg.addr,
            "--oci-layout-path",
            layout.to_str().unwrap(),
        ],
    );
    ok(out);
    let rootfs = umoci_unpack(&layout, "latest", &tmp.path().join("bundle"));
    assert_eq!(
        std::fs::read_to_string(rootfs.join("data/a.txt")).unwrap(),
        "A"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("data/sub/b.txt")).unwrap(),
        "B"
    );
    assert!(rootfs.join("bin/busybox").is_file());
    assert!(
        !rootfs.join("extra.txt").exists(),
        "--target final must not include the later stage"
    );
}

#[test]
fn dockerignore_excludes_with_exceptions() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let out = build_in(
        &tmp.path().join("ctx"),
        "FROM scratch\nCOPY . /app/\n",
        &[
            (".dockerignore", "**/*.log\nsecret/\n!keep.log\n"),
            ("main.c", "int main;"),
            ("debug.log", "x"),
            ("keep.log", "kept"),
            ("sub/deep/trace.log", "x"),
            ("secret/key", "x"),
        ],
        &["--no-push", "--oci-layout-path", layout.to_str().unwrap()],
    );
    ok(out);
    let rootfs = umoci_unpack(&layout, "latest", &tmp.path().join("bundle"));
    assert!(rootfs.join("app/main.c").is_file());
    assert!(rootfs.join("app/keep.log").is_file());
    assert!(!rootfs.join("app/debug.log").exists());
    assert!(!rootfs.join("app/sub/deep/trace.log").exists());
    assert!(!rootfs.join("app/secret").exists());
}

#[test]
fn tarball_output_loads_in_podman() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = tmp.path().join("image.tar");
    let out = build_in(
        &tmp.path().join("ctx"),
        "FROM scratch\nCOPY f /f\n",
        &[("f", "content")],
        &[
            "--no-push",
            "--destination",
            "localhost/tarball:t1",
            "--tar-path",
            tar.to_str().unwrap(),
        ],
    );
    ok(out);
    let inspect = skopeo_inspect(&format!("docker-archive:{}", tar.display()), false, &[]);
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 1);
    let storage = tmp.path().join("podman");
    let out = run(std::process::Command::new("podman")
        .arg("--root")
        .arg(storage.join("root"))
        .arg("--runroot")
        .arg(storage.join("runroot"))
        .args([
            "--storage-driver",
            "vfs",
            "--events-backend",
            "none",
            "load",
            "-i",
        ])
        .arg(&tar));
    let text = ok(out);
    assert!(text.contains("localhost/tarball:t1"), "{text}");
}

#[test]
fn called_as_executor_it_is_gantry_build() {
    let tmp = tempfile::tempdir().unwrap();
    let exe = tmp.path().join("executor");
    std::os::unix::fs::symlink(gantry_bin(), &exe).unwrap();
    let ctx = tmp.path().join("ctx");
    write_files(
        &ctx,
        &[("Dockerfile", "FROM scratch\nCOPY f /f\n"), ("f", "x")],
    );
    let digest = tmp.path().join("d");
    let out = run(std::process::Command::new(&exe)
        .current_dir(tmp.path())
        .env("HOME", tmp.path())
        .arg("--context")
        .arg(format!("dir://{}", ctx.display()))
        .arg("--no-push")
        .arg("--digest-file")
        .arg(&digest));
    ok(out);
    assert!(std::fs::read_to_string(&digest)
        .unwrap()
        .starts_with("sha256:"));
    let help = ok(run(std::process::Command::new(&exe).arg("--help")));
    for flag in [
        "--destination",
        "--registry-mirror",
        "--image-name-tag-with-digest-file",
        "--log-format",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    // kaniko's `executor version`, and `--version`.
    let want = format!("gantry {}\n", env!("CARGO_PKG_VERSION"));
    for arg in ["version", "--version"] {
        assert_eq!(ok(run(std::process::Command::new(&exe).arg(arg))), want);
    }
}

mod bad_input {
    use super::*;

    #[test]
    fn unknown_instruction_names_file_line_and_text() {
        let tmp = tempfile::tempdir().unwrap();
        let err = fails(build_in(
            &tmp.path().join("ctx"),
            "FROM scratch\nFORM alpine\n",
            &[],
            &["--no-push"],
        ));
        assert!(
            err.contains("Dockerfile:") && err.contains('2') && err.contains("FORM"),
            "{err}"
        );
    }

    #[test]
    fn missing_copy_source_names_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let err = fails(build_in(
            &tmp.path().join("ctx"),
            "FROM scratch\nCOPY nothere.txt /\n",
            &[],
            &["--no-push"],
        ));
        assert!(err.contains("nothere.txt"), "{err}");
    }

    #[test]
    fn source_outside_the_context_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("outside.txt"), "x").unwrap();
        let err = fails(build_in(
            &tmp.path().join("ctx"),
            "FROM scratch\nCOPY ../outside.txt /\n",
            &[],
            &["--no-push"],
        ));
        assert!(err.contains("outside.txt"), "{err}");
    }

    #[test]
    fn bad_destination_reference() {
        let tmp = tempfile::tempdir().unwrap();
        let err = fails(build_in(
            &tmp.path().join("ctx"),
            "FROM scratch\n",
            &[],
            &["--destination", "UPPER/Case:tag"],
        ));
        assert!(err.contains("`UPPER/Case:tag`"), "{err}");
        assert!(err.contains("\nhint: "), "{err}");
    }

    #[test]
    fn unterminated_quote_in_an_unbuilt_stage_names_file_line_and_text() {
        let tmp = tempfile::tempdir().unwrap();
        let err = fails(build_in(
            &tmp.path().join("ctx"),
            "FROM scratch AS app\nCOPY f /f\nFROM scratch AS docs\nLABEL title=\"unfinished\n",
            &[("f", "x")],
            &["--no-push", "--target", "app", "--skip-unused-stages"],
        ));
        assert!(
            err.contains("Dockerfile:line 4: failed to expand `\"unfinished`")
                && err.contains("matching double quote: LABEL title=\"unfinished")
                && err.contains("\nhint: close the quote"),
            "{err}"
        );
    }

    #[test]
    fn unreachable_registry_has_a_hint() {
        let tmp = tempfile::tempdir().unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let err = fails(build_in(
            &tmp.path().join("ctx"),
            &format!("FROM 127.0.0.1:{port}/missing/base:1\n"),
            &[],
            &[
                "--no-push",
                "--insecure-registry",
                &format!("127.0.0.1:{port}"),
            ],
        ));
        assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
        assert!(err.contains("hint:"), "{err}");
    }

    #[test]
    fn missing_base_image_is_named() {
        let reg = TestRegistry::plain();
        let tmp = tempfile::tempdir().unwrap();
        let err = fails(build_in(
            &tmp.path().join("ctx"),
            &format!("FROM {}/nope/base:1\n", reg.addr),
            &[],
            &["--no-push", "--insecure-registry", &reg.addr],
        ));
        assert!(err.contains("nope/base"), "{err}");
        assert!(err.contains("hint:"), "{err}");
    }

    #[test]
    fn unsupported_kaniko_flag_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let err = fails(build_in(
            &tmp.path().join("ctx"),
            "FROM scratch\n",
            &[],
            &["--no-push", "--materialize=true"],
        ));
        assert!(err.contains("`--materialize`"), "{err}");
    }

    #[test]
    fn failed_push_leaves_no_tag_and_an_existing_tag_unchanged() {
        // The registry takes every blob but refuses the manifest: the push fails at its last
        // step, and the real registry shows no new tag and the old one where it was.
        let reg = TestRegistry::plain();
        let tmp = tempfile::tempdir().unwrap();
        let df = "FROM scratch\nCOPY f /f\n";
        let old = ok(build_in(
            &tmp.path().join("ctx0"),
            df,
            &[("f", "old")],
            &[
                "--destination",
                &format!("{}/app/refused:1", reg.addr),
                "--insecure-registry",
                &reg.addr,
            ],
        ));
        let proxy = crate::harness::faultproxy::FaultProxy::start(
            &reg.addr,
            vec![crate::harness::faultproxy::Rule::new(
                "PUT",
                "/manifests/",
                crate::harness::faultproxy::Fault::Status {
                    code: 403,
                    retry_after: None,
                },
            )
            .always()],
        );
        let err = fails(build_in(
            &tmp.path().join("ctx1"),
            df,
            &[("f", "new")],
            &[
                "--destination",
                &format!("{}/app/refused:1", proxy.addr),
                "--destination",
                &format!("{}/app/refused:2", proxy.addr),
                "--insecure-registry",
                &proxy.addr,
            ],
        ));
        assert!(
            err.contains(&format!("pushing {}/app/refused:1", proxy.addr)) && err.contains("403"),
            "{err}"
        );
        assert!(err.contains("hint:"), "{err}");
        // The blobs went up (the failure was the manifest, mid-push) ...
        assert!(
            !proxy.matching("PUT", "/blobs/uploads/").is_empty(),
            "{}",
            proxy.describe()
        );
        // ... and no tag moved or appeared.
        assert_eq!(
            tag_digest(&reg, "app/refused:1").as_deref(),
            Some(old.trim())
        );
        assert_eq!(tag_digest(&reg, "app/refused:2"), None);
    }
}

mod auth {
    use super::*;

    #[test]
    fn basic_auth_over_tls_with_docker_config() {
        let reg = TestRegistry::tls_basic();
        let tmp = tempfile::tempdir().unwrap();
        let dest = format!("{}/app/secure:1", reg.addr);
        let ca = reg.ca_pem.clone().unwrap();
        let ctx = tmp.path().join("ctx");
        write_files(
            &ctx,
            &[("Dockerfile", "FROM scratch\nCOPY f /f\n"), ("f", "x")],
        );
        let out = run(gantry(tmp.path())
            .env("DOCKER_CONFIG", reg.docker_config_dir())
            .arg("build")
            .arg("--context")
            .arg(&ctx)
            .args(["--destination", &dest])
            .arg("--registry-certificate")
            .arg(format!("{}={}", reg.addr, ca.display())));
        let text = ok(out);
        let creds = format!(
            "{}:{}",
            reg.username.as_deref().unwrap(),
            reg.password.as_deref().unwrap()
        );
        let inspect = skopeo_inspect(
            &format!("docker://{dest}"),
            false,
            &["--tls-verify=false", "--creds", &creds],
        );
        assert_eq!(inspect["Digest"], text.trim());
    }

    #[test]
    fn token_auth_push_and_pull() {
        let reg = TestRegistry::token();
        let tmp = tempfile::tempdir().unwrap();
        let base = format!("{}/base/busybox:latest", reg.addr);
        let creds = (reg.username.clone().unwrap(), reg.password.clone().unwrap());
        crate::harness::fixtures::push(
            &crate::harness::fixtures::busybox(),
            "latest",
            &base,
            Some((creds.0.as_str(), creds.1.as_str())),
            None,
        );
        let dest = format!("{}/app/tokened:1", reg.addr);
        let ctx = tmp.path().join("ctx");
        write_files(
            &ctx,
            &[
                ("Dockerfile", &format!("FROM {base}\nCOPY f /f\n")),
                ("f", "x"),
            ],
        );
        let out = run(gantry(tmp.path())
            .env("DOCKER_CONFIG", reg.docker_config_dir())
            .arg("build")
            .arg("--context")
            .arg(&ctx)
            .args(["--destination", &dest, "--insecure-registry", &reg.addr]));
        let text = ok(out);
        let inspect = skopeo_inspect(
            &format!("docker://{dest}"),
            false,
            &[
                "--tls-verify=false",
                "--creds",
                &format!("{}:{}", creds.0, creds.1),
            ],
        );
        assert_eq!(inspect["Digest"], text.trim());
        assert_eq!(inspect["Layers"].as_array().unwrap().len(), 2);
    }
}

/// A static file server on 127.0.0.1 for ADD URL tests (python3's http.server), stopped on drop.
struct FileServer {
    child: std::process::Child,
    port: u16,
}

impl FileServer {
    fn start(dir: &Path) -> FileServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
                "--directory",
            ])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 is needed for the ADD URL test");
        let server = FileServer { child, port };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        drop(server);
        panic!("http.server did not start");
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn add_extracts_local_archives_and_downloads_urls_with_checksums() {
    let tmp = tempfile::tempdir().unwrap();
    let served = tmp.path().join("served");
    write_files(&served, &[("tool.txt", "downloaded")]);
    let server = FileServer::start(&served);
    let url = format!("http://127.0.0.1:{}/tool.txt", server.port);
    let sum = {
        use sha2::Digest;
        format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(b"downloaded"))
        )
    };
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    // A gzip tar archive in the context, made with GNU tar.
    let src = tmp.path().join("archive-src");
    write_files(
        &src,
        &[("pkg/bin/run", "#!/bin/sh\n"), ("pkg/README", "readme")],
    );
    ok(run(std::process::Command::new("tar")
        .arg("-czf")
        .arg(ctx.join("pkg.tar.gz"))
        .arg("-C")
        .arg(&src)
        .arg("pkg")));
    let layout = tmp.path().join("layout");
    let out = build_in(
        &ctx,
        &format!("FROM scratch\nADD pkg.tar.gz /opt/\nADD --checksum={sum} {url} /downloads/\n"),
        &[],
        &["--no-push", "--oci-layout-path", layout.to_str().unwrap()],
    );
    ok(out);
    let rootfs = umoci_unpack(&layout, "latest", &tmp.path().join("bundle"));
    assert_eq!(
        std::fs::read_to_string(rootfs.join("opt/pkg/README")).unwrap(),
        "readme"
    );
    assert!(rootfs.join("opt/pkg/bin/run").is_file());
    assert!(
        !rootfs.join("opt/pkg.tar.gz").exists(),
        "a local archive is extracted, not copied"
    );
    let downloaded = rootfs.join("downloads/tool.txt");
    assert_eq!(std::fs::read_to_string(&downloaded).unwrap(), "downloaded");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&downloaded).unwrap().permissions().mode() & 0o7777,
        0o600
    );

    // A wrong checksum fails the build and names both digests.
    let wrong = format!("sha256:{}", "0".repeat(64));
    let err = fails(build_in(
        &tmp.path().join("ctx2"),
        &format!("FROM scratch\nADD --checksum={wrong} {url} /x\n"),
        &[],
        &["--no-push"],
    ));
    assert!(
        err.contains("checksum mismatch") && err.contains(&wrong) && err.contains(&sum),
        "{err}"
    );
}
