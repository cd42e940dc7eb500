//! Multi-arch in CI, end to end against a real registry (distribution 2.8): per-platform builds
//! from the multi-arch busybox base (`busybox-multi`: linux/amd64 and linux/arm64/v8), `gantry ci
//! manifest` stitching the `--per-arch` images of a GitLab tag pipeline, a RUN of an arm64 image
//! under qemu, and `gantry ci build --platforms` doing it all in one job.
//!
//! Every result is checked with independent tools: `skopeo inspect --raw` for the index bytes,
//! `skopeo inspect --override-arch` for platform selection, `podman run --arch arm64` for the
//! image actually running on arm64.

use std::path::Path;
use std::process::{Command, Output};

use crate::harness::fixtures::{self, BUSYBOX_TAG};
use crate::harness::registry::TestRegistry;
use crate::harness::*;

const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const SHA: &str = "860c1904a1ce19322e91ac35af1ab07466440c37";
const EPOCH: &str = "1578616200";

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("registry documents are JSON")
}

/// A plain-HTTP registry holding `base:multi` (the busybox-multi index), the digests of its
/// amd64 and arm64 children, and a GitLab tag pipeline (`v1.2.3`) whose image is
/// `<registry>/group/app`. `None` when the multi-arch fixture cannot be made here.
struct Setup {
    reg: TestRegistry,
    dir: tempfile::TempDir,
    base: String,
    image: String,
    base_amd64: String,
    base_arm64: String,
}

fn setup() -> Option<Setup> {
    let Some(layout) = fixtures::busybox_multi() else {
        // busybox_multi printed why (apt has no busybox-static:arm64); in CI it fails instead.
        return None;
    };
    let reg = TestRegistry::plain();
    let base = format!("{}/base:multi", reg.addr);
    let multi = fixtures::push(&layout, BUSYBOX_TAG, &base, None, None);
    let index = json(&fixtures::blob(&layout, &multi));
    let child = |arch: &str| {
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["platform"]["architecture"] == arch)
            .and_then(|m| m["digest"].as_str())
            .unwrap()
            .to_string()
    };
    Some(Setup {
        image: format!("{}/group/app", reg.addr),
        base_amd64: child("amd64"),
        base_arm64: child("arm64"),
        base,
        reg,
        dir: tempfile::tempdir().unwrap(),
    })
}

impl Setup {
    /// The gantry binary in a GitLab tag pipeline for `v1.2.3`, with nothing else in its
    /// environment but PATH and HOME, run in the setup's directory.
    fn gitlab(&self) -> Command {
        let mut cmd = Command::new(gantry_bin());
        cmd.env_clear()
            .current_dir(self.dir.path())
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("NO_COLOR", "1");
        for (k, v) in [
            ("GITLAB_CI", "true"),
            ("CI", "true"),
            ("CI_PIPELINE_SOURCE", "push"),
            ("CI_COMMIT_TAG", "v1.2.3"),
            ("CI_COMMIT_REF_NAME", "v1.2.3"),
            ("CI_COMMIT_SHA", SHA),
            ("CI_DEFAULT_BRANCH", "main"),
            ("CI_PROJECT_URL", "https://gitlab.example.com/group/app"),
            ("CI_PROJECT_TITLE", "App"),
            ("CI_REGISTRY", self.reg.addr.as_str()),
            ("CI_REGISTRY_IMAGE", self.image.as_str()),
            ("SOURCE_DATE_EPOCH", EPOCH),
        ] {
            cmd.env(k, v);
        }
        cmd
    }

    /// Writes a build context holding `dockerfile` and a file `f`; returns its path.
    fn context(&self, name: &str, dockerfile: &str) -> std::path::PathBuf {
        let ctx = self.dir.path().join(name);
        write_files(&ctx, &[("Dockerfile", dockerfile), ("f", "x")]);
        ctx
    }

