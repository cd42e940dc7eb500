//! Real registries for the integration tests: Debian's `docker-registry` (distribution 2.8)
//! started on a free 127.0.0.1 port in three shapes - plain HTTP, TLS with htpasswd Basic auth,
//! and Bearer token auth backed by a small token service running in the test process.
//!
//! The token service signs ES256 JWTs with a P-256 key whose self-signed certificate is the
//! registry's `rootcertbundle`; the certificate travels in the JWT's `x5c` header, which
//! distribution 2.8 verifies against that bundle (`parseAndVerifyCertChain` in
//! `registry/auth/token/token.go`). Nothing here listens anywhere but 127.0.0.1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;

pub const USERNAME: &str = "gantry";
pub const PASSWORD: &str = "s3cret-pw";
/// The refresh token the token service accepts in an OAuth2 `refresh_token` grant.
pub const REFRESH_TOKEN: &str = "test-refresh-token";
const SERVICE: &str = "gantry-test-registry";
const ISSUER: &str = "gantry-test-issuer";

pub struct TestRegistry {
    /// `127.0.0.1:PORT`
    pub addr: String,
    /// The CA that signed the registry's certificate (TLS registries only).
    pub ca_pem: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Every token request the token service answered, as `METHOD scope scope ...` (sorted).
    pub token_log: Arc<Mutex<Vec<String>>>,
    child: Option<Child>,
    dir: tempfile::TempDir,
    token_service: Option<TokenService>,
}

struct TokenService {
    stop: Arc<AtomicBool>,
    addr: String,
    thread: Option<JoinHandle<()>>,
}

impl TestRegistry {
    /// Plain HTTP, no auth.
    pub fn plain() -> TestRegistry {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let config = base_config(dir.path(), port, "");
        TestRegistry::start(dir, port, &config, None, None, None)
    }

    /// HTTPS with a certificate from a test CA, and htpasswd Basic auth.
    pub fn tls_basic() -> TestRegistry {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let (ca_pem, cert, key) = make_tls_files(dir.path());
        let htpasswd = Command::new("htpasswd")
            .args(["-Bbn", USERNAME, PASSWORD])
            .output()
            .expect("run htpasswd (apache2-utils)");
        assert!(htpasswd.status.success(), "htpasswd failed");
        let htpasswd_path = dir.path().join("htpasswd");
        std::fs::write(&htpasswd_path, &htpasswd.stdout).unwrap();
        let extra = format!(
            "  tls:\n    certificate: {}\n    key: {}\nauth:\n  htpasswd:\n    realm: basic-realm\n    path: {}\n",
            cert.display(),
            key.display(),
            htpasswd_path.display()
        );
        let config = base_config(dir.path(), port, &extra);
        TestRegistry::start(dir, port, &config, Some(ca_pem), None, None)
    }

    /// Plain HTTP with Bearer token auth; the token service runs in this process.
    pub fn token() -> TestRegistry {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let rng = ring::rand::SystemRandom::new();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "gantry test token signer");
        let cert = params.self_signed(&key).unwrap();
        let bundle = dir.path().join("token-signer.pem");
        std::fs::write(&bundle, cert.pem()).unwrap();
        let signer = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &key.serialize_der(),
            &rng,
        )
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let token_addr = listener.local_addr().unwrap().to_string();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let issuer = Issuer {
            signer,
            rng,
            x5c: base64::engine::general_purpose::STANDARD.encode(cert.der()),
            log: log.clone(),
        };
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(mut s) = conn {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                    issuer.serve(&mut s);
                }
            }
        });
        let extra = format!(
            "auth:\n  token:\n    realm: http://{token_addr}/token\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            bundle.display()
        );
        let config = base_config(dir.path(), port, &extra);
        let service = TokenService {
            stop,
            addr: token_addr,
            thread: Some(thread),
        };
        TestRegistry::start(dir, port, &config, None, Some(service), Some(log))
    }

    fn start(
        dir: tempfile::TempDir,
        port: u16,
        config: &str,
        ca_pem: Option<PathBuf>,
        token_service: Option<TokenService>,
        log: Option<Arc<Mutex<Vec<String>>>>,
    ) -> TestRegistry {
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log_file = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("start docker-registry");
        let with_auth = ca_pem.is_some() || token_service.is_some();
        let mut reg = TestRegistry {
            addr: format!("127.0.0.1:{port}"),
            ca_pem,
            username: with_auth.then(|| USERNAME.to_string()),
            password: with_auth.then(|| PASSWORD.to_string()),
            token_log: log.unwrap_or_default(),
            child: Some(child),
            dir,
            token_service,
        };
        reg.wait_ready();
        reg
    }

    /// Waits until the registry accepts connections (it listens only once it is set up).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(&self.addr).is_ok() {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                let log = std::fs::read_to_string(self.dir.path().join("registry.log"))
                    .unwrap_or_default();
                panic!("docker-registry exited with {status}:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not start on {}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A directory with a `config.json` holding this registry's credentials (empty `auths` for
    /// registries without auth).
    pub fn docker_config_dir(&self) -> PathBuf {
        let dir = self.dir.path().join("docker-config");
        std::fs::create_dir_all(&dir).unwrap();
        let config = match (&self.username, &self.password) {
            (Some(u), Some(p)) => {
                let auth = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
                serde_json::json!({"auths": {self.addr.clone(): {"auth": auth}}})
            }
            _ => serde_json::json!({"auths": {}}),
        };
        std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
        dir
    }

    /// The registry's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The directory this registry keeps its files in (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(mut ts) = self.token_service.take() {
            ts.stop.store(true, Ordering::SeqCst);
            // Wake the accept loop so it sees the flag.
            let _ = TcpStream::connect(&ts.addr);
            if let Some(t) = ts.thread.take() {
                let _ = t.join();
            }
        }
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

