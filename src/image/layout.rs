//! The OCI image layout writer (`--oci-layout-path`, `--tar-path`'s sibling): an `oci-layout`
//! file, `index.json` and content-addressed blobs, readable by skopeo, umoci, crane and podman.
//!
//! Layer blobs already sit in gantry's blob directory, named by digest; they are hard-linked into
//! the layout when it is on the same filesystem (no copy of hundreds of megabytes) and copied
//! otherwise. Like kaniko, a second write to the same layout adds to `index.json`, replacing an
//! entry that carries the same `org.opencontainers.image.ref.name`.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::{canonical_json, sha256_digest, Descriptor, Index, OCI_INDEX};

/// The annotation naming an image in an OCI layout's `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Why an image could not be written to disk.
#[derive(Debug, thiserror::Error)]
pub enum ImageWriteError {
    #[error("cannot write `{}`: {source}\nhint: check that the directory exists, is writable and has free space", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read blob `{digest}` from `{}`: {source}\nhint: the build's blob directory is incomplete; run the build again", path.display())]
    MissingBlob {
        digest: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the existing `{}` is not a valid OCI index: {source}\nhint: point the layout path at an empty directory or an OCI image layout", path.display())]
    BadIndex {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("`{digest}` is not a sha256 digest\nhint: gantry writes only `sha256:<64 hex digits>` digests")]
    BadDigest { digest: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ImageWriteError + '_ {
    move |source| ImageWriteError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The 64 hex digits of a `sha256:` digest, checked, so it is safe as a file name.
pub(crate) fn digest_hex(digest: &str) -> Result<&str, ImageWriteError> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(hex)
        }
        _ => Err(ImageWriteError::BadDigest {
            digest: digest.to_string(),
        }),
    }
}

/// Writes `bytes` to `path` through a temp file in the same directory and a rename, so readers
/// never see a half-written file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ImageWriteError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err(dir))?;
    io::Write::write_all(&mut tmp, bytes).map_err(io_err(path))?;
    tmp.persist(path).map_err(|e| ImageWriteError::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

/// Puts the blob `digest` from `blob_dir` into `dest_dir`: a hard link when possible, else a copy.
fn link_or_copy(blob_dir: &Path, dest_dir: &Path, digest: &str) -> Result<(), ImageWriteError> {
    let hex = digest_hex(digest)?;
    let dest = dest_dir.join(hex);
    if dest.exists() {
        return Ok(());
    }
    let src = blob_dir.join(hex);
    if std::fs::hard_link(&src, &dest).is_ok() {
        return Ok(());
    }
    let missing = |source| ImageWriteError::MissingBlob {
        digest: digest.to_string(),
        path: src.clone(),
        source,
    };
    let mut input = std::fs::File::open(&src).map_err(missing)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dest_dir).map_err(io_err(dest_dir))?;
    io::copy(&mut input, &mut tmp).map_err(io_err(&dest))?;
    tmp.persist(&dest).map_err(|e| ImageWriteError::Io {
        path: dest.clone(),
        source: e.error,
    })?;
    Ok(())
}