    /// `gantry ci build` in the pipeline with the semver tag rules, plain HTTP to the registry.
    fn ci_build(&self, ctx: &Path, extra: &[&str]) -> Output {
        run(self
            .gitlab()
            .args(["ci", "build", "--context"])
            .arg(ctx)
            .args(TAG_RULES)
            .args(["--insecure-registry", &self.reg.addr])
            .args(extra))
    }

    /// `gantry ci manifest` in the pipeline with the semver tag rules, plain HTTP.
    fn ci_manifest(&self, extra: &[&str]) -> Output {
        run(self
            .gitlab()
            .args(["ci", "manifest"])
            .args(TAG_RULES)
            .args(["--insecure-registry", &self.reg.addr])
            .args(extra))
    }

    fn raw(&self, tag: &str) -> Option<Vec<u8>> {
        let out = run(Command::new("skopeo").args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}:{tag}", self.image),
        ]));
        out.status.success().then_some(out.stdout)
    }

    fn inspect(&self, tag: &str, extra: &[&str]) -> serde_json::Value {
        let mut args = vec!["--tls-verify=false"];
        args.extend_from_slice(extra);
        skopeo_inspect(&format!("docker://{}:{tag}", self.image), false, &args)
    }

    fn config(&self, tag: &str, extra: &[&str]) -> serde_json::Value {
        let mut args = vec!["--tls-verify=false"];
        args.extend_from_slice(extra);
        skopeo_inspect(&format!("docker://{}:{tag}", self.image), true, &args)
    }
}

const TAG_RULES: [&str; 4] = [
    "--tag",
    "type=semver,pattern={{version}}",
    "--tag",
    "type=semver,pattern={{major}}.{{minor}}",
];

/// `os/arch[/variant]` of every entry of an index.
fn platforms(index: &serde_json::Value) -> Vec<String> {
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let p = &m["platform"];
            let mut s = format!(
                "{}/{}",
                p["os"].as_str().unwrap(),
                p["architecture"].as_str().unwrap()
            );
            if let Some(v) = p["variant"].as_str() {
                s.push('/');
                s.push_str(v);
            }
            s
        })
        .collect()
}

/// The first diff ID of the base's child for `arch` (its config read with skopeo): what a build
/// on that platform must have as its first layer.
fn base_diff_id(s: &Setup, digest: &str) -> String {
    let cfg = skopeo_inspect(
        &format!("docker://{}@{digest}", s.base.trim_end_matches(":multi")),
        true,
        &["--tls-verify=false"],
    );
    cfg["rootfs"]["diff_ids"][0].as_str().unwrap().to_string()
}

/// A Dockerfile without RUN that records the platform arguments in labels.
const PLATFORM_LABELS: &str = "FROM {BASE}\n\
    ARG TARGETPLATFORM\nARG TARGETOS\nARG TARGETARCH\nARG TARGETVARIANT\nARG BUILDPLATFORM\nARG BUILDARCH\n\
    LABEL target=$TARGETPLATFORM os=$TARGETOS arch=$TARGETARCH variant=x$TARGETVARIANT build=$BUILDPLATFORM buildarch=$BUILDARCH\n\
    COPY f /f\n";

