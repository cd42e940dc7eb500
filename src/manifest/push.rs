//! Pushing an index: resolve every source of an [`IndexSpec`] against its registry, decide each
//! entry's platform, flatten sources that are indexes, refuse duplicates, then write - children
//! first (by digest, into the target repository when they live elsewhere), the index by digest,
//! and the tags last, so that no tag moves unless everything it points at is in place.
//!
//! Resolution ([`resolve`]) only reads; [`push`] writes. Every bad input is found by the first.

use std::collections::BTreeMap;

use super::index::{self, EntryDescriptor, EntryPlatform, IndexKind, SourceIndex};
use super::spec::{IndexSpec, SpecPlatform};
use super::ManifestError;
use crate::image::{self, ImageConfig, Manifest};
use crate::registry::{BlobSource, Client, PushBlob, PushImage, Reference, RegistryError};

/// One entry of the index, with where its manifest comes from.
#[derive(Clone, Debug)]
pub struct ResolvedEntry {
    pub descriptor: EntryDescriptor,
    /// The source image as the spec wrote it (for messages).
    pub image: String,
    /// The source repository, pinned to this entry's digest.
    pub source: Reference,
    /// The entry's manifest bytes, exactly as the source registry served them.
    pub manifest_bytes: Vec<u8>,
}

/// A fully resolved index: nothing left to check before writing.
#[derive(Clone, Debug)]
pub struct ResolvedIndex {
    /// The target repository, tag as given.
    pub target: Reference,
    /// Every tag the index goes under: the target's first, then `tags`, without repeats.
    pub tags: Vec<String>,
    pub kind: IndexKind,
    pub entries: Vec<ResolvedEntry>,
    pub bytes: Vec<u8>,
    pub digest: String,
}

impl ResolvedIndex {
    pub fn media_type(&self) -> &'static str {
        self.kind.media_type()
    }
}

fn parse_ref(what: &'static str, value: &str) -> Result<Reference, ManifestError> {
    Reference::parse(value).map_err(|source| ManifestError::BadReference {
        what,
        value: value.to_string(),
        source: Box::new(source),
    })
}

/// Parses the target and the tags; the target must be a tag, not a digest.
pub fn target_and_tags(spec: &IndexSpec) -> Result<(Reference, Vec<String>), ManifestError> {
    let target = parse_ref("target image", &spec.image)?;
    if target.digest.is_some() {
        return Err(ManifestError::TargetHasDigest {
            target: spec.image.clone(),
        });
    }
    let mut tags = vec![target.tag.clone().unwrap_or_else(|| "latest".into())];
    for tag in &spec.tags {
        // The reference grammar checks the tag for us.
        if let Err(e) = Reference::parse(&format!("{}:{tag}", target.name())) {
            let reason = match e {
                RegistryError::InvalidReference { reason, .. } => reason,
                other => other.to_string(),
            };
            return Err(ManifestError::BadTag {
                tag: tag.clone(),
                reason,
            });
        }
        if !tags.contains(tag) {
            tags.push(tag.clone());
        }
    }
    Ok((target, tags))
}

