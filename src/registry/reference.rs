//! Image references (`busybox`, `ghcr.io/o/r:tag`, `host:5000/a/b@sha256:…`) parsed with Docker's
//! grammar and normalised the way Docker does, so that `busybox` and
//! `docker.io/library/busybox:latest` name the same image everywhere in gantry.

use std::fmt;

use super::error::RegistryError;

/// The registry Docker means when a reference names none.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that actually serves Docker Hub's registry API.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

const MAX_NAME_LEN: usize = 255;

/// A parsed, normalised image reference.
///
/// A reference with neither tag nor digest gets the tag `latest`, as `docker pull` does.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// `host[:port]`; `docker.io` for Docker Hub.
    pub registry: String,
    /// `library/busybox` for Docker Hub short names.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    /// Parses a reference with Docker's grammar and normalisation.
    pub fn parse(s: &str) -> Result<Reference, RegistryError> {
        let bad = |reason: &str| RegistryError::InvalidReference {
            reference: s.to_string(),
            reason: reason.to_string(),
        };
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("it contains whitespace"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                validate_digest(d).map_err(|e| bad(&e))?;
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let i = last_slash + i;
                let tag = &rest[i + 1..];
                validate_tag(tag).map_err(|e| bad(&e))?;
                (&rest[..i], Some(tag.to_string()))
            }
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(bad("the name is empty"));
        }
        let (registry, path) = split_domain(name);
        let registry = match registry {
            Some(domain) => {
                validate_domain(domain).map_err(|e| bad(&e))?;
                let host = normalize_registry_host(domain);
                // A one-label host that was a registry only for its capitals (`Reg/app`) keeps
                // them: lower-cased it would read as a Docker Hub namespace next time.
                if host.contains(['.', ':']) || host == "localhost" {
                    host
                } else {
                    domain.to_string()
                }
            }
            None => DOCKER_HUB.to_string(),
        };
        if path.is_empty() {
            return Err(bad("the repository name is empty"));
        }
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(bad("repository names must be lower-case"));
        }
        for component in path.split('/') {
            validate_component(component).map_err(|e| bad(&e))?;
        }
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(bad("the name is longer than 255 characters"));
        }
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_string())
        } else {
            tag
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The host that serves the registry API (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> String {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API.to_string()
        } else {
            self.registry.clone()
        }
    }

    /// The same repository with this tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }

    /// The same repository pinned to this digest (the tag is kept for display).
    pub fn with_digest(&self, digest: &str) -> Reference {
        Reference {
            digest: Some(digest.to_string()),
            ..self.clone()
        }
    }

    /// What goes after `/manifests/` in the API: the digest if pinned, else the tag.
    pub fn api_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = RegistryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// Normalises a registry as written in options and config.json keys: drops a scheme and any path,
/// lower-cases, and maps Docker Hub's aliases to `docker.io`.
pub fn normalize_registry_host(s: &str) -> String {
    let s = s.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or("").to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" | "docker.io" => {
            DOCKER_HUB.to_string()
        }
        _ => host,
    }
}

