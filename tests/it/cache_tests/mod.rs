//! The remote layer cache (`--cache`) against the harness's registry: hits skip the command and
//! give the same digest, keys follow layer content, the cache repository keeps one tag, the TTL
//! is honoured, and a cache that cannot be reached degrades to a build without it. The
//! submodules cover what a hit is checked against before use (`verify`), COPY/ADD caching and
//! the per-step log (`steps`), and caches that refuse reads or writes (`access`).

mod access;
mod steps;
mod verify;

use std::process::Command;

use crate::build_tests::{build_in, push_busybox};
use crate::harness::registry::TestRegistry;
use crate::harness::*;

#[allow(clippy::print_stderr)] // the skip message is for the person running the tests
pub(super) fn need_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    eprintln!("skipping {test}: RUN needs root for overlayfs and namespaces");
    false
}

pub(super) fn count(log: &str, needle: &str) -> usize {
    log.matches(needle).count()
}

/// Builds `df` in `dir` and returns (digest, log).
pub(super) fn build(dir: &std::path::Path, df: &str, args: &[&str]) -> (String, String) {
    let out = build_in(dir, df, &[], args);
    let log = stderr(&out);
    let digest = ok(out).trim().to_string();
    (digest, log)
}

/// The layer digests of an image in a plain-HTTP registry.
pub(super) fn layers(image: &str) -> Vec<String> {
    let v = skopeo_inspect(&format!("docker://{image}"), false, &["--tls-verify=false"]);
    v["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn cache_hits_skip_commands_keep_one_tag_and_honour_the_ttl() {
    if !need_root("cache_hits_skip_commands_keep_one_tag_and_honour_the_ttl") {
        return;
    }
    let reg = TestRegistry::plain();
    let base = push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let dest = format!("{}/app/cached:1", reg.addr);
    // Each random RUN would give a different layer if it ran again: the same digest proves it
    // did not.
    let df = format!(
        "FROM {base}\n\
         RUN cat /proc/sys/kernel/random/uuid > /first\n\
         ARG FLAVOUR=plain\n\
         RUN echo \"$FLAVOUR\" > /flavour\n\
         RUN true\n\
         RUN cat /proc/sys/kernel/random/uuid > /last\n"
    );
    let args = [
        "--destination",
        &dest,
        "--insecure-registry",
        &reg.addr,
        "--cache",
        "--reproducible",
    ];
    let ctx = tmp.path().join("ctx");
    let (cold, log) = build(&ctx, &df, &args);
    assert_eq!(count(&log, "cache miss for `RUN"), 4, "{log}");
    assert_eq!(count(&log, "cache hit"), 0, "{log}");
    assert!(log.contains("4 new entries saved"), "{log}");

    let (warm, log) = build(&ctx, &df, &args);
    assert_eq!(warm, cold, "{log}");
    assert_eq!(count(&log, "cache hit for `RUN"), 4, "{log}");
    assert_eq!(count(&log, "cache miss"), 0, "{log}");
    assert!(log.contains("changed nothing"), "{log}");
    // Nothing ran, so nothing was unpacked either.
    assert!(!log.contains("unpacked"), "{log}");

    // The cache repository (inferred from the destination) holds one tag, whatever the builds.
    let tags = ok(run(Command::new("skopeo").args([
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{}/app/cached/cache", reg.addr),
    ])));
    let tags: serde_json::Value = serde_json::from_str(&tags).unwrap();
    assert_eq!(tags["Tags"], serde_json::json!(["gantry-cache-v1"]));

    // A build argument changes the keys of the RUNs that see it, not of those before its ARG.
    let (other, log) = build(
        &ctx,
        &df,
        &[&args[..], &["--build-arg", "FLAVOUR=spicy"]].concat(),
    );
    assert_ne!(other, cold);
    assert!(
        log.contains("cache hit for `RUN cat /proc/sys/kernel/random/uuid > /first`"),
        "{log}"
    );
    assert!(
        log.contains("cache miss for `RUN echo \"$FLAVOUR\" > /flavour`"),
        "{log}"
    );

    // An entry older than --cache-ttl is not used.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (_, log) = build(&ctx, &df, &[&args[..], &["--cache-ttl=1s"]].concat());
    // The first RUN is rebuilt, its random layer differs, so the keys after it are new ones.
    assert_eq!(
        count(&log, "the entry is older than --cache-ttl"),
        1,
        "{log}"
    );
    assert_eq!(count(&log, "cache hit"), 0, "{log}");
}

#[test]
fn a_rebuilt_identical_layer_keeps_later_steps_cached() {
    if !need_root("a_rebuilt_identical_layer_keeps_later_steps_cached") {
        return;
    }
    let reg = TestRegistry::plain();
    let base = push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let cache = format!("{}/shared/cache", reg.addr);
    let common = |dest: &str| -> Vec<String> {
        [
            "--destination",
            dest,
            "--insecure-registry",
            &reg.addr,
            "--cache",
            "--cache-repo",
            &cache,
            "--reproducible",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let first = format!("{}/app/a:1", reg.addr);
    let df_a =
        format!("FROM {base}\nRUN echo one > /x\nRUN cat /proc/sys/kernel/random/uuid > /y\n");
    let a: Vec<String> = common(&first);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    build(&tmp.path().join("a"), &df_a, &a);

    // The first RUN is written differently (a miss) but makes the same file: its layer is
    // identical, so the second RUN's key is unchanged and it hits.
    let second = format!("{}/app/b:1", reg.addr);
    let df_b = format!(
        "FROM {base}\nRUN printf 'one\\n' > /x\nRUN cat /proc/sys/kernel/random/uuid > /y\n"
    );
    let b: Vec<String> = common(&second);
    let b: Vec<&str> = b.iter().map(String::as_str).collect();
    let (_, log) = build(&tmp.path().join("b"), &df_b, &b);
    assert!(log.contains("cache miss for `RUN printf"), "{log}");
    assert!(
        log.contains("cache hit for `RUN cat /proc/sys/kernel/random/uuid > /y`"),
        "{log}"
    );
    assert_eq!(layers(&first), layers(&second));
}

#[test]
fn an_unreachable_cache_repository_is_one_warning_not_a_failure() {
    if !need_root("an_unreachable_cache_repository_is_one_warning_not_a_failure") {
        return;
    }
    let reg = TestRegistry::plain();
    let base = push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let dest = format!("{}/app/nocache:1", reg.addr);
    let (digest, log) = build(
        &tmp.path().join("ctx"),
        &format!("FROM {base}\nRUN echo hi > /hi\n"),
        &[
            "--destination",
            &dest,
            "--insecure-registry",
            &reg.addr,
            "--insecure-registry",
            "127.0.0.1:9",
            "--cache",
            "--cache-repo",
            "127.0.0.1:9/cache",
        ],
    );
    assert!(digest.starts_with("sha256:"), "{digest}");
    assert_eq!(
        count(
            &log,
            "layer cache 127.0.0.1:9/cache cannot be read, building without it"
        ),
        1,
        "{log}"
    );
    assert_eq!(count(&log, "WARN"), 1, "{log}");
    assert!(log.contains("cannot reach registry `127.0.0.1:9`"), "{log}");
}

#[test]
fn bad_cache_flag_values_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    let df = "FROM scratch\nCOPY f /f\n";
    for (flags, needle) in [
        (
            &["--cache", "--cache-copy-layers=maybe"][..],
            "invalid value 'maybe' for '--cache-copy-layers",
        ),
        (
            &["--cache", "--cache-ttl", "10d"][..],
            "invalid --cache-ttl: `10d` is not a duration",
        ),
        (
            &["--cache"][..],
            "--cache needs a repository for the layer cache",
        ),
        (
            &["--cache", "--cache-repo", "r.example/c:tag"][..],
            "names a tag or digest",
        ),
    ] {
        let mut args = vec!["--no-push"];
        args.extend_from_slice(flags);
        let e = fails(build_in(&ctx, df, &[("f", "x")], &args));
        assert!(e.contains(needle), "{flags:?}: {e}");
        assert_eq!(e.matches("error:").count(), 1, "{e}");
    }
}

fn warm(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    run(gantry(home).arg("warm").args(args))
}

#[test]
fn warm_fills_the_cache_dir_and_builds_pull_no_base_layer() {
    if !need_root("warm_fills_the_cache_dir_and_builds_pull_no_base_layer") {
        return;
    }
    let reg = TestRegistry::plain();
    let base = push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache-dir");
    let dir_s = dir.display().to_string();

    // From a Dockerfile: global ARGs expanded, stages and scratch skipped, each image once.
    let df_path = tmp.path().join("Dockerfile.warm");
    std::fs::write(
        &df_path,
        "ARG BASE=nothing\nFROM $BASE AS one\nFROM one\nFROM scratch\nFROM ${BASE}\n",
    )
    .unwrap();
    let out = ok(warm(
        tmp.path(),
        &[
            "--cache-dir",
            &dir_s,
            "--dockerfile",
            &df_path.display().to_string(),
            "--build-arg",
            &format!("BASE={base}"),
            "--insecure-registry",
            &reg.addr,
        ],
    ));
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with(&format!("{base}@sha256:")), "{out}");
    let manifest = skopeo_inspect(&format!("docker://{base}"), false, &["--tls-verify=false"]);
    let layer = manifest["Layers"][0].as_str().unwrap().to_string();
    let cached = dir
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    assert!(cached.is_file(), "{}", cached.display());

    // The registry loses the layer: only the cache directory has it now.
    let repo = base
        .trim_start_matches(&format!("{}/", reg.addr))
        .trim_end_matches(":latest");
    let status = ok(run(Command::new("curl").args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        "DELETE",
        &format!("http://{}/v2/{repo}/blobs/{layer}", reg.addr),
    ])));
    assert_eq!(status, "202");
    // The image goes to another registry, so its base layer is uploaded from the local copy
    // rather than mounted from the repository that lost it.
    let other = TestRegistry::plain();
    let dest = format!("{}/app/warm:1", other.addr);
    let df = format!("FROM {base}\nRUN echo hi > /hi\n");
    let args = [
        "--destination",
        &dest,
        "--insecure-registry",
        &reg.addr,
        "--insecure-registry",
        &other.addr,
        "--cache-dir",
        &dir_s,
    ];
    let (_, log) = build(&tmp.path().join("ctx"), &df, &args);
    assert!(log.contains("from --cache-dir"), "{log}");
    assert!(!log.contains("pulling"), "{log}");
    let files = podman_run(&tmp.path().join("podman"), &dest, &["cat", "/hi"]);
    assert_eq!(stdout(&files), "hi\n", "{}", stderr(&files));

    // A corrupt file in the cache directory is ignored with a warning (and, the registry
    // having lost the layer, the download that follows fails naming it).
    std::fs::write(&cached, b"not the layer").unwrap();
    let out = build_in(&tmp.path().join("ctx"), &df, &[], &args);
    let log = stderr(&out);
    assert!(log.contains("ignored, downloading the layer"), "{log}");

    let e = fails(warm(tmp.path(), &["--cache-dir", &dir_s]));
    assert!(e.contains("nothing to warm"), "{e}");
}

