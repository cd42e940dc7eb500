//! kaniko's executor flags and environment variables that change where an image goes or comes
//! from, and what the log looks like: `KANIKO_NO_PUSH`, `KANIKO_REGISTRY_MIRROR`,
//! `KANIKO_REGISTRY_MAP` and their flags, `--push-ignore-immutable-tag-errors`,
//! `--skip-push-permission-check`, `--log-format json` and `--log-timestamp`.

use super::{build_in, build_in_env, tag_digest};
use crate::harness::faultproxy::{Fault, FaultProxy, Rule};
use crate::harness::fixtures;
use crate::harness::registry::TestRegistry;
use crate::harness::*;

#[test]
fn kaniko_no_push_1_with_a_destination_pushes_nothing() {
    let reg = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let df = "FROM scratch\nCOPY f /f\n";
    for (i, value) in ["1", "t", "TRUE"].iter().enumerate() {
        let dest = format!("{}/app/nopush:{i}", reg.addr);
        let out = build_in_env(
            &tmp.path().join(format!("ctx{i}")),
            df,
            &[("f", "x")],
            &["--destination", &dest, "--insecure-registry", &reg.addr],
            &[("KANIKO_NO_PUSH", value)],
        );
        let digest = ok(out);
        assert!(digest.trim().starts_with("sha256:"), "{digest}");
        assert_eq!(
            tag_digest(&reg, &format!("app/nopush:{i}")),
            None,
            "KANIKO_NO_PUSH={value} pushed"
        );
    }
    // `0`/`F`/`False` push; `--no-push` on the command line wins over the variable.
    let dest = format!("{}/app/nopush:pushed", reg.addr);
    let printed = ok(build_in_env(
        &tmp.path().join("ctx-f"),
        df,
        &[("f", "x")],
        &["--destination", &dest, "--insecure-registry", &reg.addr],
        &[("KANIKO_NO_PUSH", "F")],
    ));
    assert_eq!(
        tag_digest(&reg, "app/nopush:pushed").as_deref(),
        Some(printed.trim())
    );
    let dest = format!("{}/app/nopush:flag", reg.addr);
    ok(build_in_env(
        &tmp.path().join("ctx-flag"),
        df,
        &[("f", "x")],
        &[
            "--destination",
            &dest,
            "--insecure-registry",
            &reg.addr,
            "--no-push",
        ],
        &[("KANIKO_NO_PUSH", "False")],
    ));
    assert_eq!(tag_digest(&reg, "app/nopush:flag"), None);
}

#[test]
fn kaniko_no_push_that_is_not_a_go_boolean_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for value in ["yes", "on", ""] {
        let err = fails(build_in_env(
            &tmp.path().join("ctx"),
            "FROM scratch\n",
            &[],
            &["--destination", "localhost/x:1"],
            &[("KANIKO_NO_PUSH", value)],
        ));
        assert!(
            err.contains(&format!("`{value}` is not a boolean"))
                && err.contains("KANIKO_NO_PUSH")
                && err.contains("hint: use one of 1, t, T, TRUE, true, True"),
            "{err}"
        );
    }
    let err = fails(build_in(
        &tmp.path().join("ctx"),
        "FROM scratch\n",
        &[],
        &["--no-push", "--reproducible=yes"],
    ));
    assert!(err.contains("`yes` is not a boolean"), "{err}");
}

/// Pushes the busybox fixture to `reg` as `repo:latest`.
fn push_busybox_as(reg: &TestRegistry, repo: &str) {
    fixtures::push(
        &fixtures::busybox(),
        fixtures::BUSYBOX_TAG,
        &format!("{}/{repo}:latest", reg.addr),
        None,
        None,
    );
}

/// Builds `FROM <from>` + a COPY into an OCI layout and checks busybox came along.
fn build_from_and_check(
    tmp: &std::path::Path,
    name: &str,
    from: &str,
    args: &[&str],
    envs: &[(&str, &str)],
) {
    let layout = tmp.join(format!("layout-{name}"));
    let mut all = vec!["--no-push", "--oci-layout-path", layout.to_str().unwrap()];
    all.extend_from_slice(args);
    ok(build_in_env(
        &tmp.join(format!("ctx-{name}")),
        &format!("FROM {from}\nCOPY f /f\n"),
        &[("f", name)],
        &all,
        envs,
    ));
    let rootfs = umoci_unpack(&layout, "latest", &tmp.join(format!("bundle-{name}")));
    assert!(
        rootfs.join("bin/busybox").is_file(),
        "{name}: no base layer"
    );
    assert_eq!(std::fs::read_to_string(rootfs.join("f")).unwrap(), name);
}

