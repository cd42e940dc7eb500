//! `gantry manifest inspect REF`: what a reference points at, for people (media type, digest,
//! size, then each platform entry of an index or the config and layers of an image), or the
//! exact bytes the registry serves (`--raw`), so that a digest can be checked with `sha256sum`.

use std::fmt::Write as _;

use super::index::SourceIndex;
use super::ManifestError;
use crate::image::{self, Manifest};
use crate::registry::{Client, FetchedManifest, Reference};

/// Fetches the manifest or index a reference names, bytes untouched.
pub async fn fetch(
    client: &Client,
    reference: &Reference,
) -> Result<FetchedManifest, ManifestError> {
    client
        .get_manifest(reference)
        .await
        .map_err(|source| ManifestError::Registry {
            action: "inspect",
            reference: reference.to_string(),
            source: Box::new(source),
        })
}

/// The readable form: a header, then one block per index entry or the config and layers.
pub fn render(reference: &Reference, fetched: &FetchedManifest) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Name:      {reference}");
    let _ = writeln!(out, "MediaType: {}", fetched.media_type);
    let _ = writeln!(out, "Digest:    {}", fetched.digest);
    let _ = writeln!(out, "Size:      {}", fetched.bytes.len());
    if image::is_index(&fetched.media_type) {
        match serde_json::from_slice::<SourceIndex>(&fetched.bytes) {
            Ok(index) => {
                let _ = writeln!(out, "Manifests: {}", index.manifests.len());
                for (i, m) in index.manifests.iter().enumerate() {
                    let platform = m
                        .platform
                        .as_ref()
                        .map(|p| p.to_string())
                        .unwrap_or_else(|| "(no platform)".into());
                    let kind = if m.is_attestation() {
                        " (attestation)"
                    } else {
                        ""
                    };
                    let _ = writeln!(out, "  [{}] {platform}{kind}", i + 1);
                    let _ = writeln!(out, "      MediaType: {}", m.media_type);
                    let _ = writeln!(out, "      Digest:    {}", m.digest);
                    let _ = writeln!(out, "      Size:      {}", m.size);
                    for (k, v) in &m.annotations {
                        let _ = writeln!(out, "      Annotation: {k}={v}");
                    }
                }
            }
            Err(e) => {
                let _ = writeln!(out, "(the index does not parse: {e})");
            }
        }
    } else if image::is_manifest(&fetched.media_type) {
        match serde_json::from_slice::<Manifest>(&fetched.bytes) {
            Ok(m) => {
                let _ = writeln!(
                    out,
                    "Config:    {} ({} bytes, {})",
                    m.config.digest, m.config.size, m.config.media_type
                );
                let _ = writeln!(out, "Layers:    {}", m.layers.len());
                for (i, l) in m.layers.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "  [{}] {} ({} bytes, {})",
                        i + 1,
                        l.digest,
                        l.size,
                        l.media_type
                    );
                }
            }
            Err(e) => {
                let _ = writeln!(out, "(the manifest does not parse: {e})");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_index_entries_with_platforms() {
        let bytes = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aa","size":5,"platform":{"architecture":"arm64","os":"linux","variant":"v8"}}]}"#.to_vec();
        let fetched = FetchedManifest {
            digest: image::sha256_digest(&bytes),
            media_type: image::OCI_INDEX.into(),
            bytes,
        };
        let r = Reference::parse("reg:5000/app:1").unwrap();
        let text = render(&r, &fetched);
        assert!(
            text.starts_with(
                "Name:      reg:5000/app:1\nMediaType: application/vnd.oci.image.index.v1+json\n"
            ),
            "{text}"
        );
        assert!(text.contains("Manifests: 1\n  [1] linux/arm64/v8\n      MediaType: application/vnd.oci.image.manifest.v1+json\n      Digest:    sha256:aa\n      Size:      5\n"), "{text}");
    }
}