#[test]
fn warm_takes_images_by_reference_and_force_downloads_again() {
    let reg = TestRegistry::plain();
    let base = push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache-dir");
    let dir_s = dir.display().to_string();
    let args = [
        "--cache-dir",
        &dir_s,
        "--image",
        &base,
        "--insecure-registry",
        &reg.addr,
    ];
    let out = warm(tmp.path(), &args);
    let log = stderr(&out);
    let printed = ok(out);
    let manifest = skopeo_inspect(&format!("docker://{base}"), false, &["--tls-verify=false"]);
    assert_eq!(
        printed,
        format!("{base}@{}\n", manifest["Digest"].as_str().unwrap())
    );
    let layers: Vec<&str> = manifest["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        log.contains(&format!("{n} of {n} layers downloaded", n = layers.len())),
        "{log}"
    );
    for layer in &layers {
        let file = dir
            .join("blobs/sha256")
            .join(layer.trim_start_matches("sha256:"));
        let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(&gantry::image::sha256_digest(&bytes), layer);
    }
    // Warm again: everything is there already. With --force, everything is fetched again (a
    // damaged file is replaced by the registry's bytes).
    let log = stderr(&run(gantry(tmp.path()).arg("warm").args(args)));
    assert!(
        log.contains(&format!("0 of {} layers downloaded", layers.len())),
        "{log}"
    );
    let first = dir
        .join("blobs/sha256")
        .join(layers[0].trim_start_matches("sha256:"));
    std::fs::write(&first, b"damaged").unwrap();
    let out = run(gantry(tmp.path()).arg("warm").arg("--force").args(args));
    let log = stderr(&out);
    ok(out);
    assert!(
        log.contains(&format!("{n} of {n} layers downloaded", n = layers.len())),
        "{log}"
    );
    let bytes = std::fs::read(&first).unwrap();
    assert_eq!(&gantry::image::sha256_digest(&bytes), layers[0]);

    // A reference that names nothing fails, naming it.
    let missing = format!("{}/base/none:latest", reg.addr);
    let e = fails(warm(
        tmp.path(),
        &[
            "--cache-dir",
            &dir_s,
            "--image",
            &missing,
            "--insecure-registry",
            &reg.addr,
        ],
    ));
    assert!(e.contains("base/none"), "{e}");
}

