//! Where a build context comes from: kaniko's `--context` sources turned into a local directory.
//!
//! A directory context is used in place. Every other source (a gzip tar file, standard input, a
//! git repository, an S3, GCS or Azure Blob object) is fetched into a fresh directory inside the
//! build's work directory, which the caller removes with the work directory, so a failed fetch
//! leaves nothing behind. Archives are streamed from their source through the gzip decoder into
//! the in-root extractor of [`tar`]: nothing is held whole in memory, and no entry can land
//! outside the context directory.

pub mod azure;
pub mod gcs;
pub mod git;
mod http;
pub mod s3;
pub mod tar;

use std::path::{Path, PathBuf};

pub use git::{GitContext, GitOptions};

/// Where the build context comes from, as given to `--context` (and `--git`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContextSource {
    /// `dir://path` or a bare path: used in place.
    Dir(PathBuf),
    /// `tar://path.tar.gz`: a gzip tar file.
    Tar(PathBuf),
    /// `tar://stdin`: a gzip tar on standard input.
    Stdin,
    /// `git://host/repo.git#ref#commit`: cloned over HTTPS.
    Git(GitContext),
    /// `s3://bucket/key.tar.gz`.
    S3(s3::S3Object),
    /// `gs://bucket/object.tar.gz`.
    Gcs(gcs::GcsObject),
    /// `https://account.blob.core.windows.net/container/blob.tar.gz`.
    Azure(azure::AzureBlob),
}

impl ContextSource {
    /// Parses a `--context` value with the `--git` options (which only git sources use).
    pub fn parse(raw: &str, git_options: &[String]) -> Result<ContextSource, SourceError> {
        if let Some(path) = raw.strip_prefix("dir://") {
            return Ok(ContextSource::Dir(PathBuf::from(path)));
        }
        if raw == "tar://stdin" {
            return Ok(ContextSource::Stdin);
        }
        if let Some(path) = raw.strip_prefix("tar://") {
            if path.is_empty() {
                return Err(SourceError::Invalid {
                    source_name: raw.to_string(),
                    reason: "no archive path".into(),
                    hint: "use `tar://path/to/context.tar.gz` or `tar://stdin`",
                });
            }
            return Ok(ContextSource::Tar(PathBuf::from(path)));
        }
        if raw.starts_with("git://") {
            return Ok(ContextSource::Git(GitContext::parse(raw, git_options)?));
        }
        if raw.starts_with("s3://") {
            return Ok(ContextSource::S3(s3::S3Object::parse(raw)?));
        }
        if raw.starts_with("gs://") {
            return Ok(ContextSource::Gcs(gcs::GcsObject::parse(raw)?));
        }
        if azure::is_azure_url(raw) {
            return Ok(ContextSource::Azure(azure::AzureBlob::parse(raw)?));
        }
        if let Some((scheme, _)) = raw.split_once("://") {
            return Err(SourceError::Invalid {
                source_name: raw.to_string(),
                reason: format!("`{scheme}://` is not a context source"),
                hint: "use a directory (`dir://path` or a bare path), `tar://file.tar.gz`, \
                       `tar://stdin`, `git://host/repo.git`, `s3://`, `gs://`, or \
                       `https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB`",
            });
        }
        Ok(ContextSource::Dir(PathBuf::from(raw)))
    }

    /// The source as the user named it, with any credentials in it replaced by `***`: what
    /// messages show.
    pub fn display_name(&self) -> String {
        match self {
            ContextSource::Dir(p) => format!("dir://{}", p.display()),
            ContextSource::Tar(p) => format!("tar://{}", p.display()),
            ContextSource::Stdin => "tar://stdin".into(),
            ContextSource::Git(g) => g.display_name(),
            ContextSource::S3(o) => format!("s3://{}/{}", o.bucket, o.key),
            ContextSource::Gcs(o) => format!("gs://{}/{}", o.bucket, o.object),
            ContextSource::Azure(b) => b.display_name(),
        }
    }
}

