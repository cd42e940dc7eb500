//! The registry token dance: read a `WWW-Authenticate` challenge, then either send Basic
//! credentials or fetch a Bearer token from the realm for a set of scopes.
//!
//! Docker's rules are followed: the token service receives the registry's Basic credentials (or an
//! identity token as an OAuth2 refresh token), tokens are only ever sent to the registry they were
//! issued for, and one request may ask for several scopes (push on the destination plus pull on
//! the source of a cross-repository mount).

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;

use super::credentials::Credential;
use super::error::{chain, RegistryError};
use super::idle::BodyError;

/// Token answers larger than this are refused (real ones are a few KiB).
const MAX_TOKEN_ANSWER: usize = 1 << 20;

/// A parsed `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// Parses the first Basic or Bearer challenge of a `WWW-Authenticate` value.
/// Parameters are `key=value` or `key="quoted, value"`, separated by commas.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = match header.split_once(char::is_whitespace) {
        Some((s, r)) => (s, r),
        None => (header, ""),
    };
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
        }),
        _ => None,
    }
}

fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                value.push(n);
                            }
                        }
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    out
}

/// `Authorization` value for Basic credentials.
pub fn basic_header(username: &str, password: &str) -> String {
    let raw = format!("{username}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// The `Authorization` value answering a Basic challenge, if the credential can.
pub fn basic_answer(cred: Option<&Credential>) -> Option<String> {
    match cred? {
        Credential::Basic { username, password } => Some(basic_header(username, password)),
        Credential::Bearer(t) => Some(format!("Bearer {t}")),
        Credential::IdentityToken(_) => None,
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

/// Fetches a Bearer token for `scopes` from the realm of a challenge, with `http` (a client set up
/// for the realm's host). A token service that stays silent for `idle` is an error. Returns the
/// full `Authorization` value.
pub async fn fetch_token(
    http: &reqwest::Client,
    registry: &str,
    realm: &str,
    service: Option<&str>,
    scopes: &[String],
    cred: Option<&Credential>,
    idle: Duration,
) -> Result<String, RegistryError> {
    let fail = |reason: String| RegistryError::TokenService {
        registry: registry.to_string(),
        realm: realm.to_string(),
        reason,
    };
    if let Some(Credential::Bearer(t)) = cred {
        return Ok(format!("Bearer {t}"));
    }
    let mut url = url::Url::parse(realm).map_err(|e| fail(format!("invalid realm URL: {e}")))?;
    let request = match cred {
        Some(Credential::IdentityToken(refresh)) => {
            // OAuth2 refresh-token grant, as `docker login` tokens are used by Docker.
            let mut form: Vec<(&str, &str)> = vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh),
                ("client_id", "gantry"),
            ];
            if let Some(s) = service {
                form.push(("service", s));
            }
            let scope = scopes.join(" ");
            if !scope.is_empty() {
                form.push(("scope", &scope));
            }
            let body = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish();
            http.post(url)
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(body)
        }
        other => {
            {
                let mut q = url.query_pairs_mut();
                if let Some(s) = service {
                    q.append_pair("service", s);
                }
                for s in scopes {
                    q.append_pair("scope", s);
                }
                if let Some(Credential::Basic { username, .. }) = other {
                    q.append_pair("account", username);
                }
            }
            let mut req = http.get(url);
            if let Some(Credential::Basic { username, password }) = other {
                req = req.header(
                    reqwest::header::AUTHORIZATION,
                    basic_header(username, password),
                );
            }
            req
        }
    };
    let silent = || {
        fail(format!(
            "no answer for {} s (idle timeout)",
            idle.as_secs_f64()
        ))
    };
    let resp = tokio::time::timeout(idle, request.send())
        .await
        .map_err(|_| silent())?
        .map_err(|e| fail(format!("request failed: {}", chain(&e))))?;
    let status = resp.status();
    if status.as_u16() == 401 || status.as_u16() == 403 {
        return Err(RegistryError::Unauthorized {
            registry: registry.to_string(),
            repository: scopes.join(" "),
            operation: "authenticate",
            message: format!("the token service `{realm}` answered {status}"),
        });
    }
    if !status.is_success() {
        return Err(fail(format!("it answered {status}")));
    }
    let body = super::idle::read_to_end(resp, idle, MAX_TOKEN_ANSWER)
        .await
        .map_err(|e| match e {
            BodyError::Http(e) => fail(format!("reading the answer failed: {}", chain(&e))),
            BodyError::Stalled => silent(),
        })?;
    if body.len() > MAX_TOKEN_ANSWER {
        return Err(fail(format!(
            "the answer is larger than {MAX_TOKEN_ANSWER} bytes"
        )));
    }
    let answer: TokenAnswer = serde_json::from_slice(&body)
        .map_err(|e| fail(format!("the answer is not token JSON: {e}")))?;
    let token = answer
        .token
        .filter(|t| !t.is_empty())
        .or(answer.access_token.filter(|t| !t.is_empty()))
        .ok_or_else(|| fail("the answer has no `token` or `access_token`".into()))?;
    Ok(format!("Bearer {token}"))
}

/// `repository:<repo>:<actions>`
pub fn repository_scope(repository: &str, actions: &str) -> String {
    format!("repository:{repository}:{actions}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_with_quoted_commas() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into())
            }
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="basic-realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge("bearer realm=http://127.0.0.1:1/t"),
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:1/t".into(),
                service: None
            })
        );
        assert_eq!(parse_challenge("Bearer service=x"), None);
        assert_eq!(parse_challenge("Negotiate abc"), None);
    }

    #[test]
    fn basic_header_encodes_user_and_password() {
        assert_eq!(basic_header("u", "p:w"), "Basic dTpwOnc=");
        assert_eq!(
            basic_answer(Some(&Credential::IdentityToken("x".into()))),
            None
        );
        assert_eq!(basic_answer(None), None);
    }
}