#[test]
fn two_builds_at_once_share_a_cache_dir_safely() {
    if !need_root("two_builds_at_once_share_a_cache_dir_safely") {
        return;
    }
    let reg = TestRegistry::plain();
    let base = push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shared-cache-dir");
    let children: Vec<_> = (0..2)
        .map(|i| {
            let ctx = tmp.path().join(format!("ctx{i}"));
            write_files(
                &ctx,
                &[(
                    "Dockerfile",
                    &format!("FROM {base}\nRUN echo {i} > /which\n"),
                )],
            );
            gantry(&tmp.path().join(format!("home{i}")))
                .arg("build")
                .arg("--context")
                .arg(&ctx)
                .args([
                    "--destination",
                    &format!("{}/app/concurrent{i}:1", reg.addr),
                    "--insecure-registry",
                    &reg.addr,
                    "--cache-dir",
                ])
                .arg(&dir)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        ok(c.wait_with_output().unwrap());
    }
    // Whatever the interleaving, the directory holds whole, verified blobs and no leftovers.
    let blobs = dir.join("blobs/sha256");
    let names: Vec<String> = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.is_empty());
    for n in &names {
        assert!(!n.contains(".tmp"), "leftover {n}");
        let bytes = std::fs::read(blobs.join(n)).unwrap();
        assert_eq!(
            gantry::image::sha256_digest(&bytes),
            format!("sha256:{n}"),
            "{n}"
        );
    }
    for i in 0..2 {
        let out = podman_run(
            &tmp.path().join("podman"),
            &format!("{}/app/concurrent{i}:1", reg.addr),
            &["cat", "/which"],
        );
        assert_eq!(stdout(&out), format!("{i}\n"), "{}", stderr(&out));
    }
}

