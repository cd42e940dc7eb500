//! Version parsing for `type=semver` (npm's strict `semver.valid`) and `type=pep440` (PEP 440
//! with its normalisation rules, as `@renovate/pep440`'s `clean`).

use std::sync::LazyLock;

use regex::Regex;

/// A parsed semantic version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SemVer {
    pub raw: String,
    pub major: String,
    pub minor: String,
    pub patch: String,
    pub prerelease: Option<String>,
}

impl SemVer {
    /// `major.minor.patch[-prerelease]`, without the leading `v` and the build metadata (npm's
    /// `version`).
    pub fn version(&self) -> String {
        match &self.prerelease {
            Some(pre) => format!("{}.{}.{}-{pre}", self.major, self.minor, self.patch),
            None => format!("{}.{}.{}", self.major, self.minor, self.patch),
        }
    }
}

/// npm semver's `FULL` expression: an optional single `v`, then `major.minor.patch`, an optional
/// `-prerelease` and an optional `+build` (no leading zeros in numeric identifiers).
static SEMVER: LazyLock<Regex> = LazyLock::new(|| {
    let num = r"0|[1-9]\d*";
    let pre_id = r"(?:0|[1-9]\d*|\d*[a-zA-Z-][a-zA-Z0-9-]*)";
    Regex::new(&format!(
        r"^v?({num})\.({num})\.({num})(?:-({pre_id}(?:\.{pre_id})*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
    ))
    .unwrap_or_else(|_| unreachable!("constant regex"))
});

/// npm semver's `MAX_LENGTH`: longer strings are never versions.
const SEMVER_MAX_LENGTH: usize = 256;
/// JavaScript's `Number.MAX_SAFE_INTEGER`: npm refuses larger major, minor or patch numbers.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Parses as metadata-action does: `semver.valid` (strict) decides whether the string is a
/// version at all - trimmed, then the `FULL` expression above, so `=1.2.3`, `vv1.2.3`, `V1.2.3`
/// and `v 1.2.3` are not - and the parts come from the loose parse that follows it, which for a
/// strictly valid string gives the same numbers. `raw` keeps the string as given.
pub fn parse_semver(raw: &str) -> Option<SemVer> {
    if raw.len() > SEMVER_MAX_LENGTH {
        return None;
    }
    let c = SEMVER.captures(raw.trim())?;
    let safe = |i: usize| {
        c[i].parse::<u64>()
            .ok()
            .filter(|n| *n <= MAX_SAFE_INTEGER)
            .map(|_| c[i].to_string())
    };
    Some(SemVer {
        raw: raw.to_string(),
        major: safe(1)?,
        minor: safe(2)?,
        patch: safe(3)?,
        prerelease: c.get(4).map(|m| m.as_str().to_string()),
    })
}

/// A parsed PEP 440 version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pep440 {
    pub epoch: u64,
    pub release: Vec<u64>,
    pub pre: Option<(&'static str, u64)>,
    pub post: Option<u64>,
    pub dev: Option<u64>,
    pub local: Option<String>,
}

impl Pep440 {
    /// A final release: no pre, post or dev part.
    pub fn is_final(&self) -> bool {
        self.pre.is_none() && self.post.is_none() && self.dev.is_none()
    }

    /// The normalised form (`1.1beta2` → `1.1b2`, `1.2post1` → `1.2.post1`).
    pub fn clean(&self) -> String {
        let mut s = String::new();
        if self.epoch != 0 {
            s.push_str(&format!("{}!", self.epoch));
        }
        let release: Vec<String> = self.release.iter().map(u64::to_string).collect();
        s.push_str(&release.join("."));
        if let Some((l, n)) = self.pre {
            s.push_str(&format!("{l}{n}"));
        }
        if let Some(n) = self.post {
            s.push_str(&format!(".post{n}"));
        }
        if let Some(n) = self.dev {
            s.push_str(&format!(".dev{n}"));
        }
        if let Some(local) = &self.local {
            s.push('+');
            s.push_str(local);
        }
        s
    }

    pub fn part(&self, i: usize) -> u64 {
        self.release.get(i).copied().unwrap_or(0)
    }
}