#[test]
fn ci_manifest_stitches_the_per_arch_builds_under_every_derived_tag() {
    let Some(s) = setup() else { return };
    let ctx = s.context("ctx", &PLATFORM_LABELS.replace("{BASE}", &s.base));
    // Two `ci build --per-arch` jobs, as the GitLab pipeline runs them. No RUN: no emulation.
    // The arm64 job spells its platform linux/arm64/v8 (as manifest-tool's examples do); its
    // per-arch tag is still `-arm64`, which the default `ci manifest --platforms` (linux/arm64)
    // looks for.
    let mut per_arch = Vec::new();
    for platform in ["linux/amd64", "linux/arm64/v8"] {
        let out = ok(s.ci_build(&ctx, &["--per-arch", "--custom-platform", platform]));
        per_arch.push(out.trim().to_string());
    }
    assert_eq!(s.inspect("1.2.3-amd64", &[])["Digest"], per_arch[0]);
    assert_eq!(s.inspect("1.2.3-arm64", &[])["Digest"], per_arch[1]);
    assert_eq!(s.raw("1.2.3-arm64v8"), None, "no variant in arm64's tag");
    // Platform selection: each build sits on its own platform's base layer, with the right args.
    for (tag, arch, target, variant, base_child) in [
        ("1.2.3-amd64", "amd64", "linux/amd64", "x", &s.base_amd64),
        (
            "1.2.3-arm64",
            "arm64",
            "linux/arm64/v8",
            "xv8",
            &s.base_arm64,
        ),
    ] {
        let cfg = s.config(tag, &[]);
        assert_eq!(cfg["architecture"], arch, "{tag}");
        assert_eq!(
            cfg["rootfs"]["diff_ids"][0].as_str().unwrap(),
            base_diff_id(&s, base_child),
            "{tag}"
        );
        let labels = &cfg["config"]["Labels"];
        assert_eq!(labels["target"], target, "{tag}");
        assert_eq!(labels["os"], "linux");
        assert_eq!(labels["arch"], arch);
        assert_eq!(labels["variant"], variant);
        assert_eq!(labels["build"], "linux/amd64");
        assert_eq!(labels["buildarch"], "amd64");
    }

    let out = s.ci_manifest(&[]);
    let digest = ok(out).trim().to_string();
    let bytes = s.raw("1.2.3").expect("the index is under the main tag");
    assert_eq!(sha256(&bytes), digest);
    let index = json(&bytes);
    assert_eq!(index["mediaType"], DOCKER_LIST);
    assert_eq!(platforms(&index), ["linux/amd64", "linux/arm64"]);
    assert_eq!(index["manifests"][0]["digest"], per_arch[0].as_str());
    assert_eq!(index["manifests"][1]["digest"], per_arch[1].as_str());
    assert_eq!(index["manifests"][1]["mediaType"], OCI_MANIFEST);
    for tag in ["1.2", "latest"] {
        assert_eq!(s.raw(tag).as_deref(), Some(&bytes[..]), "{tag}");
    }
    let arm = s.inspect("latest", &["--override-arch", "arm64"]);
    assert_eq!(arm["Architecture"], "arm64");
    assert_eq!(arm["Labels"]["arch"], "arm64");
    let amd = s.inspect("latest", &["--override-arch", "amd64"]);
    assert_eq!(amd["Labels"]["arch"], "amd64");
    // The same outputs as `ci build`: the dotenv report, with the index digest.
    let dotenv = std::fs::read_to_string(s.dir.path().join("gantry.env")).unwrap();
    let image = &s.image;
    assert_eq!(
        dotenv,
        format!(
            "GANTRY_VERSION=1.2.3\nGANTRY_TAGS={image}:1.2.3,{image}:1.2,{image}:latest\nGANTRY_TAG={image}:1.2.3\nGANTRY_DIGEST={digest}\nGANTRY_PUSHED={image}:1.2.3,{image}:1.2,{image}:latest\n"
        )
    );

    // Running it again changes nothing and prints the same digest.
    let again = ok(s.ci_manifest(&[]));
    assert_eq!(again.trim(), digest);
    assert_eq!(s.raw("latest").as_deref(), Some(&bytes[..]));

    // An expected platform that was not built fails naming it, and no tag moves (not even a new
    // one).
    let err = fails(s.ci_manifest(&[
        "--platforms",
        "linux/amd64,linux/arm64,linux/arm/v7",
        "--tag",
        "type=raw,value=next",
        "--type",
        "oci",
    ]));
    assert!(
        err.contains(&format!(
            "error: the image for platform `linux/arm/v7` is missing: `{image}:1.2.3-armv7` does not exist\n\
             hint: run `gantry ci build --per-arch --custom-platform linux/arm/v7`"
        )),
        "{err}"
    );
    assert_eq!(s.raw("next"), None);
    assert_eq!(s.raw("latest").as_deref(), Some(&bytes[..]));

    // --ignore-missing stitches what is there; --type oci gives an OCI index of the same images.
    let oci = ok(s.ci_manifest(&[
        "--platforms",
        "linux/amd64",
        "--platforms",
        "linux/arm/v7,linux/arm64",
        "--ignore-missing",
        "--type",
        "oci",
        "--dotenv",
        "oci.env",
    ]));
    let oci_bytes = s.raw("1.2.3").unwrap();
    assert_eq!(sha256(&oci_bytes), oci.trim());
    let oci_index = json(&oci_bytes);
    assert_eq!(oci_index["mediaType"], OCI_INDEX);
    assert_eq!(platforms(&oci_index), ["linux/amd64", "linux/arm64"]);
    assert_eq!(oci_index["manifests"][1]["digest"], per_arch[1].as_str());
    let dotenv = std::fs::read_to_string(s.dir.path().join("oci.env")).unwrap();
    assert!(
        dotenv.contains(&format!("GANTRY_DIGEST={}\n", oci.trim())),
        "{dotenv}"
    );

    // `ci build --platforms` refuses outputs that one image per platform would overwrite.
    let err = fails(s.ci_build(
        &ctx,
        &[
            "--platforms",
            "linux/amd64,linux/arm64",
            "--tar-path",
            "x.tar",
        ],
    ));
    assert!(
        err.contains("error: --tar-path cannot be used with --platforms: one job builds several images there\nhint: run one `gantry ci build --per-arch --custom-platform PLATFORM` per platform"),
        "{err}"
    );

    // A bad platform is refused before anything is fetched.
    let err = fails(s.ci_manifest(&["--platforms", "linux/amd64,arm64"]));
    assert!(
        err.contains("error: platform `arm64` in --platforms is not of the form os/arch"),
        "{err}"
    );
}

