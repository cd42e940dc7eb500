//! What a cache hit is checked against before the image uses it: every hit's blob is read back
//! and digest-checked, whichever step it is and wherever the image goes, and a hit is mounted
//! into the destination, never uploaded again.

use std::io::Read as _;
use std::path::Path;

use super::{build, count, layers, need_root};
use crate::build_tests::push_busybox;
use crate::harness::faultproxy::FaultProxy;
use crate::harness::registry::TestRegistry;
use crate::harness::*;

/// Flips the stored bytes of a blob in the registry's storage (same size, other content), as a
/// disk or a registry bug would.
fn corrupt(reg: &TestRegistry, digest: &str) {
    let hex = digest.trim_start_matches("sha256:");
    let data = reg
        .dir()
        .join("data/docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    let mut bytes = std::fs::read(&data).unwrap();
    for b in bytes.iter_mut().skip(20) {
        *b ^= 0x5a;
    }
    std::fs::write(&data, &bytes).unwrap();
}

/// Copies an image into an OCI layout with skopeo, which checks every blob against its digest.
fn verifies(image: &str, layout: &Path) {
    skopeo_to_layout(
        &format!("docker://{image}"),
        layout,
        "t",
        &["--src-tls-verify=false"],
    );
}

/// Checks a docker-archive tarball independently of gantry: every layer file's bytes match its
/// name, and decompressed they match the config's diff ID.
fn tarball_verifies(path: &Path) -> Vec<String> {
    let mut files = std::collections::BTreeMap::new();
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        files.insert(name, data);
    }
    let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&files[manifest[0]["Config"].as_str().unwrap()]).unwrap();
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    let names = manifest[0]["Layers"].as_array().unwrap();
    assert_eq!(names.len(), diff_ids.len());
    let mut digests = Vec::new();
    for (name, diff_id) in names.iter().zip(diff_ids) {
        let name = name.as_str().unwrap();
        let bytes = &files[name];
        let digest = gantry::image::sha256_digest(bytes);
        assert_eq!(
            digest.trim_start_matches("sha256:"),
            name.split('.').next().unwrap(),
            "{name}"
        );
        let mut tar = Vec::new();
        if bytes.starts_with(&[0x1f, 0x8b]) {
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_end(&mut tar)
                .unwrap();
        } else {
            tar.clone_from(bytes);
        }
        assert_eq!(
            gantry::image::sha256_digest(&tar),
            diff_id.as_str().unwrap(),
            "{name}"
        );
        digests.push(digest);
    }
    digests
}

#[test]
fn a_corrupt_cached_last_layer_is_rebuilt_wherever_the_image_goes() {
    if !need_root("a_corrupt_cached_last_layer_is_rebuilt_wherever_the_image_goes") {
        return;
    }
    let reg = TestRegistry::plain();
    let other = TestRegistry::plain();
    let base = push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let cache = format!("{}/shared/cache", reg.addr);
    // No later step reads the filesystem after the last RUN: its hit was once mounted unread.
    // It makes different bytes every time it runs, so its rebuilt layer never has the corrupt
    // blob's digest.
    let df = format!(
        "FROM {base}\nRUN echo a > /a\nRUN cat /proc/sys/kernel/random/uuid > /last\nENV DONE=1\n"
    );
    let ctx = tmp.path().join("ctx");
    let common = [
        "--insecure-registry",
        &reg.addr,
        "--insecure-registry",
        &other.addr,
        "--cache",
        "--cache-repo",
        &cache,
    ];
    let first = format!("{}/app/first:1", reg.addr);
    build(
        &ctx,
        &df,
        &[&["--destination", &first][..], &common].concat(),
    );
    let bad = layers(&first)[2].clone();
    corrupt(&reg, &bad);
    let warning = "cached layer for `RUN cat /proc/sys/kernel/random/uuid > /last` is unusable, running the step again";
    let check = |log: &str| {
        assert_eq!(count(log, warning), 1, "{log}");
        assert_eq!(count(log, "WARN"), 1, "{log}");
        assert!(log.contains("digest"), "{log}");
        assert!(log.contains("cache hit for `RUN echo a > /a`"), "{log}");
    };

    // Into a tarball, nothing pushed, the cache left as it is (so the corrupt entry stays).
    let tar_path = tmp.path().join("image.tar");
    let (_, log) = build(
        &ctx,
        &df,
        &[
            &[
                "--no-push",
                "--no-push-cache",
                "--tar-path",
                &tar_path.display().to_string(),
            ][..],
            &common,
        ]
        .concat(),
    );
    check(&log);
    let in_tar = tarball_verifies(&tar_path);
    assert_eq!(in_tar.len(), 3);
    assert!(!in_tar.contains(&bad), "{in_tar:?}");

    // To another registry than the cache's.
    let elsewhere = format!("{}/app/elsewhere:1", other.addr);
    let (_, log) = build(
        &ctx,
        &df,
        &[
            &["--destination", &elsewhere, "--no-push-cache"][..],
            &common,
        ]
        .concat(),
    );
    check(&log);
    verifies(&elsewhere, &tmp.path().join("layout-elsewhere"));
    assert!(!layers(&elsewhere).contains(&bad));

    // To the cache's own registry, where a hit is mounted from the cache repository.
    let second = format!("{}/app/second:1", reg.addr);
    let (_, log) = build(
        &ctx,
        &df,
        &[&["--destination", &second][..], &common].concat(),
    );
    check(&log);
    verifies(&second, &tmp.path().join("layout-second"));
    let pushed = layers(&second);
    assert!(!pushed.contains(&bad));
    let out = podman_run(&tmp.path().join("podman"), &second, &["cat", "/a"]);
    assert_eq!(stdout(&out), "a\n", "{}", stderr(&out));

    // That build replaced the bad entry: the next one hits every step, without a warning.
    let third = format!("{}/app/third:1", reg.addr);
    let (_, log) = build(
        &ctx,
        &df,
        &[&["--destination", &third][..], &common].concat(),
    );
    assert_eq!(count(&log, "cache hit for `RUN"), 2, "{log}");
    assert_eq!(count(&log, "WARN"), 0, "{log}");
    assert_eq!(layers(&third), pushed);
}

