//! The registry client's core: one `send` that every call goes through, which attaches the right
//! `Authorization` for the host and scopes, answers a 401 challenge once, and retries transient
//! failures. Pulling and pushing (in `pull.rs` and `upload.rs`) only build requests and read
//! answers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{RequestBuilder, Response, StatusCode};

use super::auth::{self, Challenge};
use super::credentials::{Credential, CredentialStore};
use super::error::{chain, Operation, RegistryError};
use super::reference::normalize_registry_host;
use super::retry::{self, RetryPolicy};
use super::transport::{Direction, RegistryOptions, Transport};

/// A registry client. Cheap to clone; clones share connections, credentials and tokens.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) transport: Transport,
    creds: CredentialStore,
    cred_cache: Mutex<BTreeMap<String, Option<Credential>>>,
    challenges: Mutex<BTreeMap<String, Challenge>>,
    /// `Authorization` values per (host, sorted scopes); Basic answers use an empty scope key.
    tokens: Mutex<BTreeMap<(String, String), String>>,
}

/// Where a request goes and why: used for auth scopes, retries and error messages.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    /// `host[:port]` serving the API.
    pub host: String,
    pub repository: String,
    pub operation: Operation,
    pub direction: Direction,
    /// Token scopes, e.g. `repository:a/b:pull,push`.
    pub scopes: Vec<String>,
}

impl Target {
    pub(crate) fn new(
        host: &str,
        repository: &str,
        operation: Operation,
        direction: Direction,
    ) -> Target {
        let actions = match direction {
            Direction::Pull => "pull",
            Direction::Push => "pull,push",
        };
        Target {
            host: host.to_string(),
            repository: repository.to_string(),
            operation,
            direction,
            scopes: vec![auth::repository_scope(repository, actions)],
        }
    }

