//! Pushing: blobs first (HEAD to skip what is there, cross-repository mount where the registry
//! allows it, else a streamed upload from a file), the manifest last with its exact bytes.
//!
//! A blob is never held in memory: uploads stream from the file with a known `Content-Length`,
//! and a blob that lives on another registry is spooled to a temporary file first. A failed
//! upload starts again from the beginning of the file.

use std::path::{Path, PathBuf};

use futures_util::{StreamExt, TryStreamExt};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::StatusCode;

use super::auth;
use super::client::{Client, Target};
use super::error::RegistryError;
use super::idle::Progress;
use super::reference::Reference;
use super::retry;
use super::transport::Direction;
use crate::image::{self, Descriptor};

/// How many blobs are pushed at once.
const PUSH_CONCURRENCY: usize = 4;

/// An image ready to push: the manifest's exact bytes and every blob it names.
#[derive(Clone, Debug)]
pub struct PushImage {
    pub manifest_bytes: Vec<u8>,
    pub media_type: String,
    pub blobs: Vec<PushBlob>,
}

#[derive(Clone, Debug)]
pub struct PushBlob {
    pub descriptor: Descriptor,
    pub source: BlobSource,
}

/// Where a blob's bytes come from.
#[derive(Clone, Debug)]
pub enum BlobSource {
    File(PathBuf),
    /// A repository where the blob already exists (a base image layer).
    Remote(Reference),
}

impl Client {
    /// Pushes every blob (bounded concurrency), then the manifest; returns the manifest digest.
    pub async fn push_image(
        &self,
        dest: &Reference,
        img: &PushImage,
    ) -> Result<String, RegistryError> {
        futures_util::stream::iter(img.blobs.iter().map(|b| self.push_blob(dest, b)))
            .buffer_unordered(PUSH_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        self.put_manifest(dest, &img.manifest_bytes, &img.media_type)
            .await
    }

    /// Puts a manifest or index under the reference's tag (or digest); returns its digest.
    pub async fn put_manifest(
        &self,
        dest: &Reference,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<String, RegistryError> {
        let t = Target::new(
            &dest.api_host(),
            &dest.repository,
            "push manifest",
            Direction::Push,
        );
        let digest = image::sha256_digest(bytes);
        let url = self.url(
            &t,
            &format!(
                "{}/manifests/{}",
                dest.repository,
                dest.tag.as_deref().unwrap_or(&digest)
            ),
        )?;
        let retries = self.policy(Direction::Push).extra_attempts;
        let resp = self
            .send(&t, retries, |http| {
                Ok(http
                    .put(url.clone())
                    .header(CONTENT_TYPE, media_type)
                    .body(bytes.to_vec()))
            })
            .await?;
        if resp.status() != StatusCode::CREATED && !resp.status().is_success() {
            return Err(self.status_error(&t, resp, "repository").await);
        }
        if let Some(sent) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        {
            if sent.starts_with("sha256:") && sent != digest {
                return Err(RegistryError::DigestMismatch {
                    registry: dest.registry.clone(),
                    repository: dest.repository.clone(),
                    what: "pushed manifest".into(),
                    expected: digest,
                    actual: sent.to_string(),
                });
            }
        }
        Ok(digest)
    }

    /// Whether a blob exists in a repository (HEAD).
    pub async fn blob_exists(
        &self,
        repo: &Reference,
        digest: &str,
        direction: Direction,
    ) -> Result<bool, RegistryError> {
        let t = Target::new(&repo.api_host(), &repo.repository, "check blob", direction);
        let url = self.url(&t, &format!("{}/blobs/{digest}", repo.repository))?;
        let retries = self.policy(direction).extra_attempts;
        let resp = self
            .send(&t, retries, |http| Ok(http.head(url.clone())))
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.status_error(&t, resp, "repository").await),
        }
    }

    async fn push_blob(&self, dest: &Reference, blob: &PushBlob) -> Result<(), RegistryError> {
        let desc = &blob.descriptor;
        if self
            .blob_exists(dest, &desc.digest, Direction::Push)
            .await?
        {
            tracing::debug!(digest = %desc.digest, "blob already present");
            return Ok(());
        }
        match &blob.source {
            BlobSource::File(path) => self.upload_file(dest, desc, path).await,
            BlobSource::Remote(from) => {
                if from.api_host() == dest.api_host()
                    && self.mount(dest, from, &desc.digest).await?
                {
                    return Ok(());
                }
                // Spool from the source, then upload: bounded memory for any blob size.
                let dir = tempfile::tempdir().map_err(|source| RegistryError::Io {
                    action: "cannot create a temporary directory in",
                    path: std::env::temp_dir(),
                    source,
                })?;
                // Removed by the interrupt handler too, should a signal come mid-transfer.
                let _registered = crate::interrupt::Registered::new(dir.path());
                let spool = dir.path().join("blob");
                self.fetch_blob(from, desc, &spool).await?;
                self.upload_file(dest, desc, &spool).await
            }
        }
    }