#[test]
fn a_cache_hit_is_read_back_and_mounted_never_uploaded_again() {
    if !need_root("a_cache_hit_is_read_back_and_mounted_never_uploaded_again") {
        return;
    }
    let reg = TestRegistry::plain();
    // Every request of the builds goes through the proxy, which records them.
    let proxy = FaultProxy::start(&reg.addr, Vec::new());
    let base = format!("{}/base/busybox:latest", proxy.addr);
    crate::harness::fixtures::push(
        &crate::harness::fixtures::busybox(),
        "latest",
        &base,
        None,
        None,
    );
    let tmp = tempfile::tempdir().unwrap();
    let df = format!("FROM {base}\nRUN cat /proc/sys/kernel/random/uuid > /a\nRUN echo b > /b\n");
    let args = |dest: &str| -> Vec<String> {
        [
            "--destination",
            dest,
            "--insecure-registry",
            &proxy.addr,
            "--cache",
            "--cache-repo",
            &format!("{}/shared/cache", proxy.addr),
            "--reproducible",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let ctx = tmp.path().join("ctx");
    let one = format!("{}/app/one:1", proxy.addr);
    let a: Vec<String> = args(&one);
    let (cold, _) = build(&ctx, &df, &a.iter().map(String::as_str).collect::<Vec<_>>());
    let built: Vec<String> = layers(&one)[1..].to_vec();
    let uploaded = |hits: &[crate::harness::faultproxy::Hit], digest: &str| {
        hits.iter()
            .filter(|h| {
                h.method == "PUT"
                    && h.target
                        .contains(&format!("digest={digest}").replace(':', "%3A"))
            })
            .count()
    };
    let cold_hits = proxy.hits();
    for d in &built {
        // The cold build uploads each new layer: to the destination and to the cache.
        assert!(uploaded(&cold_hits, d) >= 1, "{d}\n{}", proxy.describe());
    }

    // The warm build goes to a new repository, so every blob has to get there somehow.
    let two = format!("{}/app/two:1", proxy.addr);
    let b: Vec<String> = args(&two);
    let (warm, log) = build(&ctx, &df, &b.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(warm, cold, "{log}");
    assert_eq!(count(&log, "cache hit for `RUN"), 2, "{log}");
    let warm_hits: Vec<_> = proxy.hits()[cold_hits.len()..].to_vec();
    for d in &built {
        assert_eq!(
            uploaded(&warm_hits, d),
            0,
            "{d} uploaded again\n{}",
            proxy.describe()
        );
        // Read back from the cache repository to check it...
        assert!(
            warm_hits
                .iter()
                .any(|h| h.method == "GET" && h.target == format!("/v2/shared/cache/blobs/{d}")),
            "{d} not read back\n{}",
            proxy.describe()
        );
        // ... and mounted from there.
        assert!(
            warm_hits.iter().any(|h| h.method == "POST"
                && h.target.contains("/v2/app/two/blobs/uploads/")
                && h.target
                    .contains(&format!("mount={}", d.replace(':', "%3A")))
                && h.target.contains("from=shared%2Fcache")
                && h.status == 201),
            "{d} not mounted\n{}",
            proxy.describe()
        );
    }
    // The only upload is the image config (the new repository has none); nothing new goes to
    // the cache.
    let puts: Vec<_> = warm_hits
        .iter()
        .filter(|h| h.method == "PUT" && h.target.contains("/blobs/uploads/"))
        .collect();
    assert_eq!(puts.len(), 1, "{}", proxy.describe());
    assert!(puts[0].target.starts_with("/v2/app/two/"), "{:?}", puts[0]);
    assert!(
        !warm_hits
            .iter()
            .any(|h| h.method == "PUT" && h.target.contains("shared/cache/manifests")),
        "{}",
        proxy.describe()
    );
}
