//! Pulling: manifests (with the exact bytes and a checked digest), resolving an index to one
//! platform, the image config, and blobs streamed to disk with their digest and size verified.
//! Mirrors and `--registry-map` are applied here, for pulls only.

use std::path::{Path, PathBuf};

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::client::{is_transfer_failure, Client, Target};
use super::error::RegistryError;
use super::reference::{normalize_registry_host, Reference, DOCKER_HUB};
use super::retry::RetryPolicy;
use super::transport::Direction;
use crate::image::{self, Descriptor, ImageConfig, Index, Manifest, Platform, MANIFEST_ACCEPT};

/// Configs larger than this are refused rather than read into memory.
const MAX_CONFIG_BYTES: u64 = 64 << 20;
/// Manifests larger than this are refused (distribution's own limit is 4 MiB).
const MAX_MANIFEST_BYTES: usize = 16 << 20;

/// A manifest or index as the registry sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
    /// `sha256:` of `bytes`.
    pub digest: String,
}

/// A single-platform image: where it was pulled from, its manifest and its config.
#[derive(Clone, Debug)]
pub struct ResolvedImage {
    /// The repository actually pulled from (after mirrors and maps), pinned to `digest`.
    pub reference: Reference,
    pub manifest_bytes: Vec<u8>,
    pub manifest: Manifest,
    pub media_type: String,
    pub digest: String,
    pub config_bytes: Vec<u8>,
    pub config: ImageConfig,
}

impl Client {
    /// The references a pull of `r` tries, in order: `--registry-map` targets, mirrors for Docker
    /// Hub images, then `r` itself unless the fallback is switched off.
    pub fn pull_candidates(&self, r: &Reference) -> Vec<Reference> {
        let opts = self.opts();
        let mut out = Vec::new();
        let mut redirect_to = |target: &str| {
            let target = target.trim().trim_end_matches('/');
            let target = target
                .strip_prefix("https://")
                .or_else(|| target.strip_prefix("http://"))
                .unwrap_or(target);
            let (host, prefix) = match target.split_once('/') {
                Some((h, p)) => (h, Some(p)),
                None => (target, None),
            };
            if host.is_empty() {
                return;
            }
            let repository = match prefix {
                Some(p) if !p.is_empty() => format!("{p}/{}", r.repository),
                _ => r.repository.clone(),
            };
            out.push(Reference {
                registry: host.to_ascii_lowercase(),
                repository,
                tag: r.tag.clone(),
                digest: r.digest.clone(),
            });
        };
        for (from, to) in &opts.registry_maps {
            if normalize_registry_host(from) == r.registry {
                for t in to.split(';') {
                    redirect_to(t);
                }
            }
        }
        if r.registry == DOCKER_HUB {
            for m in &opts.mirrors {
                redirect_to(m);
            }
        }
        let redirected = !out.is_empty();
        if !redirected || !opts.skip_default_registry_fallback {
            out.push(r.clone());
        }
        out
    }