#[test]
fn a_corrupt_cached_layer_is_rebuilt_with_a_warning() {
    if !need_root("a_corrupt_cached_layer_is_rebuilt_with_a_warning") {
        return;
    }
    let reg = TestRegistry::plain();
    let base = push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let dest = format!("{}/app/corrupt:1", reg.addr);
    // The first RUN makes different bytes every time it runs, so its rebuilt layer can never
    // share the corrupt blob's digest.
    let df = format!(
        "FROM {base}\nRUN cat /proc/sys/kernel/random/uuid > /a\nRUN cp /a /b && echo a > /a\n"
    );
    let args = [
        "--destination",
        &dest,
        "--insecure-registry",
        &reg.addr,
        "--cache",
    ];
    build(&tmp.path().join("ctx"), &df, &args);
    // The registry's stored bytes of the first RUN's layer go bad (same size, other content).
    let layer = layers(&dest)[1].clone();
    let hex = layer.trim_start_matches("sha256:");
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

    let (_, log) = build(&tmp.path().join("ctx"), &df, &args);
    assert!(
        log.contains(
            "cached layer for `RUN cat /proc/sys/kernel/random/uuid > /a` is unusable, running the step again"
        ),
        "{log}"
    );
    assert_eq!(count(&log, "WARN"), 1, "{log}");
    let out = podman_run(
        &tmp.path().join("podman"),
        &dest,
        &["sh", "-c", "cat /a; wc -c < /b"],
    );
    assert_eq!(stdout(&out), "a\n37\n", "{}", stderr(&out));
    assert!(!layers(&dest).contains(&layer));
}
