//! The registry client's core: one `send` that every call goes through, which attaches the right
//! `Authorization` for the host and scopes, answers a 401 challenge once, and retries transient
//! failures. Pulling and pushing (in `pull.rs` and `upload.rs`) only build requests and read
//! answers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use reqwest::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{RequestBuilder, Response, StatusCode};

use super::auth::{self, Challenge};
use super::credentials::{Credential, CredentialStore};
use super::error::{chain, Operation, RegistryError};
use super::idle::{self, BodyError, Progress};
use super::reference::normalize_registry_host;
use super::retry::{self, RetryPolicy};
use super::transport::{
    authority, redacted, Direction, DowngradeRefused, RegistryOptions, Transport,
};

/// Error bodies are read up to this size for their message.
const MAX_ERROR_BODY: usize = 64 << 10;

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
                let realm_host = authority(&realm_url);
                // The token service gets the registry's credentials: never in clear text when
                // the registry itself is reached over HTTPS, unless the realm's host is marked
                // insecure.
                if realm_url.scheme() == "http"
                    && !self
                        .inner
                        .transport
                        .plain_http_allowed(&t.host, t.direction)
                    && !self
                        .inner
                        .transport
                        .plain_http_allowed(&realm_host, t.direction)
                {
                    return Err(RegistryError::Downgrade {
                        registry: t.host.clone(),
                        operation: t.operation,
                        how: "named the token service",
                        url: redacted(&realm_url),
                        host: realm_host,
                    });
                }
                let http = self.inner.transport.http(&realm_host, t.direction)?;
                Some(
                    auth::fetch_token(
                        &http,
                        &t.host,
                        realm,
                        service.as_deref(),
                        &t.scopes,
                        cred.as_ref(),
                        self.inner.transport.idle,
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
    /// failures (connection errors, a stall longer than the idle window, 429 and 5xx). Returns
    /// any other answer for the caller to interpret.
    pub(crate) async fn send<F>(
        &self,
        t: &Target,
        retries: u32,
        build: F,
    ) -> Result<Response, RegistryError>
    where
        F: Fn(&reqwest::Client) -> Result<RequestBuilder, RegistryError>,
    {
        self.send_watched(t, retries, &Progress::new(), build).await
    }

    /// [`Client::send`] for a request whose body marks its own progress on `progress` (a
    /// streamed upload), so that a slow upload that keeps moving is not taken for a stall.
    pub(crate) async fn send_watched<F>(
        &self,
        t: &Target,
        retries: u32,
        progress: &Progress,
        build: F,
    ) -> Result<Response, RegistryError>
    where
        F: Fn(&reqwest::Client) -> Result<RequestBuilder, RegistryError>,
    {
        let http = self.inner.transport.http(&t.host, t.direction)?;
        let idle = self.inner.transport.idle;
        let policy = RetryPolicy {
            extra_attempts: retries,
            ..self.policy(t.direction)
        };
        let mut attempt = 0u32;
        let mut reauthenticated = false;
        loop {
            let mut req = build(&http)?.build().map_err(|e| self.http_error(t, &e))?;
            self.check_scheme(t, req.url())?;
            // Credentials belong to `t.host`: an upload `Location` on another host (storage
            // behind the registry) gets none.
            if self.is_api_host(t, req.url()) {
                if let Some(a) = self.authorization(t).await? {
                    let mut v =
                        HeaderValue::from_str(&a).map_err(|_| RegistryError::InvalidResponse {
                            registry: t.host.clone(),
                            repository: t.repository.clone(),
                            operation: t.operation,
                            reason: "the token service sent a token that is not a header value"
                                .into(),
                        })?;
                    v.set_sensitive(true);
                    req.headers_mut().insert(AUTHORIZATION, v);
                }
            }
            progress.touch();
            let sent = tokio::select! {
                r = http.execute(req) => Some(r),
                () = progress.stalled(idle) => None,
            };
            let resp = match sent {
                Some(Ok(r)) => r,
                Some(Err(e)) => {
                    if attempt < policy.extra_attempts && retry::is_retryable_error(&e) {
                        tracing::debug!(host = %t.host, op = t.operation, attempt, error = %chain(&e), "retrying after connection error");
                        tokio::time::sleep(policy.delay(attempt, None)).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(self.http_error(t, &e));
                }
                None => {
                    if attempt < policy.extra_attempts {
                        tracing::info!(
                            "registry `{}` stopped responding to {} `{}` for {} s, trying again",
                            t.host,
                            t.operation,
                            t.repository,
                            idle.as_secs_f64()
                        );
                        tokio::time::sleep(policy.delay(attempt, None)).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(self.stalled(t));
                }
            };
            let status = resp.status();
            // Only the registry's own challenge is learnt: a 401 from storage behind a redirect
            // or an upload location elsewhere says nothing about how to talk to `t.host`.
            if status == StatusCode::UNAUTHORIZED
                && !reauthenticated
                && self.is_api_host(t, resp.url())
            {
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
                let asked = retry::retry_after(resp.headers());
                let wait = policy.delay(attempt, asked);
                match asked {
                    Some(asked) => tracing::info!(
                        "registry `{}` answered {status} to {} `{}` and asked to wait {} s \
                         (Retry-After); waiting {} s before trying again",
                        t.host,
                        t.operation,
                        t.repository,
                        asked.as_secs(),
                        wait.as_secs_f64()
                    ),
                    None => {
                        tracing::debug!(host = %t.host, op = t.operation, %status, attempt, "retrying")
                    }
                }
                tokio::time::sleep(wait).await;
                attempt += 1;
                continue;
            }
            return Ok(resp);
        }
    }

    /// Refuses plain HTTP to a host not marked insecure when the registry is reached over
    /// HTTPS (an absolute upload `Location`, say).
    fn check_scheme(&self, t: &Target, url: &url::Url) -> Result<(), RegistryError> {
        let host = authority(url);
        if url.scheme() == "http"
            && !self
                .inner
                .transport
                .plain_http_allowed(&t.host, t.direction)
            && !self.inner.transport.plain_http_allowed(&host, t.direction)
        {
            return Err(RegistryError::Downgrade {
                registry: t.host.clone(),
                operation: t.operation,
                how: "sent gantry to",
                url: redacted(url),
                host,
            });
        }
        Ok(())
    }

    /// Whether `url` is served by the target's own API host (same host and port).
    fn is_api_host(&self, t: &Target, url: &url::Url) -> bool {
        let scheme = self.inner.transport.scheme(&t.host, t.direction);
        url::Url::parse(&format!("{scheme}://{}/", t.host)).is_ok_and(|api| {
            api.host_str() == url.host_str()
                && api.port_or_known_default() == url.port_or_known_default()
        })
    }

    /// The error for a request that failed in the HTTP stack.
    pub(crate) fn http_error(&self, t: &Target, e: &reqwest::Error) -> RegistryError {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(s) = source {
            if let Some(d) = s.downcast_ref::<DowngradeRefused>() {
                return RegistryError::Downgrade {
                    registry: t.host.clone(),
                    operation: t.operation,
                    how: "redirected to",
                    url: d.url.clone(),
                    host: d.host.clone(),
                };
            }
            source = s.source();
        }
        if self.inner.transport.scheme(&t.host, t.direction) == "https"
            && retry::is_plain_http_answer(e)
        {
            return RegistryError::PlainHttp {
                registry: t.host.clone(),
                repository: t.repository.clone(),
                operation: t.operation,
            };
        }
        self.unreachable(t, e)
    }

    pub(crate) fn unreachable(&self, t: &Target, e: &reqwest::Error) -> RegistryError {
        RegistryError::Unreachable {
            registry: t.host.clone(),
            operation: t.operation,
            detail: chain(e),
        }
    }

    pub(crate) fn stalled(&self, t: &Target) -> RegistryError {
        RegistryError::Stalled {
            registry: t.host.clone(),
            repository: t.repository.clone(),
            operation: t.operation,
            idle: self.inner.transport.idle,
        }
    }

    /// The error for an answer's body that could not be read.
    pub(crate) fn body_error(&self, t: &Target, e: BodyError) -> RegistryError {
        match e {
            BodyError::Http(e) => self.http_error(t, &e),
            BodyError::Stalled => self.stalled(t),
        }
    }

    /// The next chunk of an answer's body under the idle window.
    pub(crate) async fn next_chunk(
        &self,
        t: &Target,
        resp: &mut Response,
    ) -> Result<Option<bytes::Bytes>, RegistryError> {
        idle::next_chunk(resp, self.inner.transport.idle)
            .await
            .map_err(|e| self.body_error(t, e))
    }

    /// GETs a small answer whole (a manifest, a config): the request is retried as
    /// [`Client::send`] retries it, and a body cut short or stalled starts the GET again.
    /// A status other than 2xx is the error for `what`. Returns the headers and at most
    /// `limit + 1` bytes (more means "too large" to the caller).
    pub(crate) async fn get_whole<F>(
        &self,
        t: &Target,
        what: &str,
        limit: usize,
        build: F,
    ) -> Result<(reqwest::header::HeaderMap, Vec<u8>), RegistryError>
    where
        F: Fn(&reqwest::Client) -> Result<RequestBuilder, RegistryError>,
    {
        let policy = self.policy(t.direction);
        let mut attempt = 0;
        loop {
            let resp = self.send(t, policy.extra_attempts, &build).await?;
            if !resp.status().is_success() {
                return Err(self.status_error(t, resp, what).await);
            }
            let headers = resp.headers().clone();
            match idle::read_to_end(resp, self.inner.transport.idle, limit).await {
                Ok(body) => return Ok((headers, body)),
                Err(e) => {
                    let e = self.body_error(t, e);
                    if attempt < policy.extra_attempts && is_transfer_failure(&e) {
                        tracing::debug!(host = %t.host, op = t.operation, attempt, error = %e, "answer cut short, trying again");
                        tokio::time::sleep(policy.delay(attempt, None)).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Turns an unexpected answer into the matching error, with the registry's own message.
    pub(crate) async fn status_error(
        &self,
        t: &Target,
        resp: Response,
        what: &str,
    ) -> RegistryError {
        status_error_from(t, resp, what, self.inner.transport.idle).await
    }
}

/// A transfer that failed on the way (connection dropped, stalled): worth starting again.
pub(crate) fn is_transfer_failure(e: &RegistryError) -> bool {
    matches!(
        e,
        RegistryError::Unreachable { .. } | RegistryError::Stalled { .. }
    )
}

async fn status_error_from(
    t: &Target,
    resp: Response,
    what: &str,
    window: std::time::Duration,
) -> RegistryError {
    let status = resp.status();
    // The status is the error; a body that does not come only loses the registry's message.
    let body = idle::read_to_end(resp, window, MAX_ERROR_BODY)
        .await
        .unwrap_or_default();
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
            permission: match t.direction {
                Direction::Pull => "pull",
                Direction::Push => "push",
            },
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
