//! Protocol rules checked against the in-process fake, each test headed by the rule it pins.

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;

use super::fake::{FakeServer, Response};
use super::*;
use crate::image::{self, Descriptor};

pub(super) const MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

pub(super) fn client(addr: &str, auth: Option<(&str, &str)>, retries: u32) -> Client {
    client_with(addr, auth, |o| {
        o.insecure_registries = vec![addr.to_string()];
        o.pull_retry = retries;
        o.push_retry = retries;
    })
}

/// A client with credentials for `addr` and options set by `tune` (nothing insecure).
pub(super) fn client_with(
    addr: &str,
    auth: Option<(&str, &str)>,
    tune: impl FnOnce(&mut RegistryOptions),
) -> Client {
    let json = match auth {
        Some((u, p)) => {
            let a = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            format!(r#"{{"auths":{{"{addr}":{{"auth":"{a}"}}}}}}"#)
        }
        None => "{}".to_string(),
    };
    let creds =
        CredentialStore::from_json(Path::new("/fake/config.json"), json.as_bytes()).unwrap();
    let mut opts = RegistryOptions::default();
    tune(&mut opts);
    Client::with_credentials(opts, creds).unwrap()
}

/// A plain-HTTP client with a short idle window.
fn impatient(addr: &str, retries: u32, idle: Duration) -> Client {
    client_with(addr, None, |o| {
        o.insecure_registries = vec![addr.to_string()];
        o.pull_retry = retries;
        o.push_retry = retries;
        o.idle_timeout = Some(idle);
    })
}

pub(super) fn reference(addr: &str, rest: &str) -> Reference {
    Reference::parse(&format!("{addr}/{rest}")).unwrap()
}

pub(super) fn manifest_ok() -> Response {
    Response::new(200)
        .header("Content-Type", image::OCI_MANIFEST)
        .body(MANIFEST)
}

/// 429 and 5xx are retried with backoff, honouring `Retry-After`; without retries the status is
/// the error.
#[tokio::test]
async fn transient_statuses_are_retried() {
    let srv = FakeServer::start(|_, n| match n {
        0 => Response::new(503).header("Retry-After", "0"),
        1 => Response::new(429),
        _ => manifest_ok(),
    })
    .await;
    let got = client(&srv.addr, None, 2)
        .get_manifest(&reference(&srv.addr, "a/b:t"))
        .await
        .unwrap();
    assert_eq!(got.bytes, MANIFEST);
    assert_eq!(got.digest, image::sha256_digest(MANIFEST));
    assert_eq!(srv.requests().len(), 3);

    let srv = FakeServer::start(|_, _| Response::new(502)).await;
    let err = client(&srv.addr, None, 0)
        .get_manifest(&reference(&srv.addr, "a/b:t"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Status { status: 502, .. }),
        "{err:?}"
    );
    assert_eq!(srv.requests().len(), 1);
}

/// A 401 on a cached (expired) token re-authenticates exactly once; a second 401 is the error.
#[tokio::test]
async fn stale_token_reauthenticates_once() {
    // Every token is good for one request, so the cached token is stale on the next call.
    let unused = std::sync::Mutex::new(std::collections::BTreeSet::new());
    let srv = FakeServer::start(move |req, n| {
        if req.target.starts_with("/token") {
            unused.lock().unwrap().insert(format!("Bearer tok{n}"));
            return Response::new(200).body(format!(r#"{{"token":"tok{n}"}}"#));
        }
        let auth = req
            .headers
            .get("authorization")
            .cloned()
            .unwrap_or_default();
        if unused.lock().unwrap().remove(&auth) {
            manifest_ok()
        } else {
            Response::new(401).header(
                "WWW-Authenticate",
                &format!(
                    r#"Bearer realm="http://{}/token",service="fake""#,
                    req.headers["host"]
                ),
            )
        }
    })
    .await;
    let c = client(&srv.addr, Some(("u", "p")), 0);
    let r = reference(&srv.addr, "first/x:t");
    // 0: 401, 1: token tok1, 2: manifest with tok1
    c.get_manifest(&r).await.unwrap();
    // 3: cached tok1 is stale -> 401, 4: token tok4, 5: manifest with tok4
    c.get_manifest(&r).await.unwrap();
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 6);
    assert_eq!(reqs[3].headers["authorization"], "Bearer tok1");
    assert_eq!(reqs[5].headers["authorization"], "Bearer tok4");
    let token_reqs: Vec<_> = reqs
        .iter()
        .filter(|r| r.target.starts_with("/token"))
        .collect();
    assert_eq!(token_reqs.len(), 2);
    assert!(
        token_reqs[1]
            .target
            .contains("service=fake&scope=repository%3Afirst%2Fx%3Apull&account=u"),
        "{}",
        token_reqs[1].target
    );
    assert!(token_reqs[1].headers["authorization"].starts_with("Basic "));

    let srv = FakeServer::start(|req, _| {
        if req.target.starts_with("/token") {
            return Response::new(200).body(r#"{"access_token":"never-good"}"#);
        }
        Response::new(401).header(
            "WWW-Authenticate",
            &format!(r#"Bearer realm="http://{}/token""#, req.headers["host"]),
        )
    })
    .await;
    let err = client(&srv.addr, None, 3)
        .get_manifest(&reference(&srv.addr, "a/b:t"))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    // request, token, request again: no loop
    assert_eq!(srv.requests().len(), 3);
    assert_eq!(
        srv.requests()[2]
            .headers
            .get("authorization")
            .map(String::as_str),
        Some("Bearer never-good")
    );
}

/// A manifest whose bytes do not match `Docker-Content-Digest` is refused.
#[tokio::test]
async fn manifest_digest_header_is_checked() {
    let srv = FakeServer::start(|_, _| {
        manifest_ok().header(
            "Docker-Content-Digest",
            &format!("sha256:{}", "1".repeat(64)),
        )
    })
    .await;
    let err = client(&srv.addr, None, 0)
        .get_manifest(&reference(&srv.addr, "a/b:t"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::DigestMismatch { .. }),
        "{err:?}"
    );
}

/// A blob with the wrong content never lands at its destination (nor its `.tmp`).
#[tokio::test]
async fn blob_digest_and_size_are_verified() {
    let srv = FakeServer::start(|_, _| Response::new(200).body("tampered!!")).await;
    let c = client(&srv.addr, None, 0);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");
    let desc = Descriptor::new(
        image::OCI_LAYER_GZIP,
        image::sha256_digest(b"original!!"),
        10,
    );
    let err = c
        .fetch_blob(&reference(&srv.addr, "a/b:t"), &desc, &dest)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::DigestMismatch { .. }),
        "{err:?}"
    );
    let short = Descriptor::new(
        image::OCI_LAYER_GZIP,
        image::sha256_digest(b"tampered!!"),
        4,
    );
    let err = c
        .fetch_blob(&reference(&srv.addr, "a/b:t"), &short, &dest)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::SizeMismatch { expected: 4, .. }),
        "{err:?}"
    );
    assert!(!dest.exists() && !dir.path().join("blob.tmp").exists());
}

