//! The image gantry writes, read back with skopeo and umoci: the config JSON of every metadata
//! instruction field by field, ONBUILD triggers in a later build, media types that follow the
//! base image, and `SOURCE_DATE_EPOCH`.

use super::{build_in, build_in_env, push_busybox};
use crate::harness::fixtures;
use crate::harness::registry::TestRegistry;
use crate::harness::*;
use serde_json::json;

const TLS_OFF: &[&str] = &["--tls-verify=false"];

/// The image config exactly as stored (`skopeo inspect --config --raw`): skopeo's decoded
/// `--config` drops the Docker-only fields (Healthcheck, OnBuild, Shell) these tests check.
fn raw_config(image: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--config"];
    args.extend_from_slice(extra);
    let bytes = skopeo_raw(image, &args);
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("config of {image}: {e}"))
}

/// The metadata Dockerfile of [`metadata_instructions_write_the_config_docker_writes`]; each
/// line is also the `created_by` of its history entry.
const METADATA_LINES: &[&str] = &[
    "USER app:app",
    "WORKDIR /srv/app",
    "EXPOSE 80 53/udp 8000-8001/tcp",
    "VOLUME [\"/data\", \"/cache\"]",
    "VOLUME /logs",
    "SHELL [\"/bin/bash\", \"-eo\", \"pipefail\", \"-c\"]",
    "STOPSIGNAL SIGQUIT",
    "HEALTHCHECK --interval=30s --timeout=5s --start-period=1m30s --start-interval=2s --retries=4 CMD curl -f http://localhost/ || exit 1",
    "ONBUILD COPY . /src",
    "ONBUILD LABEL stage=child",
    "ENTRYPOINT [\"/srv/app/run\"]",
    "CMD serve --port 80",
];

#[test]
fn metadata_instructions_write_the_config_docker_writes() {
    let reg = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let dest = format!("{}/app/meta:1", reg.addr);
    let df = format!("FROM scratch\n{}\n", METADATA_LINES.join("\n"));
    ok(build_in(
        &tmp.path().join("ctx"),
        &df,
        &[],
        &["--destination", &dest, "--insecure-registry", &reg.addr],
    ));
    let cfg = raw_config(&format!("docker://{dest}"), TLS_OFF);
    let c = &cfg["config"];
    assert_eq!(c["User"], "app:app");
    assert_eq!(c["WorkingDir"], "/srv/app");
    // Docker's shapes: ports and volumes are objects of empty objects, ranges expanded, the
    // protocol always written; durations are nanoseconds.
    assert_eq!(
        c["ExposedPorts"],
        json!({"53/udp": {}, "80/tcp": {}, "8000/tcp": {}, "8001/tcp": {}})
    );
    assert_eq!(
        c["Volumes"],
        json!({"/cache": {}, "/data": {}, "/logs": {}})
    );
    assert_eq!(c["Shell"], json!(["/bin/bash", "-eo", "pipefail", "-c"]));
    assert_eq!(c["StopSignal"], "SIGQUIT");
    assert_eq!(
        c["Healthcheck"],
        json!({
            "Test": ["CMD-SHELL", "curl -f http://localhost/ || exit 1"],
            "Interval": 30_000_000_000i64,
            "Timeout": 5_000_000_000i64,
            "StartPeriod": 90_000_000_000i64,
            "StartInterval": 2_000_000_000i64,
            "Retries": 4
        })
    );
    assert_eq!(c["OnBuild"], json!(["COPY . /src", "LABEL stage=child"]));
    assert_eq!(c["Entrypoint"], json!(["/srv/app/run"]));
    // CMD after ENTRYPOINT stays; its shell form runs with the SHELL set above.
    assert_eq!(
        c["Cmd"],
        json!(["/bin/bash", "-eo", "pipefail", "-c", "serve --port 80"])
    );
    assert_eq!(
        c["Env"],
        json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
    );
    // One history entry per instruction, created_by as written (kaniko's text); only WORKDIR,
    // which creates /srv/app on an empty image, has a layer.
    let history = cfg["history"].as_array().unwrap();
    let created_by: Vec<&str> = history
        .iter()
        .map(|h| h["created_by"].as_str().unwrap())
        .collect();
    assert_eq!(created_by, METADATA_LINES);
    for h in history {
        let empty = h["empty_layer"].as_bool().unwrap_or(false);
        assert_eq!(empty, h["created_by"] != "WORKDIR /srv/app", "{h}");
    }
    assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 1);

    // HEALTHCHECK NONE disables the inherited check: Docker writes only `Test: ["NONE"]`.
    let child = format!("{}/app/meta-child:1", reg.addr);
    ok(build_in(
        &tmp.path().join("ctx-child"),
        &format!("FROM {dest}\nHEALTHCHECK NONE\n"),
        &[],
        &["--destination", &child, "--insecure-registry", &reg.addr],
    ));
    let cfg = raw_config(&format!("docker://{child}"), TLS_OFF);
    assert_eq!(cfg["config"]["Healthcheck"], json!({"Test": ["NONE"]}));
    assert_eq!(cfg["config"]["StopSignal"], "SIGQUIT", "inherited");

    // The exec form, with no options: no duration fields at all.
    let layout = tmp.path().join("exec-layout");
    ok(build_in(
        &tmp.path().join("ctx-exec"),
        "FROM scratch\nHEALTHCHECK CMD [\"/probe\", \"--quick\"]\n",
        &[],
        &["--no-push", "--oci-layout-path", layout.to_str().unwrap()],
    ));
    let cfg = raw_config(&format!("oci:{}:latest", layout.display()), &[]);
    assert_eq!(
        cfg["config"]["Healthcheck"],
        json!({"Test": ["CMD", "/probe", "--quick"]})
    );
}

