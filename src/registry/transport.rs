//! How gantry connects to each registry host: plain HTTP or HTTPS, which CAs it trusts, which
//! client certificate it presents, whether verification is skipped - decided per host and per
//! direction (kaniko has separate `--insecure` / `--insecure-pull` and skip-verify flags for push
//! and pull).
//!
//! CA and client-certificate files are read and parsed when the client is created, so a bad file
//! is an error before any work starts, not a surprise at push time.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use super::credentials::Credential;
use super::error::{chain, RegistryError};
use super::reference::normalize_registry_host;

/// Everything the registry module can be told; kaniko's registry flags map onto these fields.
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// Hosts reached over plain HTTP (`--insecure-registry`).
    pub insecure_registries: Vec<String>,
    /// Plain HTTP for every push (`--insecure`).
    pub insecure_push: bool,
    /// Plain HTTP for every pull (`--insecure-pull`).
    pub insecure_pull: bool,
    /// Hosts whose certificate is not verified (`--skip-tls-verify-registry`).
    pub skip_tls_verify_registries: Vec<String>,
    /// `--skip-tls-verify`.
    pub skip_tls_verify_push: bool,
    /// `--skip-tls-verify-pull`.
    pub skip_tls_verify_pull: bool,
    /// `--registry-certificate host=ca.pem`: extra trusted CAs per host.
    pub registry_certificates: Vec<(String, PathBuf)>,
    /// `--registry-client-cert host=cert.pem,key.pem`.
    pub client_certificates: Vec<(String, PathBuf, PathBuf)>,
    /// `--registry-mirror` for Docker Hub images, `host[/path-prefix]`, tried in order.
    pub mirrors: Vec<String>,
    /// `--registry-map from=to[/prefix]`, tried in order before the original registry.
    pub registry_maps: Vec<(String, String)>,
    /// `--skip-default-registry-fallback`: fail instead of falling back to the original registry.
    pub skip_default_registry_fallback: bool,
    /// Extra attempts for push calls (`--push-retry`).
    pub push_retry: u32,
    /// Extra attempts for pull calls (`--image-fs-extract-retry` / pull retries).
    pub pull_retry: u32,
    /// An explicit config.json (file or directory).
    pub docker_config: Option<PathBuf>,
    /// Credentials given directly (CI); they win over config.json.
    pub extra_credentials: Vec<(String, Credential)>,
    /// How long a connection may go without a byte moving before the attempt is given up;
    /// `None`: `GANTRY_REGISTRY_IDLE_TIMEOUT`, else 60 s.
    pub idle_timeout: Option<Duration>,
}

/// Which way data flows; the push and pull TLS options differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Direction {
    Pull,
    Push,
}

/// Whether `host` is named in a list of hosts from the command line.
pub(crate) fn host_listed(list: &[String], host: &str) -> bool {
    let host = normalize_registry_host(host);
    list.iter().any(|h| normalize_registry_host(h) == host)
}

struct HostTls {
    ca_pem: Vec<(PathBuf, Vec<u8>)>,
    identity_pem: Option<Vec<u8>>,
}

pub(crate) struct Transport {
    pub(crate) opts: RegistryOptions,
    /// The idle window of every call (see `idle.rs`).
    pub(crate) idle: Duration,
    tls: BTreeMap<String, HostTls>,
    clients: Mutex<BTreeMap<(String, Direction, bool), reqwest::Client>>,
}

/// Why the redirect policy stopped a redirect from HTTPS to plain HTTP; found again in the
/// error's sources by `Client::send`.
#[derive(Debug)]
pub(crate) struct DowngradeRefused {
    /// The target without its query.
    pub url: String,
    pub host: String,
}

impl std::fmt::Display for DowngradeRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "refused redirect from HTTPS to plain HTTP `{}`",
            self.url
        )
    }
}

impl std::error::Error for DowngradeRefused {}

/// `host[:port]` of a URL, the way hosts are named on the command line.
pub(crate) fn authority(url: &url::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => String::new(),
    }
}

