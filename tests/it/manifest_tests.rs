//! `gantry manifest` against real registries (distribution 2.8), checked with skopeo: indexes from
//! `from-args` and `from-spec`, flattening, sources brought over from another repository or
//! registry, re-runs, and every bad input failing with one message and no tag moved.
//!
//! The per-platform images come from the `busybox-multi` fixture (linux/amd64 and
//! linux/arm64/v8), copied into the registry with skopeo, never with gantry.

use std::path::Path;
use std::process::Command;

use crate::harness::fixtures::{self, BUSYBOX_TAG};
use crate::harness::registry::{TestRegistry, PASSWORD, USERNAME};
use crate::harness::{fails, gantry, ok, run, skopeo_inspect, skopeo_raw};

const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("registry documents are JSON")
}

/// A registry holding `base:multi` (the two-platform index) and `app:v1-amd64` /
/// `app:v1-arm64` (its children as single images). `None` when the fixture is unavailable.
struct Setup {
    reg: TestRegistry,
    home: tempfile::TempDir,
    amd64: String,
    arm64: String,
    multi: String,
}

fn setup() -> Option<Setup> {
    let Some(layout) = fixtures::busybox_multi() else {
        // busybox_multi printed why (apt has no busybox-static:arm64); in CI it fails instead.
        return None;
    };
    let reg = TestRegistry::plain();
    let multi = fixtures::push(
        &layout,
        BUSYBOX_TAG,
        &format!("{}/base:multi", reg.addr),
        None,
        None,
    );
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
    for arch in ["amd64", "arm64"] {
        ok(run(Command::new("skopeo").args([
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &format!("docker://{}/base@{}", reg.addr, child(arch)),
            &format!("docker://{}/app:v1-{arch}", reg.addr),
        ])));
    }
    Some(Setup {
        amd64: child("amd64"),
        arm64: child("arm64"),
        multi,
        reg,
        home: tempfile::tempdir().unwrap(),
    })
}

