//! Bucket contexts: `s3://` against moto (with its IAM signature check switched on where
//! credentials matter), `gs://` against gcp-storage-emulator (behind a token endpoint and bearer
//! check for service-account keys), Azure Blob against Azurite (which checks SharedKey
//! signatures itself).

use std::path::Path;

use super::*;
use crate::harness::servers;

/// The reference directory, its digest, its digest with `--context-sub-path other`, and a
/// gzip tar of it.
fn reference_archive(tmp: &Path) -> (String, String, PathBuf) {
    let (dir, want) = reference(tmp);
    let sub = sub_path_reference(tmp, &dir);
    let archive = tmp.join("ctx.tar.gz");
    tar_gz(&dir, &archive);
    (want, sub, archive)
}

/// Puts `archive` at `s3://ctx-bucket/builds/ctx.tar.gz` in moto (unsigned, before auth is on).
fn moto_with_context(tmp: &Path, archive: &Path) -> (servers::Server, String) {
    let moto = servers::moto(tmp);
    let ep = format!("http://{}", moto.addr());
    http("PUT", &format!("{ep}/ctx-bucket"), &[], None);
    http(
        "PUT",
        &format!("{ep}/ctx-bucket/builds/ctx.tar.gz"),
        &[],
        Some(archive),
    );
    (moto, ep)
}

/// No AWS variable of the machine's environment reaches the build (empty means unset).
const NO_AWS_ENV: [(&str, &str); 7] = [
    ("AWS_ACCESS_KEY_ID", ""),
    ("AWS_SECRET_ACCESS_KEY", ""),
    ("AWS_SESSION_TOKEN", ""),
    ("AWS_PROFILE", ""),
    ("AWS_REGION", ""),
    ("AWS_DEFAULT_REGION", ""),
    ("AWS_SHARED_CREDENTIALS_FILE", ""),
];

#[test]
fn s3_context_from_moto_builds_the_directory_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (want, sub, archive) = reference_archive(t);
    let (_moto, ep) = moto_with_context(t, &archive);
    let env = [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("S3_ENDPOINT", ep.as_str()),
        ("S3_FORCE_PATH_STYLE", "true"),
    ];
    let ctx = "s3://ctx-bucket/builds/ctx.tar.gz";
    assert_eq!(digest_of(build(t, "s3", ctx, &[], &env)), want);
    assert_eq!(
        digest_of(build(t, "s3", ctx, &["--context-sub-path", "other"], &env)),
        sub
    );

    let none = "s3://ctx-bucket/none.tar.gz";
    let e = one_error(build(t, "s3", none, &[], &env), none);
    assert!(
        e.contains(": the object does not exist (the server answered 404)\n"),
        "{e}"
    );
    let no_bucket = "s3://no-bucket/ctx.tar.gz";
    let e = one_error(build(t, "s3", no_bucket, &[], &env), no_bucket);
    assert!(
        e.contains(": the bucket does not exist (the server answered 404)\n"),
        "{e}"
    );
    let mut no_creds = NO_AWS_ENV.to_vec();
    no_creds.push(("HOME", "/nonexistent"));
    let e = one_error(
        build(t, "s3", "s3://b/k.tar.gz", &[], &no_creds),
        "s3://b/k.tar.gz",
    );
    assert!(e.contains("no AWS credentials found"), "{e}");
    let port = servers::closed_port();
    let closed = format!("http://127.0.0.1:{port}");
    let unreachable = [env[0], env[1], env[2], ("S3_ENDPOINT", &closed), env[4]];
    let e = one_error(
        build(t, "s3", "s3://b/k.tar.gz", &[], &unreachable),
        "s3://b/k.tar.gz",
    );
    assert!(e.contains(&format!(": cannot reach `{closed}`: ")), "{e}");
    // S3_FORCE_PATH_STYLE is a Go boolean, as kaniko reads it: `1` works, `yes` is refused.
    let go_true = [env[0], env[1], env[2], env[3], ("S3_FORCE_PATH_STYLE", "1")];
    assert_eq!(digest_of(build(t, "s3", ctx, &[], &go_true)), want);
    let bad = [
        env[0],
        env[1],
        env[2],
        env[3],
        ("S3_FORCE_PATH_STYLE", "yes"),
    ];
    let e = one_error(build(t, "s3", ctx, &[], &bad), ctx);
    assert!(
        e.contains("S3_FORCE_PATH_STYLE: `yes` is not a boolean"),
        "{e}"
    );
}

