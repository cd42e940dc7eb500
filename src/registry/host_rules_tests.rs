//! Credentials and plain HTTP across hosts, checked against the in-process fakes: credentials
//! stay with the host they belong to through redirects, token realms and upload locations, and
//! nothing that left over HTTPS continues in plain HTTP to a host not marked insecure. Each test
//! is headed by the rule it pins.

use super::fake::{FakeServer, Response, TlsFakeServer};
use super::protocol_tests::{blob_of, client, client_with, manifest_ok, reference, MANIFEST};
use super::*;
use crate::image::{self, Descriptor};

/// An HTTPS client trusting the fake's CA, with `insecure` hosts allowed plain HTTP.
fn tls_client(tls: &TlsFakeServer, auth: Option<(&str, &str)>, insecure: &[&str]) -> Client {
    client_with(&tls.addr, auth, |o| {
        o.registry_certificates = vec![(tls.addr.clone(), tls.ca.clone())];
        o.insecure_registries = insecure.iter().map(|h| h.to_string()).collect();
    })
}

/// Credentials never cross hosts: a redirect to blob storage elsewhere drops `Authorization`.
#[tokio::test]
async fn redirect_to_another_host_drops_authorization() {
    let blob = b"blob bytes".to_vec();
    let digest = image::sha256_digest(&blob);
    let storage_blob = blob.clone();
    let storage =
        FakeServer::start(move |_, _| Response::new(200).body(storage_blob.clone())).await;
    let storage_addr = storage.addr.clone();
    let registry = FakeServer::start(move |req, _| {
        if !req.headers.contains_key("authorization") {
            return Response::new(401).header("WWW-Authenticate", r#"Basic realm="r""#);
        }
        Response::new(307).header("Location", &format!("http://{storage_addr}/storage/blob"))
    })
    .await;
    let c = client(&registry.addr, Some(("user", "secret")), 0);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");
    let desc = Descriptor::new(image::OCI_LAYER_GZIP, digest, blob.len() as u64);
    c.fetch_blob(&reference(&registry.addr, "a/b:t"), &desc, &dest)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), blob);
    let reg_reqs = registry.requests();
    assert_eq!(
        reg_reqs.last().unwrap().headers["authorization"],
        "Basic dXNlcjpzZWNyZXQ="
    );
    let st = storage.requests();
    assert_eq!(st.len(), 1);
    assert!(
        !st[0].headers.contains_key("authorization"),
        "{:?}",
        st[0].headers
    );
}

