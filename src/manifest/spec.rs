//! What to stitch: manifest-tool's YAML spec and its `from-args` flags, both turned into one
//! [`IndexSpec`] before anything touches a registry.
//!
//! The YAML keys are manifest-tool's: its Go struct has no yaml tags, so `gopkg.in/yaml.v3` uses
//! the lower-cased field names (`image`, `tags`, `manifests`, `annotations`; a platform's
//! `architecture`, `os`, `variant`, `osversion`, `osfeatures`). Unknown keys are an error here, so
//! that a typo such as `platfrom:` does not silently drop a platform. The file is read with
//! `serde-saphyr`, a maintained serde YAML crate (serde_yaml is archived, RUSTSEC-2024-0320).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::ManifestError;

/// One index to push: the target, extra tags, the sources and the index annotations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexSpec {
    /// The index reference (`--target`, or `image:` in the YAML).
    pub image: String,
    /// Extra tags in the target's repository.
    pub tags: Vec<String>,
    pub manifests: Vec<SourceEntry>,
    /// Index-level annotations (OCI indexes only).
    pub annotations: BTreeMap<String, String>,
}

/// One source image and the platform the spec gives for it (empty fields: not given).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceEntry {
    pub image: String,
    pub platform: SpecPlatform,
}

/// A platform as written in the spec, unnormalised: manifest-tool uses these strings as they are
/// (in the template and in the index), so gantry does too.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpecPlatform {
    pub os: String,
    pub architecture: String,
    pub variant: String,
    pub os_version: String,
    pub os_features: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlInput {
    image: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    manifests: Vec<YamlEntry>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlEntry {
    image: Option<String>,
    #[serde(default)]
    platform: YamlPlatform,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlPlatform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    variant: String,
    #[serde(default)]
    osversion: String,
    #[serde(default)]
    osfeatures: Vec<String>,
    /// manifest-tool v1's Docker platform had `features`; v2 reads and drops it, and so does
    /// gantry, so that v1 specs keep working.
    #[serde(default, rename = "features")]
    _features: Vec<String>,
}

impl IndexSpec {
    /// Reads a manifest-tool YAML spec file.
    pub fn from_file(path: &Path) -> Result<IndexSpec, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|e| ManifestError::ReadSpec {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        IndexSpec::from_yaml(&text, path)
    }

    /// Parses a manifest-tool YAML spec; `path` is only used in messages.
    pub fn from_yaml(text: &str, path: &Path) -> Result<IndexSpec, ManifestError> {
        let input: YamlInput =
            serde_saphyr::from_str(text).map_err(|e| ManifestError::ParseSpec {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        let missing = |field| ManifestError::SpecMissing {
            path: path.to_path_buf(),
            field,
        };
        let image = input
            .image
            .filter(|i| !i.trim().is_empty())
            .ok_or_else(|| missing("image"))?;
        let mut manifests = Vec::with_capacity(input.manifests.len());
        for entry in input.manifests {
            let source = entry
                .image
                .filter(|i| !i.trim().is_empty())
                .ok_or_else(|| missing("manifests[].image"))?;
            let p = entry.platform;
            manifests.push(SourceEntry {
                image: source,
                platform: SpecPlatform {
                    os: p.os,
                    architecture: p.architecture,
                    variant: p.variant,
                    os_version: p.osversion,
                    os_features: p.osfeatures,
                },
            });
        }
        Ok(IndexSpec {
            image,
            tags: input.tags,
            manifests,
            annotations: input.annotations,
        })
    }

    /// Builds the spec manifest-tool's `from-args` builds: one source per platform, named by
    /// the template. `platforms` and `tags` values may each hold a comma-separated list.
    pub fn from_args(
        platforms: &[String],
        template: &str,
        target: &str,
        tags: &[String],
        annotations: &[String],
    ) -> Result<IndexSpec, ManifestError> {
        if !["ARCH", "OS", "VARIANT"]
            .iter()
            .any(|p| template.contains(p))
        {
            return Err(ManifestError::TemplateWithoutPlaceholder {
                template: template.to_string(),
            });
        }
        let mut manifests = Vec::new();
        for value in split_list(platforms) {
            let platform = parse_platform(value)?;
            manifests.push(SourceEntry {
                image: apply_template(template, &platform),
                platform,
            });
        }
        Ok(IndexSpec {
            image: target.to_string(),
            tags: split_list(tags).map(str::to_string).collect(),
            manifests,
            annotations: parse_annotations(annotations)?,
        })
    }
}

/// `a,b` and repeated flags alike, as urfave/cli's string slices.
fn split_list(values: &[String]) -> impl Iterator<Item = &str> {
    values.iter().flat_map(|v| v.split(',')).map(str::trim)
}

/// `os/arch` or `os/arch/variant`, every part non-empty, taken as written.
pub fn parse_platform(value: &str) -> Result<SpecPlatform, ManifestError> {
    let parts: Vec<&str> = value.split('/').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.trim().is_empty()) {
        return Err(ManifestError::BadPlatform {
            value: value.to_string(),
        });
    }
    Ok(SpecPlatform {
        os: parts[0].to_string(),
        architecture: parts[1].to_string(),
        variant: parts.get(2).map(|v| v.to_string()).unwrap_or_default(),
        ..Default::default()
    })
}

/// manifest-tool's substitution: the first `ARCH`, then the first `OS`, then the first `VARIANT`
/// (empty for a platform without one), each in the result of the step before.
pub fn apply_template(template: &str, p: &SpecPlatform) -> String {
    template
        .replacen("ARCH", &p.architecture, 1)
        .replacen("OS", &p.os, 1)
        .replacen("VARIANT", &p.variant, 1)
}

/// `key=value` annotations: exactly one `=` and a non-empty key, as manifest-tool requires.
pub fn parse_annotations(values: &[String]) -> Result<BTreeMap<String, String>, ManifestError> {
    let mut out = BTreeMap::new();
    for value in values {
        let parts: Vec<&str> = value.split('=').collect();
        match parts.as_slice() {
            [key, val] if !key.is_empty() => {
                out.insert(key.to_string(), val.to_string());
            }
            _ => {
                return Err(ManifestError::BadAnnotation {
                    value: value.clone(),
                })
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn template_replaces_the_first_occurrence_in_order() {
        let arm = parse_platform("linux/arm/v5").unwrap();
        assert_eq!(
            apply_template("foo/bar-ARCHVARIANT:v1", &arm),
            "foo/bar-armv5:v1"
        );
        let amd = parse_platform("linux/amd64").unwrap();
        assert_eq!(
            apply_template("foo/bar-ARCHVARIANT:v1", &amd),
            "foo/bar-amd64:v1"
        );
        // Only the first ARCH goes; the literal OS in a repository name is replaced too.
        assert_eq!(
            apply_template("r/OS-img:ARCH-ARCH", &amd),
            "r/linux-img:amd64-ARCH"
        );
    }

    #[test]
    fn from_args_builds_one_entry_per_platform() {
        let spec = IndexSpec::from_args(
            &strings(&["linux/amd64,linux/arm64", "linux/arm/v7"]),
            "reg:5000/app:1-ARCHVARIANT",
            "reg:5000/app:1",
            &strings(&["latest,1.0"]),
            &[],
        )
        .unwrap();
        let images: Vec<&str> = spec.manifests.iter().map(|m| m.image.as_str()).collect();
        assert_eq!(
            images,
            [
                "reg:5000/app:1-amd64",
                "reg:5000/app:1-arm64",
                "reg:5000/app:1-armv7"
            ]
        );
        assert_eq!(spec.manifests[2].platform.variant, "v7");
        assert_eq!(spec.tags, ["latest", "1.0"]);
    }

    #[test]
    fn bad_platforms_and_templates_are_errors() {
        for bad in ["linux", "linux/", "linux/arm/v7/x", "", "/amd64"] {
            let err = IndexSpec::from_args(&strings(&[bad]), "r/a:ARCH", "r/a:1", &[], &[])
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("platform `{bad}` is not")),
                "{err}"
            );
            assert!(err.contains("hint:"), "{err}");
        }
        let err = IndexSpec::from_args(&strings(&["linux/amd64"]), "r/a:1", "r/a:1", &[], &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("template `r/a:1` has no ARCH"), "{err}");
    }

    #[test]
    fn annotations_need_exactly_one_equals_sign() {
        let ok = parse_annotations(&strings(&["a=1", "b="])).unwrap();
        assert_eq!(ok.get("a").map(String::as_str), Some("1"));
        assert_eq!(ok.get("b").map(String::as_str), Some(""));
        for bad in ["a=b=c", "novalue", "=x"] {
            let err = parse_annotations(&strings(&[bad])).unwrap_err().to_string();
            assert!(err.starts_with(&format!("annotation `{bad}`")), "{err}");
        }
    }

    #[test]
    fn yaml_spec_with_manifest_tool_keys() {
        let yaml = "image: reg:5000/app:1\ntags: [latest]\nannotations:\n  k: v\nmanifests:\n  - image: reg:5000/app:1-arm\n    platform:\n      architecture: arm\n      os: linux\n      variant: v7\n  - image: reg:5000/app:1-win\n    platform:\n      architecture: amd64\n      os: windows\n      osversion: 10.0.17763.1\n      osfeatures: [win32k]\n";
        let spec = IndexSpec::from_yaml(yaml, Path::new("s.yaml")).unwrap();
        assert_eq!(spec.image, "reg:5000/app:1");
        assert_eq!(spec.tags, ["latest"]);
        assert_eq!(spec.annotations.get("k").map(String::as_str), Some("v"));
        assert_eq!(spec.manifests[0].platform.variant, "v7");
        assert_eq!(spec.manifests[1].platform.os_version, "10.0.17763.1");
        assert_eq!(spec.manifests[1].platform.os_features, ["win32k"]);
    }

    #[test]
    fn yaml_typos_and_missing_fields_are_errors() {
        let err = IndexSpec::from_yaml(
            "image: r/a:1\nmanifests:\n  - image: r/a:2\n    platfrom: {os: linux}\n",
            Path::new("s.yaml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`s.yaml` is not a valid"), "{err}");
        assert!(err.contains("platfrom"), "{err}");
        let err = IndexSpec::from_yaml("tags: [a]\n", Path::new("s.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("has no `image`"), "{err}");
    }
}
