//! `https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB` contexts: one GET, streamed into the
//! extractor.
//!
//! With `AZURE_STORAGE_ACCESS_KEY` (or an `AccountKey` in `AZURE_STORAGE_CONNECTION_STRING`) the
//! request carries a SharedKey signature, computed here with `ring`'s HMAC; without a key it is
//! anonymous (public containers). The connection string's `BlobEndpoint` is the custom endpoint
//! (Azurite), and `UseDevelopmentStorage=true` means Azurite's well-known defaults.

use std::path::Path;

use base64::Engine as _;

use super::http::{self, hmac_sha256};
use super::SourceError;
use crate::env;

const SUFFIX: &str = ".blob.core.windows.net";
const API_VERSION: &str = "2021-08-06";
/// Azurite's documented development account and key.
const DEV_ACCOUNT: &str = "devstoreaccount1";
const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Whether a context names an Azure Blob object.
pub fn is_azure_url(raw: &str) -> bool {
    url::Url::parse(raw)
        .ok()
        .is_some_and(|u| u.scheme() == "https" && u.host_str().is_some_and(|h| h.ends_with(SUFFIX)))
}

/// A blob named by an Azure Blob context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AzureBlob {
    pub account: String,
    pub container: String,
    /// The blob name, as written in the URL (percent-encoded).
    pub blob: String,
}

impl AzureBlob {
    pub fn parse(raw: &str) -> Result<AzureBlob, SourceError> {
        let bad = || SourceError::Invalid {
            source_name: raw.to_string(),
            reason: "an Azure Blob context names an account, a container and a blob".into(),
            hint: "use `https://ACCOUNT.blob.core.windows.net/CONTAINER/path/to/context.tar.gz`",
        };
        let u = url::Url::parse(raw).map_err(|_| bad())?;
        let account = u
            .host_str()
            .and_then(|h| h.strip_suffix(SUFFIX))
            .filter(|a| !a.is_empty())
            .ok_or_else(bad)?;
        let path = u.path().trim_start_matches('/');
        match path.split_once('/') {
            Some((c, b)) if !c.is_empty() && !b.is_empty() => Ok(AzureBlob {
                account: account.to_string(),
                container: c.to_string(),
                blob: b.to_string(),
            }),
            _ => Err(bad()),
        }
    }

    pub fn display_name(&self) -> String {
        format!(
            "https://{}{SUFFIX}/{}/{}",
            self.account, self.container, self.blob
        )
    }
}

/// What `AZURE_STORAGE_CONNECTION_STRING` says: endpoint, account name, key.
fn connection_string() -> (Option<String>, Option<String>, Option<String>) {
    let Some(cs) = env::var(env::AZURE_STORAGE_CONNECTION_STRING) else {
        return (None, None, None);
    };
    let mut endpoint = None;
    let mut account = None;
    let mut key = None;
    for part in cs.split(';') {
        match part.split_once('=') {
            Some(("BlobEndpoint", v)) => endpoint = Some(v.trim_end_matches('/').to_string()),
            Some(("AccountName", v)) => account = Some(v.to_string()),
            Some(("AccountKey", v)) => key = Some(v.to_string()),
            Some(("UseDevelopmentStorage", "true")) => {
                endpoint = Some(format!("http://127.0.0.1:10000/{DEV_ACCOUNT}"));
                account = Some(DEV_ACCOUNT.into());
                key = Some(DEV_KEY.into());
            }
            _ => {}
        }
    }
    (endpoint, account, key)
}

/// The `Authorization` header of a SharedKey-signed request without a body.
/// `canonical_headers` are the `x-ms-*` headers; `path` is the URL path as sent.
pub fn shared_key(
    method: &str,
    account: &str,
    key_b64: &str,
    path: &str,
    ms_headers: &[(&str, &str)],
    content_length: &str,
    content_type: &str,
) -> Result<String, String> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(key_b64.trim())
        .map_err(|e| format!("the storage account key is not base64: {e}"))?;
    let mut headers: Vec<(String, String)> = ms_headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let string_to_sign = format!(
        "{method}\n\n\n{content_length}\n\n{content_type}\n\n\n\n\n\n\n{canonical_headers}/{account}{path}"
    );
    let sig = base64::engine::general_purpose::STANDARD
        .encode(hmac_sha256(&key, string_to_sign.as_bytes()));
    Ok(format!("SharedKey {account}:{sig}"))
}

