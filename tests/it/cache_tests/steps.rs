//! Which steps the cache holds and what it says about each: COPY and ADD with
//! `--cache-copy-layers` (keyed on the files they copy after .dockerignore), RUN skipped with
//! `--cache-run-layers=false`, uncompressed layers with `--compressed-caching=false`, and one log
//! line per step.

use std::process::Command;

use super::{build, count, layers, need_root};
use crate::build_tests::push_busybox;
use crate::harness::registry::TestRegistry;
use crate::harness::*;

/// The manifest of an image in a plain-HTTP registry.
fn manifest(image: &str) -> serde_json::Value {
    serde_json::from_slice(&skopeo_raw(
        &format!("docker://{image}"),
        &["--tls-verify=false"],
    ))
    .unwrap()
}

fn media_types(image: &str) -> Vec<String> {
    manifest(image)["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn copy_and_add_hit_on_unchanged_sources_and_miss_when_a_copied_file_changes() {
    if !need_root("copy_and_add_hit_on_unchanged_sources_and_miss_when_a_copied_file_changes") {
        return;
    }
    let reg = TestRegistry::plain();
    let base = push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    write_files(
        &ctx,
        &[
            ("app/data.txt", "one\n"),
            ("app/main.sh", "#!/bin/sh\necho main\n"),
            ("app/debug.log", "noise\n"),
            (".dockerignore", "app/*.log\n"),
            ("bundle/inner.txt", "inside\n"),
            ("notes.txt", "notes\n"),
        ],
    );
    // ADD extracts a local archive; the key is the archive's bytes.
    ok(run(Command::new("tar")
        .arg("-cf")
        .arg(ctx.join("bundle.tar"))
        .arg("-C")
        .arg(&ctx)
        .arg("bundle")));
    let df = format!(
        "FROM {base}\nCOPY app/ /app/\nADD bundle.tar /opt/\nADD notes.txt /notes.txt\n\
         RUN cat /app/data.txt /opt/bundle/inner.txt > /seen\n"
    );
    let dest = format!("{}/app/copies:1", reg.addr);
    let args = [
        "--destination",
        &dest,
        "--insecure-registry",
        &reg.addr,
        "--cache",
        "--cache-copy-layers",
        "--reproducible",
    ];
    let (cold, log) = build(&ctx, &df, &args);
    assert!(
        log.contains("cache miss for `COPY app/ /app/`")
            && log.contains("the step is not in the cache"),
        "{log}"
    );
    assert!(log.contains("4 new entries saved"), "{log}");

    // Nothing changed: every step hits, no layer is written, the base is neither pulled nor
    // unpacked, and the image is the same.
    let (warm, log) = build(&ctx, &df, &args);
    assert_eq!(warm, cold, "{log}");
    for step in [
        "COPY app/ /app/",
        "ADD bundle.tar /opt/",
        "ADD notes.txt /notes.txt",
        "RUN cat",
    ] {
        assert!(
            log.contains(&format!("cache hit for `{step}")),
            "{step}: {log}"
        );
    }
    for absent in [
        "written in",
        "from RUN",
        "pulling",
        "unpacked",
        "cache miss",
    ] {
        assert!(!log.contains(absent), "{absent}: {log}");
    }

    // A file .dockerignore excludes is not copied: changing it changes nothing.
    std::fs::write(ctx.join("app/debug.log"), "other noise\n").unwrap();
    // Under --reproducible every mtime in the layer is replaced, so a new mtime is no change.
    let file = std::fs::File::options()
        .write(true)
        .open(ctx.join("app/main.sh"))
        .unwrap();
    file.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(3600))
        .unwrap();
    let (again, log) = build(&ctx, &df, &args);
    assert_eq!(again, cold, "{log}");
    assert_eq!(count(&log, "cache hit for"), 4, "{log}");

    // A copied file changes: that COPY misses and says why; the steps after it sit on a new
    // layer, and the ADD of an unchanged file says that instead.
    std::fs::write(ctx.join("app/data.txt"), "two\n").unwrap();
    let (changed, log) = build(&ctx, &df, &args);
    assert_ne!(changed, cold);
    assert!(
        log.contains("cache miss for `COPY app/ /app/` (key ")
            && log.contains("the copied files changed (content, mode, owner or mtime)"),
        "{log}"
    );
    assert!(
        log.contains("cache miss for `ADD notes.txt /notes.txt`")
            && log.contains("the step is cached only on top of another image"),
        "{log}"
    );
    let out = podman_run(
        &tmp.path().join("podman"),
        &dest,
        &["sh", "-c", "cat /seen /notes.txt; ls /app"],
    );
    assert_eq!(
        stdout(&out),
        "two\ninside\nnotes\ndata.txt\nmain.sh\n",
        "{}",
        stderr(&out)
    );
}