/// Writes (or adds to) an OCI image layout at `dir`: `oci-layout`, the layer blobs from
/// `blob_dir`, the config and manifest blobs, and one `index.json` entry per ref name (an entry
/// with the same ref name is replaced; with no ref names, an unnamed entry for the same manifest
/// is). Returns the manifest's descriptor.
pub fn write_oci_layout(
    dir: &Path,
    blob_dir: &Path,
    manifest_bytes: &[u8],
    media_type: &str,
    config_bytes: &[u8],
    layers: &[Descriptor],
    ref_names: &[String],
) -> Result<Descriptor, ImageWriteError> {
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
    let marker = dir.join("oci-layout");
    if !marker.exists() {
        write_atomic(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    }
    for layer in layers {
        link_or_copy(blob_dir, &blobs, &layer.digest)?;
    }
    for bytes in [config_bytes, manifest_bytes] {
        let digest = sha256_digest(bytes);
        let path = blobs.join(digest_hex(&digest)?);
        if !path.exists() {
            write_atomic(&path, bytes)?;
        }
    }
    let manifest = Descriptor::new(
        media_type,
        sha256_digest(manifest_bytes),
        manifest_bytes.len() as u64,
    );

    let index_path = dir.join("index.json");
    let mut index = match std::fs::read(&index_path) {
        Ok(bytes) => {
            serde_json::from_slice::<Index>(&bytes).map_err(|source| ImageWriteError::BadIndex {
                path: index_path.clone(),
                source,
            })?
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Index {
            schema_version: 2,
            media_type: Some(OCI_INDEX.to_string()),
            manifests: Vec::new(),
            annotations: BTreeMap::new(),
        },
        Err(source) => {
            return Err(ImageWriteError::Io {
                path: index_path,
                source,
            })
        }
    };
    if ref_names.is_empty() {
        index
            .manifests
            .retain(|d| d.digest != manifest.digest || d.annotations.contains_key(REF_NAME));
        index.manifests.push(manifest.clone());
    } else {
        index.manifests.retain(|d| {
            d.annotations
                .get(REF_NAME)
                .is_none_or(|name| !ref_names.contains(name))
        });
        for name in ref_names {
            let mut entry = manifest.clone();
            entry.annotations.insert(REF_NAME.to_string(), name.clone());
            index.manifests.push(entry);
        }
    }
    write_atomic(&index_path, &canonical_json(&index))?;
    Ok(manifest)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::process::Command;

    use super::*;
    use crate::image::{ImageConfig, Manifest, MediaTypes, RootFs};
    use crate::layer::{write_layer, EntryKind, EntryMeta, EntrySource, LayerEntry, LayerOptions};

    /// A one-layer image written with gantry's own layer writer.
    pub(crate) struct TinyImage {
        pub _dir: tempfile::TempDir,
        pub blob_dir: PathBuf,
        pub manifest: Vec<u8>,
        pub config: Vec<u8>,
        pub layers: Vec<Descriptor>,
        pub diff_id: String,
    }

    pub(crate) fn tiny_image(media_types: MediaTypes) -> TinyImage {
        let dir = tempfile::tempdir().unwrap();
        let blob_dir = dir.path().join("blobs");
        std::fs::create_dir(&blob_dir).unwrap();
        let src = dir.path().join("hello.txt");
        std::fs::write(&src, b"hello from gantry\n").unwrap();
        let meta = |mode| EntryMeta {
            mode,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: Vec::new(),
        };
        let entries = vec![
            LayerEntry {
                path: "/app".into(),
                kind: EntryKind::Dir,
                meta: meta(0o755),
            },
            LayerEntry {
                path: "/app/hello.txt".into(),
                kind: EntryKind::File {
                    source: EntrySource::Path(src),
                    size: 18,
                },
                meta: meta(0o644),
            },
            LayerEntry {
                path: "/app/run.sh".into(),
                kind: EntryKind::File {
                    source: EntrySource::Bytes(b"#!/bin/sh\necho hi\n".to_vec()),
                    size: 18,
                },
                meta: meta(0o755),
            },
        ];
        let opts = LayerOptions {
            media_types,
            mtime_clamp: Some(0),
        };
        let blob = write_layer(&blob_dir, entries, &opts).unwrap();
        let config = ImageConfig {
            architecture: "amd64".into(),
            os: "linux".into(),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: vec![blob.diff_id.clone()],
            },
            ..Default::default()
        };
        let config = canonical_json(&config);
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(media_types.manifest().into()),
            config: Descriptor::new(
                media_types.config(),
                sha256_digest(&config),
                config.len() as u64,
            ),
            layers: vec![blob.descriptor()],
            annotations: BTreeMap::new(),
        };
        TinyImage {
            _dir: dir,
            blob_dir,
            manifest: canonical_json(&manifest),
            config,
            layers: vec![blob.descriptor()],
            diff_id: blob.diff_id,
        }
    }

    fn run(cmd: &mut Command) -> String {
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn write(img: &TinyImage, layout: &Path, refs: &[&str]) -> Descriptor {
        let refs: Vec<String> = refs.iter().map(|s| s.to_string()).collect();
        write_oci_layout(
            layout,
            &img.blob_dir,
            &img.manifest,
            crate::image::OCI_MANIFEST,
            &img.config,
            &img.layers,
            &refs,
        )
        .unwrap()
    }

    #[test]
    fn index_entries_are_added_and_replaced_by_ref_name() {
        let img = tiny_image(MediaTypes::Oci);
        let out = tempfile::tempdir().unwrap();
        let layout = out.path().join("layout");
        let desc = write(&img, &layout, &["latest", "v1"]);
        assert_eq!(desc.digest, sha256_digest(&img.manifest));
        write(&img, &layout, &["v1"]);
        write(&img, &layout, &[]);
        write(&img, &layout, &[]);
        let index: Index =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
        let names: Vec<Option<&str>> = index
            .manifests
            .iter()
            .map(|d| d.annotations.get(REF_NAME).map(String::as_str))
            .collect();
        assert_eq!(names, vec![Some("latest"), Some("v1"), None]);
        assert!(index.manifests.iter().all(|d| d.digest == desc.digest));
        assert_eq!(
            std::fs::read(layout.join("oci-layout")).unwrap(),
            br#"{"imageLayoutVersion":"1.0.0"}"#
        );
        // Layer blobs are hard links to the blob directory's files when on one filesystem.
        use std::os::unix::fs::MetadataExt;
        let hex = digest_hex(&img.layers[0].digest).unwrap();
        let linked = std::fs::metadata(layout.join("blobs/sha256").join(hex)).unwrap();
        assert_eq!(
            linked.ino(),
            std::fs::metadata(img.blob_dir.join(hex)).unwrap().ino()
        );
        let err = write_oci_layout(
            &layout,
            &img.blob_dir,
            &img.manifest,
            crate::image::OCI_MANIFEST,
            &img.config,
            &[Descriptor::new("x", "sha256:../../etc", 1)],
            &[],
        )
        .unwrap_err();
        assert!(matches!(err, ImageWriteError::BadDigest { .. }), "{err}");
    }

    #[test]
    fn skopeo_and_umoci_read_the_layout() {
        let img = tiny_image(MediaTypes::Oci);
        let out = tempfile::tempdir().unwrap();
        let layout = out.path().join("layout");
        let desc = write(&img, &layout, &["latest"]);
        let json =
            run(Command::new("skopeo")
                .args(["inspect", &format!("oci:{}:latest", layout.display())]));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["Digest"], desc.digest.as_str());
        assert_eq!(v["Layers"][0], img.layers[0].digest.as_str());
        assert_eq!(v["Architecture"], "amd64");
        if !rustix::process::geteuid().is_root() {
            // umoci unpack without --rootless needs root to chown; say so rather than pass.
            panic!("this test unpacks as root; run the tests as root");
        }
        let bundle = out.path().join("bundle");
        run(Command::new("umoci").args([
            "unpack",
            "--image",
            &format!("{}:latest", layout.display()),
            bundle.to_str().unwrap(),
        ]));
        let rootfs = bundle.join("rootfs/app");
        assert_eq!(
            std::fs::read(rootfs.join("hello.txt")).unwrap(),
            b"hello from gantry\n"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(rootfs.join("run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755);
    }
}