static PEP440: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)^\s*v?
        (?:(?P<epoch>[0-9]+)!)?
        (?P<release>[0-9]+(?:\.[0-9]+)*)
        (?:[-_.]?(?P<pre_l>alpha|beta|preview|pre|rc|a|b|c)[-_.]?(?P<pre_n>[0-9]+)?)?
        (?:-(?P<post_n1>[0-9]+)|[-_.]?(?P<post_l>post|rev|r)[-_.]?(?P<post_n2>[0-9]+)?)?
        (?:[-_.]?(?P<dev_l>dev)[-_.]?(?P<dev_n>[0-9]+)?)?
        (?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?
        \s*$",
    )
    .unwrap_or_else(|_| unreachable!("constant regex"))
});

/// Parses a PEP 440 version (case-insensitive, separators and spellings normalised).
pub fn parse_pep440(raw: &str) -> Option<Pep440> {
    let c = PEP440.captures(raw)?;
    let num = |name: &str| c.name(name).and_then(|m| m.as_str().parse::<u64>().ok());
    let release = c["release"]
        .split('.')
        .map(|p| p.parse::<u64>().ok())
        .collect::<Option<Vec<_>>>()?;
    let pre = c.name("pre_l").map(|l| {
        let l = match l.as_str().to_lowercase().as_str() {
            "a" | "alpha" => "a",
            "b" | "beta" => "b",
            _ => "rc",
        };
        (l, num("pre_n").unwrap_or(0))
    });
    let post = if c.name("post_n1").is_some() {
        num("post_n1")
    } else if c.name("post_l").is_some() {
        Some(num("post_n2").unwrap_or(0))
    } else {
        None
    };
    let dev = c.name("dev_l").map(|_| num("dev_n").unwrap_or(0));
    let local = c
        .name("local")
        .map(|m| m.as_str().to_lowercase().replace(['-', '_'], "."));
    Some(Pep440 {
        epoch: num("epoch").unwrap_or(0),
        release,
        pre,
        post,
        dev,
        local,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_like_npm() {
        let v = parse_semver("v1.2.3").unwrap();
        assert_eq!(v.version(), "1.2.3");
        assert_eq!(v.raw, "v1.2.3");
        let v = parse_semver("v2.0.8-beta.67").unwrap();
        assert_eq!(v.version(), "2.0.8-beta.67");
        assert_eq!(v.prerelease.as_deref(), Some("beta.67"));
        assert_eq!(parse_semver("1.2.3+build.5").unwrap().version(), "1.2.3");
        // npm's strict `valid` trims the string first.
        assert_eq!(parse_semver(" v1.2.3\n").unwrap().version(), "1.2.3");
        assert_eq!(
            parse_semver("0.0.0-0").unwrap().prerelease.as_deref(),
            Some("0")
        );
        assert_eq!(
            parse_semver("1.2.3-rc.1+build.5").unwrap().version(),
            "1.2.3-rc.1"
        );
        let long_ok = format!("1.2.3-{}", "a".repeat(250));
        assert_eq!(long_ok.len(), 256);
        assert!(parse_semver(&long_ok).is_some());
        for bad in [
            "1.2",
            "v1",
            "01.2.3",
            "1.2.3-01",
            "foo",
            "release1",
            // Accepted only by npm's loose parse, never by `semver.valid`:
            "=1.2.3",
            "vv1.2.3",
            "v 1.2.3",
            "V1.2.3",
            "v=1.2.3",
            "1.2.3-",
            "1.2.3+",
            "1.2.3.4",
            "9007199254740992.0.0",
        ] {
            assert!(parse_semver(bad).is_none(), "{bad}");
        }
        assert!(parse_semver("9007199254740991.0.0").is_some());
        let too_long = format!("1.2.3-{}", "a".repeat(251));
        assert!(parse_semver(&too_long).is_none());
    }

    #[test]
    fn pep440_clean_as_renovate() {
        for (raw, clean, fin) in [
            ("1.2.3rc2", "1.2.3rc2", false),
            ("1.1beta2", "1.1b2", false),
            ("1.2post1", "1.2.post1", false),
            ("1.0dev4", "1.0.dev4", false),
            ("v1.2.3", "1.2.3", true),
            ("1.0-1", "1.0.post1", false),
            ("1!2.0", "1!2.0", true),
            ("1.0+Ubuntu_1", "1.0+ubuntu.1", true),
            ("1.2.3a", "1.2.3a0", false),
        ] {
            let v = parse_pep440(raw).unwrap();
            assert_eq!(v.clean(), clean, "{raw}");
            assert_eq!(v.is_final(), fin, "{raw}");
        }
        assert!(parse_pep440("foo").is_none());
        assert!(parse_pep440("1.2.3-beta-x").is_none());
    }
}
