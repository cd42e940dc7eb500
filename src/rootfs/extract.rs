//! Reading layer blobs, and extracting the contents of selected paths for `COPY --from`.
//!
//! Extraction here writes only directories and regular-file contents, under a private spool
//! directory, at paths cleaned of `..` and never through a link: metadata (owners, modes, links)
//! comes from the filesystem index, so nothing an archive says can make gantry write outside the
//! spool directory.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use crate::rootfs::index::clean_path;

#[derive(Debug, thiserror::Error)]
pub enum LayerReadError {
    #[error("reading layer `{path}`: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("layer `{path}` has media type `{media_type}`, which gantry cannot read\nhint: gantry reads gzip and uncompressed tar layers")]
    UnsupportedMediaType { path: PathBuf, media_type: String },
    #[error("a layer reader thread panicked")]
    Panicked,
}

impl LayerReadError {
    pub fn io(path: &Path, source: std::io::Error) -> LayerReadError {
        LayerReadError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Opens a layer blob as a tar stream, decompressing gzip when the media type (or, for an
/// unknown media type, the content) says so.
pub fn open_layer(
    path: &Path,
    media_type: &str,
) -> Result<tar::Archive<Box<dyn Read + Send>>, LayerReadError> {
    let file = File::open(path).map_err(|e| LayerReadError::io(path, e))?;
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let reader: Box<dyn Read + Send> = if media_type.ends_with("gzip") {
        Box::new(GzDecoder::new(reader))
    } else if media_type.ends_with(".tar") || media_type.ends_with("diff.tar") {
        Box::new(reader)
    } else if media_type.contains("zstd") {
        return Err(LayerReadError::UnsupportedMediaType {
            path: path.to_path_buf(),
            media_type: media_type.to_string(),
        });
    } else {
        use std::io::BufRead;
        let head = reader.fill_buf().map_err(|e| LayerReadError::io(path, e))?;
        if head.starts_with(&[0x1f, 0x8b]) {
            Box::new(GzDecoder::new(reader))
        } else {
            Box::new(reader)
        }
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_ignore_zeros(false);
    Ok(archive)
}

/// Whether `path` is `prefix` or lies below it.
pub fn is_within(path: &str, prefix: &str) -> bool {
    prefix == "/"
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Writes the contents of every regular file at or below one of `wanted` (absolute image paths)
/// into `spool`, layer by layer in order so that upper layers win. Returns nothing: the caller
/// asks the filesystem index which files exist in the union and reads them from
/// `spool_path(spool, path)`. Hard links are written as copies of their target's content.
pub fn extract_contents(
    layers: &[(PathBuf, String)],
    wanted: &[String],
    spool: &Path,
) -> Result<(), LayerReadError> {
    for (blob, media_type) in layers {
        let mut archive = open_layer(blob, media_type)?;
        let entries = archive.entries().map_err(|e| LayerReadError::io(blob, e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| LayerReadError::io(blob, e))?;
            let full = clean_path(&String::from_utf8_lossy(&entry.path_bytes()));
            if !wanted.iter().any(|w| is_within(&full, w)) {
                continue;
            }
            let dest = spool_path(spool, &full);
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    if let Some(parent) = dest.parent() {
                        std::fs::create_dir_all(parent)
                            .map_err(|e| LayerReadError::io(&dest, e))?;
                    }
                    let _ = std::fs::remove_file(&dest);
                    let mut out = File::create(&dest).map_err(|e| LayerReadError::io(&dest, e))?;
                    std::io::copy(&mut entry, &mut out)
                        .map_err(|e| LayerReadError::io(&dest, e))?;
                }
                tar::EntryType::Link => {
                    let target = entry
                        .link_name_bytes()
                        .map(|b| clean_path(&String::from_utf8_lossy(&b)))
                        .unwrap_or_default();
                    let src = spool_path(spool, &target);
                    if src.is_file() {
                        if let Some(parent) = dest.parent() {
                            std::fs::create_dir_all(parent)
                                .map_err(|e| LayerReadError::io(&dest, e))?;
                        }
                        let _ = std::fs::remove_file(&dest);
                        std::fs::copy(&src, &dest).map_err(|e| LayerReadError::io(&dest, e))?;
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Where `extract_contents` put the content of an image path.
pub fn spool_path(spool: &Path, image_path: &str) -> PathBuf {
    spool.join(clean_path(image_path).trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within() {
        assert!(is_within("/a/b", "/a"));
        assert!(is_within("/a", "/a"));
        assert!(!is_within("/ab", "/a"));
        assert!(is_within("/x", "/"));
    }

    #[test]
    fn spool_paths_never_leave_the_spool() {
        let spool = Path::new("/tmp/spool");
        assert_eq!(
            spool_path(spool, "/../../etc/passwd"),
            Path::new("/tmp/spool/etc/passwd")
        );
        assert_eq!(spool_path(spool, "a/../../b"), Path::new("/tmp/spool/b"));
    }
}