/// Uploads: POST, then one PUT streamed from the file with `Content-Length` and the digest,
/// retried from the start after a 5xx; the manifest goes last with its exact bytes.
#[tokio::test]
async fn upload_streams_with_length_and_retries_from_the_start() {
    let srv = FakeServer::start(|req, _| match req.method.as_str() {
        "HEAD" => Response::new(404),
        "POST" => Response::new(202).header("Location", "/v2/a/b/blobs/uploads/u1?_state=s"),
        "PUT" if req.target.contains("/manifests/") => {
            Response::new(201).header("Docker-Content-Digest", &image::sha256_digest(&req.body))
        }
        "PUT" => {
            // fail the first blob PUT to force a retry
            if req.body.starts_with(b"fail-once") && !req.target.contains("retried") {
                Response::new(500)
            } else {
                Response::new(201)
            }
        }
        _ => Response::new(400),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let blob = b"fail-once: layer bytes".to_vec();
    let path = dir.path().join("layer");
    std::fs::write(&path, &blob).unwrap();
    let desc = Descriptor::new(
        image::OCI_LAYER_GZIP,
        image::sha256_digest(&blob),
        blob.len() as u64,
    );
    let img = PushImage {
        manifest_bytes: MANIFEST.to_vec(),
        media_type: image::OCI_MANIFEST.into(),
        blobs: vec![PushBlob {
            descriptor: desc.clone(),
            source: BlobSource::File(path),
        }],
    };
    let c = client(&srv.addr, None, 0);
    let err = c
        .push_image(&reference(&srv.addr, "a/b:v1"), &img)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Status { status: 500, .. }),
        "{err:?}"
    );
    // the manifest was never sent after a failed blob
    assert!(!srv
        .requests()
        .iter()
        .any(|r| r.target.contains("/manifests/")));

    let srv2 = FakeServer::start({
        let count = std::sync::atomic::AtomicUsize::new(0);
        move |req, _| match req.method.as_str() {
            "HEAD" => Response::new(404),
            "POST" => Response::new(202).header("Location", "/v2/a/b/blobs/uploads/u1?_state=s"),
            "PUT" if req.target.contains("/manifests/") => Response::new(201),
            "PUT" => {
                if count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    Response::new(500)
                } else {
                    Response::new(201)
                }
            }
            _ => Response::new(400),
        }
    })
    .await;
    let c = client(&srv2.addr, None, 1);
    let digest = c
        .push_image(&reference(&srv2.addr, "a/b:v1"), &img)
        .await
        .unwrap();
    assert_eq!(digest, image::sha256_digest(MANIFEST));
    let reqs = srv2.requests();
    let methods: Vec<&str> = reqs.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["HEAD", "POST", "PUT", "POST", "PUT", "PUT"]);
    for put in [&reqs[2], &reqs[4]] {
        assert_eq!(put.body, blob, "each attempt sends the whole blob");
        assert_eq!(put.headers["content-length"], blob.len().to_string());
        assert!(!put.headers.contains_key("transfer-encoding"));
        assert!(
            put.target
                .starts_with("/v2/a/b/blobs/uploads/u1?_state=s&digest=sha256%3A"),
            "{}",
            put.target
        );
    }
    let manifest_put = &reqs[5];
    assert_eq!(manifest_put.target, "/v2/a/b/manifests/v1");
    assert_eq!(manifest_put.body, MANIFEST);
    assert_eq!(manifest_put.headers["content-type"], image::OCI_MANIFEST);
}