#[test]
fn ci_manifest_writes_github_outputs_and_summary() {
    let Some(s) = setup() else { return };
    // The per-arch images of a GitHub push to master, copied in with skopeo (not gantry).
    let image = format!("{}/octocat/hello-world", s.reg.addr);
    for (arch, digest) in [("amd64", &s.base_amd64), ("arm64", &s.base_arm64)] {
        ok(run(Command::new("skopeo").args([
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &format!("docker://{}@{digest}", s.base.trim_end_matches(":multi")),
            &format!("docker://{image}:master-{arch}"),
        ])));
    }
    let output = s.dir.path().join("github_output");
    let summary = s.dir.path().join("summary.md");
    let payload = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ci/push.json");
    let out = run(Command::new(gantry_bin())
        .env_clear()
        .current_dir(s.dir.path())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", s.dir.path())
        .envs([
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_EVENT_NAME", "push"),
            ("GITHUB_REF", "refs/heads/master"),
            ("GITHUB_SHA", SHA),
            ("GITHUB_REPOSITORY", "octocat/Hello-World"),
            ("SOURCE_DATE_EPOCH", EPOCH),
        ])
        .env("GITHUB_EVENT_PATH", &payload)
        .env("GITHUB_OUTPUT", &output)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .args(["ci", "manifest", "--image", &image])
        .args(["--tag", "type=ref,event=branch", "--tag", "type=sha"])
        .args(["--insecure-registry", &s.reg.addr]));
    let stderr_text = stderr(&out);
    let digest = ok(out).trim().to_string();
    assert!(
        stderr_text.contains("::group::gantry ci manifest"),
        "{stderr_text}"
    );
    let bytes = s.raw_of(&image, "sha-860c190");
    assert_eq!(sha256(&bytes), digest);
    assert_eq!(s.raw_of(&image, "master"), bytes);
    assert_eq!(
        platforms(&json(&bytes)),
        ["linux/amd64", "linux/arm64"],
        "the platforms as --platforms gives them (the images' configs name no variant)"
    );
    let text = std::fs::read_to_string(&output).unwrap();
    assert!(text.contains(&format!("digest={digest}\n")), "{text}");
    assert!(text.contains(&format!("{image}:master\n")), "{text}");
    let summary_text = std::fs::read_to_string(&summary).unwrap();
    assert!(summary_text.contains(&digest), "{summary_text}");
}