/// `skopeo inspect --raw` of a tag, or `None` when the registry has no such tag.
fn raw_or_none(image: &str) -> Option<Vec<u8>> {
    let out = run(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", image]));
    out.status.success().then_some(out.stdout)
}

fn raw(image: &str) -> Vec<u8> {
    skopeo_raw(image, &["--tls-verify=false"])
}

/// Parses `Digest: sha256:... <size>` (the whole of stdout).
fn digest_line(stdout: &str) -> (String, usize) {
    let line = stdout
        .strip_prefix("Digest: ")
        .and_then(|l| l.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("unexpected stdout: {stdout:?}"));
    let (d, n) = line.split_once(' ').expect("digest and size");
    (d.to_string(), n.parse().expect("size"))
}

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

fn from_args(s: &Setup, extra: &[&str]) -> std::process::Output {
    run(gantry(s.home.path())
        .args(["manifest", "push", "from-args", "--plain-http"])
        .args(extra))
}

#[test]
fn from_args_pushes_a_docker_list_under_every_tag_and_reruns_as_a_no_op() {
    let Some(s) = setup() else { return };
    let addr = &s.reg.addr;
    let out = ok(from_args(
        &s,
        &[
            "--platforms",
            "linux/amd64,linux/arm64",
            "--template",
            &format!("{addr}/app:v1-ARCH"),
            "--target",
            &format!("{addr}/app:v1"),
            "--tags",
            "latest,stable",
        ],
    ));
    let (digest, size) = digest_line(&out);
    let bytes = raw(&format!("docker://{addr}/app:v1"));
    assert_eq!(sha256(&bytes), digest);
    assert_eq!(bytes.len(), size);
    // manifest-tool's MarshalIndent: two-space indent, Docker descriptor field order.
    assert!(bytes.starts_with(b"{\n  \"schemaVersion\": 2,\n  \"mediaType\": \"application/vnd.docker.distribution.manifest.list.v2+json\",\n  \"manifests\": [\n    {\n      \"mediaType\": \"application/vnd.oci.image.manifest.v1+json\",\n      \"size\": "), "{}", String::from_utf8_lossy(&bytes));
    let index = json(&bytes);
    assert_eq!(index["mediaType"], DOCKER_LIST);
    assert_eq!(platforms(&index), ["linux/amd64", "linux/arm64"]);
    assert_eq!(index["manifests"][0]["digest"], s.amd64.as_str());
    assert_eq!(index["manifests"][1]["digest"], s.arm64.as_str());
    for tag in ["latest", "stable"] {
        assert_eq!(raw(&format!("docker://{addr}/app:{tag}")), bytes, "{tag}");
    }
    let arm = skopeo_inspect(
        &format!("docker://{addr}/app:v1"),
        false,
        &["--tls-verify=false", "--override-arch", "arm64"],
    );
    assert_eq!(arm["Architecture"], "arm64");
    // skopeo reports the digest it was pointed at (the list) and the arm64 image's config.
    assert_eq!(arm["Digest"], digest.as_str());
    assert_eq!(arm["Os"], "linux");

    // The same again, global flag before the subcommand: same digest, nothing changes.
    let again = ok(run(gantry(s.home.path()).args([
        "manifest",
        "--plain-http",
        "push",
        "from-args",
        "--platforms",
        "linux/amd64",
        "--platforms",
        "linux/arm64",
        "--template",
        &format!("{addr}/app:v1-ARCH"),
        "--target",
        &format!("{addr}/app:v1"),
        "--tags",
        "latest",
        "--tags",
        "stable",
    ])));
    assert_eq!(again, out);
    assert_eq!(raw(&format!("docker://{addr}/app:v1")), bytes);

    // inspect: readable, and --raw byte for byte.
    let text = ok(run(gantry(s.home.path()).args([
        "manifest",
        "inspect",
        "--plain-http",
        &format!("{addr}/app:v1"),
    ])));
    assert!(text.contains(&format!("Digest:    {digest}\n")), "{text}");
    assert!(text.contains(&format!("  [2] linux/arm64\n      MediaType: application/vnd.oci.image.manifest.v1+json\n      Digest:    {}\n", s.arm64)), "{text}");
    let raw_out = run(gantry(s.home.path()).args([
        "manifest",
        "inspect",
        "--raw",
        "--plain-http",
        &format!("{addr}/app:v1"),
    ]));
    assert!(raw_out.status.success());
    assert_eq!(raw_out.stdout, bytes);
}

fn write_spec(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn from_spec_and_from_args_give_the_same_index_and_oci_carries_annotations() {
    let Some(s) = setup() else { return };
    let addr = &s.reg.addr;
    let args_out = ok(from_args(
        &s,
        &[
            "--type",
            "oci",
            "--platforms",
            "linux/amd64,linux/arm64",
            "--template",
            &format!("{addr}/app:v1-ARCH"),
            "--target",
            &format!("{addr}/app:args"),
        ],
    ));
    let spec = write_spec(
        s.home.path(),
        "spec.yaml",
        &format!(
            "image: {addr}/app:spec\nmanifests:\n  - image: {addr}/app:v1-amd64\n    platform:\n      architecture: amd64\n      os: linux\n  - image: {addr}/app:v1-arm64\n    platform:\n      architecture: arm64\n      os: linux\n"
        ),
    );
    let spec_out = ok(run(gantry(s.home.path()).args([
        "manifest",
        "push",
        "--type",
        "oci",
        "from-spec",
        &spec,
        "--plain-http",
    ])));
    assert_eq!(digest_line(&spec_out), digest_line(&args_out));
    let bytes = raw(&format!("docker://{addr}/app:spec"));
    assert_eq!(sha256(&bytes), digest_line(&spec_out).0);
    assert_eq!(json(&bytes)["mediaType"], OCI_INDEX);

    // Platforms left out of the spec come from each image's config; annotations go on the index.
    let spec = write_spec(
        s.home.path(),
        "annotated.yaml",
        &format!(
            "image: {addr}/app:annotated\ntags: [a1]\nannotations:\n  org.opencontainers.image.title: busybox\nmanifests:\n  - image: {addr}/app:v1-arm64\n  - image: {addr}/app:v1-amd64\n"
        ),
    );
    let out = ok(run(gantry(s.home.path()).args([
        "manifest",
        "push",
        "from-spec",
        &spec,
        "--type=oci",
        "--plain-http",
    ])));
    let bytes = raw(&format!("docker://{addr}/app:a1"));
    assert_eq!(sha256(&bytes), digest_line(&out).0);
    let index = json(&bytes);
    assert_eq!(platforms(&index), ["linux/arm64", "linux/amd64"]);
    assert_eq!(
        index["annotations"]["org.opencontainers.image.title"],
        "busybox"
    );
}

#[test]
fn an_index_source_is_flattened_and_brought_over_from_another_repository() {
    let Some(s) = setup() else { return };
    let addr = &s.reg.addr;
    let spec = write_spec(
        s.home.path(),
        "flat.yaml",
        &format!("image: {addr}/flat:1\nmanifests:\n  - image: {addr}/base:multi\n"),
    );
    let out = ok(run(gantry(s.home.path()).args([
        "manifest",
        "--plain-http",
        "push",
        "from-spec",
        &spec,
    ])));
    let bytes = raw(&format!("docker://{addr}/flat:1"));
    assert_eq!(sha256(&bytes), digest_line(&out).0);
    let index = json(&bytes);
    assert_ne!(sha256(&bytes), s.multi, "a new list, not the source index");
    assert_eq!(index["mediaType"], DOCKER_LIST);
    // The children keep their own platforms (the arm64 one says v8 in the source index).
    assert_eq!(platforms(&index), ["linux/amd64", "linux/arm64/v8"]);
    // Every child is in the target repository by digest, config and layers included.
    for d in [&s.amd64, &s.arm64] {
        let child = raw(&format!("docker://{addr}/flat@{d}"));
        assert_eq!(&sha256(&child), d);
    }
    let layout = tempfile::tempdir().unwrap();
    ok(run(Command::new("skopeo").args([
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        "--override-arch",
        "arm64",
        &format!("docker://{addr}/flat:1"),
        &format!("oci:{}:x", layout.path().display()),
    ])));
}

/// Writes `bytes` as a blob of `layout`; returns its descriptor (`mediaType`, `digest`, `size`).
fn add_blob(layout: &Path, media_type: &str, bytes: &[u8]) -> serde_json::Value {
    let digest = sha256(bytes);
    let path = layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    std::fs::write(path, bytes).unwrap();
    serde_json::json!({"mediaType": media_type, "digest": digest, "size": bytes.len()})
}

/// A BuildKit-style attestation manifest for the image `subject` (an in-toto statement layer,
/// an unknown/unknown config), written into `layout`; returns its index entry: platform
/// unknown/unknown, `vnd.docker.reference.type: attestation-manifest`.
fn add_attestation(layout: &Path, subject: &str) -> serde_json::Value {
    let statement = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://spdx.dev/Document",
        "subject": [{"name": "image", "digest": {"sha256": subject.trim_start_matches("sha256:")}}],
        "predicate": {}
    });
    let mut layer = add_blob(
        layout,
        "application/vnd.in-toto+json",
        statement.to_string().as_bytes(),
    );
    layer["annotations"] =
        serde_json::json!({"in-toto.io/predicate-type": "https://spdx.dev/Document"});
    let config = serde_json::json!({
        "architecture": "unknown",
        "os": "unknown",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}
    });
    let config = add_blob(
        layout,
        "application/vnd.oci.image.config.v1+json",
        config.to_string().as_bytes(),
    );
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config,
        "layers": [layer]
    });
    let mut entry = add_blob(layout, OCI_MANIFEST, manifest.to_string().as_bytes());
    entry["platform"] = serde_json::json!({"architecture": "unknown", "os": "unknown"});
    entry["annotations"] = serde_json::json!({
        "vnd.docker.reference.digest": subject,
        "vnd.docker.reference.type": "attestation-manifest"
    });
    entry
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

