//! Streaming an HTTP download into the archive extractor, shared by the bucket sources.
//!
//! Context fetching is synchronous (the extractor and git2 are), while reqwest is async. A small
//! thread runs its own single-threaded runtime that sends the request and pumps body chunks
//! through a bounded channel; the calling thread reads them as a plain `Read` and extracts as
//! they arrive. At most [`CHANNEL_CHUNKS`] chunks wait in memory, so a 1 GB context costs the
//! same memory as a small one, and the caller's own runtime (if any) is never blocked on.

use std::future::Future;
use std::io::{self, Read};
use std::path::Path;
use std::sync::mpsc;

use bytes::Bytes;
use futures_util::StreamExt;

use super::SourceError;

/// Body chunks allowed in flight between the download thread and the extractor.
const CHANNEL_CHUNKS: usize = 16;

enum Msg {
    Chunk(Bytes),
    Failed(String),
}

/// Builds the HTTP client every bucket source uses (rustls with the ring provider, the
/// platform's roots).
pub(crate) fn client() -> Result<reqwest::Client, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| format!("building an HTTP client: {e}"))
}

/// Runs `open` (which sends the request and checks the answer) on a download thread, then
/// streams the response body through the gzip tar extractor into `dest`.
pub(crate) fn download_and_extract<F, Fut>(
    dest: &Path,
    source_name: &str,
    open: F,
) -> Result<(), SourceError>
where
    F: FnOnce(reqwest::Client) -> Fut + Send + 'static,
    Fut: Future<Output = Result<reqwest::Response, SourceError>>,
{
    let (head_tx, head_rx) = mpsc::sync_channel::<Result<(), SourceError>>(1);
    let (tx, rx) = mpsc::sync_channel::<Msg>(CHANNEL_CHUNKS);
    let name = source_name.to_string();
    let worker = std::thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                let _ = head_tx.send(Err(SourceError::Unreachable {
                    source_name: name,
                    endpoint: String::new(),
                    message: format!("starting the download runtime: {e}"),
                }));
                return;
            }
        };
        runtime.block_on(async move {
            let client = match client() {
                Ok(c) => c,
                Err(message) => {
                    let _ = head_tx.send(Err(SourceError::Unreachable {
                        source_name: name,
                        endpoint: String::new(),
                        message,
                    }));
                    return;
                }
            };
            let response = match open(client).await {
                Ok(r) => r,
                Err(e) => {
                    let _ = head_tx.send(Err(e));
                    return;
                }
            };
            if head_tx.send(Ok(())).is_err() {
                return;
            }
            let mut body = response.bytes_stream();
            while let Some(chunk) = body.next().await {
                let msg = match chunk {
                    Ok(c) => Msg::Chunk(c),
                    Err(e) => Msg::Failed(format!("the download broke off: {e}")),
                };
                let failed = matches!(msg, Msg::Failed(_));
                // The extractor hung up (it failed, or the archive ended): stop downloading.
                if tx.send(msg).is_err() || failed {
                    return;
                }
            }
        });
    });
    let head = head_rx.recv().unwrap_or_else(|_| {
        Err(SourceError::Unreachable {
            source_name: source_name.to_string(),
            endpoint: String::new(),
            message: "the download thread stopped".into(),
        })
    });
    let result = head.and_then(|()| {
        let reader = ChannelReader {
            rx,
            current: Bytes::new(),
        };
        super::tar::extract_gzip(reader, dest, source_name).map(|_| ())
    });
    // Joining after the receiver is gone: the worker's next send fails and it returns.
    let _ = worker.join();
    result
}