impl Setup {
    fn raw_of(&self, image: &str, tag: &str) -> Vec<u8> {
        skopeo_raw(&format!("docker://{image}:{tag}"), &["--tls-verify=false"])
    }
}

/// Whether an arm64 binary can run here: root, binfmt_misc mounted and qemu-aarch64 registered
/// with the F (fix-binary) flag, so that the interpreter is found from inside a chroot. Mounts
/// binfmt_misc and enables the qemu-user-static entry when they are not (idempotent); returns
/// why not otherwise.
fn qemu_aarch64() -> Result<(), String> {
    if !is_root() {
        return Err("registering qemu with binfmt_misc and RUN need root".into());
    }
    let dir = Path::new("/proc/sys/fs/binfmt_misc");
    if !dir.join("status").exists() {
        let out = run(Command::new("mount").args([
            "-t",
            "binfmt_misc",
            "binfmt_misc",
            "/proc/sys/fs/binfmt_misc",
        ]));
        if !out.status.success() {
            return Err(format!("cannot mount binfmt_misc: {}", stderr(&out).trim()));
        }
    }
    let entry = dir.join("qemu-aarch64");
    let enabled = || {
        std::fs::read_to_string(&entry)
            .map(|t| t.lines().next() == Some("enabled"))
            .unwrap_or(false)
    };
    if !enabled() {
        match Command::new("update-binfmts")
            .args(["--enable", "qemu-aarch64"])
            .output()
        {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                return Err(format!(
                    "update-binfmts --enable qemu-aarch64 failed: {}\nhint: apt-get install qemu-user-static binfmt-support",
                    String::from_utf8_lossy(&o.stderr).trim()
                ))
            }
            Err(e) => {
                return Err(format!(
                    "cannot run update-binfmts: {e}\nhint: apt-get install qemu-user-static binfmt-support"
                ))
            }
        }
    }
    let text = std::fs::read_to_string(&entry).map_err(|e| format!("{}: {e}", entry.display()))?;
    if !enabled() {
        return Err(format!(
            "qemu-aarch64 is registered but not enabled:\n{text}"
        ));
    }
    let flags = text
        .lines()
        .find_map(|l| l.strip_prefix("flags: "))
        .unwrap_or("");
    if !flags.contains('F') {
        return Err(format!(
            "qemu-aarch64 is registered without the F flag (flags `{flags}`), so its interpreter \
             is not found inside a chroot\nhint: install qemu-user-static (its entries have F)"
        ));
    }
    Ok(())
}

#[allow(clippy::print_stderr)] // the skip message is for the person running the tests
fn need_qemu(test: &str) -> bool {
    match qemu_aarch64() {
        Ok(()) => true,
        Err(why) => {
            eprintln!("skipping {test}: {why}");
            false
        }
    }
}