#[test]
fn attestations_of_index_sources_go_after_every_image_as_manifest_tool_puts_them() {
    let Some(s) = setup() else { return };
    let addr = &s.reg.addr;
    let layout_dir = tempfile::tempdir().unwrap();
    let layout = layout_dir.path().join("att");
    let src = fixtures::busybox_multi().unwrap();
    ok(run(Command::new("cp").arg("-a").arg(&src).arg(&layout)));
    let multi = json(&fixtures::blob(&layout, &s.multi));
    let child = |arch: &str| {
        multi["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["platform"]["architecture"] == arch)
            .unwrap()
            .clone()
    };
    let att_amd64 = add_attestation(&layout, &s.amd64);
    let att_arm64 = add_attestation(&layout, &s.arm64);
    // Two source indexes, as two BuildKit builds push them: the first lists its attestation
    // before its image, the second after.
    let index_a = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [att_amd64, child("amd64")]
    });
    let index_b = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [child("arm64"), att_arm64]
    });
    let mut refs = Vec::new();
    for (name, idx) in [("a", &index_a), ("b", &index_b)] {
        let mut d = add_blob(&layout, OCI_INDEX, idx.to_string().as_bytes());
        d["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": name});
        refs.push(d);
    }
    std::fs::write(
        layout.join("index.json"),
        serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": refs})
            .to_string(),
    )
    .unwrap();
    for name in ["a", "b"] {
        fixtures::push(&layout, name, &format!("{addr}/att:{name}"), None, None);
    }
    let spec = write_spec(
        s.home.path(),
        "att.yaml",
        &format!(
            "image: {addr}/stitched:1\nmanifests:\n  - image: {addr}/att:a\n  - image: {addr}/att:b\n"
        ),
    );
    for kind in ["docker", "oci"] {
        let out = ok(run(gantry(s.home.path()).args([
            "manifest",
            "--plain-http",
            "push",
            "--type",
            kind,
            "from-spec",
            &spec,
        ])));
        let bytes = raw(&format!("docker://{addr}/stitched:1"));
        assert_eq!(sha256(&bytes), digest_line(&out).0, "{kind}");
        let index = json(&bytes);
        let entries = index["manifests"].as_array().unwrap();
        // Images first (in source order), then the attestations (in source order), each with
        // its own descriptor: the two unknown/unknown platforms are not duplicates.
        let digests: Vec<&str> = entries
            .iter()
            .map(|e| e["digest"].as_str().unwrap())
            .collect();
        assert_eq!(
            digests,
            [
                s.amd64.as_str(),
                s.arm64.as_str(),
                att_amd64["digest"].as_str().unwrap(),
                att_arm64["digest"].as_str().unwrap()
            ],
            "{kind}"
        );
        assert_eq!(
            platforms(&index),
            [
                "linux/amd64",
                "linux/arm64/v8",
                "unknown/unknown",
                "unknown/unknown"
            ],
            "{kind}"
        );
        for (entry, subject) in [(&entries[2], &s.amd64), (&entries[3], &s.arm64)] {
            assert_eq!(
                entry["annotations"]["vnd.docker.reference.type"],
                "attestation-manifest"
            );
            assert_eq!(
                entry["annotations"]["vnd.docker.reference.digest"],
                subject.as_str()
            );
            assert_eq!(entry["mediaType"], OCI_MANIFEST);
        }
        // The attestations were brought into the target repository with their blobs.
        for att in [&att_amd64, &att_arm64] {
            let d = att["digest"].as_str().unwrap();
            let copied = raw(&format!("docker://{addr}/stitched@{d}"));
            assert_eq!(sha256(&copied), d);
        }
        // Platform selection never picks an attestation.
        let arm = skopeo_inspect(
            &format!("docker://{addr}/stitched:1"),
            false,
            &["--tls-verify=false", "--override-arch", "arm64"],
        );
        assert_eq!(arm["Architecture"], "arm64", "{kind}");
        assert_eq!(arm["Os"], "linux", "{kind}");
    }
}

