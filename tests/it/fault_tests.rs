//! Registry faults, end to end: `gantry build` talks to a real registry through the fault proxy.
//!
//! Under each fault with retries enabled (`--push-retry`, `--image-download-retry`) the build
//! succeeds and the pushed image verifies blob by blob (`skopeo copy` straight from the registry
//! into an OCI layout checks every digest); with retries exhausted it fails with one message
//! naming the registry, the operation and the status (or the idle timeout), and the registry's
//! tag list for the destination is empty (the manifest is pushed last, so no tag can point at an
//! incomplete image).
//!
//! Stalls use a one-second idle timeout (`GANTRY_REGISTRY_IDLE_TIMEOUT=1`) to stay fast; the
//! throttled transfers take several of those seconds and must still go through in one try.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::harness::faultproxy::{Fault, FaultProxy, Rule};
use crate::harness::fixtures;
use crate::harness::registry::TestRegistry;
use crate::harness::*;

/// A registry with busybox pushed to `base/busybox:latest` (straight, not through a proxy).
struct Upstream {
    reg: TestRegistry,
    /// The digest of busybox's one layer.
    base_layer: String,
}

impl Upstream {
    fn plain() -> Upstream {
        Upstream::with(TestRegistry::plain())
    }

    fn token() -> Upstream {
        Upstream::with(TestRegistry::token())
    }

