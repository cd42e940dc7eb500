//! Registry credentials: Docker's `config.json` (`auths`, `credHelpers`, `credsStore`), the
//! `docker-credential-*` helper protocol, and credentials handed to gantry directly by CI.
//!
//! Everything is keyed by the normalised registry host (see
//! [`normalize_registry_host`](super::reference::normalize_registry_host)) so that a login saved as
//! `https://index.docker.io/v1/` serves `docker.io` images. A config file that exists but cannot be
//! read or parsed is an error naming it, never skipped.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;

use super::error::RegistryError;
use super::reference::{normalize_registry_host, DOCKER_HUB};

/// Directory holding `config.json`, as Docker reads it.
pub const DOCKER_CONFIG_ENV: &str = "DOCKER_CONFIG";
/// Where kaniko's image keeps its docker config.
pub const KANIKO_DOCKER_CONFIG: &str = "/kaniko/.docker/config.json";
/// The server URL credential helpers and `auths` use for Docker Hub.
pub const DOCKER_HUB_SERVER_URL: &str = "https://index.docker.io/v1/";

/// A credential for one registry host.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    Basic {
        username: String,
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken`), exchanged at the token service.
    IdentityToken(String),
    /// A registry token sent as `Authorization: Bearer` as it is.
    Bearer(String),
}

impl fmt::Debug for Credential {
    // Never print a secret, not even in a debug dump.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Basic { username, .. } => {
                write!(
                    f,
                    "Basic {{ username: {username:?}, password: <redacted> }}"
                )
            }
            Credential::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
            Credential::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
}

/// The parsed docker config plus directly given credentials.
#[derive(Debug, Default)]
pub struct CredentialStore {
    path: Option<PathBuf>,
    auths: BTreeMap<String, Credential>,
    helpers: BTreeMap<String, String>,
    store: Option<String>,
    extra: BTreeMap<String, Credential>,
    /// PATH for helper programs; `None` uses the process's.
    helper_path: Option<OsString>,
}

/// Picks the config.json to read: `explicit` (a file or a directory holding `config.json`), else
/// the first existing of `$DOCKER_CONFIG/config.json`, `$HOME/.docker/config.json`,
/// `/kaniko/.docker/config.json`.
pub fn find_config(
    explicit: Option<&Path>,
    docker_config_env: Option<OsString>,
    home: Option<OsString>,
) -> Result<Option<PathBuf>, RegistryError> {
    if let Some(p) = explicit {
        let file = if p.is_dir() {
            p.join("config.json")
        } else {
            p.to_path_buf()
        };
        if !file.exists() {
            return Err(RegistryError::DockerConfig {
                path: file,
                reason: "the file does not exist".into(),
            });
        }
        return Ok(Some(file));
    }
    let mut candidates = Vec::new();
    if let Some(d) = docker_config_env.filter(|d| !d.is_empty()) {
        candidates.push(PathBuf::from(d).join("config.json"));
    }
    if let Some(h) = home.filter(|h| !h.is_empty()) {
        candidates.push(PathBuf::from(h).join(".docker").join("config.json"));
    }
    candidates.push(PathBuf::from(KANIKO_DOCKER_CONFIG));
    Ok(candidates.into_iter().find(|c| c.exists()))
}

impl CredentialStore {
    /// Finds and reads the docker config (see [`find_config`]) and adds `extra` credentials,
    /// which take precedence.
    pub fn load(
        explicit: Option<&Path>,
        extra: &[(String, Credential)],
    ) -> Result<CredentialStore, RegistryError> {
        let path = find_config(
            explicit,
            std::env::var_os(DOCKER_CONFIG_ENV),
            std::env::var_os("HOME"),
        )?;
        let mut store = match path {
            Some(p) => {
                let text = std::fs::read(&p).map_err(|e| RegistryError::DockerConfig {
                    path: p.clone(),
                    reason: e.to_string(),
                })?;
                CredentialStore::from_json(&p, &text)?
            }
            None => CredentialStore::default(),
        };
        for (host, cred) in extra {
            store
                .extra
                .insert(normalize_registry_host(host), cred.clone());
        }
        Ok(store)
    }

    /// Parses config.json bytes; `path` is only used in messages.
    pub fn from_json(path: &Path, bytes: &[u8]) -> Result<CredentialStore, RegistryError> {
        let bad = |reason: String| RegistryError::DockerConfig {
            path: path.to_path_buf(),
            reason,
        };
        let file: ConfigFile =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let mut auths = BTreeMap::new();
        for (key, entry) in &file.auths {
            if let Some(cred) =
                entry_credential(entry).map_err(|r| bad(format!("auths `{key}`: {r}")))?
            {
                auths.insert(normalize_registry_host(key), cred);
            }
        }
        let helpers = file
            .cred_helpers
            .iter()
            .map(|(k, v)| (normalize_registry_host(k), v.clone()))
            .collect();
        Ok(CredentialStore {
            path: Some(path.to_path_buf()),
            auths,
            helpers,
            store: file.creds_store.filter(|s| !s.is_empty()),
            extra: BTreeMap::new(),
            helper_path: None,
        })
    }

    /// Runs credential helpers with this PATH instead of the process's.
    pub fn with_helper_path(mut self, path: OsString) -> Self {
        self.helper_path = Some(path);
        self
    }

    /// The config file read, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The credential for a registry host: direct credentials, then `credHelpers`, then
    /// `credsStore`, then `auths`. `None` means anonymous.
    pub async fn lookup(&self, registry: &str) -> Result<Option<Credential>, RegistryError> {
        let host = normalize_registry_host(registry);
        if let Some(c) = self.extra.get(&host) {
            return Ok(Some(c.clone()));
        }
        if let Some(helper) = self.helpers.get(&host) {
            if let Some(c) = self.run_helper(helper, &host).await? {
                return Ok(Some(c));
            }
        } else if let Some(store) = &self.store {
            if let Some(c) = self.run_helper(store, &host).await? {
                return Ok(Some(c));
            }
        }
        Ok(self.auths.get(&host).cloned())
    }

    /// `docker-credential-<name> get` with the server URL on stdin; JSON `{Username, Secret}` out.
    async fn run_helper(
        &self,
        name: &str,
        host: &str,
    ) -> Result<Option<Credential>, RegistryError> {
        let server = if host == DOCKER_HUB {
            DOCKER_HUB_SERVER_URL.to_string()
        } else {
            host.to_string()
        };
        let fail = |reason: String| RegistryError::CredentialHelper {
            helper: name.to_string(),
            server: server.clone(),
            reason,
        };
        let program = format!("docker-credential-{name}");
        // Command::new resolves a bare name with the parent's PATH, so resolve it ourselves when
        // a PATH is given.
        let resolved = match &self.helper_path {
            Some(p) => std::env::split_paths(p)
                .map(|d| d.join(&program))
                .find(|f| f.is_file())
                .unwrap_or_else(|| PathBuf::from(&program)),
            None => PathBuf::from(&program),
        };
        let mut cmd = tokio::process::Command::new(resolved);
        if let Some(p) = &self.helper_path {
            cmd.env("PATH", p);
        }
        cmd.arg("get")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| fail(format!("cannot run it: {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            use tokio::io::AsyncWriteExt;
            stdin
                .write_all(server.as_bytes())
                .await
                .map_err(|e| fail(format!("cannot write to it: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| fail(format!("cannot wait for it: {e}")))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            // The protocol's "not found" answer is not an error: the registry is used anonymously.
            if stdout.contains("credentials not found")
                || String::from_utf8_lossy(&out.stderr).contains("credentials not found")
            {
                return Ok(None);
            }
            let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
            return Err(fail(format!("it exited with {}: {msg}", out.status)));
        }
        #[derive(Deserialize)]
        struct HelperAnswer {
            #[serde(rename = "Username", default)]
            username: String,
            #[serde(rename = "Secret", default)]
            secret: String,
        }
        let answer: HelperAnswer = serde_json::from_str(stdout.trim())
            .map_err(|e| fail(format!("its output is not the expected JSON: {e}")))?;
        if answer.secret.is_empty() {
            return Ok(None);
        }
        Ok(Some(if answer.username == "<token>" {
            Credential::IdentityToken(answer.secret)
        } else {
            Credential::Basic {
                username: answer.username,
                password: answer.secret,
            }
        }))
    }
}

fn entry_credential(e: &AuthEntry) -> Result<Option<Credential>, String> {
    if let Some(t) = e.identitytoken.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credential::IdentityToken(t.to_string())));
    }
    if let Some(a) = e.auth.as_deref().filter(|a| !a.is_empty()) {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(a.trim())
            .map_err(|_| "`auth` is not base64".to_string())?;
        let text = String::from_utf8(raw).map_err(|_| "`auth` is not UTF-8".to_string())?;
        let (user, pass) = text
            .split_once(':')
            .ok_or_else(|| "`auth` does not decode to user:password".to_string())?;
        return Ok(Some(Credential::Basic {
            username: user.to_string(),
            password: pass.to_string(),
        }));
    }
    if let (Some(u), Some(p)) = (e.username.as_deref(), e.password.as_deref()) {
        if !u.is_empty() {
            return Ok(Some(Credential::Basic {
                username: u.to_string(),
                password: p.to_string(),
            }));
        }
    }
    if let Some(t) = e.registrytoken.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credential::Bearer(t.to_string())));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(json: &str) -> CredentialStore {
        CredentialStore::from_json(Path::new("/x/config.json"), json.as_bytes()).unwrap()
    }

    fn basic(u: &str, p: &str) -> Option<Credential> {
        Some(Credential::Basic {
            username: u.into(),
            password: p.into(),
        })
    }

    #[tokio::test]
    async fn auths_with_base64_and_normalised_keys() {
        // "alice:s3cr:et" – the password may itself contain a colon
        let s = store(
            r#"{"auths":{
                "https://index.docker.io/v1/":{"auth":"YWxpY2U6czNjcjpldA=="},
                "http://Registry.example:5000/v2/":{"username":"bob","password":"pw"},
                "ghcr.io":{"identitytoken":"refresh-me"},
                "empty.example":{}
            }}"#,
        );
        assert_eq!(
            s.lookup("docker.io").await.unwrap(),
            basic("alice", "s3cr:et")
        );
        assert_eq!(
            s.lookup("registry-1.docker.io").await.unwrap(),
            basic("alice", "s3cr:et")
        );
        assert_eq!(
            s.lookup("registry.example:5000").await.unwrap(),
            basic("bob", "pw")
        );
        assert_eq!(
            s.lookup("ghcr.io").await.unwrap(),
            Some(Credential::IdentityToken("refresh-me".into()))
        );
        assert_eq!(s.lookup("empty.example").await.unwrap(), None);
        assert_eq!(s.lookup("other.example").await.unwrap(), None);
    }

    #[test]
    fn malformed_config_is_an_error_naming_the_file() {
        let err = CredentialStore::from_json(Path::new("/x/config.json"), b"{not json")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`/x/config.json`") && err.contains("invalid JSON"),
            "{err}"
        );
        let err = CredentialStore::from_json(
            Path::new("/x/config.json"),
            br#"{"auths":{"a.io":{"auth":"!!!"}}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("auths `a.io`: `auth` is not base64"), "{err}");
    }

    #[test]
    fn config_discovery_order() {
        let dir = tempfile::tempdir().unwrap();
        let env_dir = dir.path().join("env");
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".docker")).unwrap();
        std::fs::write(home.join(".docker/config.json"), "{}").unwrap();
        let found = find_config(
            None,
            Some(env_dir.clone().into()),
            Some(home.clone().into()),
        );
        assert_eq!(found.unwrap(), Some(home.join(".docker/config.json")));
        std::fs::create_dir_all(&env_dir).unwrap();
        std::fs::write(env_dir.join("config.json"), "{}").unwrap();
        let found = find_config(None, Some(env_dir.clone().into()), Some(home.into()));
        assert_eq!(found.unwrap(), Some(env_dir.join("config.json")));
        // explicit dir and explicit missing file
        assert_eq!(
            find_config(Some(&env_dir), None, None).unwrap(),
            Some(env_dir.join("config.json"))
        );
        let err = find_config(Some(&dir.path().join("nope.json")), None, None).unwrap_err();
        assert!(err.to_string().contains("nope.json"), "{err}");
    }

    #[tokio::test]
    async fn unreadable_config_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        // a directory named config.json cannot be read as a file
        std::fs::create_dir(dir.path().join("config.json")).unwrap();
        let err = CredentialStore::load(Some(dir.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("config.json`"), "{err}");
    }

    fn helper_dir() -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("docker-credential-test");
        std::fs::write(
            &script,
            "#!/bin/sh\nread server\ncase \"$server\" in\n\
             helper.example) echo '{\"ServerURL\":\"helper.example\",\"Username\":\"hu\",\"Secret\":\"hs\"}' ;;\n\
             https://index.docker.io/v1/) echo '{\"Username\":\"<token>\",\"Secret\":\"idtok\"}' ;;\n\
             broken.example) echo 'boom' >&2; exit 3 ;;\n\
             *) echo 'credentials not found in native keychain'; exit 1 ;;\nesac\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    #[tokio::test]
    async fn cred_helpers_and_store() {
        let dir = helper_dir();
        let path: OsString = format!("{}:/usr/bin:/bin", dir.path().display()).into();
        let s = store(
            r#"{"credHelpers":{"helper.example":"test","broken.example":"test","nothing.example":"test"},
                "credsStore":"test",
                "auths":{"nothing.example":{"auth":"dTpw"}}}"#,
        )
        .with_helper_path(path);
        assert_eq!(s.lookup("helper.example").await.unwrap(), basic("hu", "hs"));
        // credsStore serves hosts without their own helper; Docker Hub uses its server URL
        assert_eq!(
            s.lookup("docker.io").await.unwrap(),
            Some(Credential::IdentityToken("idtok".into()))
        );
        // "not found" falls through to auths
        assert_eq!(s.lookup("nothing.example").await.unwrap(), basic("u", "p"));
        let err = s.lookup("broken.example").await.unwrap_err().to_string();
        assert!(
            err.contains("docker-credential-test") && err.contains("boom"),
            "{err}"
        );
        assert!(err.contains("hint:"), "{err}");
    }

    #[tokio::test]
    async fn extra_credentials_take_precedence() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"auths":{"ghcr.io":{"auth":"dTpw"}}}"#,
        )
        .unwrap();
        let s = CredentialStore::load(
            Some(dir.path()),
            &[("https://ghcr.io".into(), Credential::Bearer("t".into()))],
        )
        .unwrap();
        assert_eq!(
            s.lookup("ghcr.io").await.unwrap(),
            Some(Credential::Bearer("t".into()))
        );
        assert_eq!(
            format!("{:?}", Credential::Bearer("t".into())),
            "Bearer(<redacted>)"
        );
    }
}