fn base_config(dir: &Path, port: u16, extra: &str) -> String {
    // `extra` continues the `http:` map (tls) and/or adds the `auth:` section.
    let (http_extra, auth) = match extra.find("auth:\n") {
        Some(i) => (&extra[..i], &extra[i..]),
        None => (extra, ""),
    };
    format!(
        "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: gantry-test-secret\n{http_extra}{auth}",
        dir.join("data").display()
    )
}

/// Writes a CA and a server certificate for 127.0.0.1; returns (ca.pem, cert.pem, key.pem).
pub(crate) fn make_tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "gantry test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "127.0.0.1");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &ca).unwrap();
    let ca_path = dir.join("ca.pem");
    let cert_path = dir.join("server.pem");
    let key_path = dir.join("server-key.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (ca_path, cert_path, key_path)
}

struct Issuer {
    signer: ring::signature::EcdsaKeyPair,
    rng: ring::rand::SystemRandom,
    x5c: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Issuer {
    /// Answers one HTTP/1.1 request on the token endpoint and closes the connection.
    fn serve(&self, stream: &mut TcpStream) {
        let mut reader = BufReader::new(match stream.try_clone() {
            Ok(s) => s,
            Err(_) => return,
        });
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).is_err() {
            return;
        }
        let mut authorization = None;
        let mut content_length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "authorization" => authorization = Some(v.trim().to_string()),
                    "content-length" => content_length = v.trim().parse().unwrap_or(0),
                    _ => {}
                }
            }
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let query = target
            .split_once('?')
            .map(|(_, q)| q.to_string())
            .unwrap_or_default();
        let mut body = vec![0u8; content_length.min(1 << 16)];
        if reader.read_exact(&mut body).is_err() {
            body.clear();
        }
        let params: Vec<(String, String)> = if method == "POST" {
            url::form_urlencoded::parse(&body).into_owned().collect()
        } else {
            url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect()
        };
        let mut scopes: Vec<String> = params
            .iter()
            .filter(|(k, _)| k == "scope")
            .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
            .filter(|s| !s.is_empty())
            .collect();
        scopes.sort();
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let subject = if method == "POST" {
            (get("grant_type").as_deref() == Some("refresh_token")
                && get("refresh_token").as_deref() == Some(REFRESH_TOKEN))
            .then(|| USERNAME.to_string())
        } else {
            let expected = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{USERNAME}:{PASSWORD}"))
            );
            (authorization.as_deref() == Some(expected.as_str())).then(|| USERNAME.to_string())
        };
        self.log
            .lock()
            .unwrap()
            .push(format!("{method} {}", scopes.join(" ")).trim().to_string());
        let (status, json) = match subject {
            Some(sub) => {
                let token = self.token(&sub, &scopes);
                (
                    "200 OK",
                    serde_json::json!({"token": token, "access_token": token, "expires_in": 300}),
                )
            }
            None => (
                "401 Unauthorized",
                serde_json::json!({"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]}),
            ),
        };
        let body = json.to_string();
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.flush();
    }

    /// An ES256 JWT granting every requested action.
    fn token(&self, subject: &str, scopes: &[String]) -> String {
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let access: Vec<serde_json::Value> = scopes
            .iter()
            .filter_map(|s| {
                let mut it = s.splitn(3, ':');
                let (kind, name, actions) = (it.next()?, it.next()?, it.next()?);
                // a name may contain a port colon: repository:host:5000/x:pull is not used here
                Some(serde_json::json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
            })
            .collect();
        let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [self.x5c]});
        let claims = serde_json::json!({
            "iss": ISSUER, "sub": subject, "aud": SERVICE,
            "exp": now + 600, "nbf": now - 30, "iat": now - 30,
            "jti": format!("{now}-{}", scopes.len()), "access": access,
        });
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = self.signer.sign(&self.rng, input.as_bytes()).unwrap();
        format!("{input}.{}", b64(sig.as_ref()))
    }
}