pub(super) fn blob_of(len: usize) -> (Vec<u8>, Descriptor) {
    let blob: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    let desc = Descriptor::new(
        image::OCI_LAYER_GZIP,
        image::sha256_digest(&blob),
        blob.len() as u64,
    );
    (blob, desc)
}

/// A registry that accepts the connection and then says nothing is given up after the idle
/// window, and the call is retried like a dropped connection; without retries the stall is
/// the error, naming the registry, the operation and the window.
#[tokio::test]
async fn silent_registry_is_given_up_after_the_idle_window_and_retried() {
    let idle = Duration::from_millis(300);
    let srv = FakeServer::start(|_, n| match n {
        0 => manifest_ok().delay(Duration::from_secs(30)),
        _ => manifest_ok(),
    })
    .await;
    let start = Instant::now();
    let got = impatient(&srv.addr, 1, idle)
        .get_manifest(&reference(&srv.addr, "a/b:t"))
        .await
        .unwrap();
    assert_eq!(got.bytes, MANIFEST);
    assert_eq!(srv.requests().len(), 2);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );

    let srv = FakeServer::start(|_, _| manifest_ok().delay(Duration::from_secs(30))).await;
    let start = Instant::now();
    let err = impatient(&srv.addr, 0, idle)
        .get_manifest(&reference(&srv.addr, "a/b:t"))
        .await
        .unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err, RegistryError::Stalled { .. }), "{err:?}");
    assert!(took >= idle && took < Duration::from_secs(5), "{took:?}");
    assert_eq!(srv.requests().len(), 1);
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "registry `{}` stopped responding to pull manifest `a/b`: nothing was sent or \
             received for 0.3 s (idle timeout)\nhint: ",
            srv.addr
        )),
        "{msg}"
    );
    assert_eq!(msg.matches("hint:").count(), 1, "{msg}");
}

/// A blob whose bytes stop coming halfway is fetched again from the start; with no retries
/// left the stall is the error and nothing is left at the destination.
#[tokio::test]
async fn blob_stalling_midway_is_fetched_again_from_the_start() {
    let idle = Duration::from_millis(300);
    let (blob, desc) = blob_of(64 * 1024);
    let body = blob.clone();
    let srv = FakeServer::start(move |_, n| {
        let r = Response::new(200).body(body.clone());
        if n == 0 {
            r.pause_after(1000, Duration::from_secs(30))
        } else {
            r
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");
    impatient(&srv.addr, 1, idle)
        .fetch_blob(&reference(&srv.addr, "a/b:t"), &desc, &dest)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), blob);
    assert_eq!(srv.requests().len(), 2);

    let body = blob.clone();
    let srv = FakeServer::start(move |_, _| {
        Response::new(200)
            .body(body.clone())
            .pause_after(1000, Duration::from_secs(30))
    })
    .await;
    let dest = dir.path().join("blob2");
    let err = impatient(&srv.addr, 0, idle)
        .fetch_blob(&reference(&srv.addr, "a/b:t"), &desc, &dest)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Stalled { .. }), "{err:?}");
    assert!(err.to_string().contains("pull blob `a/b`"), "{err}");
    assert!(!dest.exists() && !dir.path().join("blob2.tmp").exists());
}