/// Docker's rule: the first component is a registry if it has a `.` or `:`, is `localhost`, or
/// has upper-case letters (which a repository may not).
fn split_domain(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn validate_domain(domain: &str) -> Result<(), String> {
    let err = || format!("`{domain}` is not a valid registry host[:port]");
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        // IPv6 literal: [addr]:port
        let (addr, after) = rest.split_once(']').ok_or_else(err)?;
        if addr.is_empty() || !addr.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return Err(err());
        }
        match after {
            "" => return Ok(()),
            p => (None, Some(p.strip_prefix(':').ok_or_else(err)?)),
        }
    } else {
        match domain.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(domain), None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()) {
            return Err(err());
        }
    }
    if let Some(host) = host {
        for label in host.split('.') {
            let ok = !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(err());
            }
        }
    }
    Ok(())
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`
fn validate_component(c: &str) -> Result<(), String> {
    let err = || {
        format!("path component `{c}` must be [a-z0-9] runs separated by `.`, `_`, `__` or dashes")
    };
    let bytes = c.as_bytes();
    if bytes.is_empty() {
        return Err("the name has an empty path component".to_string());
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err(err());
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.chars().all(|ch| ch == '-');
        if !ok {
            return Err(err());
        }
    }
    Ok(())
}

/// `[\w][\w.-]{0,127}`
fn validate_tag(tag: &str) -> Result<(), String> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = tag.chars();
    let ok = tag.len() <= 128
        && chars.next().is_some_and(word)
        && chars.all(|c| word(c) || c == '.' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tag `{tag}` must be 1-128 characters of [A-Za-z0-9_.-], not starting with `.` or `-`"
        ))
    }
}

/// `algorithm:hex`; sha256 and sha512 are checked for length and lower-case hex.
pub(crate) fn validate_digest(d: &str) -> Result<(), String> {
    let (alg, hex) = d
        .split_once(':')
        .ok_or_else(|| format!("digest `{d}` must be algorithm:hex"))?;
    let alg_ok = !alg.is_empty()
        && alg.starts_with(|c: char| c.is_ascii_alphabetic())
        && alg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_+.".contains(c));
    if !alg_ok {
        return Err(format!("digest `{d}` has an invalid algorithm"));
    }
    let want = match alg {
        "sha256" => Some(64),
        "sha512" => Some(128),
        _ => None,
    };
    let hex_ok = match want {
        Some(n) => hex.len() == n && hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')),
        None => hex.len() >= 32 && hex.chars().all(|c| c.is_ascii_hexdigit()),
    };
    if !hex_ok {
        return Err(format!(
            "digest `{d}` must have {} lower-case hex characters",
            want.unwrap_or(32)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `reference` fuzz target: a capitalised one-label registry must print to a
    /// name that parses back to the same registry.
    #[test]
    fn fuzz_regression_capitalised_one_label_registry_round_trips() {
        let r = Reference::parse("Z/zk").unwrap();
        assert_eq!((r.registry.as_str(), r.repository.as_str()), ("Z", "zk"));
        assert_eq!(Reference::parse(&r.name()).unwrap().name(), r.name());
        assert_eq!(
            Reference::parse("Reg.Example.com/app").unwrap().registry,
            "reg.example.com"
        );
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn docker_hub_short_names_are_normalised() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        let r = Reference::parse("index.docker.io/user/app:1.0").unwrap();
        assert_eq!(r.to_string(), "docker.io/user/app:1.0");
        assert_eq!(
            Reference::parse("docker.io/ubuntu").unwrap().repository,
            "library/ubuntu"
        );
    }

    #[test]
    fn registries_ports_tags_and_digests() {
        let r = Reference::parse(&format!("localhost:5000/a/b:v1@{D}")).unwrap();
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.repository, "a/b");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.digest.as_deref(), Some(D));
        assert_eq!(r.api_reference(), D);
        assert_eq!(r.to_string(), format!("localhost:5000/a/b:v1@{D}"));
        let r = Reference::parse(&format!("127.0.0.1:5000/x@{D}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.to_string(), format!("127.0.0.1:5000/x@{D}"));
        let r = Reference::parse("localhost/app").unwrap();
        assert_eq!(r.registry, "localhost");
        let r = Reference::parse("[::1]:5000/app:t").unwrap();
        assert_eq!(r.registry, "[::1]:5000");
        let r = Reference::parse("ghcr.io/o/r/deep/path:a_b.c-d").unwrap();
        assert_eq!(r.repository, "o/r/deep/path");
        // a colon in the registry part is a port, not a tag
        let r = Reference::parse("host:5000/app").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.tag.as_deref()),
            ("host:5000", Some("latest"))
        );
    }

    #[test]
    fn with_tag_and_digest() {
        let r = Reference::parse("ghcr.io/o/r:1").unwrap();
        assert_eq!(r.with_digest(D).to_string(), format!("ghcr.io/o/r:1@{D}"));
        assert_eq!(r.with_digest(D).with_tag("2").to_string(), "ghcr.io/o/r:2");
    }

    #[test]
    fn rejects_bad_references_with_the_grammar_hint() {
        for bad in [
            "",
            "Busybox",
            "ghcr.io/Owner/repo",
            "a//b",
            "a/b:",
            "a/b:-tag",
            "a/b@sha256:abc",
            "a/b@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
            "a b",
            "a/-b",
            "a/b..c",
            "host:port/app",
            "ghcr.io/",
            ":tag",
        ] {
            let err = Reference::parse(bad).expect_err(bad).to_string();
            assert!(err.contains(&format!("`{bad}`")), "{err}");
            assert!(err.contains("hint: references look like"), "{err}");
        }
        let long = format!("a/{}", "b".repeat(300));
        assert!(Reference::parse(&long).is_err());
        let tag = format!("a:{}", "t".repeat(129));
        assert!(Reference::parse(&tag).is_err());
    }

    #[test]
    fn component_separators() {
        for ok in ["a.b", "a_b", "a__b", "a-b", "a---b", "a0/b1"] {
            assert!(Reference::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["a___b", "a._b", "_a", "a_"] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn registry_host_normalisation() {
        assert_eq!(
            normalize_registry_host("https://index.docker.io/v1/"),
            "docker.io"
        );
        assert_eq!(normalize_registry_host("http://Host:5000/x"), "host:5000");
        assert_eq!(normalize_registry_host("ghcr.io"), "ghcr.io");
    }
}