/// A URL fit for a message: scheme, host and path, without the query, which for blob storage
/// often carries a signature.
pub(crate) fn redacted(url: &url::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

/// Most redirects a call follows (reqwest's default).
const MAX_REDIRECTS: usize = 10;

impl Transport {
    pub(crate) fn new(opts: RegistryOptions) -> Result<Transport, RegistryError> {
        // reqwest is built without a default crypto provider; an error means one is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut tls: BTreeMap<String, HostTls> = BTreeMap::new();
        for (host, path) in &opts.registry_certificates {
            let host = normalize_registry_host(host);
            let bad = |reason: String| RegistryError::Tls {
                registry: host.clone(),
                path: path.clone(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| bad(format!("not a PEM certificate bundle: {}", chain(&e))))?;
            if certs.is_empty() {
                return Err(bad("it holds no PEM certificate".into()));
            }
            tls.entry(host.clone())
                .or_insert_with(|| HostTls {
                    ca_pem: Vec::new(),
                    identity_pem: None,
                })
                .ca_pem
                .push((path.clone(), pem));
        }
        for (host, cert, key) in &opts.client_certificates {
            let host = normalize_registry_host(host);
            let mut pem = std::fs::read(cert).map_err(|e| RegistryError::Tls {
                registry: host.clone(),
                path: cert.clone(),
                reason: e.to_string(),
            })?;
            let key_pem = std::fs::read(key).map_err(|e| RegistryError::Tls {
                registry: host.clone(),
                path: key.clone(),
                reason: e.to_string(),
            })?;
            pem.push(b'\n');
            pem.extend_from_slice(&key_pem);
            reqwest::Identity::from_pem(&pem).map_err(|e| RegistryError::Tls {
                registry: host.clone(),
                path: cert.clone(),
                reason: format!("not a PEM certificate and private key: {}", chain(&e)),
            })?;
            tls.entry(host)
                .or_insert_with(|| HostTls {
                    ca_pem: Vec::new(),
                    identity_pem: None,
                })
                .identity_pem = Some(pem);
        }
        let idle = super::idle::idle_timeout(opts.idle_timeout)?;
        Ok(Transport {
            opts,
            idle,
            tls,
            clients: Mutex::new(BTreeMap::new()),
        })
    }

    /// `http` or `https` for a host in a direction.
    pub(crate) fn scheme(&self, host: &str, dir: Direction) -> &'static str {
        let insecure = host_listed(&self.opts.insecure_registries, host)
            || match dir {
                Direction::Push => self.opts.insecure_push,
                Direction::Pull => self.opts.insecure_pull,
            };
        if insecure {
            "http"
        } else {
            "https"
        }
    }

    /// Whether plain HTTP to `host` is allowed in a direction: the host is marked insecure.
    pub(crate) fn plain_http_allowed(&self, host: &str, dir: Direction) -> bool {
        self.scheme(host, dir) == "http"
    }

    fn skip_verify(&self, host: &str, dir: Direction) -> bool {
        host_listed(&self.opts.skip_tls_verify_registries, host)
            || match dir {
                Direction::Push => self.opts.skip_tls_verify_push,
                Direction::Pull => self.opts.skip_tls_verify_pull,
            }
    }

    /// The HTTP client for a host (one per host and verification setting, reused).
    pub(crate) fn http(
        &self,
        host: &str,
        dir: Direction,
    ) -> Result<reqwest::Client, RegistryError> {
        let key_host = normalize_registry_host(host);
        let skip = self.skip_verify(host, dir);
        let key = (key_host.clone(), dir, skip);
        if let Some(c) = self.lock().get(&key) {
            return Ok(c.clone());
        }
        let fail = |detail: String| RegistryError::HttpClient {
            registry: host.to_string(),
            detail,
        };
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .user_agent(concat!("gantry/", env!("CARGO_PKG_VERSION")))
            // reqwest drops Authorization on every redirect to another host, port or scheme
            // (blob storage), whatever the policy. The policy adds the other half: a redirect
            // from HTTPS to plain HTTP is refused unless the target host is marked insecure.
            .redirect(self.redirect_policy(dir))
            // The registry URL (upload state included) is nobody else's business.
            .referer(false);
        if let Some(t) = self.tls.get(&key_host) {
            let mut certs = Vec::new();
            for (_, pem) in &t.ca_pem {
                certs.extend(
                    reqwest::Certificate::from_pem_bundle(pem).map_err(|e| fail(chain(&e)))?,
                );
            }
            builder = builder.tls_certs_merge(certs);
            if let Some(pem) = &t.identity_pem {
                builder = builder
                    .identity(reqwest::Identity::from_pem(pem).map_err(|e| fail(chain(&e)))?);
            }
        }
        if skip {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let client = builder.build().map_err(|e| fail(chain(&e)))?;
        self.lock().insert(key, client.clone());
        Ok(client)
    }

    fn redirect_policy(&self, dir: Direction) -> reqwest::redirect::Policy {
        let insecure_hosts = self.opts.insecure_registries.clone();
        let all_insecure = match dir {
            Direction::Push => self.opts.insecure_push,
            Direction::Pull => self.opts.insecure_pull,
        };
        reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            let next = attempt.url();
            let host = authority(next);
            let from_https = attempt.previous().iter().any(|u| u.scheme() == "https");
            if from_https
                && next.scheme() == "http"
                && !all_insecure
                && !host_listed(&insecure_hosts, &host)
            {
                let refused = DowngradeRefused {
                    url: redacted(next),
                    host,
                };
                return attempt.error(refused);
            }
            attempt.follow()
        })
    }

    #[allow(clippy::type_complexity)]
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, BTreeMap<(String, Direction, bool), reqwest::Client>> {
        // A poisoned map of clients is still a valid map of clients.
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_and_verification_per_host_and_direction() {
        let t = Transport::new(RegistryOptions {
            insecure_registries: vec!["127.0.0.1:5000".into()],
            insecure_pull: true,
            skip_tls_verify_registries: vec!["self.signed".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(t.scheme("127.0.0.1:5000", Direction::Push), "http");
        assert_eq!(t.scheme("ghcr.io", Direction::Push), "https");
        assert_eq!(t.scheme("ghcr.io", Direction::Pull), "http");
        assert!(t.skip_verify("self.signed", Direction::Push));
        assert!(!t.skip_verify("ghcr.io", Direction::Push));
        assert!(host_listed(
            &["index.docker.io".into()],
            "registry-1.docker.io"
        ));
    }

    #[test]
    fn bad_ca_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate").unwrap();
        let err = Transport::new(RegistryOptions {
            registry_certificates: vec![("r.example".into(), ca.clone())],
            ..Default::default()
        })
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains(&format!("`{}`", ca.display())), "{err}");
        assert!(err.contains("hint:"), "{err}");
        let missing = Transport::new(RegistryOptions {
            registry_certificates: vec![("r.example".into(), dir.path().join("nope.pem"))],
            ..Default::default()
        });
        assert!(missing.is_err());
    }

    #[test]
    fn client_certificate_and_ca_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["client".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (c, k, ca) = (
            dir.path().join("c.pem"),
            dir.path().join("k.pem"),
            dir.path().join("ca.pem"),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        std::fs::write(&ca, cert.pem()).unwrap();
        let t = Transport::new(RegistryOptions {
            registry_certificates: vec![("r.example".into(), ca)],
            client_certificates: vec![("r.example".into(), c.clone(), k)],
            ..Default::default()
        })
        .unwrap();
        assert!(t.http("r.example", Direction::Push).is_ok());
        // a certificate without its key is refused, naming the file
        let err = Transport::new(RegistryOptions {
            client_certificates: vec![("r.example".into(), c.clone(), c.clone())],
            ..Default::default()
        })
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains(&format!("`{}`", c.display())), "{err}");
    }
}