/// Credentials never cross hosts on the token path either: the registry's credentials go to the
/// token service it names (Docker's rule) and never to the registry itself, the token goes to
/// the registry only, and blob storage behind a redirect gets neither.
#[tokio::test]
async fn token_from_a_realm_on_another_host_stays_with_its_registry() {
    let (blob, desc) = blob_of(100);
    let storage_blob = blob.clone();
    let storage =
        FakeServer::start(move |_, _| Response::new(200).body(storage_blob.clone())).await;
    let tokens =
        FakeServer::start(|_, _| Response::new(200).body(r#"{"token":"reg-token"}"#)).await;
    let (storage_addr, realm) = (
        storage.addr.clone(),
        format!("http://{}/token", tokens.addr),
    );
    let registry = FakeServer::start(move |req, _| {
        match req.headers.get("authorization").map(String::as_str) {
            Some("Bearer reg-token") => Response::new(307).header(
                "Location",
                &format!("http://{storage_addr}/storage/blob?sig=x"),
            ),
            _ => Response::new(401).header(
                "WWW-Authenticate",
                &format!(r#"Bearer realm="{realm}",service="fake""#),
            ),
        }
    })
    .await;
    let c = client(&registry.addr, Some(("user", "secret")), 0);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");
    c.fetch_blob(&reference(&registry.addr, "a/b:t"), &desc, &dest)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), blob);
    let basic = "Basic dXNlcjpzZWNyZXQ=";
    let token_reqs = tokens.requests();
    assert_eq!(token_reqs.len(), 1);
    assert_eq!(token_reqs[0].headers["authorization"], basic);
    let reg_reqs = registry.requests();
    assert_eq!(reg_reqs.len(), 2);
    assert!(!reg_reqs[0].headers.contains_key("authorization"));
    assert_eq!(reg_reqs[1].headers["authorization"], "Bearer reg-token");
    let st = storage.requests();
    assert_eq!(st.len(), 1);
    assert!(
        !st[0].headers.contains_key("authorization"),
        "{:?}",
        st[0].headers
    );
    assert!(
        !st[0].headers.contains_key("referer"),
        "{:?}",
        st[0].headers
    );
}

/// An upload `Location` on another host (storage behind the registry) is used without the
/// registry's credentials.
#[tokio::test]
async fn upload_location_on_another_host_gets_no_credentials() {
    let storage = FakeServer::start(|_, _| Response::new(201)).await;
    let storage_addr = storage.addr.clone();
    let registry = FakeServer::start(move |req, _| {
        if !req.headers.contains_key("authorization") {
            return Response::new(401).header("WWW-Authenticate", r#"Basic realm="r""#);
        }
        match req.method.as_str() {
            "HEAD" => Response::new(404),
            "POST" => Response::new(202).header(
                "Location",
                &format!("http://{storage_addr}/upload/u1?_state=s"),
            ),
            "PUT" => Response::new(201),
            _ => Response::new(400),
        }
    })
    .await;
    let (blob, desc) = blob_of(1000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("layer");
    std::fs::write(&path, &blob).unwrap();
    let img = PushImage {
        manifest_bytes: MANIFEST.to_vec(),
        media_type: image::OCI_MANIFEST.into(),
        blobs: vec![PushBlob {
            descriptor: desc,
            source: BlobSource::File(path),
        }],
    };
    let c = client(&registry.addr, Some(("user", "secret")), 0);
    c.push_image(&reference(&registry.addr, "a/b:v1"), &img)
        .await
        .unwrap();
    let st = storage.requests();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].method, "PUT");
    assert_eq!(st[0].body, blob);
    assert!(
        !st[0].headers.contains_key("authorization"),
        "{:?}",
        st[0].headers
    );
    let reg = registry.requests();
    assert!(reg
        .iter()
        .filter(|r| r.method == "PUT")
        .all(|r| r.headers["authorization"] == "Basic dXNlcjpzZWNyZXQ="));
}

/// An HTTPS registry redirecting to plain HTTP is refused (nothing reaches the plain host, and
/// the message names the host to mark insecure, without the URL's query); marked insecure, the
/// same redirect is followed.
#[tokio::test]
async fn https_redirect_to_plain_http_is_refused_unless_the_target_is_insecure() {
    let (blob, desc) = blob_of(100);
    let storage_blob = blob.clone();
    let storage =
        FakeServer::start(move |_, _| Response::new(200).body(storage_blob.clone())).await;
    let storage_addr = storage.addr.clone();
    let tls = TlsFakeServer::start(move |req, _| {
        if !req.headers.contains_key("authorization") {
            return Response::new(401).header("WWW-Authenticate", r#"Basic realm="r""#);
        }
        Response::new(307).header(
            "Location",
            &format!("http://{storage_addr}/storage/blob?X-Signature=SECRETSIG"),
        )
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");
    let r = reference(&tls.addr, "a/b:t");
    let err = tls_client(&tls, Some(("user", "secret")), &[])
        .fetch_blob(&r, &desc, &dest)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Downgrade { .. }), "{err:?}");
    let msg = err.to_string();
    assert_eq!(
        msg,
        format!(
            "registry `{}` redirected to `http://{}/storage/blob` while trying to pull blob: \
             plain HTTP after HTTPS, refused so that nothing (credentials included) travels \
             unencrypted\nhint: if `{}` really serves only plain HTTP, allow it with \
             --insecure-registry={}",
            tls.addr, storage.addr, storage.addr, storage.addr
        )
    );
    assert!(storage.requests().is_empty());
    assert!(!dest.exists());
    // The HTTPS side did see the request, so it was the redirect that was refused.
    assert_eq!(tls.requests().len(), 2);

    tls_client(&tls, Some(("user", "secret")), &[&storage.addr])
        .fetch_blob(&r, &desc, &dest)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), blob);
    let st = storage.requests();
    assert_eq!(st.len(), 1);
    assert!(!st[0].headers.contains_key("authorization"));
}