/// The region and access key id of the signed GETs of `key` that moto recorded, in order.
fn signed_gets(tmp: &Path, key: &str) -> Vec<(String, String)> {
    servers::moto_requests(tmp)
        .iter()
        .filter(|r| r["method"] == "GET" && r["url"].as_str().is_some_and(|u| u.ends_with(key)))
        .map(|r| {
            let auth = r["headers"]["Authorization"].as_str().unwrap_or_default();
            let scope = auth
                .split("Credential=")
                .nth(1)
                .and_then(|c| c.split(',').next())
                .unwrap_or_default();
            let parts: Vec<&str> = scope.split('/').collect();
            assert_eq!(parts.len(), 5, "{auth}");
            (parts[2].to_string(), parts[0].to_string())
        })
        .collect()
}

#[test]
fn s3_credentials_come_from_the_environment_or_the_shared_files_and_wrong_ones_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (want, _, archive) = reference_archive(t);
    let (moto, ep) = moto_with_context(t, &archive);
    let (id, secret) = servers::moto_iam_user(&moto);
    servers::moto_enforce_auth(&moto);
    let ctx = "s3://ctx-bucket/builds/ctx.tar.gz";
    let endpoint = [
        ("S3_ENDPOINT", ep.as_str()),
        ("S3_FORCE_PATH_STYLE", "true"),
    ];
    let with = |pairs: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        NO_AWS_ENV
            .iter()
            .chain(endpoint.iter())
            .map(|(k, v)| (*k, v.to_string()))
            .chain(pairs.iter().map(|(k, v)| (*k, v.to_string())))
            .collect()
    };
    let s3 = |envs: &[(&'static str, String)]| {
        let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        build(t, "s3", ctx, &[], &envs)
    };

    // From the environment: the right key builds; a wrong secret or an unknown key id is
    // rejected by moto's signature check, and the message says so without the secret.
    let good = with(&[
        ("AWS_ACCESS_KEY_ID", &id),
        ("AWS_SECRET_ACCESS_KEY", &secret),
    ]);
    assert_eq!(digest_of(s3(&good)), want);
    let wrong_secret = "wrongSecretKeyForTheGantryTests0123456789";
    let e = one_error(
        s3(&with(&[
            ("AWS_ACCESS_KEY_ID", &id),
            ("AWS_SECRET_ACCESS_KEY", wrong_secret),
        ])),
        ctx,
    );
    assert!(
        e.contains(
            ": the credentials were rejected (the server answered 403: SignatureDoesNotMatch)\n"
        ),
        "{e}"
    );
    assert!(
        e.contains("hint: check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"),
        "{e}"
    );
    assert!(!e.contains(wrong_secret) && !e.contains(&secret), "{e}");
    let e = one_error(
        s3(&with(&[
            ("AWS_ACCESS_KEY_ID", "AKIANOSUCHKEY0000000"),
            ("AWS_SECRET_ACCESS_KEY", &secret),
        ])),
        ctx,
    );
    assert!(
        e.contains(
            ": the credentials were rejected (the server answered 403: InvalidAccessKeyId)\n"
        ),
        "{e}"
    );

    // From ~/.aws: the default profile has a wrong secret, profile `ci` the right key; the
    // region comes from the profile's section of ~/.aws/config unless AWS_REGION is set.
    let home = t.join("aws-home");
    write_files(
        &home,
        &[
            (
                ".aws/credentials",
                &format!(
                    "[default]\naws_access_key_id = {id}\naws_secret_access_key = {wrong_secret}\n\n\
                     [ci]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n"
                ),
            ),
            (
                ".aws/config",
                "[default]\nregion = ap-south-1\n\n[profile ci]\nregion = eu-west-2\n",
            ),
        ],
    );
    let home_arg = home.display().to_string();
    let before = signed_gets(t, "builds/ctx.tar.gz").len();
    let e = one_error(s3(&with(&[("HOME", &home_arg)])), ctx);
    assert!(
        e.contains(": the credentials were rejected (the server answered 403"),
        "{e}"
    );
    assert_eq!(
        digest_of(s3(&with(&[("HOME", &home_arg), ("AWS_PROFILE", "ci")]))),
        want
    );
    assert_eq!(
        digest_of(s3(&with(&[
            ("HOME", &home_arg),
            ("AWS_PROFILE", "ci"),
            ("AWS_REGION", "us-west-1"),
        ]))),
        want
    );
    // AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE name the files instead.
    let elsewhere = t.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::rename(home.join(".aws/credentials"), elsewhere.join("creds")).unwrap();
    std::fs::rename(home.join(".aws/config"), elsewhere.join("conf")).unwrap();
    let creds_file = elsewhere.join("creds").display().to_string();
    let conf_file = elsewhere.join("conf").display().to_string();
    assert_eq!(
        digest_of(s3(&with(&[
            ("HOME", &home_arg),
            ("AWS_PROFILE", "ci"),
            ("AWS_SHARED_CREDENTIALS_FILE", &creds_file),
            ("AWS_CONFIG_FILE", &conf_file),
        ]))),
        want
    );
    let gets = signed_gets(t, "builds/ctx.tar.gz");
    let key = |r: &str| (r.to_string(), id.clone());
    assert_eq!(
        gets[before..],
        [
            key("ap-south-1"),
            key("eu-west-2"),
            key("us-west-1"),
            key("eu-west-2")
        ],
        "regions and key ids of the signed requests moto received"
    );
}