#[test]
fn without_reproducible_a_copied_files_mtime_is_part_of_its_key() {
    if !need_root("without_reproducible_a_copied_files_mtime_is_part_of_its_key") {
        return;
    }
    let reg = TestRegistry::plain();
    let base = push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    write_files(&ctx, &[("f.txt", "same\n")]);
    let df = format!("FROM {base}\nCOPY f.txt /f.txt\n");
    let dest = format!("{}/app/mtime:1", reg.addr);
    let args = [
        "--destination",
        &dest,
        "--insecure-registry",
        &reg.addr,
        "--cache",
        "--cache-copy-layers",
    ];
    build(&ctx, &df, &args);
    let first = layers(&dest);
    let (_, log) = build(&ctx, &df, &args);
    assert!(log.contains("cache hit for `COPY f.txt /f.txt`"), "{log}");
    assert_eq!(layers(&dest), first);
    // The layer records the file's mtime: a new one is a new layer.
    let file = std::fs::File::options()
        .write(true)
        .open(ctx.join("f.txt"))
        .unwrap();
    file.set_modified(
        std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000),
    )
    .unwrap();
    let (_, log) = build(&ctx, &df, &args);
    assert!(log.contains("the copied files changed"), "{log}");
    assert_ne!(layers(&dest)[1], first[1]);
}

#[test]
fn compressed_caching_false_stores_cached_layers_uncompressed() {
    if !need_root("compressed_caching_false_stores_cached_layers_uncompressed") {
        return;
    }
    let reg = TestRegistry::plain();
    let base = push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    write_files(&ctx, &[("f.txt", "file\n")]);
    let df = format!("FROM {base}\nCOPY f.txt /f.txt\nRUN echo ran > /ran\n");
    let dest = format!("{}/app/plain:1", reg.addr);
    let common = [
        "--destination",
        &dest,
        "--insecure-registry",
        &reg.addr,
        "--cache",
        "--reproducible",
    ];
    let args = [&common[..], &["--compressed-caching=false"]].concat();
    let (cold, log) = build(&ctx, &df, &args);
    assert!(
        log.contains("cache skipped for `COPY f.txt /f.txt`: --cache-copy-layers is off"),
        "{log}"
    );
    // The cached RUN's layer is stored as a plain tar, in the image and the cache alike; the
    // COPY, not cached, stays gzip, and so does the base.
    let tar = "application/vnd.oci.image.layer.v1.tar";
    let gzip = "application/vnd.oci.image.layer.v1.tar+gzip";
    assert_eq!(media_types(&dest), [gzip, gzip, tar]);
    let cache = format!("{}/app/plain/cache:gantry-cache-v1", reg.addr);
    assert_eq!(media_types(&cache), [tar]);
    assert_eq!(
        manifest(&cache)["layers"][0]["digest"],
        manifest(&dest)["layers"][2]["digest"]
    );

    // A rebuild hits and gives the same image, which other tools read.
    let (warm, log) = build(&ctx, &df, &args);
    assert_eq!(warm, cold, "{log}");
    assert!(log.contains("cache hit for `RUN echo ran > /ran`"), "{log}");
    skopeo_to_layout(
        &format!("docker://{dest}"),
        &tmp.path().join("layout"),
        "t",
        &["--src-tls-verify=false"],
    );
    let out = podman_run(
        &tmp.path().join("podman"),
        &dest,
        &["cat", "/f.txt", "/ran"],
    );
    assert_eq!(stdout(&out), "file\nran\n", "{}", stderr(&out));

    // With COPY layers cached too, they are stored uncompressed as well.
    let with_copy = [&args[..], &["--cache-copy-layers"]].concat();
    build(&ctx, &df, &with_copy);
    assert_eq!(media_types(&dest), [gzip, tar, tar]);

    // Compressed again: a layer of the other encoding is not reused.
    let (_, log) = build(&ctx, &df, &common);
    assert!(
        log.contains("cache miss for `RUN echo ran > /ran`")
            && log.contains("--compressed-caching differs"),
        "{log}"
    );
    assert_eq!(media_types(&dest), [gzip, gzip, gzip]);
}

