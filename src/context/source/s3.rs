//! `s3://bucket/key.tar.gz` contexts: one signed GET, streamed into the extractor.
//!
//! Requests are signed with AWS Signature Version 4, written here over `ring`'s HMAC instead of
//! pulling in the AWS SDK (a large, slow-compiling dependency tree for one GET). Credentials come
//! from the usual chain: the `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`
//! environment, then the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE` or
//! `~/.aws/credentials`, profile `AWS_PROFILE` or `default`). kaniko's `S3_ENDPOINT` and
//! `S3_FORCE_PATH_STYLE` point it at S3-compatible stores such as MinIO.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::http::{self, hmac_sha256, uri_encode};
use super::SourceError;
use crate::env;

/// An object named by an `s3://` context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Object {
    pub bucket: String,
    pub key: String,
}

impl S3Object {
    pub fn parse(raw: &str) -> Result<S3Object, SourceError> {
        let rest = raw.strip_prefix("s3://").unwrap_or(raw);
        match rest.split_once('/') {
            Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok(S3Object {
                bucket: bucket.to_string(),
                key: key.to_string(),
            }),
            _ => Err(SourceError::Invalid {
                source_name: raw.to_string(),
                reason: "an S3 context names a bucket and an object key".into(),
                hint: "use `s3://BUCKET/path/to/context.tar.gz`",
            }),
        }
    }
}

/// AWS credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

/// Finds credentials: environment first, then the shared credentials file.
pub fn credentials(source_name: &str) -> Result<Credentials, SourceError> {
    if let (Some(id), Some(secret)) = (
        env::var(env::AWS_ACCESS_KEY_ID),
        env::var(env::AWS_SECRET_ACCESS_KEY),
    ) {
        tracing::debug!(context = %source_name, "using AWS credentials from the environment");
        return Ok(Credentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token: env::var(env::AWS_SESSION_TOKEN),
        });
    }
    let file = env::var(env::AWS_SHARED_CREDENTIALS_FILE)
        .map(PathBuf::from)
        .or_else(|| env::var(env::HOME).map(|h| Path::new(&h).join(".aws/credentials")));
    let profile = env::var(env::AWS_PROFILE).unwrap_or_else(|| "default".into());
    let missing = || {
        SourceError::Credentials {
        source_name: source_name.to_string(),
        message: format!("no AWS credentials found (environment, or profile `{profile}` of the shared credentials file)"),
        hint: "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or write them to ~/.aws/credentials",
    }
    };
    let Some(file) = file else {
        return Err(missing());
    };
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
        Err(e) => {
            return Err(SourceError::Io {
                source_name: source_name.to_string(),
                action: "read the AWS credentials file",
                path: file,
                hint: "make it readable, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                cause: e,
            })
        }
    };
    let section = ini_section(&text, &profile);
    let get = |k: &str| {
        section
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    match (get("aws_access_key_id"), get("aws_secret_access_key")) {
        (Some(id), Some(secret)) => {
            tracing::debug!(context = %source_name, profile = %profile, file = %file.display(), "using AWS credentials from the shared credentials file");
            Ok(Credentials {
                access_key_id: id,
                secret_access_key: secret,
                session_token: get("aws_session_token"),
            })
        }
        _ => Err(missing()),
    }
}

/// The `key = value` pairs of `[name]` in an INI file.
fn ini_section(text: &str, name: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(h) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let h = h.trim();
            inside = h == name || h.strip_prefix("profile ").map(str::trim) == Some(name);
            continue;
        }
        if inside {
            if let Some((k, v)) = line.split_once('=') {
                out.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
    }
    out
}

/// The region: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region` in `~/.aws/config`,
/// else `us-east-1`.
fn region() -> String {
    if let Some(r) = env::var(env::AWS_REGION).or_else(|| env::var(env::AWS_DEFAULT_REGION)) {
        return r;
    }
    let profile = env::var(env::AWS_PROFILE).unwrap_or_else(|| "default".into());
    let file = env::var(env::AWS_CONFIG_FILE)
        .map(PathBuf::from)
        .or_else(|| env::var(env::HOME).map(|h| Path::new(&h).join(".aws/config")));
    file.and_then(|f| std::fs::read_to_string(f).ok())
        .and_then(|t| {
            ini_section(&t, &profile)
                .into_iter()
                .find(|(k, _)| k == "region")
                .map(|(_, v)| v)
        })
        .unwrap_or_else(|| "us-east-1".into())
}

