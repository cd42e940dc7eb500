//! Cache repositories the build may not use fully: one it may not read (no credentials for its
//! registry) and one it may read but not write. Each costs one warning, never the build.

use super::{build, count, need_root};
use crate::build_tests::{build_in_env, push_busybox};
use crate::harness::faultproxy::{Fault, FaultProxy, Rule};
use crate::harness::registry::TestRegistry;
use crate::harness::*;

#[test]
fn a_cache_repository_without_credentials_is_one_warning_and_a_build_without_cache() {
    let dest_reg = TestRegistry::tls_basic();
    let cache_reg = TestRegistry::tls_basic();
    let tmp = tempfile::tempdir().unwrap();
    // The docker config holds credentials for the destination's registry only.
    let config = dest_reg.docker_config_dir();
    let dest = format!("{}/app/authed:1", dest_reg.addr);
    let cache = format!("{}/team/cache", cache_reg.addr);
    let cert = |r: &TestRegistry| format!("{}={}", r.addr, r.ca_pem.as_ref().unwrap().display());
    let args = [
        "--destination",
        &dest,
        "--registry-certificate",
        &cert(&dest_reg),
        "--registry-certificate",
        &cert(&cache_reg),
        "--cache",
        "--cache-copy-layers",
        "--cache-repo",
        &cache,
    ];
    let out = build_in_env(
        &tmp.path().join("ctx"),
        "FROM scratch\nCOPY f /f\n",
        &[("f", "x")],
        &args,
        &[("DOCKER_CONFIG", &config.display().to_string())],
    );
    let log = stderr(&out);
    let digest = ok(out);
    assert!(digest.trim().starts_with("sha256:"), "{digest}");
    assert_eq!(
        count(
            &log,
            &format!("layer cache {cache} cannot be read, building without it")
        ),
        1,
        "{log}"
    );
    assert!(
        log.to_lowercase().contains("unauthorized") || log.contains("401"),
        "{log}"
    );
    assert_eq!(count(&log, "WARN"), 1, "{log}");
    assert!(
        log.contains("cache miss for `COPY f /f`")
            && log.contains("the cache repository cannot be read"),
        "{log}"
    );
    // Pushed with the destination's credentials all the same.
    let creds = format!(
        "{}:{}",
        dest_reg.username.as_deref().unwrap(),
        dest_reg.password.as_deref().unwrap()
    );
    let pushed = skopeo_inspect(
        &format!("docker://{dest}"),
        false,
        &["--tls-verify=false", "--creds", &creds],
    );
    assert_eq!(pushed["Digest"], digest.trim());
}

#[test]
fn a_read_only_cache_repository_is_used_and_one_warning_says_it_was_not_updated() {
    if !need_root("a_read_only_cache_repository_is_used_and_one_warning_says_it_was_not_updated") {
        return;
    }
    let reg = TestRegistry::plain();
    let base = push_busybox(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    // Fill the cache through the registry itself.
    let first = format!("FROM {base}\nRUN echo one > /one\n");
    build(
        &ctx,
        &first,
        &[
            "--destination",
            &format!("{}/app/ro:1", reg.addr),
            "--insecure-registry",
            &reg.addr,
            "--cache",
            "--cache-repo",
            &format!("{}/team/cache", reg.addr),
        ],
    );
    // Then read it through a proxy that refuses every write to the cache repository, as a
    // registry does for a token with pull access only.
    let denied = Fault::Status {
        code: 403,
        retry_after: None,
    };
    let proxy = FaultProxy::start(
        &reg.addr,
        vec![
            Rule::new("POST", "/v2/team/cache/blobs/uploads", denied.clone()).always(),
            Rule::new("PUT", "/v2/team/cache/", denied).always(),
        ],
    );
    let cache = format!("{}/team/cache", proxy.addr);
    let dest = format!("{}/app/ro:2", reg.addr);
    let (_, log) = build(
        &ctx,
        &format!("{first}RUN echo two > /two\n"),
        &[
            "--destination",
            &dest,
            "--insecure-registry",
            &reg.addr,
            "--insecure-registry",
            &proxy.addr,
            "--cache",
            "--cache-repo",
            &cache,
        ],
    );
    assert!(log.contains("cache hit for `RUN echo one > /one`"), "{log}");
    assert!(
        log.contains("cache miss for `RUN echo two > /two`"),
        "{log}"
    );
    assert_eq!(
        count(&log, &format!("layer cache {cache} was not updated")),
        1,
        "{log}"
    );
    assert_eq!(count(&log, "WARN"), 1, "{log}");
    assert!(
        !proxy.faulted().is_empty(),
        "no write reached the proxy\n{}",
        proxy.describe()
    );
    let out = podman_run(&tmp.path().join("podman"), &dest, &["cat", "/one", "/two"]);
    assert_eq!(stdout(&out), "one\ntwo\n", "{}", stderr(&out));
}