#[test]
fn sources_on_another_registry_are_copied_with_their_own_credentials() {
    let Some(layout) = fixtures::busybox_multi() else {
        return;
    };
    let src = TestRegistry::tls_basic();
    let dst = TestRegistry::tls_basic();
    let creds = format!("--creds={USERNAME}:{PASSWORD}");
    let skopeo = ["--tls-verify=false", creds.as_str()];
    fixtures::push(
        &layout,
        BUSYBOX_TAG,
        &format!("{}/base:multi", src.addr),
        Some((USERNAME, PASSWORD)),
        None,
    );
    let home = tempfile::tempdir().unwrap();
    let target = format!("{}/team/app:1", dst.addr);
    let spec = write_spec(
        home.path(),
        "x.yaml",
        &format!(
            "image: {target}\nmanifests:\n  - image: {}/base:multi\n",
            src.addr
        ),
    );
    // --username/--password are for the target's registry only: the source refuses, and the
    // target tag is never created.
    let err = fails(run(gantry(home.path()).args([
        "manifest",
        "push",
        "from-spec",
        &spec,
        "--insecure",
        "--username",
        USERNAME,
        "--password",
        PASSWORD,
    ])));
    assert!(
        err.contains(&format!(
            "cannot fetch source image `{}/base:multi`",
            src.addr
        )),
        "{err}"
    );
    assert!(err.contains("401 Unauthorized"), "{err}");
    assert_eq!(err.matches("error:").count(), 1, "{err}");
    let absent = run(Command::new("skopeo")
        .args(["inspect", "--raw"])
        .args(skopeo)
        .arg(format!("docker://{target}")));
    assert!(!absent.status.success(), "the target tag must not exist");

    // A docker config with both registries' logins: the children and their blobs are copied.
    let cfg = home.path().join("docker");
    std::fs::create_dir_all(&cfg).unwrap();
    let auth = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("{USERNAME}:{PASSWORD}"))
    };
    std::fs::write(
        cfg.join("config.json"),
        serde_json::json!({"auths": {&src.addr: {"auth": &auth}, &dst.addr: {"auth": &auth}}})
            .to_string(),
    )
    .unwrap();
    let out = ok(run(gantry(home.path()).args([
        "manifest",
        "--insecure",
        "--docker-cfg",
        &cfg.display().to_string(),
        "push",
        "from-spec",
        &spec,
    ])));
    let bytes = skopeo_raw(&format!("docker://{target}"), &skopeo);
    assert_eq!(sha256(&bytes), digest_line(&out).0);
    assert_eq!(platforms(&json(&bytes)), ["linux/amd64", "linux/arm64/v8"]);
    let copied = tempfile::tempdir().unwrap();
    ok(run(Command::new("skopeo").args([
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("--src-creds={USERNAME}:{PASSWORD}"),
        "--override-arch",
        "arm64",
        &format!("docker://{target}"),
        &format!("oci:{}:x", copied.path().display()),
    ])));
}