#[test]
fn cache_run_layers_false_runs_every_run_and_says_so() {
    if !need_root("cache_run_layers_false_runs_every_run_and_says_so") {
        return;
    }
    let reg = TestRegistry::plain();
    let base = push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    write_files(&ctx, &[("f.txt", "file\n")]);
    let df = format!(
        "FROM {base}\nCOPY f.txt /f.txt\nWORKDIR /work\nRUN cat /proc/sys/kernel/random/uuid > /id\n"
    );
    let dest = format!("{}/app/norun:1", reg.addr);
    let args = [
        "--destination",
        &dest,
        "--insecure-registry",
        &reg.addr,
        "--cache",
        "--cache-copy-layers",
        "--cache-run-layers=false",
        "--reproducible",
    ];
    let (first, log) = build(&ctx, &df, &args);
    let skipped =
        "cache skipped for `RUN cat /proc/sys/kernel/random/uuid > /id`: --cache-run-layers=false";
    assert_eq!(count(&log, skipped), 1, "{log}");
    assert!(
        log.contains("cache skipped for `WORKDIR /work`: --cache-run-layers=false"),
        "{log}"
    );
    let (second, log) = build(&ctx, &df, &args);
    assert_eq!(count(&log, skipped), 1, "{log}");
    assert!(log.contains("cache hit for `COPY f.txt /f.txt`"), "{log}");
    // The RUN ran again (a new random id), so the image differs.
    assert!(log.contains("from RUN"), "{log}");
    assert_ne!(first, second);
    // Only the COPY was ever stored.
    let cached = manifest(&format!("{}/app/norun/cache:gantry-cache-v1", reg.addr));
    assert_eq!(cached["layers"].as_array().unwrap().len(), 1, "{cached}");
}

