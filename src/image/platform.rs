//! Platforms (`os/arch[/variant]`), as written on the command line and in index descriptors.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("platform `{0}` is not of the form os/arch[/variant]\nhint: for example linux/amd64 or linux/arm64/v8")]
pub struct PlatformParseError(pub String);

impl Platform {
    /// Parses `os/arch[/variant]`, normalising architecture aliases as containerd does
    /// (`x86_64` → `amd64`, `aarch64` → `arm64`, `armhf` → `arm/v7`, …).
    pub fn parse(s: &str) -> Result<Platform, PlatformParseError> {
        let parts: Vec<&str> = s.trim().split('/').collect();
        if parts.len() < 2 || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(PlatformParseError(s.to_string()));
        }
        let os = parts[0].to_ascii_lowercase();
        let (arch, variant) = normalize_arch(parts[1], parts.get(2).copied());
        Ok(Platform {
            architecture: arch,
            os,
            variant,
            ..Default::default()
        })
    }

    /// The platform gantry runs on.
    pub fn host() -> Platform {
        let (arch, variant) = normalize_arch(std::env::consts::ARCH, None);
        Platform {
            architecture: arch,
            os: "linux".into(),
            variant,
            ..Default::default()
        }
    }

    /// Whether an index entry with platform `candidate` serves a request for `self`.
    /// A request without a variant takes any variant; `arm64` treats a missing variant as `v8`.
    pub fn matches(&self, candidate: &Platform) -> bool {
        if self.os != candidate.os || self.architecture != candidate.architecture {
            return false;
        }
        let want = self.normalized_variant();
        let have = candidate.normalized_variant();
        match (want, have) {
            (None, _) => true,
            (Some(w), Some(h)) => w == h,
            (Some(_), None) => false,
        }
    }

    fn normalized_variant(&self) -> Option<&str> {
        match (self.architecture.as_str(), self.variant.as_deref()) {
            ("arm64", None) => Some("v8"),
            (_, v) => v,
        }
    }
}

fn normalize_arch(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant.map(|v| v.to_ascii_lowercase());
    match arch.as_str() {
        "x86_64" | "x86-64" => ("amd64".into(), variant),
        "aarch64" => ("arm64".into(), variant),
        "armhf" => ("arm".into(), Some("v7".into())),
        "armel" => ("arm".into(), Some("v6".into())),
        "arm" => ("arm".into(), variant.or_else(|| Some("v7".into()))),
        "i386" | "i686" => ("386".into(), variant),
        _ => (arch, variant),
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let p = Platform::parse("linux/x86_64").unwrap();
        assert_eq!(p.to_string(), "linux/amd64");
        let p = Platform::parse("linux/arm/v6").unwrap();
        assert_eq!(p.variant.as_deref(), Some("v6"));
        assert_eq!(
            Platform::parse("linux/arm").unwrap().to_string(),
            "linux/arm/v7"
        );
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux//v7").is_err());
    }

    #[test]
    fn variant_aware_matching() {
        let want = Platform::parse("linux/arm/v7").unwrap();
        assert!(!want.matches(&Platform::parse("linux/arm/v6").unwrap()));
        assert!(want.matches(&Platform::parse("linux/arm/v7").unwrap()));
        let arm64 = Platform::parse("linux/arm64").unwrap();
        let mut plain = arm64.clone();
        plain.variant = None;
        assert!(arm64.matches(&plain));
        assert!(Platform::parse("linux/arm64/v8").unwrap().matches(&plain));
    }
}
