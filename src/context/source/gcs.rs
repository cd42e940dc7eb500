//! `gs://bucket/object.tar.gz` contexts: one GET of the JSON API's media download, streamed into
//! the extractor.
//!
//! Credentials come from `GOOGLE_APPLICATION_CREDENTIALS`: a service-account key is exchanged for
//! an access token with the OAuth 2.0 JWT bearer flow (RS256, signed with `ring`), an
//! authorized-user file (from `gcloud auth application-default login`) with its refresh token.
//! `STORAGE_EMULATOR_HOST` is the custom endpoint, as for Google's client libraries; without a
//! credentials file the request is anonymous (public objects, emulators).

use std::path::{Path, PathBuf};

use base64::Engine as _;

use super::http::{self, uri_encode};
use super::SourceError;
use crate::env;

const SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_only";
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// An object named by a `gs://` context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcsObject {
    pub bucket: String,
    pub object: String,
}

impl GcsObject {
    pub fn parse(raw: &str) -> Result<GcsObject, SourceError> {
        let rest = raw.strip_prefix("gs://").unwrap_or(raw);
        match rest.split_once('/') {
            Some((bucket, object)) if !bucket.is_empty() && !object.is_empty() => Ok(GcsObject {
                bucket: bucket.to_string(),
                object: object.to_string(),
            }),
            _ => Err(SourceError::Invalid {
                source_name: raw.to_string(),
                reason: "a GCS context names a bucket and an object".into(),
                hint: "use `gs://BUCKET/path/to/context.tar.gz`",
            }),
        }
    }
}

/// The fields of a credentials JSON file that the token flows use.
#[derive(serde::Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: String,
    client_email: Option<String>,
    private_key: Option<String>,
    token_uri: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
}

/// The endpoint: `STORAGE_EMULATOR_HOST` (a URL, or `host:port` meaning plain HTTP), else
/// `https://storage.googleapis.com`.
fn endpoint() -> String {
    match env::var(env::STORAGE_EMULATOR_HOST) {
        Some(h) if h.contains("://") => h.trim_end_matches('/').to_string(),
        Some(h) => format!("http://{}", h.trim_end_matches('/')),
        None => "https://storage.googleapis.com".into(),
    }
}

/// A signed RS256 JWT assertion for the service account's token request.
pub fn jwt_assertion(
    client_email: &str,
    private_key_pem: &str,
    token_uri: &str,
    now: i64,
) -> Result<String, String> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "aud": token_uri,
        "exp": now + 3600,
        "iat": now,
        "iss": client_email,
        "scope": SCOPE,
    });
    let claims = b64.encode(claims.to_string());
    let der: String = private_key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(der)
        .map_err(|e| format!("the private key is not PEM: {e}"))?;
    let key = ring::signature::RsaKeyPair::from_pkcs8(&der)
        .map_err(|e| format!("the private key is not a PKCS#8 RSA key: {e}"))?;
    let message = format!("{header}.{claims}");
    let mut sig = vec![0u8; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        message.as_bytes(),
        &mut sig,
    )
    .map_err(|_| "signing the token request failed".to_string())?;
    Ok(format!("{message}.{}", b64.encode(sig)))
}