    fn scope_key(&self) -> String {
        let mut s = self.scopes.clone();
        s.sort();
        s.join(" ")
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Client {
    /// Creates a client: reads config.json and the TLS files now, so bad ones fail early.
    pub fn new(opts: RegistryOptions) -> Result<Client, RegistryError> {
        let creds = CredentialStore::load(opts.docker_config.as_deref(), &opts.extra_credentials)?;
        Client::with_credentials(opts, creds)
    }

    /// Creates a client with an already loaded credential store.
    pub fn with_credentials(
        opts: RegistryOptions,
        creds: CredentialStore,
    ) -> Result<Client, RegistryError> {
        Ok(Client {
            inner: Arc::new(Inner {
                transport: Transport::new(opts)?,
                creds,
                cred_cache: Mutex::new(BTreeMap::new()),
                challenges: Mutex::new(BTreeMap::new()),
                tokens: Mutex::new(BTreeMap::new()),
            }),
        })
    }

    pub(crate) fn opts(&self) -> &RegistryOptions {
        &self.inner.transport.opts
    }

    /// `scheme://host/v2/<rest>` for a host and direction.
    pub(crate) fn url(&self, t: &Target, rest: &str) -> Result<url::Url, RegistryError> {
        let scheme = self.inner.transport.scheme(&t.host, t.direction);
        let s = format!("{scheme}://{}/v2/{rest}", t.host);
        url::Url::parse(&s).map_err(|e| RegistryError::InvalidResponse {
            registry: t.host.clone(),
            repository: t.repository.clone(),
            operation: t.operation,
            reason: format!("cannot form URL `{s}`: {e}"),
        })
    }

    pub(crate) fn policy(&self, dir: Direction) -> RetryPolicy {
        RetryPolicy::new(match dir {
            Direction::Push => self.opts().push_retry,
            Direction::Pull => self.opts().pull_retry,
        })
    }

    async fn credential(&self, host: &str) -> Result<Option<Credential>, RegistryError> {
        let key = normalize_registry_host(host);
        if let Some(c) = lock(&self.inner.cred_cache).get(&key) {
            return Ok(c.clone());
        }
        let c = self.inner.creds.lookup(&key).await?;
        lock(&self.inner.cred_cache).insert(key, c.clone());
        Ok(c)
    }

    /// The `Authorization` value for a target, fetching a token if the host is known to want one.
    async fn authorization(&self, t: &Target) -> Result<Option<String>, RegistryError> {
        let challenge = lock(&self.inner.challenges).get(&t.host).cloned();
        let Some(challenge) = challenge else {
            return Ok(None);
        };
        let key = match challenge {
            Challenge::Basic => (t.host.clone(), String::new()),
            Challenge::Bearer { .. } => (t.host.clone(), t.scope_key()),
        };
        if let Some(v) = lock(&self.inner.tokens).get(&key) {
            return Ok(Some(v.clone()));
        }
        let cred = self.credential(&t.host).await?;
        let value = match &challenge {
            Challenge::Basic => auth::basic_answer(cred.as_ref()),
            Challenge::Bearer { realm, service } => {
                let realm_url =
                    url::Url::parse(realm).map_err(|e| RegistryError::TokenService {
                        registry: t.host.clone(),
                        realm: realm.clone(),
                        reason: format!("invalid realm URL: {e}"),
                    })?;
                let realm_host = match (realm_url.host_str(), realm_url.port()) {
                    (Some(h), Some(p)) => format!("{h}:{p}"),
                    (Some(h), None) => h.to_string(),
                    (None, _) => String::new(),
                };
                let http = self.inner.transport.http(&realm_host, Direction::Pull)?;
                Some(
                    auth::fetch_token(
                        &http,
                        &t.host,
                        realm,
                        service.as_deref(),
                        &t.scopes,
                        cred.as_ref(),
                    )
                    .await?,
                )
            }
        };
        if let Some(v) = &value {
            lock(&self.inner.tokens).insert(key, v.clone());
        }
        Ok(value)
    }

    /// Sends a request built by `build` (called again for each attempt, so bodies are fresh),
    /// with auth, one re-authentication on 401, and `retries` extra attempts on transient
    /// failures. Returns any other answer for the caller to interpret.
    pub(crate) async fn send<F>(
        &self,
        t: &Target,
        retries: u32,
        build: F,
    ) -> Result<Response, RegistryError>
    where
        F: Fn(&reqwest::Client) -> Result<RequestBuilder, RegistryError>,
    {
        let http = self.inner.transport.http(&t.host, t.direction)?;
        let policy = RetryPolicy {
            extra_attempts: retries,
            ..self.policy(t.direction)
        };
        let mut attempt = 0u32;
        let mut reauthenticated = false;
        loop {
            let mut req = build(&http)?;
            if let Some(a) = self.authorization(t).await? {
                req = req.header(AUTHORIZATION, a);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    if attempt < policy.extra_attempts && retry::is_retryable_error(&e) {
                        tracing::debug!(host = %t.host, op = t.operation, attempt, "retrying after connection error");
                        tokio::time::sleep(policy.delay(attempt, None)).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(self.unreachable(t, &e));
                }
            };
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && !reauthenticated {
                reauthenticated = true;
                let challenge = resp
                    .headers()
                    .get_all(WWW_AUTHENTICATE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .find_map(auth::parse_challenge);
                if let Some(c) = challenge {
                    lock(&self.inner.challenges).insert(t.host.clone(), c);
                    let mut tokens = lock(&self.inner.tokens);
                    tokens.remove(&(t.host.clone(), t.scope_key()));
                    tokens.remove(&(t.host.clone(), String::new()));
                    drop(tokens);
                    continue;
                }
            }
            if retry::is_retryable_status(status) && attempt < policy.extra_attempts {
                let wait = policy.delay(attempt, retry::retry_after(resp.headers()));
                tracing::debug!(host = %t.host, op = t.operation, %status, attempt, "retrying");
                tokio::time::sleep(wait).await;
                attempt += 1;
                continue;
            }
            return Ok(resp);
        }
    }

    pub(crate) fn unreachable(&self, t: &Target, e: &reqwest::Error) -> RegistryError {
        RegistryError::Unreachable {
            registry: t.host.clone(),
            operation: t.operation,
            detail: chain(e),
        }
    }
}

/// Turns an unexpected answer into the matching error, with the registry's own message.
pub(crate) async fn status_error(t: &Target, resp: Response, what: &str) -> RegistryError {
    let status = resp.status();
    let body = resp.bytes().await.unwrap_or_default();
    let message = registry_message(&body);
    let registry = t.host.clone();
    let repository = t.repository.clone();
    let operation = t.operation;
    match status.as_u16() {
        401 => RegistryError::Unauthorized {
            registry,
            repository,
            operation,
            message,
        },
        403 => RegistryError::Forbidden {
            registry,
            repository,
            operation,
            message,
        },
        404 => RegistryError::NotFound {
            registry,
            repository,
            operation,
            what: what.to_string(),
            message,
        },
        s => RegistryError::Status {
            registry,
            repository,
            operation,
            status: s,
            message,
        },
    }
}

/// The `errors` array of a distribution error body as `CODE: message; ...`, or a short prefix of
/// any other body.
fn registry_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<Errors>(body) {
        return e
            .errors
            .iter()
            .map(|e| format!("{} {}", e.code, e.message).trim().to_string())
            .collect::<Vec<_>>()
            .join("; ");
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distribution_error_bodies_are_summarised() {
        let body =
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(registry_message(body), "MANIFEST_UNKNOWN manifest unknown");
        assert_eq!(registry_message(b"  oops \n"), "oops");
        assert_eq!(registry_message(&[b'x'; 500]).len(), 200);
    }
}