/// Creates `ctx-bucket` in the emulator and puts `archive` at `builds/ctx.tar.gz`.
fn gcs_with_context(tmp: &Path, archive: &Path) -> servers::Server {
    let gcs = servers::gcs_emulator(tmp);
    let ep = format!("http://{}", gcs.addr());
    http(
        "POST",
        &format!("{ep}/storage/v1/b?project=test"),
        &[("content-type", "application/json")],
        Some(&write_tmp(tmp, "bucket.json", r#"{"name":"ctx-bucket"}"#)),
    );
    http(
        "POST",
        &format!("{ep}/upload/storage/v1/b/ctx-bucket/o?uploadType=media&name=builds/ctx.tar.gz"),
        &[("content-type", "application/gzip")],
        Some(archive),
    );
    gcs
}

#[test]
fn gcs_context_from_the_emulator_builds_the_directory_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (want, sub, archive) = reference_archive(t);
    let gcs = gcs_with_context(t, &archive);
    let addr = gcs.addr();
    let env = [("STORAGE_EMULATOR_HOST", addr.as_str())];
    let ctx = "gs://ctx-bucket/builds/ctx.tar.gz";
    assert_eq!(digest_of(build(t, "gcs", ctx, &[], &env)), want);
    assert_eq!(
        digest_of(build(t, "gcs", ctx, &["--context-sub-path", "other"], &env)),
        sub
    );
    let none = "gs://ctx-bucket/none.tar.gz";
    let e = one_error(build(t, "gcs", none, &[], &env), none);
    assert!(
        e.contains(": the object does not exist (the server answered 404)\n"),
        "{e}"
    );
    let no_bucket = "gs://no-bucket/ctx.tar.gz";
    let e = one_error(build(t, "gcs", no_bucket, &[], &env), no_bucket);
    assert!(
        e.contains(": the bucket does not exist (the server answered 404)\n"),
        "{e}"
    );
    let closed = format!("127.0.0.1:{}", servers::closed_port());
    let e = one_error(
        build(t, "gcs", ctx, &[], &[("STORAGE_EMULATOR_HOST", &closed)]),
        ctx,
    );
    assert!(
        e.contains(&format!(": cannot reach `http://{closed}`: ")),
        "{e}"
    );

    let creds = write_tmp(t, "sa.json", "{\"type\":\"service_account\",\"client_email\":\"a@b\",\"private_key\":\"-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----\\n\"}");
    let creds = creds.display().to_string();
    let bad = [env[0], ("GOOGLE_APPLICATION_CREDENTIALS", &creds)];
    let e = one_error(build(t, "gcs", ctx, &[], &bad), ctx);
    assert!(e.contains("not a PKCS#8 RSA key"), "{e}");
}

#[test]
fn gcs_service_account_keys_are_exchanged_for_a_bearer_token() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (want, _, archive) = reference_archive(t);
    let gcs = gcs_with_context(t, &archive);
    let account = servers::gcs_auth_front(t, &gcs.addr());
    let front = account.server.addr();
    let ctx = "gs://ctx-bucket/builds/ctx.tar.gz";
    let key_file = account.key_file.display().to_string();
    let env = [
        ("STORAGE_EMULATOR_HOST", front.as_str()),
        ("GOOGLE_APPLICATION_CREDENTIALS", key_file.as_str()),
    ];
    assert_eq!(digest_of(build(t, "gcs", ctx, &[], &env)), want);
    let log = account.server.log();
    assert!(log.contains("token issued to ctx-reader@"), "{log}");
    assert!(
        log.contains("GET /storage/v1/b/ctx-bucket/o/builds%2Fctx.tar.gz?alt=media with an issued bearer token"),
        "{log}"
    );
    assert!(!log.contains("refused"), "{log}");

    // Signed with another key: the token endpoint refuses the assertion.
    let wrong = account.wrong_key_file.display().to_string();
    let e = one_error(
        build(
            t,
            "gcs",
            ctx,
            &[],
            &[env[0], ("GOOGLE_APPLICATION_CREDENTIALS", &wrong)],
        ),
        ctx,
    );
    assert!(
        e.contains(": the credentials were rejected (the server answered 400: invalid_grant: Invalid JWT Signature.)\n"),
        "{e}"
    );
    assert!(
        e.contains("hint: check that GOOGLE_APPLICATION_CREDENTIALS"),
        "{e}"
    );
    assert!(account
        .server
        .log()
        .contains("token refused: InvalidSignature"));
    // Without credentials the request is anonymous, and the bucket refuses it.
    let e = one_error(build(t, "gcs", ctx, &[], &[env[0]]), ctx);
    assert!(
        e.contains(": access denied (the server answered 401: "),
        "{e}"
    );
    // An unreachable token endpoint is named.
    let mut key: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&account.key_file).unwrap()).unwrap();
    let closed = format!("http://127.0.0.1:{}/token", servers::closed_port());
    key["token_uri"] = closed.clone().into();
    let moved = write_tmp(t, "sa-moved.json", &key.to_string());
    let moved = moved.display().to_string();
    let e = one_error(
        build(
            t,
            "gcs",
            ctx,
            &[],
            &[env[0], ("GOOGLE_APPLICATION_CREDENTIALS", &moved)],
        ),
        ctx,
    );
    assert!(e.contains(&format!(": cannot reach `{closed}`: ")), "{e}");
}

