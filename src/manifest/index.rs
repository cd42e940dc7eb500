//! The index document itself and the platform rules that decide what may go in it, kept apart
//! from the network so they are tested from tables.
//!
//! The bytes follow manifest-tool exactly: Go's `json.MarshalIndent(index, "", "  ")` of either
//! Docker's `manifestlist.ManifestList` (entries ordered mediaType, size, digest, ...) or OCI's
//! `ocispec.Index` (entries ordered mediaType, digest, size, ...), with Go's HTML-safe escaping of
//! `<`, `>` and `&`. Same inputs, same bytes, same digest as manifest-tool.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::image::{DOCKER_MANIFEST_LIST, OCI_INDEX};

/// Which kind of index is pushed (`--type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IndexKind {
    /// A Docker v2.2 manifest list (manifest-tool's default).
    #[default]
    Docker,
    /// An OCI v1 image index.
    Oci,
}

impl IndexKind {
    pub fn media_type(self) -> &'static str {
        match self {
            IndexKind::Docker => DOCKER_MANIFEST_LIST,
            IndexKind::Oci => OCI_INDEX,
        }
    }
}

/// A platform as it appears in an index entry (OCI's `ocispec.Platform` fields and order).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryPlatform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub os_version: String,
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

impl EntryPlatform {
    /// manifest-tool's duplicate key: `arch-os-variant-osversion-osfeatures`.
    pub fn key(&self) -> String {
        format!(
            "{}-{}-{}-{}-{}",
            self.architecture,
            self.os,
            self.variant,
            self.os_version,
            self.os_features.join(".")
        )
    }
}

impl std::fmt::Display for EntryPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        if !self.os_version.is_empty() {
            write!(f, " (os.version {})", self.os_version)?;
        }
        Ok(())
    }
}

/// An index entry as OCI's `ocispec.Descriptor` has it: what a flattened source index says about
/// a child is kept field for field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryDescriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<EntryPlatform>,
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<String>,
}

impl EntryDescriptor {
    /// BuildKit's attestation manifests, which go after every image in the index.
    pub fn is_attestation(&self) -> bool {
        self.annotations
            .get("vnd.docker.reference.type")
            .is_some_and(|t| t == "attestation-manifest")
    }
}

/// The part of a source index gantry reads.
#[derive(Deserialize)]
pub struct SourceIndex {
    #[serde(default)]
    pub manifests: Vec<EntryDescriptor>,
}

#[derive(Serialize)]
struct OciIndexOut<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    manifests: &'a [EntryDescriptor],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct DockerListOut<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    manifests: Vec<DockerEntryOut<'a>>,
}

/// Docker's `manifestlist.ManifestDescriptor`: distribution's descriptor fields first, then an
/// always-present platform.
#[derive(Serialize)]
struct DockerEntryOut<'a> {
    #[serde(rename = "mediaType", skip_serializing_if = "str::is_empty")]
    media_type: &'a str,
    size: u64,
    digest: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    urls: &'a [String],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: &'a BTreeMap<String, String>,
    platform: DockerPlatformOut<'a>,
}

#[derive(Serialize)]
struct DockerPlatformOut<'a> {
    architecture: &'a str,
    os: &'a str,
    #[serde(rename = "os.version", skip_serializing_if = "str::is_empty")]
    os_version: &'a str,
    #[serde(rename = "os.features", skip_serializing_if = "<[String]>::is_empty")]
    os_features: &'a [String],
    #[serde(skip_serializing_if = "str::is_empty")]
    variant: &'a str,
}

/// The index bytes manifest-tool would push for these entries.
pub fn serialize(
    kind: IndexKind,
    entries: &[EntryDescriptor],
    annotations: &BTreeMap<String, String>,
) -> Vec<u8> {
    let bytes = match kind {
        IndexKind::Oci => serde_json::to_vec_pretty(&OciIndexOut {
            schema_version: 2,
            media_type: OCI_INDEX,
            manifests: entries,
            annotations,
        }),
        IndexKind::Docker => {
            let empty = EntryPlatform::default();
            serde_json::to_vec_pretty(&DockerListOut {
                schema_version: 2,
                media_type: DOCKER_MANIFEST_LIST,
                manifests: entries
                    .iter()
                    .map(|e| {
                        let p = e.platform.as_ref().unwrap_or(&empty);
                        DockerEntryOut {
                            media_type: &e.media_type,
                            size: e.size,
                            digest: &e.digest,
                            // manifest-tool's dockerConvert copies no URLs.
                            urls: &[],
                            annotations: &e.annotations,
                            platform: DockerPlatformOut {
                                architecture: &p.architecture,
                                os: &p.os,
                                os_version: &p.os_version,
                                os_features: &p.os_features,
                                variant: &p.variant,
                            },
                        }
                    })
                    .collect(),
            })
        }
    };
    go_html_escape(bytes.expect("index documents always serialise"))
}

/// Go's encoder escapes `<`, `>`, `&`, U+2028 and U+2029 inside strings; serde_json does not.
/// They can only occur inside strings in JSON, so a byte-level rewrite is exact.
fn go_html_escape(bytes: Vec<u8>) -> Vec<u8> {
    let text = String::from_utf8(bytes).expect("serde_json writes UTF-8");
    if !text.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
        return text.into_bytes();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.into_bytes()
}