#[test]
fn onbuild_triggers_run_in_the_child_build_and_are_cleared() {
    let reg = TestRegistry::plain();
    let base = push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let parent = format!("{}/app/onbuild-parent:1", reg.addr);
    ok(build_in(
        &tmp.path().join("ctx-parent"),
        &format!(
            "FROM {base}\nONBUILD COPY marker.txt /onbuild/marker.txt\nONBUILD LABEL from.onbuild=yes\nLABEL parent=1\n"
        ),
        &[],
        &["--destination", &parent, "--insecure-registry", &reg.addr],
    ));
    let cfg = raw_config(&format!("docker://{parent}"), TLS_OFF);
    assert_eq!(
        cfg["config"]["OnBuild"],
        json!([
            "COPY marker.txt /onbuild/marker.txt",
            "LABEL from.onbuild=yes"
        ])
    );
    assert!(cfg["config"]["Labels"]["from.onbuild"].is_null());

    let child = format!("{}/app/onbuild-child:1", reg.addr);
    ok(build_in(
        &tmp.path().join("ctx-child"),
        &format!("FROM {parent}\nCOPY own.txt /own.txt\n"),
        &[
            ("marker.txt", "from the child's context"),
            ("own.txt", "own"),
        ],
        &["--destination", &child, "--insecure-registry", &reg.addr],
    ));
    let cfg = raw_config(&format!("docker://{child}"), TLS_OFF);
    // The triggers ran (a label and a layer) and, as Docker does, the child keeps none.
    assert_eq!(cfg["config"]["Labels"]["from.onbuild"], "yes");
    assert_eq!(cfg["config"]["Labels"]["parent"], "1");
    assert!(
        cfg["config"]["OnBuild"].is_null(),
        "{}",
        cfg["config"]["OnBuild"]
    );
    let created_by: Vec<&str> = cfg["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["created_by"].as_str())
        .collect();
    let tail = &created_by[created_by.len() - 3..];
    assert_eq!(
        tail,
        [
            "COPY marker.txt /onbuild/marker.txt",
            "LABEL from.onbuild=yes",
            "COPY own.txt /own.txt"
        ]
    );
    // busybox, the trigger's COPY, the child's COPY.
    assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 3);
    let layout = tmp.path().join("pulled");
    skopeo_to_layout(
        &format!("docker://{child}"),
        &layout,
        "1",
        &["--src-tls-verify=false"],
    );
    let rootfs = umoci_unpack(&layout, "1", &tmp.path().join("bundle"));
    assert_eq!(
        std::fs::read_to_string(rootfs.join("onbuild/marker.txt")).unwrap(),
        "from the child's context"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("own.txt")).unwrap(),
        "own"
    );
}