/// The timeout is for silence, not for slowness: answers that take many idle windows but keep
/// moving are read to the end in one request.
#[tokio::test]
async fn slow_answers_that_keep_moving_are_not_cut() {
    let idle = Duration::from_millis(400);
    let (blob, desc) = blob_of(4000);
    let body = blob.clone();
    let srv = FakeServer::start(move |req, _| {
        if req.target.contains("/manifests/") {
            // ~300 bytes, 30 every 100 ms: about a second
            manifest_ok().trickle(30, Duration::from_millis(100))
        } else {
            // 16 pieces, one every 100 ms: 1.6 s
            Response::new(200)
                .body(body.clone())
                .trickle(250, Duration::from_millis(100))
        }
    })
    .await;
    let c = impatient(&srv.addr, 0, idle);
    let start = Instant::now();
    let got = c
        .get_manifest(&reference(&srv.addr, "a/b:t"))
        .await
        .unwrap();
    assert_eq!(got.bytes, MANIFEST);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");
    c.fetch_blob(&reference(&srv.addr, "a/b:t"), &desc, &dest)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), blob);
    // Five idle windows and more in all.
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(srv.requests().len(), 2, "one request each, none retried");
}

const DENIED: &str =
    r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#;

/// 401 (after the one re-authentication) and 403 are each one message naming the registry,
/// the operation and the status, with a `hint:` saying what to fix, for pulls and pushes.
#[tokio::test]
async fn unauthorized_and_forbidden_are_one_message_with_a_hint_for_pull_and_push() {
    let forbidden = FakeServer::start(|_, _| Response::new(403).body(DENIED)).await;
    let a = forbidden.addr.clone();
    let c = client(&a, Some(("u", "p")), 2);
    let pull = c
        .get_manifest(&reference(&a, "team/app:v1"))
        .await
        .unwrap_err();
    assert!(matches!(pull, RegistryError::Forbidden { .. }), "{pull:?}");
    assert_eq!(
        pull.to_string(),
        format!(
            "registry `{a}` refused to pull manifest `team/app`: 403 Forbidden: DENIED requested \
             access to the resource is denied\nhint: the credentials lack pull permission on \
             the repository `team/app`"
        )
    );
    let push = c
        .check_push_permission(&reference(&a, "team/app:v1"))
        .await
        .unwrap_err();
    assert_eq!(
        push.to_string(),
        format!(
            "registry `{a}` refused to push to `team/app`: 403 Forbidden: DENIED requested \
             access to the resource is denied\nhint: the credentials lack push permission on \
             the repository `team/app`"
        )
    );
    // A HEAD during a push asks for push permission too.
    let head = c
        .blob_exists(
            &reference(&a, "team/app:v1"),
            &image::sha256_digest(b"x"),
            Direction::Push,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(head.contains("lack push permission"), "{head}");
    // 403 is final: never retried.
    assert_eq!(forbidden.requests().len(), 3);

    let unauthorized = FakeServer::start(|_, _| {
        Response::new(401)
            .header("WWW-Authenticate", r#"Basic realm="r""#)
            .body(r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#)
    })
    .await;
    let a = unauthorized.addr.clone();
    let c = client(&a, Some(("u", "p")), 2);
    let hint = format!(
        "\nhint: check the credentials for `{a}` in config.json (docker login {a}) or the \
         credentials given to gantry"
    );
    let pull = c
        .get_manifest(&reference(&a, "team/app:v1"))
        .await
        .unwrap_err();
    assert_eq!(
        pull.to_string(),
        format!(
            "registry `{a}` refused to pull manifest `team/app`: 401 Unauthorized: \
             UNAUTHORIZED authentication required{hint}"
        )
    );
    let push = c
        .check_push_permission(&reference(&a, "team/app:v1"))
        .await
        .unwrap_err();
    assert_eq!(
        push.to_string(),
        format!(
            "registry `{a}` refused to push to `team/app`: 401 Unauthorized: UNAUTHORIZED \
             authentication required{hint}"
        )
    );
    // Each call: the anonymous try, then one with the credentials; no loop.
    let reqs = unauthorized.requests();
    assert_eq!(reqs.len(), 4);
    assert_eq!(reqs[1].headers["authorization"], "Basic dTpw");
}