    /// Fetches a manifest or index by tag or digest, checking its digest against the reference
    /// and the registry's `Docker-Content-Digest`.
    pub async fn get_manifest(&self, r: &Reference) -> Result<FetchedManifest, RegistryError> {
        let t = Target::new(
            &r.api_host(),
            &r.repository,
            "pull manifest",
            Direction::Pull,
        );
        let url = self.url(
            &t,
            &format!("{}/manifests/{}", r.repository, r.api_reference()),
        )?;
        let what = format!("manifest `{}`", r.api_reference());
        let (headers, bytes) = self
            .get_whole(&t, &what, MAX_MANIFEST_BYTES, |http| {
                Ok(http
                    .get(url.clone())
                    .header(ACCEPT, MANIFEST_ACCEPT.join(", ")))
            })
            .await?;
        let header_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_string());
        let header_digest = headers
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(invalid(
                &t,
                format!("the manifest is larger than {MAX_MANIFEST_BYTES} bytes"),
            ));
        }
        let digest = image::sha256_digest(&bytes);
        let expected = r
            .digest
            .clone()
            .or(header_digest.filter(|d| d.starts_with("sha256:")));
        if let Some(expected) = expected {
            if expected != digest {
                return Err(RegistryError::DigestMismatch {
                    registry: r.registry.clone(),
                    repository: r.repository.clone(),
                    what: format!("manifest `{}`", r.api_reference()),
                    expected,
                    actual: digest,
                });
            }
        }
        let media_type = match media_type_of(&bytes) {
            Some(m) => m,
            None => header_type.unwrap_or_default(),
        };
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// Resolves `r` to a single-platform image (following mirrors and maps), fetching and
    /// checking its manifest and config.
    pub async fn resolve_image(
        &self,
        r: &Reference,
        platform: &Platform,
    ) -> Result<ResolvedImage, RegistryError> {
        let candidates = self.pull_candidates(r);
        let mut last = None;
        for c in &candidates {
            match self.resolve_from(c, platform).await {
                Ok(img) => return Ok(img),
                // The image exists but not for this platform: another mirror will not help.
                Err(e @ RegistryError::NoMatchingPlatform { .. }) => return Err(e),
                Err(e) => {
                    if c != r {
                        tracing::warn!(mirror = %c, error = %e, "pull from mirror failed, trying the next source");
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| RegistryError::InvalidReference {
            reference: r.to_string(),
            reason: "no registry to pull it from".into(),
        }))
    }

    async fn resolve_from(
        &self,
        r: &Reference,
        platform: &Platform,
    ) -> Result<ResolvedImage, RegistryError> {
        let mut fetched = self.get_manifest(r).await?;
        if image::is_index(&fetched.media_type) {
            let index: Index = serde_json::from_slice(&fetched.bytes).map_err(|e| {
                RegistryError::InvalidResponse {
                    registry: r.registry.clone(),
                    repository: r.repository.clone(),
                    operation: "pull manifest",
                    reason: format!("the index is not valid JSON: {e}"),
                }
            })?;
            let chosen = index
                .manifests
                .iter()
                .find(|d| d.platform.as_ref().is_some_and(|p| platform.matches(p)));
            let Some(chosen) = chosen else {
                let mut available: Vec<String> = index
                    .manifests
                    .iter()
                    .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                    .filter(|p| p != "unknown/unknown")
                    .collect();
                available.sort();
                available.dedup();
                return Err(RegistryError::NoMatchingPlatform {
                    reference: r.to_string(),
                    wanted: platform.to_string(),
                    available,
                });
            };
            let pinned = r.with_digest(&chosen.digest);
            fetched = self.get_manifest(&pinned).await?;
        }
        let bad = |reason: String| RegistryError::InvalidResponse {
            registry: r.registry.clone(),
            repository: r.repository.clone(),
            operation: "pull manifest",
            reason,
        };
        if !image::is_manifest(&fetched.media_type) {
            return Err(bad(format!(
                "unsupported manifest media type `{}` (schema 1 images are not supported)",
                fetched.media_type
            )));
        }
        let manifest: Manifest = serde_json::from_slice(&fetched.bytes)
            .map_err(|e| bad(format!("the manifest is not valid JSON: {e}")))?;
        let config_bytes = self.fetch_blob_bytes(r, &manifest.config).await?;
        let config: ImageConfig = serde_json::from_slice(&config_bytes)
            .map_err(|e| bad(format!("the image config is not valid JSON: {e}")))?;
        Ok(ResolvedImage {
            reference: r.with_digest(&fetched.digest),
            manifest_bytes: fetched.bytes,
            manifest,
            media_type: fetched.media_type,
            digest: fetched.digest,
            config_bytes,
            config,
        })
    }

    /// A small blob (an image config) read into memory, digest-checked.
    pub async fn fetch_blob_bytes(
        &self,
        r: &Reference,
        desc: &Descriptor,
    ) -> Result<Vec<u8>, RegistryError> {
        let t = Target::new(&r.api_host(), &r.repository, "pull blob", Direction::Pull);
        if desc.size > MAX_CONFIG_BYTES {
            return Err(invalid(
                &t,
                format!(
                    "blob `{}` is {} bytes, too large for a config",
                    desc.digest, desc.size
                ),
            ));
        }
        let url = self.url(&t, &format!("{}/blobs/{}", r.repository, desc.digest))?;
        let (_, bytes) = self
            .get_whole(
                &t,
                &format!("blob `{}`", desc.digest),
                desc.size as usize,
                |http| Ok(http.get(url.clone())),
            )
            .await?;
        let actual = image::sha256_digest(&bytes);
        if actual != desc.digest {
            return Err(RegistryError::DigestMismatch {
                registry: r.registry.clone(),
                repository: r.repository.clone(),
                what: format!("blob `{}`", desc.digest),
                expected: desc.digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Streams a blob to `dest` through `dest.tmp`, verifying sha256 and size before the rename.
    /// The GET is retried as every request is; a transfer cut short or stalled on the way
    /// starts again from the beginning (`pull_retry` extra attempts).
    pub async fn fetch_blob(
        &self,
        r: &Reference,
        desc: &Descriptor,
        dest: &Path,
    ) -> Result<(), RegistryError> {
        let t = Target::new(&r.api_host(), &r.repository, "pull blob", Direction::Pull);
        let url = self.url(&t, &format!("{}/blobs/{}", r.repository, desc.digest))?;
        let policy: RetryPolicy = self.policy(Direction::Pull);
        let mut attempt = 0;
        loop {
            let resp = self
                .send(&t, policy.extra_attempts, |http| Ok(http.get(url.clone())))
                .await?;
            if !resp.status().is_success() {
                return Err(self
                    .status_error(&t, resp, &format!("blob `{}`", desc.digest))
                    .await);
            }
            match self.stream_blob(&t, r, resp, desc, dest).await {
                Err(e) if attempt < policy.extra_attempts && is_transfer_failure(&e) => {
                    tracing::debug!(digest = %desc.digest, attempt, error = %e, "blob download cut short, starting again");
                    tokio::time::sleep(policy.delay(attempt, None)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn stream_blob(
        &self,
        t: &Target,
        r: &Reference,
        mut resp: reqwest::Response,
        desc: &Descriptor,
        dest: &Path,
    ) -> Result<(), RegistryError> {
        let tmp = tmp_path(dest);
        let io = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| RegistryError::Io {
                action,
                path,
                source,
            }
        };
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .map_err(io("cannot create", &tmp))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let result: Result<(), RegistryError> = async {
            while let Some(chunk) = self.next_chunk(t, &mut resp).await? {
                size += chunk.len() as u64;
                if size > desc.size {
                    break;
                }
                hasher.update(&chunk);
                file.write_all(&chunk)
                    .await
                    .map_err(io("cannot write", &tmp))?;
            }
            file.flush().await.map_err(io("cannot write", &tmp))?;
            Ok(())
        }
        .await;
        drop(file);
        let check = result.and_then(|()| {
            if size != desc.size {
                return Err(RegistryError::SizeMismatch {
                    registry: r.registry.clone(),
                    repository: r.repository.clone(),
                    digest: desc.digest.clone(),
                    expected: desc.size,
                    actual: size,
                });
            }
            let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
            if actual != desc.digest {
                return Err(RegistryError::DigestMismatch {
                    registry: r.registry.clone(),
                    repository: r.repository.clone(),
                    what: format!("blob `{}`", desc.digest),
                    expected: desc.digest.clone(),
                    actual,
                });
            }
            Ok(())
        });
        if let Err(e) = check {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        tokio::fs::rename(&tmp, dest)
            .await
            .map_err(io("cannot rename into place", dest))
    }
}

fn tmp_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_os_string();
    s.push(".tmp");
    PathBuf::from(s)
}

fn invalid(t: &Target, reason: String) -> RegistryError {
    RegistryError::InvalidResponse {
        registry: t.host.clone(),
        repository: t.repository.clone(),
        operation: t.operation,
        reason,
    }
}

/// The `mediaType` a manifest declares, or what its shape says (OCI allows omitting it).
fn media_type_of(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        config: Option<serde_json::Value>,
    }
    let p: Probe = serde_json::from_slice(bytes).ok()?;
    match p {
        Probe {
            media_type: Some(m),
            ..
        } if !m.is_empty() => Some(m),
        Probe {
            manifests: Some(_), ..
        } => Some(image::OCI_INDEX.to_string()),
        Probe {
            config: Some(_), ..
        } => Some(image::OCI_MANIFEST.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::RegistryOptions;

    fn client(opts: RegistryOptions) -> Client {
        Client::with_credentials(opts, Default::default()).unwrap()
    }

    #[test]
    fn mirrors_and_maps_come_before_the_original() {
        let c = client(RegistryOptions {
            mirrors: vec![
                "mirror.gcr.io".into(),
                "https://proxy.example:5000/hub/".into(),
            ],
            registry_maps: vec![
                ("index.docker.io".into(), "a.example;b.example/p".into()),
                ("quay.io".into(), "q.example".into()),
            ],
            ..Default::default()
        });
        let r = Reference::parse("busybox:1.36").unwrap();
        let got: Vec<String> = c
            .pull_candidates(&r)
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(
            got,
            [
                "a.example/library/busybox:1.36",
                "b.example/p/library/busybox:1.36",
                "mirror.gcr.io/library/busybox:1.36",
                "proxy.example:5000/hub/library/busybox:1.36",
                "docker.io/library/busybox:1.36",
            ]
        );
        let q = Reference::parse("quay.io/o/r:t").unwrap();
        let got: Vec<String> = c
            .pull_candidates(&q)
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(got, ["q.example/o/r:t", "quay.io/o/r:t"]);
        let g = Reference::parse("ghcr.io/o/r:t").unwrap();
        assert_eq!(c.pull_candidates(&g), vec![g.clone()]);
    }

    #[test]
    fn skip_default_fallback_drops_the_original_only_when_redirected() {
        let c = client(RegistryOptions {
            mirrors: vec!["mirror.gcr.io".into()],
            skip_default_registry_fallback: true,
            ..Default::default()
        });
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(c.pull_candidates(&r).len(), 1);
        assert_eq!(c.pull_candidates(&r)[0].registry, "mirror.gcr.io");
        let g = Reference::parse("ghcr.io/o/r").unwrap();
        assert_eq!(c.pull_candidates(&g), vec![g.clone()]);
    }

    #[test]
    fn media_type_from_body() {
        assert_eq!(media_type_of(br#"{"mediaType":"x"}"#).as_deref(), Some("x"));
        assert_eq!(
            media_type_of(br#"{"manifests":[]}"#).as_deref(),
            Some(image::OCI_INDEX)
        );
        assert_eq!(
            media_type_of(br#"{"config":{}}"#).as_deref(),
            Some(image::OCI_MANIFEST)
        );
        assert_eq!(media_type_of(b"nope"), None);
    }
}