/// The pushed manifest of `image`, as JSON.
fn raw_manifest(image: &str) -> serde_json::Value {
    serde_json::from_slice(&skopeo_raw(&format!("docker://{image}"), TLS_OFF)).unwrap()
}

#[test]
fn pushed_media_types_follow_the_base_docker_schema2_or_oci() {
    let reg = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            fixtures::busybox_docker(),
            "docker",
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        ),
        (
            fixtures::busybox(),
            "oci",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar+gzip",
        ),
    ];
    for (layout, name, manifest_type, config_type, layer_type) in cases {
        let base = format!("{}/base/busybox-{name}:latest", reg.addr);
        fixtures::push(&layout, fixtures::BUSYBOX_TAG, &base, None, None);
        let base_manifest = raw_manifest(&base);
        assert_eq!(base_manifest["mediaType"], manifest_type, "fixture {name}");
        let dest = format!("{}/app/types-{name}:1", reg.addr);
        ok(build_in(
            &tmp.path().join(format!("ctx-{name}")),
            &format!("FROM {base}\nCOPY f /f\nENV X=1\n"),
            &[("f", name)],
            &["--destination", &dest, "--insecure-registry", &reg.addr],
        ));
        let m = raw_manifest(&dest);
        assert_eq!(m["mediaType"], manifest_type, "{name}: {m}");
        assert_eq!(m["config"]["mediaType"], config_type, "{name}: {m}");
        let layers = m["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 2);
        for l in layers {
            assert_eq!(l["mediaType"], layer_type, "{name}: {m}");
        }
        // The base layer is the base's own blob, unchanged.
        assert_eq!(layers[0]["digest"], base_manifest["layers"][0]["digest"]);
        // And the image reads back whole (skopeo checks every digest on the way).
        let pulled = tmp.path().join(format!("pulled-{name}"));
        skopeo_to_layout(
            &format!("docker://{dest}"),
            &pulled,
            "1",
            &["--src-tls-verify=false"],
        );
        let rootfs = umoci_unpack(&pulled, "1", &tmp.path().join(format!("bundle-{name}")));
        assert_eq!(std::fs::read_to_string(rootfs.join("f")).unwrap(), name);
        assert!(rootfs.join("bin/busybox").is_file());
    }
}

#[test]
fn source_date_epoch_without_reproducible_fixes_the_digest_and_created() {
    let tmp = tempfile::tempdir().unwrap();
    let mut digests = Vec::new();
    for i in 0..2 {
        let layout = tmp.path().join(format!("layout{i}"));
        let printed = ok(build_in_env(
            &tmp.path().join(format!("ctx{i}")),
            "FROM scratch\nCOPY app/ /app/\nWORKDIR /srv\nLABEL v=1\n",
            &[("app/a.txt", "a"), ("app/sub/b.txt", "b")],
            &["--no-push", "--oci-layout-path", layout.to_str().unwrap()],
            &[("SOURCE_DATE_EPOCH", "1700000000")],
        ));
        let cfg = raw_config(&format!("oci:{}:latest", layout.display()), &[]);
        assert_eq!(cfg["created"], "2023-11-14T22:13:20Z");
        for h in cfg["history"].as_array().unwrap() {
            assert_eq!(h["created"], "2023-11-14T22:13:20Z", "{h}");
        }
        digests.push(printed.trim().to_string());
        // Built a second apart, so a build clock anywhere in the image would show.
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    assert_eq!(digests[0], digests[1]);
    // A different epoch is a different image.
    let other = ok(build_in_env(
        &tmp.path().join("ctx-other"),
        "FROM scratch\nCOPY app/ /app/\nWORKDIR /srv\nLABEL v=1\n",
        &[("app/a.txt", "a"), ("app/sub/b.txt", "b")],
        &["--no-push"],
        &[("SOURCE_DATE_EPOCH", "1700000001")],
    ));
    assert_ne!(other.trim(), digests[0]);
}
