//! The docker-archive writer (`--tar-path`): the `docker save` format that `docker load`,
//! `podman load` and `skopeo copy docker-archive:` read.
//!
//! The archive holds `manifest.json` (`Config`, `RepoTags`, `Layers`), the config as
//! `<hex>.json` and each layer blob as `<hex>.tar.gz` (`<hex>.tar` when stored uncompressed),
//! exactly as it sits in the blob directory: Docker (since 1.10), podman and skopeo all accept
//! gzip-compressed layers and check them against the config's `diff_ids` after decompressing, so
//! nothing is recompressed or expanded. Headers are normalised (mode 0644, owner 0, mtime 0) so
//! the same image gives the same archive bytes.

use std::fs::File;
use std::path::Path;

use serde::Serialize;

use super::layout::{digest_hex, ImageWriteError};
use super::{sha256_digest, Descriptor};

#[derive(Serialize)]
struct ArchiveManifest<'a> {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags")]
    repo_tags: &'a [String],
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

fn header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

/// Writes a docker-archive tarball to `path` (through a temp file and a rename) with the config,
/// the layer blobs from `blob_dir` and a `manifest.json` naming `repo_tags` (for instance
/// `registry.example.com/app:1.0`; may be empty).
pub fn write_docker_tarball(
    path: &Path,
    blob_dir: &Path,
    config_bytes: &[u8],
    layers: &[Descriptor],
    repo_tags: &[String],
) -> Result<(), ImageWriteError> {
    let io_err = |source| ImageWriteError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err)?;
    let mut builder = tar::Builder::new(std::io::BufWriter::new(tmp));

    let config_name = format!("{}.json", digest_hex(&sha256_digest(config_bytes))?);
    builder
        .append_data(
            &mut header(config_bytes.len() as u64),
            &config_name,
            config_bytes,
        )
        .map_err(io_err)?;

    let mut names = Vec::with_capacity(layers.len());
    for layer in layers {
        let hex = digest_hex(&layer.digest)?;
        // Uncompressed layers (`--compressed-caching=false`) are named for what they hold.
        let ext = if layer.media_type.ends_with("gzip") {
            "tar.gz"
        } else {
            "tar"
        };
        let name = format!("{hex}.{ext}");
        // An image may use the same layer twice; the archive stores it once.
        if !names.contains(&name) {
            let src = blob_dir.join(hex);
            let missing = |source| ImageWriteError::MissingBlob {
                digest: layer.digest.clone(),
                path: src.clone(),
                source,
            };
            let file = File::open(&src).map_err(missing)?;
            let size = file.metadata().map_err(missing)?.len();
            builder
                .append_data(&mut header(size), &name, file)
                .map_err(io_err)?;
        }
        names.push(name);
    }

    let manifest = serde_json::to_vec(&[ArchiveManifest {
        config: config_name,
        repo_tags,
        layers: names,
    }])
    .map_err(|e| io_err(e.into()))?;
    builder
        .append_data(
            &mut header(manifest.len() as u64),
            "manifest.json",
            &manifest[..],
        )
        .map_err(io_err)?;
    let writer = builder.into_inner().map_err(io_err)?;
    let tmp = writer.into_inner().map_err(|e| io_err(e.into_error()))?;
    tmp.persist(path).map_err(|e| io_err(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::process::Command;

    use super::*;
    use crate::image::layout::tests::tiny_image;
    use crate::image::MediaTypes;

    fn write(path: &Path) -> crate::image::layout::tests::TinyImage {
        let img = tiny_image(MediaTypes::Docker);
        write_docker_tarball(
            path,
            &img.blob_dir,
            &img.config,
            &img.layers,
            &["gantry.test/tiny:1.0".to_string()],
        )
        .unwrap();
        img
    }

    #[test]
    fn archive_layout_is_docker_save_format_and_deterministic() {
        let out = tempfile::tempdir().unwrap();
        let img = write(&out.path().join("a.tar"));
        write(&out.path().join("b.tar"));
        let a = std::fs::read(out.path().join("a.tar")).unwrap();
        assert_eq!(a, std::fs::read(out.path().join("b.tar")).unwrap());
        let mut archive = tar::Archive::new(&a[..]);
        let mut files = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            files.push((name, data));
        }
        let config_hex = sha256_digest(&img.config)[7..].to_string();
        let layer_hex = img.layers[0].digest[7..].to_string();
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            vec![
                format!("{config_hex}.json").as_str(),
                format!("{layer_hex}.tar.gz").as_str(),
                "manifest.json"
            ]
        );
        assert_eq!(files[0].1, img.config);
        assert_eq!(
            String::from_utf8(files[2].1.clone()).unwrap(),
            format!(
                r#"[{{"Config":"{config_hex}.json","RepoTags":["gantry.test/tiny:1.0"],"Layers":["{layer_hex}.tar.gz"]}}]"#
            )
        );
    }

    #[test]
    fn skopeo_and_podman_load_the_archive() {
        let out = tempfile::tempdir().unwrap();
        let tar_path = out.path().join("image.tar");
        let img = write(&tar_path);
        let inspect = Command::new("skopeo")
            .args(["inspect", &format!("docker-archive:{}", tar_path.display())])
            .output()
            .unwrap();
        assert!(
            inspect.status.success(),
            "{}",
            String::from_utf8_lossy(&inspect.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
        // skopeo decompresses the archive's layer and reports it by its diff_id.
        assert_eq!(v["Layers"][0], img.diff_id.as_str());
        assert_eq!(v["Architecture"], "amd64");

        let root = out.path().join("storage");
        let runroot = out.path().join("run");
        let podman = |args: &[&str]| {
            Command::new("podman")
                .args(["--storage-driver", "vfs", "--root"])
                .arg(&root)
                .arg("--runroot")
                .arg(&runroot)
                .args(args)
                .output()
                .unwrap()
        };
        let load = podman(&["load", "-i", tar_path.to_str().unwrap()]);
        assert!(
            load.status.success(),
            "{}",
            String::from_utf8_lossy(&load.stderr)
        );
        let stdout = String::from_utf8_lossy(&load.stdout);
        assert!(stdout.contains("gantry.test/tiny:1.0"), "{stdout}");
        let inspect = podman(&["image", "inspect", "gantry.test/tiny:1.0"]);
        assert!(
            inspect.status.success(),
            "{}",
            String::from_utf8_lossy(&inspect.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
        assert_eq!(v[0]["RootFS"]["Layers"][0], img.diff_id.as_str());
        let _ = podman(&["rmi", "-a", "-f"]);
    }
}
