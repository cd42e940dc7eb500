//! The registry module against real registries (distribution 2.8): push, pull back, compare with
//! what skopeo sees, mount across repositories, and the errors users meet (bad password, nothing
//! listening, unknown tag, no image for the platform).

use std::path::{Path, PathBuf};
use std::process::Command;

use gantry::image::{
    self, canonical_json, sha256_digest, Descriptor, ImageConfig, Index, Manifest, Platform, RootFs,
};
use gantry::registry::{
    BlobSource, Client, Credential, Direction, PushBlob, PushImage, Reference, RegistryError,
    RegistryOptions,
};

use crate::harness::registry::{TestRegistry, PASSWORD, REFRESH_TOKEN, USERNAME};

/// A one-layer image written to `dir`: the push description plus the files behind it.
struct TestImage {
    push: PushImage,
    manifest: Manifest,
    config_bytes: Vec<u8>,
    layer_path: PathBuf,
    layer: Descriptor,
}

fn make_image(dir: &Path, arch: &str, content: &str) -> TestImage {
    use std::io::Write;
    let mut tar_bytes = Vec::new();
    {
        let mut b = tar::Builder::new(&mut tar_bytes);
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, "hello.txt", content.as_bytes())
            .unwrap();
        b.finish().unwrap();
    }
    let diff_id = sha256_digest(&tar_bytes);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar_bytes).unwrap();
    let layer_bytes = gz.finish().unwrap();
    let layer = Descriptor::new(
        image::OCI_LAYER_GZIP,
        sha256_digest(&layer_bytes),
        layer_bytes.len() as u64,
    );
    let layer_path = dir.join(format!("layer-{arch}.tar.gz"));
    std::fs::write(&layer_path, &layer_bytes).unwrap();
    let config = ImageConfig {
        architecture: arch.to_string(),
        os: "linux".into(),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![diff_id],
        },
        ..Default::default()
    };
    let config_bytes = canonical_json(&config);
    let config_desc = Descriptor::new(
        image::OCI_CONFIG,
        sha256_digest(&config_bytes),
        config_bytes.len() as u64,
    );
    let config_path = dir.join(format!("config-{arch}.json"));
    std::fs::write(&config_path, &config_bytes).unwrap();
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(image::OCI_MANIFEST.into()),
        config: config_desc.clone(),
        layers: vec![layer.clone()],
        annotations: Default::default(),
    };
    let push = PushImage {
        manifest_bytes: canonical_json(&manifest),
        media_type: image::OCI_MANIFEST.into(),
        blobs: vec![
            PushBlob {
                descriptor: config_desc,
                source: BlobSource::File(config_path),
            },
            PushBlob {
                descriptor: layer.clone(),
                source: BlobSource::File(layer_path.clone()),
            },
        ],
    };
    TestImage {
        push,
        manifest,
        config_bytes,
        layer_path,
        layer,
    }
}

fn options_for(reg: &TestRegistry) -> RegistryOptions {
    let mut opts = RegistryOptions {
        docker_config: Some(reg.docker_config_dir()),
        ..Default::default()
    };
    match &reg.ca_pem {
        Some(ca) => opts
            .registry_certificates
            .push((reg.addr.clone(), ca.clone())),
        None => opts.insecure_registries.push(reg.addr.clone()),
    }
    opts
}

fn client_for(reg: &TestRegistry) -> Client {
    Client::new(options_for(reg)).unwrap()
}

fn skopeo_raw(reg: &TestRegistry, reference: &str) -> Vec<u8> {
    let mut cmd = Command::new("skopeo");
    cmd.args(["inspect", "--raw"]);
    let certs = tempfile::tempdir().unwrap();
    match &reg.ca_pem {
        Some(ca) => {
            std::fs::copy(ca, certs.path().join("ca.crt")).unwrap();
            cmd.arg("--cert-dir").arg(certs.path());
        }
        None => {
            cmd.arg("--tls-verify=false");
        }
    }
    if let (Some(u), Some(p)) = (&reg.username, &reg.password) {
        cmd.arg("--creds").arg(format!("{u}:{p}"));
    }
    cmd.arg(format!("docker://{}/{reference}", reg.addr));
    let out = cmd.output().expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo failed: {}\nregistry log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        reg.log()
    );
    out.stdout
}