#[test]
fn every_step_logs_one_cache_line_saying_hit_miss_or_skipped_and_why() {
    if !need_root("every_step_logs_one_cache_line_saying_hit_miss_or_skipped_and_why") {
        return;
    }
    let reg = TestRegistry::plain();
    let base = push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    write_files(&ctx, &[("f.txt", "file\n"), ("g.txt", "g\n")]);
    let steps = [
        "ARG X=1",
        "ENV E=$X",
        "LABEL l=1",
        "WORKDIR /w",
        "COPY f.txt ./f.txt",
        "ADD g.txt /g.txt",
        "RUN echo $X > /x",
        "USER 1000",
        "EXPOSE 80",
        "CMD [\"sh\"]",
    ];
    let df = format!("FROM {base}\n{}\n", steps.join("\n"));
    let dest = format!("{}/app/steps:1", reg.addr);
    let args = [
        "--destination",
        &dest,
        "--insecure-registry",
        &reg.addr,
        "--cache",
        "--reproducible",
    ];
    let one_line_each = |log: &str| {
        for step in steps {
            let lines: Vec<&str> = log
                .lines()
                .filter(|l| l.contains(&format!(" for `{step}`")))
                .filter(|l| {
                    l.contains("cache hit for")
                        || l.contains("cache miss for")
                        || l.contains("cache skipped for")
                })
                .collect();
            assert_eq!(lines.len(), 1, "{step}: {log}");
            // Each says why: after the step, a reason.
            let why = lines[0].split_once(&format!("`{step}`")).unwrap().1;
            assert!(
                why.trim_start_matches([' ', ':']).len() > 10,
                "{}",
                lines[0]
            );
        }
        assert_eq!(
            count(log, "cache hit for")
                + count(log, "cache miss for")
                + count(log, "cache skipped for"),
            steps.len(),
            "{log}"
        );
    };
    let (_, log) = build(&ctx, &df, &args);
    one_line_each(&log);
    for meta in ["ARG X=1", "ENV E=$X", "LABEL l=1", "USER 1000", "EXPOSE 80"] {
        assert!(
            log.contains(&format!("cache skipped for `{meta}`: no layer to cache")),
            "{meta}: {log}"
        );
    }
    assert!(
        log.contains("cache skipped for `COPY f.txt ./f.txt`: --cache-copy-layers is off"),
        "{log}"
    );
    assert!(log.contains("cache miss for `WORKDIR /w`"), "{log}");
    assert!(log.contains("cache miss for `RUN echo $X > /x`"), "{log}");

    // Again, with COPY/ADD cached too: RUN and WORKDIR hit, COPY and ADD miss (new to the cache).
    let (_, log) = build(&ctx, &df, &[&args[..], &["--cache-copy-layers"]].concat());
    one_line_each(&log);
    assert!(log.contains("cache hit for `WORKDIR /w`"), "{log}");
    assert!(log.contains("cache miss for `COPY f.txt ./f.txt`"), "{log}");
    // The COPY's layer is identical to the uncached one, so the RUN after it still hits.
    assert!(log.contains("cache hit for `RUN echo $X > /x`"), "{log}");
    let (_, log) = build(&ctx, &df, &[&args[..], &["--cache-copy-layers"]].concat());
    one_line_each(&log);
    assert_eq!(count(&log, "cache hit for"), 4, "{log}");
}

#[test]
fn copy_from_a_stage_is_keyed_on_that_stages_layers() {
    if !need_root("copy_from_a_stage_is_keyed_on_that_stages_layers") {
        return;
    }
    let reg = TestRegistry::plain();
    let base = push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    let df = format!(
        "FROM {base} AS build\nARG V=1\nRUN echo $V > /out\nFROM {base}\nCOPY --from=build /out /out\n"
    );
    let dest = format!("{}/app/from:1", reg.addr);
    let args = [
        "--destination",
        &dest,
        "--insecure-registry",
        &reg.addr,
        "--cache",
        "--cache-copy-layers",
        "--reproducible",
    ];
    let (cold, _) = build(&ctx, &df, &args);
    let (warm, log) = build(&ctx, &df, &args);
    assert_eq!(warm, cold, "{log}");
    assert!(
        log.contains("cache hit for `COPY --from=build /out /out`"),
        "{log}"
    );
    // The stage's RUN makes another file: the COPY from it misses, saying its files changed.
    let (_, log) = build(&ctx, &df, &[&args[..], &["--build-arg", "V=2"]].concat());
    assert!(log.contains("the build arguments it sees changed"), "{log}");
    assert!(
        log.contains("cache miss for `COPY --from=build /out /out`")
            && log.contains("the copied files changed"),
        "{log}"
    );
    let out = podman_run(&tmp.path().join("podman"), &dest, &["cat", "/out"]);
    assert_eq!(stdout(&out), "2\n", "{}", stderr(&out));
}