#[test]
fn ci_build_platforms_runs_arm64_under_qemu_and_stitches_both() {
    if !need_qemu("ci_build_platforms_runs_arm64_under_qemu_and_stitches_both") {
        return;
    }
    let Some(s) = setup() else { return };
    let ctx = s.context(
        "ctx",
        &format!(
            "FROM {}\nARG TARGETARCH\nRUN uname -m > /arch && echo $TARGETARCH > /targetarch\nCOPY f /f\nCMD [\"cat\", \"/arch\"]\n",
            s.base
        ),
    );
    let digest_file = s.dir.path().join("digest");
    let out = ok(s.ci_build(
        &ctx,
        &[
            "--platforms",
            "linux/amd64,linux/arm64",
            "--digest-file",
            digest_file.to_str().unwrap(),
        ],
    ));
    // stdout is the index digest alone; the digest file and the dotenv report carry it too.
    let digest = out.trim().to_string();
    assert_eq!(out, format!("{digest}\n"));
    assert_eq!(std::fs::read_to_string(&digest_file).unwrap(), digest);
    let dotenv = std::fs::read_to_string(s.dir.path().join("gantry.env")).unwrap();
    let image = &s.image;
    assert!(
        dotenv.ends_with(&format!(
            "GANTRY_DIGEST={digest}\nGANTRY_PUSHED={image}:1.2.3,{image}:1.2,{image}:latest\n"
        )),
        "{dotenv}"
    );
    let bytes = s.raw("1.2.3").expect("index under the main tag");
    assert_eq!(sha256(&bytes), digest);
    for tag in ["1.2", "latest"] {
        assert_eq!(s.raw(tag).as_deref(), Some(&bytes[..]), "{tag}");
    }
    let index = json(&bytes);
    assert_eq!(index["mediaType"], DOCKER_LIST);
    assert_eq!(platforms(&index), ["linux/amd64", "linux/arm64"]);
    // The children are the per-arch tags, which sit on their own platform's base layer.
    for (i, (tag, base_child)) in [
        ("1.2.3-amd64", &s.base_amd64),
        ("1.2.3-arm64", &s.base_arm64),
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(
            index["manifests"][i]["digest"],
            s.inspect(tag, &[])["Digest"],
            "{tag}"
        );
        let cfg = s.config(tag, &[]);
        assert_eq!(
            cfg["rootfs"]["diff_ids"][0].as_str().unwrap(),
            base_diff_id(&s, base_child)
        );
    }
    let arm = s.inspect("latest", &["--override-arch", "arm64"]);
    assert_eq!(arm["Architecture"], "arm64");
    assert_eq!(arm["Os"], "linux");

    // podman picks the arm64 image from the index and runs it under the same qemu.
    let storage = tempfile::tempdir().unwrap();
    let image = format!("{}:latest", s.image);
    let podman = |arch: &str, cmd: &[&str]| {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(storage.path().join("root"))
            .arg("--runroot")
            .arg(storage.path().join("runroot"))
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
            .args(["--arch", arch, &image])
            .args(cmd);
        ok(run(&mut c))
    };
    assert_eq!(podman("arm64", &["uname", "-m"]), "aarch64\n");
    // What the RUN recorded at build time: it ran as aarch64, with TARGETARCH=arm64.
    assert_eq!(podman("arm64", &[]), "aarch64\n");
    assert_eq!(podman("arm64", &["cat", "/targetarch"]), "arm64\n");
    assert_eq!(podman("amd64", &[]), "x86_64\n");
    assert_eq!(podman("amd64", &["cat", "/targetarch"]), "amd64\n");
}

/// The ELF machine of a binary (e_machine at offset 18): 0x3e x86-64, 0xb7 AArch64.
fn elf_machine(path: &Path) -> u16 {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..4], b"\x7fELF", "{}", path.display());
    u16::from_le_bytes([bytes[18], bytes[19]])
}

