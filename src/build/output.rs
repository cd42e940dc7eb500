//! The finished image and where it goes: registries, an OCI layout, a docker tarball, and
//! kaniko's digest files.

use std::path::Path;

use anyhow::{Context as _, Result};
use tracing::info;

use crate::build::executor::{Builder, BuiltImage, StageImage};
use crate::image::{canonical_json, sha256_digest, Descriptor, Manifest};
use crate::registry::{BlobSource, PushBlob, PushImage, Reference};

/// Serialises the config and manifest of the target stage's image.
pub fn finish_image(b: &Builder, mut image: StageImage) -> Result<BuiltImage> {
    image.config.created = Some(b.created.clone());
    let config_bytes = canonical_json(&image.config);
    let config_digest = sha256_digest(&config_bytes);
    std::fs::write(b.blob_path(&config_digest), &config_bytes)
        .context("writing the image config")?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(image.media_types.manifest().to_string()),
        config: Descriptor::new(
            image.media_types.config(),
            config_digest,
            config_bytes.len() as u64,
        ),
        layers: image.layers.iter().map(|l| l.descriptor.clone()).collect(),
        annotations: Default::default(),
    };
    let manifest_bytes = canonical_json(&manifest);
    let digest = sha256_digest(&manifest_bytes);
    Ok(BuiltImage {
        image,
        manifest_bytes,
        config_bytes,
        digest,
    })
}

/// Writes every output the settings ask for: pushes first, then local files, then digest files.
pub async fn write_outputs(b: &Builder, built: &BuiltImage) -> Result<()> {
    let s = &b.settings;
    if !s.no_push {
        for dest in &s.destinations {
            push(b, built, dest).await?;
        }
    }
    if s.oci_layout_path.is_some() || s.tar_path.is_some() {
        b.ensure_local(&built.image.layers).await?;
    }
    let layers: Vec<Descriptor> = built
        .image
        .layers
        .iter()
        .map(|l| l.descriptor.clone())
        .collect();
    let names: Vec<String> = s.destinations.iter().map(|d| d.to_string()).collect();
    if let Some(dir) = &s.oci_layout_path {
        let ref_names: Vec<String> = if s.destinations.is_empty() {
            vec!["latest".into()]
        } else {
            s.destinations
                .iter()
                .map(|d| d.tag.clone().unwrap_or_else(|| "latest".into()))
                .collect()
        };
        let media_type = built.image.media_types.manifest();
        tokio::task::block_in_place(|| {
            crate::image::layout::write_oci_layout(
                dir,
                &b.blob_dir,
                &built.manifest_bytes,
                media_type,
                &built.config_bytes,
                &layers,
                &ref_names,
            )
        })
        .with_context(|| format!("writing OCI layout `{}`", dir.display()))?;
        info!("wrote OCI layout {}", dir.display());
    }
    if let Some(path) = &s.tar_path {
        tokio::task::block_in_place(|| {
            crate::image::tarball::write_docker_tarball(
                path,
                &b.blob_dir,
                &built.config_bytes,
                &layers,
                &names,
            )
        })
        .with_context(|| format!("writing tarball `{}`", path.display()))?;
        info!("wrote tarball {}", path.display());
    }
    write_digest_files(b, built)?;
    Ok(())
}

async fn push(b: &Builder, built: &BuiltImage, dest: &Reference) -> Result<()> {
    let config_digest = sha256_digest(&built.config_bytes);
    let mut blobs = vec![PushBlob {
        descriptor: Descriptor::new(
            built.image.media_types.config(),
            config_digest.clone(),
            built.config_bytes.len() as u64,
        ),
        source: BlobSource::File(b.blob_path(&config_digest)),
    }];
    for layer in &built.image.layers {
        let local = b.blob_path(&layer.descriptor.digest);
        let source = match &layer.remote {
            // A base layer: mounted when it sits on the destination's registry, else taken from
            // the work directory if it was downloaded, else streamed from where it lives.
            Some(remote) if remote.registry == dest.registry || !local.exists() => {
                BlobSource::Remote(remote.clone())
            }
            _ => BlobSource::File(local),
        };
        blobs.push(PushBlob {
            descriptor: layer.descriptor.clone(),
            source,
        });
    }
    let image = PushImage {
        manifest_bytes: built.manifest_bytes.clone(),
        media_type: built.image.media_types.manifest().to_string(),
        blobs,
    };
    let start = std::time::Instant::now();
    // The bar follows the blob files the upload reads; mounted and already-present blobs are
    // not read, so the bar can end short of its total.
    let files: Vec<std::path::PathBuf> = image
        .blobs
        .iter()
        .filter_map(|blob| match &blob.source {
            BlobSource::File(path) => Some(path.clone()),
            BlobSource::Remote(_) => None,
        })
        .collect();
    let progress = crate::report::Progress::watch_reads(format!("pushing {dest}"), &files);
    let result = b.client.push_image(dest, &image).await;
    progress.finish("");
    match result {
        Ok(_) => {
            info!("pushed {dest} in {:.2?}", start.elapsed());
            Ok(())
        }
        Err(e) if b.settings.push_ignore_immutable_tag_errors && is_immutable_tag(&e) => {
            tracing::warn!("{dest} exists and is immutable; not overwritten (--push-ignore-immutable-tag-errors)");
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("pushing {dest}")),
    }
}

/// kaniko's three digest files: the digest; `repo@digest` per destination; `repo:tag@digest`
/// per destination.
fn write_digest_files(b: &Builder, built: &BuiltImage) -> Result<()> {
    let s = &b.settings;
    let write = |path: &Path, text: String| {
        std::fs::write(path, text).with_context(|| format!("writing `{}`", path.display()))
    };
    if let Some(p) = &s.digest_file {
        write(p, built.digest.clone())?;
    }
    if let Some(p) = &s.image_name_with_digest_file {
        let lines: Vec<String> = s
            .destinations
            .iter()
            .map(|d| format!("{}/{}@{}", d.registry, d.repository, built.digest))
            .collect();
        write(
            p,
            lines.join("\n") + if lines.is_empty() { "" } else { "\n" },
        )?;
    }
    if let Some(p) = &s.image_name_tag_with_digest_file {
        let lines: Vec<String> = s
            .destinations
            .iter()
            .map(|d| {
                format!(
                    "{}/{}:{}@{}",
                    d.registry,
                    d.repository,
                    d.tag.as_deref().unwrap_or("latest"),
                    built.digest
                )
            })
            .collect();
        write(
            p,
            lines.join("\n") + if lines.is_empty() { "" } else { "\n" },
        )?;
    }
    Ok(())
}

/// Whether a failed manifest push is a registry refusing to overwrite an immutable tag (ECR's
/// `TAG_INVALID`, Harbor's and others' "immutable" messages).
fn is_immutable_tag(e: &crate::registry::RegistryError) -> bool {
    use crate::registry::RegistryError;
    match e {
        RegistryError::Status { message, .. } | RegistryError::Forbidden { message, .. } => {
            let m = message.to_ascii_lowercase();
            m.contains("tag_invalid") || m.contains("immutable")
        }
        _ => false,
    }
}