/// The registry hosts a spec involves (target and sources), for `--plain-http`.
pub fn hosts(spec: &IndexSpec) -> Vec<String> {
    let mut out: Vec<String> = std::iter::once(&spec.image)
        .chain(spec.manifests.iter().map(|m| &m.image))
        .filter_map(|i| Reference::parse(i).ok())
        .map(|r| r.api_host())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Resolves every source and builds the index bytes. Reads only.
pub async fn resolve(
    client: &Client,
    spec: &IndexSpec,
    kind: IndexKind,
    ignore_missing: bool,
) -> Result<ResolvedIndex, ManifestError> {
    if kind == IndexKind::Docker && !spec.annotations.is_empty() {
        return Err(ManifestError::DockerAnnotations);
    }
    let (target, tags) = target_and_tags(spec)?;
    if spec.manifests.is_empty() {
        return Err(ManifestError::NoManifests);
    }
    let mut images = Vec::new();
    let mut attestations = Vec::new();
    for source in &spec.manifests {
        let r = parse_ref("source image", &source.image)?;
        let fetched = match client.get_manifest(&r).await {
            Ok(f) => f,
            Err(RegistryError::NotFound { .. }) if ignore_missing => {
                tracing::warn!(
                    "source image `{}` is missing; skipping it (--ignore-missing)",
                    source.image
                );
                continue;
            }
            Err(e) => {
                return Err(ManifestError::MissingSource {
                    image: source.image.clone(),
                    source: Box::new(e),
                })
            }
        };
        if image::is_index(&fetched.media_type) {
            let idx: SourceIndex = serde_json::from_slice(&fetched.bytes).map_err(|e| {
                ManifestError::InvalidDocument {
                    image: source.image.clone(),
                    what: "index",
                    reason: e.to_string(),
                }
            })?;
            for child in idx.manifests {
                let entry = resolve_child(client, &r, &source.image, child).await?;
                if entry.descriptor.is_attestation() {
                    attestations.push(entry);
                } else {
                    images.push(entry);
                }
            }
        } else if image::is_manifest(&fetched.media_type) {
            let config = fetch_config(client, &r, &source.image, &fetched.bytes).await?;
            let platform = resolve_platform(&source.image, &source.platform, None, &config)?;
            images.push(ResolvedEntry {
                descriptor: EntryDescriptor {
                    media_type: fetched.media_type.clone(),
                    digest: fetched.digest.clone(),
                    size: fetched.bytes.len() as u64,
                    urls: Vec::new(),
                    annotations: BTreeMap::new(),
                    data: None,
                    platform: Some(platform),
                    artifact_type: None,
                },
                image: source.image.clone(),
                source: pinned(&r, &fetched.digest),
                manifest_bytes: fetched.bytes,
            });
        } else {
            return Err(ManifestError::UnknownMediaType {
                image: source.image.clone(),
                media_type: fetched.media_type,
            });
        }
    }
    check_duplicates(&images)?;
    images.extend(attestations);
    if images.is_empty() {
        return Err(ManifestError::AllSkipped);
    }
    let descriptors: Vec<EntryDescriptor> = images.iter().map(|e| e.descriptor.clone()).collect();
    let bytes = index::serialize(kind, &descriptors, &spec.annotations);
    Ok(ResolvedIndex {
        target,
        tags,
        kind,
        digest: image::sha256_digest(&bytes),
        entries: images,
        bytes,
    })
}

fn pinned(r: &Reference, digest: &str) -> Reference {
    Reference {
        tag: None,
        digest: Some(digest.to_string()),
        ..r.clone()
    }
}

/// A child of a source index: kept with its own descriptor (manifest-tool ignores the platform
/// the spec gives for an index source); fetched to check it is there and to copy it if needed.
async fn resolve_child(
    client: &Client,
    repo: &Reference,
    image: &str,
    mut child: EntryDescriptor,
) -> Result<ResolvedEntry, ManifestError> {
    if image::is_index(&child.media_type) {
        return Err(ManifestError::UnknownMediaType {
            image: format!("{image}@{}", child.digest),
            media_type: child.media_type,
        });
    }
    let at = pinned(repo, &child.digest);
    let fetched =
        client
            .get_manifest(&at)
            .await
            .map_err(|source| ManifestError::MissingSource {
                image: at.to_string(),
                source: Box::new(source),
            })?;
    if child.platform.is_none() && !child.is_attestation() {
        // An index entry without a platform: take it from the image config, as for a manifest.
        let config = fetch_config(client, repo, image, &fetched.bytes).await?;
        child.platform = Some(resolve_platform(
            image,
            &SpecPlatform::default(),
            None,
            &config,
        )?);
    }
    Ok(ResolvedEntry {
        descriptor: child,
        image: image.to_string(),
        source: at,
        manifest_bytes: fetched.bytes,
    })
}

async fn fetch_config(
    client: &Client,
    repo: &Reference,
    image: &str,
    manifest_bytes: &[u8],
) -> Result<ImageConfig, ManifestError> {
    let manifest: Manifest =
        serde_json::from_slice(manifest_bytes).map_err(|e| ManifestError::InvalidDocument {
            image: image.to_string(),
            what: "manifest",
            reason: e.to_string(),
        })?;
    let bytes = client
        .fetch_blob_bytes(repo, &manifest.config)
        .await
        .map_err(|source| ManifestError::MissingSource {
            image: format!("{image} (config {})", manifest.config.digest),
            source: Box::new(source),
        })?;
    serde_json::from_slice(&bytes).map_err(|e| ManifestError::InvalidDocument {
        image: image.to_string(),
        what: "image config",
        reason: e.to_string(),
    })
}

/// manifest-tool's `resolvePlatform`, plus one check of gantry's own: a platform the spec gives
/// must agree with what the image's config says it is built for.
pub fn resolve_platform(
    image: &str,
    given: &SpecPlatform,
    descriptor: Option<&EntryPlatform>,
    config: &ImageConfig,
) -> Result<EntryPlatform, ManifestError> {
    let mut p = EntryPlatform {
        architecture: given.architecture.clone(),
        os: given.os.clone(),
        os_version: given.os_version.clone(),
        os_features: given.os_features.clone(),
        variant: given.variant.clone(),
    };
    if p.os.is_empty() && p.architecture.is_empty() {
        match descriptor {
            Some(d) if !d.os.is_empty() || !d.architecture.is_empty() => p = d.clone(),
            _ => {
                p.os = config.os.clone();
                p.architecture = config.architecture.clone();
            }
        }
    } else {
        let cfg_variant = config.variant.clone().unwrap_or_default();
        let contradicts = (!config.os.is_empty() && config.os != p.os)
            || (!config.architecture.is_empty() && config.architecture != p.architecture)
            || (!p.variant.is_empty() && !cfg_variant.is_empty() && cfg_variant != p.variant);
        if contradicts {
            let actual = EntryPlatform {
                architecture: config.architecture.clone(),
                os: config.os.clone(),
                variant: cfg_variant,
                ..Default::default()
            };
            return Err(ManifestError::PlatformContradiction {
                image: image.to_string(),
                given: p.to_string(),
                actual: actual.to_string(),
            });
        }
    }
    if p.variant.is_empty() {
        p.variant = config.variant.clone().unwrap_or_default();
    }
    if p.os_version.is_empty() {
        p.os_version = config.os_version.clone().unwrap_or_default();
    }
    if p.os_features.is_empty() {
        p.os_features = config.os_features.clone();
    }
    if !index::is_valid_os_arch(&p.os, &p.architecture, &p.variant) {
        return Err(ManifestError::UnsupportedPlatform {
            image: image.to_string(),
            platform: format!("{}/{}/{}", p.os, p.architecture, p.variant),
        });
    }
    Ok(p)
}

fn check_duplicates(entries: &[ResolvedEntry]) -> Result<(), ManifestError> {
    let mut seen: BTreeMap<String, &ResolvedEntry> = BTreeMap::new();
    for e in entries {
        let p = e.descriptor.platform.clone().unwrap_or_default();
        if let Some(first) = seen.get(&p.key()) {
            return Err(ManifestError::DuplicatePlatform {
                platform: p.to_string(),
                first: first.descriptor.digest.clone(),
                first_image: first.image.clone(),
                second: e.descriptor.digest.clone(),
                second_image: e.image.clone(),
            });
        }
        seen.insert(p.key(), e);
    }
    Ok(())
}

/// Foreign and non-distributable layers stay where their URLs say (manifest-tool's `skippable`).
fn skippable(media_type: &str) -> bool {
    media_type.contains("foreign") || media_type.contains("nondistributable")
}

/// Writes a resolved index: children, then the index by digest, then each tag.
pub async fn push(client: &Client, resolved: &ResolvedIndex) -> Result<(), ManifestError> {
    let target = &resolved.target;
    for entry in &resolved.entries {
        if entry.source.registry == target.registry && entry.source.repository == target.repository
        {
            continue;
        }
        bring_over(client, target, entry).await?;
    }
    let by_digest = pinned(target, &resolved.digest);
    client
        .put_manifest(&by_digest, &resolved.bytes, resolved.media_type())
        .await
        .map_err(|source| ManifestError::Registry {
            action: "push the index to",
            reference: by_digest.to_string(),
            source: Box::new(source),
        })?;
    for tag in &resolved.tags {
        let tagged = target.with_tag(tag);
        match client.get_manifest(&tagged).await {
            Ok(current) if current.digest == resolved.digest => {
                tracing::info!("{tagged} already points at {}", resolved.digest);
                continue;
            }
            _ => {}
        }
        client
            .put_manifest(&tagged, &resolved.bytes, resolved.media_type())
            .await
            .map_err(|source| ManifestError::Registry {
                action: "tag the index as",
                reference: tagged.to_string(),
                source: Box::new(source),
            })?;
        tracing::info!("pushed {tagged}");
    }
    Ok(())
}

/// Puts a child manifest from another repository or registry into the target repository by
/// digest: its blobs first (mounted on the same registry, copied otherwise), then its exact bytes.
async fn bring_over(
    client: &Client,
    target: &Reference,
    entry: &ResolvedEntry,
) -> Result<(), ManifestError> {
    let dest = pinned(target, &entry.descriptor.digest);
    if client.get_manifest(&dest).await.is_ok() {
        tracing::debug!("{dest} is already there");
        return Ok(());
    }
    let manifest: Manifest = serde_json::from_slice(&entry.manifest_bytes).map_err(|e| {
        ManifestError::InvalidDocument {
            image: entry.source.to_string(),
            what: "manifest",
            reason: e.to_string(),
        }
    })?;
    let from = Reference {
        digest: None,
        ..entry.source.clone()
    };
    let blobs = std::iter::once(&manifest.config)
        .chain(manifest.layers.iter().filter(|l| !skippable(&l.media_type)))
        .map(|d| PushBlob {
            descriptor: d.clone(),
            source: BlobSource::Remote(from.clone()),
        })
        .collect();
    let img = PushImage {
        manifest_bytes: entry.manifest_bytes.clone(),
        media_type: entry.descriptor.media_type.clone(),
        blobs,
    };
    client
        .push_image(&dest, &img)
        .await
        .map_err(|source| ManifestError::Registry {
            action: "bring the source image over to",
            reference: dest.to_string(),
            source: Box::new(source),
        })?;
    tracing::info!("copied {} to {dest}", entry.source);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(os: &str, arch: &str, variant: Option<&str>) -> ImageConfig {
        ImageConfig {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn platform_comes_from_the_config_when_not_given() {
        let p = resolve_platform(
            "i",
            &SpecPlatform::default(),
            None,
            &config("linux", "arm64", Some("v8")),
        )
        .unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
    }

    #[test]
    fn a_given_platform_must_agree_with_the_config() {
        let given = super::super::spec::parse_platform("linux/arm64").unwrap();
        let err = resolve_platform("r/a:amd", &given, None, &config("linux", "amd64", None))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("source image `r/a:amd` is built for `linux/amd64`, but the spec says `linux/arm64`"),
            "{err}"
        );
        let given = super::super::spec::parse_platform("linux/arm/v6").unwrap();
        assert!(resolve_platform("i", &given, None, &config("linux", "arm", Some("v7"))).is_err());
        // A variant the spec leaves out comes from the config.
        let given = super::super::spec::parse_platform("linux/arm64").unwrap();
        let p = resolve_platform("i", &given, None, &config("linux", "arm64", Some("v8"))).unwrap();
        assert_eq!(p.variant, "v8");
    }

    #[test]
    fn unsupported_combinations_are_refused() {
        let given = super::super::spec::parse_platform("linux/amd64/v3").unwrap();
        let err = resolve_platform("i", &given, None, &config("linux", "amd64", None))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`linux/amd64/v3`"), "{err}");
        let err = resolve_platform("i", &SpecPlatform::default(), None, &ImageConfig::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("unsupported os/arch"), "{err}");
    }

    #[test]
    fn target_tags_are_deduplicated_and_checked() {
        let spec = IndexSpec {
            image: "reg:5000/app:1".into(),
            tags: vec!["latest".into(), "1".into(), "latest".into()],
            ..Default::default()
        };
        let (target, tags) = target_and_tags(&spec).unwrap();
        assert_eq!(target.repository, "app");
        assert_eq!(tags, ["1", "latest"]);
        let bad = IndexSpec {
            image: "reg:5000/app:1".into(),
            tags: vec!["-x".into()],
            ..Default::default()
        };
        assert!(target_and_tags(&bad)
            .unwrap_err()
            .to_string()
            .starts_with("invalid tag `-x`"));
        let digest = IndexSpec {
            image: format!("reg:5000/app@sha256:{}", "a".repeat(64)),
            ..Default::default()
        };
        assert!(matches!(
            target_and_tags(&digest),
            Err(ManifestError::TargetHasDigest { .. })
        ));
    }
}