    fn with(reg: TestRegistry) -> Upstream {
        let layout = fixtures::busybox();
        let creds = reg.username.as_deref().zip(reg.password.as_deref());
        fixtures::push(
            &layout,
            fixtures::BUSYBOX_TAG,
            &format!("{}/base/busybox:latest", reg.addr),
            creds,
            None,
        );
        let manifest: serde_json::Value = serde_json::from_slice(&fixtures::blob(
            &layout,
            &fixtures::manifest_digest(&layout, fixtures::BUSYBOX_TAG),
        ))
        .unwrap();
        let base_layer = manifest["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string();
        Upstream { reg, base_layer }
    }

    fn creds_args(&self) -> Vec<String> {
        match (&self.reg.username, &self.reg.password) {
            (Some(u), Some(p)) => vec![format!("--src-creds={u}:{p}")],
            _ => Vec::new(),
        }
    }

    /// Copies `repo:tag` from the registry itself into an OCI layout with skopeo, which checks
    /// every blob's digest and size on the way; returns the manifest digest skopeo saw.
    fn verify(&self, repo_tag: &str, tmp: &Path) -> String {
        let layout = tmp.join("verified");
        let mut extra = vec!["--src-tls-verify=false".to_string()];
        extra.extend(self.creds_args());
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        skopeo_to_layout(
            &format!("docker://{}/{repo_tag}", self.reg.addr),
            &layout,
            "verified",
            &extra,
        );
        let digest = fixtures::manifest_digest(&layout, "verified");
        let manifest: serde_json::Value =
            serde_json::from_slice(&fixtures::blob(&layout, &digest)).unwrap();
        // Every layer the manifest names is in the layout, with the bytes its digest says.
        for layer in manifest["layers"].as_array().unwrap() {
            let d = layer["digest"].as_str().unwrap();
            let bytes = fixtures::blob(&layout, d);
            assert_eq!(gantry::image::sha256_digest(&bytes), d);
            assert_eq!(bytes.len() as u64, layer["size"].as_u64().unwrap());
        }
        digest
    }

    /// The registry's tag list for `repo` (asked straight with `skopeo list-tags`, not via the
    /// proxy); a repository the registry does not know has none.
    fn tags(&self, repo: &str) -> Vec<String> {
        let mut cmd = Command::new("skopeo");
        cmd.args(["list-tags", "--tls-verify=false"]);
        if let (Some(u), Some(p)) = (&self.reg.username, &self.reg.password) {
            cmd.arg(format!("--creds={u}:{p}"));
        }
        cmd.arg(format!("docker://{}/{repo}", self.reg.addr));
        let out = run(&mut cmd);
        if !out.status.success() {
            let err = stderr(&out);
            // distribution answers 404 NAME_UNKNOWN for a repository it has no tag in
            assert!(
                err.contains("404 (Not Found)") || err.contains("name unknown"),
                "skopeo list-tags failed: {err}"
            );
            return Vec::new();
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["Tags"]
            .as_array()
            .map(|a| a.iter().map(|t| t.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    }

    /// Whether the registry has a manifest under `repo:tag` (asked straight, not via the proxy).
    fn has_tag(&self, repo_tag: &str) -> bool {
        let mut cmd = Command::new("skopeo");
        cmd.args(["inspect", "--raw", "--tls-verify=false"]);
        if let (Some(u), Some(p)) = (&self.reg.username, &self.reg.password) {
            cmd.arg(format!("--creds={u}:{p}"));
        }
        cmd.arg(format!("docker://{}/{repo_tag}", self.reg.addr));
        run(&mut cmd).status.success()
    }
}

/// The payload of the default context: big enough (256 KiB of incompressible bytes) that an
/// upload of its layer can be cut in the middle.
const PAYLOAD: usize = 256 * 1024;

/// The idle timeout the stall tests give gantry, in seconds.
const IDLE: u64 = 1;

/// A context with one file of `size` incompressible bytes.
fn context(tmp: &Path, size: usize) -> PathBuf {
    let ctx = tmp.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let mut data = Vec::with_capacity(size);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while data.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(ctx.join("payload.bin"), data).unwrap();
    ctx
}

/// What a build under a fault may change beyond the flags.
struct Setup {
    /// Environment for gantry (the idle timeout).
    env: Vec<(&'static str, String)>,
    /// Size of the copied file.
    payload: usize,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            env: Vec::new(),
            payload: PAYLOAD,
        }
    }
}

impl Setup {
    /// The short idle timeout of the stall tests.
    fn impatient() -> Setup {
        Setup {
            env: vec![("GANTRY_REGISTRY_IDLE_TIMEOUT", IDLE.to_string())],
            ..Setup::default()
        }
    }
}

/// Builds `FROM <proxy>/base/busybox` + a COPY, pushing to `<proxy>/app/faulty:v1`.
fn build_with(
    proxy: &FaultProxy,
    up: &Upstream,
    tmp: &Path,
    extra: &[&str],
    setup: &Setup,
) -> Output {
    let ctx = context(tmp, setup.payload);
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {}/base/busybox:latest\nCOPY payload.bin /data/payload.bin\n",
            proxy.addr
        ),
    )
    .unwrap();
    let home = tmp.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = gantry(&home);
    cmd.envs(setup.env.iter().map(|(k, v)| (k, v)));
    if let (Some(u), Some(p)) = (&up.reg.username, &up.reg.password) {
        let docker = tmp.join("docker");
        std::fs::create_dir_all(&docker).unwrap();
        let auth = base64_encode(&format!("{u}:{p}"));
        std::fs::write(
            docker.join("config.json"),
            serde_json::json!({"auths": {proxy.addr.clone(): {"auth": auth}}}).to_string(),
        )
        .unwrap();
        cmd.env("DOCKER_CONFIG", &docker);
    }
    cmd.arg("build")
        .arg("--context")
        .arg(&ctx)
        .arg("--destination")
        .arg(format!("{}/app/faulty:v1", proxy.addr))
        .arg("--insecure-registry")
        .arg(&proxy.addr)
        .arg("--digest-file")
        .arg(tmp.join("digest"))
        .args(extra);
    run(&mut cmd)
}

fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Runs one fault with retries and checks the build succeeded, the fault fired, and the image
/// verifies; returns the proxy for further checks.
fn survives(up: &Upstream, rules: Vec<Rule>, tmp: &Path) -> FaultProxy {
    survives_with(up, rules, tmp, &Setup::default()).0
}

/// [`survives`] with a setup; also returns gantry's stderr.
fn survives_with(
    up: &Upstream,
    rules: Vec<Rule>,
    tmp: &Path,
    setup: &Setup,
) -> (FaultProxy, String) {
    let proxy = FaultProxy::start(&up.reg.addr, rules);
    let out = build_with(
        &proxy,
        up,
        tmp,
        &["--push-retry=3", "--image-download-retry=3"],
        setup,
    );
    assert!(
        out.status.success(),
        "build failed under a retryable fault\nstderr:\n{}\nproxy log:\n{}",
        stderr(&out),
        proxy.describe()
    );
    assert!(
        !proxy.faulted().is_empty(),
        "the fault never fired; proxy log:\n{}",
        proxy.describe()
    );
    let digest = std::fs::read_to_string(tmp.join("digest")).unwrap();
    assert_eq!(up.verify("app/faulty:v1", tmp), digest.trim());
    (proxy, stderr(&out))
}

/// Runs a fault that outlasts the retries; checks that gantry printed exactly one error, which
/// names the registry, and that the registry's tag list for the destination is empty.
/// Returns the proxy and that error (its `error:` line and what follows).
fn gives_up(up: &Upstream, rules: Vec<Rule>, tmp: &Path, extra: &[&str]) -> (FaultProxy, String) {
    gives_up_with(up, rules, tmp, extra, &Setup::default())
}

fn gives_up_with(
    up: &Upstream,
    rules: Vec<Rule>,
    tmp: &Path,
    extra: &[&str],
    setup: &Setup,
) -> (FaultProxy, String) {
    let proxy = FaultProxy::start(&up.reg.addr, rules);
    let out = build_with(&proxy, up, tmp, extra, setup);
    let all = fails(out);
    assert!(
        !all.contains("panicked"),
        "gantry panicked under a fault:\n{all}"
    );
    let errors = all.lines().filter(|l| l.starts_with("error:")).count();
    assert_eq!(errors, 1, "not exactly one error message:\n{all}");
    let err = all[all.find("error:").unwrap()..].to_string();
    assert!(
        err.lines()
            .next()
            .unwrap()
            .contains(&format!("registry `{}`", proxy.addr)),
        "the message does not name the registry `{}`:\n{err}",
        proxy.addr
    );
    assert_eq!(
        up.tags("app/faulty"),
        Vec::<String>::new(),
        "a tag exists after a failed push"
    );
    // The same query does see the tags that exist.
    assert_eq!(up.tags("base/busybox"), ["latest"]);
    assert!(!up.has_tag("app/faulty:v1"));
    assert!(!tmp.join("digest").exists(), "a digest file was written");
    (proxy, err)
}

fn status(code: u16) -> Fault {
    Fault::Status {
        code,
        retry_after: None,
    }
}

#[test]
fn manifest_push_500_is_retried() {
    let up = Upstream::plain();
    let tmp = tempfile::tempdir().unwrap();
    let proxy = survives(
        &up,
        vec![Rule::new("PUT", "/v2/app/faulty/manifests/", status(500))],
        tmp.path(),
    );
    let puts = proxy.matching("PUT", "/v2/app/faulty/manifests/v1");
    assert_eq!(
        puts.iter().map(|h| h.status).collect::<Vec<_>>(),
        [500, 201]
    );
}

#[test]
fn blob_upload_502_is_retried() {
    let up = Upstream::plain();
    let tmp = tempfile::tempdir().unwrap();
    let proxy = survives(
        &up,
        vec![Rule::new(
            "PUT",
            "/v2/app/faulty/blobs/uploads/",
            status(502),
        )],
        tmp.path(),
    );
    let statuses: Vec<u16> = proxy
        .matching("PUT", "/v2/app/faulty/blobs/uploads/")
        .iter()
        .map(|h| h.status)
        .collect();
    assert_eq!(statuses.first(), Some(&502));
    assert!(statuses[1..].iter().all(|s| *s == 201), "{statuses:?}");
}

#[test]
fn base_manifest_503_with_retry_after_is_honoured() {
    let up = Upstream::plain();
    let tmp = tempfile::tempdir().unwrap();
    let (proxy, log) = survives_with(
        &up,
        vec![Rule::new(
            "GET",
            "/v2/base/busybox/manifests/latest",
            Fault::Status {
                code: 503,
                retry_after: Some(2),
            },
        )],
        tmp.path(),
        &Setup::default(),
    );
    // The wait is said at the default verbosity, not only in debug logs.
    assert!(
        log.contains(&format!(
            "registry `{}` answered 503 Service Unavailable to pull manifest `base/busybox` and \
             asked to wait 2 s (Retry-After); waiting 2 s before trying again",
            proxy.addr
        )),
        "{log}"
    );
    let gets = proxy.matching("GET", "/v2/base/busybox/manifests/latest");
    assert_eq!(gets[0].status, 503);
    assert_eq!(gets[1].status, 200);
    let waited = gets[1].at - gets[0].at;
    assert!(
        waited >= Duration::from_millis(1900),
        "Retry-After: 2 not honoured, retried after {waited:?}"
    );
}

#[test]
fn blob_head_429_with_retry_after_is_honoured() {
    let up = Upstream::plain();
    let tmp = tempfile::tempdir().unwrap();
    let proxy = survives(
        &up,
        vec![Rule::new(
            "HEAD",
            "/v2/app/faulty/blobs/sha256:",
            Fault::Status {
                code: 429,
                retry_after: Some(1),
            },
        )],
        tmp.path(),
    );
    let first = &proxy.faulted()[0];
    let retry = proxy
        .matching("HEAD", &first.target)
        .into_iter()
        .find(|h| h.fault.is_none())
        .expect("the HEAD was not retried");
    assert!(retry.at - first.at >= Duration::from_millis(900));
}

#[test]
fn upload_start_429_without_retry_after_is_retried() {
    let up = Upstream::plain();
    let tmp = tempfile::tempdir().unwrap();
    // The second POST: the first one is the push-permission check before the build.
    let proxy = survives(
        &up,
        vec![
            Rule::new("POST", "/v2/app/faulty/blobs/uploads/", status(429))
                .nth(2)
                .times(2),
        ],
        tmp.path(),
    );
    assert_eq!(proxy.faulted().len(), 2, "{}", proxy.describe());
}

#[test]
fn connection_reset_mid_blob_upload_is_retried_from_the_start() {
    let up = Upstream::plain();
    let tmp = tempfile::tempdir().unwrap();
    let proxy = survives(
        &up,
        vec![Rule::new(
            "PUT",
            "/v2/app/faulty/blobs/uploads/",
            Fault::ResetUpload { after: 32 * 1024 },
        )],
        tmp.path(),
    );
    let faulted = proxy.faulted();
    assert_eq!(faulted[0].status, 0);
    // The same digest is uploaded again, in a new session, and accepted.
    let digest = faulted[0]
        .target
        .split("digest=")
        .nth(1)
        .unwrap()
        .to_string();
    let done = proxy
        .matching("PUT", &format!("digest={digest}"))
        .into_iter()
        .filter(|h| h.status == 201)
        .count();
    assert_eq!(done, 1, "{}", proxy.describe());
}

#[test]
fn connection_reset_mid_base_layer_download_is_retried() {
    let up = Upstream::plain();
    let tmp = tempfile::tempdir().unwrap();
    let layer = up.base_layer.clone();
    let proxy = survives(
        &up,
        vec![Rule::new(
            "GET",
            &format!("/v2/base/busybox/blobs/{layer}"),
            Fault::ResetDownload { after: 4096 },
        )],
        tmp.path(),
    );
    let gets = proxy.matching("GET", &format!("/blobs/{layer}"));
    assert_eq!(
        gets.iter().map(|h| h.status).collect::<Vec<_>>(),
        [0, 200],
        "{}",
        proxy.describe()
    );
}

#[test]
fn stalled_manifest_push_completes() {
    let up = Upstream::plain();
    let tmp = tempfile::tempdir().unwrap();
    let start = Instant::now();
    survives(
        &up,
        vec![Rule::new(
            "PUT",
            "/v2/app/faulty/manifests/",
            Fault::Stall(Duration::from_secs(2)),
        )],
        tmp.path(),
    );
    assert!(start.elapsed() >= Duration::from_secs(2));
}

#[test]
fn fresh_401_challenge_mid_push_reauthenticates() {
    let up = Upstream::token();
    let tmp = tempfile::tempdir().unwrap();
    let proxy = survives(
        &up,
        vec![Rule::new(
            "PUT",
            "/v2/app/faulty/blobs/uploads/",
            Fault::FreshChallenge,
        )],
        tmp.path(),
    );
    // The PUT that got the 401 is followed by one that went through with a fresh token.
    let puts = proxy.matching("PUT", "/v2/app/faulty/blobs/uploads/");
    assert_eq!(puts[0].status, 401);
    assert!(
        puts[1..].iter().all(|h| h.status == 201),
        "{}",
        proxy.describe()
    );
    let tokens = up.reg.token_log.lock().unwrap().clone();
    assert!(
        tokens
            .iter()
            .filter(|t| t.contains("repository:app/faulty:pull,push"))
            .count()
            >= 2,
        "no token was fetched again after the 401: {tokens:?}"
    );
}

#[test]
fn declined_cross_repository_mount_falls_back_to_upload() {
    let up = Upstream::plain();
    let tmp = tempfile::tempdir().unwrap();
    let layer = up.base_layer.clone();
    let proxy = survives(
        &up,
        vec![Rule::new("POST", "mount=", Fault::DeclineMount).always()],
        tmp.path(),
    );
    let mounts = proxy.matching("POST", "mount=");
    assert_eq!(mounts.len(), 1, "{}", proxy.describe());
    assert_eq!(mounts[0].status, 202);
    // The base layer was then uploaded in full.
    let uploaded = proxy.matching("PUT", &format!("digest={}", layer.replace(':', "%3A")));
    assert_eq!(
        uploaded.iter().map(|h| h.status).collect::<Vec<_>>(),
        [201],
        "{}",
        proxy.describe()
    );
}

#[test]
fn manifest_push_503_outlasting_retries_fails_naming_registry_operation_status() {
    let up = Upstream::plain();
    let tmp = tempfile::tempdir().unwrap();
    let (proxy, err) = gives_up(
        &up,
        vec![Rule::new("PUT", "/v2/app/faulty/manifests/", status(503)).always()],
        tmp.path(),
        &["--push-retry=2"],
    );
    assert!(err.contains("push manifest"), "{err}");
    assert!(err.contains("503"), "{err}");
    // One attempt and two retries, no more.
    assert_eq!(
        proxy.matching("PUT", "/v2/app/faulty/manifests/").len(),
        3,
        "{}",
        proxy.describe()
    );
    // Every blob was pushed, but no manifest, so no tag.
    assert!(!up.has_tag("app/faulty:v1"));
}

#[test]
fn blob_upload_reset_outlasting_retries_fails_and_moves_no_tag() {
    let up = Upstream::plain();
    let tmp = tempfile::tempdir().unwrap();
    let (proxy, err) = gives_up(
        &up,
        vec![Rule::new(
            "PUT",
            "/v2/app/faulty/blobs/uploads/",
            Fault::ResetUpload { after: 1024 },
        )
        .always()],
        tmp.path(),
        &["--push-retry=1"],
    );
    assert!(err.contains("push blob"), "{err}");
    assert!(
        proxy.matching("PUT", "/manifests/").is_empty(),
        "a manifest was pushed after a blob failed:\n{}",
        proxy.describe()
    );
}

#[test]
fn base_blob_500_outlasting_retries_fails_naming_pull_blob() {
    let up = Upstream::plain();
    let tmp = tempfile::tempdir().unwrap();
    let layer = up.base_layer.clone();
    let (proxy, err) = gives_up(
        &up,
        vec![Rule::new("GET", &format!("/blobs/{layer}"), status(500)).always()],
        tmp.path(),
        &["--image-download-retry=1"],
    );
    assert!(err.contains("pull blob"), "{err}");
    assert!(err.contains("500"), "{err}");
    assert_eq!(proxy.matching("GET", &format!("/blobs/{layer}")).len(), 2);
}

#[test]
fn without_retries_the_first_fault_fails_the_build() {
    let up = Upstream::plain();
    let tmp = tempfile::tempdir().unwrap();
    let (_proxy, err) = gives_up(
        &up,
        vec![Rule::new("PUT", "/v2/app/faulty/manifests/", status(502))],
        tmp.path(),
        &[],
    );
    assert!(
        err.contains("502") && err.contains("push manifest"),
        "{err}"
    );
    // One message: the error is printed once.
    assert_eq!(err.matches("answered 502").count(), 1, "{err}");
}

#[test]
fn silent_registry_during_manifest_push_is_retried_after_the_idle_timeout() {
    let up = Upstream::plain();
    let tmp = tempfile::tempdir().unwrap();
    let (proxy, _) = survives_with(
        &up,
        vec![Rule::new("PUT", "/v2/app/faulty/manifests/", Fault::Hang)],
        tmp.path(),
        &Setup::impatient(),
    );
    let puts = proxy.matching("PUT", "/v2/app/faulty/manifests/v1");
    assert_eq!(
        puts.iter().map(|h| h.status).collect::<Vec<_>>(),
        [0, 201],
        "{}",
        proxy.describe()
    );
    let waited = puts[1].at - puts[0].at;
    assert!(
        waited >= Duration::from_secs(IDLE) && waited < Duration::from_secs(IDLE + 10),
        "retried after {waited:?}"
    );
}

#[test]
fn base_layer_download_stalling_halfway_is_fetched_again() {
    let up = Upstream::plain();
    let tmp = tempfile::tempdir().unwrap();
    let layer = up.base_layer.clone();
    let (proxy, _) = survives_with(
        &up,
        vec![Rule::new(
            "GET",
            &format!("/v2/base/busybox/blobs/{layer}"),
            Fault::HangDownload { after: 64 * 1024 },
        )],
        tmp.path(),
        &Setup::impatient(),
    );
    let gets = proxy.matching("GET", &format!("/blobs/{layer}"));
    assert_eq!(
        gets.iter().map(|h| h.status).collect::<Vec<_>>(),
        [0, 200],
        "{}",
        proxy.describe()
    );
}

#[test]
fn slow_base_layer_download_that_keeps_moving_is_not_cut() {
    let up = Upstream::plain();
    let tmp = tempfile::tempdir().unwrap();
    let layer = up.base_layer.clone();
    // ~1 MiB at 320 KiB/s: about three idle timeouts, with a chunk every 100 ms.
    let (proxy, _) = survives_with(
        &up,
        vec![Rule::new(
            "GET",
            &format!("/v2/base/busybox/blobs/{layer}"),
            Fault::SlowDownload {
                chunk: 32 * 1024,
                every: Duration::from_millis(100),
            },
        )],
        tmp.path(),
        &Setup::impatient(),
    );
    let gets = proxy.matching("GET", &format!("/blobs/{layer}"));
    assert_eq!(gets.len(), 1, "retried:\n{}", proxy.describe());
    assert_eq!(gets[0].status, 200);
    assert!(
        gets[0].took >= Duration::from_secs(2 * IDLE),
        "not slow enough to prove anything: {:?}",
        gets[0].took
    );
}

#[test]
fn slow_layer_upload_that_keeps_moving_is_not_cut() {
    let up = Upstream::plain();
    let tmp = tempfile::tempdir().unwrap();
    // 48 MiB read from gantry at 16 MiB/s: three idle timeouts. The kernel's send buffer (up
    // to 4 MiB on Linux) drains unseen by gantry at the end; at this rate that takes a quarter
    // of the idle timeout.
    let setup = Setup {
        payload: 48 << 20,
        ..Setup::impatient()
    };
    let (proxy, _) = survives_with(
        &up,
        vec![Rule::new(
            "PUT",
            "/v2/app/faulty/blobs/uploads/",
            Fault::SlowUpload {
                chunk: 256 * 1024,
                every: Duration::from_millis(16),
            },
        )
        .always()],
        tmp.path(),
        &setup,
    );
    let puts = proxy.matching("PUT", "/v2/app/faulty/blobs/uploads/");
    assert!(puts.iter().all(|h| h.status == 201), "{}", proxy.describe());
    let mut digests: Vec<&str> = puts
        .iter()
        .map(|h| h.target.split("digest=").nth(1).unwrap())
        .collect();
    let n = digests.len();
    digests.sort();
    digests.dedup();
    assert_eq!(
        digests.len(),
        n,
        "an upload was retried:\n{}",
        proxy.describe()
    );
    let slowest = puts.iter().map(|h| h.took).max().unwrap();
    assert!(
        slowest >= Duration::from_secs(2 * IDLE),
        "not slow enough to prove anything: {slowest:?}"
    );
}

#[test]
fn manifest_push_429_outlasting_retries_fails_naming_registry_operation_status() {
    let up = Upstream::plain();
    let tmp = tempfile::tempdir().unwrap();
    let (proxy, err) = gives_up(
        &up,
        vec![Rule::new("PUT", "/v2/app/faulty/manifests/", status(429)).always()],
        tmp.path(),
        &["--push-retry=1"],
    );
    assert!(
        err.contains(&format!(
            "registry `{}` answered 429 to push manifest `app/faulty`",
            proxy.addr
        )),
        "{err}"
    );
    assert_eq!(
        proxy.matching("PUT", "/v2/app/faulty/manifests/").len(),
        2,
        "{}",
        proxy.describe()
    );
}

#[test]
fn base_layer_download_reset_outlasting_retries_fails_naming_pull_blob() {
    let up = Upstream::plain();
    let tmp = tempfile::tempdir().unwrap();
    let layer = up.base_layer.clone();
    let (proxy, err) = gives_up(
        &up,
        vec![Rule::new(
            "GET",
            &format!("/blobs/{layer}"),
            Fault::ResetDownload { after: 4096 },
        )
        .always()],
        tmp.path(),
        &["--image-download-retry=1"],
    );
    assert!(
        err.contains(&format!(
            "cannot reach registry `{}` to pull blob",
            proxy.addr
        )),
        "{err}"
    );
    assert_eq!(
        proxy
            .matching("GET", &format!("/blobs/{layer}"))
            .iter()
            .map(|h| h.status)
            .collect::<Vec<_>>(),
        [0, 0],
        "{}",
        proxy.describe()
    );
}

#[test]
fn silent_registry_outlasting_retries_fails_naming_the_idle_timeout() {
    let up = Upstream::plain();
    let tmp = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let (proxy, err) = gives_up_with(
        &up,
        vec![Rule::new("PUT", "/v2/app/faulty/manifests/", Fault::Hang).always()],
        tmp.path(),
        &["--push-retry=1"],
        &Setup::impatient(),
    );
    assert!(
        err.contains(&format!(
            "registry `{}` stopped responding to push manifest `app/faulty`: nothing was sent \
             or received for {IDLE} s (idle timeout)",
            proxy.addr
        )),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
    assert_eq!(
        proxy.matching("PUT", "/v2/app/faulty/manifests/").len(),
        2,
        "{}",
        proxy.describe()
    );
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn repeated_401_after_reauthentication_fails_naming_push_blob() {
    let up = Upstream::token();
    let tmp = tempfile::tempdir().unwrap();
    let (proxy, err) = gives_up(
        &up,
        vec![Rule::new(
            "PUT",
            "/v2/app/faulty/blobs/uploads/",
            Fault::FreshChallenge,
        )
        .always()],
        tmp.path(),
        &["--push-retry=2"],
    );
    assert!(
        err.contains(&format!(
            "registry `{}` refused to push blob `app/faulty`: 401 Unauthorized",
            proxy.addr
        )),
        "{err}"
    );
    assert!(err.contains("hint: check the credentials"), "{err}");
    // Per blob: the PUT, one re-authentication and the PUT again, then the 401 is final (a
    // blob pushed alongside may be dropped halfway when the first one fails the push).
    let puts = proxy.matching("PUT", "/v2/app/faulty/blobs/uploads/");
    let mut per_digest = std::collections::BTreeMap::<String, usize>::new();
    for h in &puts {
        *per_digest
            .entry(h.target.split("digest=").nth(1).unwrap().to_string())
            .or_default() += 1;
    }
    assert!(
        per_digest.values().all(|n| *n <= 2) && per_digest.values().any(|n| *n == 2),
        "{per_digest:?}\n{}",
        proxy.describe()
    );
    assert!(puts.iter().all(|h| h.status == 401), "{}", proxy.describe());
}