/// The `x-ms-date` value for now.
pub fn ms_date() -> String {
    time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        ))
        .unwrap_or_default()
}

/// Downloads the blob and extracts it into `dest`.
pub fn fetch(b: &AzureBlob, dest: &Path, source_name: &str) -> Result<(), SourceError> {
    let (cs_endpoint, cs_account, cs_key) = connection_string();
    let account = cs_account.unwrap_or_else(|| b.account.clone());
    let base = cs_endpoint.unwrap_or_else(|| format!("https://{}{SUFFIX}", b.account));
    let key = match (env::var(env::AZURE_STORAGE_ACCESS_KEY), cs_key) {
        (Some(k), _) => Some((k, "AZURE_STORAGE_ACCESS_KEY")),
        (None, Some(k)) => Some((k, "the AccountKey of AZURE_STORAGE_CONNECTION_STRING")),
        (None, None) => None,
    };
    let raw = format!("{base}/{}/{}", b.container, b.blob);
    let url = url::Url::parse(&raw).map_err(|e| SourceError::Invalid {
        source_name: source_name.to_string(),
        reason: format!("`{raw}` is not a valid blob URL: {e}"),
        hint: "check the BlobEndpoint of AZURE_STORAGE_CONNECTION_STRING",
    })?;
    let date = ms_date();
    let mut headers = vec![
        ("x-ms-date".to_string(), date.clone()),
        ("x-ms-version".to_string(), API_VERSION.to_string()),
    ];
    tracing::debug!(context = %source_name, url = %url, "downloading the blob");
    if let Some((key, from)) = key {
        tracing::debug!(context = %source_name, account = %account, key = from, "signing with the storage account key");
        let auth = shared_key(
            "GET",
            &account,
            &key,
            url.path(),
            &[("x-ms-date", &date), ("x-ms-version", API_VERSION)],
            "",
            "",
        )
        .map_err(|message| SourceError::Credentials {
            source_name: source_name.to_string(),
            message,
            hint: "set AZURE_STORAGE_ACCESS_KEY to the storage account's access key",
        })?;
        headers.push(("authorization".into(), auth));
    } else {
        tracing::debug!(context = %source_name, "no storage account key: the request is anonymous");
    }
    let name = source_name.to_string();
    http::download_and_extract(dest, source_name, move |client| async move {
        let mut req = client.get(url);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        http::send(
            req,
            &name,
            &base,
            "the blob",
            "check AZURE_STORAGE_ACCESS_KEY and that the account may read the container",
        )
        .await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_blob_urls_only() {
        assert!(is_azure_url(
            "https://acct.blob.core.windows.net/c/ctx.tar.gz"
        ));
        assert!(!is_azure_url("https://example.com/c/ctx.tar.gz"));
        let b = AzureBlob::parse("https://acct.blob.core.windows.net/c/d/ctx.tar.gz").unwrap();
        assert_eq!(
            (b.account.as_str(), b.container.as_str(), b.blob.as_str()),
            ("acct", "c", "d/ctx.tar.gz")
        );
        let e = AzureBlob::parse("https://acct.blob.core.windows.net/c")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("hint: use `https://ACCOUNT.blob.core.windows.net/"),
            "{e}"
        );
    }

    #[test]
    fn shared_key_signs_the_canonical_string() {
        let a = shared_key(
            "GET",
            "acct",
            DEV_KEY,
            "/c/b",
            &[("x-ms-version", "v"), ("x-ms-date", "d")],
            "",
            "",
        )
        .unwrap();
        let key = base64::engine::general_purpose::STANDARD
            .decode(DEV_KEY)
            .unwrap();
        let sts = "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:d\nx-ms-version:v\n/acct/c/b";
        let want =
            base64::engine::general_purpose::STANDARD.encode(hmac_sha256(&key, sts.as_bytes()));
        assert_eq!(a, format!("SharedKey acct:{want}"));
    }
}