#[test]
fn registry_mirror_flag_and_kaniko_registry_mirror_redirect_docker_hub_pulls() {
    // Nothing here reaches Docker Hub: the pull works only through the mirror.
    let reg = TestRegistry::plain();
    push_busybox_as(&reg, "library/busybox");
    let tmp = tempfile::tempdir().unwrap();
    let insecure = ["--insecure-registry", reg.addr.as_str()];
    let flag = format!("--registry-mirror={}", reg.addr);
    let mut args = insecure.to_vec();
    args.extend([flag.as_str(), "--skip-default-registry-fallback"]);
    build_from_and_check(tmp.path(), "flag", "busybox", &args, &[]);
    // The variable is a `;`-separated list, tried in order: a dead mirror first.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let list = format!("{dead};{}", reg.addr);
    let mut args = insecure.to_vec();
    args.extend(["--insecure-registry", dead.as_str()]);
    build_from_and_check(
        tmp.path(),
        "env",
        "busybox:latest",
        &args,
        &[("KANIKO_REGISTRY_MIRROR", &list)],
    );
}

#[test]
fn kaniko_registry_map_redirects_pulls_of_one_registry_to_another() {
    let reg = TestRegistry::plain();
    push_busybox_as(&reg, "quay-cache/team/busybox");
    let tmp = tempfile::tempdir().unwrap();
    let map = format!(
        "ghcr.io={}/unused;quay.io={}/quay-cache",
        reg.addr, reg.addr
    );
    build_from_and_check(
        tmp.path(),
        "env",
        "quay.io/team/busybox:latest",
        &["--insecure-registry", &reg.addr],
        &[("KANIKO_REGISTRY_MAP", &map)],
    );
    let flag = format!("--registry-map=quay.io={}/quay-cache", reg.addr);
    build_from_and_check(
        tmp.path(),
        "flag",
        "quay.io/team/busybox:latest",
        &[
            "--insecure-registry",
            &reg.addr,
            &flag,
            "--skip-default-registry-fallback",
        ],
        &[],
    );
}

/// ECR's answer to a manifest PUT on an existing tag of an immutable repository.
const ECR_IMMUTABLE: &str = r#"{"errors":[{"code":"TAG_INVALID","message":"The image tag '1' already exists in the 'app/imm' repository and cannot be overwritten because the repository is immutable."}]}"#;

#[test]
fn push_ignore_immutable_tag_errors_keeps_the_existing_tag_and_succeeds() {
    let reg = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let first = ok(build_in(
        &tmp.path().join("ctx1"),
        "FROM scratch\nCOPY f /f\n",
        &[("f", "one")],
        &[
            "--destination",
            &format!("{}/app/imm:1", reg.addr),
            "--insecure-registry",
            &reg.addr,
        ],
    ));
    let proxy = FaultProxy::start(
        &reg.addr,
        vec![Rule::new(
            "PUT",
            "/manifests/",
            Fault::Answer {
                code: 400,
                body: ECR_IMMUTABLE.into(),
            },
        )
        .always()],
    );
    let dest = format!("{}/app/imm:1", proxy.addr);
    let args = ["--destination", &dest, "--insecure-registry", &proxy.addr];
    let err = fails(build_in(
        &tmp.path().join("ctx2"),
        "FROM scratch\nCOPY f /f\n",
        &[("f", "two")],
        &args,
    ));
    assert!(err.contains("TAG_INVALID"), "{err}");
    let mut with_flag = args.to_vec();
    with_flag.push("--push-ignore-immutable-tag-errors");
    let out = build_in(
        &tmp.path().join("ctx3"),
        "FROM scratch\nCOPY f /f\n",
        &[("f", "two")],
        &with_flag,
    );
    let text = stderr(&out);
    let second = ok(out);
    assert_ne!(second.trim(), first.trim());
    assert!(
        text.contains("exists and is immutable; not overwritten"),
        "{text}"
    );
    assert_eq!(
        tag_digest(&reg, "app/imm:1").as_deref(),
        Some(first.trim()),
        "the immutable tag moved"
    );
    assert_eq!(proxy.matching("PUT", "/manifests/1").len(), 2);
}