/// Push, pull back, fetch the layer, and check skopeo sees the same manifest bytes.
async fn round_trip(reg: &TestRegistry) {
    let dir = tempfile::tempdir().unwrap();
    let img = make_image(dir.path(), "amd64", "hello from gantry\n");
    let client = client_for(reg);
    let dest = Reference::parse(&format!("{}/test/app:v1", reg.addr)).unwrap();
    client.check_push_permission(&dest).await.unwrap();
    let digest = client.push_image(&dest, &img.push).await.unwrap();
    assert_eq!(digest, sha256_digest(&img.push.manifest_bytes));

    let resolved = client
        .resolve_image(&dest, &Platform::parse("linux/amd64").unwrap())
        .await
        .unwrap();
    assert_eq!(resolved.digest, digest);
    assert_eq!(resolved.manifest_bytes, img.push.manifest_bytes);
    assert_eq!(resolved.manifest, img.manifest);
    assert_eq!(resolved.media_type, image::OCI_MANIFEST);
    assert_eq!(resolved.config_bytes, img.config_bytes);
    assert_eq!(resolved.config.architecture, "amd64");
    assert_eq!(resolved.reference.digest.as_deref(), Some(digest.as_str()));

    let out = dir.path().join("pulled-layer");
    client
        .fetch_blob(&resolved.reference, &img.layer, &out)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&img.layer_path).unwrap()
    );
    assert!(!dir.path().join("pulled-layer.tmp").exists());

    assert_eq!(skopeo_raw(reg, "test/app:v1"), img.push.manifest_bytes);
    // A second push finds every blob present (HEAD) and gives the same digest.
    assert_eq!(client.push_image(&dest, &img.push).await.unwrap(), digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_registry_push_pull_round_trip() {
    let reg = TestRegistry::plain();
    round_trip(&reg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_basic_registry_push_pull_round_trip() {
    let reg = TestRegistry::tls_basic();
    round_trip(&reg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_registry_push_pull_round_trip() {
    let reg = TestRegistry::token();
    round_trip(&reg).await;
    let log = reg.token_log.lock().unwrap().clone();
    assert!(
        log.iter().any(|l| l == "GET repository:test/app:pull,push"),
        "token requests: {log:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_repository_mount_on_plain_registry() {
    let reg = TestRegistry::plain();
    let dir = tempfile::tempdir().unwrap();
    let img = make_image(dir.path(), "amd64", "mount me\n");
    let client = client_for(&reg);
    let one = Reference::parse(&format!("{}/mount/one:v1", reg.addr)).unwrap();
    let two = Reference::parse(&format!("{}/mount/two:v1", reg.addr)).unwrap();
    client.push_image(&one, &img.push).await.unwrap();
    assert!(!client
        .blob_exists(&two, &img.layer.digest, Direction::Pull)
        .await
        .unwrap());
    // The registry mounts it (201), so nothing is uploaded.
    assert!(client.mount(&two, &one, &img.layer.digest).await.unwrap());
    assert!(client
        .blob_exists(&two, &img.layer.digest, Direction::Pull)
        .await
        .unwrap());
    // A mount from a repository without the blob is declined (202), not an error.
    let three = Reference::parse(&format!("{}/mount/three:v1", reg.addr)).unwrap();
    let missing = format!("sha256:{}", "0".repeat(64));
    assert!(!client.mount(&three, &one, &missing).await.unwrap());

    // push_image with Remote sources: mounts the layer, then the manifest goes in.
    let mut remote = img.push.clone();
    for b in &mut remote.blobs {
        b.source = BlobSource::Remote(one.clone());
    }
    let three_digest = client.push_image(&three, &remote).await.unwrap();
    assert_eq!(three_digest, sha256_digest(&img.push.manifest_bytes));
    assert!(client
        .blob_exists(&three, &img.layer.digest, Direction::Pull)
        .await
        .unwrap());
    assert_eq!(skopeo_raw(&reg, "mount/three:v1"), img.push.manifest_bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_mount_asks_for_both_scopes() {
    let reg = TestRegistry::token();
    let dir = tempfile::tempdir().unwrap();
    let img = make_image(dir.path(), "amd64", "scoped\n");
    let client = client_for(&reg);
    let one = Reference::parse(&format!("{}/src/one:v1", reg.addr)).unwrap();
    let two = Reference::parse(&format!("{}/dst/two:v1", reg.addr)).unwrap();
    client.push_image(&one, &img.push).await.unwrap();
    assert!(client.mount(&two, &one, &img.layer.digest).await.unwrap());
    let log = reg.token_log.lock().unwrap().clone();
    assert!(
        log.iter()
            .any(|l| l == "GET repository:dst/two:pull,push repository:src/one:pull"),
        "token requests: {log:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_token_is_exchanged_with_a_refresh_grant() {
    let reg = TestRegistry::token();
    let mut opts = options_for(&reg);
    opts.extra_credentials = vec![(
        reg.addr.clone(),
        Credential::IdentityToken(REFRESH_TOKEN.into()),
    )];
    let client = Client::new(opts).unwrap();
    let dest = Reference::parse(&format!("{}/idtok/app:v1", reg.addr)).unwrap();
    client.check_push_permission(&dest).await.unwrap();
    let log = reg.token_log.lock().unwrap().clone();
    assert!(
        log.iter()
            .any(|l| l == "POST repository:idtok/app:pull,push"),
        "{log:?}"
    );
}

async fn push_with_wrong_password(reg: &TestRegistry) -> String {
    let mut opts = options_for(reg);
    opts.extra_credentials = vec![(
        reg.addr.clone(),
        Credential::Basic {
            username: USERNAME.into(),
            password: format!("not-{PASSWORD}"),
        },
    )];
    let client = Client::new(opts).unwrap();
    let dest = Reference::parse(&format!("{}/test/app:v1", reg.addr)).unwrap();
    let err = client.check_push_permission(&dest).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(!msg.contains(PASSWORD), "{msg}");
    msg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_a_401_with_a_hint() {
    let reg = TestRegistry::tls_basic();
    let msg = push_with_wrong_password(&reg).await;
    assert!(msg.contains("401"), "{msg}");
    assert!(msg.contains(&format!("`{}`", reg.addr)), "{msg}");
    assert!(msg.contains("hint: check the credentials"), "{msg}");
    let reg = TestRegistry::token();
    let msg = push_with_wrong_password(&reg).await;
    assert!(
        msg.contains("401") && msg.contains("hint: check the credentials"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_push_to_basic_registry_is_refused() {
    let reg = TestRegistry::tls_basic();
    let mut opts = options_for(&reg);
    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("config.json"), "{}").unwrap();
    opts.docker_config = Some(empty.path().to_path_buf());
    let client = Client::new(opts).unwrap();
    let dest = Reference::parse(&format!("{}/test/app:v1", reg.addr)).unwrap();
    let err = client.get_manifest(&dest).await.unwrap_err().to_string();
    assert!(
        err.contains("401") && err.contains("pull manifest"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_registry_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let cfg = tempfile::tempdir().unwrap();
    // an explicit docker config must exist
    let missing = Client::new(RegistryOptions {
        docker_config: Some(cfg.path().join("missing.json")),
        ..Default::default()
    });
    let msg = missing
        .err()
        .expect("missing config is an error")
        .to_string();
    assert!(msg.contains("missing.json"), "{msg}");
    std::fs::write(cfg.path().join("config.json"), "{}").unwrap();
    let client = Client::new(RegistryOptions {
        insecure_registries: vec![addr.clone()],
        pull_retry: 1,
        docker_config: Some(cfg.path().to_path_buf()),
        ..Default::default()
    })
    .unwrap();
    let r = Reference::parse(&format!("{addr}/nothing/here:v1")).unwrap();
    let err = client.get_manifest(&r).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("cannot reach registry `{addr}` to pull manifest")),
        "{msg}"
    );
    assert!(
        msg.contains("hint:") && msg.contains("--insecure-registry"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_registry_without_its_ca_is_unreachable_with_tls_hint() {
    let reg = TestRegistry::tls_basic();
    let mut opts = options_for(&reg);
    opts.registry_certificates.clear();
    let client = Client::new(opts).unwrap();
    let r = Reference::parse(&format!("{}/test/app:v1", reg.addr)).unwrap();
    let msg = client.get_manifest(&r).await.unwrap_err().to_string();
    assert!(
        msg.contains("cannot reach registry") && msg.contains("--registry-certificate"),
        "{msg}"
    );
    // skip-verify for that host gets through TLS (and then needs credentials it has).
    let mut opts = options_for(&reg);
    opts.registry_certificates.clear();
    opts.skip_tls_verify_registries.push(reg.addr.clone());
    let client = Client::new(opts).unwrap();
    let err = client.get_manifest(&r).await.unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tag_is_not_found_with_a_hint() {
    let reg = TestRegistry::plain();
    let client = client_for(&reg);
    let r = Reference::parse(&format!("{}/no/such:tag", reg.addr)).unwrap();
    let err = client.get_manifest(&r).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err:?}");
    assert!(
        msg.contains("manifest `tag`") && msg.contains("hint: check that the name and tag exist"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_resolves_to_the_requested_platform() {
    let reg = TestRegistry::plain();
    let dir = tempfile::tempdir().unwrap();
    let client = client_for(&reg);
    let base = format!("{}/multi/app", reg.addr);
    let mut entries = Vec::new();
    let mut digests = Vec::new();
    for (arch, variant) in [("amd64", None), ("arm64", Some("v8"))] {
        let img = make_image(dir.path(), arch, &format!("{arch} content\n"));
        let r = Reference::parse(&format!("{base}:{arch}")).unwrap();
        let digest = client.push_image(&r, &img.push).await.unwrap();
        let mut d = Descriptor::new(
            image::OCI_MANIFEST,
            digest.clone(),
            img.push.manifest_bytes.len() as u64,
        );
        d.platform = Some(Platform {
            architecture: arch.into(),
            os: "linux".into(),
            variant: variant.map(str::to_string),
            ..Default::default()
        });
        entries.push(d);
        digests.push(digest);
    }
    let index = Index {
        schema_version: 2,
        media_type: Some(image::OCI_INDEX.into()),
        manifests: entries,
        annotations: Default::default(),
    };
    let index_bytes = canonical_json(&index);
    let tagged = Reference::parse(&format!("{base}:multi")).unwrap();
    let index_digest = client
        .put_manifest(&tagged, &index_bytes, image::OCI_INDEX)
        .await
        .unwrap();
    assert_eq!(index_digest, sha256_digest(&index_bytes));

    let fetched = client.get_manifest(&tagged).await.unwrap();
    assert_eq!(fetched.bytes, index_bytes);
    assert_eq!(fetched.media_type, image::OCI_INDEX);

    let arm = client
        .resolve_image(&tagged, &Platform::parse("linux/arm64").unwrap())
        .await
        .unwrap();
    assert_eq!(arm.digest, digests[1]);
    assert_eq!(arm.config.architecture, "arm64");
    let amd = client
        .resolve_image(&tagged, &Platform::parse("linux/amd64").unwrap())
        .await
        .unwrap();
    assert_eq!(amd.digest, digests[0]);

    let err = client
        .resolve_image(&tagged, &Platform::parse("linux/s390x").unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("available: linux/amd64, linux/arm64/v8"),
        "{err}"
    );
    assert!(
        err.contains("hint:") && err.contains("--custom-platform"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_map_falls_back_to_the_original() {
    let reg = TestRegistry::plain();
    let dir = tempfile::tempdir().unwrap();
    let img = make_image(dir.path(), "amd64", "mapped\n");
    let pushed = client_for(&reg);
    let dest = Reference::parse(&format!("{}/team/app:v1", reg.addr)).unwrap();
    pushed.push_image(&dest, &img.push).await.unwrap();
    // The map points at a prefix that does not exist there: the original serves the pull.
    let mut opts = options_for(&reg);
    opts.registry_maps = vec![(reg.addr.clone(), format!("{}/mirror-prefix", reg.addr))];
    let client = Client::new(opts.clone()).unwrap();
    let got = client
        .resolve_image(&dest, &Platform::parse("linux/amd64").unwrap())
        .await
        .unwrap();
    assert_eq!(got.reference.repository, "team/app");
    // Mapped onto a prefix that has it: pulled from there.
    let mirrored = Reference::parse(&format!("{}/mirror-prefix/team/app:v1", reg.addr)).unwrap();
    pushed.push_image(&mirrored, &img.push).await.unwrap();
    let got = client
        .resolve_image(&dest, &Platform::parse("linux/amd64").unwrap())
        .await
        .unwrap();
    assert_eq!(got.reference.repository, "mirror-prefix/team/app");
    // Without fallback, a failing map is the error.
    opts.registry_maps = vec![(reg.addr.clone(), format!("{}/nowhere", reg.addr))];
    opts.skip_default_registry_fallback = true;
    let client = Client::new(opts).unwrap();
    let err = client
        .resolve_image(&dest, &Platform::parse("linux/amd64").unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::NotFound { ref repository, .. } if repository == "nowhere/team/app"),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_blob_on_another_registry_is_spooled_and_uploaded() {
    let src = TestRegistry::plain();
    let dst = TestRegistry::plain();
    let dir = tempfile::tempdir().unwrap();
    let img = make_image(dir.path(), "amd64", "cross registry\n");
    let mut opts = options_for(&src);
    opts.insecure_registries.push(dst.addr.clone());
    let client = Client::new(opts).unwrap();
    let from = Reference::parse(&format!("{}/base/img:v1", src.addr)).unwrap();
    client.push_image(&from, &img.push).await.unwrap();
    let mut remote = img.push.clone();
    for b in &mut remote.blobs {
        b.source = BlobSource::Remote(from.clone());
    }
    let dest = Reference::parse(&format!("{}/copied/img:v1", dst.addr)).unwrap();
    let digest = client.push_image(&dest, &remote).await.unwrap();
    assert_eq!(digest, sha256_digest(&img.push.manifest_bytes));
    let out = dir.path().join("copied-layer");
    client.fetch_blob(&dest, &img.layer, &out).await.unwrap();
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&img.layer_path).unwrap()
    );
    assert_eq!(skopeo_raw(&dst, "copied/img:v1"), img.push.manifest_bytes);
}