#[test]
fn bad_inputs_fail_with_one_message_and_move_no_tag() {
    let Some(s) = setup() else { return };
    let addr = &s.reg.addr;
    // A good index first, so that "unchanged" can be checked as well as "absent".
    ok(from_args(
        &s,
        &[
            "--platforms",
            "linux/amd64,linux/arm64",
            "--template",
            &format!("{addr}/app:v1-ARCH"),
            "--target",
            &format!("{addr}/app:good"),
        ],
    ));
    let good = raw(&format!("docker://{addr}/app:good"));
    let template = format!("{addr}/app:v1-ARCH");
    let case = |args: &[&str], expected: &str| -> (Vec<String>, String) {
        (
            args.iter()
                .map(|a| a.replace("TEMPLATE", &template))
                .collect(),
            expected.replace("ADDR", addr),
        )
    };
    let cases = [
        case(
            &["--platforms", "linux", "--template", "TEMPLATE"],
            "platform `linux` is not of the form os/arch",
        ),
        case(
            &[
                "--platforms",
                "linux/amd64",
                "--template",
                "ADDR/app:v1-amd64",
            ],
            "has no ARCH, OS or VARIANT placeholder",
        ),
        case(
            &[
                "--platforms",
                "linux/amd64,linux/s390x",
                "--template",
                "TEMPLATE",
            ],
            "cannot fetch source image `ADDR/app:v1-s390x`",
        ),
        case(
            &["--platforms", "linux/amd64/v3", "--template", "TEMPLATE"],
            "unsupported os/arch or os/arch/variant combination `linux/amd64/v3`",
        ),
        case(
            // linux/arm64 has no variant, so this names the amd64 image.
            &[
                "--platforms",
                "linux/arm64",
                "--template",
                "ADDR/app:v1-amd64VARIANT",
            ],
            "is built for `linux/amd64`, but the spec says `linux/arm64`",
        ),
        case(
            &[
                "--platforms",
                "linux/amd64",
                "--template",
                "TEMPLATE",
                "--annotations",
                "a=b",
            ],
            "a Docker manifest list cannot carry annotations",
        ),
        case(
            &[
                "--type",
                "oci",
                "--platforms",
                "linux/amd64",
                "--template",
                "TEMPLATE",
                "--annotations",
                "a=b=c",
            ],
            "annotation `a=b=c` is not of the form key=value",
        ),
        case(
            &[
                "--platforms",
                "linux/s390x",
                "--template",
                "TEMPLATE",
                "--ignore-missing",
            ],
            "all entries were skipped",
        ),
    ];
    for (extra, expected) in &cases {
        for target in ["app:good", "app:bad"] {
            let mut args: Vec<String> = extra.iter().map(|a| a.replace("ADDR", addr)).collect();
            args.extend(["--target".into(), format!("{addr}/{target}")]);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let err = fails(from_args(&s, &args));
            assert!(err.contains(expected.as_str()), "{args:?}: {err}");
            assert_eq!(err.matches("error:").count(), 1, "{err}");
        }
        assert_eq!(
            raw(&format!("docker://{addr}/app:good")),
            good,
            "{expected}"
        );
        assert!(
            raw_or_none(&format!("docker://{addr}/app:bad")).is_none(),
            "{expected}"
        );
    }

    // Duplicates and a spec platform that contradicts the image, from a YAML spec.
    let dup = write_spec(
        s.home.path(),
        "dup.yaml",
        &format!("image: {addr}/app:bad\nmanifests:\n  - image: {addr}/app:v1-amd64\n  - image: {addr}/base@{}\n", s.amd64),
    );
    let err = fails(run(gantry(s.home.path()).args([
        "manifest",
        "push",
        "from-spec",
        &dup,
        "--plain-http",
    ])));
    assert!(
        err.contains("cannot include two manifests with the same platform `linux/amd64`"),
        "{err}"
    );
    assert!(raw_or_none(&format!("docker://{addr}/app:bad")).is_none());

    // --ignore-missing skips what is missing and pushes the rest.
    let out = ok(from_args(
        &s,
        &[
            "--platforms",
            "linux/amd64,linux/s390x",
            "--template",
            &template,
            "--target",
            &format!("{addr}/app:partial"),
            "--ignore-missing",
        ],
    ));
    let index = json(&raw(&format!("docker://{addr}/app:partial")));
    assert_eq!(platforms(&index), ["linux/amd64"]);
    assert!(out.starts_with("Digest: sha256:"));
}