#[test]
fn custom_platform_and_from_platform_pick_from_the_multi_arch_base() {
    let Some(s) = setup() else { return };
    // No RUN anywhere: nothing of a foreign architecture is executed.
    let ctx = s.context(
        "ctx",
        &format!(
            "FROM --platform=$BUILDPLATFORM {0} AS tools\n\
             FROM {0}\n\
             COPY --from=tools /bin/busybox /build-busybox\n\
             ARG TARGETPLATFORM\nARG TARGETVARIANT\nARG BUILDPLATFORM\n\
             LABEL target=$TARGETPLATFORM variant=x$TARGETVARIANT build=$BUILDPLATFORM\n",
            s.base
        ),
    );
    let home = tempfile::tempdir().unwrap();
    let dest = format!("{}:arm64v8", s.image);
    // Variant-aware: linux/arm64/v8 picks the base's arm64/v8 entry.
    ok(run(gantry(home.path())
        .args(["build", "--context"])
        .arg(&ctx)
        .args([
            "--custom-platform",
            "linux/arm64/v8",
            "--destination",
            &dest,
        ])
        .args(["--insecure-registry", &s.reg.addr])));
    let cfg = s.config("arm64v8", &[]);
    assert_eq!(cfg["architecture"], "arm64");
    assert_eq!(
        cfg["rootfs"]["diff_ids"][0].as_str().unwrap(),
        base_diff_id(&s, &s.base_arm64)
    );
    let labels = &cfg["config"]["Labels"];
    assert_eq!(labels["target"], "linux/arm64/v8");
    assert_eq!(labels["variant"], "xv8");
    assert_eq!(labels["build"], "linux/amd64");
    // The image's own busybox is arm64; the one copied from the BUILDPLATFORM stage is amd64.
    let layout = s.dir.path().join("layout");
    skopeo_to_layout(
        &format!("docker://{dest}"),
        &layout,
        "x",
        &["--src-tls-verify=false"],
    );
    let rootfs = umoci_unpack(&layout, "x", &s.dir.path().join("bundle"));
    assert_eq!(elf_machine(&rootfs.join("bin/busybox")), 0xb7);
    assert_eq!(elf_machine(&rootfs.join("build-busybox")), 0x3e);

    // A platform the base does not have fails naming what it has, and pushes nothing.
    let err = fails(run(gantry(home.path())
        .args(["build", "--context"])
        .arg(&ctx)
        .args(["--custom-platform", "linux/arm/v7"])
        .args(["--destination", &format!("{}:armv7", s.image)])
        .args(["--insecure-registry", &s.reg.addr])));
    assert!(
        err.contains(&format!(
            "`{}` has no image for platform `linux/arm/v7`; available: linux/amd64, linux/arm64/v8\n\
             hint: choose one of the available platforms with --custom-platform",
            s.base
        )),
        "{err}"
    );
    assert_eq!(s.raw("armv7"), None);
}

/// A made-up ELF machine (0x1234) that no real emulator claims.
const FAKE_MACHINE: u16 = 0x1234;
const FAKE_ENTRY: &str = "gantry-test-no-fix-binary";

/// Registers (once; idempotent) a binfmt_misc entry for [`FAKE_MACHINE`] without the F flag
/// whose emulator path exists nowhere, as a qemu entry registered without F looks from inside a
/// chroot. Harmless: nothing real has that machine.
fn register_entry_without_fix_binary() -> Result<(), String> {
    let dir = Path::new("/proc/sys/fs/binfmt_misc");
    qemu_aarch64()?; // root and binfmt_misc mounted
    if dir.join(FAKE_ENTRY).exists() {
        return Ok(());
    }
    let [lo, hi] = FAKE_MACHINE.to_le_bytes();
    let line = format!(
        ":{FAKE_ENTRY}:M::\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\x{lo:02x}\\x{hi:02x}:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:/nonexistent/gantry-test-emulator:"
    );
    match std::fs::write(dir.join("register"), line) {
        Ok(()) => Ok(()),
        // Another test process registered it first.
        Err(_) if dir.join(FAKE_ENTRY).exists() => Ok(()),
        Err(e) => Err(format!("cannot register a binfmt_misc entry: {e}")),
    }
}