async fn access_token(
    client: &reqwest::Client,
    file: &Path,
    source_name: &str,
) -> Result<String, SourceError> {
    let bad = |message: String| SourceError::Credentials {
        source_name: source_name.to_string(),
        message,
        hint: "point GOOGLE_APPLICATION_CREDENTIALS at a service-account key JSON file",
    };
    let text = std::fs::read_to_string(file).map_err(|e| SourceError::Io {
        source_name: source_name.to_string(),
        action: "read GOOGLE_APPLICATION_CREDENTIALS",
        path: file.to_path_buf(),
        hint: "point GOOGLE_APPLICATION_CREDENTIALS at a readable service-account key JSON file",
        cause: e,
    })?;
    let key: KeyFile = serde_json::from_str(&text).map_err(|e| {
        bad(format!(
            "`{}` is not a credentials JSON file: {e}",
            file.display()
        ))
    })?;
    let token_uri = key
        .token_uri
        .clone()
        .unwrap_or_else(|| DEFAULT_TOKEN_URI.into());
    let form: Vec<(&str, String)> = match key.kind.as_str() {
        "service_account" => {
            let (Some(email), Some(pem)) = (&key.client_email, &key.private_key) else {
                return Err(bad(
                    "the service-account file lacks client_email or private_key".into(),
                ));
            };
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let assertion = jwt_assertion(email, pem, &token_uri, now).map_err(bad)?;
            vec![
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
                ),
                ("assertion", assertion),
            ]
        }
        "authorized_user" => {
            let (Some(id), Some(secret), Some(refresh)) =
                (&key.client_id, &key.client_secret, &key.refresh_token)
            else {
                return Err(bad(
                    "the authorized-user file lacks client_id, client_secret or refresh_token"
                        .into(),
                ));
            };
            vec![
                ("grant_type", "refresh_token".into()),
                ("client_id", id.clone()),
                ("client_secret", secret.clone()),
                ("refresh_token", refresh.clone()),
            ]
        }
        other => {
            return Err(bad(format!(
                "credentials of type `{other}` are not supported"
            )))
        }
    };
    let body: String = form
        .iter()
        .map(|(k, v)| format!("{k}={}", uri_encode(v, false)))
        .collect::<Vec<_>>()
        .join("&");
    tracing::debug!(context = %source_name, token_uri = %token_uri, kind = %key.kind, "requesting an access token");
    let req = client
        .post(&token_uri)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    let resp = http::send(
        req,
        source_name,
        &token_uri,
        "the token endpoint",
        "check that GOOGLE_APPLICATION_CREDENTIALS holds a current key of an enabled service account",
    )
    .await?;
    let v: serde_json::Value = resp.json().await.map_err(|e| {
        bad(format!(
            "the token endpoint answered something that is not JSON: {e}"
        ))
    })?;
    v.get("access_token")
        .and_then(|t| t.as_str())
        .map(str::to_string)
        .ok_or_else(|| bad("the token endpoint answered without an access_token".into()))
}

/// Downloads the object and extracts it into `dest`.
pub fn fetch(o: &GcsObject, dest: &Path, source_name: &str) -> Result<(), SourceError> {
    let base = endpoint();
    let bucket_url = format!("{base}/storage/v1/b/{}", uri_encode(&o.bucket, false));
    let url = format!("{bucket_url}/o/{}?alt=media", uri_encode(&o.object, false));
    let creds = env::var(env::GOOGLE_APPLICATION_CREDENTIALS).map(PathBuf::from);
    let name = source_name.to_string();
    http::download_and_extract(dest, source_name, move |client| async move {
        let token = match creds {
            Some(file) => {
                tracing::debug!(context = %name, key_file = %file.display(), "exchanging the credentials for an access token");
                Some(access_token(&client, &file, &name).await?)
            }
            None => {
                tracing::debug!(context = %name, "no GOOGLE_APPLICATION_CREDENTIALS: the request is anonymous");
                None
            }
        };
        let get = |url: &str| {
            let req = client.get(url);
            match &token {
                Some(t) => req.bearer_auth(t),
                None => req,
            }
        };
        const DENIED: &str =
            "check GOOGLE_APPLICATION_CREDENTIALS and that the account may read the bucket";
        tracing::debug!(context = %name, url = %url, "downloading the object");
        match http::send(get(&url), &name, &base, "the object", DENIED).await {
            // The JSON API answers a missing bucket like a missing object (emulators with an
            // empty body): asking for the bucket tells which it is. A reader without
            // `storage.buckets.get` gets a 403 there, and the message stays about the object.
            Err(SourceError::NotFound { status, .. }) => {
                let what = match http::send(get(&bucket_url), &name, &base, "", DENIED).await {
                    Err(SourceError::NotFound { .. }) => "the bucket",
                    _ => "the object",
                };
                Err(SourceError::NotFound {
                    source_name: name.clone(),
                    what: what.into(),
                    status,
                })
            }
            other => other,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bucket_and_object() {
        let o = GcsObject::parse("gs://b/a/c.tar.gz").unwrap();
        assert_eq!((o.bucket.as_str(), o.object.as_str()), ("b", "a/c.tar.gz"));
        let e = GcsObject::parse("gs:///x").unwrap_err().to_string();
        assert!(e.contains("hint: use `gs://BUCKET/"), "{e}");
    }

    #[test]
    fn a_bad_private_key_is_reported_not_panicked_on() {
        let e = jwt_assertion(
            "a@b",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
            "u",
            0,
        )
        .unwrap_err();
        assert!(e.contains("not a PKCS#8 RSA key"), "{e}");
    }
}