/// Why a context source could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("context `{source_name}`: {reason}\nhint: {hint}")]
    Invalid {
        source_name: String,
        reason: String,
        hint: &'static str,
    },
    // The causes below are fields, not `#[source]`s: the message shows them before its `hint:`
    // line, and `{:#}` would print a source again after the hint.
    #[error("context `{source_name}`: cannot {action} `{}`: {cause}\nhint: {hint}", path.display())]
    Io {
        source_name: String,
        action: &'static str,
        path: PathBuf,
        hint: &'static str,
        cause: std::io::Error,
    },
    #[error("context `{source_name}`: the archive is not gzip-compressed\nhint: create it with `tar -C DIR -czf context.tar.gz .`")]
    NotGzip { source_name: String },
    #[error("context `{source_name}`: the archive is corrupt or truncated: {cause}\nhint: create it again with `tar -C DIR -czf context.tar.gz .`")]
    Corrupt {
        source_name: String,
        cause: std::io::Error,
    },
    #[error("context `{source_name}`: archive entry `{entry}` is refused: {reason}\nhint: the archive is malformed or crafted to write outside the context; create it with `tar -C DIR -czf context.tar.gz .`")]
    Refused {
        source_name: String,
        entry: String,
        reason: &'static str,
    },
    #[error("context `{source_name}`: cannot write archive entry `{entry}`: {cause}\nhint: check that the work directory (GANTRY_WORK_DIR) is writable and has free space")]
    Write {
        source_name: String,
        entry: String,
        cause: std::io::Error,
    },
    #[error("context `{source_name}`: {what} does not exist (the server answered {status})\nhint: check the bucket and object names")]
    NotFound {
        source_name: String,
        what: String,
        status: u16,
    },
    #[error("context `{source_name}`: the credentials were rejected (the server answered {status}{detail})\nhint: {hint}")]
    Rejected {
        source_name: String,
        status: u16,
        detail: String,
        hint: &'static str,
    },
    #[error("context `{source_name}`: access denied (the server answered {status}{detail})\nhint: {hint}")]
    Denied {
        source_name: String,
        status: u16,
        detail: String,
        hint: &'static str,
    },
    #[error("context `{source_name}`: the server answered {status}{detail}")]
    Status {
        source_name: String,
        status: u16,
        detail: String,
    },
    #[error("context `{source_name}`: cannot reach `{endpoint}`: {message}\nhint: check the address and that the server is reachable from the build machine")]
    Unreachable {
        source_name: String,
        endpoint: String,
        message: String,
    },
    #[error("context `{source_name}`: {message}\nhint: {hint}")]
    Credentials {
        source_name: String,
        message: String,
        hint: &'static str,
    },
    #[error("context `{source_name}`: {message}\nhint: {hint}")]
    Git {
        source_name: String,
        message: String,
        hint: &'static str,
    },
}

/// Turns `source` into a local directory. A directory source is returned as it is; any other is
/// fetched into `dest_dir/context` (created; `dest_dir` must exist), and on failure that
/// directory is removed again.
pub fn fetch(source: &ContextSource, dest_dir: &Path) -> Result<PathBuf, SourceError> {
    if let ContextSource::Dir(p) = source {
        return Ok(p.clone());
    }
    let name = source.display_name();
    let dest = dest_dir.join("context");
    std::fs::create_dir(&dest).map_err(|e| SourceError::Io {
        source_name: name.clone(),
        action: "create the context directory",
        path: dest.clone(),
        hint: "check that the work directory (GANTRY_WORK_DIR) is writable",
        cause: e,
    })?;
    let result = match source {
        ContextSource::Dir(_) => Ok(()),
        ContextSource::Tar(path) => tar::extract_file(path, &dest, &name).map(|_| ()),
        ContextSource::Stdin => {
            tar::extract_gzip(std::io::stdin().lock(), &dest, &name).map(|_| ())
        }
        ContextSource::Git(g) => git::clone(g, &dest, &name),
        ContextSource::S3(o) => s3::fetch(o, &dest, &name),
        ContextSource::Gcs(o) => gcs::fetch(o, &dest, &name),
        ContextSource::Azure(b) => azure::fetch(b, &dest, &name),
    };
    match result {
        Ok(()) => {
            tracing::info!(context = %name, dir = %dest.display(), "fetched the build context");
            Ok(dest)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dest);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests;