/// Azurite's documented development account and key.
pub(super) const AZ_ACCOUNT: &str = "devstoreaccount1";
pub(super) const AZ_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A SharedKey-signed PUT to Azurite (which checks the signature); `resource` is the canonical
/// resource after the account, with any query parameters on their own lines.
fn azurite_put(url: &str, resource: &str, body: Option<&Path>) {
    use gantry::context::source::azure::{ms_date, shared_key};
    let date = ms_date();
    let len = body
        .map(|b| std::fs::metadata(b).unwrap().len().to_string())
        .unwrap_or_default();
    let (blob_type, ctype) = if body.is_some() {
        ("BlockBlob", "application/octet-stream")
    } else {
        ("", "")
    };
    let mut ms = vec![("x-ms-date", date.as_str()), ("x-ms-version", "2021-08-06")];
    if !blob_type.is_empty() {
        ms.push(("x-ms-blob-type", blob_type));
    }
    let auth = shared_key("PUT", AZ_ACCOUNT, AZ_KEY, resource, &ms, &len, ctype).unwrap();
    let mut headers: Vec<(&str, &str)> = ms.clone();
    headers.push(("Authorization", &auth));
    if body.is_some() {
        headers.push(("Content-Type", ctype));
    } else {
        headers.push(("Content-Length", "0"));
    }
    http("PUT", url, &headers, body);
}

/// Starts Azurite with the container `ctx` holding `archive` at `builds/ctx.tar.gz`; returns
/// the server and its blob endpoint (`http://127.0.0.1:PORT/devstoreaccount1`).
pub(super) fn azurite_with_context(tmp: &Path, archive: &Path) -> (servers::Server, String) {
    let az = servers::azurite(tmp);
    let ep = format!("http://{}/{AZ_ACCOUNT}", az.addr());
    azurite_put(
        &format!("{ep}/ctx?restype=container"),
        &format!("/{AZ_ACCOUNT}/ctx\nrestype:container"),
        None,
    );
    azurite_put(
        &format!("{ep}/ctx/builds/ctx.tar.gz"),
        &format!("/{AZ_ACCOUNT}/ctx/builds/ctx.tar.gz"),
        Some(archive),
    );
    (az, ep)
}