/// The object's URL: virtual-hosted on AWS, or on `S3_ENDPOINT` (path-style with
/// `S3_FORCE_PATH_STYLE=true`).
pub fn object_url(o: &S3Object, region: &str, source_name: &str) -> Result<url::Url, SourceError> {
    // Read as kaniko reads its boolean settings (Go's strconv.ParseBool); anything else is an
    // error, not a quiet virtual-hosted URL.
    let path_style = match env::var(env::S3_FORCE_PATH_STYLE) {
        None => false,
        Some(v) => crate::cli::go_bool(&v).map_err(|e| SourceError::Invalid {
            source_name: source_name.to_string(),
            reason: format!(
                "S3_FORCE_PATH_STYLE: {}",
                e.lines().next().unwrap_or_default()
            ),
            hint: "set S3_FORCE_PATH_STYLE to true or false",
        })?,
    };
    let key = uri_encode(&o.key, true);
    let raw = match env::var(env::S3_ENDPOINT) {
        Some(ep) => {
            let ep = if ep.contains("://") {
                ep
            } else {
                format!("https://{ep}")
            };
            let base = url::Url::parse(&ep).map_err(|e| SourceError::Invalid {
                source_name: source_name.to_string(),
                reason: format!("S3_ENDPOINT `{ep}` is not a URL: {e}"),
                hint: "set S3_ENDPOINT to e.g. `http://minio:9000`",
            })?;
            let host = base.host_str().unwrap_or_default();
            let port = base.port().map(|p| format!(":{p}")).unwrap_or_default();
            if path_style {
                format!("{}://{host}{port}/{}/{key}", base.scheme(), o.bucket)
            } else {
                format!("{}://{}.{host}{port}/{key}", base.scheme(), o.bucket)
            }
        }
        None if path_style => format!("https://s3.{region}.amazonaws.com/{}/{key}", o.bucket),
        None => format!("https://{}.s3.{region}.amazonaws.com/{key}", o.bucket),
    };
    url::Url::parse(&raw).map_err(|e| SourceError::Invalid {
        source_name: source_name.to_string(),
        reason: format!("`{raw}` is not a valid object URL: {e}"),
        hint: "check the bucket name and S3_ENDPOINT",
    })
}

/// The `Authorization` header value of an AWS Signature Version 4 request. `headers` are the
/// signed headers (names lowercase, including `host` and `x-amz-date`); `amz_date` is
/// `YYYYMMDDTHHMMSSZ`.
#[allow(clippy::too_many_arguments)]
pub fn sign_v4(
    method: &str,
    canonical_uri: &str,
    canonical_query: &str,
    headers: &[(&str, &str)],
    payload_hash: &str,
    amz_date: &str,
    region: &str,
    service: &str,
    creds: &Credentials,
) -> String {
    let mut headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_request = format!(
        "{method}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{payload_hash}"
    );
    let date = &amz_date[..8.min(amz_date.len())];
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let k_date = hmac_sha256(
        format!("AWS4{}", creds.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    let k_signing = hmac_sha256(&k_service, b"aws4_request");
    let signature = hex::encode(hmac_sha256(&k_signing, string_to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        creds.access_key_id
    )
}

/// Downloads the object and extracts it into `dest`.
pub fn fetch(o: &S3Object, dest: &Path, source_name: &str) -> Result<(), SourceError> {
    let creds = credentials(source_name)?;
    let region = region();
    let url = object_url(o, &region, source_name)?;
    let host = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    let amz_date = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_default();
    let payload = "UNSIGNED-PAYLOAD";
    let mut signed: Vec<(&str, &str)> = vec![
        ("host", &host),
        ("x-amz-content-sha256", payload),
        ("x-amz-date", &amz_date),
    ];
    if let Some(t) = &creds.session_token {
        signed.push(("x-amz-security-token", t));
    }
    let auth = sign_v4(
        "GET",
        url.path(),
        "",
        &signed,
        payload,
        &amz_date,
        &region,
        "s3",
        &creds,
    );
    let headers: Vec<(String, String)> = signed
        .iter()
        .filter(|(k, _)| *k != "host")
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain(std::iter::once(("authorization".to_string(), auth)))
        .collect();
    let name = source_name.to_string();
    let endpoint = format!("{}://{host}", url.scheme());
    tracing::debug!(context = %source_name, url = %url, region = %region, "downloading the object");
    http::download_and_extract(dest, source_name, move |client| async move {
        let mut req = client.get(url);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        http::send(
            req,
            &name,
            &endpoint,
            "the object",
            "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or ~/.aws/credentials) and AWS_REGION",
        )
        .await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The "GET Object" example of the AWS Signature Version 4 documentation for S3.
    #[test]
    fn signature_matches_the_aws_documentation_example() {
        let creds = Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        };
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let auth = sign_v4(
            "GET",
            "/test.txt",
            "",
            &[
                ("Host", "examplebucket.s3.amazonaws.com"),
                ("Range", "bytes=0-9"),
                ("x-amz-content-sha256", empty),
                ("x-amz-date", "20130524T000000Z"),
            ],
            empty,
            "20130524T000000Z",
            "us-east-1",
            "s3",
            &creds,
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn parses_bucket_and_key_and_refuses_a_bare_bucket() {
        assert_eq!(
            S3Object::parse("s3://b/dir/ctx.tar.gz").unwrap(),
            S3Object {
                bucket: "b".into(),
                key: "dir/ctx.tar.gz".into()
            }
        );
        let e = S3Object::parse("s3://b").unwrap_err().to_string();
        assert!(e.contains("context `s3://b`"), "{e}");
        assert!(e.contains("hint: use `s3://BUCKET/"), "{e}");
    }

    #[test]
    fn profile_sections_are_read_by_name() {
        let text = "[default]\naws_access_key_id = A\n[profile ci]\naws_access_key_id=B\n";
        assert_eq!(
            ini_section(text, "ci"),
            vec![("aws_access_key_id".into(), "B".into())]
        );
        assert_eq!(
            ini_section(text, "default"),
            vec![("aws_access_key_id".into(), "A".into())]
        );
    }
}