struct ChannelReader {
    rx: mpsc::Receiver<Msg>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.recv() {
                Ok(Msg::Chunk(c)) => self.current = c,
                Ok(Msg::Failed(e)) => return Err(io::Error::other(e)),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// Sends `request`, mapping a connection failure to [`SourceError::Unreachable`] and an error
/// status to a message that names what was missing or refused.
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    source_name: &str,
    endpoint: &str,
    what: &str,
    denied_hint: &'static str,
) -> Result<reqwest::Response, SourceError> {
    let unreachable = |e: reqwest::Error| SourceError::Unreachable {
        source_name: source_name.to_string(),
        endpoint: endpoint.to_string(),
        message: error_chain(&e),
    };
    let (client, request) = request.build_split();
    let request = request.map_err(unreachable)?;
    // Credentials go in the Authorization header, or in the body of a token request: a refusal
    // of an anonymous request means credentials are missing, not that they were wrong.
    let credentialed = request
        .headers()
        .contains_key(reqwest::header::AUTHORIZATION)
        || request.body().is_some();
    let response = client.execute(request).await.map_err(unreachable)?;
    let status = response.status();
    tracing::trace!(context = %source_name, status = status.as_u16(), "answer");
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    let detail = error_detail(&body);
    let code = status.as_u16();
    Err(match code {
        404 => SourceError::NotFound {
            source_name: source_name.to_string(),
            what: match detail.as_str() {
                d if d.contains("NoSuchBucket") => "the bucket".to_string(),
                d if d.contains("ContainerNotFound") => "the container".to_string(),
                _ => what.to_string(),
            },
            status: code,
        },
        400 | 401 | 403 if credentialed && (code == 401 || credentials_refused(&detail)) => {
            SourceError::Rejected {
                source_name: source_name.to_string(),
                status: code,
                detail: if detail.is_empty() {
                    String::new()
                } else {
                    format!(": {detail}")
                },
                hint: denied_hint,
            }
        }
        401 | 403 => SourceError::Denied {
            source_name: source_name.to_string(),
            status: code,
            detail: if detail.is_empty() {
                String::new()
            } else {
                format!(": {detail}")
            },
            hint: denied_hint,
        },
        _ => SourceError::Status {
            source_name: source_name.to_string(),
            status: code,
            detail: if detail.is_empty() {
                String::new()
            } else {
                format!(": {detail}")
            },
        },
    })
}

/// Whether a 403's error code says the credentials themselves were refused (an unknown key, a
/// signature made with the wrong secret, an expired token), as opposed to valid credentials
/// without access to the object.
fn credentials_refused(code: &str) -> bool {
    const CODES: &[&str] = &[
        // S3
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "InvalidClientTokenId",
        // Azure Blob
        "AuthenticationFailed",
        "InvalidAuthenticationInfo",
        // OAuth 2.0 token endpoints (Google)
        "invalid_grant",
        "invalid_client",
        "unauthorized_client",
    ];
    CODES
        .iter()
        .any(|c| code == *c || code.starts_with(&format!("{c}:")))
}

/// The error code of an S3/Azure XML or GCS JSON error body, or its first line.
fn error_detail(body: &str) -> String {
    if let Some(start) = body.find("<Code>") {
        if let Some(end) = body[start..].find("</Code>") {
            return body[start + 6..start + end].to_string();
        }
    }
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        if let Some(m) = v.pointer("/error/message").and_then(|m| m.as_str()) {
            return m.to_string();
        }
        // OAuth 2.0 (RFC 6749 section 5.2): `{"error": "invalid_grant", "error_description": ..}`.
        if let Some(code) = v.get("error").and_then(|e| e.as_str()) {
            return match v.get("error_description").and_then(|d| d.as_str()) {
                Some(d) => format!("{code}: {}", d.replace(['\r', '\n'], " ")),
                None => code.to_string(),
            };
        }
    }
    body.lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

/// HMAC-SHA256, for the S3 and Azure request signatures.
pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&key, data).as_ref().to_vec()
}

/// Percent-encodes everything but RFC 3986 unreserved characters (and `/` when `keep_slash`).
pub(crate) fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_read_from_xml_google_json_and_oauth_bodies() {
        let s3 = "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code></Error>";
        assert_eq!(error_detail(s3), "SignatureDoesNotMatch");
        let gcs = r#"{"error":{"code":404,"message":"No such object: b/o"}}"#;
        assert_eq!(error_detail(gcs), "No such object: b/o");
        let oauth = r#"{"error":"invalid_grant","error_description":"Invalid JWT\nSignature."}"#;
        assert_eq!(error_detail(oauth), "invalid_grant: Invalid JWT Signature.");
        assert_eq!(error_detail("plain\nsecond line"), "plain");
    }

    #[test]
    fn refused_credentials_are_told_from_missing_permissions() {
        for code in [
            "SignatureDoesNotMatch",
            "InvalidAccessKeyId",
            "AuthenticationFailed",
            "invalid_grant: Invalid JWT Signature.",
        ] {
            assert!(credentials_refused(code), "{code}");
        }
        for code in [
            "AccessDenied",
            "AuthorizationFailure",
            "invalid_grantee",
            "",
        ] {
            assert!(!credentials_refused(code), "{code}");
        }
    }
}