/// An HTTPS registry naming a plain-HTTP token service would have its credentials sent in clear
/// text: refused before anything is sent there, unless that host is marked insecure.
#[tokio::test]
async fn plain_http_token_realm_of_an_https_registry_is_refused() {
    let tokens =
        FakeServer::start(|_, _| Response::new(200).body(r#"{"token":"tls-token"}"#)).await;
    let realm = format!("http://{}/token", tokens.addr);
    let tls = TlsFakeServer::start(move |req, _| {
        match req.headers.get("authorization").map(String::as_str) {
            Some("Bearer tls-token") => manifest_ok(),
            _ => Response::new(401).header(
                "WWW-Authenticate",
                &format!(r#"Bearer realm="{realm}",service="fake""#),
            ),
        }
    })
    .await;
    let r = reference(&tls.addr, "a/b:t");
    let err = tls_client(&tls, Some(("user", "secret")), &[])
        .get_manifest(&r)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Downgrade { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "registry `{}` named the token service `http://{}/token` while trying to pull \
             manifest: plain HTTP after HTTPS",
            tls.addr, tokens.addr
        )),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("--insecure-registry={}", tokens.addr)),
        "{msg}"
    );
    assert!(
        tokens.requests().is_empty(),
        "credentials went to the realm"
    );

    let got = tls_client(&tls, Some(("user", "secret")), &[&tokens.addr])
        .get_manifest(&r)
        .await
        .unwrap();
    assert_eq!(got.bytes, MANIFEST);
    assert_eq!(tokens.requests().len(), 1);
}

/// An HTTPS registry handing out a plain-HTTP upload `Location` does not get the blob, or the
/// manifest, sent in clear text.
#[tokio::test]
async fn plain_http_upload_location_of_an_https_registry_is_refused() {
    let plain = FakeServer::start(|_, _| Response::new(201)).await;
    let plain_addr = plain.addr.clone();
    let tls = TlsFakeServer::start(move |req, _| match req.method.as_str() {
        "HEAD" => Response::new(404),
        "POST" => Response::new(202).header(
            "Location",
            &format!("http://{plain_addr}/v2/a/b/blobs/uploads/u1"),
        ),
        _ => Response::new(201),
    })
    .await;
    let (blob, desc) = blob_of(1000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("layer");
    std::fs::write(&path, &blob).unwrap();
    let img = PushImage {
        manifest_bytes: MANIFEST.to_vec(),
        media_type: image::OCI_MANIFEST.into(),
        blobs: vec![PushBlob {
            descriptor: desc,
            source: BlobSource::File(path),
        }],
    };
    let err = tls_client(&tls, None, &[])
        .push_image(&reference(&tls.addr, "a/b:v1"), &img)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Downgrade { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!(
            "sent gantry to `http://{}/v2/a/b/blobs/uploads/u1` while trying to push blob",
            plain.addr
        )),
        "{err}"
    );
    assert!(plain.requests().is_empty());
    assert!(!tls
        .requests()
        .iter()
        .any(|r| r.target.contains("/manifests/")));
}

/// A 401 from storage behind a redirect is that host's business: it does not replace the
/// registry's own challenge, so the next call still uses the registry's token (and the
/// registry's Basic credentials are not sent to a Bearer registry).
#[tokio::test]
async fn challenge_from_storage_behind_a_redirect_is_not_learnt_for_the_registry() {
    let (_, desc) = blob_of(100);
    let storage = FakeServer::start(|_, _| {
        Response::new(401).header("WWW-Authenticate", r#"Basic realm="storage""#)
    })
    .await;
    let tokens =
        FakeServer::start(|_, _| Response::new(200).body(r#"{"token":"reg-token"}"#)).await;
    let (storage_addr, realm) = (
        storage.addr.clone(),
        format!("http://{}/token", tokens.addr),
    );
    let registry = FakeServer::start(move |req, _| {
        match req.headers.get("authorization").map(String::as_str) {
            Some("Bearer reg-token") if req.target.contains("/blobs/") => Response::new(307)
                .header("Location", &format!("http://{storage_addr}/storage/blob")),
            Some("Bearer reg-token") => manifest_ok(),
            _ => Response::new(401).header(
                "WWW-Authenticate",
                &format!(r#"Bearer realm="{realm}",service="fake""#),
            ),
        }
    })
    .await;
    let c = client(&registry.addr, Some(("user", "secret")), 0);
    let r = reference(&registry.addr, "a/b:t");
    // Learn the registry's challenge and get its token.
    c.get_manifest(&r).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = c
        .fetch_blob(&r, &desc, &dir.path().join("blob"))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    // storage was asked once: its 401 did not start a re-authentication
    assert_eq!(storage.requests().len(), 1);
    let before = registry.requests().len();
    let got = c.get_manifest(&r).await.unwrap();
    assert_eq!(got.bytes, MANIFEST);
    let after = registry.requests();
    assert_eq!(
        after.len(),
        before + 1,
        "the registry had to challenge again"
    );
    assert_eq!(after[before].headers["authorization"], "Bearer reg-token");
    assert!(after
        .iter()
        .all(|r| r.headers.get("authorization").map(String::as_str)
            != Some("Basic dXNlcjpzZWNyZXQ=")));
    assert_eq!(tokens.requests().len(), 1);
}