/// Go's `go tool dist list` os/arch pairs, which manifest-tool's `IsValidOSArch` accepts.
const VALID_OS_ARCH: &[&str] = &[
    "aix/ppc64",
    "android/386",
    "android/amd64",
    "android/arm",
    "android/arm64",
    "darwin/amd64",
    "darwin/arm64",
    "dragonfly/amd64",
    "freebsd/386",
    "freebsd/amd64",
    "freebsd/arm",
    "freebsd/arm64",
    "freebsd/riscv64",
    "illumos/amd64",
    "ios/amd64",
    "ios/arm64",
    "js/wasm",
    "linux/386",
    "linux/amd64",
    "linux/arm",
    "linux/arm64",
    "linux/loong64",
    "linux/mips",
    "linux/mips64",
    "linux/mips64le",
    "linux/mipsle",
    "linux/ppc64",
    "linux/ppc64le",
    "linux/riscv64",
    "linux/s390x",
    "netbsd/386",
    "netbsd/amd64",
    "netbsd/arm",
    "netbsd/arm64",
    "openbsd/386",
    "openbsd/amd64",
    "openbsd/arm",
    "openbsd/arm64",
    "openbsd/ppc64",
    "openbsd/riscv64",
    "plan9/386",
    "plan9/amd64",
    "plan9/arm",
    "solaris/amd64",
    "wasip1/wasm",
    "windows/386",
    "windows/amd64",
    "windows/arm",
    "windows/arm64",
];

/// manifest-tool's `IsValidOSArch`: a Go os/arch pair, and a variant only on linux/arm (v5, v6,
/// v7) and linux/arm64 (v8) - so `linux/amd64/v2` is refused.
pub fn is_valid_os_arch(os: &str, arch: &str, variant: &str) -> bool {
    let pair = format!("{os}/{arch}");
    if !VALID_OS_ARCH.contains(&pair.as_str()) {
        return false;
    }
    matches!(
        (pair.as_str(), variant),
        (_, "") | ("linux/arm", "v5" | "v6" | "v7") | ("linux/arm64", "v8")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(
        media_type: &str,
        digest: &str,
        size: u64,
        p: Option<(&str, &str, &str)>,
    ) -> EntryDescriptor {
        EntryDescriptor {
            media_type: media_type.into(),
            digest: digest.into(),
            size,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            data: None,
            platform: p.map(|(os, arch, variant)| EntryPlatform {
                architecture: arch.into(),
                os: os.into(),
                variant: variant.into(),
                ..Default::default()
            }),
            artifact_type: None,
        }
    }

    #[test]
    fn docker_list_bytes_match_manifest_tool() {
        let entries = [
            entry(
                crate::image::DOCKER_MANIFEST,
                "sha256:aa",
                528,
                Some(("linux", "amd64", "")),
            ),
            entry(
                crate::image::OCI_MANIFEST,
                "sha256:bb",
                529,
                Some(("linux", "arm", "v7")),
            ),
        ];
        let got =
            String::from_utf8(serialize(IndexKind::Docker, &entries, &BTreeMap::new())).unwrap();
        let want = r#"{
  "schemaVersion": 2,
  "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
  "manifests": [
    {
      "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
      "size": 528,
      "digest": "sha256:aa",
      "platform": {
        "architecture": "amd64",
        "os": "linux"
      }
    },
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "size": 529,
      "digest": "sha256:bb",
      "platform": {
        "architecture": "arm",
        "os": "linux",
        "variant": "v7"
      }
    }
  ]
}"#;
        assert_eq!(got, want);
    }

    #[test]
    fn oci_index_bytes_match_manifest_tool() {
        let mut att = entry(
            crate::image::OCI_MANIFEST,
            "sha256:cc",
            840,
            Some(("unknown", "unknown", "")),
        );
        att.annotations.insert(
            "vnd.docker.reference.type".into(),
            "attestation-manifest".into(),
        );
        att.annotations
            .insert("vnd.docker.reference.digest".into(), "sha256:aa".into());
        assert!(att.is_attestation());
        let entries = [
            entry(
                crate::image::OCI_MANIFEST,
                "sha256:aa",
                528,
                Some(("linux", "amd64", "")),
            ),
            att,
        ];
        let mut annotations = BTreeMap::new();
        annotations.insert("org.example.note".to_string(), "a<b & c>d".to_string());
        let got = String::from_utf8(serialize(IndexKind::Oci, &entries, &annotations)).unwrap();
        let want = r#"{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "manifests": [
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "sha256:aa",
      "size": 528,
      "platform": {
        "architecture": "amd64",
        "os": "linux"
      }
    },
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "sha256:cc",
      "size": 840,
      "annotations": {
        "vnd.docker.reference.digest": "sha256:aa",
        "vnd.docker.reference.type": "attestation-manifest"
      },
      "platform": {
        "architecture": "unknown",
        "os": "unknown"
      }
    }
  ],
  "annotations": {
    "org.example.note": "a\u003cb \u0026 c\u003ed"
  }
}"#;
        assert_eq!(got, want);
    }

    #[test]
    fn os_arch_validation_follows_manifest_tool() {
        assert!(is_valid_os_arch("linux", "amd64", ""));
        assert!(is_valid_os_arch("linux", "arm", "v7"));
        assert!(is_valid_os_arch("linux", "arm64", "v8"));
        assert!(is_valid_os_arch("windows", "amd64", ""));
        assert!(!is_valid_os_arch("linux", "amd64", "v2"));
        assert!(!is_valid_os_arch("linux", "arm64", "v7"));
        assert!(!is_valid_os_arch("linux", "x86_64", ""));
        assert!(!is_valid_os_arch("", "", ""));
    }

    #[test]
    fn platform_key_includes_os_version_and_features() {
        let mut p = EntryPlatform {
            architecture: "amd64".into(),
            os: "windows".into(),
            os_version: "10.0.1".into(),
            ..Default::default()
        };
        p.os_features = vec!["win32k".into(), "x".into()];
        assert_eq!(p.key(), "amd64-windows--10.0.1-win32k.x");
    }
}