#[test]
fn azure_context_from_azurite_builds_the_directory_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (want, sub, archive) = reference_archive(t);
    let (_az, ep) = azurite_with_context(t, &archive);
    let conn = format!(
        "DefaultEndpointsProtocol=http;AccountName={AZ_ACCOUNT};AccountKey={AZ_KEY};BlobEndpoint={ep};"
    );
    let env = [
        ("AZURE_STORAGE_CONNECTION_STRING", conn.as_str()),
        ("AZURE_STORAGE_ACCESS_KEY", ""),
    ];
    let url = format!("https://{AZ_ACCOUNT}.blob.core.windows.net/ctx/builds/ctx.tar.gz");
    assert_eq!(digest_of(build(t, "azure", &url, &[], &env)), want);

    // AZURE_STORAGE_ACCESS_KEY with the endpoint alone in the connection string; the access key
    // wins over a connection string's AccountKey.
    let endpoint_only = format!("BlobEndpoint={ep};AccountName={AZ_ACCOUNT}");
    let key_env = [
        ("AZURE_STORAGE_CONNECTION_STRING", endpoint_only.as_str()),
        ("AZURE_STORAGE_ACCESS_KEY", AZ_KEY),
    ];
    assert_eq!(digest_of(build(t, "azure", &url, &[], &key_env)), want);
    assert_eq!(
        digest_of(build(
            t,
            "azure",
            &url,
            &["--context-sub-path", "other"],
            &key_env
        )),
        sub
    );
    let wrong_key = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk=";
    let wrong_in_conn = conn.replace(AZ_KEY, wrong_key);
    let overridden = [
        ("AZURE_STORAGE_CONNECTION_STRING", wrong_in_conn.as_str()),
        ("AZURE_STORAGE_ACCESS_KEY", AZ_KEY),
    ];
    assert_eq!(digest_of(build(t, "azure", &url, &[], &overridden)), want);

    // A wrong key, from either place, is refused by Azurite's signature check. Azurite answers
    // every refusal with `AuthorizationFailure` (Azure itself says `AuthenticationFailed` for a
    // bad signature, which gantry reports as rejected credentials).
    for wrong in [
        [
            ("AZURE_STORAGE_CONNECTION_STRING", endpoint_only.as_str()),
            ("AZURE_STORAGE_ACCESS_KEY", wrong_key),
        ],
        [
            ("AZURE_STORAGE_CONNECTION_STRING", wrong_in_conn.as_str()),
            ("AZURE_STORAGE_ACCESS_KEY", ""),
        ],
    ] {
        let e = one_error(build(t, "azure", &url, &[], &wrong), &url);
        assert!(
            e.contains(": access denied (the server answered 403: AuthorizationFailure)\n"),
            "{e}"
        );
        assert!(e.contains("hint: check AZURE_STORAGE_ACCESS_KEY"), "{e}");
        assert!(!e.contains(AZ_KEY) && !e.contains(wrong_key), "{e}");
    }

    let missing = format!("https://{AZ_ACCOUNT}.blob.core.windows.net/ctx/none.tar.gz");
    let e = one_error(build(t, "azure", &missing, &[], &key_env), &missing);
    assert!(
        e.contains(": the blob does not exist (the server answered 404)\n"),
        "{e}"
    );
    let no_container = format!("https://{AZ_ACCOUNT}.blob.core.windows.net/nope/ctx.tar.gz");
    let e = one_error(
        build(t, "azure", &no_container, &[], &key_env),
        &no_container,
    );
    assert!(
        e.contains(": the container does not exist (the server answered 404)\n"),
        "{e}"
    );
    let closed = format!("http://127.0.0.1:{}/{AZ_ACCOUNT}", servers::closed_port());
    let unreachable = format!("BlobEndpoint={closed};AccountName={AZ_ACCOUNT}");
    let e = one_error(
        build(
            t,
            "azure",
            &url,
            &[],
            &[
                ("AZURE_STORAGE_CONNECTION_STRING", &unreachable),
                ("AZURE_STORAGE_ACCESS_KEY", AZ_KEY),
            ],
        ),
        &url,
    );
    assert!(e.contains(&format!(": cannot reach `{closed}`: ")), "{e}");
}