#[test]
fn skip_push_permission_check_builds_where_the_check_is_refused() {
    // A registry that refuses to open upload sessions, where every blob is already present:
    // the push needs no session, but the permission check opens one.
    let reg = TestRegistry::plain();
    let tmp = tempfile::tempdir().unwrap();
    let df = "FROM scratch\nCOPY f /f\n";
    let first = ok(build_in(
        &tmp.path().join("ctx1"),
        df,
        &[("f", "same")],
        &[
            "--reproducible",
            "--destination",
            &format!("{}/app/perm:1", reg.addr),
            "--insecure-registry",
            &reg.addr,
        ],
    ));
    let proxy = FaultProxy::start(
        &reg.addr,
        vec![Rule::new(
            "POST",
            "/blobs/uploads/",
            Fault::Status {
                code: 403,
                retry_after: None,
            },
        )
        .always()],
    );
    let dest = format!("{}/app/perm:2", proxy.addr);
    let args = [
        "--reproducible",
        "--destination",
        &dest,
        "--insecure-registry",
        &proxy.addr,
    ];
    let err = fails(build_in(
        &tmp.path().join("ctx2"),
        df,
        &[("f", "same")],
        &args,
    ));
    assert!(
        err.contains(&format!("checking push permission for {dest}")) && err.contains("403"),
        "{err}"
    );
    assert_eq!(tag_digest(&reg, "app/perm:2"), None);
    let before = proxy.matching("POST", "/blobs/uploads/").len();
    let mut skip = args.to_vec();
    skip.push("--skip-push-permission-check");
    let second = ok(build_in(
        &tmp.path().join("ctx3"),
        df,
        &[("f", "same")],
        &skip,
    ));
    assert_eq!(second.trim(), first.trim());
    assert_eq!(
        tag_digest(&reg, "app/perm:2").as_deref(),
        Some(first.trim())
    );
    assert_eq!(
        proxy.matching("POST", "/blobs/uploads/").len(),
        before,
        "no upload session is opened when the check is skipped and the blobs exist:\n{}",
        proxy.describe()
    );
}

#[test]
fn log_format_json_writes_one_json_object_per_stderr_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = build_in(
        &tmp.path().join("ctx"),
        "FROM scratch\nCOPY f /f\nLABEL a=b\n",
        &[("f", "x")],
        &["--no-push", "--log-format", "json"],
    );
    let text = stderr(&out);
    let digest = ok(out);
    let objects = json_lines(&text);
    assert!(objects.len() >= 3, "{text}");
    assert!(
        objects.iter().any(|o| o["level"] == "INFO"
            && o["message"]
                .as_str()
                .unwrap()
                .contains(&format!("built {}", digest.trim()))),
        "{text}"
    );
    // The error that ends a failed build is a JSON object too.
    let out = build_in(
        &tmp.path().join("ctx2"),
        "FROM scratch\nCOPY nothere.txt /\n",
        &[],
        &["--no-push", "--log-format=json"],
    );
    let text = fails(out);
    let objects = json_lines(&text);
    let last = objects.last().unwrap();
    assert_eq!(last["level"], "ERROR", "{text}");
    assert!(
        last["message"].as_str().unwrap().contains("nothere.txt"),
        "{text}"
    );
}

/// Every line of `text` parsed as a JSON object with string `level` and `message` fields.
fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}\n{text}"));
            assert!(v["level"].is_string() && v["message"].is_string(), "{line}");
            v
        })
        .collect()
}

#[test]
fn log_timestamp_starts_every_log_line_with_the_time() {
    let tmp = tempfile::tempdir().unwrap();
    let starts_with_time = |line: &str| {
        let b = line.as_bytes();
        b.len() > 20
            && b[..4].iter().all(u8::is_ascii_digit)
            && b[4] == b'-'
            && b[10] == b'T'
            && line[..30.min(line.len())].contains('Z')
    };
    for (flag, want) in [("--log-timestamp", true), ("--log-timestamp=false", false)] {
        let out = build_in(
            &tmp.path().join("ctx"),
            "FROM scratch\nCOPY f /f\n",
            &[("f", "x")],
            &["--no-push", "--log-format", "text", flag],
        );
        let text = stderr(&out);
        ok(out);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() >= 2, "{text}");
        for line in lines {
            assert_eq!(starts_with_time(line), want, "{flag}: {line:?}");
        }
    }
}