#[test]
#[allow(clippy::print_stderr)] // the skip message is for the person running the tests
fn a_foreign_binary_whose_emulator_is_not_in_the_root_names_the_f_flag() {
    if let Err(why) = register_entry_without_fix_binary() {
        eprintln!(
            "skipping a_foreign_binary_whose_emulator_is_not_in_the_root_names_the_f_flag: {why}"
        );
        return;
    }
    let reg = TestRegistry::plain();
    let base = crate::build_tests::push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    let mut elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0".to_vec();
    elf.extend_from_slice(&FAKE_MACHINE.to_le_bytes());
    elf.resize(64, 0);
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("foreign"), &elf).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(ctx.join("foreign"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = crate::build_tests::build_in(
        &ctx,
        &format!("FROM {base}\nCOPY foreign /foreign\nRUN [\"/foreign\"]\n"),
        &[],
        &["--no-push", "--insecure-registry", &reg.addr],
    );
    let err = fails(out);
    assert!(
        err.contains(
            "`/foreign` is a ELF machine 0x1234 binary; binfmt_misc has an emulator registered \
             for it, but the emulator cannot be found inside the image's root filesystem (it was \
             registered without the F flag)\n\
             hint: register the emulator with the F (fix-binary) flag"
        ),
        "{err}"
    );
}

#[test]
fn ci_manifest_uses_the_pipeline_credentials_and_never_prints_them() {
    let Some(layout) = fixtures::busybox_multi() else {
        return;
    };
    let reg = TestRegistry::tls_basic();
    let (user, password) = (reg.username.clone().unwrap(), reg.password.clone().unwrap());
    let image = format!("{}/group/app", reg.addr);
    let multi = fixtures::push(
        &layout,
        BUSYBOX_TAG,
        &format!("{image}:multi"),
        Some((&user, &password)),
        None,
    );
    let index = json(&fixtures::blob(&layout, &multi));
    let creds = format!("{user}:{password}");
    for (i, arch) in ["amd64", "arm64"].into_iter().enumerate() {
        let child = index["manifests"][i]["digest"].as_str().unwrap();
        ok(run(Command::new("skopeo").args([
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--src-creds",
            &creds,
            "--dest-creds",
            &creds,
            &format!("docker://{image}@{child}"),
            &format!("docker://{image}:1.2.3-{arch}"),
        ])));
    }
    let dir = tempfile::tempdir().unwrap();
    let out = run(Command::new(gantry_bin())
        .env_clear()
        .current_dir(dir.path())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .envs([
            ("GITLAB_CI", "true"),
            ("CI", "true"),
            ("CI_PIPELINE_SOURCE", "push"),
            ("CI_COMMIT_TAG", "v1.2.3"),
            ("CI_COMMIT_REF_NAME", "v1.2.3"),
            ("CI_COMMIT_SHA", SHA),
            ("CI_DEFAULT_BRANCH", "main"),
            ("CI_REGISTRY", reg.addr.as_str()),
            ("CI_REGISTRY_IMAGE", image.as_str()),
            ("CI_REGISTRY_USER", user.as_str()),
            ("CI_REGISTRY_PASSWORD", password.as_str()),
            ("SOURCE_DATE_EPOCH", EPOCH),
        ])
        .args(["ci", "manifest", "--tag", "type=semver,pattern={{version}}"])
        .arg("--registry-certificate")
        .arg(format!(
            "{}={}",
            reg.addr,
            reg.ca_pem.as_ref().unwrap().display()
        )));
    let (so, se) = (stdout(&out), stderr(&out));
    assert!(
        !so.contains(&password) && !se.contains(&password),
        "secret in logs"
    );
    assert!(
        se.contains("section_start:") && se.contains("section_end:"),
        "{se}"
    );
    let digest = ok(out).trim().to_string();
    let extra = ["--tls-verify=false", "--creds", creds.as_str()];
    for tag in ["1.2.3", "latest"] {
        let bytes = skopeo_raw(&format!("docker://{image}:{tag}"), &extra);
        assert_eq!(sha256(&bytes), digest, "{tag}");
        assert_eq!(platforms(&json(&bytes)), ["linux/amd64", "linux/arm64"]);
    }
}