    /// Tries a cross-repository mount; `true` if the registry mounted the blob (201), `false` if
    /// it declined (202, an upload session we abandon).
    pub async fn mount(
        &self,
        dest: &Reference,
        from: &Reference,
        digest: &str,
    ) -> Result<bool, RegistryError> {
        let mut t = Target::new(
            &dest.api_host(),
            &dest.repository,
            "mount blob",
            Direction::Push,
        );
        t.scopes
            .push(auth::repository_scope(&from.repository, "pull"));
        let mut url = self.url(&t, &format!("{}/blobs/uploads/", dest.repository))?;
        url.query_pairs_mut()
            .append_pair("mount", digest)
            .append_pair("from", &from.repository);
        let retries = self.policy(Direction::Push).extra_attempts;
        let resp = self
            .send(&t, retries, |http| {
                Ok(http.post(url.clone()).header(CONTENT_LENGTH, 0))
            })
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                let location = resp.headers().get(LOCATION).cloned();
                if let Some(loc) = location.and_then(|l| l.to_str().ok().map(str::to_string)) {
                    self.cancel_upload(&t, &url, &loc).await;
                }
                Ok(false)
            }
            _ => Err(self.status_error(&t, resp, "repository").await),
        }
    }

    async fn upload_file(
        &self,
        dest: &Reference,
        desc: &Descriptor,
        path: &Path,
    ) -> Result<(), RegistryError> {
        let policy = self.policy(Direction::Push);
        let mut attempt = 0;
        loop {
            match self.upload_once(dest, desc, path).await {
                Err(e) if attempt < policy.extra_attempts && upload_retryable(&e) => {
                    tracing::debug!(digest = %desc.digest, attempt, "retrying upload from the start");
                    tokio::time::sleep(policy.delay(attempt, None)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// POST an upload session, then one streamed PUT of the whole file with the digest.
    async fn upload_once(
        &self,
        dest: &Reference,
        desc: &Descriptor,
        path: &Path,
    ) -> Result<(), RegistryError> {
        let t = Target::new(
            &dest.api_host(),
            &dest.repository,
            "push blob",
            Direction::Push,
        );
        let start = self.start_upload(&t, &dest.repository).await?;
        let mut url = start;
        url.query_pairs_mut().append_pair("digest", &desc.digest);
        let size = desc.size;
        // Every chunk handed to the connection counts as progress for the idle timeout, so a
        // large upload over a slow link is not mistaken for a stalled one.
        let progress = Progress::new();
        let resp = self
            .send_watched(&t, 0, &progress, |http| {
                let file = std::fs::File::open(path).map_err(|source| RegistryError::Io {
                    action: "cannot open blob",
                    path: path.to_path_buf(),
                    source,
                })?;
                let moved = progress.clone();
                let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file))
                    .inspect_ok(move |_| moved.touch());
                Ok(http
                    .put(url.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, size)
                    .body(reqwest::Body::wrap_stream(stream)))
            })
            .await?;
        if resp.status() != StatusCode::CREATED && !resp.status().is_success() {
            return Err(self.status_error(&t, resp, "upload session").await);
        }
        Ok(())
    }

    /// POST `/blobs/uploads/`; returns the absolute upload URL from `Location`.
    async fn start_upload(&self, t: &Target, repository: &str) -> Result<url::Url, RegistryError> {
        let url = self.url(t, &format!("{repository}/blobs/uploads/"))?;
        let retries = self.policy(t.direction).extra_attempts;
        let resp = self
            .send(t, retries, |http| {
                Ok(http.post(url.clone()).header(CONTENT_LENGTH, 0))
            })
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.status_error(t, resp, "repository").await);
        }
        let loc = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::InvalidResponse {
                registry: t.host.clone(),
                repository: t.repository.clone(),
                operation: t.operation,
                reason: "the upload answer has no Location header".into(),
            })?;
        // Location may be relative to the request URL.
        url.join(loc).map_err(|e| RegistryError::InvalidResponse {
            registry: t.host.clone(),
            repository: t.repository.clone(),
            operation: t.operation,
            reason: format!("invalid upload Location `{loc}`: {e}"),
        })
    }

    async fn cancel_upload(&self, t: &Target, base: &url::Url, location: &str) {
        if let Ok(u) = base.join(location) {
            let cancel = Target {
                operation: "cancel upload",
                ..t.clone()
            };
            // Best effort: an abandoned session expires on its own.
            let _ = self
                .send(&cancel, 0, |http| Ok(http.delete(u.clone())))
                .await;
        }
    }

    /// Checks, before building, that pushing to `dest` will be allowed: starts an upload session
    /// (which needs push permission) and cancels it.
    pub async fn check_push_permission(&self, dest: &Reference) -> Result<(), RegistryError> {
        let t = Target::new(
            &dest.api_host(),
            &dest.repository,
            "push to",
            Direction::Push,
        );
        let url = self.start_upload(&t, &dest.repository).await?;
        self.cancel_upload(&t, &url, url.as_str()).await;
        Ok(())
    }
}

fn upload_retryable(e: &RegistryError) -> bool {
    match e {
        RegistryError::Unreachable { .. } | RegistryError::Stalled { .. } => true,
        RegistryError::Status { status, .. } => {
            StatusCode::from_u16(*status).is_ok_and(retry::is_retryable_status)
        }
        // A session that vanished mid-upload (the registry restarted) is worth a fresh start.
        RegistryError::NotFound { what, .. } => what == "upload session",
        _ => false,
    }
}
